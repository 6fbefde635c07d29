use super::*;
use crate::placement::config::{Config, PerResource};
use crate::placement::fixtures::node;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn now() -> Now {
    Now {
        monotonic: secs(1000),
        wall_unix_nanos: 0,
    }
}

/// Round figures: 1000m CPU, 1000 bytes, 4 GPUs; factors 100 % so the pod's
/// request is its estimate.
fn config() -> Headroom {
    let mut h = Config::default().headroom;
    h.estimated_scaling_factors = ScalingFactors {
        cpu: 100,
        memory: 100,
        gpu: 100,
    };
    h
}

fn loaded(cpu: Option<f64>, memory: Option<u64>, gpu: Option<f64>, disk: Option<f64>) -> NodeInput {
    let mut n = node("n", &[], &[]);
    n.allocatable = Resources {
        cpu_millicores: 1000,
        memory_bytes: 1000,
        gpus: 4,
        pods: 110,
    };
    n.load = Some(LiveLoad {
        received_at: secs(995),
        measured_at_unix_nanos: 1,
        window: secs(10),
        cpu_millicores: cpu,
        memory_bytes: memory,
        gpu_utilization_percent: gpu,
        disk_utilization_percent: disk,
        pending: Estimate::default(),
    });
    n
}

fn estimate(cpu: f64, memory: f64, gpus: f64) -> Estimate {
    Estimate {
        cpu_millicores: cpu,
        memory_bytes: memory,
        gpus,
    }
}

fn assess_with(
    pod: Estimate,
    gpus: u64,
    node: &NodeInput,
    config: &Headroom,
) -> (HeadroomDetail, Vec<Rejection>) {
    let mut out = Vec::new();
    let d = assess(pod, gpus, node, config, now(), &mut out);
    (d, out)
}

fn estimated(d: &HeadroomDetail) -> Vec<(LoadResource, Option<f64>, f64)> {
    d.resources
        .iter()
        .map(|r| (r.resource, r.estimated_percent, r.score))
        .collect()
}

/// coordinator-anchors.md §3.7 (Koordinator `estimatedUsedByResource`).
#[test]
fn a_pods_usage_is_estimated_as_koordinator_does() {
    let f = Config::default().headroom.estimated_scaling_factors;
    let r = |cpu, memory, gpus| Resources {
        cpu_millicores: cpu,
        memory_bytes: memory,
        gpus,
        pods: 0,
    };
    for (requests, limits, expected) in [
        // 85 % of the CPU request, 70 % of the memory request.
        (r(1000, 1000, 0), r(0, 0, 0), estimate(850.0, 700.0, 0.0)),
        // Rounded to whole units.
        (r(1, 3, 0), r(0, 0, 0), estimate(1.0, 2.0, 0.0)),
        // A limit above the request is taken whole.
        (
            r(1000, 1000, 0),
            r(2000, 4000, 0),
            estimate(2000.0, 4000.0, 0.0),
        ),
        // Equal: request × factor.
        (
            r(1000, 1000, 0),
            r(1000, 1000, 0),
            estimate(850.0, 700.0, 0.0),
        ),
        // Nothing requested: 250m and 200 MiB.
        (
            r(0, 0, 0),
            r(0, 0, 0),
            estimate(250.0, (200 << 20) as f64, 0.0),
        ),
        // Only a limit: the limit.
        (r(0, 0, 0), r(500, 600, 0), estimate(500.0, 600.0, 0.0)),
        // A limit below the request (Kubernetes refuses those): at most the limit.
        (
            r(1000, 1000, 0),
            r(500, 500, 0),
            estimate(500.0, 500.0, 0.0),
        ),
        // GPUs: counted busy at the GPU factor (100 %).
        (
            r(0, 0, 2),
            r(0, 0, 0),
            estimate(250.0, (200 << 20) as f64, 2.0),
        ),
    ] {
        assert_eq!(
            estimate_pod(requests, limits, f),
            expected,
            "{requests:?} {limits:?}"
        );
    }
    let half = ScalingFactors {
        cpu: 50,
        memory: 50,
        gpu: 50,
    };
    assert_eq!(
        estimate_pod(r(1000, 1000, 3), r(0, 0, 0), half),
        estimate(500.0, 500.0, 1.5)
    );
}

