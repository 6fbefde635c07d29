//! The APOLLO client against a fake APOLLO (a real tonic server on loopback, from our
//! own `apollo.proto`): used when up, cached, and a fallback with its reason when
//! APOLLO is down, slow, failing or answering nonsense — never a stall.

mod support;

use aistor_coordinator::placement::apollo::{
    Apollo, ApolloConfig, PolicyLookup, PolicyRequest, SchedulingResult,
};
use aistor_core::placement::apollo::{
    IoPattern, NodePreference, PipelineStage, PluginWeights, Policy, PreprocessingType,
    SchedulingDecision, StorageClass, StorageRequirements, WorkloadSignature,
};
use aistor_core::{ManualClock, Now};
use aistor_proto::apollo as pb;
use std::sync::Arc;
use std::time::Duration;
use support::apollo::{Behaviour, FakeApollo, nothing_listening};

const TIMEOUT: Duration = Duration::from_millis(300);
const TTL: Duration = Duration::from_secs(30);
const FAILURE_TTL: Duration = Duration::from_secs(5);

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Now {
        monotonic: Duration::from_secs(1000),
        wall_unix_nanos: 1,
    }))
}

fn config(endpoint: &str) -> ApolloConfig {
    ApolloConfig {
        failure_ttl: FAILURE_TTL,
        ..ApolloConfig::new(endpoint, TIMEOUT, TTL)
    }
}

fn client(config: ApolloConfig, clock: &Arc<ManualClock>) -> Apollo {
    Apollo::new(config, clock.clone()).expect("a client")
}

fn pod(name: &str) -> PolicyRequest {
    PolicyRequest {
        namespace: "ml".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        labels: [("pipeline-step".into(), "preprocess".into())].into(),
        annotations: [
            ("ai-storage.keti/io-pattern".into(), "random".into()),
            ("ai-storage.keti/preferred-zone".into(), "z1".into()),
        ]
        .into(),
    }
}

/// The wire policy the fake answers, and the core policy it must become.
fn scripted() -> (pb::SchedulingPolicy, Policy) {
    let wire = pb::SchedulingPolicy {
        request_id: "req-42".into(),
        decision: pb::SchedulingDecision::Require as i32,
        node_preferences: vec![pb::NodePreference {
            node_name: "gpu-1".into(),
            score: 90,
            reason: "dataset cached".into(),
        }],
        storage_requirements: Some(pb::StorageRequirements {
            storage_class: pb::StorageClass::Fast as i32,
            size_bytes: 5 << 30,
            min_iops: 20_000,
            min_throughput_mbps: 700,
            expected_io_pattern: pb::IoPattern::ReadHeavy as i32,
            requires_csd: false,
        }),
        plugin_weights: Some(pb::PluginWeights {
            data_locality_aware: 0.9,
            storage_tier_aware: 0.5,
            io_pattern_based: 0.25,
            kueue_aware: 0.75,
            pipeline_stage_aware: 0.125,
        }),
        workload_signature: Some(pb::WorkloadSignatureInfo {
            current_stage: pb::PipelineStage::DataLoading as i32,
            io_pattern: pb::IoPattern::Bursty as i32,
            pipeline_step: "data-loading".into(),
            preprocessing_type: pb::PreprocessingType::Sharding as i32,
            data_locations: vec!["gpu-1".into()],
            cached_on_nodes: vec!["gpu-2".into(), "gpu-3".into()],
            ..Default::default()
        }),
        reason: "rule-based".into(),
        ..Default::default()
    };
    let core = Policy {
        request_id: "req-42".into(),
        decision: SchedulingDecision::Require,
        node_preferences: vec![NodePreference {
            node_name: "gpu-1".into(),
            score: 90,
            reason: "dataset cached".into(),
        }],
        storage_requirements: Some(StorageRequirements {
            storage_class: StorageClass::Fast,
            size_bytes: 5 << 30,
            min_iops: 20_000,
            min_throughput_mbps: 700,
            expected_io_pattern: IoPattern::ReadHeavy,
            requires_csd: false,
        }),
        plugin_weights: Some(PluginWeights {
            data_locality_aware: 0.9,
            storage_tier_aware: 0.5,
            io_pattern_based: 0.25,
            kueue_aware: 0.75,
            pipeline_stage_aware: 0.125,
        }),
        workload_signature: Some(WorkloadSignature {
            current_stage: PipelineStage::DataLoading,
            io_pattern: IoPattern::Bursty,
            pipeline_step: "data-loading".into(),
            preprocessing_type: PreprocessingType::Sharding,
            data_locations: vec!["gpu-1".into()],
            cached_on_nodes: vec!["gpu-2".into(), "gpu-3".into()],
        }),
    };
    (wire, core)
}

