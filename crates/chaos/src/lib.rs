//! Drover's fault-injection and correctness harness (issue 9, SPEC §6), in the manner of
//! Jepsen and etcd's robustness tests.
//!
//! [`run`] creates a network namespace ([`netns`]), starts three `drover` nodes in it
//! ([`cluster`]) and a fleet of agent processes ([`fleet`], [`agent_process`]), and runs
//! concurrent clients ([`workload`]) while a nemesis ([`nemesis`]) partitions, kills, pauses and
//! delays the nodes, and pauses, cuts off, kills and duplicates the agents. With `dead_after` of
//! a few seconds ([`Liveness::DEATHS`]) workers are declared dead under the faults. Afterwards
//! it heals everything, reads the final state, and checks:
//! - every KV key's and every worker's history for linearizability ([`linearizability`],
//!   against the models in [`model`]), operations with unknown outcomes included;
//! - that every acknowledged write is present at the end, and nothing that certainly failed is;
//! - the SPEC §6 invariants at every committed state version, by replaying the events log, and
//!   on snapshots taken during the run ([`invariants`]); among them, as a figure of its own, that
//!   no dead worker holds a replica;
//! - the lease ([`leases`]): every worker declared dead had lost its lease before the verdict,
//!   and no two processes held one worker's lease at once;
//! - that every node's copy of the data is the same once the cluster has converged.
//!
//! The seed fixes the fault schedule and every client's choices; timing is real, so a replay
//! runs the same schedule, not the same interleaving.
//!
//! Errors are `anyhow`: this crate is test tooling, whose errors are reported to a person and
//! never matched on (STYLE.md's typed errors are for the libraries Drover ships).

pub mod agent_process;
pub mod cluster;
pub mod fleet;
pub mod invariants;
pub mod leases;
pub mod linearizability;
pub mod model;
pub mod nemesis;
pub mod netns;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use crate::cluster::{Cluster, node_addr};
use crate::invariants::Shadow;
use crate::linearizability::{Model, Timed, Verdict, check};
use crate::model::{KvModel, KvOp, WorkerModel, WorkerOp, WriteResult};
pub use crate::nemesis::Fault;
use crate::nemesis::{AgentNemesis, Journal, Nemesis};
use crate::netns::Netns;
use crate::workload::{Clients, History};

/// The cluster's liveness settings for a run (the nodes' initial settings), and the agents'
/// lease margin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Liveness {
    pub heartbeat_interval_ms: u64,
    pub suspect_after_ms: u64,
    pub dead_after_ms: u64,
    /// An agent gives its lease up this long before the cluster could declare it dead: the
    /// lease runs to `sent + dead_after − margin`. Below `dead_after / 2` (the agent caps it
    /// there).
    pub lease_margin_ms: u64,
}

impl Liveness {
    /// Workers die under the faults: dead after 3.5 s of silence, a lease 2.5 s past each
    /// acknowledged heartbeat's send, heartbeats every 250 ms.
    pub const DEATHS: Liveness = Liveness {
        heartbeat_interval_ms: 250,
        suspect_after_ms: 1_500,
        dead_after_ms: 3_500,
        lease_margin_ms: 1_000,
    };

    /// No worker dies during a run: `dead_after` is a day.
    pub const NO_DEATHS: Liveness = Liveness {
        heartbeat_interval_ms: 1_000,
        suspect_after_ms: 3_000,
        dead_after_ms: 86_400_000,
        lease_margin_ms: 3_000,
    };

