//! The accept loop: every connection served by hyper (HTTP/1.1, or HTTP/2 where TLS negotiates
//! it) under a read timeout, so a client that opens a connection and then trickles (or never
//! sends) its request holds it for at most that long, not for free.
//!
//! `axum::serve` gives hyper no timer, and without one hyper's header read timeout does not run;
//! so this loop builds the connection itself. The timeout covers the request head (and, as hyper
//! starts it as soon as a connection waits for its next request, an idle keep-alive connection
//! too) and every gap between two pieces of a request body; HTTP/2 connections (peers and
//! clients over TLS) are pinged when idle and dropped when a ping goes unanswered for as long.
//! Graceful shutdown is hyper-util's: stop accepting, let requests in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

use super::sniff::{Prefixed, first_request_is_raft};
use super::tls::Peer;

/// Streams one HTTP/2 connection may have open at once (hyper's default).
const H2_MAX_STREAMS: u32 = 200;

/// A connection the loop accepted: its socket, and whether its client is certified.
pub trait Accepted:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + Sized + 'static
{
    fn tcp(&self) -> &TcpStream;
    fn certified(&self) -> bool;
    /// The connection with its socket registered on the runtime this is called on, where it
    /// is served from then on (its readiness was the accepting runtime's to report).
    fn rehome(self) -> std::io::Result<Self>;
}

impl Accepted for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
    fn certified(&self) -> bool {
        false
    }
    fn rehome(self) -> std::io::Result<Self> {
        TcpStream::from_std(self.into_std()?)
    }
}