/// Asks, failing the test on a stall (a minute: far beyond any timeout used here).
async fn ask(apollo: &Apollo, pod: &PolicyRequest) -> PolicyLookup {
    tokio::time::timeout(Duration::from_secs(60), apollo.policy(pod))
        .await
        .expect("the client answers without stalling")
}

fn unavailable(lookup: PolicyLookup) -> String {
    match lookup {
        PolicyLookup::Unavailable(reason) => {
            eprintln!("no policy: {reason}");
            reason
        }
        other => panic!("expected no policy, got {other:?}"),
    }
}

fn metrics(apollo: &Apollo) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    apollo.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

fn counter(text: &str, name: &str, outcome: &str) -> u64 {
    let prefix = format!("aistor_coordinator_apollo_{name}_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn a_policy_from_apollo_is_converted_exactly_and_the_question_names_the_pod() {
    let (wire, core) = scripted();
    let fake = FakeApollo::start(wire).await;
    let clock = clock();
    let apollo = client(config(&fake.endpoint()), &clock);

    let lookup = ask(&apollo, &pod("prep-0")).await;
    assert_eq!(lookup, PolicyLookup::Fresh(core.clone()));
    assert_eq!(lookup.policy(), Some(&core));
    assert_eq!(lookup.request_id(), Some("req-42"));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let asked = &requests[0];
    let expected = pod("prep-0");
    assert_eq!(
        (&asked.pod_namespace, &asked.pod_name, &asked.pod_uid),
        (&expected.namespace, &expected.name, &expected.uid)
    );
    assert_eq!(
        asked.pod_labels.clone().into_iter().collect::<Vec<_>>(),
        expected.labels.into_iter().collect::<Vec<_>>()
    );
    let mut annotations: Vec<_> = asked.pod_annotations.clone().into_iter().collect();
    annotations.sort();
    assert_eq!(
        annotations,
        expected.annotations.into_iter().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_answer_is_reused_within_the_ttl_per_pod() {
    let (wire, core) = scripted();
    let fake = FakeApollo::start(wire).await;
    let clock = clock();
    let apollo = client(config(&fake.endpoint()), &clock);

    assert_eq!(
        ask(&apollo, &pod("a")).await,
        PolicyLookup::Fresh(core.clone())
    );
    clock.advance(TTL - Duration::from_millis(1));
    // A clone shares the cache.
    assert_eq!(
        ask(&apollo.clone(), &pod("a")).await,
        PolicyLookup::Cached(core.clone())
    );
    assert_eq!(fake.requests().len(), 1, "the fake saw one question");

    // Another pod, and the same name with a new uid (a recreated pod), are asked about.
    assert_eq!(
        ask(&apollo, &pod("b")).await,
        PolicyLookup::Fresh(core.clone())
    );
    let mut recreated = pod("a");
    recreated.uid = "uid-a-2".into();
    assert_eq!(
        ask(&apollo, &recreated).await,
        PolicyLookup::Fresh(core.clone())
    );
    assert_eq!(fake.requests().len(), 3);

    // At the TTL the answer is asked for again.
    clock.advance(Duration::from_millis(1));
    assert_eq!(ask(&apollo, &pod("a")).await, PolicyLookup::Fresh(core));
    assert_eq!(fake.requests().len(), 4);

    let text = metrics(&apollo);
    assert_eq!(counter(&text, "policy_requests", "fresh"), 4, "{text}");
    assert_eq!(counter(&text, "policy_requests", "cached"), 1, "{text}");
    assert_eq!(
        counter(&text, "policy_requests", "unavailable"),
        0,
        "{text}"
    );
}

#[tokio::test]
async fn nothing_listening_means_no_policy_with_the_reason_and_no_retry_for_a_while() {
    let endpoint = nothing_listening().await;
    let clock = clock();
    let apollo = client(config(&endpoint), &clock);

    let reason = unavailable(ask(&apollo, &pod("a")).await);
    assert!(
        reason.contains(&format!("APOLLO at http://{endpoint}"))
            && reason.contains("unreachable")
            && reason.contains("Connection refused"),
        "the cause, not only tonic's \"transport error\": {reason}"
    );
    assert!(reason.contains("not asked again for 5s"), "{reason}");
    // Every other pod gets the same answer at once, for the failure TTL.
    let again = unavailable(ask(&apollo, &pod("b")).await);
    assert_eq!(again, reason);
    assert_eq!(ask(&apollo, &pod("a")).await.request_id(), None);

    let text = metrics(&apollo);
    assert_eq!(
        counter(&text, "policy_requests", "unavailable"),
        3,
        "{text}"
    );
}

#[tokio::test]
async fn a_slow_apollo_costs_one_timeout_then_is_left_alone_until_the_failure_ttl() {
    let (wire, core) = scripted();
    let fake = FakeApollo::start(wire.clone()).await;
    // Far beyond the test's patience: the client must not wait for it.
    fake.behave(Behaviour::Slow(Duration::from_secs(3600), wire.clone()));
    let clock = clock();
    let apollo = client(config(&fake.endpoint()), &clock);

    let reason = unavailable(ask(&apollo, &pod("a")).await);
    assert!(
        reason.contains(&format!("APOLLO at http://{}", fake.endpoint()))
            && reason.contains("did not answer within 300ms"),
        "{reason}"
    );
    assert_eq!(unavailable(ask(&apollo, &pod("b")).await), reason);
    assert_eq!(fake.requests().len(), 1, "asked once, not once per pod");

    fake.behave(Behaviour::Answer(wire));
    clock.advance(FAILURE_TTL - Duration::from_millis(1));
    assert_eq!(unavailable(ask(&apollo, &pod("b")).await), reason);
    clock.advance(Duration::from_millis(1));
    assert_eq!(ask(&apollo, &pod("b")).await, PolicyLookup::Fresh(core));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn an_error_answer_is_no_policy_for_that_pod_for_the_failure_ttl() {
    let (wire, core) = scripted();
    let fake = FakeApollo::start(wire.clone()).await;
    fake.behave(Behaviour::Fail(
        tonic::Code::Internal,
        "policy model not loaded".into(),
    ));
    let clock = clock();
    let apollo = client(config(&fake.endpoint()), &clock);

    let reason = unavailable(ask(&apollo, &pod("a")).await);
    assert!(
        reason.contains(&format!("APOLLO at http://{}", fake.endpoint()))
            && reason.contains("Internal")
            && reason.contains("policy model not loaded")
            && reason.contains("not asked again for this pod for 5s"),
        "{reason}"
    );
    assert_eq!(unavailable(ask(&apollo, &pod("a")).await), reason);
    assert_eq!(fake.requests().len(), 1, "the failure is remembered");

    // Only that pod: APOLLO answers, so others are still asked.
    fake.behave(Behaviour::Answer(wire));
    assert_eq!(
        ask(&apollo, &pod("b")).await,
        PolicyLookup::Fresh(core.clone())
    );
    clock.advance(FAILURE_TTL);
    assert_eq!(ask(&apollo, &pod("a")).await, PolicyLookup::Fresh(core));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn an_unavailable_status_from_apollo_leaves_it_alone_like_unreachable() {
    let (wire, _) = scripted();
    let fake = FakeApollo::start(wire).await;
    fake.behave(Behaviour::Fail(
        tonic::Code::Unavailable,
        "overloaded".into(),
    ));
    let clock = clock();
    let apollo = client(config(&fake.endpoint()), &clock);
    let reason = unavailable(ask(&apollo, &pod("a")).await);
    assert!(reason.contains("unreachable: overloaded"), "{reason}");
    unavailable(ask(&apollo, &pod("b")).await);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn bad_answers_are_refused_with_what_was_wrong() {
    let (mut wire, _) = scripted();
    wire.pod_name = "someone-else".into();
    wire.pod_namespace = "ml".into();
    let fake = FakeApollo::start(wire).await;
    let clock = clock();
    let apollo = client(config(&fake.endpoint()), &clock);
    let reason = unavailable(ask(&apollo, &pod("a")).await);
    assert!(
        reason.contains("bad policy") && reason.contains("someone-else"),
        "{reason}"
    );

    // NaN weights.
    let (mut wire, _) = scripted();
    wire.plugin_weights.as_mut().unwrap().io_pattern_based = f32::NAN;
    fake.behave(Behaviour::Answer(wire));
    let reason = unavailable(ask(&apollo, &pod("b")).await);
    assert!(
        reason.contains("plugin_weights.io_pattern_based"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let (mut wire, _) = scripted();
    wire.node_preferences = (0..200)
        .map(|i| pb::NodePreference {
            node_name: format!("node-{i:04}"),
            score: 50,
            reason: "x".repeat(20),
        })
        .collect();
    let fake = FakeApollo::start(wire).await;
    let clock = clock();
    let apollo = client(
        ApolloConfig {
            max_policy_bytes: 1024,
            ..config(&fake.endpoint())
        },
        &clock,
    );
    let reason = unavailable(ask(&apollo, &pod("a")).await);
    assert!(
        reason.contains(&format!("APOLLO at http://{}", fake.endpoint()))
            && reason.contains("1024"),
        "{reason}"
    );
}

#[tokio::test]
async fn reports_arrive_at_apollo_with_every_field() {
    let (wire, _) = scripted();
    let fake = FakeApollo::start(wire).await;
    let clock = clock();
    let apollo = client(config(&fake.endpoint()), &clock);
    let lookup = ask(&apollo, &pod("a")).await;

    apollo.report(SchedulingResult {
        request_id: lookup.request_id().unwrap().to_owned(),
        namespace: "ml".into(),
        name: "a".into(),
        node: "gpu-1".into(),
        success: true,
        failure_reason: String::new(),
        duration: Duration::from_micros(1_234_567),
    });
    apollo.report(SchedulingResult {
        request_id: "req-42".into(),
        namespace: "ml".into(),
        name: "b".into(),
        node: String::new(),
        success: false,
        failure_reason: "0/3 nodes are available".into(),
        duration: Duration::from_millis(7),
    });
    // Without a policy there is nothing to report on.
    apollo.report(SchedulingResult::default());

    let mut reports = fake.until_reports(2).await;
    reports.sort_by(|a, b| a.pod_name.cmp(&b.pod_name));
    assert_eq!(
        reports,
        [
            pb::SchedulingResult {
                request_id: "req-42".into(),
                pod_name: "a".into(),
                pod_namespace: "ml".into(),
                scheduled_node: "gpu-1".into(),
                success: true,
                failure_reason: String::new(),
                scheduling_duration_ms: 1234,
            },
            pb::SchedulingResult {
                request_id: "req-42".into(),
                pod_name: "b".into(),
                pod_namespace: "ml".into(),
                scheduled_node: String::new(),
                success: false,
                failure_reason: "0/3 nodes are available".into(),
                scheduling_duration_ms: 7,
            },
        ]
    );
    let text = metrics(&apollo);
    assert_eq!(counter(&text, "reports", "skipped"), 1, "{text}");
    // Counted after the answer arrives.
    for _ in 0..1200 {
        if counter(&metrics(&apollo), "reports", "sent") == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("reports not counted as sent: {}", metrics(&apollo));
}

#[tokio::test]
async fn reports_beyond_the_bound_are_dropped_and_counted() {
    let (wire, _) = scripted();
    let fake = FakeApollo::start(wire.clone()).await;
    fake.behave(Behaviour::Slow(Duration::from_secs(3600), wire));
    let clock = clock();
    let apollo = client(
        ApolloConfig {
            max_reports_in_flight: 1,
            ..config(&fake.endpoint())
        },
        &clock,
    );
    let result = SchedulingResult {
        request_id: "req-42".into(),
        namespace: "ml".into(),
        name: "a".into(),
        node: "gpu-1".into(),
        success: true,
        ..SchedulingResult::default()
    };
    for _ in 0..3 {
        apollo.report(result.clone());
    }
    let text = metrics(&apollo);
    assert_eq!(counter(&text, "reports", "dropped"), 2, "{text}");
    // The one in flight gives up at the timeout, and frees its slot.
    for _ in 0..1200 {
        if counter(&metrics(&apollo), "reports", "failed") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counter(&metrics(&apollo), "reports", "failed"), 1);
    apollo.report(result);
    assert_eq!(
        counter(&metrics(&apollo), "reports", "dropped"),
        2,
        "a slot was free"
    );
}

#[tokio::test]
async fn reports_are_not_sent_while_apollo_is_known_to_be_down() {
    let endpoint = nothing_listening().await;
    let clock = clock();
    let apollo = client(config(&endpoint), &clock);
    unavailable(ask(&apollo, &pod("a")).await);
    apollo.report(SchedulingResult {
        request_id: "req-1".into(),
        ..SchedulingResult::default()
    });
    assert_eq!(counter(&metrics(&apollo), "reports", "dropped"), 1);
}
