//! One configuration tree, validated once at start-up into a typed [`Config`].
//!
//! The tree (`Settings` below) is serde structs nested by concern — the node's identity at
//! the top, then `storage`, `raft`, `api`, `liveness` and `test` — each with its defaults. It is
//! layered by figment: defaults < the TOML file (`--config`) < `DROVER_*` environment < flags.
//! The environment and the flags come through clap (each flag's `env`, so a flag wins over its
//! variable and `--help` shows both), and clap's parse is the top layer, holding only what was
//! given. Durations are in human form (`500ms`, `30s`) through humantime; the older
//! millisecond flags still take a plain number of milliseconds. Every error, from the file or
//! from validation, is one line naming the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser};
use drover_raft::{RaftOptions, SnapshotPolicy};
use figment::Figment;
use figment::providers::{Data, Format, Serialized};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The command line: the top layer of the tree, shaped like it, holding only the flags (and
/// `DROVER_*` variables) that were given.
#[derive(Debug, Default, Parser, Serialize)]
#[command(
    name = "drover",
    version,
    about = "Drover: a Raft-replicated metadata store for worker lifecycles and partition placement"
)]
pub struct Cli {
    /// TOML file with any of the settings (see docs/operations.md); the environment and flags
    /// win over it.
    #[arg(long, env = "DROVER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// This node's id (a positive integer, unique in the cluster).
    #[arg(long, env = "DROVER_ID")]
    // Parsed by `into_config` rather than clap, so that its error is one line naming the flag.
    #[serde(skip)]
    pub id: Option<String>,
    /// The one address of this node, for the API and Raft traffic (HOST:PORT).
    #[arg(long, env = "DROVER_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Bootstrap members, `1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003`.
    #[arg(long, env = "DROVER_INITIAL_CLUSTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_cluster: Option<String>,
    /// Join an existing cluster through this node (HOST:PORT) instead of bootstrapping.
    #[arg(long, env = "DROVER_JOIN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    /// Name shared by every node of the cluster; Raft messages from other clusters are refused.
    #[arg(long, env = "DROVER_CLUSTER_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Log format: `human` or `json` (default human).
    #[arg(long, env = "DROVER_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[command(flatten)]
    pub storage: StorageFlags,
    #[command(flatten)]
    pub raft: RaftFlags,
    #[command(flatten)]
    pub api: ApiFlags,
    #[command(flatten)]
    pub liveness: LivenessFlags,
    #[command(flatten)]
    pub tls: TlsFlags,
    #[command(flatten)]
    pub test: TestFlags,
    #[command(flatten)]
    #[serde(skip)]
    pub recovery: RecoveryFlags,
    #[command(flatten)]
    #[serde(skip)]
    pub unsafe_test: UnsafeTestFlags,
}

