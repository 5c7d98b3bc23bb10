//! `droverctl workers …` and `droverctl scheduler …`: a worker's lifecycle, cordons and
//! maintenance, and the scheduler's pause, each printed as a sentence (JSON with `-o json`).

use std::time::Duration;

use drover_api::StateRequest;
use drover_client::Client;
use drover_types::{ReplicaRole, WorkerState};

use crate::cli::{Output, SchedulerCmd, WorkersCmd};
use crate::exit::Failure;
use crate::output::confirm;
use crate::output::{
    Printer, code_name, drain_progress, drain_rate, hold_text, labels, maintenance_text, opt,
    opt_or, pause_text, print_change, print_drain, role_name, state_by, table, worker_row,
};
use crate::render;

pub(crate) async fn workers(
    c: &Client,
    out: Printer,
    cmd: WorkersCmd,
    yes: bool,
) -> Result<(), Failure> {
    let change = |id: String, to: WorkerState, force: bool, reason: Option<String>| async move {
        let mut req = StateRequest::to(to);
        req.force = force;
        req.reason = reason;
        c.set_state(&id, &req).await
    };
    match cmd {
        WorkersCmd::List { state, zone } => {
            let mut all = c.all_workers(state.map(Into::into)).await?;
            if let Some(z) = &zone {
                all.retain(|w| w.record.zone.as_deref() == Some(z));
            }
            all.sort_by(|a, b| render::natural(a.record.id.as_str(), b.record.id.as_str()));
            let wide = out.0 == Output::Wide;
            out.emit(&all, || {
                let mut header = vec![
                    "ID", "STATE", "LIVENESS", "ZONE", "ADDRESS", "GEN", "REPLICAS",
                ];
                if wide {
                    header.extend([
                        "CAPACITY",
                        "VERSION",
                        "STATE SINCE",
                        "DRAIN",
                        "LABELS",
                        "CORDONS",
                    ]);
                }
                let mut t = table(&header);
                for w in &all {
                    t.add_row(worker_row(w, wide));
                }
                t
            });
        }
        WorkersCmd::Show { id } => {
            let w = c.worker(&id).await?;
            out.emit(&w, || {
                let mut t = table(&["FIELD", "VALUE"]);
                let r = &w.record;
                t.add_row(vec!["id".into(), r.id.to_string()]);
                t.add_row(vec!["state".to_owned(), r.state.as_str().to_owned()]);
                t.add_row(vec![
                    "state since".into(),
                    render::rfc3339_ms(r.state_since_ms),
                ]);
                t.add_row(vec!["liveness".into(), opt(w.liveness)]);
                t.add_row(vec!["state by".into(), state_by(r)]);
                for (holder, cordon) in &r.cordons {
                    t.add_row(vec![
                        format!("cordon {holder}"),
                        hold_text(cordon, "until removed"),
                    ]);
                }
                if let Some(m) = &r.maintenance {
                    t.add_row(vec!["maintenance".into(), maintenance_text(m)]);
                }
                t.add_row(vec!["dead".into(), r.dead.to_string()]);
                t.add_row(vec!["generation".into(), r.generation.to_string()]);
                t.add_row(vec!["address".into(), r.address.clone()]);
                t.add_row(vec!["zone".into(), r.zone.clone().unwrap_or("-".into())]);
                t.add_row(vec!["capacity".into(), r.capacity.to_string()]);
                t.add_row(vec!["labels".into(), labels(&r.labels)]);
                t.add_row(vec!["version".into(), r.version.to_string()]);
                let reps: Vec<String> = w
                    .replicas
                    .iter()
                    .map(|h| match h.role {
                        ReplicaRole::Serving => h.partition.to_string(),
                        role => format!("{}({})", h.partition, role_name(role)),
                    })
                    .collect();
                t.add_row(vec![format!("replicas ({})", reps.len()), reps.join(" ")]);
                if let Some(d) = &w.drain {
                    t.add_row(vec!["drain".into(), drain_progress(d)]);
                    if let Some(r) = &d.rate {
                        t.add_row(vec!["rate".into(), drain_rate(r)]);
                    }
                    // Faults per partition; waits (throttles, acknowledgements) once per thing
                    // waited for, not once per partition.
                    for b in d.blocked.iter().filter(|b| !b.code.is_transient()) {
                        t.add_row(vec![
                            "blocked".into(),
                            format!(
                                "{}: partition {}: {}",
                                code_name(&b.code),
                                b.partition,
                                b.detail
                            ),
                        ]);
                    }
                    for wait in &d.waits {
                        t.add_row(vec![
                            "blocked".into(),
                            format!("{}: {}", code_name(&wait.code), wait.detail),
                        ]);
                    }
                }
                t
            });
        }
        WorkersCmd::Activate { id, reason } => {
            let r = change(id, WorkerState::Active, false, reason).await?;
            print_change(out, &r, "activated");
        }
        WorkersCmd::Drain {
            id,
            dry_run,
            allow_blocked,
            reason,
            deadline,
        } => {
            let opts = deadline.options(dry_run, allow_blocked);
            let r = c.drain_with_reason(&[id], opts, reason.as_deref()).await?;
            print_drain(out, &r, allow_blocked)?;
        }
        WorkersCmd::CancelDrain { id, reason } => {
            let r = change(id, WorkerState::Active, false, reason).await?;
            print_change(out, &r, "drain cancelled");
        }
        WorkersCmd::Disable { id, force, reason } => {
            if force {
                let held = c.worker(&id).await?.replicas.len();
                confirm(
                    yes,
                    &format!(
                        "Force-disable worker {id}, dropping its {held} replicas at once \
                         (partitions may fall below their replication factor)?"
                    ),
                )?;
            }
            let r = change(id, WorkerState::Disabled, force, reason).await?;
            print_change(out, &r, "disabled");
        }
        WorkersCmd::Remove { id, dead } => {
            if dead {
                let w = c.worker(&id).await?;
                if !w.record.dead {
                    return Err(Failure {
                        message: format!(
                            "worker {id} is not dead (it is {}, liveness {}): --dead removes \
                             only a worker the cluster declared dead",
                            w.record.state,
                            opt_or(w.liveness, "unknown")
                        ),
                        hint: Some(format!(
                            "drain it first (droverctl workers drain {id}), or disable it \
                             with --force if it is gone for good"
                        )),
                        exit: 6,
                    });
                }
                confirm(
                    yes,
                    &format!("Remove dead worker {id} (disable it, then remove it)?"),
                )?;
                if w.record.state != WorkerState::Disabled {
                    // Its replicas were dropped when it was declared dead: nothing is lost.
                    let force = w.record.state != WorkerState::Provisioning;
                    let why =
                        Some("declared dead; removed by droverctl workers remove --dead".into());
                    change(id.clone(), WorkerState::Disabled, force, why).await?;
                }
            } else {
                confirm(yes, &format!("Remove worker {id}?"))?;
            }
            let r = c.remove_worker(&id).await?;
            let sentence = format!(
                "worker {} removed; a tombstone keeps generation {} fenced, and the id may \
                 register again as a new worker",
                r.id, r.generation
            );
            out.sentence(&r, sentence);
        }
        WorkersCmd::Cordon {
            id,
            holder,
            reason,
            for_,
        } => {
            let w = c.cordon(&id, &holder, &reason, &expiry(for_)).await?;
            let holders: Vec<&str> = w.cordons.keys().map(String::as_str).collect();
            let line = format!(
                "worker {}: cordoned by {holder}; nothing new is placed on it (holders: {})",
                w.id,
                holders.join(", ")
            );
            out.sentence(&w, line);
        }
        WorkersCmd::Uncordon { id, holder } => {
            let w = c.uncordon(&id, &holder).await?;
            let line = if w.is_cordoned() {
                let holders: Vec<&str> = w.cordons.keys().map(String::as_str).collect();
                format!(
                    "worker {}: {holder}'s cordon removed; still cordoned by {}",
                    w.id,
                    holders.join(", ")
                )
            } else {
                format!(
                    "worker {}: not cordoned; the scheduler may place on it",
                    w.id
                )
            };
            out.sentence(&w, line);
        }
        WorkersCmd::Maintenance { id, reason, for_ } => {
            let w = c
                .maintenance(&id, &reason, &drover_client::Expiry::After(for_), None)
                .await?;
            let until = w
                .maintenance
                .as_ref()
                .map_or("-".into(), |m| render::rfc3339_ms(m.until_ms));
            let line = format!(
                "worker {}: in maintenance until {until}; restart it now — it keeps its replicas, \
                 and the maintenance ends once the new process registers and is heard",
                w.id
            );
            out.sentence(&w, line);
        }
        WorkersCmd::EndMaintenance { id } => {
            let w = c.end_maintenance(&id, None).await?;
            let line = format!(
                "worker {}: not in maintenance; the normal liveness rules apply",
                w.id
            );
            out.sentence(&w, line);
        }
        WorkersCmd::Recommission { id } => match c.recommission(&id).await {
            Ok(r) => {
                let line = format!(
                    "worker {}: its agent registered again at generation {} (was {}); {} — \
                     active once the agent says it is ready",
                    r.worker.id, r.worker.generation, r.previous_generation, r.worker.state
                );
                out.sentence(&r, line);
            }
            // Removed, or never registered: the server knows nothing to ask.
            Err(e) if e.status() == Some(404) => {
                return Err(Failure {
                    message: format!("worker {id} was removed (or never registered)"),
                    hint: Some(format!(
                        "start its agent process: it registers with a new incarnation and \
                         comes back as a new worker {id}, in provisioning"
                    )),
                    exit: 3,
                });
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

fn expiry(for_: Option<Duration>) -> drover_client::Expiry {
    for_.map_or(drover_client::Expiry::Never, drover_client::Expiry::After)
}

pub(crate) async fn scheduler(c: &Client, out: Printer, cmd: SchedulerCmd) -> Result<(), Failure> {
    let brakes = match cmd {
        SchedulerCmd::Pause { reason, for_ } => c.pause_scheduler(&reason, &expiry(for_)).await?,
        SchedulerCmd::Resume => c.resume_scheduler().await?,
    };
    let line = match &brakes.pause {
        Some(p) => format!(
            "scheduler {}; moves in flight finish, no new move starts",
            pause_text(p)
        ),
        None => "scheduler running: held-back moves start in the next round".to_owned(),
    };
    out.sentence(&brakes, line);
    Ok(())
}
