//! Server-side apply and the field ownership it needs.
//!
//! The fake tracks, per object, which field managers own which leaf fields (scalars and whole
//! lists; maps are recursed into). It is simpler than the real server's managedFields: a manager
//! is identified by its name alone (the real server keeps `Apply` and `Update` entries of one name
//! apart), ownership is not exposed in `metadata.managedFields`, lists are atomic, and `null`
//! in an apply configuration is ignored. What it keeps: an apply that would change a field
//! another manager owns is a conflict unless forced; fields an applier stops specifying are
//! removed when nobody else owns them; updates take ownership of the fields they change.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// Owners of the leaf fields of one object, by JSON pointer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldOwners {
    owners: BTreeMap<String, BTreeSet<String>>,
}

/// A field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub(crate) manager: String,
    /// Dotted path, as the real server prints it: `.spec.holderIdentity`.
    pub(crate) field: String,
}

/// Leaf fields of an object that ownership applies to: everything but apiVersion, kind and the
/// server-managed metadata (labels, annotations, finalizers and ownerReferences count).
fn leaves(object: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    let Value::Object(map) = object else {
        return out;
    };
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if let Value::Object(meta) = value {
                    for owned in ["labels", "annotations", "finalizers", "ownerReferences"] {
                        if let Some(v) = meta.get(owned) {
                            collect(&format!("/metadata/{owned}"), v, &mut out);
                        }
                    }
                }
            }
            _ => collect(&format!("/{}", escape(key)), value, &mut out),
        }
    }
    out
}

fn collect<'a>(path: &str, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                collect(&format!("{path}/{}", escape(k)), v, out);
            }
        }
        _ => out.push((path.to_owned(), value)),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|p| format!(".{}", p.replace("~1", "/").replace("~0", "~")))
        .collect()
}

impl FieldOwners {
    /// Ownership after an update (PUT or a non-apply patch) by `manager`: it owns every field it
    /// changed or added; fields that disappeared have no owner any more.
    pub(crate) fn record_update(&mut self, old: Option<&Value>, new: &Value, manager: &str) {
        let new_leaves = leaves(new);
        let present: BTreeSet<&str> = new_leaves.iter().map(|(p, _)| p.as_str()).collect();
        self.owners
            .retain(|path, _| present.contains(path.as_str()));
        for (path, value) in new_leaves {
            let before = old.and_then(|o| o.pointer(&path));
            if before != Some(value) || !self.owners.contains_key(&path) {
                self.owners
                    .insert(path, BTreeSet::from([manager.to_owned()]));
            }
        }
    }