/// Flags of the `storage` section.
#[derive(Debug, Default, Args, Serialize)]
pub struct StorageFlags {
    /// Where this node keeps its data.
    #[arg(long, env = "DROVER_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// Flags of the `raft` section.
#[derive(Debug, Default, Args, Serialize)]
#[command(next_help_heading = "Raft")]
pub struct RaftFlags {
    /// Raft heartbeat interval: milliseconds, or a duration such as `100ms` (default 100ms).
    #[arg(long = "heartbeat-ms", env = "DROVER_HEARTBEAT_MS", value_name = "DURATION", value_parser = millis)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Duration>,
    /// Election timeout lower bound: milliseconds or a duration (default 500ms).
    #[arg(long = "election-timeout-min-ms", env = "DROVER_ELECTION_TIMEOUT_MIN_MS", value_name = "DURATION", value_parser = millis)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub election_timeout_min: Option<Duration>,
    /// Election timeout upper bound: milliseconds or a duration (default 1s).
    #[arg(long = "election-timeout-max-ms", env = "DROVER_ELECTION_TIMEOUT_MAX_MS", value_name = "DURATION", value_parser = millis)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub election_timeout_max: Option<Duration>,
    /// The leader fsyncs its own append of an entry before sending it to followers (openraft's
    /// stock order) instead of at the same time: for side-by-side benchmarks (default false).
    #[arg(
        long = "raft-serial-append",
        env = "DROVER_RAFT_SERIAL_APPEND",
        hide = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_append: Option<bool>,
    /// The leader answers a linearizable read from its lease while a quorum acknowledged it
    /// within the last 4/5 of half the election timeout max (400ms by default), instead of
    /// with a heartbeat round for the read (default true). Relies on the nodes' clocks running
    /// at rates within 20% of each other.
    #[arg(long = "raft-lease-reads", env = "DROVER_RAFT_LEASE_READS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_reads: Option<bool>,
    /// How long the leader holds a new commit index for a follower it has nothing else to
    /// send, so that the next entry carries it instead of an empty append (default 2ms; 0
    /// sends it at once, as stock openraft): for side-by-side benchmarks.
    #[arg(long = "raft-commit-linger", env = "DROVER_RAFT_COMMIT_LINGER", value_name = "DURATION", value_parser = millis, hide = true)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub commit_linger: Option<Duration>,
    /// Snapshot after this many log entries (default 10000).
    #[arg(long, env = "DROVER_SNAPSHOT_EVERY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_every: Option<u64>,
    /// Log entries kept behind a snapshot for lagging followers (default 5000).
    #[arg(long, env = "DROVER_LOGS_TO_KEEP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs_to_keep: Option<u64>,
    /// Secret every node presents on Raft traffic.
    #[arg(long, env = "DROVER_CLUSTER_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secret (so it does not show in `ps`).
    #[arg(long, env = "DROVER_CLUSTER_SECRET_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret_file: Option<PathBuf>,
}

/// Flags of the `api` section.
#[derive(Debug, Default, Args, Serialize)]
#[command(next_help_heading = "API")]
pub struct ApiFlags {
    /// Largest API request body in bytes (default 1 MiB).
    #[arg(long, env = "DROVER_MAX_BODY_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Most KV writes and acknowledgements waiting on the leader to be proposed (default
    /// 10000); past it a write is answered 503 `unavailable` with `Retry-After`, unproposed.
    #[arg(long, env = "DROVER_MAX_QUEUED_WRITES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_writes: Option<usize>,
    /// How long a client may take to send a request's head, or pause inside its body, and how
    /// long a keep-alive connection may sit idle: milliseconds or a duration (default 30s).
    #[arg(long, env = "DROVER_HTTP_READ_TIMEOUT", value_name = "DURATION", value_parser = millis)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub http_read_timeout: Option<Duration>,
    /// Token for administrators (everything).
    #[arg(long, env = "DROVER_ADMIN_TOKEN", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// File holding the admin token.
    #[arg(long, env = "DROVER_ADMIN_TOKEN_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// Fleet-wide token for worker agents.
    #[arg(long, env = "DROVER_WORKER_TOKEN", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_token: Option<String>,
    /// File holding the worker token.
    #[arg(long, env = "DROVER_WORKER_TOKEN_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_token_file: Option<PathBuf>,
}

/// Flags of the `liveness` section: initial cluster settings. The first leader of a new cluster
/// commits this node's; afterwards they are replicated and changed with `droverctl settings set`.
#[derive(Debug, Default, Args, Serialize)]
#[command(next_help_heading = "Liveness (initial cluster settings)")]
pub struct LivenessFlags {
    /// How often agents heartbeat: milliseconds or a duration (default 1s).
    #[arg(long = "heartbeat-interval-ms", env = "DROVER_HEARTBEAT_INTERVAL_MS", value_name = "DURATION", value_parser = millis)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<Duration>,
    /// A worker unheard this long is suspect: milliseconds or a duration (default 5s).
    #[arg(long = "suspect-after-ms", env = "DROVER_SUSPECT_AFTER_MS", value_name = "DURATION", value_parser = millis)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub suspect_after: Option<Duration>,
    /// A worker unheard this long may be declared dead: milliseconds or a duration
    /// (default 30s).
    #[arg(long = "dead-after-ms", env = "DROVER_DEAD_AFTER_MS", value_name = "DURATION", value_parser = millis)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub dead_after: Option<Duration>,
    /// At most this fraction of the serving workers may be declared dead within one
    /// `dead_after` before the mass-failure brake holds further deaths (default 0.333334).
    #[arg(
        long = "max-deaths-fraction",
        env = "DROVER_MAX_DEATHS_FRACTION",
        value_name = "FRACTION"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deaths_fraction: Option<drover_types::Fraction>,
}

/// Flags of the `tls` section: TLS on the API and on Raft traffic (docs/operations.md "TLS").
#[derive(Debug, Default, Args, Serialize)]
#[command(next_help_heading = "TLS")]
pub struct TlsFlags {
    /// This node's certificate chain (PEM): serve HTTPS, and present it to peers. Reloaded
    /// when the file changes or on SIGHUP.
    #[arg(long, env = "DROVER_CERT_FILE", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The private key of --cert-file (PEM).
    #[arg(long, env = "DROVER_KEY_FILE", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// CA certificates (PEM) that peers' server and client certificates must be signed by
    /// (default: the system's roots, and no client certificates accepted).
    #[arg(long, env = "DROVER_TRUSTED_CA_FILE", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Raft traffic only from peers presenting a client certificate signed by
    /// --trusted-ca-file (the cluster secret is still checked).
    #[arg(long, env = "DROVER_PEER_CLIENT_CERT_AUTH", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_client_cert_auth: Option<bool>,
}

/// Flags of the `test` section.
#[derive(Debug, Default, Args, Serialize)]
#[command(next_help_heading = "Tests only")]
pub struct TestFlags {
    /// Serve `/debug/faults`, which drops or delays this node's outgoing Raft messages. Tests only.
    #[arg(long, env = "DROVER_ENABLE_FAULT_INJECTION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_fault_injection: Option<bool>,
}

/// One-time recovery actions (docs/operations.md "Disasters"), from flags only: never from the
/// file or the environment, where they would be easy to leave in place; a flag left on the
/// command line is refused at the next start, as the data dir is used (restore) or of the new
/// cluster id (force-new-cluster). Outside the tree for that reason.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Recovery (one-time)")]
pub struct RecoveryFlags {
    /// Bootstrap a new cluster from this `droverctl snapshot save` file. Needs an empty
    /// --data-dir, --initial-cluster (start every listed node with the same file) and a
    /// --cluster-id other than the backup's.
    #[arg(long, value_name = "FILE")]
    pub restore: Option<PathBuf>,
    /// After losing a quorum for good: start this node's existing data as a cluster of one
    /// voter, keeping everything its log holds; then add members back with `--join`. Writes
    /// the lost majority acknowledged after this node's last entry are gone. Needs a
    /// --cluster-id other than the data dir's: the forced cluster is a new one.
    #[arg(long, conflicts_with = "restore")]
    pub force_new_cluster: bool,
}

/// Deliberate bugs, from flags or the environment only: never from the file, so no
/// configuration file left lying around can turn one on. Outside the tree for that reason.
#[derive(Debug, Default, Args)]
pub struct UnsafeTestFlags {
    /// DANGEROUS, tests only: serve "linearizable" reads from this node's local state without
    /// confirming leadership. Breaks linearizability; exists so the fault-injection harness can
    /// show it catches that.
    #[arg(long, env = "DROVER_UNSAFE_TEST_LOCAL_READS", hide = true)]
    pub unsafe_test_local_reads: Option<bool>,
    /// DANGEROUS, tests only: acknowledge a write once it is in the leader's local log, before
    /// a majority has it. Loses acknowledged writes; exists so the fault-injection harness can
    /// show it catches that.
    #[arg(long, env = "DROVER_UNSAFE_TEST_EARLY_ACK", hide = true)]
    pub unsafe_test_early_ack: Option<bool>,
    /// DANGEROUS, tests only: acknowledge agents' heartbeats on whichever node receives them,
    /// without forwarding to the leader or confirming leadership. Breaks the lease; exists so
    /// the fault-injection harness can show it catches that.
    #[arg(long, env = "DROVER_UNSAFE_TEST_LOCAL_HEARTBEATS", hide = true)]
    pub unsafe_test_local_heartbeats: Option<bool>,
    /// DANGEROUS, tests only: grant a new process of a worker its lease at once, without
    /// waiting out the older process's. Lets two processes hold one worker's lease; exists so
    /// the fault-injection harness can show it catches that.
    #[arg(long, env = "DROVER_UNSAFE_TEST_NO_LEASE_WAIT", hide = true)]
    pub unsafe_test_no_lease_wait: Option<bool>,
    /// DANGEROUS, tests only: the leader trusts its read lease a hundred times longer than its
    /// followers keep it, so a leader cut off from them goes on serving reads after another was
    /// elected; exists so the tests can show they catch that.
    #[arg(long, env = "DROVER_UNSAFE_TEST_LONG_READ_LEASE", hide = true)]
    pub unsafe_test_long_read_lease: Option<bool>,
}

/// A millisecond flag's value: a plain number of milliseconds, as these flags have always
/// taken, or a duration in human form (`500ms`, `30s`).
fn millis(s: &str) -> Result<Duration, String> {
    match s.parse::<u64>() {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => humantime::parse_duration(s).map_err(|e| e.to_string()),
    }
}

/// The tree as the TOML file spells it, every key optional: a missing one takes its default.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    id: Option<u64>,
    listen: Option<String>,
    initial_cluster: Option<String>,
    join: Option<String>,
    cluster_id: String,
    log_format: String,
    storage: StorageSettings,
    raft: RaftSettings,
    api: ApiSettings,
    liveness: LivenessSettings,
    tls: TlsSettings,
    test: TestSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            id: None,
            listen: None,
            initial_cluster: None,
            join: None,
            cluster_id: "drover".into(),
            log_format: "human".into(),
            storage: StorageSettings::default(),
            raft: RaftSettings::default(),
            api: ApiSettings::default(),
            liveness: LivenessSettings::default(),
            tls: TlsSettings::default(),
            test: TestSettings::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StorageSettings {
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RaftSettings {
    #[serde(with = "humantime_serde")]
    heartbeat: Duration,
    #[serde(with = "humantime_serde")]
    election_timeout_min: Duration,
    #[serde(with = "humantime_serde")]
    election_timeout_max: Duration,
    serial_append: bool,
    lease_reads: bool,
    #[serde(with = "humantime_serde")]
    commit_linger: Duration,
    snapshot_every: u64,
    logs_to_keep: u64,
    cluster_secret: Option<String>,
    cluster_secret_file: Option<PathBuf>,
}

impl Default for RaftSettings {
    fn default() -> Self {
        let d = RaftOptions::default();
        Self {
            heartbeat: d.heartbeat,
            election_timeout_min: d.election_timeout_min,
            election_timeout_max: d.election_timeout_max,
            serial_append: d.serial_append,
            lease_reads: d.lease_reads,
            commit_linger: d.commit_linger,
            snapshot_every: d.snapshot.snapshot_every,
            logs_to_keep: d.snapshot.logs_to_keep,
            cluster_secret: None,
            cluster_secret_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ApiSettings {
    max_body_bytes: usize,
    max_queued_writes: usize,
    #[serde(with = "humantime_serde")]
    http_read_timeout: Duration,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    worker_token: Option<String>,
    worker_token_file: Option<PathBuf>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_queued_writes: 10_000,
            http_read_timeout: Duration::from_secs(30),
            admin_token: None,
            admin_token_file: None,
            worker_token: None,
            worker_token_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LivenessSettings {
    #[serde(with = "humantime_serde")]
    heartbeat_interval: Duration,
    #[serde(with = "humantime_serde")]
    suspect_after: Duration,
    #[serde(with = "humantime_serde")]
    dead_after: Duration,
    max_deaths_fraction: drover_types::Fraction,
}

impl Default for LivenessSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            suspect_after: Duration::from_secs(5),
            dead_after: Duration::from_secs(30),
            max_deaths_fraction: drover_types::Fraction::ONE_THIRD,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TlsSettings {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    trusted_ca_file: Option<PathBuf>,
    peer_client_cert_auth: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TestSettings {
    enable_fault_injection: bool,
}

/// TOML for figment, parsed by the workspace's `toml` (figment's own feature brings an older
/// one).
struct Toml;

impl Format for Toml {
    type Error = toml::de::Error;
    const NAME: &'static str = "TOML";

    fn from_str<T: DeserializeOwned>(string: &str) -> Result<T, Self::Error> {
        toml::from_str(string)
    }
}

/// How this node enters its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Bootstrap with these members (only if the data dir is new).
    Initial(BTreeMap<u64, SocketAddr>),
    /// Ask the node at this address to add us (only if the data dir is new).
    Join(String),
    /// Neither: the data dir holds the cluster already (`--force-new-cluster` only).
    Existing,
}

/// A one-time recovery to run on the store before Raft opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Seed an empty data dir from this backup file.
    Restore(PathBuf),
    /// Make this node's data a cluster of one voter.
    ForceNewCluster,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: u64,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub membership: Membership,
    pub recovery: Option<Recovery>,
    pub cluster_id: String,
    pub admin_token: Option<String>,
    pub worker_token: Option<String>,
    pub cluster_secret: Option<String>,
    /// TLS on every link, or plain HTTP.
    pub tls: Option<TlsConfig>,
    pub raft: RaftOptions,
    pub max_body_bytes: usize,
    /// Most writes waiting in the group commit's queue (`--max-queued-writes`).
    pub max_queued_writes: usize,
    /// The HTTP server's read timeout (`--http-read-timeout`).
    pub http_read_timeout: Duration,
    pub log_format: LogFormat,
    pub enable_fault_injection: bool,
    pub liveness: LivenessConfig,
    /// Deliberate bugs for the fault-injection harness's own tests; all off in any real use.
    pub unsafe_test: UnsafeTestSwitches,
    /// Where the node reads the time of day: the system's, except in tests that run the core on
    /// tokio's paused clock. Not a flag.
    pub clock: crate::clock::Clock,
}

/// TLS on the API and on Raft traffic, loaded and checked at start.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// This node's certificate and key, reloaded while running (`drover_tls::watch`).
    pub pair: std::sync::Arc<drover_tls::KeyPair>,
    /// The server side: `pair`, and client certificates checked against the CA, if any.
    pub server: std::sync::Arc<drover_tls::rustls::ServerConfig>,
    /// The client side, to peers: their certificates checked against the CA (or the
    /// system's roots), `pair` presented as this node's client certificate.
    pub client: drover_tls::rustls::ClientConfig,
    /// Raft RPCs only from peers that presented a verified client certificate.
    pub peer_client_cert_auth: bool,
}

impl Config {
    /// `https` with TLS, else `http`: how this node reaches its peers.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// Switches that break Drover's guarantees on purpose (SPEC §6), so that the fault-injection
/// harness can show it detects the breakage. Hidden from `--help`; the node logs loudly when one
/// is on. Never set them outside tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnsafeTestSwitches {
    /// Linearizable reads answered from the local applied state: no forwarding to the leader,
    /// no quorum confirmation, no wait for the apply index.
    pub local_reads: bool,
    /// Writes acknowledged once in the leader's local log, with the answer `apply` would give,
    /// before they are committed.
    pub early_ack: bool,
    /// Heartbeats acknowledged by any node, without the leader or a quorum.
    pub local_heartbeats: bool,
    /// A new generation's lease granted without waiting out the older process's.
    pub no_lease_wait: bool,
    /// The leader's read lease outlives its followers' (`RaftOptions::unsafe_long_read_lease`).
    pub long_read_lease: bool,
}

impl UnsafeTestSwitches {
    pub fn any(&self) -> bool {
        self.local_reads
            || self.early_ack
            || self.local_heartbeats
            || self.no_lease_wait
            || self.long_read_lease
    }
}

/// Worker liveness timing (SPEC §1) this node proposes as the cluster's initial settings if
/// it is the first leader of a new cluster. The settings in force are the replicated ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    pub heartbeat_interval: Duration,
    pub suspect_after: Duration,
    pub dead_after: Duration,
    pub max_deaths_fraction: drover_types::Fraction,
}

/// A one-line configuration error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse()
        .or_else(|_| err(format!("{what}: {s:?} is not an IP:PORT address")))
}

/// Parses `1=127.0.0.1:7001,2=127.0.0.1:7002`.
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<u64, SocketAddr>, ConfigError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((id, addr)) = part.split_once('=') else {
            return err(format!("--initial-cluster: {part:?} is not ID=HOST:PORT"));
        };
        let id: u64 = match id.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => {
                return err(format!(
                    "--initial-cluster: {id:?} is not a positive node id"
                ));
            }
        };
        let addr = parse_addr("--initial-cluster", addr.trim())?;
        if out.insert(id, addr).is_some() {
            return err(format!("--initial-cluster: node {id} is listed twice"));
        }
    }
    if out.is_empty() {
        return err("--initial-cluster is empty");
    }
    Ok(out)
}

