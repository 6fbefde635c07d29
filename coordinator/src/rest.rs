//! The REST API (JSON, snake_case), compatible in shape with the system aistor
//! replaces: errors are `{"error": ..., "details": ...}`.

use crate::convert;
use crate::state::Shared;
use aistor_core::{NodeEntry, NodeState};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Clone)]
struct RestState {
    shared: Shared,
    registry: Arc<Registry>,
}

pub fn router(shared: Shared, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/nodes/{name}", get(get_node))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::not_found("no such endpoint", "see README.md for the REST API")
        })
        .with_state(RestState { shared, registry })
}

/// An API error as the original system wrote them.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    error: String,
    details: String,
}

impl ApiError {
    pub fn not_found(error: &str, details: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: error.into(),
            details: details.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({
        "status": "healthy",
        "service": "aistor-coordinator",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// One node in the list: the figures people compare across nodes. Absent figures
/// are `null`, never 0.
#[derive(Debug, Serialize)]
pub struct NodeSummary {
    pub name: String,
    pub state: &'static str,
    pub cpu_millicores: Option<f64>,
    pub cpu_capacity_millicores: u64,
    pub memory_working_set_bytes: Option<u64>,
    pub memory_total_bytes: u64,
    pub disk_read_bytes_per_second: Option<f64>,
    pub disk_write_bytes_per_second: Option<f64>,
    pub last_report_at: String,
}

fn summary(entry: &NodeEntry<convert::StoredReport>) -> NodeSummary {
    let s = entry.latest_sample();
    NodeSummary {
        name: entry.name().to_owned(),
        state: match entry.state() {
            NodeState::Ready => "ready",
            NodeState::Stale => "stale",
        },
        cpu_millicores: s.cpu_millicores,
        cpu_capacity_millicores: s.cpu_capacity_millicores,
        memory_working_set_bytes: s.memory_working_set_bytes,
        memory_total_bytes: s.memory_total_bytes,
        disk_read_bytes_per_second: s.disk_read_bytes_per_second,
        disk_write_bytes_per_second: s.disk_write_bytes_per_second,
        last_report_at: rfc3339(entry.last_received_wall_unix_nanos()),
    }
}

fn rfc3339(unix_nanos: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(unix_nanos)).to_string()
}

async fn list_nodes(State(s): State<RestState>) -> impl IntoResponse {
    let nodes: Vec<NodeSummary> = s.shared.view().nodes().map(summary).collect();
    Json(serde_json::json!({ "count": nodes.len(), "nodes": nodes }))
}

/// The full node: the summary, the bookkeeping, and the latest report as the agent
/// sent it.
#[derive(Debug, Serialize)]
struct NodeDetail {
    #[serde(flatten)]
    summary: NodeSummary,
    reports_received_total: u64,
    duplicates_dropped_total: u64,
    report: Option<aistor_proto::v1::NodeReport>,
}

async fn get_node(
    State(s): State<RestState>,
    Path(name): Path<String>,
) -> Result<Json<NodeDetail>, ApiError> {
    let view = s.shared.view();
    let entry = view.node(&name).ok_or_else(|| {
        ApiError::not_found(
            "node not found",
            format!("no agent on node {name:?} has reported"),
        )
    })?;
    let status = convert::node_status(entry);
    Ok(Json(NodeDetail {
        summary: summary(entry),
        reports_received_total: status.reports_received_total,
        duplicates_dropped_total: status.duplicates_dropped_total,
        report: status.latest,
    }))
}

async fn metrics(State(s): State<RestState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {e}\n"),
        )
            .into_response(),
    }
}
