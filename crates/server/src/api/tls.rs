//! Serving over TLS (`--cert-file`): the listener that hands axum connections whose handshake
//! completed (`drover_tls::Acceptor`), what each connection tells a handler (its peer address
//! and whether it presented a verified client certificate), and the check the Raft routes get
//! with `--peer-client-cert-auth`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use http::StatusCode;
use tokio::net::TcpStream;

/// The listener of a node serving HTTPS.
#[derive(Debug)]
pub struct Listener(pub drover_tls::Acceptor);

impl axum::serve::Listener for Listener {
    type Io = drover_tls::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.0.accept().await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}

/// What a connection says about its client.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// It presented a client certificate signed by the trusted CA.
    pub certified: bool,
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Peer {
        Peer {
            addr: *stream.remote_addr(),
            certified: drover_tls::peer_certified(stream.io()),
        }
    }
}

/// Admits a Raft RPC only over a connection with a verified client certificate.
pub async fn require_peer_certificate(request: Request, next: Next) -> Response {
    let certified = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .is_some_and(|c| c.0.certified);
    if !certified {
        return (
            StatusCode::FORBIDDEN,
            "Raft traffic needs a client certificate signed by the cluster's CA",
        )
            .into_response();
    }
    next.run(request).await
}
