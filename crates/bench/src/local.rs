//! A local three-node cluster of `drover` processes for the benchmarks that kill nodes
//! (failover, fleet): each node on its own loopback address, data and logs in a temporary
//! directory, SIGKILLed on drop.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

/// The flags of a benchmark that starts its own cluster.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// The `drover` binary (default: beside this one).
    #[arg(long)]
    pub drover: Option<PathBuf>,
    /// Extra flags for every node.
    #[arg(long, allow_hyphen_values = true, num_args = 0..)]
    pub node_args: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep the nodes' data and logs (the path is printed) instead of deleting them.
    #[arg(long)]
    pub keep: bool,
}

pub struct Node {
    pub id: u64,
    pub addr: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn start(&mut self, bin: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(bin)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three nodes, started.
pub struct Local {
    pub nodes: Vec<Node>,
    pub bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Local {
    /// Starts three nodes of `bin` (default: the `drover` beside this binary) with
    /// `node_args` added to each.
    pub fn start(bin: Option<PathBuf>, node_args: &[String]) -> anyhow::Result<Local> {
        let bin = match bin {
            Some(b) => b,
            None => std::env::current_exe()?
                .parent()
                .context("no parent dir")?
                .join("drover"),
        };
        if !bin.exists() {
            bail!("{} not found: build it or pass --drover", bin.display());
        }
        let dir = tempfile::tempdir()?;
        let ip = Ipv4Addr::new(
            127,
            rand::random_range(10..250),
            rand::random_range(1..250),
            rand::random_range(1..250),
        );
        let addr = |id: u64| format!("{ip}:{}", 7000 + id);
        let initial = (1..=3)
            .map(|id| format!("{id}={}", addr(id)))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<Node> = (1..=3)
            .map(|id| {
                let data = dir.path().join(format!("node{id}"));
                let mut args: Vec<String> = [
                    "--id",
                    &id.to_string(),
                    "--listen",
                    &addr(id),
                    "--data-dir",
                    &data.display().to_string(),
                    "--initial-cluster",
                    &initial,
                    "--cluster-secret",
                    "bench-secret",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                args.extend(node_args.iter().cloned());
                Node {
                    id,
                    addr: addr(id),
                    args,
                    log: dir.path().join(format!("node{id}.log")),
                    child: None,
                }
            })
            .collect();
        for n in &mut nodes {
            n.start(&bin)?;
        }
        Ok(Local { nodes, bin, dir })
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        let i = self.nodes.iter().position(|n| n.id == id);
        &mut self.nodes[i.unwrap_or(0)]
    }

    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let bin = self.bin.clone();
        self.node_mut(id).start(&bin)
    }

    /// Keeps the data and logs (the path is printed now) instead of deleting them, however
    /// the run ends: a run that fails is the one whose logs are wanted.
    pub fn keep(&mut self) {
        eprintln!("data and logs kept in {}", self.dir.path().display());
        self.dir.disable_cleanup(true);
    }

    /// Waits until every running node agrees on one leader and has applied everything the
    /// leader has committed (a node just restarted may believe itself caught up while it is
    /// not); returns the leader.
    pub async fn settled_leader(&self, http: &reqwest::Client) -> anyhow::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut views = Vec::new();
            for n in self.nodes.iter().filter(|n| n.running()) {
                let status: Option<Value> = match http
                    .get(format!("http://{}/v1/cluster", n.addr))
                    .send()
                    .await
                {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
                views.push((n.id, status));
            }
            let leader = views
                .first()
                .and_then(|(_, s)| s.as_ref())
                .and_then(|s| s["leader"].as_u64());
            let leader_commit = views
                .iter()
                .find(|(id, _)| Some(*id) == leader)
                .and_then(|(_, s)| s.as_ref())
                .and_then(|s| s["commit_index"].as_u64());
            if let (Some(l), Some(commit)) = (leader, leader_commit) {
                let settled = views.iter().all(|(_, s)| {
                    s.as_ref().is_some_and(|s| {
                        s["leader"].as_u64() == Some(l)
                            && s["applied_index"].as_u64().is_some_and(|a| a >= commit)
                    })
                });
                if settled {
                    return Ok(l);
                }
            }
            if Instant::now() > deadline {
                bail!("the cluster did not settle on a leader within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
