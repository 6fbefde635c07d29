//! Watches: raw watch streams, 410 Gone after compaction, timeouts with bookmarks, and
//! kube-runtime's `watcher` (list+watch and streaming lists) recovering from closed watches
//! and compaction.

mod support;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use support::{start, within};

fn config_map(name: &str, tier: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("tier".to_string(), tier.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn name_of(cm: &ConfigMap) -> &str {
    cm.metadata.name.as_deref().unwrap_or("")
}

async fn relabel(api: &Api<ConfigMap>, name: &str, tier: &str) {
    let patch = json!({"metadata": {"labels": {"tier": tier}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// A short description of a raw watch event, for comparing sequences.
fn describe(event: &WatchEvent<ConfigMap>) -> String {
    match event {
        WatchEvent::Added(o) => format!("ADDED {}", name_of(o)),
        WatchEvent::Modified(o) => format!("MODIFIED {}", name_of(o)),
        WatchEvent::Deleted(o) => format!("DELETED {}", name_of(o)),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(e) => format!("ERROR {} {}", e.code, e.reason),
    }
}

async fn next_raw(
    stream: &mut (impl Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> String {
    let event = within("a watch event", stream.next()).await;
    describe(
        &event
            .expect("the stream is open")
            .expect("the event decodes"),
    )
}

#[tokio::test]
async fn raw_watch_from_a_resource_version_with_selectors() {
    let (_server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("before", "web"))
        .await
        .unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();

    let mut all = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut web = api
        .watch(&WatchParams::default().labels("tier=web"), &rv)
        .await
        .unwrap()
        .boxed();

    api.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    relabel(&api, "a", "db").await; // leaves the web selection
    relabel(&api, "a", "web").await; // and comes back
    api.create(&PostParams::default(), &config_map("b", "db"))
        .await
        .unwrap();
    api.delete("a", &Default::default()).await.unwrap();

    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(next_raw(&mut all).await);
    }
    assert_eq!(
        seen,
        [
            "ADDED a",
            "MODIFIED a",
            "MODIFIED a",
            "ADDED b",
            "DELETED a"
        ]
    );
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_raw(&mut web).await);
    }
    assert_eq!(seen, ["ADDED a", "DELETED a", "ADDED a", "DELETED a"]);

    // "0" starts with the current state as ADDED events.
    let mut current = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut names = vec![next_raw(&mut current).await, next_raw(&mut current).await];
    names.sort();
    assert_eq!(names, ["ADDED b", "ADDED before"]);
}

#[tokio::test]
async fn watch_from_a_compacted_version_is_410_expired() {
    let (server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    let old = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    relabel(&api, "a", "db").await;

    // Before compaction the history replays the change...
    let mut replay = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    assert_eq!(next_raw(&mut replay).await, "MODIFIED a");

    server.compact();
    let mut expired = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    let event = within("the error event", expired.next())
        .await
        .unwrap()
        .unwrap();
    match event {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.contains("too old resource version"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {}", describe(&other)),
    }
    assert!(within("the stream to end", expired.next()).await.is_none());

    // ...and a watch from the current version still works after it.
    let now = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut fresh = api
        .watch(&WatchParams::default(), &now)
        .await
        .unwrap()
        .boxed();
    relabel(&api, "a", "web").await;
    assert_eq!(next_raw(&mut fresh).await, "MODIFIED a");
}

#[tokio::test]
async fn watch_timeout_ends_with_a_bookmark() {
    let (_server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    let params = WatchParams::default().timeout(1).disable_bookmarks();
    let plain: Vec<_> = within(
        "a timed-out watch",
        api.watch(&params, &rv)
            .await
            .unwrap()
            .try_collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert!(
        plain.is_empty(),
        "nothing happened and no bookmarks were asked for"
    );

    let params = WatchParams::default().timeout(1);
    let events: Vec<_> = within(
        "a timed-out watch",
        api.watch(&params, "0")
            .await
            .unwrap()
            .try_collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let described: Vec<_> = events.iter().map(describe).collect();
    assert_eq!(described, ["ADDED a".to_string(), format!("BOOKMARK {rv}")]);
}

/// The next watcher event, or its error.
async fn next_event(
    stream: &mut (impl Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin),
) -> Result<Event<ConfigMap>, watcher::Error> {
    within("a watcher event", stream.next())
        .await
        .expect("watcher streams never end")
}

fn summary(event: &Event<ConfigMap>) -> String {
    match event {
        Event::Init => "Init".into(),
        Event::InitApply(o) => format!("InitApply {}", name_of(o)),
        Event::InitDone => "InitDone".into(),
        Event::Apply(o) => format!(
            "Apply {} {}",
            name_of(o),
            o.metadata.labels.as_ref().unwrap()["tier"]
        ),
        Event::Delete(o) => format!("Delete {}", name_of(o)),
    }
}

async fn expect_events(
    stream: &mut (impl Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin),
    expected: &[&str],
) {
    let mut seen = Vec::new();
    for _ in expected {
        seen.push(summary(
            &next_event(stream).await.expect("no watcher error"),
        ));
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn runtime_watcher_sees_changes_and_recovers() {
    let (server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    expect_events(&mut events, &["Init", "InitApply a", "InitDone"]).await;

    api.create(&PostParams::default(), &config_map("b", "web"))
        .await
        .unwrap();
    relabel(&api, "a", "db").await;
    api.delete("b", &Default::default()).await.unwrap();
    expect_events(&mut events, &["Apply b web", "Apply a db", "Delete b"]).await;

    // A closed watch: the watcher re-watches from its last version and misses nothing.
    server.close_watches();
    api.create(&PostParams::default(), &config_map("c", "web"))
        .await
        .unwrap();
    expect_events(&mut events, &["Apply c web"]).await;

    // Compaction while the watcher is disconnected (the stream is lazy: not polling it keeps
    // it from reconnecting): its re-watch gets 410 Expired and it lists again.
    server.close_watches();
    relabel(&api, "c", "db").await;
    server.compact();
    server.clear_requests();
    match next_event(&mut events).await {
        Err(watcher::Error::WatchError(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected the 410 from the re-watch, got {other:?}"),
    }
    let mut relisted = Vec::new();
    loop {
        let event = summary(&next_event(&mut events).await.expect("no further errors"));
        let done = event == "InitDone";
        relisted.push(event);
        if done {
            break;
        }
    }
    assert_eq!(relisted, ["Init", "InitApply a", "InitApply c", "InitDone"]);
    let verbs: Vec<_> = server.requests().iter().map(|r| r.verb.as_str()).collect();
    assert_eq!(
        &verbs[..2],
        ["watch", "list"],
        "re-watch, then re-list: {verbs:?}"
    );

    relabel(&api, "c", "web").await;
    expect_events(&mut events, &["Apply c web"]).await;
}

#[tokio::test]
async fn runtime_watcher_with_streaming_lists() {
    let (server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &config_map("b", "db"))
        .await
        .unwrap();
    let config = watcher::Config::default()
        .streaming_lists()
        .labels("tier=web");
    let mut events = watcher::watcher(api.clone(), config).boxed();
    expect_events(&mut events, &["Init", "InitApply a", "InitDone"]).await;
    relabel(&api, "b", "web").await;
    expect_events(&mut events, &["Apply b web"]).await;
    let first = &server.requests()[2];
    assert!(
        first.query.contains("sendInitialEvents=true"),
        "{}",
        first.query
    );
}
