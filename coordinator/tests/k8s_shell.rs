//! The Kubernetes shell against the API server fake, through the real kube-rs client built from a
//! kubeconfig file: connecting (and standalone without one), the reflector cache, the node/pod
//! join, and every `Actuator` call. Each test ends by checking that every request it made is in
//! `k8s::API_CALLS`, the list the RBAC is checked against.

mod k8s_support;

use std::sync::Arc;
use std::time::Duration;

use aistor_coordinator::actuate::{
    ActuateError, Actuator, PodRef, Preconditions, WorkloadKind, WorkloadRef,
};
use aistor_coordinator::k8s::{self, ClientSource, ClusterConfig, ClusterMode};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use k8s_support::{NAMESPACE, eventually, start, within};

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
}

fn pod(ns: &str, name: &str, node: Option<&str>, app: &str) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"containers": [{
            "name": "main", "image": "busybox:1.36",
            "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
        }]},
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

fn workload(api_version: &str, kind: &str, ns: &str, name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind,
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

fn pdb(ns: &str, name: &str, app: &str, disruptions_allowed: i32) -> Value {
    json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": app}}},
        "status": {"disruptionsAllowed": disruptions_allowed, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1},
    })
}

fn uid(object: &Value) -> String {
    object["metadata"]["uid"]
        .as_str()
        .expect("the fake sets a uid")
        .to_owned()
}

#[test]
fn standalone_without_kubeconfig_outside_a_cluster() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        k8s: k8s::Args,
    }
    let args = Cli::try_parse_from(["coordinator"])
        .expect("no flags parse")
        .k8s;
    let env = k8s::config::Environment {
        in_cluster: false,
        hostname: Some("laptop".into()),
        pid: 7,
    };
    assert_eq!(args.resolve(&env), Ok(ClusterConfig::Standalone));
}

#[tokio::test]
async fn connect_reads_the_kubeconfig_and_names_a_bad_one() {
    let fake = start().await;
    let cluster = fake.connect("c-1").await;
    assert_eq!(
        cluster.namespace, NAMESPACE,
        "the kubeconfig context's namespace"
    );
    assert_eq!(
        cluster.mode,
        ClusterMode::Kubernetes {
            source: ClientSource::Kubeconfig(fake.kubeconfig.clone()),
            namespace: NAMESPACE.into(),
            identity: "c-1".into(),
        }
    );
    // The client reaches the server.
    let version = within("/version", cluster.client.apiserver_version())
        .await
        .expect("the fake answers /version");
    assert!(!version.git_version.is_empty());

    let mut config = fake.config("c-1");
    config.source = ClientSource::Kubeconfig("/nonexistent/aistor/kubeconfig".into());
    let error = k8s::connect(&config)
        .await
        .expect_err("a missing kubeconfig");
    assert!(
        error.to_string().contains("/nonexistent/aistor/kubeconfig"),
        "the error names the file: {error}"
    );
}

