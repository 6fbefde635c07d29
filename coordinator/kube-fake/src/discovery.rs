//! `/version`, `/api`, `/apis` and the per-group-version resource lists that clients read.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::resource::Registry;

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "37",
        "gitVersion": "v1.37.0-aistor-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

pub(crate) fn groups(registry: &Registry) -> Value {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in registry.all().iter().filter(|r| !r.group.is_empty()) {
        let versions = groups.entry(&r.group).or_default();
        if !versions.contains(&r.version.as_str()) {
            versions.push(&r.version);
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let entries: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": entries, "preferredVersion": entries[0].clone()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Value {
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for r in registry
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.kind.to_lowercase(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        }));
        let mut sub =
            |name: &str, kind: &str, group: Option<&str>, version: Option<&str>, verbs: &[&str]| {
                let mut entry = json!({
                    "name": format!("{}/{name}", r.plural),
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": kind,
                    "verbs": verbs,
                });
                if let (Some(g), Some(v)) = (group, version) {
                    entry["group"] = json!(g);
                    entry["version"] = json!(v);
                }
                resources.push(entry);
            };
        if r.status_subresource {
            sub("status", &r.kind, None, None, &["get", "patch", "update"]);
        }
        if r.scale_subresource {
            sub(
                "scale",
                "Scale",
                Some("autoscaling"),
                Some("v1"),
                &["get", "patch", "update"],
            );
        }
        if r.group.is_empty() && r.plural == "pods" {
            sub("binding", "Binding", None, None, &["create"]);
            sub(
                "eviction",
                "Eviction",
                Some("policy"),
                Some("v1"),
                &["create"],
            );
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}
