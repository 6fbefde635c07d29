//! `/api/v1/migrations` and its alias `/api/migrations` (seed 003's spec calls the
//! routes without `v1`): the original system's migration API (seeds 002 and 003), over
//! aistor's stored migrations. Figures are measured or absent with the reason; nothing
//! is filled in.

use super::{ApiError, RestState};
use crate::migrations::{MigrationError, StartRequest};
use crate::workloads::rfc3339;
use aistor_core::migration::machine::{Measured, Migration};
use aistor_core::migration::{Action, ContainerState, Strategy};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(super) fn routes() -> Router<RestState> {
    let mut r = Router::new();
    for base in ["/api/v1", "/api"] {
        r = r
            .route(&format!("{base}/migrations"), get(list).post(start))
            .route(&format!("{base}/migrations/{{id}}"), get(show))
            .route(&format!("{base}/migrations/{{id}}/status"), get(status))
            .route(&format!("{base}/migrations/{{id}}/cancel"), post(cancel))
            .route(&format!("{base}/metrics"), get(totals));
    }
    r
}

fn error(e: MigrationError, summary: &str) -> ApiError {
    let status = match &e {
        MigrationError::Invalid(_) => {
            return ApiError::bad_request("Validation failed", e.to_string());
        }
        MigrationError::NotFound(_) => StatusCode::NOT_FOUND,
        MigrationError::Conflict(_) => StatusCode::CONFLICT,
        MigrationError::Unavailable(_) | MigrationError::Store(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    ApiError::new(status, summary, e.to_string())
}

fn migrations(s: &RestState) -> Result<&crate::migrations::Migrations, ApiError> {
    s.migrations.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Migrations are not available",
            "this coordinator has no runtime to migrate pods on",
        )
    })
}

/// The original's request; `timeout` in seconds (0: 600). `force_restart` goes on
/// without a checkpoint when staging it fails.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct MigrationRequest {
    pod_name: Option<String>,
    pod_namespace: Option<String>,
    source_node: Option<String>,
    target_node: Option<String>,
    #[serde(default)]
    preserve_pv: bool,
    #[serde(default)]
    timeout: i64,
    #[serde(default)]
    force_restart: bool,
}

const REQUEST_FIELDS: [&str; 7] = [
    "pod_name",
    "pod_namespace",
    "source_node",
    "target_node",
    "preserve_pv",
    "timeout",
    "force_restart",
];

