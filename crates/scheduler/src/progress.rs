//! Drain progress as an operator reads it (SPEC §3, the worker record's `drain`): why a
//! draining worker's moves wait — once per limit or worker waited on, not once per partition —
//! and how fast its moves complete, with an estimate of when it is empty. Pure: the replicated
//! state, a planning round and a clock go in; no I/O, no clock of its own.

use std::collections::BTreeMap;

use drover_types::{ClusterState, EventKind, PartitionId, ReplicaRole, WorkerId};

use crate::topology::Topology;
use crate::{BlockCode, Blocked, DrainRate, Liveness, Plan, PlannerConfig, Step, Wait, WaitOn};

/// Aggregates the transient entries of `blocked` (throttled, awaiting an acknowledgement),
/// which `plan` reported for one draining worker's moves, into one [`Wait`] per thing waited
/// for. The in-flight counts are the round's own: moves in flight in `s` plus those `plan`
/// starts, counted as the planner counts them. Other codes (`no_candidate`,
/// `zone_constraint`) are faults of their partition and are not aggregated.
pub fn waits(
    s: &ClusterState,
    live: &Liveness,
    cfg: &PlannerConfig,
    plan: &Plan,
    blocked: &[Blocked],
) -> Vec<Wait> {
    let t = Topology::new(s, live, cfg);
    let mut inflight = t.inflight.clone();
    let mut total = t.inflight_total;
    for step in &plan.steps {
        match step {
            Step::Add {
                worker, replaces, ..
            } => {
                *inflight.entry(worker.clone()).or_insert(0) += 1;
                if let Some(f) = replaces {
                    *inflight.entry(f.clone()).or_insert(0) += 1;
                }
                total += 1;
            }
            Step::Release { worker, .. } | Step::Withdraw { worker, .. } => {
                *inflight.entry(worker.clone()).or_insert(0) += 1;
            }
            _ => {}
        }
    }
    let on_worker = |w: &WorkerId| inflight.get(w).copied().unwrap_or(0);
    let full = |w: &WorkerId| on_worker(w) >= cfg.max_moves_per_worker;
    // The committed target of a drain move, by (partition, source).
    let target = |p: PartitionId, from: &WorkerId| {
        s.drain_of(from)?
            .moves
            .iter()
            .find(|m| m.partition == p && &m.from == from)?
            .to
            .clone()
    };
    let mut groups: BTreeMap<(BlockCode, WaitOn, Option<WorkerId>), Vec<PartitionId>> =
        BTreeMap::new();
    for b in blocked {
        let key = match b.code {
            BlockCode::Throttled => {
                // In the order the round checks them: the planned target, the cluster, the
                // draining source.
                let planned = b.worker.as_ref().and_then(|f| target(b.partition, f));
                if let Some(t) = planned.filter(|t| full(t)) {
                    (WaitOn::WorkerSlot, Some(t))
                } else if total >= cfg.max_moves_total {
                    (WaitOn::TotalSlot, None)
                } else if let Some(f) = b.worker.as_ref().filter(|f| full(f)) {
                    (WaitOn::WorkerSlot, Some(f.clone()))
                } else {
                    (WaitOn::WorkerSlot, None)
                }
            }
            BlockCode::AwaitingAck => {
                let Some(w) = &b.worker else { continue };
                let role = s
                    .partition(b.partition)
                    .and_then(|p| p.replica(w))
                    .map(|r| r.role);
                match role {
                    Some(ReplicaRole::Joining) => (WaitOn::JoinAck, Some(w.clone())),
                    Some(ReplicaRole::Leaving) => (WaitOn::ReleaseAck, Some(w.clone())),
                    // A serving replica on the draining worker: its planned target is suspect.
                    _ => (WaitOn::SuspectTarget, target(b.partition, w)),
                }
            }
            BlockCode::NoCandidate
            | BlockCode::ZoneConstraint
            | BlockCode::Paused
            | BlockCode::MassFailure => continue,
        };
        let parts = groups.entry((b.code, key.0, key.1)).or_default();
        if !parts.contains(&b.partition) {
            parts.push(b.partition);
        }
    }
    groups
        .into_iter()
        .map(|((code, on, worker), mut partitions)| {
            partitions.sort_unstable();
            let n = u32::try_from(partitions.len()).unwrap_or(u32::MAX);
            let (in_flight, limit) = match (on, &worker) {
                (WaitOn::TotalSlot, _) => (Some(total), Some(cfg.max_moves_total)),
                (WaitOn::WorkerSlot, Some(w)) => {
                    (Some(on_worker(w)), Some(cfg.max_moves_per_worker))
                }
                (WaitOn::WorkerSlot, None) => (None, Some(cfg.max_moves_per_worker)),
                _ => (None, None),
            };
            let detail = describe(on, worker.as_ref(), n, in_flight, limit);
            Wait {
                code,
                on,
                worker,
                moves: n,
                partitions,
                in_flight,
                limit,
                detail,
            }
        })
        .collect()
}

