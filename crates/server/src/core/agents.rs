//! What a worker's agent asks of the core besides proposals (SPEC §1, §2): its assignments as
//! this node has applied them, waited for as a long poll, and its heartbeats — the leader's
//! soft state and the lease they grant (the lease argument is `liveness.rs`'s).

use std::time::Duration;

use drover_api::{
    Assignment, Assignments, HeartbeatAck, HeartbeatRequest, Liveness, Peer, Recommissioned,
};
use drover_types::{ClusterState, RejectCode, Rejection, Worker, WorkerId, WorkerState};
use tokio::time::Instant;

use super::error::{Error, Result};
use super::liveness::Timing;
use super::node::Node;

/// How long a heartbeat waits for a pending death verdict of its worker before giving up.
const VERDICT_WAIT: Duration = Duration::from_secs(2);

fn no_worker(id: &WorkerId) -> Error {
    Error::Rejected(Rejection::new(
        RejectCode::NotFound,
        format!("no worker {id}"),
    ))
}

/// `w`'s assignments in the applied state `s`: the replicas it holds, each with its peers.
fn assignments(s: &ClusterState, w: &Worker) -> Assignments {
    let replicas = s
        .holdings_of(&w.id)
        .into_iter()
        .filter_map(|p| {
            let mine = p.replica(&w.id)?;
            Some(Assignment {
                partition: p.id,
                key_range: p.key_range,
                role: mine.role,
                since: mine.since,
                epoch: p.epoch,
                leader: p.leader.as_ref() == Some(&w.id),
                peers: p
                    .replicas
                    .iter()
                    .filter(|r| r.worker != w.id)
                    .map(|r| Peer {
                        worker: r.worker.to_string(),
                        address: s.workers.get(&r.worker).map(|x| x.address.clone()),
                        role: r.role,
                    })
                    .collect(),
            })
        })
        .collect();
    Assignments {
        worker: w.id.to_string(),
        state: w.state,
        generation: w.generation,
        dead: w.dead,
        version: w.assignments_version,
        replicas,
    }
}

impl Node {
    /// `worker`'s assignments from this node's applied state, as soon as their version
    /// exceeds `after`, or once `wait` ran out (or the node stops) as they are.
    pub async fn assignments_after(
        &self,
        worker: &WorkerId,
        after: u64,
        wait: Duration,
    ) -> Result<Assignments> {
        let found = self
            .wait_on_worker(worker, Instant::now() + wait, |s| {
                let w = s.workers.get(worker).ok_or_else(|| no_worker(worker))?;
                Ok::<_, Error>((w.assignments_version > after).then(|| assignments(s, w)))
            })
            .await?;
        match found {
            Some(a) => Ok(a),
            // Timed out, or the node is shutting down: answer with what there is.
            None => {
                let guard = self.state().read();
                let w = guard
                    .state
                    .workers
                    .get(worker)
                    .ok_or_else(|| no_worker(worker))?;
                Ok(assignments(&guard.state, w))
            }
        }
    }

    /// An agent's heartbeat that arrived at `arrival`, on the leader (the caller routes it
    /// here): leader soft state, never a Raft write. Acknowledged only after a quorum
    /// confirmed this node's leadership after the arrival and every entry that read found
    /// applied — this term's first entry included, so every death an earlier leader proposed
    /// is committed or gone; fenced by generation against that applied state
    /// (`stale_generation`, `fenced` once declared dead); never while a death verdict of its
    /// generation is being committed. A `release` gives the lease up instead.
    pub async fn heartbeat(
        &self,
        worker: &WorkerId,
        b: &HeartbeatRequest,
        arrival: Instant,
    ) -> Result<HeartbeatAck> {
        if !self.config().unsafe_test.local_heartbeats {
            self.confirmed_for_heartbeat().await?;
        }
        let mut settlements = self.heartbeats().settlements();
        let mut versions = self.versions();
        let deadline = arrival + VERDICT_WAIT;
        loop {
            let now = Instant::now();
            let answer = {
                let guard = self.state().read();
                let s = &guard.state;
                let w = s.workers.get(worker).ok_or_else(|| no_worker(worker))?;
                drover_types::check_generation(w, b.generation).map_err(Error::Rejected)?;
                if s.settings.version == 0 {
                    None
                } else {
                    let clock = self.state().clock();
                    let t = Timing::at(&s.settings, &clock, now);
                    Some((w.clone(), t, clock.generation_applied(&w.id, w.generation)))
                }
            };
            // A brand-new cluster: its first leader is committing the initial settings, and no
            // lease is granted under settings the cluster has not committed.
            let Some((w, t, applied)) = answer else {
                if matches!(
                    tokio::time::timeout_at(deadline, versions.changed()).await,
                    Ok(Ok(()))
                ) {
                    continue;
                }
                return Err(Error::unavailable(
                    "the cluster's initial settings are not committed yet; retry shortly",
                    self.leader(),
                ));
            };
            let hb = self.heartbeats();
            if b.release {
                let free = hb.lease_free_from(&w, applied, t.death_threshold).max(now);
                hb.release(worker, b.generation, free);
                tracing::info!(%worker, generation = b.generation, "lease given up");
            } else if hb.acknowledge(worker, b.generation, arrival).is_err() {
                // A death verdict for this generation is being committed: answer once it is
                // settled (fenced, or acknowledged after all), never before.
                match tokio::time::timeout_at(deadline, settlements.changed()).await {
                    Ok(Ok(())) => continue,
                    _ => {
                        return Err(Error::unavailable(
                            format!("a death verdict for worker {worker} is being committed"),
                            self.leader(),
                        ));
                    }
                }
            }
            let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            let wait = if self.config().unsafe_test.no_lease_wait {
                Duration::ZERO
            } else {
                hb.lease_wait(&w, applied, t.death_threshold, now)
            };
            tracing::debug!(%worker, generation = b.generation, "heartbeat acknowledged");
            let register_again = !b.release && hb.recommission_asked(worker, b.generation);
            return Ok(HeartbeatAck {
                worker: worker.clone(),
                generation: b.generation,
                heartbeat_interval_ms: ms(t.heartbeat_interval),
                suspect_after_ms: ms(t.suspect_after),
                dead_after_ms: ms(t.dead_after),
                lease_wait_ms: ms(wait),
                register_again,
            });
        }
    }

