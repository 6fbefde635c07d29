//! `/api/v1/placements`: where aistor would place a pod and why (every node's filter
//! reasons and plugin scores, nothing bound), and the AIStorageConfig in force
//! (standalone, a document can be applied here; on a cluster the resource is followed).

use super::{ApiError, RestState};
use crate::placement::Explanation;
use crate::placement::service::{PlacementService, ServiceError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

pub(super) fn routes() -> Router<RestState> {
    Router::new()
        .route("/api/v1/placements/explain", post(explain))
        .route(
            "/api/v1/placements/config",
            get(show_config).put(apply_config),
        )
}

fn service(s: &RestState) -> Result<&PlacementService, ApiError> {
    s.placement.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Placement is not available",
            "this coordinator has no nodes to place pods on",
        )
    })
}

fn error(e: ServiceError) -> ApiError {
    match e {
        ServiceError::Invalid(d) => ApiError::bad_request("Validation failed", d),
        ServiceError::NotFound(d) => ApiError::not_found("Pod not found", d),
        ServiceError::Unavailable(d) => ApiError::new(StatusCode::CONFLICT, "Not here", d),
        ServiceError::Store(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store failed",
            e.to_string(),
        ),
    }
}

/// The body is a Pod manifest (JSON); a body with `metadata` only names a pod the
/// coordinator knows.
#[utoipa::path(
    post,
    path = "/api/v1/placements/explain",
    tag = "placements",
    request_body(content = serde_json::Value, description = "A Pod manifest, or `{\"metadata\": {\"namespace\", \"name\"}}` of a known pod"),
    responses(
        (status = 200, description = "The ranking: the chosen node (absent when none fits), each node's filter reasons and plugin scores", body = Explanation),
        (status = 400, description = "Not JSON, not a Pod, or no name", body = ApiError),
        (status = 404, description = "No such pod", body = ApiError),
    )
)]
pub(super) async fn explain(
    State(s): State<RestState>,
    body: axum::body::Bytes,
) -> Result<Json<Explanation>, ApiError> {
    let service = service(&s)?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("Malformed JSON", e.to_string()))?;
    let explanation = if value.get("spec").is_some() {
        service.explain(Some(&body), "", "")
    } else {
        let meta = &value["metadata"];
        service.explain(
            None,
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        )
    }
    .map_err(error)?;
    Ok(Json(explanation))
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConfigView {
    /// `defaults`, `AIStorageConfig keti/default (resourceVersion 12)`, ...
    source: String,
    /// The AIStorageConfig document in force (absent: the defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<serde_json::Value>,
}

fn view(c: crate::placement::ConfigInForce) -> ConfigView {
    ConfigView {
        source: c.source,
        document: c.document,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/placements/config",
    tag = "placements",
    responses((status = 200, description = "The configuration in force and where it came from", body = ConfigView))
)]
pub(super) async fn show_config(State(s): State<RestState>) -> Result<Json<ConfigView>, ApiError> {
    Ok(Json(view(service(&s)?.config())))
}

/// Standalone: puts an AIStorageConfig document (YAML or JSON) in force and keeps it.
#[utoipa::path(
    put,
    path = "/api/v1/placements/config",
    tag = "placements",
    request_body(content = String, description = "An AIStorageConfig document (apiVersion ai-storage.keti/v1), YAML or JSON"),
    responses(
        (status = 200, description = "In force", body = ConfigView),
        (status = 400, description = "Not an AIStorageConfig, an unknown field, or a value out of range (the field is named); the configuration in force stays", body = ApiError),
        (status = 409, description = "On a cluster: apply the resource with kubectl instead", body = ApiError),
    )
)]
pub(super) async fn apply_config(
    State(s): State<RestState>,
    body: axum::body::Bytes,
) -> Result<Json<ConfigView>, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request("Not UTF-8", e.to_string()))?;
    let applied = service(&s)?.apply(text).await.map_err(error)?;
    Ok(Json(view(applied)))
}
