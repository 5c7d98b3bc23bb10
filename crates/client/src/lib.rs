//! A typed client for Drover's admin HTTP API (SPEC §4).
//!
//! One [`Client`] talks to several nodes. Any node serves any request (followers forward to the
//! leader), so the client sticks to the node that last answered and moves on when it cannot be
//! reached or has no leader. Retries follow one rule: a request is sent again only when that
//! cannot apply it twice — the connection failed before the request went out, or the request is
//! idempotent (reads, registration with the same incarnation, heartbeats, acknowledgements,
//! state changes to a state). A write whose outcome is unknown is reported as
//! [`Error::Unknown`], never silently retried.

pub mod stdout;
mod types;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use drover_api::ErrorCode;
use drover_types::{Partition, Settings, SettingsPatch, Table, WorkerState};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use types::*;

/// The leader as a node that could not serve the request knew it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct LeaderHint {
    pub id: u64,
    pub address: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with its error shape.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
        leader: Option<LeaderHint>,
        current_version: Option<u64>,
    },
    /// No endpoint could be reached (or none had a leader) before the retry budget ran out.
    #[error("no endpoint reachable: tried {}; last error: {last}", tried.join(", "))]
    Unreachable { tried: Vec<String>, last: String },
    /// A write that is not safe to repeat was sent, and no answer came back: it may or may not
    /// have been applied. Read the state to find out.
    #[error(
        "outcome unknown: {endpoint} did not answer a {what} ({message}); read the state before retrying"
    )]
    Unknown {
        endpoint: String,
        what: String,
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from {endpoint}: {message}")]
    Decode { endpoint: String, message: String },
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The API error code, if the API answered.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the API answered with `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code() == Some(&code)
    }

    /// The HTTP status, if the API answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A worker call refused because this generation was declared dead: the agent may register
    /// again (a new generation, holding nothing).
    pub fn is_fenced(&self) -> bool {
        self.is(ErrorCode::Fenced)
    }

    /// A worker call refused because a newer process registered with this worker id: the
    /// older one must stop serving for good and never register again on its own.
    pub fn is_superseded(&self) -> bool {
        self.is(ErrorCode::StaleGeneration)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a request may be sent again after its outcome became unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    Safe,
    Once,
}

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Per-attempt timeout (long polls add their `wait`).
    pub timeout: Duration,
    /// How long to keep trying other endpoints (and the same ones again, with backoff) before
    /// giving up with [`Error::Unreachable`].
    pub retry_for: Duration,
    /// How long one attempt may take to set up its connection.
    pub connect_timeout: Duration,
    /// While no endpoint has accepted a connection at all (every one refused, or timed out
    /// connecting), give up after this instead of `retry_for`: an operator's tool wants the
    /// real cause now, while an agent (`None`) rides out a whole cluster's restart.
    pub unreachable_for: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            unreachable_for: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    endpoints: Vec<String>,
    token: Option<String>,
    opts: ClientOptions,
    /// Index of the endpoint that answered last.
    preferred: AtomicUsize,
}

/// One attempt's failure, and whether to try again.
enum Attempt {
    /// Never sent, or sent and safe to send again: try the next endpoint.
    Retry(String),
    /// No connection could be set up (refused, or timed out connecting): try the next one.
    NoConnection(String),
    /// Try this address next (a leader hint).
    Redirect(String, String),
    Fatal(Error),
}

/// `host:port` or a URL, as `http://host:port` without a trailing slash.
fn normalize(endpoint: &str) -> Result<String> {
    let e = endpoint.trim().trim_end_matches('/');
    if e.is_empty() {
        return Err(Error::Config("an endpoint is empty".into()));
    }
    if e.starts_with("http://") || e.starts_with("https://") {
        Ok(e.to_owned())
    } else {
        Ok(format!("http://{e}"))
    }
}

impl Client {
    /// A client for `endpoints` (`host:port` or URLs), with an optional bearer token.
    pub fn new(endpoints: &[impl AsRef<str>], token: Option<String>) -> Result<Client> {
        Self::with_options(endpoints, token, ClientOptions::default())
    }

    pub fn with_options(
        endpoints: &[impl AsRef<str>],
        token: Option<String>,
        opts: ClientOptions,
    ) -> Result<Client> {
        let endpoints = endpoints
            .iter()
            .map(|e| normalize(e.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(Error::Config("no endpoints given".into()));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(opts.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let start = rand::rng().random_range(0..endpoints.len());
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoints,
                token: token.filter(|t| !t.is_empty()),
                opts,
                preferred: AtomicUsize::new(start),
            }),
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// Sends one request, failing over between endpoints. `extra_wait` lengthens the
    /// per-attempt timeout (long polls).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
        extra_wait: Duration,
    ) -> Result<reqwest::Response> {
        let inner = &self.inner;
        let n = inner.endpoints.len();
        let start = tokio::time::Instant::now();
        let deadline = start + inner.opts.retry_for;
        // Whether every attempt so far failed to connect at all.
        let mut none_listen = true;
        let mut tried: Vec<String> = Vec::new();
        let mut next: Option<String> = None;
        let mut backoff = Duration::from_millis(50);
        let mut attempt = 0usize;
        loop {
            let base = match next.take() {
                Some(b) => b,
                None => {
                    let i = (inner.preferred.load(Ordering::Relaxed) + attempt) % n;
                    inner.endpoints[i].clone()
                }
            };
            attempt += 1;
            if !tried.contains(&base) {
                tried.push(base.clone());
            }
            let outcome = self
                .attempt(&method, &base, path, body, repeat, extra_wait)
                .await;
            let last = match outcome {
                Ok(r) => {
                    if let Some(i) = inner.endpoints.iter().position(|e| *e == base) {
                        inner.preferred.store(i, Ordering::Relaxed);
                    }
                    return Ok(r);
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::NoConnection(why)) => why,
                Err(Attempt::Retry(why)) => {
                    none_listen = false;
                    why
                }
                Err(Attempt::Redirect(to, why)) => {
                    none_listen = false;
                    next = Some(to);
                    why
                }
            };
            tracing::debug!(endpoint = %base, error = %last, "request failed; trying another endpoint");
            let now = tokio::time::Instant::now();
            let nobody_there = none_listen
                && attempt >= n
                && inner
                    .opts
                    .unreachable_for
                    .is_some_and(|limit| now >= start + limit);
            if now >= deadline || nobody_there {
                return Err(Error::Unreachable { tried, last });
            }
            // Back off once every endpoint has been tried this round.
            if attempt.is_multiple_of(n) {
                let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
        extra_wait: Duration,
    ) -> Result<reqwest::Response, Attempt> {
        let inner = &self.inner;
        let mut req = inner
            .http
            .request(method.clone(), format!("{base}{path}"))
            .timeout(inner.opts.timeout + extra_wait);
        if let Some(t) = &inner.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            // Nothing was sent: any request may go elsewhere.
            Err(e) if e.is_connect() => return Err(Attempt::NoConnection(cause(base, &e))),
            Err(e) if repeat == Repeat::Safe => {
                return Err(Attempt::Retry(cause(base, &e)));
            }
            Err(e) => {
                return Err(Attempt::Fatal(Error::Unknown {
                    endpoint: base.to_owned(),
                    what: format!("{method} {path}"),
                    message: cause(base, &e),
                }));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let endpoint = base.to_owned();
        let text = resp.text().await.unwrap_or_default();
        let err = api_error(status, &text, &endpoint);
        // The node lost track of a write it had sent on: say so, as for a lost connection.
        if repeat == Repeat::Once && err.is(ErrorCode::OutcomeUnknown) {
            return Err(Attempt::Fatal(Error::Unknown {
                endpoint,
                what: format!("{method} {path}"),
                message: err.to_string(),
            }));
        }
        // No leader here (or the forward failed): a safe request tries elsewhere, preferring
        // the leader the node named.
        if status == StatusCode::SERVICE_UNAVAILABLE && repeat == Repeat::Safe {
            let why = err.to_string();
            if let Error::Api {
                leader: Some(hint), ..
            } = &err
                && let Ok(to) = normalize(&hint.address)
                && to != base
            {
                return Err(Attempt::Redirect(to, why));
            }
            return Err(Attempt::Retry(why));
        }
        Err(Attempt::Fatal(err))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<T> {
        self.json_waiting(method, path, body, repeat, Duration::ZERO)
            .await
    }

    async fn json_waiting<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
        extra_wait: Duration,
    ) -> Result<T> {
        let resp = self.call(method, path, body, repeat, extra_wait).await?;
        let endpoint = resp.url().origin().ascii_serialization();
        let bytes = resp.bytes().await.map_err(|e| Error::Decode {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            endpoint,
            message: format!("{e} in {}", String::from_utf8_lossy(&bytes)),
        })
    }

    // ---- cluster ------------------------------------------------------------------------

    pub async fn cluster(&self) -> Result<ClusterStatus> {
        self.json(Method::GET, "/v1/cluster", None, Repeat::Safe)
            .await
    }

    /// Adds a node (as a learner; the leader promotes it once caught up).
    pub async fn add_member(&self, id: u64, address: &str) -> Result<Value> {
        let body = json!({"id": id, "address": address});
        self.json(
            Method::POST,
            "/v1/cluster/members",
            Some(&body),
            Repeat::Once,
        )
        .await
    }

    pub async fn remove_member(&self, id: u64) -> Result<Value> {
        let path = format!("/v1/cluster/members/{id}");
        self.json(Method::DELETE, &path, None, Repeat::Once).await
    }

    // ---- workers ------------------------------------------------------------------------

    /// Registers (or re-registers) a worker. Idempotent for one incarnation.
    pub async fn register(&self, id: &str, reg: &Registration) -> Result<drover_types::Worker> {
        let body = to_value(reg)?;
        let path = format!("/v1/workers/{}", seg(id));
        self.json(Method::PUT, &path, Some(&body), Repeat::Safe)
            .await
    }

    pub async fn worker(&self, id: &str) -> Result<WorkerView> {
        let path = format!("/v1/workers/{}", seg(id));
        self.json(Method::GET, &path, None, Repeat::Safe).await
    }

    /// One page of workers, optionally filtered by state and zone.
    pub async fn workers(
        &self,
        state: Option<WorkerState>,
        zone: Option<&str>,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page<WorkerView>> {
        let mut q = Vec::new();
        if let Some(s) = state {
            q.push(format!("state={}", state_name(s)));
        }
        if let Some(z) = zone {
            q.push(format!("zone={}", seg(z)));
        }
        if let Some(c) = cursor {
            q.push(format!("cursor={}", seg(c)));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let path = with_query("/v1/workers", &q);
        self.json(Method::GET, &path, None, Repeat::Safe).await
    }

    /// Every worker, following the cursor.
    pub async fn all_workers(&self, state: Option<WorkerState>) -> Result<Vec<WorkerView>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .workers(state, None, cursor.as_deref(), Some(1000))
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) if page.more => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// Changes a worker's state. `generation` is for agents (fencing).
    ///
    /// Asking for the state a worker is in succeeds and changes nothing, but whether a repeat
    /// is harmless depends on what happened in between: a repeated `active` cancels a drain an
    /// operator started meanwhile, a repeated forced disable drops the replicas of a worker that
    /// came back. So only a plain request for `draining` is repeated on an unknown outcome;
    /// every other one is sent once and answered [`Error::Unknown`] (SPEC §4).
    pub async fn set_state(&self, id: &str, change: &StateRequest) -> Result<StateChange> {
        let body = to_value(change)?;
        let path = format!("/v1/workers/{}/state", seg(id));
        let repeat = if change.state == WorkerState::Draining && !change.force {
            Repeat::Safe
        } else {
            Repeat::Once
        };
        self.json(Method::POST, &path, Some(&body), repeat).await
    }

    pub async fn heartbeat(&self, id: &str, generation: u64) -> Result<HeartbeatReply> {
        let body = json!({"generation": generation});
        let path = format!("/v1/workers/{}/heartbeat", seg(id));
        self.json(Method::POST, &path, Some(&body), Repeat::Safe)
            .await
    }

    /// Tells the leader this process (at `generation`) stopped serving for good, so a newer
    /// process of the worker may hold a lease at once instead of waiting this one's out.
    pub async fn release_lease(&self, id: &str, generation: u64) -> Result<HeartbeatReply> {
        let body = json!({"generation": generation, "release": true});
        let path = format!("/v1/workers/{}/heartbeat", seg(id));
        self.json(Method::POST, &path, Some(&body), Repeat::Safe)
            .await
    }

    pub async fn remove_worker(&self, id: &str) -> Result<Removed> {
        let path = format!("/v1/workers/{}", seg(id));
        self.json(Method::DELETE, &path, None, Repeat::Once).await
    }

    /// The worker's assignments once their version exceeds `after`, or after `wait` unchanged.
    pub async fn assignments(&self, id: &str, after: u64, wait: Duration) -> Result<Assignments> {
        let path = format!(
            "/v1/workers/{}/assignments?after={after}&wait={}ms",
            seg(id),
            wait.as_millis()
        );
        self.json_waiting(Method::GET, &path, None, Repeat::Safe, wait)
            .await
    }

    /// Drains one worker (`dry_run`: only plan). A drain that cannot finish is refused with
    /// `drain_infeasible`; see [`Client::drain_workers`] to start one anyway.
    pub async fn drain(&self, id: &str, dry_run: bool) -> Result<DrainReply> {
        let opts = DrainOptions {
            dry_run,
            ..DrainOptions::default()
        };
        self.drain_workers(&[id.to_owned()], opts).await
    }

    /// Drains a set of workers as one operation (a rack, a zone).
    pub async fn drain_set(&self, ids: &[String], dry_run: bool) -> Result<DrainReply> {
        let opts = DrainOptions {
            dry_run,
            ..DrainOptions::default()
        };
        self.drain_workers(ids, opts).await
    }

    /// Drains `ids` as one operation with `opts`. A real drain is sent once (its outcome may
    /// depend on what happened in between); a dry run is a read.
    pub async fn drain_workers(&self, ids: &[String], opts: DrainOptions) -> Result<DrainReply> {
        self.drain_with_reason(ids, opts, None).await
    }

    // ---- partitions ---------------------------------------------------------------------

    pub async fn create_table(&self, count: u32, replication_factor: u8) -> Result<Table> {
        let body = json!({"count": count, "replication_factor": replication_factor});
        self.json(Method::POST, "/v1/partitions", Some(&body), Repeat::Once)
            .await
    }

    pub async fn partitions(
        &self,
        cursor: Option<u32>,
        limit: Option<usize>,
    ) -> Result<Page<Partition, u32>> {
        let mut q = Vec::new();
        if let Some(c) = cursor {
            q.push(format!("cursor={c}"));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let path = with_query("/v1/partitions", &q);
        self.json(Method::GET, &path, None, Repeat::Safe).await
    }

    /// The whole table, following the cursor.
    pub async fn all_partitions(&self) -> Result<Vec<Partition>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.partitions(cursor, Some(1000)).await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) if page.more => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    pub async fn partition(&self, id: u32) -> Result<Partition> {
        let path = format!("/v1/partitions/{id}");
        self.json(Method::GET, &path, None, Repeat::Safe).await
    }

    /// The partition owning `key`, and its healthy serving replicas.
    pub async fn locate(&self, key: u64) -> Result<Located> {
        let path = format!("/v1/partitions/by-key/{key}");
        self.json(Method::GET, &path, None, Repeat::Safe).await
    }

    /// Acknowledges a joining replica caught up, or a leaving one released.
    pub async fn ack(
        &self,
        partition: u32,
        worker: &str,
        generation: u64,
        epoch: u64,
    ) -> Result<Partition> {
        let body = json!({"generation": generation, "epoch": epoch});
        let path = format!("/v1/partitions/{partition}/replicas/{}/ack", seg(worker));
        self.json(Method::POST, &path, Some(&body), Repeat::Safe)
            .await
    }

    // ---- KV -----------------------------------------------------------------------------

    /// A linearizable read (or the answering node's applied state with `stale`).
    pub async fn kv_get(&self, key: &str, stale: bool) -> Result<KvItem> {
        let key = key_path(key);
        let path = format!("/v1/kv/{key}{}", if stale { "?stale=true" } else { "" });
        self.json(Method::GET, &path, None, Repeat::Safe).await
    }

    /// Writes a value; `expected_version` makes it a compare-and-set (0: create only).
    pub async fn kv_put(
        &self,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
    ) -> Result<KvItem> {
        let body = match expected_version {
            Some(v) => json!({"value": value, "expected_version": v}),
            None => json!({"value": value}),
        };
        let path = format!("/v1/kv/{}", key_path(key));
        self.json(Method::PUT, &path, Some(&body), Repeat::Once)
            .await
    }

    pub async fn kv_delete(&self, key: &str, expected_version: Option<u64>) -> Result<KvDeleted> {
        let key = key_path(key);
        let path = match expected_version {
            Some(v) => format!("/v1/kv/{key}?expected_version={v}"),
            None => format!("/v1/kv/{key}"),
        };
        self.json(Method::DELETE, &path, None, Repeat::Once).await
    }

    pub async fn kv_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page<KvItem>> {
        let mut q = vec![format!("prefix={}", seg(prefix))];
        if let Some(c) = cursor {
            q.push(format!("cursor={}", seg(c)));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let path = with_query("/v1/kv", &q);
        self.json(Method::GET, &path, None, Repeat::Safe).await
    }

    // ---- settings -----------------------------------------------------------------------

    /// The replicated cluster settings (admin token).
    pub async fn settings(&self) -> Result<Settings> {
        self.json(Method::GET, "/v1/settings", None, Repeat::Safe)
            .await
    }

    /// Changes the settings `patch` names, in one Raft command (admin token). Sent once: a
    /// repeat after an unknown outcome could undo a change made in between.
    pub async fn set_settings(
        &self,
        patch: &SettingsPatch,
        expected_version: Option<u64>,
    ) -> Result<Settings> {
        let mut body = to_value(patch)?;
        if let Value::Object(fields) = &mut body {
            fields.retain(|_, v| !v.is_null());
            if let Some(v) = expected_version {
                fields.insert("expected_version".into(), v.into());
            }
        }
        self.json(Method::PUT, "/v1/settings", Some(&body), Repeat::Once)
            .await
    }

    // ---- events and backup --------------------------------------------------------------

    /// Events after sequence number `after` (410 `compacted` if those are gone).
    pub async fn events(&self, after: u64, limit: Option<usize>) -> Result<EventPage> {
        let mut q = vec![format!("after={after}")];
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let path = with_query("/v1/events", &q);
        self.json(Method::GET, &path, None, Repeat::Safe).await
    }

    /// A consistent snapshot of the replicated state, for backup (admin token).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let resp = self
            .call(
                Method::GET,
                "/v1/snapshot",
                None,
                Repeat::Safe,
                Duration::ZERO,
            )
            .await?;
        let endpoint = resp.url().origin().ascii_serialization();
        let version = resp
            .headers()
            .get("x-drover-state-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Decode {
                endpoint: endpoint.clone(),
                message: "snapshot without x-drover-state-version".into(),
            })?;
        let bytes = resp.bytes().await.map_err(|e| Error::Decode {
            endpoint,
            message: e.to_string(),
        })?;
        Ok(Snapshot { bytes, version })
    }
}

impl Client {
    /// `GET /healthz`: whether some node answers at all. (Readiness, `/readyz`, is a property
    /// of one node: ask that node, e.g. with curl or a load balancer's probe.)
    pub async fn healthy(&self) -> Result<()> {
        self.call(Method::GET, "/healthz", None, Repeat::Safe, Duration::ZERO)
            .await
            .map(drop)
    }

    /// `GET /metrics`, in Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        let resp = self
            .call(Method::GET, "/metrics", None, Repeat::Safe, Duration::ZERO)
            .await?;
        let endpoint = resp.url().origin().ascii_serialization();
        resp.text().await.map_err(|e| Error::Decode {
            endpoint,
            message: e.to_string(),
        })
    }

    /// `GET /openapi.json`: the API's OpenAPI 3 document.
    pub async fn openapi(&self) -> Result<Value> {
        self.json(Method::GET, "/openapi.json", None, Repeat::Safe)
            .await
    }

    // ---- operator safety (SPEC §1 cordons, §3 pause) ---------------------------------------

    /// Cordons worker `id` under `holder`: nothing new is placed on it. Placing the same cordon
    /// again changes nothing, so it is repeated on an unknown outcome.
    pub async fn cordon(
        &self,
        id: &str,
        holder: &str,
        reason: &str,
        expiry: &Expiry,
    ) -> Result<drover_types::Worker> {
        let mut body = json!({"reason": reason});
        expiry.fill(&mut body);
        let path = format!("/v1/workers/{}/cordon/{}", seg(id), seg(holder));
        self.json(Method::PUT, &path, Some(&body), Repeat::Safe)
            .await
    }

    /// Removes `holder`'s cordon on `id`. Sent once: repeated after another cordon by the same
    /// holder, it would remove that one.
    pub async fn uncordon(&self, id: &str, holder: &str) -> Result<drover_types::Worker> {
        let path = format!("/v1/workers/{}/cordon/{}", seg(id), seg(holder));
        self.json(Method::DELETE, &path, None, Repeat::Once).await
    }

    /// Pauses new moves. Sent once: repeated after someone resumed, it would pause again.
    pub async fn pause_scheduler(
        &self,
        reason: &str,
        expiry: &Expiry,
    ) -> Result<drover_types::Brakes> {
        let mut body = json!({"reason": reason});
        expiry.fill(&mut body);
        self.json(
            Method::POST,
            "/v1/scheduler/pause",
            Some(&body),
            Repeat::Once,
        )
        .await
    }

    /// Ends the pause. Sent once: repeated after someone paused again, it would end that pause.
    pub async fn resume_scheduler(&self) -> Result<drover_types::Brakes> {
        self.json(Method::POST, "/v1/scheduler/resume", None, Repeat::Once)
            .await
    }

    /// [`Client::drain_workers`] with a reason, recorded on each worker and in its event.
    pub async fn drain_with_reason(
        &self,
        ids: &[String],
        opts: DrainOptions,
        reason: Option<&str>,
    ) -> Result<DrainReply> {
        let mut body = json!({
            "workers": ids,
            "dry_run": opts.dry_run,
            "allow_blocked": opts.allow_blocked,
        });
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        let repeat = if opts.dry_run {
            Repeat::Safe
        } else {
            Repeat::Once
        };
        self.json(Method::POST, "/v1/drain", Some(&body), repeat)
            .await
    }
}

/// How to drain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainOptions {
    /// Only plan and answer the verdict.
    pub dry_run: bool,
    /// Start even a drain that cannot finish (it stays Draining, blocked).
    pub allow_blocked: bool,
}

/// A state change request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateRequest {
    pub state: WorkerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Why (recorded on the worker and in its event; at most 256 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl StateRequest {
    pub fn to(state: WorkerState) -> Self {
        StateRequest {
            state,
            expected_version: None,
            force: false,
            generation: None,
            reason: None,
        }
    }
}

/// When a cordon or pause ends by itself: never (until removed), at a time, or after a
/// duration counted on the leader's clock (the clock that judges the expiry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Expiry {
    #[default]
    Never,
    /// Milliseconds since the Unix epoch.
    At(u64),
    /// From when the leader receives the request.
    After(Duration),
}

impl Expiry {
    fn fill(&self, body: &mut Value) {
        match self {
            Expiry::Never => {}
            Expiry::At(ms) => body["until"] = json!(ms),
            Expiry::After(d) => body["for"] = json!(format!("{}ms", d.as_millis())),
        }
    }
}

fn to_value(v: &impl Serialize) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Config(e.to_string()))
}

/// The error shape of SPEC §4 as a typed error (or a plain one if the body is something else).
fn api_error(status: StatusCode, text: &str, endpoint: &str) -> Error {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: ErrorCode,
        message: String,
        leader: Option<LeaderHint>,
        current_version: Option<u64>,
    }
    match serde_json::from_str::<Body>(text) {
        Ok(b) => Error::Api {
            status: status.as_u16(),
            code: b.error.code,
            message: b.error.message,
            leader: b.error.leader,
            current_version: b.error.current_version,
        },
        Err(_) => Error::Api {
            status: status.as_u16(),
            code: ErrorCode::Other("http".into()),
            message: format!("{endpoint} answered {status}: {}", text.trim()),
            leader: None,
            current_version: None,
        },
    }
}

