//! `/api/v1/autoscaling` and its alias `/api/v1/autoscalers`: the original system's
//! autoscaler API (seeds 000 and 004), over aistor's stored `Autoscaler` objects.
//! Validation errors are 400 naming the field (the original answered 500), unknown
//! ids 404, unknown request fields a `Warning` header (as the API server does).

use super::{ApiError, RestState};
use crate::autoscalers::spec::time_text;
use crate::autoscalers::{AutoscalerError, request};
use crate::k8s::crd::Autoscaler;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

pub(super) fn routes() -> Router<RestState> {
    let mut r = Router::new();
    for base in ["/api/v1/autoscaling", "/api/v1/autoscalers"] {
        r = r
            .route(base, get(list).post(create))
            .route(&format!("{base}/metrics"), get(totals))
            .route(&format!("{base}/{{id}}"), get(show).delete(remove));
    }
    r
}

fn error(e: AutoscalerError, summary: &str) -> ApiError {
    match e {
        AutoscalerError::NotFound(_) => ApiError::not_found("Autoscaler not found", e.to_string()),
        AutoscalerError::Invalid(_) => ApiError::bad_request("Validation failed", e.to_string()),
        AutoscalerError::Store(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, summary, e.to_string())
        }
    }
}

/// The original's response object for one autoscaler, with aistor's additions
/// (the workload, bounds, conditions, per-metric figures and decisions).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AutoscalerView {
    /// The autoscaler's name: the id in `/api/v1/autoscaling/{id}`.
    autoscaling_id: Option<String>,
    /// The phase in lower case: `pending`, `active`, `failed`, …
    #[schema(example = "active")]
    status: String,
    message: String,
    details: AutoscalerDetails,
}

/// An autoscaler's spec and status. A figure that could not be measured is left
/// out (`metrics` says why); so are the feed settings the spec does not set.
#[derive(Debug, Serialize, ToSchema)]
struct AutoscalerDetails {
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    /// The last sync (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<String>,
    workload_name: String,
    workload_namespace: String,
    /// `Deployment`, `StatefulSet` or `ReplicaSet`.
    workload_type: String,
    min_replicas: i32,
    max_replicas: i32,
    /// Seconds between syncs.
    scale_check_interval: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_window_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_resolution_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_replicas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    desired_replicas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_cpu_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_memory_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_gpu_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_storage_read_throughput_mbps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_storage_write_throughput_mbps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_storage_iops: Option<f64>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_scale_time: Option<String>,
    scale_up_count: u64,
    scale_down_count: u64,
    /// The autoscaler's name (the original's HPA name).
    hpa_name: Option<String>,
    conditions: Vec<ConditionView>,
    metrics: Vec<MetricView>,
    last_decisions: Vec<DecisionView>,
}

/// A Kubernetes-style condition.
#[derive(Debug, Serialize, ToSchema)]
struct ConditionView {
    #[serde(rename = "type")]
    type_: String,
    /// `True`, `False` or `Unknown`.
    status: String,
    reason: String,
    message: String,
    /// RFC 3339.
    last_transition_time: String,
}

