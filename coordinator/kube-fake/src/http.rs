//! The HTTP face: one handler that parses the path, records the request, applies injected
//! failures and dispatches to the store, watch and subresource code.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::time::Instant;

use crate::discovery;
use crate::patch::PatchKind;
use crate::rbac::Policy;
use crate::record::{RecordedRequest, Recorder, Verb};
use crate::resource::Resource;
use crate::route::{self, ResourcePath, Route};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Reason};
use crate::store::{ListQuery, Preconditions, Store, Target, WatchFrom, WriteOptions};
use crate::subresource;
use crate::watch::{self, Filter, StreamOptions};

/// Request bodies above this are refused with 413 (the real server's limit is 3 MiB too).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What every request handler shares: the store and the request log.
#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    pub(crate) recorder: Recorder,
    /// RBAC in force (`FakeApiServer::enforce_rbac`); None: every request is allowed.
    pub(crate) policy: Mutex<Option<Policy>>,
    /// `host:port` the server listens on (discovery reports it).
    pub(crate) address: String,
    /// What TokenReviews answer (`FakeApiServer::add_token`).
    pub(crate) tokens: Mutex<crate::authn::Tokens>,
    /// What SubjectAccessReviews answer (`FakeApiServer::grant`).
    pub(crate) grants: Mutex<crate::authn::Grants>,
}

impl Shared {
    pub(crate) fn new(address: String) -> Shared {
        Shared {
            store: Mutex::new(Store::new()),
            recorder: Recorder::default(),
            policy: Mutex::new(None),
            address,
            tokens: Mutex::new(crate::authn::Tokens::default()),
            grants: Mutex::new(crate::authn::Grants::default()),
        }
    }

    /// The store; a panic in another request does not make it unusable for the rest of a test.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(serve).with_state(shared)
}

/// Query parameters, first value wins.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

async fn serve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let route = route::parse(parts.uri.path());
    let params = Params(
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .unwrap_or_default(),
    );
    let path = match &route {
        Route::Resource(p) => p.clone(),
        _ => ResourcePath::default(),
    };
    let verb = route::verb(&parts.method, path.name.is_some(), params.flag("watch"));
    let mut record = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        verb: verb.unwrap_or(Verb::Get),
        group: path.group.clone(),
        version: path.version.clone(),
        resource: path.plural.clone(),
        subresource: path.subresource.clone(),
        namespace: path.namespace.clone(),
        name: path.name.clone(),
        status: 0,
    };
    // Authorization comes before everything else the server does with a request, as in the
    // real server (authentication, authorization, then admission and the handler).
    let forbidden = shared
        .policy
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|policy| policy.check(&route, &record));
    let response = if let Some(error) = forbidden {
        error.into_response()
    } else if let Some(code) = shared.recorder.take_failure(&record) {
        ApiError::new(
            code,
            Reason::for_code(code),
            format!(
                "injected failure: {code} for {} {}",
                record.method, record.path
            ),
        )
        .into_response()
    } else {
        match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => handle(&shared, &route, verb, &parts.headers, &params, &bytes),
            Err(_) => ApiError::new(
                413,
                Reason::RequestEntityTooLarge,
                format!(
                    "the request body is larger than {MAX_BODY_BYTES} bytes or could not be read"
                ),
            )
            .into_response(),
        }
    };
    record.status = response.status().as_u16();
    shared.recorder.record(record);
    response
}

fn ok(code: u16, value: Value) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    (code, axum::Json(value)).into_response()
}

