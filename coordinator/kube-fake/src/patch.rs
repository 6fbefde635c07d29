//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

use serde_json::{Map, Value};

/// The patch types of the `Content-Type` header (server-side apply is handled in `apply`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub(crate) fn from_content_type(content_type: &str) -> Option<PatchKind> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Applies a merge, JSON or strategic patch to a copy of `target`; the error says what was wrong.
pub(crate) fn apply_patch(kind: PatchKind, target: &Value, patch: &Value) -> Result<Value, String> {
    let mut out = target.clone();
    match kind {
        PatchKind::Merge => json_patch::merge(&mut out, patch),
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| format!("invalid JSON patch: {e}"))?;
            json_patch::patch(&mut out, &ops).map_err(|e| format!("the JSON patch failed: {e}"))?;
        }
        PatchKind::Strategic => {
            if !patch.is_object() {
                return Err("a strategic merge patch must be a JSON object".into());
            }
            strategic_merge(&mut out, patch);
        }
        PatchKind::Apply => return Err("server-side apply is not a patch of this kind".into()),
    }
    Ok(out)
}

/// The merge key of well-known lists of objects (the `patchMergeKey` tags of the Kubernetes
/// types). Lists not named here are replaced whole.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "containerStatuses"
        | "initContainerStatuses" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" => "containerPort",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "taints" => "key",
        _ => return None,
    })
}

/// Strategic merge patch, the subset the fake implements: maps merge recursively, `null`
/// deletes a key, lists of objects named in `merge_key` merge element-wise by that key (an
/// element with `"$patch": "delete"` removes the match), every other list is replaced.
/// Where this differs from the real server: the real one knows the merge strategy of every
/// field from the OpenAPI schema (so primitive lists such as `finalizers` are unioned there, but
/// replaced here), and honours `$retainKeys`, `$deleteFromPrimitiveList` and map-level `$patch`;
/// here those directive keys are dropped.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(_) => {
                let slot = map.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, value);
            }
            Value::Array(items) => {
                let merged = match (merge_key(key), map.get(key)) {
                    (Some(mk), Some(Value::Array(existing))) => merge_by_key(existing, items, mk),
                    _ => items
                        .iter()
                        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                        .cloned()
                        .collect(),
                };
                map.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                map.insert(key.clone(), scalar.clone());
            }
        }
    }
}

fn merge_by_key(existing: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    let mut out = existing.to_vec();
    for item in patch {
        let id = item.get(key);
        let position = id.and_then(|id| out.iter().position(|e| e.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (Some(i), false) => strategic_merge(&mut out[i], item),
            (None, true) => {}
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, item);
                out.push(fresh);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(PatchKind::from_content_type("application/json"), None);
    }

    #[test]
    fn strategic_merges_maps_and_keyed_lists() {
        let target = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "c1", "image": "x"}, {"name": "c2", "image": "y"}],
                     "args": ["1", "2"]}
        });
        let patch = json!({
            "$setElementOrder/containers": [{"name": "c1"}],
            "metadata": {"labels": {"b": null, "c": "3"}},
            "spec": {"containers": [{"name": "c1", "image": "z"}, {"name": "c2", "$patch": "delete"},
                                    {"name": "c3", "image": "w"}],
                     "args": ["3"]}
        });
        let out = apply_patch(PatchKind::Strategic, &target, &patch).unwrap();
        assert_eq!(
            out,
            json!({
                "metadata": {"labels": {"a": "1", "c": "3"}},
                "spec": {"containers": [{"name": "c1", "image": "z"}, {"name": "c3", "image": "w"}],
                         "args": ["3"]}
            })
        );
    }

    #[test]
    fn json_patch_errors_are_reported() {
        let target = json!({"a": 1});
        let err = apply_patch(
            PatchKind::Json,
            &target,
            &json!([{"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert!(err.contains("failed"), "{err}");
        assert!(apply_patch(PatchKind::Json, &target, &json!({"op": "x"})).is_err());
    }
}
