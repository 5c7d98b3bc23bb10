//! The agent's lease and assignment view against a scripted fake node: what a real cluster
//! cannot be made to do on purpose — answer a heartbeat never, answer with absurd settings, or
//! answer a long poll with an older view than the last.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post, put};
use drover_agent::{Agent, AgentConfig};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the fake node answers to heartbeats, in order; past the end, it never answers.
#[derive(Default)]
struct Script {
    beats: Mutex<Vec<Value>>,
    /// Heartbeats received so far.
    received: AtomicUsize,
    /// Heartbeats left hanging (received, never answered).
    hanging: AtomicUsize,
    /// The assignments versions to answer, in order; the last repeats.
    versions: Mutex<Vec<u64>>,
    polls: AtomicU64,
}

fn worker(generation: u64) -> Value {
    json!({
        "id": "w1", "generation": generation, "incarnation": 7, "address": "10.0.0.1:1",
        "zone": null, "capacity": 1, "labels": {}, "state": "provisioning", "dead": false,
        "version": 1, "state_since_ms": 0, "assignments_version": 1
    })
}

fn ack(dead_after_ms: u64) -> Value {
    json!({
        "worker": "w1", "generation": 1, "heartbeat_interval_ms": 50,
        "suspect_after_ms": 100, "dead_after_ms": dead_after_ms, "lease_wait_ms": 0
    })
}

async fn fake_node(script: Arc<Script>) -> String {
    async fn register(_: State<Arc<Script>>) -> Json<Value> {
        Json(worker(1))
    }
    async fn heartbeat(State(s): State<Arc<Script>>) -> Json<Value> {
        s.received.fetch_add(1, Ordering::SeqCst);
        let next = {
            let mut beats = s.beats.lock().unwrap();
            (!beats.is_empty()).then(|| beats.remove(0))
        };
        match next {
            Some(answer) => Json(answer),
            None => {
                // A black hole: the connection stays open and nothing ever comes back.
                s.hanging.fetch_add(1, Ordering::SeqCst);
                std::future::pending().await
            }
        }
    }
    async fn assignments(State(s): State<Arc<Script>>) -> Json<Value> {
        let n = s.polls.fetch_add(1, Ordering::SeqCst) as usize;
        let version = {
            let v = s.versions.lock().unwrap();
            v.get(n).or(v.last()).copied().unwrap_or(1)
        };
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Json(json!({
            "worker": "w1", "state": "active", "generation": 1, "dead": false,
            "version": version, "replicas": []
        }))
    }
    let app = Router::new()
        .route("/v1/workers/{id}", put(register))
        .route("/v1/workers/{id}/heartbeat", post(heartbeat))
        .route("/v1/workers/{id}/assignments", get(assignments))
        .with_state(script);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

fn config(endpoint: String) -> AgentConfig {
    let mut cfg = AgentConfig::new([endpoint], "w1", "10.0.0.1:1");
    // A long first interval: the heartbeat client's per-call timeout and retry budget follow
    // it, so a hung call lasts many seconds — far past the lease below.
    cfg.heartbeat_interval = Duration::from_secs(10);
    cfg.lease_margin = Duration::from_millis(500);
    cfg
}

async fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + deadline;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The regression: the lease was checked only between heartbeats, so a heartbeat call that
/// hung (a peer that accepts and never answers) kept the lease true until the call gave up —
/// past the moment the cluster could declare the worker dead.
#[tokio::test]
async fn a_hung_heartbeat_cannot_extend_the_lease() {
    let script = Arc::new(Script::default());
    // One good answer with a 1 s lease (1 s − 0.5 s margin), then a black hole.
    script.beats.lock().unwrap().push(ack(1_000));
    let agent = Agent::start(config(fake_node(script.clone()).await))
        .await
        .unwrap();
    let lease = agent.lease();
    wait_for("the lease", Duration::from_secs(5), || *lease.borrow()).await;
    let held_until = agent.lease_expiry().borrow().until.unwrap();
    // The second heartbeat hangs; the lease must end on its own timer meanwhile.
    wait_for("the lease to end", Duration::from_secs(5), || {
        !*lease.borrow()
    })
    .await;
    assert!(
        tokio::time::Instant::now() >= held_until,
        "the lease ended early"
    );
    assert!(!agent.holds_lease());
    assert_eq!(
        script.hanging.load(Ordering::SeqCst),
        1,
        "the lease ended while the hung heartbeat was still in flight"
    );
}

/// An absurd `dead_after_ms` in an answer grants no lease (a huge one used to grant a lease
/// for ages) and does not stop the heartbeat task: it goes on to the next beat.
#[tokio::test]
async fn an_absurd_dead_after_grants_no_lease() {
    let script = Arc::new(Script::default());
    {
        let mut beats = script.beats.lock().unwrap();
        beats.push(ack(u64::MAX));
        beats.push(ack(0));
        // Shorter than the heartbeat interval (50 ms): a lease that could never be kept up.
        beats.push(ack(1));
    }
    let agent = Agent::start(config(fake_node(script.clone()).await))
        .await
        .unwrap();
    let ever_held = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut lease = agent.lease();
    let held = ever_held.clone();
    tokio::spawn(async move {
        if lease.wait_for(|h| *h).await.is_ok() {
            held.store(true, Ordering::SeqCst);
        }
    });
    // A fourth heartbeat arrives only once the agent has handled the three answers.
    wait_for("a fourth heartbeat", Duration::from_secs(5), || {
        script.received.load(Ordering::SeqCst) >= 4
    })
    .await;
    assert!(
        !ever_held.load(Ordering::SeqCst),
        "an absurd answer granted a lease"
    );
    assert!(!agent.holds_lease());
}

/// The agent's view of its assignments never goes backwards: a lagging node's answer with an
/// older version than the one published is ignored.
#[tokio::test]
async fn the_assignment_view_never_goes_backwards() {
    let script = Arc::new(Script::default());
    script.beats.lock().unwrap().push(ack(10_000));
    *script.versions.lock().unwrap() = vec![5, 9, 4, 4, 12];
    let agent = Agent::start(config(fake_node(script.clone()).await))
        .await
        .unwrap();
    let mut view = agent.assignments();
    let mut seen = Vec::new();
    while seen.last() != Some(&12) {
        tokio::time::timeout(Duration::from_secs(5), view.changed())
            .await
            .expect("the view moves on")
            .unwrap();
        if let Some(a) = view.borrow_and_update().as_ref() {
            seen.push(a.version);
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "the view went backwards: {seen:?}"
    );
}
