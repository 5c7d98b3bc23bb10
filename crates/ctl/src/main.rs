//! `droverctl`: the operator CLI over Drover's admin HTTP API (SPEC §5).
//!
//! Output is an aligned table by default and JSON with `-o json`. Exit codes are stable so
//! scripts can branch on them (see `EXIT CODES` in `--help`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets};
use drover_api::{
    ClusterStatus, DrainAnswer, DrainProgress, DrainRate, KvItem, Member, MemberRole, NodeState,
    StateChanged, StateRequest, WarningCode, WorkerView,
};
use drover_client::{Client, Error, ErrorCode, outln};
use drover_types::{Event, Partition, ReplicaRole, WorkerState};
use serde::Serialize;
use serde_json::Value;

mod render;

/// How long connecting to one node may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

const EXIT_CODES: &str = "EXIT CODES:
  0  success
  1  any other error (bad answer, I/O)
  2  usage error
  3  not found (404)
  4  conflict: illegal transition, version conflict, stale generation, fenced (409)
  5  unavailable: no endpoint reachable, or no leader (503)
  6  refused: authentication (401/403), invalid request (400/413), compacted (410), a drain
     that cannot finish (drain_infeasible, or a dry run that is not feasible)
  7  outcome unknown: a write was sent and no answer came; read the state before retrying

Destructive commands (workers disable --force, workers remove, members remove) ask first when
standard input is a terminal; --yes skips the question, and declining exits 1 changing nothing.";

#[derive(Debug, Parser)]
#[command(name = "droverctl", version, about = "Operate a Drover cluster", after_help = EXIT_CODES)]
struct Cli {
    /// Drover nodes to talk to, comma separated (any node serves any request).
    #[arg(
        long,
        global = true,
        env = "DROVER_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001"
    )]
    endpoints: Vec<String>,
    /// Bearer token (admin or worker).
    #[arg(long, global = true, env = "DROVER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Output format: an aligned table, a wider one with more columns, JSON or YAML.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Per-request timeout in seconds (at least 1); failover between endpoints continues for
    /// twice that, but an endpoint list where nothing listens fails within the connect timeout.
    #[arg(long, global = true, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Do not ask before destructive commands (forced disable, removals); they ask only when
    /// standard input is a terminal.
    #[arg(short = 'y', long, global = true)]
    yes: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// An aligned table (state-changing commands print a sentence).
    Table,
    /// The table with every column.
    Wide,
    /// The API's JSON.
    Json,
    /// The API's answer as YAML.
    Yaml,
}

