//! The figures decisions read: nodes, pods, containers and GPUs, each as measured at
//! one instant over one interval, or absent with the reason the agent gave.
//!
//! Ingest converts a report into these types once; decisions never see protobuf.
//! Values are kept compactly (a coordinator holds one of these per pod of every
//! node): rates as `f32`, byte counts as `u64`, an absent value as a sentinel
//! inside the type, and the reasons in one list per measured object. Accessors
//! return a [`Figure`], so an absent value cannot be mistaken for zero.

mod disk;
#[cfg(test)]
mod fixtures;
mod gpu;
mod pod;
mod spec;
mod usage;
mod window;

pub use disk::{DiskRates, whole_disk_throughput};
pub use gpu::{GpuDevice, GpuDeviceFigures, GpuUse, GpuUseFigures};
pub use pod::{
    Container, ContainerState, DiscoveredBy, Pod, PodKey, QosClass, Requests, SPEC_UNKNOWN,
};
pub use spec::{ContainerSpec, NOT_RUNNING, PodSpec, PodSpecs, join_spec};
pub use usage::{Usage, UsageFigures};
pub use window::{Metric, PodSample, PodWindow, Reading, Stat};

/// A value as measured, or the reason it could not be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure<'a, T> {
    Measured(T),
    Absent(&'a str),
}

impl<'a, T> Figure<'a, T> {
    pub fn measured(self) -> Option<T> {
        match self {
            Self::Measured(v) => Some(v),
            Self::Absent(_) => None,
        }
    }

    /// Why the value is absent; `None` when it was measured.
    pub fn reason(&self) -> Option<&'a str> {
        match self {
            Self::Measured(_) => None,
            Self::Absent(reason) => Some(reason),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Figure<'a, U> {
        match self {
            Self::Measured(v) => Figure::Measured(f(v)),
            Self::Absent(r) => Figure::Absent(r),
        }
    }
}

/// What is said of a value the agent left out without giving a reason.
pub const NOT_REPORTED: &str = "not in the agent's report";

/// Why a field is absent, as the agent said. `field` is a dotted path inside the
/// object that carries the entry (`cpu.usage_millicores`, `io.rates`, `memory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub field: Box<str>,
    pub reason: Box<str>,
}

impl Missing {
    pub fn new(field: &str, reason: &str) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The reason `field` is absent: an entry for the field itself or for an enclosing
/// one (`io.rates` covers `io.rates.read_bytes_per_second`).
pub fn reason_for<'a>(missing: &'a [Missing], field: &str) -> &'a str {
    missing
        .iter()
        .find(|m| {
            field == &*m.field
                || field
                    .strip_prefix(&*m.field)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        .map_or(NOT_REPORTED, |m| &m.reason)
}

/// Compact optional numbers: `NaN` / `u64::MAX` stand for "absent" inside the model
/// only; accessors turn them back into [`Figure`]s.
pub(crate) mod compact {
    pub(crate) fn rate(v: Option<f64>) -> f32 {
        // A non-finite measurement is not a measurement.
        v.filter(|v| v.is_finite()).map_or(f32::NAN, |v| v as f32)
    }

    pub(crate) fn rate_of(v: f32) -> Option<f64> {
        (!v.is_nan()).then_some(f64::from(v))
    }

    pub(crate) fn bytes(v: Option<u64>) -> u64 {
        // u64::MAX bytes cannot be measured on any machine; it is the "absent" mark.
        v.map_or(u64::MAX, |v| v.min(u64::MAX - 1))
    }

    pub(crate) fn bytes_of(v: u64) -> Option<u64> {
        (v != u64::MAX).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_found_for_the_field_or_an_enclosing_one() {
        let missing = [
            Missing::new("io.rates", "first reading"),
            Missing::new("memory", "memory.stat: No such file"),
        ];
        assert_eq!(
            reason_for(&missing, "io.rates.read_bytes_per_second"),
            "first reading"
        );
        assert_eq!(reason_for(&missing, "io.rates"), "first reading");
        assert_eq!(
            reason_for(&missing, "memory.working_set_bytes"),
            "memory.stat: No such file"
        );
        // A longer name that merely starts with the same letters is another field.
        assert_eq!(reason_for(&missing, "io.ratesx"), NOT_REPORTED);
        assert_eq!(reason_for(&missing, "cpu.usage_millicores"), NOT_REPORTED);
        assert_eq!(reason_for(&[], "cpu"), NOT_REPORTED);
    }

    #[test]
    fn figures_say_measured_or_why_not() {
        let m: Figure<'_, u32> = Figure::Measured(3);
        assert_eq!(m.measured(), Some(3));
        assert_eq!(m.reason(), None);
        assert_eq!(m.map(|v| v * 2), Figure::Measured(6));
        let a: Figure<'_, u32> = Figure::Absent("gone");
        assert_eq!(a.measured(), None);
        assert_eq!(a.reason(), Some("gone"));
        assert_eq!(a.map(|v| v * 2), Figure::Absent("gone"));
    }

    #[test]
    fn compact_numbers_round_trip_and_keep_absent_apart() {
        use compact::*;
        assert_eq!(rate_of(rate(Some(1234.5))), Some(1234.5));
        assert_eq!(rate_of(rate(Some(0.0))), Some(0.0));
        assert_eq!(rate_of(rate(None)), None);
        assert_eq!(rate_of(rate(Some(f64::NAN))), None);
        assert_eq!(rate_of(rate(Some(f64::INFINITY))), None);
        assert_eq!(bytes_of(bytes(Some(0))), Some(0));
        assert_eq!(bytes_of(bytes(Some(1 << 40))), Some(1 << 40));
        assert_eq!(bytes_of(bytes(None)), None);
        assert_eq!(bytes_of(bytes(Some(u64::MAX))), Some(u64::MAX - 1));
    }
}
