//! Deployments on the local runtime, kept the way the Deployment and ReplicaSet
//! controllers keep them: `replicas` pods from the template, named
//! `<deployment>-<template-hash>-<5 characters>`, failed pods replaced, extra pods removed
//! least valuable first, and a changed template rolled out with surge and unavailability
//! bounds. Pure: the shell passes the pods it knows and a source of random suffixes, and
//! carries out the steps.
//!
//! There are no ReplicaSet objects: the template hash (FNV-1a of the template's canonical
//! JSON, written with the controllers' alphabet) plays their part in names and the
//! `pod-template-hash` label.

use crate::manifest::{self, ManifestError, is_dns_subdomain};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Label the controllers put on every pod of one template.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Most replicas one Deployment may ask for on the local runtime.
pub const MAX_REPLICAS: u32 = 1000;
/// The alphabet Kubernetes uses for generated names (no vowels, no look-alikes).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A checked Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub namespace: String,
    pub name: String,
    pub replicas: u32,
    pub selector: BTreeMap<String, String>,
    /// The pod template (`metadata` and `spec`), as given.
    pub template: Value,
    pub template_hash: String,
    pub strategy: Strategy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Kubernetes' default: 25 % surge, 25 % unavailable.
    RollingUpdate,
    /// Old pods go before new ones come.
    Recreate,
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.into(),
        problem: problem.into(),
    }
}

fn only(value: &Value, path: &str, allowed: &[&str]) -> Result<(), ManifestError> {
    if let Value::Object(map) = value
        && let Some(key) = map
            .iter()
            .find(|(k, v)| !v.is_null() && !allowed.contains(&k.as_str()))
            .map(|(k, _)| k)
    {
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        return Err(err(
            field,
            format!(
                "not supported by the local runtime (supported here: {})",
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Checks an `apps/v1` Deployment: its fields, its selector against the template's
/// labels, and its template as a Pod the local runtime can run.
pub fn parse_deployment(value: &Value) -> Result<Deployment, ManifestError> {
    if !value.is_object() {
        return Err(err("", "a Deployment manifest is a JSON object"));
    }
    match value.get("apiVersion").and_then(Value::as_str) {
        Some("apps/v1") => {}
        Some(other) => return Err(err("apiVersion", format!("\"{other}\" is not apps/v1"))),
        None => return Err(err("apiVersion", "required (apps/v1)")),
    }
    if value.get("kind").and_then(Value::as_str) != Some("Deployment") {
        return Err(err("kind", "must be Deployment"));
    }
    only(
        value,
        "",
        &["apiVersion", "kind", "metadata", "spec", "status"],
    )?;
    let meta = value.get("metadata").cloned().unwrap_or(json!({}));
    only(
        &meta,
        "metadata",
        &[
            "name",
            "namespace",
            "labels",
            "annotations",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
        ],
    )?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| err("metadata.name", "required"))?
        .to_owned();
    if !is_dns_subdomain(&name) {
        return Err(err(
            "metadata.name",
            format!("\"{name}\" is not a DNS subdomain"),
        ));
    }
    // Pod names get "-<hash>-<suffix>" appended and must stay within 253.
    if name.len() > 253 - 17 {
        return Err(err("metadata.name", "longer than 236 characters"));
    }
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    if !manifest::is_dns_label(&namespace) {
        return Err(err(
            "metadata.namespace",
            format!("\"{namespace}\" is not a DNS label"),
        ));
    }
    let spec = value.get("spec").ok_or_else(|| err("spec", "required"))?;
    only(
        spec,
        "spec",
        &["replicas", "selector", "template", "strategy"],
    )?;
    let replicas = match spec.get("replicas") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| *r <= MAX_REPLICAS)
            .ok_or_else(|| {
                err(
                    "spec.replicas",
                    format!("{v} is not a whole number from 0 to {MAX_REPLICAS}"),
                )
            })?,
    };
    let strategy = match spec.get("strategy") {
        None | Some(Value::Null) => Strategy::RollingUpdate,
        Some(s) => {
            only(s, "spec.strategy", &["type"])?;
            match s.get("type").and_then(Value::as_str) {
                None | Some("RollingUpdate") => Strategy::RollingUpdate,
                Some("Recreate") => Strategy::Recreate,
                Some(other) => {
                    return Err(err(
                        "spec.strategy.type",
                        format!("\"{other}\" is not RollingUpdate or Recreate"),
                    ));
                }
            }
        }
    };
    let selector = spec
        .get("selector")
        .ok_or_else(|| err("spec.selector", "required"))?;
    only(selector, "spec.selector", &["matchLabels"])?;
    let selector = string_map(selector.get("matchLabels"), "spec.selector.matchLabels")?;
    if selector.is_empty() {
        return Err(err(
            "spec.selector.matchLabels",
            "required (at least one label)",
        ));
    }
    let template = spec
        .get("template")
        .ok_or_else(|| err("spec.template", "required"))?;
    only(template, "spec.template", &["metadata", "spec"])?;
    let template_meta = template.get("metadata").cloned().unwrap_or(json!({}));
    only(
        &template_meta,
        "spec.template.metadata",
        &["labels", "annotations"],
    )?;
    let labels = string_map(template_meta.get("labels"), "spec.template.metadata.labels")?;
    if let Some((k, v)) = selector.iter().find(|(k, v)| labels.get(*k) != Some(*v)) {
        return Err(err(
            "spec.template.metadata.labels",
            format!("`selector` does not match template `labels` ({k}={v} is missing)"),
        ));
    }
    let pod_spec = template
        .get("spec")
        .ok_or_else(|| err("spec.template.spec", "required"))?;
    match pod_spec.get("restartPolicy").and_then(Value::as_str) {
        None | Some("Always") => {}
        Some(other) => {
            return Err(err(
                "spec.template.spec.restartPolicy",
                format!("\"{other}\": a Deployment's pods restart Always"),
            ));
        }
    }
    // The template must be a pod the runtime can run; its errors name template fields.
    let probe = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": template_meta.get("labels"),
                     "annotations": template_meta.get("annotations")},
        "spec": pod_spec,
    });
    manifest::from_value(probe).map_err(|mut e| {
        if e.field.starts_with("spec") || e.field.starts_with("metadata") {
            e.field = format!("spec.template.{}", e.field);
        }
        e
    })?;
    Ok(Deployment {
        template_hash: template_hash(template),
        namespace,
        name,
        replicas,
        selector,
        template: template.clone(),
        strategy,
    })
}

