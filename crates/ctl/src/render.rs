//! Pure formatting helpers for droverctl's output: YAML from the JSON shape, natural order of
//! ids (`w2` before `w10`), and times in RFC 3339. No I/O, so they are tested as tables.

use std::cmp::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// `v` as a YAML block document. Strings are always double-quoted (JSON's escapes are YAML's),
/// so no value changes type on the way (`"no"`, `"1e3"` and `"null"` stay strings).
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => block(v, 0, &mut out),
        Value::Array(a) if !a.is_empty() => block(v, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => false,
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !k.starts_with(['-', '.'])
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && k.parse::<f64>().is_err();
    if plain {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

/// Writes a non-empty object or array at `indent` spaces.
fn block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if is_block(v) {
                    out.push_str(&format!("{pad}{}:\n", key(k)));
                    // Sequences under a key sit at the key's indentation, as YAML allows.
                    let inner = if v.is_array() { indent } else { indent + 2 };
                    block(v, inner, out);
                } else {
                    out.push_str(&format!("{pad}{}: {}\n", key(k), scalar(v)));
                }
            }
        }
        Value::Array(a) => {
            for item in a {
                if is_block(item) {
                    // Render the item two deeper, then put the dash in its first line's indent.
                    let mut inner = String::new();
                    block(item, indent + 2, &mut inner);
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&inner[indent + 2..]);
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

/// Orders ids as people count: runs of digits compare as numbers (`w2` < `w10` < `w10a`).
pub fn natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&a[..da], &b[..db]);
                // Compare without leading zeros by length, then digit by digit; then the
                // longer run of zeros first, so the order stays total.
                let ta = trim_zeros(na);
                let tb = trim_zeros(nb);
                let ord = ta.len().cmp(&tb.len()).then(ta.cmp(tb)).then(db.cmp(&da));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|c| **c == b'0').count();
    &d[z..]
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `--since`: an RFC 3339 time (`2026-12-02T16:00:00Z`, or with an offset) or an age before
/// `now_ms` (`10m`, `2h`), as milliseconds since the Unix epoch.
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(age) = humantime::parse_duration(s) {
        let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        return Ok(now_ms.saturating_sub(age));
    }
    let (base, offset_secs) = split_offset(s)?;
    let t = humantime::parse_rfc3339_weak(base).map_err(|e| {
        format!("{s:?} is neither an RFC 3339 time (2026-12-02T16:00:00Z) nor an age (10m): {e}")
    })?;
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?
        .as_millis();
    let ms = i128::try_from(ms).unwrap_or(i128::MAX) - i128::from(offset_secs) * 1000;
    u64::try_from(ms).map_err(|_| format!("{s:?} is before 1970"))
}

/// Splits a trailing `Z` or `±HH:MM` off an RFC 3339 time: the rest and the offset in seconds.
fn split_offset(s: &str) -> Result<(&str, i64), String> {
    if let Some(base) = s.strip_suffix(['Z', 'z']) {
        return Ok((base, 0));
    }
    if s.len() > 6 {
        let (base, off) = s.split_at(s.len() - 6);
        let b = off.as_bytes();
        if matches!(b[0], b'+' | b'-') && b[3] == b':' {
            let h: i64 = off[1..3]
                .parse()
                .map_err(|_| format!("bad offset in {s:?}"))?;
            let m: i64 = off[4..6]
                .parse()
                .map_err(|_| format!("bad offset in {s:?}"))?;
            let secs = (h * 60 + m) * 60;
            return Ok((base, if b[0] == b'-' { -secs } else { secs }));
        }
    }
    // No zone: read as UTC.
    Ok((s, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_of_nested_values() {
        let v = json!({
            "id": "w2", "capacity": 1, "zone": null, "labels": {}, "dead": false,
            "replicas": [{"partition": 3, "role": "serving"}, {"partition": 5, "role": "joining"}],
            "tags": ["a", "no"], "nested": {"x": [1, 2]}, "odd key": "1e3"
        });
        // Keys in serde_json's order (sorted).
        let expected = "\
capacity: 1
dead: false
id: \"w2\"
labels: {}
nested:
  x:
  - 1
  - 2
\"odd key\": \"1e3\"
replicas:
- partition: 3
  role: \"serving\"
- partition: 5
  role: \"joining\"
tags:
- \"a\"
- \"no\"
zone: null
";
        assert_eq!(yaml(&v), expected);
        assert_eq!(yaml(&json!([])), "[]\n");
        assert_eq!(
            yaml(&json!([{"a": {"b": 1}}])),
            "- a:\n    b: 1\n",
            "an object inside an item keeps its depth"
        );
    }

    #[test]
    fn ids_sort_naturally() {
        let mut ids = vec!["w10", "w2", "w1", "w10a", "a", "w02", "w9"];
        ids.sort_by(|a, b| natural(a, b));
        assert_eq!(ids, ["a", "w1", "w02", "w2", "w9", "w10", "w10a"]);
    }

    #[test]
    fn since_takes_rfc3339_or_an_age() {
        let t = parse_since("2026-12-02T16:00:00Z", 0).unwrap();
        assert_eq!(rfc3339_ms(t), "2026-12-02T16:00:00.000Z");
        assert_eq!(parse_since("2026-12-02T17:00:00+01:00", 0).unwrap(), t);
        assert_eq!(parse_since("2026-12-02T16:00:00", 0).unwrap(), t);
        assert_eq!(parse_since("10m", 1_000_000).unwrap(), 400_000);
        assert!(parse_since("yesterday", 0).is_err());
    }
}
