//! Runs a node: starts its core, serves the HTTP layer and Raft's routes on the caller's
//! listener until `shutdown` resolves, then stops Raft. This is where the core and the HTTP
//! layer meet; neither knows the other's composition.

use std::future::Future;

use tokio::net::TcpListener;

use crate::api;
use crate::config::Config;
use crate::core::{StartError, start};

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
    let node = start(config.clone()).await?;
    let raft = node.raft().clone();
    let app = api::router(node.clone()).merge(drover_raft::routes(
        raft.clone(),
        node.peering().clone(),
        config.raft.max_rpc_bytes,
    ));
    tracing::info!(id = config.id, listen = %config.listen, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("shutting down raft");
    raft.shutdown()
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    Ok(())
}
