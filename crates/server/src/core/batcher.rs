//! Group commit for KV writes and acknowledgements.
//!
//! openraft 0.9 appends each client write as a log entry of its own and waits for that append's
//! fsync on its core task before it takes the next one, so a leader commits at most one entry
//! per fsync: under many concurrent writers the fsync rate caps the write rate. The batcher puts
//! concurrent KV writes to distinct keys into one `Command::Group` entry — one append, one
//! fsync, one replication slot and one apply for the lot — and still answers each write on its
//! own (`drover_types::apply_proposal`). Agents' acknowledgements of their replica steps join
//! the same batches, each keyed by its replica (a fleet acknowledges a new table's placement
//! in thousands at once, and each is a write like any other).
//!
//! At most [`IN_FLIGHT`] proposals are outstanding; writes that arrive meanwhile queue and form
//! the next batch, so batches grow with the load while a lone writer pays only a channel hop
//! (a batch of one is proposed as the plain command). A write whose key is already in the batch
//! being formed waits for a later one: a key's version names exactly one write, so
//! compare-and-set stays exact.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use drover_types::{Command, Outcome};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::error::{Error, Result};

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
    /// Counts this write in the queue until it leaves it (batched, answered or dropped).
    _queued: Queued,
    command: Command,
    answer: oneshot::Sender<Result<Outcome>>,
    /// Past this, the write is answered `unavailable` instead of proposed: its request timeout
    /// covers the wait for a slot as well as the commit.
    deadline: Instant,
    queued: Instant,
}

/// One write's place in the queue's count.
#[derive(Debug)]
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `Some(w)` while someone waits for `w` and its deadline has not passed; a write whose caller
/// is gone is dropped, and one that waited too long is answered — in both cases unproposed.
fn still_wanted(w: Waiting) -> Option<Waiting> {
    if w.answer.is_closed() {
        return None;
    }
    if Instant::now() >= w.deadline {
        let _ = w.answer.send(Err(Error::unavailable(
            "the write waited for the request timeout without being proposed (is this leader \
             cut off from the others?); nothing was proposed",
            None,
        )));
        return None;
    }
    Some(w)
}

fn size(command: &Command) -> usize {
    match command {
        Command::KvPut { key, value, .. } => key.len() + value.len(),
        Command::KvDelete { key, .. } => key.len(),
        Command::Acknowledge { worker, .. } => worker.as_str().len() + 24,
        _ => 0,
    }
}

/// The sending side: what request handlers call.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Waiting>,
    request_timeout: Duration,
    /// Writes sent and not yet taken into a batch (or dropped), and the most there may be: a
    /// flood beyond what the leader commits is answered at once, unproposed, instead of
    /// queueing without bound.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

/// The receiving side, run by one task for the life of the node.
pub(crate) struct Queue {
    rx: mpsc::UnboundedReceiver<Waiting>,
    /// Writes held back from the last batch (their key was taken, or it was full), oldest first.
    held: VecDeque<Waiting>,
    /// Observes each write's wait from its arrival to its batch's proposal.
    waited: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// `request_timeout` bounds how long a write may wait to be proposed; at most
    /// `max_queued` wait at once.
    pub(crate) fn new(request_timeout: Duration, max_queued: usize) -> (Batcher, Queue) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Batcher {
                tx,
                request_timeout,
                queued: Arc::new(AtomicUsize::new(0)),
                max_queued,
            },
            Queue {
                rx,
                held: VecDeque::new(),
                waited: None,
            },
        )
    }

    /// Proposes a KV write or an acknowledgement (a command with a `batch_key`) in the next
    /// batch and returns its own answer.
    pub(crate) async fn propose(&self, command: Command) -> Result<Outcome> {
        let waiting = self.queued.fetch_add(1, Ordering::SeqCst);
        let place = Queued(self.queued.clone());
        if waiting >= self.max_queued {
            return Err(Error::Overloaded {
                message: format!(
                    "{waiting} writes are waiting to be proposed on this leader (at most {}, \
                     --max-queued-writes); nothing was proposed — retry shortly",
                    self.max_queued
                ),
            });
        }
        let (answer, rx) = oneshot::channel();
        let queued = Instant::now();
        let deadline = queued + self.request_timeout;
        self.tx
            .send(Waiting {
                _queued: place,
                command,
                answer,
                deadline,
                queued,
            })
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.unwrap_or_else(|_| {
            Err(Error::outcome_unknown(
                "the write was dropped while being proposed; its outcome is unknown",
                None,
            ))
        })
    }
}

impl Queue {
    /// Observes, in `h`, how long each write waits before its batch is proposed.
    pub(crate) fn observing_waits(
        mut self,
        h: prometheus_client::metrics::histogram::Histogram,
    ) -> Queue {
        self.waited = Some(h);
        self
    }

