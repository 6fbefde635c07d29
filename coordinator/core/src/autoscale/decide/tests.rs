//! The scenarios of upstream's `horizontal_test.go`, one row each with the
//! upstream test's name, plus our own cases for what the record keeps.
//!
//! Upstream's suite raises the scale-up cap factor from 2 to 8 so it does not
//! interfere; we keep the real factor, which changes no expectation below.

use super::*;
use crate::autoscale::behavior::{Policy, PolicyKind, ScalingRules, SelectPolicy};
use crate::autoscale::fixtures::{
    F, FAILED, NOW, Pods, QPS, RUNNING, SEC, Start::Cool as C, Start::Hot as H, T, TESTING, now,
    pods,
};
use crate::autoscale::history::Recommendation;
use crate::autoscale::metric::MetricKind;
use ConditionStatus as S;
use ConditionType::{AbleToScale, ScalingActive, ScalingLimited};

fn config() -> Config {
    Config {
        readiness: TESTING,
        ..Config::default()
    }
}

/// An upstream `testCase`: a CPU utilisation target and/or a "qps" per-pod
/// target (both read the same levels, as upstream's fakes do), and optionally a
/// metric that cannot be observed (upstream's "CheddarCheese" or failing client).
#[derive(Clone)]
struct Hpa {
    min: u32,
    max: u32,
    current: u32,
    cpu: Option<u32>,
    qps: Option<i64>,
    invalid: bool,
    pods: Pods,
    behavior: Option<Behavior>,
    history: History,
}

fn hpa(min: u32, max: u32, current: u32) -> Hpa {
    Hpa {
        min,
        max,
        current,
        cpu: None,
        qps: None,
        invalid: false,
        pods: pods(current as usize),
        behavior: None,
        history: History::default(),
    }
}

/// Upstream's `recommendations: []timestampedRecommendation{}`: known, nothing stored.
fn known() -> History {
    History {
        seen: true,
        ..History::default()
    }
}

impl Hpa {
    fn cpu(mut self, target: u32) -> Self {
        self.cpu = Some(target);
        self
    }
    fn qps(mut self, target: i64) -> Self {
        self.qps = Some(target);
        self
    }
    fn invalid(mut self) -> Self {
        self.invalid = true;
        self
    }
    fn pods(mut self, p: Pods) -> Self {
        self.pods = p;
        self
    }
    fn behavior(mut self, b: Behavior) -> Self {
        self.behavior = Some(b);
        self
    }
    fn history(mut self, h: History) -> Self {
        self.history = h;
        self
    }

    fn spec(&self) -> (Spec, Vec<Observations>) {
        let mut metrics = Vec::new();
        let mut seen = Vec::new();
        if let Some(t) = self.cpu {
            metrics.push(MetricSpec {
                kind: MetricKind::Cpu,
                target: Target::Utilization(t),
            });
            seen.push(Ok(self.pods.observations()));
        }
        if let Some(t) = self.qps {
            metrics.push(MetricSpec {
                kind: QPS,
                target: Target::AverageValue(t),
            });
            seen.push(Ok(self.pods.observations()));
        }
        if self.invalid {
            metrics.push(MetricSpec {
                kind: MetricKind::Gpu,
                target: Target::AverageValue(1000),
            });
            seen.push(Err("the GPU source is unreachable".into()));
        }
        let spec = Spec {
            min_replicas: Some(self.min),
            max_replicas: self.max,
            metrics,
            behavior: self.behavior.clone(),
        };
        (spec, seen)
    }

    fn sync(&self) -> Decision {
        let (spec, seen) = self.spec();
        let facts = self.pods.facts();
        let input = SyncInput {
            current_replicas: self.current,
            pods: &facts,
            observations: &seen,
        };
        decide(&spec, &config(), &input, self.history.clone(), &[], now())
    }
}

type Want = Vec<(ConditionType, ConditionStatus, Reason)>;

/// Upstream's `statusOk`, with overrides by condition type.
fn ok(overrides: &[(ConditionType, ConditionStatus, Reason)]) -> Want {
    let mut want = vec![
        (AbleToScale, S::True, Reason::SucceededRescale),
        (ScalingActive, S::True, Reason::ValidMetricFound),
        (ScalingLimited, S::False, Reason::DesiredWithinRange),
    ];
    for o in overrides {
        if let Some(w) = want.iter_mut().find(|w| w.0 == o.0) {
            *w = *o;
        }
    }
    want
}

const READY_FOR_NEW: (ConditionType, ConditionStatus, Reason) =
    (AbleToScale, S::True, Reason::ReadyForNewScale);

fn limited(r: Reason) -> (ConditionType, ConditionStatus, Reason) {
    (ScalingLimited, S::True, r)
}

fn triples(d: &Decision) -> Want {
    d.conditions
        .iter()
        .map(|c| (c.kind, c.status, c.reason))
        .collect()
}

fn rules(
    pods: u32,
    pods_period: u64,
    percent: u32,
    percent_period: u64,
    window: u64,
) -> ScalingRules {
    let mut policies = Vec::new();
    if pods != 0 {
        policies.push(Policy {
            kind: PolicyKind::Pods,
            value: pods,
            period: Duration::from_secs(pods_period),
        });
    }
    if percent != 0 {
        policies.push(Policy {
            kind: PolicyKind::Percent,
            value: percent,
            period: Duration::from_secs(percent_period),
        });
    }
    ScalingRules {
        stabilization_window: Some(Duration::from_secs(window)),
        select_policy: Some(SelectPolicy::Max),
        policies: (!policies.is_empty()).then_some(policies),
        tolerance: None,
    }
}

fn up(r: ScalingRules) -> Behavior {
    Behavior {
        scale_up: Some(r),
        scale_down: None,
    }
}

