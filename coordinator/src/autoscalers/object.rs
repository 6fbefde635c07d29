//! An `Autoscaler` object as `aistorctl apply` sends it (gRPC `Create`): checked as
//! the CRD's schema checks it on Kubernetes, plus the bounds a decision needs, every
//! mistake named by its field path (`spec.minReplicas`, `spec.metrics`, ...).

use super::request::{MAX_WINDOW_SECONDS, workload_kind};
use super::spec::MAX_METRIC_FEED_SECONDS;
use crate::k8s::crd::{AutoscalerSpec, ScalingRules};
use aistor_core::manifest::{is_dns_label, is_dns_subdomain};
use serde_json::Value;

pub const API_VERSION: &str = "aistor.io/v1alpha1";
pub const KIND: &str = "Autoscaler";
/// The namespace of an object that names none (as kubectl's default).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why an object was refused; the text starts with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ObjectError(pub String);

/// An object read: where it goes and what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub namespace: String,
    pub spec: AutoscalerSpec,
}

fn refuse(text: String) -> ObjectError {
    ObjectError(text)
}

/// Reads an `Autoscaler` object. `metadata.name` is refused (the coordinator
/// names autoscalers); `status` is ignored, as the API server ignores it on create.
pub fn parse(object: &Value) -> Result<Parsed, ObjectError> {
    if !object.is_object() {
        return Err(refuse("the object is not a JSON object".into()));
    }
    match object.get("kind") {
        Some(Value::String(k)) if k == KIND => {}
        Some(other) => {
            return Err(refuse(format!("kind must be {KIND}, got {other}")));
        }
        None => return Err(refuse(format!("kind is required ({KIND})"))),
    }
    match object.get("apiVersion") {
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(other) => {
            return Err(refuse(format!(
                "apiVersion must be {API_VERSION}, got {other}"
            )));
        }
        None => return Err(refuse(format!("apiVersion is required ({API_VERSION})"))),
    }
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => &Value::Null,
        Some(m @ Value::Object(_)) => m,
        Some(_) => return Err(refuse("metadata must be an object".into())),
    };
    if let Some(name) = metadata.get("name").filter(|n| !n.is_null()) {
        return Err(refuse(format!(
            "metadata.name {name} cannot be chosen: the coordinator names autoscalers \
             (autoscaler-xxxxxxxx); leave it out"
        )));
    }
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => DEFAULT_NAMESPACE.to_owned(),
        Some(Value::String(ns)) if is_dns_label(ns) => ns.clone(),
        Some(other) => {
            return Err(refuse(format!(
                "metadata.namespace {other} is not a valid namespace (lower-case letters, \
                 digits and '-', at most 63)"
            )));
        }
    };
    let spec = match object.get("spec") {
        None | Some(Value::Null) => return Err(refuse("spec is required".into())),
        Some(s) => s.clone(),
    };
    let spec: AutoscalerSpec = serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "." => "spec".to_owned(),
            p => format!("spec.{p}"),
        };
        let inner = e.inner().to_string();
        match inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            Some(field) => refuse(format!("{path}.{field} is required")),
            None => refuse(format!("{path}: {inner}")),
        }
    })?;
    validate(&spec)?;
    Ok(Parsed { namespace, spec })
}

fn percent(field: &str, v: Option<u32>, max: u32) -> Result<(), ObjectError> {
    match v {
        Some(p) if !(1..=max).contains(&p) => Err(refuse(format!(
            "spec.metrics.{field} must be between 1 and {max}, got {p}"
        ))),
        _ => Ok(()),
    }
}

fn positive(field: &str, v: Option<f64>) -> Result<(), ObjectError> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(refuse(format!(
            "spec.metrics.{field} must be a positive number, got {x}"
        ))),
        _ => Ok(()),
    }
}

fn rules(field: &str, r: Option<&ScalingRules>) -> Result<(), ObjectError> {
    let Some(r) = r else { return Ok(()) };
    if let Some(w) = r.stabilization_window_seconds
        && i64::from(w) > MAX_WINDOW_SECONDS
    {
        return Err(refuse(format!(
            "spec.{field}.stabilizationWindowSeconds must be between 0 and \
             {MAX_WINDOW_SECONDS}, got {w}"
        )));
    }
    for (i, p) in r.policies.iter().enumerate() {
        if p.value < 1 {
            return Err(refuse(format!(
                "spec.{field}.policies[{i}].value must be at least 1, got {}",
                p.value
            )));
        }
        if !(1..=1800).contains(&p.period_seconds) {
            return Err(refuse(format!(
                "spec.{field}.policies[{i}].periodSeconds must be between 1 and 1800, got {}",
                p.period_seconds
            )));
        }
    }
    Ok(())
}