fn secret(
    name: &str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<String>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => err(format!("--{name} and --{name}-file are both set; pick one")),
        (Some(v), None) if v.is_empty() => err(format!("--{name} is empty")),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().is_empty() => {
                err(format!("--{name}-file {}: file is empty", path.display()))
            }
            Ok(s) => Ok(Some(s.trim().to_owned())),
            Err(e) => err(format!("--{name}-file {}: {e}", path.display())),
        },
        (None, None) => Ok(None),
    }
}

/// Loads the TLS files, if any are set, into both sides' configurations.
fn tls_config(t: TlsSettings) -> Result<Option<TlsConfig>, ConfigError> {
    let tls_err = |e: drover_tls::Error| ConfigError(format!("TLS: {e}"));
    let (cert, key) = match (t.cert_file, t.key_file) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => {
            if t.trusted_ca_file.is_some() || t.peer_client_cert_auth {
                return err(
                    "--trusted-ca-file and --peer-client-cert-auth need --cert-file and --key-file",
                );
            }
            return Ok(None);
        }
        _ => return err("--cert-file and --key-file go together"),
    };
    if t.peer_client_cert_auth && t.trusted_ca_file.is_none() {
        return err(
            "--peer-client-cert-auth needs --trusted-ca-file, the CA peers' certificates are signed by",
        );
    }
    let pair = drover_tls::KeyPair::load(cert, key).map_err(tls_err)?;
    let ca = t.trusted_ca_file.as_deref();
    let server = drover_tls::server_config(pair.clone(), ca).map_err(tls_err)?;
    let client = drover_tls::client_config(ca, Some(pair.clone())).map_err(tls_err)?;
    Ok(Some(TlsConfig {
        pair,
        server,
        client,
        peer_client_cert_auth: t.peer_client_cert_auth,
    }))
}

