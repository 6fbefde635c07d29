//! The [`Store`] contract as tests that any implementation must pass (SQLite here,
//! custom resources through the API fake elsewhere): include this module with
//! `mod store_contract;` and call each function with a fresh, empty store.

#![allow(dead_code)] // each including test file calls what it needs

use aistor_coordinator::store::{
    ListOptions, MAX_BODY_BYTES, MAX_KEY_BYTES, MAX_LIST_LIMIT, Object, Store, StoreError,
};
use serde_json::json;
use std::sync::Arc;

const K: &str = "things";

/// Create, get, update; the same key in another kind is another object. Returns the
/// updated object (key "ns/one") so a caller can check it survives a reopen.
pub(crate) async fn objects_round_trip(store: Arc<dyn Store>) -> Object {
    let body = json!({"a": 1, "nested": {"list": [1, "two", null]}, "text": "ünïcode"});
    let created = store.create(K, "ns/one", body.clone(), 100).await.unwrap();
    assert_eq!(
        (
            created.generation,
            created.created_unix_nanos,
            created.updated_unix_nanos
        ),
        (1, 100, 100)
    );
    assert_eq!(created.body, body);
    assert_eq!(store.get(K, "ns/one").await.unwrap(), Some(created.clone()));
    assert_eq!(store.get(K, "ns/two").await.unwrap(), None);
    assert_eq!(store.get("others", "ns/one").await.unwrap(), None);

    let updated = store
        .update(K, "ns/one", 1, json!({"a": 2}), 250)
        .await
        .unwrap();
    assert_eq!(
        (
            updated.generation,
            updated.created_unix_nanos,
            updated.updated_unix_nanos
        ),
        (2, 100, 250)
    );
    assert_eq!(store.get(K, "ns/one").await.unwrap(), Some(updated.clone()));
    updated
}

pub(crate) async fn stale_writes_are_refused_not_merged(store: Arc<dyn Store>) {
    store.create(K, "k", json!({"v": 1}), 1).await.unwrap();
    match store.create(K, "k", json!({"v": "other"}), 2).await {
        Err(StoreError::AlreadyExists { kind, key }) => assert_eq!((kind, key.as_str()), (K, "k")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    store.update(K, "k", 1, json!({"v": 2}), 3).await.unwrap();
    let err = store
        .update(K, "k", 1, json!({"v": "stale"}), 4)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { kind: K, key, expected: 1, actual: 2 } if key == "k"),
        "{err:?}"
    );
    assert!(err.to_string().contains("things \"k\""), "{err}");
    let err = store.delete(K, "k", Some(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let now = store.get(K, "k").await.unwrap().unwrap();
    assert_eq!((now.generation, now.body), (2, json!({"v": 2})));

    let missing = store.update(K, "nope", 1, json!({}), 5).await.unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { kind: K, .. }),
        "{missing:?}"
    );
    store.delete(K, "k", Some(2)).await.unwrap();
    assert_eq!(store.get(K, "k").await.unwrap(), None);
    assert!(matches!(
        store.delete(K, "k", None).await,
        Err(StoreError::NotFound { .. })
    ));
    store.create(K, "k2", json!(1), 6).await.unwrap();
    store.delete(K, "k2", None).await.unwrap();
    assert_eq!(store.get(K, "k2").await.unwrap(), None);
}

/// Spawns tasks on the caller's runtime; a multi-threaded one makes them race.
pub(crate) async fn concurrent_read_modify_write_loses_no_update(store: Arc<dyn Store>) {
    store
        .create(K, "counter", json!({"n": 0}), 0)
        .await
        .unwrap();
    let (tasks, each) = (8u64, 15u64);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..each {
                loop {
                    let o = store.get(K, "counter").await.unwrap().unwrap();
                    let n = o.body["n"].as_u64().unwrap();
                    match store
                        .update(K, "counter", o.generation, json!({"n": n + 1}), 1)
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let o = store.get(K, "counter").await.unwrap().unwrap();
    assert_eq!(o.body["n"].as_u64(), Some(tasks * each));
    assert_eq!(o.generation, 1 + tasks * each);
}

pub(crate) async fn lists_page_in_key_order(store: Arc<dyn Store>) {
    // Inserted out of order, with multi-byte keys: order is by UTF-8 bytes, as `str`.
    let mut expected: Vec<String> = (0..21).map(|i| format!("ns/{:02}", (i * 8) % 21)).collect();
    expected.extend(["z/é".to_owned(), "Z/upper".to_owned(), "ns/ä".to_owned()]);
    for k in &expected {
        store.create(K, k, json!({"k": k}), 1).await.unwrap();
        store.create("others", k, json!(null), 1).await.unwrap();
    }
    expected.sort();
    for limit in [1, 7, 8, 24, 25, MAX_LIST_LIMIT] {
        let (keys, pages) = all_keys(&*store, K, limit).await;
        assert_eq!(keys, expected, "limit {limit}");
        assert_eq!(pages, expected.len().div_ceil(limit), "limit {limit}");
    }
    let empty = store.list("none", ListOptions::first(5)).await.unwrap();
    assert_eq!((empty.items.len(), empty.continue_after), (0, None));
    let after_last = ListOptions {
        limit: 5,
        continue_after: Some(expected.last().unwrap().clone()),
    };
    assert!(store.list(K, after_last).await.unwrap().items.is_empty());
}

pub(crate) async fn bounds_are_enforced_naming_the_limit(store: Arc<dyn Store>) {
    let longest = "k".repeat(MAX_KEY_BYTES);
    store.create(K, &longest, json!(1), 1).await.unwrap();
    assert!(store.get(K, &longest).await.unwrap().is_some());
    let err = store
        .create(K, &format!("{longest}k"), json!(1), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("limit is {MAX_KEY_BYTES} bytes")),
        "{err}"
    );
    for bad in ["", "a\nb", "nul\0"] {
        let err = store.get(K, bad).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidKey { .. }),
            "{bad:?}: {err:?}"
        );
    }
    for kind in ["", "Upper", "under_score", "-dash"] {
        let err = store.get(kind, "k").await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidKind { .. }),
            "{kind:?}: {err:?}"
        );
    }

    // A JSON string serialises with its two quotes.
    let at_limit = json!("x".repeat(MAX_BODY_BYTES - 2));
    let o = store.create(K, "big", at_limit.clone(), 1).await.unwrap();
    assert_eq!(store.get(K, "big").await.unwrap().unwrap().body, at_limit);
    let over = json!("x".repeat(MAX_BODY_BYTES - 1));
    let err = store
        .update(K, "big", o.generation, over, 2)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::BodyTooLarge { size, max: MAX_BODY_BYTES, .. } if size == MAX_BODY_BYTES + 1),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("limit is {MAX_BODY_BYTES} bytes")),
        "{err}"
    );
    assert_eq!(store.get(K, "big").await.unwrap().unwrap().generation, 1);

    for limit in [0, MAX_LIST_LIMIT + 1] {
        let err = store.list(K, ListOptions::first(limit)).await.unwrap_err();
        assert!(
            err.to_string().contains(&MAX_LIST_LIMIT.to_string()),
            "{err}"
        );
    }
}

async fn all_keys(store: &dyn Store, kind: &'static str, limit: usize) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut options = ListOptions::first(limit);
    let mut pages = 0;
    loop {
        let page = store.list(kind, options.clone()).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= limit);
        keys.extend(page.items.into_iter().map(|o| o.key));
        match page.continue_after {
            Some(after) => options.continue_after = Some(after),
            None => return (keys, pages),
        }
    }
}
