//! `drover`: parses the configuration, sets up logging, binds the listener and runs the node
//! until SIGINT or SIGTERM.

use clap::Parser;
use drover_server::config::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() {
    let config = match Cli::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drover: configuration error: {e}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_from_env("DROVER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Human => subscriber.init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drover: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        drover_server::run(config, listener, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        eprintln!("drover: {e}");
        std::process::exit(1);
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}
