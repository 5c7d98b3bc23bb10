//! The lease checks (SPEC §1 "What makes the lease sound", §6 "Fencing"), from what every agent
//! process reported ([`crate::fleet::ProcRecord`]) and the deaths the events log committed.
//!
//! - *Lease before death*: for every committed death of worker W at generation g, the process
//!   that held W at generation g had lost its lease before the death: every lease expiry it
//!   reported at generation g is at or before the death's `at_ms` (the proposer's clock, read
//!   before proposing, so before the commit). Every report counts, also one written after the
//!   death: a process SIGSTOPped between a heartbeat's answer and its report still reports the
//!   expiry that answer gave, and the lease is that expiry, not when the process noticed. With
//!   a sound server every expiry is `sent + dead_after − margin`, below the last heartbeat's
//!   arrival + `dead_after`, which the death waited out: the check has a margin's slack.
//! - *No double lease*: no two processes hold a lease for the same worker id at once. A
//!   process holds it from a report of an expiry until the earliest of that expiry, its next
//!   report of losing it, and the harness's SIGKILL. A report is written after the lease was
//!   granted, so the intervals start late, never early: an overlap they show was there.
//!
//! Both clocks are the one wall clock of the machine (agents convert their monotonic expiry
//! to it when they report, [`crate::agent_process`]).

use std::collections::BTreeMap;

use crate::agent_process::What;
use crate::fleet::ProcRecord;
use crate::invariants::Death;

/// What the lease checks found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub lease_violations: Vec<String>,
    pub double_leases: Vec<String>,
    /// Deaths of workers the fleet ran.
    pub deaths_checked: u64,
    /// Of those, deaths of a generation whose process had reported holding a lease.
    pub deaths_after_leases: u64,
    /// Pairs of processes of one worker whose lease intervals were compared.
    pub process_pairs: u64,
}

/// One process's lease, held over `[from, to]` (wall-clock ms).
#[derive(Clone, Copy, Debug)]
struct Held {
    from: u64,
    to: u64,
    generation: u64,
}

/// The intervals over which `p` held a lease, merged where they touch.
fn intervals(p: &ProcRecord) -> Vec<Held> {
    let mut out: Vec<Held> = Vec::new();
    for (i, l) in p.lines.iter().enumerate() {
        let What::Lease { until_ms } = l.what else {
            continue;
        };
        // Until the expiry, or the next report of losing it, or the SIGKILL.
        let lost = p.lines[i + 1..]
            .iter()
            .find(|x| matches!(x.what, What::Lost))
            .map(|x| x.at_ms);
        let to = [Some(until_ms), lost, p.killed_ms]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(until_ms);
        if to <= l.at_ms {
            continue; // reported after it had run out
        }
        match out.last_mut() {
            Some(h) if l.at_ms <= h.to && l.generation == h.generation => h.to = h.to.max(to),
            _ => out.push(Held {
                from: l.at_ms,
                to,
                generation: l.generation,
            }),
        }
    }
    out
}