impl Output {
    fn human(self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cluster id, leader, term, members, indexes, state version.
    Status,
    /// Raft members, with each one's reachability, role, term, applied index and lag.
    #[command(subcommand)]
    Members(MembersCmd),
    /// Health of each endpoint, asked directly (etcdctl's `endpoint status`).
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Workers and their lifecycle.
    #[command(subcommand)]
    Workers(WorkersCmd),
    /// Drain workers as one operation (a rack, a zone); `--dry-run` shows the moves. A drain
    /// that cannot finish is refused (exit 6) unless `--allow-blocked`; so is its dry run.
    Drain {
        /// The workers to drain together.
        #[arg(required = true, value_name = "WORKER")]
        workers: Vec<String>,
        /// Only show the plan and whether it can finish; commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// Start the drain even if it cannot finish: the workers stay Draining, blocked.
        #[arg(long)]
        allow_blocked: bool,
    },
    /// The partition table.
    #[command(subcommand)]
    Partitions(PartitionsCmd),
    /// Versioned metadata values.
    #[command(subcommand)]
    Kv(KvCmd),
    /// Lifecycle events: by default the newest 20, oldest first; filters, `--follow`.
    Events(EventsArgs),
    /// Stream lifecycle events as they are committed (Ctrl-C to stop); `events --follow
    /// --tail 0`.
    Watch {
        /// Start after this sequence number (default: now).
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
    },
    /// Backups.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Replicated cluster settings: liveness timing, move throttles, limits.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Shell completions, to stdout.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// The kinds of lifecycle events, as the API names them.
const EVENT_KINDS: [&str; 12] = [
    "registered",
    "state_changed",
    "dead",
    "removed",
    "table_created",
    "replica_added",
    "replica_role",
    "replica_removed",
    "leader_changed",
    "drain_started",
    "drain_planned",
    "membership",
];

#[derive(Debug, clap::Args)]
struct EventsArgs {
    /// Events after this sequence number, oldest first, at most `--limit` (instead of the
    /// newest `--tail`).
    #[arg(long, value_name = "SEQ", conflicts_with = "tail")]
    after: Option<u64>,
    /// With `--after`: the most events to print.
    #[arg(long, default_value_t = 100, value_name = "N")]
    limit: usize,
    /// The newest N matching events (default 20).
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Then keep printing matching events as they are committed (Ctrl-C to stop).
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only events from this time on: RFC 3339 (`2026-12-02T16:00:00Z`, or with an offset) or
    /// an age (`10m`, `2h`).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only events about this worker (its transitions, its replicas, drains naming it).
    #[arg(long, value_name = "ID")]
    worker: Option<String>,
    /// Only events of these kinds (comma separated or repeated).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(EVENT_KINDS))]
    kind: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum MembersCmd {
    /// Every member, asked directly: reachable or not, role, term, applied index, lag.
    List,
    /// Add a node as a learner (promoted once caught up).
    Add {
        /// The new node's id (its `--id`).
        id: u64,
        /// Its `--listen` address, HOST:PORT.
        address: String,
    },
    /// Remove a node (refused if it would break quorum). Asks first on a terminal.
    Remove {
        /// The node's id.
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
enum EndpointCmd {
    /// Each endpoint's id, Raft role, term, indexes and lag behind the leader, asked directly;
    /// exits 5 if any is unreachable.
    Status {
        /// Ask every member of the cluster, not only the `--endpoints`.
        #[arg(long)]
        cluster: bool,
    },
}

/// A worker state, for filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StateArg {
    Provisioning,
    Active,
    Draining,
    Disabled,
}

impl From<StateArg> for WorkerState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Provisioning => WorkerState::Provisioning,
            StateArg::Active => WorkerState::Active,
            StateArg::Draining => WorkerState::Draining,
            StateArg::Disabled => WorkerState::Disabled,
        }
    }
}

#[derive(Debug, Subcommand)]
enum WorkersCmd {
    /// Every worker, in natural id order (w2 before w10).
    List {
        /// Only workers in this state.
        #[arg(long, value_enum, ignore_case = true)]
        state: Option<StateArg>,
        /// Only workers in this zone.
        #[arg(long)]
        zone: Option<String>,
    },
    /// One worker: its record, replicas, and while draining its progress and what blocks it.
    Show {
        /// The worker's id.
        id: String,
    },
    /// Provisioning → Active.
    Activate {
        /// The worker's id.
        id: String,
    },
    /// Active → Draining, with its move plan (`--dry-run`: only show the plan). Refused
    /// (exit 6) if it cannot finish, unless `--allow-blocked`.
    Drain {
        /// The worker's id.
        id: String,
        /// Only show the plan and whether it can finish; commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// Start the drain even if it cannot finish: the worker stays Draining, blocked.
        #[arg(long)]
        allow_blocked: bool,
    },
    /// Draining → Active: completed moves stay, pending ones are withdrawn.
    CancelDrain {
        /// The worker's id.
        id: String,
    },
    /// Provisioning → Disabled; `--force` also from Active/Draining, dropping its replicas
    /// (asks first on a terminal).
    Disable {
        /// The worker's id.
        id: String,
        /// Drop its replicas at once (they are re-created elsewhere); says how many
        /// partitions fell below their replication factor.
        #[arg(long)]
        force: bool,
    },
    /// Remove a Disabled worker (a tombstone keeps it fenced). Asks first on a terminal.
    Remove {
        /// The worker's id.
        id: String,
        /// The worker was declared dead: disable it first (its replicas are already gone), then
        /// remove it — the cleanup of a worker that is not coming back, in one step.
        #[arg(long)]
        dead: bool,
    },
    /// Bring a Disabled worker back: says what to do (a worker returns by registering again,
    /// SPEC §1), or why this one cannot.
    Recommission {
        /// The worker's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PartitionsCmd {
    /// Every partition: key range, RF, epoch, preferred leader, replicas.
    List,
    /// One partition.
    Show {
        /// The partition's id.
        id: u32,
    },
    /// Create the table.
    Create {
        /// Number of partitions (1–65,536).
        #[arg(long)]
        count: u32,
        /// Replicas per partition (1–7).
        #[arg(long = "replication-factor", alias = "rf")]
        replication_factor: u8,
    },
    /// Which partition owns a key, and where its serving replicas are.
    Locate {
        /// A key of the u64 key space, in decimal.
        key: u64,
    },
}

#[derive(Debug, Subcommand)]
enum KvCmd {
    /// Read a value (linearizable).
    Get {
        /// The key.
        key: String,
        /// Read the answering node's applied state instead of a linearizable read.
        #[arg(long)]
        stale: bool,
    },
    /// Write a value.
    Put {
        /// The key: 1–512 bytes of `[A-Za-z0-9/_.:-]`.
        key: String,
        /// The value, a UTF-8 string.
        value: String,
        /// Compare-and-set: 0 means create only.
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// Delete a key (404 if it is missing).
    Delete {
        /// The key.
        key: String,
        /// Compare-and-set: delete only at this version.
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// Every key under a prefix.
    List {
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

#[derive(Debug, Subcommand)]
enum SettingsCmd {
    /// The settings in force (every node answers the same).
    Get,
    /// Change settings in one Raft command, e.g. `dead-after=10s max-moves-per-worker=2`.
    /// Durations take units (`500ms`, `30s`, `1m`). Keys: heartbeat-interval, suspect-after,
    /// dead-after, join-timeout, max-moves-per-worker, max-moves-total, kv-max-value-bytes,
    /// events-retained.
    Set {
        /// The settings to change, each KEY=VALUE.
        #[arg(required = true, value_parser = parse_setting, value_name = "KEY=VALUE")]
        changes: Vec<(Setting, u64)>,
        /// Compare-and-set on the settings' version.
        #[arg(long)]
        expected_version: Option<u64>,
    },
}

/// A setting `droverctl settings set` can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setting {
    HeartbeatInterval,
    SuspectAfter,
    DeadAfter,
    JoinTimeout,
    MaxMovesPerWorker,
    MaxMovesTotal,
    KvMaxValueBytes,
    EventsRetained,
}

impl Setting {
    const ALL: [(&'static str, Setting); 8] = [
        ("heartbeat-interval", Setting::HeartbeatInterval),
        ("suspect-after", Setting::SuspectAfter),
        ("dead-after", Setting::DeadAfter),
        ("join-timeout", Setting::JoinTimeout),
        ("max-moves-per-worker", Setting::MaxMovesPerWorker),
        ("max-moves-total", Setting::MaxMovesTotal),
        ("kv-max-value-bytes", Setting::KvMaxValueBytes),
        ("events-retained", Setting::EventsRetained),
    ];

    fn is_duration(self) -> bool {
        matches!(
            self,
            Setting::HeartbeatInterval
                | Setting::SuspectAfter
                | Setting::DeadAfter
                | Setting::JoinTimeout
        )
    }

    /// Lays `value` (milliseconds for durations) over `patch`.
    fn apply(self, value: u64, patch: &mut drover_types::SettingsPatch) -> Result<(), String> {
        let small = |v: u64| u32::try_from(v).map_err(|_| format!("{v} is too large"));
        match self {
            Setting::HeartbeatInterval => patch.heartbeat_interval_ms = Some(value),
            Setting::SuspectAfter => patch.suspect_after_ms = Some(value),
            Setting::DeadAfter => patch.dead_after_ms = Some(value),
            Setting::JoinTimeout => patch.join_timeout_ms = Some(value),
            Setting::MaxMovesPerWorker => patch.max_moves_per_worker = Some(small(value)?),
            Setting::MaxMovesTotal => patch.max_moves_total = Some(small(value)?),
            Setting::KvMaxValueBytes => patch.kv_max_value_bytes = Some(small(value)?),
            Setting::EventsRetained => patch.events_retained = Some(small(value)?),
        }
        Ok(())
    }
}

/// `dead-after=10s` (or `dead_after`), `max-moves-per-worker=2`: the setting and its value,
/// durations in milliseconds.
fn parse_setting(s: &str) -> Result<(Setting, u64), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    let key = key.trim().replace('_', "-");
    let key = key.strip_suffix("-ms").unwrap_or(&key);
    let setting = Setting::ALL
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            let names: Vec<&str> = Setting::ALL.iter().map(|(n, _)| *n).collect();
            format!("unknown setting {key:?}; one of {}", names.join(", "))
        })?;
    let value = value.trim();
    let parsed = if setting.is_duration() {
        humantime::parse_duration(value)
            .map_err(|e| format!("{key}: {value:?} is not a duration like 500ms or 30s ({e})"))
            .and_then(|d| u64::try_from(d.as_millis()).map_err(|_| format!("{key}: too long")))?
    } else {
        value
            .parse()
            .map_err(|_| format!("{key}: {value:?} is not a whole number"))?
    };
    Ok((setting, parsed))
}

#[derive(Debug, Subcommand)]
enum SnapshotCmd {
    /// Save a consistent snapshot of the replicated state to FILE.
    Save {
        /// Where to write it (written beside, then renamed into place).
        file: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            if let Some(hint) = e.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.exit)
        }
    }
}

struct Failure {
    message: String,
    hint: Option<String>,
    exit: u8,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let (exit, hint) = match &e {
            Error::Api {
                code: ErrorCode::DrainInfeasible,
                ..
            } => (6, Some("--allow-blocked starts it anyway")),
            Error::Api { status, .. } => match status {
                404 => (3, None),
                409 => (4, None),
                503 => (
                    5,
                    Some("the cluster has no leader right now; retry shortly"),
                ),
                401 | 403 => (6, Some("pass an admin token with --token or DROVER_TOKEN")),
                400 | 410 | 413 => (6, None),
                _ => (1, None),
            },
            Error::Unreachable { .. } => (
                5,
                Some(
                    "check that the nodes run and that --endpoints (or DROVER_ENDPOINTS) names them",
                ),
            ),
            Error::Unknown { .. } => (7, None),
            Error::Decode { .. } | Error::Config(_) => (1, None),
        };
        Failure {
            message: e.to_string(),
            hint: hint.map(str::to_owned),
            exit,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure {
            message: e.to_string(),
            hint: None,
            exit: 1,
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Completions { shell } = cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(
            shell,
            &mut cmd,
            "droverctl",
            &mut drover_client::stdout::stdout(),
        );
        return Ok(());
    }
    let opts = drover_client::ClientOptions {
        timeout: Duration::from_secs(cli.timeout),
        retry_for: Duration::from_secs(cli.timeout * 2),
        connect_timeout: CONNECT_TIMEOUT.min(Duration::from_secs(cli.timeout)),
        // Nothing listening anywhere: say so (and why) now, not after the retry budget.
        unreachable_for: Some(CONNECT_TIMEOUT.min(Duration::from_secs(cli.timeout))),
    };
    let c = Client::with_options(&cli.endpoints, cli.token.clone(), opts)?;
    let out = Printer(cli.output);
    let yes = cli.yes;
    match cli.command {
        Command::Status => {
            let s = c.cluster().await?;
            out.emit(&s, || {
                let mut t = table(&["FIELD", "VALUE"]);
                t.add_row(vec!["cluster".into(), s.cluster_id.clone()]);
                t.add_row(vec![
                    "answered by".into(),
                    format!("node {} ({})", s.node, s.state),
                ]);
                t.add_row(vec!["leader".into(), opt(s.leader)]);
                t.add_row(vec!["term".into(), s.term.to_string()]);
                t.add_row(vec!["commit index".into(), s.commit_index.to_string()]);
                t.add_row(vec!["applied index".into(), s.applied_index.to_string()]);
                t.add_row(vec!["state version".into(), s.state_version.to_string()]);
                let members: Vec<String> = s
                    .members
                    .iter()
                    .map(|m| format!("{}={} ({})", m.id, m.address, m.role))
                    .collect();
                t.add_row(vec!["members".into(), members.join(", ")]);
                t
            });
        }
        Command::Members(MembersCmd::List) => {
            let s = c.cluster().await?;
            let addrs: Vec<String> = s.members.iter().map(|m| m.address.clone()).collect();
            let probes = probe_all(&addrs, cli.token.clone(), cli.timeout).await;
            let rows = health_rows(&probes, &s.members);
            out.emit(&rows, || {
                health_table(
                    &rows,
                    &[
                        "ID", "ADDRESS", "ROLE", "STATE", "LEADER", "TERM", "APPLIED", "LAG",
                    ],
                    (out.0 == Output::Wide).then_some(&["COMMIT", "LAST LOG", "ERROR"]),
                    health_row,
                )
            });
        }
        Command::Endpoint(EndpointCmd::Status { cluster }) => {
            let mut addrs: Vec<String> = cli.endpoints.clone();
            let mut members = Vec::new();
            if cluster {
                let s = c.cluster().await?;
                for m in &s.members {
                    if !addrs.iter().any(|a| same_endpoint(a, &m.address)) {
                        addrs.push(m.address.clone());
                    }
                }
                members = s.members;
            }
            let probes = probe_all(&addrs, cli.token.clone(), cli.timeout).await;
            let rows = health_rows(&probes, &members);
            out.emit(&rows, || {
                health_table(
                    &rows,
                    &[
                        "ENDPOINT", "ID", "STATE", "LEADER", "TERM", "APPLIED", "LAG", "ERROR",
                    ],
                    (out.0 == Output::Wide).then_some(&["COMMIT", "LAST LOG", "VERSION"]),
                    endpoint_row,
                )
            });
            let down = rows.iter().filter(|r| !r.reachable).count();
            if down > 0 {
                return Err(Failure {
                    message: format!("{down} of {} endpoints unreachable", rows.len()),
                    hint: None,
                    exit: 5,
                });
            }
        }
        Command::Members(MembersCmd::Add { id, address }) => {
            let v = c.add_member(id, &address).await?;
            out.sentence(
                &v,
                format!(
                    "node {id} ({address}) added as a learner: start it with --join; it becomes \
                     a voter once caught up"
                ),
            );
        }
        Command::Members(MembersCmd::Remove { id }) => {
            confirm(
                yes,
                &format!("Remove node {id} from the cluster's membership?"),
            )?;
            let v = c.remove_member(id).await?;
            out.sentence(
                &v,
                format!("node {id} removed from the membership; stop its process"),
            );
        }
        Command::Workers(cmd) => workers(&c, out, cmd, yes).await?,
        Command::Drain {
            workers,
            dry_run,
            allow_blocked,
        } => {
            let opts = drover_client::DrainOptions {
                dry_run,
                allow_blocked,
            };
            let r = c.drain_workers(&workers, opts).await?;
            print_drain(out, &r, allow_blocked)?;
        }
        Command::Partitions(cmd) => partitions(&c, out, cmd).await?,
        Command::Kv(cmd) => kv(&c, out, cmd).await?,
        Command::Events(args) => events(&c, out, args).await?,
        Command::Watch { after } => {
            let args = EventsArgs {
                after,
                limit: usize::MAX,
                tail: Some(0),
                follow: true,
                since: None,
                worker: None,
                kind: Vec::new(),
            };
            events(&c, out, args).await?;
        }
        Command::Settings(SettingsCmd::Get) => print_settings(out, &c.settings().await?),
        Command::Settings(SettingsCmd::Set {
            changes,
            expected_version,
        }) => {
            let mut patch = drover_types::SettingsPatch::default();
            for (setting, value) in changes {
                setting
                    .apply(value, &mut patch)
                    .map_err(|message| Failure {
                        message,
                        hint: None,
                        exit: 2,
                    })?;
            }
            print_settings(out, &c.set_settings(&patch, expected_version).await?);
        }
        Command::Snapshot(SnapshotCmd::Save { file }) => {
            let snap = c.snapshot().await?;
            // Write beside, then rename: a partial file never looks like a backup.
            let tmp = file.with_extension("partial");
            std::fs::write(&tmp, &snap.bytes)?;
            std::fs::rename(&tmp, &file)?;
            let summary = serde_json::json!({
                "file": file.display().to_string(),
                "bytes": snap.bytes.len(),
                "state_version": snap.version,
            });
            out.emit(&summary, || {
                let mut t = table(&["FILE", "BYTES", "STATE VERSION"]);
                t.add_row(vec![
                    file.display().to_string(),
                    snap.bytes.len().to_string(),
                    snap.version.to_string(),
                ]);
                t
            });
        }
        Command::Completions { .. } => {}
    }
    Ok(())
}

async fn workers(c: &Client, out: Printer, cmd: WorkersCmd, yes: bool) -> Result<(), Failure> {
    let change = |id: String, to: WorkerState, force: bool| async move {
        let mut req = StateRequest::to(to);
        req.force = force;
        c.set_state(&id, &req).await
    };
    match cmd {
        WorkersCmd::List { state, zone } => {
            let mut all = c.all_workers(state.map(Into::into)).await?;
            if let Some(z) = &zone {
                all.retain(|w| w.record.zone.as_deref() == Some(z));
            }
            all.sort_by(|a, b| render::natural(a.record.id.as_str(), b.record.id.as_str()));
            let wide = out.0 == Output::Wide;
            out.emit(&all, || {
                let mut header = vec![
                    "ID", "STATE", "LIVENESS", "ZONE", "ADDRESS", "GEN", "REPLICAS",
                ];
                if wide {
                    header.extend(["CAPACITY", "VERSION", "STATE SINCE", "DRAIN", "LABELS"]);
                }
                let mut t = table(&header);
                for w in &all {
                    t.add_row(worker_row(w, wide));
                }
                t
            });
        }
        WorkersCmd::Show { id } => {
            let w = c.worker(&id).await?;
            out.emit(&w, || {
                let mut t = table(&["FIELD", "VALUE"]);
                let r = &w.record;
                t.add_row(vec!["id".into(), r.id.to_string()]);
                t.add_row(vec!["state".to_owned(), r.state.as_str().to_owned()]);
                t.add_row(vec![
                    "state since".into(),
                    render::rfc3339_ms(r.state_since_ms),
                ]);
                t.add_row(vec!["liveness".into(), opt(w.liveness)]);
                t.add_row(vec!["dead".into(), r.dead.to_string()]);
                t.add_row(vec!["generation".into(), r.generation.to_string()]);
                t.add_row(vec!["address".into(), r.address.clone()]);
                t.add_row(vec!["zone".into(), r.zone.clone().unwrap_or("-".into())]);
                t.add_row(vec!["capacity".into(), r.capacity.to_string()]);
                t.add_row(vec!["labels".into(), labels(&r.labels)]);
                t.add_row(vec!["version".into(), r.version.to_string()]);
                let reps: Vec<String> = w
                    .replicas
                    .iter()
                    .map(|h| match h.role {
                        ReplicaRole::Serving => h.partition.to_string(),
                        role => format!("{}({})", h.partition, role_name(role)),
                    })
                    .collect();
                t.add_row(vec![format!("replicas ({})", reps.len()), reps.join(" ")]);
                if let Some(d) = &w.drain {
                    t.add_row(vec!["drain".into(), drain_progress(d)]);
                    if let Some(r) = &d.rate {
                        t.add_row(vec!["rate".into(), drain_rate(r)]);
                    }
                    // Faults per partition; waits (throttles, acknowledgements) once per thing
                    // waited for, not once per partition.
                    for b in d.blocked.iter().filter(|b| !b.code.is_transient()) {
                        t.add_row(vec![
                            "blocked".into(),
                            format!(
                                "{}: partition {}: {}",
                                code_name(&b.code),
                                b.partition,
                                b.detail
                            ),
                        ]);
                    }
                    for wait in &d.waits {
                        t.add_row(vec![
                            "blocked".into(),
                            format!("{}: {}", code_name(&wait.code), wait.detail),
                        ]);
                    }
                }
                t
            });
        }
        WorkersCmd::Activate { id } => {
            let r = change(id, WorkerState::Active, false).await?;
            print_change(out, &r, "activated");
        }
        WorkersCmd::Drain {
            id,
            dry_run,
            allow_blocked,
        } => {
            let opts = drover_client::DrainOptions {
                dry_run,
                allow_blocked,
            };
            let r = c.drain_workers(&[id], opts).await?;
            print_drain(out, &r, allow_blocked)?;
        }
        WorkersCmd::CancelDrain { id } => {
            let r = change(id, WorkerState::Active, false).await?;
            print_change(out, &r, "drain cancelled");
        }
        WorkersCmd::Disable { id, force } => {
            if force {
                let held = c.worker(&id).await?.replicas.len();
                confirm(
                    yes,
                    &format!(
                        "Force-disable worker {id}, dropping its {held} replicas at once \
                         (partitions may fall below their replication factor)?"
                    ),
                )?;
            }
            let r = change(id, WorkerState::Disabled, force).await?;
            print_change(out, &r, "disabled");
        }
        WorkersCmd::Remove { id, dead } => {
            if dead {
                let w = c.worker(&id).await?;
                if !w.record.dead {
                    return Err(Failure {
                        message: format!(
                            "worker {id} is not dead (it is {}, liveness {}): --dead removes \
                             only a worker the cluster declared dead",
                            w.record.state,
                            opt_or(w.liveness, "unknown")
                        ),
                        hint: Some(format!(
                            "drain it first (droverctl workers drain {id}), or disable it \
                             with --force if it is gone for good"
                        )),
                        exit: 6,
                    });
                }
                confirm(
                    yes,
                    &format!("Remove dead worker {id} (disable it, then remove it)?"),
                )?;
                if w.record.state != WorkerState::Disabled {
                    // Its replicas were dropped when it was declared dead: nothing is lost.
                    let force = w.record.state != WorkerState::Provisioning;
                    change(id.clone(), WorkerState::Disabled, force).await?;
                }
            } else {
                confirm(yes, &format!("Remove worker {id}?"))?;
            }
            let r = c.remove_worker(&id).await?;
            let sentence = format!(
                "worker {} removed; a tombstone keeps generation {} fenced, and the id may \
                 register again as a new worker",
                r.id, r.generation
            );
            out.sentence(&r, sentence);
        }
        WorkersCmd::Recommission { id } => {
            let w = match c.worker(&id).await {
                Ok(w) => Some(w),
                Err(e) if e.status() == Some(404) => None,
                Err(e) => return Err(e.into()),
            };
            let advice = recommission_advice(&id, w.as_ref())?;
            let v = serde_json::json!({"worker": id, "advice": advice});
            out.sentence(&v, advice);
        }
    }
    Ok(())
}

/// What bringing a worker back takes, from its state: SPEC §1 has Disabled → Provisioning only
/// by registration, so the agent process must register again.
fn recommission_advice(id: &str, w: Option<&WorkerView>) -> Result<String, Failure> {
    let restart = format!(
        "restart the agent process of {id} (e.g. `systemctl restart <its unit>`): it registers \
         with a new incarnation, starts in provisioning, and becomes active when it calls \
         ready() (or: droverctl workers activate {id}). An agent that is still running does \
         not register again on its own"
    );
    let Some(w) = w else {
        return Ok(format!(
            "worker {id} was removed (or never registered): {restart}; it comes back as a new \
             worker"
        ));
    };
    match w.record.state {
        WorkerState::Disabled => Ok(format!(
            "worker {id} is disabled at generation {}: {restart}; it will hold generation {}",
            w.record.generation,
            w.record.generation + 1
        )),
        WorkerState::Draining => Err(Failure {
            message: format!("worker {id} is draining, not disabled"),
            hint: Some(format!(
                "droverctl workers cancel-drain {id} keeps it (completed moves stay)"
            )),
            exit: 4,
        }),
        state => Err(Failure {
            message: format!("worker {id} is {state}: only a disabled worker is recommissioned"),
            hint: None,
            exit: 4,
        }),
    }
}

/// A state change in words: the new state, and for a forced disable what it cost.
fn print_change(out: Printer, r: &StateChanged, done: &str) {
    let w = r.worker();
    let mut line = format!(
        "worker {}: {done}; now {} (generation {}, version {})",
        w.id, w.state, w.generation, w.version
    );
    if let StateChanged::ForcedDisable(drover_api::ForcedDisable {
        partitions_below_rf,
        ..
    }) = r
    {
        line.push_str(&format!(
            "\n{partitions_below_rf} partitions fell below their replication factor; the \
             scheduler re-creates their replicas elsewhere (`droverctl events --follow`)"
        ));
    }
    out.sentence(r, line);
}

fn drain_progress(d: &DrainProgress) -> String {
    format!(
        "{} of {} replicas left, {} moving",
        d.replicas_remaining,
        opt(d.replicas_total),
        d.moves_in_flight
    )
}

/// `12 moves/min, ETA 35s`; `ETA unknown` until a move has completed.
fn drain_rate(r: &DrainRate) -> String {
    let pace = if r.moves_per_minute >= 10.0 || r.moves_per_minute == 0.0 {
        format!("{:.0}", r.moves_per_minute)
    } else {
        format!("{:.1}", r.moves_per_minute)
    };
    let eta = match r.eta_ms {
        Some(ms) => {
            let secs = ms.div_ceil(1000);
            format!(
                "ETA {}",
                humantime::format_duration(std::time::Duration::from_secs(secs))
            )
        }
        None => "ETA unknown".into(),
    };
    let window = humantime::format_duration(std::time::Duration::from_secs(r.window_ms / 1000));
    format!(
        "{pace} moves/min, {eta} ({} moves completed in the last {window})",
        r.moves_completed
    )
}

fn labels(l: &std::collections::BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "-".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Asks on the terminal before a destructive change, unless `--yes`. Off a terminal (a
/// script, a pipe) there is nobody to ask: the command goes ahead, as `rm` does.
fn confirm(yes: bool, question: &str) -> Result<(), Failure> {
    use std::io::{BufRead, IsTerminal};
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure {
            message: "aborted: nothing was changed".into(),
            hint: Some("--yes (-y) skips this question".into()),
            exit: 1,
        })
    }
}

async fn partitions(c: &Client, out: Printer, cmd: PartitionsCmd) -> Result<(), Failure> {
    match cmd {
        PartitionsCmd::List => {
            let all = c.all_partitions().await?;
            out.emit(&all, || {
                let mut t = partition_table(out);
                for p in &all {
                    t.add_row(partition_row(p, out.0 == Output::Wide));
                }
                t
            });
        }
        PartitionsCmd::Show { id } => {
            let p = c.partition(id).await?;
            out.emit(&p, || {
                let mut t = partition_table(out);
                t.add_row(partition_row(&p, out.0 == Output::Wide));
                t
            });
        }
        PartitionsCmd::Create {
            count,
            replication_factor,
        } => {
            let t = c.create_table(count, replication_factor).await?;
            out.sentence(
                &t,
                format!(
                    "created {count} partitions at replication factor {replication_factor}; \
                     the scheduler places them on Active workers"
                ),
            );
        }
        PartitionsCmd::Locate { key } => {
            let l = c.locate(key).await?;
            out.emit(&l, || {
                let mut t = table(&["PARTITION", "WORKER", "ADDRESS", "ZONE", "LEADER"]);
                for e in &l.serving {
                    t.add_row(vec![
                        l.partition.id.to_string(),
                        e.worker.clone(),
                        e.address.clone(),
                        e.zone.clone().unwrap_or("-".into()),
                        if e.leader { "*".into() } else { String::new() },
                    ]);
                }
                t
            });
        }
    }
    Ok(())
}

async fn kv(c: &Client, out: Printer, cmd: KvCmd) -> Result<(), Failure> {
    let kv_table = |items: &[KvItem]| {
        let mut t = table(&["KEY", "VALUE", "VERSION", "CREATED"]);
        for i in items {
            t.add_row(vec![
                i.key.clone(),
                i.value.clone(),
                i.version.to_string(),
                i.create_version.to_string(),
            ]);
        }
        t
    };
    match cmd {
        KvCmd::Get { key, stale } => {
            let item = c.kv_get(&key, stale).await?;
            out.emit(&item, || kv_table(std::slice::from_ref(&item)));
        }
        KvCmd::Put {
            key,
            value,
            expected_version,
        } => {
            let item = c.kv_put(&key, &value, expected_version).await?;
            out.emit(&item, || kv_table(std::slice::from_ref(&item)));
        }
        KvCmd::Delete {
            key,
            expected_version,
        } => {
            let d = c.kv_delete(&key, expected_version).await?;
            out.sentence(&d, format!("deleted {key} (state version {})", d.version));
        }
        KvCmd::List { prefix } => {
            let mut items = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = c.kv_list(&prefix, cursor.as_deref(), Some(1000)).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(next) if page.more => cursor = Some(next),
                    _ => break,
                }
            }
            out.emit(&items, || kv_table(&items));
        }
    }
    Ok(())
}

