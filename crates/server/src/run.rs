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
    let node = start(config.clone()).await?;
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
    let app = api::router(node.clone()).merge(raft_routes);
    let read_timeout = config.http_read_timeout;
    match &config.tls {
        None => {
            tracing::info!(id = config.id, listen = %config.listen, "serving HTTP");
            api::serve::serve(listener, app, read_timeout, shutdown).await;
        }
        Some(tls) => {
            tracing::info!(
                id = config.id,
                listen = %config.listen,
                peer_client_cert_auth = tls.peer_client_cert_auth,
                "serving HTTPS"
            );
            let listener =
                api::tls::Listener(drover_tls::Acceptor::new(listener, tls.server.clone())?);
            api::serve::serve(listener, app, read_timeout, shutdown).await;
        }
    }
    tracing::info!("shutting down raft");
    raft.shutdown()
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    Ok(())
}
