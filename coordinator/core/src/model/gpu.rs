//! GPUs: each device of a node, and each pod's or container's use of one.

use super::compact;
use super::{Figure, Missing, reason_for};

/// A pod's or container's use of one GPU (or one MIG instance of it), plain.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuUseFigures {
    pub gpu_uuid: String,
    /// Set when a MIG instance rather than the whole GPU is used.
    pub mig_uuid: Option<String>,
    /// Allocated to the pod through the device plugin (kubelet pod-resources).
    pub allocated: bool,
    pub memory_used_bytes: Option<u64>,
    pub sm_utilization_percent: Option<f64>,
    pub memory_utilization_percent: Option<f64>,
}

/// [`GpuUseFigures`] stored compactly.
#[derive(Debug, Clone)]
pub struct GpuUse {
    gpu_uuid: Box<str>,
    mig_uuid: Option<Box<str>>,
    allocated: bool,
    memory_used_bytes: u64,
    sm_utilization_percent: f32,
    memory_utilization_percent: f32,
}

/// Equal when the figures are (an absent rate is a `NaN` inside, unequal to itself).
impl PartialEq for GpuUse {
    fn eq(&self, other: &Self) -> bool {
        self.figures() == other.figures()
    }
}

/// The agent reports a GPU use without per-field reasons: what it has, it sends.
const NOT_ATTRIBUTED: &str = "the GPU source reported no per-process figure for this use";

impl GpuUse {
    pub fn new(f: GpuUseFigures) -> Self {
        Self {
            gpu_uuid: f.gpu_uuid.into(),
            mig_uuid: f.mig_uuid.map(Into::into),
            allocated: f.allocated,
            memory_used_bytes: compact::bytes(f.memory_used_bytes),
            sm_utilization_percent: compact::rate(f.sm_utilization_percent),
            memory_utilization_percent: compact::rate(f.memory_utilization_percent),
        }
    }

    pub fn figures(&self) -> GpuUseFigures {
        GpuUseFigures {
            gpu_uuid: self.gpu_uuid.to_string(),
            mig_uuid: self.mig_uuid.as_deref().map(str::to_owned),
            allocated: self.allocated,
            memory_used_bytes: compact::bytes_of(self.memory_used_bytes),
            sm_utilization_percent: compact::rate_of(self.sm_utilization_percent),
            memory_utilization_percent: compact::rate_of(self.memory_utilization_percent),
        }
    }

    pub fn gpu_uuid(&self) -> &str {
        &self.gpu_uuid
    }

    pub fn mig_uuid(&self) -> Option<&str> {
        self.mig_uuid.as_deref()
    }

    pub fn allocated(&self) -> bool {
        self.allocated
    }

    pub fn memory_used_bytes(&self) -> Figure<'_, u64> {
        figure(compact::bytes_of(self.memory_used_bytes))
    }

    /// The share of the GPU's streaming multiprocessors this use kept busy.
    pub fn sm_utilization_percent(&self) -> Figure<'_, f64> {
        figure(compact::rate_of(self.sm_utilization_percent))
    }

    pub fn memory_utilization_percent(&self) -> Figure<'_, f64> {
        figure(compact::rate_of(self.memory_utilization_percent))
    }
}

fn figure<T>(v: Option<T>) -> Figure<'static, T> {
    v.map_or(Figure::Absent(NOT_ATTRIBUTED), Figure::Measured)
}

/// One GPU device of a node, plain.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuDeviceFigures {
    pub index: u32,
    pub uuid: String,
    pub model: String,
    pub mig_enabled: Option<bool>,
    pub utilization_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub power_watts: Option<f64>,
    pub temperature_celsius: Option<f64>,
}

/// A node's GPU as decisions see it: how busy and how full it is.
#[derive(Debug, Clone)]
pub struct GpuDevice {
    index: u32,
    uuid: Box<str>,
    model: Box<str>,
    mig_enabled: Option<bool>,
    utilization_percent: f32,
    power_watts: f32,
    temperature_celsius: f32,
    memory_used_bytes: u64,
    memory_total_bytes: u64,
    missing: Box<[Missing]>,
}

/// Equal when the figures and reasons are (an absent rate is a `NaN` inside).
impl PartialEq for GpuDevice {
    fn eq(&self, other: &Self) -> bool {
        self.figures() == other.figures() && self.missing == other.missing
    }
}

impl GpuDevice {
    pub fn new(f: GpuDeviceFigures, missing: Vec<Missing>) -> Self {
        Self {
            index: f.index,
            uuid: f.uuid.into(),
            model: f.model.into(),
            mig_enabled: f.mig_enabled,
            utilization_percent: compact::rate(f.utilization_percent),
            power_watts: compact::rate(f.power_watts),
            temperature_celsius: compact::rate(f.temperature_celsius),
            memory_used_bytes: compact::bytes(f.memory_used_bytes),
            memory_total_bytes: compact::bytes(f.memory_total_bytes),
            missing: missing.into_boxed_slice(),
        }
    }

