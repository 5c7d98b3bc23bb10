//! Expiry of the operator's cordons, pause and maintenances, and drain deadlines (SPEC §1, §3):
//! the scheduler, on the leader's clock, decides which have reached their `until` and commits
//! one command each, carrying the version of the record it saw, so a hold renewed in the
//! meantime is not lifted. `apply` checks the entry's proposer time against `until`; it never
//! reads a clock.

use drover_types::{Actor, ClusterState, Command, OnDeadline, WorkerState};

use crate::{Blocked, Liveness};

/// The expiry commands due at `now_ms` (the leader's wall clock, ms since the Unix epoch).
/// `heard(worker, generation)`: whether this leader has heard that generation heartbeat — a
/// maintenance ends once a newer generation than the one it began with does (the restart is
/// done).
pub fn due_expiries(
    s: &ClusterState,
    now_ms: u64,
    heard: impl Fn(&drover_types::WorkerId, u64) -> bool,
) -> Vec<Command> {
    let due = |until: Option<u64>| until.is_some_and(|u| u <= now_ms);
    let mut out: Vec<Command> = s
        .workers
        .values()
        .flat_map(|w| {
            w.cordons
                .iter()
                .filter(|(_, c)| due(c.until_ms))
                .map(|(holder, c)| Command::ExpireCordon {
                    worker: w.id.clone(),
                    holder: holder.clone(),
                    version: c.version,
                })
        })
        .collect();
    if let Some(p) = s.brakes.pause.as_ref().filter(|p| due(p.until_ms)) {
        out.push(Command::ExpirePause { version: p.version });
    }
    for w in s.workers.values() {
        let Some(m) = &w.maintenance else { continue };
        let returned = w.generation > m.generation && heard(&w.id, w.generation);
        if returned || due(Some(m.until_ms)) {
            out.push(Command::EndMaintenance {
                worker: w.id.clone(),
                by: Actor::Scheduler,
                generation: None,
                version: Some(m.version),
            });
        }
    }
    out
}

/// Drains past their deadline at `now_ms` (SPEC §3): each is marked overdue once, with the
/// round's blocked reasons for its workers; then, for `on_deadline: force`, each of its workers
/// whose every partition keeps a majority of healthy serving replicas without it (serving, not
/// dead, not suspect) is disabled the forced way. The others stay draining, reported.
pub fn overdue_drains(
    s: &ClusterState,
    live: &Liveness,
    blocked: &[Blocked],
    now_ms: u64,
) -> Vec<Command> {
    let mut out = Vec::new();
    for d in s.drains.values() {
        if d.deadline_ms.is_none_or(|at| at > now_ms) {
            continue;
        }
        if d.overdue_since_ms.is_none() {
            let mut why: Vec<String> = blocked
                .iter()
                .filter(|b| b.worker.as_ref().is_none_or(|w| d.workers.contains(w)))
                .map(|b| format!("partition {}: {}", b.partition, b.detail))
                .take(64)
                .collect();
            if why.is_empty() {
                why.push("moves in flight have not finished".into());
            }
            out.push(Command::DrainOverdue {
                drain: d.id,
                blocked: why,
            });
            continue;
        }
        if d.on_deadline != OnDeadline::Force {
            continue;
        }
        for w in &d.workers {
            let keeps_majority = s.replicas_on(w).all(|p| {
                let others = p
                    .replicas
                    .iter()
                    .filter(|r| &r.worker != w && r.role == drover_types::ReplicaRole::Serving)
                    .filter(|r| s.is_alive(&r.worker) && !live.is_suspect(&r.worker))
                    .count();
                others > usize::from(p.replication_factor) / 2
            });
            let draining = s
                .workers
                .get(w)
                .is_some_and(|x| x.state == WorkerState::Draining);
            if keeps_majority && draining {
                out.push(Command::SetState {
                    worker: w.clone(),
                    to: WorkerState::Disabled,
                    by: Actor::Scheduler,
                    generation: None,
                    expected_version: None,
                    force: true,
                    reason: Some("drain deadline passed (on_deadline: force)".into()),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Sim;

    /// Only what has reached its `until` is due, and each expiry names the version it saw.
    #[test]
    fn only_what_reached_until_is_due() {
        let mut sim = Sim::new();
        sim.add_worker("w1", None, 1);
        let now = sim.now_ms;
        for (holder, until) in [
            ("short", Some(now + 100)),
            ("long", Some(now + 10_000)),
            ("ever", None),
        ] {
            sim.run(Command::Cordon {
                worker: "w1".into(),
                holder: holder.into(),
                reason: "r".into(),
                until_ms: until,
            })
            .unwrap();
        }
        sim.run(Command::PauseScheduler {
            reason: "r".into(),
            until_ms: Some(now + 100),
        })
        .unwrap();
        let heard = |_: &drover_types::WorkerId, _| false;
        assert!(due_expiries(&sim.state, now + 99, heard).is_empty());
        let due = due_expiries(&sim.state, now + 100, heard);
        assert_eq!(due.len(), 2, "{due:?}");
        sim.now_ms = now + 100;
        for c in due {
            sim.run(c).unwrap();
        }
        let w = &sim.state.workers[&drover_types::WorkerId::from("w1")];
        assert_eq!(w.cordons.keys().collect::<Vec<_>>(), ["ever", "long"]);
        assert_eq!(sim.state.brakes.pause, None);
    }
}
