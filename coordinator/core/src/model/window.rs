//! A pod's recent samples, so a decision can take the latest value, a mean over a
//! span or a percentile. Kept as long as the longest span any decision asks for
//! (30 s by default), one small fixed-size sample per report.

use super::{GpuDevice, GpuUse, Usage, compact};
use std::collections::VecDeque;
use std::time::Duration;

/// What a window can be asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    CpuMillicores,
    MemoryWorkingSetBytes,
    IoReadBytesPerSecond,
    IoWriteBytesPerSecond,
    IoReadsPerSecond,
    IoWritesPerSecond,
    /// SM utilisation attributed to the pod, summed over its GPUs (percent of one GPU).
    GpuSmPercent,
    /// GPU memory attributed to the pod, summed over its GPUs.
    GpuMemoryBytes,
    /// Reads plus writes per second, from one sample's two figures (absent when
    /// either is).
    IoOpsPerSecond,
}

/// One report's figures of one pod, by the agent's wall clock. `f32` keeps a sample
/// at 40 bytes; seven significant digits are more than any decision uses (the exact
/// latest values stay in the pod's [`Usage`]).
#[derive(Debug, Clone, Copy)]
pub struct PodSample {
    pub at_unix_nanos: u64,
    values: [f32; 8],
}

impl PodSample {
    /// The figures of `usage` and `gpus` measured at `at_unix_nanos`.
    pub fn of(at_unix_nanos: u64, usage: &Usage, gpus: &[GpuUse]) -> Self {
        Self::on_node(at_unix_nanos, usage, gpus, &[])
    }

    /// The same, on a node whose GPUs are `devices`: a whole GPU allocated to the pod
    /// whose per-process utilisation the source could not read counts with the
    /// device's utilisation (the pod is all that runs there); a shared or MIG use
    /// without its own figure stays unknown.
    pub fn on_node(
        at_unix_nanos: u64,
        usage: &Usage,
        gpus: &[GpuUse],
        devices: &[GpuDevice],
    ) -> Self {
        let f = usage.figures();
        let sum = |of: &dyn Fn(&GpuUse) -> Option<f64>| -> Option<f64> {
            gpus.iter().map(of).try_fold(0.0, |acc, v| Some(acc + v?))
        };
        let sm = |g: &GpuUse| {
            g.sm_utilization_percent().measured().or_else(|| {
                let whole = g.allocated() && g.mig_uuid().is_none();
                devices
                    .iter()
                    .find(|d| whole && d.uuid() == g.gpu_uuid())
                    .and_then(|d| d.utilization_percent().measured())
            })
        };
        let (gpu_sm, gpu_memory) = if gpus.is_empty() {
            (None, None)
        } else {
            (
                sum(&sm),
                sum(&|g| g.memory_used_bytes().measured().map(|b| b as f64)),
            )
        };
        Self {
            at_unix_nanos,
            values: [
                f.cpu_millicores,
                f.memory_working_set_bytes.map(|b| b as f64),
                f.io_read_bytes_per_second,
                f.io_write_bytes_per_second,
                f.io_reads_per_second,
                f.io_writes_per_second,
                gpu_sm,
                gpu_memory,
            ]
            .map(compact::rate),
        }
    }

    pub fn get(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::IoOpsPerSecond => {
                Some(self.get(Metric::IoReadsPerSecond)? + self.get(Metric::IoWritesPerSecond)?)
            }
            stored => compact::rate_of(self.values[stored as usize]),
        }
    }
}

/// Equal when the time and every figure are (an absent figure is a `NaN` inside).
impl PartialEq for PodSample {
    fn eq(&self, other: &Self) -> bool {
        self.at_unix_nanos == other.at_unix_nanos
            && self.values.map(compact::rate_of) == other.values.map(compact::rate_of)
    }
}

/// How a decision reads a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// The newest sample that has the metric.
    Latest,
    /// The mean of the samples within `span` of the newest one (of the reader's
    /// instant, for [`PodWindow::read_at`]).
    Mean(Duration),
    /// The nearest-rank percentile (0–100) of the samples within `span` of the newest
    /// (of the reader's instant).
    Percentile(Duration, f64),
}

/// What a window answered: the value and how many samples it rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub value: f64,
    pub samples: usize,
    /// Agent wall time of the newest sample used.
    pub newest_unix_nanos: u64,
    /// Agent wall time of the oldest sample used (the newest's for [`Stat::Latest`]).
    pub oldest_unix_nanos: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodWindow {
    samples: VecDeque<PodSample>,
}

