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
use serde_json::{Map, Value, json};

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

fn insert_some(map: &mut Map<String, Value>, key: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        map.insert(key.into(), v.into());
    }
}

/// The original's response object for one autoscaler, with aistor's additions
/// (the workload, bounds, conditions, per-metric figures and decisions).
pub(super) fn view(a: &Autoscaler) -> Value {
    let status = a.status.clone().unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("Pending").to_lowercase();
    let mut d = Map::new();
    if let Some(t) = &a.metadata.creation_timestamp {
        d.insert("created_at".into(), json!(time_text(t)));
    }
    insert_some(
        &mut d,
        "updated_at",
        status.last_sync_time.as_ref().map(time_text),
    );
    d.insert("workload_name".into(), json!(a.spec.workload_ref.name));
    d.insert(
        "workload_namespace".into(),
        json!(a.metadata.namespace.as_deref().unwrap_or("default")),
    );
    d.insert("workload_type".into(), json!(a.spec.workload_ref.kind));
    d.insert("min_replicas".into(), json!(a.spec.min_replicas));
    d.insert("max_replicas".into(), json!(a.spec.max_replicas));
    d.insert(
        "scale_check_interval".into(),
        json!(
            a.spec
                .sync_period_seconds
                .unwrap_or(request::DEFAULT_SYNC_SECONDS)
        ),
    );
    // How its syncs are fed, when the spec says (absent: 30 s of every sample).
    insert_some(
        &mut d,
        "metric_window_seconds",
        a.spec.metric_window_seconds,
    );
    insert_some(
        &mut d,
        "metric_resolution_seconds",
        a.spec.metric_resolution_seconds,
    );
    insert_some(&mut d, "current_replicas", status.current_replicas);
    insert_some(&mut d, "desired_replicas", status.desired_replicas);
    // A figure that could not be measured is left out; `metrics` says why.
    let m = status.current_metrics.clone().unwrap_or_default();
    insert_some(&mut d, "current_cpu_percent", m.cpu_percent);
    insert_some(&mut d, "current_memory_percent", m.memory_percent);
    insert_some(&mut d, "current_gpu_percent", m.gpu_percent);
    insert_some(
        &mut d,
        "current_storage_read_throughput_mbps",
        m.io_read_megabytes_per_second,
    );
    insert_some(
        &mut d,
        "current_storage_write_throughput_mbps",
        m.io_write_megabytes_per_second,
    );
    insert_some(&mut d, "current_storage_iops", m.iops);
    insert_some(
        &mut d,
        "last_scale_time",
        status.last_scale_time.as_ref().map(time_text),
    );
    d.insert("scale_up_count".into(), json!(status.scale_up_count));
    d.insert("scale_down_count".into(), json!(status.scale_down_count));
    d.insert("hpa_name".into(), json!(a.metadata.name));
    d.insert(
        "conditions".into(),
        Value::Array(
            status
                .conditions
                .iter()
                .map(|c| {
                    json!({
                        "type": c.type_, "status": c.status, "reason": c.reason,
                        "message": c.message,
                        "last_transition_time": time_text(&c.last_transition_time),
                    })
                })
                .collect(),
        ),
    );
    d.insert(
        "metrics".into(),
        Value::Array(
            status
                .metrics
                .iter()
                .map(|m| {
                    let mut v = json!({
                        "name": m.name, "target": m.target,
                        "ready_pods": m.ready_pods, "unready_pods": m.unready_pods,
                        "missing_pods": m.missing_pods,
                    });
                    let o = v.as_object_mut().expect("an object");
                    insert_some(o, "current", m.current);
                    insert_some(o, "proposed_replicas", m.proposed_replicas);
                    if !m.message.is_empty() {
                        o.insert("message".into(), json!(m.message));
                    }
                    v
                })
                .collect(),
        ),
    );
    d.insert(
        "last_decisions".into(),
        Value::Array(
            status
                .last_decisions
                .iter()
                .map(|r| {
                    json!({
                        "time": time_text(&r.time),
                        "current_replicas": r.current_replicas,
                        "desired_replicas": r.desired_replicas,
                        "limited_by": r.limited_by,
                        "message": r.message,
                    })
                })
                .collect(),
        ),
    );
    let message = match phase.as_str() {
        "active" => "Autoscaler is active".to_owned(),
        _ => status.message.clone(),
    };
    json!({
        "autoscaling_id": a.metadata.name,
        "status": phase,
        "message": message,
        "details": d,
    })
}

async fn create(State(s): State<RestState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let registry = &s.autoscalers;
    let parsed = request::parse(&body).map_err(|e| ApiError::bad_request(e.error, e.details))?;
    let created = registry
        .create(&parsed.namespace, parsed.spec)
        .await
        .map_err(|e| error(e, "Failed to create autoscaler"))?;
    let mut body = view(&created);
    if body["status"] == "active" {
        body["message"] = json!("Autoscaler created successfully");
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

async fn list(State(s): State<RestState>) -> Result<Json<Value>, ApiError> {
    let all: Vec<Value> = s.autoscalers.list("").iter().map(view).collect();
    Ok(Json(json!({"count": all.len(), "autoscalers": all})))
}

async fn show(State(s): State<RestState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let a = s
        .autoscalers
        .get(&id)
        .map_err(|e| error(e, "Autoscaler not found"))?;
    Ok(Json(view(&a)))
}

async fn remove(
    State(s): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.autoscalers
        .delete(&id)
        .await
        .map_err(|e| error(e, "Failed to delete autoscaler"))?;
    Ok(Json(json!({
        "message": "Autoscaler deleted successfully",
        "autoscaler_id": id,
    })))
}

async fn totals(State(s): State<RestState>) -> Result<Json<Value>, ApiError> {
    let t = s.autoscalers.totals();
    Ok(Json(json!({
        "total_autoscalers": t.total,
        "active_autoscalers": t.active,
        "total_scale_ups": t.scale_ups,
        "total_scale_downs": t.scale_downs,
        // null, not 0, when no autoscaler has a CPU figure.
        "average_cpu_utilization": t.average_cpu_percent,
    })))
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
        assert_eq!(fed["details"]["metric_window_seconds"], 60);
        assert_eq!(fed["details"]["metric_resolution_seconds"], 15);
    }
}
