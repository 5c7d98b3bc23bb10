//! The backup file `droverctl snapshot save` writes, and the state a restore starts from.
//!
//! The file holds the snapshot the API serves (a [`codec`](crate::codec) format byte, then
//! bincode of the state), the id of the cluster it came from and when it was saved, framed so
//! that a damaged or truncated copy is told from a good one before anything trusts it —
//! bincode alone may decode a flipped bit into a different, valid-looking state.
//!
//! ```text
//! b"DROVERBK" | crc32 of the rest (4 bytes, little-endian)
//!             | the frame's format (1 byte, FRAME_FORMAT) | saved at, ms since the epoch (8, LE)
//!             | the cluster id's length (1 byte) | the cluster id | the snapshot
//! ```
//!
//! Pure: bytes in, bytes out.

use crate::{ClusterState, EventKind};

/// What every backup file starts with.
pub const MAGIC: &[u8; 8] = b"DROVERBK";

/// The frame's format, the first byte the checksum covers. Above 64 so that it is told from
/// the frames before it had one (a cluster id's length, or a codec format byte, stood there).
pub const FRAME_FORMAT: u8 = 0x81;

/// How far a restore moves every fencing token past the backup's: generations, partition
/// epochs and the state version (so KV versions and long-poll positions). The old cluster may
/// have gone on after the backup was saved — restarted workers, moved replicas, written keys —
/// and none of the tokens it handed out since may be handed out again by the restored one for
/// something else. 2^32 is more than a cluster issues in its life; as etcd's `--bump-revision`.
pub const RESTORE_GAP: u64 = 1 << 32;

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
    #[error(
        "a backup of frame format {0:#04x}, which this release does not read (it reads \
         {FRAME_FORMAT:#04x}): save it again with this release's droverctl"
    )]
    Format(u8),
}

/// A backup file's contents, once its checksum matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backup<'a> {
    /// The `--cluster-id` of the cluster the snapshot was taken from.
    pub cluster_id: &'a str,
    /// When it was saved (the saving droverctl's clock), ms since the Unix epoch.
    pub saved_at_ms: u64,
    /// The snapshot: a format byte, then the encoded state.
    pub snapshot: &'a [u8],
}

/// Frames `snapshot`, taken from the cluster `cluster_id` (at most 255 bytes; the server
/// allows 64) and saved at `saved_at_ms`, as a backup file.
pub fn frame(cluster_id: &str, saved_at_ms: u64, snapshot: &[u8]) -> Vec<u8> {
    let id = cluster_id.as_bytes();
    let id = id.get(..usize::from(u8::MAX)).unwrap_or(id);
    let mut rest = Vec::with_capacity(10 + id.len() + snapshot.len());
    rest.push(FRAME_FORMAT);
    rest.extend_from_slice(&saved_at_ms.to_le_bytes());
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
    let (&format, rest) = rest.split_first().ok_or(Error::Truncated(file.len()))?;
    if format != FRAME_FORMAT {
        return Err(Error::Format(format));
    }
    let (saved_at, rest) = rest
        .split_first_chunk::<8>()
        .ok_or(Error::Truncated(file.len()))?;
    let saved_at_ms = u64::from_le_bytes(*saved_at);
    let (&len, rest) = rest.split_first().ok_or(Error::Truncated(file.len()))?;
    let (id, snapshot) = rest
        .split_at_checked(usize::from(len))
        .ok_or(Error::Truncated(file.len()))?;
    let cluster_id = std::str::from_utf8(id).map_err(|_| Error::ClusterId)?;
    Ok(Backup {
        cluster_id,
        saved_at_ms,
        snapshot,
    })
}

