//! `droverctl rolling-restart`: workers restarted one at a time (or a zone at a time) without
//! moving data (SPEC §1 maintenance). For each: maintenance (the disruption budget may refuse
//! it, and then nothing has changed), wait until it leads no partition, run the operator's
//! restart command, wait until a newer generation has registered, is heard and the scheduler
//! ended the maintenance (`returned`). It stops at the first failure, saying where it stopped.
//! Replica sets are compared before and after, so the summary says whether anything moved.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_api::{Liveness, WorkerView};
use drover_client::{Client, Expiry, outln};
use drover_types::{ReplicaRole, WorkerState};
use tokio::time::Instant;

use crate::exit::Failure;
use crate::output::Printer;
use crate::render;

/// What `rolling-restart` was asked to do.
pub(crate) struct Plan {
    pub(crate) workers: Vec<String>,
    pub(crate) zone: Option<String>,
    pub(crate) by_zone: bool,
    pub(crate) exec: String,
    pub(crate) expected: Duration,
    pub(crate) reason: String,
}

/// How long preferred leaderships may take to move off a worker before it is restarted anyway.
const LEADERS_OFF: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

#[derive(serde::Serialize)]
struct Restarted {
    worker: String,
    generation_before: u64,
    generation_after: u64,
    seconds: f64,
}

fn fail(message: String, exit: u8) -> Failure {
    Failure {
        message,
        hint: None,
        exit,
    }
}

pub(crate) async fn run(c: &Client, out: Printer, plan: Plan) -> Result<(), Failure> {
    let groups = choose(c, &plan).await?;
    let before = replica_sets(c).await?;
    let human = out.0.human();
    let mut done = Vec::new();
    for group in groups {
        let start = Instant::now();
        let mut generations = BTreeMap::new();
        for id in &group {
            let w = c
                .maintenance(id, &plan.reason, &Expiry::After(plan.expected), None)
                .await?;
            generations.insert(id.clone(), w.generation);
            if human {
                outln!("{id}: in maintenance (generation {})", w.generation);
            }
        }
        wait_leaders_off(c, &group, human).await?;
        for id in &group {
            let cmd = plan.exec.replace("{id}", id);
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .env("DROVER_WORKER", id)
                .status()
                .await?;
            if !status.success() {
                return Err(fail(
                    format!(
                        "{id}: the restart command `{cmd}` failed ({status}); stopped here. Its \
                         maintenance ends by itself at its until, or now with droverctl workers \
                         end-maintenance {id}"
                    ),
                    1,
                ));
            }
            if human {
                outln!("{id}: restart command ran");
            }
        }
        for id in &group {
            let after = wait_returned(c, id, generations[id], plan.expected).await?;
            let seconds = start.elapsed().as_secs_f64();
            if human {
                outln!("{id}: back at generation {after}, maintenance ended ({seconds:.1}s)");
            }
            done.push(Restarted {
                worker: id.clone(),
                generation_before: generations[id],
                generation_after: after,
                seconds,
            });
        }
    }
    let after = replica_sets(c).await?;
    let moved = before
        .iter()
        .filter(|(p, set)| after.get(p) != Some(set))
        .count();
    let summary = serde_json::json!({
        "restarted": done,
        "partitions_changed": moved,
    });
    let line = if moved == 0 {
        format!(
            "restarted {} workers; every partition kept its replica set (no replica moved)",
            done.len()
        )
    } else {
        format!(
            "restarted {} workers; {moved} partitions changed replica set meanwhile",
            done.len()
        )
    };
    out.sentence(&summary, line);
    Ok(())
}

/// The groups to restart in order: the named workers one by one, or every Active worker (of
/// `--zone`), zone by zone in natural id order; whole zones together with `--by-zone`.
async fn choose(c: &Client, plan: &Plan) -> Result<Vec<Vec<String>>, Failure> {
    let all = c.all_workers(None).await?;
    let by_id: BTreeMap<&str, &WorkerView> =
        all.iter().map(|w| (w.record.id.as_str(), w)).collect();
    let mut chosen: Vec<&WorkerView> = if plan.workers.is_empty() {
        all.iter()
            .filter(|w| w.record.state == WorkerState::Active && !w.record.dead)
            .filter(|w| plan.zone.is_none() || w.record.zone == plan.zone)
            .collect()
    } else {
        let mut v = Vec::new();
        for id in &plan.workers {
            let w = by_id
                .get(id.as_str())
                .ok_or_else(|| fail(format!("no worker {id}"), 3))?;
            if w.record.state != WorkerState::Active || w.record.dead {
                return Err(fail(
                    format!(
                        "worker {id} is {}{}; only active workers are restarted this way",
                        w.record.state.as_str(),
                        if w.record.dead { " (dead)" } else { "" }
                    ),
                    4,
                ));
            }
            v.push(*w);
        }
        v
    };
    if chosen.is_empty() {
        return Err(fail("no active worker to restart".into(), 3));
    }
    if plan.workers.is_empty() {
        chosen.sort_by(|a, b| {
            a.record
                .zone
                .cmp(&b.record.zone)
                .then_with(|| render::natural(a.record.id.as_str(), b.record.id.as_str()))
        });
    }
    let mut groups: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for w in chosen {
        match groups.last_mut() {
            Some((zone, g)) if plan.by_zone && *zone == w.record.zone => {
                g.push(w.record.id.to_string())
            }
            _ => groups.push((w.record.zone.clone(), vec![w.record.id.to_string()])),
        }
    }
    Ok(groups.into_iter().map(|(_, g)| g).collect())
}

/// Partition → its serving replicas, sorted.
async fn replica_sets(c: &Client) -> Result<BTreeMap<u32, Vec<String>>, Failure> {
    Ok(c.all_partitions()
        .await?
        .into_iter()
        .map(|p| {
            let mut set: Vec<String> = p
                .replicas
                .iter()
                .filter(|r| r.role == ReplicaRole::Serving)
                .map(|r| r.worker.to_string())
                .collect();
            set.sort();
            (p.id, set)
        })
        .collect())
}

/// Waits (at most [`LEADERS_OFF`]) until no partition has one of `group` as preferred leader.
async fn wait_leaders_off(c: &Client, group: &[String], human: bool) -> Result<(), Failure> {
    let deadline = Instant::now() + LEADERS_OFF;
    loop {
        let leading = c
            .all_partitions()
            .await?
            .iter()
            .filter(|p| {
                p.leader
                    .as_ref()
                    .is_some_and(|l| group.iter().any(|g| g == l.as_str()))
            })
            .count();
        if leading == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if human {
                outln!(
                    "{}: still preferred leader of {leading} partitions after {LEADERS_OFF:?}; \
                     restarting anyway",
                    group.join(", ")
                );
            }
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `id` is back: a generation above `before`, heard by the leader, and its
/// maintenance ended by the scheduler. Returns the new generation.
async fn wait_returned(
    c: &Client,
    id: &str,
    before: u64,
    within: Duration,
) -> Result<u64, Failure> {
    let deadline = Instant::now() + within;
    loop {
        let w = c.worker(id).await?;
        let r = &w.record;
        let heard = w.liveness.is_none_or(|l| l == Liveness::Alive);
        if r.generation > before && r.maintenance.is_none() && heard {
            return Ok(r.generation);
        }
        if Instant::now() >= deadline {
            return Err(fail(
                format!(
                    "{id} did not come back within {}: generation {} (was {before}), maintenance \
                     {}; stopped here",
                    humantime::format_duration(within),
                    r.generation,
                    if r.maintenance.is_some() {
                        "still on"
                    } else {
                        "ended"
                    },
                ),
                1,
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