    /// Forms batches and proposes them with `propose`, which answers one result per command in
    /// order; ends when every `Batcher` is gone.
    pub(crate) async fn run<F, Fut>(mut self, propose: F)
    where
        F: Fn(Vec<Command>) -> Fut,
        Fut: Future<Output = Vec<Result<Outcome>>> + Send + 'static,
    {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Some(batch) = self.next_batch().await else {
                return;
            };
            if let Some(h) = &self.waited {
                let now = Instant::now();
                for w in &batch {
                    h.observe(now.saturating_duration_since(w.queued).as_secs_f64());
                }
            }
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
    /// first, then new ones. Writes nobody waits for any more, or that waited too long, are
    /// left out (`still_wanted`).
    async fn next_batch(&mut self) -> Option<Vec<Waiting>> {
        let first = loop {
            let w = match self.held.pop_front() {
                Some(w) => w,
                None => self.rx.recv().await?,
            };
            if let Some(w) = still_wanted(w) {
                break w;
            }
        };
        let mut bytes = size(&first.command);
        // Keys in the batch and keys held back: a later write to a held key waits behind it.
        let mut keys: HashSet<String> = HashSet::new();
        keys.extend(first.command.batch_key().map(|k| k.into_owned()));
        let mut batch = vec![first];
        let mut held = VecDeque::new();
        let mut full = false;
        let mut offer = |w: Waiting, full: &mut bool, held: &mut VecDeque<Waiting>| {
            let key = w.command.batch_key().unwrap_or_default().into_owned();
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
            if let Some(w) = still_wanted(w) {
                offer(w, &mut full, &mut held);
            }
        }
        while !full {
            let Ok(w) = self.rx.try_recv() else { break };
            if let Some(w) = still_wanted(w) {
                offer(w, &mut full, &mut held);
            }
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

    fn queue(commands: Vec<Command>) -> (Batcher, Queue, Vec<oneshot::Receiver<Result<Outcome>>>) {
        let (batcher, queue) = Batcher::new(Duration::from_secs(60), 10_000);
        let answers = commands
            .into_iter()
            .map(|command| send(&batcher, command, Instant::now() + batcher.request_timeout))
            .collect();
        (batcher, queue, answers)
    }

    fn send(
        batcher: &Batcher,
        command: Command,
        deadline: Instant,
    ) -> oneshot::Receiver<Result<Outcome>> {
        let (answer, rx) = oneshot::channel();
        batcher.queued.fetch_add(1, Ordering::SeqCst);
        let w = Waiting {
            _queued: Queued(batcher.queued.clone()),
            command,
            answer,
            deadline,
            queued: Instant::now(),
        };
        batcher.tx.send(w).unwrap();
        rx
    }

    fn keys(batch: &[Waiting]) -> Vec<String> {
        batch
            .iter()
            .filter_map(|w| w.command.batch_key().map(|k| k.into_owned()))
            .collect()
    }

    /// Past `max_queued` writes waiting, a write is answered `Overloaded` at once and never
    /// queued; once a batch is taken from the queue, writes are taken on again.
    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_takes_writes_again_once_drained() {
        let (batcher, mut q) = Batcher::new(Duration::from_secs(60), 2);
        let send = |key: &str| {
            let b = batcher.clone();
            let command = put(key, 1);
            tokio::spawn(async move { b.propose(command).await })
        };
        let (a, b) = (send("a"), send("b"));
        while batcher.queued.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let refused = send("c").await.unwrap();
        assert!(
            matches!(refused, Err(Error::Overloaded { .. })),
            "{refused:?}"
        );
        assert_eq!(
            batcher.queued.load(Ordering::SeqCst),
            2,
            "the refusal left no trace"
        );
        let batch = q.next_batch().await.unwrap();
        assert_eq!(keys(&batch), ["a", "b"]);
        drop(batch); // answers dropped: their writers hear "outcome unknown"
        assert!(a.await.unwrap().is_err() && b.await.unwrap().is_err());
        assert_eq!(batcher.queued.load(Ordering::SeqCst), 0);
        let _again = send("d");
        let batch = q.next_batch().await.unwrap();
        assert_eq!(keys(&batch), ["d"], "taken on again");
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
                .map(|c| Err(Error::unavailable(c.batch_key().unwrap_or_default(), None)))
                .collect()
        }));
        for (i, answer) in answers.into_iter().enumerate() {
            let e = answer.await.unwrap().unwrap_err();
            assert_eq!(e.to_string(), format!("k{}", i % 30));
        }
    }

    /// A write that waited past its request timeout is answered `unavailable` and never
    /// proposed; a write whose caller has gone is dropped unproposed.
    #[tokio::test]
    async fn late_or_abandoned_writes_are_not_proposed() {
        let (b, mut q, _) = queue(vec![]);
        let past = Instant::now() - Duration::from_millis(1);
        let late = send(&b, put("late", 1), past);
        drop(send(
            &b,
            put("gone", 1),
            Instant::now() + Duration::from_secs(60),
        ));
        let _waiting = send(&b, put("ok", 1), Instant::now() + Duration::from_secs(60));
        let batch = q.next_batch().await.unwrap();
        assert_eq!(keys(&batch), ["ok"]);
        let e = late.await.unwrap().unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e}");
    }
}
