//! Identifiers and the input limits of SPEC §1, §2 and §4, with the one validation function per
//! kind of input. The API layer calls the same functions to answer 400 before proposing, and
//! `apply` calls them again because a log entry is trusted no more than a request.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest worker id, in bytes (SPEC §1).
pub const MAX_WORKER_ID_BYTES: usize = 64;
/// Most labels on one worker (SPEC §1).
pub const MAX_LABELS: usize = 32;
/// Longest label key or value, in bytes (SPEC §1).
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest zone name, in bytes.
pub const MAX_ZONE_BYTES: usize = 64;
/// Longest worker address, in bytes.
pub const MAX_ADDRESS_BYTES: usize = 256;
/// Most partitions in the table (SPEC §2).
pub const MAX_PARTITIONS: u32 = 65_536;
/// Largest replication factor (SPEC §2).
pub const MAX_REPLICATION_FACTOR: u8 = 7;
/// Longest KV key, in bytes (SPEC §4).
pub const MAX_KV_KEY_BYTES: usize = 512;

/// Index of a partition in the table, `0..count`.
pub type PartitionId = u32;

/// A worker's id: 1–64 bytes of `[a-z0-9._-]`.
///
/// The type does not validate on construction or decoding: a log entry carrying a malformed id
/// must reach `apply` and be rejected there with a typed error, never fail to decode.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub String);

impl WorkerId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Written by hand rather than derived, to carry the id's pattern: an API client sees the same
/// rule `validate_worker_id` enforces.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for WorkerId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z0-9._-]{1,64}$"))
            .description(Some("A worker's id: 1-64 of `[a-z0-9._-]`."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for WorkerId {}

impl From<&str> for WorkerId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

fn check_charset(what: &str, s: &str, max: usize, ok: impl Fn(char) -> bool) -> Result<(), String> {
    if s.is_empty() || s.len() > max {
        return Err(format!("{what} must be 1-{max} bytes, got {}", s.len()));
    }
    if let Some(c) = s.chars().find(|c| !ok(*c)) {
        return Err(format!("{what} {s:?} contains {c:?}"));
    }
    Ok(())
}

/// `[a-z0-9._-]{1,64}` (SPEC §1).
pub fn validate_worker_id(id: &str) -> Result<(), String> {
    check_charset("worker id", id, MAX_WORKER_ID_BYTES, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
    })
}

/// A failure-domain name: `[A-Za-z0-9._-]{1,64}`.
pub fn validate_zone(zone: &str) -> Result<(), String> {
    check_charset("zone", zone, MAX_ZONE_BYTES, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
    })
}

/// `host:port` with a non-empty host, no whitespace, and a port in 1–65535.
pub fn validate_address(address: &str) -> Result<(), String> {
    if address.is_empty() || address.len() > MAX_ADDRESS_BYTES {
        return Err(format!(
            "address must be 1-{MAX_ADDRESS_BYTES} bytes, got {}",
            address.len()
        ));
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("address {address:?} contains whitespace"));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("address {address:?} is not host:port"));
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !host.is_empty() => Ok(()),
        _ => Err(format!("address {address:?} is not host:port")),
    }
}

/// At most 32 labels; keys 1–256 bytes, values at most 256 bytes (SPEC §1).
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels, got {}", labels.len()));
    }
    for (k, v) in labels {
        if k.is_empty() || k.len() > MAX_LABEL_BYTES {
            return Err(format!(
                "label key must be 1-{MAX_LABEL_BYTES} bytes, got {}",
                k.len()
            ));
        }
        if v.len() > MAX_LABEL_BYTES {
            return Err(format!(
                "label {k:?}: value must be at most {MAX_LABEL_BYTES} bytes, got {}",
                v.len()
            ));
        }
    }
    Ok(())
}

/// `[A-Za-z0-9/_.:-]{1,512}` (SPEC §4).
pub fn validate_kv_key(key: &str) -> Result<(), String> {
    check_charset("key", key, MAX_KV_KEY_BYTES, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | ':' | '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids() {
        assert!(validate_worker_id("w-1.a_b").is_ok());
        assert!(validate_worker_id(&"a".repeat(64)).is_ok());
        assert!(validate_worker_id(&"a".repeat(65)).is_err());
        assert!(validate_worker_id("").is_err());
        assert!(validate_worker_id("Upper").is_err());
        assert!(validate_worker_id("a/b").is_err());
    }

    #[test]
    fn addresses() {
        assert!(validate_address("127.0.0.1:7001").is_ok());
        assert!(validate_address("[::1]:80").is_ok());
        assert!(validate_address("host").is_err());
        assert!(validate_address(":80").is_err());
        assert!(validate_address("h:0").is_err());
        assert!(validate_address("h: 80").is_err());
    }

    #[test]
    fn kv_keys() {
        assert!(validate_kv_key("a/B:c.d_e-1").is_ok());
        assert!(validate_kv_key(&"k".repeat(512)).is_ok());
        assert!(validate_kv_key(&"k".repeat(513)).is_err());
        assert!(validate_kv_key("a b").is_err());
        assert!(validate_kv_key("").is_err());
    }
}