fn string_map(
    value: Option<&Value>,
    field: &str,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let map = value
        .as_object()
        .ok_or_else(|| err(field, "must be a map of strings"))?;
    map.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_owned()))
                .ok_or_else(|| err(format!("{field}.{k}"), "must be a string"))
        })
        .collect()
}

/// FNV-1a (32 bit), the hash Kubernetes names pod templates with.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The controllers' `SafeEncodeString`: each character mapped into [`ALPHANUMS`].
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The template's hash: FNV-1a of its canonical JSON (serde_json writes object keys in
/// sorted order), its decimal digits encoded as the controllers do.
pub fn template_hash(template: &Value) -> String {
    let canonical = serde_json::to_vec(template).unwrap_or_default();
    safe_encode(&fnv32a(&canonical).to_string())
}

/// A 5-character pod name suffix from random bits, in the controllers' alphabet.
pub fn name_suffix(random: u64) -> String {
    let mut r = random;
    (0..5)
        .map(|_| {
            let c = ALPHANUMS[(r % ALPHANUMS.len() as u64) as usize];
            r /= ALPHANUMS.len() as u64;
            char::from(c)
        })
        .collect()
}

/// A pod of a Deployment as the shell knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    pub name: String,
    pub uid: String,
    pub template_hash: String,
    /// `None` until a report has shown the pod.
    pub phase: Option<Phase>,
    pub ready: bool,
    pub restarts: u32,
    pub created_unix_nanos: u64,
    /// Being deleted: it no longer counts.
    pub deleting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "Pending" => Some(Phase::Pending),
            "Running" => Some(Phase::Running),
            "Succeeded" => Some(Phase::Succeeded),
            "Failed" => Some(Phase::Failed),
            _ => None,
        }
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create {
        name: String,
    },
    Delete {
        uid: String,
        name: String,
        reason: &'static str,
    },
}