/// A pod's CPU and memory by a measurement run (trimmed mean).
#[derive(Debug, Serialize, ToSchema)]
struct Resources {
    /// Cores.
    cpu_usage: f64,
    /// Bytes (working set).
    memory_usage: u64,
    /// When the run ended (RFC 3339).
    timestamp: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct ContainerStateView {
    name: String,
    /// `waiting`, `running`, `completed` or `failed`.
    state: String,
    restart_count: u32,
    should_migrate: bool,
    init: bool,
    /// `restore`, `recreate`, `completed` or `failed`.
    action: String,
    reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct StepView {
    stage: String,
    /// RFC 3339.
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct CheckpointView {
    id: String,
    attempt: u32,
    containers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<u64>,
    /// The copy to the shared volume, summed over containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    staging_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One migration's particulars: the original's fields, then aistor's.
#[derive(Debug, Serialize, ToSchema)]
struct MigrationDetails {
    /// RFC 3339.
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    /// Nanoseconds, once ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
    /// Measured before the move; `null` when it could not be (`original_resources_missing` says why).
    original_resources: Option<Resources>,
    /// Measured after the settle delay; `null` when it could not be.
    optimized_resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_resources_missing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    optimized_resources_missing: Option<String>,
    container_states: Vec<ContainerStateView>,
    /// The checkpoint's directory on the shared volume, once staged.
    checkpoint_path: Option<String>,
    /// The claim the checkpoint is on; the local runtime's checkpoint volume is the
    /// agents' `--checkpoint-dir`, not a claim: `null`.
    pv_claim_name: Option<String>,
    new_pod_name: String,
    error_message: Option<String>,
    pod_name: String,
    pod_namespace: String,
    source_node: String,
    target_node: String,
    /// The state machine's phase (`checkpointing`, `waiting_ready`, …).
    current_stage: String,
    /// `make-before-break` or `break-before-make`, once planned.
    strategy: Option<String>,
    /// Claims that made it break-before-make.
    single_node_claims: Vec<String>,
    stage_history: Vec<StepView>,
    checkpoint: Option<CheckpointView>,
    /// From the source's stop (frozen, or deleted) to the target's Ready.
    downtime_seconds: Option<f64>,
    /// From the start of the migration to the target's Ready.
    time_to_resume_seconds: Option<f64>,
    cancel_requested: bool,
    /// Kubernetes: the controller a controller-owned source is evicted through
    /// (`ReplicaSet/web-abc`); its replacement is the new pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    controller: Option<String>,
    /// The node held for that controller's replacement while the migration waits for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation: Option<ReservationView>,
    /// Why the last eviction was refused (a disruption budget), while it is asked again.
    #[serde(skip_serializing_if = "Option::is_none")]
    eviction_refused: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ReservationView {
    node: String,
    /// The uid of the controller whose next pod goes to `node`.
    owner_uid: String,
}

/// The original's response object.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MigrationView {
    /// `migration-<8 hex>`.
    migration_id: String,
    /// `pending`, `running`, `completed`, `failed` or `cancelled`.
    status: String,
    message: String,
    details: MigrationDetails,
}

fn resources(m: &Measured) -> Option<Resources> {
    Some(Resources {
        cpu_usage: m.cpu_cores?,
        memory_usage: m.memory_bytes?,
        timestamp: rfc3339(m.at_unix_nanos?),
    })
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

fn view(m: &Migration) -> MigrationView {
    let containers = m
        .plan
        .as_ref()
        .map(|p| {
            p.containers
                .iter()
                .map(|c| ContainerStateView {
                    name: c.name.clone(),
                    state: match c.state {
                        ContainerState::Waiting => "waiting",
                        ContainerState::Running => "running",
                        ContainerState::Terminated { exit_code: 0 } => "completed",
                        ContainerState::Terminated { .. } => "failed",
                    }
                    .into(),
                    restart_count: c.restart_count,
                    should_migrate: c.action.should_migrate(),
                    init: c.init,
                    action: match c.action {
                        Action::Restore => "restore",
                        Action::Recreate => "recreate",
                        Action::Completed => "completed",
                        Action::Failed { .. } => "failed",
                    }
                    .into(),
                    reason: c.why.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let (strategy, claims) = match m.strategy() {
        Some(Strategy::MakeBeforeBreak) => (Some("make-before-break".to_owned()), Vec::new()),
        Some(Strategy::BreakBeforeMake { claims }) => {
            (Some("break-before-make".to_owned()), claims.clone())
        }
        None => (None, Vec::new()),
    };
    let with_missing = |measured: &Measured| {
        resources(measured).is_none().then(|| {
            measured
                .missing
                .clone()
                .unwrap_or_else(|| "not measured yet".into())
        })
    };
    MigrationView {
        migration_id: m.id.clone(),
        status: m.status().into(),
        message: m.message.clone(),
        details: MigrationDetails {
            start_time: rfc3339(m.created_unix_nanos),
            end_time: m.ended_unix_nanos.map(rfc3339),
            duration: m
                .ended_unix_nanos
                .map(|e| e.saturating_sub(m.created_unix_nanos)),
            original_resources: resources(&m.before),
            optimized_resources: resources(&m.after),
            original_resources_missing: with_missing(&m.before),
            optimized_resources_missing: with_missing(&m.after),
            container_states: containers,
            checkpoint_path: m.checkpoint_dir(),
            pv_claim_name: None,
            new_pod_name: m.target_name.clone(),
            error_message: m.error.clone(),
            pod_name: m.request.pod.clone(),
            pod_namespace: m.request.namespace.clone(),
            source_node: m.request.source_node.clone(),
            target_node: m.request.target_node.clone(),
            current_stage: m.phase.as_str().into(),
            strategy,
            single_node_claims: claims,
            stage_history: m
                .steps
                .iter()
                .map(|s| StepView {
                    stage: s.phase.as_str().into(),
                    started_at: rfc3339(s.started_unix_nanos),
                    finished_at: s.ended_unix_nanos.map(rfc3339),
                    message: s.message.clone(),
                })
                .collect(),
            checkpoint: m.checkpoint.as_ref().map(|c| CheckpointView {
                id: c.id.clone(),
                attempt: c.attempt,
                containers: c.containers.clone(),
                bytes: c.staged.as_ref().map(|s| s.bytes),
                files: c.staged.as_ref().map(|s| s.files),
                staging_seconds: c.staged.as_ref().map(|s| seconds(s.copy_nanos)),
                error: c.error.clone(),
            }),
            downtime_seconds: m.downtime_nanos().map(seconds),
            time_to_resume_seconds: m.time_to_resume_nanos().map(seconds),
            cancel_requested: m.cancel_requested,
            controller: m.controller().map(|c| format!("{}/{}", c.kind, c.name)),
            reservation: m.reservation().map(|r| ReservationView {
                node: r.node,
                owner_uid: r.owner_uid,
            }),
            eviction_refused: m.eviction_refused.clone(),
        },
    }
}

/// Starts a migration: 202 at once; it runs in the background.
#[utoipa::path(
    post,
    path = "/api/v1/migrations",
    tag = "migrations",
    request_body = MigrationRequest,
    responses(
        (status = 202, description = "Accepted: the migration is pending", body = MigrationView),
        (status = 400, description = "Malformed JSON or a field that is missing or wrong", body = ApiError),
        (status = 404, description = "No such pod, or the target node is unknown", body = ApiError),
        (status = 409, description = "The pod is not on `source_node`, the target is stale, or a migration already moves the pod", body = ApiError),
        (status = 503, description = "Not the leader, or the store failed", body = ApiError),
    )
)]
async fn start(State(s): State<RestState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let registry = migrations(&s)?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("Invalid request format", e.to_string()))?;
    let unknown: Vec<String> = value
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !REQUEST_FIELDS.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let req: MigrationRequest = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("Invalid request format", e.to_string()))?;
    let started = registry
        .start(StartRequest {
            pod_name: req.pod_name.unwrap_or_default(),
            pod_namespace: req.pod_namespace.unwrap_or_default(),
            source_node: req.source_node.unwrap_or_default(),
            target_node: req.target_node.unwrap_or_default(),
            preserve_pv: req.preserve_pv,
            timeout_secs: req.timeout,
            force_restart: req.force_restart,
        })
        .await
        .map_err(|e| error(e, "Failed to start migration"))?;
    let mut headers = HeaderMap::new();
    for field in &unknown {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"unknown field \\\"{field}\\\"\"")) {
            headers.append("warning", v);
        }
    }
    Ok((StatusCode::ACCEPTED, headers, Json(view(&started))).into_response())
}

/// `GET /api/v1/migrations`.
#[derive(Debug, Serialize, ToSchema)]
struct MigrationList {
    count: usize,
    migrations: Vec<MigrationView>,
}

/// Every migration, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/migrations",
    tag = "migrations",
    responses((status = 200, description = "The migrations", body = MigrationList))
)]
async fn list(State(s): State<RestState>) -> Result<Json<MigrationList>, ApiError> {
    let all: Vec<MigrationView> = migrations(&s)?.list().iter().map(view).collect();
    Ok(Json(MigrationList {
        count: all.len(),
        migrations: all,
    }))
}

fn found(s: &RestState, id: &str) -> Result<Migration, ApiError> {
    migrations(s)?
        .get(id)
        .ok_or_else(|| ApiError::not_found("Migration not found", format!("no migration {id:?}")))
}

/// One migration with every particular.
#[utoipa::path(
    get,
    path = "/api/v1/migrations/{id}",
    tag = "migrations",
    params(("id" = String, Path, description = "The `migration_id`")),
    responses(
        (status = 200, description = "The migration", body = MigrationView),
        (status = 404, description = "No migration with that id", body = ApiError),
    )
)]
async fn show(
    State(s): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<MigrationView>, ApiError> {
    Ok(Json(view(&found(&s, &id)?)))
}

/// A migration's status only.
#[derive(Debug, Serialize, ToSchema)]
struct StatusView {
    migration_id: String,
    status: String,
    message: String,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    /// Seconds, once ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_seconds: Option<f64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/migrations/{id}/status",
    tag = "migrations",
    params(("id" = String, Path, description = "The `migration_id`")),
    responses(
        (status = 200, description = "Its status", body = StatusView),
        (status = 404, description = "No migration with that id", body = ApiError),
    )
)]
async fn status(
    State(s): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<StatusView>, ApiError> {
    let m = found(&s, &id)?;
    Ok(Json(StatusView {
        migration_id: m.id.clone(),
        status: m.status().into(),
        message: m.message.clone(),
        start_time: rfc3339(m.created_unix_nanos),
        end_time: m.ended_unix_nanos.map(rfc3339),
        duration_seconds: m
            .ended_unix_nanos
            .map(|e| seconds(e.saturating_sub(m.created_unix_nanos))),
    }))
}

/// Stops a migration before its point of no return and rolls it back.
#[utoipa::path(
    post,
    path = "/api/v1/migrations/{id}/cancel",
    tag = "migrations",
    params(("id" = String, Path, description = "The `migration_id`")),
    responses(
        (status = 200, description = "Cancelling: it rolls back and ends `cancelled`", body = MigrationView),
        (status = 404, description = "No migration with that id", body = ApiError),
        (status = 409, description = "Already ended, or past the point of no return", body = ApiError),
    )
)]
async fn cancel(
    State(s): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<MigrationView>, ApiError> {
    let m = migrations(&s)?
        .cancel(&id)
        .await
        .map_err(|e| error(e, "Cannot cancel the migration"))?;
    Ok(Json(view(&m)))
}

/// Totals over the migrations held; savings from measured figures only.
#[derive(Debug, Serialize, ToSchema)]
struct TotalsView {
    total_migrations: usize,
    successful_migrations: usize,
    failed_migrations: usize,
    /// Mean duration of the finished migrations, nanoseconds.
    average_duration: u64,
    /// Mean over completed migrations measured before and after; `null` when none was.
    cpu_savings_percentage: Option<f64>,
    memory_savings_percentage: Option<f64>,
    /// Completed migrations left out of the savings (a figure could not be measured).
    unmeasured_migrations: usize,
}

#[utoipa::path(
    get,
    path = "/api/v1/metrics",
    tag = "migrations",
    responses((status = 200, description = "Totals", body = TotalsView))
)]
async fn totals(State(s): State<RestState>) -> Result<Json<TotalsView>, ApiError> {
    let t = migrations(&s)?.totals();
    Ok(Json(TotalsView {
        total_migrations: t.total,
        successful_migrations: t.succeeded,
        failed_migrations: t.failed,
        average_duration: u64::try_from(t.average_duration.as_nanos()).unwrap_or(u64::MAX),
        cpu_savings_percentage: t.cpu_savings_percent,
        memory_savings_percentage: t.memory_savings_percent,
        unmeasured_migrations: t.unmeasured,
    }))
}
