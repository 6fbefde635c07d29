//! Between the stored `Autoscaler` and the decision core: its spec as the core's
//! [`Spec`], a [`Decision`] as its status, and the status's history back into the
//! core's [`History`].

use crate::k8s::crd::{
    AutoscalerMetricValues, AutoscalerSpec, AutoscalerStatus, DecisionRecord, MetricStatus,
    ScalingHistory, ScalingPolicyType, ScalingRules as CrdRules, SelectPolicy as CrdSelect,
};
use crate::workloads::rfc3339;
use aistor_core::autoscale::{
    Behavior, Condition, ConditionStatus, ConditionType, Current, Decision, Feed, History,
    MetricError, MetricKind, MetricSpec, Policy, PolicyKind, Reason, Recommendation, ScaleEvent,
    ScalingRules, SelectPolicy, Spec, Target, milli,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition as MetaCondition, Time};
use std::time::Duration;

/// Storage throughput targets are in MB/s: 10^6 bytes per second.
pub const BYTES_PER_MB: f64 = 1e6;
/// Decisions kept in the status.
pub const KEEP_DECISIONS: usize = 10;

fn rules(r: &CrdRules) -> ScalingRules {
    ScalingRules {
        stabilization_window: r
            .stabilization_window_seconds
            .map(|s| Duration::from_secs(s.into())),
        select_policy: r.select_policy.map(|p| match p {
            CrdSelect::Max => SelectPolicy::Max,
            CrdSelect::Min => SelectPolicy::Min,
            CrdSelect::Disabled => SelectPolicy::Disabled,
        }),
        policies: (!r.policies.is_empty()).then(|| {
            r.policies
                .iter()
                .map(|p| Policy {
                    kind: match p.type_ {
                        ScalingPolicyType::Pods => PolicyKind::Pods,
                        ScalingPolicyType::Percent => PolicyKind::Percent,
                    },
                    value: p.value.max(0) as u32,
                    period: Duration::from_secs(p.period_seconds.max(1) as u64),
                })
                .collect()
        }),
        tolerance: None,
    }
}

/// The metrics in the order their figures are shown, with each one's target in
/// the spec's units and as the core's target.
pub fn metric_specs(spec: &AutoscalerSpec) -> Vec<(MetricSpec, f64)> {
    let m = &spec.metrics;
    let mut out = Vec::new();
    if let Some(p) = m.cpu_percent {
        out.push((
            MetricSpec {
                kind: MetricKind::Cpu,
                target: Target::Utilization(p),
            },
            f64::from(p),
        ));
    }
    if let Some(p) = m.memory_percent {
        out.push((
            MetricSpec {
                kind: MetricKind::Memory,
                target: Target::Utilization(p),
            },
            f64::from(p),
        ));
    }
    if let Some(p) = m.gpu_percent {
        out.push((
            MetricSpec {
                kind: MetricKind::Gpu,
                target: Target::AverageValue(milli(f64::from(p))),
            },
            f64::from(p),
        ));
    }
    let per_pod = |kind, value: f64, scale: f64| {
        (
            MetricSpec {
                kind,
                target: Target::AverageValue(milli(value * scale)),
            },
            value,
        )
    };
    if let Some(v) = m.io_read_megabytes_per_second {
        out.push(per_pod(
            MetricKind::StorageReadBytesPerSecond,
            v,
            BYTES_PER_MB,
        ));
    }
    if let Some(v) = m.io_write_megabytes_per_second {
        out.push(per_pod(
            MetricKind::StorageWriteBytesPerSecond,
            v,
            BYTES_PER_MB,
        ));
    }
    if let Some(v) = m.iops {
        out.push(per_pod(MetricKind::StorageIops, v, 1.0));
    }
    out
}

/// One metric as people read it: the core's spec, the target in the unit it was
/// written in, that unit, and how many of the core's units make one of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub spec: MetricSpec,
    pub target: f64,
    pub unit: &'static str,
    /// The core's value (in its unit: cores, bytes, percent, bytes/s, ops/s) divided
    /// by this is the figure shown.
    pub per: f64,
    /// From the original API's fields (`spec.metrics`), whose figures the REST API's
    /// `current_*` fields show.
    pub seed: bool,
}

fn seed_unit(kind: MetricKind) -> (&'static str, f64) {
    match kind {
        MetricKind::StorageReadBytesPerSecond | MetricKind::StorageWriteBytesPerSecond => {
            ("MB/s", BYTES_PER_MB)
        }
        MetricKind::StorageIops => ("", 1.0),
        _ => ("%", 1.0),
    }
}

/// Every metric of the spec: `spec.metrics` first, then `spec.hpa.metrics`; an HPA
/// metric aistor cannot measure is an error naming it.
pub fn all_metrics(spec: &AutoscalerSpec) -> Result<Vec<Shown>, String> {
    let mut out: Vec<Shown> = metric_specs(spec)
        .into_iter()
        .map(|(m, target)| {
            let (unit, per) = seed_unit(m.kind);
            Shown {
                spec: m,
                target,
                unit,
                per,
                seed: true,
            }
        })
        .collect();
    let hpa = spec.hpa.as_ref().map_or(&[][..], |h| h.metrics.as_slice());
    for (i, m) in hpa.iter().enumerate() {
        out.push(hpa_metric(m).map_err(|why| format!("spec.hpa.metrics[{i}]: {why}"))?);
    }
    Ok(out)
}