fn handle(
    shared: &Shared,
    route: &Route,
    verb: Option<Verb>,
    headers: &HeaderMap,
    params: &Params,
    body: &[u8],
) -> Response {
    let read_only = matches!(verb, Some(Verb::Get | Verb::List));
    if let Route::Resource(path) = route
        && path.group == "authentication.k8s.io"
        && path.plural == "tokenreviews"
    {
        return match (verb, parse_json(body)) {
            (Some(Verb::Create), Ok(request)) => ok(
                201,
                shared
                    .tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .review(&request),
            ),
            (Some(Verb::Create), Err(e)) => e.into_response(),
            _ => ApiError::method_not_allowed("tokenreviews can only be created").into_response(),
        };
    }
    if let Route::Resource(path) = route
        && path.group == "authorization.k8s.io"
        && path.plural == "subjectaccessreviews"
    {
        return match (verb, parse_json(body)) {
            (Some(Verb::Create), Ok(request)) => ok(
                201,
                shared
                    .grants
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .review(&request),
            ),
            (Some(Verb::Create), Err(e)) => e.into_response(),
            _ => ApiError::method_not_allowed("subjectaccessreviews can only be created")
                .into_response(),
        };
    }
    match route {
        Route::Resource(path) => resource_request(shared, path, verb, headers, params, body)
            .unwrap_or_else(IntoResponse::into_response),
        Route::Unknown => ApiError::unknown_path().into_response(),
        _ if !read_only => ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )
        .into_response(),
        Route::Version => ok(200, discovery::version()),
        Route::Health => (StatusCode::OK, "ok").into_response(),
        Route::CoreVersions => ok(200, discovery::core_versions(&shared.address)),
        Route::Groups => ok(200, discovery::groups(&shared.store().registry)),
        Route::ResourceList { group, version } => {
            let store = shared.store();
            if store.registry.has_group_version(group, version) {
                ok(
                    200,
                    discovery::resource_list(&store.registry, group, version),
                )
            } else {
                ApiError::unknown_path().into_response()
            }
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn default_manager(headers: &HeaderMap) -> String {
    // As the real server does: the client's User-Agent up to the first '/'.
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|ua| !ua.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

fn list_query(
    resource: &Resource,
    params: &Params,
    name: Option<&str>,
) -> Result<ListQuery, ApiError> {
    let labels = LabelSelector::parse(params.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let mut fields = params.get("fieldSelector").unwrap_or("").to_owned();
    if let Some(name) = name {
        // The deprecated `GET .../{name}?watch=true` form watches one object.
        fields = format!("{fields},metadata.name={name}");
    }
    let fields = FieldSelector::parse(&fields, &resource.kind).map_err(ApiError::bad_request)?;
    let limit = match params.get("limit") {
        None | Some("") => None,
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
        ),
    };
    Ok(ListQuery {
        labels,
        fields,
        limit,
        continue_token: params
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
    })
}

fn resource_request(
    shared: &Shared,
    path: &ResourcePath,
    verb: Option<Verb>,
    headers: &HeaderMap,
    params: &Params,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut store = shared.store();
    let resource = store
        .registry
        .by_path(&path.group, &path.version, &path.plural)
        .cloned()
        .ok_or_else(ApiError::unknown_path)?;
    let wrong_scope = (path.namespace.is_some() && !resource.namespaced)
        || (resource.namespaced && path.name.is_some() && path.namespace.is_none());
    let known_subresource = match path.subresource.as_deref() {
        None => true,
        Some("status") => resource.status_subresource,
        Some("scale") => resource.scale_subresource,
        Some("binding" | "eviction") => resource.group.is_empty() && resource.plural == "pods",
        Some(_) => false,
    };
    if wrong_scope || !known_subresource {
        return Err(ApiError::unknown_path());
    }
    let not_allowed = || {
        ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )
    };
    let verb = verb.ok_or_else(not_allowed)?;
    let ns = path.namespace.as_deref();
    let manager = params
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| default_manager(headers));
    let options = WriteOptions {
        dry_run: params.get("dryRun") == Some("All"),
        manager: &manager,
    };
    let store = &mut *store;
    match (verb, path.name.as_deref(), path.subresource.as_deref()) {
        (Verb::Get, Some(name), None | Some("status")) => {
            Ok(ok(200, store.get(&resource, ns, name)?))
        }
        (Verb::Get, Some(name), Some("scale")) => {
            Ok(ok(200, subresource::get_scale(store, &resource, ns, name)?))
        }
        (Verb::List, None, None) => {
            let query = list_query(&resource, params, None)?;
            Ok(ok(200, store.list(&resource, ns, &query)?))
        }
        (Verb::Watch, name, None) => start_watch(store, &resource, ns, name, params),
        (Verb::Create, None, None) if !resource.namespaced || ns.is_some() => Ok(ok(
            201,
            store.create(&resource, ns, parse_json(body)?, options)?,
        )),
        (Verb::Create, Some(name), Some("binding")) => {
            let binding = parse_json(body)?;
            Ok(ok(
                201,
                subresource::bind(store, &resource, ns, name, &binding, options)?,
            ))
        }
        (Verb::Create, Some(name), Some("eviction")) => {
            let eviction = parse_json(body)?;
            Ok(ok(
                201,
                subresource::evict(store, &resource, ns, name, &eviction, options)?,
            ))
        }
        (Verb::Update, Some(name), None | Some("status")) => {
            let target = if path.subresource.is_some() {
                Target::Status
            } else {
                Target::Main
            };
            Ok(ok(
                200,
                store.replace(&resource, ns, name, parse_json(body)?, target, options)?,
            ))
        }
        (Verb::Update, Some(name), Some("scale")) => {
            let scale = parse_json(body)?;
            Ok(ok(
                200,
                subresource::put_scale(store, &resource, ns, name, &scale, options)?,
            ))
        }
        (Verb::Patch, Some(name), subresource) => patch(
            store,
            &resource,
            ns,
            name,
            subresource,
            headers,
            params,
            body,
            options,
        ),
        (Verb::Delete, Some(name), None) => {
            let (preconditions, dry_run) = delete_options(body)?;
            let options = WriteOptions {
                dry_run: options.dry_run || dry_run,
                ..options
            };
            let deleted = store.delete(&resource, ns, name, &preconditions, options.dry_run)?;
            // 202 Accepted: the object still exists until its finalizers are removed.
            let pending = deleted
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            Ok(ok(if pending { 202 } else { 200 }, deleted))
        }
        (Verb::DeleteCollection, None, None) => {
            let (_, dry_run) = delete_options(body)?;
            let query = list_query(&resource, params, None)?;
            Ok(ok(
                200,
                store.delete_collection(&resource, ns, &query, options.dry_run || dry_run)?,
            ))
        }
        _ => Err(not_allowed()),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch(
    store: &mut Store,
    resource: &Resource,
    ns: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    headers: &HeaderMap,
    params: &Params,
    body: &[u8],
    options: WriteOptions<'_>,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = PatchKind::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            415,
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
                 application/strategic-merge-patch+json"
            ),
        )
    })?;
    let patch = if kind == PatchKind::Apply {
        parse_json(body).or_else(|_| {
            serde_yaml_ng::from_slice::<Value>(body).map_err(|e| {
                ApiError::bad_request(format!("the apply configuration is not valid YAML: {e}"))
            })
        })?
    } else {
        parse_json(body)?
    };
    if subresource == Some("scale") {
        let scale = subresource::patch_scale(store, resource, ns, name, kind, &patch, options)?;
        return Ok(ok(200, scale));
    }
    let target = if subresource == Some("status") {
        Target::Status
    } else {
        Target::Main
    };
    if kind != PatchKind::Apply {
        return Ok(ok(
            200,
            store.patch(resource, ns, name, kind, &patch, target, options)?,
        ));
    }
    if params.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            resource,
            name,
            "metadata.managedFields.fieldManager",
            "Required value: is required for apply patch",
        ));
    }
    let force = params.flag("force");
    let (object, created) = store.apply(resource, ns, name, patch, target, force, options)?;
    Ok(ok(if created { 201 } else { 200 }, object))
}

