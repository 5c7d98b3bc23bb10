//! The receiving side of Raft RPCs: axum routes under `/raft/`, each checking the cluster id and
//! secret before decoding a bounded body and handing it to openraft.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use drover_types::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CLUSTER_ID_HEADER, CLUSTER_SECRET_HEADER, Peering, Raft};

#[derive(Clone)]
struct RaftState {
    raft: Raft,
    peering: Peering,
}

/// The Raft RPC routes of a node, for the server to merge into its router.
pub fn routes(raft: Raft, peering: Peering, max_rpc_bytes: usize) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .layer(DefaultBodyLimit::max(max_rpc_bytes))
        .with_state(RaftState { raft, peering })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Admits the peer and decodes the body, or says why not.
fn admit<T: DeserializeOwned>(
    s: &RaftState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, (StatusCode, String)> {
    s.peering
        .admits(
            header(headers, CLUSTER_ID_HEADER),
            header(headers, CLUSTER_SECRET_HEADER),
        )
        .map_err(|why| (StatusCode::FORBIDDEN, why.to_owned()))?;
    codec::decode(body).map_err(|e| (StatusCode::BAD_REQUEST, format!("bad raft message: {e}")))
}

fn reply<T: Serialize>(result: &T) -> Response {
    match codec::encode(result) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn append(State(s): State<RaftState>, headers: HeaderMap, body: Bytes) -> Response {
    match admit(&s, &headers, &body) {
        Ok(req) => reply(&s.raft.append_entries(req).await),
        Err(r) => r.into_response(),
    }
}

async fn vote(State(s): State<RaftState>, headers: HeaderMap, body: Bytes) -> Response {
    match admit(&s, &headers, &body) {
        Ok(req) => reply(&s.raft.vote(req).await),
        Err(r) => r.into_response(),
    }
}

async fn snapshot(State(s): State<RaftState>, headers: HeaderMap, body: Bytes) -> Response {
    match admit(&s, &headers, &body) {
        Ok(req) => reply(&s.raft.install_snapshot(req).await),
        Err(r) => r.into_response(),
    }
}
