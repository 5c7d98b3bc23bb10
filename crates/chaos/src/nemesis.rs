//! The nemesis: injects faults from a seeded schedule, holds each, heals it, and lets the
//! cluster recover briefly before the next. Two lanes run side by side, each one fault at a
//! time: the node lane (partitions, crashes, pauses, Raft delay) and the agent lane (agent
//! processes paused, cut off, killed, duplicated), so an agent may be paused while the leader
//! changes. Every enabled kind of a lane comes up once per round, in a seeded order, so even a
//! short run covers them all.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::cluster::{Cluster, node_ip};
use crate::fleet::Fleet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Cut the leader off from both followers (it keeps believing it leads).
    IsolateLeader,
    /// Cut one follower off from the other two.
    MinorityPartition,
    /// Cut one link only: every node still sees a majority, but not the same one.
    MajoritiesRing,
    /// Cut and heal one link over and over, every 100–500 ms.
    FlappingLink,
    /// SIGKILL a node (the leader half the time), then restart it on its data.
    KillRestart,
    /// SIGKILL every node at once, then restart them all.
    KillAll,
    /// SIGSTOP a node (the leader half the time), then SIGCONT it.
    Pause,
    /// Delay every Raft message by 20–250 ms in the transport's fault layer.
    Delay,
    /// Delay every Raft message by a tenth to a half of `dead_after`, for one to two
    /// `dead_after`: quorum rounds (and so heartbeat acknowledgements) and death verdicts crawl.
    SlowRaft,
    /// SIGSTOP an agent process for half to twice `dead_after`, then SIGCONT it.
    PauseAgent,
    /// SIGSTOP every agent process of one zone (of two workers or more) at once, for one and a
    /// half to two and a half `dead_after`, then SIGCONT them: a zone gone silent, the case
    /// the mass-failure brake exists for.
    PauseZone,
    /// Cut an agent process off from every node for half to twice `dead_after`.
    CutAgent,
    /// SIGKILL a worker's agent process, and start a fresh one up to `dead_after` later.
    RestartAgent,
    /// Start a second process with a worker's id (every other time with the first one
    /// SIGSTOPped, as an operator replacing a hung process would) for half to twice
    /// `dead_after`, then SIGKILL one of the two.
    DuplicateAgent,
}

impl Fault {
    /// The faults on nodes and links.
    pub const NODE: [Fault; 8] = [
        Fault::IsolateLeader,
        Fault::MinorityPartition,
        Fault::MajoritiesRing,
        Fault::FlappingLink,
        Fault::KillRestart,
        Fault::KillAll,
        Fault::Pause,
        Fault::Delay,
    ];

    /// The faults aimed at the lease: on agent processes, and Raft delays near `dead_after`.
    pub const LEASE: [Fault; 6] = [
        Fault::SlowRaft,
        Fault::PauseAgent,
        Fault::PauseZone,
        Fault::CutAgent,
        Fault::RestartAgent,
        Fault::DuplicateAgent,
    ];

    pub const ALL: [Fault; 14] = [
        Fault::IsolateLeader,
        Fault::MinorityPartition,
        Fault::MajoritiesRing,
        Fault::FlappingLink,
        Fault::KillRestart,
        Fault::KillAll,
        Fault::Pause,
        Fault::Delay,
        Fault::SlowRaft,
        Fault::PauseAgent,
        Fault::PauseZone,
        Fault::CutAgent,
        Fault::RestartAgent,
        Fault::DuplicateAgent,
    ];