#[test]
fn upstream_horizontal_cases() {
    let k = |n| vec![1000; n];
    let cases: Vec<(&str, Hpa, u32, Want)> = vec![
        (
            "TestScaleUp",
            hpa(2, 6, 3)
                .cpu(30)
                .pods(pods(3).requests(&k(3)).levels(&[300, 500, 700])),
            5,
            ok(&[]),
        ),
        (
            "TestScaleUpUnreadyLessScale",
            hpa(2, 6, 3).cpu(30).pods(
                pods(3)
                    .requests(&k(3))
                    .levels(&[300, 500, 700])
                    .ready(&[F, T, T]),
            ),
            4,
            ok(&[]),
        ),
        (
            "TestScaleUpHotCpuLessScale",
            hpa(2, 6, 3).cpu(30).pods(
                pods(3)
                    .requests(&k(3))
                    .levels(&[300, 500, 700])
                    .start(&[H, C, C]),
            ),
            4,
            ok(&[]),
        ),
        (
            "TestScaleUpUnreadyNoScale",
            hpa(2, 6, 3).cpu(30).pods(
                pods(3)
                    .requests(&k(3))
                    .levels(&[400, 500, 700])
                    .ready(&[T, F, F]),
            ),
            3,
            ok(&[READY_FOR_NEW]),
        ),
        (
            "TestScaleUpHotCpuNoScale",
            hpa(2, 6, 3).cpu(30).pods(
                pods(3)
                    .requests(&k(3))
                    .levels(&[400, 500, 700])
                    .ready(&[T, F, F])
                    .start(&[C, H, H]),
            ),
            3,
            ok(&[READY_FOR_NEW]),
        ),
        (
            "TestScaleUpIgnoresFailedPods",
            hpa(2, 6, 2).cpu(30).pods(
                pods(4)
                    .requests(&k(4))
                    .levels(&[500, 700])
                    .ready(&[T, T, F, F])
                    .phase(&[RUNNING, RUNNING, FAILED, FAILED]),
            ),
            4,
            ok(&[]),
        ),
        (
            "TestScaleUpIgnoresDeletionPods",
            hpa(2, 6, 2).cpu(30).pods(
                pods(4)
                    .requests(&k(4))
                    .levels(&[500, 700])
                    .ready(&[T, T, F, F])
                    .deleting(&[false, false, true, true]),
            ),
            4,
            ok(&[]),
        ),
        (
            "TestScaleUpCM",
            hpa(2, 6, 3)
                .qps(15000)
                .pods(pods(3).levels(&[20000, 10000, 30000])),
            4,
            ok(&[]),
        ),
        (
            "TestScaleUpCMUnreadyAndHotCpuNoLessScale",
            hpa(2, 6, 3).qps(15000).pods(
                pods(3)
                    .levels(&[50000, 10000, 30000])
                    .ready(&[T, T, F])
                    .start(&[C, C, H]),
            ),
            6,
            ok(&[]),
        ),
        (
            "TestScaleUpCMUnreadyandCpuHot",
            hpa(2, 6, 3).qps(15000).pods(
                pods(3)
                    .levels(&[50000, 15000, 30000])
                    .ready(&[F, T, F])
                    .start(&[H, C, H]),
            ),
            6,
            ok(&[limited(Reason::TooManyReplicas)]),
        ),
        (
            "TestScaleUpHotCpuNoScaleWouldScaleDown",
            hpa(2, 6, 3)
                .qps(15000)
                .pods(pods(3).levels(&[50000, 15000, 30000]).start(&[H, C, H])),
            6,
            ok(&[limited(Reason::TooManyReplicas)]),
        ),
        (
            "TestScaleDown",
            hpa(2, 6, 5)
                .cpu(50)
                .pods(pods(5).requests(&k(5)).levels(&[100, 300, 500, 250, 250]))
                .history(known()),
            3,
            ok(&[]),
        ),
        (
            "TestScaleDownWithScalingRules",
            hpa(2, 6, 5)
                .cpu(50)
                .pods(pods(5).requests(&k(5)).levels(&[100, 300, 500, 250, 250]))
                .behavior(up(rules(0, 0, 100, 15, 30)))
                .history(known()),
            3,
            ok(&[]),
        ),
        (
            "TestScaleUpOneMetricInvalid",
            hpa(2, 6, 3)
                .cpu(30)
                .invalid()
                .pods(pods(3).requests(&k(3)).levels(&[300, 400, 500])),
            4,
            ok(&[]),
        ),
        (
            "TestScaleUpOneMetricEmpty",
            hpa(2, 6, 3)
                .cpu(30)
                .invalid()
                .pods(pods(3).requests(&k(3)).levels(&[300, 400, 500])),
            4,
            ok(&[]),
        ),
        (
            "TestScaleUpFromZeroOneMetricInvalid",
            hpa(0, 6, 0)
                .cpu(30)
                .invalid()
                .pods(pods(3).requests(&k(3)).levels(&[300, 400, 500]))
                .history(known()),
            4,
            ok(&[]),
        ),
        (
            "TestScaleUpBothMetricsEmpty (our invalid metric is a per-pod one)",
            hpa(2, 6, 3).invalid().pods(pods(3).requests(&k(3))),
            3,
            vec![
                (AbleToScale, S::True, Reason::SucceededGetScale),
                (ScalingActive, S::False, Reason::FailedGetPodsMetric),
            ],
        ),
        (
            // Modern upstream (after kubernetes#99514): a blind metric blocks the
            // scale-down and ScalingActive carries its reason.
            "TestNoScaleDownOneMetricInvalid",
            hpa(2, 6, 5)
                .cpu(50)
                .invalid()
                .pods(pods(5).requests(&k(5)).levels(&[100, 300, 500, 250, 250]))
                .history(known()),
            5,
            vec![
                (AbleToScale, S::True, Reason::SucceededGetScale),
                (ScalingActive, S::False, Reason::FailedGetPodsMetric),
            ],
        ),
        (
            "TestScaleDownStabilizeInitialSize",
            hpa(2, 6, 5)
                .cpu(50)
                .pods(pods(5).requests(&k(5)).levels(&[100, 300, 500, 250, 250])),
            5,
            ok(&[(AbleToScale, S::True, Reason::ScaleDownStabilized)]),
        ),
        (
            "TestScaleDownCM",
            hpa(2, 6, 5)
                .qps(20000)
                .pods(pods(5).levels(&[12000; 5]))
                .history(known()),
            3,
            ok(&[]),
        ),
        (
            "TestScaleDownIncludeUnreadyPods",
            hpa(2, 6, 5)
                .cpu(50)
                .pods(
                    pods(5)
                        .requests(&k(5))
                        .levels(&[100, 300, 500, 250, 250])
                        .ready(&[T, T, T, F, F]),
                )
                .history(known()),
            2,
            ok(&[]),
        ),
        (
            "TestScaleDownIgnoreHotCpuPods",
            hpa(2, 6, 5)
                .cpu(50)
                .pods(
                    pods(5)
                        .requests(&k(5))
                        .levels(&[100, 300, 500, 250, 250])
                        .start(&[C, C, C, H, H]),
                )
                .history(known()),
            2,
            ok(&[]),
        ),
        (
            "TestScaleDownIgnoresFailedPods",
            hpa(2, 6, 5)
                .cpu(50)
                .pods(
                    pods(7)
                        .requests(&k(7))
                        .levels(&[100, 300, 500, 250, 250])
                        .ready(&[T, T, T, T, T, F, F])
                        .phase(&[RUNNING, RUNNING, RUNNING, RUNNING, RUNNING, FAILED, FAILED]),
                )
                .history(known()),
            3,
            ok(&[]),
        ),
        (
            "TestScaleDownIgnoresDeletionPods",
            hpa(2, 6, 5)
                .cpu(50)
                .pods(
                    pods(7)
                        .requests(&k(7))
                        .levels(&[100, 300, 500, 250, 250])
                        .ready(&[T, T, T, T, T, F, F])
                        .deleting(&[false, false, false, false, false, true, true]),
                )
                .history(known()),
            3,
            ok(&[]),
        ),
        (
            "TestTolerance",
            hpa(1, 5, 3).cpu(100).pods(
                pods(3)
                    .requests(&[900, 1000, 1100])
                    .levels(&[1010, 1030, 1020]),
            ),
            3,
            ok(&[READY_FOR_NEW]),
        ),
        (
            "TestToleranceCM",
            hpa(1, 5, 3)
                .qps(20000)
                .pods(pods(3).levels(&[20000, 20001, 21000])),
            3,
            ok(&[READY_FOR_NEW]),
        ),
        (
            "TestMinReplicas",
            hpa(2, 5, 3)
                .cpu(90)
                .pods(pods(3).requests(&[900, 1000, 1100]).levels(&[10, 95, 10]))
                .history(known()),
            2,
            ok(&[limited(Reason::TooFewReplicas)]),
        ),
        (
            "TestZeroMinReplicasDesiredZero",
            hpa(0, 5, 3)
                .cpu(90)
                .pods(pods(3).requests(&[900, 1000, 1100]).levels(&[0, 0, 0]))
                .history(known()),
            0,
            ok(&[]),
        ),
        (
            "TestMinReplicasDesiredZero",
            hpa(2, 5, 3)
                .cpu(90)
                .pods(pods(3).requests(&[900, 1000, 1100]).levels(&[0, 0, 0]))
                .history(known()),
            2,
            ok(&[limited(Reason::TooFewReplicas)]),
        ),
        (
            "TestZeroReplicas",
            hpa(3, 5, 0).cpu(90),
            0,
            vec![
                (AbleToScale, S::True, Reason::SucceededGetScale),
                (ScalingActive, S::False, Reason::ScalingDisabled),
            ],
        ),
        (
            "TestTooFewReplicas",
            hpa(3, 5, 2).cpu(90).pods(pods(0)),
            3,
            vec![(AbleToScale, S::True, Reason::SucceededRescale)],
        ),
        (
            "TestTooManyReplicas",
            hpa(3, 5, 10).cpu(90).pods(pods(0)),
            5,
            vec![(AbleToScale, S::True, Reason::SucceededRescale)],
        ),
        (
            "TestMaxReplicas",
            hpa(2, 5, 3).cpu(90).pods(
                pods(3)
                    .requests(&[900, 1000, 1100])
                    .levels(&[8000, 9500, 1000]),
            ),
            5,
            ok(&[limited(Reason::TooManyReplicas)]),
        ),
        (
            "TestSuperfluousMetrics",
            hpa(2, 6, 4).cpu(100).pods(
                pods(4)
                    .requests(&k(4))
                    .levels(&[4000, 9500, 3000, 7000, 3200, 2000]),
            ),
            6,
            ok(&[limited(Reason::TooManyReplicas)]),
        ),
        (
            "TestMissingMetrics",
            hpa(2, 6, 4)
                .cpu(100)
                .pods(pods(4).requests(&k(4)).levels(&[400, 95]))
                .history(known()),
            3,
            ok(&[]),
        ),
        (
            "TestEmptyMetrics",
            hpa(2, 6, 4).cpu(100).pods(pods(4).requests(&k(4))),
            4,
            vec![
                (AbleToScale, S::True, Reason::SucceededGetScale),
                (ScalingActive, S::False, Reason::FailedGetResourceMetric),
            ],
        ),
        (
            "TestEmptyCPURequest",
            hpa(1, 5, 1).cpu(100).pods(pods(0).levels(&[200])),
            1,
            vec![
                (AbleToScale, S::True, Reason::SucceededGetScale),
                (ScalingActive, S::False, Reason::FailedGetResourceMetric),
            ],
        ),
        (
            "TestEventCreated",
            hpa(1, 5, 1)
                .cpu(50)
                .pods(pods(1).requests(&[200]).levels(&[200])),
            2,
            ok(&[]),
        ),
        (
            "TestEventNotCreated",
            hpa(1, 5, 2)
                .cpu(50)
                .pods(pods(2).requests(&[400, 400]).levels(&[200, 200])),
            2,
            ok(&[READY_FOR_NEW]),
        ),
        (
            "TestMissingReports",
            hpa(1, 5, 4)
                .cpu(50)
                .pods(pods(1).requests(&[200]).levels(&[200]))
                .history(known()),
            2,
            ok(&[]),
        ),
        (
            "TestUpscaleCap",
            hpa(1, 100, 3)
                .cpu(10)
                .behavior(up(rules(0, 0, 700, 60, 0)))
                .pods(pods(3).requests(&[100; 3]).levels(&[100, 200, 300])),
            24,
            ok(&[limited(Reason::ScaleUpLimit)]),
        ),
        (
            "TestUpscaleCapGreaterThanMaxReplicas",
            hpa(1, 20, 3)
                .cpu(10)
                .behavior(up(rules(0, 0, 700, 60, 0)))
                .pods(pods(3).requests(&[100; 3]).levels(&[100, 200, 300])),
            20,
            ok(&[limited(Reason::TooManyReplicas)]),
        ),
        (
            "TestMoreReplicasThanSpecNoScale",
            hpa(1, 8, 4)
                .cpu(50)
                .pods(pods(5).requests(&k(5)).levels(&[500; 5])),
            4,
            ok(&[READY_FOR_NEW]),
        ),
        (
            "TestNoBackoffUpscaleCM",
            hpa(1, 5, 3)
                .qps(15000)
                .pods(pods(3).requests(&k(3)).levels(&[20000, 10000, 30000])),
            4,
            ok(&[]),
        ),
        (
            "TestNoBackoffUpscaleCMNoBackoffCpu",
            hpa(1, 5, 3)
                .cpu(10)
                .qps(15000)
                .pods(pods(3).requests(&k(3)).levels(&[20000, 10000, 30000])),
            5,
            ok(&[limited(Reason::TooManyReplicas)]),
        ),
        (
            "TestStabilizeDownscale",
            hpa(1, 5, 4)
                .cpu(100)
                .pods(pods(3).requests(&[100; 3]).levels(&[50, 50, 50]))
                .history(History {
                    seen: true,
                    recommendations: vec![
                        Recommendation {
                            replicas: 10,
                            at_unix_nanos: NOW - 600 * SEC,
                        },
                        Recommendation {
                            replicas: 4,
                            at_unix_nanos: NOW - 60 * SEC,
                        },
                    ],
                    ..History::default()
                }),
            4,
            ok(&[(AbleToScale, S::True, Reason::ScaleDownStabilized)]),
        ),
        (
            "TestScaleUpRCImmediately",
            hpa(2, 6, 1).pods(pods(4).requests(&k(4)).levels(&[0; 4])),
            2,
            vec![(AbleToScale, S::True, Reason::SucceededRescale)],
        ),
        (
            "TestScaleDownRCImmediately",
            hpa(2, 5, 6).cpu(50).pods(
                pods(3)
                    .requests(&[900, 1000, 1100])
                    .levels(&[8000, 9500, 1000]),
            ),
            5,
            vec![(AbleToScale, S::True, Reason::SucceededRescale)],
        ),
    ];
    for (name, h, want, conditions) in cases {
        let d = h.sync();
        assert_eq!(d.desired_replicas, want, "{name}");
        assert_eq!(d.rescale, want != h.current, "{name}");
        assert_eq!(triples(&d), conditions, "{name}");
    }
}

