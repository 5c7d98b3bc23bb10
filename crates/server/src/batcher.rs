//! Group commit for KV writes.
//!
//! openraft 0.9 appends each client write as a log entry of its own and waits for that append's
//! fsync on its core task before it takes the next one, so a leader commits at most one entry
//! per fsync: under many concurrent writers the fsync rate caps the write rate. The batcher puts
//! concurrent KV writes to distinct keys into one `Command::Batch` entry — one append, one
//! fsync, one replication slot and one apply for the lot — and still answers each write on its
//! own (`drover_types::apply_proposal`).
//!
//! At most [`IN_FLIGHT`] proposals are outstanding; writes that arrive meanwhile queue and form
//! the next batch, so batches grow with the load while a lone writer pays only a channel hop
//! (a batch of one is proposed as the plain command). A write whose key is already in the batch
//! being formed waits for a later one: a key's version names exactly one write, so
//! compare-and-set stays exact.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use drover_types::{Command, Outcome};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::api::{ApiError, ApiResult};

/// Proposals outstanding at once. Two keeps one batch forming behind the leader's append of
/// the previous one, so appends and replication overlap without splitting the load into many
/// small entries (docs/benchmarks.md).
const IN_FLIGHT: usize = 2;
/// Most writes in one entry.
const MAX_WRITES: usize = 512;
/// Most key and value bytes in one entry (a lone larger write still goes, alone), so that
/// openraft's replication batches (up to 300 entries) stay well under the RPC body limit.
const MAX_BYTES: usize = 64 << 10;

struct Waiting {
    command: Command,
    answer: oneshot::Sender<ApiResult<Outcome>>,
}

fn size(command: &Command) -> usize {
    match command {
        Command::KvPut { key, value, .. } => key.len() + value.len(),
        Command::KvDelete { key, .. } => key.len(),
        _ => 0,
    }
}

/// The sending side: what request handlers call.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Waiting>,
}

/// The receiving side, run by one task for the life of the node.
pub(crate) struct Queue {
    rx: mpsc::UnboundedReceiver<Waiting>,
    /// Writes held back from the last batch (their key was taken, or it was full), oldest first.
    held: VecDeque<Waiting>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Batcher {
    pub(crate) fn new() -> (Batcher, Queue) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Batcher { tx },
            Queue {
                rx,
                held: VecDeque::new(),
            },
        )
    }

    /// Proposes a KV write (a command with a `batch_key`) in the next batch and returns its
    /// own answer.
    pub(crate) async fn propose(&self, command: Command) -> ApiResult<Outcome> {
        let (answer, rx) = oneshot::channel();
        self.tx
            .send(Waiting { command, answer })
            .map_err(|_| ApiError::unavailable("this node is shutting down", None))?;
        rx.await.unwrap_or_else(|_| {
            Err(ApiError::outcome_unknown(
                "the write was dropped while being proposed; its outcome is unknown",
                None,
            ))
        })
    }
}

