//! The admin HTTP API (SPEC §4): routing, forwarding to the leader, request parsing, and the
//! handlers, which live in one module per resource.
//!
//! Any node answers any request. Writes and linearizable reads that reach a follower are
//! forwarded to the leader once (marked with `x-drover-forwarded`); a forwarded request that
//! reaches a non-leader, or any request while no leader is known, gets 503 with the leader hint.

pub mod auth;
mod cluster;
mod drains;
pub mod error;
mod events;
mod kv;
pub mod metrics;
pub mod openapi;
mod partitions;
mod settings;
mod workers;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use drover_store::Reply;
use drover_types::{Command, Outcome, Proposal};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

pub(crate) use cluster::{CAUGHT_UP_LAG as CAUGHT_UP_LAG_PUB, is_leader};
pub use error::{ApiError, ApiResult, LeaderHint};

use crate::node::Node;

/// Marks a request a node forwarded to the leader, so it is never forwarded twice.
pub const FORWARDED_HEADER: &str = "x-drover-forwarded";

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Needs a token when tokens are configured (SPEC §4).
    Token,
    /// Health, readiness, metrics and this API's OpenAPI document: never a token.
    Open,
    /// Test-only fault injection: served only with `enable_fault_injection`, with a token.
    Debug,
}

/// One route of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    /// As axum spells it (`{*key}` for a rest-of-path parameter).
    pub path: &'static str,
    pub access: Access,
}

impl RouteInfo {
    /// The path as the OpenAPI document spells it (`{key}`).
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }
}

fn route<H, T>(
    method: Method,
    path: &'static str,
    access: Access,
    handler: H,
) -> (RouteInfo, MethodRouter<Node>)
where
    H: Handler<T, Node>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
    let info = RouteInfo {
        method,
        path,
        access,
    };
    (info, on(filter, handler))
}

/// Every route the API serves. The router is built from this one table, and `tests/api.rs`
/// checks it against `/openapi.json`, so a route cannot be added without its documentation.
fn table() -> Vec<(RouteInfo, MethodRouter<Node>)> {
    use Access::{Debug, Open, Token};
    use Method as M;
    vec![
        route(M::GET, "/v1/cluster", Token, cluster::status),
        route(M::POST, "/v1/cluster/members", Token, cluster::add_member),
        route(
            M::DELETE,
            "/v1/cluster/members/{id}",
            Token,
            cluster::remove_member,
        ),
        route(M::GET, "/v1/kv", Token, kv::list),
        route(M::GET, "/v1/kv/{*key}", Token, kv::get),
        route(M::PUT, "/v1/kv/{*key}", Token, kv::put),
        route(M::DELETE, "/v1/kv/{*key}", Token, kv::delete),
        route(M::GET, "/v1/workers", Token, workers::list),
        route(M::GET, "/v1/workers/{id}", Token, workers::show),
        route(M::PUT, "/v1/workers/{id}", Token, workers::register),
        route(M::DELETE, "/v1/workers/{id}", Token, workers::remove),
        route(M::POST, "/v1/workers/{id}/state", Token, workers::set_state),
        route(
            M::GET,
            "/v1/workers/{id}/assignments",
            Token,
            workers::assignments_poll,
        ),
        route(
            M::POST,
            "/v1/workers/{id}/heartbeat",
            Token,
            workers::heartbeat,
        ),
        route(M::POST, "/v1/workers/{id}/drain", Token, drains::drain_one),
        route(M::POST, "/v1/drain", Token, drains::drain_set),
        route(
            M::POST,
            "/v1/partitions/{p}/replicas/{worker}/ack",
            Token,
            partitions::ack,
        ),
        route(M::GET, "/v1/partitions", Token, partitions::list),
        route(M::POST, "/v1/partitions", Token, partitions::create),
        route(
            M::GET,
            "/v1/partitions/by-key/{key}",
            Token,
            partitions::by_key,
        ),
        route(M::GET, "/v1/partitions/{p}", Token, partitions::show),
        route(M::GET, "/v1/settings", Token, settings::get),
        route(M::PUT, "/v1/settings", Token, settings::put),
        route(M::GET, "/v1/events", Token, events::list),
        route(M::GET, "/v1/snapshot", Token, events::snapshot),
        route(M::GET, "/debug/faults", Debug, cluster::faults),
        route(M::POST, "/debug/faults", Debug, cluster::set_fault),
        route(M::DELETE, "/debug/faults", Debug, cluster::clear_faults),
        route(M::GET, "/healthz", Open, cluster::healthz),
        route(M::GET, "/readyz", Open, cluster::readyz),
        route(M::GET, "/metrics", Open, metrics::render),
        route(M::GET, "/openapi.json", Open, openapi::document),
    ]
}

/// Every route of the API, whether or not this node enables the debug ones.
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|(info, _)| info).collect()
}

