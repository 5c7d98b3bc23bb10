//! `drover-chaos agent`: one fleet worker as a process of its own, so the nemesis can pause,
//! cut off, kill and duplicate it ([`crate::fleet`] starts them inside the run's namespace).
//!
//! The process runs a `drover-agent`, acknowledges every catch-up and release task, asks to be
//! Active, and reports on stdout, one JSON [`Line`] a line (flushed at once), everything the
//! checks need: its registrations, every change of its lease with the expiry in wall-clock
//! milliseconds (`SystemTime`, the clock the events log's `at_ms` is stamped with — one machine),
//! its acknowledgements, and why it ended. It takes commands on stdin, one a line: `drain`
//! (graceful: `drain_and_wait`), `shutdown` (stop serving, then `Agent::shutdown()`, which gives
//! the lease up), `restart` (stop serving, then `Agent::maintenance_and_restart()`: the process
//! ends in maintenance for the harness to start the next one, or reports the refusal and serves
//! on). End of stdin — the harness went away — ends it at once.
//!
//! It switches to a uid of its own at start (`--uid`, when run as root), so that the harness can
//! cut exactly this process off with an nftables `meta skuid` rule ([`crate::netns`]) without
//! the agent library having to bind a source address.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drover_agent::{Agent, AgentConfig, Ended};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

/// What the harness passes an agent process.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The nodes, comma-separated `host:port`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// The worker id.
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub zone: Option<String>,
    /// The address registered for peers (never dialled in a chaos run).
    #[arg(long, default_value = "10.8.0.1:9000")]
    pub address: String,
    /// Switch to this uid (and gid) before doing anything else; needs root.
    #[arg(long)]
    pub uid: Option<u32>,
    /// Until the first heartbeat answer brings the cluster's settings.
    #[arg(long, default_value_t = 1_000)]
    pub heartbeat_interval_ms: u64,
    #[arg(long, default_value_t = 30_000)]
    pub dead_after_ms: u64,
    /// How long before the cluster could declare it dead the agent gives its lease up.
    #[arg(long, default_value_t = 1_000)]
    pub lease_margin_ms: u64,
    /// Talk HTTPS to the nodes, trusting this CA (read before switching uid).
    #[arg(long)]
    pub cacert: Option<std::path::PathBuf>,
}

/// One report of an agent process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Wall-clock milliseconds when the line was written.
    pub at_ms: u64,
    pub pid: u32,
    pub worker: String,
    /// The agent's generation when the line was written (0 before it first registered). A
    /// lease line is written after its lease was set, and the generation read after that: a
    /// lease is never attributed to an earlier generation than the one that earned it.
    pub generation: u64,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// Registered (a new generation).
    Registered,
    /// The lease is held until this wall-clock millisecond (rounded up).
    Lease {
        until_ms: u64,
    },
    /// The lease ran out or was dropped.
    Lost,
    /// The worker is Active at this process's request.
    Active,
    /// A catch-up or release was acknowledged.
    Ack {
        partition: u32,
        epoch: u64,
    },
    /// `drain` finished: the worker is Disabled.
    Drained,
    DrainFailed {
        error: String,
    },
    /// `restart` was refused (the disruption budget, say): the process serves on.
    RestartRefused {
        error: String,
    },
    /// The process stops: `superseded` when a newer process took the worker id.
    Ended {
        superseded: bool,
        reason: String,
    },
}

/// The reason of the [`What::Ended`] line of a process that restarted in maintenance.
pub const RESTARTED: &str = "restarting in maintenance";

/// Wall-clock milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `t` on the wall clock, rounded up to the millisecond: `now_wall + (t − now_instant)`. The
/// two clocks are read back to back; if the process was stopped between the two reads (a
/// SIGSTOP, a long preemption), the pair is read again, so a pause never shifts the result.
fn wall_ms_of(t: tokio::time::Instant) -> u64 {
    let t = t.into_std();
    loop {
        let w1 = SystemTime::now();
        let i = std::time::Instant::now();
        let w2 = SystemTime::now();
        if w2.duration_since(w1).unwrap_or(Duration::MAX) > Duration::from_millis(2) {
            continue;
        }
        let base = w1.duration_since(UNIX_EPOCH).unwrap_or_default();
        let at = if t >= i {
            base + (t - i)
        } else {
            base.saturating_sub(i - t)
        };
        return u64::try_from(at.as_micros().div_ceil(1_000)).unwrap_or(u64::MAX);
    }
}

struct Out {
    pid: u32,
    worker: String,
}

impl Out {
    /// Writes one line and flushes it. The harness reading it is gone if this fails: exit.
    fn emit(&self, generation: u64, what: What) {
        let line = Line {
            at_ms: now_ms(),
            pid: self.pid,
            worker: self.worker.clone(),
            generation,
            what,
        };
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(0);
        }
    }
}

/// Runs the agent process until it ends; returns the exit code.
pub fn main(args: Args) -> i32 {
    // The run's directory is root's: read the CA while still root.
    let tls = match &args.cacert {
        None => None,
        Some(ca) => match drover_tls::client_config(Some(ca), None) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("drover-chaos agent: {e}");
                return 2;
            }
        },
    };
    if let Some(uid) = args.uid
        && let Err(e) = switch_user(uid)
    {
        eprintln!("drover-chaos agent: cannot switch to uid {uid}: {e}");
        return 2;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drover-chaos agent: no runtime: {e}");
            return 2;
        }
    };
    rt.block_on(run(args, tls))
}

fn switch_user(uid: u32) -> nix::Result<()> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    setgroups(&[])?;
    setgid(Gid::from_raw(uid))?;
    setuid(Uid::from_raw(uid))
}

