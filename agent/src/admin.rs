//! The admin HTTP endpoint: `/live`, `/ready` and `/metrics`.

use crate::exposition::Published;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
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

/// OpenMetrics for scrapers that ask for it (Prometheus does), the classic text format
/// (0.0.4) for everyone else: curl, promtool, older scrapers.
async fn metrics(State(s): State<AdminState>, headers: HeaderMap) -> impl IntoResponse {
    let mut body = String::new();
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) if openmetrics => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            classic_text(&body),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("encoding metrics failed: {e}\n"),
        ),
    }
}

/// OpenMetrics text → Prometheus text 0.0.4. The two differ, for what we emit, only in
/// that a counter's HELP and TYPE name the family without `_total` in OpenMetrics, and
/// in the `# UNIT` and `# EOF` lines, which 0.0.4 does not have.
pub fn classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.strip_suffix(" counter"))
        {
            counters.insert(name.to_owned());
        }
    }
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_name_in_the_classic_format() {
        let om = "# HELP node_disk_read_bytes The total number of bytes read.\n# TYPE node_disk_read_bytes counter\nnode_disk_read_bytes_total{device=\"vda\"} 5.0\n# HELP up Up.\n# TYPE up gauge\n# UNIT up seconds\nup 1\n# EOF\n";
        assert_eq!(
            classic_text(om),
            "# HELP node_disk_read_bytes_total The total number of bytes read.\n# TYPE node_disk_read_bytes_total counter\nnode_disk_read_bytes_total{device=\"vda\"} 5.0\n# HELP up Up.\n# TYPE up gauge\nup 1\n"
        );
    }
}
