//! The REST API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` and the types' `ToSchema` (utoipa): served at [`PATH`] and
//! checked in as `coordinator/openapi.json` (a test fails when the two differ, and
//! rewrites the file).
//!
//! What every route shares is added here rather than on each handler: the bearer
//! scheme (on all but the open paths), the answers of the layers around the router
//! (401, 403, 408, 413, 414, 431), and the `/api/v1/autoscalers` alias of
//! `/api/v1/autoscaling`.

use super::ApiError;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::response::{Response as DocResponse, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

/// Paths anyone may call, without a token (`crate::auth::rest_need`).
pub const OPEN_PATHS: &[&str] = &["/health", "/ready", "/metrics", PATH];

const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "aistor coordinator REST API",
        description = "The live view of a GPU/AI cluster (nodes, pods, GPUs), measurement runs, and \
            the autoscalers. JSON in snake_case; every 4xx and 5xx answer is \
            `{\"error\", \"details\"}`. Node and pod lists page as Kubernetes lists do \
            (`?limit=&continue=`, `metadata.continue`).\n\n\
            A coordinator started with `--api-tokens` needs `Authorization: Bearer <token>` \
            on every path but /health, /ready, /metrics and this document; a `read` token \
            may GET, an `act` token may also POST and DELETE. Without tokens it serves \
            loopback only (or everyone, with `--allow-unauthenticated`), and acting calls \
            come from loopback only.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::health,
        super::ready,
        super::metrics,
        serve,
        super::list_nodes,
        super::get_node,
        super::list_pods,
        super::get_pod,
        super::list_gpus,
        super::start_measurement,
        super::get_measurement,
        super::autoscaling::list,
        super::autoscaling::create,
        super::autoscaling::totals,
        super::autoscaling::show,
        super::autoscaling::remove,
        super::migrations::start,
        super::migrations::list,
        super::migrations::show,
        super::migrations::status,
        super::migrations::cancel,
        super::migrations::totals,
        super::placements::explain,
        super::placements::show_config,
        super::placements::apply_config,
    ),
    tags(
        (name = "health", description = "Liveness, leadership and the coordinator's own metrics"),
        (name = "nodes", description = "Nodes as their agents report them"),
        (name = "pods", description = "Pods as their nodes report them"),
        (name = "gpus", description = "GPUs and the pods on them"),
        (name = "measurements", description = "Measurement runs on a pod, container or cgroup"),
        (name = "autoscaling", description = "Autoscalers (the original system's API; also at /api/v1/autoscalers)"),
        (name = "migrations", description = "Pod migrations (the original system's API; also under /api/migrations and /api/metrics)"),
        (name = "placements", description = "Where aistor would place a pod and why, and the AIStorageConfig in force"),
        (name = "openapi", description = "This document"),
    ),
    modifiers(&Shared),
)]
struct ApiDoc;

/// The document, as served and checked in (pretty JSON, a final newline).
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut text = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        text.push('\n');
        text
    })
}

/// The OpenAPI document itself: served without a token.
#[derive(ToSchema)]
#[schema(as = OpenApiDocument, value_type = Object)]
#[allow(dead_code)]
struct OpenApiDocument(serde_json::Value);

/// This document (OpenAPI 3.1, JSON).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "openapi",
    responses((status = 200, description = "The OpenAPI document", body = OpenApiDocument))
)]
pub(super) async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

struct Shared;

impl Modify for Shared {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from the coordinator's `--api-tokens` file (`token,user,read|act`)",
                    ))
                    .build(),
            ),
        );

        for (path, item) in openapi.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            for (method, operation) in operations(item) {
                shared_answers(operation, method, open);
            }
        }

        // The alias: the same operations under /api/v1/autoscalers, ids suffixed.
        let aliases: Vec<_> = openapi
            .paths
            .paths
            .iter()
            .filter_map(|(path, item)| {
                let rest = path.strip_prefix("/api/v1/autoscaling")?;
                let mut item = item.clone();
                for (_, operation) in operations(&mut item) {
                    if let Some(id) = &operation.operation_id {
                        operation.operation_id = Some(format!("{id}_via_autoscalers"));
                    }
                    let summary = operation.summary.clone().unwrap_or_default();
                    operation.summary =
                        Some(format!("{summary} (alias of /api/v1/autoscaling{rest})"));
                }
                Some((format!("/api/v1/autoscalers{rest}"), item))
            })
            .collect();
        openapi.paths.paths.extend(aliases);
    }
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
}

fn error_answer(description: &str) -> DocResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name(
                    <ApiError as utoipa::ToSchema>::name(),
                )))
                .build(),
        )
        .build()
}

/// The answers every route may give from the layers around the router, the bearer
/// requirement on all but the open paths.
fn shared_answers(operation: &mut Operation, method: HttpMethod, open: bool) {
    let mut add = |status: &str, answer: DocResponse| {
        operation
            .responses
            .responses
            .entry(status.into())
            .or_insert(RefOr::T(answer));
    };
    if !open {
        let mut unauthorized =
            error_answer("No bearer token, or one that is not valid (the coordinator has tokens)");
        unauthorized.headers.insert(
            "WWW-Authenticate".into(),
            RefOr::T(
                HeaderBuilder::new()
                    .description(Some("`Bearer realm=\"aistor\"`"))
                    .build(),
            ),
        );
        add("401", unauthorized);
    }
    let acts = matches!(method, HttpMethod::Post | HttpMethod::Delete);
    if !open && acts {
        add(
            "403",
            error_answer(
                "A `read` token, or no token from another machine: acting needs an `act` token or loopback",
            ),
        );
    }
    if acts {
        add("413", error_answer("The body is larger than the limit"));
    }
    add("408", error_answer("The request was not completed in time"));
    add(
        "414",
        error_answer("The path and query are longer than the limit"),
    );
    add("431", error_answer("The headers are larger than the limit"));
    if !open {
        operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in document is the generated one. On a difference the file is
    /// rewritten and the test fails: review the diff, commit it, and the next run
    /// passes.
    #[test]
    fn checked_in_document_matches_the_code() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let generated = document();
        let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
        if checked_in != generated {
            std::fs::write(&file, generated).expect("coordinator/openapi.json is writable");
            panic!(
                "{} was not the document the code generates; it has been rewritten: \
                 review and commit it (the next run passes)",
                file.display()
            );
        }
    }

    #[test]
    fn every_route_but_the_open_ones_needs_a_token_and_says_so() {
        let doc: serde_json::Value = serde_json::from_str(document()).expect("JSON");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("a path item") {
                let secured = op.get("security").is_some();
                let open = OPEN_PATHS.contains(&path.as_str());
                assert_eq!(secured, !open, "{method} {path}");
                let method = axum::http::Method::from_bytes(method.to_uppercase().as_bytes())
                    .expect("a method");
                let need = crate::auth::rest_need(&method, path);
                assert_eq!(
                    need != crate::auth::Need::Nothing,
                    secured,
                    "{method} {path}: the document and the auth layer disagree"
                );
                for status in ["408", "414", "431"] {
                    assert!(
                        op["responses"].get(status).is_some(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
        for path in [
            "/api/v1/autoscalers",
            "/api/v1/autoscalers/{id}",
            "/api/v1/nodes",
        ] {
            assert!(paths.contains_key(path), "{path}");
        }
    }
}
