//! `droverctl snapshot inspect FILE`: what a backup holds, read from the file alone — no
//! cluster needed, so an operator can check a backup before restoring from it. The file's
//! checksum is checked first (`drover_types::backup`), then the state decoded and its
//! invariants checked.

use std::collections::BTreeMap;
use std::path::Path;

use drover_types::backup::Backup;
use drover_types::{ClusterState, ReplicaRole, WorkerState};
use serde::Serialize;

use crate::exit::Failure;
use crate::output::{Printer, table};
use crate::render;

/// A backup's contents, counted.
#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    bytes: usize,
    /// The `--cluster-id` of the cluster it was saved from.
    cluster_id: String,
    /// When it was saved, ms since the Unix epoch (the saving droverctl's clock).
    saved_at_ms: u64,
    format: u8,
    state_version: u64,
    settings_version: u64,
    /// Workers by lifecycle state; `dead` counts those declared dead, whatever their state.
    workers: BTreeMap<&'static str, usize>,
    dead: usize,
    tombstones: usize,
    partitions: usize,
    replication_factor: Option<u8>,
    /// Replicas by role.
    replicas: BTreeMap<&'static str, usize>,
    drains: usize,
    kv_keys: usize,
    events_retained: usize,
    /// The sequence number the next event would get.
    events_next_seq: u64,
    paused: bool,
    mass_failure_brake: bool,
    /// What breaks the state's invariants (SPEC §6), if anything: a backup to distrust.
    invariant_violations: Vec<String>,
}

fn summarize(file: &Path, bytes: usize, backup: &Backup<'_>, s: &ClusterState) -> Summary {
    let mut workers: BTreeMap<&'static str, usize> = [
        WorkerState::Provisioning,
        WorkerState::Active,
        WorkerState::Draining,
        WorkerState::Disabled,
    ]
    .iter()
    .map(|st| (st.as_str(), 0))
    .collect();
    for w in s.workers.values() {
        *workers.entry(w.state.as_str()).or_default() += 1;
    }
    let mut replicas: BTreeMap<&'static str, usize> =
        [("serving", 0), ("joining", 0), ("leaving", 0)].into();
    for r in s.partitions.iter().flat_map(|p| &p.replicas) {
        let role = match r.role {
            ReplicaRole::Serving => "serving",
            ReplicaRole::Joining => "joining",
            ReplicaRole::Leaving => "leaving",
        };
        *replicas.entry(role).or_default() += 1;
    }
    Summary {
        file: file.display().to_string(),
        bytes,
        cluster_id: backup.cluster_id.to_owned(),
        saved_at_ms: backup.saved_at_ms,
        format: backup.snapshot.first().copied().unwrap_or_default(),
        state_version: s.version,
        settings_version: s.settings.version,
        workers,
        dead: s.workers.values().filter(|w| w.dead).count(),
        tombstones: s.tombstones.len(),
        partitions: s.partitions.len(),
        replication_factor: s.partitions.first().map(|p| p.replication_factor),
        replicas,
        drains: s.drains.len(),
        kv_keys: s.kv.len(),
        events_retained: s.events.events.len(),
        events_next_seq: s.events.next_seq,
        paused: s.brakes.pause.is_some(),
        mass_failure_brake: s.brakes.mass_failure.is_some(),
        invariant_violations: s.check_invariants().into_iter().map(|v| v.0).collect(),
    }
}

/// Reads and decodes `file` and prints what it holds.
pub(crate) fn inspect(out: Printer, file: &Path) -> Result<(), Failure> {
    let bytes = std::fs::read(file).map_err(|e| Failure {
        message: format!("{}: {e}", file.display()),
        hint: None,
        exit: if e.kind() == std::io::ErrorKind::NotFound {
            3
        } else {
            1
        },
    })?;
    let refused = |why: String| Failure {
        message: format!("{}: {why}", file.display()),
        hint: Some("a truncated or damaged copy, or not a backup: save it again".into()),
        exit: 6,
    };
    let backup = drover_types::backup::unframe(&bytes).map_err(|e| refused(e.to_string()))?;
    let snapshot = backup.snapshot;
    let state: ClusterState = drover_types::codec::decode(snapshot).map_err(|e| Failure {
        message: format!(
            "{}: not a backup this release reads ({} bytes): {e}",
            file.display(),
            bytes.len()
        ),
        hint: Some("a truncated or damaged copy, or another format: save it again".into()),
        exit: 6,
    })?;
    let summary = summarize(file, bytes.len(), &backup, &state);
    let violations = summary.invariant_violations.len();
    out.emit(&summary, || {
        let mut t = table(&["", ""]);
        let counts = |m: &BTreeMap<&str, usize>| {
            m.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rows: Vec<(&str, String)> = vec![
            (
                "file",
                format!("{} ({} bytes)", summary.file, summary.bytes),
            ),
            ("cluster", summary.cluster_id.clone()),
            ("saved at", render::rfc3339_ms(summary.saved_at_ms)),
            ("format", summary.format.to_string()),
            ("state version", summary.state_version.to_string()),
            ("settings version", summary.settings_version.to_string()),
            (
                "workers",
                format!(
                    "{}; {} dead; {} tombstones",
                    counts(&summary.workers),
                    summary.dead,
                    summary.tombstones
                ),
            ),
            (
                "partitions",
                match summary.replication_factor {
                    Some(rf) => format!("{} at RF {rf}", summary.partitions),
                    None => "none".into(),
                },
            ),
            ("replicas", counts(&summary.replicas)),
            ("drains", summary.drains.to_string()),
            ("kv keys", summary.kv_keys.to_string()),
            (
                "events",
                format!(
                    "{} retained, next seq {}",
                    summary.events_retained, summary.events_next_seq
                ),
            ),
            (
                "brakes",
                match (summary.paused, summary.mass_failure_brake) {
                    (false, false) => "none".into(),
                    (p, m) => [p.then_some("paused"), m.then_some("mass-failure brake")]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            ),
            (
                "invariants",
                if violations == 0 {
                    "hold".into()
                } else {
                    format!(
                        "{violations} violated: {}",
                        summary.invariant_violations.join("; ")
                    )
                },
            ),
        ];
        for (k, v) in rows {
            t.add_row(vec![k.to_owned(), v]);
        }
        t
    });
    if violations > 0 {
        return Err(Failure {
            message: format!(
                "{}: the state breaks {violations} invariants",
                file.display()
            ),
            hint: Some("do not restore from it".into()),
            exit: 6,
        });
    }
    Ok(())
}
