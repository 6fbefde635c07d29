//! The store on Kubernetes (`store::custom_resources`) against the API server fake:
//! objects are Autoscaler resources, generations their resourceVersions, stale writes
//! refused (409 → Conflict) and never merged, the status written through its
//! subresource, pages by key.

mod k8s_support;

use aistor_coordinator::store::custom_resources::CustomResourceStore;
use aistor_coordinator::store::{ListOptions, Store, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;

const K: &str = "autoscalers";

fn autoscaler(ns: &str, name: &str, max: i32) -> Value {
    json!({
        "apiVersion": "aistor.io/v1alpha1", "kind": "Autoscaler",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "workloadRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": max,
            "metrics": {"cpuPercent": 50},
        },
        "status": {"phase": "Pending"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscalers_are_kept_as_custom_resources() {
    // The kind the autoscaler registry stores under is the one kept as a resource.
    assert_eq!(aistor_coordinator::autoscalers::AUTOSCALERS, K);
    let fake = k8s_support::start().await;
    fake.install_crds();
    let cluster = fake.connect("c-1").await;
    let store: Arc<dyn Store> = Arc::new(CustomResourceStore::new(cluster.client));

    // Create: the status (dropped by the API on create) is written through /status.
    let created = store
        .create(K, "ml/a", autoscaler("ml", "a", 3), 0)
        .await
        .unwrap();
    assert_eq!(created.key, "ml/a");
    assert_eq!(created.body["status"]["phase"], "Pending");
    let seen = fake
        .server
        .object("aistor.io/v1alpha1", "Autoscaler", Some("ml"), "a")
        .expect("a resource kubectl can see");
    assert_eq!(seen["status"]["phase"], "Pending");
    assert_eq!(seen["spec"]["maxReplicas"], 3);
    match store.create(K, "ml/a", autoscaler("ml", "a", 3), 0).await {
        Err(StoreError::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get(K, "ml/a").await.unwrap().unwrap(), created);
    assert_eq!(store.get(K, "ml/none").await.unwrap(), None);

    // A status-only update: one write to /status, a newer generation.
    let mut body = created.body.clone();
    body["status"]["phase"] = json!("Active");
    let updated = store
        .update(K, "ml/a", created.generation, body.clone(), 0)
        .await
        .unwrap();
    assert!(updated.generation > created.generation);
    assert_eq!(updated.body["status"]["phase"], "Active");
    // The same write again, from the old generation: refused, nothing merged.
    body["status"]["phase"] = json!("Failed");
    match store
        .update(K, "ml/a", created.generation, body.clone(), 0)
        .await
    {
        Err(StoreError::Conflict { kind, key, .. }) => {
            assert_eq!((kind, key.as_str()), (K, "ml/a"))
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store.get(K, "ml/a").await.unwrap().unwrap().body["status"]["phase"],
        "Active"
    );
    // A spec change goes through the main resource as well.
    let mut body = updated.body.clone();
    body["spec"]["maxReplicas"] = json!(7);
    body["status"]["phase"] = json!("Active");
    let respec = store
        .update(K, "ml/a", updated.generation, body, 0)
        .await
        .unwrap();
    assert!(respec.generation > updated.generation);
    let seen = fake
        .server
        .object("aistor.io/v1alpha1", "Autoscaler", Some("ml"), "a")
        .unwrap();
    assert_eq!(seen["spec"]["maxReplicas"], 7);

    // Lists page by key across namespaces.
    for (ns, name) in [("default", "z"), ("ml", "b"), ("other", "c")] {
        store
            .create(K, &format!("{ns}/{name}"), autoscaler(ns, name, 2), 0)
            .await
            .unwrap();
    }
    let first = store.list(K, ListOptions::first(2)).await.unwrap();
    let keys: Vec<&str> = first.items.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["default/z", "ml/a"]);
    let rest = store
        .list(
            K,
            ListOptions {
                limit: 10,
                continue_after: first.continue_after,
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = rest.items.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["ml/b", "other/c"]);
    assert_eq!(rest.continue_after, None);

    // Delete: a stale generation is refused; then gone; then NotFound.
    match store.delete(K, "ml/a", Some(created.generation)).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    store
        .delete(K, "ml/a", Some(respec.generation))
        .await
        .unwrap();
    assert_eq!(store.get(K, "ml/a").await.unwrap(), None);
    match store.delete(K, "ml/a", None).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }

    // Kinds without a custom resource and keys without a namespace are refused by name.
    match store.get("pods", "ml/x").await {
        Err(StoreError::InvalidKind { kind, .. }) => assert_eq!(kind, "pods"),
        other => panic!("expected InvalidKind, got {other:?}"),
    }
    match store.get(K, "no-namespace").await {
        Err(StoreError::InvalidKey { reason, .. }) => assert!(reason.contains("namespace/name")),
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    fake.assert_every_call_is_listed();
}
