//! `droverctl`: the operator CLI over Drover's admin HTTP API (SPEC §5).
//!
//! Output is an aligned table by default and JSON with `-o json`. Exit codes are stable so
//! scripts can branch on them (see `EXIT CODES` in `--help`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets};
use drover_client::{Client, Error, StateRequest, WorkerView, outln, state_name};
use drover_types::{Event, Partition, ReplicaRole, WorkerState};
use serde::Serialize;
use serde_json::Value;

const EXIT_CODES: &str = "EXIT CODES:
  0  success
  1  any other error (bad answer, I/O)
  2  usage error
  3  not found (404)
  4  conflict: illegal transition, version conflict, stale generation, fenced (409)
  5  unavailable: no endpoint reachable, or no leader (503)
  6  refused: authentication (401/403), invalid request (400/413), compacted (410), a drain
     that cannot finish (drain_infeasible, or a dry run that is not feasible)
  7  outcome unknown: a write was sent and no answer came; read the state before retrying";

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
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Per-request timeout in seconds; failover between endpoints continues for twice that.
    #[arg(long, global = true, default_value_t = 5)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cluster id, leader, term, members, indexes, state version.
    Status,
    /// Raft members.
    #[command(subcommand)]
    Members(MembersCmd),
    /// Workers and their lifecycle.
    #[command(subcommand)]
    Workers(WorkersCmd),
    /// Drain workers as one operation (a rack, a zone); `--dry-run` shows the moves. A drain
    /// that cannot finish is refused (exit 6) unless `--allow-blocked`; so is its dry run.
    Drain {
        #[arg(required = true)]
        workers: Vec<String>,
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
    /// Lifecycle events after a sequence number.
    Events {
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Stream lifecycle events as they are committed (Ctrl-C to stop).
    Watch {
        /// Start after this sequence number (default: now).
        #[arg(long)]
        after: Option<u64>,
    },
    /// Backups.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Replicated cluster settings: liveness timing, move throttles, limits.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Shell completions, to stdout.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
enum MembersCmd {
    List,
    /// Add a node as a learner (promoted once caught up).
    Add {
        id: u64,
        address: String,
    },
    /// Remove a node (refused if it would break quorum).
    Remove {
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
enum WorkersCmd {
    List {
        #[arg(long, value_parser = parse_state)]
        state: Option<WorkerState>,
        #[arg(long)]
        zone: Option<String>,
    },
    Show {
        id: String,
    },
    /// Provisioning → Active.
    Activate {
        id: String,
    },
    /// Active → Draining, with its move plan (`--dry-run`: only show the plan). Refused
    /// (exit 6) if it cannot finish, unless `--allow-blocked`.
    Drain {
        id: String,
        #[arg(long)]
        dry_run: bool,
        /// Start the drain even if it cannot finish: the worker stays Draining, blocked.
        #[arg(long)]
        allow_blocked: bool,
    },
    /// Draining → Active: completed moves stay, pending ones are withdrawn.
    CancelDrain {
        id: String,
    },
    /// Provisioning → Disabled; `--force` also from Active/Draining, dropping its replicas.
    Disable {
        id: String,
        #[arg(long)]
        force: bool,
    },
    /// Remove a Disabled worker (a tombstone keeps it fenced).
    Remove {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PartitionsCmd {
    List,
    Show {
        id: u32,
    },
    /// Create the table.
    Create {
        #[arg(long)]
        count: u32,
        #[arg(long = "replication-factor", alias = "rf")]
        replication_factor: u8,
    },
    /// Which partition owns a key, and where its serving replicas are.
    Locate {
        key: u64,
    },
}

#[derive(Debug, Subcommand)]
enum KvCmd {
    Get {
        key: String,
        /// Read the answering node's applied state instead of a linearizable read.
        #[arg(long)]
        stale: bool,
    },
    Put {
        key: String,
        value: String,
        /// Compare-and-set: 0 means create only.
        #[arg(long)]
        expected_version: Option<u64>,
    },
    Delete {
        key: String,
        #[arg(long)]
        expected_version: Option<u64>,
    },
    List {
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
    Save { file: std::path::PathBuf },
}

fn parse_state(s: &str) -> Result<WorkerState, String> {
    serde_json::from_value(Value::String(s.to_ascii_lowercase()))
        .map_err(|_| format!("{s:?} is not one of provisioning, active, draining, disabled"))
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
                code: drover_client::ErrorCode::DrainInfeasible,
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
    };
    let c = Client::with_options(&cli.endpoints, cli.token.clone(), opts)?;
    let out = Printer(cli.output);
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
            out.emit(&s.members, || {
                let mut t = table(&["ID", "ADDRESS", "ROLE", "LEADER"]);
                for m in &s.members {
                    let leader = if s.leader == Some(m.id) { "*" } else { "" };
                    t.add_row(vec![
                        m.id.to_string(),
                        m.address.clone(),
                        m.role.clone(),
                        leader.into(),
                    ]);
                }
                t
            });
        }
        Command::Members(MembersCmd::Add { id, address }) => {
            let v = c.add_member(id, &address).await?;
            out.value(&v);
        }
        Command::Members(MembersCmd::Remove { id }) => {
            let v = c.remove_member(id).await?;
            out.value(&v);
        }
        Command::Workers(cmd) => workers(&c, out, cmd).await?,
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
        Command::Events { after, limit } => {
            let page = c.events(after, Some(limit)).await?;
            out.emit(&page, || {
                let mut t = table(&["SEQ", "VERSION", "AT_MS", "EVENT", "DETAILS"]);
                for e in &page.events {
                    t.add_row(event_row(e));
                }
                t
            });
        }
        Command::Watch { after } => watch(&c, out, after).await?,
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

async fn workers(c: &Client, out: Printer, cmd: WorkersCmd) -> Result<(), Failure> {
    let change = |id: String, to: WorkerState, force: bool| async move {
        let mut req = StateRequest::to(to);
        req.force = force;
        c.set_state(&id, &req).await
    };
    match cmd {
        WorkersCmd::List { state, zone } => {
            let mut all = c.all_workers(state).await?;
            if let Some(z) = &zone {
                all.retain(|w| w.record.zone.as_deref() == Some(z));
            }
            out.emit(&all, || {
                let mut t = table(&[
                    "ID", "STATE", "LIVENESS", "ZONE", "ADDRESS", "GEN", "REPLICAS",
                ]);
                for w in &all {
                    t.add_row(worker_row(w));
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
                t.add_row(vec!["state".to_owned(), state_name(r.state).to_owned()]);
                t.add_row(vec![
                    "liveness".into(),
                    w.liveness.clone().unwrap_or("-".into()),
                ]);
                t.add_row(vec!["dead".into(), r.dead.to_string()]);
                t.add_row(vec!["generation".into(), r.generation.to_string()]);
                t.add_row(vec!["address".into(), r.address.clone()]);
                t.add_row(vec!["zone".into(), r.zone.clone().unwrap_or("-".into())]);
                t.add_row(vec!["capacity".into(), r.capacity.to_string()]);
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
                    t.add_row(vec![
                        "drain".into(),
                        format!(
                            "{} of {} replicas left, {} moving",
                            d.replicas_remaining,
                            opt(d.replicas_total),
                            d.moves_in_flight
                        ),
                    ]);
                    for b in &d.blocked {
                        t.add_row(vec![
                            "blocked".into(),
                            format!("{}: {}", code_name(&b.code), b.detail),
                        ]);
                    }
                }
                t
            });
        }
        WorkersCmd::Activate { id } => {
            let r = change(id, WorkerState::Active, false).await?;
            out.value(&r);
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
            out.value(&r);
        }
        WorkersCmd::Disable { id, force } => {
            let r = change(id, WorkerState::Disabled, force).await?;
            out.value(&r);
        }
        WorkersCmd::Remove { id } => {
            let r = c.remove_worker(&id).await?;
            out.value(&r);
        }
    }
    Ok(())
}

async fn partitions(c: &Client, out: Printer, cmd: PartitionsCmd) -> Result<(), Failure> {
    match cmd {
        PartitionsCmd::List => {
            let all = c.all_partitions().await?;
            out.emit(&all, || {
                let mut t = table(&["ID", "KEYS", "RF", "EPOCH", "LEADER", "REPLICAS"]);
                for p in &all {
                    t.add_row(partition_row(p));
                }
                t
            });
        }
        PartitionsCmd::Show { id } => {
            let p = c.partition(id).await?;
            out.emit(&p, || {
                let mut t = table(&["ID", "KEYS", "RF", "EPOCH", "LEADER", "REPLICAS"]);
                t.add_row(partition_row(&p));
                t
            });
        }
        PartitionsCmd::Create {
            count,
            replication_factor,
        } => {
            let t = c.create_table(count, replication_factor).await?;
            out.value(&t);
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
    let kv_table = |items: &[drover_client::KvItem]| {
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
            out.value(&d);
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

/// Polls the events log and prints each event once, in order, until interrupted.
async fn watch(c: &Client, out: Printer, after: Option<u64>) -> Result<(), Failure> {
    let mut after = match after {
        Some(a) => a,
        None => {
            // Start at the newest event: skip what is already there.
            let mut a = 0;
            loop {
                let page = c.events(a, Some(1000)).await?;
                a = page.next_after;
                if !page.more {
                    break a;
                }
            }
        }
    };
    let mut stdout = drover_client::stdout::stdout();
    loop {
        let page = tokio::select! {
            p = c.events(after, Some(1000)) => p?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        for e in &page.events {
            let line = match out.0 {
                Output::Json => serde_json::to_string(e).unwrap_or_default(),
                Output::Table => event_row(e).join("  "),
            };
            writeln!(stdout, "{line}")?;
        }
        stdout.flush()?;
        after = page.next_after;
        if !page.more {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
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
fn print_drain(
    out: Printer,
    r: &drover_client::DrainReply,
    allow_blocked: bool,
) -> Result<(), Failure> {
    out.emit(r, || {
        let mut t = table(&["PARTITION", "FROM", "TO", "BLOCKED"]);
        for m in r.planned_moves() {
            let blocked = r
                .blocked
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
    if out.0 == Output::Table {
        let verdict = match (r.dry_run, r.feasible) {
            (true, true) => "dry run: feasible; nothing committed",
            (true, false) => "dry run: NOT feasible (see BLOCKED); nothing committed",
            (false, true) => "drain started",
            (false, false) => "drain started, but it cannot finish yet (see BLOCKED)",
        };
        outln!("\n{verdict}");
    }
    if r.dry_run && !r.feasible && !allow_blocked {
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
    /// Prints `v` as JSON, or the table `render` builds.
    fn emit<T: Serialize>(self, v: &T, render: impl FnOnce() -> Table) {
        match self.0 {
            Output::Json => outln!(
                "{}",
                serde_json::to_string_pretty(v)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
            ),
            Output::Table => outln!("{}", render()),
        }
    }

    /// Prints a result with no table of its own: JSON either way (compact in table mode).
    fn value<T: Serialize>(self, v: &T) {
        match self.0 {
            Output::Json => self.emit(v, Table::new),
            Output::Table => outln!("{}", serde_json::to_string(v).unwrap_or_default()),
        }
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().copied());
    t
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

fn worker_row(w: &WorkerView) -> Vec<String> {
    let r = &w.record;
    vec![
        r.id.to_string(),
        state_name(r.state).into(),
        w.liveness.clone().unwrap_or("-".into()),
        r.zone.clone().unwrap_or("-".into()),
        r.address.clone(),
        r.generation.to_string(),
        w.replicas.len().to_string(),
    ]
}

fn partition_row(p: &Partition) -> Vec<String> {
    let reps: Vec<String> = p
        .replicas
        .iter()
        .map(|r| match r.role {
            ReplicaRole::Serving => r.worker.to_string(),
            role => format!("{}({})", r.worker, role_name(role)),
        })
        .collect();
    vec![
        p.id.to_string(),
        key_range(&p.key_range),
        p.replication_factor.to_string(),
        p.epoch.to_string(),
        p.leader.as_ref().map_or("-".into(), ToString::to_string),
        reps.join(" "),
    ]
}

/// The inclusive key range, as `start..=end`.
fn key_range(r: &drover_types::KeyRange) -> String {
    format!("{}..={}", r.start, r.end)
}

fn event_row(e: &Event) -> Vec<String> {
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
    vec![
        e.seq.to_string(),
        e.version.to_string(),
        e.at_ms.to_string(),
        name,
        details,
    ]
}
