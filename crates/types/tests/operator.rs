//! SPEC §1 cordons, §3 scheduler pause, and the reason and actor of state changes, as `apply`
//! enforces them: several holders, expiry only by the scheduler's command at the proposer's
//! time, bad input refused with the right code and nothing changed.

use drover_types::testing::Harness;
use drover_types::{Actor, Command, EventKind, RejectCode, Response, WorkerId, WorkerState, codec};

fn cordon(worker: &str, holder: &str, reason: &str, until_ms: Option<u64>) -> Command {
    Command::Cordon {
        worker: worker.into(),
        holder: holder.into(),
        reason: reason.into(),
        until_ms,
    }
}

fn uncordon(worker: &str, holder: &str) -> Command {
    Command::Uncordon {
        worker: worker.into(),
        holder: holder.into(),
    }
}

fn active(h: &mut Harness, id: &str) {
    h.register(id, 1, "z1");
    h.set_state(id, WorkerState::Active, Actor::Operator, false)
        .unwrap();
}

fn last_event(h: &Harness) -> EventKind {
    h.state.events.events.back().unwrap().kind.clone()
}

/// A rejection of `command` with `code` that leaves the state byte for byte as it was.
fn refused(h: &mut Harness, command: Command, code: RejectCode) {
    let before = codec::encode(&h.state).unwrap();
    let c = format!("{command:?}");
    let err = h.run(command).expect_err(&c);
    assert_eq!(err.code, code, "{c}: {err}");
    assert_eq!(
        codec::encode(&h.state).unwrap(),
        before,
        "{c} changed state"
    );
}

/// The issue's "a cordon with two holders lifts only when both are gone".
#[test]
fn a_cordon_with_two_holders_lifts_only_when_both_are_gone() {
    let mut h = Harness::new();
    active(&mut h, "w1");
    h.ok(cordon("w1", "ops", "disk alarm", None));
    h.ok(cordon("w1", "upgrade", "kernel 6.8", None));
    assert!(h.worker("w1").is_cordoned());
    assert_eq!(h.worker("w1").cordons.len(), 2);

    let o = h.ok(uncordon("w1", "ops"));
    assert!(o.changed);
    assert!(
        h.worker("w1").is_cordoned(),
        "one holder left: still cordoned"
    );
    assert_eq!(
        last_event(&h),
        EventKind::Uncordoned {
            worker: "w1".into(),
            holder: "ops".into(),
            actor: "admin".into(),
            expired: false,
        }
    );
    h.ok(uncordon("w1", "upgrade"));
    assert!(!h.worker("w1").is_cordoned(), "both gone: lifted");
    // A retry of an uncordon already applied succeeds and changes nothing.
    let o = h.ok(uncordon("w1", "upgrade"));
    assert!(!o.changed);
}

/// The holder's reason, actor and expiry are on the record and in the event; the same cordon
/// again is a safe retry, a new reason replaces the old one.
#[test]
fn a_cordon_records_reason_actor_and_until() {
    let mut h = Harness::new();
    active(&mut h, "w1");
    let until = h.now_ms + 60_000;
    let o = h.ok(cordon("w1", "ops", "disk alarm", Some(until)));
    let c = &h.worker("w1").cordons["ops"];
    assert_eq!(
        (c.reason.as_str(), c.actor.as_str(), c.until_ms, c.version),
        ("disk alarm", "admin", Some(until), h.index)
    );
    assert!(matches!(o.response, Response::Worker(_)));
    assert_eq!(
        last_event(&h),
        EventKind::Cordoned {
            worker: "w1".into(),
            holder: "ops".into(),
            reason: "disk alarm".into(),
            actor: "admin".into(),
            until_ms: Some(until),
        }
    );
    assert!(!h.ok(cordon("w1", "ops", "disk alarm", Some(until))).changed);
    assert!(h.ok(cordon("w1", "ops", "disk replaced", None)).changed);
    assert_eq!(h.worker("w1").cordons["ops"].until_ms, None);
}

