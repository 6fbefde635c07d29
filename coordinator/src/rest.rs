//! The REST API (JSON, snake_case), compatible in shape with the system aistor
//! replaces: errors are `{"error": ..., "details": ...}`. Node and pod lists page
//! as Kubernetes lists do (`?limit=&continue=`, `metadata.continue`).
//!
//! [`bounded`] puts the request limits and CORS around the router, and turns every
//! error answer that is not JSON yet (axum's 405 and extractor rejections, the
//! limits' 408/413) into that shape.
//!
//! Every route is described by its handler's `#[utoipa::path]` and its types'
//! `ToSchema`: [`openapi`] gathers them into the OpenAPI document served at
//! `/api/v1/openapi.json` and checked in as `coordinator/openapi.json`.

mod autoscaling;
mod migrations;
pub mod openapi;
mod placements;

use crate::autoscalers::Autoscalers;
use crate::listener::HttpLimits;
use crate::measurements::Measurements;
use crate::paging::{self, Listing};
use crate::role::Role;
use crate::view::{LiveView, StoredHead};
use aistor_core::{NodeEntry, NodeState};
use aistor_proto::v1 as pb;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::{IntoParams, ToSchema};

#[derive(Clone)]
struct RestState {
    view: LiveView,
    measurements: Measurements,
    role: Role,
    registry: Arc<Registry>,
    autoscalers: Autoscalers,
    /// `None` where there is no runtime to migrate on.
    migrations: Option<crate::migrations::Migrations>,
    placement: Option<crate::placement::service::PlacementService>,
    /// Shown on `/health` (e.g. that the APIs are open to anyone).
    warnings: Arc<[String]>,
}

/// How the REST API says who a caller is and refuses one: 401 with
/// `WWW-Authenticate: Bearer`, or 403, both as `{"error", "details"}`.
#[derive(Debug, Clone, Copy)]
pub struct RestProtocol;

impl crate::auth::Protocol for RestProtocol {
    type Body = axum::body::Body;

    fn need(&self, method: &Method, path: &str) -> crate::auth::Need {
        crate::auth::rest_need(method, path)
    }

    fn peer(&self, extensions: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
        extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0)
    }

    fn deny(&self, denied: crate::auth::Denied) -> Response {
        match denied {
            crate::auth::Denied::Unauthenticated(why) => {
                let mut response =
                    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", why).into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"aistor\""),
                );
                response
            }
            crate::auth::Denied::Forbidden(why) => {
                ApiError::new(StatusCode::FORBIDDEN, "Forbidden", why).into_response()
            }
        }
    }
}

/// The owners whose decisions the API shows and starts.
pub struct Deciders {
    pub autoscalers: Autoscalers,
    /// `None` where there is no runtime to migrate on.
    pub migrations: Option<crate::migrations::Migrations>,
    pub placement: Option<crate::placement::service::PlacementService>,
}

pub fn router(
    view: LiveView,
    measurements: Measurements,
    role: Role,
    registry: Arc<Registry>,
    deciders: Deciders,
    warnings: Arc<[String]>,
) -> Router {
    let Deciders {
        autoscalers,
        migrations,
        placement,
    } = deciders;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/nodes/{name}", get(get_node))
        .route("/api/v1/pods", get(list_pods))
        .route("/api/v1/pods/{namespace}/{name}", get(get_pod))
        .route("/api/v1/gpus", get(list_gpus))
        .route("/api/v1/measurements", post(start_measurement))
        .route("/api/v1/measurements/{id}", get(get_measurement))
        .route("/metrics", get(metrics))
        .route(openapi::PATH, get(openapi::serve))
        .merge(autoscaling::routes())
        .merge(migrations::routes())
        .merge(placements::routes())
        .fallback(|| async {
            ApiError::not_found("no such endpoint", "see README.md for the REST API")
        })
        .with_state(RestState {
            view,
            measurements,
            role,
            registry,
            autoscalers,
            migrations,
            placement,
            warnings,
        })
}

