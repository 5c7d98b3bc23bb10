//! `/v1/cluster`, membership changes, health and readiness, and the test-only fault endpoints.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_api::{AddMember, ClusterStatus, ErrorCode, ErrorDetail, Member, MemberRole, NodeState};
use drover_raft::PeerFault;
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{
    ApiError, ApiResult, BadRequest, Conflict, Forbidden, NotFound, StandardErrors, TooLarge,
    Unauthorized,
};
use super::extract::{ApiPath, body, parse_json};
use crate::core::{CAUGHT_UP_LAG, Node};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "cluster",
    security(()),
    responses((status = 200, description = "The process is up", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    ready: bool,
    /// Whether this node is in the cluster's membership as far as it knows: a removed node is
    /// never ready, so a load balancer stops sending it traffic.
    member: bool,
    /// The leader this node knows, if any.
    leader: Option<u64>,
    applied_index: u64,
    last_log_index: u64,
    /// Why the node is not ready, in the API's error shape (absent when ready): `not_a_member`,
    /// `no_leader`, `out_of_contact` (no word from a leader, or for a leader from a quorum,
    /// for longer than an election timeout) or `catching_up`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

/// Ready: this node is a member of the cluster, it has heard from a leader (or, leading, from a
/// quorum) within an election timeout, and it has applied what it has in its log (within a
/// small window, since a follower's last entries may not be committed yet).
///
/// Membership is read from the latest configuration this node has, and a joint one counts by
/// the configuration it moves to: a removed voter receives the joint entry that still lists it
/// and then nothing more (the leader stops replicating to it once the final configuration is
/// appended), so "listed" alone kept a removed node ready. Should it be cut off before even
/// the joint entry reaches it, it never learns of its removal: then it hears from no leader,
/// and that alone makes it not ready.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "cluster",
    security(()),
    responses(
        (status = 200, description = "Ready: a member, in contact with a leader, caught up", body = Readiness),
        (status = 503, description = "Not ready: `ready: false` and an `error` naming why", body = Readiness),
    )
)]
pub async fn readyz(State(node): State<Node>) -> Response {
    let m = node.raft().metrics().borrow().clone();
    let applied = m.last_applied.map_or(0, |l| l.index);
    let last = m.last_log_index.unwrap_or(0);
    let id = node.id();
    let membership = m.membership_config.membership();
    let member = membership.learner_ids().any(|l| l == id)
        || membership
            .get_joint_config()
            .last()
            .is_some_and(|voters| voters.contains(&id));
    let limit = node.config().raft.election_timeout_max;
    let reason = if !member {
        Some((
            ErrorCode::NotAMember,
            format!("node {id} is not in the cluster's membership (removed, or not added yet)"),
        ))
    } else if m.current_leader.is_none() || m.state == ServerState::Candidate {
        Some((ErrorCode::NoLeader, format!("node {id} knows no leader")))
    } else if !in_contact(&node, &m, limit).await {
        let whom = if m.state == ServerState::Leader {
            "a quorum"
        } else {
            "the leader"
        };
        Some((
            ErrorCode::OutOfContact,
            format!("node {id} has not heard from {whom} for over {limit:?}"),
        ))
    } else if last.saturating_sub(applied) > CAUGHT_UP_LAG {
        Some((
            ErrorCode::CatchingUp,
            format!("node {id} has applied {applied} of the {last} entries in its log"),
        ))
    } else {
        None
    };
    let status = if reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready: reason.is_none(),
        member,
        leader: m.current_leader,
        applied_index: applied,
        last_log_index: last,
        error: reason.map(|(code, message)| ErrorDetail {
            code,
            message,
            leader: None,
            current_version: None,
            partitions: Vec::new(),
        }),
    };
    (status, Json(body)).into_response()
}

