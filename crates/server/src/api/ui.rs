//! `GET /ui`: the web console (SPEC §5) — one page of HTML, CSS and JavaScript compiled into the
//! binary, with nothing loaded from elsewhere. It reads the same `/v1` API as `droverctl`, with
//! the admin token the operator types in once (kept in the browser session, sent as a bearer
//! header, never in a URL), so the page itself is open: it carries no data.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page, from `ui.html` beside this file.
const PAGE: &str = include_str!("ui.html");

/// Only this origin, and only the page's own inline script and style: no asset from
/// elsewhere can load, and no other site may frame the console.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// The web console: a single page that reads the `/v1` API (it needs the admin token, entered
/// on the page, unless the cluster runs without tokens).
#[utoipa::path(
    get,
    path = "/ui",
    operation_id = "console",
    tag = "cluster",
    security(()),
    responses((status = 200, description = "The web console's page", body = String, content_type = "text/html"))
)]
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response()
}
