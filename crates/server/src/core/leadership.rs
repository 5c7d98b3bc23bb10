//! What a change of leadership starts: the leader's soft state rebuilt for each term, and on
//! a new cluster's first leader, the cluster's initial liveness settings.

use std::time::Duration;

use drover_types::RejectCode;
use tokio::time::Instant;

use super::error::Error;
use super::node::Node;

/// Rebuilds the leader's soft state on every change of leadership — by term, not by role: a
/// node that lost leadership and won it back between two looks at its metrics (the watch
/// keeps only the latest) leads in a new term, and the old term's view must not carry over.
pub(super) async fn track_leadership(node: Node) {
    let mut metrics = node.raft().metrics();
    let mut leading_in: Option<u64> = None;
    let mut leader: Option<u64> = None;
    loop {
        let (now_leading_in, now_leader) = {
            let m = metrics.borrow();
            (
                (m.state == openraft::ServerState::Leader).then_some(m.current_term),
                m.current_leader,
            )
        };
        if now_leader.is_some() && now_leader != leader {
            node.metrics().raft_leader_changes.inc();
        }
        if now_leader.is_some() {
            leader = now_leader;
        }
        if now_leading_in != leading_in {
            leading_in = now_leading_in;
            if let Some(term) = leading_in {
                node.heartbeats().became_leader(term, Instant::now());
                tracing::info!(
                    term,
                    "became leader: liveness starts afresh, no worker declared dead until the \
                     death threshold has passed"
                );
                tokio::spawn(initial_settings(node.clone()));
            } else {
                node.heartbeats().lost_leadership();
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// On the first leader of a new cluster, commits this node's configured liveness settings as
/// the cluster's initial settings (compare-and-set on settings version 0, so it happens once
/// and never overwrites an operator's change). Heartbeats are not acknowledged before: no lease
/// is ever granted under settings the cluster did not commit.
async fn initial_settings(node: Node) {
    let l = node.config().liveness;
    let ms = |d: Duration| Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let patch = drover_types::SettingsPatch {
        heartbeat_interval_ms: ms(l.heartbeat_interval),
        suspect_after_ms: ms(l.suspect_after),
        dead_after_ms: ms(l.dead_after),
        max_deaths_fraction: Some(l.max_deaths_fraction),
        ..Default::default()
    };
    loop {
        if node.heartbeats().leader_since().is_none()
            || node.state().read().state.settings.version != 0
        {
            return;
        }
        let command = drover_types::Command::UpdateSettings {
            patch: patch.clone(),
            expected_version: Some(0),
        };
        match node.propose(command).await {
            Ok(_) => {
                tracing::info!(?patch, "committed the cluster's initial settings");
                return;
            }
            Err(Error::Rejected(r)) if r.code == RejectCode::VersionConflict => return,
            Err(e) => {
                tracing::warn!(error = %e, "initial settings not committed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
