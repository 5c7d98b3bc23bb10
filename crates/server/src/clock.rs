//! Wall-clock time as the node reads it: what the proposer stamps into commands (SPEC §3:
//! `apply` never reads a clock; the proposer does) and what the scheduling loop compares
//! `until`s and deadlines with. One handle, held by the node's configuration, so the tests of
//! time-driven logic can run it on tokio's paused clock.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Where a node reads the time of day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system's wall clock: every real node.
    #[default]
    System,
    /// `origin_ms` at `origin`, then moving with tokio's clock: under paused time a test's
    /// `tokio::time::advance` moves it, together with every `Instant` the core reads.
    Tokio { origin_ms: u64, origin: Instant },
}

impl Clock {
    /// A clock that reads `origin_ms` now and follows tokio's clock from here.
    pub fn tokio_from(origin_ms: u64) -> Clock {
        Clock::Tokio {
            origin_ms,
            origin: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch (0 before it, saturating far after).
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Clock::Tokio { origin_ms, origin } => {
                let elapsed = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
                origin_ms.saturating_add(elapsed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_with_paused_time_only() {
        let c = Clock::tokio_from(1_000);
        assert_eq!(c.now_ms(), 1_000);
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(c.now_ms(), 3_500);
        assert!(
            Clock::System.now_ms() > 1_700_000_000_000,
            "the system's time of day"
        );
    }
}
