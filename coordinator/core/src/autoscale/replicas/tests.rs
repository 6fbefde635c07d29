//! The scenarios of upstream's `replica_calculator_test.go`, one row each with the
//! upstream test's name, plus our own edges.

use super::*;
use crate::autoscale::fixtures::{
    F, FAILED, NOW, PENDING, Pods, QPS, RUNNING, Start::Cool as C, Start::Hot as H, T, TESTING,
    name, pods, sample, two,
};
use crate::autoscale::metric::MetricKind::{Cpu, Gpu, Memory};

const TOLERANCE: Tolerances = Tolerances {
    scale_down: 0.1,
    scale_up: 0.1,
};

fn util(t: u32) -> MetricSpec {
    MetricSpec {
        kind: Cpu,
        target: Target::Utilization(t),
    }
}

fn qps(t: i64) -> MetricSpec {
    MetricSpec {
        kind: QPS,
        target: Target::AverageValue(t),
    }
}

fn run(
    current: u32,
    spec: MetricSpec,
    p: &Pods,
    tol: Tolerances,
) -> Result<MetricResult, MetricError> {
    replicas_for_metric(
        current,
        &spec,
        &p.facts(),
        &p.observations(),
        tol,
        TESTING,
        NOW,
    )
}

fn u(percent: i32, average_milli: i64) -> Current {
    Current::Utilization {
        percent,
        average_milli,
    }
}

fn avg(milli: i64) -> Current {
    Current::AverageValue { milli }
}