fn describe(
    on: WaitOn,
    worker: Option<&WorkerId>,
    n: u32,
    in_flight: Option<u32>,
    limit: Option<u32>,
) -> String {
    let moves = if n == 1 {
        "1 move waits".to_owned()
    } else {
        format!("{n} moves wait")
    };
    let (f, l) = (in_flight.unwrap_or(0), limit.unwrap_or(0));
    match (on, worker) {
        (WaitOn::WorkerSlot, Some(w)) => {
            format!("{moves} for a slot on {w} ({f} of max_moves_per_worker {l} in flight)")
        }
        (WaitOn::WorkerSlot, None) => format!(
            "{moves} for a slot on a worker that could take them (each has max_moves_per_worker \
             {l} in flight)"
        ),
        (WaitOn::TotalSlot, _) => {
            format!("{moves} for a slot in the cluster ({f} of max_moves_total {l} in flight)")
        }
        (WaitOn::SuspectTarget, Some(w)) => format!(
            "{moves} for planned target {w}, which is suspect (kept while it may come back)"
        ),
        (WaitOn::SuspectTarget, None) => format!("{moves} for a planned target that is suspect"),
        (WaitOn::JoinAck, w) => format!(
            "{moves} for {} to acknowledge its joining replica (catching up)",
            opt(w)
        ),
        (WaitOn::ReleaseAck, w) => {
            format!("{moves} for {} to acknowledge its release", opt(w))
        }
    }
}

fn opt(w: Option<&WorkerId>) -> String {
    w.map_or_else(|| "a worker".to_owned(), ToString::to_string)
}

/// How long a window [`drain_rate`] measures over by default.
pub const RATE_WINDOW_MS: u64 = 5 * 60_000;

/// The move rate of draining `worker`'s drain at `now_ms` (the caller's clock, ms since the
/// Unix epoch): its replicas removed since its drain started (events of the replicated log
/// after the drain's state version) within the last `window_ms`, per minute, and the time its
/// remaining replicas take at that rate. None when `worker` is under no drain.
pub fn drain_rate(
    s: &ClusterState,
    worker: &WorkerId,
    now_ms: u64,
    window_ms: u64,
) -> Option<DrainRate> {
    let intent = s.drain_of(worker)?;
    let mut from = now_ms.saturating_sub(window_ms).max(intent.requested_ms);
    // Events before the oldest one kept were compacted: measure only what is known.
    if s.events.first_seq() > 1
        && let Some(oldest) = s.events.events.front()
    {
        from = from.max(oldest.at_ms);
    }
    let done = s
        .events
        .events
        .iter()
        .filter(|e| e.version > intent.id && e.at_ms >= from && e.at_ms <= now_ms)
        .filter(|e| matches!(&e.kind, EventKind::ReplicaRemoved { worker: w, .. } if w == worker))
        .count();
    let done = u64::try_from(done).unwrap_or(u64::MAX);
    let span = now_ms.saturating_sub(from);
    let remaining = s.replicas_on(worker).count();
    let remaining = u64::try_from(remaining).unwrap_or(u64::MAX);
    let (per_minute, eta_ms) = if done == 0 || span == 0 {
        (0.0, (remaining == 0).then_some(0))
    } else {
        (
            done as f64 * 60_000.0 / span as f64,
            Some(remaining.saturating_mul(span) / done),
        )
    };
    Some(DrainRate {
        window_ms: span,
        moves_completed: u32::try_from(done).unwrap_or(u32::MAX),
        moves_per_minute: per_minute,
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        eta_ms,
    })
}
