//! Replicated cluster settings (SPEC §1, §4 `/v1/settings`): every value that more than one
//! node must agree on — liveness timing, scheduler throttles, the join timeout, the KV value
//! limit and event retention. They live in the state, changed by one Raft command, so every node
//! answers the same `dead_after` and applies the same log the same way.
//!
//! **Lowering `dead_after` safely.** An agent's lease is `sent + dead_after − margin` of the
//! `dead_after` it was told. If the cluster lowered `dead_after` and at once declared deaths with
//! the new value, an agent still holding a lease granted under the old one would be declared
//! dead while it serves. So a change keeps a [`LeaseFloor`]: the largest `dead_after` under which
//! a lease may still run. A leader's death threshold stays at least the floor until the floor has
//! passed since it applied the change (a node-local time, which is after the commit); heartbeat
//! answers carry the new value at once. The floor is computed here, deterministically, from the
//! proposer times stamped in the commands.

use serde::{Deserialize, Serialize};

/// The values. Durations are milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settings {
    /// How often agents heartbeat (default 1 s).
    pub heartbeat_interval_ms: u64,
    /// A worker unheard this long is suspect: it gets no new replicas (default 5 s).
    pub suspect_after_ms: u64,
    /// A worker unheard this long may be declared dead (default 30 s).
    pub dead_after_ms: u64,
    /// Most moves in flight touching one worker (default 4).
    pub max_moves_per_worker: u32,
    /// Most moves in flight in the cluster (default 64).
    pub max_moves_total: u32,
    /// A joining replica not acknowledged this long is withdrawn and replanned (default 60 s).
    pub join_timeout_ms: u64,
    /// Largest KV value, in bytes (SPEC §4 default 64 KiB).
    pub kv_max_value_bytes: u32,
    /// How many events the log retains before compacting the oldest.
    pub events_retained: u32,
    /// The disruption budget (SPEC §1 maintenance): the fewest serving replicas of every
    /// partition that must stay on workers alive and not in maintenance. 0 (the default): a
    /// majority of the partition's replication factor.
    pub min_available: u32,
    /// The mass-failure brake (SPEC §3): the most of the alive workers the scheduler declares
    /// dead within one `dead_after` window (default 1/3).
    pub max_deaths_fraction: Fraction,
    /// State version of the last change; 0 until the cluster's first leader commits its
    /// initial settings (no heartbeat is acknowledged before that).
    pub version: u64,
    /// Set by a change of `dead_after`: see the module doc.
    pub lease_floor: Option<LeaseFloor>,
}

/// The largest `dead_after` under which a lease granted before the last change may still run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseFloor {
    pub dead_after_ms: u64,
    /// Proposer time of the change that set it.
    pub set_at_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 1_000,
            suspect_after_ms: 5_000,
            dead_after_ms: 30_000,
            max_moves_per_worker: 4,
            max_moves_total: 64,
            join_timeout_ms: 60_000,
            kv_max_value_bytes: 64 * 1024,
            events_retained: 10_000,
            min_available: 0,
            max_deaths_fraction: Fraction::ONE_THIRD,
            version: 0,
            lease_floor: None,
        }
    }
}

/// A change of some settings: the fields given replace the current ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsPatch {
    pub heartbeat_interval_ms: Option<u64>,
    pub suspect_after_ms: Option<u64>,
    pub dead_after_ms: Option<u64>,
    pub max_moves_per_worker: Option<u32>,
    pub max_moves_total: Option<u32>,
    pub join_timeout_ms: Option<u64>,
    pub kv_max_value_bytes: Option<u32>,
    pub events_retained: Option<u32>,
    pub min_available: Option<u32>,
    pub max_deaths_fraction: Option<Fraction>,
}

/// A fraction in (0, 1], kept in parts per million so that the replicated state compares
/// exactly (no float in a record). JSON carries it as a number (`0.333333`); the log's binary
/// encoding as the integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = f64, example = 0.333333))]
pub struct Fraction(u32);

impl Fraction {
    const MILLION: u32 = 1_000_000;
    /// One third, rounded up, so that a third of 3 or 6 workers is 1 or 2 of them.
    pub const ONE_THIRD: Fraction = Fraction(333_334);

    pub fn from_ppm(ppm: u32) -> Result<Fraction, String> {
        if ppm == 0 || ppm > Self::MILLION {
            return Err(format!(
                "a fraction must be above 0 and at most 1, got {}",
                f64::from(ppm) / f64::from(Self::MILLION)
            ));
        }
        Ok(Fraction(ppm))
    }

    /// `⌊n × self⌋`: how many of `n` the fraction allows.
    pub fn of(self, n: usize) -> usize {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let of = n.saturating_mul(u64::from(self.0)) / u64::from(Self::MILLION);
        usize::try_from(of).unwrap_or(usize::MAX)
    }