    /// The relations the cluster's settings validation and the lease need.
    pub fn validate(&self) -> Result<(), String> {
        let l = self;
        if !(10..=60_000).contains(&l.heartbeat_interval_ms) {
            return Err("the heartbeat interval must be 10-60000 ms".into());
        }
        if l.suspect_after_ms <= l.heartbeat_interval_ms || l.dead_after_ms <= l.suspect_after_ms {
            return Err(format!(
                "need heartbeat interval < suspect after < dead after, got {} / {} / {} ms",
                l.heartbeat_interval_ms, l.suspect_after_ms, l.dead_after_ms
            ));
        }
        if l.lease_margin_ms == 0 || 2 * l.lease_margin_ms >= l.dead_after_ms {
            return Err(format!(
                "the lease margin ({} ms) must be above 0 and below half of dead after ({} ms)",
                l.lease_margin_ms, l.dead_after_ms
            ));
        }
        Ok(())
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `drover` binary.
    pub drover: PathBuf,
    /// The `drover-chaos` binary, whose `agent` subcommand runs each fleet worker.
    pub agent_bin: PathBuf,
    pub seed: u64,
    /// How long clients and the nemesis run (recovery and checking come on top).
    pub duration: Duration,
    pub faults: Vec<Fault>,
    pub clients: usize,
    /// How long a fault is held, min and max, in milliseconds.
    pub hold_ms: (u64, u64),
    /// Start the nodes with `--unsafe-test-local-reads true`.
    pub unsafe_local_reads: bool,
    /// Start the nodes with `--unsafe-test-early-ack true`.
    pub unsafe_early_ack: bool,
    /// Start the nodes with `--unsafe-test-local-heartbeats true`.
    pub unsafe_local_heartbeats: bool,
    /// Start the nodes with `--unsafe-test-no-lease-wait true`.
    pub unsafe_no_lease_wait: bool,
    /// Start the nodes with `--unsafe-test-long-read-lease true`.
    pub unsafe_long_read_lease: bool,
    pub liveness: Liveness,
    /// Keep the mass-failure brake at its default (a third of the fleet per `dead_after`).
    /// Off (`--max-deaths-fraction 1`), any number of workers may be declared dead at once:
    /// the runs that plant a lease bug need the deaths the brake would hold.
    pub brake: bool,
    /// Search steps the linearizability checker may spend on one key.
    pub check_budget: u64,
    /// Run a fleet of agents with a partition table, drains and recommissions, so replica
    /// moves happen under the faults ([`fleet`]).
    pub fleet: bool,
    /// Print the nemesis' actions as they happen.
    pub verbose: bool,
    /// Every link over TLS, with client-certificate peers (a throwaway CA in the run's
    /// directory): the harness's own clients, the agents and Raft between the nodes.
    pub tls: bool,
}

impl Options {
    /// Every fault kind, workers dying under them ([`Liveness::DEATHS`]); the agent binary is
    /// `drover-chaos` beside `drover`.
    pub fn new(drover: PathBuf, seed: u64, duration: Duration) -> Options {
        Options {
            agent_bin: drover.with_file_name("drover-chaos"),
            drover,
            seed,
            duration,
            faults: Fault::ALL.to_vec(),
            clients: 6,
            hold_ms: (2_000, 5_000),
            unsafe_local_reads: false,
            unsafe_early_ack: false,
            unsafe_local_heartbeats: false,
            unsafe_no_lease_wait: false,
            unsafe_long_read_lease: false,
            liveness: Liveness::DEATHS,
            brake: true,
            check_budget: 20_000_000,
            fleet: true,
            verbose: false,
            tls: false,
        }
    }
}

/// The seed in `DROVER_CHAOS_SEED`, or a fresh one.
pub fn seed_from_env() -> u64 {
    std::env::var("DROVER_CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(rand::random)
}

/// What a run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub seed: u64,
    pub duration_s: f64,
    /// Every link was TLS.
    pub tls: bool,
    pub unsafe_switches: Vec<String>,
    pub liveness: Option<Liveness>,
    pub operations: u64,
    pub operation_counts: workload::Counts,
    pub faults: BTreeMap<String, u64>,
    pub keys_checked: usize,
    /// Writes with unknown outcomes left out of the search because nothing observed them.
    pub unknown_pruned: u64,
    /// Seconds the linearizability search took.
    pub check_seconds: f64,
    pub linearizability_violations: Vec<String>,
    /// Keys whose check ran out of budget (neither a pass nor a violation).
    pub inconclusive: Vec<String>,
    pub lost_writes: Vec<String>,
    /// Writes that certainly failed yet are there, or values nobody wrote.
    pub phantom_writes: Vec<String>,
    pub invariant_violations: Vec<String>,
    /// Nodes whose data differs once the cluster has converged.
    pub divergence: Vec<String>,
    /// Answers the API should never give; reported, and a run with any is not clean.
    pub anomalies: Vec<String>,
    pub events_checked: u64,
    pub versions_checked: u64,
    pub snapshots_checked: u64,
    pub event_gaps: u64,
    /// Deaths the events log committed (every worker's).
    pub deaths: u64,
    /// Times the events log shows the mass-failure brake tripping.
    pub brake_trips: u64,
    /// Maintenances the events log shows begun, each checked against the disruption budget.
    pub maintenances: u64,
    /// Deaths of fleet workers, checked against their agents' leases.
    pub deaths_checked: u64,
    /// Of those, deaths of a generation whose agent process had reported holding a lease.
    pub deaths_after_leases: u64,
    /// Deaths committed while the dying generation's agent still held its lease.
    pub lease_violations: Vec<String>,
    /// Replicas on dead workers, at any replayed state version or in the final state.
    pub dead_worker_replicas: Vec<String>,
    /// Times two processes held one worker's lease at once.
    pub double_leases: Vec<String>,
    /// Pairs of one worker's processes whose leases were compared.
    pub process_pairs: u64,
    pub fleet: fleet::Stats,
    pub nemesis: Vec<String>,
    /// Node data and logs, kept when the run was not clean.
    pub work_dir: Option<String>,
}

impl Report {
    /// No violation of any kind, and every check conclusive.
    pub fn clean(&self) -> bool {
        self.linearizability_violations.is_empty()
            && self.inconclusive.is_empty()
            && self.lost_writes.is_empty()
            && self.phantom_writes.is_empty()
            && self.invariant_violations.is_empty()
            && self.divergence.is_empty()
            && self.anomalies.is_empty()
            && self.lease_violations.is_empty()
            && self.dead_worker_replicas.is_empty()
            && self.double_leases.is_empty()
    }

