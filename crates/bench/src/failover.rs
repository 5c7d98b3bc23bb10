//! The failover benchmark: a fresh local three-node cluster with default timing; each trial
//! SIGKILLs the leader and times until a write through the survivors first succeeds, then
//! restarts the killed node and waits until every node is ready again.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use serde_json::json;

use crate::local::{Local, LocalArgs};

#[derive(Debug, Args)]
pub struct FailoverArgs {
    #[arg(long, default_value_t = 20)]
    trials: usize,
    #[command(flatten)]
    local: LocalArgs,
}

pub async fn run(args: FailoverArgs) -> anyhow::Result<()> {
    let mut local = Local::start(args.local.drover, &args.local.node_args)?;
    if args.local.keep {
        local.keep();
    }
    let http = drover_tls::http_client(None)
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()?;

    let mut times = Vec::new();
    for trial in 0..args.trials {
        let leader = local.settled_leader(&http).await?;
        local.node_mut(leader).kill();
        let killed = Instant::now();
        let survivors: Vec<String> = local
            .nodes
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
        if !args.local.json {
            drover_client::outln!(
                "trial {:>2}: killed node {leader}, first write after {:.3} s",
                trial + 1,
                elapsed.as_secs_f64()
            );
        }
        times.push(elapsed.as_secs_f64());
        local.restart(leader)?;
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
    if args.local.json {
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