#[test]
fn headroom_is_the_weighted_mean_of_what_is_left() {
    let n = loaded(Some(400.0), Some(500), Some(50.0), Some(20.0));
    // CPU (400 + 100) / 1000 = 50 %, memory (500 + 100) / 1000 = 60 %, disk 20 %
    // busy; a pod without GPUs leaves them out. Scores 50, 40, 80.
    let (d, out) = assess_with(estimate(100.0, 100.0, 0.0), 0, &n, &config());
    assert_eq!(
        estimated(&d),
        [
            (LoadResource::Cpu, Some(50.0), 50.0),
            (LoadResource::Memory, Some(60.0), 40.0),
            (LoadResource::Disk, Some(20.0), 80.0),
        ]
    );
    assert!((d.score - 170.0 / 3.0).abs() < 1e-9, "{}", d.score);
    assert_eq!(out, []);
    // Weights: cpu 2, memory 1, disk 1 → (100 + 40 + 80) / 4.
    let mut c = config();
    c.resource_weights.cpu = 2;
    let (d, _) = assess_with(estimate(100.0, 100.0, 0.0), 0, &n, &c);
    assert_eq!(d.score, 55.0);
    // A resource weighted 0 is left out.
    c.resource_weights.disk = 0;
    let (d, _) = assess_with(estimate(100.0, 100.0, 0.0), 0, &n, &c);
    assert_eq!(d.resources.len(), 2);
    assert_eq!(d.score, 140.0 / 3.0);
    assert!(d.resources.iter().all(|r| r.absent.is_none()));
    assert_eq!(d.resources[0].weight, 2);
}

#[test]
fn pods_placed_since_the_measurement_count() {
    let mut n = loaded(Some(400.0), Some(500), Some(50.0), Some(20.0));
    n.load.as_mut().unwrap().pending = estimate(100.0, 200.0, 1.0);
    let (d, _) = assess_with(estimate(100.0, 100.0, 1.0), 1, &n, &config());
    // CPU 60 %, memory 80 %, GPU 50 + 100·(1 + 1)/4 = 100 %, disk 20 %.
    assert_eq!(
        estimated(&d),
        [
            (LoadResource::Cpu, Some(60.0), 40.0),
            (LoadResource::Memory, Some(80.0), 20.0),
            (LoadResource::Gpu, Some(100.0), 0.0),
            (LoadResource::Disk, Some(20.0), 80.0),
        ]
    );
    assert_eq!(d.score, 35.0);
}

#[test]
fn gpus_count_only_for_pods_that_request_them() {
    let n = loaded(Some(0.0), Some(0), Some(20.0), Some(0.0));
    let (d, _) = assess_with(estimate(0.0, 0.0, 1.0), 1, &n, &config());
    // 20 % + one of four devices busy = 45 %.
    assert_eq!(d.resources[2].resource, LoadResource::Gpu);
    assert_eq!(d.resources[2].estimated_percent, Some(45.0));
    assert_eq!(d.resources[2].score, 55.0);
    let (d, _) = assess_with(estimate(0.0, 0.0, 0.0), 0, &n, &config());
    assert!(d.resources.iter().all(|r| r.resource != LoadResource::Gpu));
    // Over 100 % scores 0, not less.
    let hot = loaded(Some(0.0), Some(0), Some(90.0), Some(0.0));
    let (d, _) = assess_with(estimate(0.0, 0.0, 1.0), 1, &hot, &config());
    assert_eq!(d.resources[2].estimated_percent, Some(115.0));
    assert_eq!(d.resources[2].score, 0.0);
}

/// coordinator-anchors.md §3.7: reject when round(estimated %) > threshold.
#[test]
fn a_node_over_a_threshold_is_filtered_out() {
    let c = config();
    for (cpu, memory, expected) in [
        // 65.4 % rounds to 65: not above 65.
        (654.0, 0, vec![]),
        (655.0, 0, vec![(LoadResource::Cpu, 65.5)]),
        (0.0, 954, vec![]),
        (0.0, 955, vec![(LoadResource::Memory, 95.5)]),
        (
            700.0,
            990,
            vec![(LoadResource::Cpu, 70.0), (LoadResource::Memory, 99.0)],
        ),
    ] {
        let n = loaded(Some(cpu), Some(memory), None, Some(99.0));
        let (_, out) = assess_with(estimate(0.0, 0.0, 0.0), 0, &n, &c);
        let want: Vec<Rejection> = expected
            .into_iter()
            .map(
                |(resource, estimated_percent)| Rejection::UsageAboveThreshold {
                    resource,
                    estimated_percent,
                    threshold_percent: if resource == LoadResource::Cpu {
                        65.0
                    } else {
                        95.0
                    },
                },
            )
            .collect();
        assert_eq!(out, want, "{cpu} {memory}");
    }
    // GPU and disk thresholds when configured; none for CPU and memory here.
    let mut c = config();
    c.usage_thresholds = PerResource {
        cpu: None,
        memory: None,
        gpu: Some(80.0),
        disk: Some(50.0),
    };
    let n = loaded(Some(1000.0), Some(1000), Some(60.0), Some(51.0));
    let (_, out) = assess_with(estimate(0.0, 0.0, 1.0), 1, &n, &c);
    assert_eq!(
        out,
        [
            Rejection::UsageAboveThreshold {
                resource: LoadResource::Gpu,
                estimated_percent: 85.0,
                threshold_percent: 80.0
            },
            Rejection::UsageAboveThreshold {
                resource: LoadResource::Disk,
                estimated_percent: 51.0,
                threshold_percent: 50.0
            },
        ]
    );
}