/// `router` with the request limits and CORS of [`HttpLimits`] around it, every
/// error answer in the `{"error", "details"}` shape. Outermost first: CORS (so
/// errors carry its headers too), the JSON errors, the request timeout (408), the
/// URI (414) and header (431) sizes, the body size (413: at once from a
/// `Content-Length`, else when the body grows past it).
pub fn bounded(
    router: Router,
    limits: &HttpLimits,
    cors_allow_origins: &[HeaderValue],
    auth: Arc<crate::auth::ApiAuth>,
) -> Router {
    let head = HeadLimits {
        max_uri_bytes: limits.max_uri_bytes,
        max_header_bytes: limits.max_header_bytes,
    };
    let max_body = limits.max_body_bytes;
    let timeout = limits.request_timeout;
    let router = router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        // The layer above bounds every body; axum's own 2 MB default would differ.
        .layer(DefaultBodyLimit::disable())
        // Who may call: after the head checks, before any body is read.
        .layer(crate::auth::AuthLayer::new(auth, RestProtocol))
        .layer(axum::middleware::from_fn_with_state(head, check_head))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                async move {
                    let response = next.run(request).await;
                    json_errors(response, &method, &path, max_body, timeout).await
                }
            },
        ));
    if cors_allow_origins.is_empty() {
        // No CORS headers at all: browsers keep other origins' scripts out.
        return router;
    }
    router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(cors_allow_origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(Duration::from_secs(600)),
    )
}

#[derive(Debug, Clone, Copy)]
struct HeadLimits {
    max_uri_bytes: usize,
    max_header_bytes: usize,
}

/// 414 over the URI limit, 431 over the header limit (counted as on the wire:
/// `name: value` and CRLF per header).
async fn check_head(
    State(limits): State<HeadLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri > limits.max_uri_bytes {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "URI too long",
            format!(
                "the path and query are {uri} bytes; the limit is {}",
                limits.max_uri_bytes
            ),
        )
        .into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > limits.max_header_bytes {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large",
            format!(
                "the headers are {headers} bytes; the limit is {}",
                limits.max_header_bytes
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// An error answer that is not JSON (axum's 405 with an empty body, its extractor
/// rejections in text/plain, the limits' 408 and 413) becomes
/// `{"error": <reason>, "details": <its text or what happened>}`; its other
/// headers are kept.
async fn json_errors(
    response: Response,
    method: &Method,
    path: &str,
    max_body: usize,
    timeout: Duration,
) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let details = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is larger than the limit of {max_body} bytes")
        }
        StatusCode::REQUEST_TIMEOUT => format!(
            "the request was not completed within {}",
            humantime::format_duration(timeout)
        ),
        // axum adds the `Allow` header after this layer.
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "{method} is not accepted on {path}; the Allow header lists the methods that are"
        ),
        _ if !text.is_empty() => text,
        _ => status.to_string(),
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let error = status.canonical_reason().unwrap_or("error");
    (parts, ApiError::new(status, error, details)).into_response()
}

/// An API error as the original system wrote them: every 4xx and 5xx answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// What went wrong, in a few words (`node not found`, `Unauthorized`).
    error: String,
    /// The particulars: the parameter or field, the limit, what was expected.
    details: String,
}

impl ApiError {
    fn new(status: StatusCode, error: &str, details: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            details: details.into(),
        }
    }

    pub fn not_found(error: &str, details: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error, details)
    }

    pub fn bad_request(error: &str, details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, details)
    }
}

