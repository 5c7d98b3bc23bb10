//! `drover-bench`: closed-loop load against Drover or etcd, and the failover benchmark.
//!
//!     drover-bench run --target drover --endpoints 127.0.0.1:7001 --workload put --clients 16
//!     drover-bench run --target etcd --endpoints 127.0.0.1:2379 --workload get --clients 64
//!     drover-bench failover --trials 20
//!     drover-bench fleet --agents 1000 --partitions 3000
//!
//! Each client is one task with its own connection, issuing one request at a time; latency is
//! recorded per request in an HDR histogram. Results print as one text line, or JSON.

/// mimalloc, as the nodes use: the fleet benchmark's 10,000 simulated agents spent ~15% of
/// this process's CPU in glibc's malloc and free, on the two cores the nodes are measured on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod failover;
mod fleet;
mod load;
mod local;

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
    /// A local three-node cluster and N simulated workers (real agents in this process):
    /// register, place a new table, steady state, drain a set, kill the leader, recommission.
    Fleet(fleet::FleetArgs),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => load::run(args).await,
        Cmd::Failover(args) => failover::run(args).await,
        Cmd::Fleet(args) => fleet::run(args).await,
    }
}