    /// Server-side apply of `config` by `manager` onto `current` (None: the object is new).
    /// Returns the new object, or the conflicts when not forced.
    pub(crate) fn apply(
        &mut self,
        current: Option<&Value>,
        config: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, Vec<Conflict>> {
        // `null` and `{}` state no opinion about a field.
        let config_leaves: Vec<(String, &Value)> = leaves(config)
            .into_iter()
            .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
            .collect();
        if !force {
            let conflicts: Vec<Conflict> = config_leaves
                .iter()
                .filter(|(path, value)| current.and_then(|c| c.pointer(path)) != Some(value))
                .filter(|(path, _)| current.and_then(|c| c.pointer(path)).is_some())
                .flat_map(|(path, _)| {
                    self.owners
                        .get(path)
                        .into_iter()
                        .flatten()
                        .filter(|owner| owner.as_str() != manager)
                        .map(|owner| Conflict {
                            manager: owner.clone(),
                            field: dotted(path),
                        })
                })
                .collect();
            if !conflicts.is_empty() {
                return Err(conflicts);
            }
        }
        let mut object = current
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let specified: BTreeSet<&str> = config_leaves.iter().map(|(p, _)| p.as_str()).collect();
        // Fields this manager applied before and no longer specifies.
        let dropped: Vec<String> = self
            .owners
            .iter()
            .filter(|(path, owners)| owners.contains(manager) && !specified.contains(path.as_str()))
            .map(|(path, _)| path.clone())
            .collect();
        for path in dropped {
            let owners = self.owners.get_mut(&path).expect("path listed above");
            owners.remove(manager);
            if owners.is_empty() {
                self.owners.remove(&path);
                remove_pointer(&mut object, &path);
            }
        }
        for (path, value) in &config_leaves {
            let unchanged = object.pointer(path) == Some(*value);
            set_pointer(&mut object, path, (*value).clone());
            let owners = self.owners.entry(path.clone()).or_default();
            if force || !unchanged {
                owners.clear();
            }
            owners.insert(manager.to_owned());
        }
        Ok(object)
    }
}

fn unescape(part: &str) -> String {
    part.replace("~1", "/").replace("~0", "~")
}

fn set_pointer(object: &mut Value, pointer: &str, value: Value) {
    let mut slot = object;
    for part in pointer.split('/').skip(1) {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(map) = slot else { return };
        slot = map.entry(unescape(part)).or_insert(Value::Null);
    }
    *slot = value;
}

fn remove_pointer(object: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let parent = if parent.is_empty() {
        Some(object)
    } else {
        object.pointer_mut(parent)
    };
    if let Some(Value::Object(map)) = parent {
        map.remove(&unescape(last));
    }
}

/// The real server's conflict message.
pub(crate) fn conflict_message(conflicts: &[Conflict], api_version: &str) -> String {
    let noun = if conflicts.len() == 1 {
        "conflict"
    } else {
        "conflicts"
    };
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {api_version}: {}",
                c.manager, c.field
            )
        })
        .collect();
    format!(
        "Apply failed with {} {noun}: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_conflicts_with_another_owner_unless_forced() {
        let mut owners = FieldOwners::default();
        let a = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 10}});
        let object = owners.apply(None, &a, "a", false).unwrap();
        let b = json!({"spec": {"holderIdentity": "b", "leaseDurationSeconds": 10}});
        let conflicts = owners.apply(Some(&object), &b, "b", false).unwrap_err();
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "a".into(),
                field: ".spec.holderIdentity".into()
            }]
        );
        let forced = owners.apply(Some(&object), &b, "b", true).unwrap();
        assert_eq!(forced.pointer("/spec/holderIdentity"), Some(&json!("b")));
    }

    #[test]
    fn same_value_is_shared_and_dropped_fields_are_removed() {
        let mut owners = FieldOwners::default();
        let first = owners
            .apply(None, &json!({"spec": {"x": 1, "y": 2}}), "a", false)
            .unwrap();
        let second = owners
            .apply(Some(&first), &json!({"spec": {"x": 1}}), "b", false)
            .unwrap();
        // a stops specifying both: y goes (only a owned it), x stays (b shares it).
        let third = owners
            .apply(Some(&second), &json!({"spec": {}}), "a", false)
            .unwrap();
        assert_eq!(third, json!({"spec": {"x": 1}}));
    }

    #[test]
    fn updates_take_ownership_and_removed_fields_lose_it() {
        let mut owners = FieldOwners::default();
        let object = owners
            .apply(None, &json!({"spec": {"holder": "a"}}), "a", false)
            .unwrap();
        let released = json!({"spec": {}});
        owners.record_update(Some(&object), &released, "b");
        let taken = owners
            .apply(
                Some(&released),
                &json!({"spec": {"holder": "c"}}),
                "c",
                false,
            )
            .unwrap();
        assert_eq!(taken.pointer("/spec/holder"), Some(&json!("c")));
        let mut changed = taken.clone();
        changed["spec"]["holder"] = json!("d");
        owners.record_update(Some(&taken), &changed, "d");
        let conflicts = owners
            .apply(
                Some(&changed),
                &json!({"spec": {"holder": "c"}}),
                "c",
                false,
            )
            .unwrap_err();
        assert_eq!(conflicts[0].manager, "d");
        assert_eq!(
            conflict_message(&conflicts, "v1"),
            "Apply failed with 1 conflict: conflict with \"d\" using v1: .spec.holder"
        );
    }
}
