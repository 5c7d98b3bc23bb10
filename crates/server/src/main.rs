//! `drover`: parses the configuration, sets up logging, binds the listener and runs the node
//! until SIGINT or SIGTERM.

use clap::Parser;
use drover_server::config::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::DynFilterFn;
use tracing_subscriber::prelude::*;

/// mimalloc, not glibc's malloc: under 256 writers glibc's allocator (`_int_malloc`,
/// `malloc_consolidate`, `unlink_chunk`, …) was ~23% of the leader's CPU, every request being
/// a handful of short-lived allocations on whichever runtime thread ran it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    // Colour only for a person at a terminal: never in a file, a pipe or a journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Lines are written by a thread of their own, never by the runtime's: a write(2) to a log
    // file on a disk its fsyncs keep busy may block, and a blocked runtime thread delays the
    // node's Raft messages with everything else (a leader of 10,000 agents logging thousands
    // of lines a second went silent for 0.8 s, and its followers elected another). Past
    // LOG_LINES_BUFFERED waiting lines, new ones are dropped rather than waited for.
    let (log_writer, log_flushed) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_LINES_BUFFERED)
        .lossy(true)
        .thread_name("drover-log")
        .finish(std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(log_writer);
    let fmt = match config.log_format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Human => fmt.boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter).with_filter(quiet_openraft()))
        .init();
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
    // Every line logged so far written out before the process ends (`exit` runs no drops).
    drop(log_flushed);
    if let Err(e) = result {
        eprintln!("drover: {e}");
        std::process::exit(1);
    }
}

/// Log lines waiting for the writer thread at most.
const LOG_LINES_BUFFERED: usize = 100_000;

/// At most one warning or error a minute from each of openraft's log sites: it reports a down
/// peer on every retry, many times a second (350 lines in 25 s). Drover's transport logs the
/// peer going down and coming back once each; these repeats add nothing to that.
fn quiet_openraft<S>() -> impl tracing_subscriber::layer::Filter<S> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    let noisy = |meta: &tracing::Metadata<'_>| {
        meta.is_event()
            && meta.target().starts_with("openraft")
            && *meta.level() <= tracing::Level::WARN
    };
    // The lock is held only to read and stamp one call site's time.
    let last: Mutex<HashMap<tracing::callsite::Identifier, Instant>> = Mutex::default();
    DynFilterFn::new(move |meta, _cx| {
        if !noisy(meta) {
            return true;
        }
        let now = Instant::now();
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(&meta.callsite()) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
            _ => {
                last.insert(meta.callsite(), now);
                true
            }
        }
    })
    // Decided per event for the noisy sites (so never cached), always for the rest.
    .with_callsite_filter(move |meta| {
        if noisy(meta) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    })
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