/// Whether an event passes `droverctl events`' filters.
struct EventFilter {
    since_ms: Option<u64>,
    worker: Option<String>,
    kinds: Vec<String>,
}

impl EventFilter {
    fn matches(&self, e: &Event) -> bool {
        if self.since_ms.is_some_and(|t| e.at_ms < t) {
            return false;
        }
        let kind = serde_json::to_value(&e.kind).unwrap_or_default();
        let (name, fields) = match &kind {
            Value::Object(m) => match m.iter().next() {
                Some((name, fields)) => (name.as_str(), Some(fields)),
                None => ("", None),
            },
            Value::String(s) => (s.as_str(), None),
            _ => ("", None),
        };
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k == name) {
            return false;
        }
        match &self.worker {
            None => true,
            Some(w) => fields.is_some_and(|f| {
                ["worker", "replaces", "leader"]
                    .iter()
                    .any(|k| f[*k].as_str() == Some(w))
                    || f["workers"]
                        .as_array()
                        .is_some_and(|ws| ws.iter().any(|x| x.as_str() == Some(w)))
            }),
        }
    }
}

/// `droverctl events`: the newest `--tail` matching events (or those after `--after`), with a
/// line on stderr when more remain, then with `--follow` every new one as it commits.
async fn events(c: &Client, out: Printer, args: EventsArgs) -> Result<(), Failure> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let since_ms = match &args.since {
        Some(s) => Some(render::parse_since(s, now_ms).map_err(|message| Failure {
            message: format!("--since: {message}"),
            hint: None,
            exit: 2,
        })?),
        None => None,
    };
    let filter = EventFilter {
        since_ms,
        worker: args.worker.clone(),
        kinds: args.kind.clone(),
    };
    // What is shown first, and the sequence number to follow from.
    let mut shown: std::collections::VecDeque<Event> = std::collections::VecDeque::new();
    let mut left_out = 0usize;
    let mut more_after = false;
    let mut after = args.after.unwrap_or(0);
    match args.after {
        Some(_) => loop {
            let page = c.events(after, Some(1000)).await?;
            for e in page.events {
                after = e.seq;
                if !filter.matches(&e) {
                    continue;
                }
                if shown.len() == args.limit {
                    more_after = true;
                    break;
                }
                shown.push_back(e);
            }
            if more_after {
                // `after` is one past the last shown: continue from the last shown instead.
                after = shown.back().map_or(after, |e| e.seq);
                break;
            }
            after = page.next_after.max(after);
            if !page.more {
                break;
            }
        },
        None => {
            let tail = args.tail.unwrap_or(20);
            loop {
                let page = c.events(after, Some(1000)).await?;
                for e in page.events.into_iter().filter(|e| filter.matches(e)) {
                    shown.push_back(e);
                    if shown.len() > tail {
                        shown.pop_front();
                        left_out += 1;
                    }
                }
                after = page.next_after.max(after);
                if !page.more {
                    break;
                }
            }
        }
    }
    let shown: Vec<Event> = shown.into();
    {
        match (out.0, args.follow) {
            // Following: one line (or JSON object) per event, from the first.
            (_, true) => {
                for e in &shown {
                    out.event_line(e)?;
                }
            }
            (Output::Json | Output::Yaml, false) => {
                let page = serde_json::json!({
                    "events": shown,
                    "more": more_after || left_out > 0,
                    "next_after": after,
                });
                out.emit(&page, Table::new);
            }
            (Output::Table | Output::Wide, false) => {
                let wide = out.0 == Output::Wide;
                let mut header = vec!["SEQ", "TIME", "EVENT", "DETAILS"];
                if wide {
                    header.insert(1, "VERSION");
                }
                let mut t = table(&header);
                for e in &shown {
                    t.add_row(event_row(e, wide));
                }
                outln!("{t}");
            }
        }
    }
    if left_out > 0 {
        eprintln!(
            "({left_out} earlier matching events not shown: --tail N shows more, --after SEQ \
             pages from a sequence number)"
        );
    } else if more_after {
        eprintln!("(more events remain: --after {after} continues)");
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        let page = tokio::select! {
            p = c.events(after, Some(1000)) => p?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        for e in page.events.iter().filter(|e| filter.matches(e)) {
            out.event_line(e)?;
        }
        after = page.next_after.max(after);
        if !page.more {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
}

/// One node's answer to a direct `GET /v1/cluster`, or why there was none.
struct Probe {
    endpoint: String,
    answer: Result<ClusterStatus, String>,
}

/// Asks every address directly and at once (no failover: each answer is that node's own).
async fn probe_all(addrs: &[String], token: Option<String>, timeout: u64) -> Vec<Probe> {
    let limit = CONNECT_TIMEOUT.min(Duration::from_secs(timeout));
    let mut tasks = Vec::new();
    for a in addrs {
        let (a, token) = (a.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let opts = drover_client::ClientOptions {
                timeout: limit,
                retry_for: Duration::ZERO,
                connect_timeout: limit,
                unreachable_for: Some(Duration::ZERO),
            };
            let answer = match Client::with_options(&[&a], token, opts) {
                Ok(c) => c.cluster().await.map_err(|e| match e {
                    Error::Unreachable { last, .. } => last,
                    e => e.to_string(),
                }),
                Err(e) => Err(e.to_string()),
            };
            Probe {
                endpoint: a,
                answer,
            }
        }));
    }
    let mut out = Vec::new();
    for (t, a) in tasks.into_iter().zip(addrs) {
        out.push(t.await.unwrap_or_else(|e| Probe {
            endpoint: a.clone(),
            answer: Err(e.to_string()),
        }));
    }
    out
}