#[test]
fn upstream_replica_calculator_cases() {
    use Basis::*;
    let k1 = two(&[1000; 7]);
    let cases: Vec<(&str, u32, MetricSpec, Pods, u32, Current, Basis)> = vec![
        (
            "TestReplicaCalcScaleUp",
            3,
            util(30),
            pods(3).requests(&k1).levels(&two(&[300, 500, 700])),
            5,
            u(50, 1000),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleUpUnreadyLessScale",
            3,
            util(30),
            pods(3)
                .requests(&k1)
                .levels(&two(&[300, 500, 700]))
                .ready(&[F, T, T]),
            4,
            u(60, 1200),
            Rebalanced,
        ),
        (
            "TestReplicaCalcScaleUpHotCpuLessScale",
            3,
            util(30),
            pods(3)
                .requests(&k1)
                .levels(&two(&[300, 500, 700]))
                .start(&[H, C, C]),
            4,
            u(60, 1200),
            Rebalanced,
        ),
        (
            "TestReplicaCalcScaleUpUnreadyNoScale",
            3,
            util(30),
            pods(3)
                .requests(&k1)
                .levels(&two(&[400, 500, 700]))
                .ready(&[T, F, F]),
            3,
            u(40, 800),
            RebalanceReversed,
        ),
        (
            "TestReplicaCalcScaleHotCpuNoScale",
            3,
            util(30),
            pods(3)
                .requests(&k1)
                .levels(&two(&[400, 500, 700]))
                .ready(&[T, F, F])
                .start(&[C, H, H]),
            3,
            u(40, 800),
            RebalanceReversed,
        ),
        (
            "TestReplicaCalcScaleUpIgnoresFailedPods",
            2,
            util(30),
            pods(4)
                .requests(&k1)
                .levels(&two(&[500, 700]))
                .ready(&[T, T, F, F])
                .phase(&[RUNNING, RUNNING, FAILED, FAILED]),
            4,
            u(60, 1200),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleUpIgnoresDeletionPods",
            2,
            util(30),
            pods(4)
                .requests(&k1)
                .levels(&two(&[500, 700]))
                .ready(&[T, T, F, F])
                .deleting(&[false, false, true, true]),
            4,
            u(60, 1200),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleUpCM",
            3,
            qps(15000),
            pods(3).levels(&[20000, 10000, 30000]),
            4,
            avg(20000),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale",
            3,
            qps(15000),
            pods(3)
                .levels(&[50000, 10000, 30000])
                .ready(&[T, T, F])
                .start(&[C, C, H]),
            6,
            avg(30000),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown",
            3,
            qps(15000),
            pods(3)
                .levels(&[50000, 15000, 30000])
                .ready(&[F, T, F])
                .start(&[H, C, H]),
            7,
            avg(31666),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleDown",
            5,
            util(50),
            pods(5)
                .requests(&k1)
                .levels(&two(&[100, 300, 500, 250, 250])),
            3,
            u(28, 560),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleDownCM",
            5,
            qps(20000),
            pods(5).levels(&[12000; 5]),
            3,
            avg(12000),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleDownExcludeUnreadyPods",
            5,
            util(50),
            pods(5)
                .requests(&k1)
                .levels(&two(&[100, 300, 500, 250, 250]))
                .ready(&[T, T, T, F, F]),
            2,
            u(30, 600),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleDownExcludeUnscheduledPods",
            5,
            util(50),
            pods(5)
                .requests(&k1)
                .levels(&two(&[100]))
                .ready(&[T, F, F, F, F])
                .phase(&[RUNNING, PENDING, PENDING, PENDING, PENDING]),
            1,
            u(10, 200),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleDownIgnoreHotCpuPods",
            5,
            util(50),
            pods(5)
                .requests(&k1)
                .levels(&two(&[100, 300, 500, 250, 250]))
                .start(&[C, C, C, H, H]),
            2,
            u(30, 600),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleDownIgnoresFailedPods",
            5,
            util(50),
            pods(7)
                .requests(&k1)
                .levels(&two(&[100, 300, 500, 250, 250]))
                .ready(&[T, T, T, T, T, F, F])
                .phase(&[RUNNING, RUNNING, RUNNING, RUNNING, RUNNING, FAILED, FAILED]),
            3,
            u(28, 560),
            Ratio,
        ),
        (
            "TestReplicaCalcScaleDownIgnoresDeletionPods",
            5,
            util(50),
            pods(7)
                .requests(&k1)
                .levels(&two(&[100, 300, 500, 250, 250]))
                .ready(&[T, T, T, T, T, F, F])
                .deleting(&[false, false, false, false, false, true, true]),
            3,
            u(28, 560),
            Ratio,
        ),
        (
            "TestReplicaCalcTolerance",
            3,
            util(100),
            pods(3)
                .requests(&two(&[900, 1000, 1100]))
                .levels(&two(&[1010, 1030, 1020])),
            3,
            u(102, 2040),
            WithinTolerance,
        ),
        (
            "TestReplicaCalcToleranceCM",
            3,
            qps(20000),
            pods(3).levels(&[20000, 21000, 21000]),
            3,
            avg(20666),
            WithinTolerance,
        ),
        (
            "TestReplicaCalcSuperfluousMetrics",
            4,
            util(100),
            pods(4)
                .requests(&k1)
                .levels(&two(&[4000, 9500, 3000, 7000, 3200, 2000])),
            24,
            u(587, 11750),
            Ratio,
        ),
        (
            "TestReplicaCalcMissingMetrics",
            4,
            util(100),
            pods(4).requests(&k1).levels(&two(&[400, 95])),
            3,
            u(24, 495),
            Rebalanced,
        ),
        (
            "TestPlainMetricReplicaCalcMissingMetricsNoChangeEq",
            5,
            qps(20000),
            pods(5).levels(&[20000, 19000, 21000]),
            5,
            avg(20000),
            RebalancedWithinTolerance,
        ),
        (
            "TestReplicaCalcMissingMetricsNoChangeEq",
            2,
            util(100),
            pods(2).requests(&k1).levels(&two(&[1000])),
            2,
            u(100, 2000),
            RebalancedWithinTolerance,
        ),
        (
            "TestReplicaCalcMissingMetricsNoChangeGt",
            2,
            util(100),
            pods(2).requests(&k1).levels(&two(&[1900])),
            2,
            u(190, 3800),
            RebalancedWithinTolerance,
        ),
        (
            "TestReplicaCalcMissingMetricsNoChangeLt",
            2,
            util(100),
            pods(2).requests(&k1).levels(&two(&[600])),
            2,
            u(60, 1200),
            Rebalanced,
        ),
        (
            "TestReplicaCalcMissingMetricsUnreadyChange",
            3,
            util(50),
            pods(3)
                .requests(&k1)
                .levels(&two(&[100, 450]))
                .ready(&[F, T, T]),
            3,
            u(45, 900),
            RebalanceReversed,
        ),
        (
            "TestReplicaCalcMissingMetricsHotCpuNoChange",
            3,
            util(50),
            pods(3)
                .requests(&k1)
                .levels(&two(&[100, 450]))
                .start(&[H, C, C]),
            3,
            u(45, 900),
            RebalanceReversed,
        ),
        (
            "TestReplicaCalcMissingMetricsUnreadyScaleUp",
            3,
            util(50),
            pods(3)
                .requests(&k1)
                .levels(&two(&[100, 2000]))
                .ready(&[F, T, T]),
            4,
            u(200, 4000),
            Rebalanced,
        ),
        (
            "TestReplicaCalcMissingMetricsHotCpuScaleUp",
            3,
            util(50),
            pods(3)
                .requests(&k1)
                .levels(&two(&[100, 2000]))
                .ready(&[F, T, T])
                .start(&[H, C, C]),
            4,
            u(200, 4000),
            Rebalanced,
        ),
        (
            "TestReplicaCalcMissingMetricsUnreadyScaleDown",
            4,
            util(50),
            pods(4)
                .requests(&k1)
                .levels(&two(&[100, 100, 100]))
                .ready(&[F, T, T, T]),
            3,
            u(10, 200),
            Rebalanced,
        ),
        (
            "TestReplicaCalcMissingMetricsScaleDownTargetOver100",
            4,
            util(300),
            pods(4)
                .requests(&two(&[1000, 1000, 2000, 2000]))
                .levels(&two(&[200, 100, 100]))
                .ready(&[F, T, T, T]),
            2,
            u(6, 200),
            Rebalanced,
        ),
        (
            "TestReplicaCalcDuringRollingUpdateWithMaxSurge",
            2,
            util(50),
            pods(3).requests(&k1).levels(&two(&[100, 100])),
            2,
            u(10, 200),
            RebalanceAgainstDirection,
        ),
        (
            "TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM",
            2,
            qps(17000),
            pods(3).levels(&[10000, 10000]),
            2,
            avg(10000),
            RebalanceAgainstDirection,
        ),
    ];
    for (name, current, spec, p, want, value, basis) in cases {
        let got = run(current, spec, &p, TOLERANCE).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (got.proposal, got.current, got.basis),
            (want, value, basis),
            "{name}"
        );
        assert_eq!(
            got.rebalanced_ratio.is_some(),
            !matches!(basis, Ratio | WithinTolerance),
            "{name}"
        );
    }
}

