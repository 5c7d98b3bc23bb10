//! Workers as the API shows them (SPEC §1, §3): the replicated record with the replicas it
//! holds, and on the leader its liveness and a draining worker's progress — what is left,
//! moves in flight, what blocks it, its rate — from a planning round made at most once per
//! request.

use std::collections::BTreeSet;

use drover_api::{Blocked, DrainProgress, HeldReplica, WorkerView};
use drover_types::{ClusterState, Partition, ReplicaRole, Worker, WorkerState};

use super::liveness::Liveness;
use super::node::Node;
use super::schedule::planner_config;

/// The planning round drain progress reads its `blocked` reasons from, with the liveness view
/// it was planned on, made at most once per request: a list of draining workers would
/// otherwise plan the whole table once per worker, all under the state's read lock, which
/// holds off apply.
pub type RoundOnce = std::cell::OnceCell<(drover_scheduler::Liveness, drover_scheduler::Plan)>;

impl Node {
    /// A worker as `GET /v1/workers[/{id}]` shows it: its record, the replicas it holds, and
    /// on the leader its liveness and, while draining, its drain progress.
    pub fn worker_view(&self, s: &ClusterState, w: &Worker, round: &RoundOnce) -> WorkerView {
        worker_view(self, s, w, round)
    }
}

fn worker_view(node: &Node, s: &ClusterState, w: &Worker, round: &RoundOnce) -> WorkerView {
    let replicas = s
        .holdings_of(&w.id)
        .into_iter()
        .filter_map(|p| {
            p.replica(&w.id).map(|r| HeldReplica {
                partition: p.id,
                role: r.role,
                since: r.since,
            })
        })
        .collect();
    // SPEC §1 knows three values: a worker a new leader has not heard yet is suspect to it.
    let liveness = node
        .liveness_of(s, w, tokio::time::Instant::now())
        .map(|l| match l {
            Liveness::Unknown => Liveness::Suspect,
            l => l,
        });
    let drain = (liveness.is_some() && w.state == WorkerState::Draining)
        .then(|| drain_progress(node, s, w, round));
    WorkerView {
        record: w.clone(),
        replicas,
        liveness,
        drain,
    }
}

/// Drain progress (SPEC §3) as the leader sees it: what the drain started with, what is left,
/// moves in flight, and why anything is stuck (from a fresh planning round, which depends on
/// liveness — hence leader only).
fn drain_progress(node: &Node, s: &ClusterState, w: &Worker, round: &RoundOnce) -> DrainProgress {
    let intent = s.drain_of(&w.id);
    let held: Vec<&Partition> = s.holdings_of(&w.id);
    let in_flight = held
        .iter()
        .filter(|p| {
            p.replica(&w.id)
                .is_some_and(|r| r.role == ReplicaRole::Leaving)
                || p.replicas
                    .iter()
                    .any(|r| r.role == ReplicaRole::Joining && r.replaces.as_ref() == Some(&w.id))
        })
        .count();
    let cfg = planner_config(&s.settings);
    let (view, plan) = round.get_or_init(|| {
        let view = node.planner_view(s, &node.state().clock(), tokio::time::Instant::now());
        let plan = drover_scheduler::plan(s, &view, &cfg);
        (view, plan)
    });
    let mine: BTreeSet<u32> = held.iter().map(|p| p.id).collect();
    let blocked: Vec<Blocked> = plan
        .blocked
        .iter()
        .filter(|b| b.worker.as_ref() == Some(&w.id) || mine.contains(&b.partition))
        .cloned()
        .collect();
    let waits = drover_scheduler::waits(s, view, &cfg, plan, &blocked);
    // The clock the round was planned at: the leader's wall clock, as it stamps proposals.
    let rate =
        drover_scheduler::drain_rate(s, &w.id, view.now_ms, drover_scheduler::RATE_WINDOW_MS);
    DrainProgress {
        drain: intent.map(|d| d.id),
        requested_ms: intent.map(|d| d.requested_ms),
        replicas_total: intent.map(|d| d.replicas_total),
        replicas_remaining: held.len(),
        moves_in_flight: in_flight,
        blocked,
        waits,
        rate,
    }
}
