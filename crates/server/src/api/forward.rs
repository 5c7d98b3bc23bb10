//! Forwarding to the leader (SPEC §4: any node answers any request). Writes and linearizable
//! reads that reach a follower are sent on to the leader once, marked with
//! `x-drover-forwarded`; a forwarded request that reaches a non-leader, or any request while no
//! leader is known, gets 503 with the leader hint. This is HTTP, so it is the API's: the core
//! only says who leads ([`Node::leader`]).
//!
//! The handlers reach it as methods on the node through the [`Forward`] extension trait.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ApiResult};
use crate::core::{LeaderHint, Node};

/// Marks a request a node forwarded to the leader, so it is never forwarded twice.
pub const FORWARDED_HEADER: &str = "x-drover-forwarded";

/// Where a request that must reach the leader goes.
pub(crate) enum Route {
    Local,
    Forward(LeaderHint),
}

/// The HTTP layer's forwarding, on the core's node handle. Its futures are `Send`, as axum
/// needs of a handler's.
pub(crate) trait Forward {
    /// Decides whether this node serves a leader-only request or forwards it.
    fn route(&self, headers: &HeaderMap) -> ApiResult<Route>;

    /// Sends the request on to the leader and relays its answer.
    fn forward(
        &self,
        leader: &LeaderHint,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> impl Future<Output = Response> + Send;

    /// Serves a read here if it is stale or this node leads (after confirming leadership),
    /// otherwise forwards it to the leader and returns the leader's answer.
    fn read_route(
        &self,
        stale: bool,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> impl Future<Output = ApiResult<Option<Response>>> + Send;

    /// For a write: `Some(answer)` when it was forwarded to the leader, `None` to handle here.
    fn write_route(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> impl Future<Output = ApiResult<Option<Response>>> + Send;
}

impl Forward for Node {
    fn route(&self, headers: &HeaderMap) -> ApiResult<Route> {
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

    async fn forward(
        &self,
        leader: &LeaderHint,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = self
            .peer_client()
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

    async fn read_route(
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

    async fn write_route(
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
}
