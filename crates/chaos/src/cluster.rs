//! Three `drover` processes inside the run's namespace, and the levers the nemesis pulls on
//! them: SIGKILL and restart, SIGSTOP and SIGCONT, link cuts (nftables, through [`Netns`]) and
//! message delay (the transport's fault layer, `/debug/faults`).

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::netns::Netns;

/// Where the clients' connections come from (no node uses it, so no cut touches a client).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const PORT: u16 = 7000;

/// Node `id`'s address in the namespace.
pub fn node_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + id as u8)
}

pub fn node_addr(id: u64) -> SocketAddr {
    SocketAddr::from((node_ip(id), PORT))
}

#[derive(Debug)]
pub struct Node {
    pub id: u64,
    args: Vec<String>,
    child: Option<Child>,
    paused: bool,
}

/// The cluster under test. Must be created, and its processes started, from a thread inside
/// the namespace.
pub struct Cluster {
    pub ids: Vec<u64>,
    nodes: Vec<Node>,
    dir: PathBuf,
    drover: PathBuf,
    netns: std::sync::Arc<Netns>,
    cuts: BTreeSet<(Ipv4Addr, Ipv4Addr)>,
    pub http: Http,
}

/// How the harness reaches the nodes: its HTTP client, over TLS when the nodes serve it.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    scheme: &'static str,
}

impl Http {
    /// A client from the harness's own address, trusting `tls`'s CA when given.
    pub fn new(tls: Option<drover_tls::rustls::ClientConfig>) -> Result<Http> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client = drover_tls::http_client(tls)
            .local_address(std::net::IpAddr::V4(CLIENT_IP))
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Http { client, scheme })
    }

    /// The URL of `path` on node `id`.
    pub fn url(&self, id: u64, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, node_addr(id))
    }
}

