//! Migration on Kubernetes, end to end against the API server fake: a real coordinator
//! (leader) with the seeds' REST API, agents simulated over the real gRPC stream that
//! stage checkpoints and freeze pods as real agents do for kubelet pods, and the test
//! playing the kubelet (it marks the pods the coordinator creates Ready). Records are
//! `Migration` resources; every call is one the RBAC grants.

mod k8s_support;
mod support;

use aistor_coordinator::k8s::ClusterConfig;
use aistor_proto::v1 as pb;
use k8s_support::agent::SimulatedAgent;
use k8s_support::{Fake, within};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use support::{Coordinator, http_get, http_request};

const NS: &str = "ai";
const LONG_AGO: &str = "2026-01-01T00:00:00Z";

fn running(name: &str, image: &str) -> Value {
    json!({"name": name, "ready": true, "restartCount": 0, "image": image, "imageID": "",
           "state": {"running": {"startedAt": LONG_AGO}}})
}

fn ready_status(containers: Vec<Value>) -> Value {
    json!({
        "phase": "Running",
        "startTime": LONG_AGO,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": LONG_AGO}],
        "containerStatuses": containers,
    })
}

/// Seed 003's shape: a trainer that checkpoints to /checkpoint and a data processor
/// that has finished (exit 0), on node-1.
fn trainer_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "trainer", "namespace": NS, "labels": {"app": "tf"},
            "annotations": {"aistor.io/checkpoint-hook": "signal:SIGUSR1"},
        },
        "spec": {
            "nodeName": "node-1",
            "restartPolicy": "OnFailure",
            "containers": [
                {"name": "trainer", "image": "tf:2",
                 "volumeMounts": [{"name": "state", "mountPath": "/checkpoint"}]},
                {"name": "data-processor", "image": "busybox:1.36"},
            ],
            "volumes": [{"name": "state", "emptyDir": {}}],
        },
        "status": ready_status(vec![
            running("trainer", "tf:2"),
            json!({"name": "data-processor", "ready": false, "restartCount": 0,
                   "image": "busybox:1.36", "imageID": "",
                   "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}),
        ]),
    })
}

/// A leading coordinator in Kubernetes mode against `fake`, measuring nothing.
async fn leader(fake: &Fake) -> Coordinator {
    leader_measuring(fake, 0).await
}

/// The same, with measurement runs of `samples` samples (100 ms apart, no settle delay).
async fn leader_measuring(fake: &Fake, samples: u32) -> Coordinator {
    let mut k8s = fake.config("coordinator-a");
    k8s.lease.duration = Duration::from_secs(4);
    k8s.lease.renew_deadline = Duration::from_secs(2);
    let c = Coordinator::start(|cfg| {
        cfg.cluster = ClusterConfig::Kubernetes(k8s);
        cfg.migrations.settings.measure_samples = samples;
        cfg.migrations.settings.measure_interval_nanos = 100_000_000;
        cfg.migrations.settings.settle_nanos = 0;
        cfg.migrations.restore.checkpoint_claim = "shared-checkpoints".into();
    })
    .await;
    within("the coordinator to lead", async {
        while http_get(c.http, "/ready").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    c
}

/// Node objects, and an agent for each reporting (node-1 reports `pods`).
fn nodes(fake: &Fake, grpc: SocketAddr) -> (SimulatedAgent, SimulatedAgent) {
    let one = SimulatedAgent::start(grpc, "node-1", fake.agent_token("node-1"));
    let two = SimulatedAgent::start(grpc, "node-2", fake.agent_token("node-2"));
    (one, two)
}

fn seed_cluster(fake: &Fake) -> String {
    fake.install_crds();
    for node in ["node-1", "node-2"] {
        fake.server
            .insert(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}));
    }
    let pod = fake.server.insert(trainer_pod());
    pod["metadata"]["uid"].as_str().unwrap().to_owned()
}

fn pod(fake: &Fake, name: &str) -> Option<Value> {
    fake.server.object("v1", "Pod", Some(NS), name)
}