// TestReplicaCalcComputedToleranceAlgImplementation: a target computed to sit just
// outside the band scales 10 pods to 9; just inside, it keeps 10.
#[test]
fn computed_tolerance_regression() {
    let start_pods = 10usize;
    let used_total: i64 = 1500;
    let requested_total: i64 = 3000;
    let requested_to_used = (requested_total / used_total) as f64;
    let per_pod = requested_total / start_pods as i64;
    let offsets = [100, -100, 10, -10, 2, -2, 1, -1, 0, 0];
    let requests: Vec<i64> = offsets.iter().map(|o| per_pod + o).collect();
    let p = pods(start_pods)
        .requests(&two(&requests))
        .levels(&two(&[used_total / 10; 10]));

    let target = (1.0 / (requested_to_used * (1.0 - 0.1))).abs() + 0.01;
    let percent = (target * 100.0) as u32;
    let used_ratio = used_total as f64 / (requested_total as f64 * target);
    let final_pods = (used_ratio * start_pods as f64).ceil() as u32;
    assert_eq!(final_pods, 9);
    let got = run(10, util(percent), &p, TOLERANCE).unwrap();
    assert_eq!((got.proposal, got.current), (final_pods, u(50, 300)));

    let target = (1.0 / (requested_to_used * (1.0 - 0.1))).abs() + 0.004;
    let got = run(10, util((target * 100.0) as u32), &p, TOLERANCE).unwrap();
    assert_eq!((got.proposal, got.basis), (10, Basis::WithinTolerance));
}

