//! `droverctl`: the operator CLI over Drover's admin HTTP API (SPEC §5).
//!
//! Output is an aligned table by default and JSON with `-o json`. Exit codes are stable so
//! scripts can branch on them (see `EXIT CODES` in `--help`).
//!
//! This file runs the commands against the client, but for the two largest groups:
//! `workers.rs` (workers and the scheduler) and `events.rs`. `cli.rs` declares them (clap),
//! `output.rs` prints what they answer, `exit.rs` turns a failure into its exit code and hint,
//! and `render.rs` holds the pure formatting helpers.

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use drover_api::KvItem;
use drover_client::{Client, Error};

mod certs;
mod cli;
mod events;
mod exit;
mod output;
mod render;
mod rolling;
mod snapshot;
mod workers;

use cli::{
    BrakeCmd, Cli, Command, EndpointCmd, EventsArgs, KvCmd, MembersCmd, Output, PartitionsCmd,
    SettingsCmd, SnapshotCmd, WhatIfVerb,
};
use events::events;
use exit::Failure;
use output::{
    Printer, brake_text, endpoint_row, health_row, health_rows, health_table, opt, partition_row,
    partition_table, pause_text, print_drain, print_settings, print_what_if, same_endpoint, table,
};
use output::{Probe, confirm};
use workers::{scheduler, workers};

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
    // Reads a file, not a cluster.
    if let Command::Snapshot(SnapshotCmd::Inspect { file }) = &cli.command {
        return snapshot::inspect(Printer(cli.output), file);
    }
    if let Command::Certs { dir, hosts } = &cli.command {
        return certs::create(Printer(cli.output), dir, hosts);
    }
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
    let tls = cli.tls().map_err(|e| Failure {
        message: e.to_string(),
        hint: None,
        exit: 2,
    })?;
    let opts = drover_client::ClientOptions {
        tls: tls.clone(),
        timeout: Duration::from_secs(cli.timeout),
        retry_for: Duration::from_secs(cli.timeout * 2),
        connect_timeout: CONNECT_TIMEOUT.min(Duration::from_secs(cli.timeout)),
        // Nothing listening anywhere: say so (and why) now, not after the retry budget.
        unreachable_for: Some(CONNECT_TIMEOUT.min(Duration::from_secs(cli.timeout))),
        prefer_leader: false,
        local_address: None,
        http2: false,
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
            let probes = probe_all(&addrs, cli.token.clone(), cli.timeout, &tls).await;
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
            let probes = probe_all(&addrs, cli.token.clone(), cli.timeout, &tls).await;
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
            // Framed with a checksum, so a damaged copy is told from a good one, and the
            // cluster id, so a restore can insist on a new one.
            let saved_at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let framed = drover_types::backup::frame(&snap.cluster_id, saved_at_ms, &snap.bytes);
            std::fs::write(&tmp, &framed)?;
            std::fs::rename(&tmp, &file)?;
            let summary = serde_json::json!({
                "file": file.display().to_string(),
                "bytes": framed.len(),
                "state_version": snap.version,
            });
            out.emit(&summary, || {
                let mut t = table(&["FILE", "BYTES", "STATE VERSION"]);
                t.add_row(vec![
                    file.display().to_string(),
                    framed.len().to_string(),
                    snap.version.to_string(),
                ]);
                t
            });
        }
        Command::Completions { .. }
        | Command::Certs { .. }
        | Command::Snapshot(SnapshotCmd::Inspect { .. }) => {}
    }
    Ok(())
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

/// Asks every address directly and at once (no failover: each answer is that node's own).
async fn probe_all(
    addrs: &[String],
    token: Option<String>,
    timeout: u64,
    tls: &Option<drover_tls::rustls::ClientConfig>,
) -> Vec<Probe> {
    let limit = CONNECT_TIMEOUT.min(Duration::from_secs(timeout));
    let mut tasks = Vec::new();
    for a in addrs {
        let (a, token, tls) = (a.clone(), token.clone(), tls.clone());
        tasks.push(tokio::spawn(async move {
            let opts = drover_client::ClientOptions {
                tls,
                timeout: limit,
                retry_for: Duration::ZERO,
                connect_timeout: limit,
                unreachable_for: Some(Duration::ZERO),
                prefer_leader: false,
                local_address: None,
                http2: false,
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