/// Checks that `dir` exists (creating it) and that we can write in it.
fn check_data_dir(dir: &Path) -> Result<(), ConfigError> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return err(format!("--data-dir {}: cannot create: {e}", dir.display()));
    }
    let probe = dir.join(".drover-write-test");
    match std::fs::write(&probe, b"ok") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => err(format!("--data-dir {}: not writable: {e}", dir.display())),
    }
}

impl Cli {
    /// Layers defaults, the TOML file and these flags (with the environment) into the tree,
    /// then validates it.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let id = match &self.id {
            None => None,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => return err(format!("--id: {s:?} is not a positive integer")),
            },
        };
        let mut figment = Figment::new();
        if let Some(path) = &self.config {
            // Read here rather than by figment, which takes a missing file for an empty one.
            let text = std::fs::read_to_string(path)
                .or_else(|e| err(format!("--config {}: {e}", path.display())))?;
            figment = figment.merge(Data::<Toml>::string(&text));
        }
        figment = figment.merge(Serialized::defaults(&self));
        if let Some(id) = id {
            figment = figment.merge(Serialized::default("id", id));
        }
        // The flags are typed already, so what fails to extract is the file's.
        let settings: Settings = figment.extract().map_err(|e| {
            let file = self.config.as_deref().unwrap_or(Path::new("-"));
            file_error(file, &e)
        })?;
        settings.validate(&self.recovery, &self.unsafe_test)
    }
}

