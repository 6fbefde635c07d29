//! Subresources through the real kube client: scale, pod binding and pod eviction with
//! PodDisruptionBudgets.

mod support;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{api_error, client_without_retry, start};

fn pod(name: &str, app: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "team", "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"}
    })
}

fn pdb(name: &str, app: &str, allowed: i32) -> serde_json::Value {
    json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": app}}},
        "status": {"disruptionsAllowed": allowed, "currentHealthy": 1, "desiredHealthy": 1,
                   "expectedPods": 1, "observedGeneration": 1}
    })
}

#[tokio::test]
async fn scale_maps_replicas_and_selector() {
    let (server, client) = start("team").await;
    server.insert(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"replicas": 2}
    }));
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
    let status = scale.status.clone().unwrap();
    assert_eq!(
        (status.replicas, status.selector.as_deref()),
        (2, Some("app=web"))
    );

    let mut wanted = scale.clone();
    wanted.spec.as_mut().unwrap().replicas = Some(5);
    let replaced = api
        .replace_scale("web", &PostParams::default(), &wanted)
        .await
        .unwrap();
    assert_eq!(replaced.spec.unwrap().replicas, Some(5));
    let deployment = api.get("web").await.unwrap();
    assert_eq!(deployment.spec.replicas, Some(5));
    assert_eq!(deployment.metadata.generation, Some(2));

    // The first Scale's resourceVersion is now stale.
    let stale = api_error(
        api.replace_scale("web", &PostParams::default(), &scale)
            .await,
    );
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));

    let patch = json!({"spec": {"replicas": 1}});
    let patched = api
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(1));
    let negative = json!({"spec": {"replicas": -1}});
    let invalid = api_error(
        api.patch_scale("web", &PatchParams::default(), &Patch::Merge(&negative))
            .await,
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));

    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    assert_eq!(api_error(sets.get_scale("missing").await).code, 404);
    // Pods have no scale subresource.
    let pods: Api<Pod> = Api::default_namespaced(client);
    let request = axum::http::Request::get("/api/v1/namespaces/team/pods/p/scale")
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        api_error(pods.into_client().request::<Scale>(request).await).code,
        404
    );
}

#[tokio::test]
async fn binding_assigns_a_pod_once() {
    let (server, client) = start("team").await;
    let mut unbound = pod("p", "web");
    unbound["status"] = json!({"phase": "Pending"});
    server.insert(unbound);
    let api: Api<Pod> = Api::default_namespaced(client);
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}});
    let status: kube::core::Status = api
        .create_subresource("binding", "p", &PostParams::default(), &binding)
        .await
        .unwrap();
    assert!(status.is_success(), "{status:?}");
    let bound = api.get("p").await.unwrap();
    assert_eq!(
        bound.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-1")
    );
    let conditions = bound.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );

    let again = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                       "target": {"kind": "Node", "name": "node-2"}});
    let conflict = api_error(
        api.create_subresource::<_, kube::core::Status>(
            "binding",
            "p",
            &PostParams::default(),
            &again,
        )
        .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict
            .message
            .contains("already assigned to node \"node-1\""),
        "{}",
        conflict.message
    );
    let missing = api_error(
        api.create_subresource::<_, kube::core::Status>(
            "binding",
            "nope",
            &PostParams::default(),
            &again,
        )
        .await,
    );
    assert_eq!(missing.code, 404);
}

#[tokio::test]
async fn eviction_honours_disruption_budgets() {
    let (server, _) = start("team").await;
    // kube retries 429 up to 15 times with growing delays; this test wants to see the 429.
    let client = client_without_retry(&server, "team").await;
    server.insert(pod("guarded", "web"));
    server.insert(pod("free", "batch"));
    server.insert(pod("budgeted", "api"));
    server.insert(pdb("web-pdb", "web", 0));
    server.insert(pdb("api-pdb", "api", 1));
    let api: Api<Pod> = Api::default_namespaced(client);

    let refused = api_error(api.evict("guarded", &EvictParams::default()).await);
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert!(refused.message.contains("web-pdb"), "{}", refused.message);
    assert!(
        server
            .object("v1", "Pod", Some("team"), "guarded")
            .is_some(),
        "the pod stays"
    );

    // No budget covers this pod: evicted.
    let status = api.evict("free", &EvictParams::default()).await.unwrap();
    assert!(status.is_success(), "{status:?}");
    assert_eq!(api_error(api.get("free").await).code, 404);

    // A budget with room: evicted, and the budget has one disruption fewer.
    api.evict("budgeted", &EvictParams::default())
        .await
        .unwrap();
    assert!(
        server
            .object("v1", "Pod", Some("team"), "budgeted")
            .is_none()
    );
    let budgets: Api<PodDisruptionBudget> = Api::default_namespaced(api.clone().into_client());
    let budget = budgets.get("api-pdb").await.unwrap();
    let status = budget.status.unwrap();
    assert_eq!(status.disruptions_allowed, Some(0));
    assert!(status.disrupted_pods.unwrap().contains_key("budgeted"));

    let missing = api_error(api.evict("nope", &EvictParams::default()).await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));

    // A terminal pod is not protected by its budget.
    let mut done = pod("done", "web");
    done["status"]["phase"] = json!("Succeeded");
    server.insert(done);
    api.evict("done", &EvictParams::default()).await.unwrap();

    let verbs: Vec<_> = server
        .requests()
        .iter()
        .filter(|r| r.subresource.as_deref() == Some("eviction"))
        .map(|r| (r.verb.as_str(), r.name.clone().unwrap(), r.status))
        .collect();
    assert_eq!(verbs[0], ("create", "guarded".to_string(), 429));
}
