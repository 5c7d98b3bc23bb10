//! What droverctl prints: the [`Printer`] (a table for people, the API's answer as JSON or YAML
//! for machines) and the tables and sentences of each command. Formatting without I/O is
//! `render.rs`.

use std::time::Duration;

use comfy_table::{Table, presets};
use drover_api::{
    DrainAnswer, DrainProgress, DrainRate, Member, MemberRole, NodeState, StateChanged,
    WarningCode, WorkerView,
};
use drover_client::outln;
use drover_types::{Event, Partition, ReplicaRole};
use serde::Serialize;
use serde_json::Value;

use crate::cli::Output;
use crate::exit::Failure;
use crate::render;

/// A state change in words: the new state, and for a forced disable what it cost.
pub(crate) fn print_change(out: Printer, r: &StateChanged, done: &str) {
    let w = r.worker();
    let mut line = format!(
        "worker {}: {done}; now {} (generation {}, version {})",
        w.id, w.state, w.generation, w.version
    );
    if let StateChanged::ForcedDisable(drover_api::ForcedDisable {
        partitions_below_rf,
        ..
    }) = r
    {
        line.push_str(&format!(
            "\n{partitions_below_rf} partitions fell below their replication factor; the \
             scheduler re-creates their replicas elsewhere (`droverctl events --follow`)"
        ));
    }
    out.sentence(r, line);
}

pub(crate) fn drain_progress(d: &DrainProgress) -> String {
    format!(
        "{} of {} replicas left, {} moving",
        d.replicas_remaining,
        opt(d.replicas_total),
        d.moves_in_flight
    )
}

/// `12 moves/min, ETA 35s`; `ETA unknown` until a move has completed.
pub(crate) fn drain_rate(r: &DrainRate) -> String {
    let pace = if r.moves_per_minute >= 10.0 || r.moves_per_minute == 0.0 {
        format!("{:.0}", r.moves_per_minute)
    } else {
        format!("{:.1}", r.moves_per_minute)
    };
    let eta = match r.eta_ms {
        Some(ms) => {
            let secs = ms.div_ceil(1000);
            format!(
                "ETA {}",
                humantime::format_duration(std::time::Duration::from_secs(secs))
            )
        }
        None => "ETA unknown".into(),
    };
    let window = humantime::format_duration(std::time::Duration::from_secs(r.window_ms / 1000));
    format!(
        "{pace} moves/min, {eta} ({} moves completed in the last {window})",
        r.moves_completed
    )
}