impl From<crate::measurements::RunError> for ApiError {
    fn from(e: crate::measurements::RunError) -> Self {
        use crate::measurements::RunError as E;
        let status = match &e {
            e if e.is_invalid_request() => StatusCode::BAD_REQUEST,
            E::PodNotFound(_) | E::UnknownNode(_) => StatusCode::NOT_FOUND,
            E::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::CONFLICT,
        };
        Self::new(status, "measurement not started", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// Always `healthy` while the process answers.
    #[schema(example = "healthy")]
    status: &'static str,
    #[schema(example = "aistor-coordinator")]
    service: &'static str,
    /// The coordinator's version.
    version: &'static str,
    /// `standalone` or `kubernetes`.
    #[schema(example = "standalone")]
    mode: &'static str,
    /// The mode in words (the Kubernetes client's source).
    cluster: String,
    /// Whether this coordinator leads (only the leader takes agents and acts).
    leader: bool,
    /// What an operator should know, e.g. that the APIs are open to anyone.
    warnings: Vec<String>,
}

/// Whether the coordinator answers, its mode, and warnings about its configuration.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses((status = 200, description = "The coordinator answers", body = Health))
)]
async fn health(State(s): State<RestState>) -> impl IntoResponse {
    Json(Health {
        status: "healthy",
        service: "aistor-coordinator",
        version: env!("CARGO_PKG_VERSION"),
        mode: s.role.mode().name(),
        cluster: s.role.mode().to_string(),
        leader: s.role.is_leader(),
        warnings: s.warnings.to_vec(),
    })
}

/// `GET /ready`: the same body with 200 and 503.
#[derive(Debug, Serialize, ToSchema)]
struct Ready {
    ready: bool,
    leader: bool,
}

/// 200 while this coordinator leads (only the leader takes agents and acts), 503
/// otherwise, so a Service's endpoints follow the leader.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    responses(
        (status = 200, description = "This coordinator leads", body = Ready),
        (status = 503, description = "Another coordinator leads (or none yet)", body = Ready),
    )
)]
async fn ready(State(s): State<RestState>) -> Response {
    let leader = s.role.is_leader();
    let status = if leader {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Ready {
        ready: leader,
        leader,
    };
    (status, Json(body)).into_response()
}

/// One node in the list: the figures people compare across nodes. Absent figures
/// are `null`, never 0.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeSummary {
    pub name: String,
    /// `ready`, or `stale` once its agent stopped reporting.
    #[schema(example = "ready")]
    pub state: &'static str,
    pub cpu_millicores: Option<f64>,
    pub cpu_capacity_millicores: Option<u64>,
    pub memory_working_set_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub disk_read_bytes_per_second: Option<f64>,
    pub disk_write_bytes_per_second: Option<f64>,
    /// When its latest report arrived (RFC 3339, UTC).
    #[schema(example = "2026-01-01T12:00:00.000Z")]
    pub last_report_at: String,
}

fn summary(entry: &NodeEntry<StoredHead>) -> NodeSummary {
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

/// `?limit=&continue=`, as Kubernetes lists page: `limit` 0 or absent is the
/// default page (500 nodes, 1000 pods), more than 5000 is 5000; `continue` is the
/// `metadata.continue` of the previous page (same filters).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Items per page (described by [`limit_schema`]).
    #[param(schema_with = limit_schema)]
    limit: Option<String>,
    /// `metadata.continue` of the previous page (with the same filters).
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// `limit`: a whole number, or empty (as absent).
fn limit_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
    let any = AnyOfBuilder::new()
        .description(Some(
            "Items per page: absent, empty or 0 is the default page (500 nodes, 1000 pods), \
             more than 5000 is 5000.",
        ))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::Custom("uint64".into())))
                .minimum(Some(0)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([""])),
        )
        .build();
    Schema::AnyOf(any)
}

impl PageQuery {
    fn limit(&self) -> Result<u64, ApiError> {
        match self.limit.as_deref() {
            None | Some("") => Ok(0),
            Some(text) => text.parse().map_err(|_| {
                ApiError::bad_request(
                    "invalid limit",
                    format!("parameter `limit`: expected a whole number of items, got {text:?}"),
                )
            }),
        }
    }

    fn token(&self) -> &str {
        self.continue_token.as_deref().unwrap_or_default()
    }
}

impl From<crate::grpc::cluster::ListError> for ApiError {
    fn from(e: crate::grpc::cluster::ListError) -> Self {
        use crate::grpc::cluster::ListError;
        match e {
            ListError::Token(e) => {
                Self::bad_request("invalid continue", format!("parameter `continue`: {e}"))
            }
            ListError::TooLarge(e) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "page too large",
                e.to_string(),
            ),
        }
    }
}

