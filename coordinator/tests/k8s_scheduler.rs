//! aistor's secondary scheduler against the API server fake, through the real kube-rs
//! client: a pending pod with `schedulerName: ai-storage-scheduler` is bound to the node
//! seed 001's scores prefer, with an Event and an explainable decision; a 409 on the
//! binding drops the assumption and the pod is placed on a later pass; a pod no node
//! can take gets `PodScheduled=False`, a `FailedScheduling` event naming the reasons,
//! and is bound once a node that fits appears; a migration's reservation holds the
//! controller's new pod to the reserved node; the AIStorageConfig is followed live
//! (an invalid one refused with the field named); the extender answers
//! kube-scheduler's requests. Every call is one the RBAC grants.

mod k8s_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use aistor_coordinator::k8s::ClusterConfig;
use aistor_kube_fake::{RequestMatcher, Verb};
use k8s_support::{eventually, within};
use serde_json::{Value, json};
use support::{Coordinator, http_request};

const NS: &str = "ml";

fn node(name: &str, labels: Value, cpu: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"}},
    })
}

fn pending_pod(name: &str, cpu: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": {
            "schedulerName": "ai-storage-scheduler",
            "containers": [{
                "name": "main", "image": "busybox:1.36",
                "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}},
            }],
        },
        "status": {"phase": "Pending"},
    })
}

fn pod_in_fake(fake: &k8s_support::Fake, name: &str) -> Value {
    fake.server
        .object("v1", "Pod", Some(NS), name)
        .unwrap_or(Value::Null)
}

fn node_of(fake: &k8s_support::Fake, name: &str) -> Option<String> {
    pod_in_fake(fake, name)["spec"]["nodeName"]
        .as_str()
        .map(str::to_owned)
}

fn events_about(fake: &k8s_support::Fake, pod: &str) -> Vec<Value> {
    fake.server
        .objects("events.k8s.io/v1", "Event", Some(NS))
        .into_iter()
        .filter(|e| e["regarding"]["name"] == pod)
        .collect()
}

