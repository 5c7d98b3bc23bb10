//! The fleet benchmark: a local three-node cluster and N simulated workers in this one process,
//! each a real `drover-agent` (register, ready, heartbeat at the cluster's interval, long-poll
//! its assignments, acknowledge every join and release after `--catch-up`), 250 of them to a
//! pair of connection pools. It runs the phases a fleet's control plane lives through and reports
//! each: register, create a table and wait until every replica is placed and acknowledged,
//! steady state, drain a set of workers, SIGKILL the leader and restart it, recommission.
//!
//!     drover-bench fleet --agents 1000 --partitions 3000 --steady 30s --drain 50
//!
//! Per phase: its duration, heartbeat and acknowledgement latency (p50/p99/p999), errors by
//! code, the nodes' CPU seconds and peak RSS (from /proc), and Raft entries per second; the
//! whole run as one JSON line with `--json`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use drover_agent::{Agent, AgentConfig, Clients, Observer};
use drover_client::{Client, ClientOptions, DrainOptions};
use drover_types::{ReplicaRole, SettingsPatch, WorkerState};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::local::{Local, LocalArgs};

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Simulated workers.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Zones the workers are spread over.
    #[arg(long, default_value_t = 3)]
    zones: usize,
    /// Partitions of the table created after registration (0: no table, no place phase).
    #[arg(long, default_value_t = 3000)]
    partitions: u32,
    #[arg(long, default_value_t = 3)]
    replication_factor: u8,
    /// How long a simulated worker takes to catch a joining replica up, or hand a leaving one
    /// off, before it acknowledges.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    catch_up: Duration,
    /// How long the steady state is measured.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    steady: Duration,
    /// Workers drained as one set (0: skip the drain and the recommission).
    #[arg(long, default_value_t = 50)]
    drain: usize,
    /// Moves in flight per worker during the drain (the `max_moves_per_worker` setting).
    #[arg(long, default_value_t = 4)]
    moves_per_worker: u32,
    /// Moves in flight in all (the `max_moves_total` setting).
    #[arg(long, default_value_t = 1024)]
    moves_total: u32,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The agents speak HTTP/2 to the nodes (`ClientOptions::http2`) instead of drover-agent's
    /// HTTP/1.1, ten agents to a connection (to compare; docs/benchmarks.md).
    #[arg(long)]
    http2: bool,
    /// Longest any phase may take.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    phase_timeout: Duration,
    #[command(flatten)]
    local: LocalArgs,
}

/// Simulated agents per pair of connection pools over HTTP/1.1 (a connection per request in
/// flight): 250 registered 10,000 agents in 17 s, 10 in 67 s.
const AGENTS_PER_POOL: usize = 250;

/// The same with `--http2`: a pool's requests to a node share one connection, on which a node
/// serves at most 200 streams at once (hyper's default); ten agents' long polls, heartbeats and
/// a placement's worth of acknowledgements stay inside it, where 250 agents' long polls alone
/// held every stream and the rest waited.
const AGENTS_PER_H2_POOL: usize = 10;

/// The loopback address pool `i`'s agents connect from: 127.254.0.1, 127.254.0.2, ... (apart
/// from any address `Local` gives the nodes, which stay below 127.254).
fn pool_address(i: usize) -> std::net::IpAddr {
    let [_, _, hi, lo] = u32::try_from(i + 1).unwrap_or(u32::MAX).to_be_bytes();
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 254, hi, lo))
}

/// Latencies and errors, shared by every simulated agent and reset at each phase.
#[derive(Debug, Default)]
struct Stats {
    inner: Mutex<Window>,
    /// Join acknowledgements the cluster applied, over the whole run.
    joins_acked: AtomicU64,
}