/// What went wrong with a request, in an operator's words: "connection refused to
/// 127.0.0.1:7001", "timed out connecting to 10.0.0.1:7001", or the whole chain of causes —
/// never only reqwest's top line ("error sending request for url (...)"), which hides them.
fn cause(base: &str, e: &reqwest::Error) -> String {
    let host = base
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let mut io = None;
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(i) = s.downcast_ref::<std::io::Error>() {
            io = io.or(Some(i.kind()));
        }
        let text = s.to_string();
        if !chain.iter().any(|c| c.contains(&text)) {
            chain.push(text);
        }
        source = s.source();
    }
    match io {
        Some(std::io::ErrorKind::ConnectionRefused) => format!("connection refused to {host}"),
        Some(std::io::ErrorKind::ConnectionReset) => format!("connection reset by {host}"),
        _ if e.is_connect() && e.is_timeout() => format!("timed out connecting to {host}"),
        _ if e.is_timeout() => format!("{host} did not answer in time"),
        _ => {
            // The top line repeats the URL; the causes say what happened.
            let rest = chain.split_off(1);
            if rest.is_empty() {
                format!("{host}: {}", chain[0])
            } else {
                format!("{host}: {}", rest.join(": "))
            }
        }
    }
}

/// Lower-case wire name of a state.
pub fn state_name(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Provisioning => "provisioning",
        WorkerState::Active => "active",
        WorkerState::Draining => "draining",
        WorkerState::Disabled => "disabled",
    }
}

