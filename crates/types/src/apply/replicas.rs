//! Partition commands: the table, make-before-break replica steps and their acknowledgements,
//! preferred leaders (SPEC §2, §3).

use crate::events::EventKind;
use crate::ids::{MAX_PARTITIONS, MAX_REPLICATION_FACTOR, PartitionId, WorkerId};
use crate::partition::{Partition, RECENT_RELEASES, Release, Replica, ReplicaRole, key_range};
use crate::state::Table;
use crate::worker::WorkerState;

use super::{
    Applied, Cx, RejectCode, Rejection, Response, check_epoch, check_generation, invalid, reject,
};

impl Cx<'_> {
    pub(super) fn create_table(&mut self, count: u32, replication_factor: u8) -> Applied {
        if let Some(t) = &self.s.table {
            return reject(
                RejectCode::AlreadyExists,
                format!(
                    "the partition table exists ({} partitions, RF {})",
                    t.count, t.replication_factor
                ),
            );
        }
        if !(1..=MAX_PARTITIONS).contains(&count) {
            return invalid(format!("count must be 1-{MAX_PARTITIONS}, got {count}"));
        }
        if !(1..=MAX_REPLICATION_FACTOR).contains(&replication_factor) {
            return invalid(format!(
                "replication_factor must be 1-{MAX_REPLICATION_FACTOR}, got {replication_factor}"
            ));
        }
        let table = Table {
            count,
            replication_factor,
            version: self.index,
        };
        self.s.partitions = (0..count)
            .map(|id| Partition {
                id,
                key_range: key_range(id, count),
                replication_factor,
                replicas: Vec::new(),
                leader: None,
                epoch: 0,
                version: self.index,
                recent_releases: Vec::new(),
            })
            .collect();
        self.s.table = Some(table.clone());
        self.changes.table = true;
        self.changes.partitions.extend(0..count);
        self.event(EventKind::TableCreated {
            count,
            replication_factor,
        });
        Ok(Response::Table(table))
    }

    /// Rule 1, as far as replicated state can tell: an Active, not-dead worker, neither cordoned
    /// nor in maintenance, that holds no replica of the partition yet. Suspicion is soft state:
    /// the scheduler checks it. The cordon and maintenance are checked here too, not only by the
    /// planner: a plan computed before the cordon committed must not land after it.
    pub(super) fn check_placeable(
        &self,
        p: &Partition,
        worker: &WorkerId,
    ) -> Result<(), Rejection> {
        let w = self.worker(worker)?;
        if w.state != WorkerState::Active || w.dead {
            let why = if w.dead { "dead" } else { w.state.as_str() };
            return reject(
                RejectCode::Unplaceable,
                format!("worker {worker} is {why}; replicas go only to active, live workers"),
            );
        }
        if !w.takes_new_replicas() {
            let why = if w.in_maintenance() {
                "in maintenance"
            } else {
                "cordoned"
            };
            return reject(
                RejectCode::Unplaceable,
                format!("worker {worker} is {why}; nothing new is placed on it"),
            );
        }
        if p.replica(worker).is_some() {
            return reject(
                RejectCode::AlreadyExists,
                format!("partition {} already has a replica on {worker}", p.id),
            );
        }
        Ok(())
    }

    /// Initial placement (SPEC §3): joining replicas on `workers`, in order, on a partition
    /// that has never held one. All or nothing: a worker that cannot take it refuses the lot.
    pub(super) fn place_replicas(
        &mut self,
        pid: PartitionId,
        workers: &[WorkerId],
        expected: u64,
    ) -> Applied {
        let p = self.partition(pid)?;
        check_epoch(p, expected)?;
        if p.epoch != 0 || !p.replicas.is_empty() {
            return invalid(format!(
                "partition {pid} has been placed already (epoch {}): replicas are added to it \
                 one move at a time",
                p.epoch
            ));
        }
        if workers.is_empty() || workers.len() > usize::from(p.replication_factor) {
            return invalid(format!(
                "an initial placement names 1-{} workers, got {}",
                p.replication_factor,
                workers.len()
            ));
        }
        let mut tentative = p.clone();
        for w in workers {
            self.check_placeable(&tentative, w)?;
            tentative
                .replicas
                .push(Replica::joining(w.clone(), 0, 0, None));
        }
        let at = self.at;
        let Some(p) = self.partition_mut(pid) else {
            return reject(RejectCode::NotFound, format!("no partition {pid}"));
        };
        let mut added = Vec::with_capacity(workers.len());
        for w in workers {
            p.epoch = p.epoch.saturating_add(1);
            p.replicas
                .push(Replica::joining(w.clone(), p.epoch, at, None));
            added.push((w.clone(), p.epoch));
        }
        let p = p.clone();
        for (worker, epoch) in added {
            self.event(EventKind::ReplicaAdded {
                partition: pid,
                worker,
                epoch,
                replaces: None,
            });
        }
        self.touch_holders(pid, None);
        Ok(Response::Partition(p))
    }

    pub(super) fn add_replica(
        &mut self,
        pid: PartitionId,
        worker: &WorkerId,
        expected: u64,
        replaces: Option<&WorkerId>,
    ) -> Applied {
        let p = self.partition(pid)?;
        check_epoch(p, expected)?;
        self.check_placeable(p, worker)?;
        if let Some(source) = replaces {
            let serving = p
                .replica(source)
                .is_some_and(|r| r.role == ReplicaRole::Serving);
            if !serving {
                return invalid(format!(
                    "partition {pid} has no serving replica on {source} to replace"
                ));
            }
        }
        let limit = usize::from(p.replication_factor) * 2;
        if p.replicas.len() >= limit {
            return invalid(format!(
                "partition {pid} already has {} replicas (at most {limit} during moves)",
                p.replicas.len()
            ));
        }
        let at = self.at;
        let Some(p) = self.partition_mut(pid) else {
            return reject(RejectCode::NotFound, format!("no partition {pid}"));
        };
        p.epoch = p.epoch.saturating_add(1);
        let epoch = p.epoch;
        p.replicas.push(Replica::joining(
            worker.clone(),
            epoch,
            at,
            replaces.cloned(),
        ));
        let p = p.clone();
        self.event(EventKind::ReplicaAdded {
            partition: pid,
            worker: worker.clone(),
            epoch,
            replaces: replaces.cloned(),
        });
        self.touch_holders(pid, None);
        Ok(Response::Partition(p))
    }

    pub(super) fn acknowledge(
        &mut self,
        pid: PartitionId,
        worker: &WorkerId,
        generation: u64,
        epoch: u64,
    ) -> Applied {
        let p = self.partition(pid)?;
        check_generation(self.worker(worker)?, generation)?;
        let step = match p.replica(worker) {
            Some(r) if r.since == epoch => r.role,
            Some(r) if r.role == ReplicaRole::Serving && r.acked_join == Some(epoch) => {
                return Ok(Response::Partition(p.clone()));
            }
            None if p
                .recent_releases
                .iter()
                .any(|r| &r.worker == worker && r.since == epoch) =>
            {
                return Ok(Response::Partition(p.clone()));
            }
            _ => {
                return reject(
                    RejectCode::StaleEpoch,
                    format!(
                        "partition {pid} has no step of {worker} at epoch {epoch} to acknowledge \
                         (now epoch {}); re-read assignments",
                        p.epoch
                    ),
                );
            }
        };
        match step {
            // Nothing is pending on a serving replica: the acknowledgement changes nothing.
            ReplicaRole::Serving => Ok(Response::Partition(p.clone())),
            ReplicaRole::Joining => {
                let at = self.at;
                let Some(p) = self.partition_mut(pid) else {
                    return reject(RejectCode::NotFound, format!("no partition {pid}"));
                };
                p.epoch = p.epoch.saturating_add(1);
                let new_epoch = p.epoch;
                if let Some(r) = p.replica_mut(worker) {
                    r.role = ReplicaRole::Serving;
                    r.since = new_epoch;
                    r.since_ms = at;
                    r.acked_join = Some(epoch);
                }
                let p = p.clone();
                self.event(EventKind::ReplicaRole {
                    partition: pid,
                    worker: worker.clone(),
                    role: ReplicaRole::Serving,
                    epoch: new_epoch,
                });
                self.touch_holders(pid, None);
                Ok(Response::Partition(p))
            }
            ReplicaRole::Leaving => {
                self.drop_replica(pid, worker, true);
                let Some(p) = self.partition_mut(pid) else {
                    return reject(RejectCode::NotFound, format!("no partition {pid}"));
                };
                p.recent_releases.push(Release {
                    worker: worker.clone(),
                    since: epoch,
                });
                let excess = p.recent_releases.len().saturating_sub(RECENT_RELEASES);
                p.recent_releases.drain(..excess);
                Ok(Response::Partition(p.clone()))
            }
        }
    }

    pub(super) fn mark_leaving(
        &mut self,
        pid: PartitionId,
        worker: &WorkerId,
        expected: u64,
    ) -> Applied {
        let p = self.partition(pid)?;
        check_epoch(p, expected)?;
        match p.replica(worker) {
            Some(r) if r.role == ReplicaRole::Serving => {}
            Some(r) => {
                return invalid(format!(
                    "the replica of partition {pid} on {worker} is {:?}, not serving",
                    r.role
                ));
            }
            None => {
                return reject(
                    RejectCode::NotFound,
                    format!("partition {pid} has no replica on {worker}"),
                );
            }
        }
        let healthy = self.s.healthy_serving(p);
        let after = healthy.saturating_sub(usize::from(self.s.is_alive(worker)));
        let rf = usize::from(p.replication_factor);
        if after < rf {
            return reject(
                RejectCode::UnderReplicated,
                format!(
                    "partition {pid} has {healthy} healthy serving replicas; releasing {worker} \
                     would leave {after}, below RF {rf}"
                ),
            );
        }
        let at = self.at;
        let Some(p) = self.partition_mut(pid) else {
            return reject(RejectCode::NotFound, format!("no partition {pid}"));
        };
        p.epoch = p.epoch.saturating_add(1);
        let epoch = p.epoch;
        if let Some(r) = p.replica_mut(worker) {
            r.role = ReplicaRole::Leaving;
            r.since = epoch;
            r.since_ms = at;
        }
        let lost_leader = p.leader.as_ref() == Some(worker);
        if lost_leader {
            p.leader = None;
        }
        let p = p.clone();
        self.event(EventKind::ReplicaRole {
            partition: pid,
            worker: worker.clone(),
            role: ReplicaRole::Leaving,
            epoch,
        });
        self.touch_holders(pid, None);
        if lost_leader {
            self.event(EventKind::LeaderChanged {
                partition: pid,
                leader: None,
            });
        }
        Ok(Response::Partition(p))
    }

    pub(super) fn remove_replica(
        &mut self,
        pid: PartitionId,
        worker: &WorkerId,
        expected: u64,
    ) -> Applied {
        let p = self.partition(pid)?;
        check_epoch(p, expected)?;
        match p.replica(worker) {
            Some(r) if r.role == ReplicaRole::Joining => {}
            Some(r) => {
                return invalid(format!(
                    "the replica of partition {pid} on {worker} is {:?}; only a joining replica \
                     can be withdrawn, a leaving one goes with its release acknowledgement",
                    r.role
                ));
            }
            None => {
                return reject(
                    RejectCode::NotFound,
                    format!("partition {pid} has no replica on {worker}"),
                );
            }
        }
        self.drop_replica(pid, worker, false);
        Ok(Response::Partition(self.partition(pid)?.clone()))
    }

    pub(super) fn set_leader(
        &mut self,
        pid: PartitionId,
        leader: &WorkerId,
        expected: u64,
    ) -> Applied {
        let p = self.partition(pid)?;
        check_epoch(p, expected)?;
        let serving = p
            .replica(leader)
            .is_some_and(|r| r.role == ReplicaRole::Serving);
        if !serving || !self.s.is_alive(leader) {
            return reject(
                RejectCode::Unplaceable,
                format!("{leader} is not a healthy serving replica of partition {pid}"),
            );
        }
        if p.leader.as_ref() == Some(leader) {
            return Ok(Response::Partition(p.clone()));
        }
        let Some(p) = self.partition_mut(pid) else {
            return reject(RejectCode::NotFound, format!("no partition {pid}"));
        };
        p.leader = Some(leader.clone());
        let p = p.clone();
        // Each holder's assignments say whether it leads: their long polls must wake (the old
        // leader's too, which waits for exactly this before a restart).
        self.touch_holders(pid, None);
        self.event(EventKind::LeaderChanged {
            partition: pid,
            leader: Some(leader.clone()),
        });
        Ok(Response::Partition(p))
    }
}
