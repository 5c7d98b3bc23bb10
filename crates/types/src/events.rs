//! The lifecycle events log: transitions, moves, acknowledgements and deaths, each with a
//! sequence number, the state version that produced it and the proposer's time. Retention is
//! bounded; a reader asking for events older than what is kept is told so (410 at the API).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::ids::{PartitionId, WorkerId};
use crate::partition::ReplicaRole;
use crate::worker::WorkerState;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub seq: u64,
    pub version: u64,
    pub at_ms: u64,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    Registered {
        worker: WorkerId,
        generation: u64,
        state: WorkerState,
    },
    StateChanged {
        worker: WorkerId,
        from: WorkerState,
        to: WorkerState,
        forced: bool,
        /// Why, as the requester gave it.
        reason: Option<String>,
        /// `admin`, `worker:<id>` or `scheduler`.
        actor: String,
    },
    Dead {
        worker: WorkerId,
        generation: u64,
        replicas_dropped: u32,
    },
    Removed {
        worker: WorkerId,
        generation: u64,
    },
    TableCreated {
        count: u32,
        replication_factor: u8,
    },
    ReplicaAdded {
        #[cfg_attr(feature = "openapi", schema(value_type = u32))]
        partition: PartitionId,
        worker: WorkerId,
        epoch: u64,
        /// The serving replica this one is to replace (a move's source); none for a restore.
        replaces: Option<WorkerId>,
    },
    ReplicaRole {
        #[cfg_attr(feature = "openapi", schema(value_type = u32))]
        partition: PartitionId,
        worker: WorkerId,
        role: ReplicaRole,
        epoch: u64,
    },
    ReplicaRemoved {
        #[cfg_attr(feature = "openapi", schema(value_type = u32))]
        partition: PartitionId,
        worker: WorkerId,
        epoch: u64,
        acknowledged: bool,
    },
    LeaderChanged {
        #[cfg_attr(feature = "openapi", schema(value_type = u32))]
        partition: PartitionId,
        leader: Option<WorkerId>,
    },
    DrainStarted {
        drain: u64,
        workers: Vec<WorkerId>,
        moves: u32,
    },
    DrainPlanned {
        drain: u64,
        moves: u32,
    },
    /// A Raft membership change committed (recorded by the leader right after it).
    Membership {
        change: crate::command::MembershipChange,
    },
    /// A cordon was placed, or its reason or expiry changed.
    Cordoned {
        worker: WorkerId,
        holder: String,
        reason: String,
        actor: String,
        #[serde(rename = "until")]
        until_ms: Option<u64>,
    },
    /// A cordon was removed (`expired`: by the scheduler at its `until`).
    Uncordoned {
        worker: WorkerId,
        holder: String,
        actor: String,
        expired: bool,
    },
    /// The scheduler was paused, or its pause changed.
    SchedulerPaused {
        reason: String,
        actor: String,
        #[serde(rename = "until")]
        until_ms: Option<u64>,
    },
    /// A worker entered maintenance, or its reason or expiry changed.
    MaintenanceStarted {
        worker: WorkerId,
        reason: String,
        actor: String,
        #[serde(rename = "until")]
        until_ms: u64,
    },
    /// A maintenance ended: `returned` (a newer generation registered and heartbeats),
    /// `expired` (its `until` passed) or `lifted` (by its actor or an operator).
    MaintenanceEnded {
        worker: WorkerId,
        actor: String,
        cause: String,
    },
    /// The mass-failure brake tripped: these workers' deaths are held back, nothing is
    /// re-created.
    BrakeTripped {
        workers: Vec<WorkerId>,
        reason: String,
    },
    /// The brake was released: by the scheduler once the workers returned, or by an operator
    /// (`until`: the brake does not trip again before it).
    BrakeReleased {
        actor: String,
        reason: Option<String>,
        #[serde(rename = "until")]
        until_ms: Option<u64>,
    },
    /// A drain passed its deadline unfinished; `blocked` says why, in words.
    DrainOverdue {
        drain: u64,
        workers: Vec<WorkerId>,
        blocked: Vec<String>,
        on_deadline: crate::drain::OnDeadline,
    },
    /// The pause ended (`expired`: at its `until`).
    SchedulerResumed {
        actor: String,
        expired: bool,
    },
}

/// The retained tail of the events log. `first_seq` is the oldest sequence number still held;
/// everything before it has been compacted away.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLog {
    pub next_seq: u64,
    pub events: VecDeque<Event>,
}

impl EventLog {
    /// The oldest sequence number a reader can still get, or `next_seq` when none is held.
    pub fn first_seq(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |e| e.seq)
    }

    pub(crate) fn push(&mut self, version: u64, at_ms: u64, kind: EventKind, retain: usize) {
        let seq = self.next_seq.max(1);
        self.next_seq = seq + 1;
        self.events.push_back(Event {
            seq,
            version,
            at_ms,
            kind,
        });
        while self.events.len() > retain.max(1) {
            self.events.pop_front();
        }
    }

    /// Events with a sequence number above `after`, oldest first, or `Err(first_seq)` if some
    /// of them were compacted.
    pub fn after(&self, after: u64) -> Result<impl Iterator<Item = &Event>, u64> {
        let first = self.first_seq();
        if after.saturating_add(1) < first {
            return Err(first);
        }
        Ok(self.events.iter().filter(move |e| e.seq > after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_compacts_and_reports_the_oldest_kept() {
        let mut log = EventLog::default();
        for i in 0..10 {
            let kind = EventKind::TableCreated {
                count: i,
                replication_factor: 1,
            };
            log.push(i.into(), 0, kind, 4);
        }
        assert_eq!(log.events.len(), 4);
        assert_eq!(log.first_seq(), 7);
        assert_eq!(log.after(5).err(), Some(7), "events 6 was compacted");
        assert_eq!(log.after(6).map(|e| e.count()).ok(), Some(4));
        assert_eq!(log.after(10).map(|e| e.count()).ok(), Some(0));
    }
}
