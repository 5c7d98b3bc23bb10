//! The one encoding of everything that goes into the Raft log or a snapshot: a format version
//! byte, then bincode 2 (standard config: little-endian varints) of a serde value.
//!
//! Decoding never panics and never allocates without bound on garbage input: bincode's size
//! limit caps every length prefix, and trailing bytes are an error. A later release that changes
//! a logged type bumps [`FORMAT_VERSION`] and keeps a decoder for the older one.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Format of log entries and snapshots written by this release. 2: replicated liveness and
/// scheduler settings (`Settings` grew, `UpdateSettings` carries a patch). 3: cordons, the
/// scheduler pause, and reason and actor on state changes (`Worker`, `ClusterState`, `SetState`,
/// `StartDrain` and `StateChanged` grew). 4: maintenance, the mass-failure brake, drain
/// deadlines and the disruption-budget settings (`Worker`, `Brakes`, `Settings`, `DrainIntent`
/// and `Command` grew).
pub const FORMAT_VERSION: u8 = 4;

/// Largest encoded value accepted when decoding (a snapshot of 65,536 partitions at RF 7 with
/// full KV and events is far below this).
pub const MAX_DECODED_BYTES: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODED_BYTES>()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("empty input: no format version")]
    Empty,
    #[error("unknown format version {0} (this release reads {FORMAT_VERSION})")]
    UnknownFormat(u8),
    #[error("malformed bincode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    #[error("cannot encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

/// Encodes `value` behind the format version.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config())?;
    Ok(out)
}

/// Decodes what [`encode`] wrote.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let (&version, body) = bytes.split_first().ok_or(Error::Empty)?;
    if version != FORMAT_VERSION {
        return Err(Error::UnknownFormat(version));
    }
    let (value, read) = bincode::serde::decode_from_slice(body, config())?;
    if read != body.len() {
        return Err(Error::Trailing(body.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterState, Command, Proposal};

    #[test]
    fn round_trip_and_errors() {
        let p = Proposal {
            at_ms: 5,
            command: Command::CreateTable {
                count: 3,
                replication_factor: 2,
            },
        };
        let bytes = encode(&p).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<Proposal>(&bytes).unwrap(), p);
        assert!(matches!(decode::<Proposal>(&[]), Err(Error::Empty)));
        assert!(matches!(
            decode::<Proposal>(&[9, 0]),
            Err(Error::UnknownFormat(9))
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(decode::<Proposal>(&long), Err(Error::Trailing(1))));
        assert!(decode::<Proposal>(&bytes[..bytes.len() - 1]).is_err());
        let s = ClusterState::default();
        assert_eq!(decode::<ClusterState>(&encode(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn garbage_never_panics() {
        // A huge length prefix must be refused by the limit, not allocated.
        let mut bytes = vec![FORMAT_VERSION, 0xff];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<ClusterState>(&bytes).is_err());
        for seed in 0u8..=255 {
            let junk: Vec<u8> = (0..64u8)
                .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
                .collect();
            let mut b = vec![FORMAT_VERSION];
            b.extend(junk);
            let _ = decode::<Proposal>(&b);
            let _ = decode::<ClusterState>(&b);
        }
    }
}
