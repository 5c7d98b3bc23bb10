//! `/metrics` in OpenMetrics text: Raft position and per-peer lag, workers by state and
//! liveness, replicas and leaders per worker, partitions by healthy serving replicas (a replica
//! on a suspect worker is not healthy), HTTP requests by route and status with latency
//! histograms, and build info.
//!
//! HTTP metrics are counted (and each request logged, under the `drover::http` target) by a
//! middleware into prometheus-client families; everything derived from the state is computed at
//! scrape time from the applied state and Raft metrics by a prometheus-client collector, so it
//! can never drift from what the node reports elsewhere. The whole body is the library's
//! encoding.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    // The structured request log (human or JSON, by --log-format). Routine calls that
    // succeed are debug, with the path naming the worker or key: agents' heartbeats, long polls
    // and acknowledgements (at info they drowned everything else: a placement on 10,000
    // workers logged 180,000 acknowledgements in three minutes) and
    // the KV data plane, which clients call thousands of times a second (40,000 lines a second
    // under 64 readers, burying every other line). Errors stay info.
    let routine = matches!(
        labels.route.as_str(),
        "/v1/workers/{id}/heartbeat"
            | "/v1/workers/{id}/assignments"
            | "/v1/partitions/{p}/replicas/{worker}/ack"
            | "/v1/kv/{*key}"
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
    // The state gauges are a collector in a registry of their own, encoded before the node's
    // registry (which writes the closing `# EOF`). Registering the collector in the node's
    // registry instead would make the node own a handle on itself, and never be dropped.
    let mut scrape = Registry::default();
    scrape.register_collector(Box::new(StateGauges(node.clone())));
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &scrape);
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

/// The gauges derived from the node's applied state and Raft metrics, computed on each scrape.
#[derive(Debug)]
struct StateGauges(Node);

/// One unlabelled gauge.
fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// A gauge family, one sample per label set.
fn gauges<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

impl Collector for StateGauges {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let node = &self.0;
        let enc = &mut enc;
        let m = node.raft().metrics().borrow().clone();
        gauge(enc, "drover_raft_term", "Current Raft term", m.current_term)?;
        gauge(
            enc,
            "drover_raft_leader",
            "Id of the leader this node knows (0: none)",
            m.current_leader.unwrap_or(0),
        )?;
        gauge(
            enc,
            "drover_raft_is_leader",
            "1 if this node leads",
            u64::from(m.current_leader == Some(node.id())),
        )?;
        gauge(
            enc,
            "drover_raft_commit_index",
            "Last committed log index",
            node.commit_index(),
        )?;
        gauge(
            enc,
            "drover_raft_applied_index",
            "Last applied log index",
            m.last_applied.map_or(0, |l| l.index),
        )?;
        gauge(
            enc,
            "drover_raft_last_log_index",
            "Last log index",
            m.last_log_index.unwrap_or(0),
        )?;
        gauges(
            enc,
            "drover_build_info",
            "Always 1; the labels name the build",
            [([("version", env!("CARGO_PKG_VERSION"))], 1)],
        )?;
        // Per-peer replication lag, on the leader: entries between its last log index and what
        // each peer has matched.
        if let Some(replication) = &m.replication {
            let last = m.last_log_index.unwrap_or(0);
            gauges(
                enc,
                "drover_raft_replication_lag_entries",
                "Log entries each peer trails the leader by (leader only)",
                replication
                    .iter()
                    .filter(|(peer, _)| **peer != node.id())
                    .map(|(peer, matched)| {
                        let matched = matched.map_or(0, |l| l.index);
                        ([("peer", *peer)], last.saturating_sub(matched))
                    }),
            )?;
        }
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
            enc,
            "drover_state_version",
            "Replicated state version",
            s.version,
        )?;
        let mut by_state = std::collections::BTreeMap::new();
        let mut dead = 0u64;
        for w in s.workers.values() {
            *by_state.entry(w.state.as_str()).or_insert(0u64) += 1;
            dead += u64::from(w.dead);
        }
        gauges(
            enc,
            "drover_workers",
            "Workers by lifecycle state",
            drover_types::WorkerState::ALL.iter().map(|st| {
                (
                    [("state", st.as_str())],
                    *by_state.get(st.as_str()).unwrap_or(&0),
                )
            }),
        )?;
        let total = s.workers.len() as u64;
        let suspects = s.workers.keys().filter(|w| suspect(w)).count() as u64;
        gauges(
            enc,
            "drover_workers_by_liveness",
            "Workers by liveness: committed dead verdicts; suspect only on the leader (soft state)",
            [
                ([("liveness", "alive")], total - dead - suspects),
                ([("liveness", "suspect")], suspects),
                ([("liveness", "dead")], dead),
            ],
        )?;
        if leads {
            gauge(
                enc,
                "drover_workers_suspect",
                "Workers missing heartbeats for suspect_after, or not heard yet by a new leader (leader only)",
                suspects,
            )?;
        }
        gauge(
            enc,
            "drover_workers_dead",
            "Workers declared dead at their current generation",
            dead,
        )?;
        let cordoned = s.workers.values().filter(|w| w.is_cordoned()).count() as u64;
        gauge(
            enc,
            "drover_workers_cordoned",
            "Workers with at least one cordon (no new replicas)",
            cordoned,
        )?;
        gauge(
            enc,
            "drover_scheduler_paused",
            "1 while an operator has paused new moves",
            u64::from(s.brakes.pause.is_some()),
        )?;
        gauges(
            enc,
            "drover_brake",
            "1 while the brake holds: mass_failure stops death verdicts and re-replication",
            [(
                [("brake", "mass_failure")],
                u64::from(s.brakes.mass_failure.is_some()),
            )],
        )?;
        let maintenance = s.workers.values().filter(|w| w.in_maintenance()).count() as u64;
        gauge(
            enc,
            "drover_workers_in_maintenance",
            "Workers in maintenance (kept replicas, no death verdict until it ends)",
            maintenance,
        )?;
        let overdue = s
            .drains
            .values()
            .filter(|d| d.overdue_since_ms.is_some())
            .count() as u64;
        gauge(
            enc,
            "drover_drains_overdue",
            "Drains past their deadline and unfinished",
            overdue,
        )?;
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
        gauges(
            enc,
            "drover_partitions",
            "Partitions by number of healthy serving replicas",
            healthy.iter().map(|(h, n)| ([("healthy_serving", *h)], *n)),
        )?;
        let in_flight = s
            .partitions
            .iter()
            .flat_map(|p| p.replicas.iter())
            .filter(|r| r.role != drover_types::ReplicaRole::Serving)
            .count();
        gauge(
            enc,
            "drover_moves_in_flight",
            "Joining or leaving replicas",
            in_flight as u64,
        )?;
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
        gauges(
            enc,
            "drover_worker_replicas",
            "Replicas each worker holds, by role",
            held.iter()
                .map(|((w, role), n)| ([("worker", *w), ("role", *role)], *n)),
        )?;
        gauges(
            enc,
            "drover_worker_leaders",
            "Partitions whose preferred leader each worker is",
            leaders.iter().map(|(w, n)| ([("worker", *w)], *n)),
        )?;
        gauges(
            enc,
            "drover_drain_replicas_remaining",
            "Replicas a draining worker still holds",
            s.workers
                .values()
                .filter(|w| w.state == drover_types::WorkerState::Draining)
                .map(|w| {
                    (
                        [("worker", w.id.as_str())],
                        s.holdings_of(&w.id).len() as u64,
                    )
                }),
        )
    }
}