    pub fn figures(&self) -> GpuDeviceFigures {
        GpuDeviceFigures {
            index: self.index,
            uuid: self.uuid.to_string(),
            model: self.model.to_string(),
            mig_enabled: self.mig_enabled,
            utilization_percent: compact::rate_of(self.utilization_percent),
            memory_used_bytes: compact::bytes_of(self.memory_used_bytes),
            memory_total_bytes: compact::bytes_of(self.memory_total_bytes),
            power_watts: compact::rate_of(self.power_watts),
            temperature_celsius: compact::rate_of(self.temperature_celsius),
        }
    }

    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    fn figure<T>(&self, v: Option<T>, field: &str) -> Figure<'_, T> {
        v.map_or_else(
            || Figure::Absent(reason_for(&self.missing, field)),
            Figure::Measured,
        )
    }

    /// Device-wide utilisation; absent in MIG mode, where NVML has none.
    pub fn utilization_percent(&self) -> Figure<'_, f64> {
        self.figure(
            compact::rate_of(self.utilization_percent),
            "utilization_percent",
        )
    }

    pub fn memory_used_bytes(&self) -> Figure<'_, u64> {
        self.figure(
            compact::bytes_of(self.memory_used_bytes),
            "memory_used_bytes",
        )
    }

    pub fn memory_total_bytes(&self) -> Figure<'_, u64> {
        self.figure(
            compact::bytes_of(self.memory_total_bytes),
            "memory_total_bytes",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_use_round_trips_and_says_what_was_not_attributed() {
        let f = GpuUseFigures {
            gpu_uuid: "GPU-1".into(),
            mig_uuid: Some("MIG-1".into()),
            allocated: true,
            memory_used_bytes: Some(1 << 30),
            sm_utilization_percent: None,
            memory_utilization_percent: Some(12.5),
        };
        let u = GpuUse::new(f.clone());
        assert_eq!(u.figures(), f);
        assert_eq!(u.gpu_uuid(), "GPU-1");
        assert_eq!(u.mig_uuid(), Some("MIG-1"));
        assert!(u.allocated());
        assert_eq!(u.memory_used_bytes(), Figure::Measured(1 << 30));
        assert_eq!(u.memory_utilization_percent(), Figure::Measured(12.5));
        assert_eq!(u.sm_utilization_percent(), Figure::Absent(NOT_ATTRIBUTED));

        // A process seen on a GPU the device plugin did not give the pod.
        let unallocated = GpuUse::new(GpuUseFigures {
            gpu_uuid: "GPU-2".into(),
            ..Default::default()
        });
        assert!(!unallocated.allocated());
        assert_eq!(unallocated.mig_uuid(), None);
        assert_eq!(
            unallocated.memory_used_bytes(),
            Figure::Absent(NOT_ATTRIBUTED)
        );
    }

    #[test]
    fn gpu_values_are_equal_when_their_figures_are_even_with_absent_rates() {
        let use_of = |allocated| {
            GpuUse::new(GpuUseFigures {
                gpu_uuid: "GPU-1".into(),
                allocated,
                ..Default::default()
            })
        };
        assert_eq!(use_of(true), use_of(true));
        assert_ne!(use_of(true), use_of(false));

        let device = |index, reason: &str| {
            GpuDevice::new(
                GpuDeviceFigures {
                    index,
                    uuid: "GPU-1".into(),
                    ..Default::default()
                },
                vec![Missing::new("utilization_percent", reason)],
            )
        };
        assert_eq!(device(0, "MIG mode"), device(0, "MIG mode"));
        assert_ne!(device(0, "MIG mode"), device(1, "MIG mode"));
        assert_ne!(device(0, "MIG mode"), device(0, "NVML error"));
    }

    #[test]
    fn a_device_round_trips_with_reasons() {
        let f = GpuDeviceFigures {
            index: 3,
            uuid: "GPU-3".into(),
            model: "H100".into(),
            mig_enabled: Some(true),
            utilization_percent: None,
            memory_used_bytes: Some(5),
            memory_total_bytes: Some(80 << 30),
            power_watts: Some(300.0),
            temperature_celsius: Some(41.0),
        };
        let d = GpuDevice::new(
            f.clone(),
            vec![Missing::new(
                "utilization_percent",
                "MIG mode: no device utilisation",
            )],
        );
        assert_eq!(d.figures(), f);
        assert_eq!(d.uuid(), "GPU-3");
        assert_eq!(
            d.utilization_percent(),
            Figure::Absent("MIG mode: no device utilisation")
        );
        assert_eq!(d.memory_used_bytes(), Figure::Measured(5));
        assert_eq!(d.memory_total_bytes(), Figure::Measured(80 << 30));
    }
}