#[test]
fn upstream_error_cases() {
    // TestReplicaCalcEmptyCPURequest: a pod without a request fails the metric,
    // naming the pod.
    let p = pods(1).levels(&two(&[200]));
    assert_eq!(
        run(1, util(100), &p, TOLERANCE),
        Err(MetricError::MissingRequest(vec![name(0)]))
    );
    // TestReplicaCalcEmptyMetrics: no pod has a value.
    let p = pods(4).requests(&two(&[1000; 4]));
    match run(4, util(100), &p, TOLERANCE) {
        Err(MetricError::NoReadyValues(c)) => assert_eq!((c.missing, c.ready), (4, 0)),
        other => panic!("{other:?}"),
    }
    // TestReplicaCalcDisjointResourcesMetrics: the only value is of another pod.
    let p = pods(1).requests(&two(&[1000]));
    let seen = [Observation {
        pod: "an-older-pod-name".into(),
        observed: Observed::Sample(sample(200)),
    }];
    let got = replicas_for_metric(1, &util(100), &p.facts(), &seen, TOLERANCE, TESTING, NOW);
    assert!(matches!(got, Err(MetricError::NoReadyValues(_))), "{got:?}");
}

#[test]
fn tolerance_is_a_band_configurable_per_direction() {
    // Mean 21000 against 20000: ratio 1.05.
    let up = pods(4).levels(&[21000; 4]);
    assert_eq!(
        run(4, qps(20000), &up, TOLERANCE).unwrap().basis,
        Basis::WithinTolerance
    );
    let strict_up = Tolerances {
        scale_up: 0.01,
        scale_down: 0.5,
    };
    assert_eq!(run(4, qps(20000), &up, strict_up).unwrap().proposal, 5);
    // Mean 19000: ratio 0.95, inside 10 % down, outside 1 % down.
    let down = pods(4).levels(&[19000; 4]);
    assert_eq!(run(4, qps(20000), &down, strict_up).unwrap().proposal, 4);
    let strict_down = Tolerances {
        scale_up: 0.5,
        scale_down: 0.01,
    };
    assert_eq!(run(4, qps(20000), &down, strict_down).unwrap().proposal, 4);
    let got = run(20, qps(20000), &pods(20).levels(&[19000; 20]), strict_down).unwrap();
    assert_eq!((got.proposal, got.basis), (19, Basis::Ratio));
    // The band's edges are inside it.
    let t = Tolerances {
        scale_down: 0.25,
        scale_up: 0.5,
    };
    assert!(t.contains(0.75) && t.contains(1.5) && t.contains(1.0));
    assert!(!t.contains(0.7499) && !t.contains(1.5001));
    assert_eq!(
        Tolerances::both(0.2),
        Tolerances {
            scale_down: 0.2,
            scale_up: 0.2
        }
    );
}

#[test]
fn targets_must_make_sense_for_the_kind() {
    let p = pods(2).requests(&[1000, 1000]).levels(&[500, 500]);
    for spec in [
        MetricSpec {
            kind: Gpu,
            target: Target::Utilization(50),
        },
        util(0),
        qps(0),
        qps(-5),
    ] {
        assert_eq!(
            run(2, spec, &p, TOLERANCE),
            Err(MetricError::InvalidTarget(spec))
        );
    }
    // Memory utilisation reads the memory request.
    let mem = MetricSpec {
        kind: Memory,
        target: Target::Utilization(50),
    };
    let got = run(2, mem, &p, TOLERANCE).unwrap();
    assert_eq!((got.proposal, got.current), (2, u(50, 500)));
    // GPU and storage take average values.
    let gpu = MetricSpec {
        kind: Gpu,
        target: Target::AverageValue(250),
    };
    assert_eq!(run(2, gpu, &p, TOLERANCE).unwrap().proposal, 4);
}

#[test]
fn no_pods_and_zero_requests_are_errors() {
    assert_eq!(
        run(3, util(50), &pods(0), TOLERANCE),
        Err(MetricError::NoPods)
    );
    let p = pods(2).requests(&[0, 0]).levels(&[5, 5]);
    assert_eq!(
        run(2, util(50), &p, TOLERANCE),
        Err(MetricError::ZeroRequests)
    );
    // Zero only once the missing pod is counted: the rebalanced ratio fails too.
    let p = pods(2).requests(&[1000, -1000]).levels(&[100]);
    assert_eq!(
        run(2, util(50), &p, TOLERANCE),
        Err(MetricError::ZeroRequests)
    );
}