#[derive(Debug)]
struct Window {
    heartbeats: Histogram<u64>,
    acks: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Default for Window {
    fn default() -> Self {
        let h = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
        Window {
            heartbeats: h(),
            acks: h(),
            errors: BTreeMap::new(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn error_code(e: &drover_client::Error) -> String {
    match e.code() {
        Some(code) => format!("{code:?}"),
        None => match e.status() {
            Some(status) => status.to_string(),
            None => "transport".into(),
        },
    }
}

impl Stats {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Window {
        std::mem::take(&mut *self.window())
    }

    fn start_failed(&self, e: &drover_agent::Error) {
        let code = match e {
            drover_agent::Error::Client(c) => error_code(c),
            other => other.to_string(),
        };
        *self
            .window()
            .errors
            .entry(format!("register {code}"))
            .or_default() += 1;
    }

    fn ack(&self, took: Duration, error: Option<&drover_client::Error>) {
        let mut w = self.window();
        let _ = w.acks.record(micros(took));
        if let Some(e) = error {
            *w.errors
                .entry(format!("ack {}", error_code(e)))
                .or_default() += 1;
        }
    }
}

impl Observer for Stats {
    fn heartbeat(&self, took: Duration, error: Option<&drover_client::Error>) {
        let mut w = self.window();
        let _ = w.heartbeats.record(micros(took));
        if let Some(e) = error {
            *w.errors
                .entry(format!("heartbeat {}", error_code(e)))
                .or_default() += 1;
        }
    }
}

/// Latency quantiles in milliseconds.
#[derive(Debug, Serialize)]
struct Latency {
    count: u64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// What the nodes' processes used, from /proc: CPU ticks by process id (a restarted node is
/// a new process, counted from its start).
#[derive(Clone, Debug, Default)]
struct Usage {
    cpu_ticks: BTreeMap<u32, u64>,
}

impl Usage {
    /// Ticks used since `before`, by every process seen now.
    fn since(&self, before: &Usage) -> u64 {
        self.cpu_ticks
            .iter()
            .map(|(pid, t)| t.saturating_sub(before.cpu_ticks.get(pid).copied().unwrap_or(0)))
            .sum()
    }
}

/// CPU ticks (user + system) of process `pid`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

fn usage(local: &Local) -> Usage {
    Usage {
        cpu_ticks: local
            .nodes
            .iter()
            .filter_map(|n| {
                let pid = n.pid()?;
                Some((pid, cpu_ticks(pid)?))
            })
            .collect(),
    }
}

/// One phase's report.
#[derive(Debug, Serialize)]
struct Phase {
    name: &'static str,
    seconds: f64,
    heartbeats: Latency,
    acks: Latency,
    errors: BTreeMap<String, u64>,
    /// The three nodes' CPU time in the phase, and that over its duration (cores in use).
    node_cpu_seconds: f64,
    node_cores: f64,
    /// The largest resident set of a node at the phase's end.
    node_rss_max_mib: f64,
    raft_entries_per_sec: f64,
    /// What the phase checked, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    agents: usize,
    zones: usize,
    partitions: u32,
    replication_factor: u8,
    catch_up_ms: u64,
    phases: Vec<Phase>,
}

/// Measures one phase: what the nodes used and the log grew by between `begin` and `end`.
struct Meter {
    started: Instant,
    usage: Usage,
    log_index: u64,
}

impl Meter {
    async fn begin(local: &Local, admin: &Client, stats: &Stats) -> Meter {
        stats.take();
        Meter {
            started: Instant::now(),
            usage: usage(local),
            log_index: last_log_index(admin).await,
        }
    }

    async fn end(
        self,
        name: &'static str,
        local: &Local,
        admin: &Client,
        stats: &Stats,
        note: Option<String>,
    ) -> Phase {
        let seconds = self.started.elapsed().as_secs_f64();
        let window = stats.take();
        let cpu = usage(local).since(&self.usage) as f64 / ticks_per_second();
        let entries = last_log_index(admin).await.saturating_sub(self.log_index);
        Phase {
            name,
            seconds,
            heartbeats: Latency::of(&window.heartbeats),
            acks: Latency::of(&window.acks),
            errors: window.errors,
            node_cpu_seconds: cpu,
            node_cores: cpu / seconds.max(1e-9),
            node_rss_max_mib: local
                .nodes
                .iter()
                .filter_map(|n| n.pid().and_then(rss_mib))
                .fold(0.0, f64::max),
            raft_entries_per_sec: entries as f64 / seconds.max(1e-9),
            note,
        }
    }
}

async fn last_log_index(admin: &Client) -> u64 {
    admin.cluster().await.map_or(0, |s| s.last_log_index)
}

/// Waits until `done` answers, checking every `every`, for at most `limit`.
async fn until<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut done: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = done().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {limit:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Starts one simulated worker: a real agent whose tasks are acknowledged after `catch_up`.
async fn start_worker(
    cfg: AgentConfig,
    catch_up: Duration,
    stats: Arc<Stats>,
) -> anyhow::Result<Agent> {
    // A worker process that cannot register (no leader for a while: an election under load)
    // is started again, as a supervisor would.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut agent = loop {
        match Agent::start(cfg.clone()).await {
            Ok(a) => break a,
            Err(e) if Instant::now() < deadline => {
                stats.start_failed(&e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut tasks = agent.take_tasks().context("tasks")?;
    let handle = agent.handle();
    let acks = stats.clone();
    tokio::spawn(async move {
        let stats = acks;
        while let Some(task) = tasks.recv().await {
            let (handle, stats) = (handle.clone(), stats.clone());
            tokio::spawn(async move {
                if !catch_up.is_zero() {
                    tokio::time::sleep(catch_up).await;
                }
                loop {
                    let sent = Instant::now();
                    match handle.ack(&task).await {
                        Ok(()) => {
                            stats.ack(sent.elapsed(), None);
                            if task.role == ReplicaRole::Joining {
                                stats.joins_acked.fetch_add(1, Ordering::Relaxed);
                            }
                            return;
                        }
                        Err(drover_agent::Error::Client(e)) => {
                            stats.ack(sent.elapsed(), Some(&e));
                            if e.status().is_some() {
                                return; // superseded (stale epoch) or refused: the long poll has the rest
                            }
                        }
                        Err(_) => return, // the agent ended
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    while let Err(e) = agent.ready().await {
        if Instant::now() >= deadline {
            return Err(e.into());
        }
        stats.start_failed(&e);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(agent)
}

pub async fn run(args: FleetArgs) -> anyhow::Result<()> {
    raise_fd_limit();
    let mut local = Local::start(args.local.drover.clone(), &args.local.node_args)?;
    if args.local.keep {
        local.keep();
    }
    let status_http = drover_tls::http_client(None)
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    local.settled_leader(&status_http).await?;
    let endpoints = local.addrs();
    let admin = Client::with_options(
        &endpoints,
        None,
        ClientOptions {
            timeout: Duration::from_secs(60),
            ..ClientOptions::default()
        },
    )?;
    let stats = Arc::new(Stats::default());
    let template = AgentConfig::new(endpoints.clone(), "template", "127.0.0.1:1");
    // One pair of pools per AGENTS_PER_POOL agents: each pool starts at a random node, as
    // separate agent processes would, so the fleet's connections spread over the three nodes;
    // and each connects from its own loopback address, as from its own host. From one address,
    // the kernel searched the ephemeral ports of tens of thousands of connections to one node
    // on every connect: at 10,000 agents that search was most of this process's CPU, and
    // heartbeats timed out here, not at the nodes.
    let per_pool = if args.http2 {
        AGENTS_PER_H2_POOL
    } else {
        AGENTS_PER_POOL
    };
    let pools: Vec<Clients> = (0..args.agents.div_ceil(per_pool).max(1))
        .map(|i| {
            let options = ClientOptions {
                local_address: Some(pool_address(i)),
                http2: args.http2,
                ..ClientOptions::default()
            };
            Clients::with_options(&template, options)
        })
        .collect::<Result<_, _>>()?;
    let mut phases = Vec::new();
    let say = |p: &Phase| {
        if !args.local.json {
            drover_client::outln!(
                "{:<12} {:>8.1} s  heartbeats p50 {:.1} / p99 {:.1} / p999 {:.1} ms ({})  \
                 acks p50 {:.1} / p99 {:.1} ms ({})  nodes {:.2} cores, rss ≤ {:.0} MiB, \
                 {:.0} entries/s  errors {:?}{}",
                p.name,
                p.seconds,
                p.heartbeats.p50_ms,
                p.heartbeats.p99_ms,
                p.heartbeats.p999_ms,
                p.heartbeats.count,
                p.acks.p50_ms,
                p.acks.p99_ms,
                p.acks.count,
                p.node_cores,
                p.node_rss_max_mib,
                p.raft_entries_per_sec,
                p.errors,
                p.note
                    .as_ref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            );
        }
    };

    // Register: every agent started and Active.
    let meter = Meter::begin(&local, &admin, &stats).await;
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut starting = JoinSet::new();
    for i in 0..args.agents {
        let mut cfg = template.clone();
        cfg.worker_id = format!("f{i:05}");
        cfg.address = format!("10.{}.{}.{}:9000", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        cfg.zone = Some(format!("z{}", i % args.zones.max(1)));
        cfg.clients = Some(pools[i / per_pool].clone());
        cfg.observer = Some(stats.clone());
        let (gate, stats, catch_up) = (gate.clone(), stats.clone(), args.catch_up);
        starting.spawn(async move {
            let _slot = gate.acquire_owned().await?;
            start_worker(cfg, catch_up, stats).await
        });
    }
    let mut agents = Vec::with_capacity(args.agents);
    while let Some(started) = starting.join_next().await {
        agents.push(started??);
    }
    let p = meter.end("register", &local, &admin, &stats, None).await;
    say(&p);
    phases.push(p);

    // Place: a new table, until every replica is placed and acknowledged (none: skipped, to
    // measure a fleet with nothing placed). A placement that does not finish still reports
    // what it measured, and how far it got.
    if args.partitions > 0 {
        let meter = Meter::begin(&local, &admin, &stats).await;
        admin
            .create_table(args.partitions, args.replication_factor)
            .await?;
        let want = u64::from(args.partitions) * u64::from(args.replication_factor);
        let placed = async {
            until(
                "every replica placed and acknowledged",
                args.phase_timeout,
                Duration::from_millis(100),
                || async { (stats.joins_acked.load(Ordering::Relaxed) >= want).then_some(()) },
            )
            .await?;
            until(
                "every partition at RF with no move in flight",
                args.phase_timeout,
                Duration::from_secs(1),
                || async { fully_placed(&admin, args.replication_factor).await },
            )
            .await
        }
        .await;
        let note = match &placed {
            Ok(note) => note.clone(),
            Err(e) => format!(
                "NOT DONE, {e}: {} of {want} joins acknowledged",
                stats.joins_acked.load(Ordering::Relaxed)
            ),
        };
        let p = meter.end("place", &local, &admin, &stats, Some(note)).await;
        say(&p);
        phases.push(p);
        placed?;
    }

    // Steady state: heartbeats only.
    let meter = Meter::begin(&local, &admin, &stats).await;
    tokio::time::sleep(args.steady).await;
    let p = meter.end("steady", &local, &admin, &stats, None).await;
    say(&p);
    phases.push(p);

    let drained: Vec<String> = (0..args.drain.min(args.agents))
        .map(|i| format!("f{i:05}"))
        .collect();
    if !drained.is_empty() {
        admin
            .set_settings(
                &SettingsPatch {
                    max_moves_per_worker: Some(args.moves_per_worker),
                    max_moves_total: Some(args.moves_total),
                    ..SettingsPatch::default()
                },
                None,
            )
            .await?;
        let meter = Meter::begin(&local, &admin, &stats).await;
        admin
            .drain_workers(&drained, DrainOptions::default())
            .await?;
        until(
            "the drained set Disabled",
            args.phase_timeout,
            Duration::from_millis(250),
            || async {
                let disabled = admin.all_workers(Some(WorkerState::Disabled)).await.ok()?;
                (disabled.len() >= drained.len()).then_some(())
            },
        )
        .await?;
        let note = format!("{} workers drained as one set", drained.len());
        let p = meter.end("drain", &local, &admin, &stats, Some(note)).await;
        say(&p);
        phases.push(p);
    }

    // Failover: SIGKILL the leader; a new one takes over; the old one restarts and catches up.
    let meter = Meter::begin(&local, &admin, &stats).await;
    let leader = local.settled_leader(&status_http).await?;
    local.node_mut(leader).kill();
    let new_leader = local.settled_leader(&status_http).await?;
    local.restart(leader)?;
    local.settled_leader(&status_http).await?;
    let dead = admin
        .all_workers(None)
        .await?
        .iter()
        .filter(|w| w.record.dead)
        .count();
    let note = format!("node {leader} killed, node {new_leader} took over; {dead} workers dead");
    let p = meter
        .end("failover", &local, &admin, &stats, Some(note))
        .await;
    say(&p);
    phases.push(p);
    if dead > 0 {
        bail!("the failover declared {dead} workers dead");
    }

    if !drained.is_empty() {
        let meter = Meter::begin(&local, &admin, &stats).await;
        for id in &drained {
            recommission(&admin, id, args.phase_timeout).await?;
        }
        until(
            "the drained set Active again",
            args.phase_timeout,
            Duration::from_millis(250),
            || async {
                let active = admin.all_workers(Some(WorkerState::Active)).await.ok()?;
                (active.len() >= args.agents).then_some(())
            },
        )
        .await?;
        let note = format!("{} workers recommissioned", drained.len());
        let p = meter
            .end("recommission", &local, &admin, &stats, Some(note))
            .await;
        say(&p);
        phases.push(p);
    }

    let report = Report {
        agents: args.agents,
        zones: args.zones,
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        catch_up_ms: u64::try_from(args.catch_up.as_millis()).unwrap_or(u64::MAX),
        phases,
    };
    if args.local.json {
        drover_client::outln!("{}", serde_json::to_string(&report)?);
    }
    drop(agents);
    Ok(())
}

/// Recommissions `id`, asking again while its agent has not registered (the ask reaches the
/// agent through a heartbeat answer, which a loaded cluster may be slow to give).
async fn recommission(admin: &Client, id: &str, limit: Duration) -> anyhow::Result<()> {
    until(
        &format!("{id} recommissioned"),
        limit,
        Duration::from_millis(200),
        || async {
            if admin.recommission(id).await.is_ok() {
                return Some(());
            }
            let w = admin.worker(id).await.ok()?;
            (w.record.state != WorkerState::Disabled).then_some(())
        },
    )
    .await
}

/// Whether every partition has `rf` serving replicas and none joining or leaving; the answer
/// says how many were checked.
async fn fully_placed(admin: &Client, rf: u8) -> Option<String> {
    let partitions = admin.all_partitions().await.ok()?;
    let placed = partitions.iter().all(|p| {
        p.replicas.len() == usize::from(rf)
            && p.replicas.iter().all(|r| r.role == ReplicaRole::Serving)
    });
    placed.then(|| format!("{} partitions at RF {rf}, all serving", partitions.len()))
}

/// Each simulated worker holds a long poll and shares pooled connections; thousands of them
/// need more descriptors than the usual soft limit of 1024.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        eprintln!("cannot raise the open-file limit from {soft} to {hard}: {e}");
    }
}
