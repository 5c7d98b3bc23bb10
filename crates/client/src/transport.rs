//! How a request reaches the cluster: endpoint failover, sticking to the node that answered
//! last, following leader hints, backing off between rounds, and the one retry rule — a
//! request is sent again only when that cannot apply it twice (the connection failed before it
//! went out, or the request is idempotent). The endpoint methods in `lib.rs` describe each
//! request as a [`Call`]; nothing here knows a route.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use drover_api::{ErrorBody, ErrorCode};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// Whether a request may be sent again after its outcome became unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Repeat {
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
    /// TLS (`drover_tls::client_config`): endpoints given as `host:port` are reached over
    /// HTTPS, the nodes' certificates checked against its CA. `None`: plain HTTP.
    pub tls: Option<drover_tls::rustls::ClientConfig>,
    /// After an answer a follower forwarded to the leader (it names the leader in
    /// `x-drover-leader`), send the next requests to the leader itself when it is one of the
    /// endpoints: for a client of leader-only requests, such as an agent's heartbeats.
    pub prefer_leader: bool,
    /// The local address connections are made from (`None`: the system's choice). A host with
    /// several addresses picks the one its nodes expect; a simulated fleet gives each of its
    /// hosts its own, as separate machines have.
    pub local_address: Option<std::net::IpAddr>,
    /// HTTP/2 over plain HTTP (prior knowledge; the nodes serve both): every request to a node
    /// on one multiplexed connection, kept when a request times out — where HTTP/1.1 drops
    /// the connection of a timed-out request and opens another for the next. Over TLS the
    /// handshake chooses.
    pub http2: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            unreachable_for: None,
            tls: None,
            prefer_leader: false,
            local_address: None,
            http2: false,
        }
    }
}

/// How often an idle HTTP/2 connection is pinged.
const H2_PING_EVERY: Duration = Duration::from_secs(5);

/// A client of the admin API over several nodes. Cheap to clone: clones share the connection
/// pool and the preferred endpoint.
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

/// One request, as an endpoint method describes it: what to send, and whether it may be sent
/// again.
#[derive(Debug)]
pub(crate) struct Call {
    method: Method,
    /// Percent-encoded already (see [`seg`]); the query is encoded by reqwest.
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    repeat: Repeat,
    /// Lengthens the per-attempt timeout (long polls).
    extra_wait: Duration,
}