impl Queue {
    /// Forms batches and proposes them with `propose`, which answers one result per command in
    /// order; ends when every `Batcher` is gone.
    pub(crate) async fn run<F, Fut>(mut self, propose: F)
    where
        F: Fn(Vec<Command>) -> Fut,
        Fut: Future<Output = Vec<ApiResult<Outcome>>> + Send + 'static,
    {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Some(batch) = self.next_batch().await else {
                return;
            };
            let (commands, answers): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|w| (w.command, w.answer)).unzip();
            let proposed = propose(commands);
            tokio::spawn(async move {
                let results = proposed.await;
                drop(slot);
                // A missing result drops its sender: that write is answered "outcome unknown".
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(result);
                }
            });
        }
    }

    /// Waits for a first write, then takes every write already waiting that fits: held ones
    /// first, then new ones.
    async fn next_batch(&mut self) -> Option<Vec<Waiting>> {
        let first = match self.held.pop_front() {
            Some(w) => w,
            None => self.rx.recv().await?,
        };
        let mut bytes = size(&first.command);
        // Keys in the batch and keys held back: a later write to a held key must not overtake it.
        let mut keys: HashSet<String> = HashSet::new();
        keys.extend(first.command.batch_key().map(str::to_owned));
        let mut batch = vec![first];
        let mut held = VecDeque::new();
        let mut full = false;
        let mut offer = |w: Waiting, full: &mut bool, held: &mut VecDeque<Waiting>| {
            let key = w.command.batch_key().unwrap_or_default().to_owned();
            let more = size(&w.command);
            if *full || keys.contains(&key) {
                keys.insert(key);
                held.push_back(w);
            } else if batch.len() >= MAX_WRITES || bytes + more > MAX_BYTES {
                *full = true;
                keys.insert(key);
                held.push_back(w);
            } else {
                bytes += more;
                keys.insert(key);
                batch.push(w);
            }
        };
        while let Some(w) = self.held.pop_front() {
            offer(w, &mut full, &mut held);
        }
        while !full {
            let Ok(w) = self.rx.try_recv() else { break };
            offer(w, &mut full, &mut held);
        }
        self.held = held;
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value_len: usize) -> Command {
        Command::KvPut {
            key: key.into(),
            value: "v".repeat(value_len),
            expected_version: None,
        }
    }

    fn queue(
        commands: Vec<Command>,
    ) -> (Batcher, Queue, Vec<oneshot::Receiver<ApiResult<Outcome>>>) {
        let (batcher, queue) = Batcher::new();
        let answers = commands
            .into_iter()
            .map(|command| {
                let (answer, rx) = oneshot::channel();
                batcher.tx.send(Waiting { command, answer }).unwrap();
                rx
            })
            .collect();
        (batcher, queue, answers)
    }

    fn keys(batch: &[Waiting]) -> Vec<&str> {
        batch.iter().filter_map(|w| w.command.batch_key()).collect()
    }

    /// Waiting writes to distinct keys form one batch; a second write to a key waits for a later
    /// batch, and writes to a held key stay in their order.
    #[tokio::test]
    async fn a_key_appears_once_per_batch_in_arrival_order() {
        let delete_a = Command::KvDelete {
            key: "a".into(),
            expected_version: None,
        };
        let (_b, mut q, _answers) = queue(vec![
            put("a", 1),
            put("b", 1),
            put("a", 2),
            put("c", 1),
            delete_a,
        ]);
        let first = q.next_batch().await.unwrap();
        assert_eq!(keys(&first), ["a", "b", "c"]);
        let second = q.next_batch().await.unwrap();
        assert!(matches!(second[0].command, Command::KvPut { ref value, .. } if value.len() == 2));
        assert_eq!(second.len(), 1);
        let third = q.next_batch().await.unwrap();
        assert!(matches!(
            third[..],
            [Waiting {
                command: Command::KvDelete { .. },
                ..
            }]
        ));
    }

    /// A batch stops at the byte limit; a lone write larger than the limit still goes, alone.
    #[tokio::test]
    async fn batches_stay_under_the_byte_limit() {
        let third = MAX_BYTES / 3;
        let (_b, mut q, _answers) = queue(vec![
            put("big", MAX_BYTES * 2),
            put("a", third),
            put("b", third),
            put("c", third),
            put("d", 1),
        ]);
        assert_eq!(keys(&q.next_batch().await.unwrap()), ["big"]);
        assert_eq!(keys(&q.next_batch().await.unwrap()), ["a", "b"]);
        assert_eq!(keys(&q.next_batch().await.unwrap()), ["c", "d"]);
    }

    /// Each write gets the answer for its own position in its batch.
    #[tokio::test]
    async fn every_write_gets_its_own_answer() {
        let commands: Vec<Command> = (0..40).map(|i| put(&format!("k{}", i % 30), 1)).collect();
        let (_b, q, answers) = queue(commands);
        tokio::spawn(q.run(|commands: Vec<Command>| async move {
            commands
                .iter()
                .map(|c| Err(ApiError::bad_request(c.batch_key().unwrap_or_default())))
                .collect()
        }));
        for (i, answer) in answers.into_iter().enumerate() {
            let e = answer.await.unwrap().unwrap_err();
            assert_eq!(e.message, format!("k{}", i % 30));
        }
    }
}
