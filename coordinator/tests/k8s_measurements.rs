//! Measurement runs on a cluster are `Measurement` resources (`store::measurements`'
//! resources layout over the custom-resource store), against the API server fake: a run
//! started through the REST API is a resource kubectl would list (spec, phase, node,
//! summary, conditions) while it runs and once its result is in, and a second
//! coordinator reads it; ids need no counter and never collide; retention works as
//! standalone, and after a change of leadership counts the runs another coordinator
//! finished; a result larger than an object may be is kept as its summary, saying so;
//! a coordinator stopped between the two writes of a create leaves a run that still
//! reads back and is completed.

mod k8s_support;
mod support;

use aistor_coordinator::k8s::ClusterConfig;
use aistor_coordinator::store::custom_resources::CustomResourceStore;
use aistor_coordinator::store::measurement_resource::{STORE_LIMIT_NOTE, name_of};
use aistor_coordinator::store::measurements::{Layout, Measurements};
use aistor_coordinator::store::{ListOptions, MAX_BODY_BYTES, Store, StoreError};
use aistor_kube_fake::{RequestMatcher, Verb};
use aistor_proto::v1 as pb;
use k8s_support::agent::SimulatedAgent;
use k8s_support::{Fake, NAMESPACE, eventually, within};
use prost::Message;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::{Coordinator, http_get, http_request};

const API: &str = "aistor.io/v1alpha1";

fn resource(fake: &Fake, id: &str) -> Option<Value> {
    fake.server
        .object(API, "Measurement", Some(NAMESPACE), &name_of(id))
}

