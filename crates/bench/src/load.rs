//! Closed-loop workloads against Drover (HTTP, to the leader) or etcd (gRPC).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Target, Workload};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value_t = Target::Drover)]
    target: Target,
    /// Nodes, comma separated (Drover: any node, the leader is looked up; etcd: client URLs).
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    workload: Workload,
    /// Concurrent clients, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Untimed warm-up before measuring.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Bearer token (Drover).
    #[arg(long, env = "DROVER_TOKEN")]
    token: Option<String>,
    /// TLS to Drover's nodes, as droverctl takes it.
    #[command(flatten)]
    tls: drover_tls::ClientArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    target: Target,
    workload: Workload,
    clients: usize,
    value_size: usize,
    seconds: f64,
    ops: u64,
    errors: u64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

/// Keys the `get` workload reads (written before the measurement).
const READ_KEYS: usize = 1000;

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let https = args.endpoints.iter().any(|e| e.starts_with("https://"));
    let tls = args.tls.config(https)?;
    if args.target == Target::Etcd && tls.is_some() {
        bail!(
            "--cacert, --cert and --key are for --target drover; etcd is benchmarked over plain HTTP"
        );
    }
    let value: Arc<str> = "x".repeat(args.value_size).into();
    let mut clients: Vec<AnyClient> = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        clients.push(match args.target {
            Target::Drover => {
                AnyClient::Drover(DroverClient::connect(&args, tls.clone(), i).await?)
            }
            Target::Etcd => AnyClient::Etcd(Box::new(EtcdClient::connect(&args).await?)),
        });
    }
    if args.workload == Workload::Get {
        for k in 0..READ_KEYS {
            clients[0].put(&format!("bench/read/{k}"), &value).await?;
        }
    }
    for c in &mut clients {
        c.prepare(args.workload).await?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let (stop, measuring, value) = (stop.clone(), measuring.clone(), value.clone());
        let workload = args.workload;
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut ops, mut errors) = (0u64, 0u64);
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let start = Instant::now();
                let result = match workload {
                    Workload::Put => c.put(&format!("bench/{i}/{seq}"), &value).await,
                    Workload::Get => {
                        let k = rand::random_range(0..READ_KEYS);
                        c.get(&format!("bench/read/{k}")).await
                    }
                    Workload::Transition => c.transition().await,
                };
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                match result {
                    Ok(()) => {
                        ops += 1;
                        let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                        hist.saturating_record(us.max(1));
                    }
                    Err(_) => errors += 1,
                }
            }
            (hist, ops, errors)
        }));
    }
    tokio::time::sleep(args.warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(args.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut ops, mut errors) = (0, 0);
    for t in tasks {
        let (h, o, e) = t.await?;
        hist.add(&h).context("merging histograms")?;
        ops += o;
        errors += e;
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let report = Report {
        target: args.target,
        workload: args.workload,
        clients: args.clients,
        value_size: args.value_size,
        seconds,
        ops,
        errors,
        ops_per_sec: ops as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
    };
    if args.json {
        drover_client::outln!("{}", serde_json::to_string(&report)?);
    } else {
        drover_client::outln!(
            "{:?} {:?} clients={} ops={} errors={} throughput={:.0}/s p50={:.2}ms p99={:.2}ms p999={:.2}ms max={:.2}ms",
            report.target,
            report.workload,
            report.clients,
            report.ops,
            report.errors,
            report.ops_per_sec,
            report.p50_ms,
            report.p99_ms,
            report.p999_ms,
            report.max_ms
        );
    }
    Ok(())
}

/// One benchmark client: one connection, one request at a time.
enum AnyClient {
    Drover(DroverClient),
    Etcd(Box<EtcdClient>),
}

impl AnyClient {
    async fn put(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        match self {
            AnyClient::Drover(c) => c.put(key, value).await,
            AnyClient::Etcd(c) => c.put(key, value).await,
        }
    }

    async fn get(&mut self, key: &str) -> anyhow::Result<()> {
        match self {
            AnyClient::Drover(c) => c.get(key).await,
            AnyClient::Etcd(c) => c.get(key).await,
        }
    }

    async fn prepare(&mut self, workload: Workload) -> anyhow::Result<()> {
        match self {
            AnyClient::Drover(c) if workload == Workload::Transition => c.register().await,
            _ => Ok(()),
        }
    }

    async fn transition(&mut self) -> anyhow::Result<()> {
        match self {
            AnyClient::Drover(c) => c.transition().await,
            AnyClient::Etcd(c) => c.transition().await,
        }
    }
}

/// Drover over HTTP/1.1 with keep-alive, straight to the leader (a follower would forward).
struct DroverClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    worker: String,
    /// Whether the worker is Disabled (next: register again) or Provisioning (next: disable).
    disabled: bool,
}

