//! The REST API's request, as the system aistor replaces takes it (seed 004, plus
//! seed 000's `scale_check_interval`), read into an `Autoscaler` spec. Every
//! mistake is named by its field; unknown fields are kept so the API can warn.

use crate::k8s::crd::{
    AutoscalerMetrics, AutoscalerSpec, ScalingPolicy, ScalingPolicyType, ScalingRules,
    WorkloadTarget,
};
use aistor_core::manifest::{is_dns_label, is_dns_subdomain};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The sync period when the request names none (the HPA's and the original's).
pub const DEFAULT_SYNC_SECONDS: u32 = 15;
/// The HPA's bound on a stabilisation window.
pub const MAX_WINDOW_SECONDS: i64 = 3600;
/// Most replicas an autoscaler may ask for (the API's int32).
pub const MAX_REPLICAS: i64 = i32::MAX as i64;

/// How fast to scale one way (the REST API's OpenAPI document describes it from here).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = AutoscalerScalingPolicy)]
pub(crate) struct Policy {
    /// Seconds of recommendations to look back on before scaling this way.
    #[schema(minimum = 0, maximum = 3600)]
    stabilization_window_seconds: Option<i64>,
    /// At most this many replicas per sync (absent or 0: no limit).
    #[schema(minimum = 0, maximum = 2147483647)]
    max_scale_change: Option<i64>,
    /// Accepted and unused, as in the original.
    #[allow(dead_code)]
    select_policy: Option<Value>,
    /// Unknown fields are accepted and named in a `Warning` header.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

/// `POST /api/v1/autoscaling`: the workload, its bounds and at least one target (a
/// target of 0 is no target). Unknown fields are accepted and named in a `Warning`
/// header.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = AutoscalerRequest)]
pub(crate) struct Request {
    /// The workload's name (a DNS subdomain).
    #[schema(
        max_length = 253,
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    )]
    workload_name: String,
    /// The workload's namespace (a DNS label).
    #[schema(max_length = 63, pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    workload_namespace: String,
    /// `Deployment`, `StatefulSet` or `ReplicaSet`, in any case.
    #[schema(example = "Deployment")]
    workload_type: String,
    #[schema(minimum = 1, maximum = 2147483647)]
    min_replicas: i64,
    /// At least `min_replicas`.
    #[schema(minimum = 1, maximum = 2147483647)]
    max_replicas: i64,
    #[schema(minimum = 0, maximum = 1000)]
    target_cpu_percent: Option<i64>,
    #[schema(minimum = 0, maximum = 1000)]
    target_memory_percent: Option<i64>,
    #[schema(minimum = 0, maximum = 100)]
    target_gpu_percent: Option<i64>,
    #[schema(minimum = 0)]
    target_storage_read_throughput_mbps: Option<f64>,
    #[schema(minimum = 0)]
    target_storage_write_throughput_mbps: Option<f64>,
    #[schema(minimum = 0)]
    target_storage_iops: Option<f64>,
    scale_up_policy: Option<Policy>,
    scale_down_policy: Option<Policy>,
    /// Seconds between syncs (absent or 0: 15).
    #[schema(minimum = 0, maximum = 3600)]
    scale_check_interval: Option<i64>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

/// Why a request was refused: `error` is the summary (`Invalid request format`,
/// `Validation failed`), `details` names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub error: &'static str,
    pub details: String,
}

fn invalid(details: String) -> RequestError {
    RequestError {
        error: "Validation failed",
        details,
    }
}

/// A request read: the namespace, the spec, and the fields that were not understood.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub namespace: String,
    pub spec: AutoscalerSpec,
    pub unknown_fields: Vec<String>,
}

/// `Deployment`, `StatefulSet` or `ReplicaSet`, in any case.
pub fn workload_kind(t: &str) -> Option<&'static str> {
    match t.to_ascii_lowercase().as_str() {
        "deployment" => Some("Deployment"),
        "statefulset" => Some("StatefulSet"),
        "replicaset" => Some("ReplicaSet"),
        _ => None,
    }
}

