//! One cgroup's figures at one instant (a pod's or a container's).

use super::compact;
use super::{Figure, Missing, reason_for};

/// The figures of one cgroup, plain (for building a [`Usage`] and reading it whole).
/// `None` is absent; for the limits, absent without a reason means "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UsageFigures {
    pub cpu_millicores: Option<f64>,
    pub cpu_limit_millicores: Option<f64>,
    pub memory_usage_bytes: Option<u64>,
    pub memory_working_set_bytes: Option<u64>,
    pub memory_rss_bytes: Option<u64>,
    pub memory_cache_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub io_read_bytes_per_second: Option<f64>,
    pub io_write_bytes_per_second: Option<f64>,
    pub io_reads_per_second: Option<f64>,
    pub io_writes_per_second: Option<f64>,
    pub pids_current: Option<u64>,
}

/// [`UsageFigures`] stored compactly, with the agent's reasons for what is absent.
#[derive(Debug, Clone)]
pub struct Usage {
    cpu_millicores: f32,
    cpu_limit_millicores: f32,
    io: [f32; 4],
    memory: [u64; 5],
    pids_current: u64,
    missing: Box<[Missing]>,
}

/// Equal when the figures and reasons are: the `NaN` that marks an absent rate inside
/// would make a derived comparison say a value differs from itself.
impl PartialEq for Usage {
    fn eq(&self, other: &Self) -> bool {
        self.figures() == other.figures() && self.missing == other.missing
    }
}

impl Default for Usage {
    fn default() -> Self {
        Self::new(UsageFigures::default(), Vec::new())
    }
}

const MEMORY_FIELDS: [&str; 5] = [
    "memory.usage_bytes",
    "memory.working_set_bytes",
    "memory.rss_bytes",
    "memory.cache_bytes",
    "memory.limit_bytes",
];
const IO_FIELDS: [&str; 4] = [
    "io.rates.read_bytes_per_second",
    "io.rates.write_bytes_per_second",
    "io.rates.reads_per_second",
    "io.rates.writes_per_second",
];

impl Usage {
    pub fn new(f: UsageFigures, missing: Vec<Missing>) -> Self {
        Self {
            cpu_millicores: compact::rate(f.cpu_millicores),
            cpu_limit_millicores: compact::rate(f.cpu_limit_millicores),
            io: [
                f.io_read_bytes_per_second,
                f.io_write_bytes_per_second,
                f.io_reads_per_second,
                f.io_writes_per_second,
            ]
            .map(compact::rate),
            memory: [
                f.memory_usage_bytes,
                f.memory_working_set_bytes,
                f.memory_rss_bytes,
                f.memory_cache_bytes,
                f.memory_limit_bytes,
            ]
            .map(compact::bytes),
            pids_current: compact::bytes(f.pids_current),
            missing: missing.into_boxed_slice(),
        }
    }

    /// Every figure, plain (`None` where absent).
    pub fn figures(&self) -> UsageFigures {
        let m = self.memory.map(compact::bytes_of);
        let io = self.io.map(compact::rate_of);
        UsageFigures {
            cpu_millicores: compact::rate_of(self.cpu_millicores),
            cpu_limit_millicores: compact::rate_of(self.cpu_limit_millicores),
            memory_usage_bytes: m[0],
            memory_working_set_bytes: m[1],
            memory_rss_bytes: m[2],
            memory_cache_bytes: m[3],
            memory_limit_bytes: m[4],
            io_read_bytes_per_second: io[0],
            io_write_bytes_per_second: io[1],
            io_reads_per_second: io[2],
            io_writes_per_second: io[3],
            pids_current: compact::bytes_of(self.pids_current),
        }
    }

    /// What the agent said it could not read.
    pub fn missing(&self) -> &[Missing] {
        &self.missing
    }

