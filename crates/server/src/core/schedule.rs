//! The leader-only scheduling loop (SPEC §3): on every applied change to what the planner reads
//! (not KV writes) and on a periodic tick,
//! while this node leads, it builds the liveness view from heartbeats, commits death verdicts
//! for workers silent past `dead_after`, and commits the planner's steps, each with the epoch
//! it read as precondition. It stops acting the moment leadership is lost: every round starts
//! by checking, and a stale step is rejected by `apply`, never applied.

use std::ops::Deref;
use std::time::Duration;

use tokio::time::Instant;

use drover_scheduler::{
    Blocked, PlannerConfig, Reason, Step, due_expiries, judge_deaths, overdue_drains, plan,
};
use drover_store::ApplyClock;
use drover_types::{ClusterState, Command, WorkerId, WorkerState};

use super::error::Error;
use super::liveness::{Heartbeats, Leadership, Timing};
use super::metrics::{CauseLabels, CodeLabels, ReasonLabels};
use super::node::Node;

/// How often the loop plans even when nothing was applied (timeouts, liveness changes).
const TICK: Duration = Duration::from_millis(250);

/// Least time between the starts of two rounds. A burst of applied changes — a fleet's
/// acknowledgements, entry after entry — then makes one round, not one per entry, and the
/// state's read lock (which apply waits behind) is not held by planning back to back.
const SETTLE: Duration = Duration::from_millis(50);

pub(crate) async fn run(node: Node) {
    // Woken by changes to what the planner reads, not by every KV write: a KV-heavy load
    // would otherwise run a planning round per write, holding the state's read lock.
    let mut versions = node.placement_versions();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next: Option<Instant> = None;
    let mut memo = PlanMemo::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = versions.changed() => if changed.is_err() { return },
        }
        if let Some(at) = next {
            tokio::time::sleep_until(at).await;
        }
        let Some(leadership) = node.heartbeats().leadership() else {
            continue;
        };
        let started = Instant::now();
        let planning = round(&node, leadership, &mut memo).await;
        next = Some(started + gap_after(planning));
    }
}

/// How long a plan's time is spread over: the next round starts no sooner than this many
/// times the last plan's time after it, so planning takes at most a quarter of one core
/// while a fleet's acknowledgements change the placement entry after entry.
const PLAN_SHARE: u32 = 4;

/// Least time from a round's start to the next one's, after a round whose plan took
/// `planning` (`None`: a quiet plan stood).
fn gap_after(planning: Option<Duration>) -> Duration {
    planning.map_or(SETTLE, |took| SETTLE.max(took * PLAN_SHARE))
}

/// The planner's knobs, from the replicated settings.
pub(crate) fn planner_config(s: &drover_types::Settings) -> PlannerConfig {
    PlannerConfig {
        max_moves_per_worker: s.max_moves_per_worker,
        max_moves_total: s.max_moves_total,
        join_timeout_ms: s.join_timeout_ms,
    }
}

/// How long a quiet plan stands, with nothing changed, while the state holds something the
/// plan judges by the time (a joining replica's timeout, a drain's deadline): at this
/// resolution at worst. A plan on a state holding neither stands until its inputs change.
const REPLAN_EVERY: Duration = Duration::from_secs(2);

/// The last plan that had nothing to do, and what it was made on. A round whose inputs are
/// the same — the placement state's version, the leader's term, who is suspect or unheard —
/// plans the same nothing again; with 10,000 workers and 30,000 partitions idle, planning four
/// times a second was most of a leader's CPU. Deaths and expiries are still judged every round.
#[derive(Debug, Default)]
pub(crate) struct PlanMemo {
    quiet: Option<Quiet>,
}

#[derive(Debug)]
struct Quiet {
    inputs: PlanInputs,
    at: Instant,
    /// Whether the state it was made on holds something judged by the time.
    timed: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct PlanInputs {
    placement_version: u64,
    term: u64,
    suspect: std::collections::BTreeSet<WorkerId>,
    unheard: std::collections::BTreeSet<WorkerId>,
}

impl PlanMemo {
    /// Whether a plan on `inputs` at `now` would repeat the last quiet one.
    fn stands(&self, inputs: &PlanInputs, now: Instant) -> bool {
        self.quiet.as_ref().is_some_and(|q| {
            q.inputs == *inputs && (!q.timed || now.saturating_duration_since(q.at) < REPLAN_EVERY)
        })
    }

