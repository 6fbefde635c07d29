//! Autoscaling on Kubernetes, end to end against the API server fake: a real
//! coordinator (leader) with the seeds' REST API, an agent simulated over gRPC that
//! streams its pods' CPU every half second, and a Deployment scaled through its
//! `scale` subresource (read, then written with the resourceVersion; a 409 is
//! re-read and retried) — never by updating the whole object. A workload an HPA
//! already scales is refused with the reason; every scale is an Event with its
//! reason; every call is one the RBAC grants.

mod k8s_support;
mod support;

use aistor_coordinator::k8s::ClusterConfig;
use aistor_kube_fake::{RequestMatcher, Verb};
use aistor_proto::v1 as pb;
use k8s_support::{PATIENCE, within};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::seeds::{SEED_000_CREATE, SEED_004_CREATE};
use support::{Coordinator, http_get, http_request};

const NS: &str = "ml";
/// Long ago: past the HPA's 5-minute CPU start-up rule.
const LONG_AGO: &str = "2026-01-01T00:00:00Z";

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn deployment(name: &str, replicas: i32) -> Value {
    deployment_in(NS, name, replicas)
}

fn deployment_in(ns: &str, name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
            },
        },
    })
}

fn running_pod(ns: &str, name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {
            "nodeName": "node-1",
            "containers": [{
                "name": "main", "image": "busybox:1.36",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }],
        },
        "status": {
            "phase": "Running",
            "startTime": LONG_AGO,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": LONG_AGO}],
        },
    })
}

/// A pod the simulated agent reports: namespace, name, uid.
type Reported = (String, String, String);