    /// Whether the agent lane injects it.
    pub fn on_agents(self) -> bool {
        matches!(
            self,
            Fault::PauseAgent
                | Fault::PauseZone
                | Fault::CutAgent
                | Fault::RestartAgent
                | Fault::DuplicateAgent
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::IsolateLeader => "isolate-leader",
            Fault::MinorityPartition => "minority-partition",
            Fault::MajoritiesRing => "majorities-ring",
            Fault::FlappingLink => "flapping-link",
            Fault::KillRestart => "kill-restart",
            Fault::KillAll => "kill-all",
            Fault::Pause => "pause",
            Fault::Delay => "delay",
            Fault::SlowRaft => "slow-raft",
            Fault::PauseAgent => "pause-agent",
            Fault::PauseZone => "pause-zone",
            Fault::CutAgent => "cut-agent",
            Fault::RestartAgent => "restart-agent",
            Fault::DuplicateAgent => "duplicate-agent",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// What the nemesis did.
#[derive(Debug, Default)]
pub struct Log {
    pub counts: BTreeMap<String, u64>,
    pub lines: Vec<String>,
}

/// The log both lanes write, one line per action, in time order.
#[derive(Debug)]
pub struct Journal {
    pub start: Instant,
    pub verbose: bool,
    log: Mutex<Log>,
}

impl Journal {
    pub fn new(start: Instant, verbose: bool) -> Arc<Journal> {
        Arc::new(Journal {
            start,
            verbose,
            log: Mutex::default(),
        })
    }

    fn note(&self, lane: &str, what: String) {
        let line = format!(
            "[{:7.2}s] {lane}: {what}",
            self.start.elapsed().as_secs_f64()
        );
        if self.verbose {
            eprintln!("{line}");
        }
        self.lock().lines.push(line);
    }

    fn count(&self, fault: Fault) {
        *self.lock().counts.entry(fault.name().into()).or_default() += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take(&self) -> Log {
        std::mem::take(&mut *self.lock())
    }
}

/// Runs the node lane and the agent lane side by side until `until`, then heals everything
/// (also when a lane failed).
pub async fn run(
    node: &mut Nemesis<'_>,
    agents: Option<&mut AgentNemesis>,
    until: Instant,
) -> Result<()> {
    let result = match agents {
        Some(a) if !a.kinds.is_empty() => {
            let (n, a) = tokio::join!(node.run(until), a.run(until));
            n.and(a)
        }
        _ => node.run(until).await,
    };
    let healed = node.heal_everything().await;
    result.and(healed)
}

/// The node lane.
#[derive(Debug)]
pub struct Nemesis<'a> {
    pub cluster: &'a mut Cluster,
    /// The agents, so a leader isolation can leave some of them talking to the old leader only.
    pub fleet: Option<Arc<Fleet>>,
    pub rng: ChaCha8Rng,
    /// Node faults only (agent faults are the agent lane's).
    pub kinds: Vec<Fault>,
    /// How long a fault is held, at most.
    pub hold: (u64, u64),
    /// The cluster's `dead_after`, in milliseconds: slow-raft's delays and holds follow it.
    pub dead_after_ms: u64,
    pub journal: Arc<Journal>,
}

/// Up to `cap` milliseconds: fault times that follow `dead_after` stay sane when it is a day.
fn capped(ms: u64, cap: u64) -> u64 {
    ms.min(cap)
}

impl Nemesis<'_> {
    fn note(&mut self, what: String) {
        self.journal.note("nemesis", what);
    }

    fn hold(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(self.hold.0..=self.hold.1))
    }

    fn pick(&mut self) -> u64 {
        let ids = self.cluster.ids.clone();
        ids[self.rng.random_range(0..ids.len())]
    }

    /// The leader half the time (when there is one), any node otherwise.
    async fn victim(&mut self) -> u64 {
        let leader = self.cluster.leader().await;
        match leader {
            Some(l) if self.rng.random_bool(0.5) => l,
            _ => self.pick(),
        }
    }

    /// Injects faults until `until`, one at a time, healing each.
    pub async fn run(&mut self, until: Instant) -> Result<()> {
        if self.kinds.is_empty() {
            tokio::time::sleep_until(until.into()).await;
            return Ok(());
        }
        let mut round: Vec<Fault> = Vec::new();
        while Instant::now() < until {
            if round.is_empty() {
                round = self.kinds.clone();
                round.shuffle(&mut self.rng);
            }
            let fault = round.remove(0);
            self.inject(fault).await?;
            self.journal.count(fault);
            let gap = Duration::from_millis(self.rng.random_range(1_000..=2_500));
            tokio::time::sleep(gap).await;
        }
        Ok(())
    }

    /// Leaves one or two agent processes able to reach `node` only (during its isolation).
    fn pin_agents(&mut self, node: u64) -> Vec<u32> {
        let Some(fleet) = self.fleet.clone() else {
            return Vec::new();
        };
        let mut slots = fleet.live_slots();
        slots.shuffle(&mut self.rng);
        let n = self.rng.random_range(1..=2).min(slots.len());
        let mut pinned = Vec::new();
        for &slot in &slots[..n] {
            let Some((serial, uid)) = fleet.newest(slot) else {
                continue;
            };
            match fleet.cut(serial, Some(node_ip(node))) {
                Ok(()) => {
                    pinned.push(uid);
                    self.note(format!(
                        "{} (pid {:?}) can reach node {node} only",
                        fleet.worker(slot),
                        fleet.pid(serial)
                    ));
                }
                Err(e) => self.note(format!("could not pin {}: {e:#}", fleet.worker(slot))),
            }
        }
        pinned
    }

    async fn inject(&mut self, fault: Fault) -> Result<()> {
        let ids = self.cluster.ids.clone();
        match fault {
            Fault::IsolateLeader | Fault::MinorityPartition => {
                let leader = self.cluster.leader().await;
                let lonely = match (fault, leader) {
                    (Fault::IsolateLeader, Some(l)) => l,
                    (Fault::MinorityPartition, Some(l)) => {
                        let followers: Vec<u64> = ids.iter().copied().filter(|i| *i != l).collect();
                        followers[self.rng.random_range(0..followers.len())]
                    }
                    _ => self.pick(),
                };
                let mut hold = self.hold();
                // Long enough, half the time, for the new leader to declare the workers that
                // talk only to the old one dead (it waits `dead_after` from its election).
                if fault == Fault::IsolateLeader
                    && self.dead_after_ms <= 10_000
                    && self.rng.random_bool(0.5)
                {
                    let extra = self.rng.random_range(1_000..=3_000);
                    hold = hold.max(Duration::from_millis(self.dead_after_ms + extra));
                }
                self.note(format!(
                    "{}: node {lonely} cut off (leader {leader:?}) for {hold:?}",
                    fault.name()
                ));
                for &o in ids.iter().filter(|o| **o != lonely) {
                    self.cluster.cut(lonely, o)?;
                }
                // Agents that keep talking to the old leader while it believes it leads.
                let pinned = if fault == Fault::IsolateLeader {
                    self.pin_agents(lonely)
                } else {
                    Vec::new()
                };
                tokio::time::sleep(hold).await;
                self.cluster.heal_all_links()?;
                if let Some(fleet) = &self.fleet {
                    for uid in pinned {
                        fleet.uncut(uid)?;
                    }
                }
                self.note("healed".into());
            }
            Fault::MajoritiesRing => {
                let a = self.pick();
                let others: Vec<u64> = ids.iter().copied().filter(|i| *i != a).collect();
                let b = others[self.rng.random_range(0..others.len())];
                let hold = self.hold();
                self.note(format!("majorities-ring: link {a}-{b} cut for {hold:?}"));
                self.cluster.cut(a, b)?;
                tokio::time::sleep(hold).await;
                self.cluster.heal_all_links()?;
                self.note("healed".into());
            }
            Fault::FlappingLink => {
                let a = self.pick();
                let others: Vec<u64> = ids.iter().copied().filter(|i| *i != a).collect();
                let b = others[self.rng.random_range(0..others.len())];
                let hold = self.hold();
                self.note(format!("flapping-link: link {a}-{b} flaps for {hold:?}"));
                let end = Instant::now() + hold;
                let mut cut = false;
                let mut flips = 0;
                while Instant::now() < end {
                    if cut {
                        self.cluster.heal_link(a, b)?;
                    } else {
                        self.cluster.cut(a, b)?;
                    }
                    cut = !cut;
                    flips += 1;
                    let d = self.rng.random_range(100..=500);
                    tokio::time::sleep(Duration::from_millis(d)).await;
                }
                self.cluster.heal_all_links()?;
                self.note(format!("healed after {flips} flips"));
            }
            Fault::KillRestart => {
                let v = self.victim().await;
                let down = Duration::from_millis(self.rng.random_range(500..=3_000));
                self.note(format!("kill-restart: SIGKILL node {v}, down {down:?}"));
                self.cluster.kill(v);
                tokio::time::sleep(down).await;
                self.cluster.spawn(v)?;
                self.note(format!("node {v} restarted"));
            }
            Fault::KillAll => {
                let down = Duration::from_millis(self.rng.random_range(200..=1_500));
                self.note(format!("kill-all: SIGKILL every node, down {down:?}"));
                for &i in &ids {
                    self.cluster.kill(i);
                }
                tokio::time::sleep(down).await;
                for &i in &ids {
                    self.cluster.spawn(i)?;
                }
                self.note("all restarted".into());
            }
            Fault::Pause => {
                let v = self.victim().await;
                let hold = self.hold();
                self.note(format!("pause: SIGSTOP node {v} for {hold:?}"));
                self.cluster.pause(v);
                tokio::time::sleep(hold).await;
                self.cluster.resume(v);
                self.note(format!("node {v} resumed"));
            }
            Fault::Delay => {
                let hold = self.hold();
                let mut delays = Vec::new();
                for &from in &ids {
                    for &to in ids.iter().filter(|t| **t != from) {
                        let ms = self.rng.random_range(20..=250);
                        delays.push((from, to, ms));
                    }
                }
                self.note(format!(
                    "delay: raft messages delayed {delays:?} (from, to, ms) for {hold:?}"
                ));
                for (from, to, ms) in &delays {
                    if let Err(e) = self.cluster.set_delay(*from, *to, *ms).await {
                        self.note(format!("could not set a delay on node {from}: {e}"));
                    }
                }
                tokio::time::sleep(hold).await;
                for &i in &ids {
                    let _ = self.cluster.clear_delays(i).await;
                }
                self.note("delays cleared".into());
            }
            Fault::SlowRaft => {
                let d = self.dead_after_ms;
                let hold = Duration::from_millis(capped(self.rng.random_range(d..=2 * d), 12_000));
                let mut delays = Vec::new();
                for &from in &ids {
                    for &to in ids.iter().filter(|t| **t != from) {
                        let ms = capped(self.rng.random_range(d / 10..=d / 2), 5_000);
                        delays.push((from, to, ms));
                    }
                }
                self.note(format!(
                    "slow-raft: raft messages delayed {delays:?} (from, to, ms) for {hold:?}"
                ));
                for (from, to, ms) in &delays {
                    if let Err(e) = self.cluster.set_delay(*from, *to, *ms).await {
                        self.note(format!("could not set a delay on node {from}: {e}"));
                    }
                }
                tokio::time::sleep(hold).await;
                for &i in &ids {
                    let _ = self.cluster.clear_delays(i).await;
                }
                self.note("delays cleared".into());
            }
            Fault::PauseAgent
            | Fault::PauseZone
            | Fault::CutAgent
            | Fault::RestartAgent
            | Fault::DuplicateAgent => {
                anyhow::bail!("{} is an agent fault, not the node lane's", fault.name())
            }
        }
        Ok(())
    }

    /// Undoes everything: links healed, delays cleared, every node running, every agent
    /// resumed and reachable.
    pub async fn heal_everything(&mut self) -> Result<()> {
        self.cluster.heal_all_links()?;
        if let Some(fleet) = &self.fleet {
            fleet.heal_all()?;
        }
        for id in self.cluster.ids.clone() {
            if self.cluster.is_paused(id) {
                self.cluster.resume(id);
            }
            if !self.cluster.is_running(id) {
                self.cluster.spawn(id)?;
            }
            let _ = self.cluster.clear_delays(id).await;
        }
        Ok(())
    }
}

/// The agent lane: faults on the fleet's agent processes.
#[derive(Debug)]
pub struct AgentNemesis {
    pub fleet: Arc<Fleet>,
    pub rng: ChaCha8Rng,
    /// Agent faults only.
    pub kinds: Vec<Fault>,
    pub dead_after_ms: u64,
    /// The cluster runs with the mass-failure brake on: a paused zone stays away until the
    /// brake trips (see [`Fault::PauseZone`] in `inject`).
    pub brake: bool,
    pub journal: Arc<Journal>,
    /// Duplicates so far: the first, third, ... one SIGSTOPs the first process before
    /// starting the second, so every run with two has both cases.
    pub duplicates: u64,
}

impl AgentNemesis {
    fn note(&self, what: String) {
        self.journal.note("agents", what);
    }