/// One metric's figures at the last sync.
#[derive(Debug, Serialize, ToSchema)]
struct MetricView {
    name: String,
    target: f64,
    ready_pods: u32,
    unready_pods: u32,
    missing_pods: u32,
    /// Absent when it could not be measured (`message` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proposed_replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// One of the last scaling decisions.
#[derive(Debug, Serialize, ToSchema)]
struct DecisionView {
    /// RFC 3339.
    time: String,
    current_replicas: u32,
    desired_replicas: u32,
    /// What bounded the decision, if anything.
    limited_by: String,
    message: String,
}

pub(super) fn view(a: &Autoscaler) -> AutoscalerView {
    let status = a.status.clone().unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("Pending").to_lowercase();
    // A figure that could not be measured is left out; `metrics` says why.
    let m = status.current_metrics.clone().unwrap_or_default();
    let details = AutoscalerDetails {
        created_at: a.metadata.creation_timestamp.as_ref().map(time_text),
        updated_at: status.last_sync_time.as_ref().map(time_text),
        workload_name: a.spec.workload_ref.name.clone(),
        workload_namespace: a
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        workload_type: a.spec.workload_ref.kind.clone(),
        min_replicas: a.spec.min_replicas,
        max_replicas: a.spec.max_replicas,
        scale_check_interval: a
            .spec
            .sync_period_seconds
            .unwrap_or(request::DEFAULT_SYNC_SECONDS),
        // How its syncs are fed, when the spec says (absent: 30 s of every sample).
        metric_window_seconds: a.spec.metric_window_seconds,
        metric_resolution_seconds: a.spec.metric_resolution_seconds,
        current_replicas: status.current_replicas,
        desired_replicas: status.desired_replicas,
        current_cpu_percent: m.cpu_percent,
        current_memory_percent: m.memory_percent,
        current_gpu_percent: m.gpu_percent,
        current_storage_read_throughput_mbps: m.io_read_megabytes_per_second,
        current_storage_write_throughput_mbps: m.io_write_megabytes_per_second,
        current_storage_iops: m.iops,
        last_scale_time: status.last_scale_time.as_ref().map(time_text),
        scale_up_count: status.scale_up_count,
        scale_down_count: status.scale_down_count,
        hpa_name: a.metadata.name.clone(),
        conditions: status
            .conditions
            .iter()
            .map(|c| ConditionView {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: time_text(&c.last_transition_time),
            })
            .collect(),
        metrics: status
            .metrics
            .iter()
            .map(|m| MetricView {
                name: m.name.clone(),
                target: m.target,
                ready_pods: m.ready_pods,
                unready_pods: m.unready_pods,
                missing_pods: m.missing_pods,
                current: m.current,
                proposed_replicas: m.proposed_replicas,
                message: (!m.message.is_empty()).then(|| m.message.clone()),
            })
            .collect(),
        last_decisions: status
            .last_decisions
            .iter()
            .map(|r| DecisionView {
                time: time_text(&r.time),
                current_replicas: r.current_replicas,
                desired_replicas: r.desired_replicas,
                limited_by: r.limited_by.clone(),
                message: r.message.clone(),
            })
            .collect(),
    };
    let message = match phase.as_str() {
        "active" => "Autoscaler is active".to_owned(),
        _ => status.message.clone(),
    };
    AutoscalerView {
        autoscaling_id: a.metadata.name.clone(),
        status: phase,
        message,
        details,
    }
}

/// Creates an autoscaler for a workload (the original's request, seed 004).
#[utoipa::path(
    post,
    path = "/api/v1/autoscaling",
    tag = "autoscaling",
    request_body(content = request::Request, content_type = "application/json"),
    responses(
        (
            status = 201, description = "Created", body = AutoscalerView,
            headers(("warning" = String, description = "`299 - \"unknown field \\\"<name>\\\"\"`, once for each field of the request that was not understood")),
        ),
        (status = 400, description = "A body that is not the request (`Invalid request format`), or a field that is not valid (`Validation failed`)", body = ApiError),
        (status = 503, description = "The store could not be written", body = ApiError),
    )
)]
async fn create(State(s): State<RestState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let registry = &s.autoscalers;
    let parsed = request::parse(&body).map_err(|e| ApiError::bad_request(e.error, e.details))?;
    let created = registry
        .create(&parsed.namespace, parsed.spec)
        .await
        .map_err(|e| error(e, "Failed to create autoscaler"))?;
    let mut body = view(&created);
    if body.status == "active" {
        body.message = "Autoscaler created successfully".into();
    }
    let mut headers = HeaderMap::new();
    for field in &parsed.unknown_fields {
        let text = format!("299 - \"unknown field \\\"{field}\\\"\"");
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.append("warning", v);
        }
    }
    Ok((StatusCode::CREATED, headers, Json(body)).into_response())
}

/// `GET /api/v1/autoscaling`.
#[derive(Debug, Serialize, ToSchema)]
struct AutoscalerList {
    count: usize,
    autoscalers: Vec<AutoscalerView>,
}

/// Every autoscaler.
#[utoipa::path(
    get,
    path = "/api/v1/autoscaling",
    tag = "autoscaling",
    responses((status = 200, description = "The autoscalers", body = AutoscalerList))
)]
async fn list(State(s): State<RestState>) -> Result<Json<AutoscalerList>, ApiError> {
    let all: Vec<AutoscalerView> = s.autoscalers.list("").iter().map(view).collect();
    Ok(Json(AutoscalerList {
        count: all.len(),
        autoscalers: all,
    }))
}

