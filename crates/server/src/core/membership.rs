//! Membership: forming the cluster (staggered bootstrap, or joining through a member),
//! promoting caught-up learners to voters, and the quorum questions a membership change asks
//! first (who is caught up, who answers). Nodes talk here over their peer client: `join` asks
//! a member's `POST /v1/cluster/members`, probes ask `GET /healthz` — the protocol between
//! nodes, as Raft's RPCs are `drover-raft`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drover_api::{Member, MemberRole};
use openraft::metrics::RaftMetrics;
use openraft::{BasicNode, ChangeMembers};

use super::error::Error;
use super::node::Node;

/// How long a membership change may take to commit before the leader gives up waiting.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a membership change was refused, or did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The id is a member at another address.
    #[error("node {id} is a member at {address}; remove it first to change its address")]
    AddressTaken { id: u64, address: String },
    #[error("node {0} is not a member")]
    NotAMember(u64),
    /// The change would leave the cluster without a quorum of reachable voters.
    #[error("{0}")]
    QuorumLoss(String),
    #[error(transparent)]
    Core(#[from] Error),
}

/// How far (in log entries) a follower may trail the leader and still count as caught up.
pub const CAUGHT_UP_LAG: u64 = 64;

/// Initializes a new cluster with `members`, staggered by rank: the lowest id initializes at
/// once, the next after a pause, and so on, each only if it has not meanwhile heard from a
/// leader. An initializing openraft node campaigns at once, so all of them initializing together
/// would split the first vote; staggering still forms the cluster when the first node is down.
/// Every node proposes the same membership, so whichever initializes, they agree.
pub(super) async fn bootstrap(node: Node, members: BTreeMap<u64, std::net::SocketAddr>) {
    let rank = members.keys().position(|id| *id == node.id()).unwrap_or(0);
    let pause = node.config().raft.election_timeout_max * 2;
    tokio::time::sleep(pause * u32::try_from(rank).unwrap_or(u32::MAX)).await;
    match node.raft().is_initialized().await {
        Ok(true) => {
            tracing::info!("joined the bootstrapping cluster through its leader");
            return;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot bootstrap: raft stopped");
            return;
        }
    }
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr.to_string())))
        .collect();
    match node.raft().initialize(nodes).await {
        Ok(()) => tracing::info!(id = node.id(), "bootstrapped a new cluster"),
        Err(e) => tracing::info!("bootstrap: {e}"),
    }
}

