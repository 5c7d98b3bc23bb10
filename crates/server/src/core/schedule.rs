//! The leader-only scheduling loop (SPEC §3): on every applied change to what the planner reads
//! (not KV writes) and on a periodic tick,
//! while this node leads, it builds the liveness view from heartbeats, commits death verdicts
//! for workers silent past `dead_after`, and commits the planner's steps, each with the epoch
//! it read as precondition. It stops acting the moment leadership is lost: every round starts
//! by checking, and a stale step is rejected by `apply`, never applied.

use std::time::Duration;

use tokio::time::Instant;

use drover_scheduler::{
    PlannerConfig, Reason, Step, due_expiries, judge_deaths, overdue_drains, plan,
};
use drover_types::{Command, WorkerId, WorkerState};

use super::clock::now_ms;
use super::error::Error;
use super::liveness::{Leadership, Timing};
use super::metrics::{CauseLabels, CodeLabels, ReasonLabels};
use super::node::Node;

/// How often the loop plans even when nothing was applied (timeouts, liveness changes).
const TICK: Duration = Duration::from_millis(250);

pub(crate) async fn run(node: Node) {
    // Woken by changes to what the planner reads, not by every KV write: a KV-heavy load
    // would otherwise run a planning round per write, holding the state's read lock.
    let mut versions = node.placement_versions();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = versions.changed() => if changed.is_err() { return },
        }
        let Some(leadership) = node.heartbeats().leadership() else {
            continue;
        };
        round(&node, leadership).await;
    }
}

/// The planner's knobs, from the replicated settings.
pub(crate) fn planner_config(s: &drover_types::Settings) -> PlannerConfig {
    PlannerConfig {
        max_moves_per_worker: s.max_moves_per_worker,
        max_moves_total: s.max_moves_total,
        join_timeout_ms: s.join_timeout_ms,
    }
}

/// One round: death verdicts first (they change what the planner may use), then the plan.
async fn round(node: &Node, leadership: Leadership) {
    let now = Instant::now();
    let hb = node.heartbeats();
    let (deaths, expiries, steps) = {
        let guard = node.state().read();
        let s = &guard.state;
        // Verdicts left pending by an unknown outcome are settled once the state tells: dead,
        // or re-registered, removed or no longer judged (apply refuses a death then).
        hb.settle_resolved(|w, g| {
            s.workers.get(w).is_none_or(|x| {
                x.generation != g
                    || x.dead
                    || !matches!(x.state, WorkerState::Active | WorkerState::Draining)
            })
        });
        let clock = node.state().clock();
        let t = Timing::at(&s.settings, &clock, now);
        let wall = now_ms();
        // Who is due to be declared dead: silent past the threshold at their generation, and
        // not in a maintenance whose `until` this leader's clock has not reached (SPEC §1).
        let due: Vec<&drover_types::Worker> = s
            .workers
            .values()
            .filter(|w| !w.dead && matches!(w.state, WorkerState::Active | WorkerState::Draining))
            .filter(|w| w.maintenance.as_ref().is_none_or(|m| m.until_ms <= wall))
            .filter(|w| {
                let applied = clock.generation_applied(&w.id, w.generation);
                hb.is_due(leadership, w, applied, t.death_threshold, now)
            })
            .collect();
        // The mass-failure brake judges how many of them may go (SPEC §3).
        let due_ids: Vec<WorkerId> = due.iter().map(|w| w.id.clone()).collect();
        let view = node.planner_view(s, &clock, now);
        let verdicts = judge_deaths(s, &due_ids, |w| view.is_suspect(w), wall);
        // Decided under the heartbeats' lock: from here until the verdict is settled, none of
        // these workers' heartbeats is acknowledged (the lease argument, liveness.rs).
        let deaths: Vec<(WorkerId, u64)> = due
            .iter()
            .filter(|w| verdicts.declare.contains(&w.id))
            .filter(|w| {
                let applied = clock.generation_applied(&w.id, w.generation);
                hb.decide_death(leadership, w, applied, t.death_threshold, now)
            })
            .map(|w| (w.id.clone(), w.generation))
            .collect();
        // Cordons, pauses and maintenances whose `until` this leader's clock has reached, and
        // maintenances whose restart is done (SPEC §1: the expiry is the scheduler's,
        // committed, never apply's).
        let mut expiries: Vec<Command> = verdicts.brake.into_iter().collect();
        expiries.extend(due_expiries(s, wall, |w, g| hb.heard(w, g)));
        drop(clock);
        let started = std::time::Instant::now();
        let planned = plan(s, &view, &planner_config(&s.settings));
        record_round(node, &planned, started.elapsed());
        // Drains past their deadline, with what this round found blocked (SPEC §3).
        expiries.extend(overdue_drains(s, &view, &planned.blocked, wall));
        let mut steps = planned.steps;
        // A new leader starts no move until it has had `suspect_after` to hear every worker:
        // placing on whoever happened to heartbeat first would need undoing once the rest are
        // heard. Steps that finish moves already under way go ahead.
        if now.saturating_duration_since(leadership.since) < t.suspect_after {
            steps.retain(|step| !matches!(step, Step::Add { .. }));
        }
        (deaths, expiries, steps)
    };
    for (worker, generation) in deaths {
        if hb.leadership() != Some(leadership) {
            break; // the term ended: its verdicts were cleared with its soft state
        }
        // Stamped with the term it was decided in: should this node lead in another term by
        // the time the entry is appended, `apply` refuses it (`stale_term`).
        let verdict = node
            .propose(Command::MarkDead {
                worker: worker.clone(),
                generation,
                term: leadership.term,
            })
            .await;
        match verdict {
            Ok(_) => {
                tracing::warn!(%worker, generation, "declared dead: silent past the death threshold");
                hb.settle(&worker);
            }
            // Perhaps committed, perhaps not: it stays pending until the applied state tells
            // (above) or leadership is lost, which clears it — a later leader applies every
            // entry of earlier terms before it acknowledges anything.
            Err(e @ Error::OutcomeUnknown { .. }) => {
                tracing::warn!(%worker, generation, error = %e, "death verdict outcome unknown");
            }
            Err(e) => {
                tracing::debug!(%worker, error = %e, "death verdict not applied");
                hb.settle(&worker);
            }
        }
    }
    for expiry in expiries {
        if hb.leadership() != Some(leadership) {
            break;
        }
        // A refusal (renewed or lifted meanwhile) is the operator's newer word: nothing to do.
        match node.propose(expiry.clone()).await {
            Ok(_) => {
                tracing::info!(target: "drover::audit", actor = "scheduler", command = ?expiry, "scheduler decision committed")
            }
            Err(e) => tracing::debug!(command = ?expiry, error = %e, "expiry not applied"),
        }
    }
    commit_steps(steps, |step| async move {
        if hb.leadership() != Some(leadership) {
            return Committed::Stop; // leadership changed mid-round: stop at once
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
            Ok(_) => {
                record(node, &step, drain_requested);
                Committed::Yes
            }
            Err(e) => {
                tracing::debug!(?step, error = %e, "step not applied; replanning");
                Committed::No
            }
        }
    })
    .await;
}

