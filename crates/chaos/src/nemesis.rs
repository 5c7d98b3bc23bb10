//! The nemesis: injects one fault at a time from a seeded schedule, holds it, heals it, and
//! lets the cluster recover briefly before the next. Every enabled kind comes up once per round,
//! in a seeded order, so even a short run covers them all.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::cluster::Cluster;

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
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::IsolateLeader,
        Fault::MinorityPartition,
        Fault::MajoritiesRing,
        Fault::FlappingLink,
        Fault::KillRestart,
        Fault::KillAll,
        Fault::Pause,
        Fault::Delay,
    ];

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

#[derive(Debug)]
pub struct Nemesis<'a> {
    pub cluster: &'a mut Cluster,
    pub rng: ChaCha8Rng,
    pub kinds: Vec<Fault>,
    pub start: Instant,
    /// How long a fault is held, at most.
    pub hold: (u64, u64),
    pub log: Log,
    pub verbose: bool,
}

impl Nemesis<'_> {
    fn note(&mut self, what: String) {
        let line = format!(
            "[{:7.2}s] nemesis: {what}",
            self.start.elapsed().as_secs_f64()
        );
        if self.verbose {
            eprintln!("{line}");
        }
        self.log.lines.push(line);
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
        let mut round: Vec<Fault> = Vec::new();
        while Instant::now() < until {
            if round.is_empty() {
                round = self.kinds.clone();
                round.shuffle(&mut self.rng);
            }
            let fault = round.remove(0);
            self.inject(fault).await?;
            *self.log.counts.entry(fault.name().into()).or_default() += 1;
            let gap = Duration::from_millis(self.rng.random_range(1_000..=2_500));
            tokio::time::sleep(gap).await;
        }
        Ok(())
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
                let hold = self.hold();
                self.note(format!(
                    "{}: node {lonely} cut off (leader {leader:?}) for {hold:?}",
                    fault.name()
                ));
                for &o in ids.iter().filter(|o| **o != lonely) {
                    self.cluster.cut(lonely, o)?;
                }
                tokio::time::sleep(hold).await;
                self.cluster.heal_all_links()?;
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
        }
        Ok(())
    }

    /// Undoes everything: links healed, delays cleared, every node running.
    pub async fn heal_everything(&mut self) -> Result<()> {
        self.cluster.heal_all_links()?;
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