/// node-1's report: each pod at `millicores`.
fn report(pods: &[Reported], millicores: f64) -> pb::NodeReport {
    pb::NodeReport {
        node: Some(pb::NodeIdentity {
            name: "node-1".into(),
            boot_id: "boot-1".into(),
            cgroup_mode: pb::CgroupMode::V2 as i32,
            logical_cpus: 8,
            cpu_capacity_millicores: Some(8000),
            memory_total_bytes: Some(32 << 30),
            agent_version: "0.1.0".into(),
            ..Default::default()
        }),
        agent_instance: "agent-1".into(),
        seq: now_nanos(),
        wall_time_unix_nanos: now_nanos(),
        monotonic_nanos: 1,
        collect_interval_nanos: 500_000_000,
        pods: pods
            .iter()
            .map(|(namespace, name, uid)| pb::Pod {
                uid: uid.clone(),
                name: name.clone(),
                namespace: namespace.clone(),
                qos_class: "Burstable".into(),
                cgroup_path: format!("kubepods/burstable/pod{uid}"),
                usage: Some(pb::CgroupUsage {
                    cpu: Some(pb::CgroupCpu {
                        usage_millicores: Some(millicores),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                discovered_by: "containerd".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Streams node-1's report every 500 ms, as an agent would, until aborted.
fn simulated_agent(
    grpc: SocketAddr,
    token: String,
    pods: Vec<Reported>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .expect("coordinator reachable");
        let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
        loop {
            let mut request = tonic::Request::new(tokio_stream::iter(vec![report(&pods, 300.0)]));
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            let mut acks = client
                .connect(request)
                .await
                .expect("Connect accepted")
                .into_inner();
            let _ = acks.message().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// A leading coordinator in Kubernetes mode against `fake`.
async fn leader(fake: &k8s_support::Fake) -> Coordinator {
    let mut k8s = fake.config("coordinator-a");
    k8s.lease.duration = Duration::from_secs(4);
    k8s.lease.renew_deadline = Duration::from_secs(2);
    let c = Coordinator::start(|cfg| cfg.cluster = ClusterConfig::Kubernetes(k8s)).await;
    within("the coordinator to lead", async {
        while http_get(c.http, "/ready").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    c
}

fn replicas(fake: &k8s_support::Fake, name: &str) -> i64 {
    replicas_in(fake, NS, name)
}

async fn autoscaler(http: SocketAddr, id: &str) -> Value {
    http_get(http, &format!("/api/v1/autoscaling/{id}")).await.1
}

fn create_body(workload: &str) -> String {
    format!(
        r#"{{"workload_name": "{workload}", "workload_namespace": "{NS}", "workload_type": "deployment",
            "min_replicas": 1, "max_replicas": 5, "target_cpu_percent": 50, "scale_check_interval": 1}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_is_scaled_through_its_scale_subresource_from_streamed_usage() {
    let fake = k8s_support::start().await;
    fake.install_crds();
    let s = &fake.server;
    s.insert(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}));
    s.insert(deployment("web", 2));
    s.insert(deployment("other", 1));
    let pods: Vec<Reported> = ["web-a", "web-b"]
        .iter()
        .map(|n| {
            let p = s.insert(running_pod(NS, n, "web"));
            let uid = p["metadata"]["uid"].as_str().unwrap().to_owned();
            (NS.to_owned(), n.to_string(), uid)
        })
        .collect();
    s.insert(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "other-hpa", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"},
            "minReplicas": 1, "maxReplicas": 3,
        },
    }));

    let c = leader(&fake).await;
    let agent = simulated_agent(c.grpc, fake.agent_token("node-1"), pods);

    // The first write of the scale meets a conflict (someone touched the Deployment):
    // re-read, the count unchanged, written again with the new resourceVersion.
    s.fail_next(
        RequestMatcher {
            verb: Some(Verb::Update),
            resource: Some("deployments".into()),
            subresource: Some("scale".into()),
            name: Some("web".into()),
        },
        409,
    );
    let (status, _, created) =
        http_request(c.http, "POST", "/api/v1/autoscaling", &create_body("web")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["autoscaling_id"].as_str().unwrap().to_owned();

    // 2 pods at 300 % of their request against 50 %: 2 -> 4 (the HPA's scale-up
    // limit: double, or 4), then -> 5, the maximum, where ScalingLimited says so.
    within("the first scale-up", async {
        while replicas(&fake, "web") < 4 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    within("the maximum", async {
        while replicas(&fake, "web") != 5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let status = within("the status to show the maximum", async {
        loop {
            let a = autoscaler(c.http, &id).await;
            if a["details"]["current_replicas"] == 5 {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let d = &status["details"];
    assert_eq!(status["status"], "active", "{status}");
    assert_eq!(d["scale_up_count"], 2, "{status}");
    assert_eq!(d["current_cpu_percent"], 300.0, "{status}");
    let limited = d["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ScalingLimited")
        .expect("ScalingLimited");
    assert_eq!(limited["status"], "True", "{status}");
    assert_eq!(limited["reason"], "TooManyReplicas", "{status}");
    let decisions = d["last_decisions"].as_array().unwrap();
    assert!(
        decisions
            .iter()
            .any(|r| r["message"]
                == "New size: 4; reason: cpu above target (limited by ScaleUpLimit)"),
        "{status}"
    );

    // The object the REST API shows is the Autoscaler resource kubectl shows.
    let stored = s
        .object("aistor.io/v1alpha1", "Autoscaler", Some(NS), &id)
        .expect("the Autoscaler resource");
    assert_eq!(stored["spec"]["workloadRef"]["name"], "web");
    assert_eq!(stored["status"]["scaleUpCount"], 2, "{stored}");
    assert_eq!(stored["status"]["currentReplicas"], 5, "{stored}");

    // Every scale went through the scale subresource, guarded by a resourceVersion;
    // the conflict was retried; the whole Deployment was never written.
    let requests = s.requests();
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| r.resource == "deployments" && matches!(r.verb, Verb::Update | Verb::Patch))
        .collect();
    assert!(
        writes
            .iter()
            .all(|r| r.subresource.as_deref() == Some("scale")),
        "{writes:#?}"
    );
    assert!(
        writes.len() >= 3,
        "one retried conflict and two scales: {writes:#?}"
    );
    // Each scale is an Event on the Deployment with the decision's reason.
    let events = s.objects("events.k8s.io/v1", "Event", Some(NS));
    assert!(
        events.iter().any(|e| e["regarding"]["name"] == "web"
            && e["reason"] == "Scaled"
            && e["note"]
                .as_str()
                .is_some_and(|n| n.contains("set replicas to 4: New size: 4"))),
        "{events:#?}"
    );

    // A Deployment an HPA already scales is left alone, and the status says why.
    let (status, _, other) =
        http_request(c.http, "POST", "/api/v1/autoscalers", &create_body("other")).await;
    assert_eq!(status, 201, "{other}");
    assert_eq!(other["status"], "inactive", "{other}");
    assert!(
        other["message"]
            .as_str()
            .unwrap()
            .contains("HorizontalPodAutoscaler ml/other-hpa already scales Deployment ml/other"),
        "{other}"
    );
    // A workload that does not exist yet: inactive until it appears, then active.
    let (_, _, ghost) =
        http_request(c.http, "POST", "/api/v1/autoscalers", &create_body("ghost")).await;
    assert_eq!(ghost["status"], "inactive", "{ghost}");
    assert!(
        ghost["message"]
            .as_str()
            .unwrap()
            .contains("deployment \"ml/ghost\" not found"),
        "{ghost}"
    );
    s.insert(deployment("ghost", 1));
    let ghost_id = ghost["autoscaling_id"].as_str().unwrap().to_owned();
    within("the ghost autoscaler to become active", async {
        while autoscaler(c.http, &ghost_id).await["status"] != "active" {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(replicas(&fake, "other"), 1, "the HPA's workload untouched");

    agent.abort();
    c.stop().await;
    fake.assert_every_call_is_listed();
}

/// Seeds 000 and 004 verbatim against a cluster that has their Deployments: both
/// paths, both spellings of the type; measured figures where the agent has them, and
/// for the GPU and storage targets (no GPU, no I/O figures reported) the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_requests_work_verbatim_against_a_cluster() {
    let fake = k8s_support::start().await;
    fake.install_crds();
    let s = &fake.server;
    s.insert(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}));
    s.insert(deployment_in("default", "nginx-deployment", 2));
    s.insert(deployment_in("default", "gpu-test-workload", 1));
    let mut pods: Vec<Reported> = Vec::new();
    for (name, app) in [
        ("nginx-a", "nginx-deployment"),
        ("nginx-b", "nginx-deployment"),
        ("gpu-test", "gpu-test-workload"),
    ] {
        let p = s.insert(running_pod("default", name, app));
        let uid = p["metadata"]["uid"].as_str().unwrap().to_owned();
        pods.push(("default".into(), name.into(), uid));
    }
    let c = leader(&fake).await;
    let agent = simulated_agent(c.grpc, fake.agent_token("node-1"), pods);
    // Let the agent's samples arrive, so the first decision has figures.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (status, _, nginx) =
        http_request(c.http, "POST", "/api/v1/autoscaling", SEED_004_CREATE).await;
    assert_eq!(status, 201, "{nginx}");
    assert_eq!(nginx["status"], "active", "{nginx}");
    assert_eq!(nginx["message"], "Autoscaler created successfully");
    let d = &nginx["details"];
    assert_eq!(d["current_replicas"], 2, "{nginx}");
    assert_eq!(d["current_cpu_percent"], 300.0, "{nginx}");
    // Not measured, so not shown: no invented zero.
    assert!(d.get("current_gpu_percent").is_none(), "{nginx}");
    assert!(d.get("current_storage_iops").is_none(), "{nginx}");
    let gpu = d["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "gpu")
        .expect("the GPU metric");
    assert!(
        gpu["message"]
            .as_str()
            .unwrap()
            .contains("the pod uses no GPU"),
        "{nginx}"
    );
    // The 60 s scale-up window of the request holds the first proposal back.
    let able = d["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "AbleToScale")
        .unwrap();
    assert_eq!(able["reason"], "ScaleUpStabilized", "{nginx}");
    assert_eq!(replicas_in(&fake, "default", "nginx-deployment"), 2);

    let (status, _, gpu_test) =
        http_request(c.http, "POST", "/api/v1/autoscalers", SEED_000_CREATE).await;
    assert_eq!(status, 201, "{gpu_test}");
    assert_eq!(gpu_test["status"], "active", "{gpu_test}");
    assert_eq!(gpu_test["details"]["scale_check_interval"], 30);
    for path in ["/api/v1/autoscaling", "/api/v1/autoscalers"] {
        let (_, list) = http_get(c.http, path).await;
        assert_eq!(list["count"], 2, "{list}");
    }
    let (_, totals) = http_get(c.http, "/api/v1/autoscaling/metrics").await;
    assert_eq!(totals["active_autoscalers"], 2, "{totals}");
    assert_eq!(totals["average_cpu_utilization"], 300.0, "{totals}");
    for id in [&nginx["autoscaling_id"], &gpu_test["autoscaling_id"]] {
        let path = format!("/api/v1/autoscalers/{}", id.as_str().unwrap());
        let (status, _, gone) = http_request(c.http, "DELETE", &path, "").await;
        assert_eq!(status, 200);
        assert_eq!(gone["message"], "Autoscaler deleted successfully");
    }
    agent.abort();
    c.stop().await;
    fake.assert_every_call_is_listed();
    let _ = PATIENCE;
}

fn replicas_in(fake: &k8s_support::Fake, ns: &str, name: &str) -> i64 {
    fake.server
        .object("apps/v1", "Deployment", Some(ns), name)
        .and_then(|d| d["spec"]["replicas"].as_i64())
        .unwrap_or(-1)
}

/// An Autoscaler made with `kubectl apply` is taken up by the leader; when the leader
/// stops, the standby takes over with the stored status (counters, history) and goes
/// on deciding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubectl_made_autoscaler_survives_a_leader_change() {
    let fake = k8s_support::start().await;
    fake.install_crds();
    let s = &fake.server;
    s.insert(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}));
    s.insert(deployment("web", 1));
    let mut pods: Vec<Reported> = Vec::new();
    for name in ["web-a", "web-b"] {
        let p = s.insert(running_pod(NS, name, "web"));
        let uid = p["metadata"]["uid"].as_str().unwrap().to_owned();
        pods.push((NS.into(), name.into(), uid));
    }
    let start = |identity: &'static str| {
        let mut k8s = fake.config(identity);
        k8s.lease.duration = Duration::from_secs(4);
        k8s.lease.renew_deadline = Duration::from_secs(2);
        Coordinator::start(move |cfg| cfg.cluster = ClusterConfig::Kubernetes(k8s))
    };
    let a = start("coordinator-a").await;
    let b = start("coordinator-b").await;
    let ready = |c: SocketAddr| async move { http_get(c, "/ready").await.0 == 200 };
    within("one coordinator to lead", async {
        while ready(a.http).await == ready(b.http).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (leader, standby) = if ready(a.http).await { (a, b) } else { (b, a) };
    let agent = simulated_agent(leader.grpc, fake.agent_token("node-1"), pods.clone());

    // `kubectl apply` of an Autoscaler in HPA style: min 1, max 3, CPU at 50 %, at most
    // one pod added per 10 s (so the rate policy's memory must cross the leader change).
    s.insert(json!({
        "apiVersion": "aistor.io/v1alpha1", "kind": "Autoscaler",
        "metadata": {"name": "web-scaler", "namespace": NS},
        "spec": {
            "workloadRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 3,
            // Written as for a HorizontalPodAutoscaler.
            "hpa": {
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
                "behavior": {"scaleUp": {
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 10}]}},
            },
            "syncPeriodSeconds": 1,
        },
    }));
    within(
        "the leader to take up the kubectl-made autoscaler and scale",
        async {
            while replicas(&fake, "web") < 2 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    )
    .await;
    let before = within("the status to be written", async {
        loop {
            if let Some(o) = s.object("aistor.io/v1alpha1", "Autoscaler", Some(NS), "web-scaler")
                && o["status"]["scaleUpCount"].as_u64().unwrap_or(0) >= 1
            {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(before["status"]["phase"], "Active", "{before}");

    // The leader goes; the standby takes over, reads the stored object, and goes on.
    agent.abort();
    leader.stop().await;
    within("the standby to take over", async {
        while !ready(standby.http).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let agent = simulated_agent(standby.grpc, fake.agent_token("node-1"), pods);
    within("the new leader to reach the maximum", async {
        while replicas(&fake, "web") != 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let after = within("the new leader's status", async {
        loop {
            let a = autoscaler(standby.http, "web-scaler").await;
            if a["details"]["current_replicas"] == 3 {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(
        after["details"]["scale_up_count"], 2,
        "the counters went on from the stored ones: {after}"
    );
    // The new leader kept to the old one's rate: its scale came a period after.
    let decisions = after["details"]["last_decisions"].as_array().unwrap();
    let times: Vec<&str> = decisions
        .iter()
        .filter(|r| r["message"].as_str().unwrap().starts_with("New size"))
        .map(|r| r["time"].as_str().unwrap())
        .collect();
    assert_eq!(times.len(), 2, "{after}");
    let secs = |t: &str| -> u64 {
        let hms = &t[11..19];
        hms.split(':')
            .fold(0, |acc, p| acc * 60 + p.parse::<u64>().unwrap())
    };
    assert!(
        secs(times[1]) >= secs(times[0]) + 9,
        "a scale-up at most every 10 s across the leader change: {times:?}"
    );
    assert_eq!(
        after["details"]["created_at"].as_str().map(str::len),
        Some(20)
    );
    agent.abort();
    standby.stop().await;
    fake.assert_every_call_is_listed();
}