fn finished(p: &PodRecord) -> bool {
    matches!(p.phase, Some(Phase::Failed | Phase::Succeeded))
}

/// The controllers' order of pods to remove first: not yet shown by a report, then
/// pending, then not ready; more restarts first; newest first.
fn removal_order(a: &&PodRecord, b: &&PodRecord) -> std::cmp::Ordering {
    let rank = |p: &PodRecord| match p.phase {
        None => 0,
        Some(Phase::Pending) => 1,
        _ if !p.ready => 2,
        _ => 3,
    };
    rank(a)
        .cmp(&rank(b))
        .then(b.restarts.cmp(&a.restarts))
        .then(b.created_unix_nanos.cmp(&a.created_unix_nanos))
        .then(a.name.cmp(&b.name))
}

/// Surge and unavailability of a rolling update: Kubernetes' defaults, 25 % each (surge
/// rounded up, unavailable rounded down), and never both zero: the surge is at least one.
pub fn rolling_bounds(replicas: u32) -> (u32, u32) {
    (replicas.div_ceil(4).max(1), replicas / 4)
}

/// What to do so that `d`'s pods become what it asks for. `suffix` gives random bits
/// for new names; a name already taken is drawn again.
pub fn reconcile(d: &Deployment, pods: &[PodRecord], suffix: &mut dyn FnMut() -> u64) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut taken: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
    let mut create = |steps: &mut Vec<Step>, taken: &mut Vec<String>| {
        for _ in 0..64 {
            let name = format!("{}-{}-{}", d.name, d.template_hash, name_suffix(suffix()));
            if !taken.contains(&name) {
                taken.push(name.clone());
                steps.push(Step::Create { name });
                return;
            }
        }
    };
    // Finished pods of a restart-Always template failed in a way restarts cannot fix
    // (or were evicted): replace them.
    for p in pods.iter().filter(|p| !p.deleting && finished(p)) {
        steps.push(Step::Delete {
            uid: p.uid.clone(),
            name: p.name.clone(),
            reason: "PodFailed",
        });
    }
    let active: Vec<&PodRecord> = pods
        .iter()
        .filter(|p| !p.deleting && !finished(p))
        .collect();
    let (mut new, mut old): (Vec<&PodRecord>, Vec<&PodRecord>) = active
        .iter()
        .partition(|p| p.template_hash == d.template_hash);
    let replicas = d.replicas as usize;
    if old.is_empty() {
        for _ in new.len()..replicas {
            create(&mut steps, &mut taken);
        }
        new.sort_by(removal_order);
        for p in &new[..new.len().saturating_sub(replicas)] {
            steps.push(Step::Delete {
                uid: p.uid.clone(),
                name: p.name.clone(),
                reason: "ScaledDown",
            });
        }
        return steps;
    }
    old.sort_by(removal_order);
    match d.strategy {
        Strategy::Recreate => {
            for p in &old {
                steps.push(Step::Delete {
                    uid: p.uid.clone(),
                    name: p.name.clone(),
                    reason: "Recreate",
                });
            }
            // New pods come once the old ones are gone (a later pass).
        }
        Strategy::RollingUpdate => {
            let (surge, unavailable) = rolling_bounds(d.replicas);
            let total = new.len() + old.len();
            let room = (replicas + surge as usize).saturating_sub(total);
            let wanted = replicas.saturating_sub(new.len());
            for _ in 0..room.min(wanted) {
                create(&mut steps, &mut taken);
            }
            // The Deployment controller's bound: remove old pods only while the pods
            // left (less new ones not ready yet) keep the minimum available; unready old
            // pods go first, as they cost no availability.
            let min_available = replicas.saturating_sub(unavailable as usize);
            let new_unavailable = new.iter().filter(|p| !p.ready).count();
            let removable = total
                .saturating_sub(min_available)
                .saturating_sub(new_unavailable);
            for p in old.iter().take(removable) {
                steps.push(Step::Delete {
                    uid: p.uid.clone(),
                    name: p.name.clone(),
                    reason: "RollingUpdate",
                });
            }
        }
    }
    steps
}

