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
mod partitions;
mod workers;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use drover_store::Reply;
use drover_types::{Command, Outcome, Proposal};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use serde::de::DeserializeOwned;

pub(crate) use cluster::{CAUGHT_UP_LAG as CAUGHT_UP_LAG_PUB, is_leader};
pub use error::{ApiError, ApiResult, LeaderHint};

use crate::node::Node;

/// Marks a request a node forwarded to the leader, so it is never forwarded twice.
pub const FORWARDED_HEADER: &str = "x-drover-forwarded";

pub fn router(node: Node) -> Router {
    let max_body = node.config().max_body_bytes;
    let mut api = Router::new()
        .route("/v1/cluster", get(cluster::status))
        .route("/v1/cluster/members", post(cluster::add_member))
        .route("/v1/cluster/members/{id}", delete(cluster::remove_member))
        .route("/v1/kv", get(kv::list))
        .route(
            "/v1/kv/{*key}",
            get(kv::get).put(kv::put).delete(kv::delete),
        )
        .route("/v1/workers", get(workers::list))
        .route(
            "/v1/workers/{id}",
            get(workers::show)
                .put(workers::register)
                .delete(workers::remove),
        )
        .route("/v1/workers/{id}/state", post(workers::set_state))
        .route(
            "/v1/workers/{id}/assignments",
            get(workers::assignments_poll),
        )
        .route("/v1/workers/{id}/heartbeat", post(workers::heartbeat))
        .route("/v1/workers/{id}/drain", post(drains::drain_one))
        .route("/v1/drain", post(drains::drain_set))
        .route(
            "/v1/partitions/{p}/replicas/{worker}/ack",
            post(partitions::ack),
        )
        .route(
            "/v1/partitions",
            get(partitions::list).post(partitions::create),
        )
        .route("/v1/partitions/by-key/{key}", get(partitions::by_key))
        .route("/v1/partitions/{p}", get(partitions::show))
        .route("/v1/events", get(events::list))
        .route("/v1/snapshot", get(events::snapshot));
    if node.config().enable_fault_injection {
        api = api.route(
            "/debug/faults",
            get(cluster::faults)
                .post(cluster::set_fault)
                .delete(cluster::clear_faults),
        );
    }
    // Everything above needs a token (when tokens are configured); health checks never do.
    let api = api.layer(axum::middleware::from_fn_with_state(
        node.clone(),
        auth::authorize,
    ));
    let open = Router::new()
        .route("/healthz", get(cluster::healthz))
        .route("/readyz", get(cluster::readyz))
        .route("/metrics", get(metrics::render));
    api.merge(open)
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
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    #[serde(default)]
    pub stale: bool,
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

    /// Proposes a command through Raft and returns `apply`'s answer.
    pub(crate) async fn propose(&self, command: Command) -> ApiResult<Outcome> {
        let proposal = Proposal {
            at_ms: now_ms(),
            command,
        };
        if self.config().unsafe_test.early_ack {
            return self.propose_early_ack(proposal).await;
        }
        match self.raft().client_write(proposal).await {
            Ok(resp) => match resp.data {
                Reply::Applied(outcome) => Ok(*outcome),
                Reply::Rejected(rejection) => Err(rejection.into()),
                Reply::Internal => {
                    Err(ApiError::internal("a command was answered as a raft entry"))
                }
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ApiError::unavailable(
                    "this node stopped being the leader before the write was proposed; retry",
                    self.hint(f.leader_id),
                ))
            }
            Err(e) => Err(ApiError::outcome_unknown(
                format!("the write may or may not have been applied: {e}"),
                self.leader(),
            )),
        }
    }

    /// The `--unsafe-test-early-ack` bug: hands the proposal to Raft, waits only until the
    /// leader's own log has grown, and answers what `apply` would answer on the current applied
    /// state — before any follower has the entry. Never used outside the harness's tests.
    async fn propose_early_ack(&self, proposal: Proposal) -> ApiResult<Outcome> {
        let before = self.raft().metrics().borrow().last_log_index.unwrap_or(0);
        let predicted = {
            let guard = self.state().read();
            let mut scratch = guard.state.clone();
            let index = before.max(scratch.version) + 1;
            drover_types::apply(&mut scratch, index, &proposal)
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
    pub(crate) async fn linearizable(&self) -> ApiResult<()> {
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