/// Expiry is the scheduler's command, taken at the proposer's time: refused before `until`,
/// refused for a cordon renewed since (its version moved on), applied at `until`.
#[test]
fn a_cordon_expires_only_by_the_schedulers_command_at_until() {
    let mut h = Harness::new();
    active(&mut h, "w1");
    h.ok(cordon("w1", "keep", "forever", None));
    let until = h.now_ms + 100;
    h.ok(cordon("w1", "ops", "short", Some(until)));
    let version = h.worker("w1").cordons["ops"].version;
    let expire = |version| Command::ExpireCordon {
        worker: "w1".into(),
        holder: "ops".into(),
        version,
    };
    // Not due yet at the proposer's time: refused, nothing changed.
    refused(&mut h, expire(version), RejectCode::Invalid);
    // A cordon without `until` never expires.
    let keep = h.worker("w1").cordons["keep"].version;
    h.now_ms += 1_000;
    refused(
        &mut h,
        Command::ExpireCordon {
            worker: "w1".into(),
            holder: "keep".into(),
            version: keep,
        },
        RejectCode::Invalid,
    );
    // Decided on an older version of the cordon: refused.
    refused(&mut h, expire(version - 1), RejectCode::VersionConflict);
    let o = h.ok(expire(version));
    assert!(o.changed);
    assert!(!h.worker("w1").cordons.contains_key("ops"));
    assert!(h.worker("w1").is_cordoned(), "the other holder stays");
    assert_eq!(
        last_event(&h),
        EventKind::Uncordoned {
            worker: "w1".into(),
            holder: "ops".into(),
            actor: "scheduler".into(),
            expired: true,
        }
    );
    refused(&mut h, expire(version), RejectCode::NotFound);
}

/// Bad input: unknown worker, empty or malformed holder, empty or long reason, `until` not
/// after the proposer's time — each refused with its code, nothing changed.
#[test]
fn bad_cordons_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    active(&mut h, "w1");
    let now = h.now_ms;
    refused(
        &mut h,
        cordon("nope", "ops", "r", None),
        RejectCode::NotFound,
    );
    refused(&mut h, cordon("w1", "", "r", None), RejectCode::Invalid);
    refused(&mut h, cordon("w1", "..", "r", None), RejectCode::Invalid);
    refused(&mut h, cordon("w1", "a/b", "r", None), RejectCode::Invalid);
    refused(&mut h, cordon("w1", "ops", "", None), RejectCode::Invalid);
    refused(&mut h, cordon("w1", "ops", "  ", None), RejectCode::Invalid);
    let long = "x".repeat(257);
    refused(
        &mut h,
        cordon("w1", "ops", &long, None),
        RejectCode::Invalid,
    );
    refused(
        &mut h,
        cordon("w1", "ops", "r", Some(now)),
        RejectCode::Invalid,
    );
    refused(&mut h, uncordon("nope", "ops"), RejectCode::NotFound);
    refused(&mut h, uncordon("w1", ""), RejectCode::Invalid);
    for i in 0..drover_types::MAX_CORDONS {
        h.ok(cordon("w1", &format!("h{i}"), "r", None));
    }
    refused(
        &mut h,
        cordon("w1", "one-more", "r", None),
        RejectCode::Invalid,
    );
}

/// Cordons are the operator's: a restart (new incarnation) and a recommission keep them.
#[test]
fn cordons_outlive_a_restart_and_a_recommission() {
    let mut h = Harness::new();
    active(&mut h, "w1");
    h.ok(cordon("w1", "ops", "flaky NIC", None));
    h.register("w1", 2, "z1");
    assert!(h.worker("w1").is_cordoned(), "after a restart");
    h.set_state("w1", WorkerState::Disabled, Actor::Operator, true)
        .unwrap();
    h.register("w1", 3, "z1");
    assert_eq!(h.worker("w1").state, WorkerState::Provisioning);
    assert!(h.worker("w1").is_cordoned(), "after a recommission");
}