/// One line naming the file and the key: figment's `Display` adds the profile to the key and
/// chains further errors on more lines.
fn file_error(file: &Path, e: &figment::Error) -> ConfigError {
    let kind = match &e.kind {
        figment::error::Kind::UnknownField(_, expected) => {
            format!("unknown key (expected one of {})", expected.join(", "))
        }
        other => other.to_string(),
    };
    let kind = kind.split_whitespace().collect::<Vec<_>>().join(" ");
    if e.path.is_empty() {
        ConfigError(format!("--config {}: {kind}", file.display()))
    } else {
        let key = e.path.join(".");
        ConfigError(format!("--config {}: {key}: {kind}", file.display()))
    }
}

impl Settings {
    /// Checks the tree and resolves it into the typed configuration; the errors name the flag
    /// (its file key is the same name in its section).
    fn validate(
        self,
        recovery: &RecoveryFlags,
        unsafe_test: &UnsafeTestFlags,
    ) -> Result<Config, ConfigError> {
        let id = match self.id {
            Some(n) if n > 0 => n,
            Some(_) => return err("id: must be a positive integer"),
            None => return err("--id is required"),
        };
        let Some(listen) = self.listen else {
            return err("--listen is required (HOST:PORT)");
        };
        let listen = parse_addr("--listen", &listen)?;
        if listen.port() == 0 {
            return err("--listen: port 0 is not an address peers can reach");
        }
        let Some(data_dir) = self.storage.data_dir else {
            return err("--data-dir is required");
        };
        let recovery = match (&recovery.restore, recovery.force_new_cluster) {
            (Some(file), _) => Some(Recovery::Restore(file.clone())),
            (None, true) => Some(Recovery::ForceNewCluster),
            (None, false) => None,
        };
        let membership = match (self.initial_cluster, self.join) {
            (Some(_), Some(_)) => {
                return err(
                    "--initial-cluster and --join are both set; a node either bootstraps or joins",
                );
            }
            (None, None) if recovery == Some(Recovery::ForceNewCluster) => Membership::Existing,
            (None, None) => {
                return err(
                    "one of --initial-cluster (bootstrap) or --join (add to a running cluster) is required",
                );
            }
            (Some(ic), None) => {
                let members = parse_initial_cluster(&ic)?;
                match members.get(&id) {
                    None => {
                        return err(format!(
                            "--initial-cluster does not list this node's id {id}"
                        ));
                    }
                    Some(a) if *a != listen => {
                        return err(format!(
                            "--initial-cluster lists node {id} at {a}, but --listen is {listen}"
                        ));
                    }
                    Some(_) => {}
                }
                Membership::Initial(members)
            }
            (None, Some(_)) if matches!(recovery, Some(Recovery::Restore(_))) => {
                return err(
                    "--restore bootstraps a new cluster: give it --initial-cluster, not --join",
                );
            }
            (None, Some(j)) => {
                parse_addr("--join", &j)?;
                Membership::Join(j)
            }
        };
        let cluster_id = self.cluster_id;
        if cluster_id.is_empty() || cluster_id.len() > 64 {
            return err("--cluster-id must be 1-64 bytes");
        }

        let r = self.raft;
        let raft = RaftOptions {
            heartbeat: r.heartbeat,
            election_timeout_min: r.election_timeout_min,
            election_timeout_max: r.election_timeout_max,
            serial_append: r.serial_append,
            lease_reads: r.lease_reads,
            commit_linger: r.commit_linger,
            unsafe_long_read_lease: unsafe_test.unsafe_test_long_read_lease.unwrap_or(false),
            snapshot: SnapshotPolicy {
                snapshot_every: r.snapshot_every,
                logs_to_keep: r.logs_to_keep,
            },
            max_rpc_bytes: RaftOptions::default().max_rpc_bytes,
        };
        if raft.snapshot.snapshot_every == 0 {
            return err("--snapshot-every must be at least 1");
        }
        raft.openraft_config(&cluster_id).map_err(ConfigError)?;

        let max_body_bytes = self.api.max_body_bytes;
        if max_body_bytes < 1024 {
            return err("--max-body-bytes must be at least 1024");
        }
        let max_queued_writes = self.api.max_queued_writes;
        if max_queued_writes == 0 {
            return err("--max-queued-writes must be at least 1");
        }
        let http_read_timeout = self.api.http_read_timeout;
        if http_read_timeout < Duration::from_millis(10) {
            return err("--http-read-timeout must be at least 10ms");
        }
        let log_format = match self.log_format.as_str() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => return err(format!("--log-format: {other:?} is not human or json")),
        };
        let admin_token = secret(
            "admin-token",
            self.api.admin_token,
            self.api.admin_token_file,
        )?;
        let worker_token = secret(
            "worker-token",
            self.api.worker_token,
            self.api.worker_token_file,
        )?;
        let cluster_secret = secret("cluster-secret", r.cluster_secret, r.cluster_secret_file)?;
        let l = self.liveness;
        let liveness = LivenessConfig {
            heartbeat_interval: l.heartbeat_interval,
            suspect_after: l.suspect_after,
            dead_after: l.dead_after,
            max_deaths_fraction: l.max_deaths_fraction,
        };
        if liveness.heartbeat_interval.is_zero()
            || liveness.suspect_after <= liveness.heartbeat_interval
            || liveness.dead_after <= liveness.suspect_after
        {
            return err(
                "liveness: need 0 < --heartbeat-interval-ms < --suspect-after-ms < --dead-after-ms",
            );
        }
        let tls = tls_config(self.tls)?;
        check_data_dir(&data_dir)?;
        Ok(Config {
            id,
            listen,
            data_dir,
            membership,
            recovery,
            cluster_id,
            admin_token,
            worker_token,
            cluster_secret,
            tls,
            raft,
            max_body_bytes,
            max_queued_writes,
            http_read_timeout,
            log_format,
            liveness,
            enable_fault_injection: self.test.enable_fault_injection,
            unsafe_test: UnsafeTestSwitches {
                local_reads: unsafe_test.unsafe_test_local_reads.unwrap_or(false),
                early_ack: unsafe_test.unsafe_test_early_ack.unwrap_or(false),
                local_heartbeats: unsafe_test.unsafe_test_local_heartbeats.unwrap_or(false),
                no_lease_wait: unsafe_test.unsafe_test_no_lease_wait.unwrap_or(false),
                long_read_lease: unsafe_test.unsafe_test_long_read_lease.unwrap_or(false),
            },
            clock: crate::clock::Clock::System,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("drover").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn flags_win_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("drover.toml");
        std::fs::write(
            &file,
            format!(
                "id = 2\nlisten = \"127.0.0.1:7002\"\njoin = \"127.0.0.1:7001\"\n\
                 [storage]\ndata_dir = {:?}\n[raft]\nheartbeat = \"50ms\"\n",
                dir.path().join("data")
            ),
        )
        .unwrap();
        let c = cli(&["--config", file.to_str().unwrap(), "--heartbeat-ms", "70"])
            .into_config()
            .unwrap();
        assert_eq!(c.id, 2);
        assert_eq!(c.raft.heartbeat, Duration::from_millis(70));
        assert_eq!(c.membership, Membership::Join("127.0.0.1:7001".into()));
    }

    /// Recovery flags are one-time actions from the command line: `--force-new-cluster` needs
    /// no membership flag (the data dir has one); `--restore` needs `--initial-cluster`; the
    /// two exclude each other; the file cannot ask for either.
    #[test]
    fn recovery_flags() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let base = ["--id", "1", "--listen", "127.0.0.1:7001", "--data-dir"];
        let with = |more: &[&str]| {
            let mut args: Vec<&str> = base.to_vec();
            args.push(data.to_str().unwrap());
            args.extend_from_slice(more);
            Cli::try_parse_from(std::iter::once("drover").chain(args)).map(Cli::into_config)
        };
        let c = with(&["--force-new-cluster"]).unwrap().unwrap();
        assert_eq!(c.membership, Membership::Existing);
        assert_eq!(c.recovery, Some(Recovery::ForceNewCluster));
        let c = with(&[
            "--restore",
            "b.drover",
            "--initial-cluster",
            "1=127.0.0.1:7001",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.recovery, Some(Recovery::Restore("b.drover".into())));
        let e = with(&["--restore", "b.drover", "--join", "127.0.0.1:7002"])
            .unwrap()
            .unwrap_err();
        assert!(e.0.contains("not --join"), "{e}");
        let e = with(&["--restore", "b.drover"]).unwrap().unwrap_err();
        assert!(e.0.contains("--initial-cluster"), "{e}");
        assert!(with(&["--restore", "b", "--force-new-cluster"]).is_err());
        let file = dir.path().join("drover.toml");
        std::fs::write(&file, "force_new_cluster = true\n").unwrap();
        let e = with(&[
            "--config",
            file.to_str().unwrap(),
            "--join",
            "127.0.0.1:7002",
        ])
        .unwrap()
        .unwrap_err();
        assert!(e.0.contains("unknown key"), "{e}");
    }

    #[test]
    fn bad_configurations_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let data = data.to_str().unwrap();
        let cases: &[(&[&str], &str)] = &[
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--data-dir",
                    data,
                    "--join",
                    "127.0.0.1:2",
                ],
                "--id is required",
            ),
            (
                &[
                    "--id",
                    "x",
                    "--listen",
                    "127.0.0.1:1",
                    "--data-dir",
                    data,
                    "--join",
                    "127.0.0.1:2",
                ],
                "--id",
            ),
            (
                &[
                    "--id",
                    "1",
                    "--listen",
                    "nope",
                    "--data-dir",
                    data,
                    "--join",
                    "127.0.0.1:2",
                ],
                "--listen",
            ),
            (
                &["--id", "1", "--listen", "127.0.0.1:1", "--data-dir", data],
                "one of --initial-cluster",
            ),
            (
                &[
                    "--id",
                    "1",
                    "--listen",
                    "127.0.0.1:1",
                    "--data-dir",
                    data,
                    "--join",
                    "127.0.0.1:2",
                    "--initial-cluster",
                    "1=127.0.0.1:1",
                ],
                "both set",
            ),
            (
                &[
                    "--id",
                    "4",
                    "--listen",
                    "127.0.0.1:1",
                    "--data-dir",
                    data,
                    "--initial-cluster",
                    "1=127.0.0.1:1",
                ],
                "does not list",
            ),
            (
                &[
                    "--id",
                    "1",
                    "--listen",
                    "127.0.0.1:1",
                    "--data-dir",
                    data,
                    "--initial-cluster",
                    "1=nope",
                ],
                "--initial-cluster",
            ),
        ];
        for (args, want) in cases {
            let e = cli(args).into_config().unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    fn write(dir: &Path, text: &str) -> String {
        let file = dir.join("drover.toml");
        std::fs::write(&file, text).unwrap();
        file.to_str().unwrap().to_owned()
    }

    /// The file is the tree nested by concern, with durations in human form; what it leaves out
    /// takes its default. The millisecond flags take a plain number of milliseconds, as they
    /// always have, or a duration.
    #[test]
    fn the_file_nests_by_concern_and_flags_take_milliseconds_or_durations() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            &format!(
                "id = 1\nlisten = \"127.0.0.1:7001\"\ninitial_cluster = \"1=127.0.0.1:7001\"\n\
                 [storage]\ndata_dir = {:?}\n\
                 [raft]\nelection_timeout_max = \"2s\"\nsnapshot_every = 7\n\
                 [api]\nmax_body_bytes = 4096\nadmin_token = \"a\"\n\
                 [liveness]\nsuspect_after = \"10s\"\ndead_after = \"1m\"\nmax_deaths_fraction = 1\n\
                 [test]\nenable_fault_injection = true\n",
                dir.path().join("data")
            ),
        );
        let c = cli(&["--config", &file]).into_config().unwrap();
        assert_eq!(c.raft.election_timeout_max, Duration::from_secs(2));
        assert_eq!(c.raft.heartbeat, RaftOptions::default().heartbeat);
        assert_eq!(c.raft.snapshot.snapshot_every, 7);
        assert_eq!(c.max_body_bytes, 4096);
        assert_eq!(c.admin_token.as_deref(), Some("a"));
        assert_eq!(c.liveness.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(c.liveness.suspect_after, Duration::from_secs(10));
        assert_eq!(c.liveness.dead_after, Duration::from_secs(60));
        assert_eq!(c.liveness.max_deaths_fraction.of(5), 5);
        assert!(c.enable_fault_injection);
        assert_eq!(c.cluster_id, "drover");
        assert_eq!(c.log_format, LogFormat::Human);
        assert!(!c.unsafe_test.any());

        let c = cli(&[
            "--config",
            &file,
            "--heartbeat-ms",
            "150",
            "--suspect-after-ms",
            "2s",
            "--dead-after-ms",
            "2500ms",
            "--max-deaths-fraction",
            "0.5",
        ])
        .into_config()
        .unwrap();
        assert_eq!(c.raft.heartbeat, Duration::from_millis(150));
        assert_eq!(c.liveness.suspect_after, Duration::from_secs(2));
        assert_eq!(c.liveness.dead_after, Duration::from_millis(2500));
        assert_eq!(c.liveness.max_deaths_fraction.of(4), 2);
        assert!(
            Cli::try_parse_from(["drover", "--heartbeat-ms", "soon"]).is_err(),
            "not a duration"
        );
    }

    /// A misspelt key is refused rather than ignored, a duration must be in human form, and
    /// the deliberate bugs cannot come from the file; each error is one line naming the file
    /// and the key.
    #[test]
    fn the_file_refuses_unknown_keys_bad_durations_and_test_switches() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("[raft]\nheartbeats = \"1s\"\n", "raft"),
            ("[raft]\nheartbeat = 100\n", "raft.heartbeat"),
            ("[liveness]\ndead_after = \"soon\"\n", "liveness.dead_after"),
            (
                "unsafe_test_local_reads = true\n",
                "unsafe_test_local_reads",
            ),
            (
                "[test]\nunsafe_test_early_ack = true\n",
                "unsafe_test_early_ack",
            ),
            ("id = [\n", "--config"),
        ];
        for (text, want) in cases {
            let file = write(dir.path(), text);
            let e = cli(&["--config", &file])
                .into_config()
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("--config {file}: ")),
                "{text:?}: {e}"
            );
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let e = cli(&["--config", "/nonexistent/drover.toml"])
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--config /nonexistent/drover.toml: "), "{e}");
    }
}