/// One endpoint's health, as `members list` and `endpoint status` print it.
#[derive(Debug, Serialize)]
struct Health {
    endpoint: String,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    id: Option<u64>,
    /// `voter` or `learner`, from the membership.
    membership: Option<MemberRole>,
    /// The node's own Raft state: leader, follower, candidate, learner.
    state: Option<NodeState>,
    leader: Option<u64>,
    term: Option<u64>,
    commit_index: Option<u64>,
    applied_index: Option<u64>,
    last_log_index: Option<u64>,
    state_version: Option<u64>,
    /// Entries behind the highest commit index any reachable node reports (the leader's).
    lag: Option<u64>,
}

fn health_rows(probes: &[Probe], members: &[Member]) -> Vec<Health> {
    let commit = probes
        .iter()
        .filter_map(|p| p.answer.as_ref().ok())
        .map(|s| s.commit_index)
        .max();
    probes
        .iter()
        .map(|p| {
            let member = |id: Option<u64>| {
                members
                    .iter()
                    .find(|m| Some(m.id) == id || same_endpoint(&m.address, &p.endpoint))
            };
            match &p.answer {
                Ok(s) => Health {
                    endpoint: p.endpoint.clone(),
                    reachable: true,
                    error: None,
                    id: Some(s.node),
                    membership: member(Some(s.node))
                        .map(|m| m.role)
                        .or_else(|| s.members.iter().find(|m| m.id == s.node).map(|m| m.role)),
                    state: Some(s.state),
                    leader: s.leader,
                    term: Some(s.term),
                    commit_index: Some(s.commit_index),
                    applied_index: Some(s.applied_index),
                    last_log_index: Some(s.last_log_index),
                    state_version: Some(s.state_version),
                    lag: commit.map(|c| c.saturating_sub(s.applied_index)),
                },
                Err(e) => Health {
                    endpoint: p.endpoint.clone(),
                    reachable: false,
                    error: Some(e.clone()),
                    id: member(None).map(|m| m.id),
                    membership: member(None).map(|m| m.role),
                    state: None,
                    leader: None,
                    term: None,
                    commit_index: None,
                    applied_index: None,
                    last_log_index: None,
                    state_version: None,
                    lag: None,
                },
            }
        })
        .collect()
}