/// Checks every death against the processes' reports, and every worker's processes against
/// each other.
pub fn check(procs: &[ProcRecord], deaths: &[Death]) -> Findings {
    let mut f = Findings::default();
    let fleet_workers: std::collections::BTreeSet<&str> =
        procs.iter().map(|p| p.worker.as_str()).collect();
    for d in deaths {
        if !fleet_workers.contains(d.worker.as_str()) {
            continue;
        }
        f.deaths_checked += 1;
        let mut held_any = false;
        for p in procs.iter().filter(|p| p.worker == d.worker) {
            let latest = p
                .lines
                .iter()
                .filter(|l| l.generation == d.generation)
                .filter_map(|l| match l.what {
                    What::Lease { until_ms } => Some((until_ms, l.at_ms)),
                    _ => None,
                })
                .max();
            let Some((until, reported)) = latest else {
                continue;
            };
            held_any = true;
            if until > d.at_ms {
                f.lease_violations.push(format!(
                    "{} declared dead at generation {} (event {}, version {}, proposed at {} ms) \
                     while its process pid {} held a lease until {} ms ({} ms after the verdict; \
                     reported at {} ms)",
                    d.worker,
                    d.generation,
                    d.seq,
                    d.version,
                    d.at_ms,
                    p.pid,
                    until,
                    until - d.at_ms,
                    reported
                ));
            }
        }
        if held_any {
            f.deaths_after_leases += 1;
        }
    }

    let mut by_worker: BTreeMap<&str, Vec<&ProcRecord>> = BTreeMap::new();
    for p in procs {
        by_worker.entry(p.worker.as_str()).or_default().push(p);
    }
    for (worker, ps) in by_worker {
        let held: Vec<(&ProcRecord, Vec<Held>)> = ps.iter().map(|p| (*p, intervals(p))).collect();
        for (i, (a, ha)) in held.iter().enumerate() {
            for (b, hb) in &held[i + 1..] {
                f.process_pairs += 1;
                let overlap = ha.iter().find_map(|x| {
                    hb.iter().find_map(|y| {
                        let (from, to) = (x.from.max(y.from), x.to.min(y.to));
                        (from < to).then_some((from, to, x.generation, y.generation))
                    })
                });
                if let Some((from, to, ga, gb)) = overlap {
                    f.double_leases.push(format!(
                        "{worker}: process pid {} (generation {ga}) and pid {} (generation {gb}) \
                         both held its lease from {from} ms to {to} ms ({} ms)",
                        a.pid,
                        b.pid,
                        to - from
                    ));
                }
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_process::Line;

    fn line(at_ms: u64, generation: u64, what: What) -> Line {
        Line {
            at_ms,
            pid: 1,
            worker: "f-1".into(),
            generation,
            what,
        }
    }

    fn proc(serial: u64, pid: u32, lines: Vec<Line>, killed_ms: Option<u64>) -> ProcRecord {
        ProcRecord {
            serial,
            worker: "f-1".into(),
            pid,
            uid: 0,
            started_ms: 0,
            killed_ms,
            lines,
        }
    }

    fn death(generation: u64, at_ms: u64) -> Death {
        Death {
            worker: "f-1".into(),
            generation,
            at_ms,
            seq: 7,
            version: 70,
            seen_ns: None,
        }
    }

    fn lease(until_ms: u64) -> What {
        What::Lease { until_ms }
    }

    /// A death after the last expiry is sound; one before it is reported, also when the report
    /// of the expiry came after the death (a process paused between its heartbeat's answer and
    /// its report), and one at another generation is not this process's business.
    #[test]
    fn a_death_must_come_after_every_expiry_its_generation_reported() {
        let p = proc(
            0,
            10,
            vec![
                line(1_000, 3, lease(3_500)),
                line(1_250, 3, lease(3_750)),
                line(3_750, 3, What::Lost),
            ],
            None,
        );
        let ok = check(std::slice::from_ref(&p), &[death(3, 4_000)]);
        assert!(ok.lease_violations.is_empty(), "{ok:?}");
        assert_eq!((ok.deaths_checked, ok.deaths_after_leases), (1, 1));

        let early = check(std::slice::from_ref(&p), &[death(3, 3_600)]);
        assert_eq!(early.lease_violations.len(), 1, "{early:?}");

        let mut late = p.clone();
        late.lines.push(line(9_000, 3, lease(4_400)));
        assert_eq!(check(&[late], &[death(3, 4_000)]).lease_violations.len(), 1);

        let other = check(&[p], &[death(4, 1_100)]);
        assert!(other.lease_violations.is_empty());
        assert_eq!(other.deaths_after_leases, 0);
    }

    /// Two processes of one worker: a lease taken over after the first's expiry, loss or
    /// SIGKILL is fine; overlapping leases are reported.
    #[test]
    fn two_processes_may_not_hold_one_workers_lease_at_once() {
        let first = |killed| {
            proc(
                0,
                10,
                vec![line(1_000, 3, lease(3_500)), line(1_250, 3, lease(3_750))],
                killed,
            )
        };
        let second = |from| proc(1, 11, vec![line(from, 4, lease(from + 2_500))], None);
        assert!(
            check(&[first(None), second(3_800)], &[])
                .double_leases
                .is_empty()
        );
        assert!(
            check(&[first(Some(2_000)), second(2_100)], &[])
                .double_leases
                .is_empty()
        );
        let f = check(&[first(None), second(3_000)], &[]);
        assert_eq!(f.double_leases.len(), 1, "{f:?}");
        assert!(f.double_leases[0].contains("750 ms"), "{f:?}");
        // Lost early (superseded): held only until the report of the loss.
        let mut lost = first(None);
        lost.lines.push(line(1_400, 3, What::Lost));
        assert!(check(&[lost, second(1_500)], &[]).double_leases.is_empty());
    }
}