    /// Recommissions a disabled worker (SPEC §1: Disabled → Provisioning is its agent's
    /// registration): on the leader, asks its running agent — through the answers to its
    /// heartbeats — to register again, and waits until that registration is applied. Refused
    /// when the worker is not Disabled, or when no agent of it is heard or it was declared dead
    /// (there is nobody to ask: its agent process must be started); unavailable while this
    /// leader has not heard it yet; an unknown outcome when the agent did not register in time
    /// (the ask is withdrawn, but one already answered may still act).
    pub async fn recommission(&self, worker: &WorkerId) -> Result<Recommissioned> {
        let illegal = |message: String| {
            Error::Rejected(Rejection::new(RejectCode::IllegalTransition, message))
        };
        let (generation, wait) = {
            let guard = self.state().read();
            let s = &guard.state;
            let w = s.workers.get(worker).ok_or_else(|| no_worker(worker))?;
            if w.state != WorkerState::Disabled {
                return Err(illegal(format!(
                    "worker {worker} is {}: only a disabled worker is recommissioned",
                    w.state
                )));
            }
            match self.liveness_of(s, w, Instant::now()) {
                Some(Liveness::Alive) => {}
                // Not heard yet by a new leader, or this node no longer leads: ask again.
                None | Some(Liveness::Unknown) => {
                    return Err(Error::unavailable(
                        format!(
                            "worker {worker}'s agent is not heard yet by this leader; retry \
                             shortly"
                        ),
                        self.leader(),
                    ));
                }
                Some(Liveness::Dead) => {
                    return Err(illegal(format!(
                        "worker {worker} was declared dead: its agent, if it still runs, is \
                         fenced and stays out — restart its agent process, which registers \
                         with a new incarnation (generation {})",
                        w.generation + 1
                    )));
                }
                Some(Liveness::Suspect) => {
                    return Err(illegal(format!(
                        "no agent of worker {worker} is heard (generation {}): Disabled → \
                         Provisioning is its agent's registration — start its agent process, \
                         which registers with a new incarnation (generation {})",
                        w.generation,
                        w.generation + 1
                    )));
                }
            }
            // Its next heartbeat carries the request, and the registration follows at once;
            // a few intervals, within a client's usual request timeout.
            let interval = Duration::from_millis(s.settings.heartbeat_interval_ms);
            let wait = (interval * 3).clamp(Duration::from_secs(1), Duration::from_secs(4));
            (w.generation, wait)
        };
        self.heartbeats().ask_recommission(worker, generation);
        let registered = self
            .wait_on_worker(worker, Instant::now() + wait, |s| {
                let w = s.workers.get(worker).ok_or_else(|| no_worker(worker))?;
                Ok::<_, Error>((w.generation > generation).then(|| w.clone()))
            })
            .await?;
        match registered {
            Some(w) => {
                tracing::info!(target: "drover::audit", actor = "admin", action = "recommission", %worker, generation = w.generation, "worker registered again");
                Ok(Recommissioned {
                    worker: w,
                    previous_generation: generation,
                })
            }
            None => {
                // Withdrawn, so no later heartbeat is told; one answered meanwhile may still
                // bring a registration: the outcome is unknown, not a refusal.
                self.heartbeats().withdraw_recommission(worker, generation);
                Err(Error::outcome_unknown(
                    format!(
                        "asked the agent of worker {worker} to register again; it had not within \
                         {wait:?} (the ask is withdrawn) — read the worker before asking again, \
                         and check its agent's log"
                    ),
                    self.leader(),
                ))
            }
        }
    }
}
