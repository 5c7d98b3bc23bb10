//! Fixtures for multi-process tests: a local cluster of real `drover` processes on a loopback
//! address of its own, with SIGKILL, restart, and HTTP helpers. Waits are conditions with
//! deadlines, never fixed sleeps. On drop every process is killed; a failing test prints the
//! tail of each node's log.
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

pub mod certs;

pub const SECRET: &str = "test-cluster-secret";

/// The `drover` binary cargo built for these tests: cargo names it for the server's own tests;
/// other packages' tests find it beside their target directory (a workspace test run builds it).
pub fn drover_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_drover") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let p = profile_dir.join("drover");
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --bin drover` first",
        p.display()
    );
    p
}

/// The partitions `client` reads, once every one has exactly `rf` replicas, all serving (and a
/// preferred leader, when `leader`); `None` before. A condition for [`wait_for`].
pub async fn at_rf(
    client: &drover_client::Client,
    rf: usize,
    leader: bool,
) -> Option<Vec<drover_types::Partition>> {
    let parts = client.all_partitions().await.ok()?;
    let settled = parts.iter().all(|p| {
        p.replicas.len() == rf
            && p.replicas
                .iter()
                .all(|r| r.role == drover_types::ReplicaRole::Serving)
            && (!leader || p.leader.is_some())
    });
    settled.then_some(parts)
}

/// Polls `cond` until it returns `Some`, or panics naming `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub struct Node {
    pub id: u64,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
}

pub struct Cluster {
    /// Bearer token the helpers send, when the cluster was started with tokens.
    pub token: Option<String>,
    pub ip: Ipv4Addr,
    pub nodes: Vec<Node>,
    pub root: tempfile::TempDir,
    pub http: reqwest::Client,
    /// The nodes' `DROVER_LOG` filter (set before spawning them).
    pub log_filter: String,
    /// `http`, or `https` once [`Cluster::with_tls`] set it up.
    pub scheme: &'static str,
}

/// A loopback address no other test is likely to use (127.x.y.z with random x, y, z).
fn private_ip() -> Ipv4Addr {
    let mut rng = rand::rng();
    Ipv4Addr::new(
        127,
        rng.random_range(10..250),
        rng.random_range(1..250),
        rng.random_range(1..250),
    )
}

impl Cluster {
    /// Starts `n` nodes bootstrapping one cluster, with `extra` flags on each.
    pub fn start(n: u64, extra: &[&str]) -> Cluster {
        let mut c = Cluster::new(n, extra);
        for id in 1..=n {
            c.spawn(id);
        }
        c
    }

