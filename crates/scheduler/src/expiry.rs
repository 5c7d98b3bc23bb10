//! Expiry of the operator's cordons and pause (SPEC §1, §3): the scheduler, on the leader's
//! clock, decides which have reached their `until` and commits one command each, carrying the
//! version of the record it saw, so a cordon or pause renewed in the meantime is not lifted.
//! `apply` checks the entry's proposer time against `until`; it never reads a clock.

use drover_types::{ClusterState, Command};

/// The expiry commands due at `now_ms` (the leader's wall clock, ms since the Unix epoch).
pub fn due_expiries(s: &ClusterState, now_ms: u64) -> Vec<Command> {
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
        assert!(due_expiries(&sim.state, now + 99).is_empty());
        let due = due_expiries(&sim.state, now + 100);
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
