//! A fleet of real agents that keeps the scheduler busy during a run, so the replica invariants
//! of SPEC §6 and the lease are exercised under faults: a partition table of 16 partitions at
//! RF 3 over five workers in three zones; one worker at a time is drained to Disabled (and
//! recommissioned by a fresh process) or has its drain cancelled midway, and any worker may be
//! restarted in maintenance (`maintenance_and_restart`, SPEC §1) at any time — several at once
//! sometimes, so the disruption budget refuses some.
//!
//! Every agent is a process of its own (`drover-chaos agent`, [`crate::agent_process`]) running
//! as a uid of its own, so the nemesis can SIGSTOP it, cut it off (by uid, [`crate::netns`]),
//! SIGKILL it, or start a second process with the same worker id. A worker's slot keeps one
//! process running: when its process has ended (superseded, shut down after a drain, killed)
//! and the nemesis is not holding the slot down, a fresh one starts. Each process's stdout lines
//! are kept, with when the harness killed it: [`crate::leases`] checks them against the
//! deaths in the events log.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use drover_api::StateRequest;
use drover_client::Client;
use drover_types::WorkerState;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Liveness;
use crate::agent_process::{Line, RESTARTED, What, now_ms};
use crate::netns::Netns;

pub const WORKERS: usize = 5;
pub const PARTITIONS: u32 = 16;
pub const RF: u8 = 3;
/// Agent process `n` of a run runs as uid `UID_BASE + n`.
const UID_BASE: u32 = 61_000;

/// Tries of one restart in maintenance while the cluster refuses it (its disruption budget).
const RESTART_TRIES: usize = 3;
/// Pause between a refused restart and the next try.
const RESTART_RETRY_AFTER: Duration = Duration::from_millis(1_500);

/// What the fleet did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Agent processes started.
    pub agent_starts: u64,
    pub acks: u64,
    pub drains_started: u64,
    pub drains_completed: u64,
    pub drains_cancelled: u64,
    /// Restarts in maintenance asked for, done (the process ended in maintenance), and
    /// refused (the disruption budget, or a fault in the way).
    pub restarts_started: u64,
    pub restarts_done: u64,
    pub restarts_refused: u64,
    /// Lease lines the processes wrote (held with an expiry, or lost).
    pub lease_reports: u64,
    pub errors: u64,
}

/// What a fleet needs to start its processes.
#[derive(Clone, Debug)]
pub struct Config {
    /// The `drover-chaos` binary (its `agent` subcommand).
    pub agent_bin: PathBuf,
    pub endpoints: Vec<String>,
    pub liveness: Liveness,
    /// Each worker's processes append their stderr to `<log_dir>/<worker>.log`.
    pub log_dir: PathBuf,
    /// The CA of the nodes' certificates, when they serve TLS.
    pub cacert: Option<PathBuf>,
}

/// One agent process as the checks see it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProcRecord {
    /// The harness's number for it (pids may be reused; this is not).
    pub serial: u64,
    pub worker: String,
    pub pid: u32,
    pub uid: u32,
    pub started_ms: u64,
    /// When the harness's SIGKILL had taken effect (it serves nothing after that).
    pub killed_ms: Option<u64>,
    pub lines: Vec<Line>,
}

#[derive(Debug)]
struct Proc {
    serial: u64,
    uid: u32,
    pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    paused: bool,
    active: bool,
    drained: bool,
    restart_refused: bool,
    ended: bool,
}

#[derive(Debug)]
struct Slot {
    worker: String,
    zone: String,
    /// Running processes, oldest first.
    live: Vec<Proc>,
    /// The nemesis holds the slot down: no fresh process starts.
    down: bool,
}

