//! From the live view to one sync's [`Observation`]s: each pod's mean over a window
//! of its 1 s samples, or why there is none. Never a default in place of a missing
//! figure: [`replicas_for_metric`](super::replicas_for_metric) decides what a
//! missing pod means.

use super::metric::{MetricKind, Observation, Observed, Sample, milli};
use crate::model::{Figure, Metric, Pod, Stat};
use std::time::Duration;

/// Why a pod without GPUs has no GPU figure.
pub const NO_GPU: &str = "the pod uses no GPU";

/// One of the target's pods as the live view has it: the measured pod and the
/// interval of its node's latest report (each sample is a rate over one interval),
/// or why it is not measured (not placed, its node stale or never reported).
#[derive(Debug, Clone, Copy)]
pub struct PodInView<'a> {
    pub name: &'a str,
    pub measured: Result<(&'a Pod, Duration), &'a str>,
}

fn window_metric(kind: MetricKind) -> Metric {
    match kind {
        MetricKind::Cpu => Metric::CpuMillicores,
        MetricKind::Memory => Metric::MemoryWorkingSetBytes,
        MetricKind::Gpu => Metric::GpuSmPercent,
        MetricKind::StorageReadBytesPerSecond => Metric::IoReadBytesPerSecond,
        MetricKind::StorageWriteBytesPerSecond => Metric::IoWriteBytesPerSecond,
        MetricKind::StorageIops => Metric::IoOpsPerSecond,
    }
}

/// The value in thousandths of the kind's unit: CPU figures are millicores already.
fn to_milli(kind: MetricKind, value: f64) -> i64 {
    match kind {
        MetricKind::Cpu => value.round() as i64,
        _ => milli(value),
    }
}

/// Why the pod's latest report has no figure of `kind`.
fn absent_reason(pod: &Pod, kind: MetricKind) -> String {
    let reason = |f: Figure<'_, f64>| f.reason().map(str::to_owned);
    let why = match kind {
        MetricKind::Cpu => reason(pod.usage.cpu_millicores()),
        MetricKind::Memory => reason(pod.usage.memory_working_set_bytes().map(|b| b as f64)),
        MetricKind::StorageReadBytesPerSecond => reason(pod.usage.io_read_bytes_per_second()),
        MetricKind::StorageWriteBytesPerSecond => reason(pod.usage.io_write_bytes_per_second()),
        MetricKind::StorageIops => reason(pod.usage.io_reads_per_second())
            .or_else(|| reason(pod.usage.io_writes_per_second())),
        MetricKind::Gpu if pod.gpus.is_empty() => Some(NO_GPU.to_owned()),
        MetricKind::Gpu => pod
            .gpus
            .iter()
            .find_map(|g| g.sm_utilization_percent().reason().map(str::to_owned)),
    };
    why.unwrap_or_else(|| "no sample of it in the pod's window".to_owned())
}

/// How one sync is fed its per-pod values: the span of each pod's mean, and how
/// often a value is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed {
    /// The span of each pod's mean.
    pub window: Duration,
    /// `None`: every sample counts and the newest one ends the window (the agents'
    /// own feed). `Some(r)`: the window ends at the latest multiple of `r` (unix
    /// time) at or before the sync, and later samples are not seen: what a metrics
    /// pipeline scraping every `r` (metrics-server) hands over. Zero is `None`.
    pub resolution: Option<Duration>,
}

impl Feed {
    /// Every sample, the mean over `window` ending at the newest.
    pub const fn every_sample(window: Duration) -> Self {
        Self {
            window,
            resolution: None,
        }
    }

    /// The instant the window ends at for a sync at `now_unix_nanos`; `None`: at
    /// each pod's newest sample.
    pub fn end(&self, now_unix_nanos: u64) -> Option<u64> {
        let r = u64::try_from(self.resolution?.as_nanos()).unwrap_or(u64::MAX);
        (r > 0).then(|| now_unix_nanos - now_unix_nanos % r)
    }
}

fn secs(nanos: u64) -> u64 {
    nanos / 1_000_000_000
}

