//! One configuration tree, layered defaults < TOML file (`--config`) < `DROVER_*` environment <
//! flags, validated once at start-up into a typed [`Config`]. Every validation error is one line
//! naming the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use drover_raft::{RaftOptions, SnapshotPolicy};
use serde::Deserialize;

/// The command line. Every flag can also come from its `DROVER_*` variable or the TOML file.
#[derive(Debug, Default, Parser)]
#[command(
    name = "drover",
    version,
    about = "Drover: a Raft-replicated metadata store for worker lifecycles and partition placement"
)]
pub struct Cli {
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "DROVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id (a positive integer, unique in the cluster).
    #[arg(long, env = "DROVER_ID")]
    pub id: Option<String>,
    /// The one address of this node, for the API and Raft traffic (HOST:PORT).
    #[arg(long, env = "DROVER_LISTEN")]
    pub listen: Option<String>,
    /// Where this node keeps its data.
    #[arg(long, env = "DROVER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Bootstrap members, `1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003`.
    #[arg(long, env = "DROVER_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Join an existing cluster through this node (HOST:PORT) instead of bootstrapping.
    #[arg(long, env = "DROVER_JOIN")]
    pub join: Option<String>,
    /// Name shared by every node of the cluster; Raft messages from other clusters are refused.
    #[arg(long, env = "DROVER_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Token for administrators (everything).
    #[arg(long, env = "DROVER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[arg(long, env = "DROVER_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Fleet-wide token for worker agents.
    #[arg(long, env = "DROVER_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,
    #[arg(long, env = "DROVER_WORKER_TOKEN_FILE")]
    pub worker_token_file: Option<PathBuf>,
    /// Secret every node presents on Raft traffic.
    #[arg(long, env = "DROVER_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    #[arg(long, env = "DROVER_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Raft heartbeat interval in milliseconds (default 100).
    #[arg(long, env = "DROVER_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Election timeout lower bound in milliseconds (default 500).
    #[arg(long, env = "DROVER_ELECTION_TIMEOUT_MIN_MS")]
    pub election_timeout_min_ms: Option<u64>,
    /// Election timeout upper bound in milliseconds (default 1000).
    #[arg(long, env = "DROVER_ELECTION_TIMEOUT_MAX_MS")]
    pub election_timeout_max_ms: Option<u64>,
    /// Snapshot after this many log entries (default 10000).
    #[arg(long, env = "DROVER_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// Log entries kept behind a snapshot for lagging followers (default 5000).
    #[arg(long, env = "DROVER_LOGS_TO_KEEP")]
    pub logs_to_keep: Option<u64>,
    /// Largest API request body in bytes (default 1 MiB).
    #[arg(long, env = "DROVER_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Log format: `human` or `json` (default human).
    #[arg(long, env = "DROVER_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Serve `/debug/faults`, which drops or delays this node's outgoing Raft messages. Tests only.
    #[arg(long, env = "DROVER_ENABLE_FAULT_INJECTION")]
    pub enable_fault_injection: Option<bool>,
    /// Initial cluster setting: how often agents heartbeat, in milliseconds (default 1000).
    /// The first leader of a new cluster commits this node's liveness settings; afterwards they
    /// are replicated and changed with `droverctl settings set`.
    #[arg(long, env = "DROVER_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<u64>,
    /// Initial cluster setting: a worker unheard this long is suspect, in ms (default 5000).
    #[arg(long, env = "DROVER_SUSPECT_AFTER_MS")]
    pub suspect_after_ms: Option<u64>,
    /// Initial cluster setting: a worker unheard this long may be declared dead, in ms
    /// (default 30000).
    #[arg(long, env = "DROVER_DEAD_AFTER_MS")]
    pub dead_after_ms: Option<u64>,
    /// DANGEROUS, tests only: serve "linearizable" reads from this node's local state without
    /// confirming leadership. Breaks linearizability; exists so the fault-injection harness can
    /// show it catches that. Flag or env only, never the file.
    #[arg(long, env = "DROVER_UNSAFE_TEST_LOCAL_READS", hide = true)]
    pub unsafe_test_local_reads: Option<bool>,
    /// DANGEROUS, tests only: acknowledge a write once it is in the leader's local log, before
    /// a majority has it. Loses acknowledged writes; exists so the fault-injection harness can
    /// show it catches that. Flag or env only, never the file.
    #[arg(long, env = "DROVER_UNSAFE_TEST_EARLY_ACK", hide = true)]
    pub unsafe_test_early_ack: Option<bool>,
    /// DANGEROUS, tests only: acknowledge agents' heartbeats on whichever node receives them,
    /// without forwarding to the leader or confirming leadership. Breaks the lease; exists so
    /// the fault-injection harness can show it catches that. Flag or env only, never the file.
    #[arg(long, env = "DROVER_UNSAFE_TEST_LOCAL_HEARTBEATS", hide = true)]
    pub unsafe_test_local_heartbeats: Option<bool>,
    /// DANGEROUS, tests only: grant a new process of a worker its lease at once, without
    /// waiting out the older process's. Lets two processes hold one worker's lease; exists so
    /// the fault-injection harness can show it catches that. Flag or env only, never the file.
    #[arg(long, env = "DROVER_UNSAFE_TEST_NO_LEASE_WAIT", hide = true)]
    pub unsafe_test_no_lease_wait: Option<bool>,
}

