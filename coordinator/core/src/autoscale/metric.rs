//! What an autoscaler scales on: the kinds of per-pod figure the agents measure, the
//! target each is held to, and one sync's per-pod observations of it.
//!
//! Values are integers in thousandths of the kind's unit (Kubernetes' `MilliValue`),
//! so sums, means and the utilisation percentage truncate exactly where the HPA's do.

use super::condition::Reason;
use std::time::Duration;

/// A per-pod figure. The unit whose thousandths travel: CPU cores (so millicores),
/// memory bytes, GPU percent, storage bytes or operations per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Cpu,
    Memory,
    /// SM utilisation attributed to the pod (percent of one GPU). Pods request no
    /// share of it, so it takes average-value targets only.
    Gpu,
    StorageReadBytesPerSecond,
    StorageWriteBytesPerSecond,
    /// Reads plus writes per second.
    StorageIops,
}

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Gpu => "gpu",
            Self::StorageReadBytesPerSecond => "storage-read-bytes-per-second",
            Self::StorageWriteBytesPerSecond => "storage-write-bytes-per-second",
            Self::StorageIops => "storage-iops",
        }
    }

    /// CPU and memory have requests in the pod spec, so a utilisation target means
    /// something for them (the HPA's `Resource` metrics); the rest are per-pod
    /// figures like its `Pods` metrics.
    pub fn has_request(self) -> bool {
        matches!(self, Self::Cpu | Self::Memory)
    }

    /// The reason `ScalingActive` gives when this metric cannot be computed.
    pub(crate) fn failure_reason(self) -> Reason {
        if self.has_request() {
            Reason::FailedGetResourceMetric
        } else {
            Reason::FailedGetPodsMetric
        }
    }
}

/// Thousandths of `units`, rounded; a value too large saturates, a non-number is 0.
/// (CPU figures already in millicores are passed as they are.)
pub fn milli(units: f64) -> i64 {
    (units * 1000.0).round() as i64
}

/// What the metric is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Mean use as a percentage of the pods' requests (CPU and memory only).
    Utilization(u32),
    /// Mean value per pod, in thousandths of the kind's unit.
    AverageValue(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    pub kind: MetricKind,
    pub target: Target,
}

/// One pod's value of a metric: the mean over `window` ending at `at_unix_nanos`.
/// The window matters for CPU: a sample that started before the pod was ready is
/// not trusted during start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub milli: i64,
    pub at_unix_nanos: u64,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Sample(Sample),
    /// No value for this pod, and why (the agent's reason, a stale node).
    Missing(Box<str>),
}

/// A pod's observation, by pod name. A pod with no entry counts as missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub pod: Box<str>,
    pub observed: Observed,
}

/// One metric's observations in one sync, or why it could not be observed at all.
pub type Observations = Result<Vec<Observation>, Box<str>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cpu_and_memory_have_requests() {
        use MetricKind::*;
        let with: Vec<MetricKind> = [
            Cpu,
            Memory,
            Gpu,
            StorageReadBytesPerSecond,
            StorageWriteBytesPerSecond,
            StorageIops,
        ]
        .into_iter()
        .filter(|k| k.has_request())
        .collect();
        assert_eq!(with, [Cpu, Memory]);
        assert_eq!(Cpu.failure_reason(), Reason::FailedGetResourceMetric);
        assert_eq!(Memory.failure_reason(), Reason::FailedGetResourceMetric);
        assert_eq!(Gpu.failure_reason(), Reason::FailedGetPodsMetric);
        assert_eq!(StorageIops.failure_reason(), Reason::FailedGetPodsMetric);
    }

    #[test]
    fn names_are_distinct_and_stable() {
        use MetricKind::*;
        let names = [
            Cpu,
            Memory,
            Gpu,
            StorageReadBytesPerSecond,
            StorageWriteBytesPerSecond,
            StorageIops,
        ]
        .map(MetricKind::name);
        assert_eq!(
            names,
            [
                "cpu",
                "memory",
                "gpu",
                "storage-read-bytes-per-second",
                "storage-write-bytes-per-second",
                "storage-iops"
            ]
        );
    }

    #[test]
    fn milli_rounds_and_never_panics() {
        assert_eq!(milli(1.5), 1500);
        assert_eq!(milli(0.0004), 0);
        assert_eq!(milli(0.0006), 1);
        assert_eq!(milli(-2.0), -2000);
        assert_eq!(milli(f64::NAN), 0);
        assert_eq!(milli(f64::INFINITY), i64::MAX);
        assert_eq!(milli(1e300), i64::MAX);
    }
}
