//! The [`Store`] contract as tests that every implementation must pass: include this
//! module with `mod store_contract;` and call each function with a fresh, empty store
//! and the implementation's [`Fixture`] (`store_sqlite.rs`: SQLite;
//! `store_custom_resources.rs`: custom resources through the API server fake).
//!
//! The fixture carries only what truly differs between implementations, each a
//! documented property of the store (`store::custom_resources`' module doc): which
//! kinds it keeps, what a body and a key must be, whether generations count by one,
//! who sets the times. Everything else is held the same for both.

#![allow(dead_code)] // each including test file calls what it needs

use aistor_coordinator::store::{
    ListOptions, MAX_BODY_BYTES, MAX_LIST_LIMIT, Object, Store, StoreError,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How generations move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generations {
    /// 1 on create, +1 per update (SQLite).
    CountByOne,
    /// Some positive number on create, larger after every write that changes something
    /// (a resourceVersion: etcd's revision moves on with every write in the cluster).
    Increase,
}

/// Who sets `created_unix_nanos` / `updated_unix_nanos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Times {
    /// The caller's `now_unix_nanos`, exactly (SQLite).
    Caller,
    /// The server's clock at creation, in whole seconds; the update time is the creation
    /// time (the Kubernetes API keeps none).
    ServerCreation,
}

/// What differs between implementations.
pub(crate) struct Fixture {
    /// A kind the store keeps.
    pub kind: &'static str,
    /// Another kind it keeps: the same key there is another object.
    pub other_kind: &'static str,
    /// A kind it keeps that the tests never write.
    pub empty_kind: &'static str,
    /// A valid key for a short lower-case name (`a`-`z`, digits, '-').
    pub key: fn(&str) -> String,
    /// The body that stores `payload` under `key` of `kind`.
    pub body: fn(&'static str, &str, &Value) -> Value,
    /// The payload a stored body holds.
    pub payload: fn(&Value) -> Value,
    pub generations: Generations,
    pub times: Times,
    /// Keys to page through, in any order: the store must return them sorted by bytes.
    pub ordering_keys: Vec<String>,
    /// The longest key accepted, one just too long, and the limit its error names.
    pub longest_key: String,
    pub too_long_key: String,
    pub key_limit: usize,
}

fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The instants a write made between `before` and now may carry.
fn check_times(f: &Fixture, o: &Object, caller: (u64, u64), before: u64) {
    match f.times {
        Times::Caller => assert_eq!((o.created_unix_nanos, o.updated_unix_nanos), caller),
        Times::ServerCreation => {
            let second = 1_000_000_000;
            let after = unix_nanos_now();
            assert!(
                (before / second * second..=after).contains(&o.created_unix_nanos),
                "created {} not within {before}..={after}",
                o.created_unix_nanos
            );
            assert_eq!(o.created_unix_nanos % second, 0, "whole seconds");
            assert_eq!(o.updated_unix_nanos, o.created_unix_nanos);
        }
    }
}

/// `next` is a generation written after `previous`.
fn check_next(f: &Fixture, previous: u64, next: u64) {
    match f.generations {
        Generations::CountByOne => assert_eq!(next, previous + 1),
        Generations::Increase => assert!(next > previous, "{next} after {previous}"),
    }
}

/// Create, get, update; the same key in another kind is another object. Returns the
/// updated object (key `f.key("one")`) so a caller can check it survives a reopen.
pub(crate) async fn objects_round_trip(store: Arc<dyn Store>, f: &Fixture) -> Object {
    let (k, one, two) = (f.kind, (f.key)("one"), (f.key)("two"));
    let payload = json!({"a": 1, "nested": {"list": [1, "two", null]}, "text": "ünïcode"});
    let before = unix_nanos_now();
    let created = store
        .create(k, &one, (f.body)(k, &one, &payload), 100)
        .await
        .unwrap();
    assert_eq!(created.key, one);
    if f.generations == Generations::CountByOne {
        assert_eq!(created.generation, 1);
    }
    assert!(created.generation >= 1);
    check_times(f, &created, (100, 100), before);
    assert_eq!((f.payload)(&created.body), payload);
    assert_eq!(store.get(k, &one).await.unwrap(), Some(created.clone()));
    assert_eq!(store.get(k, &two).await.unwrap(), None);
    assert_eq!(store.get(f.other_kind, &one).await.unwrap(), None);

    let updated = store
        .update(
            k,
            &one,
            created.generation,
            (f.body)(k, &one, &json!({"a": 2})),
            250,
        )
        .await
        .unwrap();
    check_next(f, created.generation, updated.generation);
    check_times(f, &updated, (100, 250), before);
    assert_eq!(updated.created_unix_nanos, created.created_unix_nanos);
    assert_eq!((f.payload)(&updated.body), json!({"a": 2}));
    assert_eq!(store.get(k, &one).await.unwrap(), Some(updated.clone()));
    updated
}

pub(crate) async fn stale_writes_are_refused_not_merged(store: Arc<dyn Store>, f: &Fixture) {
    let (k, key) = (f.kind, (f.key)("k"));
    let body = |v: Value| (f.body)(k, &key, &json!({ "v": v }));
    let first = store.create(k, &key, body(json!(1)), 1).await.unwrap();
    match store.create(k, &key, body(json!("other")), 2).await {
        Err(StoreError::AlreadyExists { kind, key: k2 }) => {
            assert_eq!((kind, k2), (k, key.clone()))
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let second = store
        .update(k, &key, first.generation, body(json!(2)), 3)
        .await
        .unwrap();
    let err = store
        .update(k, &key, first.generation, body(json!("stale")), 4)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { kind, key: k2, expected, actual }
            if *kind == k && *k2 == key && *expected == first.generation && *actual == second.generation),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("{k} {key:?}")), "{err}");
    let err = store
        .delete(k, &key, Some(first.generation))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { expected, actual, .. }
            if expected == first.generation && actual == second.generation),
        "{err:?}"
    );
    let now = store.get(k, &key).await.unwrap().unwrap();
    assert_eq!(now.generation, second.generation);
    assert_eq!((f.payload)(&now.body), json!({"v": 2}));

    let nope = (f.key)("nope");
    let missing = store
        .update(k, &nope, 1, (f.body)(k, &nope, &json!({})), 5)
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, StoreError::NotFound { kind, .. } if *kind == k),
        "{missing:?}"
    );
    store
        .delete(k, &key, Some(second.generation))
        .await
        .unwrap();
    assert_eq!(store.get(k, &key).await.unwrap(), None);
    assert!(matches!(
        store.delete(k, &key, None).await,
        Err(StoreError::NotFound { .. })
    ));
    let k2 = (f.key)("k2");
    store
        .create(k, &k2, (f.body)(k, &k2, &json!(1)), 6)
        .await
        .unwrap();
    store.delete(k, &k2, None).await.unwrap();
    assert_eq!(store.get(k, &k2).await.unwrap(), None);
}

