//! droverctl's command line: the clap definitions of every command and argument, and the
//! names of the settings `settings set` takes. Parsing only; what a command does is `main.rs`.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use drover_types::WorkerState;

use crate::exit::EXIT_CODES;

#[derive(Debug, Parser)]
#[command(name = "droverctl", version, about = "Operate a Drover cluster", after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Drover nodes to talk to, comma separated (any node serves any request).
    #[arg(
        long,
        global = true,
        env = "DROVER_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001"
    )]
    pub(crate) endpoints: Vec<String>,
    /// Bearer token (admin or worker).
    #[arg(long, global = true, env = "DROVER_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Output format: an aligned table, a wider one with more columns, JSON or YAML.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    /// Per-request timeout in seconds (at least 1); failover between endpoints continues for
    /// twice that, but an endpoint list where nothing listens fails within the connect timeout.
    #[arg(long, global = true, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: u64,
    #[command(flatten)]
    pub(crate) tls_args: drover_tls::ClientArgs,
    /// Do not ask before destructive commands (forced disable, removals); they ask only when
    /// standard input is a terminal.
    #[arg(short = 'y', long, global = true)]
    pub(crate) yes: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// An aligned table (state-changing commands print a sentence).
    Table,
    /// The table with every column.
    Wide,
    /// The API's JSON.
    Json,
    /// The API's answer as YAML.
    Yaml,
}

impl Cli {
    /// The TLS client configuration the flags ask for: any of --cacert, --cert, or an
    /// `https://` endpoint; `None` for plain HTTP.
    pub(crate) fn tls(
        &self,
    ) -> Result<Option<drover_tls::rustls::ClientConfig>, drover_tls::Error> {
        let https = self
            .endpoints
            .iter()
            .any(|e| e.trim().starts_with("https://"));
        self.tls_args.config(https)
    }
}