/// The same settings as they may appear in the TOML file (snake_case keys).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    initial_cluster: Option<String>,
    join: Option<String>,
    cluster_id: Option<String>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    worker_token: Option<String>,
    worker_token_file: Option<PathBuf>,
    cluster_secret: Option<String>,
    cluster_secret_file: Option<PathBuf>,
    heartbeat_ms: Option<u64>,
    election_timeout_min_ms: Option<u64>,
    election_timeout_max_ms: Option<u64>,
    snapshot_every: Option<u64>,
    logs_to_keep: Option<u64>,
    max_body_bytes: Option<usize>,
    log_format: Option<String>,
    enable_fault_injection: Option<bool>,
    heartbeat_interval_ms: Option<u64>,
    suspect_after_ms: Option<u64>,
    dead_after_ms: Option<u64>,
}

/// How this node enters its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Bootstrap with these members (only if the data dir is new).
    Initial(BTreeMap<u64, SocketAddr>),
    /// Ask the node at this address to add us (only if the data dir is new).
    Join(String),
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
    pub cluster_id: String,
    pub admin_token: Option<String>,
    pub worker_token: Option<String>,
    pub cluster_secret: Option<String>,
    pub raft: RaftOptions,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    pub enable_fault_injection: bool,
    pub liveness: LivenessConfig,
    /// Deliberate bugs for the fault-injection harness's own tests; all off in any real use.
    pub unsafe_test: UnsafeTestSwitches,
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
}

impl UnsafeTestSwitches {
    pub fn any(&self) -> bool {
        self.local_reads || self.early_ack || self.local_heartbeats || self.no_lease_wait
    }
}