/// Asks the cluster, through `via`, to add this node; retries until it is a member.
pub(super) async fn join(node: Node, via: String) {
    let body = serde_json::json!({"id": node.id(), "address": node.config().listen.to_string()});
    let mut delay = Duration::from_millis(200);
    loop {
        let mut request = node
            .peer_client()
            .post(format!(
                "{}://{via}/v1/cluster/members",
                node.config().scheme()
            ))
            .json(&body);
        if let Some(token) = &node.config().admin_token {
            request = request.bearer_auth(token);
        }
        let result = request.send().await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(via, "joined the cluster as a learner");
                return;
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                tracing::warn!(via, %status, text, "join refused; retrying");
            }
            Err(e) => tracing::warn!(via, error = %e, "cannot reach the cluster to join; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// On the leader, promotes learners to voters once they have caught up.
pub(super) async fn promote_learners(node: Node) {
    let mut metrics = node.raft().metrics();
    loop {
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if !node.is_leader() {
            continue;
        }
        let m = node.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        let ready: BTreeSet<u64> = learners
            .into_iter()
            .filter(|id| node.caught_up_voters(&m, &BTreeSet::from([*id])) == 1)
            .collect();
        if ready.is_empty() {
            continue;
        }
        match node
            .raft()
            .change_membership(ChangeMembers::AddVoterIds(ready.clone()), false)
            .await
        {
            Ok(_) => tracing::info!(?ready, "promoted caught-up learners to voters"),
            Err(e) => tracing::warn!(?ready, error = %e, "promotion failed; will retry"),
        }
    }
}

impl Node {
    /// How many of `among` answer a health probe within a second and are caught up with the
    /// leader (the leader itself counts). Replication metrics alone cannot tell a node that died
    /// a moment ago from a live one, so each is asked.
    pub(crate) async fn reachable_voters(
        &self,
        m: &RaftMetrics<u64, BasicNode>,
        among: &BTreeSet<u64>,
    ) -> usize {
        let membership = m.membership_config.membership();
        let probes = among.iter().map(|id| {
            let addr = membership.get_node(id).map(|n| n.addr.clone());
            let caught_up = self.caught_up_voters(m, &BTreeSet::from([*id])) == 1;
            let me = *id == self.id();
            async move {
                if me {
                    return true;
                }
                let Some(addr) = addr else { return false };
                let probe = self
                    .peer_client()
                    .get(format!("{}://{addr}/healthz", self.config().scheme()))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await;
                let answered = probe.as_ref().is_ok_and(|r| r.status().is_success());
                tracing::debug!(voter = id, caught_up, answered, "quorum probe");
                caught_up && answered
            }
        });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    /// Voters in `among` that are caught up with the leader (the leader itself counts).
    pub(crate) fn caught_up_voters(
        &self,
        m: &RaftMetrics<u64, BasicNode>,
        among: &BTreeSet<u64>,
    ) -> usize {
        let last = m.last_log_index.unwrap_or(0);
        let replication = m.replication.clone().unwrap_or_default();
        among
            .iter()
            .filter(|id| {
                **id == self.id()
                    || replication
                        .get(id)
                        .and_then(|matched| *matched)
                        .is_some_and(|l| last.saturating_sub(l.index) <= CAUGHT_UP_LAG)
            })
            .count()
    }

    /// Adds node `id` at `address` as a learner, which the leader promotes to voter once it
    /// has caught up. Already a member at that address: nothing changes, and the second value
    /// is false.
    pub async fn add_member(
        &self,
        id: u64,
        address: String,
    ) -> Result<(Member, bool), MembershipError> {
        let m = self.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        if let Some(existing) = membership.get_node(&id) {
            if existing.addr != address {
                return Err(MembershipError::AddressTaken {
                    id,
                    address: existing.addr.clone(),
                });
            }
            let role = if membership.voter_ids().any(|v| v == id) {
                MemberRole::Voter
            } else {
                MemberRole::Learner
            };
            let member = Member {
                id,
                address,
                role,
                lag: None,
            };
            return Ok((member, false));
        }
        self.raft()
            .add_learner(id, BasicNode::new(&address), false)
            .await
            .map_err(|e| Error::unavailable(format!("cannot add node {id}: {e}"), self.leader()))?;
        tracing::info!(target: "drover::audit", actor = "admin", action = "add_member", id, address = %address, "added learner; it becomes a voter once caught up");
        self.record_membership(drover_types::MembershipChange::Added {
            node: id,
            address: address.clone(),
        })
        .await;
        let member = Member {
            id,
            address,
            role: MemberRole::Learner,
            lag: None,
        };
        Ok((member, true))
    }

    /// Removes node `id`, refusing a change that would leave the cluster without a quorum of
    /// reachable, caught-up voters. A change that does not commit within
    /// [`MEMBERSHIP_TIMEOUT`] is an unknown outcome (it may still commit).
    pub async fn remove_member(&self, id: u64) -> Result<(), MembershipError> {
        let m = self.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        if membership.get_node(&id).is_none() {
            return Err(MembershipError::NotAMember(id));
        }
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let change = if voters.contains(&id) {
            let remaining: BTreeSet<u64> = voters.iter().copied().filter(|v| *v != id).collect();
            if remaining.is_empty() {
                return Err(MembershipError::QuorumLoss(
                    "cannot remove the last voter".to_owned(),
                ));
            }
            let reachable = self.reachable_voters(&m, &remaining).await;
            let majority = remaining.len() / 2 + 1;
            if reachable < majority {
                return Err(MembershipError::QuorumLoss(format!(
                    "removing node {id} would leave {} voters of which only {reachable} are \
                     reachable and caught up; a quorum needs {majority}",
                    remaining.len()
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        let change = tokio::time::timeout(
            MEMBERSHIP_TIMEOUT,
            self.raft().change_membership(change, false),
        );
        match change.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let msg = format!("cannot remove node {id}: {e}");
                return Err(Error::unavailable(msg, self.leader()).into());
            }
            Err(_) => {
                let msg = format!(
                    "removing node {id} did not commit within {MEMBERSHIP_TIMEOUT:?}; its outcome \
                     is unknown"
                );
                return Err(Error::outcome_unknown(msg, self.leader()).into());
            }
        }
        tracing::info!(target: "drover::audit", actor = "admin", action = "remove_member", id, "removed member");
        self.record_membership(drover_types::MembershipChange::Removed { node: id })
            .await;
        Ok(())
    }

    /// Records a committed membership change in the events log. The change itself is done:
    /// if the record cannot be committed (leadership lost meanwhile), that is logged, not
    /// failed.
    async fn record_membership(&self, change: drover_types::MembershipChange) {
        if let Err(e) = self
            .propose(drover_types::Command::RecordMembership(change.clone()))
            .await
        {
            tracing::warn!(?change, error = %e, "membership change committed but not recorded in the events log");
        }
    }
}