    /// Prepares `n` nodes of one cluster without starting any (see [`Cluster::spawn`]).
    pub fn new(n: u64, extra: &[&str]) -> Cluster {
        let ip = private_ip();
        let root = tempfile::tempdir().unwrap();
        let addr = |id: u64| SocketAddr::from((ip, 7000 + id as u16));
        let initial = (1..=n)
            .map(|id| format!("{id}={}", addr(id)))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for id in 1..=n {
            let dir = root.path().join(format!("node{id}"));
            let mut args = vec![
                "--id".into(),
                id.to_string(),
                "--listen".into(),
                addr(id).to_string(),
                "--data-dir".into(),
                dir.display().to_string(),
                "--initial-cluster".into(),
                initial.clone(),
                "--cluster-secret".into(),
                SECRET.into(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            nodes.push(Node {
                id,
                addr: addr(id),
                dir,
                args,
                child: None,
            });
        }
        let http = drover_tls::http_client(None)
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .unwrap();
        Cluster {
            token: None,
            ip,
            nodes,
            root,
            http,
            log_filter: "info,openraft=info".into(),
            scheme: "http",
        }
    }

    /// Serves every node over TLS with a certificate from `ca` for the cluster's IP (as
    /// server and peer client certificate), `extra` TLS flags on each (such as
    /// `--peer-client-cert-auth`); the helpers then speak HTTPS, trusting `ca`.
    pub fn with_tls(&mut self, ca: &certs::Ca, extra: &[&str]) {
        let dir = self.root.path().to_owned();
        for node in &mut self.nodes {
            let (cert, key) = ca.issue(&dir, &format!("node{}", node.id), self.ip.into());
            node.args.extend([
                "--cert-file".into(),
                cert.display().to_string(),
                "--key-file".into(),
                key.display().to_string(),
                "--trusted-ca-file".into(),
                ca.file.display().to_string(),
            ]);
            node.args.extend(extra.iter().map(|s| s.to_string()));
        }
        self.scheme = "https";
        self.http = drover_tls::http_client(Some(certs::client(&ca.file, None)))
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .unwrap();
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn log_path(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("node{id}.log"))
    }

    /// What node `id` has logged so far (its stderr, a file).
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    /// Waits until node `id`'s log holds `needle`, and returns the log: a node writes its log
    /// from a thread of its own, a moment after what it logs.
    pub async fn log_with(&self, id: u64, needle: &str) -> String {
        wait_for(
            &format!("{needle:?} in node {id}'s log"),
            Duration::from_secs(10),
            || async {
                let log = self.log(id);
                log.contains(needle).then_some(log)
            },
        )
        .await
    }

    /// Starts (or restarts) node `id` with its data dir and arguments.
    pub fn spawn(&mut self, id: u64) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .unwrap();
        let node = &mut self.nodes[(id - 1) as usize];
        assert!(node.child.is_none(), "node {id} is already running");
        let child = Command::new(drover_bin())
            .args(&node.args)
            .env("DROVER_LOG", &self.log_filter)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// Adds a node that joins through node `via`.
    pub fn add_joining(&mut self, id: u64, via: u64) {
        self.add_joining_with(id, via, &[]);
    }

    /// Adds a node that joins through node `via`, with `extra` flags.
    pub fn add_joining_with(&mut self, id: u64, via: u64, extra: &[&str]) {
        let addr = SocketAddr::from((self.ip, 7000 + id as u16));
        let dir = self.root.path().join(format!("node{id}"));
        let args = vec![
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addr.to_string(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--join".into(),
            self.node(via).addr.to_string(),
            "--cluster-secret".into(),
            SECRET.into(),
        ];
        let args = args
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect();
        self.nodes.push(Node {
            id,
            addr,
            dir,
            args,
            child: None,
        });
        self.spawn(id);
    }

    /// The newest state version any live node has applied. A condition read through the
    /// leader (a linearizable read) may have seen a version a follower has not applied yet —
    /// followers learn a commit up to the commit linger later once writes stop — so a check
    /// that must start at or after what was seen starts here, not at one node's `/v1/cluster`.
    pub async fn newest_version(&self) -> u64 {
        let mut newest = 0;
        for n in &self.nodes {
            if let Some(s) = self.status(n.id).await {
                newest = newest.max(s["state_version"].as_u64().unwrap_or(0));
            }
        }
        newest
    }

    /// SIGKILLs node `id`.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.nodes[(id - 1) as usize].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn url(&self, id: u64, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.node(id).addr)
    }

    /// A request to node `id` carrying the cluster's token, if any.
    pub fn req(&self, method: reqwest::Method, id: u64, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(id, path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn status(&self, id: u64) -> Option<Value> {
        let r = self
            .req(reqwest::Method::GET, id, "/v1/cluster")
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// The leader every live node in `ids` agrees on, once they do.
    pub async fn leader_among(&self, ids: &[u64]) -> u64 {
        wait_for("an agreed leader", Duration::from_secs(30), || async {
            let mut leader = None;
            for &id in ids {
                let s = self.status(id).await?;
                let l = s["leader"].as_u64()?;
                if leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            leader.filter(|l| ids.contains(l))
        })
        .await
    }

    /// Node `id`'s `/metrics` page (Prometheus text).
    pub async fn metrics(&self, id: u64) -> String {
        let r = self.req(reqwest::Method::GET, id, "/metrics").send().await;
        r.unwrap().text().await.unwrap()
    }

    /// Drops every Raft message node `from` sends to `to`, through the transport's fault layer
    /// (the nodes must run with `--enable-fault-injection true`).
    pub async fn drop_messages(&self, from: u64, to: u64) {
        let r = self
            .req(reqwest::Method::POST, from, "/debug/faults")
            .json(&serde_json::json!({"peer": to, "drop": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "cutting {from} -> {to}");
    }

    /// Stalls (or resumes) node `id`'s fsyncs of appended log entries, through its
    /// fault-injection endpoint (`--enable-fault-injection true`).
    pub async fn stall_fsync(&self, id: u64, stalled: bool) {
        let r = self
            .req(reqwest::Method::POST, id, "/debug/disk")
            .json(&serde_json::json!({ "stall_fsync": stalled }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "stalling node {id}'s disk: {stalled}");
    }

    /// Clears every fault injected on node `id`.
    pub async fn clear_faults(&self, id: u64) {
        let r = self
            .req(reqwest::Method::DELETE, id, "/debug/faults")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "clearing node {id}'s faults");
    }

    /// Asks node `via` to remove node `id` from the cluster: its status and body.
    pub async fn remove_member(&self, via: u64, id: u64) -> (reqwest::StatusCode, String) {
        let r = self
            .req(
                reqwest::Method::DELETE,
                via,
                &format!("/v1/cluster/members/{id}"),
            )
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.text().await.unwrap())
    }

    pub async fn put(&self, id: u64, key: &str, value: &str) -> reqwest::Result<reqwest::Response> {
        self.req(reqwest::Method::PUT, id, &format!("/v1/kv/{key}"))
            .json(&serde_json::json!({ "value": value }))
            .send()
            .await
    }

    /// The value of `key` read through node `id` (linearizable unless `stale`).
    pub async fn get(&self, id: u64, key: &str, stale: bool) -> Option<String> {
        let q = if stale { "?stale=true" } else { "" };
        let r = self
            .req(reqwest::Method::GET, id, &format!("/v1/kv/{key}{q}"))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let v: Value = r.json().await.ok()?;
        v["value"].as_str().map(str::to_owned)
    }

    fn dump_logs(&self) {
        for n in &self.nodes {
            let text = std::fs::read_to_string(self.log_path(n.id)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("---- node {} log (last {} lines) ----", n.id, tail.len());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Runs `drover` with `args` to completion and returns (exit code, stderr). A run still going
/// after 30 s (a node that started instead of refusing) is killed, and its code is `None`.
pub fn run_drover(args: &[&str], cwd: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(drover_bin())
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).unwrap();
    }
    (code, stderr)
}

/// Every lifecycle event, oldest first, read through node `node`.
pub async fn all_events(c: &Cluster, node: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let url = c.url(node, &format!("/v1/events?after={after}&limit=1000"));
        let page: Value = c.http.get(url).send().await.unwrap().json().await.unwrap();
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        after = page["next_after"].as_u64().unwrap();
        if page["more"] != true {
            return out;
        }
    }
}

/// Replays the replica events version by version and checks that, at every state version from
/// `from_version` on, every partition had at least `min` serving replicas. Returns the number
/// of replicas added after `from_version` (each move adds exactly one).
pub fn check_serving_floor(events: &[Value], from_version: u64, min: usize) -> usize {
    use std::collections::BTreeMap;
    let mut replicas: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    let mut added = 0;
    let mut i = 0;
    while i < events.len() {
        let version = events[i]["version"].as_u64().unwrap();
        while i < events.len() && events[i]["version"].as_u64() == Some(version) {
            let kind = events[i]["kind"].as_object().unwrap();
            let (name, body) = kind.iter().next().unwrap();
            let p = body["partition"].as_u64();
            let w = body["worker"].as_str().map(str::to_owned);
            match (name.as_str(), p, w) {
                ("replica_added", Some(p), Some(w)) => {
                    replicas.entry(p).or_default().insert(w, "joining".into());
                    if version > from_version {
                        added += 1;
                    }
                }
                ("replica_role", Some(p), Some(w)) => {
                    let role = body["role"].as_str().unwrap().to_owned();
                    replicas.entry(p).or_default().insert(w, role);
                }
                ("replica_removed", Some(p), Some(w)) => {
                    replicas.entry(p).or_default().remove(&w);
                }
                _ => {}
            }
            i += 1;
        }
        if version >= from_version {
            for (p, reps) in &replicas {
                let serving = reps.values().filter(|r| *r == "serving").count();
                assert!(
                    serving >= min,
                    "partition {p} had {serving} serving replicas at version {version}"
                );
            }
        }
    }
    added
}

/// A TCP proxy in front of one node, that a test can cut: every connection through it is
/// closed and new ones are refused, as if the network between a client and the node failed.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(ip: Ipv4Addr, upstream: SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c2, conns2) = (cut.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if c2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection reset
                }
                let t = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                conns2.lock().unwrap().push(t);
            }
        });
        Proxy {
            addr,
            cut,
            conns,
            accept,
        }
    }

    /// Cuts the link: open connections close, new ones are dropped.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