/// Worker liveness timing (SPEC §1) this node proposes as the cluster's initial settings if
/// it is the first leader of a new cluster. The settings in force are the replicated ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    pub heartbeat_interval: Duration,
    pub suspect_after: Duration,
    pub dead_after: Duration,
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
    /// Layers the TOML file under the flags and environment, then validates.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .or_else(|e| err(format!("--config {}: {e}", path.display())))?;
                toml::from_str(&text).or_else(|e| {
                    let msg = e.to_string().replace('\n', " ");
                    err(format!("--config {}: {}", path.display(), msg.trim()))
                })?
            }
        };

        let id = match (self.id, file.id) {
            (Some(s), _) => match s.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => return err(format!("--id: {s:?} is not a positive integer")),
            },
            (None, Some(n)) if n > 0 => n,
            (None, Some(_)) => return err("id: must be a positive integer"),
            (None, None) => return err("--id is required"),
        };
        let Some(listen) = self.listen.or(file.listen) else {
            return err("--listen is required (HOST:PORT)");
        };
        let listen = parse_addr("--listen", &listen)?;
        if listen.port() == 0 {
            return err("--listen: port 0 is not an address peers can reach");
        }
        let Some(data_dir) = self.data_dir.or(file.data_dir) else {
            return err("--data-dir is required");
        };
        let membership = match (
            self.initial_cluster.or(file.initial_cluster),
            self.join.or(file.join),
        ) {
            (Some(_), Some(_)) => {
                return err(
                    "--initial-cluster and --join are both set; a node either bootstraps or joins",
                );
            }
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
            (None, Some(j)) => {
                parse_addr("--join", &j)?;
                Membership::Join(j)
            }
        };
        let cluster_id = self
            .cluster_id
            .or(file.cluster_id)
            .unwrap_or_else(|| "drover".into());
        if cluster_id.is_empty() || cluster_id.len() > 64 {
            return err("--cluster-id must be 1-64 bytes");
        }

        let defaults = RaftOptions::default();
        let ms = Duration::from_millis;
        let raft = RaftOptions {
            heartbeat: self
                .heartbeat_ms
                .or(file.heartbeat_ms)
                .map_or(defaults.heartbeat, ms),
            election_timeout_min: self
                .election_timeout_min_ms
                .or(file.election_timeout_min_ms)
                .map_or(defaults.election_timeout_min, ms),
            election_timeout_max: self
                .election_timeout_max_ms
                .or(file.election_timeout_max_ms)
                .map_or(defaults.election_timeout_max, ms),
            snapshot: SnapshotPolicy {
                snapshot_every: self
                    .snapshot_every
                    .or(file.snapshot_every)
                    .unwrap_or(defaults.snapshot.snapshot_every),
                logs_to_keep: self
                    .logs_to_keep
                    .or(file.logs_to_keep)
                    .unwrap_or(defaults.snapshot.logs_to_keep),
            },
            max_rpc_bytes: defaults.max_rpc_bytes,
        };
        if raft.snapshot.snapshot_every == 0 {
            return err("--snapshot-every must be at least 1");
        }
        raft.openraft_config(&cluster_id).map_err(ConfigError)?;

        let max_body_bytes = self
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(1 << 20);
        if max_body_bytes < 1024 {
            return err("--max-body-bytes must be at least 1024");
        }
        let log_format = match self.log_format.or(file.log_format).as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => return err(format!("--log-format: {other:?} is not human or json")),
        };
        let admin_token = secret(
            "admin-token",
            self.admin_token.or(file.admin_token),
            self.admin_token_file.or(file.admin_token_file),
        )?;
        let worker_token = secret(
            "worker-token",
            self.worker_token.or(file.worker_token),
            self.worker_token_file.or(file.worker_token_file),
        )?;
        let cluster_secret = secret(
            "cluster-secret",
            self.cluster_secret.or(file.cluster_secret),
            self.cluster_secret_file.or(file.cluster_secret_file),
        )?;
        let ms = |flag: Option<u64>, file: Option<u64>, default: u64| {
            Duration::from_millis(flag.or(file).unwrap_or(default))
        };
        let liveness = LivenessConfig {
            heartbeat_interval: ms(
                self.heartbeat_interval_ms,
                file.heartbeat_interval_ms,
                1_000,
            ),
            suspect_after: ms(self.suspect_after_ms, file.suspect_after_ms, 5_000),
            dead_after: ms(self.dead_after_ms, file.dead_after_ms, 30_000),
        };
        if liveness.heartbeat_interval.is_zero()
            || liveness.suspect_after <= liveness.heartbeat_interval
            || liveness.dead_after <= liveness.suspect_after
        {
            return err(
                "liveness: need 0 < --heartbeat-interval-ms < --suspect-after-ms < --dead-after-ms",
            );
        }
        check_data_dir(&data_dir)?;
        Ok(Config {
            id,
            listen,
            data_dir,
            membership,
            cluster_id,
            admin_token,
            worker_token,
            cluster_secret,
            raft,
            max_body_bytes,
            log_format,
            liveness,
            enable_fault_injection: self
                .enable_fault_injection
                .or(file.enable_fault_injection)
                .unwrap_or(false),
            unsafe_test: UnsafeTestSwitches {
                local_reads: self.unsafe_test_local_reads.unwrap_or(false),
                early_ack: self.unsafe_test_early_ack.unwrap_or(false),
                local_heartbeats: self.unsafe_test_local_heartbeats.unwrap_or(false),
                no_lease_wait: self.unsafe_test_no_lease_wait.unwrap_or(false),
            },
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
                "id = 2\nlisten = \"127.0.0.1:7002\"\ndata_dir = {:?}\njoin = \"127.0.0.1:7001\"\nheartbeat_ms = 50\n",
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
}