/// DeleteOptions from a DELETE body (which may be empty).
fn delete_options(body: &[u8]) -> Result<(Preconditions, bool), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Preconditions::default(), false));
    }
    let options = parse_json(body)?;
    let text = |pointer: &str| {
        options
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let preconditions = Preconditions {
        uid: text("/preconditions/uid"),
        resource_version: text("/preconditions/resourceVersion"),
    };
    let dry_run = options
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok((preconditions, dry_run))
}

fn start_watch(
    store: &mut Store,
    resource: &Resource,
    ns: Option<&str>,
    name: Option<&str>,
    params: &Params,
) -> Result<Response, ApiError> {
    let query = list_query(resource, params, name)?;
    let filter = Filter {
        resource: resource.id(),
        namespace: ns.map(str::to_owned),
        labels: query.labels,
        fields: query.fields,
    };
    let bookmarks = params.flag("allowWatchBookmarks");
    let from = if params.flag("sendInitialEvents") {
        // The real server's validation for streaming lists.
        if params.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(ApiError::invalid(
                resource,
                "",
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !bookmarks {
            return Err(ApiError::invalid(
                resource,
                "",
                "allowWatchBookmarks",
                "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
        WatchFrom::InitialEvents
    } else {
        match params.get("resourceVersion") {
            None | Some("" | "0") => WatchFrom::Current,
            Some(rv) => {
                WatchFrom::Revision(rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {rv:?}"))
                })?)
            }
        }
    };
    let deadline = match params.get("timeoutSeconds") {
        None | Some("") => None,
        Some(t) => {
            let secs: u64 = t
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?;
            Some(Instant::now() + Duration::from_secs(secs))
        }
    };
    let options = StreamOptions {
        deadline,
        bookmarks,
        revision: store.revision_handle(),
        api_version: resource.api_version(),
        kind: resource.kind.clone(),
    };
    let (initial, receiver) = match store.watch(resource, filter, from) {
        Ok(start) => (start.initial, Some(start.receiver)),
        // A too-old resourceVersion is reported in the stream, as the real server does.
        Err(error) if error.code == 410 => (vec![watch::event("ERROR", error.to_status())], None),
        Err(error) => return Err(error),
    };
    let stream = watch::event_stream(initial, receiver, options);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::new(500, Reason::InternalError, format!("watch response: {e}")))
}
