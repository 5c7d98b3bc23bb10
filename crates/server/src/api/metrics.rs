//! `/metrics` in OpenMetrics text: Raft position and per-peer lag, workers by state and
//! liveness, replicas and leaders per worker, partitions by healthy serving replicas (a replica
//! on a suspect worker is not healthy), HTTP requests by route and status with latency
//! histograms, and build info.
//!
//! HTTP metrics are counted (and each request logged, under the `drover::http` target) by a
//! middleware into prometheus-client families; everything derived
//! from the state is computed at scrape time from the applied state and Raft metrics, so it can
//! never drift from what the node reports elsewhere.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::core::Node;
use crate::core::liveness::Liveness;
use crate::core::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

/// The HTTP layer's request metrics, registered in the node's registry beside the core's.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram>,
}

impl HttpMetrics {
    /// New request families, registered in `registry` (once per node: a second registration
    /// would show every family twice).
    pub fn registered(registry: &Metrics) -> Self {
        let requests = Family::<HttpLabels, Counter>::default();
        let latency = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to ~6.5 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        registry.register(
            "drover_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "drover_http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            latency.clone(),
        );
        Self { requests, latency }
    }
}

/// Middleware counting every request under its route pattern (not its raw path, so label
/// values stay bounded).
pub async fn track(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let labels = HttpLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    let elapsed = start.elapsed();
    // The structured request log (human or JSON, by --log-format). Agents' routine calls —
    // a heartbeat a second and a long poll per worker — are debug, with the path naming the
    // worker: at info they drowned everything else (thousands of lines an hour per fleet).
    let routine = matches!(
        labels.route.as_str(),
        "/v1/workers/{id}/heartbeat" | "/v1/workers/{id}/assignments"
    ) && labels.status < 400;
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if routine {
        tracing::debug!(
            target: "drover::http",
            route = %labels.route,
            %path,
            method = %labels.method,
            status = labels.status,
            micros,
            "request"
        );
    } else {
        tracing::info!(
            target: "drover::http",
            route = %labels.route,
            method = %labels.method,
            status = labels.status,
            micros,
            "request"
        );
    }
    m.requests.get_or_create(&labels).inc();
    m.latency
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
    response
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// Prometheus text: Raft position, workers by state and liveness, partitions by healthy serving
/// replicas, HTTP requests by route and status.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "cluster",
    security(()),
    responses((status = 200, description = "OpenMetrics text exposition format 1.0.0", body = String, content_type = "application/openmetrics-text"))
)]
pub async fn render(State(node): State<Node>) -> Response {
    let mut out = String::new();
    let m = node.raft().metrics().borrow().clone();
    let one = |v: f64| vec![(String::new(), v)];
    gauge(
        &mut out,
        "drover_raft_term",
        "Current Raft term",
        &one(m.current_term as f64),
    );
    gauge(
        &mut out,
        "drover_raft_leader",
        "Id of the leader this node knows (0: none)",
        &one(m.current_leader.unwrap_or(0) as f64),
    );
    gauge(
        &mut out,
        "drover_raft_is_leader",
        "1 if this node leads",
        &one(f64::from(u8::from(m.current_leader == Some(node.id())))),
    );
    gauge(
        &mut out,
        "drover_raft_commit_index",
        "Last committed log index",
        &one(node.commit_index() as f64),
    );
    gauge(
        &mut out,
        "drover_raft_applied_index",
        "Last applied log index",
        &one(m.last_applied.map_or(0, |l| l.index) as f64),
    );
    gauge(
        &mut out,
        "drover_raft_last_log_index",
        "Last log index",
        &one(m.last_log_index.unwrap_or(0) as f64),
    );
    gauge(
        &mut out,
        "drover_build_info",
        "Always 1; the labels name the build",
        &[(
            format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
            1.0,
        )],
    );
    // Per-peer replication lag, on the leader: entries between its last log index and what
    // each peer has matched.
    if let Some(replication) = &m.replication {
        let last = m.last_log_index.unwrap_or(0);
        let lag: Vec<(String, f64)> = replication
            .iter()
            .filter(|(peer, _)| **peer != node.id())
            .map(|(peer, matched)| {
                let matched = matched.map_or(0, |l| l.index);
                (
                    format!("{{peer=\"{peer}\"}}"),
                    last.saturating_sub(matched) as f64,
                )
            })
            .collect();
        gauge(
            &mut out,
            "drover_raft_replication_lag_entries",
            "Log entries each peer trails the leader by (leader only)",
            &lag,
        );
    }
    {
        let guard = node.state().read();
        let s = &guard.state;
        // Soft liveness, known only to the leader: a suspect worker (or one a new leader has
        // not heard yet) gets no placements, and its replicas are not counted healthy.
        let now = tokio::time::Instant::now();
        let liveness: std::collections::BTreeMap<&drover_types::WorkerId, Liveness> = s
            .workers
            .values()
            .filter_map(|w| node.liveness_of(s, w, now).map(|l| (&w.id, l)))
            .collect();
        let leads = node.heartbeats().leader_since().is_some();
        let suspect = |w: &drover_types::WorkerId| {
            matches!(liveness.get(w), Some(Liveness::Suspect | Liveness::Unknown))
        };
        gauge(
            &mut out,
            "drover_state_version",
            "Replicated state version",
            &one(s.version as f64),
        );
        let mut by_state = std::collections::BTreeMap::new();
        let mut dead = 0u64;
        for w in s.workers.values() {
            *by_state.entry(w.state.as_str()).or_insert(0u64) += 1;
            dead += u64::from(w.dead);
        }
        let states: Vec<(String, f64)> = drover_types::WorkerState::ALL
            .iter()
            .map(|st| {
                (
                    format!("{{state=\"{st}\"}}"),
                    *by_state.get(st.as_str()).unwrap_or(&0) as f64,
                )
            })
            .collect();
        gauge(
            &mut out,
            "drover_workers",
            "Workers by lifecycle state",
            &states,
        );
        let total = s.workers.len() as u64;
        let suspects = s.workers.keys().filter(|w| suspect(w)).count() as u64;
        gauge(
            &mut out,
            "drover_workers_by_liveness",
            "Workers by liveness: committed dead verdicts; suspect only on the leader (soft state)",
            &[
                (
                    "{liveness=\"alive\"}".into(),
                    (total - dead - suspects) as f64,
                ),
                ("{liveness=\"suspect\"}".into(), suspects as f64),
                ("{liveness=\"dead\"}".into(), dead as f64),
            ],
        );
        if leads {
            gauge(
                &mut out,
                "drover_workers_suspect",
                "Workers missing heartbeats for suspect_after, or not heard yet by a new leader (leader only)",
                &one(suspects as f64),
            );
        }
        gauge(
            &mut out,
            "drover_workers_dead",
            "Workers declared dead at their current generation",
            &one(dead as f64),
        );
        let cordoned = s.workers.values().filter(|w| w.is_cordoned()).count();
        gauge(
            &mut out,
            "drover_workers_cordoned",
            "Workers with at least one cordon (no new replicas)",
            &one(cordoned as f64),
        );
        gauge(
            &mut out,
            "drover_scheduler_paused",
            "1 while an operator has paused new moves",
            &one(f64::from(u8::from(s.brakes.pause.is_some()))),
        );
        let mut healthy = std::collections::BTreeMap::new();
        for p in &s.partitions {
            let h = p
                .replicas
                .iter()
                .filter(|r| {
                    r.role == drover_types::ReplicaRole::Serving
                        && s.is_alive(&r.worker)
                        && !suspect(&r.worker)
                })
                .count();
            *healthy.entry(h).or_insert(0u64) += 1;
        }
        let samples: Vec<(String, f64)> = healthy
            .iter()
            .map(|(h, n)| (format!("{{healthy_serving=\"{h}\"}}"), *n as f64))
            .collect();
        gauge(
            &mut out,
            "drover_partitions",
            "Partitions by number of healthy serving replicas",
            &samples,
        );
        let in_flight = s
            .partitions
            .iter()
            .flat_map(|p| p.replicas.iter())
            .filter(|r| r.role != drover_types::ReplicaRole::Serving)
            .count();
        gauge(
            &mut out,
            "drover_moves_in_flight",
            "Joining or leaving replicas",
            &one(in_flight as f64),
        );
        // Replicas by worker and role, and preferred leaders by worker.
        let mut held: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
        let mut leaders: std::collections::BTreeMap<&str, u64> = Default::default();
        for w in s.workers.keys() {
            leaders.insert(w.as_str(), 0);
        }
        for p in &s.partitions {
            for r in &p.replicas {
                let role = match r.role {
                    drover_types::ReplicaRole::Joining => "joining",
                    drover_types::ReplicaRole::Serving => "serving",
                    drover_types::ReplicaRole::Leaving => "leaving",
                };
                *held.entry((r.worker.as_str(), role)).or_insert(0) += 1;
            }
            if let Some(l) = &p.leader {
                *leaders.entry(l.as_str()).or_insert(0) += 1;
            }
        }
        let held: Vec<(String, f64)> = held
            .iter()
            .map(|((w, role), n)| (format!("{{worker=\"{w}\",role=\"{role}\"}}"), *n as f64))
            .collect();
        gauge(
            &mut out,
            "drover_worker_replicas",
            "Replicas each worker holds, by role",
            &held,
        );
        let leaders: Vec<(String, f64)> = leaders
            .iter()
            .map(|(w, n)| (format!("{{worker=\"{w}\"}}"), *n as f64))
            .collect();
        gauge(
            &mut out,
            "drover_worker_leaders",
            "Partitions whose preferred leader each worker is",
            &leaders,
        );
        let draining: Vec<(String, f64)> = s
            .workers
            .values()
            .filter(|w| w.state == drover_types::WorkerState::Draining)
            .map(|w| {
                (
                    format!("{{worker=\"{}\"}}", w.id),
                    s.replicas_on(&w.id).count() as f64,
                )
            })
            .collect();
        gauge(
            &mut out,
            "drover_drain_replicas_remaining",
            "Replicas a draining worker still holds",
            &draining,
        );
    }
    node.metrics().encode(&mut out);
    (
        // prometheus-client encodes OpenMetrics text (`# EOF` last, counters as `_total`):
        // say so, so a scraper parses it as what it is.
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
