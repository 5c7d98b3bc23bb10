//! `droverctl`: the operator CLI over Drover's admin HTTP API (SPEC §5).
//!
//! Output is an aligned table by default and JSON with `-o json`. Exit codes are stable so
//! scripts can branch on them (see `EXIT CODES` in `--help`).
//!
//! This file runs the commands against the client. `cli.rs` declares them (clap), `output.rs`
//! prints what they answer, `exit.rs` turns a failure into its exit code and hint, and
//! `render.rs` holds the pure formatting helpers.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use comfy_table::Table;
use drover_api::{ClusterStatus, KvItem, StateRequest};
use drover_client::{Client, Error, outln};
use drover_types::{Event, ReplicaRole, WorkerState};
use serde_json::Value;

mod cli;
mod exit;
mod output;
mod render;
mod rolling;

use cli::{
    BrakeCmd, Cli, Command, EndpointCmd, EventsArgs, KvCmd, MembersCmd, Output, PartitionsCmd,
    SchedulerCmd, SettingsCmd, SnapshotCmd, WhatIfVerb, WorkersCmd,
};
use exit::Failure;
use output::{
    Printer, brake_text, code_name, drain_progress, drain_rate, endpoint_row, event_row,
    health_row, health_rows, health_table, hold_text, labels, maintenance_text, opt, opt_or,
    partition_row, partition_table, pause_text, print_change, print_drain, print_settings,
    print_what_if, role_name, same_endpoint, state_by, table, worker_row,
};