impl DroverClient {
    async fn connect(
        args: &RunArgs,
        tls: Option<drover_tls::rustls::ClientConfig>,
        i: usize,
    ) -> anyhow::Result<Self> {
        let scheme = drover_tls::ClientArgs::scheme(&tls);
        let http = drover_tls::http_client(tls)
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(1)
            .build()?;
        let bare = args.endpoints[0]
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let first = format!("{scheme}://{bare}");
        let status: Value = http
            .get(format!("{first}/v1/cluster"))
            .send()
            .await
            .with_context(|| format!("reaching {first}"))?
            .json()
            .await?;
        let leader = status["leader"].as_u64().context("no leader")?;
        let address = status["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["id"] == leader))
            .and_then(|m| m["address"].as_str())
            .context("leader not among the members")?;
        Ok(DroverClient {
            http,
            base: format!("{scheme}://{address}"),
            token: args.token.clone(),
            worker: format!("bench-{i}"),
            disabled: true,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<()> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let r = req.send().await?;
        if !r.status().is_success() {
            bail!("{}: {}", r.status(), r.text().await.unwrap_or_default());
        }
        // Read the body: the connection is reused only once the response is consumed.
        r.bytes().await?;
        Ok(())
    }

    async fn put(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        let req = self
            .http
            .put(format!("{}/v1/kv/{key}", self.base))
            .json(&json!({ "value": value }));
        self.send(req).await
    }

    async fn get(&mut self, key: &str) -> anyhow::Result<()> {
        let req = self.http.get(format!("{}/v1/kv/{key}", self.base));
        self.send(req).await
    }

    /// Registers with a fresh incarnation: a new worker, or a Disabled one recommissioned
    /// (Disabled → Provisioning).
    async fn register(&mut self) -> anyhow::Result<()> {
        let incarnation: u64 = rand::random::<u64>() >> 1;
        let body = json!({"incarnation": incarnation, "address": "10.255.0.1:1", "zone": "bench"});
        let req = self
            .http
            .put(format!("{}/v1/workers/{}", self.base, self.worker))
            .json(&body);
        self.send(req).await?;
        self.disabled = false;
        Ok(())
    }

    /// One lifecycle transition, alternating Provisioning → Disabled (operator) and
    /// Disabled → Provisioning (recommission). Both are legal from those states and involve no
    /// scheduler, so every operation is exactly one validated, replicated state change.
    async fn transition(&mut self) -> anyhow::Result<()> {
        if self.disabled {
            return self.register().await;
        }
        let req = self
            .http
            .post(format!("{}/v1/workers/{}/state", self.base, self.worker))
            .json(&json!({"state": "disabled"}));
        self.send(req).await?;
        self.disabled = true;
        Ok(())
    }
}

/// etcd through its gRPC client, one connection per benchmark client. Reads are etcd's
/// default: linearizable.
struct EtcdClient {
    client: etcd_client::Client,
    key: String,
    /// Mod revision of the worker key as last written (0: absent).
    revision: i64,
    state: bool,
}

impl EtcdClient {
    async fn connect(args: &RunArgs) -> anyhow::Result<Self> {
        let client = etcd_client::Client::connect(&args.endpoints, None).await?;
        let key = format!("bench/worker/{}", rand::random::<u64>());
        Ok(EtcdClient {
            client,
            key,
            revision: 0,
            state: false,
        })
    }

    async fn put(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        self.client.put(key, value, None).await?;
        Ok(())
    }

    async fn get(&mut self, key: &str) -> anyhow::Result<()> {
        self.client.get(key, None).await?;
        Ok(())
    }

    /// The same validated state change in etcd's terms: a transaction that writes the
    /// worker's next state only if its record is unchanged since this client last wrote it.
    async fn transition(&mut self) -> anyhow::Result<()> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
        let next = if self.state {
            "disabled"
        } else {
            "provisioning"
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(
                self.key.as_str(),
                CompareOp::Equal,
                self.revision,
            )])
            .and_then([TxnOp::put(self.key.as_str(), next, None)]);
        let r = self.client.txn(txn).await?;
        if !r.succeeded() {
            bail!("compare failed");
        }
        self.revision = r.header().map_or(0, |h| h.revision());
        self.state = !self.state;
        Ok(())
    }
}
