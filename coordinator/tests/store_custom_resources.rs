//! The store on Kubernetes (`store::custom_resources`) against the API server fake: the
//! whole store contract (`store_contract`, which SQLite passes too) with this store's
//! documented differences as its fixture, and Autoscaler resources: generations their
//! resourceVersions, stale writes refused (409 → Conflict) and never merged, the status
//! written through its subresource, pages by key.

mod k8s_support;
mod store_contract;

use aistor_coordinator::store::custom_resources::{
    CustomResourceStore, MAX_NAME_BYTES, MAX_NAMESPACE_BYTES,
};
use aistor_coordinator::store::{ListOptions, Store, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;

/// The contract's objects are Measurement resources with the payload as JSON text in
/// `status.message` (a free string in the CRD's schema, so a real API server keeps it
/// whole, at any size the store accepts); Autoscalers are the other kind.
fn contract() -> store_contract::Fixture {
    let mut ordering_keys: Vec<String> = (0..21)
        .map(|i| format!("ns-{}/r{:02}", i % 3, (i * 8) % 21))
        .collect();
    ordering_keys.extend([
        "a/z.y".to_owned(),
        "z/a".to_owned(),
        "ns-1/a.b.c".to_owned(),
    ]);
    store_contract::Fixture {
        kind: "measurements",
        other_kind: "autoscalers",
        empty_kind: "migrations",
        key: |name| format!("ml/{name}"),
        body: |kind, key, payload| {
            let (ns, name) = key.split_once('/').unwrap_or(("", key));
            match kind {
                "autoscalers" => autoscaler(ns, name, 2),
                _ => json!({
                    "apiVersion": "aistor.io/v1alpha1", "kind": "Measurement",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"target": {"cgroupPath": "x.slice"}, "samples": 1,
                             "intervalMilliseconds": 10},
                    "status": {"message": payload.to_string()},
                }),
            }
        },
        payload: |body| serde_json::from_str(body["status"]["message"].as_str().unwrap()).unwrap(),
        generations: store_contract::Generations::Increase,
        times: store_contract::Times::ServerCreation,
        ordering_keys,
        longest_key: format!(
            "{}/{}",
            "n".repeat(MAX_NAMESPACE_BYTES),
            "k".repeat(MAX_NAME_BYTES)
        ),
        too_long_key: format!("ml/{}", "k".repeat(MAX_NAME_BYTES + 1)),
        key_limit: MAX_NAME_BYTES,
    }
}

async fn contract_store() -> (k8s_support::Fake, Arc<dyn Store>) {
    let fake = k8s_support::start().await;
    fake.install_crds();
    let cluster = fake.connect("c-1").await;
    (fake, Arc::new(CustomResourceStore::new(cluster.client)))
}

#[tokio::test]
async fn contract_objects_round_trip_and_survive_a_new_client() {
    let (fake, store) = contract_store().await;
    let updated = store_contract::objects_round_trip(store, &contract()).await;
    // Another coordinator (its own client) reads the same object.
    let other = CustomResourceStore::new(fake.connect("c-2").await.client);
    assert_eq!(
        other.get("measurements", "ml/one").await.unwrap(),
        Some(updated)
    );
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn contract_stale_writes_are_refused_not_merged() {
    let (fake, store) = contract_store().await;
    store_contract::stale_writes_are_refused_not_merged(store, &contract()).await;
    fake.assert_every_call_is_listed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_concurrent_read_modify_write_loses_no_update() {
    let (fake, store) = contract_store().await;
    store_contract::concurrent_read_modify_write_loses_no_update(store, &contract()).await;
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn contract_lists_page_in_key_order() {
    let (fake, store) = contract_store().await;
    store_contract::lists_page_in_key_order(store, &contract()).await;
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn contract_bounds_are_enforced_naming_the_limit() {
    let (fake, store) = contract_store().await;
    store_contract::bounds_are_enforced_naming_the_limit(store.clone(), &contract()).await;
    // Keys are checked as the API server checks names, before any request.
    let long_namespace = format!("{}/n", "n".repeat(MAX_NAMESPACE_BYTES + 1));
    for (key, says) in [
        ("ml/Upper", "the name must be lower-case"),
        ("ml/-dash", "the name must be lower-case"),
        (
            "a.b/name",
            "the namespace must be lower-case letters, digits and '-'",
        ),
        (
            long_namespace.as_str(),
            "the namespace is 64 bytes, the limit is 63 bytes",
        ),
        ("no-namespace", "must be namespace/name"),
        ("/name", "the namespace must not be empty"),
    ] {
        let err = store.get("measurements", key).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidKey { reason, .. } if reason.contains(says)),
            "{key:?}: {err:?}"
        );
    }
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn a_write_that_changes_nothing_keeps_the_generation() {
    // The API server skips a write that changes nothing (SQLite counts it): a
    // documented difference, seen here.
    let (fake, store) = contract_store().await;
    let f = contract();
    let body = (f.body)("measurements", "ml/same", &json!(1));
    let created = store
        .create("measurements", "ml/same", body.clone(), 0)
        .await
        .unwrap();
    let again = store
        .update("measurements", "ml/same", created.generation, body, 0)
        .await
        .unwrap();
    assert_eq!(again.generation, created.generation);
    fake.assert_every_call_is_listed();
}

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