#[tokio::test]
async fn reflectors_sync_follow_changes_and_recover_from_closed_and_expired_watches() {
    let fake = start().await;
    let server = &fake.server;
    server.insert(node("gpu-1"));
    server.insert(node("gpu-2"));
    let trainer = server.insert(pod("ml", "trainer-0", Some("gpu-1"), "trainer"));
    server.insert(pod("ml", "monitor", Some("gpu-1"), "monitor"));
    server.insert(workload("apps/v1", "Deployment", "ml", "web", 2));
    server.insert(workload("apps/v1", "StatefulSet", "ml", "db", 1));
    server.insert(workload("apps/v1", "ReplicaSet", "ml", "web-5d8", 2));
    server.insert(pdb("ml", "db-pdb", "db", 0));
    server.insert(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "ml"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }));

    let cluster = fake.connect("c-1").await;
    let (cache, reflectors) = k8s::Cache::new(&cluster.client);
    assert!(
        !cache.is_ready(),
        "nothing has synced before the reflectors run"
    );
    let names: Vec<&str> = reflectors.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "reflector/nodes",
            "reflector/pods",
            "reflector/deployments",
            "reflector/statefulsets",
            "reflector/replicasets",
            "reflector/poddisruptionbudgets",
            "reflector/persistentvolumeclaims",
            "reflector/persistentvolumes",
        ]
    );
    let tasks: Vec<_> = reflectors
        .into_iter()
        .map(|r| tokio::spawn(r.future))
        .collect();

    within("every reflector to sync", cache.wait_ready()).await;
    assert!(cache.is_ready());
    assert_eq!(cache.nodes().len(), 2);
    assert_eq!(cache.pods().len(), 2);
    assert_eq!(cache.deployments().len(), 1);
    assert_eq!(cache.stateful_sets().len(), 1);
    assert_eq!(cache.replica_sets().len(), 1);
    assert_eq!(cache.pod_disruption_budgets().len(), 1);
    assert_eq!(cache.persistent_volume_claims().len(), 1);

    // Pod specs are indexed by uid for ingest: requests from the spec.
    let trainer_spec = cache
        .specs()
        .spec(&uid(&trainer))
        .expect("the trainer's spec by uid");
    assert_eq!(trainer_spec.containers.len(), 1);
    assert_eq!(trainer_spec.containers[0].name, "main");
    assert_eq!(
        trainer_spec.containers[0].requests.cpu_millicores,
        Some(250.0)
    );
    assert_eq!(
        trainer_spec.containers[0].requests.memory_bytes,
        Some(64 << 20)
    );
    assert_eq!(cache.specs().len(), 2);

    // The join: the agent on gpu-1 reports trainer-0 and a pod the API does not know.
    let joined = cache.join("gpu-1", [uid(&trainer).as_str(), "uid-from-elsewhere"]);
    assert_eq!(
        joined
            .node
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref()),
        Some("gpu-1")
    );
    assert_eq!(joined.matched.len(), 1);
    assert_eq!(
        joined.matched[0].metadata.name.as_deref(),
        Some("trainer-0")
    );
    assert_eq!(joined.report_only, ["uid-from-elsewhere"]);
    let api_only: Vec<_> = joined
        .api_only
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    assert_eq!(api_only, ["monitor"]);

    // Changes made through the API reach the cache.
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "ml");
    let new: Pod = serde_json::from_value(pod("ml", "late", Some("gpu-2"), "late")).unwrap();
    pods.create(&PostParams::default(), &new)
        .await
        .expect("create a pod");
    let has = |name: &'static str| {
        let cache = cache.clone();
        move || {
            cache
                .pods()
                .state()
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(name))
        }
    };
    eventually("the new pod in the cache", has("late")).await;
    pods.delete("monitor", &DeleteParams::default())
        .await
        .expect("delete a pod");
    let gone = has("monitor");
    eventually("the deleted pod to leave the cache", || !gone()).await;
    eventually("the index to follow the pods", || cache.specs().len() == 2).await;

    // Watches closed by the server are re-opened.
    server.close_watches();
    server.insert(pod("ml", "after-close", Some("gpu-2"), "x"));
    eventually("a pod created after the watches closed", has("after-close")).await;

    // History forgotten (410 Gone on re-watch): the reflector re-lists and keeps up.
    server.compact();
    server.close_watches();
    server.insert(pod("ml", "after-compact", Some("gpu-2"), "x"));
    eventually("a pod created after compaction", has("after-compact")).await;
    eventually("the index rebuilt by the re-list", || {
        cache.specs().len() == 4
    })
    .await;
    assert!(cache.is_ready(), "readiness does not flap on a re-list");
    for task in tasks {
        assert!(!task.is_finished(), "reflector tasks run until dropped");
        task.abort();
    }
    fake.assert_every_call_is_listed();
}

