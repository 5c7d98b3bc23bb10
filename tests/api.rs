//! The admin API through a follower as well as the leader, with tokens: workers, partitions,
//! events, snapshots, auth — and every refusal leaves the state version unchanged.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::Cluster;

const ADMIN: &str = "admin-secret";
const WORKER: &str = "worker-secret";

struct Api<'a> {
    c: &'a Cluster,
}

impl Api<'_> {
    async fn call(
        &self,
        node: u64,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.c.http.request(method, self.c.url(node, path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn admin(
        &self,
        node: u64,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call(node, method, path, Some(ADMIN), body).await
    }

    async fn version(&self, node: u64) -> u64 {
        self.admin(node, Method::GET, "/v1/cluster", None).await.1["state_version"]
            .as_u64()
            .unwrap()
    }

    /// Asserts the call is refused with `status` and `code`, and that it changed nothing.
    // The call's parts plus what to expect read best as one flat list in the test table.
    #[allow(clippy::too_many_arguments)]
    async fn refused(
        &self,
        node: u64,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        status: u16,
        code: &str,
    ) {
        let leader = self.c.leader_among(&[1, 2, 3]).await;
        let before = self.version(leader).await;
        let (s, b) = self.call(node, method.clone(), path, token, body).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {b}"
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{b}"
        );
        assert_eq!(
            self.version(leader).await,
            before,
            "{method} {path} changed the state"
        );
    }
}

/// Every endpoint of this slice, through the leader and a follower, with the error codes of
/// SPEC §1 and §4.
#[tokio::test]
async fn workers_partitions_events_and_snapshot() {
    let mut c = Cluster::start(
        3,
        &[
            "--admin-token",
            ADMIN,
            "--worker-token",
            WORKER,
            "--max-body-bytes",
            "4096",
        ],
    );
    c.token = Some(ADMIN.into());
    let leader = c.leader_among(&[1, 2, 3]).await;
    let f = (1..=3).find(|id| *id != leader).unwrap();
    let api = Api { c: &c };

    // Auth.
    api.refused(
        f,
        Method::GET,
        "/v1/workers",
        None,
        None,
        401,
        "unauthorized",
    )
    .await;
    api.refused(
        f,
        Method::GET,
        "/v1/workers",
        Some("nope"),
        None,
        401,
        "unauthorized",
    )
    .await;
    api.refused(
        f,
        Method::GET,
        "/v1/kv",
        Some(WORKER),
        None,
        403,
        "forbidden",
    )
    .await;
    api.refused(
        f,
        Method::GET,
        "/v1/snapshot",
        Some(WORKER),
        None,
        403,
        "forbidden",
    )
    .await;

    // An agent registers and activates itself through a follower.
    let reg = json!({"incarnation": 7, "address": "10.1.0.1:9000", "zone": "z1", "labels": {"rack": "r1"}});
    let (s, w) = api
        .call(
            f,
            Method::PUT,
            "/v1/workers/w1",
            Some(WORKER),
            Some(reg.clone()),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    assert_eq!(
        (w["generation"].as_u64(), w["state"].as_str()),
        (Some(1), Some("provisioning"))
    );
    let (s, again) = api
        .call(
            leader,
            Method::PUT,
            "/v1/workers/w1",
            Some(WORKER),
            Some(reg),
        )
        .await;
    assert_eq!(
        (s, again["generation"].as_u64()),
        (200, Some(1)),
        "same incarnation is idempotent"
    );
    let (s, w) = api
        .call(
            f,
            Method::POST,
            "/v1/workers/w1/state",
            Some(WORKER),
            Some(json!({"state": "active", "generation": 1})),
        )
        .await;
    assert_eq!((s, w["state"].as_str()), (200, Some("active")), "{w}");
    api.refused(
        f,
        Method::POST,
        "/v1/workers/w1/state",
        Some(WORKER),
        Some(json!({"state": "active"})),
        400,
        "invalid",
    )
    .await;

    // Reads, through either node, agree.
    for node in [f, leader] {
        let (s, w) = api.admin(node, Method::GET, "/v1/workers/w1", None).await;
        assert_eq!(
            (s, w["state"].as_str(), w["labels"]["rack"].as_str()),
            (200, Some("active"), Some("r1"))
        );
    }
    let (_, page) = api
        .admin(f, Method::GET, "/v1/workers?state=active", None)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = api
        .admin(f, Method::GET, "/v1/workers?state=draining", None)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);

    // Refusals, each leaving the state as it was.
    let version = w["version"].as_u64().unwrap();
    api.refused(
        f,
        Method::POST,
        "/v1/workers/w1/state",
        Some(ADMIN),
        Some(json!({"state": "provisioning"})),
        409,
        "illegal_transition",
    )
    .await;
    api.refused(
        f,
        Method::POST,
        "/v1/workers/w1/state",
        Some(ADMIN),
        Some(json!({"state": "disabled"})),
        409,
        "illegal_transition",
    )
    .await;
    api.refused(
        f,
        Method::POST,
        "/v1/workers/w1/state",
        Some(ADMIN),
        Some(json!({"state": "draining", "expected_version": version - 1})),
        409,
        "version_conflict",
    )
    .await;
    api.refused(
        f,
        Method::GET,
        "/v1/workers/nobody",
        Some(ADMIN),
        None,
        404,
        "not_found",
    )
    .await;
    api.refused(
        f,
        Method::POST,
        "/v1/workers/nobody/state",
        Some(ADMIN),
        Some(json!({"state": "active"})),
        404,
        "not_found",
    )
    .await;
    api.refused(
        f,
        Method::GET,
        "/v1/workers/Bad%20Id",
        Some(ADMIN),
        None,
        400,
        "invalid",
    )
    .await;
    api.refused(
        f,
        Method::PUT,
        "/v1/workers/w2",
        Some(WORKER),
        Some(json!({"incarnation": 1, "address": "nohost"})),
        400,
        "invalid",
    )
    .await;
    api.refused(
        f,
        Method::PUT,
        "/v1/workers/w2",
        Some(WORKER),
        Some(json!({"incarnation": "one", "address": "h:1"})),
        400,
        "invalid",
    )
    .await;
    api.refused(
        f,
        Method::PUT,
        "/v1/workers/w2",
        Some(WORKER),
        Some(json!({"incarnation": 1, "address": "h:1", "colour": "red"})),
        400,
        "invalid",
    )
    .await;
    let big = json!({"incarnation": 1, "address": "h:1", "zone": "x".repeat(5000)});
    api.refused(
        f,
        Method::PUT,
        "/v1/workers/w2",
        Some(WORKER),
        Some(big),
        413,
        "too_large",
    )
    .await;
    let (_, unknown) = api
        .call(
            f,
            Method::PUT,
            "/v1/workers/w2",
            Some(WORKER),
            Some(json!({"incarnation": 1, "address": "h:1", "colour": "red"})),
        )
        .await;
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{unknown}"
    );

    // A restart (new incarnation) bumps the generation; the old process is fenced.
    let (_, w) = api
        .call(f, Method::PUT, "/v1/workers/w1", Some(WORKER), Some(json!({"incarnation": 8, "address": "10.1.0.1:9000", "zone": "z1", "labels": {"rack": "r1"}})))
        .await;
    assert_eq!(
        (w["generation"].as_u64(), w["state"].as_str()),
        (Some(2), Some("active"))
    );
    api.refused(
        f,
        Method::POST,
        "/v1/workers/w1/state",
        Some(WORKER),
        Some(json!({"state": "draining", "generation": 1})),
        409,
        "stale_generation",
    )
    .await;

    // Partitions.
    let (s, t) = api
        .admin(
            f,
            Method::POST,
            "/v1/partitions",
            Some(json!({"count": 8, "replication_factor": 2})),
        )
        .await;
    assert_eq!((s, t["count"].as_u64()), (201, Some(8)), "{t}");
    api.refused(
        f,
        Method::POST,
        "/v1/partitions",
        Some(ADMIN),
        Some(json!({"count": 8, "replication_factor": 2})),
        409,
        "already_exists",
    )
    .await;
    let (_, page) = api
        .admin(f, Method::GET, "/v1/partitions?limit=3", None)
        .await;
    assert_eq!(
        (
            page["items"].as_array().unwrap().len(),
            page["more"].as_bool(),
            page["next_cursor"].as_u64()
        ),
        (3, Some(true), Some(2))
    );
    let (_, page) = api
        .admin(
            leader,
            Method::GET,
            "/v1/partitions?limit=10&cursor=5",
            None,
        )
        .await;
    assert_eq!(
        (
            page["items"].as_array().unwrap().len(),
            page["more"].as_bool()
        ),
        (2, Some(false))
    );
    let (s, p) = api.admin(f, Method::GET, "/v1/partitions/3", None).await;
    assert_eq!(
        (s, p["id"].as_u64(), p["replication_factor"].as_u64()),
        (200, Some(3), Some(2))
    );
    let (_, routed) = api
        .admin(
            f,
            Method::GET,
            &format!("/v1/partitions/by-key/{}", u64::MAX),
            None,
        )
        .await;
    assert_eq!(routed["partition"]["id"].as_u64(), Some(7));
    api.refused(
        f,
        Method::GET,
        "/v1/partitions/99",
        Some(ADMIN),
        None,
        404,
        "not_found",
    )
    .await;
    api.refused(
        f,
        Method::GET,
        "/v1/partitions/by-key/abc",
        Some(ADMIN),
        None,
        400,
        "invalid",
    )
    .await;

    // Events: registrations and transitions, in order, with versions.
    let (s, ev) = api
        .admin(f, Method::GET, "/v1/events?after=0&limit=2", None)
        .await;
    assert_eq!(s, 200);
    let first = ev["events"].as_array().unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0]["kind"]["registered"].is_object(), "{ev}");
    let (_, rest) = api
        .admin(
            f,
            Method::GET,
            &format!("/v1/events?after={}", ev["next_after"]),
            None,
        )
        .await;
    assert!(
        rest["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"]["table_created"].is_object())
    );

    // Removal: only a disabled worker; a forced disable first.
    api.refused(
        f,
        Method::DELETE,
        "/v1/workers/w1",
        Some(ADMIN),
        None,
        409,
        "illegal_transition",
    )
    .await;
    let (s, d) = api
        .admin(
            f,
            Method::POST,
            "/v1/workers/w1/state",
            Some(json!({"state": "disabled", "force": true})),
        )
        .await;
    assert_eq!(
        (s, d["partitions_below_rf"].as_u64()),
        (200, Some(0)),
        "{d}"
    );
    let (s, _) = api
        .admin(leader, Method::DELETE, "/v1/workers/w1", None)
        .await;
    assert_eq!(s, 200);
    api.refused(
        f,
        Method::GET,
        "/v1/workers/w1",
        Some(ADMIN),
        None,
        404,
        "not_found",
    )
    .await;

    // A snapshot decodes and matches the state at its version.
    let resp = c.req(Method::GET, f, "/v1/snapshot").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let version: u64 = resp.headers()["x-drover-state-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let state: drover_types::ClusterState =
        drover_types::codec::decode(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(state.version, version);
    assert_eq!(state.partitions.len(), 8);
    assert_eq!(state.tombstones.get(&"w1".into()), Some(&2));
    assert_eq!(api.version(leader).await, version);

    // Metrics are open, in Prometheus text, with Raft, workers, partitions and HTTP series. The
    // follower computes them from its own applied state, which may trail the leader's: wait
    // until it has applied the removal.
    let text = support::wait_for(
        "the follower's metrics to show the removal",
        std::time::Duration::from_secs(10),
        || async {
            let (s, text) = api.call(f, Method::GET, "/metrics", None, None).await;
            assert_eq!(s, 200);
            let text = text.as_str().unwrap().to_owned();
            text.contains("drover_workers{state=\"disabled\"} 0")
                .then_some(text)
        },
    )
    .await;
    for series in [
        "drover_raft_term ",
        "drover_raft_commit_index ",
        "drover_raft_applied_index ",
        &format!("drover_raft_leader {leader}"),
        "drover_workers{state=\"disabled\"} 0",
        "drover_partitions{healthy_serving=\"0\"} 8",
        "drover_http_requests_total{route=\"/v1/workers/{id}\",method=\"PUT\",status=\"200\"}",
        "drover_http_request_duration_seconds_bucket{",
    ] {
        assert!(text.contains(series), "no {series:?} in\n{text}");
    }
}

/// A long poll on a worker's assignments (through a follower, answered from its applied state)
/// is woken by the commit that changes the worker, not by its timeout; with no change it
/// answers at the end of `wait` with the version unchanged. Prints the commit-to-wake latency.
#[tokio::test]
async fn long_poll_wakes_on_commit() {
    let c = Cluster::start(3, &[]);
    let leader = c.leader_among(&[1, 2, 3]).await;
    let f = (1..=3).find(|id| *id != leader).unwrap();
    let api = Api { c: &c };
    let reg = json!({"incarnation": 1, "address": "10.1.0.1:9000", "zone": "z1"});
    assert_eq!(
        api.call(leader, Method::PUT, "/v1/workers/w1", None, Some(reg))
            .await
            .0,
        200
    );

    support::wait_for(
        "the follower to apply the registration",
        std::time::Duration::from_secs(10),
        || async {
            let (s, _) = api
                .call(f, Method::GET, "/v1/workers/w1/assignments", None, None)
                .await;
            (s == 200).then_some(())
        },
    )
    .await;
    let mut latencies = Vec::new();
    // Each restart (a new incarnation) is a committed change of the worker's record. (State
    // changes would race the scheduler, which disables an emptied draining worker at once.)
    for i in 0..5u64 {
        let (_, now) = api
            .call(f, Method::GET, "/v1/workers/w1/assignments", None, None)
            .await;
        let v = now["version"].as_u64().unwrap();
        let poll = {
            let http = c.http.clone();
            let url = c.url(f, &format!("/v1/workers/w1/assignments?after={v}&wait=60s"));
            tokio::spawn(async move {
                let r = http
                    .get(url)
                    .timeout(std::time::Duration::from_secs(90))
                    .send()
                    .await
                    .unwrap();
                let at = std::time::Instant::now();
                (r.json::<Value>().await.unwrap(), at)
            })
        };
        let started = std::time::Instant::now();
        let reg = json!({"incarnation": 10 + i, "address": "10.1.0.1:9000", "zone": "z1"});
        let (s, _) = api
            .call(leader, Method::PUT, "/v1/workers/w1", None, Some(reg))
            .await;
        assert_eq!(s, 200, "change {i}");
        let committed = std::time::Instant::now();
        let (answer, woke) = poll.await.unwrap();
        assert!(answer["version"].as_u64().unwrap() > v, "{answer}");
        assert_eq!(answer["generation"].as_u64(), Some(2 + i));
        assert!(
            woke.duration_since(started) < std::time::Duration::from_secs(30),
            "woken by the timeout"
        );
        latencies.push(woke.saturating_duration_since(committed));
    }
    latencies.sort();
    println!("long poll: commit-to-wake latencies {latencies:?}");

    // No change: answered at the end of `wait`, version unchanged.
    let (_, now) = api
        .call(f, Method::GET, "/v1/workers/w1/assignments", None, None)
        .await;
    let v = now["version"].as_u64().unwrap();
    let (s, same) = api
        .call(
            f,
            Method::GET,
            &format!("/v1/workers/w1/assignments?after={v}&wait=200ms"),
            None,
            None,
        )
        .await;
    assert_eq!((s, same["version"].as_u64()), (200, Some(v)));
    api.refused(
        f,
        Method::GET,
        "/v1/workers/w1/assignments?wait=2h",
        None,
        None,
        400,
        "invalid",
    )
    .await;
    api.refused(
        f,
        Method::GET,
        "/v1/workers/nobody/assignments",
        None,
        None,
        404,
        "not_found",
    )
    .await;

    // Acknowledging a step that does not exist is a stale epoch: re-read assignments.
    assert_eq!(
        api.call(
            leader,
            Method::POST,
            "/v1/partitions",
            None,
            Some(json!({"count": 2, "replication_factor": 1}))
        )
        .await
        .0,
        201
    );
    api.refused(
        f,
        Method::POST,
        "/v1/partitions/0/replicas/w1/ack",
        None,
        Some(json!({"generation": 6, "epoch": 0})),
        409,
        "stale_epoch",
    )
    .await;
    api.refused(
        f,
        Method::POST,
        "/v1/partitions/0/replicas/w1/ack",
        None,
        Some(json!({"generation": 1, "epoch": 0})),
        409,
        "stale_generation",
    )
    .await;
}

/// Heartbeats are leader soft state, fenced by generation; liveness is answered by the leader:
/// suspect until heard, alive while heartbeats are fresh, suspect again once they stop.
#[tokio::test]
async fn heartbeats_and_liveness() {
    let c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "1500",
            "--dead-after-ms",
            "5000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let f = (1..=3).find(|id| *id != leader).unwrap();
    let api = Api { c: &c };
    for w in ["w1", "w2"] {
        let reg = json!({"incarnation": 1, "address": "10.1.0.1:9000"});
        assert_eq!(
            api.call(
                leader,
                Method::PUT,
                &format!("/v1/workers/{w}"),
                None,
                Some(reg)
            )
            .await
            .0,
            200
        );
    }
    let liveness = |w: &'static str| {
        let api = &api;
        async move {
            api.call(f, Method::GET, &format!("/v1/workers/{w}"), None, None)
                .await
                .1["liveness"]
                .clone()
        }
    };
    assert_eq!(liveness("w1").await, "suspect", "not heard from yet");

    let (s, hb) = api
        .call(
            f,
            Method::POST,
            "/v1/workers/w1/heartbeat",
            None,
            Some(json!({"generation": 1})),
        )
        .await;
    assert_eq!(
        (s, hb["suspect_after_ms"].as_u64()),
        (200, Some(1500)),
        "{hb}"
    );
    assert_eq!(liveness("w1").await, "alive");
    assert_eq!(liveness("w2").await, "suspect");
    let (_, stale) = api
        .call(f, Method::GET, "/v1/workers/w1?stale=true", None, None)
        .await;
    assert!(
        stale.get("liveness").is_none(),
        "a follower has no soft state: {stale}"
    );

    // Fencing by generation.
    let reg = json!({"incarnation": 2, "address": "10.1.0.1:9000"});
    assert_eq!(
        api.call(leader, Method::PUT, "/v1/workers/w1", None, Some(reg))
            .await
            .1["generation"],
        2
    );
    api.refused(
        f,
        Method::POST,
        "/v1/workers/w1/heartbeat",
        None,
        Some(json!({"generation": 1})),
        409,
        "stale_generation",
    )
    .await;
    api.refused(
        f,
        Method::POST,
        "/v1/workers/w1/heartbeat",
        None,
        Some(json!({"generation": 9})),
        400,
        "invalid",
    )
    .await;
    api.refused(
        f,
        Method::POST,
        "/v1/workers/nobody/heartbeat",
        None,
        Some(json!({"generation": 1})),
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        api.call(
            f,
            Method::POST,
            "/v1/workers/w1/heartbeat",
            None,
            Some(json!({"generation": 2}))
        )
        .await
        .0,
        200
    );
    assert_eq!(liveness("w1").await, "alive");

    // Without heartbeats, the worker turns suspect again.
    support::wait_for(
        "w1 to turn suspect",
        std::time::Duration::from_secs(20),
        || async { (liveness("w1").await == "suspect").then_some(()) },
    )
    .await;
}