/// Kubernetes' list metadata: `continue` only when another page follows.
#[derive(Debug, Serialize, ToSchema)]
struct ListMetadata {
    /// The token for the next page (`?continue=`); absent on the last page.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_token: Option<String>,
}

fn list_metadata(next: String) -> ListMetadata {
    ListMetadata {
        continue_token: (!next.is_empty()).then_some(next),
    }
}

/// `GET /api/v1/nodes`: one page of nodes, by name.
#[derive(Debug, Serialize, ToSchema)]
struct NodeList {
    /// Nodes on this page.
    count: usize,
    nodes: Vec<NodeSummary>,
    metadata: ListMetadata,
}

/// Every node whose agent has reported, by name, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/nodes",
    tag = "nodes",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of nodes", body = NodeList),
        (status = 400, description = "A `limit` or `continue` that is not valid", body = ApiError),
    )
)]
async fn list_nodes(
    State(s): State<RestState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<NodeList>, ApiError> {
    let after = paging::decode_token(Listing::Nodes, query.token()).map_err(|e| {
        ApiError::bad_request("invalid continue", format!("parameter `continue`: {e}"))
    })?;
    let size = paging::page_size(query.limit()?, paging::DEFAULT_NODE_PAGE);
    // Summaries come from the view's figures (no report is decoded): cheap enough
    // to build for every node and page afterwards.
    let mut all: Vec<(paging::Key, NodeSummary)> = s.view.read(|v| {
        v.nodes()
            .map(|e| (vec![e.name().to_owned()], summary(e)))
            .collect()
    });
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let page = paging::page(all, after.as_ref(), size, usize::MAX, |_| 0).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "page too large",
            e.to_string(),
        )
    })?;
    let next = page
        .next
        .map(|k| paging::encode_token(Listing::Nodes, &k))
        .unwrap_or_default();
    Ok(Json(NodeList {
        count: page.items.len(),
        nodes: page.items,
        metadata: list_metadata(next),
    }))
}

/// The full node: the summary, the bookkeeping, and the latest report as the agent
/// sent it.
#[derive(Debug, Serialize, ToSchema)]
struct NodeDetail {
    #[serde(flatten)]
    summary: NodeSummary,
    /// Reports taken from this node's agents since the coordinator started.
    reports_received_total: u64,
    /// Reports dropped as already seen (replays).
    duplicates_dropped_total: u64,
    /// The latest report as the agent sent it: `aistor.v1.NodeReport`
    /// (`proto/aistor/v1/agent.proto`) as JSON, enums by name.
    #[schema(value_type = Option<Object>)]
    report: Option<aistor_proto::v1::NodeReport>,
}

/// One node: its summary, the bookkeeping, and its latest report.
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{name}",
    tag = "nodes",
    params(("name" = String, Path, description = "The node's name")),
    responses(
        (status = 200, description = "The node", body = NodeDetail),
        (status = 400, description = "A path that is not valid UTF-8 once decoded", body = ApiError),
        (status = 404, description = "No agent on that node has reported", body = ApiError),
    )
)]
async fn get_node(
    State(s): State<RestState>,
    Path(name): Path<String>,
) -> Result<Json<NodeDetail>, ApiError> {
    let found = s.view.read(|v| v.node(&name).map(summary));
    let (summary, status) = found.zip(s.view.node_status(&name)).ok_or_else(|| {
        ApiError::not_found(
            "node not found",
            format!("no agent on node {name:?} has reported"),
        )
    })?;
    Ok(Json(NodeDetail {
        summary,
        reports_received_total: status.reports_received_total,
        duplicates_dropped_total: status.duplicates_dropped_total,
        report: status.latest,
    }))
}

