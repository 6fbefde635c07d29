//! Live headroom: Koordinator LoadAware's rules (coordinator-anchors.md §3.7) over
//! the load aistor's agents measure. The usage after placing the pod is estimated
//! as measured usage + the estimate of pods placed since the measurement + the
//! pod's own estimate; a node where that estimate crosses a threshold is filtered
//! out, and the score prefers headroom: per resource `100 - estimated %` (0 when
//! over 100 %), averaged with the resource weights.
//!
//! Resources: CPU and memory against allocatable; GPU (only for pods that request
//! GPUs) as the mean device utilisation plus the pod's devices counted busy,
//! against the node's devices; disk as the busiest disk's busy time (a pod's I/O
//! is unknown before it runs, so nothing is added for it).
//!
//! Missing figures are never replaced by a value. A resource whose figure is
//! missing (no agent, not measured, older than the limit, nothing allocatable) is
//! not filtered on, and scores 0 with the reason kept: a node whose load cannot be
//! seen is never rejected for load, and never preferred for headroom it may not
//! have (Koordinator scores a node without fresh metrics 0 too).

use super::config::{Headroom, ScalingFactors};
use super::filter::Rejection;
use super::input::{Estimate, LiveLoad, NodeInput, Resources};
use super::score::Few;
use crate::clock::Now;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadResource {
    #[default]
    Cpu,
    Memory,
    Gpu,
    Disk,
}

impl LoadResource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Gpu => "gpu",
            Self::Disk => "disk",
        }
    }
}

/// Why a resource's usage could not be estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// The node has no agent, or its agent has reported no figures.
    NoFigures,
    /// The agent's report lacks this figure.
    NotMeasured,
    /// The figures were received `age` ago, more than `limit`.
    TooOld { age: Duration, limit: Duration },
    /// The node has none of the resource allocatable.
    NoCapacity,
}

impl fmt::Display for Absent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFigures => write!(f, "no figures from the node's aistor agent"),
            Self::NotMeasured => write!(f, "the agent did not measure it"),
            Self::TooOld { age, limit } => write!(
                f,
                "the figures are {}s old, more than the {}s limit",
                age.as_secs(),
                limit.as_secs()
            ),
            Self::NoCapacity => write!(f, "the node has none allocatable"),
        }
    }
}

/// One resource's part of the headroom score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ResourceHeadroom {
    pub resource: LoadResource,
    pub weight: i64,
    /// Estimated usage after placing the pod, percent of allocatable (GPU and
    /// disk: percent busy).
    pub estimated_percent: Option<f64>,
    /// `100 - estimated %`, within 0–100; 0 when absent.
    pub score: f64,
    pub absent: Option<Absent>,
}

/// A node's headroom score (0–100) and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HeadroomDetail {
    pub score: f64,
    pub resources: Few<ResourceHeadroom, 4>,
}

/// Koordinator's estimate for a pod without a request (`DefaultMilliCPURequest`).
pub const DEFAULT_CPU_MILLICORES: u64 = 250;
/// Koordinator's estimate for a pod without a request (`DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_BYTES: u64 = 200 << 20;

/// What a pod will use, Koordinator's `estimatedUsedByResource`: a limit above
/// the request is taken whole; else the request times the scaling factor, at most
/// the limit when there is one; nothing requested counts 250m CPU / 200 MiB. A
/// requested GPU counts `factor` % busy.
pub fn estimate_pod(requests: Resources, limits: Resources, factors: ScalingFactors) -> Estimate {
    let one = |request: u64, limit: u64, factor: i64, default: u64| {
        let (quantity, factor) = if limit > request {
            (limit, 100)
        } else {
            (request, factor)
        };
        if quantity == 0 {
            return default as f64;
        }
        let estimate = (quantity as f64 * factor as f64 / 100.0).round();
        if limit > 0 {
            estimate.min(limit as f64)
        } else {
            estimate
        }
    };
    Estimate {
        cpu_millicores: one(
            requests.cpu_millicores,
            limits.cpu_millicores,
            factors.cpu,
            DEFAULT_CPU_MILLICORES,
        ),
        memory_bytes: one(
            requests.memory_bytes,
            limits.memory_bytes,
            factors.memory,
            DEFAULT_MEMORY_BYTES,
        ),
        gpus: requests.gpus as f64 * factors.gpu as f64 / 100.0,
    }
}

