//! The mass-failure brake (SPEC §3): the scheduler never declares more than
//! `max_deaths_fraction` of the alive workers, nor every worker of a zone, dead within one
//! `dead_after` window. A network partition that cuts a zone off looks, from the leader, exactly
//! like the zone dying; re-creating all of its replicas at once would load the survivors with a
//! flood of moves that must be undone when the zone returns. Past the limit the scheduler holds
//! every death back and trips the brake (committed, so a new leader keeps it); it releases the
//! brake itself once no worker is due to be declared dead any more (they returned), or an
//! operator releases it, which keeps it from tripping again for one `dead_after` window.
//!
//! [`judge_deaths`] is pure: the deaths due (the leader's soft verdicts) and the replicated
//! state in, the verdicts to commit and the brake command out.

use std::collections::BTreeMap;

use drover_types::{Actor, ClusterState, Command, WorkerId, WorkerState};

/// What one round does with the deaths due.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeathVerdicts {
    /// Declare these dead.
    pub declare: Vec<WorkerId>,
    /// Trip (or update) or release the brake.
    pub brake: Option<Command>,
}

/// Judges the deaths `due` at the leader's time `now_ms` (ms since the Unix epoch). `silent`
/// says which workers the leader has not heard for `suspect_after`: a zone cut off does not go
/// silent in one instant (its workers' last heartbeats are up to an interval apart), so its
/// first worker to fall due must not be declared dead while the rest of the zone is silent too.
pub fn judge_deaths(
    s: &ClusterState,
    due: &[WorkerId],
    silent: impl Fn(&WorkerId) -> bool,
    now_ms: u64,
) -> DeathVerdicts {
    let window_start = now_ms.saturating_sub(s.settings.dead_after_ms);
    // A fraction of 1 turns the brake off, its zone rule included (and releases a trip).
    let off = s.settings.max_deaths_fraction == drover_types::Fraction::ONE;
    if let Some(b) = &s.brakes.mass_failure {
        // Held: nothing is declared. Once no one is due any more, the workers returned.
        let brake = if due.is_empty() || off {
            Some(Command::ReleaseBrake {
                by: Actor::Scheduler,
                version: Some(b.version),
                reason: Some("the workers it held back returned".into()),
                until_ms: None,
            })
        } else if b.workers != due {
            Some(trip(s, due, &b.reason))
        } else {
            None
        };
        return DeathVerdicts {
            declare: Vec::new(),
            brake,
        };
    }
    let released = s
        .brakes
        .released
        .as_ref()
        .and_then(|r| r.until_ms)
        .is_some_and(|until| now_ms < until);
    if due.is_empty() || released || off {
        return DeathVerdicts {
            declare: due.to_vec(),
            brake: None,
        };
    }
    // The population: workers that hold or may hold replicas, alive or dead within the window.
    let recently_dead =
        |w: &drover_types::Worker| w.dead && w.dead_at_ms.is_some_and(|at| at >= window_start);
    let counted: Vec<&drover_types::Worker> = s
        .workers
        .values()
        .filter(|w| matches!(w.state, WorkerState::Active | WorkerState::Draining))
        .filter(|w| !w.dead || recently_dead(w))
        .collect();
    let dead_in_window = counted.iter().filter(|w| w.dead).count();
    // At least one death per window, so a small cluster can still lose a worker.
    let allowed = s.settings.max_deaths_fraction.of(counted.len()).max(1);
    if dead_in_window + due.len() > allowed {
        let reason = format!(
            "{} deaths within dead_after ({} ms) would exceed max_deaths_fraction {} of {} workers \
             (at most {allowed})",
            dead_in_window + due.len(),
            s.settings.dead_after_ms,
            s.settings.max_deaths_fraction.as_f64(),
            counted.len(),
        );
        return DeathVerdicts {
            declare: Vec::new(),
            brake: Some(trip(s, due, &reason)),
        };
    }
    // Every worker of a zone (of two or more): a zone cut off, more likely than a zone dead.
    let mut zones: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for w in &counted {
        let Some(z) = w.zone.as_deref() else { continue };
        let e = zones.entry(z).or_default();
        e.0 += 1;
        if w.dead || due.contains(&w.id) || silent(&w.id) {
            e.1 += 1;
        }
    }
    if let Some((zone, (n, _))) = zones.iter().find(|(_, (n, gone))| *n >= 2 && gone == n) {
        let reason = format!(
            "all {n} workers of zone {zone} are silent or dead within dead_after ({} ms)",
            s.settings.dead_after_ms
        );
        return DeathVerdicts {
            declare: Vec::new(),
            brake: Some(trip(s, due, &reason)),
        };
    }
    DeathVerdicts {
        declare: due.to_vec(),
        brake: None,
    }
}