pub(crate) fn labels(l: &std::collections::BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "-".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One endpoint's health, as `members list` and `endpoint status` print it.
#[derive(Debug, Serialize)]
pub(crate) struct Health {
    pub(crate) endpoint: String,
    pub(crate) reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    pub(crate) id: Option<u64>,
    /// `voter` or `learner`, from the membership.
    pub(crate) membership: Option<MemberRole>,
    /// The node's own Raft state: leader, follower, candidate, learner.
    pub(crate) state: Option<NodeState>,
    pub(crate) leader: Option<u64>,
    pub(crate) term: Option<u64>,
    pub(crate) commit_index: Option<u64>,
    pub(crate) applied_index: Option<u64>,
    pub(crate) last_log_index: Option<u64>,
    pub(crate) state_version: Option<u64>,
    /// Entries behind the highest commit index any reachable node reports (the leader's).
    pub(crate) lag: Option<u64>,
}

pub(crate) fn health_rows(probes: &[Probe], members: &[Member]) -> Vec<Health> {
    let commit = probes
        .iter()
        .filter_map(|p| p.answer.as_ref().ok())
        .map(|s| s.commit_index)
        .max();
    probes
        .iter()
        .map(|p| {
            let member = |id: Option<u64>| {
                members
                    .iter()
                    .find(|m| Some(m.id) == id || same_endpoint(&m.address, &p.endpoint))
            };
            match &p.answer {
                Ok(s) => Health {
                    endpoint: p.endpoint.clone(),
                    reachable: true,
                    error: None,
                    id: Some(s.node),
                    membership: member(Some(s.node))
                        .map(|m| m.role)
                        .or_else(|| s.members.iter().find(|m| m.id == s.node).map(|m| m.role)),
                    state: Some(s.state),
                    leader: s.leader,
                    term: Some(s.term),
                    commit_index: Some(s.commit_index),
                    applied_index: Some(s.applied_index),
                    last_log_index: Some(s.last_log_index),
                    state_version: Some(s.state_version),
                    lag: commit.map(|c| c.saturating_sub(s.applied_index)),
                },
                Err(e) => Health {
                    endpoint: p.endpoint.clone(),
                    reachable: false,
                    error: Some(e.clone()),
                    id: member(None).map(|m| m.id),
                    membership: member(None).map(|m| m.role),
                    state: None,
                    leader: None,
                    term: None,
                    commit_index: None,
                    applied_index: None,
                    last_log_index: None,
                    state_version: None,
                    lag: None,
                },
            }
        })
        .collect()
}

/// The nodes' health as a table: `header`, then the `wide` columns when asked for, one `row`
/// per node (`members list` and `endpoint status` differ only in their columns).
pub(crate) fn health_table(
    rows: &[Health],
    header: &[&str],
    wide: Option<&[&str; 3]>,
    row: fn(&Health, bool) -> Vec<String>,
) -> Table {
    let mut columns = header.to_vec();
    columns.extend(wide.into_iter().flatten());
    let mut t = table(&columns);
    for r in rows {
        t.add_row(row(r, wide.is_some()));
    }
    t
}

pub(crate) fn health_row(h: &Health, wide: bool) -> Vec<String> {
    let state = if h.reachable {
        opt_or(h.state, "")
    } else {
        "unreachable".into()
    };
    let mut row = vec![
        opt(h.id),
        h.endpoint.clone(),
        opt(h.membership),
        state,
        opt(h.leader),
        opt(h.term),
        opt(h.applied_index),
        opt(h.lag),
    ];
    if wide {
        row.extend([
            opt(h.commit_index),
            opt(h.last_log_index),
            h.error.clone().unwrap_or_default(),
        ]);
    }
    row
}

pub(crate) fn endpoint_row(h: &Health, wide: bool) -> Vec<String> {
    let state = if h.reachable {
        opt_or(h.state, "")
    } else {
        "unreachable".into()
    };
    let mut row = vec![
        h.endpoint.clone(),
        opt(h.id),
        state,
        opt(h.leader),
        opt(h.term),
        opt(h.applied_index),
        opt(h.lag),
        h.error.clone().unwrap_or_default(),
    ];
    if wide {
        row.extend([
            opt(h.commit_index),
            opt(h.last_log_index),
            opt(h.state_version),
        ]);
    }
    row
}

/// `127.0.0.1:7001` and `http://127.0.0.1:7001/` name one endpoint.
pub(crate) fn same_endpoint(a: &str, b: &str) -> bool {
    let bare = |s: &str| {
        s.trim()
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned()
    };
    bare(a) == bare(b)
}

pub(crate) fn print_settings(out: Printer, s: &drover_types::Settings) {
    out.emit(s, || {
        let ms = |v: u64| humantime::format_duration(Duration::from_millis(v)).to_string();
        let mut t = table(&["SETTING", "VALUE"]);
        for (name, value) in [
            ("heartbeat-interval", ms(s.heartbeat_interval_ms)),
            ("suspect-after", ms(s.suspect_after_ms)),
            ("dead-after", ms(s.dead_after_ms)),
            ("join-timeout", ms(s.join_timeout_ms)),
            ("max-moves-per-worker", s.max_moves_per_worker.to_string()),
            ("max-moves-total", s.max_moves_total.to_string()),
            ("kv-max-value-bytes", s.kv_max_value_bytes.to_string()),
            ("events-retained", s.events_retained.to_string()),
            (
                "min-available",
                match s.min_available {
                    0 => "0 (a majority)".to_owned(),
                    n => n.to_string(),
                },
            ),
            (
                "max-deaths-fraction",
                format!("{}", s.max_deaths_fraction.as_f64()),
            ),
            ("version", s.version.to_string()),
        ] {
            t.add_row(vec![name.to_owned(), value]);
        }
        if let Some(f) = s.lease_floor {
            t.add_row(vec![
                "lease floor".to_owned(),
                format!(
                    "{} (deaths wait for leases granted under it)",
                    ms(f.dead_after_ms)
                ),
            ]);
        }
        t
    });
}

/// Prints a drain's plan and verdict; a dry run that cannot finish is a refusal (exit 6), so a
/// script can trust the exit code, unless `--allow-blocked` said blocked is fine.
pub(crate) fn print_drain(
    out: Printer,
    r: &DrainAnswer,
    allow_blocked: bool,
) -> Result<(), Failure> {
    out.emit(r, || {
        let mut t = table(&["PARTITION", "FROM", "TO", "BLOCKED"]);
        for m in r.planned_moves() {
            let blocked = r
                .blocked()
                .iter()
                .find(|b| b.partition == m.partition && b.worker.as_ref() == Some(&m.from))
                .map(|b| format!("{}: {}", code_name(&b.code), b.detail))
                .unwrap_or_default();
            t.add_row(vec![
                m.partition.to_string(),
                m.from.to_string(),
                m.to.as_ref().map_or("-".into(), ToString::to_string),
                blocked,
            ]);
        }
        t
    });
    if out.0.human() {
        if !r.warnings().is_empty() {
            let mut t = table(&["WARNINGS", "PARTITION", "DETAIL"]);
            for w in r.warnings() {
                t.add_row(vec![
                    code_name(&w.code),
                    w.partition.to_string(),
                    w.detail.clone(),
                ]);
            }
            outln!("\n{t}");
        }
        let verdict = match (r.dry_run(), r.feasible()) {
            (true, true) => "dry run: feasible; nothing committed",
            (true, false) => "dry run: NOT feasible (see BLOCKED); nothing committed",
            (false, true) => "drain started",
            (false, false) => "drain started, but it cannot finish yet (see BLOCKED)",
        };
        let warned = match r.warnings().len() {
            0 => String::new(),
            n => {
                let count = |c: WarningCode| r.warnings().iter().filter(|w| w.code == c).count();
                format!(
                    "\nwarnings: {} partitions lose zone spread, {} preferred leaders move \
                     ({n} in all, see WARNINGS)",
                    count(WarningCode::LostZoneSpread),
                    count(WarningCode::LeaderMoves),
                )
            }
        };
        outln!("\n{verdict}{warned}");
    }
    if r.dry_run() && !r.feasible() && !allow_blocked {
        return Err(Failure {
            message: "the drain cannot finish: a real drain would be refused (drain_infeasible)"
                .into(),
            hint: Some("see BLOCKED; --allow-blocked starts it anyway".into()),
            exit: 6,
        });
    }
    Ok(())
}

#[derive(Clone, Copy)]
pub(crate) struct Printer(pub(crate) Output);

impl Printer {
    /// Prints `v` as JSON or YAML, or the table `render` builds.
    pub(crate) fn emit<T: Serialize>(self, v: &T, render: impl FnOnce() -> Table) {
        match self.0 {
            Output::Json => outln!(
                "{}",
                serde_json::to_string_pretty(v)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
            ),
            Output::Yaml => {
                let v = serde_json::to_value(v).unwrap_or_default();
                let text = render::yaml(&v);
                outln!("{}", text.trim_end());
            }
            Output::Table | Output::Wide => outln!("{}", render()),
        }
    }

    /// Prints what a state-changing command did: a sentence for people, the API's answer for
    /// machines.
    pub(crate) fn sentence<T: Serialize>(self, v: &T, line: String) {
        match self.0 {
            Output::Table | Output::Wide => outln!("{line}"),
            Output::Json | Output::Yaml => self.emit(v, Table::new),
        }
    }

    /// One event on a line of its own (following), or one JSON object per line.
    pub(crate) fn event_line(self, e: &Event) -> Result<(), Failure> {
        let line = match self.0 {
            Output::Json | Output::Yaml => serde_json::to_string(e).unwrap_or_default(),
            Output::Table | Output::Wide => event_row(e, self.0 == Output::Wide).join("  "),
        };
        outln!("{line}");
        Ok(())
    }
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().copied());
    t
}