// TestConditionFailedGetMetrics: each kind of metric that cannot be read names
// its own reason.
#[test]
fn failed_metrics_name_their_kind() {
    for (h, reason) in [
        (hpa(1, 100, 3).cpu(10), Reason::FailedGetResourceMetric),
        (hpa(1, 100, 3).qps(15000), Reason::FailedGetPodsMetric),
    ] {
        let (spec, _) = h.spec();
        let facts = pods(3).requests(&[100; 3]).facts();
        let seen: Vec<Observations> = vec![Err("something went wrong".into())];
        let input = SyncInput {
            current_replicas: 3,
            pods: &facts,
            observations: &seen,
        };
        let d = decide(&spec, &config(), &input, History::default(), &[], now());
        assert_eq!(d.desired_replicas, 3);
        assert_eq!(
            triples(&d),
            vec![
                (AbleToScale, S::True, Reason::SucceededGetScale),
                (ScalingActive, S::False, reason),
            ]
        );
        assert!(d.conditions[1].message.contains("something went wrong"));
        assert_eq!(d.limited_by(), Some(Rule::NoValidMetric));
    }
}

// TestConditionFailedUpdateScale: the shell could not write the scale.
#[test]
fn a_failed_rescale_is_reported_and_not_counted() {
    let h = hpa(1, 5, 3)
        .cpu(100)
        .behavior(Behavior::default())
        .pods(pods(3).requests(&[100; 3]).levels(&[150; 3]));
    let mut d = h.sync();
    assert_eq!((d.desired_replicas, d.rescale), (5, true));
    assert_eq!(d.history.scale_up_events.len(), 1);
    d.scale_failed("conflict");
    assert!(!d.rescale);
    assert!(
        d.history.scale_up_events.is_empty(),
        "the failed rescale is forgotten"
    );
    assert_eq!(
        triples(&d),
        ok(&[(AbleToScale, S::False, Reason::FailedUpdateScale)])
    );
    assert!(d.conditions[0].message.contains("conflict"));
    // Without behavior no event was recorded; failing keeps the history as it is.
    let mut d = hpa(1, 5, 3)
        .cpu(100)
        .pods(pods(3).requests(&[100; 3]).levels(&[150; 3]))
        .sync();
    let before = d.history.clone();
    d.scale_failed("conflict");
    assert_eq!(d.history, before);
}