impl Accepted for drover_tls::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
    fn certified(&self) -> bool {
        drover_tls::peer_certified(self)
    }
    /// Stays where it is: the TLS acceptor accepts on the API's runtime (`run.rs`), so its
    /// socket is registered there already, and a peer's is polled from the lane with its
    /// readiness reported by the API's reactor.
    fn rehome(self) -> std::io::Result<Self> {
        Ok(self)
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the requests in flight.
/// Each request carries its connection's [`Peer`] as `ConnectInfo`.
///
/// Run it on Raft's own runtime (the lane): it accepts every connection and reads its first
/// bytes there, serves a connection whose first request is a Raft RPC there too — with
/// `raft_app` (Raft's routes) alone, so a client that starts with `POST /raft/` to get onto the
/// lane can do nothing there but what Raft's routes allow — and hands every other one to `api`,
/// served with `app`. So neither a peer's RPC nor its reconnect after a timeout waits behind the
/// API's load (docs/architecture.md, "Raft's own lane").
///
/// The first bytes are read within `read_timeout`, and hyper's header timeout starts after:
/// a client that trickles its request head is cut off within twice the read timeout.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    raft_app: Router,
    read_timeout: Duration,
    api: Handle,
    shutdown: impl Future<Output = ()>,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: Accepted,
{
    let app = app.layer(RequestBodyTimeoutLayer::new(read_timeout));
    let raft_app = raft_app.layer(RequestBodyTimeoutLayer::new(read_timeout));
    // Connections still being read when shutdown starts are closed, not waited for.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(read_timeout)
        .keep_alive_timeout(read_timeout)
        // Agents multiplex their calls on one HTTP/2 connection and cancel the ones that time
        // out; h2's default (20 resets not yet accepted, its guard against rapid-reset floods)
        // dropped a loaded node's agent connections with every request on them. Still bounded:
        // as many as the streams a connection may have open.
        .max_pending_accept_reset_streams(usize::try_from(H2_MAX_STREAMS).unwrap_or(usize::MAX))
        .max_concurrent_streams(H2_MAX_STREAMS);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Requests and answers are single small writes: never hold one back for an ACK.
        if let Err(e) = io.tcp().set_nodelay(true) {
            tracing::debug!(%addr, error = %e, "cannot set TCP_NODELAY");
        }
        let peer = Peer {
            addr,
            certified: io.certified(),
        };
        let (app, raft_app) = (app.clone(), raft_app.clone());
        let (http, watcher, api) = (http.clone(), graceful.watcher(), api.clone());
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut io = io;
            let sniffed = tokio::select! {
                sniffed = tokio::time::timeout(read_timeout, first_request_is_raft(&mut io)) => sniffed,
                _ = stopped.wait_for(|stopping| *stopping) => {
                    tracing::debug!(%addr, "connection closed unread: shutting down");
                    return;
                }
            };
            let (read, raft) = match sniffed {
                Ok(Ok(sniffed)) => sniffed,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "connection ended");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%addr, "connection ended: no request within the read timeout");
                    return;
                }
            };
            let app = if raft { raft_app } else { app };
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(request)
            });
            let served = move |io: L::Io| async move {
                let connection = watcher.watch(
                    http.serve_connection(TokioIo::new(Prefixed::new(read, io)), service)
                        .into_owned(),
                );
                if let Err(e) = connection.await {
                    // A client gone, or one too slow with its request (hyper's header timeout).
                    tracing::debug!(%addr, error = %e, "connection ended");
                }
            };
            if raft {
                served(io).await;
            } else {
                api.spawn(async move {
                    match io.rehome() {
                        Ok(io) => served(io).await,
                        Err(e) => tracing::warn!(%addr, error = %e, "cannot serve a connection"),
                    }
                });
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};

    /// The name of the thread that served the request.
    async fn thread() -> String {
        std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned()
    }

    fn runtime(name: &str) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    }

    /// A client per kind, as a peer's transport and an agent each have one.
    fn client() -> reqwest::Client {
        drover_tls::http_client(None).http1_only().build().unwrap()
    }

    async fn text(r: reqwest::RequestBuilder) -> (u16, String) {
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `GET /v1/block`'s handler says it `entered`, then holds the API runtime's one thread
    /// until `release` is sent.
    struct Gate {
        entered: tokio::sync::mpsc::UnboundedReceiver<()>,
        release: std::sync::mpsc::Sender<()>,
    }

    /// Serves on a lane named `test-raft-lane` with the API on `test-api`; runs `check` with
    /// the address and the gate of `GET /v1/block`.
    fn with_server<F, Fut>(check: F)
    where
        F: FnOnce(SocketAddr, Gate) -> Fut,
        Fut: Future<Output = ()>,
    {
        let (lane, api) = (runtime("test-raft-lane"), runtime("test-api"));
        let api_handle = api.handle().clone();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Arc::new(std::sync::Mutex::new(released));
        let (enter, entered) = tokio::sync::mpsc::unbounded_channel();
        let gate = Gate { entered, release };
        lane.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let raft_app = Router::new().route("/raft/append", post(thread));
            let app = Router::new()
                .route("/v1/cluster", get(thread))
                .route(
                    "/v1/block",
                    get(move || async move {
                        let _ = enter.send(());
                        // Holds the API runtime's only thread, as a saturated runtime would.
                        let _ = released.lock().unwrap().recv();
                        "released"
                    }),
                )
                .merge(raft_app.clone());
            let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(
                listener,
                app,
                raft_app,
                Duration::from_secs(5),
                api_handle,
                async move {
                    let _ = stop_rx.await;
                },
            ));
            check(addr, gate).await;
            stop.send(()).unwrap();
            server.await.unwrap();
        });
        api.shutdown_background();
    }

    #[test]
    fn raft_connections_are_served_on_the_raft_lane_and_the_rest_on_the_callers_runtime() {
        with_server(|addr, _gate| async move {
            let (peer, agent) = (client(), client());
            for _ in 0..3 {
                let on = text(peer.post(format!("http://{addr}/raft/append")).body("x")).await;
                assert_eq!(on, (200, "test-raft-lane".to_owned()));
                let on = text(agent.get(format!("http://{addr}/v1/cluster"))).await;
                assert_eq!(on, (200, "test-api".to_owned()));
            }
            // A connection that began with Raft is served Raft's routes alone.
            let (status, _) = text(peer.get(format!("http://{addr}/v1/cluster"))).await;
            assert_eq!(status, 404);
        });
    }

    #[test]
    fn raft_rpcs_are_answered_while_the_api_runtime_is_stuck() {
        with_server(|addr, mut gate| async move {
            let agent = client();
            let blocked = tokio::spawn(text(agent.get(format!("http://{addr}/v1/block"))));
            tokio::time::timeout(Duration::from_secs(10), gate.entered.recv())
                .await
                .expect("the blocking request reaches its handler");
            let peer = client();
            // Answered on the lane while the API's only thread waits for the gate, which opens
            // only after this answer: were Raft served on the API's runtime, this would never
            // come and the deadline would fail the test.
            let answered = tokio::time::timeout(
                Duration::from_secs(10),
                text(peer.post(format!("http://{addr}/raft/append")).body("x")),
            )
            .await
            .expect("a Raft RPC is answered while the API's runtime is stuck");
            assert_eq!(answered, (200, "test-raft-lane".to_owned()));
            gate.release.send(()).unwrap();
            assert_eq!(blocked.await.unwrap(), (200, "released".to_owned()));
        });
    }
}