/// How long connecting to one node may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            if let Some(hint) = e.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.exit)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Completions { shell } = cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(
            shell,
            &mut cmd,
            "droverctl",
            &mut drover_client::stdout::stdout(),
        );
        return Ok(());
    }
    let opts = drover_client::ClientOptions {
        timeout: Duration::from_secs(cli.timeout),
        retry_for: Duration::from_secs(cli.timeout * 2),
        connect_timeout: CONNECT_TIMEOUT.min(Duration::from_secs(cli.timeout)),
        // Nothing listening anywhere: say so (and why) now, not after the retry budget.
        unreachable_for: Some(CONNECT_TIMEOUT.min(Duration::from_secs(cli.timeout))),
    };
    let c = Client::with_options(&cli.endpoints, cli.token.clone(), opts)?;
    let out = Printer(cli.output);
    let yes = cli.yes;
    match cli.command {
        Command::Status => {
            let s = c.cluster().await?;
            out.emit(&s, || {
                let mut t = table(&["FIELD", "VALUE"]);
                t.add_row(vec!["cluster".into(), s.cluster_id.clone()]);
                t.add_row(vec![
                    "answered by".into(),
                    format!("node {} ({})", s.node, s.state),
                ]);
                t.add_row(vec!["leader".into(), opt(s.leader)]);
                t.add_row(vec!["term".into(), s.term.to_string()]);
                t.add_row(vec!["commit index".into(), s.commit_index.to_string()]);
                t.add_row(vec!["applied index".into(), s.applied_index.to_string()]);
                t.add_row(vec!["state version".into(), s.state_version.to_string()]);
                let scheduler = s.brakes.pause.as_ref().map_or("running".into(), pause_text);
                t.add_row(vec!["scheduler".into(), scheduler]);
                t.add_row(vec!["brake".into(), brake_text(&s.brakes)]);
                let members: Vec<String> = s
                    .members
                    .iter()
                    .map(|m| format!("{}={} ({})", m.id, m.address, m.role))
                    .collect();
                t.add_row(vec!["members".into(), members.join(", ")]);
                t
            });
        }
        Command::Members(MembersCmd::List) => {
            let s = c.cluster().await?;
            let addrs: Vec<String> = s.members.iter().map(|m| m.address.clone()).collect();
            let probes = probe_all(&addrs, cli.token.clone(), cli.timeout).await;
            let rows = health_rows(&probes, &s.members);
            out.emit(&rows, || {
                health_table(
                    &rows,
                    &[
                        "ID", "ADDRESS", "ROLE", "STATE", "LEADER", "TERM", "APPLIED", "LAG",
                    ],
                    (out.0 == Output::Wide).then_some(&["COMMIT", "LAST LOG", "ERROR"]),
                    health_row,
                )
            });
        }
        Command::Endpoint(EndpointCmd::Status { cluster }) => {
            let mut addrs: Vec<String> = cli.endpoints.clone();
            let mut members = Vec::new();
            if cluster {
                let s = c.cluster().await?;
                for m in &s.members {
                    if !addrs.iter().any(|a| same_endpoint(a, &m.address)) {
                        addrs.push(m.address.clone());
                    }
                }
                members = s.members;
            }
            let probes = probe_all(&addrs, cli.token.clone(), cli.timeout).await;
            let rows = health_rows(&probes, &members);
            out.emit(&rows, || {
                health_table(
                    &rows,
                    &[
                        "ENDPOINT", "ID", "STATE", "LEADER", "TERM", "APPLIED", "LAG", "ERROR",
                    ],
                    (out.0 == Output::Wide).then_some(&["COMMIT", "LAST LOG", "VERSION"]),
                    endpoint_row,
                )
            });
            let down = rows.iter().filter(|r| !r.reachable).count();
            if down > 0 {
                return Err(Failure {
                    message: format!("{down} of {} endpoints unreachable", rows.len()),
                    hint: None,
                    exit: 5,
                });
            }
        }
        Command::Members(MembersCmd::Add { id, address }) => {
            let v = c.add_member(id, &address).await?;
            out.sentence(
                &v,
                format!(
                    "node {id} ({address}) added as a learner: start it with --join; it becomes \
                     a voter once caught up"
                ),
            );
        }
        Command::Members(MembersCmd::Remove { id }) => {
            confirm(
                yes,
                &format!("Remove node {id} from the cluster's membership?"),
            )?;
            let v = c.remove_member(id).await?;
            out.sentence(
                &v,
                format!("node {id} removed from the membership; stop its process"),
            );
        }
        Command::Workers(cmd) => workers(&c, out, cmd, yes).await?,
        Command::Drain {
            workers,
            dry_run,
            allow_blocked,
            deadline,
        } => {
            let opts = deadline.options(dry_run, allow_blocked);
            let r = c.drain_workers(&workers, opts).await?;
            print_drain(out, &r, allow_blocked)?;
        }
        Command::Partitions(cmd) => partitions(&c, out, cmd).await?,
        Command::Kv(cmd) => kv(&c, out, cmd).await?,
        Command::Events(args) => events(&c, out, args).await?,
        Command::Watch { after } => {
            let args = EventsArgs {
                after,
                limit: usize::MAX,
                tail: Some(0),
                follow: true,
                since: None,
                worker: None,
                kind: Vec::new(),
            };
            events(&c, out, args).await?;
        }
        Command::Scheduler(cmd) => scheduler(&c, out, cmd).await?,
        Command::Brake(BrakeCmd::Release { reason }) => {
            let brakes = c.release_brake(reason.as_deref()).await?;
            let line = match &brakes.released {
                Some(h) => format!(
                    "mass-failure brake released: held deaths are declared now; it does not \
                     trip again before {}",
                    h.until_ms.map_or("-".into(), render::rfc3339_ms)
                ),
                None => "mass-failure brake not tripped; nothing to release".to_owned(),
            };
            out.sentence(&brakes, line);
        }
        Command::RollingRestart {
            workers,
            zone,
            by_zone,
            exec,
            for_,
            reason,
        } => {
            let plan = rolling::Plan {
                workers,
                zone,
                by_zone,
                exec,
                expected: for_,
                reason,
            };
            rolling::run(&c, out, plan).await?;
        }
        Command::WhatIf {
            action,
            workers,
            zone,
        } => {
            let request = drover_api::WhatIfRequest {
                workers: zone.is_none().then_some(workers),
                zone,
                action: match action {
                    WhatIfVerb::Stop => drover_api::WhatIfAction::Stop,
                    WhatIfVerb::Drain => drover_api::WhatIfAction::Drain,
                },
            };
            print_what_if(out, &c.what_if(&request).await?)?;
        }
        Command::Settings(SettingsCmd::Get) => print_settings(out, &c.settings().await?),
        Command::Settings(SettingsCmd::Set {
            changes,
            expected_version,
        }) => {
            let mut patch = drover_types::SettingsPatch::default();
            for (setting, value) in changes {
                setting
                    .apply(value, &mut patch)
                    .map_err(|message| Failure {
                        message,
                        hint: None,
                        exit: 2,
                    })?;
            }
            print_settings(out, &c.set_settings(&patch, expected_version).await?);
        }
        Command::Snapshot(SnapshotCmd::Save { file }) => {
            let snap = c.snapshot().await?;
            // Write beside, then rename: a partial file never looks like a backup.
            let tmp = file.with_extension("partial");
            std::fs::write(&tmp, &snap.bytes)?;
            std::fs::rename(&tmp, &file)?;
            let summary = serde_json::json!({
                "file": file.display().to_string(),
                "bytes": snap.bytes.len(),
                "state_version": snap.version,
            });
            out.emit(&summary, || {
                let mut t = table(&["FILE", "BYTES", "STATE VERSION"]);
                t.add_row(vec![
                    file.display().to_string(),
                    snap.bytes.len().to_string(),
                    snap.version.to_string(),
                ]);
                t
            });
        }
        Command::Completions { .. } => {}
    }
    Ok(())
}