// TestStoreScaleEvents "... without behavior": no events are kept without behavior.
#[test]
fn scale_events_are_recorded_only_with_behavior() {
    let base = hpa(1, 10, 3)
        .cpu(50)
        .pods(pods(3).requests(&[100; 3]).levels(&[100; 3]));
    let d = base.clone().sync();
    assert_eq!(d.desired_replicas, 6);
    assert!(d.history.scale_up_events.is_empty());
    let d = base.clone().behavior(Behavior::default()).sync();
    assert_eq!(d.desired_replicas, 6);
    assert_eq!(d.history.scale_up_events.len(), 1);
    assert_eq!(d.history.scale_up_events[0].change, 3);
    // A scale-down is recorded as one.
    let d = hpa(1, 10, 6)
        .cpu(50)
        .behavior(Behavior {
            scale_down: Some(rules(0, 0, 100, 15, 0)),
            ..Behavior::default()
        })
        .pods(pods(6).requests(&[100; 6]).levels(&[25; 6]))
        .history(known())
        .sync();
    assert_eq!(d.desired_replicas, 3);
    assert_eq!(d.history.scale_down_events.len(), 1);
    assert_eq!(d.history.scale_down_events[0].change, 3);
    assert!(d.history.scale_up_events.is_empty());
}

// TestConvertDesiredReplicasWithRules.
#[test]
fn bounds_without_behavior() {
    let cases = [
        (
            "prenormalized desired replicas within range",
            5,
            7,
            3,
            8,
            7,
            None,
        ),
        (
            "prenormalized desired replicas < minReplicas",
            3,
            1,
            2,
            8,
            2,
            Some(Rule::TooFewReplicas),
        ),
        (
            "prenormalized desired zeroed replicas within range",
            1,
            0,
            0,
            10,
            0,
            None,
        ),
        (
            "maxReplicas is the limit because maxReplicas < scaleUpLimit",
            20,
            1000,
            1,
            10,
            10,
            Some(Rule::TooManyReplicas),
        ),
        (
            "scaleUpLimit is the limit because scaleUpLimit < maxReplicas",
            3,
            1000,
            1,
            2000,
            6,
            Some(Rule::ScaleUpLimit),
        ),
        // Our own: the cap is at least 4, and exactly at it nothing is limited.
        (
            "cap of at least four",
            1,
            9,
            1,
            100,
            4,
            Some(Rule::ScaleUpLimit),
        ),
        ("at the cap", 5, 10, 1, 100, 10, None),
        (
            "max equal to the cap",
            5,
            11,
            1,
            10,
            10,
            Some(Rule::TooManyReplicas),
        ),
    ];
    for (name, current, desired, min, max, want, rule) in cases {
        let got = bounds(current, desired, min, max);
        assert_eq!(got.map_or(desired, |g| g.0), want, "{name}");
        assert_eq!(got.map(|g| g.1), rule, "{name}");
    }
}

fn events(changes: &[u32], period_secs: u64) -> Vec<ScaleEvent> {
    // Upstream's generateEventsUniformDistribution: each event in the middle of its
    // segment of the period.
    let segment = period_secs as f64 / changes.len() as f64;
    changes
        .iter()
        .enumerate()
        .map(|(i, &change)| {
            let ago = (period_secs as f64 - segment * (i + 1) as f64 + segment / 2.0) as u64;
            ScaleEvent {
                change,
                at_unix_nanos: NOW - ago * SEC,
                outdated: false,
            }
        })
        .collect()
}