/// `v`, or `none` when there is none.
pub(crate) fn opt_or<T: ToString>(v: Option<T>, none: &str) -> String {
    v.map_or_else(|| none.to_owned(), |v| v.to_string())
}

pub(crate) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

pub(crate) fn role_name(r: ReplicaRole) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn code_name<T: Serialize>(c: &T) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn worker_row(w: &WorkerView, wide: bool) -> Vec<String> {
    let r = &w.record;
    // kubectl's `Ready,SchedulingDisabled`: the cordon beside the state it does not change.
    let state = if r.is_cordoned() {
        format!("{},cordoned", r.state.as_str())
    } else {
        r.state.as_str().into()
    };
    let mut row = vec![
        r.id.to_string(),
        state,
        opt(w.liveness),
        r.zone.clone().unwrap_or("-".into()),
        r.address.clone(),
        r.generation.to_string(),
        w.replicas.len().to_string(),
    ];
    if wide {
        row.extend([
            r.capacity.to_string(),
            r.version.to_string(),
            render::rfc3339_ms(r.state_since_ms),
            w.drain.as_ref().map_or("-".into(), drain_progress),
            labels(&r.labels),
            if r.cordons.is_empty() {
                "-".into()
            } else {
                r.cordons.keys().cloned().collect::<Vec<_>>().join(",")
            },
        ]);
    }
    row
}