/// One autoscaler.
#[utoipa::path(
    get,
    path = "/api/v1/autoscaling/{id}",
    tag = "autoscaling",
    params(("id" = String, Path, description = "The `autoscaling_id`")),
    responses(
        (status = 200, description = "The autoscaler", body = AutoscalerView),
        (status = 400, description = "A path that is not valid UTF-8 once decoded", body = ApiError),
        (status = 404, description = "No autoscaler with that id", body = ApiError),
        (status = 503, description = "The store could not be read", body = ApiError),
    )
)]
async fn show(
    State(s): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<AutoscalerView>, ApiError> {
    let a = s
        .autoscalers
        .get(&id)
        .map_err(|e| error(e, "Autoscaler not found"))?;
    Ok(Json(view(&a)))
}

/// `DELETE /api/v1/autoscaling/{id}`.
#[derive(Debug, Serialize, ToSchema)]
struct AutoscalerDeleted {
    #[schema(example = "Autoscaler deleted successfully")]
    message: &'static str,
    autoscaler_id: String,
}

/// Deletes an autoscaler (its workload keeps its replicas).
#[utoipa::path(
    delete,
    path = "/api/v1/autoscaling/{id}",
    tag = "autoscaling",
    params(("id" = String, Path, description = "The `autoscaling_id`")),
    responses(
        (status = 200, description = "Deleted", body = AutoscalerDeleted),
        (status = 400, description = "A path that is not valid UTF-8 once decoded", body = ApiError),
        (status = 404, description = "No autoscaler with that id", body = ApiError),
        (status = 503, description = "The store could not be written", body = ApiError),
    )
)]
async fn remove(
    State(s): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<AutoscalerDeleted>, ApiError> {
    s.autoscalers
        .delete(&id)
        .await
        .map_err(|e| error(e, "Failed to delete autoscaler"))?;
    Ok(Json(AutoscalerDeleted {
        message: "Autoscaler deleted successfully",
        autoscaler_id: id,
    }))
}

/// `GET /api/v1/autoscaling/metrics`.
#[derive(Debug, Serialize, ToSchema)]
struct AutoscalerTotals {
    total_autoscalers: usize,
    active_autoscalers: usize,
    total_scale_ups: u64,
    total_scale_downs: u64,
    /// The mean of the autoscalers' current CPU utilisation; null, not 0, when no
    /// autoscaler has a CPU figure.
    average_cpu_utilization: Option<f64>,
}

/// Totals over every autoscaler.
#[utoipa::path(
    get,
    path = "/api/v1/autoscaling/metrics",
    tag = "autoscaling",
    responses((status = 200, description = "The totals", body = AutoscalerTotals))
)]
async fn totals(State(s): State<RestState>) -> Result<Json<AutoscalerTotals>, ApiError> {
    let t = s.autoscalers.totals();
    Ok(Json(AutoscalerTotals {
        total_autoscalers: t.total,
        active_autoscalers: t.active,
        total_scale_ups: t.scale_ups,
        total_scale_downs: t.scale_downs,
        average_cpu_utilization: t.average_cpu_percent,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::crd::{AutoscalerMetrics, AutoscalerSpec, WorkloadTarget};

    #[test]
    fn the_view_shows_the_feed_only_when_the_spec_sets_it() {
        let spec = AutoscalerSpec {
            workload_ref: WorkloadTarget {
                kind: "Deployment".into(),
                name: "web".into(),
            },
            min_replicas: 1,
            max_replicas: 3,
            metrics: AutoscalerMetrics {
                cpu_percent: Some(50),
                ..Default::default()
            },
            scale_up: None,
            scale_down: None,
            sync_period_seconds: None,
            metric_window_seconds: None,
            metric_resolution_seconds: None,
            hpa: None,
        };
        let plain = view(&Autoscaler::new("a", spec.clone()));
        let plain = serde_json::to_value(plain).expect("serializes");
        assert!(plain["details"].get("metric_window_seconds").is_none());
        assert!(plain["details"].get("metric_resolution_seconds").is_none());
        let fed = view(&Autoscaler::new(
            "b",
            AutoscalerSpec {
                metric_window_seconds: Some(60),
                metric_resolution_seconds: Some(15),
                hpa: None,
                ..spec
            },
        ));
        let fed = serde_json::to_value(fed).expect("serializes");
        assert_eq!(fed["details"]["metric_window_seconds"], 60);
        assert_eq!(fed["details"]["metric_resolution_seconds"], 15);
    }
}
