//! One metric's replica proposal: the HPA's `replica_calculator.go` arithmetic.
//!
//! Sums and means are integer thousandths and truncate where the HPA's do; the
//! ratio and the rounding up are `f64`, like Go's `math.Ceil`, so the same inputs
//! give the same count.

use super::metric::{MetricSpec, Observation, Observed, Sample, Target};
use super::pods::{Group, PodFacts, Readiness, group};
use std::collections::HashMap;
use std::fmt;

/// Replica counts are Kubernetes `int32`s.
pub const MAX_REPLICAS: u32 = i32::MAX as u32;

/// The band of usage ratios (current / target) inside which nothing changes:
/// `1 - scale_down <= ratio <= 1 + scale_up`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    pub scale_down: f64,
    pub scale_up: f64,
}

impl Tolerances {
    pub fn both(tolerance: f64) -> Self {
        Self {
            scale_down: tolerance,
            scale_up: tolerance,
        }
    }

    pub fn contains(self, ratio: f64) -> bool {
        1.0 - self.scale_down <= ratio && ratio <= 1.0 + self.scale_up
    }
}

/// The metric's current value, as the HPA reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current {
    /// Percent of the counted pods' requests, and their mean use.
    Utilization {
        percent: i32,
        average_milli: i64,
    },
    AverageValue {
        milli: i64,
    },
}

/// Which of the calculator's rules produced the proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The ratio is inside the tolerance band: keep the current count.
    WithinTolerance,
    /// `ceil(ratio × ready pods)`.
    Ratio,
    /// Missing or unready pods were given assumed values that damp the change;
    /// `ceil(new ratio × pods counted)`.
    Rebalanced,
    /// With the assumed values the ratio falls inside the band: keep the count.
    RebalancedWithinTolerance,
    /// With the assumed values the ratio is on the other side of 1: keep the count.
    RebalanceReversed,
    /// The count computed with the assumed values moves against the ratio: keep it.
    RebalanceAgainstDirection,
}

/// How the target's pods were counted for this metric.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodCounts {
    pub ready: u32,
    pub unready: u32,
    pub missing: u32,
    pub ignored: u32,
    /// Each missing pod and why it has no value.
    pub missing_reasons: Vec<(Box<str>, Box<str>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricResult {
    pub proposal: u32,
    /// The value before any assumed values were added (what the HPA reports).
    pub current: Current,
    pub ratio: f64,
    /// The ratio with assumed values, when the rebalancing rules ran.
    pub rebalanced_ratio: Option<f64>,
    pub pods: PodCounts,
    pub basis: Basis,
}

/// Why a metric gave no proposal. Such a metric blocks any scale-down this sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricError {
    /// The shell could not observe the metric at all.
    Unavailable(Box<str>),
    /// The target's selector matched no pod.
    NoPods,
    /// No pod had a trusted value (all missing, unready or ignored).
    NoReadyValues(PodCounts),
    /// Utilisation needs every pod's request; these pods lack one.
    MissingRequest(Vec<Box<str>>),
    /// The requests of the counted pods sum to zero.
    ZeroRequests,
    /// The target cannot be computed for this kind (utilisation of a kind with no
    /// request, or a target that is not positive).
    InvalidTarget(MetricSpec),
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "not observed: {why}"),
            Self::NoPods => write!(f, "the target's selector matches no pod"),
            Self::NoReadyValues(p) => write!(
                f,
                "no pod has a value to trust ({} missing, {} unready, {} ignored)",
                p.missing, p.unready, p.ignored
            ),
            Self::MissingRequest(pods) => {
                write!(f, "no request for this resource in pod")?;
                for (i, p) in pods.iter().enumerate() {
                    write!(f, "{}{p}", if i == 0 { " " } else { ", " })?;
                }
                Ok(())
            }
            Self::ZeroRequests => write!(f, "the counted pods' requests sum to zero"),
            Self::InvalidTarget(spec) => write!(
                f,
                "target {:?} cannot be used with metric {}",
                spec.target,
                spec.kind.name()
            ),
        }
    }
}

impl std::error::Error for MetricError {}

/// `ceil(x)` as a replica count: saturating at the int32 bound, 0 for a negative
/// or non-number.
fn ceil_replicas(x: f64) -> u32 {
    (x.ceil() as u32).min(MAX_REPLICAS)
}