/// What became of one step.
#[derive(Debug, PartialEq, Eq)]
enum Committed {
    Yes,
    /// Refused (a stale epoch, a lost race): the next round replans it.
    No,
    /// Stop the round (leadership moved).
    Stop,
}

/// Commits a round's steps in order. A drain plan that did not commit justified moves later
/// in the round (plan steps come first), so none of those may be made outside the record: the
/// round stops there and the next one replans from the state.
async fn commit_steps<F, Fut>(steps: Vec<Step>, mut commit: F)
where
    F: FnMut(Step) -> Fut,
    Fut: Future<Output = Committed>,
{
    for step in steps {
        let plan = matches!(step, Step::Plan { .. });
        match commit(step).await {
            Committed::Yes => {}
            Committed::No if !plan => {}
            Committed::No | Committed::Stop => return,
        }
    }
}

fn reason_label(reason: Reason) -> ReasonLabels {
    let reason = match reason {
        Reason::Restore => "restore",
        Reason::Drain => "drain",
        Reason::Rebalance => "rebalance",
    };
    ReasonLabels {
        reason: reason.to_owned(),
    }
}

/// A round's planning time, and what it found blocked, by reason (every reason written, so a
/// reason that cleared reads 0 rather than its last value).
fn record_round(node: &Node, planned: &drover_scheduler::Plan, took: Duration) {
    use drover_scheduler::BlockCode;
    let m = node.metrics();
    m.round_seconds.observe(took.as_secs_f64());
    for code in [
        BlockCode::NoCandidate,
        BlockCode::ZoneConstraint,
        BlockCode::Throttled,
        BlockCode::AwaitingAck,
        BlockCode::Paused,
        BlockCode::MassFailure,
    ] {
        let n = planned.blocked.iter().filter(|b| b.code == code).count();
        let code = serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        m.blocked
            .get_or_create(&CodeLabels { code })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Counts a committed step in the scheduler metrics.
fn record(node: &Node, step: &Step, drain_requested: Option<u64>) {
    let m = node.metrics();
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
        Step::SetLeader { cause, .. } => {
            let cause = cause.as_str().to_owned();
            m.leader_changes.get_or_create(&CauseLabels { cause }).inc();
        }
        Step::Withdraw { .. } | Step::Plan { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use drover_types::PlannedMove;

    use super::*;

    /// The regression: a drain plan step was refused (one of its partitions' epochs had moved),
    /// and the round went on to make the moves that plan justified — moves the drain record
    /// did not hold.
    #[tokio::test]
    async fn a_refused_drain_plan_stops_the_moves_it_justified() {
        let planned = PlannedMove {
            partition: 3,
            from: "w1".into(),
            to: Some("w4".into()),
            epoch: 7,
        };
        let steps = vec![
            Step::Plan {
                drain: 10,
                moves: vec![planned],
            },
            Step::Add {
                partition: 3,
                worker: "w4".into(),
                epoch: 7,
                reason: Reason::Drain,
                replaces: Some("w1".into()),
            },
        ];
        let mut tried = Vec::new();
        commit_steps(steps.clone(), |step| {
            tried.push(step.clone());
            async move {
                if matches!(step, Step::Plan { .. }) {
                    Committed::No
                } else {
                    Committed::Yes
                }
            }
        })
        .await;
        assert_eq!(tried, steps[..1], "nothing after the refused plan");
        // A refused move does not stop the others.
        let mut tried = 0;
        let two_adds = vec![steps[1].clone(), steps[1].clone()];
        commit_steps(two_adds, |_| {
            tried += 1;
            async { Committed::No }
        })
        .await;
        assert_eq!(tried, 2);
    }
}