async fn coordinator(fake: &Fake, identity: &str) -> Coordinator {
    let mut k8s = fake.config(identity);
    k8s.lease.duration = Duration::from_secs(4);
    k8s.lease.renew_deadline = Duration::from_secs(2);
    Coordinator::start(|cfg| cfg.cluster = ClusterConfig::Kubernetes(k8s)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_a_measurement_resource_from_start_to_result_and_another_coordinator_reads_it() {
    let fake = k8s_support::start().await;
    fake.install_crds();
    let a = coordinator(&fake, "coordinator-a").await;
    a.until_leading().await;
    let agent = SimulatedAgent::start(a.grpc, "node-1", fake.agent_token("node-1"));
    agent.set_pods(vec![("ml".into(), "train".into(), "uid-train".into())]);
    {
        let mut state = agent.state();
        state.usage = Some((250.0, 1 << 30));
        state.hold_results = true;
    }

    // Start: the pod is known once the agent's first report is in.
    let request = r#"{"pod_namespace": "ml", "pod_name": "train", "samples": 5, "interval": "100ms", "trim": 0.2}"#;
    let id = within("the run to start", async {
        loop {
            let (status, _, started) =
                http_request(a.http, "POST", "/api/v1/measurements", request).await;
            if status == 202 {
                return started["measurement_id"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // m-<20-digit wall time>-<8 hex digits of this coordinator's instance>.
    let parts: Vec<&str> = id.split('-').collect();
    assert!(
        parts.len() == 3 && parts[1].len() == 20 && parts[2].len() == 8,
        "{id}"
    );

    // Running, as kubectl shows it (the agent holds its result).
    let running = resource(&fake, &id).expect("a Measurement resource");
    assert_eq!(
        running["spec"],
        json!({"target": {"pod": {"namespace": "ml", "name": "train"}}, "node": "node-1",
               "samples": 5, "intervalMilliseconds": 100, "trim": 0.2})
    );
    assert_eq!(running["status"]["phase"], "Running");
    assert_eq!(running["status"]["node"], "node-1");
    assert_eq!(running["status"]["conditions"][0]["type"], "Complete");
    assert_eq!(running["status"]["conditions"][0]["status"], "False");
    assert_eq!(running["status"]["conditions"][0]["reason"], "Running");
    assert_eq!(
        http_get(a.http, &format!("/api/v1/measurements/{id}"))
            .await
            .1["state"],
        "running"
    );

    // The result: the agent lets it go.
    eventually("the agent to get the run", || {
        !agent.state().held.is_empty()
    })
    .await;
    {
        let mut state = agent.state();
        state.hold_results = false;
        let held = std::mem::take(&mut state.held);
        state.measurements.extend(held);
    }
    eventually("the resource to say Succeeded", || {
        resource(&fake, &id).is_some_and(|r| r["status"]["phase"] == "Succeeded")
    })
    .await;
    let done = resource(&fake, &id).unwrap();
    let status = &done["status"];
    assert_eq!(status["result"]["samples"], 5);
    assert_eq!(status["result"]["cpuMillicores"]["trimmedMean"], 250.0);
    assert_eq!(
        status["result"]["memoryWorkingSetBytes"]["trimmedMean"],
        f64::from(1u32 << 30)
    );
    assert!(status["completionTime"].is_string(), "{status}");
    let conditions: Vec<(&str, &str, &str)> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        [
            ("Complete", "True", "Succeeded"),
            ("SamplesKept", "True", "AllKept")
        ]
    );
    // The spec was written once: finishing is a status write.
    assert_eq!(done["spec"], running["spec"]);
    let (_, read) = http_get(a.http, &format!("/api/v1/measurements/{id}")).await;
    assert_eq!(read["state"], "succeeded", "{read}");
    assert_eq!(
        read["result"]["targets"][0]["summary"]["cpu_millicores"]["trimmed_mean"],
        250.0
    );

    // A second coordinator on the same cluster (a standby, or the next leader after this
    // pod is replaced) reads the run from the resource.
    let b = coordinator(&fake, "coordinator-b").await;
    let (code, from_b) = http_get(b.http, &format!("/api/v1/measurements/{id}")).await;
    assert_eq!(code, 200, "{from_b}");
    assert_eq!(from_b, read);
    fake.assert_every_call_is_listed();
    agent.stop();
    b.stop().await;
    a.stop().await;
}

fn running(id: &str, node: &str, created: u64) -> pb::Measurement {
    pb::Measurement {
        id: id.into(),
        node: node.into(),
        state: pb::MeasurementState::Running as i32,
        run: Some(pb::MeasureRun {
            id: id.into(),
            target: Some(pb::MeasureTarget {
                target: Some(pb::measure_target::Target::CgroupPath(
                    "system.slice/x".into(),
                )),
            }),
            samples: 3,
            interval_nanos: 1_000_000_000,
            trim: 0.0,
        }),
        created_unix_nanos: created,
        ..Default::default()
    }
}

/// A result with `samples` readings of one cgroup and a CPU summary.
fn result(id: &str, samples: usize, error: &str) -> pb::MeasurementResult {
    let sample = pb::MeasureSample {
        wall_time_unix_nanos: 1_700_000_000_000_000_000,
        elapsed_nanos: 1_000_000_000,
        cpu_millicores: Some(123.25),
        memory_working_set_bytes: Some(1 << 20),
        memory_rss_bytes: Some(1 << 19),
        io_read_bytes_per_second: Some(4096.5),
        io_write_bytes_per_second: Some(8192.5),
        io_reads_per_second: Some(10.5),
        io_writes_per_second: Some(20.5),
    };
    pb::MeasurementResult {
        id: id.into(),
        node: "n1".into(),
        started_unix_nanos: 1_700_000_000_000_000_000,
        finished_unix_nanos: 1_700_000_100_000_000_000,
        targets: vec![pb::MeasuredCgroup {
            kind: "cgroup".into(),
            cgroup_path: "system.slice/x".into(),
            samples: vec![sample; samples],
            samples_taken: samples as u32,
            summary: Some(pb::MeasureSummary {
                cpu_millicores: Some(pb::FigureSummary {
                    count: samples as u32,
                    trimmed_mean: 123.25,
                    median: 123.25,
                    min: 123.25,
                    max: 123.25,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        error: error.into(),
        ..Default::default()
    }
}

struct Cluster {
    fake: Fake,
    store: Arc<dyn Store>,
}

async fn cluster() -> Cluster {
    let fake = k8s_support::start().await;
    fake.install_crds();
    let store: Arc<dyn Store> = Arc::new(CustomResourceStore::new(fake.connect("c").await.client));
    Cluster { fake, store }
}

async fn runs(
    c: &Cluster,
    seed: &str,
    keep: usize,
) -> (Measurements, tokio::sync::watch::Sender<bool>) {
    let (leader, watch) = tokio::sync::watch::channel(false);
    let runs = Measurements::open_in_cluster(
        c.store.clone(),
        Layout::resources(NAMESPACE, seed),
        keep,
        watch,
    )
    .await;
    (runs, leader)
}

#[tokio::test]
async fn ids_need_no_counter_and_two_coordinators_never_share_one() {
    let c = cluster().await;
    let (a, _la) = runs(&c, "coordinator-a/1/1", 10).await;
    let (b, _lb) = runs(&c, "coordinator-b/1/1", 10).await;
    // The same instant on both, and twice on one: all distinct, each sorting after the last.
    let mut seen = std::collections::BTreeSet::new();
    let mut last = String::new();
    for now in [5, 5, 4, 1_700_000_000_000_000_000] {
        let id = a.next_id(now).await.unwrap();
        assert!(id > last, "{id} after {last}");
        last = id.clone();
        assert!(seen.insert(id));
        assert!(seen.insert(b.next_id(now).await.unwrap()));
    }
    assert_eq!(seen.len(), 8);
    let first = seen
        .iter()
        .find(|id| id.starts_with("m-00000000000000000005-"))
        .unwrap();
    assert_eq!(first.len(), "m-".len() + 20 + 1 + 8);
    // No `sequences` object: the kind is not kept on a cluster at all.
    match c
        .store
        .get("sequences", &format!("{NAMESPACE}/measurements"))
        .await
    {
        Err(StoreError::InvalidKind { .. }) => {}
        other => panic!("expected InvalidKind, got {other:?}"),
    }
    // The API server refuses a second run with a taken id (never an overwrite).
    let id = a.next_id(10).await.unwrap();
    a.create(&running(&id, "n1", 10), 10).await.unwrap();
    match b.create(&running(&id, "n2", 11), 11).await {
        Err(StoreError::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(a.get(&id).await.unwrap().unwrap().node, "n1");
    c.fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn results_complete_runs_and_unknown_or_odd_ids_are_kept_too() {
    let c = cluster().await;
    let (runs, _leader) = runs(&c, "a", 10).await;
    let m = running("m-1", "n1", 1_000);
    runs.create(&m, 1_000).await.unwrap();
    assert_eq!(runs.get("m-1").await.unwrap(), Some(m.clone()));
    let done = runs.complete(result("m-1", 3, ""), 2_000).await.unwrap();
    assert_eq!(runs.get("m-1").await.unwrap(), Some(done.clone()));
    assert_eq!(done.state, pb::MeasurementState::Succeeded as i32);
    assert_eq!(done.result.as_ref().unwrap().targets[0].samples.len(), 3);
    assert_eq!(done.run, m.run);

    // From an agent's own CLI: not a valid resource name, kept under a hashed one.
    let mut from_cli = result("CLI_Run/7", 1, "target not found");
    from_cli.run = running("CLI_Run/7", "n1", 0).run;
    let odd = runs.complete(from_cli.clone(), 3_000).await.unwrap();
    assert_eq!(odd.state, pb::MeasurementState::Failed as i32);
    assert_eq!(
        (odd.id.as_str(), odd.node.as_str(), odd.created_unix_nanos),
        ("CLI_Run/7", "n1", 3_000)
    );
    assert_eq!(odd.run, from_cli.run);
    assert_eq!(runs.get("CLI_Run/7").await.unwrap(), Some(odd));
    let stored = resource(&c.fake, "CLI_Run/7").unwrap();
    assert_eq!(stored["status"]["phase"], "Failed");
    assert_eq!(stored["status"]["message"], "target not found");
    assert_eq!(runs.get("CLI_Run/8").await.unwrap(), None);
    match runs.complete(result("", 1, ""), 1).await {
        Err(StoreError::InvalidKey { reason, .. }) => assert!(reason.contains("empty"), "{reason}"),
        other => panic!("expected InvalidKey, got {other:?}"),
    }

    // A Measurement made with kubectl is not a run: listed runs leave it out, and a
    // result naming it is refused rather than written over it.
    c.fake.server.insert(json!({
        "apiVersion": API, "kind": "Measurement",
        "metadata": {"name": "by-hand", "namespace": NAMESPACE},
        "spec": {"target": {"cgroupPath": "x"}, "samples": 1, "intervalMilliseconds": 10},
    }));
    // Nor are the runs of a coordinator in another namespace.
    let elsewhere = Measurements::open_in_cluster(
        c.store.clone(),
        Layout::resources("other", "x"),
        10,
        tokio::sync::watch::channel(false).1,
    )
    .await;
    elsewhere.create(&running("m-2", "n1", 5), 5).await.unwrap();
    let (listed, next) = runs.list(ListOptions::first(10)).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    // In key order: `m-1` sorts before the hashed `m-sha256-…`.
    assert_eq!(ids, ["m-1", "CLI_Run/7"]);
    assert_eq!(next, None);
    assert_eq!(runs.get("by-hand").await.unwrap(), None);
    match runs.complete(result("by-hand", 1, ""), 1).await {
        Err(StoreError::InvalidBody { reason, .. }) => {
            assert!(reason.contains("aistor did not make"), "{reason}")
        }
        other => panic!("expected InvalidBody, got {other:?}"),
    }
    assert!(
        resource(&c.fake, "by-hand")
            .unwrap()
            .get("status")
            .is_none()
    );
    c.fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn a_result_larger_than_an_object_keeps_its_summary_and_says_what_it_dropped() {
    let c = cluster().await;
    let (runs, _leader) = runs(&c, "a", 10).await;
    runs.create(&running("m-big", "n1", 1), 1).await.unwrap();
    // 40,000 readings: about 3 MiB as protobuf, 4 MiB in base64.
    let big = result("m-big", 40_000, "");
    assert!(big.encoded_len() > 2 * MAX_BODY_BYTES);
    let stored = runs.complete(big, 2).await.unwrap();
    let r = stored.result.as_ref().unwrap();
    assert!(r.targets[0].samples.is_empty());
    assert_eq!(r.targets[0].samples_taken, 40_000);
    assert_eq!(
        r.targets[0]
            .summary
            .as_ref()
            .unwrap()
            .cpu_millicores
            .as_ref()
            .unwrap()
            .trimmed_mean,
        123.25
    );
    assert!(r.truncated.contains(STORE_LIMIT_NOTE), "{}", r.truncated);
    assert!(
        r.truncated
            .contains(&format!("{MAX_BODY_BYTES} bytes per object")),
        "{}",
        r.truncated
    );
    assert!(
        r.truncated.contains("40000 per-sample readings dropped"),
        "{}",
        r.truncated
    );
    // What is read back is what was stored, and the resource says it too.
    assert_eq!(runs.get("m-big").await.unwrap(), Some(stored.clone()));
    let object = resource(&c.fake, "m-big").unwrap();
    assert!(object.to_string().len() <= MAX_BODY_BYTES + 4096);
    assert_eq!(object["status"]["phase"], "Succeeded");
    assert_eq!(
        object["status"]["result"]["cpuMillicores"]["trimmedMean"],
        123.25
    );
    let kept = &object["status"]["conditions"][1];
    assert_eq!(
        (
            kept["type"].as_str(),
            kept["status"].as_str(),
            kept["reason"].as_str()
        ),
        (Some("SamplesKept"), Some("False"), Some("ObjectSizeLimit"))
    );
    assert_eq!(kept["message"].as_str(), Some(r.truncated.as_str()));

    // One that fits whole is kept whole.
    runs.create(&running("m-fits", "n1", 3), 3).await.unwrap();
    let whole = runs.complete(result("m-fits", 2_000, ""), 4).await.unwrap();
    assert_eq!(
        whole.result.as_ref().unwrap().targets[0].samples.len(),
        2_000
    );
    assert!(whole.result.unwrap().truncated.is_empty());
    c.fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn a_create_cut_short_before_its_status_still_reads_back_and_is_completed() {
    let c = cluster().await;
    let (runs, _leader) = runs(&c, "a", 10).await;
    // The coordinator "stops" between the create and the status write.
    c.fake.server.fail_next(
        RequestMatcher {
            verb: Some(Verb::Update),
            resource: Some("measurements".into()),
            subresource: Some("status".into()),
            name: None,
        },
        500,
    );
    let m = running("m-half", "n1", 7);
    let err = runs.create(&m, 7).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert!(resource(&c.fake, "m-half").unwrap().get("status").is_none());
    // Still the running run it was, for this coordinator or the next.
    let (next, _leader) = runs_again(&c).await;
    assert_eq!(next.get("m-half").await.unwrap(), Some(m.clone()));
    let done = next.complete(result("m-half", 2, ""), 8).await.unwrap();
    assert_eq!(done.created_unix_nanos, 7);
    assert_eq!(
        resource(&c.fake, "m-half").unwrap()["status"]["phase"],
        "Succeeded"
    );
    c.fake.assert_every_call_is_listed();
}

async fn runs_again(c: &Cluster) -> (Measurements, tokio::sync::watch::Sender<bool>) {
    runs(c, "b", 10).await
}

#[tokio::test]
async fn retention_keeps_the_newest_finished_runs_and_a_new_leader_counts_the_old_ones() {
    let c = cluster().await;
    let finished_ids = |fake: &Fake| {
        let mut ids: Vec<String> = fake
            .server
            .objects(API, "Measurement", Some(NAMESPACE))
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    // B opens first (a standby), then A leads and finishes runs B never hears of.
    let (b, b_leader) = runs(&c, "b", 2).await;
    let (a, _a_leader) = runs(&c, "a", 2).await;
    a.create(&running("r-run", "n1", 1), 1).await.unwrap();
    for (i, id) in ["f-1", "f-2", "f-3"].iter().enumerate() {
        a.create(&running(id, "n1", 10 + i as u64), 1)
            .await
            .unwrap();
        a.complete(result(id, 1, ""), 20).await.unwrap();
    }
    // Oldest finished first; the running one stays.
    assert_eq!(finished_ids(&c.fake), ["f-2", "f-3", "r-run"]);

    b.create(&running("f-4", "n1", 30), 30).await.unwrap();
    a.complete(result("f-4", 1, ""), 31).await.unwrap();
    assert_eq!(finished_ids(&c.fake), ["f-3", "f-4", "r-run"]);
    // B takes the lead: its index is read again, so it counts what A finished.
    b_leader.send(true).unwrap();
    b.create(&running("f-5", "n1", 40), 40).await.unwrap();
    b.complete(result("f-5", 1, ""), 41).await.unwrap();
    assert_eq!(finished_ids(&c.fake), ["f-4", "f-5", "r-run"]);
    // A new coordinator applies retention as it opens.
    let (c1, _l) = runs(&c, "c", 1).await;
    assert_eq!(finished_ids(&c.fake), ["f-5", "r-run"]);

    // A delete that fails is an error, and the run is deleted by the next retention.
    c.fake.server.fail_next(
        RequestMatcher {
            verb: Some(Verb::Delete),
            resource: Some("measurements".into()),
            subresource: None,
            name: None,
        },
        500,
    );
    c1.create(&running("f-6", "n1", 50), 50).await.unwrap();
    let err = c1.complete(result("f-6", 1, ""), 51).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert_eq!(finished_ids(&c.fake), ["f-5", "f-6", "r-run"]);
    c1.create(&running("f-7", "n1", 60), 60).await.unwrap();
    c1.complete(result("f-7", 1, ""), 61).await.unwrap();
    assert_eq!(finished_ids(&c.fake), ["f-7", "r-run"]);
    c.fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn a_run_whose_delete_failed_keeps_its_age_for_the_next_retention() {
    let c = cluster().await;
    let (runs, _leader) = runs(&c, "a", 2).await;
    let fail_delete_of = |name: &str| {
        c.fake.server.fail_next(
            RequestMatcher {
                verb: Some(Verb::Delete),
                resource: Some("measurements".into()),
                subresource: None,
                name: Some(name.into()),
            },
            500,
        )
    };
    // `y` is the oldest run but still running; `x` the oldest finished.
    runs.create(&running("y", "n1", 10), 10).await.unwrap();
    for (id, created) in [("x", 40), ("z", 50)] {
        runs.create(&running(id, "n1", created), created)
            .await
            .unwrap();
        runs.complete(result(id, 1, ""), created + 1).await.unwrap();
    }
    fail_delete_of("x");
    fail_delete_of("x");
    runs.create(&running("w", "n1", 60), 60).await.unwrap();
    assert!(runs.complete(result("w", 1, ""), 61).await.is_err());
    // `y` finishes: it is older than `x`, so it goes first (then `x` fails again).
    assert!(runs.complete(result("y", 1, ""), 62).await.is_err());
    let mut left: Vec<String> = c
        .fake
        .server
        .objects(API, "Measurement", Some(NAMESPACE))
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["w", "x", "z"]);
}