/// The coordinator's own metrics (OpenMetrics text).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((
        status = 200,
        description = "Prometheus / OpenMetrics exposition",
        content_type = "application/openmetrics-text",
        body = String,
    ))
)]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PodFilter {
    /// Only pods on this node (empty: every node).
    #[serde(default)]
    node: String,
    /// Only pods in this namespace (empty: every namespace).
    #[serde(default)]
    namespace: String,
    /// Kubernetes' label selector (`app=web,tier!=db`, `env in (a,b)`); Kubernetes'
    /// spelling of the parameter.
    #[serde(default, rename = "labelSelector")]
    label_selector: String,
}

/// One pod in the list: what people compare across pods. Absent figures are `null`.
#[derive(Debug, Serialize, ToSchema)]
struct PodSummary {
    node: String,
    /// The reporting node's state: `ready`, `stale` or `unknown`.
    #[schema(example = "ready")]
    node_state: &'static str,
    namespace: String,
    name: String,
    uid: String,
    qos_class: String,
    discovered_by: String,
    cpu_millicores: Option<f64>,
    memory_working_set_bytes: Option<u64>,
    memory_rss_bytes: Option<u64>,
    io_read_bytes_per_second: Option<f64>,
    io_write_bytes_per_second: Option<f64>,
    io_reads_per_second: Option<f64>,
    io_writes_per_second: Option<f64>,
    containers: Vec<ContainerSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ContainerSummary {
    name: String,
    id: String,
    cpu_millicores: Option<f64>,
    memory_working_set_bytes: Option<u64>,
}

fn node_state_name(state: i32) -> &'static str {
    match pb::NodeState::try_from(state) {
        Ok(pb::NodeState::Ready) => "ready",
        Ok(pb::NodeState::Stale) => "stale",
        _ => "unknown",
    }
}

fn pod_summary(status: pb::PodStatus) -> PodSummary {
    let pod = status.pod.unwrap_or_default();
    let usage = pod.usage.unwrap_or_default();
    let cpu = usage.cpu.as_ref().and_then(|c| c.usage_millicores);
    let memory = usage.memory.unwrap_or_default();
    let io = usage.io.and_then(|io| io.rates);
    PodSummary {
        node: status.node,
        node_state: node_state_name(status.node_state),
        namespace: pod.namespace,
        name: pod.name,
        uid: pod.uid,
        qos_class: pod.qos_class,
        discovered_by: pod.discovered_by,
        cpu_millicores: cpu,
        memory_working_set_bytes: memory.working_set_bytes,
        memory_rss_bytes: memory.rss_bytes,
        io_read_bytes_per_second: io.map(|r| r.read_bytes_per_second),
        io_write_bytes_per_second: io.map(|r| r.write_bytes_per_second),
        io_reads_per_second: io.map(|r| r.reads_per_second),
        io_writes_per_second: io.map(|r| r.writes_per_second),
        containers: pod
            .containers
            .into_iter()
            .map(|c| {
                let u = c.usage.unwrap_or_default();
                ContainerSummary {
                    name: c.name,
                    id: c.id,
                    cpu_millicores: u.cpu.and_then(|c| c.usage_millicores),
                    memory_working_set_bytes: u.memory.and_then(|m| m.working_set_bytes),
                }
            })
            .collect(),
    }
}

/// `GET /api/v1/pods`: one page of pods, by node, namespace and name.
#[derive(Debug, Serialize, ToSchema)]
struct PodList {
    /// Pods on this page.
    count: usize,
    pods: Vec<PodSummary>,
    metadata: ListMetadata,
}

