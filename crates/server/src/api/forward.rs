//! Forwarding to the leader (SPEC §4: any node answers any request), as one route layer driven
//! by the route table's [`Routing`] column (`api/mod.rs`): writes that reach a follower, and
//! linearizable reads, are sent on to the leader once, marked with `x-drover-forwarded`; a
//! forwarded request that reaches a non-leader, or any of them while no leader is known, gets
//! 503 with the leader hint; a linearizable read the leader serves waits for a confirmation of
//! its leadership first. The handlers below the layer serve what reaches them on this node.
//! This is HTTP, so it is the API's: the core only says who leads ([`Node::leader`]) and
//! confirms it ([`Node::linearizable`]).

use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_api::ErrorCode;

use super::error::{ApiError, ApiResult};
use crate::core::{LeaderHint, Node};

/// How a route reaches the state it serves: the route table's forwarding column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Served by the leader: a follower forwards it (every write).
    Leader,
    /// A heartbeat: to the leader like [`Routing::Leader`], except that the fault harness's
    /// `--unsafe-test-local-heartbeats` bug acknowledges it on any node.
    Heartbeat,
    /// A linearizable read: served by the leader once a quorum confirmed it still leads, or
    /// forwarded to it. With `stale`, the route also takes `?stale=true`, which this node
    /// answers from its own applied state.
    Read { stale: bool },
    /// Served by this node from its own state: long polls (which wait here and route only
    /// their read), membership views, health, metrics, the console.
    Local,
}

/// The state of one route's [`forwarding`] layer.
#[derive(Clone, Debug)]
pub struct Forwarding {
    pub node: Node,
    pub routing: Routing,
}

/// The route layer: forwards what this node must not serve, confirms leadership for a
/// linearizable read it serves, and passes everything else to the handler.
pub async fn forwarding(State(f): State<Forwarding>, req: Request, next: Next) -> Response {
    let node = &f.node;
    match f.routing {
        Routing::Local => next.run(req).await,
        Routing::Heartbeat if node.config().unsafe_test.local_heartbeats => next.run(req).await,
        Routing::Read { stale } => {
            let stale = stale && asks_stale(req.uri());
            match node.read_route(stale, req.uri(), req.headers()).await {
                Ok(None) => next.run(req).await,
                Ok(Some(answer)) => answer,
                Err(e) => e.into_response(),
            }
        }
        Routing::Leader | Routing::Heartbeat => match node.route(req.headers()) {
            Ok(Route::Local) => next.run(req).await,
            Ok(Route::Forward(leader)) => {
                let (parts, body) = req.into_parts();
                let Ok(body) = to_bytes(body, node.config().max_body_bytes).await else {
                    return ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        ErrorCode::TooLarge,
                        format!(
                            "request body could not be read whole to forward it (over the \
                             limit of {} bytes, or cut off)",
                            node.config().max_body_bytes
                        ),
                    )
                    .into_response();
                };
                let mut answer = node
                    .forward(&leader, parts.method, &parts.uri, &parts.headers, body)
                    .await;
                // Says who served it, so a client that sends many of these (an agent's
                // heartbeats) can go to the leader itself and save the hop.
                if let Ok(v) = http::HeaderValue::from_str(&leader.address) {
                    answer.headers_mut().entry(LEADER_HEADER).or_insert(v);
                }
                answer
            }
            Err(e) => e.into_response(),
        },
    }
}

/// Whether the query says `stale=true` (the handler's own parsing refuses a malformed one).
fn asks_stale(uri: &Uri) -> bool {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "stale" && v == "true")
}

/// Marks a request a node forwarded to the leader, so it is never forwarded twice.
pub const FORWARDED_HEADER: &str = "x-drover-forwarded";

/// The leader's `HOST:PORT`, on a 503 that knows it and on an answer a follower forwarded.
pub const LEADER_HEADER: &str = "x-drover-leader";

/// Where a request that must reach the leader goes.
pub(crate) enum Route {
    Local,
    Forward(LeaderHint),
}

/// The HTTP layer's forwarding, on the core's node handle: the layer's, and the events long
/// poll's, which waits here and then routes only its read. Its futures are `Send`, as axum
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

    /// For a handler that routes its read itself (the events long poll, after its wait): the
    /// leader's answer when this node forwarded the read, `None` to serve it here — stale, or
    /// on the leader once its leadership is confirmed.
    fn read_route(
        &self,
        stale: bool,
        uri: &Uri,
        headers: &HeaderMap,
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
            .request(
                method,
                format!("{}://{}{path}", self.config().scheme(), leader.address),
            )
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
}