/// `/openapi.json` answers without a token, parses as an OpenAPI 3.1 document, and documents
/// exactly the routes the router serves (`drover_server::api::routes()`, the table the router is
/// built from): a route added without its `#[utoipa::path]` fails here, and so does a documented
/// route that nothing serves. Every route behind a token documents 401 and the bearer scheme,
/// every open one says it needs none, operation ids are unique, and every `$ref` and link
/// resolves. A method a path does not serve is a 405 in the API's error shape.
#[tokio::test]
async fn openapi_documents_every_route() {
    use std::collections::BTreeSet;

    use drover_server::api::{Access, routes};

    let c = Cluster::start(1, &["--admin-token", ADMIN, "--worker-token", WORKER]);
    let resp = support::wait_for(
        "/openapi.json",
        std::time::Duration::from_secs(30),
        || async { c.http.get(c.url(1, "/openapi.json")).send().await.ok() },
    )
    .await;
    assert_eq!(resp.status(), 200, "served without a token");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&bearer["type"], &bearer["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    let mut documented = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            documented.insert((method.to_uppercase(), path.clone()));
            let id = op["operationId"].as_str().unwrap().to_owned();
            assert!(operation_ids.insert(id.clone()), "operationId {id} twice");
        }
    }
    let routed: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_string(), r.openapi_path()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes without docs: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    for r in routes() {
        let op = &doc["paths"][r.openapi_path()][r.method.as_str().to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{} {}: no success response",
            r.method,
            r.path
        );
        match r.access {
            Access::Token | Access::Agent | Access::Debug => {
                assert!(op.get("security").is_none(), "{} {}", r.method, r.path);
                assert!(responses.contains_key("401"), "{} {}", r.method, r.path);
            }
            Access::Open => {
                assert_eq!(op["security"], json!([{}]), "{} {}", r.method, r.path);
                assert!(!responses.contains_key("401"), "{} {}", r.method, r.path);
            }
        }
    }

    // Every `$ref` points into the document, every link at a documented operation.
    fn walk(v: &Value, doc: &Value, ids: &BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let pointer = r.strip_prefix('#').expect("a local $ref");
                    assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
                }
                if let Some(Value::Object(links)) = m.get("links") {
                    for (name, link) in links {
                        let target = link["operationId"].as_str();
                        assert!(
                            target.is_some_and(|t| ids.contains(t)),
                            "link {name} targets {link}"
                        );
                    }
                }
                m.values().for_each(|x| walk(x, doc, ids));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, doc, ids)),
            _ => {}
        }
    }
    walk(&doc, &doc, &operation_ids);

    // A method a documented path does not serve is a 405 in the error shape, with `Allow`.
    let resp = c.http.patch(c.url(1, "/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET,HEAD");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
}