/// A percentage target: absent or 0 is "not set" (the original's omitempty), below 0
/// is an error.
fn percent(field: &str, v: Option<i64>, max: i64) -> Result<Option<u32>, RequestError> {
    match v {
        None | Some(0) => Ok(None),
        Some(p) if (1..=max).contains(&p) => Ok(Some(p as u32)),
        Some(p) => Err(invalid(format!(
            "{field} must be between 1 and {max}, got {p}"
        ))),
    }
}

fn positive(field: &str, v: Option<f64>) -> Result<Option<f64>, RequestError> {
    match v {
        None => Ok(None),
        Some(0.0) => Ok(None),
        Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
        Some(x) => Err(invalid(format!(
            "{field} must be a positive number, got {x}"
        ))),
    }
}

fn rules(
    field: &str,
    policy: Option<Policy>,
    period_seconds: u32,
    unknown: &mut Vec<String>,
) -> Result<Option<ScalingRules>, RequestError> {
    let Some(p) = policy else {
        return Ok(None);
    };
    unknown.extend(p.unknown.keys().map(|k| format!("{field}.{k}")));
    let window = match p.stabilization_window_seconds {
        None => None,
        Some(w) if (0..=MAX_WINDOW_SECONDS).contains(&w) => Some(w as u32),
        Some(w) => {
            return Err(invalid(format!(
                "{field}.stabilization_window_seconds must be between 0 and {MAX_WINDOW_SECONDS}, got {w}"
            )));
        }
    };
    let policies = match p.max_scale_change {
        None | Some(0) => Vec::new(),
        Some(n) if (1..=MAX_REPLICAS).contains(&n) => vec![ScalingPolicy {
            type_: ScalingPolicyType::Pods,
            value: n as i32,
            // "per scaling operation": one operation per sync.
            period_seconds: period_seconds as i32,
        }],
        Some(n) => {
            return Err(invalid(format!(
                "{field}.max_scale_change must be at least 1, got {n}"
            )));
        }
    };
    Ok(Some(ScalingRules {
        stabilization_window_seconds: window,
        select_policy: None,
        policies,
    }))
}