async fn workers(c: &Client, out: Printer, cmd: WorkersCmd, yes: bool) -> Result<(), Failure> {
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

async fn scheduler(c: &Client, out: Printer, cmd: SchedulerCmd) -> Result<(), Failure> {
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

/// Asks on the terminal before a destructive change, unless `--yes`. Off a terminal (a
/// script, a pipe) there is nobody to ask: the command goes ahead, as `rm` does.
fn confirm(yes: bool, question: &str) -> Result<(), Failure> {
    use std::io::{BufRead, IsTerminal};
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

async fn partitions(c: &Client, out: Printer, cmd: PartitionsCmd) -> Result<(), Failure> {
    match cmd {
        PartitionsCmd::List => {
            let all = c.all_partitions().await?;
            out.emit(&all, || {
                let mut t = partition_table(out);
                for p in &all {
                    t.add_row(partition_row(p, out.0 == Output::Wide));
                }
                t
            });
        }
        PartitionsCmd::Show { id } => {
            let p = c.partition(id).await?;
            out.emit(&p, || {
                let mut t = partition_table(out);
                t.add_row(partition_row(&p, out.0 == Output::Wide));
                t
            });
        }
        PartitionsCmd::Create {
            count,
            replication_factor,
        } => {
            let t = c.create_table(count, replication_factor).await?;
            out.sentence(
                &t,
                format!(
                    "created {count} partitions at replication factor {replication_factor}; \
                     the scheduler places them on Active workers"
                ),
            );
        }
        PartitionsCmd::Locate { key } => {
            let l = c.locate(key).await?;
            out.emit(&l, || {
                let mut t = table(&["PARTITION", "WORKER", "ADDRESS", "ZONE", "LEADER"]);
                for e in &l.serving {
                    t.add_row(vec![
                        l.partition.id.to_string(),
                        e.worker.clone(),
                        e.address.clone(),
                        e.zone.clone().unwrap_or("-".into()),
                        if e.leader { "*".into() } else { String::new() },
                    ]);
                }
                t
            });
        }
    }
    Ok(())
}

async fn kv(c: &Client, out: Printer, cmd: KvCmd) -> Result<(), Failure> {
    let kv_table = |items: &[KvItem]| {
        let mut t = table(&["KEY", "VALUE", "VERSION", "CREATED"]);
        for i in items {
            t.add_row(vec![
                i.key.clone(),
                i.value.clone(),
                i.version.to_string(),
                i.create_version.to_string(),
            ]);
        }
        t
    };
    match cmd {
        KvCmd::Get { key, stale } => {
            let item = c.kv_get(&key, stale).await?;
            out.emit(&item, || kv_table(std::slice::from_ref(&item)));
        }
        KvCmd::Put {
            key,
            value,
            expected_version,
        } => {
            let item = c.kv_put(&key, &value, expected_version).await?;
            out.emit(&item, || kv_table(std::slice::from_ref(&item)));
        }
        KvCmd::Delete {
            key,
            expected_version,
        } => {
            let d = c.kv_delete(&key, expected_version).await?;
            out.sentence(&d, format!("deleted {key} (state version {})", d.version));
        }
        KvCmd::List { prefix } => {
            let mut items = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = c.kv_list(&prefix, cursor.as_deref(), Some(1000)).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(next) if page.more => cursor = Some(next),
                    _ => break,
                }
            }
            out.emit(&items, || kv_table(&items));
        }
    }
    Ok(())
}

/// Whether an event passes `droverctl events`' filters.
struct EventFilter {
    since_ms: Option<u64>,
    worker: Option<String>,
    kinds: Vec<String>,
}

impl EventFilter {
    fn matches(&self, e: &Event) -> bool {
        if self.since_ms.is_some_and(|t| e.at_ms < t) {
            return false;
        }
        let kind = serde_json::to_value(&e.kind).unwrap_or_default();
        let (name, fields) = match &kind {
            Value::Object(m) => match m.iter().next() {
                Some((name, fields)) => (name.as_str(), Some(fields)),
                None => ("", None),
            },
            Value::String(s) => (s.as_str(), None),
            _ => ("", None),
        };
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k == name) {
            return false;
        }
        match &self.worker {
            None => true,
            Some(w) => fields.is_some_and(|f| {
                ["worker", "replaces", "leader"]
                    .iter()
                    .any(|k| f[*k].as_str() == Some(w))
                    || f["workers"]
                        .as_array()
                        .is_some_and(|ws| ws.iter().any(|x| x.as_str() == Some(w)))
            }),
        }
    }
}

