//! `/v1/partitions`: the partition table (SPEC §2) and the routing answer by key.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drover_api::{AckRequest, CreateTable, Endpoint, PartitionPage, Routing};
use drover_types::{
    Command, Partition, ReplicaRole, Response as Applied, Table, partition_for_key,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{
    AgentErrors, ApiError, ApiResult, Conflict, NotFound, StandardErrors, TooLarge,
};
use super::extract::{ApiPath, ReadQuery, body, page_limit, parse_json, parse_query};
use crate::core::Node;

/// Creates the partition table, once.
#[utoipa::path(
    post,
    path = "/v1/partitions",
    operation_id = "create_table",
    tag = "partitions",
    request_body = CreateTable,
    responses(
        (status = 201, description = "Created", body = Table),
        StandardErrors,
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
    )
)]
pub async fn create(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: CreateTable = parse_json(&raw)?;
    let outcome = node
        .propose(Command::CreateTable {
            count: b.count,
            replication_factor: b.replication_factor,
        })
        .await?;
    match outcome.response {
        Applied::Table(t) => {
            tracing::info!(
                target: "drover::audit",
                actor = "admin",
                action = "create_table",
                count = b.count,
                replication_factor = b.replication_factor,
                "partition table created"
            );
            Ok((StatusCode::CREATED, Json(t)).into_response())
        }
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<u32>,
    /// Answer from this node's applied state instead of through the leader.
    // Read by the route layer (`forward.rs`); parsed here too, so a malformed value is 400.
    #[allow(dead_code)]
    #[serde(default)]
    stale: bool,
}

/// The partition table in id order, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/partitions",
    operation_id = "list_partitions",
    tag = "partitions",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of partitions", body = PartitionPage),
        StandardErrors,
    )
)]
pub async fn list(State(node): State<Node>, uri: Uri) -> ApiResult<Response> {
    let q: ListQuery = parse_query(&uri)?;
    let limit = page_limit(q.limit)?;
    let state = node.state().read();
    let start = q.cursor.map_or(0, |c| c as usize + 1);
    let all = &state.state.partitions;
    let items: Vec<Partition> = all.iter().skip(start).take(limit).cloned().collect();
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PartitionPath {
    /// The partition's id, `0..count`.
    #[param(value_type = u32)]
    p: String,
}

/// One partition: key range, replicas and their roles, preferred leader, epoch.
#[utoipa::path(
    get,
    path = "/v1/partitions/{p}",
    operation_id = "show_partition",
    tag = "partitions",
    params(PartitionPath, ReadQuery),
    responses(
        (status = 200, description = "The partition", body = Partition),
        StandardErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn show(
    State(node): State<Node>,
    ApiPath(PartitionPath { p: id }): ApiPath<PartitionPath>,
    uri: Uri,
) -> ApiResult<Response> {
    let id: u32 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("partition id {id:?} is not a number")))?;
    let _q: ReadQuery = parse_query(&uri)?;
    let state = node.state().read();
    match state.state.partition(id) {
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ApiError::not_found(format!("no partition {id}"))),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct KeyPath {
    /// A key of the u64 key space, in decimal.
    #[param(value_type = u64)]
    key: String,
}

/// The routing answer: the partition owning `key` and its healthy serving replicas.
#[utoipa::path(
    get,
    path = "/v1/partitions/by-key/{key}",
    operation_id = "locate_key",
    tag = "partitions",
    params(KeyPath, ReadQuery),
    responses(
        (status = 200, description = "The partition owning the key and where it is served", body = Routing),
        StandardErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn by_key(
    State(node): State<Node>,
    ApiPath(KeyPath { key }): ApiPath<KeyPath>,
    uri: Uri,
) -> ApiResult<Response> {
    let key: u64 = key
        .parse()
        .map_err(|_| ApiError::bad_request(format!("key {key:?} is not a decimal u64")))?;
    let _q: ReadQuery = parse_query(&uri)?;
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
    Ok(Json(Routing {
        partition: p.clone(),
        serving,
    })
    .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ReplicaPath {
    /// The partition's id.
    #[param(value_type = u32)]
    p: String,
    /// The acknowledging worker's id.
    #[param(pattern = "^[a-z0-9._-]{1,64}$")]
    worker: String,
}

/// A worker acknowledges a make or break step of its replica (SPEC §3).
#[utoipa::path(
    post,
    path = "/v1/partitions/{p}/replicas/{worker}/ack",
    operation_id = "ack_replica",
    tag = "partitions",
    params(ReplicaPath),
    request_body = AckRequest,
    responses(
        (status = 200, description = "The partition after the step (unchanged for a repeated acknowledgement)", body = Partition),
        AgentErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn ack(
    State(node): State<Node>,
    ApiPath(ReplicaPath { p, worker }): ApiPath<ReplicaPath>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let partition: u32 = p
        .parse()
        .map_err(|_| ApiError::bad_request(format!("partition id {p:?} is not a number")))?;
    drover_types::validate_worker_id(&worker).map_err(ApiError::bad_request)?;
    let b: AckRequest = parse_json(&raw)?;
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