fn deployment(name: &str) -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "ml".into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn scale_through_the_scale_subresource_refusing_a_stale_resource_version() {
    let fake = start().await;
    let server = &fake.server;
    for (api_version, kind, name) in [
        ("apps/v1", "Deployment", "web"),
        ("apps/v1", "StatefulSet", "db"),
        ("apps/v1", "ReplicaSet", "web-5d8"),
    ] {
        server.insert(workload(api_version, kind, "ml", name, 1));
    }
    let cluster = fake.connect("c-1").await;
    let actuator: Arc<dyn Actuator> =
        Arc::new(k8s::actuate::Kubernetes::new(cluster.client.clone(), "c-1"));
    let replicas = |kind: &str, name: &str| {
        server
            .object("apps/v1", kind, Some("ml"), name)
            .expect("exists")["spec"]["replicas"]
            .as_i64()
    };

    for (kind, workload_kind, name) in [
        ("Deployment", WorkloadKind::Deployment, "web"),
        ("StatefulSet", WorkloadKind::StatefulSet, "db"),
        ("ReplicaSet", WorkloadKind::ReplicaSet, "web-5d8"),
    ] {
        let target = WorkloadRef {
            kind: workload_kind,
            namespace: "ml".into(),
            name: name.into(),
        };
        // Unconditional: a patch of spec.replicas.
        actuator.scale(&target, 3, None, "").await.expect("scale");
        assert_eq!(replicas(kind, name), Some(3), "{target}");

        // Conditional on the version read: accepted while current ...
        let read = server.object("apps/v1", kind, Some("ml"), name).unwrap();
        let rv = read["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        actuator
            .scale(&target, 4, Some(&rv), "")
            .await
            .expect("scale at the current version");
        assert_eq!(replicas(kind, name), Some(4), "{target}");

        // ... and refused once the workload changed since.
        let stale = actuator.scale(&target, 9, Some(&rv), "").await;
        assert!(
            matches!(&stale, Err(ActuateError::Conflict { what, .. }) if what.contains(name)),
            "{target}: {stale:?}"
        );
        assert_eq!(
            replicas(kind, name),
            Some(4),
            "a refused scale changes nothing"
        );
    }

    let missing = actuator.scale(&deployment("nope"), 2, None, "").await;
    assert!(
        matches!(&missing, Err(ActuateError::NotFound { what }) if what.contains("ml/nope")),
        "{missing:?}"
    );

    // Both forms went through the scale subresource, and each action left an Event.
    let requests = server.requests();
    for verb in ["patch", "update"] {
        assert!(
            requests
                .iter()
                .any(|r| r.subresource.as_deref() == Some("scale")
                    && r.resource == "deployments"
                    && r.verb.as_str() == verb),
            "no {verb} of deployments/scale"
        );
    }
    let events = server.objects("events.k8s.io/v1", "Event", Some("ml"));
    assert!(
        events.iter().any(|e| e["reason"] == "Scaled"
            && e["regarding"]["name"] == "web"
            && e["regarding"]["kind"] == "Deployment"
            && e["reportingController"] == "aistor.io/coordinator"),
        "no Scaled event for web: {events:#?}"
    );
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn bind_sets_the_node_once() {
    let fake = start().await;
    let server = &fake.server;
    server.insert(node("gpu-1"));
    server.insert(pod("ml", "pending", None, "trainer"));
    let cluster = fake.connect("c-1").await;
    let actuator = k8s::actuate::Kubernetes::new(cluster.client.clone(), "c-1");
    let pending = PodRef::new("ml", "pending");

    actuator.bind(&pending, "gpu-1").await.expect("bind");
    let bound = server.object("v1", "Pod", Some("ml"), "pending").unwrap();
    assert_eq!(bound["spec"]["nodeName"], "gpu-1");

    let again = actuator.bind(&pending, "gpu-2").await;
    assert!(
        matches!(again, Err(ActuateError::Conflict { .. })),
        "{again:?}"
    );
    let missing = actuator.bind(&PodRef::new("ml", "nope"), "gpu-1").await;
    assert!(
        matches!(missing, Err(ActuateError::NotFound { .. })),
        "{missing:?}"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.subresource.as_deref() == Some("binding") && r.verb.as_str() == "create")
    );
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn evict_honours_disruption_budgets() {
    let fake = start().await;
    let server = &fake.server;
    server.insert(pod("ml", "db-0", Some("gpu-1"), "db"));
    server.insert(pdb("ml", "db-pdb", "db", 0));
    server.insert(pod("ml", "cache-0", Some("gpu-1"), "cache"));
    server.insert(pdb("ml", "cache-pdb", "cache", 1));
    let cluster = fake.connect("c-1").await;
    let actuator = k8s::actuate::Kubernetes::new(cluster.client.clone(), "c-1");

    // The budget allows no disruption: 429, answered at once, naming the budget.
    let refused = within(
        "a refused eviction",
        actuator.evict(&PodRef::new("ml", "db-0"), None),
    )
    .await;
    match &refused {
        Err(ActuateError::DisruptionBudget { pdb, what, .. }) => {
            assert_eq!(pdb.as_deref(), Some("db-pdb"));
            assert!(what.contains("ml/db-0"), "{what}");
        }
        other => panic!("expected DisruptionBudget, got {other:?}"),
    }
    assert!(
        server.object("v1", "Pod", Some("ml"), "db-0").is_some(),
        "a refused eviction leaves the pod"
    );

    // The budget allows one: the pod goes.
    actuator
        .evict(&PodRef::new("ml", "cache-0"), Some(Duration::from_secs(5)))
        .await
        .expect("eviction allowed by the budget");
    eventually("the evicted pod to be gone", || {
        server.object("v1", "Pod", Some("ml"), "cache-0").is_none()
    })
    .await;

    let missing = actuator.evict(&PodRef::new("ml", "nope"), None).await;
    assert!(
        matches!(missing, Err(ActuateError::NotFound { .. })),
        "{missing:?}"
    );
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn create_and_delete_pods_with_preconditions() {
    let fake = start().await;
    let server = &fake.server;
    let cluster = fake.connect("c-1").await;
    let actuator = k8s::actuate::Kubernetes::new(cluster.client.clone(), "c-1");

    let spec: Pod =
        serde_json::from_value(pod("ml", "trainer-0", Some("gpu-2"), "trainer")).unwrap();
    let created = actuator
        .create_pod("ml", spec.clone())
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().expect("the server sets a uid");
    let rv = created
        .metadata
        .resource_version
        .clone()
        .expect("and a version");
    assert!(
        server
            .object("v1", "Pod", Some("ml"), "trainer-0")
            .is_some()
    );

    let again = actuator.create_pod("ml", spec).await;
    assert!(
        matches!(again, Err(ActuateError::Conflict { .. })),
        "AlreadyExists is a conflict: {again:?}"
    );

    let trainer = PodRef::new("ml", "trainer-0");
    // Another pod of the same name (another uid) must not be deleted by mistake.
    let wrong_uid = actuator
        .delete_pod(
            &trainer,
            Preconditions {
                uid: Some("00000000-0000-0000-0000-000000000000".into()),
                resource_version: None,
            },
        )
        .await;
    assert!(
        matches!(wrong_uid, Err(ActuateError::Conflict { .. })),
        "{wrong_uid:?}"
    );
    let stale_rv = actuator
        .delete_pod(
            &trainer,
            Preconditions {
                uid: Some(uid.clone()),
                resource_version: Some("1".into()),
            },
        )
        .await;
    assert!(
        matches!(stale_rv, Err(ActuateError::Conflict { .. })),
        "{stale_rv:?}"
    );
    assert!(
        server
            .object("v1", "Pod", Some("ml"), "trainer-0")
            .is_some()
    );

    actuator
        .delete_pod(
            &trainer,
            Preconditions {
                uid: Some(uid),
                resource_version: Some(rv),
            },
        )
        .await
        .expect("delete with matching preconditions");
    assert!(
        server
            .object("v1", "Pod", Some("ml"), "trainer-0")
            .is_none()
    );
    let missing = actuator
        .delete_pod(&trainer, Preconditions::default())
        .await;
    assert!(
        matches!(missing, Err(ActuateError::NotFound { .. })),
        "{missing:?}"
    );

    let reasons: Vec<Value> = server
        .objects("events.k8s.io/v1", "Event", Some("ml"))
        .into_iter()
        .map(|e| e["reason"].clone())
        .collect();
    assert!(
        reasons.contains(&json!("Created")) && reasons.contains(&json!("Deleted")),
        "{reasons:?}"
    );
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn an_unlisted_call_is_refused_as_rbac_would() {
    // The fake enforces `k8s::API_CALLS` as RBAC: a request outside it (a secrets read, a pod
    // update, a lease in another namespace) is answered 403 Forbidden, as a cluster with the
    // deploy RBAC would, and the after-the-fact check catches it too.
    let fake = start().await;
    let cluster = fake.connect("c-1").await;
    let forbidden = |result: Result<_, kube::Error>, what: &str| match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{what}: {status:?}");
            assert_eq!(status.reason, "Forbidden", "{what}: {status:?}");
            assert!(
                status.message.contains(k8s_support::COORDINATOR_USER),
                "{what}: {}",
                status.message
            );
        }
        other => panic!(
            "{what}: expected 403 Forbidden, got {:?}",
            other.map(|_| ())
        ),
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(cluster.client.clone(), "ml");
    forbidden(secrets.get("token").await.map(|_| ()), "a secrets get");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cluster.client.clone(), "kube-system");
    forbidden(
        leases.get("kube-scheduler").await.map(|_| ()),
        "a lease outside the own namespace",
    );
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client.clone());
    forbidden(
        nodes.get("gpu-1").await.map(|_| ()),
        "a node get (only list/watch)",
    );
    // What the list grants passes: listing pods across namespaces.
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    pods.list(&Default::default())
        .await
        .expect("pods list is granted");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fake.assert_every_call_is_listed()
    }));
    assert!(caught.is_err(), "a secrets get is not in API_CALLS");
}