// TestScalingWithRules (horizontal_test.go): the rate policies and bounds.
#[test]
fn rate_bounds_with_behavior() {
    type Case = (
        &'static str,
        Vec<ScaleEvent>,
        Vec<ScaleEvent>,
        u32,
        u32,
        Option<ScalingRules>,
        Option<ScalingRules>,
        u32,
        u32,
        u32,
        Reason,
    );
    let e = events;
    let cases: Vec<Case> = vec![
        (
            "prenormalized desired replicas within range",
            vec![],
            vec![],
            3,
            8,
            None,
            None,
            5,
            7,
            7,
            Reason::DesiredWithinRange,
        ),
        (
            "prenormalized desired replicas < minReplicas",
            vec![],
            vec![],
            2,
            8,
            None,
            None,
            3,
            1,
            2,
            Reason::TooFewReplicas,
        ),
        (
            "prenormalized desired replicas within range when minReplicas is 0",
            vec![],
            vec![],
            0,
            10,
            None,
            None,
            1,
            0,
            0,
            Reason::DesiredWithinRange,
        ),
        (
            "maxReplicas is the limit because maxReplicas < scaleUpLimit",
            vec![],
            vec![],
            1,
            10,
            None,
            None,
            20,
            1000,
            10,
            Reason::TooManyReplicas,
        ),
        (
            "desired replica count is more than the maximum replica count",
            vec![],
            vec![],
            100,
            150,
            None,
            None,
            100,
            1000,
            150,
            Reason::TooManyReplicas,
        ),
        (
            "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
            vec![],
            vec![],
            1,
            2000,
            Some(rules(0, 0, 1, 60, 0)),
            None,
            3,
            1000,
            4,
            Reason::ScaleUpLimit,
        ),
        (
            "scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined policies",
            vec![],
            vec![],
            3,
            2000,
            None,
            Some(rules(20, 60, 0, 0, 0)),
            1000,
            3,
            980,
            Reason::ScaleDownLimit,
        ),
        (
            "scaleUp with default behavior",
            vec![],
            vec![],
            1,
            1000,
            None,
            None,
            10,
            50,
            20,
            Reason::ScaleUpLimit,
        ),
        (
            "scaleUp with pods policy larger than percent policy",
            vec![],
            vec![],
            1,
            1000,
            Some(rules(100, 60, 100, 60, 0)),
            None,
            10,
            500,
            110,
            Reason::ScaleUpLimit,
        ),
        (
            "scaleUp with percent policy larger than pods policy",
            vec![],
            vec![],
            1,
            1000,
            Some(rules(2, 60, 100, 60, 0)),
            None,
            10,
            500,
            20,
            Reason::ScaleUpLimit,
        ),
        (
            "scaleUp with spec MaxReplicas limitation with large pod policy",
            vec![],
            vec![],
            1,
            1000,
            Some(rules(100, 60, 0, 0, 0)),
            None,
            10,
            50,
            50,
            Reason::DesiredWithinRange,
        ),
        (
            "scaleUp with spec MaxReplicas limitation with large percent policy",
            vec![],
            vec![],
            1,
            1000,
            Some(rules(10000, 60, 0, 0, 0)),
            None,
            10,
            50,
            50,
            Reason::DesiredWithinRange,
        ),
        (
            "scaleUp with pod policy limitation",
            vec![],
            vec![],
            1,
            1000,
            Some(rules(30, 60, 0, 0, 0)),
            None,
            10,
            50,
            40,
            Reason::ScaleUpLimit,
        ),
        (
            "scaleUp with percent policy limitation",
            vec![],
            vec![],
            1,
            1000,
            Some(rules(0, 0, 200, 60, 0)),
            None,
            10,
            50,
            30,
            Reason::ScaleUpLimit,
        ),
        (
            "scaleDown with percent policy larger than pod policy",
            vec![],
            vec![],
            1,
            1000,
            None,
            Some(rules(20, 60, 1, 60, 300)),
            100,
            2,
            80,
            Reason::ScaleDownLimit,
        ),
        (
            "scaleDown with pod policy larger than percent policy",
            vec![],
            vec![],
            1,
            1000,
            None,
            Some(rules(2, 60, 1, 60, 300)),
            100,
            2,
            98,
            Reason::ScaleDownLimit,
        ),
        (
            "scaleDown with spec MinReplicas=nil limitation with large pod policy",
            vec![],
            vec![],
            1,
            1000,
            None,
            Some(rules(100, 60, 0, 0, 300)),
            10,
            0,
            1,
            Reason::TooFewReplicas,
        ),
        (
            "scaleDown with spec MinReplicas limitation with large percent policy",
            vec![],
            vec![],
            5,
            1000,
            None,
            Some(rules(0, 0, 100, 60, 300)),
            10,
            2,
            5,
            Reason::TooFewReplicas,
        ),
        (
            "scaleDown with pod policy limitation",
            vec![],
            vec![],
            1,
            1000,
            None,
            Some(rules(5, 60, 0, 0, 300)),
            10,
            2,
            5,
            Reason::ScaleDownLimit,
        ),
        (
            "scaleDown with percent policy limitation",
            vec![],
            vec![],
            1,
            1000,
            None,
            Some(rules(0, 0, 50, 60, 300)),
            10,
            5,
            5,
            Reason::DesiredWithinRange,
        ),
        (
            "scaleUp with spec MaxReplicas limitation with large pod policy and events",
            e(&[1, 5, 9], 120),
            vec![],
            1,
            200,
            Some(rules(300, 60, 0, 0, 0)),
            None,
            100,
            500,
            200,
            Reason::TooManyReplicas,
        ),
        (
            "scaleUp with spec MaxReplicas limitation with large percent policy and events",
            e(&[1, 5, 9], 120),
            vec![],
            1,
            200,
            Some(rules(0, 0, 10000, 60, 0)),
            None,
            100,
            500,
            200,
            Reason::TooManyReplicas,
        ),
        (
            "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
            e(&[1, 5, 9], 120),
            vec![],
            1,
            1000,
            Some(rules(5, 120, 0, 0, 0)),
            None,
            100,
            500,
            100,
            Reason::ScaleUpLimit,
        ),
        (
            "scaleUp with pod policy and previous scale up events",
            e(&[1, 5, 9], 120),
            vec![],
            1,
            1000,
            Some(rules(150, 120, 0, 0, 0)),
            None,
            100,
            500,
            235,
            Reason::ScaleUpLimit,
        ),
        (
            "scaleUp with percent policy and previous scale up events",
            e(&[1, 5, 9], 120),
            vec![],
            1,
            1000,
            Some(rules(0, 0, 200, 120, 0)),
            None,
            100,
            500,
            255,
            Reason::ScaleUpLimit,
        ),
        (
            "scaleDown with default policy and previous events",
            vec![],
            e(&[1, 5, 9], 120),
            1,
            1000,
            None,
            None,
            10,
            5,
            5,
            Reason::DesiredWithinRange,
        ),
        (
            "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
            vec![],
            e(&[1, 5, 9], 120),
            1,
            1000,
            None,
            Some(rules(115, 120, 0, 0, 300)),
            100,
            0,
            1,
            Reason::TooFewReplicas,
        ),
        (
            "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
            vec![],
            e(&[1, 5, 9], 120),
            5,
            1000,
            None,
            Some(rules(130, 120, 0, 0, 300)),
            100,
            0,
            5,
            Reason::TooFewReplicas,
        ),
        (
            "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
            vec![],
            e(&[1, 5, 9], 120),
            5,
            1000,
            None,
            Some(rules(0, 0, 100, 120, 300)),
            100,
            2,
            5,
            Reason::TooFewReplicas,
        ),
        (
            "scaleDown with pod policy limitation and previous events",
            vec![],
            e(&[1, 5, 9], 120),
            1,
            1000,
            None,
            Some(rules(5, 120, 0, 0, 300)),
            100,
            2,
            100,
            Reason::ScaleDownLimit,
        ),
        (
            "scaleDown with percent policy limitation and previous events",
            vec![],
            e(&[2, 4, 6], 120),
            1,
            1000,
            None,
            Some(rules(0, 0, 50, 120, 300)),
            100,
            0,
            56,
            Reason::ScaleDownLimit,
        ),
        (
            "scaleDown with previous events preventing further scale down",
            vec![],
            e(&[10, 10, 10], 120),
            1,
            1000,
            None,
            Some(rules(0, 0, 10, 120, 300)),
            100,
            0,
            100,
            Reason::ScaleDownLimit,
        ),
        (
            "scaleDown with with previous events still allowing more scale down",
            vec![],
            e(&[10, 10, 10], 120),
            1,
            1000,
            None,
            Some(rules(0, 0, 1000, 120, 300)),
            10,
            5,
            5,
            Reason::DesiredWithinRange,
        ),
        (
            "check 'outdated' flag for events for one behavior for up",
            e(&[8, 12, 9, 11], 120),
            vec![],
            1,
            1000,
            Some(rules(1000, 60, 0, 0, 0)),
            None,
            100,
            200,
            200,
            Reason::DesiredWithinRange,
        ),
        (
            "check that events were not marked 'outdated' for two different policies in the behavior for up",
            e(&[8, 12, 9, 11], 120),
            vec![],
            1,
            1000,
            Some(rules(1000, 120, 100, 60, 0)),
            None,
            100,
            200,
            200,
            Reason::DesiredWithinRange,
        ),
        (
            "check that events were marked 'outdated' for two different policies in the behavior for up",
            e(&[8, 12, 9, 11], 120),
            vec![],
            1,
            1000,
            Some(rules(1000, 30, 100, 60, 0)),
            None,
            100,
            200,
            200,
            Reason::DesiredWithinRange,
        ),
        (
            "check 'outdated' flag for events for one behavior for down",
            vec![],
            e(&[8, 12, 9, 11], 120),
            1,
            1000,
            None,
            Some(rules(1000, 60, 0, 0, 300)),
            100,
            5,
            5,
            Reason::DesiredWithinRange,
        ),
        (
            "check that events were not marked 'outdated' for two different policies in the behavior for down",
            vec![],
            e(&[8, 12, 9, 11], 120),
            1,
            1000,
            None,
            Some(rules(1000, 120, 100, 60, 300)),
            100,
            5,
            5,
            Reason::DesiredWithinRange,
        ),
        (
            "check that events were marked 'outdated' for two different policies in the behavior for down",
            vec![],
            e(&[8, 12, 9, 11], 120),
            1,
            1000,
            None,
            Some(rules(1000, 30, 100, 60, 300)),
            100,
            5,
            5,
            Reason::DesiredWithinRange,
        ),
    ];
    for (name, ups, downs, min, max, up_rules, down_rules, current, desired, want, reason) in cases
    {
        let b = Behavior {
            scale_up: up_rules,
            scale_down: down_rules,
        };
        let history = History {
            seen: true,
            recommendations: vec![],
            scale_up_events: ups,
            scale_down_events: downs,
        };
        let (up, down) = (
            b.scale_up_rules(),
            b.scale_down_rules(Duration::from_secs(300)),
        );
        let got = rate_bounds(current, desired, min, max, &up, &down, &history, NOW);
        assert_eq!(got.map_or(desired, |g| g.0), want, "{name}");
        let got_reason = got.map_or(Reason::DesiredWithinRange, |g| match g.1 {
            Rule::ScaleUpLimit => Reason::ScaleUpLimit,
            Rule::ScaleDownLimit => Reason::ScaleDownLimit,
            Rule::TooManyReplicas => Reason::TooManyReplicas,
            Rule::TooFewReplicas => Reason::TooFewReplicas,
            other => panic!("{name}: {other:?}"),
        });
        assert_eq!(got_reason, reason, "{name}");
    }
}