impl Call {
    pub(crate) fn new(method: Method, path: impl Into<String>, repeat: Repeat) -> Self {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            repeat,
            extra_wait: Duration::ZERO,
        }
    }

    /// A read: safe to send again.
    pub(crate) fn get(path: impl Into<String>) -> Self {
        Call::new(Method::GET, path, Repeat::Safe)
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    /// `key=value` when there is a value.
    pub(crate) fn query_opt(self, key: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }

    pub(crate) fn body(mut self, body: &impl Serialize) -> Result<Self> {
        self.body = Some(serde_json::to_value(body).map_err(|e| Error::Config(e.to_string()))?);
        Ok(self)
    }

    pub(crate) fn waiting(mut self, wait: Duration) -> Self {
        self.extra_wait = wait;
        self
    }
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

/// `host:port` or a URL, as `scheme://host:port` without a trailing slash (`scheme` for a
/// bare `host:port`).
fn normalize_as(endpoint: &str, scheme: &str) -> Result<String> {
    let e = endpoint.trim().trim_end_matches('/');
    if e.is_empty() {
        return Err(Error::Config("an endpoint is empty".into()));
    }
    if e.starts_with("http://") || e.starts_with("https://") {
        Ok(e.to_owned())
    } else {
        Ok(format!("{scheme}://{e}"))
    }
}

/// [`normalize_as`] with plain HTTP.
#[cfg(test)]
fn normalize(endpoint: &str) -> Result<String> {
    normalize_as(endpoint, "http")
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
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let endpoints = endpoints
            .iter()
            .map(|e| normalize_as(e.as_ref(), scheme))
            .collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(Error::Config("no endpoints given".into()));
        }
        let mut http = drover_tls::http_client(opts.tls.clone())
            .no_proxy()
            .connect_timeout(opts.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .local_address(opts.local_address);
        if opts.http2 && opts.tls.is_none() {
            // A connection whose node went away without a word (a cut network) is found by
            // its unanswered pings, not only by the requests that time out on it. Not by a
            // request's timeout: a busy node late with one ping must not cost every request
            // on the connection.
            http = http
                .http2_prior_knowledge()
                .http2_keep_alive_interval(H2_PING_EVERY)
                .http2_keep_alive_timeout(H2_PING_EVERY)
                .http2_keep_alive_while_idle(true);
        }
        let http = http
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

    /// `https` over TLS, else `http`.
    fn scheme(&self) -> &'static str {
        if self.inner.opts.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Sends one request, failing over between endpoints.
    pub(crate) async fn call(&self, call: &Call) -> Result<reqwest::Response> {
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
            let last = match self.attempt(&base, call).await {
                Ok(r) => {
                    let leader = r
                        .headers()
                        .get("x-drover-leader")
                        .filter(|_| inner.opts.prefer_leader)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|l| normalize_as(l, self.scheme()).ok());
                    let next = leader.as_ref().unwrap_or(&base);
                    if let Some(i) = inner.endpoints.iter().position(|e| e == next) {
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

    async fn attempt(&self, base: &str, call: &Call) -> Result<reqwest::Response, Attempt> {
        let inner = &self.inner;
        let method = &call.method;
        let mut req = inner
            .http
            .request(method.clone(), format!("{base}{}", call.path))
            .timeout(inner.opts.timeout + call.extra_wait);
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(t) = &inner.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &call.body {
            req = req.json(b);
        }
        let req = req
            .build()
            .map_err(|e| Attempt::Fatal(Error::Config(format!("{method} {}: {e}", call.path))))?;
        // What an unknown outcome names: the request as sent, query included.
        let what = || format!("{method} {}", req_target(&call.path, &call.query));
        let resp = match inner.http.execute(req).await {
            Ok(r) => r,
            // Nothing was sent: any request may go elsewhere.
            Err(e) if e.is_connect() => return Err(Attempt::NoConnection(cause(base, &e))),
            Err(e) if call.repeat == Repeat::Safe => {
                return Err(Attempt::Retry(cause(base, &e)));
            }
            Err(e) => {
                return Err(Attempt::Fatal(Error::Unknown {
                    endpoint: base.to_owned(),
                    what: what(),
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
        if call.repeat == Repeat::Once && err.is(ErrorCode::OutcomeUnknown) {
            return Err(Attempt::Fatal(Error::Unknown {
                endpoint,
                what: what(),
                message: err.to_string(),
            }));
        }
        // No leader here (or the forward failed): a safe request tries elsewhere, preferring
        // the leader the node named.
        if status == StatusCode::SERVICE_UNAVAILABLE && call.repeat == Repeat::Safe {
            let why = err.to_string();
            if let Error::Api {
                leader: Some(hint), ..
            } = &err
                && let Ok(to) = normalize_as(&hint.address, self.scheme())
                && to != base
            {
                return Err(Attempt::Redirect(to, why));
            }
            return Err(Attempt::Retry(why));
        }
        Err(Attempt::Fatal(err))
    }

    /// Sends `call` and decodes its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let resp = self.call(&call).await?;
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
}

/// `path?k=v&...` as an operator reads it in an error (values unescaped).
fn req_target(path: &str, query: &[(&'static str, String)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{path}?{}", q.join("&"))
}

/// The error shape of SPEC §4 as a typed error (or a plain one if the body is something else).
fn api_error(status: StatusCode, text: &str, endpoint: &str) -> Error {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(ErrorBody { error: e }) => Error::Api {
            status: status.as_u16(),
            code: e.code,
            message: e.message,
            leader: e.leader,
            current_version: e.current_version,
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

/// Every byte but RFC 3986's unreserved characters: what a path segment must escape.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (ids are plain ASCII already; this keeps anything else
/// from changing the URL's meaning).
pub(crate) fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// A KV key as the path of `/v1/kv/{*key}`: each `/`-separated part percent-encoded, the
/// slashes kept (the route takes the rest of the path as the key). Unescaped, a key with `?`,
/// `#`, `%` or a space was cut short or sent as another key.
pub(crate) fn key_path(key: &str) -> String {
    key.split('/').map(seg).collect::<Vec<_>>().join("/")
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