/// Reads a request body.
pub fn parse(body: &[u8]) -> Result<Parsed, RequestError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let r: Request = serde_path_to_error::deserialize(de).map_err(|e| RequestError {
        error: "Invalid request format",
        details: if e.path().to_string() == "." {
            e.inner().to_string()
        } else {
            format!("{}: {}", e.path(), e.inner())
        },
    })?;
    let mut unknown: Vec<String> = r.unknown.keys().cloned().collect();
    if !is_dns_subdomain(&r.workload_name) {
        return Err(invalid(format!(
            "workload_name {:?} is not a valid object name (lower-case letters, digits, '-' and '.', at most 253)",
            r.workload_name
        )));
    }
    if !is_dns_label(&r.workload_namespace) {
        return Err(invalid(format!(
            "workload_namespace {:?} is not a valid namespace (lower-case letters, digits and '-', at most 63)",
            r.workload_namespace
        )));
    }
    let kind = workload_kind(&r.workload_type).ok_or_else(|| {
        invalid(format!(
            "workload_type {:?} must be Deployment, StatefulSet or ReplicaSet",
            r.workload_type
        ))
    })?;
    if !(1..=MAX_REPLICAS).contains(&r.min_replicas) {
        return Err(invalid(format!(
            "min_replicas must be at least 1, got {}",
            r.min_replicas
        )));
    }
    if r.max_replicas < r.min_replicas || r.max_replicas > MAX_REPLICAS {
        return Err(invalid(format!(
            "max_replicas must be at least min_replicas ({}) and at most {MAX_REPLICAS}, got {}",
            r.min_replicas, r.max_replicas
        )));
    }
    let sync = match r.scale_check_interval {
        None | Some(0) => DEFAULT_SYNC_SECONDS,
        Some(s) if (1..=3600).contains(&s) => s as u32,
        Some(s) => {
            return Err(invalid(format!(
                "scale_check_interval must be between 1 and 3600 seconds, got {s}"
            )));
        }
    };
    let metrics = AutoscalerMetrics {
        cpu_percent: percent("target_cpu_percent", r.target_cpu_percent, 1000)?,
        memory_percent: percent("target_memory_percent", r.target_memory_percent, 1000)?,
        gpu_percent: percent("target_gpu_percent", r.target_gpu_percent, 100)?,
        io_read_megabytes_per_second: positive(
            "target_storage_read_throughput_mbps",
            r.target_storage_read_throughput_mbps,
        )?,
        io_write_megabytes_per_second: positive(
            "target_storage_write_throughput_mbps",
            r.target_storage_write_throughput_mbps,
        )?,
        iops: positive("target_storage_iops", r.target_storage_iops)?,
    };
    if metrics == AutoscalerMetrics::default() {
        return Err(invalid(
            "at least one target is needed: target_cpu_percent, target_memory_percent, \
             target_gpu_percent, target_storage_read_throughput_mbps, \
             target_storage_write_throughput_mbps or target_storage_iops"
                .into(),
        ));
    }
    let scale_up = rules("scale_up_policy", r.scale_up_policy, sync, &mut unknown)?;
    let scale_down = rules("scale_down_policy", r.scale_down_policy, sync, &mut unknown)?;
    Ok(Parsed {
        namespace: r.workload_namespace,
        spec: AutoscalerSpec {
            workload_ref: WorkloadTarget {
                kind: kind.to_owned(),
                name: r.workload_name,
            },
            min_replicas: r.min_replicas as i32,
            max_replicas: r.max_replicas as i32,
            metrics,
            scale_up,
            scale_down,
            sync_period_seconds: Some(sync),
            metric_window_seconds: None,
            metric_resolution_seconds: None,
            hpa: None,
        },
        unknown_fields: unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: Value) -> Result<Parsed, RequestError> {
        parse(&serde_json::to_vec(&v).unwrap())
    }

    fn details(v: Value) -> String {
        let e = parse_json(v).expect_err("refused");
        e.details
    }

    fn base() -> Value {
        json!({
            "workload_name": "web", "workload_namespace": "default",
            "workload_type": "Deployment", "min_replicas": 1, "max_replicas": 5,
            "target_cpu_percent": 70,
        })
    }

    #[test]
    fn the_seed_004_request_reads_into_a_spec() {
        let p = parse_json(json!({
            "workload_name": "nginx-deployment",
            "workload_namespace": "default",
            "workload_type": "Deployment",
            "min_replicas": 2,
            "max_replicas": 10,
            "target_cpu_percent": 70,
            "target_memory_percent": 80,
            "target_gpu_percent": 75,
            "target_storage_read_throughput_mbps": 500,
            "target_storage_write_throughput_mbps": 200,
            "target_storage_iops": 3000,
            "scale_up_policy": {"stabilization_window_seconds": 60, "max_scale_change": 3},
            "scale_down_policy": {"stabilization_window_seconds": 300, "max_scale_change": 2}
        }))
        .unwrap();
        assert_eq!(p.namespace, "default");
        assert!(p.unknown_fields.is_empty());
        let s = p.spec;
        assert_eq!(s.workload_ref.kind, "Deployment");
        assert_eq!(s.workload_ref.name, "nginx-deployment");
        assert_eq!((s.min_replicas, s.max_replicas), (2, 10));
        assert_eq!(
            s.metrics,
            AutoscalerMetrics {
                cpu_percent: Some(70),
                memory_percent: Some(80),
                gpu_percent: Some(75),
                io_read_megabytes_per_second: Some(500.0),
                io_write_megabytes_per_second: Some(200.0),
                iops: Some(3000.0),
            }
        );
        let up = s.scale_up.unwrap();
        assert_eq!(up.stabilization_window_seconds, Some(60));
        assert_eq!(
            up.policies,
            [ScalingPolicy {
                type_: ScalingPolicyType::Pods,
                value: 3,
                period_seconds: 15
            }]
        );
        let down = s.scale_down.unwrap();
        assert_eq!(down.stabilization_window_seconds, Some(300));
        assert_eq!(down.policies[0].value, 2);
        assert_eq!(s.sync_period_seconds, Some(15));
    }

    #[test]
    fn the_seed_000_request_takes_any_case_and_its_interval() {
        let p = parse_json(json!({
            "workload_name": "gpu-test-workload",
            "workload_namespace": "default",
            "workload_type": "deployment",
            "min_replicas": 1,
            "max_replicas": 5,
            "target_cpu_percent": 70,
            "target_memory_percent": 80,
            "target_gpu_percent": 60,
            "scale_check_interval": 30
        }))
        .unwrap();
        assert_eq!(p.spec.workload_ref.kind, "Deployment");
        assert_eq!(p.spec.sync_period_seconds, Some(30));
        assert_eq!(p.spec.scale_up, None);
        for (t, k) in [
            ("STATEFULSET", "StatefulSet"),
            ("replicaSet", "ReplicaSet"),
            ("Deployment", "Deployment"),
        ] {
            assert_eq!(workload_kind(t), Some(k));
        }
        assert_eq!(workload_kind("Job"), None);
    }

    #[test]
    fn a_policys_max_change_is_per_sync_period() {
        let mut v = base();
        v["scale_check_interval"] = json!(30);
        v["scale_up_policy"] = json!({"max_scale_change": 2});
        let up = parse_json(v).unwrap().spec.scale_up.unwrap();
        assert_eq!(up.policies[0].period_seconds, 30);
        assert_eq!(up.stabilization_window_seconds, None);
        let mut v = base();
        v["scale_down_policy"] = json!({"stabilization_window_seconds": 0});
        let down = parse_json(v).unwrap().spec.scale_down.unwrap();
        assert_eq!(down.stabilization_window_seconds, Some(0));
        assert!(
            down.policies.is_empty(),
            "no max: the HPA's default policies"
        );
    }

    #[test]
    fn unknown_fields_are_named_not_refused() {
        let mut v = base();
        v["colour"] = json!("blue");
        v["scale_up_policy"] = json!({"max_scale_change": 1, "speed": 3, "select_policy": "Max"});
        let p = parse_json(v).unwrap();
        assert_eq!(p.unknown_fields, ["colour", "scale_up_policy.speed"]);
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let e = parse(b"{").unwrap_err();
        assert_eq!(e.error, "Invalid request format");
        let mut v = base();
        v.as_object_mut().unwrap().remove("workload_name");
        let e = parse_json(v).unwrap_err();
        assert_eq!(e.error, "Invalid request format");
        assert!(e.details.contains("workload_name"), "{}", e.details);
        let mut v = base();
        v["min_replicas"] = json!("two");
        let e = parse_json(v).unwrap_err();
        assert!(e.details.starts_with("min_replicas:"), "{}", e.details);
        let mut v = base();
        v["scale_down_policy"] = json!({"max_scale_change": "x"});
        assert!(details(v).starts_with("scale_down_policy.max_scale_change:"));
    }

    #[test]
    fn validation_names_each_field() {
        let with = |field: &str, value: Value| {
            let mut v = base();
            v[field] = value;
            details(v)
        };
        assert_eq!(
            with("min_replicas", json!(0)),
            "min_replicas must be at least 1, got 0"
        );
        assert!(with("max_replicas", json!(0)).starts_with("max_replicas must be at least"));
        assert!(with("max_replicas", json!(1i64 << 40)).starts_with("max_replicas"));
        assert!(with("workload_type", json!("Job")).starts_with("workload_type \"Job\""));
        assert!(with("workload_name", json!("Web_1")).starts_with("workload_name"));
        assert!(with("workload_namespace", json!("a.b")).starts_with("workload_namespace"));
        assert!(with("target_cpu_percent", json!(-5)).starts_with("target_cpu_percent"));
        assert!(with("target_gpu_percent", json!(101)).starts_with("target_gpu_percent"));
        assert!(with("target_storage_iops", json!(-1.0)).starts_with("target_storage_iops"));
        assert!(with("scale_check_interval", json!(-1)).starts_with("scale_check_interval"));
        assert!(
            with(
                "scale_up_policy",
                json!({"stabilization_window_seconds": 4000})
            )
            .starts_with("scale_up_policy.stabilization_window_seconds")
        );
        assert!(
            with("scale_down_policy", json!({"max_scale_change": -2}))
                .starts_with("scale_down_policy.max_scale_change")
        );
        let mut v = base();
        v["target_cpu_percent"] = json!(0);
        assert!(details(v).starts_with("at least one target"));
        // Every accepted percentage and bound.
        assert!(parse_json(base()).is_ok());
        let mut v = base();
        v["target_memory_percent"] = json!(1000);
        v["target_gpu_percent"] = json!(100);
        v["min_replicas"] = json!(5);
        assert!(parse_json(v).is_ok(), "max == min is allowed");
    }
}
