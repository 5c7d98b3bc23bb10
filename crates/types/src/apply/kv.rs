//! KV and settings commands (SPEC §4).

use crate::ids::validate_kv_key;
use crate::kv::KvEntry;
use crate::settings::SettingsPatch;

use super::{Applied, Cx, RejectCode, Response, invalid, reject, version_conflict};

impl Cx<'_> {
    pub(super) fn kv_put(
        &mut self,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
    ) -> Applied {
        validate_kv_key(key).or_else(invalid)?;
        let max = self.s.settings.kv_max_value_bytes;
        if value.len() > usize::try_from(max).unwrap_or(usize::MAX) {
            return reject(
                RejectCode::TooLarge,
                format!("value is {} bytes; the limit is {max}", value.len()),
            );
        }
        let existing = self.s.kv.get(key);
        let current = existing.map_or(0, |e| e.version);
        if let Some(v) = expected_version
            && v != current
        {
            return version_conflict(&format!("key {key:?}"), v, current);
        }
        let entry = KvEntry {
            value: value.to_owned(),
            version: self.index,
            create_version: existing.map_or(self.index, |e| e.create_version),
        };
        self.s.kv.insert(key.to_owned(), entry.clone());
        self.changes.kv.insert(key.to_owned());
        Ok(Response::Kv {
            key: key.to_owned(),
            entry,
        })
    }

    pub(super) fn kv_delete(&mut self, key: &str, expected_version: Option<u64>) -> Applied {
        validate_kv_key(key).or_else(invalid)?;
        let Some(e) = self.s.kv.get(key) else {
            return reject(RejectCode::NotFound, format!("no key {key:?}"));
        };
        if let Some(v) = expected_version
            && v != e.version
        {
            return version_conflict(&format!("key {key:?}"), v, e.version);
        }
        self.s.kv.remove(key);
        self.changes.kv.insert(key.to_owned());
        Ok(Response::KvDeleted {
            key: key.to_owned(),
            version: self.index,
        })
    }

    pub(super) fn update_settings(
        &mut self,
        patch: &SettingsPatch,
        expected: Option<u64>,
    ) -> Applied {
        let current = &self.s.settings;
        if let Some(v) = expected
            && v != current.version
        {
            return version_conflict("the settings", v, current.version);
        }
        let mut new = current.patched(patch).or_else(invalid)?;
        if current.same_values(&new) && current.version > 0 {
            return Ok(Response::Settings(current.clone()));
        }
        if new.dead_after_ms != current.dead_after_ms {
            new.lease_floor = current.floor_after_change(new.dead_after_ms, self.at);
        }
        new.version = self.index;
        let retain = usize::try_from(new.events_retained).unwrap_or(usize::MAX);
        self.s.settings = new.clone();
        self.changes.settings = true;
        if self.s.events.events.len() > retain {
            let excess = self.s.events.events.len() - retain;
            self.s.events.events.drain(..excess);
            self.changes.events = true;
        }
        Ok(Response::Settings(new))
    }
}
