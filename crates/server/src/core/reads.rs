//! Linearizable reads: a read served after [`Node::linearizable`] sees every write
//! acknowledged before it arrived. Confirmations are shared between concurrent readers
//! (`read_index.rs`).

use openraft::error::{CheckIsLeaderError, RaftError};

use super::error::{Error, Result};

/// Least time between two leadership confirmations for heartbeats: a heartbeat is answered up
/// to this much later, and 10,000 workers' heartbeats a second cost 100 rounds, not thousands.
pub(super) const HEARTBEAT_CONFIRM_GAP: std::time::Duration = std::time::Duration::from_millis(10);
use super::node::Node;

impl Node {
    /// Waits until a read here is linearizable: a leadership confirmation that started after
    /// this call has finished and its read index is applied (shared with concurrent readers).
    pub async fn linearizable(&self) -> Result<()> {
        self.read_index().wait().await
    }

    /// [`linearizable`](Self::linearizable) for agents' heartbeats: the same confirmation,
    /// from rounds paced at one per [`HEARTBEAT_CONFIRM_GAP`].
    pub(super) async fn confirmed_for_heartbeat(&self) -> Result<()> {
        self.heartbeat_confirmations().wait().await
    }

    /// One leadership confirmation: a heartbeat round to a quorum, then wait until the commit
    /// index it read is applied.
    pub(super) async fn confirm_leadership(&self) -> Result<()> {
        match self.raft().ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(Error::NotLeader {
                    leader: self.hint(f.leader_id),
                })
            }
            Err(e) => Err(Error::unavailable(
                format!("cannot confirm leadership: {e}"),
                self.leader(),
            )),
        }
    }
}