#[test]
fn missing_pods_keep_their_reason_and_later_observations_win() {
    let p = pods(3).requests(&[1000; 3]);
    let seen = [
        Observation {
            pod: name(0),
            observed: Observed::Sample(sample(9000)),
        },
        Observation {
            pod: name(0),
            observed: Observed::Sample(sample(500)),
        },
        Observation {
            pod: name(1),
            observed: Observed::Missing("node worker-2 is stale".into()),
        },
    ];
    let got =
        replicas_for_metric(3, &util(50), &p.facts(), &seen, TOLERANCE, TESTING, NOW).unwrap();
    assert_eq!(
        got.current,
        u(50, 500),
        "the later value of test-pod-0 counts"
    );
    assert_eq!(
        got.pods,
        PodCounts {
            ready: 1,
            unready: 0,
            missing: 2,
            ignored: 0,
            missing_reasons: vec![
                (name(1), "node worker-2 is stale".into()),
                (name(2), "no observation of this pod".into()),
            ],
        }
    );
    // Ratio exactly 1 with pods missing: nothing is assumed, the count stays.
    assert_eq!(
        (got.proposal, got.basis, got.rebalanced_ratio),
        (3, Basis::RebalancedWithinTolerance, Some(1.0))
    );
}

#[test]
fn assumed_values_damp_the_change() {
    // Scale-up with a missing pod: it is assumed idle, so two pods at 100 % of a
    // 50 % target and one idle give 66 %.
    let p = pods(3).requests(&[1000; 3]).levels(&[1000, 1000]);
    let got = run(3, util(50), &p, TOLERANCE).unwrap();
    assert_eq!(got.ratio, 2.0);
    assert_eq!(got.rebalanced_ratio, Some(66.0 / 50.0));
    assert_eq!(got.proposal, 4);
    // Scale-down of an average-value metric with a missing pod: assumed at the target.
    let p = pods(4).levels(&[1000, 1000, 1000]);
    let got = run(4, qps(10000), &p, TOLERANCE).unwrap();
    assert_eq!(got.rebalanced_ratio, Some(3250.0 / 10000.0));
    assert_eq!(got.proposal, 2);
    // Unready pods are ignored on a scale-down (not assumed at anything).
    let p = pods(4)
        .requests(&[1000; 4])
        .levels(&[100, 100, 100, 100])
        .ready(&[F, T, T, T]);
    let got = run(4, util(50), &p, TOLERANCE).unwrap();
    assert_eq!(
        (got.proposal, got.pods.unready, got.rebalanced_ratio),
        (1, 1, None)
    );
}

#[test]
fn huge_and_odd_values_never_panic() {
    let p = pods(2).requests(&[1, 1]).levels(&[i64::MAX, i64::MAX]);
    let got = run(2, util(1), &p, TOLERANCE).unwrap();
    assert_eq!(got.proposal, MAX_REPLICAS);
    assert_eq!(got.current, u(i32::MAX, i64::MAX));
    let p = pods(2).levels(&[i64::MAX, i64::MAX]);
    assert_eq!(
        run(2, qps(1), &p, TOLERANCE).unwrap().proposal,
        MAX_REPLICAS
    );
    let p = pods(2).requests(&[1, 1]).levels(&[i64::MIN, i64::MIN]);
    let got = run(2, util(1), &p, TOLERANCE).unwrap();
    assert_eq!((got.proposal, got.current), (0, u(i32::MIN, i64::MIN)));
    let p = pods(2).levels(&[-5, -5]);
    assert_eq!(run(2, qps(1), &p, TOLERANCE).unwrap().proposal, 0);
    assert_eq!(ceil_replicas(f64::NAN), 0);
    assert_eq!(ceil_replicas(2.000001), 3);
}

