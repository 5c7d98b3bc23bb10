//! Drover's fault-injection and correctness harness (issue 9, SPEC §6), in the manner of
//! Jepsen and etcd's robustness tests.
//!
//! [`run`] creates a network namespace ([`netns`]), starts three `drover` nodes in it
//! ([`cluster`]), and runs concurrent clients ([`workload`]) while a nemesis ([`nemesis`])
//! partitions, kills, pauses and delays the nodes. Afterwards it heals everything, reads the
//! final state, and checks:
//! - every KV key's and every worker's history for linearizability ([`linearizability`],
//!   against the models in [`model`]), operations with unknown outcomes included;
//! - that every acknowledged write is present at the end, and nothing that certainly failed is;
//! - the SPEC §6 invariants at every committed state version, by replaying the events log, and
//!   on snapshots taken during the run ([`invariants`]);
//! - that every node's copy of the data is the same once the cluster has converged.
//!
//! The seed fixes the fault schedule and every client's choices; timing is real, so a replay
//! runs the same schedule, not the same interleaving.
//!
//! Errors are `anyhow`: this crate is test tooling, whose errors are reported to a person and
//! never matched on (STYLE.md's typed errors are for the libraries Drover ships).

pub mod cluster;
pub mod fleet;
pub mod invariants;
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
use crate::netns::Netns;
use crate::workload::{Clients, History};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `drover` binary.
    pub drover: PathBuf,
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
    /// Search steps the linearizability checker may spend on one key.
    pub check_budget: u64,
    /// Run a fleet of agents with a partition table, drains and recommissions, so replica
    /// moves happen under the faults ([`fleet`]).
    pub fleet: bool,
    /// Print the nemesis' actions as they happen.
    pub verbose: bool,
}

impl Options {
    pub fn new(drover: PathBuf, seed: u64, duration: Duration) -> Options {
        Options {
            drover,
            seed,
            duration,
            faults: Fault::ALL.to_vec(),
            clients: 6,
            hold_ms: (2_000, 5_000),
            unsafe_local_reads: false,
            unsafe_early_ack: false,
            check_budget: 20_000_000,
            fleet: true,
            verbose: false,
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
    pub unsafe_switches: Vec<String>,
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
    }

    /// The human summary: counts, then the first few of each kind of problem.
    pub fn summary(&self) -> String {
        let c = &self.operation_counts;
        let mut s = format!(
            "seed {} ({:.0}s{})\n\
             operations: {} ({} ok, {} failed, {} unknown)\n\
             faults injected: {}\n\
             linearizability violations: {} (keys checked {}, inconclusive {}, {:.1}s)\n\
             lost acknowledged writes: {}\n\
             phantom writes: {}\n\
             invariant violations: {} ({} events, {} state versions, {} snapshots checked; {} events lost to retention)\n\
             divergent replicas: {}\n\
             anomalous answers: {}\n\
             fleet: {} agent starts, {} acknowledgements, {} drains ({} to disabled, {} cancelled)\n",
            self.seed,
            self.duration_s,
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
            self.fleet.agent_starts,
            self.fleet.acks,
            self.fleet.drains_started,
            self.fleet.drains_completed,
            self.fleet.drains_cancelled,
        );
        for (what, list) in [
            ("linearizability", &self.linearizability_violations),
            ("inconclusive", &self.inconclusive),
            ("lost", &self.lost_writes),
            ("phantom", &self.phantom_writes),
            ("invariant", &self.invariant_violations),
            ("divergence", &self.divergence),
            ("anomaly", &self.anomalies),
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
    let mut extra = Vec::new();
    let mut switches = Vec::new();
    if opts.unsafe_local_reads {
        extra.extend(["--unsafe-test-local-reads".to_owned(), "true".to_owned()]);
        switches.push("local-reads".to_owned());
    }
    if opts.unsafe_early_ack {
        extra.extend(["--unsafe-test-early-ack".to_owned(), "true".to_owned()]);
        switches.push("early-ack".to_owned());
    }
    let mut cluster = Cluster::new(netns, &opts.drover, dir, &extra)?;
    for id in cluster.ids.clone() {
        cluster.spawn(id)?;
    }
    let result = exercise(opts, &mut cluster, start, dir).await;
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
    start: Instant,
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
        shadow.clone(),
        snapshots.clone(),
        observing.clone(),
    ));
    let endpoints: Vec<String> = cluster
        .ids
        .iter()
        .map(|i| node_addr(*i).to_string())
        .collect();
    let fleet = fleet::Fleet::new(endpoints);
    let fleet_task = opts
        .fleet
        .then(|| tokio::spawn(fleet.clone().run(opts.seed)));
    let workers = {
        let c = clients.clone();
        let (n, seed) = (opts.clients, opts.seed);
        tokio::spawn(async move { c.run(n, seed).await })
    };

    let mut nemesis = nemesis::Nemesis {
        cluster,
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        kinds: opts.faults.clone(),
        start,
        hold: opts.hold_ms,
        log: nemesis::Log::default(),
        verbose: opts.verbose,
    };
    let until = start + opts.duration;
    let fault_result = if opts.faults.is_empty() {
        tokio::time::sleep_until(until.into()).await;
        Ok(())
    } else {
        nemesis.run(until).await
    };
    nemesis.heal_everything().await?;
    fault_result?;
    let nemesis_log = std::mem::take(&mut nemesis.log);
    // Keep the clients going while the cluster recovers, then stop them.
    let leader = cluster
        .wait_converged(Duration::from_secs(60))
        .await
        .context("the cluster did not recover after the faults were healed")?;
    clients.stop();
    fleet.stop();
    let _ = workers.await;
    if let Some(mut t) = fleet_task {
        // Agents may be mid-drain: give them a moment, then drop them.
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
        faults: nemesis_log.counts,
        fleet: fleet
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
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
        report.events_checked = sh.events;
        report.versions_checked = sh.versions_checked;
        report.event_gaps = sh.gaps;
        report.snapshots_checked = *count;
    }

    let history = std::mem::take(&mut *clients.history.lock().unwrap_or_else(|p| p.into_inner()));
    write_histories(&dir.join("history"), &history, &report.nemesis)?;
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
    http: reqwest::Client,
    ids: Vec<u64>,
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
async fn fetch_events(http: &reqwest::Client, node: u64, sh: &mut Shadow) {
    for _ in 0..1_000 {
        let url = format!(
            "http://{}/v1/events?after={}&limit=1000",
            node_addr(node),
            sh.next_after()
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

async fn snapshot(http: &reqwest::Client, node: u64) -> Option<drover_types::ClusterState> {
    let resp = http
        .get(format!("http://{}/v1/snapshot", node_addr(node)))
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
    http: &reqwest::Client,
    node: u64,
    prefix: &str,
    stale: bool,
) -> Option<BTreeMap<String, (String, u64)>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!(
            "http://{}/v1/kv?prefix={prefix}&limit=1000&stale={stale}",
            node_addr(node)
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
    http: &reqwest::Client,
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