/// Percent-encodes one path segment or query value (ids and zones are plain ASCII already;
/// this keeps anything else from changing the URL's meaning).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A KV key as the path of `/v1/kv/{*key}`: each `/`-separated part percent-encoded, the
/// slashes kept (the route takes the rest of the path as the key). Unescaped, a key with `?`,
/// `#`, `%` or a space was cut short or sent as another key.
fn key_path(key: &str) -> String {
    key.split('/').map(seg).collect::<Vec<_>>().join("/")
}

fn with_query(path: &str, q: &[String]) -> String {
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalize() {
        assert_eq!(
            normalize("127.0.0.1:7001/").unwrap(),
            "http://127.0.0.1:7001"
        );
        assert_eq!(normalize("https://a:1").unwrap(), "https://a:1");
        assert!(normalize(" ").is_err());
    }

    #[test]
    fn the_error_shape_maps_to_a_typed_error() {
        let e = api_error(
            StatusCode::CONFLICT,
            r#"{"error":{"code":"version_conflict","message":"m","current_version":7}}"#,
            "http://x",
        );
        assert!(e.is(ErrorCode::VersionConflict));
        assert!(matches!(
            e,
            Error::Api {
                status: 409,
                current_version: Some(7),
                ..
            }
        ));
        let e = api_error(StatusCode::BAD_GATEWAY, "oops", "http://x");
        assert_eq!(e.status(), Some(502));
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(seg("w-1.a_b"), "w-1.a_b");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