/// The pods the agents report, filtered, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/pods",
    tag = "pods",
    params(PodFilter, PageQuery),
    responses(
        (status = 200, description = "A page of pods", body = PodList),
        (status = 400, description = "A `labelSelector`, `limit` or `continue` that is not valid", body = ApiError),
    )
)]
async fn list_pods(
    State(s): State<RestState>,
    Query(filter): Query<PodFilter>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PodList>, ApiError> {
    // Same pages as gRPC ListPods; JSON has no message limit, so no byte budget.
    let selector =
        aistor_core::selector::LabelSelector::parse(&filter.label_selector).map_err(|e| {
            ApiError::bad_request(
                "invalid labelSelector",
                format!("parameter `labelSelector`: {e}"),
            )
        })?;
    let (pods, next) = crate::grpc::cluster::pods_page(
        &s.view,
        &filter.node,
        &filter.namespace,
        &selector,
        query.limit()?,
        query.token(),
        usize::MAX,
    )?;
    let pods: Vec<PodSummary> = pods.into_iter().map(pod_summary).collect();
    Ok(Json(PodList {
        count: pods.len(),
        pods,
        metadata: list_metadata(next),
    }))
}

/// A pod as its node reports it: `aistor.v1.PodStatus` (`proto/aistor/v1/cluster.proto`)
/// as JSON, enums by name: `node`, `node_state` and the `pod` with its containers,
/// usage and GPU figures.
#[derive(ToSchema)]
#[schema(as = PodStatus, value_type = Object)]
#[allow(dead_code)]
struct PodStatusDoc(serde_json::Value);

/// One pod, as its node reports it.
#[utoipa::path(
    get,
    path = "/api/v1/pods/{namespace}/{name}",
    tag = "pods",
    params(
        ("namespace" = String, Path, description = "The pod's namespace"),
        ("name" = String, Path, description = "The pod's name"),
    ),
    responses(
        (status = 200, description = "The pod", body = PodStatusDoc),
        (status = 400, description = "A path that is not valid UTF-8 once decoded", body = ApiError),
        (status = 404, description = "No node reports that pod", body = ApiError),
    )
)]
async fn get_pod(
    State(s): State<RestState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<pb::PodStatus>, ApiError> {
    let filter = crate::view::PodFilter {
        namespace: namespace.clone(),
        ..Default::default()
    };
    s.view
        .pods(&filter)
        .into_iter()
        .find(|p| p.pod.as_ref().is_some_and(|pod| pod.name == name))
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(
                "pod not found",
                format!("no node reports pod {namespace}/{name}"),
            )
        })
}

/// `POST /api/v1/measurements`: one of `pod_namespace` + `pod_name`, `pod_uid`,
/// `container_id` or `cgroup_path` (the last two with `node`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MeasurementRequest {
    /// With `pod_name`: the pod to measure.
    pod_namespace: Option<String>,
    pod_name: Option<String>,
    /// The pod to measure, by UID.
    pod_uid: Option<String>,
    /// A container to measure (with `node`).
    container_id: Option<String>,
    /// A cgroup to measure (with `node`).
    cgroup_path: Option<String>,
    /// The node to measure on (needed for `container_id` and `cgroup_path`).
    #[serde(default)]
    node: String,
    /// How many samples to take.
    #[serde(default = "default_samples")]
    #[schema(default = 20)]
    samples: u32,
    /// Time between samples: a duration such as "1s" or "500ms".
    #[serde(default = "default_interval")]
    #[schema(default = "1s")]
    interval: String,
    /// The fraction of the highest and lowest samples left out of the trimmed mean.
    #[serde(default = "default_trim")]
    #[schema(default = 0.1)]
    trim: f64,
}

fn default_samples() -> u32 {
    20
}
fn default_interval() -> String {
    "1s".into()
}
fn default_trim() -> f64 {
    0.1
}

impl MeasurementRequest {
    fn into_proto(self) -> Result<pb::StartMeasurementRequest, ApiError> {
        use pb::measure_target::Target;
        let target = match (
            self.pod_namespace,
            self.pod_name,
            self.pod_uid,
            self.container_id,
            self.cgroup_path,
        ) {
            (Some(namespace), Some(name), None, None, None) => {
                Target::Pod(pb::PodName { namespace, name })
            }
            (None, None, Some(uid), None, None) => Target::PodUid(uid),
            (None, None, None, Some(id), None) => Target::ContainerId(id),
            (None, None, None, None, Some(path)) => Target::CgroupPath(path),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid target",
                    "give exactly one of: pod_namespace with pod_name, pod_uid, container_id, cgroup_path",
                ));
            }
        };
        let interval = humantime::parse_duration(&self.interval).map_err(|e| {
            ApiError::bad_request(
                "invalid interval",
                format!("field `interval`: {e} (e.g. \"1s\")"),
            )
        })?;
        Ok(pb::StartMeasurementRequest {
            target: Some(pb::MeasureTarget {
                target: Some(target),
            }),
            node: self.node,
            samples: self.samples,
            interval_nanos: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            trim: self.trim,
        })
    }
}