/// Spawns tasks on the caller's runtime; a multi-threaded one makes them race.
pub(crate) async fn concurrent_read_modify_write_loses_no_update(
    store: Arc<dyn Store>,
    f: &Fixture,
) {
    let (k, key) = (f.kind, (f.key)("counter"));
    let body = f.body;
    let payload = f.payload;
    let first = store
        .create(k, &key, body(k, &key, &json!({"n": 0})), 0)
        .await
        .unwrap();
    let (tasks, each) = (8u64, 15u64);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..each {
                loop {
                    let o = store.get(k, &key).await.unwrap().unwrap();
                    let n = payload(&o.body)["n"].as_u64().unwrap();
                    match store
                        .update(
                            k,
                            &key,
                            o.generation,
                            body(k, &key, &json!({"n": n + 1})),
                            1,
                        )
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
    let o = store.get(k, &key).await.unwrap().unwrap();
    assert_eq!(payload(&o.body)["n"].as_u64(), Some(tasks * each));
    // Every update moved the generation on.
    match f.generations {
        Generations::CountByOne => assert_eq!(o.generation, first.generation + tasks * each),
        Generations::Increase => assert!(o.generation >= first.generation + tasks * each),
    }
}

pub(crate) async fn lists_page_in_key_order(store: Arc<dyn Store>, f: &Fixture) {
    let k = f.kind;
    let mut expected = f.ordering_keys.clone();
    for key in &expected {
        store
            .create(k, key, (f.body)(k, key, &json!({ "k": key })), 1)
            .await
            .unwrap();
        store
            .create(
                f.other_kind,
                key,
                (f.body)(f.other_kind, key, &json!(null)),
                1,
            )
            .await
            .unwrap();
    }
    expected.sort();
    for limit in [1, 7, 8, expected.len() - 1, expected.len(), MAX_LIST_LIMIT] {
        let (keys, pages) = all_keys(&*store, k, limit).await;
        assert_eq!(keys, expected, "limit {limit}");
        assert_eq!(pages, expected.len().div_ceil(limit), "limit {limit}");
    }
    let (bodies, _) = all_objects(&*store, k).await;
    for o in bodies {
        assert_eq!((f.payload)(&o.body), json!({ "k": o.key }));
    }
    let empty = store
        .list(f.empty_kind, ListOptions::first(5))
        .await
        .unwrap();
    assert_eq!((empty.items.len(), empty.continue_after), (0, None));
    let after_last = ListOptions {
        limit: 5,
        continue_after: Some(expected.last().unwrap().clone()),
    };
    assert!(store.list(k, after_last).await.unwrap().items.is_empty());
}

/// A body for `key` whose serialised form is exactly `size` bytes.
fn body_of_size(f: &Fixture, key: &str, size: usize) -> Value {
    // A payload string adds its length (plain 'x's need no escaping).
    let bare = (f.body)(f.kind, key, &json!("")).to_string().len();
    let body = (f.body)(f.kind, key, &json!("x".repeat(size - bare)));
    assert_eq!(body.to_string().len(), size);
    body
}

pub(crate) async fn bounds_are_enforced_naming_the_limit(store: Arc<dyn Store>, f: &Fixture) {
    let k = f.kind;
    let longest = &f.longest_key;
    store
        .create(k, longest, (f.body)(k, longest, &json!(1)), 1)
        .await
        .unwrap();
    assert!(store.get(k, longest).await.unwrap().is_some());
    let too_long = &f.too_long_key;
    let err = store
        .create(k, too_long, (f.body)(k, too_long, &json!(1)), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("limit is {} bytes", f.key_limit)),
        "{err}"
    );
    for bad in ["", "a\nb", "nul\0"] {
        let err = store.get(k, bad).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidKey { .. }),
            "{bad:?}: {err:?}"
        );
    }
    let key = (f.key)("k");
    for kind in ["", "Upper", "under_score", "-dash"] {
        let err = store.get(kind, &key).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidKind { .. }),
            "{kind:?}: {err:?}"
        );
    }

    let big = (f.key)("big");
    let at_limit = body_of_size(f, &big, MAX_BODY_BYTES);
    let o = store.create(k, &big, at_limit.clone(), 1).await.unwrap();
    assert_eq!(
        (f.payload)(&store.get(k, &big).await.unwrap().unwrap().body),
        (f.payload)(&at_limit)
    );
    let over = body_of_size(f, &big, MAX_BODY_BYTES + 1);
    let err = store
        .update(k, &big, o.generation, over.clone(), 2)
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
    assert_eq!(
        store.get(k, &big).await.unwrap().unwrap().generation,
        o.generation
    );
    let big2 = (f.key)("big2");
    let err = store
        .create(k, &big2, body_of_size(f, &big2, MAX_BODY_BYTES + 1), 3)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BodyTooLarge { .. }), "{err:?}");
    assert_eq!(store.get(k, &big2).await.unwrap(), None);

    for limit in [0, MAX_LIST_LIMIT + 1] {
        let err = store.list(k, ListOptions::first(limit)).await.unwrap_err();
        assert!(
            err.to_string().contains(&MAX_LIST_LIMIT.to_string()),
            "{err}"
        );
    }
}

async fn all_objects(store: &dyn Store, kind: &'static str) -> (Vec<Object>, usize) {
    let mut objects = Vec::new();
    let mut options = ListOptions::first(MAX_LIST_LIMIT);
    let mut pages = 0;
    loop {
        let page = store.list(kind, options.clone()).await.unwrap();
        pages += 1;
        objects.extend(page.items);
        match page.continue_after {
            Some(after) => options.continue_after = Some(after),
            None => return (objects, pages),
        }
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
