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
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

use super::tls::Peer;

/// Streams one HTTP/2 connection may have open at once (hyper's default).
const H2_MAX_STREAMS: u32 = 200;

/// A connection the loop accepted: its socket, and whether its client is certified.
pub trait Accepted: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {
    fn tcp(&self) -> &TcpStream;
    fn certified(&self) -> bool;
}

impl Accepted for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
    fn certified(&self) -> bool {
        false
    }
}

impl Accepted for drover_tls::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
    fn certified(&self) -> bool {
        drover_tls::peer_certified(self)
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the requests in flight.
/// Each request carries its connection's [`Peer`] as `ConnectInfo`.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: Accepted,
{
    let app = app.layer(RequestBodyTimeoutLayer::new(read_timeout));
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
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(
            http.serve_connection(TokioIo::new(io), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // A client gone, or one too slow with its request (hyper's header timeout).
                tracing::debug!(%addr, error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