pub fn router(node: Node) -> Router {
    let max_body = node.config().max_body_bytes;
    let debug = node.config().enable_fault_injection;
    let (mut api, mut open) = (Router::new(), Router::new());
    for (info, handler) in table() {
        // Routes on one path with different methods merge into one method router.
        match info.access {
            Access::Token => api = api.route(info.path, handler),
            Access::Debug if debug => api = api.route(info.path, handler),
            Access::Debug => {}
            Access::Open => open = open.route(info.path, handler),
        }
    }
    // Everything in `api` needs a token (when tokens are configured); `open` never does.
    let api = api.layer(axum::middleware::from_fn_with_state(
        node.clone(),
        auth::authorize,
    ));
    api.merge(open)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .route_layer(axum::middleware::from_fn_with_state(
            node.clone(),
            metrics::track,
        ))
        .with_state(node)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// A known path with a method it does not serve: 405 in the API's error shape (axum still adds
/// the `Allow` header).
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not serve {method}", uri.path()),
    )
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The request body, or 413 (over the limit) / 400 in the API's error shape.
pub(crate) fn body(b: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    b.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "request body is over the limit",
            )
        } else {
            ApiError::bad_request(r.body_text())
        }
    })
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

/// Where a request that must reach the leader goes.
pub(crate) enum Route {
    Local,
    Forward(LeaderHint),
}

impl Node {
    /// Decides whether this node serves a leader-only request or forwards it.
    pub(crate) fn route(&self, headers: &HeaderMap) -> ApiResult<Route> {
        match self.leader() {
            Some(l) if l.id == self.id() => Ok(Route::Local),
            Some(l) if headers.contains_key(FORWARDED_HEADER) => Err(ApiError::unavailable(
                format!(
                    "node {} is not the leader (forwarded here already)",
                    self.id()
                ),
                Some(l),
            )),
            Some(l) => Ok(Route::Forward(l)),
            None => Err(ApiError::unavailable(
                "no leader is elected right now; retry shortly",
                None,
            )),
        }
    }