#[test]
fn errors_explain_themselves() {
    let counts = PodCounts {
        ready: 0,
        unready: 1,
        missing: 2,
        ignored: 3,
        missing_reasons: vec![],
    };
    let cases = [
        (
            MetricError::Unavailable("agent gone".into()),
            "not observed: agent gone",
        ),
        (MetricError::NoPods, "the target's selector matches no pod"),
        (
            MetricError::NoReadyValues(counts),
            "no pod has a value to trust (2 missing, 1 unready, 3 ignored)",
        ),
        (
            MetricError::MissingRequest(vec!["a".into(), "b".into()]),
            "no request for this resource in pod a, b",
        ),
        (
            MetricError::ZeroRequests,
            "the counted pods' requests sum to zero",
        ),
        (
            MetricError::InvalidTarget(qps(0)),
            "target AverageValue(0) cannot be used with metric storage-iops",
        ),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn edges_of_the_rebalancing_rules() {
    // Ratio exactly 1 with an unready pod: no scale-up is proposed, so the unready
    // pod is not assumed idle and the band keeps the count.
    let p = pods(3)
        .requests(&[1000; 3])
        .levels(&[0, 500, 500])
        .ready(&[F, T, T]);
    let got = run(3, util(50), &p, TOLERANCE).unwrap();
    assert_eq!(
        (got.proposal, got.basis, got.rebalanced_ratio),
        (3, Basis::WithinTolerance, None)
    );
    // A scale-up whose rebalanced count would still be below the current count
    // (more replicas than pods, one missing) keeps the count.
    let p = pods(3).requests(&[1000; 3]).levels(&[2000, 2000]);
    let got = run(10, util(100), &p, TOLERANCE).unwrap();
    assert_eq!(
        (got.proposal, got.basis),
        (10, Basis::RebalanceAgainstDirection)
    );
    assert_eq!(got.rebalanced_ratio, Some(1.33));
}

#[test]
fn saturation_keeps_the_sign() {
    assert_eq!(saturating_i64(i128::from(i64::MAX) + 1), i64::MAX);
    assert_eq!(saturating_i64(i128::from(i64::MIN) - 1), i64::MIN);
    assert_eq!(saturating_i64(-7), -7);
    // A missing pod with an absurd request on a scale-down is assumed at the bound.
    let p = pods(2).requests(&[1000, i64::MAX]).levels(&[10]);
    let got = run(2, util(300), &p, TOLERANCE).unwrap();
    assert_eq!(got.current, u(1, 10));
    let p = pods(2).requests(&[1000, i64::MIN]).levels(&[10]);
    assert!(run(2, util(300), &p, TOLERANCE).is_ok());
}

#[test]
fn every_pod_is_counted_once_in_its_group() {
    // ready, unready (False), unready (hot), pending, failed, deleting, missing
    let p = pods(7)
        .requests(&[1000; 7])
        .levels(&[500, 500, 500, 500, 500, 500])
        .ready(&[T, F, T, T, T, T, T])
        .start(&[C, C, H, C, C, C, C])
        .phase(&[RUNNING, RUNNING, RUNNING, PENDING, FAILED, RUNNING, RUNNING])
        .deleting(&[false, false, false, false, false, true, false]);
    let got = run(5, util(50), &p, TOLERANCE).unwrap();
    let c = got.pods;
    assert_eq!((c.ready, c.unready, c.missing, c.ignored), (1, 3, 1, 2));
    assert_eq!(
        c.missing_reasons,
        vec![(name(6), "no observation of this pod".into())]
    );
}

#[test]
fn a_rebalanced_scale_up_to_the_current_count_is_still_a_proposal() {
    // 4 replicas, 3 pods, one missing: ratio 2, with the missing one idle 4/3,
    // ceil(4/3 × 3) = 4 = the current count; not "against the direction".
    let p = pods(3).requests(&[1000; 3]).levels(&[2000, 2000]);
    let got = run(4, util(100), &p, TOLERANCE).unwrap();
    assert_eq!((got.proposal, got.basis), (4, Basis::Rebalanced));
}

#[test]
fn with_an_empty_band_a_rebalanced_ratio_of_exactly_one_is_followed() {
    // Negative tolerances make a band that holds nothing (the API refuses them;
    // the arithmetic does not), so the rules after the band are reached at 1.
    let none = Tolerances {
        scale_down: -0.5,
        scale_up: -0.5,
    };
    // Scale-down: 0 % measured, the missing pod assumed at its full request:
    // (0 + 1000) / 2000 = 50 % = the target.
    let p = pods(2).requests(&[1000; 2]).levels(&[0]);
    let got = run(1, util(50), &p, none).unwrap();
    assert_eq!(
        (got.rebalanced_ratio, got.proposal, got.basis),
        (Some(1.0), 2, Basis::Rebalanced)
    );
    // Scale-up: 100 % measured, the missing pod idle: 50 % = the target.
    let p = pods(2).requests(&[1000; 2]).levels(&[1000]);
    let got = run(3, util(50), &p, none).unwrap();
    assert_eq!(
        (got.rebalanced_ratio, got.proposal, got.basis),
        (Some(1.0), 2, Basis::Rebalanced)
    );
}