    /// The human summary: counts, then the first few of each kind of problem.
    pub fn summary(&self) -> String {
        let c = &self.operation_counts;
        let mut s = format!(
            "seed {} ({:.0}s{}{})\n\
             operations: {} ({} ok, {} failed, {} unknown)\n\
             faults injected: {}\n\
             linearizability violations: {} (keys checked {}, inconclusive {}, {:.1}s)\n\
             lost acknowledged writes: {}\n\
             phantom writes: {}\n\
             invariant violations: {} ({} events, {} state versions, {} snapshots checked; {} events lost to retention)\n\
             divergent replicas: {}\n\
             anomalous answers: {}\n\
             liveness: {}\n\
             deaths: {} committed ({} of fleet workers, {} of a generation that had reported a lease); mass-failure brake tripped {} times\n\
             lease violations (a death before the lease ran out): {}\n\
             replicas on dead workers: {}\n\
             double leases: {} ({} pairs of one worker's processes compared)\n\
             fleet: {} agent processes, {} lease reports, {} acknowledgements, {} drains ({} to disabled, {} cancelled), {} restarts in maintenance ({} done, {} refused); {} maintenances committed\n",
            self.seed,
            self.duration_s,
            if self.tls { ", TLS" } else { "" },
            if self.unsafe_switches.is_empty() {
                String::new()
            } else {
                format!(", UNSAFE: {}", self.unsafe_switches.join(" "))
            },
            self.operations,
            c.ok,
            c.failed,
            c.unknown,
            if self.faults.is_empty() {
                "none".to_owned()
            } else {
                self.faults
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            self.linearizability_violations.len(),
            self.keys_checked,
            self.inconclusive.len(),
            self.check_seconds,
            self.lost_writes.len(),
            self.phantom_writes.len(),
            self.invariant_violations.len(),
            self.events_checked,
            self.versions_checked,
            self.snapshots_checked,
            self.event_gaps,
            self.divergence.len(),
            self.anomalies.len(),
            self.liveness.map_or("?".to_owned(), |l| format!(
                "heartbeat {} ms, suspect after {} ms, dead after {} ms, lease margin {} ms",
                l.heartbeat_interval_ms, l.suspect_after_ms, l.dead_after_ms, l.lease_margin_ms
            )),
            self.deaths,
            self.deaths_checked,
            self.deaths_after_leases,
            self.brake_trips,
            self.lease_violations.len(),
            self.dead_worker_replicas.len(),
            self.double_leases.len(),
            self.process_pairs,
            self.fleet.agent_starts,
            self.fleet.lease_reports,
            self.fleet.acks,
            self.fleet.drains_started,
            self.fleet.drains_completed,
            self.fleet.drains_cancelled,
            self.fleet.restarts_started,
            self.fleet.restarts_done,
            self.fleet.restarts_refused,
            self.maintenances,
        );
        for (what, list) in [
            ("linearizability", &self.linearizability_violations),
            ("inconclusive", &self.inconclusive),
            ("lost", &self.lost_writes),
            ("phantom", &self.phantom_writes),
            ("invariant", &self.invariant_violations),
            ("divergence", &self.divergence),
            ("anomaly", &self.anomalies),
            ("lease", &self.lease_violations),
            ("dead replica", &self.dead_worker_replicas),
            ("double lease", &self.double_leases),
        ] {
            for v in list.iter().take(5) {
                s.push_str(&format!("  {what}: {v}\n"));
            }
        }
        if let Some(d) = &self.work_dir {
            s.push_str(&format!("node data and logs kept in {d}\n"));
        }
        s
    }
}

/// Runs one chaos test. Needs root (network namespaces, nftables). The namespace and every
/// process in it are gone when this returns, whatever happened.
pub fn run(opts: &Options) -> Result<Report> {
    opts.liveness
        .validate()
        .map_err(|e| anyhow::anyhow!("bad liveness settings: {e}"))?;
    let netns = Arc::new(Netns::create()?);
    let dir = tempfile::Builder::new()
        .prefix("drover-chaos-")
        .tempdir()
        .context("cannot create a work directory")?;
    let ns = netns.clone();
    let o = opts.clone();
    let path = dir.path().to_owned();
    let inside =
        std::thread::Builder::new()
            .name("chaos".into())
            .spawn(move || -> Result<Report> {
                ns.enter()?;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                rt.block_on(run_inside(&o, ns, &path))
            })?;
    let result = match inside.join() {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!("the harness thread panicked")),
    };
    drop(netns);
    match result {
        Ok(mut report) => {
            if !report.clean() {
                report.work_dir = Some(dir.keep().display().to_string());
            }
            Ok(report)
        }
        Err(e) => {
            let kept = dir.keep();
            Err(e.context(format!("node data and logs kept in {}", kept.display())))
        }
    }
}

async fn run_inside(opts: &Options, netns: Arc<Netns>, dir: &std::path::Path) -> Result<Report> {
    let start = Instant::now();
    let start_wall_ms = agent_process::now_ms();
    let mut extra = Vec::new();
    let mut switches = Vec::new();
    if opts.unsafe_local_reads {
        extra.extend(["--unsafe-test-local-reads".to_owned(), "true".to_owned()]);
        switches.push("local-reads".to_owned());
    }
    if opts.unsafe_long_read_lease {
        extra.extend([
            "--unsafe-test-long-read-lease".to_owned(),
            "true".to_owned(),
        ]);
        switches.push("long-read-lease".to_owned());
    }
    if opts.unsafe_early_ack {
        extra.extend(["--unsafe-test-early-ack".to_owned(), "true".to_owned()]);
        switches.push("early-ack".to_owned());
    }
    if opts.unsafe_local_heartbeats {
        extra.extend([
            "--unsafe-test-local-heartbeats".to_owned(),
            "true".to_owned(),
        ]);
        switches.push("local-heartbeats".to_owned());
    }
    if opts.unsafe_no_lease_wait {
        extra.extend(["--unsafe-test-no-lease-wait".to_owned(), "true".to_owned()]);
        switches.push("no-lease-wait".to_owned());
    }
    if !opts.brake {
        extra.extend(["--max-deaths-fraction".to_owned(), "1".to_owned()]);
    }
    let tls = if opts.tls {
        let hosts: Vec<String> = [1, 2, 3].map(|id| cluster::node_ip(id).to_string()).into();
        let files = drover_tls::ca::throwaway(&dir.join("tls"), &hosts)?;
        for (flag, file) in [
            ("--cert-file", &files.node_cert),
            ("--key-file", &files.node_key),
            ("--trusted-ca-file", &files.ca),
        ] {
            extra.extend([flag.to_owned(), file.display().to_string()]);
        }
        extra.push("--peer-client-cert-auth".to_owned());
        Some(files.ca)
    } else {
        None
    };
    let client_tls = match &tls {
        Some(ca) => Some(drover_tls::client_config(Some(ca), None)?),
        None => None,
    };
    let mut cluster = Cluster::new(netns, &opts.drover, dir, opts.liveness, &extra, client_tls)?;
    for id in cluster.ids.clone() {
        cluster.spawn(id)?;
    }
    let result = exercise(opts, &mut cluster, (start, start_wall_ms), dir).await;
    match result {
        Ok(mut report) => {
            report.unsafe_switches = switches;
            report.duration_s = start.elapsed().as_secs_f64();
            if !report.clean() && opts.verbose {
                eprintln!("{}", cluster.log_tails(30));
            }
            Ok(report)
        }
        Err(e) => {
            eprintln!("{}", cluster.log_tails(40));
            Err(e)
        }
    }
}

async fn exercise(
    opts: &Options,
    cluster: &mut Cluster,
    (start, start_wall_ms): (Instant, u64),
    dir: &std::path::Path,
) -> Result<Report> {
    cluster
        .wait_converged(Duration::from_secs(60))
        .await
        .context("the cluster did not form")?;
    let clients = Arc::new(Clients::new(
        cluster.http.clone(),
        cluster.ids.clone(),
        start,
    ));
    let shadow = Arc::new(Mutex::new(Shadow::default()));
    let snapshots = Arc::new(Mutex::new((0u64, Vec::<String>::new())));
    let observing = Arc::new(AtomicBool::new(true));
    let observer = tokio::spawn(observe(
        cluster.http.clone(),
        cluster.ids.clone(),
        start,
        shadow.clone(),
        snapshots.clone(),
        observing.clone(),
    ));
    let endpoints: Vec<String> = cluster
        .ids
        .iter()
        .map(|i| node_addr(*i).to_string())
        .collect();
    let fleet = if opts.fleet {
        let cfg = fleet::Config {
            agent_bin: opts.agent_bin.clone(),
            endpoints,
            liveness: opts.liveness,
            log_dir: dir.join("agents"),
            cacert: opts.tls.then(|| dir.join("tls").join("ca.pem")),
        };
        Some(fleet::Fleet::new(cfg, cluster.netns())?)
    } else {
        None
    };
    let fleet_task = fleet.clone().map(|f| tokio::spawn(f.run(opts.seed)));
    let workers = {
        let c = clients.clone();
        let (n, seed) = (opts.clients, opts.seed);
        tokio::spawn(async move { c.run(n, seed).await })
    };

    let journal = Journal::new(start, opts.verbose);
    let (agent_kinds, node_kinds): (Vec<Fault>, Vec<Fault>) =
        opts.faults.iter().partition(|f| f.on_agents());
    let dead_after_ms = opts.liveness.dead_after_ms;
    let mut agents = fleet.clone().map(|f| AgentNemesis {
        fleet: f,
        rng: ChaCha8Rng::seed_from_u64(opts.seed ^ 0x0a6e_47a6_e47a_6e47),
        kinds: agent_kinds,
        dead_after_ms,
        brake: opts.brake,
        journal: journal.clone(),
        duplicates: 0,
    });
    let mut nemesis = Nemesis {
        cluster,
        fleet: fleet.clone(),
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        kinds: node_kinds,
        hold: opts.hold_ms,
        dead_after_ms,
        journal: journal.clone(),
    };
    let until = start + opts.duration;
    nemesis::run(&mut nemesis, agents.as_mut(), until).await?;
    drop(nemesis);
    let nemesis_log = journal.take();
    // Keep the clients going while the cluster recovers, then stop them.
    let leader = match cluster.wait_converged(Duration::from_secs(60)).await {
        Ok(l) => l,
        Err(e) => {
            // The nemesis' actions first and the nodes' states last: a truncated report
            // (CI keeps a failure's head and tail) still shows where each node stands.
            let mut why = String::new();
            let tail = nemesis_log.lines.len().saturating_sub(15);
            why.push_str("\nthe nemesis' last actions:");
            for l in &nemesis_log.lines[tail..] {
                why.push_str(&format!("\n  {l}"));
            }
            for &id in &cluster.ids {
                let st = cluster.status(id).await;
                let st = st.map_or("no answer".to_owned(), |v| {
                    format!(
                        "{} at term {}, leader {} commit {} applied {}",
                        v["state"], v["term"], v["leader"], v["commit_index"], v["applied_index"]
                    )
                });
                let proc = cluster.process_state(id);
                why.push_str(&format!("\nnode {id} ({proc}): {st}"));
            }
            return Err(e.context(format!(
                "the cluster did not recover after the faults were healed:{why}"
            )));
        }
    };
    clients.stop();
    if let Some(f) = &fleet {
        f.stop();
    }
    let _ = workers.await;
    if let Some(mut t) = fleet_task {
        // Workers may be mid-drain: give them a moment, then stop waiting.
        if tokio::time::timeout(Duration::from_secs(15), &mut t)
            .await
            .is_err()
        {
            t.abort();
        }
    }
    let leader = cluster
        .wait_converged(Duration::from_secs(60))
        .await
        .unwrap_or(leader);
    clients.final_reads(leader).await;
    observing.store(false, Ordering::SeqCst);
    let _ = observer.await;

    let mut report = Report {
        seed: opts.seed,
        tls: opts.tls,
        liveness: Some(opts.liveness),
        faults: nemesis_log.counts,
        nemesis: nemesis_log.lines,
        ..Report::default()
    };
    // The final state, and the events log up to it: the scheduler may still be moving
    // replicas, so read the snapshot first, the events after it, and retry until the events
    // end at the snapshot's version.
    // The observer has stopped: the shadow is ours alone now.
    let mut sh = std::mem::take(&mut *shadow.lock().unwrap_or_else(|p| p.into_inner()));
    let mut final_state = None;
    let mut comparable = false;
    for _ in 0..20 {
        let Some(s) = snapshot(&cluster.http, leader).await else {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        fetch_events(&cluster.http, leader, &mut sh).await;
        sh.seen(elapsed_ns(start));
        let caught_up = sh.last_version() <= s.version;
        final_state = Some(s);
        if caught_up {
            comparable = true;
            break;
        }
    }
    sh.finish();
    {
        let (count, violations) = &mut *snapshots.lock().unwrap_or_else(|p| p.into_inner());
        match &final_state {
            Some(s) => {
                *count += 1;
                violations.extend(invariants::check_state(s));
                report
                    .dead_worker_replicas
                    .extend(invariants::dead_replicas(s));
                if comparable {
                    sh.compare(s);
                }
            }
            None => report
                .anomalies
                .push("could not read the final snapshot".into()),
        }
        report.invariant_violations = sh.violations.clone();
        report
            .invariant_violations
            .extend(violations.iter().cloned());
        report
            .dead_worker_replicas
            .splice(0..0, sh.dead_replicas.iter().cloned());
        report.events_checked = sh.events;
        report.versions_checked = sh.versions_checked;
        report.event_gaps = sh.gaps;
        report.snapshots_checked = *count;
    }

    // The agents last: every line they wrote, checked against the deaths.
    let procs = fleet.as_ref().map(|f| f.finish()).unwrap_or_default();
    if let Some(f) = &fleet {
        report.fleet = f.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
    }
    let found = leases::check(&procs, &sh.deaths);
    report.deaths = sh.deaths.len() as u64;
    report.brake_trips = sh.brake_trips;
    report.maintenances = sh.maintenances;
    report.deaths_checked = found.deaths_checked;
    report.deaths_after_leases = found.deaths_after_leases;
    report.lease_violations = found.lease_violations;
    report.double_leases = found.double_leases;
    report.process_pairs = found.process_pairs;

    let mut history =
        std::mem::take(&mut *clients.history.lock().unwrap_or_else(|p| p.into_inner()));
    add_deaths(&mut history, &sh.deaths, start_wall_ms, elapsed_ns(start));
    write_histories(&dir.join("history"), &history, &report.nemesis)?;
    write_agents(&dir.join("history"), &procs, &sh.deaths)?;
    check_sets(cluster, leader, &history, &mut report).await;
    check_divergence(cluster, leader, &mut report).await;
    let budget = opts.check_budget;
    let report = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        check_histories(&history, budget, &mut report);
        report.check_seconds = t.elapsed().as_secs_f64();
        report
    })
    .await?;
    Ok(report)
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The deaths of the clients' workers, as operations of their histories: each took effect at
/// the version its event gives, after its proposer stamped it (a second of slack before that,
/// for the wall clock against the monotonic one) and before the harness read it. Each has a
/// log entry of its own, so its version is owned.
///
/// The stamp is wall-clock time and the rest of the history monotonic: when the wall clock
/// jumps ahead of the monotonic one (a whole machine paused and resumed — CI saw a 27 s jump),
/// a stamp can map to after the harness read the event. The death still happened before it
/// was read, so it is invoked no later than that.
fn add_deaths(h: &mut History, deaths: &[invariants::Death], start_wall_ms: u64, end: u64) {
    for d in deaths {
        let Some(ops) = h.workers.get_mut(&d.worker) else {
            continue;
        };
        let at = d
            .at_ms
            .saturating_sub(start_wall_ms)
            .saturating_mul(1_000_000);
        let seen = d.seen_ns.unwrap_or(end);
        ops.push(Timed {
            op: WorkerOp::Dead {
                generation: d.generation,
                version: d.version,
            },
            invoke: at.saturating_sub(1_000_000_000).min(seen),
            complete: Some(seen),
            who: format!("death (event {})", d.seq),
        });
        h.owned.insert(d.version);
        h.worker_owned.insert(d.version);
    }
}

/// Every agent process's lines, one file per worker, and the deaths, for whoever reads a
/// report.
fn write_agents(
    dir: &std::path::Path,
    procs: &[fleet::ProcRecord],
    deaths: &[invariants::Death],
) -> Result<()> {
    use std::fmt::Write as _;
    std::fs::create_dir_all(dir)?;
    let mut by_worker: BTreeMap<&str, String> = BTreeMap::new();
    for p in procs {
        let text = by_worker.entry(p.worker.as_str()).or_default();
        let _ = writeln!(
            text,
            "# process {} pid {} uid {} started {} ms, killed {:?}",
            p.serial, p.pid, p.uid, p.started_ms, p.killed_ms
        );
        for l in &p.lines {
            let _ = writeln!(text, "{}", serde_json::to_string(l).unwrap_or_default());
        }
    }
    for (w, text) in by_worker {
        std::fs::write(dir.join(format!("agent-{w}.txt")), text)?;
    }
    let mut text = String::new();
    for d in deaths {
        let _ = writeln!(text, "{}", serde_json::to_string(d).unwrap_or_default());
    }
    std::fs::write(dir.join("deaths.txt"), text)?;
    Ok(())
}

/// Writes every key's history, one operation a line in completion order, and the nemesis'
/// log, for whoever reads a report.
/// One key's or worker's history as text: a line per operation, with its index, invocation and
/// completion times in seconds ("unknown" when it never completed), client and operation.
fn history_text<Op: std::fmt::Debug>(ops: &[Timed<Op>]) -> String {
    let secs = |t: u64| t as f64 / 1e9;
    let mut text = String::new();
    for (i, o) in ops.iter().enumerate() {
        let end = o
            .complete
            .map_or("unknown".to_owned(), |c| format!("{:.3}", secs(c)));
        text.push_str(&format!(
            "{i:5} {:9.3} {end:>9} {:<24} {:?}\n",
            secs(o.invoke),
            o.who,
            o.op
        ));
    }
    text
}

fn write_histories(dir: &std::path::Path, h: &History, nemesis: &[String]) -> Result<()> {
    use std::fmt::Write as _;
    std::fs::create_dir_all(dir)?;
    for (key, ops) in &h.kv {
        let name = format!("kv-{}.txt", key.replace('/', "_"));
        std::fs::write(dir.join(name), history_text(ops))?;
    }
    for (w, ops) in &h.workers {
        std::fs::write(dir.join(format!("worker-{w}.txt")), history_text(ops))?;
    }
    let mut values = String::new();
    let mut ids: Vec<(&String, &u32)> = h.values().collect();
    ids.sort_by_key(|(_, id)| **id);
    for (v, id) in ids {
        let _ = writeln!(values, "{id} {v}");
    }
    std::fs::write(dir.join("values.txt"), values)?;
    let mut sets = String::new();
    for s in &h.sets {
        let _ = writeln!(sets, "{} {:?} {}", s.key, s.acked, s.how);
    }
    std::fs::write(dir.join("sets.txt"), sets)?;
    std::fs::write(dir.join("failed-writes.txt"), h.failed_writes.join("\n"))?;
    std::fs::write(dir.join("nemesis.txt"), nemesis.join("\n"))?;
    Ok(())
}

/// Tails the events log into the shadow, and checks a snapshot every few seconds, until told
/// to stop.
async fn observe(
    http: cluster::Http,
    ids: Vec<u64>,
    start: Instant,
    shadow: Arc<Mutex<Shadow>>,
    snapshots: Arc<Mutex<(u64, Vec<String>)>>,
    running: Arc<AtomicBool>,
) {
    let mut round = 0usize;
    while running.load(Ordering::SeqCst) {
        round += 1;
        let node = ids[round % ids.len()];
        let mut sh = std::mem::take(&mut *shadow.lock().unwrap_or_else(|p| p.into_inner()));
        fetch_events(&http, node, &mut sh).await;
        sh.seen(elapsed_ns(start));
        *shadow.lock().unwrap_or_else(|p| p.into_inner()) = sh;
        if round.is_multiple_of(5)
            && let Some(s) = snapshot(&http, node).await
        {
            let found = invariants::check_state(&s);
            let mut g = snapshots.lock().unwrap_or_else(|p| p.into_inner());
            g.0 += 1;
            g.1.extend(found);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reads every event after the shadow's last one through `node`, feeding the shadow. Gives up
/// quietly when the node cannot answer (the next round asks another).
async fn fetch_events(http: &cluster::Http, node: u64, sh: &mut Shadow) {
    for _ in 0..1_000 {
        let url = http.url(
            node,
            &format!("/v1/events?after={}&limit=1000", sh.next_after()),
        );
        let Ok(resp) = http.get(url).timeout(Duration::from_secs(3)).send().await else {
            return;
        };
        let status = resp.status().as_u16();
        let Ok(v) = resp.json::<Value>().await else {
            return;
        };
        if status == 410 {
            // "... the oldest kept is N"
            let first = v["error"]["message"]
                .as_str()
                .and_then(|m| m.rsplit(' ').next())
                .and_then(|n| n.parse().ok());
            match first {
                Some(f) => sh.skip_to(f),
                None => return,
            }
            continue;
        }
        if status != 200 {
            return;
        }
        let events: Vec<drover_types::Event> =
            serde_json::from_value(v["events"].clone()).unwrap_or_default();
        sh.feed(&events);
        if v["more"] != true {
            return;
        }
    }
}

async fn snapshot(http: &cluster::Http, node: u64) -> Option<drover_types::ClusterState> {
    let resp = http
        .get(http.url(node, "/v1/snapshot"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let bytes = resp.bytes().await.ok()?;
    drover_types::codec::decode(&bytes).ok()
}

/// Every key under `prefix` through `node`: key → (value, version).
async fn list_kv(
    http: &cluster::Http,
    node: u64,
    prefix: &str,
    stale: bool,
) -> Option<BTreeMap<String, (String, u64)>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = http.url(
            node,
            &format!("/v1/kv?prefix={prefix}&limit=1000&stale={stale}"),
        );
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let v: Value = http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .json()
            .await
            .ok()?;
        for item in v["items"].as_array()? {
            out.insert(
                item["key"].as_str()?.to_owned(),
                (
                    item["value"].as_str()?.to_owned(),
                    item["version"].as_u64()?,
                ),
            );
        }
        if v["more"] != true {
            return Some(out);
        }
        cursor = Some(v["next_cursor"].as_str()?.to_owned());
    }
}

/// [`list_kv`], tried a few times before giving up (at the end, once the cluster has converged,
/// a failure is a slow moment, not an answer).
async fn list_kv_retrying(
    http: &cluster::Http,
    node: u64,
    prefix: &str,
    stale: bool,
) -> Option<BTreeMap<String, (String, u64)>> {
    for _ in 0..5 {
        if let Some(found) = list_kv(http, node, prefix, stale).await {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// Acknowledged creates must be there with their values; failed ones must not; nothing else.
async fn check_sets(cluster: &Cluster, leader: u64, h: &History, report: &mut Report) {
    let Some(present) = list_kv_retrying(&cluster.http, leader, "set/", false).await else {
        report
            .anomalies
            .push("could not list the set keys at the end".into());
        return;
    };
    let mut attempted = BTreeSet::new();
    for s in &h.sets {
        attempted.insert(s.key.as_str());
        let there = present.get(&s.key);
        match (s.acked, there) {
            (Some(true), None) => report.lost_writes.push(format!(
                "acknowledged create of {} is missing ({})",
                s.key, s.how
            )),
            (Some(true), Some((v, _))) if *v != s.value => report.lost_writes.push(format!(
                "acknowledged create of {} = {:?} reads {v:?} ({})",
                s.key, s.value, s.how
            )),
            (Some(false), Some((_, version))) => report.phantom_writes.push(format!(
                "create of {} failed for certain, yet it is there at version {version} ({})",
                s.key, s.how
            )),
            _ => {}
        }
    }
    for k in present.keys() {
        if !attempted.contains(k.as_str()) {
            report
                .phantom_writes
                .push(format!("{k} is there but no client wrote it"));
        }
    }
}

/// Once converged, every node's local copy of the keys must be the leader's.
async fn check_divergence(cluster: &Cluster, leader: u64, report: &mut Report) {
    for prefix in ["reg/", "set/"] {
        let Some(want) = list_kv_retrying(&cluster.http, leader, prefix, false).await else {
            continue;
        };
        for &id in &cluster.ids {
            match list_kv_retrying(&cluster.http, id, prefix, true).await {
                Some(got) if got == want => {}
                Some(got) => {
                    let differ = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).count()
                        + got.keys().filter(|k| !want.contains_key(*k)).count();
                    report.divergence.push(format!(
                        "node {id}'s {prefix} keys differ from the leader's in {differ} places"
                    ));
                }
                None => report
                    .anomalies
                    .push(format!("node {id} could not list {prefix} at the end")),
            }
        }
    }
}

/// Linearizability of every key and worker, and acknowledged changes not overwritten.
fn check_histories(h: &History, budget: u64, report: &mut Report) {
    report.operations = h.total();
    report.operation_counts = h.counts.clone();
    report.anomalies.extend(h.anomalies.iter().cloned());
    let owned = Arc::new(h.owned.clone());
    for (key, ops) in &h.kv {
        report.keys_checked += 1;
        // An unknown write to this key cannot have the version of an acknowledged write to it,
        // nor of a worker change (never batched); it may share one with another key's write.
        let mut key_owned = h.worker_owned.clone();
        key_owned.extend(h.kv_owned.get(key).into_iter().flatten());
        let kv = KvModel {
            owned: Arc::new(key_owned),
        };
        let mut ops = ops.clone();
        report.unknown_pruned += model::prune_unobserved_kv(&mut ops) as u64;
        let ops = &ops;
        check_one(key, &kv, ops, budget, report);
        lost_changes(
            key,
            ops.iter().map(|o| kv_change(&o.op)),
            h.final_reads.get(key).copied().flatten(),
            report,
        );
    }
    let wm = WorkerModel { owned };
    for (w, ops) in &h.workers {
        report.keys_checked += 1;
        check_one(&format!("worker {w}"), &wm, ops, budget, report);
        lost_changes(
            w,
            ops.iter().map(|o| worker_change(&o.op)),
            h.final_reads.get(w).copied().flatten(),
            report,
        );
    }
}

/// Checks one key's or worker's history and reports what the search found under `name`. The
/// budget grows with the history (at least 200 steps per operation).
fn check_one<M: Model>(
    name: &str,
    model: &M,
    ops: &[Timed<M::Op>],
    budget: u64,
    report: &mut Report,
) where
    M::Op: std::fmt::Debug,
{
    let budget = budget.max(200 * ops.len() as u64);
    match check(model, ops, budget) {
        Verdict::Linearizable => {}
        Verdict::Violation { stuck, placed } => {
            report.linearizability_violations.push(format!(
                "{name}: no linearization of its {} operations; stuck at {:?} \
                 (invoked {:.3}s, completed {:?}) after placing {placed}",
                ops.len(),
                ops[stuck].op,
                ops[stuck].invoke as f64 / 1e9,
                ops[stuck].complete.map(|c| c as f64 / 1e9),
            ));
        }
        Verdict::Inconclusive { steps } => report
            .inconclusive
            .push(format!("{name}: gave up after {steps} steps")),
    }
}

/// An acknowledged change at a version.
fn kv_change(op: &KvOp) -> Option<u64> {
    match op {
        KvOp::Write {
            result: WriteResult::Ok(Some(v)),
            ..
        }
        | KvOp::Delete {
            result: WriteResult::Ok(Some(v)),
            ..
        } => Some(*v),
        _ => None,
    }
}

/// A client's acknowledged change to a worker. Not a death: the leader declares a client's
/// worker dead whenever it has been Active for `dead_after`, also after the final read, so the
/// final read need not show it (when the harness had read the death before the final read, the
/// linearizability check holds the read to it).
fn worker_change(op: &WorkerOp) -> Option<u64> {
    match op {
        WorkerOp::Register {
            result: Some(r), ..
        }
        | WorkerOp::SetState { result: Ok(r), .. } => r.version,
        _ => None,
    }
}

/// The final read (after every client stopped) must be at or above every acknowledged change:
/// a later change can only raise the version. An absent key or worker is skipped (its last
/// change was a deletion, whose version it no longer shows).
fn lost_changes(
    key: &str,
    acked: impl Iterator<Item = Option<u64>>,
    final_version: Option<u64>,
    report: &mut Report,
) {
    let Some(final_version) = final_version else {
        return;
    };
    for v in acked.flatten().filter(|v| *v > final_version) {
        report.lost_writes.push(format!(
            "{key}: a change acknowledged at version {v} is gone (the final read is at version {final_version})"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_death_stamped_after_the_harness_read_it_is_invoked_no_later_than_that() {
        let mut h = History::default();
        h.workers.insert("w".into(), Vec::new());
        let death = |at_ms, seen_s: u64| invariants::Death {
            worker: "w".into(),
            generation: 1,
            at_ms,
            seq: 1,
            version: 5,
            seen_ns: Some(seen_s * 1_000_000_000),
        };
        // Run started at wall 1,000 ms. One death stamped at 10 s, read at 11 s; one stamped
        // at 40 s by a wall clock that jumped 30 s ahead, read at 12 s.
        add_deaths(
            &mut h,
            &[death(11_000, 11), death(41_000, 12)],
            1_000,
            60_000_000_000,
        );
        let times: Vec<(u64, Option<u64>)> = h.workers["w"]
            .iter()
            .map(|t| (t.invoke, t.complete))
            .collect();
        assert_eq!(
            times,
            [
                (9_000_000_000, Some(11_000_000_000)),
                (12_000_000_000, Some(12_000_000_000))
            ]
        );
    }
}
