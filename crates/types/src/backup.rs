//! The backup file `droverctl snapshot save` writes: the snapshot the API serves (a
//! [`codec`](crate::codec) format byte, then bincode of the state), framed so that a damaged
//! or truncated copy is told from a good one before anything trusts it — bincode alone may
//! decode a flipped bit into a different, valid-looking state.
//!
//! ```text
//! b"DROVERBK" | crc32 of the snapshot (4 bytes, little-endian) | the snapshot
//! ```
//!
//! Pure: bytes in, bytes out.

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
}

/// Frames `snapshot` as a backup file.
pub fn frame(snapshot: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + snapshot.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(snapshot).to_le_bytes());
    out.extend_from_slice(snapshot);
    out
}

/// The snapshot inside a backup file, once its checksum matches.
pub fn unframe(file: &[u8]) -> Result<&[u8], Error> {
    let Some(rest) = file.strip_prefix(MAGIC.as_slice()) else {
        return Err(if MAGIC.starts_with(file) {
            Error::Truncated(file.len())
        } else {
            Error::NotABackup
        });
    };
    let (sum, snapshot) = rest
        .split_first_chunk::<4>()
        .ok_or(Error::Truncated(file.len()))?;
    let found = u32::from_le_bytes(*sum);
    let computed = crc32fast::hash(snapshot);
    if found != computed {
        return Err(Error::Checksum { found, computed });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_any_damage_is_told() {
        let snapshot = b"\x04some state".to_vec();
        let file = frame(&snapshot);
        assert_eq!(unframe(&file), Ok(&snapshot[..]));
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
}
