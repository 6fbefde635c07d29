//! [`PodFacts`] from a Kubernetes `Pod` object: what the API server returns on a
//! cluster, and what the local runtime shows for its pods in the same shape. One
//! reading for both, so the autoscaler treats their pods alike.

use super::condition::ConditionStatus;
use super::pods::{PodFacts, PodPhase, ReadyCondition};
use crate::quantity;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

fn unix_nanos(t: &Timestamp) -> u64 {
    u64::try_from(t.as_nanosecond()).unwrap_or(0)
}

fn phase(s: Option<&str>) -> PodPhase {
    match s {
        Some("Pending") => PodPhase::Pending,
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        _ => PodPhase::Unknown,
    }
}

/// The sum over the pod's containers of one request, in thousandths of its unit;
/// absent when any container has none (as the HPA's `calculatePodRequests`) or a
/// quantity cannot be read.
fn request_sum(pod: &Pod, resource: &str, milli: impl Fn(&str) -> Option<i64>) -> Option<i64> {
    let containers = &pod.spec.as_ref()?.containers;
    if containers.is_empty() {
        return None;
    }
    containers.iter().try_fold(0i64, |total, c| {
        let q = c.resources.as_ref()?.requests.as_ref()?.get(resource)?;
        total.checked_add(milli(&q.0)?)
    })
}

/// What the autoscaler needs to know of `pod`.
pub fn pod_facts(pod: &Pod) -> PodFacts {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| ReadyCondition {
            status: match c.status.as_str() {
                "True" => ConditionStatus::True,
                "False" => ConditionStatus::False,
                _ => ConditionStatus::Unknown,
            },
            last_transition_unix_nanos: c
                .last_transition_time
                .as_ref()
                .map_or(0, |t| unix_nanos(&t.0)),
        });
    PodFacts {
        name: pod.metadata.name.as_deref().unwrap_or("").into(),
        phase: phase(status.and_then(|s| s.phase.as_deref())),
        ready,
        start_unix_nanos: status
            .and_then(|s| s.start_time.as_ref())
            .map(|t| unix_nanos(&t.0)),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        cpu_request_milli: request_sum(pod, "cpu", |q| {
            quantity::cpu_millicores(q).map(|m| m.ceil() as i64)
        }),
        memory_request_milli: request_sum(pod, "memory", |q| {
            quantity::bytes(q).and_then(|b| i64::try_from(b).ok()?.checked_mul(1000))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SEC: u64 = 1_000_000_000;

    fn parse(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("a valid Pod")
    }

    #[test]
    fn a_running_ready_pod_with_requests() {
        let pod = parse(json!({
            "metadata": {"name": "web-1"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
            ]},
            "status": {
                "phase": "Running",
                "startTime": "1970-01-01T00:16:40Z",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "1970-01-01T00:00:01Z"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": "1970-01-01T00:16:50Z"},
                ],
            },
        }));
        let f = pod_facts(&pod);
        assert_eq!(&*f.name, "web-1");
        assert_eq!(f.phase, PodPhase::Running);
        assert_eq!(f.start_unix_nanos, Some(1000 * SEC));
        assert_eq!(
            f.ready,
            Some(ReadyCondition {
                status: ConditionStatus::True,
                last_transition_unix_nanos: 1010 * SEC,
            })
        );
        assert!(!f.deleting);
        assert_eq!(f.cpu_request_milli, Some(1250));
        assert_eq!(
            f.memory_request_milli,
            Some((64 + 1024) * 1024 * 1024 * 1000)
        );
    }

    #[test]
    fn a_container_without_a_request_leaves_the_pods_total_absent() {
        let pod = parse(json!({
            "metadata": {"name": "p", "deletionTimestamp": "1970-01-01T00:00:09Z"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "100m", "memory": "1Mi"}}},
            ]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "Ready", "status": "False"},
            ]},
        }));
        let f = pod_facts(&pod);
        assert_eq!(f.phase, PodPhase::Pending);
        assert!(f.deleting);
        assert_eq!(f.cpu_request_milli, Some(350));
        assert_eq!(f.memory_request_milli, None);
        assert_eq!(f.start_unix_nanos, None);
        assert_eq!(
            f.ready,
            Some(ReadyCondition {
                status: ConditionStatus::False,
                last_transition_unix_nanos: 0,
            })
        );
        let pod = parse(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
        }));
        let f = pod_facts(&pod);
        assert_eq!((f.cpu_request_milli, f.memory_request_milli), (None, None));
        assert_eq!((f.phase, f.ready), (PodPhase::Unknown, None));
    }

    #[test]
    fn phases_and_condition_statuses_are_read_as_written() {
        for (s, p) in [
            ("Pending", PodPhase::Pending),
            ("Running", PodPhase::Running),
            ("Succeeded", PodPhase::Succeeded),
            ("Failed", PodPhase::Failed),
            ("Evicted", PodPhase::Unknown),
        ] {
            assert_eq!(phase(Some(s)), p);
        }
        assert_eq!(phase(None), PodPhase::Unknown);
        let pod = parse(json!({
            "metadata": {"name": "p"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
        }));
        assert_eq!(
            pod_facts(&pod).ready.map(|r| r.status),
            Some(ConditionStatus::Unknown)
        );
        // No spec, no containers: no request.
        assert_eq!(pod_facts(&pod).cpu_request_milli, None);
        let empty = parse(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}));
        assert_eq!(pod_facts(&empty).cpu_request_milli, None);
    }

    #[test]
    fn unreadable_or_overflowing_quantities_are_absent_not_zero() {
        let pod = parse(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "lots", "memory": "8Ei"}}},
            ]},
        }));
        let f = pod_facts(&pod);
        assert_eq!(f.cpu_request_milli, None);
        // 8 EiB in thousandths of a byte does not fit in i64.
        assert_eq!(f.memory_request_milli, None);
        // CPU below a millicore rounds up, as MilliValue does.
        let pod = parse(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "1500u"}}},
            ]},
        }));
        assert_eq!(pod_facts(&pod).cpu_request_milli, Some(2));
    }
}