    /// The whole: as `max_deaths_fraction`, the brake is off.
    pub const ONE: Fraction = Fraction(Fraction::MILLION);

    /// Parts per million.
    pub fn ppm(self) -> u32 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(Self::MILLION)
    }
}

impl Serialize for Fraction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_f64(self.as_f64())
        } else {
            s.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            let ppm = u32::deserialize(d)?;
            return Fraction::from_ppm(ppm).map_err(serde::de::Error::custom);
        }
        // Any number: a TOML file's `1` is an integer, JSON's `0.5` a float.
        struct Number;
        impl serde::de::Visitor<'_> for Number {
            type Value = f64;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number above 0 and at most 1")
            }
            fn visit_f64<E>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
        }
        let f = d.deserialize_any(Number)?;
        Fraction::try_from(f).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<f64> for Fraction {
    type Error = String;
    fn try_from(f: f64) -> Result<Fraction, String> {
        if !f.is_finite() || f <= 0.0 || f > 1.0 {
            return Err(format!("a fraction must be above 0 and at most 1, got {f}"));
        }
        // In range by the check above: the cast cannot truncate beyond rounding.
        Fraction::from_ppm((f * f64::from(Fraction::MILLION)).round() as u32)
    }
}

impl std::str::FromStr for Fraction {
    type Err = String;
    fn from_str(s: &str) -> Result<Fraction, String> {
        let f: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number"))?;
        Fraction::try_from(f)
    }
}

/// Longest `dead_after` (and so the longest lease) the cluster accepts: a week.
pub const MAX_DEAD_AFTER_MS: u64 = 7 * 24 * 3600 * 1000;
/// Largest KV value limit that may be set.
pub const MAX_KV_VALUE_LIMIT: u32 = 16 << 20;

impl Settings {
    /// The settings with `patch` laid over them, validated as a whole. Bookkeeping (`version`,
    /// `lease_floor`) is left as it was.
    pub fn patched(&self, patch: &SettingsPatch) -> Result<Settings, String> {
        let mut s = self.clone();
        let p = patch;
        s.heartbeat_interval_ms = p.heartbeat_interval_ms.unwrap_or(s.heartbeat_interval_ms);
        s.suspect_after_ms = p.suspect_after_ms.unwrap_or(s.suspect_after_ms);
        s.dead_after_ms = p.dead_after_ms.unwrap_or(s.dead_after_ms);
        s.max_moves_per_worker = p.max_moves_per_worker.unwrap_or(s.max_moves_per_worker);
        s.max_moves_total = p.max_moves_total.unwrap_or(s.max_moves_total);
        s.join_timeout_ms = p.join_timeout_ms.unwrap_or(s.join_timeout_ms);
        s.kv_max_value_bytes = p.kv_max_value_bytes.unwrap_or(s.kv_max_value_bytes);
        s.events_retained = p.events_retained.unwrap_or(s.events_retained);
        s.min_available = p.min_available.unwrap_or(s.min_available);
        s.max_deaths_fraction = p.max_deaths_fraction.unwrap_or(s.max_deaths_fraction);
        s.validate()?;
        Ok(s)
    }