#[derive(Debug, Default)]
struct State {
    slots: Vec<Slot>,
    records: BTreeMap<u64, ProcRecord>,
    next_serial: u64,
    readers: Vec<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
pub struct Fleet {
    cfg: Config,
    netns: Arc<Netns>,
    stop: AtomicBool,
    /// Held for map and process-table operations only, never across an `.await`.
    state: Mutex<State>,
    pub stats: Mutex<Stats>,
    /// Held by the one worker draining at a time, so every drain stays feasible.
    drain_token: tokio::sync::Mutex<()>,
    admin: Client,
}

impl Fleet {
    pub fn new(cfg: Config, netns: Arc<Netns>) -> Result<Arc<Fleet>> {
        std::fs::create_dir_all(&cfg.log_dir)?;
        let opts = drover_client::ClientOptions {
            tls: match &cfg.cacert {
                Some(ca) => Some(drover_tls::client_config(Some(ca), None)?),
                None => None,
            },
            ..Default::default()
        };
        let admin = Client::with_options(&cfg.endpoints, None, opts)?;
        let slots = (0..WORKERS)
            .map(|i| Slot {
                worker: format!("f-{i}"),
                zone: format!("z{}", i % 3),
                live: Vec::new(),
                down: false,
            })
            .collect();
        Ok(Arc::new(Fleet {
            cfg,
            netns,
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                slots,
                ..State::default()
            }),
            stats: Mutex::default(),
            drain_token: tokio::sync::Mutex::new(()),
            admin,
        }))
    }

    /// Ends every worker's life loop (the processes keep running until [`Fleet::finish`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn worker(&self, slot: usize) -> String {
        self.lock().slots[slot].worker.clone()
    }

    pub fn zone_of(&self, slot: usize) -> String {
        self.lock().slots[slot].zone.clone()
    }

    /// Starts a new agent process for `slot` (beside any running one); returns its serial.
    pub fn spawn(self: &Arc<Self>, slot: usize) -> Result<u64> {
        let mut st = self.lock();
        let serial = st.next_serial;
        st.next_serial += 1;
        let uid = UID_BASE + u32::try_from(serial).unwrap_or(0);
        let (worker, zone) = (st.slots[slot].worker.clone(), st.slots[slot].zone.clone());
        let l = self.cfg.liveness;
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.cfg.log_dir.join(format!("{worker}.log")))?;
        let mut command = Command::new(&self.cfg.agent_bin);
        if let Some(ca) = &self.cfg.cacert {
            command.arg("agent").arg("--cacert").arg(ca);
        } else {
            command.arg("agent");
        }
        let mut child = command
            .args(["--endpoints", &self.cfg.endpoints.join(",")])
            .args(["--id", &worker, "--zone", &zone])
            .args(["--address", &format!("10.8.0.{slot}:9000")])
            .args(["--uid", &uid.to_string()])
            .args([
                "--heartbeat-interval-ms",
                &l.heartbeat_interval_ms.to_string(),
            ])
            .args(["--dead-after-ms", &l.dead_after_ms.to_string()])
            .args(["--lease-margin-ms", &l.lease_margin_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.cfg.agent_bin.display()))?;
        let stdout = child.stdout.take().context("agent stdout")?;
        let stdin = child.stdin.take();
        let pid = child.id();
        st.records.insert(
            serial,
            ProcRecord {
                serial,
                worker,
                pid,
                uid,
                started_ms: now_ms(),
                killed_ms: None,
                lines: Vec::new(),
            },
        );
        st.slots[slot].live.push(Proc {
            serial,
            uid,
            pid,
            child,
            stdin,
            paused: false,
            active: false,
            drained: false,
            restart_refused: false,
            ended: false,
        });
        // A weak reference: the fleet's drop must not wait for its readers (it kills the
        // processes, which ends them).
        let me = Arc::downgrade(self);
        let reader = std::thread::Builder::new()
            .name(format!("agent-{serial}"))
            .spawn(move || read(&me, slot, serial, stdout))?;
        st.readers.push(reader);
        drop(st);
        self.bump(|s| s.agent_starts += 1);
        Ok(serial)
    }

    /// The newest running process of `slot` that has not ended: (serial, uid).
    pub fn newest(&self, slot: usize) -> Option<(u64, u32)> {
        let st = self.lock();
        st.slots[slot]
            .live
            .iter()
            .rev()
            .find(|p| !p.ended)
            .map(|p| (p.serial, p.uid))
    }

    /// Whether process `serial` has said it is Active (registered, ready, its lease held) and
    /// has not since been drained or ended.
    pub fn is_active(&self, serial: u64) -> bool {
        self.with_proc(serial, |p| p.active && !p.drained && !p.ended)
            .unwrap_or(false)
    }

    /// Whether the mass-failure brake holds, as the cluster answers now (a node that does not
    /// answer in time counts as "not seen tripped").
    pub async fn brake_tripped(&self) -> bool {
        let answer = tokio::time::timeout(Duration::from_secs(1), self.admin.cluster()).await;
        matches!(answer, Ok(Ok(c)) if c.brakes.mass_failure.is_some())
    }

    /// Slots with a running process.
    pub fn live_slots(&self) -> Vec<usize> {
        let st = self.lock();
        (0..st.slots.len())
            .filter(|i| st.slots[*i].live.iter().any(|p| !p.ended))
            .collect()
    }

    fn with_proc<T>(&self, serial: u64, f: impl FnOnce(&mut Proc) -> T) -> Option<T> {
        let mut st = self.lock();
        st.slots
            .iter_mut()
            .flat_map(|s| s.live.iter_mut())
            .find(|p| p.serial == serial)
            .map(f)
    }

    pub fn pid(&self, serial: u64) -> Option<u32> {
        self.with_proc(serial, |p| p.pid)
    }

    /// SIGSTOP: the process freezes with its connections open; its lease timer keeps running.
    pub fn pause(&self, serial: u64) {
        self.with_proc(serial, |p| {
            let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGSTOP);
            p.paused = true;
        });
    }

    pub fn resume(&self, serial: u64) {
        self.with_proc(serial, |p| {
            let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGCONT);
            p.paused = false;
        });
    }

    /// SIGKILL, and note when it had taken effect.
    pub fn kill(&self, serial: u64) {
        let taken = {
            let mut st = self.lock();
            st.slots.iter_mut().find_map(|s| {
                let i = s.live.iter().position(|p| p.serial == serial)?;
                Some(s.live.remove(i))
            })
        };
        let Some(mut p) = taken else { return };
        let _ = p.child.kill();
        let _ = p.child.wait();
        let at = now_ms();
        if let Some(r) = self.lock().records.get_mut(&serial) {
            r.killed_ms = Some(at);
        }
    }

    /// Kills every process of `slot`; returns their serials.
    pub fn kill_slot(&self, slot: usize) -> Vec<u64> {
        let serials: Vec<u64> = self.lock().slots[slot]
            .live
            .iter()
            .map(|p| p.serial)
            .collect();
        for &s in &serials {
            self.kill(s);
        }
        serials
    }

    /// Holds `slot` down (no fresh process starts) or lets it up again.
    pub fn set_down(&self, slot: usize, down: bool) {
        self.lock().slots[slot].down = down;
    }

    /// Cuts process `serial` off from every node but `except`.
    pub fn cut(&self, serial: u64, except: Option<Ipv4Addr>) -> Result<()> {
        let Some(uid) = self.with_proc(serial, |p| p.uid) else {
            return Ok(());
        };
        self.netns.block_uid(uid, except)
    }

    pub fn uncut(&self, uid: u32) -> Result<()> {
        self.netns.unblock_uid(uid)
    }

    /// Undoes every agent fault: processes resumed, nothing cut off, no slot held down.
    pub fn heal_all(&self) -> Result<()> {
        let paused: Vec<u64> = {
            let mut st = self.lock();
            for s in &mut st.slots {
                s.down = false;
            }
            st.slots
                .iter()
                .flat_map(|s| s.live.iter())
                .filter(|p| p.paused)
                .map(|p| p.serial)
                .collect()
        };
        for s in paused {
            self.resume(s);
        }
        self.netns.unblock_all_uids()
    }

    /// Writes a command to a process's stdin.
    fn send(&self, serial: u64, cmd: &str) -> bool {
        self.with_proc(serial, |p| {
            p.stdin
                .as_mut()
                .is_some_and(|s| writeln!(s, "{cmd}").and_then(|()| s.flush()).is_ok())
        })
        .unwrap_or(false)
    }

    /// Waits until `pred` holds for process `serial`; false once it is gone, at the deadline,
    /// or when the fleet stops.
    async fn wait_for(&self, serial: u64, timeout: Duration, pred: impl Fn(&Proc) -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end && !self.stopped() {
            match self.with_proc(serial, |p| pred(p)) {
                Some(true) => return true,
                Some(false) => {}
                None => return false,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Graceful: `shutdown` (the process stops serving and gives its lease up), then waits for
    /// it to exit; SIGKILL if it has not within a few seconds.
    async fn shutdown(&self, serial: u64) {
        if self.send(serial, "shutdown") {
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end && self.pid(serial).is_some() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.kill(serial);
    }

    /// The slot's process, starting one if none runs (waiting while the slot is held down).
    async fn ensure(self: &Arc<Self>, slot: usize) -> Option<u64> {
        while !self.stopped() {
            let down = self.lock().slots[slot].down;
            if !down {
                if let Some((serial, _)) = self.newest(slot) {
                    return Some(serial);
                }
                match self.spawn(slot) {
                    Ok(serial) => return Some(serial),
                    Err(e) => {
                        eprintln!("drover-chaos: {e:#}");
                        self.bump(|s| s.errors += 1);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Creates the table (before the faults start), then runs every worker's life until
    /// [`Fleet::stop`].
    pub async fn run(self: Arc<Self>, seed: u64) {
        for _ in 0..50 {
            match self.admin.create_table(PARTITIONS, RF).await {
                Ok(_) => break,
                Err(e) if e.is(drover_api::ErrorCode::AlreadyExists) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let mut lives = Vec::new();
        for i in 0..WORKERS {
            let me = self.clone();
            let rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1_000 + i as u64));
            lives.push(tokio::spawn(async move { me.life(i, rng).await }));
        }
        for l in lives {
            let _ = l.await;
        }
    }

    /// One worker: a process that becomes Active and serves a while; then a restart in
    /// maintenance (the next process takes the same replicas over), or a drain to Disabled and
    /// a fresh process (a recommission), or a drain cancelled by an operator.
    async fn life(self: Arc<Self>, slot: usize, mut rng: ChaCha8Rng) {
        let id = self.worker(slot);
        while !self.stopped() {
            let Some(serial) = self.ensure(slot).await else {
                return;
            };
            if !self
                .wait_for(serial, Duration::from_secs(30), |p| p.active)
                .await
            {
                // Gone (killed, superseded) or stuck behind a fault: look again.
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            let serve = Duration::from_millis(rng.random_range(3_000..10_000));
            tokio::time::sleep(serve).await;
            if self.stopped() {
                return;
            }
            if rng.random_bool(0.35) {
                self.restart(serial).await;
                continue;
            }
            let Ok(_token) = self.drain_token.try_lock() else {
                continue;
            };
            if self.newest(slot).map(|(s, _)| s) != Some(serial) {
                continue; // replaced meanwhile
            }
            self.bump(|s| s.drains_started += 1);
            if rng.random_bool(0.6) {
                if self.send(serial, "drain")
                    && self
                        .wait_for(serial, Duration::from_secs(30), |p| p.drained)
                        .await
                {
                    self.bump(|s| s.drains_completed += 1);
                    self.shutdown(serial).await;
                    continue;
                }
                // Not done in time: cancel it as an operator, and start over with a fresh
                // process (this one believes it is leaving).
                match self
                    .admin
                    .set_state(&id, &StateRequest::to(WorkerState::Active))
                    .await
                {
                    Ok(_) => self.bump(|s| s.drains_cancelled += 1),
                    Err(_) => self.bump(|s| s.errors += 1),
                }
                self.shutdown(serial).await;
                continue;
            }
            // An operator starts a drain and cancels it: Draining → Active.
            let _ = self
                .admin
                .set_state(&id, &StateRequest::to(WorkerState::Draining))
                .await;
            let pause = Duration::from_millis(rng.random_range(200..2_000));
            tokio::time::sleep(pause).await;
            match self
                .admin
                .set_state(&id, &StateRequest::to(WorkerState::Active))
                .await
            {
                Ok(_) => self.bump(|s| s.drains_cancelled += 1),
                Err(_) => {
                    // Perhaps it finished draining meanwhile: start over with a new process.
                    self.bump(|s| s.errors += 1);
                    self.shutdown(serial).await;
                }
            }
        }
    }

    /// A restart without data movement: the process enters maintenance, moves its leaderships
    /// off and ends; the life loop then starts the next one. Restarts take no token: several
    /// may overlap, and the cluster's disruption budget must refuse the ones too many.
    ///
    /// A refused restart is asked again a little later, up to [`RESTART_TRIES`] times in all,
    /// as an operator would once the budget frees: under faults partitions are often short
    /// for a while, and one CI run saw all of its ten single tries refused, so that no restart
    /// in maintenance was done and the budget check checked nothing.
    async fn restart(&self, serial: u64) {
        for _ in 0..RESTART_TRIES {
            self.with_proc(serial, |p| p.restart_refused = false);
            if !self.send(serial, "restart") {
                return;
            }
            self.bump(|s| s.restarts_started += 1);
            self.wait_for(serial, Duration::from_secs(30), |p| {
                p.ended || p.restart_refused
            })
            .await;
            if self.with_proc(serial, |p| p.restart_refused) == Some(true) {
                self.bump(|s| s.restarts_refused += 1);
                if self.stopped() {
                    return;
                }
                tokio::time::sleep(RESTART_RETRY_AFTER).await;
                continue;
            }
            if self.restarted(serial) {
                self.bump(|s| s.restarts_done += 1);
            } else if self.pid(serial).is_some() {
                // Stuck behind a fault: start over with a fresh process.
                self.shutdown(serial).await;
            }
            return;
        }
    }

    /// Whether process `serial` ended by a restart in maintenance.
    fn restarted(&self, serial: u64) -> bool {
        self.lock().records.get(&serial).is_some_and(|r| {
            r.lines
                .iter()
                .any(|l| matches!(&l.what, What::Ended { reason, .. } if reason == RESTARTED))
        })
    }

    /// Stops the fleet, kills every process, waits until every line they wrote is read, and
    /// returns what each process reported.
    pub fn finish(&self) -> Vec<ProcRecord> {
        self.stop();
        let serials: Vec<u64> = {
            let st = self.lock();
            st.slots
                .iter()
                .flat_map(|s| s.live.iter().map(|p| p.serial))
                .collect()
        };
        for s in serials {
            self.resume(s);
            self.kill(s);
        }
        let readers = std::mem::take(&mut self.lock().readers);
        for r in readers {
            let _ = r.join();
        }
        let st = self.lock();
        st.records.values().cloned().collect()
    }
}

/// Reads one process's lines until it exits, then reaps it.
fn read(
    fleet: &std::sync::Weak<Fleet>,
    slot: usize,
    serial: u64,
    stdout: std::process::ChildStdout,
) {
    for text in BufReader::new(stdout).lines() {
        let Ok(text) = text else { break };
        let Some(me) = fleet.upgrade() else { continue };
        let Ok(line) = serde_json::from_str::<Line>(&text) else {
            me.bump(|s| s.errors += 1);
            continue;
        };
        match &line.what {
            What::Lease { .. } | What::Lost => me.bump(|s| s.lease_reports += 1),
            What::Ack { .. } => me.bump(|s| s.acks += 1),
            _ => {}
        }
        let mut st = me.lock();
        if let Some(p) = st.slots[slot].live.iter_mut().find(|p| p.serial == serial) {
            match &line.what {
                What::Active => p.active = true,
                What::Drained => p.drained = true,
                What::RestartRefused { .. } => p.restart_refused = true,
                What::Ended { .. } => p.ended = true,
                _ => {}
            }
        }
        if let Some(r) = st.records.get_mut(&serial) {
            r.lines.push(line);
        }
    }
    let Some(me) = fleet.upgrade() else { return };
    let gone = {
        let mut st = me.lock();
        let live = &mut st.slots[slot].live;
        live.iter()
            .position(|p| p.serial == serial)
            .map(|i| live.remove(i))
    };
    if let Some(mut p) = gone {
        let _ = p.child.wait();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        for s in &mut st.slots {
            for p in &mut s.live {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}