/// The state a cluster restored from `backup`, saved at `saved_at_ms`, starts with:
/// everything the backup held — workers and their states, replicas, tombstones, drains, KV,
/// events, brakes and settings — with every fencing token moved [`RESTORE_GAP`] past the
/// backup's, as one more change:
///
/// - every live worker's generation, with a `registered` event as a registration bumps it,
///   and its incarnation set to 0, which no agent picks: the old cluster's agents — even one
///   that restarted since the backup, or retries the registration it made before — are fenced
///   (`stale_generation`) until they register again as new processes and wait out the lease,
///   instead of being taken for the processes the backup knew. A dead worker is fenced
///   already, and keeps its verdict;
/// - every partition's epoch, so a worker never sees an epoch it saw from the old cluster for
///   another replica set;
/// - the state version, so KV versions, compare-and-set and long-poll positions never repeat.
///
/// The events are stamped `saved_at_ms`, the same on every node (the state is replicated:
/// §0). Returns the state and its version, the log index the restored cluster's log starts
/// after.
pub fn restored(mut backup: ClusterState, saved_at_ms: u64) -> (ClusterState, u64) {
    let version = backup.version.saturating_add(RESTORE_GAP);
    let retain = usize::try_from(backup.settings.events_retained).unwrap_or(usize::MAX);
    for w in backup.workers.values_mut().filter(|w| !w.dead) {
        w.generation = w.generation.saturating_add(RESTORE_GAP);
        w.incarnation = 0;
        w.version = version;
        w.assignments_version = version;
        let kind = EventKind::Registered {
            worker: w.id.clone(),
            generation: w.generation,
            state: w.state,
        };
        backup.events.push(version, saved_at_ms, kind, retain);
    }
    for p in &mut backup.partitions {
        p.epoch = p.epoch.saturating_add(RESTORE_GAP);
        p.version = version;
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
        let file = frame("prod-eu", 1_800_000_000_123, &snapshot);
        assert_eq!(
            unframe(&file),
            Ok(Backup {
                cluster_id: "prod-eu",
                saved_at_ms: 1_800_000_000_123,
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

    /// A frame of another format — the ones before the format byte, whose first checked byte
    /// was a cluster id's length or the codec's format — is refused as such, not misread.
    #[test]
    fn a_frame_of_another_format_is_refused_by_name() {
        let reframe = |rest: &[u8]| {
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&crc32fast::hash(rest).to_le_bytes());
            out.extend_from_slice(rest);
            out
        };
        let older = reframe(b"\x07prod-eu\x04some state");
        assert_eq!(unframe(&older), Err(Error::Format(7)));
        let oldest = reframe(b"\x04some state");
        assert_eq!(unframe(&oldest), Err(Error::Format(4)));
        let message = Error::Format(7).to_string();
        assert!(message.contains("frame format 0x07"), "{message}");
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
        let saved_at = 1_800_000_000_000;
        let (after, version) = restored(before.clone(), saved_at);
        assert_eq!(version, before.version + RESTORE_GAP);
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
            assert_eq!(w.generation, old.generation + RESTORE_GAP, "{id}");
            assert_eq!(w.incarnation, 0, "{id}");
            assert_eq!(w.version, version);
            assert!(events.iter().any(|e| e.version == version
                && e.at_ms == saved_at
                && e.kind
                    == EventKind::Registered {
                        worker: id.clone(),
                        generation: w.generation,
                        state: w.state
                    }));
            // Only the generation, the incarnation and the record's versions change.
            let mut same = w.clone();
            same.generation = old.generation;
            same.incarnation = old.incarnation;
            same.version = old.version;
            same.assignments_version = old.assignments_version;
            assert_eq!(&same, old);
        }
        for (p, old) in after.partitions.iter().zip(&before.partitions) {
            assert_eq!(p.epoch, old.epoch + RESTORE_GAP, "partition {}", p.id);
            assert_eq!(p.version, version);
        }
        let mut rest = after.clone();
        rest.workers = before.workers.clone();
        rest.version = before.version;
        rest.events = before.events.clone();
        for (p, old) in rest.partitions.iter_mut().zip(&before.partitions) {
            p.epoch = old.epoch;
            p.version = old.version;
        }
        assert_eq!(rest, before);
    }

    /// An agent of the old cluster that retries the registration it made there — same
    /// incarnation, same attributes — is a new process to the restored cluster: it gets a new
    /// generation, not the restored record's.
    #[test]
    fn an_old_agent_retrying_its_registration_is_not_taken_for_the_restored_record() {
        let mut h = crate::testing::Harness::new();
        h.register("w1", 7, "a");
        let (after, version) = restored(h.state.clone(), 0);
        let restored_generation = after.workers[&crate::WorkerId::from("w1")].generation;
        h.state = after;
        h.index = version;
        let again = h.register("w1", 7, "a");
        let crate::apply::Response::Worker(w) = again.response else {
            panic!("{:?}", again.response)
        };
        assert_eq!(w.generation, restored_generation + 1);
        assert_eq!(w.incarnation, 7);
    }
}