/// A Deployment's status as the controller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatus {
    /// Pods that count (not finished, not being deleted).
    pub replicas: u32,
    pub updated_replicas: u32,
    pub ready_replicas: u32,
    pub available_replicas: u32,
    pub unavailable_replicas: u32,
    /// `Available` condition: at least `replicas - maxUnavailable` ready.
    pub available: bool,
}

pub fn status(d: &Deployment, pods: &[PodRecord]) -> DeploymentStatus {
    let active: Vec<&PodRecord> = pods
        .iter()
        .filter(|p| !p.deleting && !finished(p))
        .collect();
    let ready = active.iter().filter(|p| p.ready).count() as u32;
    let updated = active
        .iter()
        .filter(|p| p.template_hash == d.template_hash)
        .count() as u32;
    let (_, unavailable) = match d.strategy {
        Strategy::RollingUpdate => rolling_bounds(d.replicas),
        Strategy::Recreate => (0, 0),
    };
    DeploymentStatus {
        replicas: active.len() as u32,
        updated_replicas: updated,
        ready_replicas: ready,
        available_replicas: ready,
        unavailable_replicas: d.replicas.saturating_sub(ready),
        available: ready >= d.replicas.saturating_sub(unavailable),
    }
}

/// The Pod a Deployment creates under `name`: the template with the name, namespace,
/// uid, the template-hash label and an owner reference to the Deployment.
pub fn pod_for(d: &Deployment, name: &str, uid: &str, deployment_uid: &str) -> Value {
    let mut metadata = d
        .template
        .get("metadata")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(d.namespace);
    metadata["uid"] = json!(uid);
    if !metadata.get("labels").is_some_and(Value::is_object) {
        metadata["labels"] = json!({});
    }
    metadata["labels"][TEMPLATE_HASH_LABEL] = json!(d.template_hash);
    metadata["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": d.name,
        "uid": deployment_uid, "controller": true, "blockOwnerDeletion": true,
    }]);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": d.template.get("spec").cloned().unwrap_or(json!({})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: u64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "ml"},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn parsed(replicas: u64) -> Deployment {
        parse_deployment(&deployment(replicas, "img:1")).unwrap()
    }

    fn pod(d: &Deployment, n: u32, ready: bool) -> PodRecord {
        PodRecord {
            name: format!("{}-{}-p{n}", d.name, d.template_hash),
            uid: format!("u{n}"),
            template_hash: d.template_hash.clone(),
            phase: Some(if ready {
                Phase::Running
            } else {
                Phase::Pending
            }),
            ready,
            restarts: 0,
            created_unix_nanos: u64::from(n),
            deleting: false,
        }
    }

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0u64;
        move || {
            n += 1;
            n * 7919
        }
    }

    fn creates(steps: &[Step]) -> usize {
        steps
            .iter()
            .filter(|s| matches!(s, Step::Create { .. }))
            .count()
    }

    fn deleted(steps: &[Step]) -> Vec<&str> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Delete { uid, .. } => Some(uid.as_str()),
                Step::Create { .. } => None,
            })
            .collect()
    }

    #[test]
    fn parses_a_deployment() {
        let d = parsed(3);
        assert_eq!(
            (d.namespace.as_str(), d.name.as_str(), d.replicas),
            ("ml", "web", 3)
        );
        assert_eq!(d.selector, BTreeMap::from([("app".into(), "web".into())]));
        assert_eq!(d.strategy, Strategy::RollingUpdate);
        assert!(!d.template_hash.is_empty() && d.template_hash.len() <= 10);
        assert!(d.template_hash.bytes().all(|b| ALPHANUMS.contains(&b)));
        // The same template hashes the same; another image does not.
        assert_eq!(parsed(5).template_hash, d.template_hash);
        assert_ne!(
            parse_deployment(&deployment(3, "img:2"))
                .unwrap()
                .template_hash,
            d.template_hash
        );
        let mut one = deployment(1, "i");
        one["spec"].as_object_mut().unwrap().remove("replicas");
        one["spec"]["strategy"] = json!({"type": "Recreate"});
        let d = parse_deployment(&one).unwrap();
        assert_eq!((d.replicas, d.strategy), (1, Strategy::Recreate));
        assert_eq!(d.namespace, "ml");
    }

    #[test]
    fn refusals_name_the_field() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|d| d["apiVersion"] = json!("apps/v1beta1")),
                "apiVersion: \"apps/v1beta1\" is not apps/v1",
            ),
            (
                Box::new(|d| {
                    d.as_object_mut().unwrap().remove("apiVersion");
                }),
                "apiVersion: required (apps/v1)",
            ),
            (
                Box::new(|d| d["kind"] = json!("StatefulSet")),
                "kind: must be Deployment",
            ),
            (
                Box::new(|d| d["metadata"]["name"] = json!("Web")),
                "metadata.name: \"Web\" is not a DNS subdomain",
            ),
            (
                Box::new(|d| {
                    d["metadata"].as_object_mut().unwrap().remove("name");
                }),
                "metadata.name: required",
            ),
            (
                Box::new(|d| d["metadata"]["name"] = json!(vec!["a".repeat(59); 4].join("."))),
                "metadata.name: longer than 236 characters",
            ),
            (
                Box::new(|d| d["metadata"]["namespace"] = json!("A")),
                "metadata.namespace: \"A\" is not a DNS label",
            ),
            (
                Box::new(|d| d["metadata"]["finalizers"] = json!(["x"])),
                "metadata.finalizers: not supported by the local runtime (supported here: name, namespace, labels, annotations, uid, creationTimestamp, resourceVersion, generation)",
            ),
            (
                Box::new(|d| {
                    d.as_object_mut().unwrap().remove("spec");
                }),
                "spec: required",
            ),
            (
                Box::new(|d| d["spec"]["replicas"] = json!(-1)),
                "spec.replicas: -1 is not a whole number from 0 to 1000",
            ),
            (
                Box::new(|d| d["spec"]["replicas"] = json!(1001)),
                "spec.replicas: 1001 is not a whole number from 0 to 1000",
            ),
            (
                Box::new(|d| d["spec"]["replicas"] = json!("3")),
                "spec.replicas: \"3\" is not a whole number from 0 to 1000",
            ),
            (
                Box::new(|d| d["spec"]["minReadySeconds"] = json!(5)),
                "spec.minReadySeconds: not supported by the local runtime (supported here: replicas, selector, template, strategy)",
            ),
            (
                Box::new(|d| d["spec"]["strategy"] = json!({"type": "BlueGreen"})),
                "spec.strategy.type: \"BlueGreen\" is not RollingUpdate or Recreate",
            ),
            (
                Box::new(|d| d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 1}})),
                "spec.strategy.rollingUpdate: not supported by the local runtime (supported here: type)",
            ),
            (
                Box::new(|d| {
                    d["spec"].as_object_mut().unwrap().remove("selector");
                }),
                "spec.selector: required",
            ),
            (
                Box::new(|d| d["spec"]["selector"] = json!({"matchExpressions": []})),
                "spec.selector.matchExpressions: not supported by the local runtime (supported here: matchLabels)",
            ),
            (
                Box::new(|d| d["spec"]["selector"] = json!({"matchLabels": {}})),
                "spec.selector.matchLabels: required (at least one label)",
            ),
            (
                Box::new(|d| d["spec"]["selector"] = json!({"matchLabels": {"app": 1}})),
                "spec.selector.matchLabels.app: must be a string",
            ),
            (
                Box::new(|d| d["spec"]["selector"] = json!({"matchLabels": ["app"]})),
                "spec.selector.matchLabels: must be a map of strings",
            ),
            (
                Box::new(|d| d["spec"]["selector"]["matchLabels"]["app"] = json!("db")),
                "spec.template.metadata.labels: `selector` does not match template `labels` (app=db is missing)",
            ),
            (
                Box::new(|d| {
                    d["spec"].as_object_mut().unwrap().remove("template");
                }),
                "spec.template: required",
            ),
            (
                Box::new(|d| {
                    d["spec"]["template"]
                        .as_object_mut()
                        .unwrap()
                        .remove("spec");
                }),
                "spec.template.spec: required",
            ),
            (
                Box::new(|d| d["spec"]["template"]["metadata"]["name"] = json!("x")),
                "spec.template.metadata.name: not supported by the local runtime (supported here: labels, annotations)",
            ),
            (
                Box::new(|d| d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never")),
                "spec.template.spec.restartPolicy: \"Never\": a Deployment's pods restart Always",
            ),
            (
                Box::new(|d| d["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x")),
                "spec.template.spec.containers[0].imagee: unknown field",
            ),
            (
                Box::new(|d| {
                    d["spec"]["template"]["metadata"]["annotations"] =
                        json!({"aistor.io/rootfs": "nope"})
                }),
                "spec.template.metadata.annotations[aistor.io/rootfs]: \"nope\" is neither \"host\" nor \"image\"",
            ),
        ];
        for (change, expected) in cases {
            let mut d = deployment(2, "img");
            change(&mut d);
            assert_eq!(parse_deployment(&d).unwrap_err().to_string(), expected);
        }
        assert_eq!(
            parse_deployment(&json!([])).unwrap_err().to_string(),
            "a Deployment manifest is a JSON object"
        );
        let mut ok = deployment(0, "img");
        ok["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        ok["status"] = json!({"replicas": 1});
        assert_eq!(parse_deployment(&ok).unwrap().replicas, 0);
    }

    #[test]
    fn names_use_the_controllers_alphabet() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
        // '0' is 48, 48 % 27 = 21 → '4'; '1' → '5'.
        assert_eq!(safe_encode("01"), "45");
        assert_eq!(name_suffix(0), "bbbbb");
        assert_eq!(name_suffix(1), "cbbbb");
        assert_eq!(name_suffix(27), "bcbbb");
        assert_eq!(name_suffix(26), "9bbbb");
        let s = name_suffix(u64::MAX);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| ALPHANUMS.contains(&b)));
    }

    #[test]
    fn scales_up_down_and_replaces_failed_pods() {
        let d = parsed(3);
        let steps = reconcile(&d, &[], &mut counter());
        assert_eq!(creates(&steps), 3);
        for s in &steps {
            let Step::Create { name } = s else {
                unreachable!()
            };
            assert!(
                name.starts_with(&format!("web-{}-", d.template_hash)),
                "{name}"
            );
            assert_eq!(name.len(), "web-".len() + d.template_hash.len() + 6);
        }
        let names: std::collections::BTreeSet<String> =
            steps.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(names.len(), 3, "distinct names");
        let three = [pod(&d, 1, true), pod(&d, 2, true), pod(&d, 3, true)];
        assert_eq!(reconcile(&d, &three, &mut counter()), vec![], "settled");
        // Scale down: not-reported first, then pending, then unready, then more
        // restarts, then the newest.
        let mut five = three.to_vec();
        let mut unreported = pod(&d, 4, false);
        unreported.phase = None;
        let mut flaky = pod(&d, 5, true);
        flaky.restarts = 3;
        five.extend([unreported, flaky]);
        let d1 = parsed(1);
        let steps = reconcile(&d1, &five, &mut counter());
        assert_eq!(deleted(&steps), ["u4", "u5", "u3", "u2"]);
        assert!(steps.iter().all(|s| matches!(
            s,
            Step::Delete {
                reason: "ScaledDown",
                ..
            }
        )));
        let mut pending = five.clone();
        pending[0].phase = Some(Phase::Pending);
        pending[0].ready = false;
        let mut unready = pending.clone();
        unready[1].ready = false;
        assert_eq!(
            deleted(&reconcile(&parsed(3), &unready, &mut counter())),
            ["u4", "u1"]
        );
        // A failed pod is replaced; a pod being deleted does not count.
        let mut failed = three.to_vec();
        failed[1].phase = Some(Phase::Failed);
        failed[2].deleting = true;
        let steps = reconcile(&d, &failed, &mut counter());
        assert_eq!(deleted(&steps), ["u2"]);
        assert!(matches!(
            steps[0],
            Step::Delete {
                reason: "PodFailed",
                ..
            }
        ));
        assert_eq!(creates(&steps), 2);
        let mut succeeded = three.to_vec();
        succeeded[0].phase = Some(Phase::Succeeded);
        assert_eq!(deleted(&reconcile(&d, &succeeded, &mut counter())), ["u1"]);
    }

    #[test]
    fn names_at_the_length_limit() {
        let name = |last: usize| {
            let mut parts = vec!["a".repeat(59); 3];
            parts.push("a".repeat(last));
            parts.join(".")
        };
        let mut d = deployment(1, "i");
        d["metadata"]["name"] = json!(name(56));
        assert_eq!(name(56).len(), 236);
        assert!(
            parse_deployment(&d).is_ok(),
            "236 characters leave room for the suffixes"
        );
        d["metadata"]["name"] = json!(name(57));
        assert_eq!(
            parse_deployment(&d).unwrap_err().to_string(),
            "metadata.name: longer than 236 characters"
        );
    }

    #[test]
    fn an_unready_running_pod_goes_before_ready_ones() {
        let d = parsed(2);
        let mut pods = vec![pod(&d, 1, true), pod(&d, 2, true), pod(&d, 3, true)];
        pods[1].ready = false;
        assert_eq!(deleted(&reconcile(&d, &pods, &mut counter())), ["u2"]);
        // Among equally ready pods the newest goes.
        pods[1].ready = true;
        assert_eq!(deleted(&reconcile(&d, &pods, &mut counter())), ["u3"]);
    }

    #[test]
    fn a_taken_name_is_drawn_again() {
        let d = parsed(2);
        let mut same = || 5u64;
        let steps = reconcile(&d, &[], &mut same);
        assert_eq!(
            creates(&steps),
            1,
            "only one distinct name from a stuck source"
        );
        let mut n = 0u64;
        let mut alternating = move || {
            n += 1;
            n / 2
        };
        assert_eq!(creates(&reconcile(&d, &[], &mut alternating)), 2);
    }

    /// Carries out steps the way the shell does: new pods start unready (and become
    /// ready before the next pass, see the caller); deleted ones vanish.
    fn apply(pods: &mut Vec<PodRecord>, steps: &[Step], hash: &str, next: &mut u32) {
        for s in steps {
            match s {
                Step::Create { name } => {
                    *next += 1;
                    pods.push(PodRecord {
                        name: name.clone(),
                        uid: format!("n{next}"),
                        template_hash: hash.to_owned(),
                        phase: None,
                        ready: false,
                        restarts: 0,
                        created_unix_nanos: u64::from(*next) + 100,
                        deleting: false,
                    });
                }
                Step::Delete { uid, .. } => pods.retain(|p| &p.uid != uid),
            }
        }
    }

    #[test]
    fn rolling_update_keeps_availability_and_converges() {
        for replicas in [1u32, 2, 4, 10] {
            let old = parsed(u64::from(replicas));
            let new = parse_deployment(&deployment(u64::from(replicas), "img:2")).unwrap();
            let mut pods: Vec<PodRecord> = (1..=replicas).map(|n| pod(&old, n, true)).collect();
            let (surge, unavailable) = rolling_bounds(replicas);
            let mut next = 0;
            let mut passes = 0;
            loop {
                let steps = reconcile(&new, &pods, &mut counter());
                if steps.is_empty() {
                    break;
                }
                apply(&mut pods, &steps, &new.template_hash, &mut next);
                // Right after the steps, new pods are not ready yet: the bounds hold here.
                let ready = pods.iter().filter(|p| p.ready).count() as u32;
                assert!(
                    pods.len() as u32 <= replicas + surge,
                    "surge bound: {pods:?}"
                );
                assert!(
                    ready + 1 >= replicas.saturating_sub(unavailable),
                    "availability: {pods:?}"
                );
                passes += 1;
                assert!(passes < 50, "converges");
                for p in pods.iter_mut() {
                    p.ready = true;
                    p.phase = Some(Phase::Running);
                }
            }
            assert_eq!(pods.len() as u32, replicas, "{replicas}: {pods:#?}");
            assert!(pods.iter().all(|p| p.template_hash == new.template_hash));
        }
        assert_eq!(rolling_bounds(0), (1, 0));
        assert_eq!(rolling_bounds(1), (1, 0));
        assert_eq!(rolling_bounds(4), (1, 1));
        assert_eq!(rolling_bounds(10), (3, 2));
    }

    #[test]
    fn recreate_removes_old_pods_first() {
        let old = parsed(2);
        let mut doc = deployment(2, "img:2");
        doc["spec"]["strategy"] = json!({"type": "Recreate"});
        let new = parse_deployment(&doc).unwrap();
        let pods = [pod(&old, 1, true), pod(&old, 2, false)];
        let steps = reconcile(&new, &pods, &mut counter());
        assert_eq!(deleted(&steps), ["u2", "u1"]);
        assert_eq!(creates(&steps), 0);
        assert!(steps.iter().all(|s| matches!(
            s,
            Step::Delete {
                reason: "Recreate",
                ..
            }
        )));
        assert_eq!(creates(&reconcile(&new, &[], &mut counter())), 2);
    }

    #[test]
    fn status_counts_like_the_controller() {
        let d = parsed(4);
        let mut pods = vec![pod(&d, 1, true), pod(&d, 2, true), pod(&d, 3, false)];
        let mut gone = pod(&d, 4, true);
        gone.deleting = true;
        pods.push(gone);
        let mut failed = pod(&d, 5, false);
        failed.phase = Some(Phase::Failed);
        pods.push(failed);
        let mut other = pod(&d, 6, true);
        other.template_hash = "old".into();
        pods.push(other);
        let s = status(&d, &pods);
        assert_eq!(
            s,
            DeploymentStatus {
                replicas: 4,
                updated_replicas: 3,
                ready_replicas: 3,
                available_replicas: 3,
                unavailable_replicas: 1,
                available: true,
            }
        );
        let s = status(&d, &pods[..2]);
        assert!(!s.available, "2 ready of 4 is below 4 - 1");
        let mut doc = deployment(1, "i");
        doc["spec"]["strategy"] = json!({"type": "Recreate"});
        let r = parse_deployment(&doc).unwrap();
        assert!(!status(&r, &[]).available);
        assert_eq!(Phase::parse("Running"), Some(Phase::Running));
        assert_eq!(Phase::parse("Pending"), Some(Phase::Pending));
        assert_eq!(Phase::parse("Succeeded"), Some(Phase::Succeeded));
        assert_eq!(Phase::parse("Failed"), Some(Phase::Failed));
        assert_eq!(Phase::parse("Unknown"), None);
    }

    #[test]
    fn pods_carry_the_template_and_their_owner() {
        let d = parsed(1);
        let p = pod_for(&d, "web-x-abcde", "uid-1", "dep-uid");
        assert_eq!(p["metadata"]["name"], "web-x-abcde");
        assert_eq!(p["metadata"]["namespace"], "ml");
        assert_eq!(p["metadata"]["uid"], "uid-1");
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(
            p["metadata"]["labels"][TEMPLATE_HASH_LABEL],
            d.template_hash
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "dep-uid");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(p["spec"]["containers"][0]["image"], "img:1");
        let pod = manifest::from_value(p).unwrap();
        assert_eq!(pod.uid.as_deref(), Some("uid-1"));
        let mut bare = d.clone();
        bare.template = json!({"spec": {"containers": [{"name": "c", "image": "i"}]}});
        let p = pod_for(&bare, "n", "u", "d");
        assert_eq!(
            p["metadata"]["labels"][TEMPLATE_HASH_LABEL],
            d.template_hash
        );
    }
}