/// Missing figures: never filtered on, scored 0, the reason kept.
#[test]
fn missing_figures_are_not_invented() {
    let c = config();
    let pod = estimate(100.0, 100.0, 1.0);
    // No agent figures at all.
    let mut bare = loaded(None, None, None, None);
    bare.load = None;
    let (d, out) = assess_with(pod, 1, &bare, &c);
    assert_eq!(out, []);
    assert_eq!(d.score, 0.0);
    assert_eq!(d.resources.len(), 4);
    assert!(
        d.resources
            .iter()
            .all(|r| r.absent == Some(Absent::NoFigures)
                && r.estimated_percent.is_none()
                && r.score == 0.0)
    );
    // Some figures missing: those score 0, the others count.
    let partial = loaded(Some(500.0), None, None, Some(20.0));
    let (d, out) = assess_with(pod, 1, &partial, &c);
    assert_eq!(out, []);
    assert_eq!(
        d.resources.iter().map(|r| r.absent).collect::<Vec<_>>(),
        [
            None,
            Some(Absent::NotMeasured),
            Some(Absent::NotMeasured),
            None
        ]
    );
    // CPU 60 % → 40, memory 0, GPU 0, disk 80: 120 / 4.
    assert_eq!(d.score, 30.0);
    // Nothing allocatable: no percentage.
    let mut empty = loaded(Some(500.0), Some(500), Some(10.0), Some(0.0));
    empty.allocatable = Resources::default();
    let (d, out) = assess_with(pod, 1, &empty, &c);
    assert_eq!(out, []);
    assert_eq!(
        d.resources.iter().map(|r| r.absent).collect::<Vec<_>>(),
        [
            Some(Absent::NoCapacity),
            Some(Absent::NoCapacity),
            Some(Absent::NoCapacity),
            None
        ]
    );
}

#[test]
fn figures_older_than_the_limit_are_not_used() {
    let c = config();
    let mut n = loaded(Some(999.0), Some(999), None, Some(0.0));
    // Exactly at the limit (180 s): still used, and over the CPU threshold.
    n.load.as_mut().unwrap().received_at = secs(1000 - 180);
    let (d, out) = assess_with(estimate(0.0, 0.0, 0.0), 0, &n, &c);
    assert_eq!(out.len(), 2);
    assert!(d.resources.iter().all(|r| r.absent.is_none()));
    n.load.as_mut().unwrap().received_at = secs(1000 - 181);
    let (d, out) = assess_with(estimate(0.0, 0.0, 0.0), 0, &n, &c);
    assert_eq!(out, []);
    let too_old = Absent::TooOld {
        age: secs(181),
        limit: secs(180),
    };
    assert!(d.resources.iter().all(|r| r.absent == Some(too_old)));
    assert_eq!(
        too_old.to_string(),
        "the figures are 181s old, more than the 180s limit"
    );
    // A receipt time after `now` (another clock) counts as age 0.
    n.load.as_mut().unwrap().received_at = secs(5000);
    let (d, _) = assess_with(estimate(0.0, 0.0, 0.0), 0, &n, &c);
    assert!(d.resources.iter().all(|r| r.absent.is_none()));
}

#[test]
fn with_no_resource_weighed_the_score_is_zero() {
    let mut c = config();
    c.resource_weights = PerResource {
        cpu: 0,
        memory: 0,
        gpu: 1,
        disk: 0,
    };
    let n = loaded(Some(0.0), Some(0), Some(0.0), Some(0.0));
    let (d, out) = assess_with(estimate(0.0, 0.0, 0.0), 0, &n, &c);
    assert_eq!((d.score, d.resources.len(), out.len()), (0.0, 0, 0));
    let (d, _) = assess_with(estimate(0.0, 0.0, 1.0), 1, &n, &c);
    assert_eq!((d.score, d.resources.len()), (75.0, 1));
}

#[test]
fn reasons_and_names_read_plainly() {
    assert_eq!(
        Absent::NoFigures.to_string(),
        "no figures from the node's aistor agent"
    );
    assert_eq!(
        Absent::NotMeasured.to_string(),
        "the agent did not measure it"
    );
    assert_eq!(
        Absent::NoCapacity.to_string(),
        "the node has none allocatable"
    );
    assert_eq!(
        [
            LoadResource::Cpu,
            LoadResource::Memory,
            LoadResource::Gpu,
            LoadResource::Disk
        ]
        .map(LoadResource::as_str),
        ["cpu", "memory", "gpu", "disk"]
    );
}
