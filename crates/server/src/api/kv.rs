//! `/v1/kv`: versioned metadata values with compare-and-set (SPEC §4). Reads are linearizable
//! (through the leader) unless `?stale=true`, which answers from this node's applied state.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use drover_types::{Command, KvEntry, Response as Applied, validate_kv_key};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, ReadQuery, Route, body, page_limit, parse_json, parse_query};
use crate::node::Node;

#[derive(Debug, Serialize)]
pub struct KvItem {
    pub key: String,
    pub value: String,
    pub version: u64,
    pub create_version: u64,
}

impl KvItem {
    fn new(key: &str, e: &KvEntry) -> Self {
        KvItem {
            key: key.to_owned(),
            value: e.value.clone(),
            version: e.version,
            create_version: e.create_version,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    value: String,
    expected_version: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    expected_version: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
    cursor: Option<String>,
    #[serde(default)]
    stale: bool,
}

#[derive(Debug, Serialize)]
struct ListPage {
    items: Vec<KvItem>,
    /// Whether more keys match after this page.
    more: bool,
    /// Pass as `cursor` to get the next page.
    next_cursor: Option<String>,
}

fn check_key(key: &str) -> ApiResult<()> {
    validate_kv_key(key).map_err(ApiError::bad_request)
}

pub async fn get(
    State(node): State<Node>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_key(&key)?;
    let q: ReadQuery = parse_query(&uri)?;
    if let Some(forwarded) = node.read_route(q.stale, &uri, &headers).await? {
        return Ok(forwarded);
    }
    let state = node.state().read();
    match state.state.kv.get(&key) {
        Some(e) => Ok(Json(KvItem::new(&key, e)).into_response()),
        None => Err(ApiError::not_found(format!("no key {key:?}"))),
    }
}

pub async fn list(State(node): State<Node>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let q: ListQuery = parse_query(&uri)?;
    let limit = page_limit(q.limit)?;
    if let Some(forwarded) = node.read_route(q.stale, &uri, &headers).await? {
        return Ok(forwarded);
    }
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
    Ok(Json(ListPage {
        items,
        more,
        next_cursor,
    })
    .into_response())
}

pub async fn put(
    State(node): State<Node>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    check_key(&key)?;
    let b: PutBody = parse_json(&raw)?;
    if let Route::Forward(leader) = node.route(&headers)? {
        return Ok(node
            .forward(&leader, Method::PUT, &uri, &headers, raw)
            .await);
    }
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

#[derive(Debug, Serialize)]
struct Deleted {
    key: String,
    deleted: bool,
    version: u64,
}

pub async fn delete(
    State(node): State<Node>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_key(&key)?;
    let q: DeleteQuery = parse_query(&uri)?;
    if let Route::Forward(leader) = node.route(&headers)? {
        return Ok(node
            .forward(&leader, Method::DELETE, &uri, &headers, Bytes::new())
            .await);
    }
    let outcome = node
        .propose(Command::KvDelete {
            key,
            expected_version: q.expected_version,
        })
        .await?;
    match outcome.response {
        Applied::KvDeleted { key, version } => Ok(Json(Deleted {
            key,
            deleted: true,
            version,
        })
        .into_response()),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}