fn pause(reason: &str, until_ms: Option<u64>) -> Command {
    Command::PauseScheduler {
        reason: reason.into(),
        until_ms,
    }
}

/// Pause and resume are replicated records with reason, actor and expiry; resume when not
/// paused is a safe retry; the expiry is the scheduler's, at the proposer's time.
#[test]
fn pause_resume_and_expiry() {
    let mut h = Harness::new();
    assert!(
        !h.ok(Command::ResumeScheduler).changed,
        "not paused: no change"
    );
    let until = h.now_ms + 100;
    let o = h.ok(pause("incident 42", Some(until)));
    assert!(o.changed && o.changes.brakes);
    assert!(o.changes.touch_placement(), "the scheduler must replan");
    let p = h.state.brakes.pause.clone().unwrap();
    assert_eq!(
        (p.reason.as_str(), p.actor.as_str(), p.until_ms),
        ("incident 42", "admin", Some(until))
    );
    assert_eq!(
        last_event(&h),
        EventKind::SchedulerPaused {
            reason: "incident 42".into(),
            actor: "admin".into(),
            until_ms: Some(until),
        }
    );
    assert!(!h.ok(pause("incident 42", Some(until))).changed);
    let expire = |version| Command::ExpirePause { version };
    refused(&mut h, expire(p.version), RejectCode::Invalid);
    h.now_ms = until;
    refused(&mut h, expire(p.version + 1), RejectCode::VersionConflict);
    assert!(h.ok(expire(p.version)).changed);
    assert_eq!(h.state.brakes.pause, None);
    assert_eq!(
        last_event(&h),
        EventKind::SchedulerResumed {
            actor: "scheduler".into(),
            expired: true,
        }
    );
    refused(&mut h, expire(p.version), RejectCode::NotFound);

    h.ok(pause("maintenance window", None));
    let o = h.ok(Command::ResumeScheduler);
    assert!(o.changed);
    assert_eq!(h.state.brakes.pause, None);
    assert_eq!(
        last_event(&h),
        EventKind::SchedulerResumed {
            actor: "admin".into(),
            expired: false,
        }
    );
    let now = h.now_ms;
    refused(&mut h, pause("", None), RejectCode::Invalid);
    refused(&mut h, pause("late", Some(now)), RejectCode::Invalid);
}

/// Every state change records who asked and why, on the record and in its event.
#[test]
fn state_changes_record_reason_and_actor() {
    let mut h = Harness::new();
    h.register("w1", 1, "z1");
    assert_eq!(h.worker("w1").state_actor, "worker:w1");
    let generation = h.worker("w1").generation;
    h.ok(Command::SetState {
        worker: "w1".into(),
        to: WorkerState::Active,
        by: Actor::Agent,
        generation: Some(generation),
        expected_version: None,
        force: false,
        reason: None,
    });
    assert_eq!(h.worker("w1").state_actor, "worker:w1");
    h.ok(Command::SetState {
        worker: "w1".into(),
        to: WorkerState::Disabled,
        by: Actor::Operator,
        generation: None,
        expected_version: None,
        force: true,
        reason: Some("hardware retired".into()),
    });
    let w = h.worker("w1");
    assert_eq!(
        (w.state_reason.as_deref(), w.state_actor.as_str()),
        (Some("hardware retired"), "admin")
    );
    let changed = h
        .state
        .events
        .events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::StateChanged { reason, actor, .. } => Some((reason.clone(), actor.clone())),
            _ => None,
        });
    assert_eq!(
        changed,
        Some((Some("hardware retired".into()), "admin".into()))
    );
    // A reason that is empty or too long is refused, and the state is untouched.
    h.register("w2", 1, "z1");
    let bad = |reason: &str| Command::SetState {
        worker: WorkerId::from("w2"),
        to: WorkerState::Active,
        by: Actor::Operator,
        generation: None,
        expected_version: None,
        force: false,
        reason: Some(reason.into()),
    };
    refused(&mut h, bad(""), RejectCode::Invalid);
    refused(&mut h, bad(&"x".repeat(300)), RejectCode::Invalid);
}