/// The node's figures when they are recent enough.
fn fresh(load: Option<&LiveLoad>, limit: Duration, now: Now) -> Result<&LiveLoad, Absent> {
    let load = load.ok_or(Absent::NoFigures)?;
    let age = now.monotonic.saturating_sub(load.received_at);
    if age > limit {
        return Err(Absent::TooOld { age, limit });
    }
    Ok(load)
}

fn percent(used: f64, capacity: u64) -> Result<f64, Absent> {
    if capacity == 0 {
        return Err(Absent::NoCapacity);
    }
    Ok(used * 100.0 / capacity as f64)
}

/// The headroom of `node` for a pod estimated at `pod` that requests `pod_gpus`
/// GPUs; threshold rejections go to `out`.
pub(crate) fn assess(
    pod: Estimate,
    pod_gpus: u64,
    node: &NodeInput,
    config: &Headroom,
    now: Now,
    out: &mut Vec<Rejection>,
) -> HeadroomDetail {
    let load = fresh(node.load.as_ref(), config.max_measurement_age, now);
    let (w, t, a) = (
        config.resource_weights,
        config.usage_thresholds,
        node.allocatable,
    );
    let mut detail = HeadroomDetail::default();
    let (mut sum, mut weights) = (0.0, 0);
    for (resource, weight, threshold) in [
        (LoadResource::Cpu, w.cpu, t.cpu),
        (LoadResource::Memory, w.memory, t.memory),
        (LoadResource::Gpu, w.gpu, t.gpu),
        (LoadResource::Disk, w.disk, t.disk),
    ] {
        // A pod without GPUs neither uses nor is slowed by the node's GPUs.
        if weight == 0 || (resource == LoadResource::Gpu && pod_gpus == 0) {
            continue;
        }
        let estimated = load.and_then(|l| {
            let pending = l.pending;
            match resource {
                LoadResource::Cpu => {
                    let used = l.cpu_millicores.ok_or(Absent::NotMeasured)?;
                    percent(
                        used + pending.cpu_millicores + pod.cpu_millicores,
                        a.cpu_millicores,
                    )
                }
                LoadResource::Memory => {
                    let used = l.memory_bytes.ok_or(Absent::NotMeasured)? as f64;
                    percent(
                        used + pending.memory_bytes + pod.memory_bytes,
                        a.memory_bytes,
                    )
                }
                LoadResource::Gpu => {
                    let busy = l.gpu_utilization_percent.ok_or(Absent::NotMeasured)?;
                    Ok(busy + percent(pending.gpus + pod.gpus, a.gpus)?)
                }
                LoadResource::Disk => l.disk_utilization_percent.ok_or(Absent::NotMeasured),
            }
        });
        let score = estimated.map_or(0.0, |e| (100.0 - e).clamp(0.0, 100.0));
        if let (Ok(e), Some(threshold)) = (estimated, threshold) {
            // Koordinator compares the rounded percentage.
            if e.round() > threshold {
                out.push(Rejection::UsageAboveThreshold {
                    resource,
                    estimated_percent: e,
                    threshold_percent: threshold,
                });
            }
        }
        sum += weight as f64 * score;
        weights += weight;
        detail.resources.push(ResourceHeadroom {
            resource,
            weight,
            estimated_percent: estimated.ok(),
            score,
            absent: estimated.err(),
        });
    }
    if weights > 0 {
        detail.score = sum / weights as f64;
    }
    detail
}

#[cfg(test)]
mod tests;
