//! Acknowledging a task against a scripted fake node: a task the cluster has moved past
//! (`409 stale_epoch`) is over at once, while an unreachable or leaderless cluster is retried.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, extract::Path};
use drover_agent::{Acked, Agent, AgentConfig};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The answers to acknowledgements, in order (status, error code); past the end, 200.
#[derive(Default)]
struct Script {
    acks: Mutex<Vec<(u16, &'static str)>>,
    received: AtomicUsize,
}

fn error(status: u16, code: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let body = json!({"error": {"code": code, "message": format!("scripted {code}")}});
    (status, Json(body)).into_response()
}

async fn fake_node(script: Arc<Script>) -> String {
    async fn register() -> Json<Value> {
        Json(json!({
            "id": "w1", "generation": 1, "incarnation": 7, "address": "10.0.0.1:1",
            "zone": null, "capacity": 1, "labels": {}, "state": "active", "dead": false,
            "version": 1, "state_since_ms": 0, "assignments_version": 1
        }))
    }
    async fn heartbeat() -> Json<Value> {
        Json(json!({
            "worker": "w1", "generation": 1, "heartbeat_interval_ms": 50,
            "suspect_after_ms": 1000, "dead_after_ms": 5000, "lease_wait_ms": 0
        }))
    }
    async fn assignments() -> Json<Value> {
        // One joining replica (a task); the same view on every poll, after a pause so the
        // long poll does not spin.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Json(json!({
            "worker": "w1", "state": "active", "generation": 1, "dead": false, "version": 3,
            "replicas": [{
                "partition": 4, "key_range": {"start": 0, "end": 9}, "role": "joining",
                "since": 3, "epoch": 3, "leader": false, "peers": []
            }]
        }))
    }
    async fn ack(State(s): State<Arc<Script>>, Path((_p, _w)): Path<(u32, String)>) -> Response {
        s.received.fetch_add(1, Ordering::SeqCst);
        let next = {
            let mut acks = s.acks.lock().unwrap();
            (!acks.is_empty()).then(|| acks.remove(0))
        };
        match next {
            Some((status, code)) => error(status, code),
            None => Json(json!({
                "id": 4, "key_range": {"start": 0, "end": 9}, "replication_factor": 1,
                "replicas": [], "leader": null, "epoch": 4, "version": 4, "recent_releases": []
            }))
            .into_response(),
        }
    }
    let app = Router::new()
        .route("/v1/workers/{id}", put(register))
        .route("/v1/workers/{id}/heartbeat", post(heartbeat))
        .route("/v1/workers/{id}/assignments", get(assignments))
        .route("/v1/partitions/{p}/replicas/{w}/ack", post(ack))
        .with_state(script);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

async fn agent_with_a_task(script: Arc<Script>) -> (Agent, drover_agent::Task) {
    let endpoint = fake_node(script).await;
    let mut agent = Agent::start(AgentConfig::new([endpoint], "w1", "10.0.0.1:1"))
        .await
        .unwrap();
    let mut tasks = agent.take_tasks().unwrap();
    let task = tokio::time::timeout(Duration::from_secs(10), tasks.recv())
        .await
        .expect("no task handed out")
        .unwrap();
    (agent, task)
}

/// The regression: the example worker retried a `409 stale_epoch` acknowledgement ten times,
/// 500 ms apart, holding up every later task (after a cancelled drain a replica stayed
/// `leaving` for ~20 s). A stale task is over after one answer.
#[tokio::test]
async fn a_stale_epoch_ack_is_not_retried() {
    let script = Arc::new(Script::default());
    script.acks.lock().unwrap().push((409, "stale_epoch"));
    let (agent, task) = agent_with_a_task(script.clone()).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        agent.handle().ack_settled(&task, Duration::from_secs(30)),
    )
    .await
    .expect("ack_settled kept retrying a stale task");
    assert_eq!(answer.unwrap(), Acked::Superseded);
    assert_eq!(
        script.received.load(Ordering::SeqCst),
        1,
        "the stale ack was repeated"
    );
}

/// A leaderless cluster (503) is retried until the acknowledgement lands; another refusal
/// (fenced) is returned at once.
#[tokio::test]
async fn an_unavailable_cluster_is_retried_and_other_refusals_are_final() {
    let script = Arc::new(Script::default());
    script
        .acks
        .lock()
        .unwrap()
        .extend([(503, "unavailable"), (503, "unavailable")]);
    let (agent, task) = agent_with_a_task(script.clone()).await;
    let answer = agent
        .handle()
        .ack_settled(&task, Duration::from_secs(30))
        .await;
    assert_eq!(answer.unwrap(), Acked::Done);
    // The client itself fails over on a 503 before giving it back; at least the two scripted
    // refusals and the success reached the node.
    assert!(script.received.load(Ordering::SeqCst) >= 3);

    script.received.store(0, Ordering::SeqCst);
    script.acks.lock().unwrap().push((409, "fenced"));
    let e = agent
        .handle()
        .ack_settled(&task, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("fenced"), "{e}");
    assert_eq!(script.received.load(Ordering::SeqCst), 1);
}