/// Who last changed a worker's state, and why.
pub(crate) fn state_by(r: &drover_types::Worker) -> String {
    let actor = if r.state_actor.is_empty() {
        "-"
    } else {
        &r.state_actor
    };
    match &r.state_reason {
        Some(why) => format!("{actor}: {why}"),
        None => actor.to_owned(),
    }
}

/// A cordon or pause as `workers show` and `status` print it: why, by whom, since and until.
pub(crate) fn hold_text(h: &drover_types::Hold, open_ended: &str) -> String {
    let until = h.until_ms.map_or(open_ended.to_owned(), |u| {
        format!("until {}", render::rfc3339_ms(u))
    });
    format!(
        "{} (by {}, since {}, {until})",
        h.reason,
        h.actor,
        render::rfc3339_ms(h.since_ms)
    )
}

pub(crate) fn pause_text(p: &drover_types::Pause) -> String {
    format!("paused: {}", hold_text(p, "until resumed"))
}

/// The mass-failure brake as `status` prints it.
pub(crate) fn brake_text(b: &drover_types::Brakes) -> String {
    if let Some(m) = &b.mass_failure {
        let workers: Vec<&str> = m.workers.iter().map(|w| w.as_str()).collect();
        return format!(
            "TRIPPED since {}: {}; deaths of {} held (droverctl brake release)",
            render::rfc3339_ms(m.since_ms),
            m.reason,
            workers.join(", ")
        );
    }
    match &b.released {
        Some(h) => format!("released: {}", hold_text(h, "")),
        None => "armed".to_owned(),
    }
}

/// A maintenance as `workers show` prints it.
pub(crate) fn maintenance_text(m: &drover_types::Maintenance) -> String {
    format!(
        "{} (by {}, since {}, until {}, generation {})",
        m.reason,
        m.actor,
        render::rfc3339_ms(m.since_ms),
        render::rfc3339_ms(m.until_ms),
        m.generation
    )
}