/// `202` to `POST /api/v1/measurements`.
#[derive(Debug, Serialize, ToSchema)]
struct MeasurementStarted {
    /// Read the run with `GET /api/v1/measurements/{id}`.
    measurement_id: String,
    /// Always `running`.
    #[schema(example = "running")]
    status: &'static str,
    /// The node the measurement runs on.
    node: String,
}

/// Starts a measurement run on the agent of the target's node.
#[utoipa::path(
    post,
    path = "/api/v1/measurements",
    tag = "measurements",
    request_body = MeasurementRequest,
    responses(
        (status = 202, description = "The run started", body = MeasurementStarted),
        (status = 400, description = "A body that is not the request, or not a valid one", body = ApiError),
        (status = 404, description = "The pod or node is not known", body = ApiError),
        (status = 409, description = "The run cannot start now (e.g. the node's agent is not connected)", body = ApiError),
        (status = 415, description = "The body is not `application/json`", body = ApiError),
        (status = 503, description = "The store could not be written", body = ApiError),
    )
)]
async fn start_measurement(
    State(s): State<RestState>,
    body: Result<Json<MeasurementRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<MeasurementStarted>), ApiError> {
    // 400 for a body that is not the request (as the original system answered),
    // else the rejection's own status: 413 over the body limit, 415 without a
    // JSON content type.
    let Json(body) = body.map_err(|e| {
        let status = match e.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        ApiError::new(status, "invalid request body", e.body_text())
    })?;
    let measurement = s.measurements.start(body.into_proto()?).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MeasurementStarted {
            measurement_id: measurement.id,
            status: "running",
            node: measurement.node,
        }),
    ))
}

/// A measurement run: `aistor.v1.Measurement` (`proto/aistor/v1/measurements.proto`)
/// as JSON, enums by name: its target, `state`, samples and results.
#[derive(ToSchema)]
#[schema(as = Measurement, value_type = Object)]
#[allow(dead_code)]
struct MeasurementDoc(serde_json::Value);

/// One measurement run: its state, and its results once done.
#[utoipa::path(
    get,
    path = "/api/v1/measurements/{id}",
    tag = "measurements",
    params(("id" = String, Path, description = "The `measurement_id` from starting it")),
    responses(
        (status = 200, description = "The run", body = MeasurementDoc),
        (status = 400, description = "An id no run can have (control characters, too long), or a path that is not valid UTF-8 once decoded", body = ApiError),
        (status = 404, description = "No run with that id", body = ApiError),
        (status = 503, description = "The store could not be read", body = ApiError),
    )
)]
async fn get_measurement(
    State(s): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<pb::Measurement>, ApiError> {
    let found = s.measurements.get(&id).await.map_err(|e| match e {
        // An id no run can have (control characters, too long): the caller's mistake.
        crate::store::StoreError::InvalidKey { .. } => {
            ApiError::bad_request("invalid measurement id", e.to_string())
        }
        e => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "measurement not read",
            e.to_string(),
        ),
    })?;
    found.map(Json).ok_or_else(|| {
        ApiError::not_found(
            "measurement not found",
            format!("no measurement with id {id:?}"),
        )
    })
}

/// One GPU in the cluster: what people compare across GPUs. Absent figures are `null`.
#[derive(Debug, Serialize, ToSchema)]
struct GpuSummary {
    node: String,
    /// The reporting node's state: `ready`, `stale` or `unknown`.
    #[schema(example = "ready")]
    node_state: &'static str,
    index: u32,
    uuid: String,
    model: String,
    /// Where the figures come from: `nvml`, `dcgm_exporter`, `none` or `unknown`.
    #[schema(example = "nvml")]
    source: &'static str,
    utilization_percent: Option<f64>,
    memory_used_bytes: Option<u64>,
    memory_total_bytes: Option<u64>,
    power_watts: Option<f64>,
    temperature_celsius: Option<f64>,
    /// `namespace/name` of every pod using or holding the GPU (processes and allocations).
    pods: Vec<String>,
}

