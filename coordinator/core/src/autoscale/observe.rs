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

/// Each pod's mean of `kind` over the `span` before `now_unix_nanos`, in the order given.
/// A pod whose newest sample is older than `span` counts as missing: an old
/// figure is not today's load.
pub fn observe(
    kind: MetricKind,
    pods: &[PodInView<'_>],
    span: Duration,
    now_unix_nanos: u64,
) -> Vec<Observation> {
    let span_nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
    let horizon = now_unix_nanos.saturating_sub(span_nanos);
    pods.iter()
        .map(|p| {
            let observed = match p.measured {
                Err(why) => Observed::Missing(why.into()),
                Ok((pod, interval)) => {
                    match pod.window.read(window_metric(kind), Stat::Mean(span)) {
                        None => Observed::Missing(absent_reason(pod, kind).into()),
                        Some(r) if r.newest_unix_nanos < horizon => Observed::Missing(
                            format!(
                                "its newest sample is {} s old, older than the {} s window",
                                (now_unix_nanos - r.newest_unix_nanos) / 1_000_000_000,
                                span.as_secs()
                            )
                            .into(),
                        ),
                        Some(r) => Observed::Sample(Sample {
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
}