    fn figure<T>(&self, value: Option<T>, field: &str) -> Figure<'_, T> {
        match value {
            Some(v) => Figure::Measured(v),
            None => Figure::Absent(reason_for(&self.missing, field)),
        }
    }

    /// A limit: `Measured(None)` when the cgroup has none, absent when it could not
    /// be read.
    fn limit<T>(&self, value: Option<T>, field: &str) -> Figure<'_, Option<T>> {
        match value {
            Some(v) => Figure::Measured(Some(v)),
            None => match reason_for(&self.missing, field) {
                super::NOT_REPORTED => Figure::Measured(None),
                reason => Figure::Absent(reason),
            },
        }
    }

    pub fn cpu_millicores(&self) -> Figure<'_, f64> {
        self.figure(
            compact::rate_of(self.cpu_millicores),
            "cpu.usage_millicores",
        )
    }

    pub fn cpu_limit_millicores(&self) -> Figure<'_, Option<f64>> {
        self.limit(
            compact::rate_of(self.cpu_limit_millicores),
            "cpu.limit_millicores",
        )
    }

    fn memory(&self, at: usize) -> Figure<'_, u64> {
        self.figure(compact::bytes_of(self.memory[at]), MEMORY_FIELDS[at])
    }

    pub fn memory_usage_bytes(&self) -> Figure<'_, u64> {
        self.memory(0)
    }

    /// Usage minus inactive file, as Kubernetes defines the working set.
    pub fn memory_working_set_bytes(&self) -> Figure<'_, u64> {
        self.memory(1)
    }

    pub fn memory_rss_bytes(&self) -> Figure<'_, u64> {
        self.memory(2)
    }

    pub fn memory_cache_bytes(&self) -> Figure<'_, u64> {
        self.memory(3)
    }

    pub fn memory_limit_bytes(&self) -> Figure<'_, Option<u64>> {
        self.limit(compact::bytes_of(self.memory[4]), MEMORY_FIELDS[4])
    }

    fn io(&self, at: usize) -> Figure<'_, f64> {
        self.figure(compact::rate_of(self.io[at]), IO_FIELDS[at])
    }

    pub fn io_read_bytes_per_second(&self) -> Figure<'_, f64> {
        self.io(0)
    }

    pub fn io_write_bytes_per_second(&self) -> Figure<'_, f64> {
        self.io(1)
    }

    pub fn io_reads_per_second(&self) -> Figure<'_, f64> {
        self.io(2)
    }

    pub fn io_writes_per_second(&self) -> Figure<'_, f64> {
        self.io(3)
    }

    pub fn pids_current(&self) -> Figure<'_, u64> {
        self.figure(compact::bytes_of(self.pids_current), "pids_current")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_figure() -> UsageFigures {
        UsageFigures {
            cpu_millicores: Some(1500.25),
            cpu_limit_millicores: Some(2000.0),
            memory_usage_bytes: Some(10),
            memory_working_set_bytes: Some(11),
            memory_rss_bytes: Some(12),
            memory_cache_bytes: Some(13),
            memory_limit_bytes: Some(14),
            io_read_bytes_per_second: Some(1.5),
            io_write_bytes_per_second: Some(2.5),
            io_reads_per_second: Some(3.5),
            io_writes_per_second: Some(4.5),
            pids_current: Some(7),
        }
    }

    #[test]
    fn every_figure_reads_back_from_its_own_accessor() {
        let u = Usage::new(every_figure(), Vec::new());
        assert_eq!(u.figures(), every_figure());
        assert_eq!(u.cpu_millicores(), Figure::Measured(1500.25));
        assert_eq!(u.cpu_limit_millicores(), Figure::Measured(Some(2000.0)));
        assert_eq!(u.memory_usage_bytes(), Figure::Measured(10));
        assert_eq!(u.memory_working_set_bytes(), Figure::Measured(11));
        assert_eq!(u.memory_rss_bytes(), Figure::Measured(12));
        assert_eq!(u.memory_cache_bytes(), Figure::Measured(13));
        assert_eq!(u.memory_limit_bytes(), Figure::Measured(Some(14)));
        assert_eq!(u.io_read_bytes_per_second(), Figure::Measured(1.5));
        assert_eq!(u.io_write_bytes_per_second(), Figure::Measured(2.5));
        assert_eq!(u.io_reads_per_second(), Figure::Measured(3.5));
        assert_eq!(u.io_writes_per_second(), Figure::Measured(4.5));
        assert_eq!(u.pids_current(), Figure::Measured(7));
    }

    #[test]
    fn absent_figures_carry_the_agents_reason() {
        let u = Usage::new(
            UsageFigures::default(),
            vec![
                Missing::new("cpu.usage_millicores", "first reading"),
                Missing::new("io.rates", "no previous io"),
                Missing::new("memory", "memory.stat unreadable"),
                Missing::new("cpu.limit_millicores", "cpu.max unreadable"),
            ],
        );
        assert_eq!(u.cpu_millicores(), Figure::Absent("first reading"));
        assert_eq!(
            u.io_read_bytes_per_second(),
            Figure::Absent("no previous io")
        );
        assert_eq!(u.io_writes_per_second(), Figure::Absent("no previous io"));
        assert_eq!(
            u.memory_working_set_bytes(),
            Figure::Absent("memory.stat unreadable")
        );
        assert_eq!(
            u.memory_limit_bytes(),
            Figure::Absent("memory.stat unreadable")
        );
        assert_eq!(
            u.cpu_limit_millicores(),
            Figure::Absent("cpu.max unreadable")
        );
        assert_eq!(u.pids_current(), Figure::Absent(crate::model::NOT_REPORTED));
        assert_eq!(u.missing().len(), 4);
    }

    #[test]
    fn usages_are_equal_when_figures_and_reasons_are_even_with_absent_rates() {
        let figures = UsageFigures {
            memory_usage_bytes: Some(3),
            ..Default::default()
        };
        let reasons = || vec![Missing::new("cpu.usage_millicores", "first reading")];
        assert_eq!(
            Usage::new(figures, reasons()),
            Usage::new(figures, reasons())
        );
        assert_eq!(Usage::default(), Usage::default());
        let more = UsageFigures {
            memory_usage_bytes: Some(4),
            ..figures
        };
        assert_ne!(Usage::new(more, reasons()), Usage::new(figures, reasons()));
        assert_ne!(
            Usage::new(figures, Vec::new()),
            Usage::new(figures, reasons())
        );
    }

    #[test]
    fn a_limit_absent_without_a_reason_is_no_limit() {
        let u = Usage::default();
        assert_eq!(u.cpu_limit_millicores(), Figure::Measured(None));
        assert_eq!(u.memory_limit_bytes(), Figure::Measured(None));
        assert_eq!(u.figures(), UsageFigures::default());
    }
}