/// Whether this node heard from its leader within `limit` (a leader: had its leadership
/// acknowledged by a quorum within `limit`). A follower's vote is touched by every append
/// (heartbeats included) from the leader it follows, so the time since it changed is the time
/// since the leader was last heard.
async fn in_contact(
    node: &Node,
    m: &openraft::RaftMetrics<drover_raft::NodeId, drover_raft::Node>,
    limit: std::time::Duration,
) -> bool {
    if m.state == ServerState::Leader {
        let alone = m
            .membership_config
            .membership()
            .voter_ids()
            .all(|v| v == node.id());
        return alone
            || m.millis_since_quorum_ack
                .is_some_and(|ms| u128::from(ms) <= limit.as_millis());
    }
    let since = node
        .raft()
        .with_raft_state(|st| st.vote_last_modified().map(|t| t.elapsed()));
    // The Raft core answers at once unless it is busy (installing a snapshot, say): a core
    // that cannot answer within an election timeout is not serving either.
    matches!(tokio::time::timeout(limit, since).await, Ok(Ok(Some(d))) if d <= limit)
}

/// The wire name of an openraft role.
fn node_state(s: ServerState) -> NodeState {
    match s {
        ServerState::Leader => NodeState::Leader,
        ServerState::Follower => NodeState::Follower,
        ServerState::Candidate => NodeState::Candidate,
        ServerState::Learner => NodeState::Learner,
        ServerState::Shutdown => NodeState::Shutdown,
    }
}

/// The cluster as the answering node sees it: leader, term, members, indexes, state version.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    operation_id = "cluster_status",
    tag = "cluster",
    responses(
        (status = 200, description = "This node's view of the cluster", body = ClusterStatus),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
pub async fn status(State(node): State<Node>) -> Json<ClusterStatus> {
    let m = node.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let last = m.last_log_index.unwrap_or(0);
    // openraft keeps the replication progress on the leader only.
    let lag = |id: u64| {
        let replication = m.replication.as_ref()?;
        if id == node.id() {
            return Some(0);
        }
        let matched = replication.get(&id).copied().flatten()?;
        Some(last.saturating_sub(matched.index))
    };
    let members = membership
        .nodes()
        .map(|(id, n)| Member {
            id: *id,
            address: n.addr.clone(),
            role: if voters.contains(id) {
                MemberRole::Voter
            } else {
                MemberRole::Learner
            },
            lag: lag(*id),
        })
        .collect();
    let applied_index = m.last_applied.map_or(0, |l| l.index);
    // One guard for both fields: two `read()`s in the struct literal held two at once, and an
    // apply waiting between them deadlocked the node (a chaos run saw a leader hang).
    let (state_version, brakes) = {
        let s = node.state().read();
        (s.state.version, s.state.brakes.clone())
    };
    Json(ClusterStatus {
        cluster_id: node.config().cluster_id.clone(),
        node: node.id(),
        state: node_state(m.state),
        leader: m.current_leader,
        term: m.current_term,
        members,
        commit_index: node.commit_index().max(applied_index),
        applied_index,
        last_log_index: m.last_log_index.unwrap_or(0),
        state_version,
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        snapshots_installed: node.snapshots_installed(),
        brakes,
    })
}

/// Adds a node as a learner; the leader promotes it to voter once it has caught up.
#[utoipa::path(
    post,
    path = "/v1/cluster/members",
    operation_id = "add_member",
    tag = "cluster",
    request_body = AddMember,
    responses(
        (status = 200, description = "Already a member at that address; nothing changed", body = Member),
        (status = 202, description = "Added as a learner; it becomes a voter once caught up", body = Member),
        StandardErrors,
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
    )
)]
pub async fn add_member(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let req: AddMember = parse_json(&raw)?;
    if req.id == 0 {
        return Err(ApiError::bad_request(
            "field id: must be a positive integer",
        ));
    }
    if req.address.parse::<std::net::SocketAddr>().is_err() {
        return Err(ApiError::bad_request(format!(
            "field address: {:?} is not IP:PORT",
            req.address
        )));
    }
    let (member, added) = node.add_member(req.id, req.address).await?;
    let status = if added {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(member)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct MemberPath {
    /// The node's id.
    #[param(value_type = u64)]
    id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRemoved {
    id: u64,
    removed: bool,
}

/// Removes a node, refusing a change that would leave the cluster without a quorum of
/// reachable voters.
#[utoipa::path(
    delete,
    path = "/v1/cluster/members/{id}",
    operation_id = "remove_member",
    tag = "cluster",
    params(MemberPath),
    responses(
        (status = 200, description = "Removed", body = MemberRemoved),
        StandardErrors,
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn remove_member(
    State(node): State<Node>,
    ApiPath(MemberPath { id }): ApiPath<MemberPath>,
) -> ApiResult<Response> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("member id {id:?} is not a number")))?;
    node.remove_member(id).await?;
    Ok(Json(MemberRemoved { id, removed: true }).into_response())
}

/// What happens to this node's Raft messages to one peer (drover-raft's `PeerFault`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Fault {
    /// Every message fails as if the peer were unreachable.
    drop: bool,
    /// Every message is held this long first.
    delay_ms: u64,
}