impl PodWindow {
    /// Adds a sample in time order (replays arrive late) and forgets samples more
    /// than `span` older than the newest. A sample at an instant already held
    /// replaces it.
    pub fn insert(&mut self, sample: PodSample, span: Duration) {
        let at = self
            .samples
            .partition_point(|s| s.at_unix_nanos < sample.at_unix_nanos);
        match self.samples.get_mut(at) {
            Some(s) if s.at_unix_nanos == sample.at_unix_nanos => *s = sample,
            _ => self.samples.insert(at, sample),
        }
        let newest = self.samples.back().map_or(0, |s| s.at_unix_nanos);
        let horizon = newest.saturating_sub(u64::try_from(span.as_nanos()).unwrap_or(u64::MAX));
        while self
            .samples
            .front()
            .is_some_and(|s| s.at_unix_nanos < horizon)
        {
            self.samples.pop_front();
        }
    }

    /// Forgets the samples later than `at_unix_nanos`: they were labelled by a clock
    /// that ran ahead of the one now reporting.
    pub fn forget_after(&mut self, at_unix_nanos: u64) {
        let keep = self
            .samples
            .partition_point(|s| s.at_unix_nanos <= at_unix_nanos);
        self.samples.truncate(keep);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Oldest first.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = &PodSample> {
        self.samples.iter()
    }

    /// `None` when no sample in reach has the metric.
    pub fn read(&self, metric: Metric, stat: Stat) -> Option<Reading> {
        let newest = self.samples.back()?.at_unix_nanos;
        self.read_at(metric, stat, newest)
    }

    /// As [`read`](Self::read), for a reader at `end_unix_nanos`: samples after that
    /// instant are not seen, and a span ends at it rather than at the newest sample
    /// (what a metrics pipeline that hands over a value at `end_unix_nanos` reads).
    /// `None` when no sample at or before it, within the span, has the metric.
    pub fn read_at(&self, metric: Metric, stat: Stat, end_unix_nanos: u64) -> Option<Reading> {
        let seen = self
            .samples
            .partition_point(|s| s.at_unix_nanos <= end_unix_nanos);
        let seen = self.samples.range(..seen);
        let span = match stat {
            Stat::Latest => {
                let s = seen.rev().find(|s| s.get(metric).is_some())?;
                return Some(Reading {
                    value: s.get(metric)?,
                    samples: 1,
                    newest_unix_nanos: s.at_unix_nanos,
                    oldest_unix_nanos: s.at_unix_nanos,
                });
            }
            Stat::Mean(span) | Stat::Percentile(span, _) => span,
        };
        let horizon =
            end_unix_nanos.saturating_sub(u64::try_from(span.as_nanos()).unwrap_or(u64::MAX));
        let mut used: Vec<(u64, f64)> = seen
            .filter(|s| s.at_unix_nanos >= horizon)
            .filter_map(|s| Some((s.at_unix_nanos, s.get(metric)?)))
            .collect();
        let newest_unix_nanos = used.iter().map(|(t, _)| *t).max()?;
        let oldest_unix_nanos = used.iter().map(|(t, _)| *t).min()?;
        let samples = used.len();
        let value = match stat {
            Stat::Percentile(_, p) => {
                used.sort_by(|a, b| a.1.total_cmp(&b.1));
                let p = p.clamp(0.0, 100.0);
                // Nearest rank: the smallest value with at least p % of samples at or below it.
                let rank = ((p / 100.0) * samples as f64).ceil() as usize;
                used[rank.clamp(1, samples) - 1].1
            }
            _ => used.iter().map(|(_, v)| v).sum::<f64>() / samples as f64,
        };
        Some(Reading {
            value,
            samples,
            newest_unix_nanos,
            oldest_unix_nanos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GpuUseFigures, UsageFigures};

    const SEC: u64 = 1_000_000_000;

    fn at(secs: u64, cpu: Option<f64>) -> PodSample {
        let usage = Usage::new(
            UsageFigures {
                cpu_millicores: cpu,
                memory_working_set_bytes: Some(secs * 100),
                ..Default::default()
            },
            Vec::new(),
        );
        PodSample::of(secs * SEC, &usage, &[])
    }

    fn window(cpus: &[(u64, Option<f64>)]) -> PodWindow {
        let mut w = PodWindow::default();
        for &(t, c) in cpus {
            w.insert(at(t, c), Duration::from_secs(30));
        }
        w
    }

    #[test]
    fn samples_take_every_figure_and_sum_gpus() {
        let usage = Usage::new(
            UsageFigures {
                cpu_millicores: Some(1.0),
                memory_working_set_bytes: Some(2),
                io_read_bytes_per_second: Some(3.0),
                io_write_bytes_per_second: Some(4.0),
                io_reads_per_second: Some(5.0),
                io_writes_per_second: Some(6.0),
                ..Default::default()
            },
            Vec::new(),
        );
        let gpu = |sm, mem| {
            GpuUse::new(GpuUseFigures {
                gpu_uuid: "g".into(),
                sm_utilization_percent: sm,
                memory_used_bytes: mem,
                ..Default::default()
            })
        };
        let s = PodSample::of(
            9,
            &usage,
            &[gpu(Some(30.0), Some(10)), gpu(Some(20.0), Some(5))],
        );
        use Metric::*;
        let got: Vec<Option<f64>> = [
            CpuMillicores,
            MemoryWorkingSetBytes,
            IoReadBytesPerSecond,
            IoWriteBytesPerSecond,
            IoReadsPerSecond,
            IoWritesPerSecond,
            GpuSmPercent,
            GpuMemoryBytes,
        ]
        .map(|m| s.get(m))
        .to_vec();
        assert_eq!(
            got,
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 50.0, 15.0]
                .map(Some)
                .to_vec()
        );
        assert_eq!(s.get(IoOpsPerSecond), Some(11.0));
        assert_eq!(s.at_unix_nanos, 9);
        // One GPU without a figure makes the sum unknown, not smaller.
        let s = PodSample::of(9, &usage, &[gpu(Some(30.0), None), gpu(None, Some(5))]);
        assert_eq!((s.get(GpuSmPercent), s.get(GpuMemoryBytes)), (None, None));
        // Operations need both directions.
        let reads_only = Usage::new(
            UsageFigures {
                io_reads_per_second: Some(5.0),
                ..Default::default()
            },
            Vec::new(),
        );
        assert_eq!(PodSample::of(9, &reads_only, &[]).get(IoOpsPerSecond), None);
        // No GPU at all: no GPU figure (not zero).
        assert_eq!(PodSample::of(9, &usage, &[]).get(GpuSmPercent), None);
    }

    #[test]
    fn samples_later_than_an_instant_are_forgotten_and_the_rest_kept() {
        let mut w = window(&[(1, Some(1.0)), (2, Some(2.0)), (3, Some(3.0))]);
        w.forget_after(2 * SEC);
        let times: Vec<_> = w.samples().map(|s| s.at_unix_nanos).collect();
        assert_eq!(times, [SEC, 2 * SEC], "the sample at the instant stays");
        w.forget_after(0);
        assert!(w.is_empty());
    }

    #[test]
    fn a_whole_allocated_gpu_without_its_own_figure_counts_with_the_device() {
        use crate::model::GpuDeviceFigures;
        let usage = Usage::default();
        let device = |uuid: &str, util| {
            GpuDevice::new(
                GpuDeviceFigures {
                    uuid: uuid.into(),
                    utilization_percent: util,
                    ..Default::default()
                },
                Vec::new(),
            )
        };
        let devices = [device("GPU-a", Some(80.0)), device("GPU-b", Some(40.0))];
        let use_of = |uuid: &str, mig: Option<&str>, allocated, sm| {
            GpuUse::new(GpuUseFigures {
                gpu_uuid: uuid.into(),
                mig_uuid: mig.map(str::to_owned),
                allocated,
                sm_utilization_percent: sm,
                ..Default::default()
            })
        };
        let sm = |gpus: &[GpuUse]| {
            PodSample::on_node(1, &usage, gpus, &devices).get(Metric::GpuSmPercent)
        };
        // Whole, allocated, no per-process figure: the device's.
        assert_eq!(sm(&[use_of("GPU-a", None, true, None)]), Some(80.0));
        // Its own figure wins over the device's.
        assert_eq!(sm(&[use_of("GPU-a", None, true, Some(30.0))]), Some(30.0));
        // Two whole GPUs: summed.
        assert_eq!(
            sm(&[
                use_of("GPU-a", None, true, None),
                use_of("GPU-b", None, true, None)
            ]),
            Some(120.0)
        );
        // Not allocated (shared), a MIG slice, or a device not reported: unknown.
        assert_eq!(sm(&[use_of("GPU-a", None, false, None)]), None);
        assert_eq!(sm(&[use_of("GPU-a", Some("MIG-1"), true, None)]), None);
        assert_eq!(sm(&[use_of("GPU-z", None, true, None)]), None);
        // A device without a utilisation figure gives none.
        let blind = [device("GPU-a", None)];
        assert_eq!(
            PodSample::on_node(1, &usage, &[use_of("GPU-a", None, true, None)], &blind)
                .get(Metric::GpuSmPercent),
            None
        );
        // Without devices (`of`), nothing is borrowed from them.
        assert_eq!(
            PodSample::of(1, &usage, &[use_of("GPU-a", None, true, None)])
                .get(Metric::GpuSmPercent),
            None
        );
    }

    #[test]
    fn samples_are_equal_when_time_and_figures_are_even_with_absent_ones() {
        // `at` leaves the I/O and GPU figures absent.
        assert_eq!(at(5, None), at(5, None));
        assert_eq!(at(5, Some(1.0)), at(5, Some(1.0)));
        assert_ne!(at(5, Some(1.0)), at(5, Some(2.0)));
        assert_ne!(at(5, Some(1.0)), at(5, None));
        let later = PodSample {
            at_unix_nanos: 6 * SEC,
            ..at(5, Some(1.0))
        };
        assert_ne!(later, at(5, Some(1.0)));
    }

    #[test]
    fn the_window_is_ordered_bounded_and_deduplicated() {
        let mut w = window(&[(10, Some(1.0)), (30, Some(3.0)), (20, Some(2.0))]);
        let times: Vec<u64> = w.samples().map(|s| s.at_unix_nanos / SEC).collect();
        assert_eq!(times, [10, 20, 30]);
        w.insert(at(20, Some(9.0)), Duration::from_secs(30));
        assert_eq!(w.len(), 3, "same instant replaces");
        assert_eq!(
            w.samples().nth(1).unwrap().get(Metric::CpuMillicores),
            Some(9.0)
        );
        w.insert(at(41, Some(4.0)), Duration::from_secs(30));
        let times: Vec<u64> = w.samples().map(|s| s.at_unix_nanos / SEC).collect();
        assert_eq!(
            times,
            [20, 30, 41],
            "older than 30 s before the newest is gone"
        );
        w.insert(at(71, Some(4.0)), Duration::from_secs(30));
        assert_eq!(w.len(), 2, "exactly 30 s old is kept");
        assert!(!w.is_empty());
        assert!(PodWindow::default().is_empty());
    }

    #[test]
    fn latest_skips_samples_without_the_metric() {
        let w = window(&[(1, Some(5.0)), (2, None)]);
        let r = w.read(Metric::CpuMillicores, Stat::Latest).unwrap();
        assert_eq!((r.value, r.samples, r.newest_unix_nanos), (5.0, 1, SEC));
        assert_eq!(r.oldest_unix_nanos, SEC);
        assert_eq!(
            window(&[(1, None)]).read(Metric::CpuMillicores, Stat::Latest),
            None
        );
        assert_eq!(
            PodWindow::default().read(Metric::CpuMillicores, Stat::Latest),
            None
        );
    }

    #[test]
    fn means_cover_the_span_before_the_newest_sample() {
        let w = window(&[
            (1, Some(100.0)),
            (5, Some(10.0)),
            (6, None),
            (7, Some(20.0)),
        ]);
        let r = w
            .read(Metric::CpuMillicores, Stat::Mean(Duration::from_secs(2)))
            .unwrap();
        assert_eq!((r.value, r.samples), (15.0, 2));
        assert_eq!(r.newest_unix_nanos, 7 * SEC);
        assert_eq!(r.oldest_unix_nanos, 5 * SEC);
        let r = w
            .read(Metric::CpuMillicores, Stat::Mean(Duration::from_secs(60)))
            .unwrap();
        assert_eq!((r.value, r.samples), (130.0 / 3.0, 3));
        assert_eq!(
            window(&[(1, None)]).read(Metric::CpuMillicores, Stat::Mean(Duration::from_secs(9))),
            None
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let w = window(
            &(1..=10)
                .map(|s| (s, Some(s as f64 * 10.0)))
                .collect::<Vec<_>>(),
        );
        let p = |q| {
            w.read(
                Metric::CpuMillicores,
                Stat::Percentile(Duration::from_secs(60), q),
            )
            .unwrap()
            .value
        };
        assert_eq!(p(50.0), 50.0);
        assert_eq!(p(90.0), 90.0);
        assert_eq!(p(91.0), 100.0);
        assert_eq!(p(100.0), 100.0);
        assert_eq!(p(0.0), 10.0);
        assert_eq!(p(150.0), 100.0, "clamped");
        assert_eq!(p(-5.0), 10.0, "clamped");
        let r = w
            .read(
                Metric::CpuMillicores,
                Stat::Percentile(Duration::from_secs(3), 50.0),
            )
            .unwrap();
        assert_eq!((r.samples, r.value), (4, 80.0));
    }

    #[test]
    fn a_reader_at_an_instant_sees_nothing_after_it_and_its_span_ends_there() {
        // One sample a second, 10..=40 s; CPU = the second.
        let w = window(&(10..=40).map(|s| (s, Some(s as f64))).collect::<Vec<_>>());
        let mean = |span, end| {
            w.read_at(
                Metric::CpuMillicores,
                Stat::Mean(Duration::from_secs(span)),
                end,
            )
        };
        // At 30 s, over 5 s: samples 25..=30 (both ends), none after 30.
        let r = mean(5, 30 * SEC).unwrap();
        assert_eq!((r.value, r.samples), (27.5, 6));
        assert_eq!(
            (r.oldest_unix_nanos, r.newest_unix_nanos),
            (25 * SEC, 30 * SEC)
        );
        // Between samples: the span ends at the instant, not at the sample before it.
        let r = mean(5, 30 * SEC + SEC / 2).unwrap();
        assert_eq!((r.value, r.samples), (28.0, 5));
        assert_eq!(
            (r.oldest_unix_nanos, r.newest_unix_nanos),
            (26 * SEC, 30 * SEC)
        );
        // At the newest sample it is `read`.
        assert_eq!(
            mean(5, 40 * SEC),
            w.read(Metric::CpuMillicores, Stat::Mean(Duration::from_secs(5)))
        );
        assert_eq!(mean(5, 40 * SEC).unwrap().value, 37.5);
        // Past the newest by more than the span: nothing is within it.
        assert_eq!(mean(5, 46 * SEC), None);
        assert_eq!(
            mean(5, 45 * SEC).unwrap().samples,
            1,
            "the span's edge counts"
        );
        // Before the first sample: nothing seen.
        assert_eq!(mean(60, 9 * SEC), None);
        assert_eq!(mean(60, 10 * SEC).unwrap().samples, 1);
        // A span longer than the window takes what is held up to the instant.
        let r = mean(60, 20 * SEC).unwrap();
        assert_eq!((r.value, r.samples), (15.0, 11));
        // Latest and percentiles end at the instant too.
        let latest = w
            .read_at(Metric::CpuMillicores, Stat::Latest, 20 * SEC + 1)
            .unwrap();
        assert_eq!((latest.value, latest.samples), (20.0, 1));
        assert_eq!(
            (latest.oldest_unix_nanos, latest.newest_unix_nanos),
            (20 * SEC, 20 * SEC)
        );
        assert_eq!(
            w.read_at(Metric::CpuMillicores, Stat::Latest, 9 * SEC),
            None
        );
        let p = w
            .read_at(
                Metric::CpuMillicores,
                Stat::Percentile(Duration::from_secs(9), 100.0),
                20 * SEC,
            )
            .unwrap();
        assert_eq!((p.value, p.samples), (20.0, 10));
        // A sample without the metric at the instant is skipped, not zero.
        let w = window(&[(1, Some(4.0)), (2, Some(8.0)), (3, None)]);
        let r = w
            .read_at(
                Metric::CpuMillicores,
                Stat::Mean(Duration::from_secs(1)),
                3 * SEC,
            )
            .unwrap();
        assert_eq!((r.value, r.samples, r.newest_unix_nanos), (8.0, 1, 2 * SEC));
        let r = w
            .read_at(Metric::CpuMillicores, Stat::Latest, 3 * SEC)
            .unwrap();
        assert_eq!(r.value, 8.0);
    }
}