fn quantity(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> Result<f64, String> {
    aistor_core::quantity::number(&q.0)
        .filter(|v| *v > 0.0)
        .ok_or_else(|| format!("{:?} is not a positive quantity", q.0))
}

/// One HPA `MetricSpec` as the core's: `Resource` cpu and memory (Utilization or
/// AverageValue), `Pods` metrics named as the agents measure them (AverageValue).
fn hpa_metric(m: &k8s_openapi::api::autoscaling::v2::MetricSpec) -> Result<Shown, String> {
    use k8s_openapi::api::autoscaling::v2::MetricTarget;
    let average = |t: &MetricTarget, kind: MetricKind, unit: &'static str, per: f64| {
        let q = t
            .average_value
            .as_ref()
            .ok_or("target.averageValue is required for type AverageValue")?;
        let v = quantity(q).map_err(|e| format!("target.averageValue {e}"))?;
        Ok::<_, String>(Shown {
            spec: MetricSpec {
                kind,
                target: Target::AverageValue(milli(v)),
            },
            target: v / per,
            unit,
            per,
            seed: false,
        })
    };
    match m.type_.as_str() {
        "Resource" => {
            let r = m
                .resource
                .as_ref()
                .ok_or("resource is required for type Resource")?;
            let kind = match r.name.as_str() {
                "cpu" => MetricKind::Cpu,
                "memory" => MetricKind::Memory,
                other => {
                    return Err(format!(
                        "resource.name {other:?}: the agents measure cpu and memory per pod"
                    ));
                }
            };
            match r.target.type_.as_str() {
                "Utilization" => {
                    let p = r
                        .target
                        .average_utilization
                        .filter(|p| *p > 0)
                        .ok_or("target.averageUtilization must be a positive percentage")?;
                    Ok(Shown {
                        spec: MetricSpec {
                            kind,
                            target: Target::Utilization(p as u32),
                        },
                        target: f64::from(p),
                        unit: "%",
                        per: 1.0,
                        seed: false,
                    })
                }
                "AverageValue" if kind == MetricKind::Cpu => average(&r.target, kind, "m", 1e-3),
                "AverageValue" => average(&r.target, kind, "B", 1.0),
                other => Err(format!(
                    "target.type {other:?}: Utilization or AverageValue for a Resource metric"
                )),
            }
        }
        "Pods" => {
            let p = m.pods.as_ref().ok_or("pods is required for type Pods")?;
            let (kind, unit) = match p.metric.name.as_str() {
                "gpu" => (MetricKind::Gpu, "%"),
                "storage-read-bytes-per-second" => (MetricKind::StorageReadBytesPerSecond, "B/s"),
                "storage-write-bytes-per-second" => (MetricKind::StorageWriteBytesPerSecond, "B/s"),
                "storage-iops" => (MetricKind::StorageIops, ""),
                other => {
                    return Err(format!(
                        "pods.metric.name {other:?}: the agents measure gpu, \
                         storage-read-bytes-per-second, storage-write-bytes-per-second and \
                         storage-iops per pod"
                    ));
                }
            };
            if p.metric.selector.is_some() {
                return Err("pods.metric.selector is not supported".into());
            }
            match p.target.type_.as_str() {
                "AverageValue" => average(&p.target, kind, unit, 1.0),
                other => Err(format!(
                    "target.type {other:?}: AverageValue for a Pods metric"
                )),
            }
        }
        other => Err(format!(
            "type {other:?}: aistor scales on what its agents measure in the pods \
             (Resource and Pods metrics)"
        )),
    }
}

