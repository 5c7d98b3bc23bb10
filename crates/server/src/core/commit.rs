//! One log entry through Raft: a lone command as itself, several as a `Command::Group`, and
//! one answer per command once the entry is committed and applied. The fsync that makes it
//! durable on this node is the log store's (`drover-store`'s WAL sync thread), before openraft
//! counts the entry as appended here.

use drover_store::Reply;
use drover_types::{Command, Outcome, Proposal};
use openraft::error::{ClientWriteError, RaftError};

use super::error::{Error, Result};
use super::node::Node;

impl Node {
    /// Proposes commands as one log entry (a lone command as itself, several as a
    /// `Command::Group`) and answers one result per command, in order.
    pub(crate) async fn propose_batch(&self, mut commands: Vec<Command>) -> Vec<Result<Outcome>> {
        let count = commands.len();
        let command = match commands.len() {
            1 => commands.pop().unwrap_or(Command::Group(Vec::new())),
            _ => Command::Group(commands),
        };
        let proposal = Proposal {
            at_ms: self.now_ms(),
            command,
        };
        let answer = |reply: Reply| match reply {
            Reply::Applied(outcome) => Ok(*outcome),
            Reply::Rejected(rejection) => Err(Error::Rejected(rejection)),
            // Committed, but answered as something else: a bug, and the write may have applied.
            Reply::Internal | Reply::Batch(_) => Err(Error::outcome_unknown(
                "a committed command was answered as a raft entry or a batch",
                None,
            )),
        };
        let failed = |e: Error| vec![Err(e); count];
        let deadline = self.config().raft.request_timeout();
        let started = std::time::Instant::now();
        let written = tokio::time::timeout(deadline, self.raft().client_write(proposal)).await;
        self.metrics()
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        let Ok(written) = written else {
            return failed(Error::outcome_unknown(
                format!(
                    "the write was proposed but not committed within {deadline:?} (is this \
                     leader cut off from the others?); its outcome is unknown"
                ),
                self.leader(),
            ));
        };
        match written {
            Ok(resp) => match resp.data {
                Reply::Batch(replies) if replies.len() == count && count > 1 => {
                    replies.into_iter().map(answer).collect()
                }
                Reply::Batch(_) => failed(Error::outcome_unknown(
                    "a committed batch was answered with the wrong number of results",
                    None,
                )),
                reply if count == 1 => vec![answer(reply)],
                _ => failed(Error::outcome_unknown(
                    "a committed batch was answered as a single command",
                    None,
                )),
            },
            // openraft answers this both when the write reached a node no longer leading and
            // when its entry was appended and then truncated by a new leader — which, in a
            // cluster of five or more voters, another node holding it may still commit. So it
            // is not "nothing was proposed" (the HTTP layer answered `unavailable` for a node
            // that knew it did not lead).
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                failed(Error::outcome_unknown(
                    "leadership changed while the write was being proposed; it may or may not \
                     have been applied",
                    self.hint(f.leader_id),
                ))
            }
            Err(e) => failed(Error::outcome_unknown(
                format!("the write may or may not have been applied: {e}"),
                self.leader(),
            )),
        }
    }
}
