//! The leader-only scheduling loop (SPEC §3): on every applied change and on a periodic tick,
//! while this node leads, it builds the liveness view from heartbeats, commits death verdicts
//! for workers silent past `dead_after`, and commits the planner's steps, each with the epoch
//! it read as precondition. It stops acting the moment leadership is lost: every round starts
//! by checking, and a stale step is rejected by `apply`, never applied.

use std::time::{Duration, Instant};

use drover_scheduler::{PlannerConfig, Reason, Step, plan};
use drover_types::{Command, WorkerId, WorkerState};

use crate::api::now_ms;
use crate::node::Node;

/// How often the loop plans even when nothing was applied (timeouts, liveness changes).
const TICK: Duration = Duration::from_millis(250);

pub(crate) async fn run(node: Node) {
    let mut versions = node.versions();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cfg = PlannerConfig::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = versions.changed() => if changed.is_err() { return },
        }
        let Some(leader_since) = node.heartbeats().leader_since() else {
            continue;
        };
        round(&node, leader_since, &cfg).await;
    }
}

/// One round: death verdicts first (they change what the planner may use), then the plan.
async fn round(node: &Node, leader_since: Instant, cfg: &PlannerConfig) {
    let now = Instant::now();
    let live = node.config().liveness;
    let (deaths, steps) = {
        let guard = node.state().read();
        let s = &guard.state;
        let hb = node.heartbeats();
        // A new leader declares no one dead before `dead_after` has passed since it became
        // leader: it may simply not have heard from everyone yet.
        let may_kill = now.saturating_duration_since(leader_since) >= live.dead_after;
        let deaths: Vec<(WorkerId, u64)> = if may_kill {
            s.workers
                .values()
                .filter(|w| {
                    !w.dead && matches!(w.state, WorkerState::Active | WorkerState::Draining)
                })
                .filter(|w| hb.silent_for(&w.id, w.generation, now) >= live.dead_after)
                .map(|w| (w.id.clone(), w.generation))
                .collect()
        } else {
            Vec::new()
        };
        let mut steps = plan(s, &node.planner_view(s, now), cfg).steps;
        // A new leader starts no move until it has had `suspect_after` to hear every worker:
        // placing on whoever happened to heartbeat first would need undoing once the rest are
        // heard. Steps that finish moves already under way go ahead.
        if now.saturating_duration_since(leader_since) < live.suspect_after {
            steps.retain(|step| !matches!(step, Step::Add { .. }));
        }
        (deaths, steps)
    };
    for (worker, generation) in deaths {
        match node
            .propose(Command::MarkDead {
                worker: worker.clone(),
                generation,
            })
            .await
        {
            Ok(_) => tracing::warn!(%worker, generation, "declared dead: silent past dead_after"),
            Err(e) => tracing::debug!(%worker, error = %e.message, "death verdict not applied"),
        }
    }
    for step in steps {
        if node.heartbeats().leader_since() != Some(leader_since) {
            return; // leadership changed mid-round: stop at once
        }
        // For the drain-duration metric: when was this worker's drain requested?
        let drain_requested = match &step {
            Step::Disable { worker } => node
                .state()
                .read()
                .state
                .drain_of(worker)
                .map(|d| d.requested_ms),
            _ => None,
        };
        match node.propose(step.command()).await {
            Ok(_) => record(node, &step, drain_requested),
            // Another step moved the state on (stale epoch) or leadership moved: replan.
            Err(e) => tracing::debug!(?step, error = %e.message, "step not applied; replanning"),
        }
    }
}

fn reason_label(reason: Reason) -> crate::api::metrics::ReasonLabels {
    let reason = match reason {
        Reason::Restore => "restore",
        Reason::Drain => "drain",
        Reason::Rebalance => "rebalance",
    };
    crate::api::metrics::ReasonLabels {
        reason: reason.to_owned(),
    }
}

/// Counts a committed step in the scheduler metrics.
fn record(node: &Node, step: &Step, drain_requested: Option<u64>) {
    let m = node.http_metrics();
    match step {
        Step::Add { reason, .. } => {
            m.moves_started.get_or_create(&reason_label(*reason)).inc();
        }
        Step::Release { reason, .. } => {
            m.moves_completed
                .get_or_create(&reason_label(*reason))
                .inc();
        }
        Step::Disable { worker } => {
            if let Some(at) = drain_requested {
                let secs = now_ms().saturating_sub(at) as f64 / 1000.0;
                m.drain_seconds.observe(secs);
                tracing::info!(%worker, secs, "drained worker disabled");
            }
        }
        Step::Withdraw { .. } | Step::SetLeader { .. } | Step::Plan { .. } => {}
    }
}
