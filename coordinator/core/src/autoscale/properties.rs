//! Properties that must hold for any input: the count stays within the bounds,
//! a blind metric never lets the count fall, and constant load settles.

use super::fixtures::{NOW, SEC, TESTING};
use super::*;
use crate::clock::Now;
use proptest::prelude::*;
use std::time::Duration;

fn config() -> Config {
    Config {
        readiness: TESTING,
        ..Config::default()
    }
}

fn at(wall: u64) -> Now {
    Now {
        monotonic: Duration::from_nanos(wall),
        wall_unix_nanos: wall,
    }
}

#[derive(Debug, Clone)]
struct PodCase {
    value: Option<i64>,
    request: i64,
    ready: bool,
    hot: bool,
    pending: bool,
}

fn pod_case() -> impl Strategy<Value = PodCase> {
    (
        prop::option::weighted(0.85, 0i64..5000),
        1i64..2000,
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(value, request, ready, hot, pending)| PodCase {
            value,
            request,
            ready,
            hot,
            pending,
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    (prop::bool::ANY, 1u32..300, 1u64..120).prop_map(|(pods, value, period)| Policy {
        kind: if pods {
            PolicyKind::Pods
        } else {
            PolicyKind::Percent
        },
        value,
        period: Duration::from_secs(period),
    })
}

fn scaling_rules() -> impl Strategy<Value = Option<ScalingRules>> {
    prop::option::of(
        (
            prop::option::of(0u64..600),
            prop::option::of(prop::sample::select(vec![
                SelectPolicy::Max,
                SelectPolicy::Min,
                SelectPolicy::Disabled,
            ])),
            prop::option::of(prop::collection::vec(policy(), 0..3)),
            prop::option::of(0.0f64..0.5),
        )
            .prop_map(
                |(window, select_policy, policies, tolerance)| ScalingRules {
                    stabilization_window: window.map(Duration::from_secs),
                    select_policy,
                    policies,
                    tolerance,
                },
            ),
    )
}

fn history() -> impl Strategy<Value = History> {
    (
        prop::bool::ANY,
        prop::collection::vec((0u32..40, 0u64..900), 0..8),
        prop::collection::vec((1u32..20, 0u64..300, prop::bool::ANY), 0..5),
        prop::collection::vec((1u32..20, 0u64..300, prop::bool::ANY), 0..5),
    )
        .prop_map(|(seen, recs, ups, downs)| {
            let events = |v: Vec<(u32, u64, bool)>| {
                v.into_iter()
                    .map(|(change, ago, outdated)| ScaleEvent {
                        change,
                        at_unix_nanos: NOW - ago * SEC,
                        outdated,
                    })
                    .collect()
            };
            History {
                seen,
                recommendations: recs
                    .into_iter()
                    .map(|(replicas, ago)| Recommendation {
                        replicas,
                        at_unix_nanos: NOW - ago * SEC,
                    })
                    .collect(),
                scale_up_events: events(ups),
                scale_down_events: events(downs),
            }
        })
}

#[derive(Debug, Clone)]
struct Case {
    min: u32,
    max: u32,
    current: u32,
    target: u32,
    pods: Vec<PodCase>,
    behavior: Option<Behavior>,
    history: History,
}

fn case() -> impl Strategy<Value = Case> {
    (0u32..5, 0u32..20, 0u32..30, 1u32..200)
        .prop_flat_map(|(min, span, current, target)| {
            (
                Just((min, (min + span).max(1), current, target)),
                prop::collection::vec(pod_case(), 0..=(current as usize + 2)),
                prop::option::of((scaling_rules(), scaling_rules())),
                history(),
            )
        })
        .prop_map(
            |((min, max, current, target), pods, behavior, history)| Case {
                min,
                max,
                current,
                target,
                pods,
                behavior: behavior.map(|(scale_up, scale_down)| Behavior {
                    scale_up,
                    scale_down,
                }),
                history,
            },
        )
}

fn facts(pods: &[PodCase]) -> (Vec<PodFacts>, Vec<Observation>) {
    let mut facts = Vec::new();
    let mut seen = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        let name: Box<str> = format!("p{i}").into();
        let start = if p.hot { NOW } else { NOW - 600 * SEC };
        facts.push(PodFacts {
            name: name.clone(),
            phase: if p.pending {
                PodPhase::Pending
            } else {
                PodPhase::Running
            },
            ready: Some(ReadyCondition {
                status: if p.ready {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                last_transition_unix_nanos: start,
            }),
            start_unix_nanos: Some(start),
            deleting: false,
            cpu_request_milli: Some(p.request),
            memory_request_milli: Some(p.request),
        });
        if let Some(v) = p.value {
            seen.push(Observation {
                pod: name,
                observed: Observed::Sample(Sample {
                    milli: v,
                    at_unix_nanos: NOW,
                    window: Duration::from_secs(30),
                }),
            });
        }
    }
    (facts, seen)
}

fn run(c: &Case, blind: bool) -> Decision {
    let (facts, seen) = facts(&c.pods);
    let mut metrics = vec![MetricSpec {
        kind: MetricKind::Cpu,
        target: Target::Utilization(c.target),
    }];
    let mut observations: Vec<Observations> = vec![Ok(seen)];
    if blind {
        metrics.push(MetricSpec {
            kind: MetricKind::Gpu,
            target: Target::AverageValue(1000),
        });
        observations.push(Err("the GPU source is unreachable".into()));
    }
    let spec = Spec {
        min_replicas: Some(c.min),
        max_replicas: c.max,
        metrics,
        behavior: c.behavior.clone(),
    };
    let input = SyncInput {
        current_replicas: c.current,
        pods: &facts,
        observations: &observations,
    };
    decide(&spec, &config(), &input, c.history.clone(), &[], at(NOW))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_count_stays_within_the_bounds(c in case(), blind in prop::bool::ANY) {
        let d = run(&c, blind);
        if c.current == 0 && c.min > 0 {
            // Autoscaling is off: nothing moves (upstream's ScalingDisabled).
            prop_assert_eq!(d.desired_replicas, 0);
            prop_assert!(!d.rescale);
        } else {
            prop_assert!(c.min <= d.desired_replicas && d.desired_replicas <= c.max, "{}", d);
        }
        prop_assert_eq!(d.rescale, d.desired_replicas != c.current);
        prop_assert!(d.history.seen);
    }

    #[test]
    fn a_blind_metric_never_lets_the_count_fall(c in case()) {
        // Only counts inside the bounds reach the metrics.
        let c = Case { current: c.min + c.current % (c.max - c.min + 1), ..c };
        let d = run(&c, true);
        prop_assert!(d.desired_replicas >= c.current, "{}", d);
        if d.desired_replicas == c.current {
            prop_assert!(!d.rescale);
        }
        // Without the blind metric the same inputs may scale down; with it, when
        // they would, the guard is what held the count.
        let free = run(&c, false);
        if free.proposal.is_some_and(|p| p.replicas < c.current) {
            prop_assert_eq!(d.limited_by(), Some(Rule::InvalidMetricBlocksScaleDown));
        }
    }
}

proptest! {
    // Each case is 120 syncs.
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn constant_load_settles_without_flapping(
        load in 1i64..200_000,
        request in 100i64..2000,
        target in 20u32..=100,
        start in 1u32..40,
        max in 1u32..60,
        with_behavior in prop::bool::ANY,
        utilization in prop::bool::ANY,
    ) {
        let max = max.max(start);
        let spec = Spec {
            min_replicas: Some(1),
            max_replicas: max,
            metrics: vec![MetricSpec {
                kind: MetricKind::Cpu,
                target: if utilization {
                    Target::Utilization(target)
                } else {
                    Target::AverageValue(request * i64::from(target) / 100)
                },
            }],
            behavior: with_behavior.then(Behavior::default),
        };
        let mut current = start;
        let mut history = History::default();
        let mut conditions = Vec::new();
        let mut counts = Vec::new();
        for sync in 0..120u64 {
            let wall = NOW + sync * 15 * SEC;
            // The same total load, spread evenly over however many pods there are.
            let per_pod = load / i64::from(current);
            let pods: Vec<PodCase> = (0..current)
                .map(|_| PodCase { value: Some(per_pod), request, ready: true, hot: false, pending: false })
                .collect();
            let (mut facts, seen) = facts(&pods);
            for f in &mut facts {
                f.start_unix_nanos = Some(wall - 600 * SEC);
            }
            let seen: Vec<Observation> = seen
                .into_iter()
                .map(|mut o| {
                    if let Observed::Sample(s) = &mut o.observed {
                        s.at_unix_nanos = wall;
                    }
                    o
                })
                .collect();
            let observations = vec![Ok(seen)];
            let input = SyncInput { current_replicas: current, pods: &facts, observations: &observations };
            let d = decide(&spec, &config(), &input, history, &conditions, at(wall));
            current = d.desired_replicas;
            history = d.history;
            conditions = d.conditions;
            counts.push(current);
        }
        let last = counts[counts.len() - 1];
        prop_assert!(counts[80..].iter().all(|&c| c == last), "{:?}", counts);
        // At most one correction after an overshoot: whole-percent utilisation is
        // coarse when pods use little of their request (upstream truncates the same).
        let mut reversals = 0;
        let mut direction = 0i64;
        for w in counts.windows(2) {
            let d = (i64::from(w[1]) - i64::from(w[0])).signum();
            if d != 0 && direction != 0 && d != direction {
                reversals += 1;
            }
            if d != 0 {
                direction = d;
            }
        }
        prop_assert!(reversals <= 2, "{:?}", counts);
    }
}