impl std::ops::Deref for Http {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.client
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub fn new(
        netns: std::sync::Arc<Netns>,
        drover: &Path,
        dir: &Path,
        liveness: crate::Liveness,
        extra: &[String],
        tls: Option<drover_tls::rustls::ClientConfig>,
    ) -> Result<Cluster> {
        let ids = vec![1, 2, 3];
        let initial = ids
            .iter()
            .map(|id| format!("{id}={}", node_addr(*id)))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = ids
            .iter()
            .map(|&id| {
                let mut args: Vec<String> = [
                    "--id",
                    &id.to_string(),
                    "--listen",
                    &node_addr(id).to_string(),
                    "--data-dir",
                    &dir.join(format!("node{id}")).display().to_string(),
                    "--initial-cluster",
                    &initial,
                    "--cluster-secret",
                    "chaos-secret",
                    "--enable-fault-injection",
                    "true",
                    // The cluster's first leader commits these as its liveness settings. With
                    // `dead_after` of a few seconds, workers die under the faults; with a day,
                    // none does. (The clients' workers never heartbeat: the checker's worker
                    // model takes their deaths from the events log.)
                    "--heartbeat-interval-ms",
                    &liveness.heartbeat_interval_ms.to_string(),
                    "--suspect-after-ms",
                    &liveness.suspect_after_ms.to_string(),
                    "--dead-after-ms",
                    &liveness.dead_after_ms.to_string(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                args.extend(extra.iter().cloned());
                Node {
                    id,
                    args,
                    child: None,
                    paused: false,
                }
            })
            .collect();
        let http = Http::new(tls)?;
        Ok(Cluster {
            ids,
            nodes,
            dir: dir.to_owned(),
            drover: drover.to_owned(),
            netns,
            cuts: BTreeSet::new(),
            http,
        })
    }

    pub fn netns(&self) -> std::sync::Arc<Netns> {
        self.netns.clone()
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node{id}.log"))
    }

    /// Starts (or restarts) node `id` with its data dir.
    pub fn spawn(&mut self, id: u64) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(id))?;
        let drover = self.drover.clone();
        let node = self.node_mut(id);
        let child = Command::new(&drover)
            .args(&node.args)
            .env("DROVER_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", drover.display()))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.nodes[(id - 1) as usize].child.is_some()
    }

    /// Node `id`'s process as the kernel sees it (pid and `/proc` state: R, S, T for
    /// stopped, Z), for a run that failed.
    pub fn process_state(&self, id: u64) -> String {
        let Some(c) = &self.nodes[(id - 1) as usize].child else {
            return "not running".to_owned();
        };
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", c.id())).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .unwrap_or("?");
        format!("pid {} state {state}", c.id())
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.nodes[(id - 1) as usize].paused
    }

    /// SIGKILL.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        node.paused = false;
    }

    fn signal(&mut self, id: u64, sig: Signal) {
        if let Some(c) = &self.nodes[(id - 1) as usize].child {
            let _ = kill(Pid::from_raw(c.id() as i32), sig);
        }
    }

    /// SIGSTOP: the process freezes with its sockets open, as in a long GC pause.
    pub fn pause(&mut self, id: u64) {
        self.signal(id, Signal::SIGSTOP);
        self.node_mut(id).paused = true;
    }

    pub fn resume(&mut self, id: u64) {
        self.signal(id, Signal::SIGCONT);
        self.node_mut(id).paused = false;
    }

    /// Drops all packets between `a` and `b`, both ways.
    pub fn cut(&mut self, a: u64, b: u64) -> Result<()> {
        self.cuts.insert((node_ip(a), node_ip(b)));
        self.cuts.insert((node_ip(b), node_ip(a)));
        self.netns.set_cuts(&self.cuts)
    }

    pub fn heal_link(&mut self, a: u64, b: u64) -> Result<()> {
        self.cuts.remove(&(node_ip(a), node_ip(b)));
        self.cuts.remove(&(node_ip(b), node_ip(a)));
        self.netns.set_cuts(&self.cuts)
    }

    pub fn heal_all_links(&mut self) -> Result<()> {
        self.cuts.clear();
        self.netns.set_cuts(&self.cuts)
    }

    /// Delays every Raft message `from` sends to `to` (the transport's fault layer).
    pub async fn set_delay(&self, from: u64, to: u64, delay_ms: u64) -> Result<()> {
        self.http
            .post(self.http.url(from, "/debug/faults"))
            .json(&serde_json::json!({"peer": to, "delay_ms": delay_ms}))
            .timeout(Duration::from_secs(2))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    pub async fn clear_delays(&self, id: u64) -> Result<()> {
        self.http
            .delete(self.http.url(id, "/debug/faults"))
            .timeout(Duration::from_secs(2))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    pub async fn status(&self, id: u64) -> Option<Value> {
        let r = self
            .http
            .get(self.http.url(id, "/v1/cluster"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// The node that says it leads, at the highest term any node reports.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for &id in &self.ids {
            if !self.is_running(id) || self.is_paused(id) {
                continue;
            }
            if let Some(s) = self.status(id).await
                && s["state"] == "leader"
            {
                let term = s["term"].as_u64().unwrap_or(0);
                if best.is_none_or(|(t, _)| term > t) {
                    best = Some((term, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Waits until every node answers, agrees on one leader, and has applied what the leader
    /// committed.
    pub async fn wait_converged(&mut self, deadline: Duration) -> Result<u64> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            if let Some(v) = self.converged().await {
                return Ok(v);
            }
            if start.elapsed() > deadline {
                anyhow::bail!("the cluster did not converge within {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Fails if a node we started has exited on its own (a bad flag, a crash).
    fn check_alive(&mut self) -> Result<()> {
        for id in self.ids.clone() {
            let exited = match &mut self.node_mut(id).child {
                Some(c) => c.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                self.node_mut(id).child = None;
                anyhow::bail!(
                    "node {id} exited by itself ({status}); its log ends:\n{}",
                    self.log_tails(10)
                );
            }
        }
        Ok(())
    }

    /// The leader every node names, once each has applied what that leader had committed.
    ///
    /// The leader's commit index is read before any node's applied index: applied indexes only
    /// grow, so a node read afterwards that is still short has not caught up. Read in the other
    /// order, under the clients' and agents' steady writes, a follower read before the leader
    /// is short by whatever committed in between, and the check can fail poll after poll on a
    /// healthy cluster.
    async fn converged(&self) -> Option<u64> {
        let mut named = None;
        for &id in &self.ids {
            let leader = self.status(id).await?["leader"].as_u64()?;
            if named.is_some_and(|l| l != leader) {
                return None;
            }
            named = Some(leader);
        }
        let leader = named?;
        let commit = self.status(leader).await?["commit_index"].as_u64()?;
        for &id in &self.ids {
            let s = self.status(id).await?;
            let caught_up = s["leader"].as_u64() == Some(leader)
                && s["applied_index"].as_u64().is_some_and(|a| a >= commit);
            if !caught_up {
                return None;
            }
        }
        Some(leader)
    }

    /// The last lines of every node's log, for a failed run.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for &id in &self.ids {
            let text = std::fs::read_to_string(self.log_path(id)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(lines).collect();
            out.push_str(&format!(
                "---- node {id} log (last {} lines) ----\n",
                tail.len()
            ));
            for l in tail.iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.ids.clone() {
            self.resume(id);
            self.kill(id);
        }
    }
}