/// The faults in force, by peer id (JSON object keys are strings).
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
pub struct Faults(BTreeMap<String, Fault>);

impl Faults {
    fn of(node: &Node) -> Json<Self> {
        let all = node.faults().all().into_iter();
        // Destructured field by field, so a new field of `PeerFault` fails to compile here
        // rather than go missing from the answer and its schema.
        Json(Faults(
            all.map(|(peer, PeerFault { drop, delay_ms })| {
                (peer.to_string(), Fault { drop, delay_ms })
            })
            .collect(),
        ))
    }
}

/// The fault-injection settings of this node (test clusters only).
#[utoipa::path(
    get,
    path = "/debug/faults",
    operation_id = "list_faults",
    tag = "debug",
    responses(
        (status = 200, description = "Faults in force, by peer", body = Faults),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
pub async fn faults(State(node): State<Node>) -> Json<Faults> {
    Faults::of(&node)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFault {
    /// The peer whose messages are affected.
    peer: u64,
    #[serde(default)]
    drop: bool,
    #[serde(default)]
    delay_ms: u64,
}

/// Drops or delays this node's Raft messages to one peer (test clusters only).
#[utoipa::path(
    post,
    path = "/debug/faults",
    operation_id = "set_fault",
    tag = "debug",
    request_body = SetFault,
    responses(
        (status = 200, description = "Faults now in force, by peer", body = Faults),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = TooLarge),
    )
)]
pub async fn set_fault(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let f: SetFault = parse_json(&body(raw)?)?;
    node.faults().set(
        f.peer,
        PeerFault {
            drop: f.drop,
            delay_ms: f.delay_ms,
        },
    );
    tracing::warn!(
        peer = f.peer,
        drop = f.drop,
        delay_ms = f.delay_ms,
        "fault injection changed"
    );
    Ok(Faults::of(&node).into_response())
}

/// Clears every injected fault of this node (test clusters only).
#[utoipa::path(
    delete,
    path = "/debug/faults",
    operation_id = "clear_faults",
    tag = "debug",
    responses(
        (status = 200, description = "No faults remain", body = Faults),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
pub async fn clear_faults(State(node): State<Node>) -> Json<Faults> {
    node.faults().clear();
    Faults::of(&node)
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskFault {
    /// Hold every fsync of appended log entries until set back to false: a stalled disk.
    stall_fsync: bool,
}

/// Stalls or resumes this node's fsyncs of appended Raft log entries (test clusters only).
#[utoipa::path(
    post,
    path = "/debug/disk",
    operation_id = "set_disk_fault",
    tag = "debug",
    request_body = DiskFault,
    responses(
        (status = 200, description = "The disk fault now in force", body = DiskFault),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = TooLarge),
    )
)]
pub async fn set_disk_fault(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<DiskFault>> {
    let f: DiskFault = parse_json(&body(raw)?)?;
    node.fsync_gate().set_stalled(f.stall_fsync);
    tracing::warn!(stall_fsync = f.stall_fsync, "disk fault injection changed");
    Ok(Json(DiskFault {
        stall_fsync: node.fsync_gate().stalled(),
    }))
}
