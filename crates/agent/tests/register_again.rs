//! When the agent registers again on its own, against a scripted fake node: asked to (an
//! operator's recommission, `register_again` in a heartbeat's answer), it gives its lease up
//! and registers once; fenced (declared dead) while its worker was disabled meanwhile, it does
//! not come back on its own — the process ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use drover_agent::{Agent, AgentConfig, Ended};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the fake node has seen and answers.
#[derive(Default)]
struct Node {
    /// Registrations so far; the generation answered is their count.
    registrations: AtomicU64,
    /// Every heartbeat received: (generation, release).
    beats: Mutex<Vec<(u64, bool)>>,
    /// What heartbeats of the current generation get: "ack", "register_again" (once), or
    /// "fenced".
    answer: Mutex<&'static str>,
    /// The worker's state as `GET /v1/workers/{id}` shows it.
    state: Mutex<&'static str>,
}

fn record(generation: u64, state: &str) -> Value {
    json!({
        "id": "w1", "generation": generation, "incarnation": 7, "address": "10.0.0.1:1",
        "zone": null, "capacity": 1, "labels": {}, "state": state, "dead": false,
        "version": 1, "state_since_ms": 0, "assignments_version": 1
    })
}

async fn fake_node(node: Arc<Node>) -> String {
    async fn register(State(n): State<Arc<Node>>) -> Json<Value> {
        let g = n.registrations.fetch_add(1, Ordering::SeqCst) + 1;
        Json(record(g, "provisioning"))
    }
    async fn show(State(n): State<Arc<Node>>) -> Json<Value> {
        let g = n.registrations.load(Ordering::SeqCst);
        let mut v = record(g, &n.state.lock().unwrap());
        v["replicas"] = json!([]);
        Json(v)
    }
    async fn heartbeat(State(n): State<Arc<Node>>, Json(b): Json<Value>) -> Response {
        let generation = b["generation"].as_u64().unwrap_or(0);
        let release = b["release"].as_bool().unwrap_or(false);
        n.beats.lock().unwrap().push((generation, release));
        let answer = {
            let mut a = n.answer.lock().unwrap();
            let now = *a;
            if now == "register_again" && !release {
                *a = "ack";
            }
            now
        };
        if answer == "fenced" {
            let body =
                json!({"error": {"code": "fenced", "message": "worker w1 was declared dead"}});
            return (StatusCode::CONFLICT, Json(body)).into_response();
        }
        Json(json!({
            "worker": "w1", "generation": generation, "heartbeat_interval_ms": 50,
            "suspect_after_ms": 100, "dead_after_ms": 3000, "lease_wait_ms": 0,
            "register_again": answer == "register_again" && !release,
        }))
        .into_response()
    }
    async fn assignments(State(n): State<Arc<Node>>) -> Json<Value> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let g = n.registrations.load(Ordering::SeqCst);
        Json(json!({
            "worker": "w1", "state": *n.state.lock().unwrap(), "generation": g, "dead": false,
            "version": 1, "replicas": []
        }))
    }
    let app = Router::new()
        .route("/v1/workers/{id}", put(register).get(show))
        .route("/v1/workers/{id}/heartbeat", post(heartbeat))
        .route("/v1/workers/{id}/assignments", get(assignments))
        .with_state(node);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn start(endpoint: String) -> AgentConfig {
    let mut cfg = AgentConfig::new([endpoint], "w1", "10.0.0.1:1");
    cfg.heartbeat_interval = Duration::from_millis(50);
    cfg.lease_margin = Duration::from_millis(500);
    cfg
}

/// Asked to register again: generation 1 gives its lease up first (so generation 2 need not
/// wait it out), then the agent registers exactly once and heartbeats at generation 2.
#[tokio::test]
async fn asked_to_register_again_it_releases_its_lease_and_registers_once() {
    let node = Arc::new(Node::default());
    *node.answer.lock().unwrap() = "ack";
    *node.state.lock().unwrap() = "disabled";
    let agent = Agent::start(start(fake_node(node.clone()).await))
        .await
        .unwrap();
    wait_for("a heartbeat", || !node.beats.lock().unwrap().is_empty()).await;
    *node.answer.lock().unwrap() = "register_again";
    wait_for("generation 2 heartbeating", || {
        node.beats.lock().unwrap().contains(&(2, false))
    })
    .await;
    assert_eq!(agent.generation(), 2);
    let beats = node.beats.lock().unwrap().clone();
    let released = beats.iter().position(|b| *b == (1, true));
    let second = beats.iter().position(|b| *b == (2, false));
    assert!(
        released.is_some() && released < second,
        "generation 1 gave its lease up before generation 2 beat: {beats:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        node.registrations.load(Ordering::SeqCst),
        2,
        "registered once more, not again"
    );
}

/// The regression: an agent fenced (declared dead) after its worker was drained to Disabled
/// registered again on its own and went back to Active — a drained worker returned without
/// anyone asking. Now it ends, and registers nothing.
#[tokio::test]
async fn fenced_after_its_worker_was_disabled_it_ends_instead_of_coming_back() {
    let node = Arc::new(Node::default());
    *node.answer.lock().unwrap() = "ack";
    *node.state.lock().unwrap() = "active";
    let agent = Agent::start(start(fake_node(node.clone()).await))
        .await
        .unwrap();
    agent.ready().await.ok();
    wait_for("a heartbeat", || !node.beats.lock().unwrap().is_empty()).await;
    *node.state.lock().unwrap() = "disabled";
    *node.answer.lock().unwrap() = "fenced";
    let mut ended = agent.ended();
    tokio::time::timeout(Duration::from_secs(10), ended.wait_for(Option::is_some))
        .await
        .expect("the agent did not end")
        .unwrap();
    assert_eq!(
        agent.ended().borrow().clone(),
        Some(Ended::Disabled { generation: 1 })
    );
    assert_eq!(
        node.registrations.load(Ordering::SeqCst),
        1,
        "it registered again"
    );
}