    /// Every limit and relation between the values, each error naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(10..=60_000).contains(&self.heartbeat_interval_ms) {
            return Err("heartbeat_interval_ms must be 10-60000".into());
        }
        if self.suspect_after_ms <= self.heartbeat_interval_ms {
            return Err(format!(
                "suspect_after_ms ({}) must be above heartbeat_interval_ms ({})",
                self.suspect_after_ms, self.heartbeat_interval_ms
            ));
        }
        if self.dead_after_ms <= self.suspect_after_ms {
            return Err(format!(
                "dead_after_ms ({}) must be above suspect_after_ms ({})",
                self.dead_after_ms, self.suspect_after_ms
            ));
        }
        if self.dead_after_ms > MAX_DEAD_AFTER_MS {
            return Err(format!(
                "dead_after_ms must be at most {MAX_DEAD_AFTER_MS} (a week)"
            ));
        }
        if !(1..=1024).contains(&self.max_moves_per_worker) {
            return Err("max_moves_per_worker must be 1-1024".into());
        }
        if !(1..=65_536).contains(&self.max_moves_total) {
            return Err("max_moves_total must be 1-65536".into());
        }
        if !(1_000..=86_400_000).contains(&self.join_timeout_ms) {
            return Err("join_timeout_ms must be 1000-86400000 (1 s to a day)".into());
        }
        if !(1..=MAX_KV_VALUE_LIMIT).contains(&self.kv_max_value_bytes) {
            return Err(format!("kv_max_value_bytes must be 1-{MAX_KV_VALUE_LIMIT}"));
        }
        if !(1..=1_000_000).contains(&self.events_retained) {
            return Err("events_retained must be 1-1000000".into());
        }
        if self.min_available > 255 {
            return Err("min_available must be 0 (a majority) to 255".into());
        }
        Ok(())
    }

    /// The values alone, for comparing two settings regardless of their bookkeeping.
    pub fn same_values(&self, other: &Settings) -> bool {
        let strip = |s: &Settings| Settings {
            version: 0,
            lease_floor: None,
            ..s.clone()
        };
        strip(self) == strip(other)
    }

    /// The floor after replacing these settings by ones with `new_dead_after_ms`, at proposer
    /// time `at_ms`. Settings never committed (version 0) granted no lease. An older floor is
    /// kept while it may still be in force: it is judged by proposer times, with twice its
    /// length for slack, since a change may commit a while after it was proposed.
    pub fn floor_after_change(&self, new_dead_after_ms: u64, at_ms: u64) -> Option<LeaseFloor> {
        if self.version == 0 {
            return None;
        }
        let mut floor = self.dead_after_ms;
        if let Some(old) = self.lease_floor {
            let until = old
                .set_at_ms
                .saturating_add(old.dead_after_ms.saturating_mul(2));
            if at_ms < until {
                floor = floor.max(old.dead_after_ms);
            }
        }
        // A floor below the new value never binds; keep none.
        (floor > new_dead_after_ms).then_some(LeaseFloor {
            dead_after_ms: floor,
            set_at_ms: at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(dead_after_ms: u64) -> Settings {
        Settings {
            dead_after_ms,
            version: 5,
            ..Settings::default()
        }
    }

    #[test]
    fn defaults_are_valid_and_patches_are_checked_whole() {
        Settings::default().validate().unwrap();
        let s = Settings::default();
        let p = SettingsPatch {
            dead_after_ms: Some(4_000),
            ..SettingsPatch::default()
        };
        let e = s.patched(&p).unwrap_err();
        assert!(e.contains("dead_after_ms"), "{e}");
        let p = SettingsPatch {
            suspect_after_ms: Some(2_000),
            dead_after_ms: Some(4_000),
            ..SettingsPatch::default()
        };
        assert_eq!(s.patched(&p).unwrap().dead_after_ms, 4_000);
        let p = SettingsPatch {
            dead_after_ms: Some(u64::MAX),
            ..SettingsPatch::default()
        };
        assert!(s.patched(&p).is_err());
    }

    /// JSON carries the fraction as a number, the log as parts per million; both round-trip,
    /// and out-of-range values are refused whichever way they come.
    #[test]
    fn fractions_round_trip_as_numbers_and_refuse_out_of_range() {
        let f: Fraction = serde_json::from_str("0.5").unwrap();
        assert_eq!(f.of(6), 3);
        assert_eq!(serde_json::to_string(&f).unwrap(), "0.5");
        assert_eq!(Fraction::ONE_THIRD.of(6), 2);
        assert_eq!(Fraction::ONE_THIRD.of(3), 1);
        assert_eq!(Fraction::ONE_THIRD.of(2), 0);
        for bad in ["0", "-0.1", "1.5"] {
            assert!(serde_json::from_str::<Fraction>(bad).is_err(), "{bad}");
        }
        let bytes = crate::codec::encode(&Fraction::ONE_THIRD).unwrap();
        assert_eq!(
            crate::codec::decode::<Fraction>(&bytes).unwrap(),
            Fraction::ONE_THIRD
        );
        assert!(Fraction::from_ppm(0).is_err() && Fraction::from_ppm(1_000_001).is_err());
        let one: Fraction = serde_json::from_str("1").unwrap();
        assert_eq!(one.of(7), 7, "an integer is a number too");
        assert_eq!("0.25".parse::<Fraction>().unwrap().of(8), 2);
        assert!("a third".parse::<Fraction>().is_err() && "0".parse::<Fraction>().is_err());
    }

    #[test]
    fn lowering_dead_after_keeps_the_old_value_as_a_floor() {
        assert_eq!(
            Settings::default().floor_after_change(3_000, 10),
            None,
            "uncommitted settings granted no lease"
        );
        let f = committed(30_000).floor_after_change(3_000, 1_000).unwrap();
        assert_eq!(f.dead_after_ms, 30_000);
        assert_eq!(committed(3_000).floor_after_change(30_000, 1_000), None);
        // A second lowering soon after keeps the first floor.
        let mut s = committed(10_000);
        s.lease_floor = Some(f);
        assert_eq!(
            s.floor_after_change(5_000, 2_000).unwrap().dead_after_ms,
            30_000
        );
        // Long after, only the value being replaced counts.
        assert_eq!(
            s.floor_after_change(5_000, 1_000 + 60_001)
                .unwrap()
                .dead_after_ms,
            10_000
        );
    }
}
