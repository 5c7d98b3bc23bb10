//! The client's retry rule against a node that never answers (SPEC §4): a request whose effect
//! depends on what happened in between is sent once and reported `Unknown`; only what cannot
//! apply twice is retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use drover_api::StateRequest;
use drover_client::{Client, ClientOptions, Error};
use drover_types::WorkerState;
use tokio::net::TcpListener;

/// A node that receives state changes and never answers them; returns its address and the
/// count of requests it received.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    async fn hang(State(n): State<Arc<AtomicUsize>>) -> &'static str {
        n.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
    let count = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/v1/workers/{id}/state", post(hang))
        .with_state(count.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, count)
}

fn client(addr: &str) -> Client {
    let opts = ClientOptions {
        timeout: Duration::from_millis(200),
        retry_for: Duration::from_secs(1),
        ..ClientOptions::default()
    };
    Client::with_options(&[addr], None, opts).unwrap()
}

/// The regression: a cancel-drain (`active`) or forced disable whose answer was lost was sent
/// again, silently — after an operator's drain or a worker's return in between, the repeat
/// would cancel that drain or drop the replicas again.
#[tokio::test]
async fn interleaving_dependent_state_changes_are_sent_once() {
    let mut forced = StateRequest::to(WorkerState::Disabled);
    forced.force = true;
    for req in [StateRequest::to(WorkerState::Active), forced] {
        let (addr, count) = black_hole().await;
        let e = client(&addr).set_state("w1", &req).await.unwrap_err();
        assert!(matches!(e, Error::Unknown { .. }), "{req:?}: {e}");
        assert_eq!(count.load(Ordering::SeqCst), 1, "{req:?} was sent again");
    }
}

/// A plain request for `draining` is safe to repeat (asking again changes nothing), so it is.
#[tokio::test]
async fn a_plain_drain_request_is_retried() {
    let (addr, count) = black_hole().await;
    let e = client(&addr)
        .set_state("w1", &StateRequest::to(WorkerState::Draining))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(count.load(Ordering::SeqCst) >= 2);
}
