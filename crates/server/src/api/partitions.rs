//! `/v1/partitions`: the partition table (SPEC §2) and the routing answer by key.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drover_types::{Command, Partition, ReplicaRole, Response as Applied, partition_for_key};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, ReadQuery, body, page_limit, parse_json, parse_query};
use crate::node::Node;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    count: u32,
    replication_factor: u8,
}

pub async fn create(
    State(node): State<Node>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: CreateBody = parse_json(&raw)?;
    if let Some(fwd) = node.write_route(Method::POST, &uri, &headers, raw).await? {
        return Ok(fwd);
    }
    let outcome = node
        .propose(Command::CreateTable {
            count: b.count,
            replication_factor: b.replication_factor,
        })
        .await?;
    match outcome.response {
        Applied::Table(t) => Ok((StatusCode::CREATED, Json(t)).into_response()),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<u32>,
    #[serde(default)]
    stale: bool,
}

#[derive(Debug, Serialize)]
struct PartitionPage<'a> {
    items: Vec<&'a Partition>,
    more: bool,
    next_cursor: Option<u32>,
}

pub async fn list(State(node): State<Node>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let q: ListQuery = parse_query(&uri)?;
    let limit = page_limit(q.limit)?;
    if let Some(fwd) = node.read_route(q.stale, &uri, &headers).await? {
        return Ok(fwd);
    }
    let state = node.state().read();
    let start = q.cursor.map_or(0, |c| c as usize + 1);
    let all = &state.state.partitions;
    let items: Vec<&Partition> = all.iter().skip(start).take(limit).collect();
    let more = start + items.len() < all.len();
    let next_cursor = if more {
        items.last().map(|p| p.id)
    } else {
        None
    };
    Ok(Json(PartitionPage {
        items,
        more,
        next_cursor,
    })
    .into_response())
}

pub async fn show(
    State(node): State<Node>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id: u32 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("partition id {id:?} is not a number")))?;
    let q: ReadQuery = parse_query(&uri)?;
    if let Some(fwd) = node.read_route(q.stale, &uri, &headers).await? {
        return Ok(fwd);
    }
    let state = node.state().read();
    match state.state.partition(id) {
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ApiError::not_found(format!("no partition {id}"))),
    }
}

#[derive(Debug, Serialize)]
struct Endpoint {
    worker: String,
    address: String,
    zone: Option<String>,
    leader: bool,
}

/// The routing answer: the partition owning `key` and its healthy serving replicas.
pub async fn by_key(
    State(node): State<Node>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key: u64 = key
        .parse()
        .map_err(|_| ApiError::bad_request(format!("key {key:?} is not a decimal u64")))?;
    let q: ReadQuery = parse_query(&uri)?;
    if let Some(fwd) = node.read_route(q.stale, &uri, &headers).await? {
        return Ok(fwd);
    }
    let guard = node.state().read();
    let s = &guard.state;
    let Some(table) = &s.table else {
        return Err(ApiError::not_found("no partition table yet"));
    };
    let id = partition_for_key(key, table.count);
    let Some(p) = s.partition(id) else {
        return Err(ApiError::not_found(format!("no partition {id}")));
    };
    let serving: Vec<Endpoint> = p
        .replicas
        .iter()
        .filter(|r| r.role == ReplicaRole::Serving)
        .filter_map(|r| s.workers.get(&r.worker).filter(|w| !w.dead))
        .map(|w| Endpoint {
            worker: w.id.to_string(),
            address: w.address.clone(),
            zone: w.zone.clone(),
            leader: p.leader.as_ref() == Some(&w.id),
        })
        .collect();
    Ok(Json(serde_json::json!({"partition": p, "serving": serving})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    generation: u64,
    epoch: u64,
}

/// A worker acknowledges a make or break step of its replica (SPEC §3).
pub async fn ack(
    State(node): State<Node>,
    Path((p, worker)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let partition: u32 = p
        .parse()
        .map_err(|_| ApiError::bad_request(format!("partition id {p:?} is not a number")))?;
    drover_types::validate_worker_id(&worker).map_err(ApiError::bad_request)?;
    let b: AckBody = parse_json(&raw)?;
    if let Some(fwd) = node.write_route(Method::POST, &uri, &headers, raw).await? {
        return Ok(fwd);
    }
    let outcome = node
        .propose(Command::Acknowledge {
            partition,
            worker: worker.as_str().into(),
            generation: b.generation,
            epoch: b.epoch,
        })
        .await?;
    match outcome.response {
        Applied::Partition(p) => Ok(Json(p).into_response()),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}
