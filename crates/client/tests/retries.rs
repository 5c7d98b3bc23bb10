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

/// Two fake nodes answering heartbeats: `follower` says (as a forwarding follower does) that
/// `leader` served it. A client that prefers the leader sends its next heartbeat to the leader
/// itself; one that does not stays where it was answered.
#[tokio::test]
async fn a_client_of_leader_requests_goes_to_the_leader_once_named() {
    async fn node(leader: Option<String>) -> (String, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let app = Router::new().route(
            "/v1/workers/{id}/heartbeat",
            post(move || {
                let (seen, leader) = (seen.clone(), leader.clone());
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let ack = serde_json::json!({
                        "worker": "w1", "generation": 1, "heartbeat_interval_ms": 1000,
                        "suspect_after_ms": 5000, "dead_after_ms": 30000, "lease_wait_ms": 0,
                        "register_again": false
                    });
                    let mut r = axum::response::IntoResponse::into_response(axum::Json(ack));
                    if let Some(l) = leader {
                        r.headers_mut()
                            .insert("x-drover-leader", l.parse().unwrap());
                    }
                    r
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, count)
    }
    let (leader, at_leader) = node(None).await;
    let (follower, at_follower) = node(Some(leader.clone())).await;
    // Each client starts at a random endpoint: twenty of them start at the follower ~10 times.
    for prefer_leader in [true, false] {
        let mut stayed_at_follower = 0;
        for _ in 0..20 {
            let opts = ClientOptions {
                prefer_leader,
                ..ClientOptions::default()
            };
            let c =
                Client::with_options(&[follower.as_str(), leader.as_str()], None, opts).unwrap();
            let (f0, l0) = (
                at_follower.load(Ordering::SeqCst),
                at_leader.load(Ordering::SeqCst),
            );
            for _ in 0..10 {
                c.heartbeat("w1", 1).await.unwrap();
            }
            let to_follower = at_follower.load(Ordering::SeqCst) - f0;
            let to_leader = at_leader.load(Ordering::SeqCst) - l0;
            assert_eq!(to_follower + to_leader, 10);
            if prefer_leader {
                assert!(
                    to_follower <= 1,
                    "{to_follower} heartbeats went through the follower"
                );
            } else if to_follower == 10 {
                stayed_at_follower += 1;
            }
        }
        if !prefer_leader {
            assert!(
                stayed_at_follower > 0,
                "without the preference a client stays put"
            );
        }
    }
}
