//! Proposing a command: the entry of every write. KV writes join the group commit
//! (`batcher.rs`); every other command, and a batch the batcher formed, is proposed as one
//! log entry by `commit.rs`.

use drover_types::{Command, Outcome, Proposal};

use super::error::{Error, Result};
use super::node::Node;

impl Node {
    /// Proposes a command through Raft and returns `apply`'s answer. KV writes go through the
    /// batcher, which may share their log entry with other keys' writes.
    pub async fn propose(&self, command: Command) -> Result<Outcome> {
        if self.config().unsafe_test.early_ack {
            let proposal = Proposal {
                at_ms: self.now_ms(),
                command,
            };
            return self.propose_early_ack(proposal).await;
        }
        if command.batch_key().is_some() {
            return self.batcher().propose(command).await;
        }
        let mut answers = self.propose_batch(vec![command]).await;
        answers.pop().unwrap_or_else(|| {
            Err(Error::outcome_unknown(
                "a write was proposed without answer",
                None,
            ))
        })
    }

    /// The `--unsafe-test-early-ack` bug: hands the proposal to Raft, waits only until the
    /// leader's own log has grown, and answers what `apply` would answer on the current applied
    /// state — before any follower has the entry. Never used outside the harness's tests.
    async fn propose_early_ack(&self, proposal: Proposal) -> Result<Outcome> {
        let (before, term) = {
            let m = self.raft().metrics();
            let m = m.borrow();
            (m.last_log_index.unwrap_or(0), m.current_term)
        };
        let predicted = {
            let guard = self.state().read();
            let mut scratch = guard.state.clone();
            let index = before.max(scratch.version) + 1;
            drover_types::apply(
                &mut scratch,
                drover_types::LogPosition::new(term, index),
                &proposal,
            )
        };
        let rx = self
            .raft()
            .client_write_ff(proposal)
            .await
            .map_err(|e| Error::unavailable(format!("raft stopped: {e}"), None))?;
        tokio::spawn(async move {
            let _ = rx.await;
        });
        let mut metrics = self.raft().metrics();
        let appended = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            metrics.wait_for(|m| m.last_log_index.unwrap_or(0) > before),
        )
        .await;
        if !matches!(appended, Ok(Ok(_))) {
            return Err(Error::outcome_unknown(
                "early ack: the entry did not reach the local log",
                self.leader(),
            ));
        }
        predicted.map_err(Into::into)
    }
}