    /// Keeps `planned`'s inputs if the planner had nothing to do.
    fn remember(&mut self, planned: &Planned, inputs: PlanInputs, now: Instant) {
        self.quiet = planned.quiet.then_some(Quiet {
            inputs,
            at: now,
            timed: planned.timed,
        });
    }
}

/// Whether a plan on `s` depends on the time as well as on `s`: through a joining replica's
/// timeout, or a drain's deadline (its overdue report is made from the plan's blocked list).
fn judged_by_time(s: &ClusterState) -> bool {
    !s.drains.is_empty()
        || s.partitions.iter().any(|p| {
            p.replicas
                .iter()
                .any(|r| r.role == drover_types::ReplicaRole::Joining)
        })
}

/// What one round decided, before any of it is proposed (as the tests read it).
#[cfg(test)]
#[derive(Debug)]
struct Decisions {
    /// Workers to declare dead, at their generation: decided under the heartbeats' lock, so
    /// none of their heartbeats is acknowledged until each verdict is settled.
    deaths: Vec<(WorkerId, u64)>,
    /// Brake trips, and cordons, pauses, maintenances and drains whose time is up.
    expiries: Vec<Command>,
    /// The planner's steps, in order.
    steps: Vec<Step>,
    /// What the planner found blocked, and how long it took (`None`: the last quiet plan
    /// stood, and the planner did not run).
    blocked: Vec<Blocked>,
    planning: Option<Duration>,
}

/// A round's verdicts, and what its plan (if one is due) is made on.
struct Judged {
    deaths: Vec<(WorkerId, u64)>,
    expiries: Vec<Command>,
    /// `None` while the last quiet plan stands.
    plan: Option<(drover_scheduler::Liveness, PlanInputs)>,
}

/// Judges one round on the applied state `s` at `now` (tokio's clock, which the liveness rules
/// compare heartbeats with) and `wall` (the time of day, which `until`s and deadlines are in):
/// death verdicts and expiries, and whether a plan is due. Reads no clock of its own. `clock`
/// (the apply clock's guard) is released before it returns. A plan is not due while `memo`'s
/// last quiet one stands for `placement_version` (the version of the last applied change to
/// what the planner reads, read before `s` was).
#[allow(clippy::too_many_arguments)]
fn judge(
    s: &ClusterState,
    clock: impl Deref<Target = ApplyClock>,
    hb: &Heartbeats,
    leadership: Leadership,
    now: Instant,
    wall: u64,
    placement_version: u64,
    memo: &PlanMemo,
) -> Judged {
    // Verdicts left pending by an unknown outcome are settled once the state tells: dead,
    // or re-registered, removed or no longer judged (apply refuses a death then).
    hb.settle_resolved(|w, g| {
        s.workers.get(w).is_none_or(|x| {
            x.generation != g
                || x.dead
                || !matches!(x.state, WorkerState::Active | WorkerState::Draining)
        })
    });
    let t = Timing::at(&s.settings, &clock, now);
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
    let view = hb.planner_view(s, &clock, now, wall);
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
    let inputs = PlanInputs {
        placement_version,
        term: leadership.term,
        suspect: view.suspect.clone(),
        unheard: view.unheard.clone(),
    };
    Judged {
        deaths,
        expiries,
        plan: (!memo.stands(&inputs, now)).then_some((view, inputs)),
    }
}

/// A plan and what follows from it.
struct Planned {
    steps: Vec<Step>,
    blocked: Vec<Blocked>,
    /// Drains past their deadline, with what the plan found blocked (SPEC §3).
    overdue: Vec<Command>,
    took: Duration,
    /// Whether the planner had nothing to do (before a settling leader's steps were held back:
    /// a plan that held some back must be made again).
    quiet: bool,
    timed: bool,
}

/// Plans on `s` (pure: no lock, no clock but the one timing it). A new leader starts no move
/// until it has had `suspect_after` to hear every worker: placing on whoever happened to
/// heartbeat first would need undoing once the rest are heard. Steps that finish moves
/// already under way go ahead (`settling`: it has not had that time yet).
fn plan_on(
    s: &ClusterState,
    view: &drover_scheduler::Liveness,
    wall: u64,
    settling: bool,
) -> Planned {
    let started = std::time::Instant::now();
    let planned = plan(s, view, &planner_config(&s.settings));
    let took = started.elapsed();
    let overdue = overdue_drains(s, view, &planned.blocked, wall);
    let mut steps = planned.steps;
    let quiet = steps.is_empty();
    if settling {
        steps.retain(|step| !step.adds_replica());
    }
    Planned {
        steps,
        quiet,
        blocked: planned.blocked,
        overdue,
        took,
        timed: judged_by_time(s),
    }
}

/// Whether a leader since `leadership.since` is still hearing its workers at `now`.
fn settling(s: &ClusterState, leadership: Leadership, now: Instant) -> bool {
    let suspect_after = Duration::from_millis(s.settings.suspect_after_ms);
    now.saturating_duration_since(leadership.since) < suspect_after
}

/// Decides one round on `s` in one go, as [`round`] does with its plan made on a copy
/// outside the state's lock: [`judge`], then the plan if one is due.
#[allow(clippy::too_many_arguments)]
#[cfg(test)]
fn decide(
    s: &ClusterState,
    clock: impl Deref<Target = ApplyClock>,
    hb: &Heartbeats,
    leadership: Leadership,
    now: Instant,
    wall: u64,
    placement_version: u64,
    memo: &mut PlanMemo,
) -> Decisions {
    let judged = judge(s, clock, hb, leadership, now, wall, placement_version, memo);
    let mut d = Decisions {
        deaths: judged.deaths,
        expiries: judged.expiries,
        steps: Vec::new(),
        blocked: Vec::new(),
        planning: None,
    };
    if let Some((view, inputs)) = judged.plan {
        let planned = plan_on(s, &view, wall, settling(s, leadership, now));
        memo.remember(&planned, inputs, now);
        d.expiries.extend(planned.overdue);
        d.steps = planned.steps;
        d.blocked = planned.blocked;
        d.planning = Some(planned.took);
    }
    d
}

/// One round: decided on the applied state at this moment of the node's clocks, then
/// committed in order — verdicts, expiries, steps — stopping the moment leadership is lost.
/// Returns how long its plan took, if it planned.
async fn round(node: &Node, leadership: Leadership, memo: &mut PlanMemo) -> Option<Duration> {
    let hb = node.heartbeats();
    // Read before the state: the state is then at least as new as the version the memo keeps.
    let placement_version = *node.placement_versions().borrow();
    let wall = node.now_ms();
    let now = Instant::now();
    // Verdicts under the state's read lock (they are O(workers)); the plan, if one is due, on
    // a copy of what it reads, on a blocking thread: a plan of a 10,000-worker fleet takes
    // long enough that, under the lock, apply (which takes it to write) and every reader
    // queued behind apply would wait for it, and on a runtime thread every task would.
    let (judged, snapshot) = {
        let guard = node.state().read();
        let s = &guard.state;
        let judged = judge(
            s,
            node.state().clock(),
            hb,
            leadership,
            now,
            wall,
            placement_version,
            memo,
        );
        let snapshot = judged.plan.is_some().then(|| s.placement_view());
        (judged, snapshot)
    };
    let Judged {
        deaths,
        mut expiries,
        plan,
    } = judged;
    let mut steps = Vec::new();
    let mut planning = None;
    if let (Some((view, inputs)), Some(s)) = (plan, snapshot) {
        let settling = settling(&s, leadership, now);
        let planned = tokio::task::spawn_blocking(move || plan_on(&s, &view, wall, settling)).await;
        match planned {
            Ok(planned) => {
                record_round(node, &planned.blocked, planned.took);
                planning = Some(planned.took);
                memo.remember(&planned, inputs, now);
                expiries.extend(planned.overdue);
                steps = planned.steps;
            }
            Err(e) => tracing::error!(error = %e, "the planner failed; planning again next round"),
        }
    }
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
    commit_steps(steps, |group: Vec<Step>| async move {
        if hb.leadership() != Some(leadership) {
            // Leadership changed mid-round: stop at once.
            return vec![Committed::Stop; group.len()];
        }
        // For the drain-duration metric: when was this worker's drain requested?
        let drain_requested = |step: &Step| match step {
            Step::Disable { worker } => node
                .state()
                .read()
                .state
                .drain_of(worker)
                .map(|d| d.requested_ms),
            _ => None,
        };
        let requested: Vec<Option<u64>> = group.iter().map(drain_requested).collect();
        let mut commands: Vec<Command> = group.iter().map(Step::command).collect();
        let results = match commands.pop() {
            Some(only) if commands.is_empty() => vec![node.propose(only).await],
            Some(last) => {
                commands.push(last);
                node.propose_batch(commands).await
            }
            None => Vec::new(),
        };
        group
            .iter()
            .zip(requested)
            .zip(results)
            .map(|((step, requested), result)| match result {
                Ok(_) => {
                    record(node, step, requested);
                    Committed::Yes
                }
                Err(e) => {
                    tracing::debug!(?step, error = %e, "step not applied; replanning");
                    Committed::No
                }
            })
            .collect()
    })
    .await;
    planning
}

/// Most steps in one log entry: a round of 90,000 placements is ~90 entries, not 90,000.
const STEPS_PER_ENTRY: usize = 1024;

/// Most bytes of worker ids in one entry (a step's ids are most of its encoding), as the
/// batcher's limit: openraft sends up to 300 entries in one append, which must stay well under
/// the RPC body limit.
const STEP_BYTES_PER_ENTRY: usize = 64 << 10;

/// About what `step` adds to an entry: its worker ids and a little for the rest.
fn step_bytes(step: &Step) -> usize {
    let id = |w: &drover_types::WorkerId| w.as_str().len() + 2;
    16 + match step {
        Step::Add {
            worker, replaces, ..
        } => id(worker) + replaces.as_ref().map_or(0, id),
        Step::Place { workers, .. } => workers.iter().map(id).sum(),
        Step::Release { worker, .. }
        | Step::Withdraw { worker, .. }
        | Step::SetLeader { worker, .. }
        | Step::Disable { worker } => id(worker),
        Step::Plan { moves, .. } => moves.iter().map(|m| id(&m.from) + 24).sum(),
    }
}

/// A round's steps as the log entries that commit them, in order: drain plans alone (each
/// must commit before the moves it justifies are made), and runs of replica steps batched,
/// at most [`STEPS_PER_ENTRY`] and about [`STEP_BYTES_PER_ENTRY`] to an entry; any other step
/// (disabling a worker) alone.
fn groups(steps: Vec<Step>) -> Vec<Vec<Step>> {
    let mut out: Vec<Vec<Step>> = Vec::new();
    let mut run: Vec<Step> = Vec::new();
    let mut bytes = 0;
    for step in steps {
        if step.command().is_step() {
            let more = step_bytes(&step);
            if !run.is_empty() && bytes + more > STEP_BYTES_PER_ENTRY {
                out.push(std::mem::take(&mut run));
                bytes = 0;
            }
            bytes += more;
            run.push(step);
            if run.len() == STEPS_PER_ENTRY {
                out.push(std::mem::take(&mut run));
                bytes = 0;
            }
        } else {
            if !run.is_empty() {
                out.push(std::mem::take(&mut run));
                bytes = 0;
            }
            out.push(vec![step]);
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// What became of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Committed {
    Yes,
    /// Refused (a stale epoch, a lost race): the next round replans it.
    No,
    /// Stop the round (leadership moved).
    Stop,
}

/// Commits a round's steps in order, a log entry per [`groups`] group, with `commit`
/// answering one [`Committed`] per step of the group. A drain plan that did not commit
/// justified moves later in the round (plan steps come first), so none of those may be made
/// outside the record: the round stops there and the next one replans from the state.
async fn commit_steps<F, Fut>(steps: Vec<Step>, mut commit: F)
where
    F: FnMut(Vec<Step>) -> Fut,
    Fut: Future<Output = Vec<Committed>>,
{
    for group in groups(steps) {
        let plans: Vec<bool> = group
            .iter()
            .map(|step| matches!(step, Step::Plan { .. }))
            .collect();
        let answers = commit(group).await;
        for (plan, answer) in plans.into_iter().zip(answers) {
            match answer {
                Committed::Yes => {}
                Committed::No if !plan => {}
                Committed::No | Committed::Stop => return,
            }
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
fn record_round(node: &Node, blocked: &[Blocked], took: Duration) {
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
        let n = blocked.iter().filter(|b| b.code == code).count();
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
                let secs = node.now_ms().saturating_sub(at) as f64 / 1000.0;
                m.drain_seconds.observe(secs);
                tracing::info!(%worker, secs, "drained worker disabled");
            }
        }
        Step::SetLeader { cause, .. } => {
            let cause = cause.as_str().to_owned();
            m.leader_changes.get_or_create(&CauseLabels { cause }).inc();
        }
        Step::Place { workers, .. } => {
            m.replicas_placed.inc_by(workers.len() as u64);
        }
        Step::Withdraw { .. } | Step::Plan { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use drover_types::testing::Harness;
    use drover_types::{Actor, PlannedMove};

    use super::*;
    use crate::clock::Clock;

    /// A round decided on tokio's paused clock and a node clock that follows it, the way the
    /// loop decides it: a worker heard at the start and silent since is declared dead exactly
    /// `dead_after` later (30 s by default), not a moment before; one in maintenance survives
    /// its silence until the `until` the node's clock reaches, then dies with its maintenance
    /// ended; a pause ends at its `until`. Every moment comes from the clocks passed in — a
    /// round that read the system's time of day would end the maintenance (set in 2023 on
    /// this clock) at once.
    #[tokio::test(start_paused = true)]
    async fn a_round_judges_deaths_and_expiries_by_the_clocks_it_is_given() {
        const S: Duration = Duration::from_secs(1);
        let clock = Clock::tokio_from(1_700_000_000_000);
        let mut h = Harness::starting_at(clock.now_ms(), 0);
        for (id, zone) in [
            ("w1", "a"),
            ("w2", "a"),
            ("w3", "b"),
            ("w4", "b"),
            ("w5", "c"),
            ("w6", "c"),
        ] {
            h.add_worker(id, Some(zone), 4);
        }
        let t0 = Instant::now();
        let applied = ApplyClock::new_at(t0);
        let hb = Heartbeats::default();
        hb.became_leader(1, t0);
        let lead = hb.leadership().expect("leads");
        let heartbeat = |ids: &[&str]| {
            for id in ids {
                hb.acknowledge(&WorkerId::from(*id), 1, Instant::now())
                    .unwrap();
            }
        };
        heartbeat(&["w1", "w2", "w3", "w4", "w5", "w6"]);
        h.ok(Command::EnterMaintenance {
            worker: "w6".into(),
            reason: "kernel upgrade".into(),
            until_ms: clock.now_ms() + 90_000,
            by: Actor::Operator,
            generation: None,
        });
        h.ok(Command::PauseScheduler {
            reason: "change freeze".into(),
            until_ms: Some(clock.now_ms() + 45_000),
        });
        // Runs a round at this moment of both clocks, and commits its verdicts and expiries
        // as the loop would, stamped with the node clock's time.
        let round = |h: &mut Harness| {
            let d = decide(
                &h.state,
                &applied,
                &hb,
                lead,
                Instant::now(),
                clock.now_ms(),
                h.state.version,
                &mut PlanMemo::default(),
            );
            h.now_ms = clock.now_ms();
            for (worker, generation) in &d.deaths {
                h.ok(Command::MarkDead {
                    worker: worker.clone(),
                    generation: *generation,
                    term: lead.term,
                });
                hb.settle(worker);
            }
            // A refusal is a newer word (here: the death ended the maintenance already).
            for e in &d.expiries {
                let _ = h.run(e.clone());
            }
            let dead: Vec<String> = d.deaths.iter().map(|(w, _)| w.to_string()).collect();
            (dead, d.expiries)
        };
        let live = ["w2", "w3", "w4", "w5"];
        let mut at = Duration::ZERO;
        // Up to just before w1's 30 s: nothing decided.
        let step = Duration::from_millis(900);
        while at + step < 30 * S {
            tokio::time::advance(step).await;
            at += step;
            heartbeat(&live);
            assert_eq!(round(&mut h), (vec![], vec![]), "at {at:?}");
        }
        tokio::time::advance(30 * S - at).await;
        at = 30 * S;
        assert_eq!(round(&mut h).0, ["w1"], "w1 dies at exactly dead_after");
        assert!(h.worker("w1").dead);
        // The pause ends at 45 s, w6's maintenance at 90 s: it dies then, not before.
        let mut paused_until = None;
        while at < 90 * S {
            tokio::time::advance(S).await;
            at += S;
            heartbeat(&live);
            let (dead, expiries) = round(&mut h);
            if expiries
                .iter()
                .any(|e| matches!(e, Command::ExpirePause { .. }))
            {
                paused_until.get_or_insert(at);
            }
            if at < 90 * S {
                assert!(dead.is_empty(), "at {at:?}: {dead:?} died");
                assert!(h.state.workers[&WorkerId::from("w6")].maintenance.is_some());
            } else {
                assert_eq!(dead, ["w6"], "w6 dies when its maintenance is over");
            }
        }
        assert_eq!(paused_until, Some(45 * S), "the pause ends at its until");
        assert!(
            h.worker("w6").maintenance.is_none(),
            "w6's maintenance ended"
        );
    }

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
        commit_steps(steps.clone(), |group| {
            tried.extend(group.clone());
            async move {
                group
                    .iter()
                    .map(|step| {
                        if matches!(step, Step::Plan { .. }) {
                            Committed::No
                        } else {
                            Committed::Yes
                        }
                    })
                    .collect()
            }
        })
        .await;
        assert_eq!(tried, steps[..1], "nothing after the refused plan");
        // A refused move does not stop the others.
        let mut tried = 0;
        let adds = vec![steps[1].clone(); 3000];
        commit_steps(adds, |group| {
            tried += group.len();
            async move { vec![Committed::No; group.len()] }
        })
        .await;
        assert_eq!(tried, 3000);
    }

    /// An idle cluster is not planned four times a second: a quiet plan stands while its
    /// inputs are the same — for at most REPLAN_EVERY while it waits on the time (joins
    /// pending), for good otherwise; a change to what the planner reads, or to who is suspect,
    /// plans again at once; so does a plan that had something to do.
    #[tokio::test(start_paused = true)]
    async fn a_quiet_plan_stands_until_its_inputs_change() {
        let mut h = Harness::starting_at(1_700_000_000_000, 0);
        for (id, zone) in [("w1", "a"), ("w2", "b"), ("w3", "c")] {
            h.add_worker(id, Some(zone), 1);
        }
        let t0 = Instant::now();
        let applied = ApplyClock::new_at(t0);
        let hb = Heartbeats::default();
        hb.became_leader(1, t0);
        let lead = hb.leadership().expect("leads");
        let beat = || {
            for id in ["w1", "w2", "w3"] {
                hb.acknowledge(&WorkerId::from(id), 1, Instant::now())
                    .unwrap();
            }
        };
        beat();
        let mut memo = PlanMemo::default();
        let planned = |h: &Harness, memo: &mut PlanMemo| {
            let wall = h.now_ms;
            decide(
                &h.state,
                &applied,
                &hb,
                lead,
                Instant::now(),
                wall,
                h.state.version,
                memo,
            )
            .planning
            .is_some()
        };
        assert!(planned(&h, &mut memo), "the first round plans");
        tokio::time::advance(Duration::from_millis(300)).await;
        beat();
        assert!(
            !planned(&h, &mut memo),
            "nothing changed: the quiet plan stands"
        );
        h.ok(Command::CreateTable {
            count: 3,
            replication_factor: 3,
        });
        assert!(planned(&h, &mut memo), "a new table is planned at once");
        assert!(planned(&h, &mut memo), "a plan with steps does not stand");
        let mut placed = PlanMemo::default();
        let round = drover_scheduler::plan(
            &h.state,
            &drover_scheduler::Liveness::default(),
            &planner_config(&h.state.settings),
        );
        for step in &round.steps {
            h.ok(step.command());
        }
        // Placed, not yet acknowledged: a plan waiting on joins is judged by the time (their
        // timeout), so it stands for REPLAN_EVERY at most.
        let mut joining = PlanMemo::default();
        assert!(planned(&h, &mut joining), "placed: plan again");
        assert!(
            joining.quiet.as_ref().is_some_and(|q| q.timed),
            "nothing to do but wait for the joins, against their timeout"
        );
        assert!(!planned(&h, &mut joining), "the joins' plan stands");
        tokio::time::advance(REPLAN_EVERY).await;
        beat();
        assert!(
            planned(&h, &mut joining),
            "with joins pending it stands for REPLAN_EVERY at most"
        );
        for p in 0..3u32 {
            let joiners: Vec<(WorkerId, u64)> = h.state.partitions[p as usize]
                .replicas
                .iter()
                .map(|r| (r.worker.clone(), r.since))
                .collect();
            for (w, since) in joiners {
                h.ok(Command::Acknowledge {
                    partition: p,
                    worker: w,
                    generation: 1,
                    epoch: since,
                });
            }
        }
        // Settle the leaders, then the cluster is idle again.
        while planned(&h, &mut placed) && placed.quiet.is_none() {
            let round = drover_scheduler::plan(
                &h.state,
                &drover_scheduler::Liveness::default(),
                &planner_config(&h.state.settings),
            );
            for step in &round.steps {
                h.ok(step.command());
            }
        }
        assert!(!planned(&h, &mut placed), "idle again: the plan stands");
        tokio::time::advance(REPLAN_EVERY * 5).await;
        beat();
        assert!(
            !planned(&h, &mut placed),
            "nothing joining, no drain: nothing is judged by the time, and the plan stands on"
        );
        // w3 falls silent past suspect_after: who is suspect changed, so plan again.
        let suspect_after = Duration::from_millis(h.state.settings.suspect_after_ms);
        let mut waited = Duration::ZERO;
        while waited <= suspect_after {
            tokio::time::advance(Duration::from_millis(500)).await;
            waited += Duration::from_millis(500);
            for id in ["w1", "w2"] {
                hb.acknowledge(&WorkerId::from(id), 1, Instant::now())
                    .unwrap();
            }
        }
        assert!(planned(&h, &mut placed), "w3 turned suspect: plan again");
    }

    /// A round's steps go into few log entries: plans alone and first, runs of replica steps
    /// up to STEPS_PER_ENTRY an entry, a worker's disable alone, the order kept.
    #[test]
    fn a_round_is_committed_in_few_entries() {
        let plan = Step::Plan {
            drain: 1,
            moves: Vec::new(),
        };
        let place = |p: u32| Step::Place {
            partition: p,
            workers: vec!["w1".into(), "w2".into(), "w3".into()],
            epoch: 0,
        };
        let disable = Step::Disable {
            worker: "w9".into(),
        };
        let mut steps = vec![plan.clone()];
        steps.extend((0..2500).map(place));
        steps.push(disable.clone());
        steps.push(place(2500));
        let g = groups(steps.clone());
        let sizes: Vec<usize> = g.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, STEPS_PER_ENTRY, STEPS_PER_ENTRY, 452, 1, 1]);
        assert_eq!(g.concat(), steps, "the order is kept");
        assert_eq!(g[0], [plan]);
        assert_eq!(g[4], [disable]);
        // Long worker ids fill an entry's bytes before its count.
        let long = |p: u32| Step::Place {
            partition: p,
            workers: (0..7)
                .map(|i| WorkerId::from(format!("{i}{}", "w".repeat(63)).as_str()))
                .collect(),
            epoch: 0,
        };
        let g = groups((0..1000).map(long).collect());
        assert!(g.len() > 1, "{} entries", g.len());
        for entry in &g {
            let bytes: usize = entry.iter().map(step_bytes).sum();
            assert!(bytes <= STEP_BYTES_PER_ENTRY, "{bytes}");
        }
    }
}
