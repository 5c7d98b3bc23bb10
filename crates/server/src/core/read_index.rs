//! Linearizable reads, coalesced. openraft 0.9's `ensure_linearizable` runs a heartbeat round
//! to a quorum per call; under many concurrent reads that round, not the read, is the cost.
//! As etcd's read loop does, concurrent readers share rounds: each reader takes a ticket, and
//! is answered by the first confirmation that *started after* it took its ticket (a round
//! covers every ticket handed out before it began). Such a round's read index is at least the
//! commit index when the reader arrived, and `ensure_linearizable` waits until that is applied,
//! so the reader sees every write acknowledged before it arrived: linearizable, as a round of
//! its own would be, with one quorum round per batch instead of per read.
//!
//! Rounds run back to back while readers wait, or — for agents' heartbeats, which come by the
//! thousand a second and can wait a few milliseconds — at most one per `gap`: a fleet's
//! heartbeats then cost a bounded number of rounds (two RPCs each) whatever its size, instead
//! of one round per heartbeat or two (docs/benchmarks.md, "Fleet scale").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::error::Error;

/// The last finished round: the highest ticket it covers and its outcome.
#[derive(Clone, Debug)]
struct Round {
    covers: u64,
    outcome: Result<(), Error>,
}

#[derive(Debug)]
pub(crate) struct ReadIndex {
    tickets: AtomicU64,
    wake: Notify,
    done: watch::Sender<Round>,
    /// Least time between the starts of two rounds.
    gap: Duration,
}

impl ReadIndex {
    /// Rounds back to back while readers wait.
    pub(crate) fn new() -> Arc<ReadIndex> {
        Self::paced(Duration::ZERO)
    }

    /// Rounds at most one per `gap`: a reader waits up to `gap` longer, and readers arriving at
    /// any rate cost at most one round per `gap`.
    pub(crate) fn paced(gap: Duration) -> Arc<ReadIndex> {
        Arc::new(ReadIndex {
            gap,
            tickets: AtomicU64::new(0),
            wake: Notify::new(),
            done: watch::Sender::new(Round {
                covers: 0,
                outcome: Ok(()),
            }),
        })
    }

    /// Runs rounds while readers wait, for the life of the node: `confirm` is one leadership
    /// confirmation (and wait for apply).
    pub(crate) async fn run<F, Fut>(self: Arc<Self>, confirm: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), Error>>,
    {
        let mut covered = 0;
        loop {
            self.wake.notified().await;
            // Let readers already woken take their tickets first: a round answered from the
            // leader's lease takes microseconds, and without this each would cover one reader
            // or two under load, costing the core a message per read.
            tokio::task::yield_now().await;
            // Every ticket taken so far is covered by a round starting now.
            let covers = self.tickets.load(Ordering::SeqCst);
            if covers <= covered {
                continue;
            }
            let started = tokio::time::Instant::now();
            let outcome = confirm().await;
            covered = covers;
            self.done.send_replace(Round { covers, outcome });
            if !self.gap.is_zero() {
                tokio::time::sleep_until(started + self.gap).await;
            }
        }
    }

    /// Waits for a confirmation that started after this call.
    pub(crate) async fn wait(&self) -> Result<(), Error> {
        let mut rx = self.done.subscribe();
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        loop {
            {
                let round = rx.borrow_and_update();
                if round.covers >= ticket {
                    return round.outcome.clone();
                }
            }
            if rx.changed().await.is_err() {
                return Err(Error::ShuttingDown);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Many concurrent readers share few rounds, and none is answered by a round that began
    /// before it arrived.
    #[tokio::test]
    async fn readers_share_rounds_that_start_after_them() {
        let ri = ReadIndex::new();
        let rounds = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicU64::new(0));
        let (r2, s2) = (rounds.clone(), started.clone());
        let runner = ri.clone();
        tokio::spawn(runner.run(move || {
            let (r, s) = (r2.clone(), s2.clone());
            async move {
                // Stamp the round's start; readers check it began after they did.
                s.store(
                    r.fetch_add(1, Ordering::SeqCst) as u64 + 1,
                    Ordering::SeqCst,
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(())
            }
        }));
        let mut readers = Vec::new();
        for _ in 0..200 {
            let (ri, started) = (ri.clone(), started.clone());
            readers.push(tokio::spawn(async move {
                let before = started.load(Ordering::SeqCst);
                ri.wait().await.unwrap();
                // A round that started after this reader took its ticket has a higher number
                // than any round running when it arrived.
                assert!(started.load(Ordering::SeqCst) > before);
            }));
        }
        for r in readers {
            r.await.unwrap();
        }
        let n = rounds.load(Ordering::SeqCst);
        assert!((1..200).contains(&n), "{n} rounds for 200 readers");
    }

    /// Readers arriving all the time share rounds at most one per gap, each still answered by
    /// a round that started after it arrived.
    #[tokio::test(start_paused = true)]
    async fn paced_rounds_come_at_most_one_per_gap() {
        let gap = Duration::from_millis(10);
        let ri = ReadIndex::paced(gap);
        let rounds = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicU64::new(0));
        let (r2, s2) = (rounds.clone(), started.clone());
        tokio::spawn(ri.clone().run(move || {
            let (r, s) = (r2.clone(), s2.clone());
            async move {
                s.store(
                    r.fetch_add(1, Ordering::SeqCst) as u64 + 1,
                    Ordering::SeqCst,
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(())
            }
        }));
        // A reader every millisecond (tokio's timer resolution) for 100 ms.
        let mut readers = Vec::new();
        for _ in 0..100 {
            let (ri, started) = (ri.clone(), started.clone());
            readers.push(tokio::spawn(async move {
                let before = started.load(Ordering::SeqCst);
                ri.wait().await.unwrap();
                assert!(started.load(Ordering::SeqCst) > before);
            }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for r in readers {
            r.await.unwrap();
        }
        let n = rounds.load(Ordering::SeqCst);
        assert!(
            (9..=12).contains(&n),
            "{n} rounds in 100 ms at one per 10 ms"
        );
    }

    #[tokio::test]
    async fn a_failed_round_fails_its_readers() {
        let ri = ReadIndex::new();
        tokio::spawn(
            ri.clone()
                .run(|| async { Err(Error::unavailable("not the leader", None)) }),
        );
        let e = ri.wait().await.unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }));
    }
}
