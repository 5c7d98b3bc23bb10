//! Runs a node: starts its core, serves the HTTP layer and Raft's routes on the caller's
//! listener until `shutdown` resolves, then stops Raft. This is where the core and the HTTP
//! layer meet; neither knows the other's composition.

use std::future::Future;

use tokio::net::TcpListener;

use crate::api;
use crate::config::Config;
use crate::core::{StartError, start};

/// How often the certificate files are checked for a change (SIGHUP reloads at once).
const CERT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs a node until `shutdown` resolves: opens the store, starts Raft, bootstraps or joins (only
/// when the data dir is new), serves the API and Raft RPCs on `listener`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if config.admin_token.is_none() && config.worker_token.is_none() {
        tracing::warn!("NO API TOKENS: this node serves every request without authentication");
    }
    if let Some(tls) = &config.tls {
        // Before the store opens, so a SIGHUP sent to rotate the certificate while this node
        // is still starting reloads it instead of ending the process.
        drover_tls::watch(tls.pair.clone(), CERT_CHECK_EVERY);
    }
    let lane = RaftLane::new()?;
    let node = start(config.clone(), lane.handle()).await?;
    let raft = node.raft().clone();
    let mut raft_routes = drover_raft::routes(
        raft.clone(),
        node.peering().clone(),
        config.raft.max_rpc_bytes,
    );
    if config.tls.as_ref().is_some_and(|t| t.peer_client_cert_auth) {
        raft_routes = raft_routes.layer(axum::middleware::from_fn(
            api::tls::require_peer_certificate,
        ));
    }
    // A peer's connection (told by its first request, `serve`) is served Raft's routes alone;
    // every other one all of them, Raft's included, as before there was a lane.
    let app = api::router(node.clone()).merge(raft_routes.clone());
    let read_timeout = config.http_read_timeout;
    let api = tokio::runtime::Handle::current();
    let (id, listen) = (config.id, config.listen);
    // The accept loop runs on the lane (`serve`). A plain listener is registered there; the
    // TLS acceptor's accepts and handshakes stay on the API's runtime, where each client's
    // connection is served after (a handshake storm of reconnecting agents is the API's load,
    // not Raft's), and hand their connections over.
    let served = match config.tls.clone() {
        None => {
            let listener = listener.into_std()?;
            lane.handle().spawn(async move {
                let listener = TcpListener::from_std(listener)?;
                tracing::info!(id, %listen, "serving HTTP");
                api::serve::serve(listener, app, raft_routes, read_timeout, api, shutdown).await;
                Ok::<(), std::io::Error>(())
            })
        }
        Some(tls) => {
            let listener =
                api::tls::Listener(drover_tls::Acceptor::new(listener, tls.server.clone())?);
            lane.handle().spawn(async move {
                tracing::info!(
                    id,
                    %listen,
                    peer_client_cert_auth = tls.peer_client_cert_auth,
                    "serving HTTPS"
                );
                api::serve::serve(listener, app, raft_routes, read_timeout, api, shutdown).await;
                Ok(())
            })
        }
    };
    let served = served
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))
        .and_then(|r| r.map_err(Error::Io));
    // Raft stops however serving ended, before its lane goes.
    tracing::info!("shutting down raft");
    let stopped = raft
        .shutdown()
        .await
        .map_err(|e| Error::Raft(e.to_string()));
    served?;
    stopped?;
    Ok(())
}

/// Raft's own runtime. Everything of a node shares its two cores, but not one run queue: on
/// the API's runtime, a follower's append or a candidate's vote waited behind every agent
/// request ready before it — at 10,000 agents long enough for the followers to elect another
/// leader several times a minute (docs/benchmarks.md). On threads of their own, the kernel
/// gives them their turn within its time slice instead.
struct RaftLane(Option<tokio::runtime::Runtime>);

/// Two threads: the state machine's apply (and the RocksDB write it makes) must not hold up the
/// core's heartbeats.
const RAFT_LANE_THREADS: usize = 2;

impl RaftLane {
    fn new() -> std::io::Result<RaftLane> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RAFT_LANE_THREADS)
            .thread_name("drover-raft")
            .enable_all()
            .build()?;
        Ok(RaftLane(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the lane runs until dropped")
            .handle()
    }
}

impl Drop for RaftLane {
    /// Without waiting for its tasks: a runtime dropped from async code must not block. Raft
    /// is shut down by then, unless starting the node failed part-way.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