/// `droverctl events`: the newest `--tail` matching events (or those after `--after`), with a
/// line on stderr when more remain, then with `--follow` every new one as it commits.
async fn events(c: &Client, out: Printer, args: EventsArgs) -> Result<(), Failure> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let since_ms = match &args.since {
        Some(s) => Some(render::parse_since(s, now_ms).map_err(|message| Failure {
            message: format!("--since: {message}"),
            hint: None,
            exit: 2,
        })?),
        None => None,
    };
    let filter = EventFilter {
        since_ms,
        worker: args.worker.clone(),
        kinds: args.kind.clone(),
    };
    // What is shown first, and the sequence number to follow from.
    let mut shown: std::collections::VecDeque<Event> = std::collections::VecDeque::new();
    let mut left_out = 0usize;
    let mut more_after = false;
    let mut after = args.after.unwrap_or(0);
    match args.after {
        Some(_) => loop {
            let page = c.events(after, Some(1000)).await?;
            for e in page.events {
                after = e.seq;
                if !filter.matches(&e) {
                    continue;
                }
                if shown.len() == args.limit {
                    more_after = true;
                    break;
                }
                shown.push_back(e);
            }
            if more_after {
                // `after` is one past the last shown: continue from the last shown instead.
                after = shown.back().map_or(after, |e| e.seq);
                break;
            }
            after = page.next_after.max(after);
            if !page.more {
                break;
            }
        },
        None => {
            let tail = args.tail.unwrap_or(20);
            loop {
                let page = c.events(after, Some(1000)).await?;
                for e in page.events.into_iter().filter(|e| filter.matches(e)) {
                    shown.push_back(e);
                    if shown.len() > tail {
                        shown.pop_front();
                        left_out += 1;
                    }
                }
                after = page.next_after.max(after);
                if !page.more {
                    break;
                }
            }
        }
    }
    let shown: Vec<Event> = shown.into();
    {
        match (out.0, args.follow) {
            // Following: one line (or JSON object) per event, from the first.
            (_, true) => {
                for e in &shown {
                    out.event_line(e)?;
                }
            }
            (Output::Json | Output::Yaml, false) => {
                let page = serde_json::json!({
                    "events": shown,
                    "more": more_after || left_out > 0,
                    "next_after": after,
                });
                out.emit(&page, Table::new);
            }
            (Output::Table | Output::Wide, false) => {
                let wide = out.0 == Output::Wide;
                let mut header = vec!["SEQ", "TIME", "EVENT", "DETAILS"];
                if wide {
                    header.insert(1, "VERSION");
                }
                let mut t = table(&header);
                for e in &shown {
                    t.add_row(event_row(e, wide));
                }
                outln!("{t}");
            }
        }
    }
    if left_out > 0 {
        eprintln!(
            "({left_out} earlier matching events not shown: --tail N shows more, --after SEQ \
             pages from a sequence number)"
        );
    } else if more_after {
        eprintln!("(more events remain: --after {after} continues)");
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        let page = tokio::select! {
            p = c.events(after, Some(1000)) => p?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        for e in page.events.iter().filter(|e| filter.matches(e)) {
            out.event_line(e)?;
        }
        after = page.next_after.max(after);
        if !page.more {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
}

/// One node's answer to a direct `GET /v1/cluster`, or why there was none.
struct Probe {
    endpoint: String,
    answer: Result<ClusterStatus, String>,
}

/// Asks every address directly and at once (no failover: each answer is that node's own).
async fn probe_all(addrs: &[String], token: Option<String>, timeout: u64) -> Vec<Probe> {
    let limit = CONNECT_TIMEOUT.min(Duration::from_secs(timeout));
    let mut tasks = Vec::new();
    for a in addrs {
        let (a, token) = (a.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let opts = drover_client::ClientOptions {
                timeout: limit,
                retry_for: Duration::ZERO,
                connect_timeout: limit,
                unreachable_for: Some(Duration::ZERO),
            };
            let answer = match Client::with_options(&[&a], token, opts) {
                Ok(c) => c.cluster().await.map_err(|e| match e {
                    Error::Unreachable { last, .. } => last,
                    e => e.to_string(),
                }),
                Err(e) => Err(e.to_string()),
            };
            Probe {
                endpoint: a,
                answer,
            }
        }));
    }
    let mut out = Vec::new();
    for (t, a) in tasks.into_iter().zip(addrs) {
        out.push(t.await.unwrap_or_else(|e| Probe {
            endpoint: a.clone(),
            answer: Err(e.to_string()),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand and every argument says what it is for in `--help` (clap's own
    /// `--help`/`--version` aside).
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "droverctl", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
        Cli::command().debug_assert();
    }
}
