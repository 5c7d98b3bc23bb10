//! An example worker: copy this to embed Drover in a service.
//!
//! It registers, becomes Active, "catches up" joining replicas and "hands off" leaving ones
//! (here: a short sleep) before acknowledging, prints its assignments as they change, and on
//! SIGTERM or Ctrl-C drains itself and exits once the cluster has disabled it. On SIGHUP it
//! restarts in place without moving data: maintenance, preferred leaderships moved off, lease
//! given up, then it executes itself again (same pid, same arguments), and the new process
//! takes its replicas back at a new generation (`droverctl rolling-restart` sends the SIGHUP).
//!
//!     cargo run -p drover-agent --example worker -- --endpoints 127.0.0.1:7001 --id w1 --zone a

use std::time::Duration;

use clap::Parser;
use drover_agent::{Acked, Agent, AgentConfig};
use drover_types::ReplicaRole;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
struct Args {
    /// Drover nodes, comma separated.
    #[arg(
        long,
        env = "DROVER_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001"
    )]
    endpoints: Vec<String>,
    #[arg(long, env = "DROVER_TOKEN")]
    token: Option<String>,
    /// This worker's id.
    #[arg(long)]
    id: String,
    #[arg(long)]
    zone: Option<String>,
    /// Where this worker serves (announced to peers).
    #[arg(long, default_value = "127.0.0.1:9000")]
    address: String,
    #[command(flatten)]
    tls: drover_tls::ClientArgs,
    /// Simulated catch-up time per joining replica.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    catch_up: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        // Colour only for a person at a terminal, never in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let https = args.endpoints.iter().any(|e| e.starts_with("https://"));
    let tls = args.tls.config(https)?;
    let mut cfg = AgentConfig::new(args.endpoints, &args.id, args.address);
    cfg.zone = args.zone;
    cfg.token = args.token;
    cfg.tls = tls;

    let mut agent = Agent::start(cfg).await?;
    let mut tasks = agent.take_tasks().expect("tasks are taken once");
    let handle = agent.handle();
    let catch_up = args.catch_up;
    tokio::spawn(async move {
        while let Some(task) = tasks.recv().await {
            // Real work goes here: copy the partition's data from a peer
            // (task.assignment.peers), or stop serving it and flush.
            if task.role == ReplicaRole::Joining {
                tokio::time::sleep(catch_up).await;
            }
            // Retried while the cluster is unreachable. A task the cluster has moved past
            // (409 stale_epoch: a cancelled drain, a withdrawn move) is over: the assignments
            // long poll brings the current view and any new task; the stale ack is not repeated.
            match handle.ack_settled(&task, Duration::from_secs(30)).await {
                Ok(Acked::Done) => {}
                Ok(Acked::Superseded) => {
                    tracing::info!(
                        partition = task.partition,
                        epoch = task.epoch,
                        "task superseded; following the current assignments"
                    )
                }
                Err(e) => tracing::warn!(partition = task.partition, error = %e, "ack failed"),
            }
        }
    });
    agent.ready().await?;

    let mut assignments = agent.assignments();
    let mut lease = agent.lease();
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let restart = loop {
        tokio::select! {
            _ = assignments.changed() => {
                if let Some(a) = assignments.borrow_and_update().as_ref() {
                    let serving = a.replicas.iter().filter(|r| r.role == ReplicaRole::Serving).count();
                    tracing::info!(state = ?a.state, serving, total = a.replicas.len(), version = a.version, "assignments");
                }
            }
            _ = lease.changed() => {
                let held = *lease.borrow_and_update();
                tracing::info!(held, "lease {}", if held { "held: serving" } else { "lost: stopped serving" });
            }
            _ = term.recv() => break false,
            _ = tokio::signal::ctrl_c() => break false,
            _ = hup.recv() => break true,
        }
    };
    if restart {
        tracing::info!("restarting without moving data");
        let ten_minutes = Duration::from_secs(600);
        match agent
            .maintenance_and_restart("restart (SIGHUP)", ten_minutes, Duration::from_secs(10))
            .await
        {
            Ok(()) => {
                use std::os::unix::process::CommandExt;
                let exe = std::env::current_exe()?;
                let err = std::process::Command::new(exe)
                    .args(std::env::args_os().skip(1))
                    .exec();
                anyhow::bail!("could not execute myself again: {err}");
            }
            // Refused (say, `budget_exceeded`): nothing changed. This example then drains and
            // exits; a real service would keep serving and retry later.
            Err(refused) => {
                tracing::warn!(error = %refused.error, "restart refused");
                agent = refused.agent;
            }
        }
    }
    tracing::info!("draining before exit");
    agent.drain_and_wait().await?;
    tracing::info!("disabled; exiting");
    Ok(())
}
