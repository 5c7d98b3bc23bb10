//! `/v1/events` (lifecycle events, bounded retention, 410 when compacted) and `/v1/snapshot`
//! (a consistent copy of the replicated state, for backup).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drover_api::{ErrorCode, EventPage};
use drover_types::{Event, codec};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Role;
use super::error::{
    ApiError, ApiResult, Forbidden, Gone, StandardErrors, Unauthorized, Unavailable,
};
use super::extract::{long_poll_wait, page_limit, parse_query};
use super::forward::Forward;
use crate::core::Node;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Events with a sequence number above this; absent or 0: from the oldest kept event,
    /// whatever retention has compacted.
    after: Option<u64>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Answer from this node's applied state instead of through the leader.
    #[serde(default)]
    stale: bool,
    /// Long poll: when no event follows `after` yet, wait up to this long (at most 60s, e.g.
    /// `20s`) for one; then answer, with an empty page if none came.
    wait: Option<String>,
}

/// Lifecycle events after a sequence number, oldest first; 410 once they are compacted. With
/// `wait`, a long poll: the answering node waits on its own applied state until an event
/// follows `after`, then answers as without it (through the leader unless `stale`), so a
/// follower forwards only the read, never the wait.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "list_events",
    tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        StandardErrors,
        (status = 410, response = Gone),
    )
)]
pub async fn list(State(node): State<Node>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let q: EventsQuery = parse_query(&uri)?;
    let limit = page_limit(q.limit)?;
    let wait = long_poll_wait(q.wait.as_deref())?;
    let uri = if wait.is_zero() {
        uri
    } else {
        wait_for_event(&node, q.after.unwrap_or(0), wait).await;
        without_wait(&uri)?
    };
    if let Some(fwd) = node.read_route(q.stale, &uri, &headers).await? {
        return Ok(fwd);
    }
    let state = node.state().read();
    let log = &state.state.events;
    let after = match q.after {
        None | Some(0) => log.first_seq().saturating_sub(1),
        Some(after) => after,
    };
    let mut iter = log.after(after).map_err(|first| {
        ApiError::new(
            StatusCode::GONE,
            ErrorCode::Compacted,
            format!("events after {after} were compacted; the oldest kept is {first}"),
        )
    })?;
    let events: Vec<Event> = iter.by_ref().take(limit).cloned().collect();
    let more = iter.next().is_some();
    let next_after = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventPage {
        events,
        more,
        next_after,
    })
    .into_response())
}

/// Waits until this node has applied an event after `after` (or compacted past it), at most
/// `wait`.
async fn wait_for_event(node: &Node, after: u64, wait: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    // Timed out, or the node is shutting down: the read answers with what there is.
    let _ = node
        .wait_on_state(deadline, |s| {
            let log = &s.events;
            let arrived = log.events.back().is_some_and(|e| e.seq > after)
                || after.saturating_add(1) < log.first_seq();
            Ok::<_, std::convert::Infallible>(arrived.then_some(()))
        })
        .await;
}

/// `uri` without its `wait` parameter: what is forwarded after the wait, so the leader answers
/// at once.
fn without_wait(uri: &Uri) -> ApiResult<Uri> {
    let pairs =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).filter(|(k, _)| k != "wait");
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let text = if query.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{query}", uri.path())
    };
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))
}

/// The whole replicated state, codec-encoded (format byte + bincode), at a linearizable point.
/// Admin only (or open mode).
#[utoipa::path(
    get,
    path = "/v1/snapshot",
    operation_id = "snapshot",
    tag = "events",
    responses(
        (status = 200, description = "The replicated state: a format byte, then bincode", body = [u8], content_type = "application/octet-stream",
            headers(("x-drover-state-version" = u64, description = "The state version of the snapshot"),
                ("x-drover-cluster-id" = String, description = "The cluster's --cluster-id, which a backup records"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    )
)]
pub async fn snapshot(
    State(node): State<Node>,
    Extension(role): Extension<Role>,
) -> ApiResult<Response> {
    if role == Role::Worker {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "snapshots need the admin token",
        ));
    }
    let (bytes, version) = {
        let guard = node.state().read();
        let bytes = codec::encode(&guard.state).map_err(|e| ApiError::internal(e.to_string()))?;
        (bytes, guard.state.version)
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&version.to_string()) {
        h.insert("x-drover-state-version", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&node.config().cluster_id) {
        h.insert("x-drover-cluster-id", v);
    }
    Ok(response)
}
