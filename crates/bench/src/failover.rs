//! The failover benchmark: a fresh local three-node cluster with default timing; each trial
//! SIGKILLs the leader and times until a write through the survivors first succeeds, then
//! restarts the killed node and waits until every node is ready again.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct FailoverArgs {
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// The `drover` binary (default: beside this one).
    #[arg(long)]
    drover: Option<PathBuf>,
    /// Extra flags for every node (default timing when empty).
    #[arg(long, allow_hyphen_values = true, num_args = 0..)]
    node_args: Vec<String>,
    #[arg(long)]
    json: bool,
    /// Keep the nodes' data and logs (the path is printed) instead of deleting them.
    #[arg(long)]
    keep: bool,
}

struct Node {
    id: u64,
    addr: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self, bin: &PathBuf) -> anyhow::Result<()> {
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

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn run(args: FailoverArgs) -> anyhow::Result<()> {
    let bin = match args.drover {
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
    if args.keep {
        eprintln!("data and logs in {}", dir.path().display());
    }
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
            let mut a: Vec<String> = [
                "--id",
                &id.to_string(),
                "--listen",
                &addr(id),
                "--data-dir",
                &dir.path().join(format!("node{id}")).display().to_string(),
                "--initial-cluster",
                &initial,
                "--cluster-secret",
                "bench-secret",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            a.extend(args.node_args.iter().cloned());
            Node {
                id,
                addr: addr(id),
                args: a,
                log: dir.path().join(format!("node{id}.log")),
                child: None,
            }
        })
        .collect();
    for n in &mut nodes {
        n.start(&bin)?;
    }
    let http = drover_tls::http_client(None)
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()?;

    let mut times = Vec::new();
    for trial in 0..args.trials {
        let leader = settled_leader(&http, &nodes).await?;
        let idx = nodes
            .iter()
            .position(|n| n.id == leader)
            .context("leader")?;
        nodes[idx].kill();
        let killed = Instant::now();
        let survivors: Vec<String> = nodes
            .iter()
            .filter(|n| n.id != leader)
            .map(|n| n.addr.clone())
            .collect();
        let mut k = 0;
        let elapsed = loop {
            let to = &survivors[k % survivors.len()];
            k += 1;
            let ok = http
                .put(format!("http://{to}/v1/kv/failover/{trial}"))
                .json(&json!({"value": "x"}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break killed.elapsed();
            }
            if killed.elapsed() > Duration::from_secs(60) {
                bail!("no write succeeded within 60 s of killing node {leader}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if !args.json {
            drover_client::outln!(
                "trial {:>2}: killed node {leader}, first write after {:.3} s",
                trial + 1,
                elapsed.as_secs_f64()
            );
        }
        times.push(elapsed.as_secs_f64());
        nodes[idx].start(&bin)?;
    }
    drop(nodes);
    if args.keep {
        let _ = dir.keep();
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1];
    let report = json!({
        "trials": times.len(),
        "p50_s": q(0.5),
        "p99_s": q(0.99),
        "min_s": sorted[0],
        "max_s": sorted[sorted.len() - 1],
        "times_s": times,
    });
    if args.json {
        drover_client::outln!("{report}");
    } else {
        drover_client::outln!(
            "failover over {} trials: p50 {:.3} s, p99 {:.3} s (min {:.3} s, max {:.3} s)",
            times.len(),
            q(0.5),
            q(0.99),
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }
    Ok(())
}

/// Waits until every running node agrees on one leader and has applied everything the leader
/// has committed (a node just restarted may believe itself caught up while it is not); returns
/// the leader. A trial that kills the leader before then measures a different thing: an
/// election where the freshest survivor may be missing entries.
async fn settled_leader(http: &reqwest::Client, nodes: &[Node]) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut views = Vec::new();
        for n in nodes.iter().filter(|n| n.child.is_some()) {
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