/// The nodes' health as a table: `header`, then the `wide` columns when asked for, one `row`
/// per node (`members list` and `endpoint status` differ only in their columns).
fn health_table(
    rows: &[Health],
    header: &[&str],
    wide: Option<&[&str; 3]>,
    row: fn(&Health, bool) -> Vec<String>,
) -> Table {
    let mut columns = header.to_vec();
    columns.extend(wide.into_iter().flatten());
    let mut t = table(&columns);
    for r in rows {
        t.add_row(row(r, wide.is_some()));
    }
    t
}

fn health_row(h: &Health, wide: bool) -> Vec<String> {
    let state = if h.reachable {
        opt_or(h.state, "")
    } else {
        "unreachable".into()
    };
    let mut row = vec![
        opt(h.id),
        h.endpoint.clone(),
        opt(h.membership),
        state,
        opt(h.leader),
        opt(h.term),
        opt(h.applied_index),
        opt(h.lag),
    ];
    if wide {
        row.extend([
            opt(h.commit_index),
            opt(h.last_log_index),
            h.error.clone().unwrap_or_default(),
        ]);
    }
    row
}

fn endpoint_row(h: &Health, wide: bool) -> Vec<String> {
    let state = if h.reachable {
        opt_or(h.state, "")
    } else {
        "unreachable".into()
    };
    let mut row = vec![
        h.endpoint.clone(),
        opt(h.id),
        state,
        opt(h.leader),
        opt(h.term),
        opt(h.applied_index),
        opt(h.lag),
        h.error.clone().unwrap_or_default(),
    ];
    if wide {
        row.extend([
            opt(h.commit_index),
            opt(h.last_log_index),
            opt(h.state_version),
        ]);
    }
    row
}