/// The bounds of the CRD's schema, and those a decision needs.
pub fn validate(spec: &AutoscalerSpec) -> Result<(), ObjectError> {
    let target = &spec.workload_ref;
    if workload_kind(&target.kind) != Some(target.kind.as_str()) {
        return Err(refuse(format!(
            "spec.workloadRef.kind must be Deployment, StatefulSet or ReplicaSet, got {:?}",
            target.kind
        )));
    }
    if !is_dns_subdomain(&target.name) {
        return Err(refuse(format!(
            "spec.workloadRef.name {:?} is not a valid object name (lower-case letters, \
             digits, '-' and '.', at most 253)",
            target.name
        )));
    }
    if spec.min_replicas < 1 {
        return Err(refuse(format!(
            "spec.minReplicas must be at least 1, got {}",
            spec.min_replicas
        )));
    }
    if spec.max_replicas < spec.min_replicas {
        return Err(refuse(format!(
            "spec.maxReplicas must be at least spec.minReplicas ({}), got {}",
            spec.min_replicas, spec.max_replicas
        )));
    }
    let m = &spec.metrics;
    percent("cpuPercent", m.cpu_percent, 1000)?;
    percent("memoryPercent", m.memory_percent, 1000)?;
    percent("gpuPercent", m.gpu_percent, 100)?;
    positive("ioReadMegabytesPerSecond", m.io_read_megabytes_per_second)?;
    positive("ioWriteMegabytesPerSecond", m.io_write_megabytes_per_second)?;
    positive("iops", m.iops)?;
    // The HPA-style part: every metric measurable, each direction's rules set once.
    super::spec::decision_spec(spec).map_err(refuse)?;
    if super::spec::all_metrics(spec).is_ok_and(|m| m.is_empty()) {
        return Err(refuse(
            "spec.metrics needs at least one target: cpuPercent, memoryPercent, gpuPercent, \
             ioReadMegabytesPerSecond, ioWriteMegabytesPerSecond or iops (or spec.hpa.metrics)"
                .into(),
        ));
    }
    if let Some(s) = spec.sync_period_seconds
        && !(1..=3600).contains(&s)
    {
        return Err(refuse(format!(
            "spec.syncPeriodSeconds must be between 1 and 3600, got {s}"
        )));
    }
    for (field, v) in [
        ("metricWindowSeconds", spec.metric_window_seconds),
        ("metricResolutionSeconds", spec.metric_resolution_seconds),
    ] {
        if let Some(s) = v
            && !(1..=MAX_METRIC_FEED_SECONDS).contains(&s)
        {
            return Err(refuse(format!(
                "spec.{field} must be between 1 and {MAX_METRIC_FEED_SECONDS}, got {s}"
            )));
        }
    }
    rules("scaleUp", spec.scale_up.as_ref())?;
    rules("scaleDown", spec.scale_down.as_ref())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "apiVersion": "aistor.io/v1alpha1",
            "kind": "Autoscaler",
            "metadata": {"namespace": "demo"},
            "spec": {
                "workloadRef": {"kind": "Deployment", "name": "burner"},
                "minReplicas": 1,
                "maxReplicas": 4,
                "metrics": {"cpuPercent": 50},
                "scaleDown": {"stabilizationWindowSeconds": 60}
            }
        })
    }

    fn refused(v: Value) -> String {
        parse(&v).expect_err("refused").0
    }

    #[test]
    fn an_object_reads_into_its_namespace_and_spec() {
        let p = parse(&base()).unwrap();
        assert_eq!(p.namespace, "demo");
        assert_eq!(p.spec.workload_ref.name, "burner");
        assert_eq!((p.spec.min_replicas, p.spec.max_replicas), (1, 4));
        assert_eq!(p.spec.metrics.cpu_percent, Some(50));
        assert_eq!(
            p.spec.scale_down.unwrap().stabilization_window_seconds,
            Some(60)
        );
        assert_eq!(
            (
                p.spec.metric_window_seconds,
                p.spec.metric_resolution_seconds
            ),
            (None, None)
        );
        let mut v = base();
        v["spec"]["metricWindowSeconds"] = json!(60);
        v["spec"]["metricResolutionSeconds"] = json!(15);
        let fed = parse(&v).unwrap().spec;
        assert_eq!(
            (fed.metric_window_seconds, fed.metric_resolution_seconds),
            (Some(60), Some(15))
        );
        for bound in [1, 300] {
            v["spec"]["metricWindowSeconds"] = json!(bound);
            v["spec"]["metricResolutionSeconds"] = json!(bound);
            assert!(parse(&v).is_ok(), "{bound}");
        }
        let mut v = base();
        v.as_object_mut().unwrap().remove("metadata");
        v["status"] = json!({"phase": "Active"});
        assert_eq!(parse(&v).unwrap().namespace, "default", "status ignored");
    }

    #[test]
    fn each_mistake_names_its_field() {
        let with = |pointer: &str, value: Value| {
            let mut v = base();
            *v.pointer_mut(pointer).unwrap() = value;
            refused(v)
        };
        assert_eq!(
            with("/spec/minReplicas", json!(0)),
            "spec.minReplicas must be at least 1, got 0"
        );
        assert!(
            with("/spec/maxReplicas", json!(0)).starts_with("spec.maxReplicas must be at least")
        );
        assert!(
            with("/spec/workloadRef/kind", json!("Job"))
                .starts_with("spec.workloadRef.kind must be Deployment, StatefulSet or ReplicaSet")
        );
        assert!(
            with("/spec/workloadRef/name", json!("Web_1")).starts_with("spec.workloadRef.name")
        );
        assert!(with("/spec/minReplicas", json!("two")).starts_with("spec.minReplicas: "));
        assert!(with("/spec/metrics", json!({})).starts_with("spec.metrics needs at least one"));
        assert!(
            with("/spec/metrics", json!({"cpuPercent": 0}))
                .starts_with("spec.metrics.cpuPercent must be between 1 and 1000")
        );
        assert!(
            with("/spec/metrics", json!({"gpuPercent": 101}))
                .starts_with("spec.metrics.gpuPercent")
        );
        assert!(with("/spec/metrics", json!({"iops": 0.0})).starts_with("spec.metrics.iops"));
        assert!(
            with(
                "/spec/scaleDown",
                json!({"stabilizationWindowSeconds": 4000})
            )
            .starts_with("spec.scaleDown.stabilizationWindowSeconds")
        );
        assert!(
            with(
                "/spec/scaleDown",
                json!({"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]})
            )
            .starts_with("spec.scaleDown.policies[0].value")
        );
        assert!(
            with(
                "/spec/scaleDown",
                json!({"policies": [{"type": "Nodes", "value": 1, "periodSeconds": 15}]})
            )
            .starts_with("spec.scaleDown.policies[0].type: ")
        );
        assert_eq!(
            with("/kind", json!("Pod")),
            "kind must be Autoscaler, got \"Pod\""
        );
        assert!(with("/apiVersion", json!("v1")).starts_with("apiVersion must be"));
        assert!(with("/metadata", json!({"name": "mine"})).starts_with("metadata.name"));
        assert!(with("/metadata", json!({"namespace": "A_B"})).starts_with("metadata.namespace"));
        for field in ["metricWindowSeconds", "metricResolutionSeconds"] {
            let mut v = base();
            v["spec"][field] = json!(0);
            assert_eq!(
                refused(v),
                format!("spec.{field} must be between 1 and 300, got 0")
            );
            let mut v = base();
            v["spec"][field] = json!(301);
            assert_eq!(
                refused(v),
                format!("spec.{field} must be between 1 and 300, got 301")
            );
            let mut v = base();
            v["spec"][field] = json!(-1);
            assert!(refused(v).starts_with(&format!("spec.{field}: ")));
        }
        let mut v = base();
        v["spec"].as_object_mut().unwrap().remove("metrics");
        assert!(refused(v).starts_with("spec.metrics needs at least one target"));
        // HPA-style metrics alone are enough; one aistor cannot measure is refused by name.
        let mut v = base();
        v["spec"].as_object_mut().unwrap().remove("metrics");
        v["spec"]["hpa"] = json!({"metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]});
        assert!(parse(&v).is_ok());
        v["spec"]["hpa"]["metrics"][0]["type"] = json!("External");
        assert!(refused(v).starts_with("spec.hpa.metrics[0]: type \"External\""));
        let mut v = base();
        v["spec"]["workloadRef"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        assert_eq!(refused(v), "spec.workloadRef.name is required");
        let mut v = base();
        v.as_object_mut().unwrap().remove("spec");
        assert_eq!(refused(v), "spec is required");
    }
}
