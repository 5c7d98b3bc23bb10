//! Linearizable reads: a read served after [`Node::linearizable`] sees every write
//! acknowledged before it arrived. Confirmations are shared between concurrent readers
//! (`read_index.rs`).

use openraft::error::{CheckIsLeaderError, RaftError};

use super::error::{Error, Result};
use super::node::Node;

impl Node {
    /// Waits until a read here is linearizable: a leadership confirmation that started after
    /// this call has finished and its read index is applied (shared with concurrent readers).
    pub async fn linearizable(&self) -> Result<()> {
        self.read_index().wait().await
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