/// Prints a what-if answer; a partition that would lose its majority, or a drain that could
/// not finish, is a refusal (exit 6), so `droverctl what-if stop w3 && <restart w3>` is safe.
pub(crate) fn print_what_if(out: Printer, w: &drover_api::WhatIf) -> Result<(), Failure> {
    let majority = w.below_majority.len();
    let feasible = w.drain.as_ref().is_none_or(|d| d.feasible);
    out.emit(w, || {
        let mut t = table(&["PARTITION", "RF", "SERVING NOW", "AFTER", "MAJORITY"]);
        for f in &w.below_rf {
            let lost = w.below_majority.iter().any(|m| m.partition == f.partition);
            t.add_row(vec![
                f.partition.to_string(),
                f.replication_factor.to_string(),
                f.serving_now.to_string(),
                f.serving_after.to_string(),
                if lost { "LOST".into() } else { "kept".into() },
            ]);
        }
        t
    });
    if out.0.human() {
        let workers: Vec<&str> = w.workers.iter().map(|w| w.as_str()).collect();
        outln!(
            "\nwhat if {} {}: {} partitions below RF, {majority} below a majority, {} preferred \
             leaders move",
            w.action.as_str(),
            workers.join(" "),
            w.below_rf.len(),
            w.leaders_lost.len()
        );
        if let Some(d) = &w.drain {
            outln!(
                "the drain would make {} moves and {}",
                d.moves.len(),
                if d.feasible {
                    "can finish"
                } else {
                    "could NOT finish (droverctl drain --dry-run shows what blocks it)"
                }
            );
        }
    }
    if majority > 0 || !feasible {
        return Err(Failure {
            message: if majority > 0 {
                format!("{majority} partitions would lose their majority")
            } else {
                "the drain could not finish: a real drain would be refused".into()
            },
            hint: None,
            exit: 6,
        });
    }
    Ok(())
}

pub(crate) fn partition_table(out: Printer) -> Table {
    let mut header = vec!["ID", "KEYS", "RF", "EPOCH", "LEADER", "REPLICAS"];
    if out.0 == Output::Wide {
        header.extend(["VERSION", "ROLES SINCE"]);
    }
    table(&header)
}

pub(crate) fn partition_row(p: &Partition, wide: bool) -> Vec<String> {
    let reps: Vec<String> = p
        .replicas
        .iter()
        .map(|r| match r.role {
            ReplicaRole::Serving => r.worker.to_string(),
            role => format!("{}({})", r.worker, role_name(role)),
        })
        .collect();
    let mut row = vec![
        p.id.to_string(),
        key_range(&p.key_range),
        p.replication_factor.to_string(),
        p.epoch.to_string(),
        p.leader.as_ref().map_or("-".into(), ToString::to_string),
        reps.join(" "),
    ];
    if wide {
        let since: Vec<String> = p
            .replicas
            .iter()
            .map(|r| format!("{}@{}", r.worker, r.since))
            .collect();
        row.extend([p.version.to_string(), since.join(" ")]);
    }
    row
}

/// The inclusive key range, as `start..=end`.
pub(crate) fn key_range(r: &drover_types::KeyRange) -> String {
    format!("{}..={}", r.start, r.end)
}

pub(crate) fn event_row(e: &Event, wide: bool) -> Vec<String> {
    let kind = serde_json::to_value(&e.kind).unwrap_or_default();
    let (name, details) = match kind {
        Value::Object(m) => match m.into_iter().next() {
            Some((name, Value::Object(fields))) => {
                let d: Vec<String> = fields
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| match v {
                        Value::String(s) if s.contains(char::is_whitespace) => format!("{k}={s:?}"),
                        Value::String(s) => format!("{k}={s}"),
                        v => format!("{k}={v}"),
                    })
                    .collect();
                (name, d.join(" "))
            }
            Some((name, v)) => (name, v.to_string()),
            None => (String::new(), String::new()),
        },
        Value::String(s) => (s, String::new()),
        v => (v.to_string(), String::new()),
    };
    let mut row = vec![
        e.seq.to_string(),
        render::rfc3339_ms(e.at_ms),
        name,
        details,
    ];
    if wide {
        row.insert(1, e.version.to_string());
    }
    row
}

/// One node's answer to a direct `GET /v1/cluster`, or why there was none.
pub(crate) struct Probe {
    pub(crate) endpoint: String,
    pub(crate) answer: Result<drover_api::ClusterStatus, String>,
}

/// Asks on the terminal before a destructive change, unless `--yes`. Off a terminal (a
/// script, a pipe) there is nobody to ask: the command goes ahead, as `rm` does.
pub(crate) fn confirm(yes: bool, question: &str) -> Result<(), Failure> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure {
            message: "aborted: nothing was changed".into(),
            hint: Some("--yes (-y) skips this question".into()),
            exit: 1,
        })
    }
}
