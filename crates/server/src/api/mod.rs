//! The admin HTTP API (SPEC §4) above the core: the route table and the router built from it.
//! The handlers live in one module per resource; what they share sits in leaf modules they
//! import directly — `error.rs` (the error shape and the one mapping of the core's error),
//! `extract.rs` (request parsing), `forward.rs` (forwarding to the leader), `auth.rs` (tokens
//! and roles) — so nothing imports this file but the crate root.

mod agent;
pub mod auth;
mod cluster;
mod cordon;
mod drains;
pub mod error;
mod events;
mod extract;
mod forward;
mod kv;
mod maintenance;
pub mod metrics;
pub mod openapi;
mod partitions;
mod scheduler;
pub mod serve;
mod settings;
mod sniff;
pub mod tls;
mod ui;
mod what_if;
mod workers;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{MethodFilter, MethodRouter, on};
use drover_api::ErrorCode;

pub use auth::Access;
pub use error::{ApiError, ApiResult};
pub use forward::{FORWARDED_HEADER, Routing};

use crate::core::Node;
use metrics::HttpMetrics;

/// One route of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    /// As axum spells it (`{*key}` for a rest-of-path parameter).
    pub path: &'static str,
    pub access: Access,
    /// Whether a follower forwards it to the leader ([`forward::forwarding`]).
    pub routing: Routing,
}

impl RouteInfo {
    /// The path as the OpenAPI document spells it (`{key}`).
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }
}

fn route<H, T>(
    method: Method,
    path: &'static str,
    (access, routing): (Access, Routing),
    handler: H,
) -> (RouteInfo, MethodRouter<Node>)
where
    H: Handler<T, Node>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
    let info = RouteInfo {
        method,
        path,
        access,
        routing,
    };
    (info, on(filter, handler))
}