async fn leader(
    fake: &k8s_support::Fake,
    tune: impl FnOnce(&mut aistor_coordinator::config::Config),
) -> Coordinator {
    let mut k8s = fake.config("coordinator-a");
    k8s.lease.duration = Duration::from_secs(4);
    k8s.lease.renew_deadline = Duration::from_secs(2);
    let c = Coordinator::start(|cfg| {
        cfg.cluster = ClusterConfig::Kubernetes(k8s);
        tune(cfg);
    })
    .await;
    within("the coordinator to lead", async {
        while support::http_get(c.http, "/ready").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pods_are_bound_by_the_scores_and_unschedulable_ones_say_why() {
    let fake = k8s_support::start().await;
    fake.install_crds();
    let s = &fake.server;
    s.insert(node("node-nvme", json!({"storage-tier/nvme": "true"}), "8"));
    s.insert(node("node-hdd", json!({"storage-tier/hdd": "true"}), "8"));
    // Another scheduler's pod is left alone.
    s.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "theirs", "namespace": NS},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }));
    // Random I/O: StorageTierAware gives NVMe 40 of its 40 I/O points, HDD 10.
    s.insert(pending_pod(
        "train",
        "500m",
        json!({"ai-storage.keti/io-pattern": "random"}),
    ));
    // The first binding of the second pod meets a 409.
    s.fail_next(
        RequestMatcher {
            verb: Some(Verb::Create),
            resource: Some("pods".into()),
            subresource: Some("binding".into()),
            name: Some("second".into()),
        },
        409,
    );
    s.insert(pending_pod(
        "second",
        "500m",
        json!({"ai-storage.keti/io-pattern": "random"}),
    ));
    // 100 CPUs fit nowhere.
    s.insert(pending_pod("huge", "100", json!({})));

    let c = leader(&fake, |_| {}).await;

    eventually("train to be bound", || node_of(&fake, "train").is_some()).await;
    assert_eq!(node_of(&fake, "train").as_deref(), Some("node-nvme"));
    // The Event is written after the binding succeeds.
    eventually("train's Scheduled event", || {
        events_about(&fake, "train")
            .iter()
            .any(|e| e["reason"] == "Scheduled" && e["type"] == "Normal")
    })
    .await;

    // The 409 dropped the assumption; a later pass bound the pod.
    eventually("second to be bound after the 409", || {
        node_of(&fake, "second").is_some()
    })
    .await;
    let bindings = s
        .requests()
        .iter()
        .filter(|r| r.subresource.as_deref() == Some("binding") && r.path.contains("/second/"))
        .count();
    assert!(
        bindings >= 2,
        "the refused binding was tried again ({bindings})"
    );

    // Why the pod waits, as kube-scheduler says it.
    eventually("huge to be marked unschedulable", || {
        pod_in_fake(&fake, "huge")["status"]["conditions"]
            .as_array()
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c["type"] == "PodScheduled"
                        && c["status"] == "False"
                        && c["reason"] == "Unschedulable"
                })
            })
    })
    .await;
    let condition = pod_in_fake(&fake, "huge")["status"]["conditions"][0].clone();
    assert_eq!(
        condition["message"], "0/2 nodes are available: 2 Insufficient cpu.",
        "{condition}"
    );
    eventually("huge's FailedScheduling event", || {
        events_about(&fake, "huge").iter().any(|e| {
            e["reason"] == "FailedScheduling"
                && e["type"] == "Warning"
                && e["note"] == "0/2 nodes are available: 2 Insufficient cpu."
        })
    })
    .await;
    assert_eq!(node_of(&fake, "theirs"), None, "another scheduler's pod");

    // The explanation: every node with each plugin's score and the filters' reasons.
    let (status, _, explained) = http_request(
        c.http,
        "POST",
        "/api/v1/placements/explain",
        &json!({"metadata": {"namespace": NS, "name": "huge"}}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{explained}");
    assert_eq!(explained["node"], Value::Null, "{explained}");
    assert_eq!(
        explained["unschedulable"],
        "0/2 nodes are available: 2 Insufficient cpu."
    );
    let nodes = explained["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for n in nodes {
        assert_eq!(n["rejections"][0]["filter"], "NodeResourcesFit", "{n}");
        assert!(
            n["rejections"][0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("Insufficient cpu: the pod requests 100000m"),
            "{n}"
        );
    }
    let (_, _, train) = http_request(
        c.http,
        "POST",
        "/api/v1/placements/explain",
        &pending_pod(
            "what-if",
            "500m",
            json!({"ai-storage.keti/io-pattern": "random"}),
        )
        .to_string(),
    )
    .await;
    assert_eq!(train["node"], "node-nvme", "{train}");
    let tier = |node: &str| {
        train["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == node)
            .and_then(|n| {
                n["scores"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["plugin"] == "StorageTierAware")
                    .cloned()
            })
            .unwrap()
    };
    assert!(
        tier("node-nvme")["normalised"].as_f64() > tier("node-hdd")["normalised"].as_f64(),
        "{train}"
    );
    assert_eq!(train["config_source"], "defaults");

    // A node that fits appears: the pod backing off is bound there.
    s.insert(node("node-big", json!({}), "128"));
    within("huge to be bound once a node fits", async {
        while node_of(&fake, "huge").is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(node_of(&fake, "huge").as_deref(), Some("node-big"));
    fake.assert_every_call_is_listed();
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aistorageconfig_is_followed_live_and_an_invalid_one_is_refused_naming_the_field() {
    let fake = k8s_support::start().await;
    fake.install_crds();
    let s = &fake.server;
    s.insert(node("node-1", json!({}), "8"));
    let c = leader(&fake, |_| {}).await;
    let config = |weight: i64| {
        json!({
            "apiVersion": "ai-storage.keti/v1", "kind": "AIStorageConfig",
            "metadata": {"name": "default", "namespace": "keti"},
            "spec": {"plugins": {"storageTierAware": {"weight": weight}, "dataLocalityAware": {"enabled": false}}},
        })
    };
    let source = || async {
        http_request(c.http, "GET", "/api/v1/placements/config", "")
            .await
            .2
    };
    s.insert(config(7));
    let applied = within("the AIStorageConfig to be applied", async {
        loop {
            let v = source().await;
            if v["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("AIStorageConfig keti/default"))
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(
        applied["document"]["spec"]["plugins"]["storageTierAware"]["weight"], 7,
        "{applied}"
    );
    let condition = |fake: &k8s_support::Fake| {
        fake.server
            .object(
                "ai-storage.keti/v1",
                "AIStorageConfig",
                Some("keti"),
                "default",
            )
            .map(|o| o["status"]["conditions"][0].clone())
            .unwrap_or(Value::Null)
    };
    eventually("Applied=True", || condition(&fake)["status"] == "True").await;
    // The weights show in every explanation.
    let (_, _, explained) = http_request(
        c.http,
        "POST",
        "/api/v1/placements/explain",
        &pending_pod("p", "100m", json!({})).to_string(),
    )
    .await;
    let weights = explained["weights"].as_array().unwrap();
    assert!(
        weights
            .iter()
            .any(|w| w["plugin"] == "StorageTierAware" && w["weight"] == 7),
        "{explained}"
    );
    assert!(
        !weights.iter().any(|w| w["plugin"] == "DataLocalityAware"),
        "a disabled plugin has no weight: {explained}"
    );

    // Out of range: refused with the field named; the one in force stays. (The test
    // edits the resource as a user would; that call is the test's, not the coordinator's.)
    fake.assert_every_call_is_listed();
    let mut rules = k8s_support::granted_rules();
    rules.push(aistor_kube_fake::Rule::cluster(
        "ai-storage.keti",
        "aistorageconfigs",
        &["patch"],
    ));
    fake.server
        .enforce_rbac(k8s_support::COORDINATOR_USER, rules);
    let client = fake.connect("a-user").await.client;
    kube::Api::<aistor_coordinator::k8s::crd::AIStorageConfig>::namespaced(client, "keti")
        .patch(
            "default",
            &kube::api::PatchParams::default(),
            // Within the CRD's schema (the API server takes it), past what the I/O-pattern
            // part allows (40): only aistor's validation can refuse it.
            &kube::api::Patch::Merge(
                json!({"spec": {"storageTiers": {"ssd": {"randomScore": 99}}}}),
            ),
        )
        .await
        .expect("the edit");
    eventually("Applied=False naming the field", || {
        let c = condition(&fake);
        c["status"] == "False"
            && c["message"]
                .as_str()
                .is_some_and(|m| m.contains("spec.storageTiers.ssd.randomScore"))
    })
    .await;
    let still = source().await;
    assert_eq!(
        still["document"]["spec"]["plugins"]["storageTierAware"]["weight"], 7,
        "{still}"
    );
    c.stop().await;
}

/// The extender as kube-scheduler calls it: `nodeCacheCapable: false` sends whole nodes
/// and gets the nodes that pass back, with each failed node's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extender_answers_kube_schedulers_filter_and_prioritize() {
    let fake = k8s_support::start().await;
    fake.install_crds();
    fake.server
        .insert(node("node-nvme", json!({"storage-tier/nvme": "true"}), "8"));
    fake.server
        .insert(node("node-hdd", json!({"storage-tier/hdd": "true"}), "8"));
    fake.server.insert(node("node-small", json!({}), "1"));
    let c = leader(&fake, |cfg| {
        cfg.placement.extender_addr = Some("127.0.0.1:0".parse().unwrap());
        cfg.placement.scheduler = false;
    })
    .await;
    let extender = c.extender.expect("the extender listens");
    // Wait for the caches to hold the three nodes.
    within("the caches", async {
        loop {
            let body = include_str!("fixtures/extender/filter-node-names.json");
            let (_, _, r) = http_request(extender, "POST", "/scheduler/filter", body).await;
            if r["FailedAndUnresolvableNodes"]
                .as_object()
                .is_some_and(|m| m.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let (status, _, filtered) = http_request(
        extender,
        "POST",
        "/scheduler/filter",
        include_str!("fixtures/extender/filter-nodes.json"),
    )
    .await;
    assert_eq!(status, 200, "{filtered}");
    let passed: Vec<&str> = filtered["Nodes"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(passed, ["node-nvme", "node-hdd"], "{filtered}");
    // Too little CPU: preemption could help, so not "unresolvable".
    assert!(
        filtered["FailedNodes"]["node-small"]
            .as_str()
            .unwrap()
            .starts_with("Insufficient cpu"),
        "{filtered}"
    );
    assert_eq!(filtered["Error"], "");

    let (_, _, by_name) = http_request(
        extender,
        "POST",
        "/scheduler/filter",
        include_str!("fixtures/extender/filter-node-names.json"),
    )
    .await;
    assert_eq!(
        by_name["NodeNames"],
        json!(["node-nvme", "node-hdd"]),
        "{by_name}"
    );
    assert!(by_name.get("Nodes").is_none(), "{by_name}");

    let (status, _, priorities) = http_request(
        extender,
        "POST",
        "/scheduler/prioritize",
        include_str!("fixtures/extender/prioritize.json"),
    )
    .await;
    assert_eq!(status, 200, "{priorities}");
    let score = |host: &str| {
        priorities
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["Host"] == host)
            .unwrap()["Score"]
            .as_i64()
            .unwrap()
    };
    // The best node scores kube-scheduler's maximum, the other in proportion.
    assert_eq!(score("node-nvme"), 10, "{priorities}");
    assert!((1..10).contains(&score("node-hdd")), "{priorities}");

    let (status, _, refused) =
        http_request(extender, "POST", "/scheduler/filter", "{\"Pod\": 7}").await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["details"]
            .as_str()
            .unwrap()
            .starts_with("the body is not ExtenderArgs"),
        "{refused}"
    );
    // Nothing was bound: the extender only reads.
    assert!(
        !fake
            .server
            .requests()
            .iter()
            .any(|r| r.subresource.as_deref() == Some("binding"))
    );
    fake.assert_every_call_is_listed();
    c.stop().await;
}

/// A migration evicted a ReplicaSet's pod and reserved a node: the ReplicaSet's new pod
/// goes there, even where the scores prefer another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_reservation_holds_the_controllers_new_pod_to_its_node() {
    use aistor_coordinator::placement::{Placement, scheduler};
    let fake = k8s_support::start().await;
    let s = &fake.server;
    s.insert(node("node-nvme", json!({"storage-tier/nvme": "true"}), "8"));
    s.insert(node("node-hdd", json!({"storage-tier/hdd": "true"}), "8"));
    let mut replacement = pending_pod(
        "web-abcde",
        "500m",
        json!({"ai-storage.keti/io-pattern": "random"}),
    );
    replacement["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f",
        "uid": "rs-uid-1", "controller": true,
    }]);
    s.insert(replacement);
    let free = pending_pod(
        "free",
        "500m",
        json!({"ai-storage.keti/io-pattern": "random"}),
    );
    s.insert(free);

    let cluster = fake.connect("scheduler-test").await;
    let (cache, tasks) = aistor_coordinator::k8s::Cache::new(&cluster.client);
    let mut running = Vec::new();
    for t in tasks {
        running.push(tokio::spawn(t.future));
    }
    let view = aistor_coordinator::view::LiveView::new(
        aistor_core::ViewConfig::default(),
        Arc::new(aistor_core::clock::ManualClock::new(
            aistor_core::clock::Now {
                monotonic: Duration::from_secs(1000),
                wall_unix_nanos: 1_800_000_000_000_000_000,
            },
        )),
        aistor_coordinator::metrics::CoordinatorMetrics::default(),
    );
    let placement = Placement::new(view);
    placement.set_reservations(Arc::new(|| {
        vec![aistor_core::placement::Reservation {
            migration_id: "migration-0000abcd".into(),
            namespace: NS.into(),
            owner_uid: "rs-uid-1".into(),
            node: "node-hdd".into(),
        }]
    }));
    let actuator = Arc::new(aistor_coordinator::k8s::actuate::Kubernetes::new(
        cluster.client.clone(),
        "scheduler-test",
    ));
    within("the caches", cache.wait_ready()).await;
    let mut scheduler = scheduler::Scheduler::new(cache, actuator, placement);
    within("both pods bound", async {
        while node_of(&fake, "web-abcde").is_none() || node_of(&fake, "free").is_none() {
            scheduler.pass().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(node_of(&fake, "web-abcde").as_deref(), Some("node-hdd"));
    assert_eq!(node_of(&fake, "free").as_deref(), Some("node-nvme"));
    for t in running {
        t.abort();
    }
}

/// With APOLLO: its policy is asked for each pod and decides (REQUIRE ultra-fast storage
/// keeps the pod off the HDD node that wins the tie without it), and the result is
/// reported; when APOLLO fails, the pod is placed without its policy all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apollos_policy_decides_and_its_result_is_reported_and_a_failing_apollo_stalls_nothing() {
    use aistor_proto::apollo as apb;
    use support::apollo::{Behaviour, FakeApollo};
    let apollo = FakeApollo::start(apb::SchedulingPolicy {
        request_id: "req-7".into(),
        decision: apb::SchedulingDecision::Require as i32,
        storage_requirements: Some(apb::StorageRequirements {
            storage_class: apb::StorageClass::UltraFast as i32,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let fake = k8s_support::start().await;
    fake.install_crds();
    let s = &fake.server;
    s.insert(node("node-nvme", json!({"storage-tier/nvme": "true"}), "8"));
    s.insert(node("node-hdd", json!({"storage-tier/hdd": "true"}), "8"));
    let endpoint = apollo.endpoint();
    let c = leader(&fake, |cfg| {
        cfg.placement.apollo = Some(aistor_coordinator::placement::apollo::ApolloConfig::new(
            endpoint,
            Duration::from_secs(5),
            Duration::from_secs(30),
        ));
    })
    .await;
    s.insert(pending_pod("guided", "100m", json!({})));
    eventually("guided to be bound", || node_of(&fake, "guided").is_some()).await;
    assert_eq!(node_of(&fake, "guided").as_deref(), Some("node-nvme"));
    let asked = apollo.requests();
    assert_eq!(asked[0].pod_name, "guided");
    assert_eq!(asked[0].pod_namespace, NS);
    let reports = within("APOLLO's report", apollo.until_reports(1)).await;
    assert_eq!(reports[0].request_id, "req-7");
    assert_eq!(reports[0].scheduled_node, "node-nvme");
    assert!(reports[0].success);

    // The same pod without APOLLO's policy would go to the first name of a tie.
    apollo.behave(Behaviour::Fail(
        tonic::Code::Unavailable,
        "overloaded".into(),
    ));
    s.insert(pending_pod("unguided", "100m", json!({})));
    eventually("unguided to be bound", || {
        node_of(&fake, "unguided").is_some()
    })
    .await;
    assert_eq!(node_of(&fake, "unguided").as_deref(), Some("node-hdd"));
    assert_eq!(
        apollo.reports().len(),
        1,
        "no report without a fresh policy"
    );
    fake.assert_every_call_is_listed();
    c.stop().await;
}
