//! The backup file `droverctl snapshot save` writes, and the state a restore starts from.
//!
//! The file holds the snapshot the API serves (a [`codec`](crate::codec) format byte, then
//! bincode of the state) and the id of the cluster it came from, framed so that a damaged or
//! truncated copy is told from a good one before anything trusts it — bincode alone may decode
//! a flipped bit into a different, valid-looking state.
//!
//! ```text
//! b"DROVERBK" | crc32 of the rest (4 bytes, little-endian)
//!             | the cluster id's length (1 byte) | the cluster id | the snapshot
//! ```
//!
//! Pure: bytes in, bytes out.

use crate::{ClusterState, EventKind};

/// What every backup file starts with.
pub const MAGIC: &[u8; 8] = b"DROVERBK";

/// Why bytes are not a backup.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a Drover backup (it does not start with {MAGIC:?})")]
    NotABackup,
    #[error("truncated: {0} bytes, shorter than a backup's header")]
    Truncated(usize),
    #[error("damaged: its checksum is {found:#010x}, its contents' {computed:#010x}")]
    Checksum { found: u32, computed: u32 },
    #[error("damaged: its cluster id is not UTF-8")]
    ClusterId,
}

/// A backup file's contents, once its checksum matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backup<'a> {
    /// The `--cluster-id` of the cluster the snapshot was taken from.
    pub cluster_id: &'a str,
    /// The snapshot: a format byte, then the encoded state.
    pub snapshot: &'a [u8],
}

/// Frames `snapshot`, taken from the cluster `cluster_id` (at most 255 bytes; the server
/// allows 64), as a backup file.
pub fn frame(cluster_id: &str, snapshot: &[u8]) -> Vec<u8> {
    let id = cluster_id.as_bytes();
    let id = id.get(..usize::from(u8::MAX)).unwrap_or(id);
    let mut rest = Vec::with_capacity(1 + id.len() + snapshot.len());
    rest.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    rest.extend_from_slice(id);
    rest.extend_from_slice(snapshot);
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + rest.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&rest).to_le_bytes());
    out.extend_from_slice(&rest);
    out
}

/// What a backup file holds, once its checksum matches.
pub fn unframe(file: &[u8]) -> Result<Backup<'_>, Error> {
    let Some(after_magic) = file.strip_prefix(MAGIC.as_slice()) else {
        return Err(if MAGIC.starts_with(file) {
            Error::Truncated(file.len())
        } else {
            Error::NotABackup
        });
    };
    let (sum, rest) = after_magic
        .split_first_chunk::<4>()
        .ok_or(Error::Truncated(file.len()))?;
    let found = u32::from_le_bytes(*sum);
    let computed = crc32fast::hash(rest);
    if found != computed {
        return Err(Error::Checksum { found, computed });
    }
    // The checksum covers the rest, so past it a short length is a writer's bug, not damage.
    let (&len, rest) = rest.split_first().ok_or(Error::Truncated(file.len()))?;
    let (id, snapshot) = rest
        .split_at_checked(usize::from(len))
        .ok_or(Error::Truncated(file.len()))?;
    let cluster_id = std::str::from_utf8(id).map_err(|_| Error::ClusterId)?;
    Ok(Backup {
        cluster_id,
        snapshot,
    })
}

/// The state a cluster restored from `backup` starts with, at `now_ms`: everything the backup
/// held — workers and their states, replicas, versions, tombstones, drains, KV, events, brakes
/// and settings — as one more change at the next state version, in which every live worker's
/// generation is bumped (with a `registered` event, as a registration bumps it). Agents of the
/// old cluster still carry the older generation, so their heartbeats and calls are fenced
/// (`stale_generation`) until they register again and wait out the lease like any new
/// process, instead of being taken for the processes the backup knew. A dead worker is fenced
/// already, and keeps its verdict.
///
/// Returns the state and its version, which is also the log index the restored cluster's log
/// starts after, so that state versions keep growing across the restore.
pub fn restored(mut backup: ClusterState, now_ms: u64) -> (ClusterState, u64) {
    let version = backup.version.saturating_add(1);
    let retain = usize::try_from(backup.settings.events_retained).unwrap_or(usize::MAX);
    for w in backup.workers.values_mut().filter(|w| !w.dead) {
        w.generation = w.generation.saturating_add(1);
        w.version = version;
        w.assignments_version = version;
        let kind = EventKind::Registered {
            worker: w.id.clone(),
            generation: w.generation,
            state: w.state,
        };
        backup.events.push(version, now_ms, kind, retain);
    }
    backup.version = version;
    (backup, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_any_damage_is_told() {
        let snapshot = b"\x04some state".to_vec();
        let file = frame("prod-eu", &snapshot);
        assert_eq!(
            unframe(&file),
            Ok(Backup {
                cluster_id: "prod-eu",
                snapshot: &snapshot[..]
            })
        );
        for cut in [0, 5, 8, 11] {
            assert_eq!(
                unframe(&file[..cut]),
                Err(Error::Truncated(cut)),
                "cut at {cut}"
            );
        }
        // Cut inside the snapshot, or any bit flipped after the magic: the checksum says so.
        assert!(matches!(
            unframe(&file[..file.len() - 1]),
            Err(Error::Checksum { .. })
        ));
        for i in 8..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            assert!(
                matches!(unframe(&bad), Err(Error::Checksum { .. })),
                "flip at {i}"
            );
        }
        assert_eq!(unframe(b"hello, world"), Err(Error::NotABackup));
        assert_eq!(unframe(&snapshot), Err(Error::NotABackup));
    }

    #[test]
    fn a_restored_state_fences_every_old_generation_and_keeps_the_rest() {
        let mut h = crate::testing::Harness::new();
        for (i, zone) in ["a", "b", "c"].iter().enumerate() {
            h.add_worker(&format!("w{i}"), Some(zone), 2);
        }
        h.register("w3", 7, "a");
        h.ok(crate::Command::CreateTable {
            count: 4,
            replication_factor: 3,
        });
        h.ok(crate::Command::MarkDead {
            worker: "w0".into(),
            generation: 1,
            term: 1,
        });
        let before = h.state.clone();
        let (after, version) = restored(before.clone(), 1_800_000_000_000);
        assert_eq!(version, before.version + 1);
        assert_eq!(after.version, version);
        assert_eq!(after.workers.len(), before.workers.len());
        let dead = crate::WorkerId::from("w0");
        assert_eq!(after.workers[&dead], before.workers[&dead]);
        let events: Vec<_> = after
            .events
            .after(before.events.next_seq - 1)
            .unwrap()
            .collect();
        assert_eq!(events.len(), 3, "one registration for each live worker");
        for (id, w) in after.workers.iter().filter(|(id, _)| **id != dead) {
            let old = &before.workers[id];
            assert_eq!(w.generation, old.generation + 1, "{id}");
            assert_eq!(w.version, version);
            assert!(events.iter().any(|e| e.version == version
                && e.kind
                    == EventKind::Registered {
                        worker: id.clone(),
                        generation: w.generation,
                        state: w.state
                    }));
            // Only the generation and the record's versions change.
            let mut same = w.clone();
            same.generation = old.generation;
            same.version = old.version;
            same.assignments_version = old.assignments_version;
            assert_eq!(&same, old);
        }
        let mut rest = after.clone();
        rest.workers = before.workers.clone();
        rest.version = before.version;
        rest.events = before.events.clone();
        assert_eq!(rest, before);
    }
}
