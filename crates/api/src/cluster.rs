//! `/v1/cluster`: the answering node's view of the Raft cluster, and membership changes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A voter counts towards quorums; a learner only receives the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MemberRole {
    Voter,
    Learner,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Voter => "voter",
            MemberRole::Learner => "learner",
        }
    }
}

impl fmt::Display for MemberRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub id: u64,
    /// `IP:PORT`, for the API and Raft traffic alike.
    pub address: String,
    pub role: MemberRole,
    /// Answered by the leader only: how many log entries this member is behind the leader's
    /// last one (0 for the leader; absent for a member the leader has not yet heard back from).
    /// A member that is down or cut off falls behind; one that catches up returns to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// The answering node's Raft role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NodeState {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Leader => "leader",
            NodeState::Follower => "follower",
            NodeState::Candidate => "candidate",
            NodeState::Learner => "learner",
            NodeState::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// `GET /v1/cluster`. (Plain comments on the bodies whose schema has no description: a doc
// comment would become one.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterStatus {
    pub cluster_id: String,
    /// The node answering.
    pub node: u64,
    pub state: NodeState,
    pub leader: Option<u64>,
    pub term: u64,
    pub members: Vec<Member>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub state_version: u64,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    /// Snapshots this node received from a leader since it started.
    pub snapshots_installed: u64,
    /// The scheduler's brakes (SPEC §3): an operator's pause, if one holds.
    #[serde(default)]
    pub brakes: drover_types::Brakes,
}

// `POST /v1/cluster/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddMember {
    /// The new node's id, at least 1.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub id: u64,
    /// Its `IP:PORT`.
    pub address: String,
}