/// Liveness timing and throttles are replicated cluster settings (`/v1/settings`): nodes
/// started with different liveness flags all answer the first leader's, a change through any
/// node reaches every node, a new leader answers the same `dead_after`, and bad changes are
/// refused whole. The regression: each node answered heartbeats with its own flags, so after a
/// failover the lease an agent was told changed under it.
#[tokio::test]
async fn settings_are_replicated_and_every_node_answers_the_same() {
    let mut c = Cluster::new(3, &["--admin-token", ADMIN, "--worker-token", WORKER]);
    for (node, dead_after) in c.nodes.iter_mut().zip(["9000", "12000", "15000"]) {
        node.args.extend(
            [
                "--heartbeat-interval-ms",
                "100",
                "--suspect-after-ms",
                "1000",
                "--dead-after-ms",
                dead_after,
            ]
            .map(String::from),
        );
    }
    for id in 1..=3 {
        c.spawn(id);
    }
    c.token = Some(ADMIN.into());
    let leader = c.leader_among(&[1, 2, 3]).await;
    let api = Api { c: &c };
    let reg = json!({"incarnation": 1, "address": "10.1.0.1:9000"});
    let (s, _) = api
        .call(
            leader,
            Method::PUT,
            "/v1/workers/w1",
            Some(WORKER),
            Some(reg),
        )
        .await;
    assert_eq!(s, 200);
    let beat = |node: u64| {
        let api = &api;
        async move {
            let (s, b) = api
                .call(
                    node,
                    Method::POST,
                    "/v1/workers/w1/heartbeat",
                    Some(WORKER),
                    Some(json!({"generation": 1})),
                )
                .await;
            assert_eq!(s, 200, "{b}");
            b["dead_after_ms"].as_u64().unwrap()
        }
    };
    let first = beat(leader).await;
    for id in 1..=3 {
        assert_eq!(
            beat(id).await,
            first,
            "node {id} answers another dead_after"
        );
    }

    // A change through a follower reaches every node.
    let f = (1..=3).find(|id| *id != leader).unwrap();
    let (s, set) = api
        .admin(
            f,
            Method::PUT,
            "/v1/settings",
            Some(json!({"dead_after_ms": 20000, "max_moves_per_worker": 2})),
        )
        .await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(set["dead_after_ms"], 20000);
    let version = set["version"].as_u64().unwrap();
    assert!(version > 0);
    for id in 1..=3 {
        support::wait_for(
            "every node to apply the change",
            std::time::Duration::from_secs(10),
            || async {
                let (_, s) = api
                    .admin(id, Method::GET, "/v1/settings?stale=true", None)
                    .await;
                (s["version"].as_u64() == Some(version)).then_some(())
            },
        )
        .await;
    }
    for id in 1..=3 {
        assert_eq!(beat(id).await, 20000);
    }

    // Refused whole, changing nothing.
    for (body, status, code) in [
        (json!({"dead_after_ms": 500}), 400, "invalid"),
        (json!({"heartbeat_interval_ms": 0}), 400, "invalid"),
        (json!({"dead_after_ms": 30000, "nope": 1}), 400, "invalid"),
        (json!({"dead_after_ms": "soon"}), 400, "invalid"),
        (
            json!({"dead_after_ms": 30000, "expected_version": version + 7}),
            409,
            "version_conflict",
        ),
    ] {
        api.refused(
            f,
            Method::PUT,
            "/v1/settings",
            Some(ADMIN),
            Some(body),
            status,
            code,
        )
        .await;
    }
    api.refused(
        f,
        Method::PUT,
        "/v1/settings",
        Some(WORKER),
        Some(json!({"dead_after_ms": 30000})),
        403,
        "forbidden",
    )
    .await;

    // A new leader answers the same dead_after, whatever its own flags say.
    c.kill(leader);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let new_leader = c.leader_among(&others).await;
    let api = Api { c: &c };
    let answered = support::wait_for(
        "the new leader to acknowledge heartbeats",
        std::time::Duration::from_secs(10),
        || async {
            let (s, b) = api
                .call(
                    new_leader,
                    Method::POST,
                    "/v1/workers/w1/heartbeat",
                    Some(WORKER),
                    Some(json!({"generation": 1})),
                )
                .await;
            if s == 200 {
                b["dead_after_ms"].as_u64()
            } else {
                None
            }
        },
    )
    .await;
    assert_eq!(answered, 20000);
}

