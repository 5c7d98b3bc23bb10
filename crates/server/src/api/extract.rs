//! Reading a request: its body within the limit, JSON naming the offending field, query
//! strings and path parameters answered in the API's error shape, and the checks on ids and
//! keys that are about URLs rather than the state machine.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use drover_api::ErrorCode;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult};

/// The request body, or 413 (over the limit) / 400 (unreadable, or stalled past the read
/// timeout) in the API's error shape.
pub(crate) fn body(b: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    b.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooLarge,
                "request body is over the limit",
            )
        } else if stalled(&r) {
            ApiError::bad_request(
                "the request body stalled: nothing arrived within the read timeout \
                 (--http-read-timeout)",
            )
        } else {
            ApiError::bad_request(r.body_text())
        }
    })
}

/// Whether the body failed because it paused past the read timeout (`serve.rs`).
fn stalled(r: &BytesRejection) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(r);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Parses a JSON body, naming the offending field on a type error or an unknown field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("malformed JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("field {path}: {inner}"))
        }
    })
}

/// Refuses a worker id or KV key with a `.` or `..` path segment. URL parsers remove or resolve
/// such segments (RFC 3986 §5.2.4), so through an ordinary client a worker `..` could never be
/// addressed and a write to key `a/../b` would silently land on `b`. The rule is the API's, not
/// `apply`'s: it is about URLs, and a log written before it replays the same.
pub(crate) fn no_dot_segments(what: &str, s: &str) -> ApiResult<()> {
    if s.split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(ApiError::bad_request(format!(
            "{what} {s:?} has a `.` or `..` path segment, which URLs cannot carry"
        )));
    }
    Ok(())
}

/// Most items one list call returns; lists default to 100.
pub(crate) const MAX_PAGE: usize = 1000;

/// The page size a list request asked for, or 400.
pub(crate) fn page_limit(limit: Option<usize>) -> ApiResult<usize> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1-{MAX_PAGE}")));
    }
    Ok(limit)
}

/// The query of a single-record read: linearizable unless `stale=true`.
#[derive(Debug, Default, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    /// Answer from this node's applied state instead of a linearizable read through the
    /// leader.
    // Read by the route layer (`forward.rs`); parsed here too, so a malformed value is 400.
    #[allow(dead_code)]
    #[serde(default)]
    pub stale: bool,
}

/// `{id}` in a worker's routes.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct WorkerPath {
    /// The worker's id: 1-64 of `[a-z0-9._-]`, but not `.` or `..`.
    #[param(pattern = "^[a-z0-9._-]{1,64}$")]
    pub id: String,
}

/// A path extractor whose rejections (say, a parameter that is not UTF-8 once decoded) are
/// answered in the API's error shape rather than axum's plain text.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(ApiPath(t)),
            Err(e) => Err(ApiError::bad_request(format!("path: {}", e.body_text()))),
        }
    }
}

/// Parses the query string into `T`, or 400 naming the problem.
pub(crate) fn parse_query<T: DeserializeOwned>(uri: &Uri) -> ApiResult<T> {
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|axum::extract::Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
}

/// A request's `reason` (SPEC §1: 1-256 bytes), or 400 naming the field.
pub(crate) fn check_reason(reason: &str) -> ApiResult<()> {
    drover_types::validate_reason(reason)
        .map_err(|e| ApiError::bad_request(format!("field reason: {e}")))
}

/// Longest `for` a cordon or pause may ask: a year.
const MAX_FOR: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// The expiry a cordon or pause request asks for: `until` (ms since the Unix epoch) or `for` (a
/// duration such as `30m` or `2h`, from `now_ms`, the proposer's clock), not both. `apply`
/// refuses an `until` that is not after the proposer's time; this answers it first.
pub(crate) fn expiry(
    until: Option<u64>,
    for_: Option<&str>,
    now_ms: u64,
) -> ApiResult<Option<u64>> {
    expiry_named(("until", until), ("for", for_), now_ms)
}

/// [`expiry`] for fields named otherwise (a drain's `deadline` and `deadline_in`).
pub(crate) fn expiry_named(
    (at_name, until): (&str, Option<u64>),
    (in_name, for_): (&str, Option<&str>),
    now_ms: u64,
) -> ApiResult<Option<u64>> {
    let until = match (until, for_) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "give {at_name} or {in_name}, not both"
            )));
        }
        (Some(u), None) => Some(u),
        (None, Some(f)) => {
            let d = humantime::parse_duration(f)
                .map_err(|e| ApiError::bad_request(format!("field {in_name}: {f:?}: {e}")))?;
            if d.is_zero() || d > MAX_FOR {
                return Err(ApiError::bad_request(format!(
                    "field {in_name}: must be more than 0 and at most a year"
                )));
            }
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            Some(now_ms.saturating_add(ms))
        }
        (None, None) => None,
    };
    drover_types::validate_until(until, now_ms)
        .map_err(|e| ApiError::bad_request(format!("field {at_name}: {e}")))?;
    Ok(until)
}

/// The longest a long poll may wait (SPEC §4).
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A long poll's `wait`: a duration in human form (`30s`, `500ms`, `1m`) or a plain number of
/// seconds, at most 60 s; none is zero (answer at once).
pub(crate) fn long_poll_wait(wait: Option<&str>) -> ApiResult<std::time::Duration> {
    let Some(w) = wait else {
        return Ok(std::time::Duration::ZERO);
    };
    let parsed = match w.parse::<u64>() {
        Ok(secs) => Some(std::time::Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(w).ok(),
    };
    parsed.filter(|d| *d <= MAX_WAIT).ok_or_else(|| {
        ApiError::bad_request(format!(
            "wait {w:?} is not a duration of at most 60s (e.g. 30s, 500ms)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused() {
        for bad in [".", "..", "a/../b", "./a", "a/.", "a/./b"] {
            assert!(no_dot_segments("key", bad).is_err(), "{bad}");
        }
        for good in ["a", ".a", "a.", "...", "a..b", "a/.b/c", "w-1.z"] {
            assert!(no_dot_segments("key", good).is_ok(), "{good}");
        }
    }
}
