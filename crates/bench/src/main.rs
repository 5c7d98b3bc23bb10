//! `drover-bench`: closed-loop load against Drover or etcd, and the failover benchmark.
//!
//!     drover-bench run --target drover --endpoints 127.0.0.1:7001 --workload put --clients 16
//!     drover-bench run --target etcd --endpoints 127.0.0.1:2379 --workload get --clients 64
//!     drover-bench failover --trials 20
//!
//! Each client is one task with its own connection, issuing one request at a time; latency is
//! recorded per request in an HDR histogram. Results print as one text line, or JSON.

mod failover;
mod load;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "drover-bench",
    about = "Benchmark Drover (and etcd, side by side)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one workload for a fixed time.
    Run(load::RunArgs),
    /// SIGKILL the leader of a fresh local three-node cluster, time until the first successful
    /// write; repeat.
    Failover(failover::FailoverArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Drover,
    Etcd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// KV writes of distinct keys.
    Put,
    /// Linearizable reads of existing keys.
    Get,
    /// Worker state changes (etcd: a compare-and-set transaction on the worker's key).
    Transition,
}

/// `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 10s, 500ms or 2m");
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().map(Duration::from_millis).map_err(|_| bad());
    }
    if let Some(secs) = s.strip_suffix('s') {
        return secs.parse().map(Duration::from_secs_f64).map_err(|_| bad());
    }
    if let Some(m) = s.strip_suffix('m') {
        return m
            .parse::<u64>()
            .map(|m| Duration::from_secs(m * 60))
            .map_err(|_| bad());
    }
    Err(bad())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => load::run(args).await,
        Cmd::Failover(args) => failover::run(args).await,
    }
}