/// `127.0.0.1:7001` and `http://127.0.0.1:7001/` name one endpoint.
fn same_endpoint(a: &str, b: &str) -> bool {
    let bare = |s: &str| {
        s.trim()
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned()
    };
    bare(a) == bare(b)
}

fn print_settings(out: Printer, s: &drover_types::Settings) {
    out.emit(s, || {
        let ms = |v: u64| humantime::format_duration(Duration::from_millis(v)).to_string();
        let mut t = table(&["SETTING", "VALUE"]);
        for (name, value) in [
            ("heartbeat-interval", ms(s.heartbeat_interval_ms)),
            ("suspect-after", ms(s.suspect_after_ms)),
            ("dead-after", ms(s.dead_after_ms)),
            ("join-timeout", ms(s.join_timeout_ms)),
            ("max-moves-per-worker", s.max_moves_per_worker.to_string()),
            ("max-moves-total", s.max_moves_total.to_string()),
            ("kv-max-value-bytes", s.kv_max_value_bytes.to_string()),
            ("events-retained", s.events_retained.to_string()),
            ("version", s.version.to_string()),
        ] {
            t.add_row(vec![name.to_owned(), value]);
        }
        if let Some(f) = s.lease_floor {
            t.add_row(vec![
                "lease floor".to_owned(),
                format!(
                    "{} (deaths wait for leases granted under it)",
                    ms(f.dead_after_ms)
                ),
            ]);
        }
        t
    });
}