    /// Sends the request on to the leader and relays its answer.
    pub(crate) async fn forward(
        &self,
        leader: &LeaderHint,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = self
            .http()
            .request(method, format!("http://{}{path}", leader.address))
            .header(FORWARDED_HEADER, self.id().to_string())
            .body(body);
        for name in [http::header::CONTENT_TYPE, http::header::AUTHORIZATION] {
            if let Some(v) = headers.get(&name) {
                req = req.header(name, v);
            }
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                match resp.bytes().await {
                    Ok(bytes) => {
                        let mut out = (status, bytes).into_response();
                        // Relay the leader's headers (content type, state version, leader hint),
                        // but not the hop-by-hop ones of its connection to us.
                        for (name, value) in &headers {
                            let hop = name == http::header::CONNECTION
                                || name == http::header::TRANSFER_ENCODING
                                || name == http::header::CONTENT_LENGTH
                                || name.as_str() == "keep-alive";
                            if !hop {
                                out.headers_mut().insert(name.clone(), value.clone());
                            }
                        }
                        out
                    }
                    Err(e) => ApiError::outcome_unknown(
                        format!(
                            "leader {} failed mid-answer ({e}); the outcome is unknown",
                            leader.id
                        ),
                        Some(leader.clone()),
                    )
                    .into_response(),
                }
            }
            Err(e) if e.is_connect() => ApiError::unavailable(
                format!(
                    "cannot reach leader {} at {}: {e}",
                    leader.id, leader.address
                ),
                Some(leader.clone()),
            )
            .into_response(),
            Err(e) => ApiError::outcome_unknown(
                format!(
                    "forwarding to leader {} failed ({e}); the outcome is unknown",
                    leader.id
                ),
                Some(leader.clone()),
            )
            .into_response(),
        }
    }

    /// Serves a read here if it is stale or this node leads (after confirming leadership),
    /// otherwise forwards it to the leader and returns the leader's answer.
    pub(crate) async fn read_route(
        &self,
        stale: bool,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> ApiResult<Option<Response>> {
        if stale || self.config().unsafe_test.local_reads {
            return Ok(None);
        }
        match self.route(headers)? {
            Route::Forward(leader) => Ok(Some(
                self.forward(&leader, Method::GET, uri, headers, Bytes::new())
                    .await,
            )),
            Route::Local => {
                self.linearizable().await?;
                Ok(None)
            }
        }
    }

    /// For a write: `Some(answer)` when it was forwarded to the leader, `None` to handle here.
    pub(crate) async fn write_route(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> ApiResult<Option<Response>> {
        match self.route(headers)? {
            Route::Forward(leader) => Ok(Some(
                self.forward(&leader, method, uri, headers, body).await,
            )),
            Route::Local => Ok(None),
        }
    }

    /// Proposes a command through Raft and returns `apply`'s answer. KV writes go through the
    /// batcher, which may share their log entry with other keys' writes.
    pub(crate) async fn propose(&self, command: Command) -> ApiResult<Outcome> {
        if self.config().unsafe_test.early_ack {
            let proposal = Proposal {
                at_ms: now_ms(),
                command,
            };
            return self.propose_early_ack(proposal).await;
        }
        if command.batch_key().is_some() {
            return self.batcher().propose(command).await;
        }
        let mut answers = self.propose_batch(vec![command]).await;
        answers
            .pop()
            .unwrap_or_else(|| Err(ApiError::internal("a write was proposed without answer")))
    }

    /// Proposes commands as one log entry (a lone command as itself, several as a
    /// `Command::Batch`) and answers one result per command, in order.
    pub(crate) async fn propose_batch(
        &self,
        mut commands: Vec<Command>,
    ) -> Vec<ApiResult<Outcome>> {
        let count = commands.len();
        let command = match commands.len() {
            1 => commands.pop().unwrap_or(Command::Batch(Vec::new())),
            _ => Command::Batch(commands),
        };
        let proposal = Proposal {
            at_ms: now_ms(),
            command,
        };
        let answer = |reply: Reply| match reply {
            Reply::Applied(outcome) => Ok(*outcome),
            Reply::Rejected(rejection) => Err(rejection.into()),
            // Committed, but answered as something else: a bug, and the write may have applied.
            Reply::Internal | Reply::Batch(_) => Err(ApiError::outcome_unknown(
                "a committed command was answered as a raft entry or a batch",
                None,
            )),
        };
        let failed = |e: ApiError| vec![Err(e); count];
        let deadline = self.config().raft.request_timeout();
        let Ok(written) = tokio::time::timeout(deadline, self.raft().client_write(proposal)).await
        else {
            return failed(ApiError::outcome_unknown(
                format!(
                    "the write was proposed but not committed within {deadline:?} (is this \
                     leader cut off from the others?); its outcome is unknown"
                ),
                self.leader(),
            ));
        };
        match written {
            Ok(resp) => match resp.data {
                Reply::Batch(replies) if replies.len() == count && count > 1 => {
                    replies.into_iter().map(answer).collect()
                }
                Reply::Batch(_) => failed(ApiError::outcome_unknown(
                    "a committed batch was answered with the wrong number of results",
                    None,
                )),
                reply if count == 1 => vec![answer(reply)],
                _ => failed(ApiError::outcome_unknown(
                    "a committed batch was answered as a single command",
                    None,
                )),
            },
            // openraft answers this both when the write reached a node no longer leading and
            // when its entry was appended and then truncated by a new leader — which, in a
            // cluster of five or more voters, another node holding it may still commit. So it
            // is not "nothing was proposed" (route() answered `unavailable` for a node that
            // knew it did not lead).
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                failed(ApiError::outcome_unknown(
                    "leadership changed while the write was being proposed; it may or may not \
                     have been applied",
                    self.hint(f.leader_id),
                ))
            }
            Err(e) => failed(ApiError::outcome_unknown(
                format!("the write may or may not have been applied: {e}"),
                self.leader(),
            )),
        }
    }

    /// The `--unsafe-test-early-ack` bug: hands the proposal to Raft, waits only until the
    /// leader's own log has grown, and answers what `apply` would answer on the current applied
    /// state — before any follower has the entry. Never used outside the harness's tests.
    async fn propose_early_ack(&self, proposal: Proposal) -> ApiResult<Outcome> {
        let (before, term) = {
            let m = self.raft().metrics();
            let m = m.borrow();
            (m.last_log_index.unwrap_or(0), m.current_term)
        };
        let predicted = {
            let guard = self.state().read();
            let mut scratch = guard.state.clone();
            let index = before.max(scratch.version) + 1;
            drover_types::apply(
                &mut scratch,
                drover_types::LogPosition::new(term, index),
                &proposal,
            )
        };
        let rx = self
            .raft()
            .client_write_ff(proposal)
            .await
            .map_err(|e| ApiError::unavailable(format!("raft stopped: {e}"), None))?;
        tokio::spawn(async move {
            let _ = rx.await;
        });
        let mut metrics = self.raft().metrics();
        let appended = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            metrics.wait_for(|m| m.last_log_index.unwrap_or(0) > before),
        )
        .await;
        if !matches!(appended, Ok(Ok(_))) {
            return Err(ApiError::outcome_unknown(
                "early ack: the entry did not reach the local log",
                self.leader(),
            ));
        }
        predicted.map_err(Into::into)
    }

    /// Confirms leadership with a quorum and waits until the state machine has applied
    /// everything committed before this call: reads after it are linearizable.
    /// Waits until a read here is linearizable: a leadership confirmation that started after
    /// this call has finished and its read index is applied (shared with concurrent readers).
    pub(crate) async fn linearizable(&self) -> ApiResult<()> {
        self.read_index().wait().await
    }

    /// One leadership confirmation: a heartbeat round to a quorum, then wait until the commit
    /// index it read is applied.
    pub(crate) async fn confirm_leadership(&self) -> ApiResult<()> {
        match self.raft().ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => Err(
                ApiError::unavailable("this node is not the leader", self.hint(f.leader_id)),
            ),
            Err(e) => Err(ApiError::unavailable(
                format!("cannot confirm leadership: {e}"),
                self.leader(),
            )),
        }
    }
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