/// The regression: `GET /v1/events` without `after` (or `after=0`) answered 410 once the log
/// had passed its retention, so `droverctl watch` stopped working on any busy cluster. It now
/// starts from the oldest kept event.
#[tokio::test]
async fn events_without_after_start_from_the_oldest_kept() {
    let c = Cluster::start(1, &[]);
    c.leader_among(&[1]).await;
    let api = Api { c: &c };
    let (s, _) = api
        .call(
            1,
            Method::PUT,
            "/v1/settings",
            None,
            Some(json!({"events_retained": 5})),
        )
        .await;
    assert_eq!(s, 200);
    for i in 0..12 {
        let reg = json!({"incarnation": 1, "address": "10.1.0.1:9000"});
        let (s, _) = api
            .call(
                1,
                Method::PUT,
                &format!("/v1/workers/w{i}"),
                None,
                Some(reg),
            )
            .await;
        assert_eq!(s, 200);
    }
    for path in ["/v1/events", "/v1/events?after=0"] {
        let (s, page) = api.call(1, Method::GET, path, None, None).await;
        assert_eq!(s, 200, "{path}: {page}");
        let seqs: Vec<u64> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs.len(), 5, "{page}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }
    let (s, page) = api
        .call(1, Method::GET, "/v1/events?after=1", None, None)
        .await;
    assert_eq!(
        (s, page["error"]["code"].as_str()),
        (410, Some("compacted"))
    );
}

/// Issue 20's new routes refuse bad input with SPEC §4's error shape and change nothing:
/// maintenance without a reason or an end, over 24 h, in the past, with unknown fields, for an
/// unknown worker, from the worker token without its generation (or with an old or unknown one); the brake's
/// release from the worker token or with an empty reason; drains with a bad deadline.
#[tokio::test]
async fn maintenance_brake_and_deadlines_refuse_bad_input_and_change_nothing() {
    let mut c = Cluster::start(3, &["--admin-token", ADMIN, "--worker-token", WORKER]);
    c.token = Some(ADMIN.into());
    let leader = c.leader_among(&[1, 2, 3]).await;
    let f = (1..=3).find(|id| *id != leader).unwrap();
    let api = Api { c: &c };
    let reg = json!({"incarnation": 7, "address": "10.1.0.1:9000", "zone": "z1"});
    let (s, w) = api
        .call(f, Method::PUT, "/v1/workers/w1", Some(WORKER), Some(reg))
        .await;
    assert_eq!(s, 200, "{w}");
    let (s, w) = api
        .admin(
            f,
            Method::POST,
            "/v1/workers/w1/state",
            Some(json!({"state": "active"})),
        )
        .await;
    assert_eq!(s, 200, "{w}");

    let m = "/v1/workers/w1/maintenance";
    for (node, token, path, body, status, code) in [
        (f, ADMIN, m, json!({"for": "10m"}), 400, "invalid"),
        (
            f,
            ADMIN,
            m,
            json!({"reason": "", "for": "10m"}),
            400,
            "invalid",
        ),
        (f, ADMIN, m, json!({"reason": "r"}), 400, "invalid"),
        (
            f,
            ADMIN,
            m,
            json!({"reason": "r", "for": "48h"}),
            400,
            "invalid",
        ),
        (
            f,
            ADMIN,
            m,
            json!({"reason": "r", "for": "soon"}),
            400,
            "invalid",
        ),
        (
            f,
            ADMIN,
            m,
            json!({"reason": "r", "until": 1}),
            400,
            "invalid",
        ),
        (
            f,
            ADMIN,
            m,
            json!({"reason": "r", "for": "1m", "until": 1}),
            400,
            "invalid",
        ),
        (
            f,
            ADMIN,
            m,
            json!({"reason": "r", "for": "1m", "why": 1}),
            400,
            "invalid",
        ),
        (
            leader,
            WORKER,
            m,
            json!({"reason": "r", "for": "1m"}),
            400,
            "invalid",
        ),
        (
            leader,
            WORKER,
            m,
            json!({"reason": "r", "for": "1m", "generation": 9}),
            400,
            "invalid",
        ),
        (
            leader,
            WORKER,
            m,
            json!({"reason": "r", "for": "1m", "generation": 0}),
            409,
            "stale_generation",
        ),
        (
            f,
            ADMIN,
            "/v1/workers/nope/maintenance",
            json!({"reason": "r", "for": "1m"}),
            404,
            "not_found",
        ),
    ] {
        api.refused(
            node,
            Method::PUT,
            path,
            Some(token),
            Some(body),
            status,
            code,
        )
        .await;
    }
    for (token, body, status, code) in [
        (WORKER, json!({}), 403, "forbidden"),
        (ADMIN, json!({"reason": ""}), 400, "invalid"),
        (ADMIN, json!({"reason": "r", "extra": true}), 400, "invalid"),
    ] {
        api.refused(
            f,
            Method::POST,
            "/v1/brake/release",
            Some(token),
            Some(body),
            status,
            code,
        )
        .await;
    }
    let drain = "/v1/workers/w1/drain";
    for body in [
        json!({"deadline_in": "soon"}),
        json!({"deadline": 1}),
        json!({"deadline_in": "1h", "on_deadline": "maybe"}),
        json!({"deadline_in": "1h", "deadline": 4_000_000_000_000u64}),
    ] {
        api.refused(
            f,
            Method::POST,
            drain,
            Some(ADMIN),
            Some(body),
            400,
            "invalid",
        )
        .await;
    }
    // And the good ones pass: a maintenance from the agent with its generation, lifted.
    let (s, w) = api
        .call(
            leader,
            Method::PUT,
            m,
            Some(WORKER),
            Some(json!({"reason": "restart", "for": "1m", "generation": 1})),
        )
        .await;
    assert_eq!(
        (s, w["maintenance"]["actor"].as_str()),
        (200, Some("worker:w1")),
        "{w}"
    );
    let (s, w) = api.admin(f, Method::DELETE, m, None).await;
    assert_eq!((s, w["maintenance"].is_null()), (200, true), "{w}");
}

/// The web console's two needs (SPEC §5): `/ui` is one self-contained page, open even where
/// every `/v1` route needs a token (it carries no data; the operator types the token into it),
/// allowed to load nothing from elsewhere; and `/v1/events?wait=` is a long poll — through a
/// follower, with and without `stale` — that answers once an event commits, at its `wait`
/// with an empty page when none does, and refuses a bad `wait` with 400.
#[tokio::test]
async fn the_console_page_is_open_and_events_long_poll() {
    let mut c = Cluster::start(3, &["--admin-token", ADMIN, "--worker-token", WORKER]);
    c.token = Some(ADMIN.into());
    let leader = c.leader_among(&[1, 2, 3]).await;
    let f = (1..=3).find(|id| *id != leader).unwrap();
    let api = Api { c: &c };

    let r = c.http.get(c.url(f, "/ui")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("/v1/cluster") && page.contains("sessionStorage"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page refers to something outside the node"
    );
    let (s, _) = api.call(f, Method::GET, "/v1/cluster", None, None).await;
    assert_eq!(s, 401, "the API behind the page still needs the token");

    let (s, page) = api.admin(f, Method::GET, "/v1/events", None).await;
    assert_eq!(s, 200);
    let mut after = page["next_after"].as_u64().unwrap();
    for stale in [false, true] {
        let url = c.url(
            f,
            &format!("/v1/events?after={after}&wait=30s&stale={stale}"),
        );
        let poll = {
            let http = c.http.clone();
            tokio::spawn(async move {
                let r = http.get(url).bearer_auth(ADMIN).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        };
        // The poll is waiting: nothing has happened since `after`. (Not a fixed sleep that
        // decides the outcome: a poll that answered early, empty, fails below either way.)
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if poll.is_finished() {
            let (s, page) = poll.await.unwrap();
            panic!("the poll answered before any event: {s} {page}");
        }
        let id = format!("w-poll-{stale}");
        let reg = json!({"incarnation": 1, "address": "10.1.0.1:9000"});
        let (s, _) = api
            .call(
                leader,
                Method::PUT,
                &format!("/v1/workers/{id}"),
                Some(WORKER),
                Some(reg),
            )
            .await;
        assert_eq!(s, 200);
        let (s, page) = poll.await.unwrap();
        assert_eq!(s, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert!(
            events
                .iter()
                .any(|e| e["kind"]["registered"]["worker"] == id.as_str()),
            "{page}"
        );
        after = page["next_after"].as_u64().unwrap();
    }
    let (_, page) = api.admin(f, Method::GET, "/v1/events", None).await;
    let after = page["next_after"].as_u64().unwrap();
    let (s, page) = api
        .admin(
            f,
            Method::GET,
            &format!("/v1/events?after={after}&wait=300ms"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["events"], json!([]), "{page}");
    assert_eq!(page["next_after"], after);
    // The console's member health: the leader says how far behind each member is; a follower,
    // which does not know, says nothing.
    let lags = support::wait_for(
        "the leader to report every member's lag",
        std::time::Duration::from_secs(20),
        || async {
            let (_, c) = api.admin(leader, Method::GET, "/v1/cluster", None).await;
            let lags: Vec<u64> = c["members"]
                .as_array()?
                .iter()
                .map(|m| m["lag"].as_u64())
                .collect::<Option<_>>()?;
            Some(lags)
        },
    )
    .await;
    assert_eq!(lags.len(), 3);
    let (_, c) = api.admin(f, Method::GET, "/v1/cluster", None).await;
    assert!(
        c["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.get("lag").is_none()),
        "{c}"
    );
    for bad in ["61s", "soon", "-1"] {
        let (s, body) = api
            .admin(f, Method::GET, &format!("/v1/events?wait={bad}"), None)
            .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{bad}: {body}"
        );
    }
}