    /// Half to twice `dead_after` (at most 10 s): long enough, some of the time, for the
    /// cluster to declare the worker dead.
    fn hold(&mut self) -> Duration {
        let d = self.dead_after_ms;
        let ms = self.rng.random_range(d / 2..=2 * d).clamp(500, 10_000);
        Duration::from_millis(ms)
    }

    /// A worker with a running process: (slot, serial).
    fn victim(&mut self) -> Option<(usize, u64)> {
        let slots = self.fleet.live_slots();
        if slots.is_empty() {
            return None;
        }
        let slot = slots[self.rng.random_range(0..slots.len())];
        Some((slot, self.fleet.newest(slot)?.0))
    }

    pub async fn run(&mut self, until: Instant) -> Result<()> {
        let mut round: Vec<Fault> = Vec::new();
        while Instant::now() < until {
            if round.is_empty() {
                round = self.kinds.clone();
                round.shuffle(&mut self.rng);
            }
            let fault = round[0];
            if self.inject(fault).await? {
                round.remove(0);
                self.journal.count(fault);
            }
            let gap = Duration::from_millis(self.rng.random_range(1_000..=3_000));
            tokio::time::sleep(gap).await;
        }
        Ok(())
    }

    /// Injects one fault and heals it; false when no agent was running to inject it on.
    async fn inject(&mut self, fault: Fault) -> Result<bool> {
        let Some((slot, serial)) = self.victim() else {
            return Ok(false);
        };
        let fleet = self.fleet.clone();
        let worker = fleet.worker(slot);
        let pid = fleet.pid(serial);
        match fault {
            Fault::PauseZone => {
                let zone = fleet.zone_of(slot);
                let serials: Vec<u64> = fleet
                    .live_slots()
                    .into_iter()
                    .filter(|s| fleet.zone_of(*s) == zone)
                    .filter_map(|s| fleet.newest(s).map(|(serial, _)| serial))
                    .collect();
                if serials.len() < 2 {
                    return Ok(false); // a zone of one is an agent pause
                }
                // A zone whose agents have not all come up Active yet is not a zone outage the
                // cluster can see (a worker not yet Active is never declared dead): wait.
                if !serials.iter().all(|s| fleet.is_active(*s)) {
                    return Ok(false);
                }
                let d = self.dead_after_ms;
                let hold =
                    Duration::from_millis(self.rng.random_range(3 * d / 2..=5 * d / 2).min(10_000));
                self.note(format!(
                    "pause-zone: SIGSTOP every agent of zone {zone} (serials {serials:?}) for {hold:?}"
                ));
                let paused = Instant::now();
                for s in &serials {
                    fleet.pause(*s);
                }
                tokio::time::sleep(hold).await;
                // With the brake on, the zone stays away until the cluster has counted it out
                // (the brake tripped), for at most 4 × dead_after: each leader change under the
                // node lane starts the new leader's count of the zone's silence afresh, and a
                // zone back before any leader counted to dead_after tested nothing (CI saw a
                // 30 s run whose two zone pauses each straddled a leader change).
                let longest = Duration::from_millis(4 * d).max(hold);
                let mut tripped = false;
                while self.brake && paused.elapsed() < longest {
                    if fleet.brake_tripped().await {
                        tripped = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                for s in &serials {
                    fleet.resume(*s);
                }
                let why = if tripped { ", the brake tripped" } else { "" };
                self.note(format!(
                    "zone {zone} resumed after {:?}{why}",
                    paused.elapsed()
                ));
            }
            Fault::PauseAgent => {
                let hold = self.hold();
                self.note(format!(
                    "pause-agent: SIGSTOP {worker} (pid {pid:?}) for {hold:?}"
                ));
                fleet.pause(serial);
                tokio::time::sleep(hold).await;
                fleet.resume(serial);
                self.note(format!("{worker} (pid {pid:?}) resumed"));
            }
            Fault::CutAgent => {
                let hold = self.hold();
                self.note(format!(
                    "cut-agent: {worker} (pid {pid:?}) cut off from every node for {hold:?}"
                ));
                let uid = fleet.newest(slot).map(|(_, uid)| uid);
                fleet.cut(serial, None)?;
                tokio::time::sleep(hold).await;
                if let Some(uid) = uid {
                    fleet.uncut(uid)?;
                }
                self.note(format!("{worker} (pid {pid:?}) reconnected"));
            }
            Fault::RestartAgent => {
                let d = self.dead_after_ms;
                let down = Duration::from_millis(self.rng.random_range(0..=d.min(10_000)));
                fleet.set_down(slot, true);
                let killed = fleet.kill_slot(slot);
                self.note(format!(
                    "restart-agent: SIGKILL {worker} (serials {killed:?}), down {down:?}"
                ));
                tokio::time::sleep(down).await;
                let started = fleet.spawn(slot);
                fleet.set_down(slot, false);
                let started = started?;
                self.note(format!("{worker} restarted (pid {:?})", fleet.pid(started)));
            }
            Fault::DuplicateAgent => {
                let hold = self.hold();
                let stop_first = self.duplicates.is_multiple_of(2);
                self.duplicates += 1;
                if stop_first {
                    fleet.pause(serial);
                }
                let second = fleet.spawn(slot)?;
                self.note(format!(
                    "duplicate-agent: a second {worker} (pid {:?}) beside pid {pid:?}{} for {hold:?}",
                    fleet.pid(second),
                    if stop_first { " (SIGSTOPped)" } else { "" }
                ));
                tokio::time::sleep(hold).await;
                if self.rng.random_bool(0.5) {
                    fleet.kill(serial);
                    self.note(format!("{worker}: the first (pid {pid:?}) SIGKILLed"));
                } else {
                    fleet.kill(second);
                    if stop_first {
                        fleet.resume(serial);
                    }
                    self.note(format!(
                        "{worker}: the second SIGKILLed{}",
                        if stop_first {
                            ", the first resumed"
                        } else {
                            ""
                        }
                    ));
                }
            }
            other => anyhow::bail!("{} is not an agent fault", other.name()),
        }
        Ok(true)
    }
}