/// GPUs of every node from its latest report, with the pods on each
/// ([`crate::gpus::node_gpus`]'s rule, shared with `aistorctl gpus`).
fn gpu_summaries(reports: Vec<(pb::NodeState, pb::NodeReport)>) -> Vec<GpuSummary> {
    let mut out = Vec::new();
    for (state, report) in reports {
        let node = report
            .node
            .as_ref()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        for g in crate::gpus::node_gpus(&report) {
            let gpu = g.gpu;
            out.push(GpuSummary {
                node: node.clone(),
                node_state: node_state_name(state as i32),
                index: gpu.index,
                uuid: gpu.uuid.clone(),
                model: gpu.model.clone(),
                source: crate::gpus::source_name(g.source),
                utilization_percent: gpu.utilization_percent,
                memory_used_bytes: gpu.memory_used_bytes,
                memory_total_bytes: gpu.memory_total_bytes,
                power_watts: gpu.power_watts,
                temperature_celsius: gpu.temperature_celsius,
                pods: g.pods,
            });
        }
    }
    out
}

/// `GET /api/v1/gpus`.
#[derive(Debug, Serialize, ToSchema)]
struct GpuList {
    count: usize,
    gpus: Vec<GpuSummary>,
}

/// Every GPU from the nodes' latest reports, with the pods on each.
#[utoipa::path(
    get,
    path = "/api/v1/gpus",
    tag = "gpus",
    params(("node" = Option<String>, Query, description = "Only GPUs on this node (empty: every node)")),
    responses(
        (status = 200, description = "The GPUs", body = GpuList),
        (status = 400, description = "A query that cannot be read (e.g. a parameter given twice)", body = ApiError),
    )
)]
async fn list_gpus(
    State(s): State<RestState>,
    Query(filter): Query<PodFilter>,
) -> impl IntoResponse {
    let gpus: Vec<GpuSummary> = gpu_summaries(s.view.latest_reports())
        .into_iter()
        .filter(|g| filter.node.is_empty() || g.node == filter.node)
        .collect();
    Json(GpuList {
        count: gpus.len(),
        gpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_list_the_pods_that_use_or_hold_them() {
        let report = pb::NodeReport {
            node: Some(pb::NodeIdentity {
                name: "gpu-1".into(),
                ..Default::default()
            }),
            pods: vec![pb::Pod {
                uid: "u1".into(),
                name: "trainer".into(),
                namespace: "ml".into(),
                ..Default::default()
            }],
            gpu: Some(pb::GpuSection {
                source: pb::GpuSource::Nvml as i32,
                gpus: vec![pb::Gpu {
                    uuid: "GPU-1".into(),
                    model: "NVIDIA H100".into(),
                    utilization_percent: Some(97.0),
                    memory_used_bytes: Some(10),
                    processes: vec![
                        pb::GpuProcess {
                            pid: 7,
                            pod_uid: "u1".into(),
                            ..Default::default()
                        },
                        pb::GpuProcess {
                            pid: 8,
                            ..Default::default()
                        },
                    ],
                    allocations: vec![pb::GpuAllocation {
                        pod_name: "idle".into(),
                        pod_namespace: "ml".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let gpus = gpu_summaries(vec![(pb::NodeState::Ready, report)]);
        assert_eq!(gpus.len(), 1);
        let g = &gpus[0];
        assert_eq!(
            (g.node.as_str(), g.uuid.as_str(), g.source),
            ("gpu-1", "GPU-1", "nvml")
        );
        assert_eq!(g.pods, ["ml/idle", "ml/trainer"]);
        assert_eq!(g.utilization_percent, Some(97.0));
        assert_eq!(g.power_watts, None, "not measured stays null");
    }
}