/// Every route the API serves. The router is built from this one table, and `tests/api.rs`
/// checks it against `/openapi.json`, so a route cannot be added without its documentation.
fn table() -> Vec<(RouteInfo, MethodRouter<Node>)> {
    use Method as M;
    // Who may call it, and where it is served.
    let admin_write = (Access::Token, Routing::Leader);
    let admin_read = (Access::Token, Routing::Read { stale: true });
    let agent_write = (Access::Agent, Routing::Leader);
    let open = (Access::Open, Routing::Local);
    let debug = (Access::Debug, Routing::Local);
    vec![
        // Membership as this node knows it (and, on the leader, each member's lag).
        route(
            M::GET,
            "/v1/cluster",
            (Access::Token, Routing::Local),
            cluster::status,
        ),
        route(
            M::POST,
            "/v1/cluster/members",
            admin_write,
            cluster::add_member,
        ),
        route(
            M::DELETE,
            "/v1/cluster/members/{id}",
            admin_write,
            cluster::remove_member,
        ),
        route(M::GET, "/v1/kv", admin_read, kv::list),
        route(M::GET, "/v1/kv/{*key}", admin_read, kv::get),
        route(M::PUT, "/v1/kv/{*key}", admin_write, kv::put),
        route(M::DELETE, "/v1/kv/{*key}", admin_write, kv::delete),
        route(M::GET, "/v1/workers", admin_read, workers::list),
        route(M::GET, "/v1/workers/{id}", admin_read, workers::show),
        route(M::PUT, "/v1/workers/{id}", agent_write, agent::register),
        route(M::DELETE, "/v1/workers/{id}", admin_write, workers::remove),
        route(
            M::POST,
            "/v1/workers/{id}/state",
            agent_write,
            workers::set_state,
        ),
        // A long poll answered from this node's applied state.
        route(
            M::GET,
            "/v1/workers/{id}/assignments",
            (Access::Agent, Routing::Local),
            agent::assignments_poll,
        ),
        route(
            M::POST,
            "/v1/workers/{id}/heartbeat",
            (Access::Agent, Routing::Heartbeat),
            agent::heartbeat,
        ),
        route(
            M::POST,
            "/v1/workers/{id}/recommission",
            admin_write,
            workers::recommission,
        ),
        route(
            M::POST,
            "/v1/workers/{id}/drain",
            admin_write,
            drains::drain_one,
        ),
        route(M::POST, "/v1/drain", admin_write, drains::drain_set),
        route(M::POST, "/v1/what-if", admin_write, what_if::what_if_action),
        route(
            M::PUT,
            "/v1/workers/{id}/cordon/{holder}",
            admin_write,
            cordon::put,
        ),
        route(
            M::DELETE,
            "/v1/workers/{id}/cordon/{holder}",
            admin_write,
            cordon::delete,
        ),
        route(
            M::PUT,
            "/v1/workers/{id}/maintenance",
            agent_write,
            maintenance::put,
        ),
        route(
            M::DELETE,
            "/v1/workers/{id}/maintenance",
            agent_write,
            maintenance::delete,
        ),
        route(
            M::POST,
            "/v1/brake/release",
            admin_write,
            maintenance::release,
        ),
        route(
            M::POST,
            "/v1/scheduler/pause",
            admin_write,
            scheduler::pause,
        ),
        route(
            M::POST,
            "/v1/scheduler/resume",
            admin_write,
            scheduler::resume,
        ),
        route(
            M::POST,
            "/v1/partitions/{p}/replicas/{worker}/ack",
            agent_write,
            partitions::ack,
        ),
        route(M::GET, "/v1/partitions", admin_read, partitions::list),
        route(M::POST, "/v1/partitions", admin_write, partitions::create),
        route(
            M::GET,
            "/v1/partitions/by-key/{key}",
            admin_read,
            partitions::by_key,
        ),
        route(M::GET, "/v1/partitions/{p}", admin_read, partitions::show),
        route(M::GET, "/v1/settings", admin_read, settings::get),
        route(M::PUT, "/v1/settings", admin_write, settings::put),
        // A long poll: it waits on this node's applied state, then routes only its read.
        route(
            M::GET,
            "/v1/events",
            (Access::Token, Routing::Local),
            events::list,
        ),
        // A backup is always the leader's confirmed state.
        route(
            M::GET,
            "/v1/snapshot",
            (Access::Token, Routing::Read { stale: false }),
            events::snapshot,
        ),
        route(M::GET, "/debug/faults", debug, cluster::faults),
        route(M::POST, "/debug/faults", debug, cluster::set_fault),
        route(M::DELETE, "/debug/faults", debug, cluster::clear_faults),
        route(M::POST, "/debug/disk", debug, cluster::set_disk_fault),
        route(M::GET, "/healthz", open, cluster::healthz),
        route(M::GET, "/readyz", open, cluster::readyz),
        route(M::GET, "/metrics", open, metrics::render),
        route(M::GET, "/openapi.json", open, openapi::document),
        route(M::GET, "/ui", open, ui::page),
    ]
}

/// Every route of the API, whether or not this node enables the debug ones.
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|(info, _)| info).collect()
}

/// The API's router over `node`. Call it once per node: it registers the HTTP metrics in the
/// node's registry.
pub fn router(node: Node) -> Router {
    let max_body = node.config().max_body_bytes;
    let debug = node.config().enable_fault_injection;
    let mut api = Router::new();
    for (info, handler) in table() {
        // Forwarding runs inside authorization: nothing unauthorized is forwarded.
        let handler = match info.routing {
            Routing::Local => handler,
            routing => handler.route_layer(axum::middleware::from_fn_with_state(
                forward::Forwarding {
                    node: node.clone(),
                    routing,
                },
                forward::forwarding,
            )),
        };
        let handler = match info.access {
            Access::Open => handler,
            Access::Debug if !debug => continue,
            // The route's own access, checked before its handler runs.
            access => handler.route_layer(axum::middleware::from_fn_with_state(
                auth::Guard {
                    node: node.clone(),
                    access,
                },
                auth::authorize,
            )),
        };
        // Routes on one path with different methods merge into one method router, each
        // method keeping its own layer.
        api = api.route(info.path, handler);
    }
    let http_metrics = Arc::new(HttpMetrics::registered(node.metrics()));
    api.method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .route_layer(axum::middleware::from_fn_with_state(
            http_metrics,
            metrics::track,
        ))
        .with_state(node)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// A known path with a method it does not serve: 405 in the API's error shape (axum still adds
/// the `Allow` header).
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{} does not serve {method}", uri.path()),
    )
}