// TestCalculateScaleUpLimitWithScalingRules / TestCalculateScaleDownLimitWithBehaviors,
// and the other selections.
#[test]
fn select_policy_picks_the_smallest_or_largest_change_or_none() {
    let mut r = rules(2, 60, 50, 60, 300);
    r.select_policy = Some(SelectPolicy::Min);
    let b = Behavior {
        scale_up: Some(r.clone()),
        scale_down: Some(r.clone()),
    };
    let (up, down) = (b.scale_up_rules(), b.scale_down_rules(Duration::ZERO));
    assert_eq!(scale_up_limit(1, &[], &[], &up, NOW), 2);
    assert_eq!(scale_down_limit(5, &[], &[], &down, NOW), 3);
    // Max: the biggest change.
    r.select_policy = Some(SelectPolicy::Max);
    let b = Behavior {
        scale_up: Some(r.clone()),
        scale_down: Some(r.clone()),
    };
    let (up, down) = (b.scale_up_rules(), b.scale_down_rules(Duration::ZERO));
    assert_eq!(scale_up_limit(1, &[], &[], &up, NOW), 3);
    assert_eq!(scale_down_limit(5, &[], &[], &down, NOW), 2);
    // Disabled: no change in that direction at all.
    r.select_policy = Some(SelectPolicy::Disabled);
    let b = Behavior {
        scale_up: Some(r.clone()),
        scale_down: Some(r),
    };
    let (up, down) = (b.scale_up_rules(), b.scale_down_rules(Duration::ZERO));
    assert_eq!(scale_up_limit(7, &[], &[], &up, NOW), 7);
    assert_eq!(scale_down_limit(7, &[], &[], &down, NOW), 7);
    let h = known();
    assert_eq!(
        rate_bounds(7, 20, 1, 100, &up, &down, &h, NOW),
        Some((7, Rule::ScaleUpLimit))
    );
    assert_eq!(
        rate_bounds(7, 2, 1, 100, &up, &down, &h, NOW),
        Some((7, Rule::ScaleDownLimit))
    );
    assert_eq!(rate_bounds(7, 7, 1, 100, &up, &down, &h, NOW), None);
}

#[test]
fn events_of_the_other_direction_move_the_period_start() {
    // Modern upstream counts both lists: 4 removed in the period means the period
    // started at 14, so a 50 % scale-up allows 21.
    let r = rules(0, 0, 50, 60, 0);
    let b = up(r);
    let (upr, _) = (b.scale_up_rules(), b.scale_down_rules(Duration::ZERO));
    let downs = [ScaleEvent {
        change: 4,
        at_unix_nanos: NOW - 10 * SEC,
        outdated: false,
    }];
    assert_eq!(scale_up_limit(10, &[], &downs, &upr, NOW), 21);
    // And scale-downs see scale-ups: 3 added means the period started at 7.
    let b = Behavior {
        scale_down: Some(rules(2, 60, 0, 0, 0)),
        ..Behavior::default()
    };
    let down = b.scale_down_rules(Duration::ZERO);
    let ups = [ScaleEvent {
        change: 3,
        at_unix_nanos: NOW - 10 * SEC,
        outdated: true,
    }];
    assert_eq!(scale_down_limit(10, &ups, &[], &down, NOW), 5);
    // Without policies nothing is allowed beyond the current count.
    let none = Rules {
        stabilization_window: Duration::ZERO,
        select_policy: SelectPolicy::Max,
        policies: vec![],
        tolerance: None,
    };
    assert_eq!(
        rate_bounds(5, 9, 1, 10, &none, &none, &known(), NOW),
        Some((5, Rule::ScaleUpLimit))
    );
    assert_eq!(
        rate_bounds(5, 1, 1, 10, &none, &none, &known(), NOW),
        Some((5, Rule::ScaleDownLimit))
    );
    let min_none = Rules {
        select_policy: SelectPolicy::Min,
        ..none
    };
    assert_eq!(
        rate_bounds(5, 9, 1, 10, &min_none, &min_none, &known(), NOW),
        None
    );
    assert_eq!(
        rate_bounds(5, 1, 1, 10, &min_none, &min_none, &known(), NOW),
        None
    );
}

#[test]
fn behavior_defaults_fill_what_is_unset() {
    let b = Behavior::default();
    let up = b.scale_up_rules();
    assert_eq!(up.stabilization_window, Duration::ZERO);
    assert_eq!(up.select_policy, SelectPolicy::Max);
    assert_eq!(
        up.policies,
        vec![
            Policy {
                kind: PolicyKind::Pods,
                value: 4,
                period: Duration::from_secs(15)
            },
            Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period: Duration::from_secs(15)
            },
        ]
    );
    let down = b.scale_down_rules(Duration::from_secs(77));
    assert_eq!(down.stabilization_window, Duration::from_secs(77));
    assert_eq!(down.select_policy, SelectPolicy::Max);
    assert_eq!(
        down.policies,
        vec![Policy {
            kind: PolicyKind::Percent,
            value: 100,
            period: Duration::from_secs(15)
        }]
    );
    // A partly written direction keeps what is written and defaults the rest.
    let b = Behavior {
        scale_up: Some(ScalingRules {
            select_policy: Some(SelectPolicy::Min),
            tolerance: Some(0.02),
            ..ScalingRules::default()
        }),
        scale_down: Some(ScalingRules {
            stabilization_window: Some(Duration::from_secs(9)),
            policies: Some(vec![]),
            ..ScalingRules::default()
        }),
    };
    let up = b.scale_up_rules();
    assert_eq!(
        (up.select_policy, up.tolerance, up.policies.len()),
        (SelectPolicy::Min, Some(0.02), 2)
    );
    let down = b.scale_down_rules(Duration::from_secs(300));
    assert_eq!(
        (down.stabilization_window, down.policies.len()),
        (Duration::from_secs(9), 0)
    );
    assert_eq!(down.longest_period(), Duration::ZERO);
    assert_eq!(up.longest_period(), Duration::from_secs(15));
}