fn hpa_rules(
    field: &str,
    r: &k8s_openapi::api::autoscaling::v2::HPAScalingRules,
) -> Result<ScalingRules, String> {
    let select_policy = match r.select_policy.as_deref() {
        None => None,
        Some("Max") => Some(SelectPolicy::Max),
        Some("Min") => Some(SelectPolicy::Min),
        Some("Disabled") => Some(SelectPolicy::Disabled),
        Some(other) => {
            return Err(format!(
                "{field}.selectPolicy {other:?}: Max, Min or Disabled"
            ));
        }
    };
    let window = match r.stabilization_window_seconds {
        None => None,
        Some(w) if (0..=3600).contains(&w) => Some(Duration::from_secs(w as u64)),
        Some(w) => {
            return Err(format!(
                "{field}.stabilizationWindowSeconds must be between 0 and 3600, got {w}"
            ));
        }
    };
    let policies = match &r.policies {
        None => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| {
                    let kind = match p.type_.as_str() {
                        "Pods" => PolicyKind::Pods,
                        "Percent" => PolicyKind::Percent,
                        other => {
                            return Err(format!(
                                "{field}.policies[{i}].type {other:?}: Pods or Percent"
                            ));
                        }
                    };
                    if p.value <= 0 || !(1..=1800).contains(&p.period_seconds) {
                        return Err(format!(
                            "{field}.policies[{i}]: value must be positive and periodSeconds \
                             between 1 and 1800"
                        ));
                    }
                    Ok(Policy {
                        kind,
                        value: p.value as u32,
                        period: Duration::from_secs(p.period_seconds as u64),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let tolerance = match &r.tolerance {
        None => None,
        Some(q) => Some(
            aistor_core::quantity::number(&q.0)
                .filter(|t| (0.0..1.0).contains(t))
                .ok_or_else(|| format!("{field}.tolerance {:?} must be in [0, 1)", q.0))?,
        ),
    };
    Ok(ScalingRules {
        stabilization_window: window,
        select_policy,
        policies,
        tolerance,
    })
}

/// One direction's rules: from `spec.scaleUp`/`scaleDown` or `spec.hpa.behavior`.
fn direction(
    name: &str,
    top: Option<&CrdRules>,
    hpa: Option<&k8s_openapi::api::autoscaling::v2::HPAScalingRules>,
) -> Result<Option<ScalingRules>, String> {
    match (top, hpa) {
        (Some(_), Some(_)) => Err(format!(
            "spec.{name} and spec.hpa.behavior.{name} are both set; keep one"
        )),
        (Some(r), None) => Ok(Some(rules(r))),
        (None, Some(r)) => hpa_rules(&format!("spec.hpa.behavior.{name}"), r).map(Some),
        (None, None) => Ok(None),
    }
}

/// The core's spec. The bounds are passed as written: the core reports a minimum
/// above the maximum as `InvalidSpec`.
pub fn decision_spec(spec: &AutoscalerSpec) -> Result<Spec, String> {
    let hpa = spec.hpa.as_ref().and_then(|h| h.behavior.as_ref());
    let scale_up = direction(
        "scaleUp",
        spec.scale_up.as_ref(),
        hpa.and_then(|b| b.scale_up.as_ref()),
    )?;
    let scale_down = direction(
        "scaleDown",
        spec.scale_down.as_ref(),
        hpa.and_then(|b| b.scale_down.as_ref()),
    )?;
    let behavior = (scale_up.is_some() || scale_down.is_some()).then_some(Behavior {
        scale_up,
        scale_down,
    });
    Ok(Spec {
        min_replicas: Some(spec.min_replicas.max(0) as u32),
        max_replicas: spec.max_replicas.max(0) as u32,
        metrics: all_metrics(spec)?.into_iter().map(|m| m.spec).collect(),
        behavior,
    })
}

/// The span of each pod's mean when the spec names none.
pub const DEFAULT_METRIC_WINDOW_SECONDS: u32 = 30;
/// The longest `metricWindowSeconds` and `metricResolutionSeconds`.
pub const MAX_METRIC_FEED_SECONDS: u32 = 300;

/// How a sync is fed, given how much of each pod's samples the view keeps: the
/// spec's window (by default 30 s, or all that is kept when that is less) and
/// resolution. Err says why there is no value at all: the spec asks for more than
/// is kept (the window, plus one resolution period since the window ends up to that
/// long before the newest sample); it is never read over a shorter window.
pub fn feed(spec: &AutoscalerSpec, kept: Duration) -> Result<Feed, String> {
    let resolution = spec
        .metric_resolution_seconds
        .filter(|&r| r > 0)
        .map(|r| Duration::from_secs(r.into()));
    let window = match spec.metric_window_seconds {
        None if resolution.is_none() => {
            return Ok(Feed::every_sample(
                Duration::from_secs(DEFAULT_METRIC_WINDOW_SECONDS.into()).min(kept),
            ));
        }
        None => Duration::from_secs(DEFAULT_METRIC_WINDOW_SECONDS.into()),
        Some(w) => Duration::from_secs(w.into()),
    };
    let needed = window + resolution.unwrap_or_default();
    if needed > kept {
        let default = if spec.metric_window_seconds.is_none() {
            "the default "
        } else {
            ""
        };
        let asked = match resolution {
            None => format!("metricWindowSeconds {}", window.as_secs()),
            Some(r) => format!(
                "{default}metricWindowSeconds {} with metricResolutionSeconds {}",
                window.as_secs(),
                r.as_secs()
            ),
        };
        return Err(format!(
            "{asked} needs {} s of samples per pod; this coordinator keeps {} s \
             (its pod window, --pod-window)",
            needed.as_secs(),
            kept.as_secs()
        ));
    }
    Ok(Feed { window, resolution })
}

/// Six significant digits: more than any figure here is measured to, and no
/// binary-fraction noise (`6.605100000000001e-5`) in what people read.
fn significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(5 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// A metric's current value in the unit its target was written in (`per` of the
/// core's units each).
fn current_value(current: Current, per: f64) -> f64 {
    significant(match current {
        Current::Utilization { percent, .. } => f64::from(percent),
        Current::AverageValue { milli } => milli as f64 / 1000.0 / per,
    })
}

fn time(unix_nanos: u64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(unix_nanos)).unwrap_or_default())
}

fn conditions(list: &[Condition]) -> Vec<MetaCondition> {
    list.iter()
        .map(|c| MetaCondition {
            type_: c.kind.as_str().to_owned(),
            status: c.status.as_str().to_owned(),
            reason: c.reason.as_str().to_owned(),
            message: c.message.clone(),
            last_transition_time: time(c.last_transition_unix_nanos),
            observed_generation: None,
        })
        .collect()
}

/// The core's conditions back from the status (for the next sync).
pub fn core_conditions(list: &[MetaCondition]) -> Vec<Condition> {
    list.iter()
        .filter_map(|c| {
            let kind = match c.type_.as_str() {
                "AbleToScale" => ConditionType::AbleToScale,
                "ScalingActive" => ConditionType::ScalingActive,
                "ScalingLimited" => ConditionType::ScalingLimited,
                _ => return None,
            };
            let status = match c.status.as_str() {
                "True" => ConditionStatus::True,
                "False" => ConditionStatus::False,
                _ => ConditionStatus::Unknown,
            };
            Some(Condition {
                kind,
                status,
                reason: Reason::parse(&c.reason)?,
                message: c.message.clone(),
                last_transition_unix_nanos: u64::try_from(c.last_transition_time.0.as_nanosecond())
                    .unwrap_or(0),
            })
        })
        .collect()
}

pub fn history(h: Option<&ScalingHistory>) -> History {
    let Some(h) = h else {
        return History::default();
    };
    let events = |list: &[(u32, u64)]| {
        list.iter()
            .map(|&(change, at)| ScaleEvent {
                change,
                at_unix_nanos: at,
                outdated: false,
            })
            .collect()
    };
    History {
        seen: true,
        recommendations: h
            .recommendations
            .iter()
            .map(|&(replicas, at)| Recommendation {
                replicas,
                at_unix_nanos: at,
            })
            .collect(),
        scale_up_events: events(&h.scale_up_events),
        scale_down_events: events(&h.scale_down_events),
    }
}

fn stored_history(h: &History) -> Option<ScalingHistory> {
    let events = |list: &[ScaleEvent]| {
        list.iter()
            .filter(|e| !e.outdated)
            .map(|e| (e.change, e.at_unix_nanos))
            .collect()
    };
    h.seen.then(|| ScalingHistory {
        recommendations: h
            .recommendations
            .iter()
            .map(|r| (r.replicas, r.at_unix_nanos))
            .collect(),
        scale_up_events: events(&h.scale_up_events),
        scale_down_events: events(&h.scale_down_events),
    })
}

/// Missing pods and why, pods with the same reason together:
/// `web-a, web-b: the pod uses no GPU`.
fn missing_message(reasons: &[(Box<str>, Box<str>)]) -> String {
    let mut grouped: Vec<(&str, Vec<&str>)> = Vec::new();
    for (pod, why) in reasons {
        match grouped.iter_mut().find(|(w, _)| *w == &**why) {
            Some((_, pods)) => pods.push(pod),
            None => grouped.push((why, vec![pod])),
        }
    }
    grouped
        .iter()
        .map(|(why, pods)| format!("{}: {why}", pods.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The HPA's event wording for a rescale: which metric drove it, and the rule
/// that bounded it, if one did.
pub fn rescale_message(d: &Decision) -> String {
    let driver = d.proposal.map(|p| d.metrics[p.metric].spec.kind.name());
    let mut why = match driver {
        Some(kind) if d.desired_replicas > d.current_replicas => format!("{kind} above target"),
        Some(kind) => format!("all metrics below target ({kind} proposed the most)"),
        None => "the replica bounds".to_owned(),
    };
    let bounded = d.proposal.is_none_or(|p| p.replicas != d.desired_replicas);
    if let Some(rule) = d.limited_by().filter(|_| bounded) {
        why.push_str(&format!(" (limited by {})", rule.as_str()));
    }
    format!("New size: {}; reason: {why}", d.desired_replicas)
}

/// The status after `d`: replicas, figures, conditions, the decision record and
/// the history. Counters and the last scale time move only when `scaled`.
pub fn apply_decision(
    status: &mut AutoscalerStatus,
    spec: &AutoscalerSpec,
    d: &Decision,
    scaled: bool,
) {
    let targets = all_metrics(spec).unwrap_or_default();
    status.phase = Some("Active".into());
    status.message = "Autoscaler is active".into();
    status.last_sync_time = Some(time(d.now.wall_unix_nanos));
    status.current_replicas = Some(d.current_replicas as i32);
    status.desired_replicas = Some(d.desired_replicas as i32);
    status.conditions = conditions(&d.conditions);
    let mut values = AutoscalerMetricValues::default();
    status.metrics = d
        .metrics
        .iter()
        .zip(&targets)
        .map(|(m, shown)| {
            let mut s = MetricStatus {
                name: m.spec.kind.name().to_owned(),
                target: shown.target,
                unit: shown.unit.to_owned(),
                ..Default::default()
            };
            match &m.outcome {
                Ok(r) => {
                    let v = current_value(r.current, shown.per);
                    s.current = Some(v);
                    s.proposed_replicas = Some(r.proposal);
                    s.ready_pods = r.pods.ready;
                    s.unready_pods = r.pods.unready;
                    s.missing_pods = r.pods.missing;
                    s.message = missing_message(&r.pods.missing_reasons);
                    let slot = match m.spec.kind {
                        MetricKind::Cpu => &mut values.cpu_percent,
                        MetricKind::Memory => &mut values.memory_percent,
                        MetricKind::Gpu => &mut values.gpu_percent,
                        MetricKind::StorageReadBytesPerSecond => {
                            &mut values.io_read_megabytes_per_second
                        }
                        MetricKind::StorageWriteBytesPerSecond => {
                            &mut values.io_write_megabytes_per_second
                        }
                        MetricKind::StorageIops => &mut values.iops,
                    };
                    if shown.seed {
                        *slot = Some(v);
                    }
                }
                Err(e) => {
                    s.message = e.to_string();
                    if let MetricError::NoReadyValues(pods) = e {
                        s.unready_pods = pods.unready;
                        s.missing_pods = pods.missing;
                        if !pods.missing_reasons.is_empty() {
                            s.message
                                .push_str(&format!(": {}", missing_message(&pods.missing_reasons)));
                        }
                    }
                }
            }
            s
        })
        .collect();
    status.current_metrics = Some(values);
    if scaled {
        status.last_scale_time = Some(time(d.now.wall_unix_nanos));
        if d.desired_replicas > d.current_replicas {
            status.scale_up_count += 1;
        } else {
            status.scale_down_count += 1;
        }
    }
    // Kept: every rescale, and every sync a rule held (so "why not" is visible).
    if scaled || d.limited_by().is_some() || d.rescale {
        let message = if scaled {
            rescale_message(d)
        } else if d.rescale {
            d.conditions
                .iter()
                .find(|c| c.kind == ConditionType::AbleToScale)
                .map_or_else(String::new, |c| c.message.clone())
        } else {
            format!(
                "held at {} by {}",
                d.desired_replicas,
                d.limited_by().map_or("", |r| r.as_str())
            )
        };
        let record = DecisionRecord {
            time: time(d.now.wall_unix_nanos),
            current_replicas: d.current_replicas,
            desired_replicas: d.desired_replicas,
            limited_by: d.limited_by().map_or("", |r| r.as_str()).to_owned(),
            message,
        };
        // A rule holding the count every sync is one record, refreshed.
        match status.last_decisions.last_mut() {
            Some(last)
                if !scaled
                    && last.limited_by == record.limited_by
                    && last.current_replicas == record.current_replicas
                    && last.desired_replicas == record.desired_replicas =>
            {
                *last = record
            }
            _ => status.last_decisions.push(record),
        }
        let excess = status.last_decisions.len().saturating_sub(KEEP_DECISIONS);
        status.last_decisions.drain(..excess);
    }
    status.history = stored_history(&d.history);
}

/// The status when the target could not be read: inactive, with the reason.
pub fn apply_unreadable(status: &mut AutoscalerStatus, error: &str, now_unix_nanos: u64) {
    let previous = core_conditions(&status.conditions);
    let list = aistor_core::autoscale::failed_get_scale(&previous, error, now_unix_nanos);
    status.conditions = conditions(&list);
    status.phase = Some("Inactive".into());
    status.message = format!("the workload cannot be scaled: {error}");
    status.last_sync_time = Some(time(now_unix_nanos));
}

/// The status of an autoscaler whose spec cannot be used: failed, with the reason.
pub fn apply_failed(status: &mut AutoscalerStatus, why: &str, now_unix_nanos: u64) {
    let mut list = core_conditions(&status.conditions);
    aistor_core::autoscale::set_condition(
        &mut list,
        ConditionType::ScalingActive,
        ConditionStatus::False,
        Reason::InvalidSpec,
        why.to_owned(),
        now_unix_nanos,
    );
    status.conditions = conditions(&list);
    status.phase = Some("Failed".into());
    status.message = format!("the spec cannot be used: {why}");
    status.last_sync_time = Some(time(now_unix_nanos));
}

/// RFC 3339 of a status time, for the REST view.
pub fn time_text(t: &Time) -> String {
    rfc3339(u64::try_from(t.0.as_nanosecond()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::crd::{AutoscalerMetrics, ScalingPolicy, WorkloadTarget};
    use aistor_core::Now;

    fn spec() -> AutoscalerSpec {
        AutoscalerSpec {
            workload_ref: WorkloadTarget {
                kind: "Deployment".into(),
                name: "web".into(),
            },
            min_replicas: 1,
            max_replicas: 5,
            metrics: AutoscalerMetrics {
                cpu_percent: Some(70),
                memory_percent: Some(80),
                gpu_percent: Some(60),
                io_read_megabytes_per_second: Some(500.0),
                io_write_megabytes_per_second: Some(0.5),
                iops: Some(3000.0),
            },
            scale_up: None,
            scale_down: Some(CrdRules {
                stabilization_window_seconds: Some(30),
                select_policy: Some(CrdSelect::Min),
                policies: vec![ScalingPolicy {
                    type_: ScalingPolicyType::Pods,
                    value: 1,
                    period_seconds: 15,
                }],
            }),
            sync_period_seconds: Some(15),
            metric_window_seconds: None,
            metric_resolution_seconds: None,
            hpa: None,
        }
    }

    #[test]
    fn every_target_becomes_a_core_metric_in_its_unit() {
        let s = decision_spec(&spec()).unwrap();
        let got: Vec<(MetricKind, Target)> = s.metrics.iter().map(|m| (m.kind, m.target)).collect();
        assert_eq!(
            got,
            [
                (MetricKind::Cpu, Target::Utilization(70)),
                (MetricKind::Memory, Target::Utilization(80)),
                (MetricKind::Gpu, Target::AverageValue(60_000)),
                (
                    MetricKind::StorageReadBytesPerSecond,
                    Target::AverageValue(500_000_000_000)
                ),
                (
                    MetricKind::StorageWriteBytesPerSecond,
                    Target::AverageValue(500_000_000)
                ),
                (MetricKind::StorageIops, Target::AverageValue(3_000_000)),
            ]
        );
        assert_eq!((s.min_replicas, s.max_replicas), (Some(1), 5));
        let b = s.behavior.unwrap();
        assert_eq!(b.scale_up, None);
        let down = b.scale_down.unwrap();
        assert_eq!(down.stabilization_window, Some(Duration::from_secs(30)));
        assert_eq!(down.select_policy, Some(SelectPolicy::Min));
        assert_eq!(
            down.policies,
            Some(vec![Policy {
                kind: PolicyKind::Pods,
                value: 1,
                period: Duration::from_secs(15)
            }])
        );
        let mut plain = spec();
        plain.scale_down = None;
        assert_eq!(
            decision_spec(&plain).unwrap().behavior,
            None,
            "HPA defaults"
        );
    }

    fn with_hpa(hpa: serde_json::Value) -> AutoscalerSpec {
        let mut s = spec();
        s.metrics = AutoscalerMetrics::default();
        s.scale_down = None;
        s.hpa = Some(serde_json::from_value(hpa).expect("an HPA-style section"));
        s
    }

    #[test]
    fn hpa_style_metrics_become_core_metrics_in_the_units_written() {
        let s = with_hpa(serde_json::json!({"metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "250m"}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "256Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "gpu"}, "target": {"type": "AverageValue", "averageValue": "60"}}},
            {"type": "Pods", "pods": {"metric": {"name": "storage-read-bytes-per-second"}, "target": {"type": "AverageValue", "averageValue": "500M"}}},
            {"type": "Pods", "pods": {"metric": {"name": "storage-iops"}, "target": {"type": "AverageValue", "averageValue": "3k"}}},
        ]}));
        let shown = all_metrics(&s).unwrap();
        let got: Vec<(MetricKind, Target, f64, &str)> = shown
            .iter()
            .map(|m| (m.spec.kind, m.spec.target, m.target, m.unit))
            .collect();
        assert_eq!(
            got,
            [
                (MetricKind::Cpu, Target::Utilization(70), 70.0, "%"),
                (MetricKind::Cpu, Target::AverageValue(250), 250.0, "m"),
                (
                    MetricKind::Memory,
                    Target::AverageValue(268_435_456_000),
                    268_435_456.0,
                    "B"
                ),
                (MetricKind::Gpu, Target::AverageValue(60_000), 60.0, "%"),
                (
                    MetricKind::StorageReadBytesPerSecond,
                    Target::AverageValue(500_000_000_000),
                    5e8,
                    "B/s"
                ),
                (
                    MetricKind::StorageIops,
                    Target::AverageValue(3_000_000),
                    3000.0,
                    ""
                ),
            ]
        );
        assert!(shown.iter().all(|m| !m.seed));
        // A CPU average value shows in millicores: 0.3 cores used is 300m.
        assert_eq!(
            current_value(Current::AverageValue { milli: 300 }, shown[1].per),
            300.0
        );
        // The original's fields come first and are marked as such.
        let mut both = s.clone();
        both.metrics.cpu_percent = Some(50);
        let all = all_metrics(&both).unwrap();
        assert_eq!((all.len(), all[0].seed, all[1].seed), (7, true, false));
        assert_eq!(decision_spec(&both).unwrap().metrics.len(), 7);
    }

    #[test]
    fn hpa_style_metrics_aistor_cannot_measure_are_refused_by_name() {
        let refused = |m: serde_json::Value| {
            decision_spec(&with_hpa(serde_json::json!({"metrics": [m]}))).unwrap_err()
        };
        let cases = [
            (
                serde_json::json!({"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": "1"}}}),
                "spec.hpa.metrics[0]: type \"External\"",
            ),
            (
                serde_json::json!({"type": "Resource", "resource": {"name": "ephemeral-storage", "target": {"type": "Utilization", "averageUtilization": 50}}}),
                "spec.hpa.metrics[0]: resource.name \"ephemeral-storage\"",
            ),
            (
                serde_json::json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Value", "value": "1"}}}),
                "spec.hpa.metrics[0]: target.type \"Value\"",
            ),
            (
                serde_json::json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}),
                "spec.hpa.metrics[0]: target.averageUtilization",
            ),
            (
                serde_json::json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue"}}}),
                "spec.hpa.metrics[0]: target.averageValue is required",
            ),
            (
                serde_json::json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "0"}}}),
                "spec.hpa.metrics[0]: target.averageValue \"0\" is not a positive quantity",
            ),
            (
                serde_json::json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1"}}}),
                "spec.hpa.metrics[0]: pods.metric.name \"qps\"",
            ),
            (
                serde_json::json!({"type": "Pods", "pods": {"metric": {"name": "gpu", "selector": {}}, "target": {"type": "AverageValue", "averageValue": "1"}}}),
                "spec.hpa.metrics[0]: pods.metric.selector",
            ),
            (
                serde_json::json!({"type": "Pods", "pods": {"metric": {"name": "gpu"}, "target": {"type": "Utilization", "averageUtilization": 5}}}),
                "spec.hpa.metrics[0]: target.type \"Utilization\"",
            ),
            (
                serde_json::json!({"type": "Resource"}),
                "spec.hpa.metrics[0]: resource is required",
            ),
            (
                serde_json::json!({"type": "Pods"}),
                "spec.hpa.metrics[0]: pods is required",
            ),
        ];
        for (m, starts) in cases {
            let e = refused(m);
            assert!(e.starts_with(starts), "{e:?} should start with {starts:?}");
        }
    }

    #[test]
    fn hpa_style_behavior_is_read_and_a_direction_is_set_once() {
        let s = with_hpa(serde_json::json!({
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                                         {"type": "Pods", "value": 4, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Disabled", "tolerance": "0.05"},
            },
        }));
        let b = decision_spec(&s).unwrap().behavior.unwrap();
        let up = b.scale_up.unwrap();
        assert_eq!(up.stabilization_window, Some(Duration::ZERO));
        assert_eq!(up.select_policy, Some(SelectPolicy::Max));
        assert_eq!(
            up.policies.unwrap(),
            [
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: Duration::from_secs(15)
                },
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period: Duration::from_secs(15)
                },
            ]
        );
        assert_eq!(up.tolerance, None);
        let down = b.scale_down.unwrap();
        assert_eq!(down.select_policy, Some(SelectPolicy::Disabled));
        assert_eq!(down.stabilization_window, Some(Duration::from_secs(300)));
        assert_eq!(down.policies, None);
        assert_eq!(down.tolerance, Some(0.05));
        // Both ways for one direction: refused, naming both.
        let mut twice = s.clone();
        twice.scale_down = spec().scale_down;
        assert_eq!(
            decision_spec(&twice).unwrap_err(),
            "spec.scaleDown and spec.hpa.behavior.scaleDown are both set; keep one"
        );
        // Each field of the rules is checked.
        let bad = |rules: serde_json::Value| {
            decision_spec(&with_hpa(serde_json::json!({
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
                "behavior": {"scaleUp": rules},
            })))
            .unwrap_err()
        };
        assert!(
            bad(serde_json::json!({"selectPolicy": "Sometimes"}))
                .starts_with("spec.hpa.behavior.scaleUp.selectPolicy")
        );
        assert!(
            bad(serde_json::json!({"stabilizationWindowSeconds": 3601}))
                .starts_with("spec.hpa.behavior.scaleUp.stabilizationWindowSeconds")
        );
        assert!(
            bad(serde_json::json!({"stabilizationWindowSeconds": -1}))
                .starts_with("spec.hpa.behavior.scaleUp.stabilizationWindowSeconds")
        );
        assert!(
            bad(
                serde_json::json!({"policies": [{"type": "Nodes", "value": 1, "periodSeconds": 1}]})
            )
            .starts_with("spec.hpa.behavior.scaleUp.policies[0].type")
        );
        assert!(
            bad(
                serde_json::json!({"policies": [{"type": "Pods", "value": 0, "periodSeconds": 1}]})
            )
            .starts_with("spec.hpa.behavior.scaleUp.policies[0]: value")
        );
        assert!(bad(serde_json::json!({"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]})).starts_with("spec.hpa.behavior.scaleUp.policies[0]: value"));
        assert!(
            bad(serde_json::json!({"tolerance": "1"}))
                .starts_with("spec.hpa.behavior.scaleUp.tolerance")
        );
        // Accepted bounds.
        let ok = |rules: serde_json::Value| {
            decision_spec(&with_hpa(serde_json::json!({
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
                "behavior": {"scaleUp": rules},
            })))
            .is_ok()
        };
        assert!(ok(
            serde_json::json!({"stabilizationWindowSeconds": 3600, "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 1800}], "tolerance": "0"})
        ));
        assert!(ok(
            serde_json::json!({"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1}]})
        ));
    }

    #[test]
    fn an_unusable_spec_fails_with_the_reason() {
        let mut status = AutoscalerStatus::default();
        apply_failed(
            &mut status,
            "spec.hpa.metrics[0]: type \"External\"",
            7_000_000_000,
        );
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert!(status.message.ends_with("type \"External\""));
        let c = &status.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("ScalingActive", "False", "InvalidSpec")
        );
    }

    #[test]
    fn current_values_are_shown_in_the_specs_units() {
        let u = Current::Utilization {
            percent: 75,
            average_milli: 1,
        };
        assert_eq!(current_value(u, 1.0), 75.0);
        let a = |milli| Current::AverageValue { milli };
        assert_eq!(current_value(a(250_000_000_000), BYTES_PER_MB), 250.0);
        assert_eq!(current_value(a(1_500), 1.0), 1.5);
        assert_eq!(current_value(a(42_000), 1.0), 42.0);
        // 66.051 bytes/s in MB/s, without the noise of the division.
        assert_eq!(current_value(a(66_051), BYTES_PER_MB), 6.6051e-5);
        assert_eq!(significant(123_456_789.0), 123_457_000.0);
        assert_eq!(significant(-0.001_234_567), -0.001_234_57);
        assert_eq!(significant(0.0), 0.0);
    }

    #[test]
    fn conditions_and_history_round_trip_through_the_status() {
        let core = vec![Condition {
            kind: ConditionType::ScalingLimited,
            status: ConditionStatus::True,
            reason: Reason::TooManyReplicas,
            message: "m".into(),
            last_transition_unix_nanos: 5_000_000_000,
        }];
        assert_eq!(core_conditions(&conditions(&core)), core);
        let h = History {
            seen: true,
            recommendations: vec![Recommendation {
                replicas: 3,
                at_unix_nanos: 7,
            }],
            scale_up_events: vec![ScaleEvent {
                change: 2,
                at_unix_nanos: 9,
                outdated: false,
            }],
            scale_down_events: Vec::new(),
        };
        assert_eq!(history(stored_history(&h).as_ref()), h);
        assert_eq!(stored_history(&History::default()), None);
        assert_eq!(history(None), History::default());
    }

    #[test]
    fn a_decision_fills_the_status_and_counts_only_real_scales() {
        let s = spec();
        let d = aistor_core::autoscale::decide(
            &decision_spec(&s).unwrap(),
            &Default::default(),
            &aistor_core::autoscale::SyncInput {
                current_replicas: 9,
                pods: &[],
                observations: &[],
            },
            History::default(),
            &[],
            Now {
                monotonic: Duration::ZERO,
                wall_unix_nanos: 100_000_000_000,
            },
        );
        // Above the maximum: set to it, no metric read.
        assert!(d.rescale);
        let mut status = AutoscalerStatus::default();
        apply_decision(&mut status, &s, &d, true);
        assert_eq!(status.phase.as_deref(), Some("Active"));
        assert_eq!(
            (status.current_replicas, status.desired_replicas),
            (Some(9), Some(5))
        );
        assert_eq!((status.scale_up_count, status.scale_down_count), (0, 1));
        assert!(status.last_scale_time.is_some());
        assert_eq!(status.last_decisions.len(), 1);
        assert_eq!(status.last_decisions[0].limited_by, "AboveMaxReplicas");
        assert_eq!(
            status.last_decisions[0].message,
            "New size: 5; reason: the replica bounds (limited by AboveMaxReplicas)"
        );
        assert!(status.history.is_some());
        // The same decision that could not be written: nothing counted.
        let mut failed = AutoscalerStatus::default();
        let mut d2 = d.clone();
        d2.scale_failed("conflict");
        apply_decision(&mut failed, &s, &d2, false);
        assert_eq!((failed.scale_up_count, failed.scale_down_count), (0, 0));
        assert!(failed.last_scale_time.is_none());
        assert!(
            failed
                .conditions
                .iter()
                .any(|c| c.reason == "FailedUpdateScale")
        );
        // Records are bounded.
        for _ in 0..(KEEP_DECISIONS + 5) {
            apply_decision(&mut status, &s, &d, true);
        }
        assert_eq!(status.last_decisions.len(), KEEP_DECISIONS);
    }

    #[test]
    fn missing_pods_are_grouped_by_reason() {
        let r = |p: &str, w: &str| -> (Box<str>, Box<str>) { (p.into(), w.into()) };
        assert_eq!(
            missing_message(&[
                r("a", "no GPU"),
                r("b", "node n1 is stale"),
                r("c", "no GPU"),
            ]),
            "a, c: no GPU; b: node n1 is stale"
        );
        assert_eq!(missing_message(&[]), "");
    }

    #[test]
    fn an_unreadable_target_makes_the_autoscaler_inactive() {
        let mut status = AutoscalerStatus::default();
        apply_unreadable(
            &mut status,
            "deployment default/web not found",
            1_000_000_000,
        );
        assert_eq!(status.phase.as_deref(), Some("Inactive"));
        assert!(status.message.contains("not found"));
        let c = &status.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str()),
            ("AbleToScale", "False")
        );
        assert_eq!(c.reason, "FailedGetScale");
    }

    #[test]
    fn the_feed_is_the_specs_window_and_resolution_never_more_than_is_kept() {
        let secs = Duration::from_secs;
        let with = |window, resolution| AutoscalerSpec {
            metric_window_seconds: window,
            metric_resolution_seconds: resolution,
            hpa: None,
            ..spec()
        };
        // Default: 30 s of every sample, or all that is kept when that is less.
        assert_eq!(feed(&spec(), secs(30)), Ok(Feed::every_sample(secs(30))));
        assert_eq!(feed(&spec(), secs(300)), Ok(Feed::every_sample(secs(30))));
        assert_eq!(feed(&spec(), secs(10)), Ok(Feed::every_sample(secs(10))));
        assert_eq!(
            feed(&with(Some(60), None), secs(60)),
            Ok(Feed::every_sample(secs(60)))
        );
        assert_eq!(
            feed(&with(Some(60), Some(15)), secs(75)),
            Ok(Feed {
                window: secs(60),
                resolution: Some(secs(15)),
            })
        );
        assert_eq!(
            feed(&with(None, Some(15)), secs(45)),
            Ok(Feed {
                window: secs(30),
                resolution: Some(secs(15)),
            })
        );
        // Asking for more than is kept: no value, and why; never a shorter window.
        assert_eq!(
            feed(&with(Some(60), None), secs(59)),
            Err(
                "metricWindowSeconds 60 needs 60 s of samples per pod; this coordinator \
                 keeps 59 s (its pod window, --pod-window)"
                    .into()
            )
        );
        assert_eq!(
            feed(&with(Some(60), Some(15)), secs(74)),
            Err(
                "metricWindowSeconds 60 with metricResolutionSeconds 15 needs 75 s of \
                 samples per pod; this coordinator keeps 74 s (its pod window, --pod-window)"
                    .into()
            )
        );
        assert_eq!(
            feed(&with(None, Some(15)), secs(30)),
            Err(
                "the default metricWindowSeconds 30 with metricResolutionSeconds 15 needs \
                 45 s of samples per pod; this coordinator keeps 30 s (its pod window, \
                 --pod-window)"
                    .into()
            )
        );
        // A zero resolution (refused by validation) is every sample.
        assert_eq!(
            feed(&with(Some(20), Some(0)), secs(30)),
            Ok(Feed::every_sample(secs(20)))
        );
    }
}
