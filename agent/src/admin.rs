//! The admin HTTP endpoint: `/live`, `/ready` and `/metrics`.

use crate::exposition::Published;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    latest: watch::Receiver<Option<Arc<Published>>>,
}

pub fn router(registry: Arc<Registry>, latest: watch::Receiver<Option<Arc<Published>>>) -> Router {
    Router::new()
        .route("/live", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(AdminState { registry, latest })
}

/// Ready once the agent has completed a collection: it can measure this node.
/// Coordinator reachability is deliberately not part of it (a coordinator outage
/// must not make every agent unready; the replay buffer covers it).
async fn ready(State(s): State<AdminState>) -> impl IntoResponse {
    if s.latest.borrow().is_some() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no collection completed yet\n",
        )
    }
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("encoding metrics failed: {e}\n"),
        ),
    }
}