fn trip(_s: &ClusterState, due: &[WorkerId], reason: &str) -> Command {
    Command::TripBrake {
        workers: due.to_vec(),
        reason: reason
            .chars()
            .take(drover_types::MAX_REASON_BYTES)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use drover_types::Command;

    use super::*;
    use crate::sim::Sim;

    fn fleet() -> Sim {
        let mut sim = Sim::new();
        for (w, z) in [
            ("a1", "a"),
            ("a2", "a"),
            ("b1", "b"),
            ("b2", "b"),
            ("c1", "c"),
            ("c2", "c"),
        ] {
            sim.add_worker(w, Some(z), 1);
        }
        sim
    }

    fn ids(ws: &[&str]) -> Vec<WorkerId> {
        ws.iter().map(|w| WorkerId::from(*w)).collect()
    }

    /// A third of six may die in one window; a whole zone may not (nor its first worker while
    /// the rest of it is silent); the brake holds every death back and releases once no one is
    /// due.
    #[test]
    fn a_third_may_die_a_zone_may_not_and_the_brake_holds_all() {
        let mut sim = fleet();
        let now = sim.now_ms;
        let one = judge_deaths(&sim.state, &ids(&["a1"]), |_| false, now);
        assert_eq!(one.declare, ids(&["a1"]));
        assert_eq!(one.brake, None);
        // Two of six, in two zones: allowed.
        let two = judge_deaths(&sim.state, &ids(&["a1", "b1"]), |_| false, now);
        assert_eq!(two.declare.len(), 2);
        // A zone's two workers: the brake.
        let zone = judge_deaths(&sim.state, &ids(&["a1", "a2"]), |_| false, now);
        assert!(zone.declare.is_empty());
        let Some(Command::TripBrake { workers, reason }) = zone.brake.clone() else {
            panic!("{zone:?}")
        };
        assert_eq!(workers, ids(&["a1", "a2"]));
        assert!(reason.contains("zone a"), "{reason}");
        // The zone's first worker to fall due while the other is silent (not yet due): the
        // brake too, holding the one due.
        let a2 = WorkerId::from("a2");
        let staggered = judge_deaths(&sim.state, &ids(&["a1"]), |w| *w == a2, now);
        assert!(staggered.declare.is_empty(), "{staggered:?}");
        assert!(
            matches!(&staggered.brake, Some(Command::TripBrake { workers, .. }) if *workers == ids(&["a1"])),
            "{staggered:?}"
        );
        // With max_deaths_fraction 1 the brake is off, the zone rule too.
        let mut off = sim.state.clone();
        off.settings.max_deaths_fraction = drover_types::Fraction::ONE;
        let whole_zone = judge_deaths(&off, &ids(&["a1", "a2"]), |_| false, now);
        assert_eq!((whole_zone.declare.len(), whole_zone.brake), (2, None));
        // A silent worker elsewhere changes nothing for a1.
        let b2 = WorkerId::from("b2");
        let elsewhere = judge_deaths(&sim.state, &ids(&["a1"]), |w| *w == b2, now);
        assert_eq!(elsewhere.declare, ids(&["a1"]));
        // Three of six: over a third.
        let three = judge_deaths(&sim.state, &ids(&["a1", "b1", "c1"]), |_| false, now);
        assert!(three.declare.is_empty() && three.brake.is_some());
        // Tripped: nothing declared, not even one; released once no one is due.
        sim.run(zone.brake.unwrap()).unwrap();
        let held = judge_deaths(&sim.state, &ids(&["a1", "a2"]), |_| false, now);
        assert_eq!(held, DeathVerdicts::default());
        let back = judge_deaths(&sim.state, &[], |_| false, now);
        assert!(
            matches!(back.brake, Some(Command::ReleaseBrake { .. })),
            "{back:?}"
        );
    }

    /// Deaths already declared in the window count; after the window they do not.
    #[test]
    fn deaths_of_the_window_count() {
        let mut sim = fleet();
        let generation = sim.state.workers[&WorkerId::from("a1")].generation;
        sim.run(Command::MarkDead {
            worker: "a1".into(),
            generation,
            term: sim.term,
        })
        .unwrap();
        let now = sim.now_ms;
        let dead_after = sim.state.settings.dead_after_ms;
        // One dead, two more due: three of six.
        let v = judge_deaths(&sim.state, &ids(&["b1", "c1"]), |_| false, now);
        assert!(v.declare.is_empty() && v.brake.is_some(), "{v:?}");
        // A window later the first death no longer counts (nor does its worker): one of the
        // five may go.
        let v = judge_deaths(&sim.state, &ids(&["b1"]), |_| false, now + dead_after + 1);
        assert_eq!(v.declare, ids(&["b1"]), "{v:?}");
    }

    /// An operator's release lets the deaths through for one window.
    #[test]
    fn an_operators_release_lets_the_deaths_through_for_a_window() {
        let mut sim = fleet();
        let now = sim.now_ms;
        let due = ids(&["a1", "a2"]);
        sim.run(
            judge_deaths(&sim.state, &due, |_| false, now)
                .brake
                .unwrap(),
        )
        .unwrap();
        let until = now + sim.state.settings.dead_after_ms;
        sim.run(Command::ReleaseBrake {
            by: Actor::Operator,
            version: None,
            reason: Some("zone a is gone for good".into()),
            until_ms: Some(until),
        })
        .unwrap();
        assert_eq!(sim.state.brakes.mass_failure, None);
        assert_eq!(judge_deaths(&sim.state, &due, |_| false, now).declare, due);
        assert!(
            judge_deaths(&sim.state, &due, |_| false, until)
                .brake
                .is_some()
        );
    }
}
