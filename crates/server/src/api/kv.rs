//! `/v1/kv`: versioned metadata values with compare-and-set (SPEC §4). Reads are linearizable
//! (through the leader) unless `?stale=true`, which answers from this node's applied state.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use drover_api::{KvDeleted, KvItem, KvPage, KvPut};
use drover_types::{Command, Response as Applied, validate_kv_key};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult, Conflict, NotFound, StandardErrors, TooLarge};
use super::extract::{
    ApiPath, ReadQuery, body, no_dot_segments, page_limit, parse_json, parse_query,
};
use crate::core::Node;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// Compare-and-set: delete only at this version.
    expected_version: Option<u64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only keys starting with this.
    #[serde(default)]
    prefix: String,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Answer from this node's applied state instead of through the leader.
    // Read by the route layer (`forward.rs`); parsed here too, so a malformed value is 400.
    #[allow(dead_code)]
    #[serde(default)]
    stale: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct KeyPath {
    /// 1-512 bytes of `[A-Za-z0-9/_.:-]`; it may contain `/`, but no `.` or `..` segment.
    #[param(pattern = "^[A-Za-z0-9/_.:-]{1,512}$")]
    key: String,
}

fn check_key(key: &str) -> ApiResult<()> {
    validate_kv_key(key).map_err(ApiError::bad_request)?;
    no_dot_segments("key", key)
}

/// One key's value and versions.
#[utoipa::path(
    get,
    path = "/v1/kv/{key}",
    operation_id = "get_kv",
    tag = "kv",
    params(KeyPath, ReadQuery),
    responses(
        (status = 200, description = "The key", body = KvItem),
        StandardErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn get(
    State(node): State<Node>,
    ApiPath(KeyPath { key }): ApiPath<KeyPath>,
    uri: Uri,
) -> ApiResult<Response> {
    check_key(&key)?;
    let _q: ReadQuery = parse_query(&uri)?;
    let state = node.state().read();
    match state.state.kv.get(&key) {
        Some(e) => Ok(Json(KvItem::new(&key, e)).into_response()),
        None => Err(ApiError::not_found(format!("no key {key:?}"))),
    }
}

/// Keys by prefix, in key order, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/kv",
    operation_id = "list_kv",
    tag = "kv",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of keys", body = KvPage),
        StandardErrors,
    )
)]
pub async fn list(State(node): State<Node>, uri: Uri) -> ApiResult<Response> {
    let q: ListQuery = parse_query(&uri)?;
    let limit = page_limit(q.limit)?;
    let state = node.state().read();
    let start = match &q.cursor {
        Some(c) if c.as_str() > q.prefix.as_str() => c.clone(),
        _ => q.prefix.clone(),
    };
    let mut matching = state
        .state
        .kv
        .range(start..)
        .filter(|(k, _)| q.cursor.as_deref() != Some(k.as_str()))
        .take_while(|(k, _)| k.starts_with(&q.prefix));
    let items: Vec<KvItem> = matching
        .by_ref()
        .take(limit)
        .map(|(k, e)| KvItem::new(k, e))
        .collect();
    let more = matching.next().is_some();
    let next_cursor = if more {
        items.last().map(|i| i.key.clone())
    } else {
        None
    };
    Ok(Json(KvPage {
        items,
        more,
        next_cursor,
    })
    .into_response())
}

/// Writes a value, optionally compare-and-set on `expected_version`.
#[utoipa::path(
    put,
    path = "/v1/kv/{key}",
    operation_id = "put_kv",
    tag = "kv",
    params(KeyPath),
    request_body = KvPut,
    responses(
        (status = 200, description = "Written", body = KvItem,
            links(
                ("get" = (operation_id = "get_kv", parameters(("key" = "$request.path.key")))),
                ("delete" = (operation_id = "delete_kv", parameters(("key" = "$request.path.key"),
                    ("expected_version" = "$response.body#/version")))),
            )),
        StandardErrors,
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
    )
)]
pub async fn put(
    State(node): State<Node>,
    ApiPath(KeyPath { key }): ApiPath<KeyPath>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    check_key(&key)?;
    let b: KvPut = parse_json(&raw)?;
    let outcome = node
        .propose(Command::KvPut {
            key,
            value: b.value,
            expected_version: b.expected_version,
        })
        .await?;
    match outcome.response {
        Applied::Kv { key, entry } => Ok(Json(KvItem::new(&key, &entry)).into_response()),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

/// Deletes a key, optionally compare-and-set on `expected_version`.
#[utoipa::path(
    delete,
    path = "/v1/kv/{key}",
    operation_id = "delete_kv",
    tag = "kv",
    params(KeyPath, DeleteQuery),
    responses(
        (status = 200, description = "Deleted", body = KvDeleted),
        StandardErrors,
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn delete(
    State(node): State<Node>,
    ApiPath(KeyPath { key }): ApiPath<KeyPath>,
    uri: Uri,
) -> ApiResult<Response> {
    check_key(&key)?;
    let q: DeleteQuery = parse_query(&uri)?;
    let outcome = node
        .propose(Command::KvDelete {
            key,
            expected_version: q.expected_version,
        })
        .await?;
    match outcome.response {
        Applied::KvDeleted { key, version } => Ok(Json(KvDeleted {
            key,
            deleted: true,
            version,
        })
        .into_response()),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}