/// Prints a drain's plan and verdict; a dry run that cannot finish is a refusal (exit 6), so a
/// script can trust the exit code, unless `--allow-blocked` said blocked is fine.
fn print_drain(out: Printer, r: &DrainAnswer, allow_blocked: bool) -> Result<(), Failure> {
    out.emit(r, || {
        let mut t = table(&["PARTITION", "FROM", "TO", "BLOCKED"]);
        for m in r.planned_moves() {
            let blocked = r
                .blocked()
                .iter()
                .find(|b| b.partition == m.partition && b.worker.as_ref() == Some(&m.from))
                .map(|b| format!("{}: {}", code_name(&b.code), b.detail))
                .unwrap_or_default();
            t.add_row(vec![
                m.partition.to_string(),
                m.from.to_string(),
                m.to.as_ref().map_or("-".into(), ToString::to_string),
                blocked,
            ]);
        }
        t
    });
    if out.0.human() {
        if !r.warnings().is_empty() {
            let mut t = table(&["WARNINGS", "PARTITION", "DETAIL"]);
            for w in r.warnings() {
                t.add_row(vec![
                    code_name(&w.code),
                    w.partition.to_string(),
                    w.detail.clone(),
                ]);
            }
            outln!("\n{t}");
        }
        let verdict = match (r.dry_run(), r.feasible()) {
            (true, true) => "dry run: feasible; nothing committed",
            (true, false) => "dry run: NOT feasible (see BLOCKED); nothing committed",
            (false, true) => "drain started",
            (false, false) => "drain started, but it cannot finish yet (see BLOCKED)",
        };
        let warned = match r.warnings().len() {
            0 => String::new(),
            n => {
                let count = |c: WarningCode| r.warnings().iter().filter(|w| w.code == c).count();
                format!(
                    "\nwarnings: {} partitions lose zone spread, {} preferred leaders move \
                     ({n} in all, see WARNINGS)",
                    count(WarningCode::LostZoneSpread),
                    count(WarningCode::LeaderMoves),
                )
            }
        };
        outln!("\n{verdict}{warned}");
    }
    if r.dry_run() && !r.feasible() && !allow_blocked {
        return Err(Failure {
            message: "the drain cannot finish: a real drain would be refused (drain_infeasible)"
                .into(),
            hint: Some("see BLOCKED; --allow-blocked starts it anyway".into()),
            exit: 6,
        });
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Printer(Output);

impl Printer {
    /// Prints `v` as JSON or YAML, or the table `render` builds.
    fn emit<T: Serialize>(self, v: &T, render: impl FnOnce() -> Table) {
        match self.0 {
            Output::Json => outln!(
                "{}",
                serde_json::to_string_pretty(v)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
            ),
            Output::Yaml => {
                let v = serde_json::to_value(v).unwrap_or_default();
                let text = render::yaml(&v);
                outln!("{}", text.trim_end());
            }
            Output::Table | Output::Wide => outln!("{}", render()),
        }
    }

    /// Prints what a state-changing command did: a sentence for people, the API's answer for
    /// machines.
    fn sentence<T: Serialize>(self, v: &T, line: String) {
        match self.0 {
            Output::Table | Output::Wide => outln!("{line}"),
            Output::Json | Output::Yaml => self.emit(v, Table::new),
        }
    }

    /// One event on a line of its own (following), or one JSON object per line.
    fn event_line(self, e: &Event) -> Result<(), Failure> {
        let line = match self.0 {
            Output::Json | Output::Yaml => serde_json::to_string(e).unwrap_or_default(),
            Output::Table | Output::Wide => event_row(e, self.0 == Output::Wide).join("  "),
        };
        outln!("{line}");
        Ok(())
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().copied());
    t
}

/// `v`, or `none` when there is none.
fn opt_or<T: ToString>(v: Option<T>, none: &str) -> String {
    v.map_or_else(|| none.to_owned(), |v| v.to_string())
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn role_name(r: ReplicaRole) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn code_name<T: Serialize>(c: &T) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn worker_row(w: &WorkerView, wide: bool) -> Vec<String> {
    let r = &w.record;
    let mut row = vec![
        r.id.to_string(),
        r.state.as_str().into(),
        opt(w.liveness),
        r.zone.clone().unwrap_or("-".into()),
        r.address.clone(),
        r.generation.to_string(),
        w.replicas.len().to_string(),
    ];
    if wide {
        row.extend([
            r.capacity.to_string(),
            r.version.to_string(),
            render::rfc3339_ms(r.state_since_ms),
            w.drain.as_ref().map_or("-".into(), drain_progress),
            labels(&r.labels),
        ]);
    }
    row
}

fn partition_table(out: Printer) -> Table {
    let mut header = vec!["ID", "KEYS", "RF", "EPOCH", "LEADER", "REPLICAS"];
    if out.0 == Output::Wide {
        header.extend(["VERSION", "ROLES SINCE"]);
    }
    table(&header)
}

fn partition_row(p: &Partition, wide: bool) -> Vec<String> {
    let reps: Vec<String> = p
        .replicas
        .iter()
        .map(|r| match r.role {
            ReplicaRole::Serving => r.worker.to_string(),
            role => format!("{}({})", r.worker, role_name(role)),
        })
        .collect();
    let mut row = vec![
        p.id.to_string(),
        key_range(&p.key_range),
        p.replication_factor.to_string(),
        p.epoch.to_string(),
        p.leader.as_ref().map_or("-".into(), ToString::to_string),
        reps.join(" "),
    ];
    if wide {
        let since: Vec<String> = p
            .replicas
            .iter()
            .map(|r| format!("{}@{}", r.worker, r.since))
            .collect();
        row.extend([p.version.to_string(), since.join(" ")]);
    }
    row
}

/// The inclusive key range, as `start..=end`.
fn key_range(r: &drover_types::KeyRange) -> String {
    format!("{}..={}", r.start, r.end)
}

fn event_row(e: &Event, wide: bool) -> Vec<String> {
    let kind = serde_json::to_value(&e.kind).unwrap_or_default();
    let (name, details) = match kind {
        Value::Object(m) => match m.into_iter().next() {
            Some((name, Value::Object(fields))) => {
                let d: Vec<String> = fields
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k}={s}"),
                        v => format!("{k}={v}"),
                    })
                    .collect();
                (name, d.join(" "))
            }
            Some((name, v)) => (name, v.to_string()),
            None => (String::new(), String::new()),
        },
        Value::String(s) => (s, String::new()),
        v => (v.to_string(), String::new()),
    };
    let mut row = vec![
        e.seq.to_string(),
        render::rfc3339_ms(e.at_ms),
        name,
        details,
    ];
    if wide {
        row.insert(1, e.version.to_string());
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand and every argument says what it is for in `--help` (clap's own
    /// `--help`/`--version` aside).
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "droverctl", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
        Cli::command().debug_assert();
    }
}