fn saturating_i64(v: i128) -> i64 {
    v.clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// Ratio and current value of a set of per-pod values (pod index, milli).
enum Ratio {
    Utilization { target: u32, requests: Vec<i64> },
    Average { target: i64 },
}

impl Ratio {
    fn of(&self, values: &[(usize, i64)]) -> Result<(f64, Current), MetricError> {
        let total: i128 = values.iter().map(|&(_, v)| i128::from(v)).sum();
        // Never zero: callers pass at least one value.
        let count = values.len().max(1) as i128;
        match self {
            Self::Utilization { target, requests } => {
                let requested: i128 = values.iter().map(|&(i, _)| i128::from(requests[i])).sum();
                if requested == 0 {
                    return Err(MetricError::ZeroRequests);
                }
                let percent = total.saturating_mul(100) / requested;
                let percent = percent.clamp(i32::MIN.into(), i32::MAX.into()) as i32;
                Ok((
                    f64::from(percent) / f64::from(*target),
                    Current::Utilization {
                        percent,
                        average_milli: saturating_i64(total / count),
                    },
                ))
            }
            Self::Average { target } => {
                let average = saturating_i64(total / count);
                Ok((
                    average as f64 / *target as f64,
                    Current::AverageValue { milli: average },
                ))
            }
        }
    }

    /// What a missing pod is assumed to use when the metric says scale down: its
    /// full request (or the target when that is above 100 %), or the target value.
    fn assumed_full(&self, pod: usize) -> i64 {
        match self {
            Self::Utilization { target, requests } => {
                let percent = i128::from((*target).max(100));
                saturating_i64(i128::from(requests[pod]) * percent / 100)
            }
            Self::Average { target } => *target,
        }
    }
}

/// The proposal of one metric for a target now at `current` replicas.
pub fn replicas_for_metric(
    current: u32,
    spec: &MetricSpec,
    pods: &[PodFacts],
    observations: &[Observation],
    tolerances: Tolerances,
    readiness: Readiness,
    now_unix_nanos: u64,
) -> Result<MetricResult, MetricError> {
    match spec.target {
        Target::Utilization(t) if t > 0 && spec.kind.has_request() => {}
        Target::AverageValue(v) if v > 0 => {}
        _ => return Err(MetricError::InvalidTarget(*spec)),
    }
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    // A later observation of the same pod wins, as a map built from a list would.
    let samples: HashMap<&str, &Observed> = observations
        .iter()
        .map(|o| (&*o.pod, &o.observed))
        .collect();

    let mut counts = PodCounts::default();
    let mut values: Vec<(usize, i64)> = Vec::new();
    let mut unready: Vec<usize> = Vec::new();
    let mut missing: Vec<usize> = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let observed = samples.get(&*pod.name);
        let sample: Option<&Sample> = match observed {
            Some(Observed::Sample(s)) => Some(s),
            _ => None,
        };
        match group(pod, sample, spec.kind, readiness, now_unix_nanos) {
            Group::Ignored => counts.ignored += 1,
            Group::Unready => unready.push(i),
            Group::Missing => {
                let why: Box<str> = match observed {
                    Some(Observed::Missing(why)) => why.clone(),
                    _ => "no observation of this pod".into(),
                };
                counts.missing_reasons.push((pod.name.clone(), why));
                missing.push(i);
            }
            Group::Ready => {
                if let Some(s) = sample {
                    values.push((i, s.milli));
                }
            }
        }
    }
    counts.ready = values.len() as u32;
    counts.unready = unready.len() as u32;
    counts.missing = missing.len() as u32;
    if values.is_empty() {
        return Err(MetricError::NoReadyValues(counts));
    }

    let rule = match spec.target {
        Target::Utilization(target) => {
            let lacking: Vec<Box<str>> = pods
                .iter()
                .filter(|p| p.request_milli(spec.kind).is_none())
                .map(|p| p.name.clone())
                .collect();
            if !lacking.is_empty() {
                return Err(MetricError::MissingRequest(lacking));
            }
            let requests = pods
                .iter()
                .map(|p| p.request_milli(spec.kind).unwrap_or(0))
                .collect();
            Ratio::Utilization { target, requests }
        }
        Target::AverageValue(target) => Ratio::Average { target },
    };

    let (ratio, value) = rule.of(&values)?;
    let result = |proposal, rebalanced_ratio, basis| MetricResult {
        proposal,
        current: value,
        ratio,
        rebalanced_ratio,
        pods: counts.clone(),
        basis,
    };

    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if tolerances.contains(ratio) {
            return Ok(result(current, None, Basis::WithinTolerance));
        }
        let proposal = ceil_replicas(ratio * values.len() as f64);
        return Ok(result(proposal, None, Basis::Ratio));
    }

    // Fill in the pods without a trusted value in the direction that damps the change.
    if ratio < 1.0 {
        values.extend(missing.iter().map(|&i| (i, rule.assumed_full(i))));
    } else if ratio > 1.0 {
        values.extend(missing.iter().map(|&i| (i, 0)));
    }
    if scale_up_with_unready {
        values.extend(unready.iter().map(|&i| (i, 0)));
    }
    let (new_ratio, _) = rule.of(&values)?;
    let rebalanced = Some(new_ratio);
    if tolerances.contains(new_ratio) {
        return Ok(result(
            current,
            rebalanced,
            Basis::RebalancedWithinTolerance,
        ));
    }
    if (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        return Ok(result(current, rebalanced, Basis::RebalanceReversed));
    }
    let proposal = ceil_replicas(new_ratio * values.len() as f64);
    if (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current) {
        return Ok(result(
            current,
            rebalanced,
            Basis::RebalanceAgainstDirection,
        ));
    }
    Ok(result(proposal, rebalanced, Basis::Rebalanced))
}

#[cfg(test)]
mod tests;
