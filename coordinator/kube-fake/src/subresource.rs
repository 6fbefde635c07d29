//! Subresources beyond `status`: `scale` (autoscaling/v1 Scale), pod `binding` and pod
//! `eviction` (policy/v1, guarded by PodDisruptionBudgets).

use serde_json::{Value, json};

use crate::metadata::now_rfc3339;
use crate::patch::{PatchKind, apply_patch};
use crate::resource::Resource;
use crate::selector::LabelSelector;
use crate::status::{self, ApiError, Details, Reason};
use crate::store::{Preconditions, Store, Target, WriteOptions};

fn scale_resource(resource: &Resource) -> Resource {
    Resource::new(
        "autoscaling",
        "v1",
        "Scale",
        &resource.plural,
        resource.namespaced,
    )
}

/// The Scale view of a workload: spec.replicas, status.replicas and the selector string.
fn scale_of(resource: &Resource, object: &Value) -> Value {
    let apps = resource.group == "apps";
    let replicas = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        // apps/v1 defaults replicas to 1; a custom resource without it has none.
        .unwrap_or(if apps { 1 } else { 0 });
    let selector = if apps {
        object
            .pointer("/spec/selector")
            .and_then(|s| LabelSelector::from_object(s).ok())
            .map(|s| s.to_query())
            .unwrap_or_default()
    } else {
        object
            .pointer("/status/selector")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let meta = &object["metadata"];
    let mut metadata = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(field) {
            metadata[field] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": replicas},
        "status": {
            "replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

pub(crate) fn get_scale(
    store: &Store,
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    Ok(scale_of(resource, &store.get(resource, namespace, name)?))
}

/// PUT scale: sets spec.replicas; a stale metadata.resourceVersion is a 409.
pub(crate) fn put_scale(
    store: &mut Store,
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
    scale: &Value,
    options: WriteOptions<'_>,
) -> Result<Value, ApiError> {
    let mut object = store.get(resource, namespace, name)?;
    let scale_type = scale_resource(resource);
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && !rv.is_empty()
        && Some(rv)
            != object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::stale(resource, name));
    }
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| (0..=i64::from(i32::MAX)).contains(r))
        .ok_or_else(|| {
            ApiError::invalid(
                &scale_type,
                name,
                "spec.replicas",
                "Invalid value: must be greater than or equal to 0",
            )
        })?;
    object["spec"]["replicas"] = json!(replicas);
    let updated = store.replace(resource, namespace, name, object, Target::Main, options)?;
    Ok(scale_of(resource, &updated))
}

/// PATCH scale: the patch applies to the Scale object, then as a PUT. Server-side apply on
/// scale is treated as a merge patch here (the real server merges field ownership too).
pub(crate) fn patch_scale(
    store: &mut Store,
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
    kind: PatchKind,
    patch: &Value,
    options: WriteOptions<'_>,
) -> Result<Value, ApiError> {
    let current = get_scale(store, resource, namespace, name)?;
    let kind = if kind == PatchKind::Apply {
        PatchKind::Merge
    } else {
        kind
    };
    let patched = apply_patch(kind, &current, patch)
        .map_err(|why| ApiError::new(422, Reason::Invalid, why))?;
    put_scale(store, resource, namespace, name, &patched, options)
}

/// POST pods/{name}/binding: assigns the pod to `target.name`; 409 when already assigned.
pub(crate) fn bind(
    store: &mut Store,
    pods: &Resource,
    namespace: Option<&str>,
    name: &str,
    binding: &Value,
    options: WriteOptions<'_>,
) -> Result<Value, ApiError> {
    let binding_type = Resource::new("", "v1", "Binding", "bindings", true);
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid(&binding_type, name, "target.name", "Required value"))?;
    let mut pod = store.get(pods, namespace, name)?;
    let conflict = |why: String| {
        ApiError::new(
            409,
            Reason::Conflict,
            format!("Operation cannot be fulfilled on pods/binding \"{name}\": {why}"),
        )
        .with_details(Details {
            name: name.to_owned(),
            group: String::new(),
            kind: "pods/binding".into(),
        })
    };
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(conflict(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        )));
    }
    if let Some(bound) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(conflict(format!(
            "pod {name} is already assigned to node \"{bound}\""
        )));
    }
    pod["spec"]["nodeName"] = json!(node);
    // As the real server does: binding also records the PodScheduled condition.
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let mut conditions: Vec<Value> = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
    conditions.push(
        json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}),
    );
    pod["status"]["conditions"] = Value::Array(conditions);
    store.replace(pods, namespace, name, pod, Target::Whole, options)?;
    Ok(status::success(201, None))
}

/// POST pods/{name}/eviction: deletes the pod unless a PodDisruptionBudget forbids it (429).
pub(crate) fn evict(
    store: &mut Store,
    pods: &Resource,
    namespace: Option<&str>,
    name: &str,
    eviction: &Value,
    options: WriteOptions<'_>,
) -> Result<Value, ApiError> {
    let preconditions = Preconditions {
        uid: eviction
            .pointer("/deleteOptions/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource_version: eviction
            .pointer("/deleteOptions/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    // Checks existence and preconditions before any budget is spent.
    let pod = store.delete(pods, namespace, name, &preconditions, true)?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Terminal pods are not protected by budgets (the real server deletes them directly).
    if !matches!(phase, "Succeeded" | "Failed") {
        let pdbs = store
            .registry
            .by_path("policy", "v1", "poddisruptionbudgets")
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    500,
                    Reason::InternalError,
                    "policy/v1 poddisruptionbudgets not registered",
                )
            })?;
        let matching: Vec<Value> = store
            .objects_of(&pdbs, namespace)
            .into_iter()
            .filter(|pdb| {
                // policy/v1: an empty selector matches every pod, a missing one none.
                pdb.pointer("/spec/selector")
                    .and_then(|s| LabelSelector::from_object(s).ok())
                    .is_some_and(|s| s.matches(&pod))
            })
            .collect();
        if matching.len() > 1 {
            return Err(ApiError::new(
                500,
                Reason::InternalError,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(pdb) = matching.into_iter().next() {
            let pdb_name = pdb
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let allowed = pdb
                .pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if allowed < 1 {
                let desired = pdb
                    .pointer("/status/desiredHealthy")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let current = pdb
                    .pointer("/status/currentHealthy")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let cause = format!(
                    "The disruption budget {pdb_name} needs {desired} healthy pods and has {current} currently"
                );
                let mut error = ApiError::new(
                    429,
                    Reason::TooManyRequests,
                    format!(
                        "Cannot evict pod as it would violate the pod's disruption budget. {cause}"
                    ),
                );
                error
                    .causes
                    .push(json!({"reason": "DisruptionBudget", "message": cause}));
                return Err(error);
            }
            let mut updated = pdb.clone();
            updated["status"]["disruptionsAllowed"] = json!(allowed - 1);
            updated["status"]["disruptedPods"][name] = json!(now_rfc3339());
            let pdb_ns = pdb
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned);
            store.replace(
                &pdbs,
                pdb_ns.as_deref(),
                &pdb_name,
                updated,
                Target::Status,
                options,
            )?;
        }
    }
    store.delete(pods, namespace, name, &preconditions, options.dry_run)?;
    Ok(status::success(201, None))
}