#[test]
fn behavior_tolerances_override_the_controller_per_direction() {
    // 4 pods at 105 % of target: inside the default band, outside a 1 % up band.
    let base = hpa(1, 10, 4)
        .cpu(100)
        .pods(pods(4).requests(&[100; 4]).levels(&[105; 4]));
    assert_eq!(base.clone().sync().desired_replicas, 4);
    let strict = |up: Option<f64>, down: Option<f64>| Behavior {
        scale_up: Some(ScalingRules {
            tolerance: up,
            ..ScalingRules::default()
        }),
        scale_down: Some(ScalingRules {
            tolerance: down,
            ..ScalingRules::default()
        }),
    };
    let d = base.clone().behavior(strict(Some(0.01), None)).sync();
    assert_eq!(d.desired_replicas, 5);
    assert_eq!(
        d.metrics[0].tolerances,
        Tolerances {
            scale_up: 0.01,
            scale_down: 0.1
        }
    );
    let d = base.behavior(strict(None, Some(0.3))).sync();
    assert_eq!(
        d.metrics[0].tolerances,
        Tolerances {
            scale_up: 0.1,
            scale_down: 0.3
        }
    );
    assert_eq!(d.desired_replicas, 4);
}

#[test]
fn with_behavior_scale_up_waits_for_its_window() {
    // A scale-up window of 60 s with a recommendation of 4 30 s ago holds 8 back to 4.
    let h = hpa(1, 20, 3)
        .cpu(50)
        .behavior(up(rules(100, 15, 0, 0, 60)))
        .pods(pods(3).requests(&[100; 3]).levels(&[130; 3]))
        .history(History {
            seen: true,
            recommendations: vec![Recommendation {
                replicas: 4,
                at_unix_nanos: NOW - 30 * SEC,
            }],
            ..History::default()
        });
    let d = h.sync();
    assert_eq!(d.proposal.map(|p| p.replicas), Some(8));
    assert_eq!(d.desired_replicas, 4);
    assert_eq!(
        d.steps,
        [Step {
            rule: Rule::ScaleUpStabilized,
            from: 8,
            to: 4
        }]
    );
    assert_eq!(
        triples(&d),
        ok(&[(AbleToScale, S::True, Reason::SucceededRescale)])
    );
    // Not rescaling: AbleToScale keeps the stabilisation reason.
    let held = h
        .clone()
        .history(History {
            seen: true,
            recommendations: vec![Recommendation {
                replicas: 3,
                at_unix_nanos: NOW - 30 * SEC,
            }],
            ..History::default()
        })
        .sync();
    assert_eq!(held.desired_replicas, 3);
    assert_eq!(
        triples(&held),
        ok(&[(AbleToScale, S::True, Reason::ScaleUpStabilized)])
    );
    // A scale-down held by the down window says ScaleDownStabilized.
    let d = hpa(1, 20, 6)
        .cpu(50)
        .behavior(Behavior::default())
        .pods(pods(6).requests(&[100; 6]).levels(&[10; 6]))
        .sync();
    assert_eq!(d.desired_replicas, 6);
    assert_eq!(
        triples(&d),
        ok(&[(AbleToScale, S::True, Reason::ScaleDownStabilized)])
    );
    assert_eq!(d.limited_by(), Some(Rule::ScaleDownStabilized));
}