/// Each pod's mean of `kind` over the `span` before `now_unix_nanos`, in the order given.
/// A pod whose newest sample is older than `span` counts as missing: an old
/// figure is not today's load.
pub fn observe(
    kind: MetricKind,
    pods: &[PodInView<'_>],
    span: Duration,
    now_unix_nanos: u64,
) -> Vec<Observation> {
    observe_fed(kind, pods, Feed::every_sample(span), now_unix_nanos)
}

/// [`observe`] with the values fed as `feed` says: with a resolution, each pod's
/// mean over `feed.window` ending at the resolution's latest instant, samples
/// after it ignored; a pod with no sample of `kind` within that window is missing,
/// with the reason.
pub fn observe_fed(
    kind: MetricKind,
    pods: &[PodInView<'_>],
    feed: Feed,
    now_unix_nanos: u64,
) -> Vec<Observation> {
    let span = feed.window;
    let span_nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
    let end = feed.end(now_unix_nanos);
    let horizon = end.unwrap_or(now_unix_nanos).saturating_sub(span_nanos);
    let metric = window_metric(kind);
    pods.iter()
        .map(|p| {
            let observed = match p.measured {
                Err(why) => Observed::Missing(why.into()),
                Ok((pod, interval)) => {
                    let reading = match end {
                        None => pod.window.read(metric, Stat::Mean(span)),
                        Some(end) => pod.window.read_at(metric, Stat::Mean(span), end),
                    };
                    match (reading, end) {
                        (None, Some(end)) => Observed::Missing(
                            match pod.window.read_at(metric, Stat::Latest, end) {
                                Some(old) => format!(
                                    "its newest sample at the last {} s resolution instant is \
                                     {} s old, older than the {} s window",
                                    feed.resolution.unwrap_or_default().as_secs(),
                                    secs(end - old.newest_unix_nanos),
                                    span.as_secs()
                                ),
                                None if pod.window.read(metric, Stat::Latest).is_some() => {
                                    format!(
                                        "no sample of it by the last {} s resolution instant, \
                                         {} s ago",
                                        feed.resolution.unwrap_or_default().as_secs(),
                                        secs(now_unix_nanos - end)
                                    )
                                }
                                None => absent_reason(pod, kind),
                            }
                            .into(),
                        ),
                        (None, None) => Observed::Missing(absent_reason(pod, kind).into()),
                        (Some(r), _) if r.newest_unix_nanos < horizon => Observed::Missing(
                            format!(
                                "its newest sample is {} s old, older than the {} s window",
                                secs(now_unix_nanos - r.newest_unix_nanos),
                                span.as_secs()
                            )
                            .into(),
                        ),
                        (Some(r), _) => Observed::Sample(Sample {
                            milli: to_milli(kind, r.value),
                            at_unix_nanos: r.newest_unix_nanos,
                            // The first sample's rate began one interval before it.
                            window: Duration::from_nanos(r.newest_unix_nanos - r.oldest_unix_nanos)
                                .saturating_add(interval),
                        }),
                    }
                }
            };
            Observation {
                pod: p.name.into(),
                observed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        GpuUse, GpuUseFigures, Missing, PodKey, PodSample, PodWindow, QosClass, Usage, UsageFigures,
    };

    const SEC: u64 = 1_000_000_000;
    const NOW: u64 = 1_000 * SEC;
    const SPAN: Duration = Duration::from_secs(30);
    const INTERVAL: Duration = Duration::from_secs(1);

    fn figures(cpu: f64) -> UsageFigures {
        UsageFigures {
            cpu_millicores: Some(cpu),
            memory_working_set_bytes: Some(1000),
            io_read_bytes_per_second: Some(2.5),
            io_write_bytes_per_second: Some(4.0),
            io_reads_per_second: Some(3.0),
            io_writes_per_second: Some(7.0),
            ..Default::default()
        }
    }

    /// A pod with one sample per second ending at `newest` (seconds before NOW),
    /// CPU `cpu(i)` for the i-th sample.
    fn pod(samples: u64, newest_ago: u64, gpus: Vec<GpuUse>, cpu: impl Fn(u64) -> f64) -> Pod {
        let mut window = PodWindow::default();
        let mut last = Usage::default();
        for i in 0..samples {
            let at = NOW - (newest_ago + samples - 1 - i) * SEC;
            last = Usage::new(figures(cpu(i)), Vec::new());
            window.insert(PodSample::of(at, &last, &gpus), Duration::from_secs(300));
        }
        Pod {
            key: PodKey {
                namespace: "ml".into(),
                name: "p".into(),
                uid: "u".into(),
            },
            qos_class: QosClass::Burstable,
            cgroup_path: "".into(),
            discovered_by: crate::model::DiscoveredBy::Containerd,
            usage: last,
            containers: Box::new([]),
            gpus: gpus.into_boxed_slice(),
            window,
            labels: Box::new([]),
        }
    }

    fn one(kind: MetricKind, pod: &Pod) -> Observed {
        let view = [PodInView {
            name: "p",
            measured: Ok((pod, INTERVAL)),
        }];
        let mut got = observe(kind, &view, SPAN, NOW);
        assert_eq!(got.len(), 1);
        assert_eq!(&*got[0].pod, "p");
        got.remove(0).observed
    }

    fn sample(o: Observed) -> Sample {
        match o {
            Observed::Sample(s) => s,
            Observed::Missing(why) => panic!("missing: {why}"),
        }
    }

    #[test]
    fn each_kind_is_the_window_mean_in_thousandths() {
        // 40 samples, the last 31 (30 s span, both ends) inside: CPU 100..=139.
        let p = pod(40, 0, Vec::new(), |i| 100.0 + i as f64);
        let cpu = sample(one(MetricKind::Cpu, &p));
        // Mean of 109..=139 is 124 millicores, kept in millicores.
        assert_eq!(cpu.milli, 124);
        assert_eq!(cpu.at_unix_nanos, NOW);
        // 31 samples cover 30 s between them plus the first one's interval.
        assert_eq!(cpu.window, Duration::from_secs(31));
        assert_eq!(sample(one(MetricKind::Memory, &p)).milli, 1_000_000);
        assert_eq!(
            sample(one(MetricKind::StorageReadBytesPerSecond, &p)).milli,
            2500
        );
        assert_eq!(
            sample(one(MetricKind::StorageWriteBytesPerSecond, &p)).milli,
            4000
        );
        assert_eq!(sample(one(MetricKind::StorageIops, &p)).milli, 10_000);
        // Rounded to the nearest millicore.
        let p = pod(2, 0, Vec::new(), |i| 100.0 + i as f64 * 0.2);
        assert_eq!(sample(one(MetricKind::Cpu, &p)).milli, 100);
        let p = pod(2, 0, Vec::new(), |i| 100.0 + i as f64 * 1.2);
        assert_eq!(sample(one(MetricKind::Cpu, &p)).milli, 101);
    }

    #[test]
    fn a_single_sample_covers_one_interval() {
        let p = pod(1, 2, Vec::new(), |_| 50.0);
        let s = sample(one(MetricKind::Cpu, &p));
        assert_eq!(s.window, INTERVAL);
        assert_eq!(s.at_unix_nanos, NOW - 2 * SEC);
    }

    #[test]
    fn gpu_is_the_attributed_sm_utilisation_or_missing_with_why() {
        let gpu = |sm| {
            GpuUse::new(GpuUseFigures {
                gpu_uuid: "GPU-1".into(),
                sm_utilization_percent: sm,
                ..Default::default()
            })
        };
        let p = pod(3, 0, vec![gpu(Some(42.5))], |_| 1.0);
        assert_eq!(sample(one(MetricKind::Gpu, &p)).milli, 42_500);
        let p = pod(3, 0, Vec::new(), |_| 1.0);
        assert_eq!(one(MetricKind::Gpu, &p), Observed::Missing(NO_GPU.into()));
        let p = pod(3, 0, vec![gpu(None)], |_| 1.0);
        let Observed::Missing(why) = one(MetricKind::Gpu, &p) else {
            panic!("a GPU without a figure is not zero");
        };
        assert!(why.contains("per-process"), "{why}");
    }

    #[test]
    fn an_old_window_is_missing_not_stale_load() {
        let p = pod(5, 31, Vec::new(), |_| 900.0);
        let Observed::Missing(why) = one(MetricKind::Cpu, &p) else {
            panic!("31 s old is outside a 30 s window");
        };
        assert!(why.contains("31 s old"), "{why}");
        assert!(why.contains("30 s window"), "{why}");
        // Exactly at the edge still counts.
        let p = pod(5, 30, Vec::new(), |_| 900.0);
        assert_eq!(sample(one(MetricKind::Cpu, &p)).milli, 900);
    }

    #[test]
    fn the_agents_reason_is_kept_for_an_absent_figure() {
        let mut p = pod(0, 0, Vec::new(), |_| 0.0);
        p.usage = Usage::new(
            UsageFigures::default(),
            vec![
                Missing::new("cpu", "cpu.stat: permission denied"),
                Missing::new("io.rates", "first reading"),
            ],
        );
        let why = |kind, p: &Pod| match one(kind, p) {
            Observed::Missing(why) => why.to_string(),
            Observed::Sample(s) => panic!("{s:?}"),
        };
        assert_eq!(why(MetricKind::Cpu, &p), "cpu.stat: permission denied");
        assert_eq!(why(MetricKind::StorageIops, &p), "first reading");
        assert_eq!(
            why(MetricKind::StorageReadBytesPerSecond, &p),
            "first reading"
        );
        assert_eq!(
            why(MetricKind::StorageWriteBytesPerSecond, &p),
            "first reading"
        );
        assert_eq!(why(MetricKind::Memory, &p), crate::model::NOT_REPORTED);
        // Figures present in the latest report but no sample in the window.
        p.usage = Usage::new(figures(1.0), Vec::new());
        assert_eq!(
            why(MetricKind::Cpu, &p),
            "no sample of it in the pod's window"
        );
        // IOPS needs both directions: the writes' reason when only they are absent.
        p.usage = Usage::new(
            UsageFigures {
                io_reads_per_second: Some(1.0),
                ..Default::default()
            },
            vec![Missing::new("io.rates.writes_per_second", "no writes file")],
        );
        assert_eq!(why(MetricKind::StorageIops, &p), "no writes file");
    }

    #[test]
    fn unmeasured_pods_keep_the_shells_reason_in_order() {
        let p = pod(3, 0, Vec::new(), |_| 10.0);
        let view = [
            PodInView {
                name: "a",
                measured: Err("node n1 is stale"),
            },
            PodInView {
                name: "b",
                measured: Ok((&p, INTERVAL)),
            },
        ];
        let got = observe(MetricKind::Cpu, &view, SPAN, NOW);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            Observation {
                pod: "a".into(),
                observed: Observed::Missing("node n1 is stale".into()),
            }
        );
        assert_eq!(&*got[1].pod, "b");
        assert_eq!(sample(got[1].observed.clone()).milli, 10);
    }

    fn fed(kind: MetricKind, pod: &Pod, feed: Feed, now: u64) -> Observed {
        let view = [PodInView {
            name: "p",
            measured: Ok((pod, INTERVAL)),
        }];
        let mut got = observe_fed(kind, &view, feed, now);
        assert_eq!(got.len(), 1);
        got.remove(0).observed
    }

    fn missing(o: Observed) -> String {
        match o {
            Observed::Missing(why) => why.into(),
            Observed::Sample(s) => panic!("a sample: {s:?}"),
        }
    }

    /// metrics-server's: a 60 s window handed over every 15 s.
    const SCRAPED: Feed = Feed {
        window: Duration::from_secs(60),
        resolution: Some(Duration::from_secs(15)),
    };

    #[test]
    fn a_feed_ends_at_the_resolutions_latest_instant() {
        assert_eq!(Feed::every_sample(SPAN).end(NOW), None);
        assert_eq!(Feed::every_sample(SPAN).window, SPAN);
        // NOW is 1000 s: the latest multiple of 15 s is 990 s.
        assert_eq!(SCRAPED.end(NOW), Some(990 * SEC));
        assert_eq!(SCRAPED.end(990 * SEC), Some(990 * SEC), "on the instant");
        assert_eq!(SCRAPED.end(990 * SEC - 1), Some(975 * SEC));
        assert_eq!(SCRAPED.end(1004 * SEC), Some(990 * SEC));
        assert_eq!(SCRAPED.end(1005 * SEC), Some(1005 * SEC));
        let zero = Feed {
            resolution: Some(Duration::ZERO),
            ..SCRAPED
        };
        assert_eq!(zero.end(NOW), None, "zero is every sample");
        let huge = Feed {
            resolution: Some(Duration::MAX),
            ..SCRAPED
        };
        assert_eq!(huge.end(NOW), Some(0));
    }

    #[test]
    fn observe_is_every_sample_over_the_span() {
        let p = pod(90, 3, Vec::new(), |i| (i * i) as f64);
        let view = [PodInView {
            name: "p",
            measured: Ok((&p, INTERVAL)),
        }];
        let got = observe_fed(MetricKind::Cpu, &view, Feed::every_sample(SPAN), NOW);
        assert_eq!(observe(MetricKind::Cpu, &view, SPAN, NOW), got);
        // A zero resolution is every sample too.
        let zero = Feed {
            window: SPAN,
            resolution: Some(Duration::ZERO),
        };
        assert_eq!(observe_fed(MetricKind::Cpu, &view, zero, NOW), got);
    }

    #[test]
    fn a_resolution_hands_over_the_mean_ending_at_its_instant_and_ignores_later_samples() {
        // One sample a second up to NOW (1000 s); CPU = seconds after 881 s.
        let p = pod(120, 0, Vec::new(), |i| i as f64);
        // 930..=990 s: CPU 49..=109.
        let s = sample(fed(MetricKind::Cpu, &p, SCRAPED, NOW));
        assert_eq!(s.milli, 79);
        assert_eq!(s.at_unix_nanos, 990 * SEC);
        assert_eq!(s.window, Duration::from_secs(61));
        // Every sample, the same 60 s: 940..=1000 s, CPU 59..=119.
        let every = sample(fed(
            MetricKind::Cpu,
            &p,
            Feed::every_sample(SCRAPED.window),
            NOW,
        ));
        assert_eq!((every.milli, every.at_unix_nanos), (89, NOW));
        // Until the next instant the value handed over does not change.
        for now in [990 * SEC, NOW, 1004 * SEC + SEC - 1] {
            assert_eq!(sample(fed(MetricKind::Cpu, &p, SCRAPED, now)), s);
        }
        // At 1005 s: 945..=1000 s (nothing newer yet), CPU 64..=119, mean 91.5.
        let next = sample(fed(MetricKind::Cpu, &p, SCRAPED, 1005 * SEC));
        assert_eq!((next.milli, next.at_unix_nanos), (92, NOW));
        assert_eq!(next.window, Duration::from_secs(56));
        // A step after the instant is not seen until the next one.
        let step = pod(120, 0, Vec::new(), |i| {
            if i + 881 > 990 { 900.0 } else { 100.0 }
        });
        assert_eq!(sample(fed(MetricKind::Cpu, &step, SCRAPED, NOW)).milli, 100);
        // Every sample sees it: 51 s at 100, 10 s at 900.
        let every = Feed::every_sample(SCRAPED.window);
        assert_eq!(sample(fed(MetricKind::Cpu, &step, every, NOW)).milli, 231);
        // Other kinds go the same way.
        assert_eq!(
            sample(fed(MetricKind::StorageIops, &p, SCRAPED, NOW)).milli,
            10_000
        );
    }

    #[test]
    fn with_a_resolution_the_windows_edges_count_and_what_is_outside_is_missing_with_why() {
        // Newest sample exactly at the window's start (990 − 60 = 930 s): counted.
        let p = pod(5, 70, Vec::new(), |_| 300.0);
        let s = sample(fed(MetricKind::Cpu, &p, SCRAPED, NOW));
        assert_eq!((s.milli, s.at_unix_nanos), (300, 930 * SEC));
        assert_eq!(s.window, INTERVAL);
        // One second earlier: too old at the instant, with how old.
        let p = pod(5, 71, Vec::new(), |_| 300.0);
        assert_eq!(
            missing(fed(MetricKind::Cpu, &p, SCRAPED, NOW)),
            "its newest sample at the last 15 s resolution instant is 61 s old, \
             older than the 60 s window"
        );
        // Every sample is newer than the instant: a new pod the pipeline has not
        // scraped yet.
        let p = pod(5, 0, Vec::new(), |_| 300.0);
        assert_eq!(
            missing(fed(MetricKind::Cpu, &p, SCRAPED, NOW)),
            "no sample of it by the last 15 s resolution instant, 10 s ago"
        );
        // A sample exactly at the instant is seen.
        let p = pod(5, 10, Vec::new(), |_| 300.0);
        assert_eq!(sample(fed(MetricKind::Cpu, &p, SCRAPED, NOW)).milli, 300);
        // No sample of the kind at all: the agent's reason, as without a resolution.
        let p = pod(3, 20, Vec::new(), |_| 1.0);
        assert_eq!(missing(fed(MetricKind::Gpu, &p, SCRAPED, NOW)), NO_GPU);
        let mut p = pod(0, 0, Vec::new(), |_| 0.0);
        p.usage = Usage::new(
            UsageFigures::default(),
            vec![Missing::new("cpu", "cpu.stat: permission denied")],
        );
        assert_eq!(
            missing(fed(MetricKind::Cpu, &p, SCRAPED, NOW)),
            "cpu.stat: permission denied"
        );
        // The shell's reason for an unmeasured pod is kept.
        let view = [PodInView {
            name: "a",
            measured: Err("node n1 is stale"),
        }];
        assert_eq!(
            observe_fed(MetricKind::Cpu, &view, SCRAPED, NOW)[0].observed,
            Observed::Missing("node n1 is stale".into())
        );
    }
}