impl Output {
    pub(crate) fn human(self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
        #[command(flatten)]
        deadline: DeadlineArgs,
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
    /// A throwaway certificate authority for a demo or a test cluster over TLS, written to
    /// DIR: `ca.pem` (give it to `--trusted-ca-file` and `--cacert`), `node.crt`/`node.key`
    /// for every node (`--cert-file`, `--key-file`), `client.crt`/`client.key` for an
    /// operator. The CA's key is not kept: nothing more can be signed by it. Use your own PKI
    /// in production. Refuses (exit 4) a DIR that already holds `ca.pem`.
    Certs {
        /// Where to write the files (created if missing).
        #[arg(long)]
        dir: std::path::PathBuf,
        /// An address or DNS name the nodes are reached by, named in `node.crt` (repeat it;
        /// default 127.0.0.1 and localhost).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Replicated cluster settings: liveness timing, move throttles, limits.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// The scheduler's brakes: pause new moves (moves in flight finish), resume.
    #[command(subcommand)]
    Scheduler(SchedulerCmd),
    /// What stopping or draining workers (or a zone) would cost, changing nothing: partitions
    /// below RF, below a majority, preferred leaders lost, and for a drain its plan. Exits 6
    /// when a partition would lose its majority (or the drain could not finish).
    WhatIf {
        /// `stop` (the processes stop) or `drain` (a drain of them as one operation).
        action: WhatIfVerb,
        /// The workers (or give `--zone`).
        #[arg(
            value_name = "WORKER",
            required_unless_present = "zone",
            conflicts_with = "zone"
        )]
        workers: Vec<String>,
        /// Every worker of this zone.
        #[arg(long)]
        zone: Option<String>,
    },
    /// The mass-failure brake: too many workers fell silent at once, so their deaths (and the
    /// re-creation of their replicas) are held until they return or you release it.
    #[command(subcommand)]
    Brake(BrakeCmd),
    /// Restart workers one at a time (or a zone at a time) without moving data: for each,
    /// maintenance, wait until it leads nothing, run `--exec`, wait until the new process is
    /// back and its maintenance ended; stops at the first failure.
    RollingRestart {
        /// The workers, in this order (default: every Active worker, zone by zone).
        #[arg(value_name = "WORKER", conflicts_with = "zone")]
        workers: Vec<String>,
        /// Only this zone's Active workers.
        #[arg(long)]
        zone: Option<String>,
        /// Restart a whole zone at a time (the budget still applies to each worker).
        #[arg(long)]
        by_zone: bool,
        /// Restarts one worker, run by `sh -c` with `{id}` replaced by the worker's id (also in
        /// `$DROVER_WORKER`), e.g. `systemctl restart 'svc@{id}'`.
        #[arg(long, value_name = "COMMAND")]
        exec: String,
        /// How long each restart may take before its maintenance ends by itself.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
        for_: Duration,
        /// Recorded on each maintenance.
        #[arg(long, default_value = "rolling restart")]
        reason: String,
    },
    /// Shell completions, to stdout.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// The kinds of lifecycle events, as the API names them.
pub(crate) const EVENT_KINDS: [&str; 21] = [
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
    "cordoned",
    "uncordoned",
    "scheduler_paused",
    "scheduler_resumed",
    "maintenance_started",
    "maintenance_ended",
    "brake_tripped",
    "brake_released",
    "drain_overdue",
];

/// A drain's deadline (SPEC §3).
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct DeadlineArgs {
    /// Report the drain overdue if it has not finished this long from now (`2h`), on the
    /// leader's clock: event `drain_overdue` with what blocks it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) deadline: Option<Duration>,
    /// At the deadline: `report` only, or `force` — disable the workers whose every partition
    /// keeps a majority without them, re-creating their remaining replicas elsewhere.
    #[arg(long, value_enum, default_value = "report", requires = "deadline")]
    pub(crate) on_deadline: OnDeadlineArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnDeadlineArg {
    Report,
    Force,
}

impl DeadlineArgs {
    /// The client's drain options with this deadline.
    pub(crate) fn options(self, dry_run: bool, allow_blocked: bool) -> drover_client::DrainOptions {
        drover_client::DrainOptions {
            dry_run,
            allow_blocked,
            deadline: self
                .deadline
                .map_or(drover_client::Expiry::Never, drover_client::Expiry::After),
            on_deadline: match self.on_deadline {
                OnDeadlineArg::Report => drover_types::OnDeadline::Report,
                OnDeadlineArg::Force => drover_types::OnDeadline::Force,
            },
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum BrakeCmd {
    /// Release the mass-failure brake: the held deaths are declared and their replicas
    /// re-created; it does not trip again for one `dead_after`.
    Release {
        /// Why (shown in events).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// What-if's actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum WhatIfVerb {
    /// The workers' processes stop.
    Stop,
    /// The workers drain as one operation.
    Drain,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SchedulerCmd {
    /// Pause new moves (drains, rebalances) with a reason, until resumed or for a while; moves
    /// in flight finish, acknowledgements apply, deaths are still judged and their replicas
    /// re-created.
    Pause {
        /// Why (shown in status, events and metrics).
        #[arg(long)]
        reason: String,
        /// Resume by itself after this long, on the leader's clock (`30m`, `2h`).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        for_: Option<Duration>,
    },
    /// End the pause: the held-back moves start in the next round.
    Resume,
}

/// A duration such as `30m` or `2h`, for clap.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(value)
        .map_err(|e| format!("{value:?} is not a duration like 30m or 2h ({e})"))?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

#[derive(Debug, clap::Args)]
pub(crate) struct EventsArgs {
    /// Events after this sequence number, oldest first, at most `--limit` (instead of the
    /// newest `--tail`).
    #[arg(long, value_name = "SEQ", conflicts_with = "tail")]
    pub(crate) after: Option<u64>,
    /// With `--after`: the most events to print.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) limit: usize,
    /// The newest N matching events (default 20).
    #[arg(long, value_name = "N")]
    pub(crate) tail: Option<usize>,
    /// Then keep printing matching events as they are committed (Ctrl-C to stop).
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
    /// Only events from this time on: RFC 3339 (`2026-12-02T16:00:00Z`, or with an offset) or
    /// an age (`10m`, `2h`).
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Only events about this worker (its transitions, its replicas, drains naming it).
    #[arg(long, value_name = "ID")]
    pub(crate) worker: Option<String>,
    /// Only events of these kinds (comma separated or repeated).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(EVENT_KINDS))]
    pub(crate) kind: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MembersCmd {
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
pub(crate) enum EndpointCmd {
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
pub(crate) enum StateArg {
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
pub(crate) enum WorkersCmd {
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
        /// Why (recorded on the worker and in its event).
        #[arg(long)]
        reason: Option<String>,
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
        /// Why (recorded on the worker and in its event).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        deadline: DeadlineArgs,
    },
    /// Draining → Active: completed moves stay, pending ones are withdrawn.
    CancelDrain {
        /// The worker's id.
        id: String,
        /// Why (recorded on the worker and in its event).
        #[arg(long)]
        reason: Option<String>,
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
        /// Why (recorded on the worker and in its event).
        #[arg(long)]
        reason: Option<String>,
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
    /// Bring a Disabled worker back: its running agent is asked to register again (SPEC §1: a
    /// new generation, Provisioning, then Active when ready); with no agent running, says what
    /// to do.
    Recommission {
        /// The worker's id.
        id: String,
    },
    /// Cordon a worker under a holder's name: nothing new is placed on it; it keeps and serves
    /// its replicas. Several holders may cordon one worker; it lifts when the last is gone.
    Cordon {
        /// The worker's id.
        id: String,
        /// Who holds this cordon (you, a team, a tool): `uncordon --holder` removes it.
        #[arg(long)]
        holder: String,
        /// Why (shown on the worker and in events).
        #[arg(long)]
        reason: String,
        /// Lift it by itself after this long, on the leader's clock (`30m`, `2h`).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        for_: Option<Duration>,
    },
    /// Remove a holder's cordon (the worker stays cordoned while other holders remain).
    Uncordon {
        /// The worker's id.
        id: String,
        /// Whose cordon to remove.
        #[arg(long)]
        holder: String,
    },
    /// Put a worker in maintenance for a restart without data movement: it keeps its replicas,
    /// its preferred leaderships move off, and it is not declared dead until `--for` passes.
    /// Ends by itself once a restarted process registers and is heard. Refused (exit 6,
    /// `budget_exceeded`) when a partition would keep fewer than `min_available` serving
    /// replicas.
    Maintenance {
        /// The worker's id.
        id: String,
        /// Why (shown on the worker and in events).
        #[arg(long)]
        reason: String,
        /// At most this long (`10m`; at most `24h`), on the leader's clock.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
        for_: Duration,
    },
    /// End a worker's maintenance now: the normal liveness rules apply again.
    EndMaintenance {
        /// The worker's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PartitionsCmd {
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
pub(crate) enum KvCmd {
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
pub(crate) enum SettingsCmd {
    /// The settings in force (every node answers the same).
    Get,
    /// Change settings in one Raft command, e.g. `dead-after=10s max-moves-per-worker=2`.
    /// Durations take units (`500ms`, `30s`, `1m`). Keys: heartbeat-interval, suspect-after,
    /// dead-after, join-timeout, max-moves-per-worker, max-moves-total, kv-max-value-bytes,
    /// events-retained, min-available (0: a majority), max-deaths-fraction (0 < f <= 1).
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
pub(crate) enum Setting {
    HeartbeatInterval,
    SuspectAfter,
    DeadAfter,
    JoinTimeout,
    MaxMovesPerWorker,
    MaxMovesTotal,
    KvMaxValueBytes,
    EventsRetained,
    MinAvailable,
    /// Carried in parts per million.
    MaxDeathsFraction,
}

impl Setting {
    const ALL: [(&'static str, Setting); 10] = [
        ("heartbeat-interval", Setting::HeartbeatInterval),
        ("suspect-after", Setting::SuspectAfter),
        ("dead-after", Setting::DeadAfter),
        ("join-timeout", Setting::JoinTimeout),
        ("max-moves-per-worker", Setting::MaxMovesPerWorker),
        ("max-moves-total", Setting::MaxMovesTotal),
        ("kv-max-value-bytes", Setting::KvMaxValueBytes),
        ("events-retained", Setting::EventsRetained),
        ("min-available", Setting::MinAvailable),
        ("max-deaths-fraction", Setting::MaxDeathsFraction),
    ];

    pub(crate) fn is_duration(self) -> bool {
        matches!(
            self,
            Setting::HeartbeatInterval
                | Setting::SuspectAfter
                | Setting::DeadAfter
                | Setting::JoinTimeout
        )
    }

    /// Lays `value` (milliseconds for durations) over `patch`.
    pub(crate) fn apply(
        self,
        value: u64,
        patch: &mut drover_types::SettingsPatch,
    ) -> Result<(), String> {
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
            Setting::MinAvailable => patch.min_available = Some(small(value)?),
            Setting::MaxDeathsFraction => {
                patch.max_deaths_fraction = Some(drover_types::Fraction::from_ppm(small(value)?)?)
            }
        }
        Ok(())
    }
}

/// `dead-after=10s` (or `dead_after`), `max-moves-per-worker=2`: the setting and its value,
/// durations in milliseconds.
pub(crate) fn parse_setting(s: &str) -> Result<(Setting, u64), String> {
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
    let parsed = if setting == Setting::MaxDeathsFraction {
        let f: drover_types::Fraction = value.parse().map_err(|e| format!("{key}: {e}"))?;
        u64::from(f.ppm())
    } else if setting.is_duration() {
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
pub(crate) enum SnapshotCmd {
    /// Save a consistent snapshot of the replicated state to FILE.
    Save {
        /// Where to write it (written beside, then renamed into place).
        file: std::path::PathBuf,
    },
    /// What a saved snapshot holds — its format and state version, workers by state,
    /// partitions and replicas, drains, keys, events — read from FILE alone, without a
    /// cluster. Exits 6 if FILE is not a backup this release reads (or breaks the state's
    /// invariants), 3 if there is no FILE.
    Inspect {
        /// The backup, as `snapshot save` wrote it.
        file: std::path::PathBuf,
    },
}