async fn start_migration(http: SocketAddr) -> String {
    let body = format!(
        r#"{{"pod_name": "trainer", "pod_namespace": "{NS}", "source_node": "node-1",
            "target_node": "node-2", "preserve_pv": true, "timeout": 120}}"#
    );
    // The target node is known once its agent's first report is in.
    within("the migration to be accepted", async {
        loop {
            let (status, _, created) =
                http_request(http, "POST", "/api/v1/migrations", &body).await;
            if status == 202 {
                return created["migration_id"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

async fn until_ended(http: SocketAddr, id: &str) -> Value {
    within("the migration to end", async {
        loop {
            let (_, m) = http_get(http, &format!("/api/v1/migrations/{id}")).await;
            if ["completed", "failed", "cancelled"].contains(&m["status"].as_str().unwrap_or("")) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_pod_moves_to_another_node_from_its_checkpoint() {
    let fake = k8s_support::start().await;
    let source_uid = seed_cluster(&fake);
    let c = leader_measuring(&fake, 3).await;
    let (one, two) = nodes(&fake, c.grpc);
    one.set_pods(vec![(NS.into(), "trainer".into(), source_uid.clone())]);
    // What the measurement runs give, before (node-1) and after (node-2): seed 003's figures.
    one.state().usage = Some((2500.0, 989_000_000));
    two.state().usage = Some((1800.0, 710_000_000));

    let id = start_migration(c.http).await;
    let target_name = format!("trainer-{}", &id[id.len() - 8..]);

    // The coordinator creates the target on node-2 once the source is staged and frozen;
    // the test, as node-2's kubelet, runs it (its restore init container done).
    let target = within("the target pod", async {
        loop {
            if let Some(p) = pod(&fake, &target_name) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The source was frozen before the target was made (make-before-break).
    assert!(
        one.state().frozen.contains(&source_uid),
        "{:?}",
        one.state()
    );
    fake.server.set_status(
        "v1",
        "Pod",
        Some(NS),
        &target_name,
        ready_status(vec![running("trainer", "tf:2")]),
    );
    let done = until_ended(c.http, &id).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    // Measured before on node-1 and after on node-2, through the agents' measurement runs.
    let d = &done["details"];
    assert_eq!(d["original_resources"]["cpu_usage"], 2.5, "{done:#}");
    assert_eq!(d["original_resources"]["memory_usage"], 989_000_000);
    assert_eq!(d["optimized_resources"]["cpu_usage"], 1.8, "{done:#}");
    assert_eq!(d["optimized_resources"]["memory_usage"], 710_000_000);
    let measured: Vec<String> = [&one, &two]
        .iter()
        .flat_map(|a| a.directives())
        .filter_map(|d| match d.kind {
            Some(pb::directive::Kind::Measure(run)) => match run.target?.target? {
                pb::measure_target::Target::Pod(p) => Some(p.name),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(measured, ["trainer", target_name.as_str()]);
    let (_, totals) = http_get(c.http, "/api/v1/metrics").await;
    assert_eq!(totals["successful_migrations"], 1, "{totals}");
    assert!(
        (totals["cpu_savings_percentage"].as_f64().unwrap() - 28.0).abs() < 1e-9,
        "{totals}"
    );

    // The source is gone; the target runs on node-2, without the finished container,
    // restored from the staged checkpoint by an init container reading the claim.
    assert!(
        pod(&fake, "trainer").is_none(),
        "the source was not deleted"
    );
    let spec = &target["spec"];
    assert_eq!(spec["nodeName"], "node-2");
    let containers: Vec<&str> = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["trainer"]);
    let checkpoint_id = format!("{id}-1");
    assert_eq!(
        target["metadata"]["annotations"]["aistor.io/restore-from"], checkpoint_id,
        "{target:#}"
    );
    assert!(target["metadata"].get("ownerReferences").is_none());
    let restore = &spec["initContainers"][0];
    assert_eq!(restore["name"], "aistor-restore-trainer", "{target:#}");
    let args: Vec<&str> = restore["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "restore",
            "--checkpoint-dir",
            "/var/lib/aistor/checkpoints",
            "--namespace",
            NS,
            "--checkpoint-id",
            &checkpoint_id,
            "--container",
            "trainer",
            "--into",
            "/aistor/restore-into"
        ]
    );
    assert!(
        spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "shared-checkpoints"),
        "{target:#}"
    );

    // What node-1's agent was asked: stage the trainer (the pod's path and hook), then
    // freeze the source.
    let asked = one.directives();
    let stage = asked
        .iter()
        .find_map(|d| match &d.kind {
            Some(pb::directive::Kind::StageCheckpoint(s)) => Some(s.clone()),
            _ => None,
        })
        .expect("a StageCheckpoint");
    assert_eq!(stage.pod_uid, source_uid);
    assert_eq!(stage.containers, ["trainer"]);
    assert_eq!(stage.checkpoint_path, "/checkpoint");
    assert_eq!(stage.hook, "signal:SIGUSR1");
    assert!(asked.iter().any(|d| matches!(
        &d.kind,
        Some(pb::directive::Kind::FreezePod(f)) if f.uid == source_uid && f.frozen
    )));

    // The record is a Migration resource in the pod's namespace.
    let object = fake
        .server
        .object("aistor.io/v1alpha1", "Migration", Some(NS), &id)
        .expect("the Migration resource");
    assert_eq!(object["status"]["phase"], "Completed", "{object:#}");
    assert_eq!(object["status"]["newPod"], target_name.as_str());
    assert_eq!(
        done["details"]["checkpoint_path"],
        format!("/var/lib/aistor/checkpoints/{NS}/trainer/{checkpoint_id}"),
        "{done:#}"
    );
    c.stop().await;
    fake.assert_every_call_is_listed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_be_frozen_stays_and_no_target_is_made() {
    let fake = k8s_support::start().await;
    let source_uid = seed_cluster(&fake);
    let c = leader(&fake).await;
    let (one, _two) = nodes(&fake, c.grpc);
    one.set_pods(vec![(NS.into(), "trainer".into(), source_uid.clone())]);
    one.state().refuse_freeze = Some("cgroup.freeze: read-only file system".into());

    let id = start_migration(c.http).await;
    let done = until_ended(c.http, &id).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    assert!(
        done["details"]["error_message"]
            .as_str()
            .unwrap()
            .contains("cgroup.freeze: read-only file system"),
        "{done:#}"
    );
    let source = pod(&fake, "trainer").expect("the source stays");
    assert_eq!(source["metadata"]["uid"], source_uid.as_str());
    let pods = fake.server.objects("v1", "Pod", Some(NS));
    assert_eq!(pods.len(), 1, "a target was made: {pods:#?}");
    c.stop().await;
    fake.assert_every_call_is_listed();
}

/// The ReplicaSet's pod on node-1 (and its sibling on node-2), a budget over both that
/// allows no disruption yet, as a ReplicaSet controller and the disruption controller
/// would have left them. Returns the ReplicaSet's uid and the pod's.
fn seed_replica_set(fake: &Fake) -> (String, String) {
    fake.install_crds();
    for node in ["node-1", "node-2"] {
        fake.server
            .insert(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}));
    }
    let rs = fake.server.insert(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "tf-abc", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "tf"}},
            "template": {"metadata": {"labels": {"app": "tf"}},
                         "spec": {"containers": [{"name": "trainer", "image": "tf:2"}]}},
        },
    }));
    let rs_uid = rs["metadata"]["uid"].as_str().unwrap().to_owned();
    let mut uid = String::new();
    for (name, node) in [("tf-abc-x1", "node-1"), ("tf-abc-s2", "node-2")] {
        let mut p = trainer_pod();
        p["metadata"]["name"] = json!(name);
        p["metadata"]["labels"]["pod-template-hash"] = json!("abc");
        p["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "tf-abc", "uid": rs_uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
        p["spec"]["nodeName"] = json!(node);
        let stored = fake.server.insert(p);
        if name == "tf-abc-x1" {
            uid = stored["metadata"]["uid"].as_str().unwrap().to_owned();
        }
    }
    fake.server.insert(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "tf-pdb", "namespace": NS},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "tf"}}},
        "status": {"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2,
                   "expectedPods": 2, "observedGeneration": 1},
    }));
    (rs_uid, uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_pod_is_evicted_once_its_budget_allows_and_its_replacement_takes_the_reserved_node()
 {
    let fake = k8s_support::start().await;
    let (rs_uid, source_uid) = seed_replica_set(&fake);
    let c = leader(&fake).await;
    let (one, _two) = nodes(&fake, c.grpc);
    one.set_pods(vec![(NS.into(), "tf-abc-x1".into(), source_uid.clone())]);
    let body = format!(
        r#"{{"pod_name": "tf-abc-x1", "pod_namespace": "{NS}", "source_node": "node-1",
            "target_node": "node-2", "preserve_pv": true, "timeout": 120}}"#
    );
    let id = within("the migration to be accepted", async {
        loop {
            let (status, _, created) =
                http_request(c.http, "POST", "/api/v1/migrations", &body).await;
            if status == 202 {
                return created["migration_id"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let details = |m: &Value| m["details"].clone();

    // The budget refuses (429): the migration says so, holds node-2 for the
    // ReplicaSet's next pod, and asks again.
    let refused = within("the refusal on record", async {
        loop {
            let (_, m) = http_get(c.http, &format!("/api/v1/migrations/{id}")).await;
            if !details(&m)["eviction_refused"].is_null() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let d = details(&refused);
    assert!(
        d["eviction_refused"].as_str().unwrap().contains("tf-pdb"),
        "{refused:#}"
    );
    assert_eq!(d["current_stage"], "evicting", "{refused:#}");
    assert_eq!(d["controller"], "ReplicaSet/tf-abc");
    assert_eq!(
        d["reservation"],
        json!({"node": "node-2", "owner_uid": rs_uid}),
        "{refused:#}"
    );
    assert!(
        pod(&fake, "tf-abc-x1").is_some(),
        "evicted despite its budget"
    );

    // The budget allows one now: the next eviction goes through.
    fake.server.set_status(
        "policy/v1",
        "PodDisruptionBudget",
        Some(NS),
        "tf-pdb",
        json!({"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1,
               "expectedPods": 2, "observedGeneration": 1}),
    );
    within("the eviction", async {
        while pod(&fake, "tf-abc-x1").is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The test is the ReplicaSet controller (a new pod) and the scheduler honouring the
    // reservation the migration shows (binding it to the reserved node).
    let (_, waiting) = http_get(c.http, &format!("/api/v1/migrations/{id}")).await;
    let reserved = details(&waiting)["reservation"]["node"]
        .as_str()
        .expect("the reservation while the replacement is awaited")
        .to_owned();
    let mut replacement = trainer_pod();
    replacement["metadata"]["name"] = json!("tf-abc-r3");
    replacement["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "tf-abc", "uid": rs_uid,
        "controller": true, "blockOwnerDeletion": true,
    }]);
    replacement["spec"]["nodeName"] = json!(reserved);
    replacement["status"] = json!({"phase": "Pending"});
    fake.server.insert(replacement);
    fake.server.set_status(
        "v1",
        "Pod",
        Some(NS),
        "tf-abc-r3",
        ready_status(vec![running("trainer", "tf:2")]),
    );
    let done = until_ended(c.http, &id).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let d = details(&done);
    assert_eq!(d["new_pod_name"], "tf-abc-r3", "{done:#}");
    assert!(d["reservation"].is_null(), "released: {done:#}");
    let stages: Vec<&str> = d["stage_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "pending",
            "checkpointing",
            "evicting",
            "waiting_ready",
            "completed"
        ]
    );
    // From the eviction seen to the replacement seen Ready (here at once: the test
    // makes it Ready as soon as the source is gone).
    assert!(d["downtime_seconds"].as_f64().is_some(), "{done:#}");
    // The coordinator made no pod of its own and froze nothing; the sibling is untouched.
    let mut names: Vec<String> = fake
        .server
        .objects("v1", "Pod", Some(NS))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["tf-abc-r3", "tf-abc-s2"]);
    assert_eq!(reserved, "node-2");
    assert!(
        !one.directives()
            .iter()
            .any(|d| matches!(d.kind, Some(pb::directive::Kind::FreezePod(_))))
    );
    let evictions = fake
        .server
        .requests()
        .iter()
        .filter(|r| r.subresource.as_deref() == Some("eviction"))
        .count();
    assert!(
        evictions >= 2,
        "refused at least once, then evicted: {evictions}"
    );
    c.stop().await;
    fake.assert_every_call_is_listed();
}

/// Plays the kubelet of node-2 until aborted: every pod the coordinator creates there
/// (`trainer-*`) is made Running and Ready.
fn kubelet(fake: &Fake) -> tokio::task::JoinHandle<()> {
    let server = fake.server.clone();
    tokio::spawn(async move {
        loop {
            for p in server.objects("v1", "Pod", Some(NS)) {
                let name = p["metadata"]["name"].as_str().unwrap_or_default();
                if name.starts_with("trainer-") && p["status"]["phase"] != "Running" {
                    server.set_status(
                        "v1",
                        "Pod",
                        Some(NS),
                        name,
                        ready_status(vec![running("trainer", "tf:2")]),
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// The real coordinator binary exits (test fault point, code 75) right after storing
/// each transition of a bare pod's migration, before carrying out what it starts; the
/// next process on the same cluster (the Migration resource is the record) resumes it,
/// which completes with exactly one pod left: the target, on node-2, made once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_after_any_transition_resumes_from_the_migration_resource() {
    use support::process::CoordinatorProcess;
    const PHASES: [&str; 6] = [
        "checkpointing",
        "freezing",
        "creating_target",
        "waiting_ready",
        "deleting_source",
        "completed",
    ];
    let work = tempfile::tempdir().unwrap();
    for (n, phase) in PHASES.into_iter().enumerate() {
        let fake = k8s_support::start().await;
        let source_uid = seed_cluster(&fake);
        let kubeconfig = fake.kubeconfig.display().to_string();
        let mut coordinator = CoordinatorProcess::start(
            None,
            &work.path().join(format!("data-{n}")),
            &work.path().join(format!("coordinator-{n}")),
            &[
                "--kubeconfig",
                &kubeconfig,
                "--pod-name",
                "coordinator-a",
                "--lease-duration",
                "4s",
                "--lease-renew-deadline",
                "2s",
                "--migration-measure-samples",
                "0",
                "--test-exit-after-migration-phase",
                phase,
            ],
        )
        .await;
        let leads = |http| async move { http_get(http, "/ready").await.0 == 200 };
        within("the coordinator to lead", async {
            while !leads(coordinator.http).await {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let (one, _two) = nodes(&fake, coordinator.grpc);
        one.set_pods(vec![(NS.into(), "trainer".into(), source_uid.clone())]);
        // A target that is Ready at once can pass `waiting_ready` within one step, so
        // for that phase the kubelet starts the target only after the fault fired.
        let mut node_2 = (phase != "waiting_ready").then(|| kubelet(&fake));
        let id = start_migration(coordinator.http).await;
        let exit = coordinator.exited(Duration::from_secs(60)).await;
        assert_eq!(
            exit.and_then(|s| s.code()),
            Some(75),
            "{phase}: the fault point did not fire:\n{}",
            coordinator.log()
        );
        let node_2 = node_2.get_or_insert_with(|| kubelet(&fake));
        coordinator.restart().await;
        let done = until_ended(coordinator.http, &id).await;
        assert_eq!(
            done["status"],
            "completed",
            "{phase}: {done:#}\n{}",
            coordinator.log()
        );
        let stages: Vec<&str> = done["details"]["stage_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stage"].as_str().unwrap())
            .collect();
        assert!(stages.contains(&phase), "{phase}: {stages:?}");
        // No pod lost, none twice: the target alone, on node-2, Ready.
        let pods = fake.server.objects("v1", "Pod", Some(NS));
        let target = format!("trainer-{}", &id[id.len() - 8..]);
        let names: Vec<&str> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [target.as_str()], "{phase}");
        assert_eq!(pods[0]["spec"]["nodeName"], "node-2", "{phase}");
        node_2.abort();
        coordinator.terminate().await;
        fake.assert_every_call_is_listed();
    }
}

/// Plays the ReplicaSet controller and the scheduler until aborted: once the source pod
/// is gone, its replacement `tf-abc-r3` is made (once), on node-2 (the reservation's
/// node), Running and Ready.
fn replica_set_controller(fake: &Fake, rs_uid: String) -> tokio::task::JoinHandle<()> {
    let server = fake.server.clone();
    tokio::spawn(async move {
        loop {
            let gone = server.object("v1", "Pod", Some(NS), "tf-abc-x1").is_none();
            if gone && server.object("v1", "Pod", Some(NS), "tf-abc-r3").is_none() {
                let mut replacement = trainer_pod();
                replacement["metadata"]["name"] = json!("tf-abc-r3");
                replacement["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "tf-abc",
                    "uid": rs_uid, "controller": true, "blockOwnerDeletion": true,
                }]);
                replacement["spec"]["nodeName"] = json!("node-2");
                replacement["status"] = ready_status(vec![running("trainer", "tf:2")]);
                server.insert(replacement);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// The same for a ReplicaSet's pod: killed after each transition of the eviction path and
/// restarted, the migration completes with the controller's replacement and its sibling
/// the only pods, nothing made or deleted by aistor but the one eviction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_while_evicting_through_a_controller_resumes() {
    use support::process::CoordinatorProcess;
    const PHASES: [&str; 4] = ["checkpointing", "evicting", "waiting_ready", "completed"];
    let work = tempfile::tempdir().unwrap();
    for (n, phase) in PHASES.into_iter().enumerate() {
        let fake = k8s_support::start().await;
        let (rs_uid, source_uid) = seed_replica_set(&fake);
        fake.server.set_status(
            "policy/v1",
            "PodDisruptionBudget",
            Some(NS),
            "tf-pdb",
            json!({"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1,
                   "expectedPods": 2, "observedGeneration": 1}),
        );
        let kubeconfig = fake.kubeconfig.display().to_string();
        let mut coordinator = CoordinatorProcess::start(
            None,
            &work.path().join(format!("data-{n}")),
            &work.path().join(format!("coordinator-{n}")),
            &[
                "--kubeconfig",
                &kubeconfig,
                "--pod-name",
                "coordinator-a",
                "--lease-duration",
                "4s",
                "--lease-renew-deadline",
                "2s",
                "--migration-measure-samples",
                "0",
                "--test-exit-after-migration-phase",
                phase,
            ],
        )
        .await;
        within("the coordinator to lead", async {
            while http_get(coordinator.http, "/ready").await.0 != 200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let (one, _two) = nodes(&fake, coordinator.grpc);
        one.set_pods(vec![(NS.into(), "tf-abc-x1".into(), source_uid.clone())]);
        let controller = replica_set_controller(&fake, rs_uid);
        let body = format!(
            r#"{{"pod_name": "tf-abc-x1", "pod_namespace": "{NS}", "source_node": "node-1",
                "target_node": "node-2", "preserve_pv": true, "timeout": 120}}"#
        );
        let id = within("the migration to be accepted", async {
            loop {
                let (status, _, created) =
                    http_request(coordinator.http, "POST", "/api/v1/migrations", &body).await;
                if status == 202 {
                    return created["migration_id"].as_str().unwrap().to_owned();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        let exit = coordinator.exited(Duration::from_secs(60)).await;
        assert_eq!(
            exit.and_then(|s| s.code()),
            Some(75),
            "{phase}: the fault point did not fire:\n{}",
            coordinator.log()
        );
        coordinator.restart().await;
        let done = until_ended(coordinator.http, &id).await;
        assert_eq!(
            done["status"],
            "completed",
            "{phase}: {done:#}\n{}",
            coordinator.log()
        );
        assert_eq!(done["details"]["new_pod_name"], "tf-abc-r3", "{phase}");
        let mut names: Vec<String> = fake
            .server
            .objects("v1", "Pod", Some(NS))
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["tf-abc-r3", "tf-abc-s2"], "{phase}");
        let made_or_deleted = fake
            .server
            .requests()
            .iter()
            .filter(|r| {
                r.resource == "pods"
                    && r.subresource.is_none()
                    && matches!(r.verb.as_str(), "create" | "delete")
            })
            .count();
        assert_eq!(made_or_deleted, 0, "{phase}: aistor made or deleted a pod");
        controller.abort();
        coordinator.terminate().await;
        fake.assert_every_call_is_listed();
    }
}