#[test]
fn the_record_explains_the_decision() {
    let d = hpa(2, 6, 5)
        .cpu(50)
        .invalid()
        .pods(pods(5).requests(&[1000; 5]).levels(&[100; 4]))
        .history(known())
        .sync();
    assert_eq!(
        d.proposal,
        Some(Proposal {
            replicas: 3,
            metric: 0
        })
    );
    assert_eq!(
        d.steps,
        [Step {
            rule: Rule::InvalidMetricBlocksScaleDown,
            from: 3,
            to: 5
        }]
    );
    assert_eq!(d.limited_by(), Some(Rule::InvalidMetricBlocksScaleDown));
    assert!(d.metrics[1].outcome.is_err());
    let text = d.to_string();
    for line in [
        "replicas: 5 (min 2, max 6)",
        "metric cpu (target 50% of request): 10% (100m per pod) -> 3 replicas (Rebalanced, ratio 0.200, with assumed values 0.560; pods 4 ready, 0 unready, 1 missing, 0 ignored)",
        "  missing test-pod-4: no observation of this pod",
        "metric gpu (target 1000m per pod): invalid: not observed: the GPU source is unreachable",
        "proposal: 3 (from cpu)",
        "InvalidMetricBlocksScaleDown: 3 -> 5",
        "desired: 5 (no change)",
        "AbleToScale True SucceededGetScale: the target's scale was read",
        "ScalingActive False FailedGetPodsMetric: cannot compute a replica count from gpu: not observed: the GPU source is unreachable",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let d = hpa(1, 10, 2)
        .qps(1000)
        .pods(pods(2).levels(&[3000, 3000]))
        .sync();
    let text = d.to_string();
    assert!(text.contains("metric storage-iops (target 1000m per pod): 3000m per pod -> 6 replicas (Ratio, ratio 3.000; pods 2 ready"), "{text}");
    assert!(text.contains("ScaleUpLimit: 6 -> 4"), "{text}");
    assert!(text.contains("desired: 4 (rescale)"), "{text}");
    assert!(
        text.contains(
            "ScalingActive True ValidMetricFound: the replica count is computed from storage-iops"
        ),
        "{text}"
    );
}

#[test]
fn the_largest_proposal_wins_and_ties_keep_the_first() {
    // CPU says 5, qps says 4 (same levels, different targets).
    let d = hpa(1, 10, 3)
        .cpu(30)
        .qps(400)
        .pods(pods(3).requests(&[1000; 3]).levels(&[300, 500, 700]))
        .sync();
    assert_eq!(
        d.proposal,
        Some(Proposal {
            replicas: 5,
            metric: 0
        })
    );
    let d = hpa(1, 10, 3)
        .cpu(30)
        .qps(300)
        .pods(pods(3).requests(&[1000; 3]).levels(&[300, 500, 700]))
        .sync();
    assert_eq!(
        d.proposal,
        Some(Proposal {
            replicas: 5,
            metric: 0
        }),
        "a tie keeps the first"
    );
    let d = hpa(1, 10, 3)
        .cpu(30)
        .qps(200)
        .pods(pods(3).requests(&[1000; 3]).levels(&[300, 500, 700]))
        .sync();
    assert_eq!(
        d.proposal,
        Some(Proposal {
            replicas: 8,
            metric: 1
        })
    );
    // A proposal of 0 is replaced by any later one, as upstream's "replicas == 0" test does.
    let d = hpa(0, 10, 2)
        .cpu(50)
        .qps(1)
        .pods(pods(2).requests(&[1000; 2]).levels(&[0, 0]))
        .history(known())
        .sync();
    assert_eq!(
        d.proposal,
        Some(Proposal {
            replicas: 0,
            metric: 1
        })
    );
    assert_eq!(d.desired_replicas, 0);
}

#[test]
fn specs_that_cannot_be_decided_keep_the_count() {
    // No metric at all.
    let d = hpa(1, 5, 3).pods(pods(3)).sync();
    assert_eq!((d.desired_replicas, d.rescale), (3, false));
    assert_eq!(
        triples(&d)[1],
        (ScalingActive, S::False, Reason::InvalidMetricSourceType)
    );
    assert_eq!(d.limited_by(), Some(Rule::NoValidMetric));
    // Min above max.
    let d = hpa(6, 5, 3).cpu(50).pods(pods(3)).sync();
    assert_eq!((d.desired_replicas, d.rescale), (3, false));
    assert_eq!(
        triples(&d)[1],
        (ScalingActive, S::False, Reason::InvalidSpec)
    );
    assert_eq!(d.limited_by(), Some(Rule::InvalidSpec));
    // Fewer observation lists than metrics: the unmatched metric is unavailable.
    let h = hpa(1, 5, 3)
        .cpu(50)
        .pods(pods(3).requests(&[100; 3]).levels(&[50; 3]));
    let (spec, _) = h.spec();
    let facts = h.pods.facts();
    let input = SyncInput {
        current_replicas: 3,
        pods: &facts,
        observations: &[],
    };
    let d = decide(&spec, &config(), &input, known(), &[], now());
    assert_eq!(
        d.metrics[0].outcome,
        Err(MetricError::Unavailable(
            "the shell passed no observations for it".into()
        ))
    );
    // The default minimum is 1.
    let spec = Spec {
        min_replicas: None,
        max_replicas: 3,
        metrics: vec![],
        behavior: None,
    };
    assert_eq!(spec.min(), 1);
    let input = SyncInput {
        current_replicas: 0,
        pods: &[],
        observations: &[],
    };
    let d = decide(&spec, &config(), &input, known(), &[], now());
    assert_eq!(d.limited_by(), Some(Rule::ScalingDisabled));
    // Out-of-range counts are set to the bound without reading metrics.
    let d = hpa(2, 5, 1).cpu(50).invalid().pods(pods(1)).sync();
    assert_eq!((d.desired_replicas, d.metrics.len()), (2, 0));
    assert_eq!(
        d.steps,
        [Step {
            rule: Rule::BelowMinReplicas,
            from: 1,
            to: 2
        }]
    );
    let d = hpa(2, 5, 9).cpu(50).pods(pods(9)).sync();
    assert_eq!(
        d.steps,
        [Step {
            rule: Rule::AboveMaxReplicas,
            from: 9,
            to: 5
        }]
    );
}

#[test]
fn conditions_carry_over_and_keep_their_transition_time() {
    let h = hpa(1, 5, 3)
        .cpu(100)
        .pods(pods(3).requests(&[100; 3]).levels(&[100; 3]));
    let (spec, seen) = h.spec();
    let facts = h.pods.facts();
    let input = SyncInput {
        current_replicas: 3,
        pods: &facts,
        observations: &seen,
    };
    let first = decide(&spec, &config(), &input, History::default(), &[], now());
    let later = Now {
        monotonic: Duration::from_secs(20),
        wall_unix_nanos: NOW + 15 * SEC,
    };
    let second = decide(
        &spec,
        &config(),
        &input,
        first.history.clone(),
        &first.conditions,
        later,
    );
    assert!(
        second
            .conditions
            .iter()
            .all(|c| c.last_transition_unix_nanos == NOW)
    );
    assert_eq!(second.now, later);
    // A metric failing later flips ScalingActive and moves only its time; the
    // ScalingLimited condition from before stays as it was.
    let failing: Vec<Observations> = vec![Err("gone".into())];
    let input = SyncInput {
        observations: &failing,
        ..input
    };
    let third = decide(
        &spec,
        &config(),
        &input,
        second.history,
        &second.conditions,
        later,
    );
    let active = third
        .conditions
        .iter()
        .find(|c| c.kind == ScalingActive)
        .unwrap();
    assert_eq!(
        (active.status, active.last_transition_unix_nanos),
        (S::False, NOW + 15 * SEC)
    );
    assert_eq!(third.conditions[2], first.conditions[2]);
}

#[test]
fn rule_words() {
    let all = [
        Rule::ScalingDisabled,
        Rule::InvalidSpec,
        Rule::AboveMaxReplicas,
        Rule::BelowMinReplicas,
        Rule::NoValidMetric,
        Rule::InvalidMetricBlocksScaleDown,
        Rule::ScaleUpStabilized,
        Rule::ScaleDownStabilized,
        Rule::ScaleUpLimit,
        Rule::ScaleDownLimit,
        Rule::TooManyReplicas,
        Rule::TooFewReplicas,
    ];
    for r in all {
        assert_eq!(format!("{r:?}"), r.as_str());
    }
    assert_eq!(
        Config::default(),
        Config {
            tolerance: 0.1,
            downscale_stabilization: Duration::from_secs(300),
            readiness: Readiness::default(),
        }
    );
}

#[test]
fn boundaries_of_the_pre_checks_and_the_guard() {
    // A blind metric with the others proposing exactly the current count: nothing
    // would fall, so the count is computed as usual.
    let d = hpa(1, 10, 3)
        .cpu(100)
        .invalid()
        .pods(pods(3).requests(&[100; 3]).levels(&[100; 3]))
        .sync();
    assert_eq!(d.proposal.map(|p| p.replicas), Some(3));
    assert_eq!(
        triples(&d)[1],
        (ScalingActive, S::True, Reason::ValidMetricFound)
    );
    assert!(d.steps.is_empty());
    // At the maximum the metrics are still read (and may scale down).
    let d = hpa(1, 5, 5)
        .cpu(100)
        .pods(pods(5).requests(&[100; 5]).levels(&[20; 5]))
        .history(known())
        .sync();
    assert_eq!((d.desired_replicas, d.metrics.len()), (1, 1));
    // Min equal to max is a valid spec: the count is pinned by the bounds.
    let d = hpa(4, 4, 4)
        .cpu(100)
        .pods(pods(4).requests(&[100; 4]).levels(&[500; 4]))
        .sync();
    assert_eq!(d.desired_replicas, 4);
    assert_eq!(d.limited_by(), Some(Rule::TooManyReplicas));
}

#[test]
fn at_zero_replicas_a_blind_metric_still_stops_scaling() {
    // minReplicas 0 and nothing running: nothing "falls", but with every metric
    // blind there is nothing to scale on.
    let d = hpa(0, 5, 0).invalid().pods(pods(0)).history(known()).sync();
    assert_eq!((d.desired_replicas, d.rescale), (0, false));
    assert_eq!(
        triples(&d)[1],
        (ScalingActive, S::False, Reason::FailedGetPodsMetric)
    );
    assert_eq!(d.limited_by(), Some(Rule::NoValidMetric));
}

#[test]
fn a_rate_limit_equal_to_a_bound_is_reported_as_the_bound() {
    let b = Behavior {
        scale_down: Some(rules(5, 60, 0, 0, 0)),
        ..Behavior::default()
    };
    let (up, down) = (b.scale_up_rules(), b.scale_down_rules(Duration::ZERO));
    // Default scale-up from 5 allows 10 (100 %); max is also 10.
    assert_eq!(
        rate_bounds(5, 20, 1, 10, &up, &down, &known(), NOW),
        Some((10, Rule::TooManyReplicas))
    );
    assert_eq!(
        rate_bounds(5, 20, 1, 11, &up, &down, &known(), NOW),
        Some((10, Rule::ScaleUpLimit))
    );
    // 5 pods off 10 allows 5; min is also 5.
    assert_eq!(
        rate_bounds(10, 1, 5, 20, &up, &down, &known(), NOW),
        Some((5, Rule::TooFewReplicas))
    );
    assert_eq!(
        rate_bounds(10, 1, 4, 20, &up, &down, &known(), NOW),
        Some((5, Rule::ScaleDownLimit))
    );
}