#[tokio::test]
async fn the_whole_shell_syncs_leads_acts_and_releases_the_lease_on_shutdown() {
    let fake = start().await;
    fake.server.insert(node("gpu-1"));
    fake.server
        .insert(workload("apps/v1", "Deployment", "ml", "web", 1));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (shell, tasks) = k8s::start(&fake.config("coordinator-0"), async move {
        let _ = stopped.await;
    })
    .await
    .expect("the shell starts");
    assert_eq!(shell.cluster.mode.name(), "kubernetes");
    let names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    assert!(names.contains(&"leader-election".to_owned()), "{names:?}");
    let mut handles: Vec<_> = tasks
        .into_iter()
        .map(|t| (t.name, tokio::spawn(t.future)))
        .collect();

    within("the cache to sync", shell.cache.wait_ready()).await;
    let mut leader = shell.leadership.watch();
    within("leadership", leader.wait_for(|l| *l))
        .await
        .expect("the election runs");
    shell
        .actuator
        .scale(&deployment("web"), 2, None, "")
        .await
        .expect("the leader acts");
    eventually("the cache to see the new replica count", || {
        shell
            .cache
            .deployments()
            .state()
            .iter()
            .any(|d| d.spec.replicas == Some(2))
    })
    .await;

    // Shutdown: the election steps down and releases the Lease; the reflectors are dropped.
    stop.send(()).expect("the election listens");
    let election = handles
        .iter()
        .position(|(name, _)| name == "leader-election")
        .expect("an election task");
    let (_, election) = handles.remove(election);
    within("the election to end", election)
        .await
        .expect("no panic");
    assert!(!shell.leadership.is_leader());
    let lease = fake
        .server
        .object(
            "coordination.k8s.io/v1",
            "Lease",
            Some(NAMESPACE),
            "aistor-coordinator",
        )
        .expect("the Lease exists");
    assert_ne!(
        lease["spec"]["holderIdentity"].as_str(),
        Some("coordinator-0"),
        "the Lease is released: {lease:#}"
    );
    for (_, handle) in handles {
        handle.abort();
    }
    fake.assert_every_call_is_listed();
}