async fn run(a: Args, tls: Option<drover_tls::rustls::ClientConfig>) -> i32 {
    let out = Out {
        pid: std::process::id(),
        worker: a.id.clone(),
    };
    let (cmd_tx, mut cmds) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if cmd_tx.send(l.trim().to_owned()).is_err() {
                return;
            }
        }
        // End of stdin drops the sender: the main loop exits.
    });
    let mut cfg = AgentConfig::new(a.endpoints.clone(), a.id.clone(), a.address.clone());
    cfg.zone = a.zone.clone();
    cfg.heartbeat_interval = Duration::from_millis(a.heartbeat_interval_ms);
    cfg.dead_after = Duration::from_millis(a.dead_after_ms);
    cfg.lease_margin = Duration::from_millis(a.lease_margin_ms);
    cfg.tls = tls;

    let start = async {
        loop {
            match Agent::start(cfg.clone()).await {
                Ok(agent) => return agent,
                Err(e) => {
                    eprintln!("agent {}: start failed: {e}", cfg.worker_id);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    };
    tokio::pin!(start);
    let mut agent = loop {
        tokio::select! {
            agent = &mut start => break agent,
            cmd = cmds.recv() => match cmd.as_deref() {
                None | Some("shutdown") => return 0,
                Some(other) => eprintln!("agent {}: {other:?} before registering: ignored", a.id),
            },
        }
    };
    out.emit(agent.generation(), What::Registered);

    let (ev_tx, mut events) = mpsc::unbounded_channel::<What>();
    if let Some(mut tasks) = agent.take_tasks() {
        let handle = agent.handle();
        let tx = ev_tx.clone();
        tokio::spawn(async move {
            while let Some(task) = tasks.recv().await {
                let (h, tx) = (handle.clone(), tx.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        match h.ack(&task).await {
                            Ok(()) => {
                                let _ = tx.send(What::Ack {
                                    partition: task.partition,
                                    epoch: task.epoch,
                                });
                                return;
                            }
                            Err(drover_agent::Error::Client(e)) if e.status() == Some(409) => {
                                return;
                            }
                            Err(drover_agent::Error::Ended(_) | drover_agent::Error::Stopped) => {
                                return;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
                        }
                    }
                });
            }
        });
    }
    {
        let h = agent.handle();
        let tx = ev_tx.clone();
        tokio::spawn(async move {
            loop {
                match h.ready().await {
                    Ok(()) => {
                        let _ = tx.send(What::Active);
                        return;
                    }
                    Err(drover_agent::Error::Ended(_) | drover_agent::Error::Stopped) => return,
                    Err(e) => {
                        eprintln!("agent: ready failed: {e}");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
            }
        });
    }

    let mut lease = agent.lease_expiry();
    let mut ended = agent.ended();
    let mut generation = agent.generation();
    let mut held = false;
    loop {
        tokio::select! {
            changed = lease.changed() => {
                if changed.is_err() {
                    return 1;
                }
                // The lease first, then the generation (see `Line::generation`).
                let until = lease.borrow_and_update().until;
                let g = agent.generation();
                if g != generation {
                    generation = g;
                    out.emit(g, What::Registered);
                }
                match until {
                    Some(u) => {
                        held = true;
                        out.emit(g, What::Lease { until_ms: wall_ms_of(u) });
                    }
                    None if held => {
                        held = false;
                        out.emit(g, What::Lost);
                    }
                    None => {}
                }
            }
            changed = ended.changed() => {
                if changed.is_err() {
                    return 1;
                }
                let why = ended.borrow_and_update().clone();
                if let Some(why) = why {
                    if held {
                        out.emit(agent.generation(), What::Lost);
                    }
                    out.emit(agent.generation(), What::Ended {
                        superseded: matches!(why, Ended::Superseded { .. }),
                        reason: why.to_string(),
                    });
                    return 0;
                }
            }
            Some(e) = events.recv() => {
                let g = agent.generation();
                if g != generation {
                    generation = g;
                    out.emit(g, What::Registered);
                }
                out.emit(g, e);
            }
            cmd = cmds.recv() => match cmd.as_deref() {
                None => return 0,
                Some("drain") => {
                    let h = agent.handle();
                    let tx = ev_tx.clone();
                    tokio::spawn(async move {
                        let what = match h.drain_and_wait().await {
                            Ok(()) => What::Drained,
                            Err(e) => What::DrainFailed { error: e.to_string() },
                        };
                        let _ = tx.send(what);
                    });
                }
                Some("restart") => {
                    // Stop serving before the lease goes (the restart gives it up).
                    let g = agent.generation();
                    if held {
                        held = false;
                        out.emit(g, What::Lost);
                    }
                    match agent
                        .maintenance_and_restart(
                            "chaos rolling restart",
                            Duration::from_secs(20),
                            Duration::from_secs(5),
                        )
                        .await
                    {
                        Ok(()) => {
                            out.emit(g, What::Ended {
                                superseded: false,
                                reason: RESTARTED.to_owned(),
                            });
                            return 0;
                        }
                        Err(refused) => {
                            out.emit(g, What::RestartRefused { error: refused.error.to_string() });
                            agent = refused.agent;
                        }
                    }
                }
                Some("shutdown") => {
                    // The application stops serving first (this line), then gives the lease up.
                    let g = agent.generation();
                    if held {
                        out.emit(g, What::Lost);
                    }
                    let reason = match agent.shutdown().await {
                        Ok(()) => "shut down, lease released".to_owned(),
                        Err(e) => format!("shut down; the release failed: {e}"),
                    };
                    out.emit(g, What::Ended { superseded: false, reason });
                    return 0;
                }
                Some(other) => eprintln!("agent {}: unknown command {other:?}", a.id),
            },
        }
    }
}
