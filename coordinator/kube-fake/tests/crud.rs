//! Create, read, update, delete, patches, selectors and paging through the real kube client.

mod support;

use std::collections::BTreeMap;

use aistor_kube_fake::{RequestMatcher, Verb};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::ObjectMeta;
use serde_json::json;
use support::{api_error, start};

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

fn rv(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .expect("resourceVersion set")
        .parse()
        .expect("integer resourceVersion")
}

#[tokio::test]
async fn create_get_update_delete_round_trip() {
    let (server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);

    let created = api
        .create(&PostParams::default(), &config_map("one", &[]))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("team"));
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));

    let fetched = api.get("one").await.unwrap();
    assert_eq!(fetched.metadata.uid, meta.uid);
    assert_eq!(fetched.data, created.data);

    let mut changed = fetched.clone();
    changed.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let updated = api
        .replace("one", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert!(
        rv(&updated.metadata) > rv(&created.metadata),
        "every write bumps the resourceVersion"
    );
    assert_eq!(
        updated.metadata.generation,
        Some(2),
        "a data change is a new generation"
    );
    assert_eq!(updated.metadata.uid, meta.uid);

    // Same content again: a no-op write keeps the resourceVersion, as the real server does.
    let again = api
        .replace("one", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        updated.metadata.resource_version
    );

    let deleted = api.delete("one", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_left(), "delete returns the object");
    let gone = api_error(api.get("one").await);
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(gone.message, "configmaps \"one\" not found");
    assert!(
        server
            .object("v1", "ConfigMap", Some("team"), "one")
            .is_none()
    );
}

#[tokio::test]
async fn conflicts_and_validation_are_status_errors() {
    let (_server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let created = api
        .create(&PostParams::default(), &config_map("one", &[]))
        .await
        .unwrap();

    let exists = api_error(
        api.create(&PostParams::default(), &config_map("one", &[]))
            .await,
    );
    assert_eq!(
        (exists.code, exists.reason.as_str()),
        (409, "AlreadyExists")
    );
    let details = exists.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("one", "configmaps")
    );

    // A write with the current resourceVersion succeeds, the same one again is stale.
    let mut first = created.clone();
    first.data = Some(BTreeMap::from([("k".to_string(), "first".to_string())]));
    api.replace("one", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut second = created.clone();
    second.data = Some(BTreeMap::from([("k".to_string(), "second".to_string())]));
    let stale = api_error(api.replace("one", &PostParams::default(), &second).await);
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert!(
        stale.message.contains("the object has been modified"),
        "{}",
        stale.message
    );
    assert_eq!(api.get("one").await.unwrap().data.unwrap()["k"], "first");

    let nameless = ConfigMap::default();
    let invalid = api_error(api.create(&PostParams::default(), &nameless).await);
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert!(
        invalid.message.contains("metadata.name"),
        "{}",
        invalid.message
    );

    let mut elsewhere = config_map("two", &[]);
    elsewhere.metadata.namespace = Some("other".into());
    let mismatch = api_error(api.create(&PostParams::default(), &elsewhere).await);
    assert_eq!(
        (mismatch.code, mismatch.reason.as_str()),
        (400, "BadRequest")
    );

    let generated = ConfigMap {
        metadata: ObjectMeta {
            generate_name: Some("gen-".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let made = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let missing = api_error(
        api.replace("nope", &PostParams::default(), &config_map("nope", &[]))
            .await,
    );
    assert_eq!(missing.code, 404);
}

#[tokio::test]
async fn delete_preconditions_and_finalizers() {
    let (_server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let created = api
        .create(&PostParams::default(), &config_map("one", &[]))
        .await
        .unwrap();

    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let conflict = api_error(api.delete("one", &wrong_uid).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("Precondition failed: UID"),
        "{}",
        conflict.message
    );
    let wrong_rv = DeleteParams {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        }),
        ..Default::default()
    };
    assert_eq!(api_error(api.delete("one", &wrong_rv).await).code, 409);
    let right = DeleteParams {
        preconditions: Some(Preconditions {
            uid: created.metadata.uid.clone(),
            resource_version: created.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    api.delete("one", &right).await.unwrap();
    assert_eq!(
        api_error(api.delete("one", &DeleteParams::default()).await).code,
        404
    );

    let mut held = config_map("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    let pending = api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = pending.left().expect("the object, still present");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let still = api.get("held").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    let release = json!({"metadata": {"finalizers": null}});
    api.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    assert_eq!(
        api_error(api.get("held").await).code,
        404,
        "removing the last finalizer completes the delete"
    );
}

#[tokio::test]
async fn status_subresource_owns_status() {
    let (_server, client) = start("team").await;
    let api: Api<Deployment> = Api::default_namespaced(client);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"replicas": 99}
    }))
    .unwrap();
    let created = api
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    assert!(
        created.status.is_none(),
        "status is not set through the main resource"
    );

    let status = json!({"status": {"replicas": 2, "readyReplicas": 1}});
    let with_status = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(with_status.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status writes keep the generation"
    );

    let mut spec_change = with_status.clone();
    spec_change.spec.replicas = Some(3);
    spec_change.status.as_mut().unwrap().ready_replicas = Some(0);
    let replaced = api
        .replace("web", &PostParams::default(), &spec_change)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(
        replaced.status.unwrap().ready_replicas,
        Some(1),
        "main writes ignore .status"
    );

    let label = json!({"metadata": {"labels": {"x": "y"}}, "spec": {"replicas": 5}});
    let via_status = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    assert_eq!(
        via_status.spec.replicas,
        Some(3),
        "status writes ignore everything else"
    );
    assert!(via_status.metadata.labels.is_none());
}

#[tokio::test]
async fn patch_kinds() {
    let (_server, client) = start("team").await;
    let api: Api<Pod> = Api::default_namespaced(client);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
        "spec": {"containers": [{"name": "main", "image": "one"}, {"name": "side", "image": "two"}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &pod).await.unwrap();
    let pp = PatchParams::default();

    let merge = json!({"metadata": {"labels": {"b": null, "c": "3"}}});
    let merged = api.patch("p", &pp, &Patch::Merge(&merge)).await.unwrap();
    let labels = merged.metadata.labels.unwrap();
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["a", "c"]);

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "10"}
    ]))
    .unwrap();
    let patched = api.patch("p", &pp, &Patch::<()>::Json(ops)).await.unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["a"], "10");
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/metadata/labels/a", "value": "1"}]))
            .unwrap();
    assert_eq!(
        api_error(api.patch("p", &pp, &Patch::<()>::Json(failing)).await).code,
        422
    );

    // Strategic merge: containers merge by name (the merge merge-patch would replace the list).
    let strategic = json!({"spec": {"containers": [{"name": "side", "image": "three"}]}});
    let merged = api
        .patch("p", &pp, &Patch::Strategic(&strategic))
        .await
        .unwrap();
    let images: Vec<_> = merged
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| (c.name, c.image.unwrap()))
        .collect();
    assert_eq!(
        images,
        [
            ("main".to_string(), "one".to_string()),
            ("side".to_string(), "three".to_string())
        ]
    );

    let stale = json!({"metadata": {"resourceVersion": "1", "labels": {"z": "z"}}});
    let conflict = api_error(api.patch("p", &pp, &Patch::Merge(&stale)).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        api_error(api.patch("missing", &pp, &Patch::Merge(&merge)).await).code,
        404
    );
}

#[tokio::test]
async fn server_side_apply_creates_updates_and_conflicts() {
    let (_server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}});
    let created = api
        .patch("cfg", &PatchParams::apply("alice"), &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(created.data.as_ref().unwrap().len(), 2);
    assert!(created.metadata.uid.is_some());

    // Alice stops specifying b: it goes; she still owns a.
    let smaller = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let applied = api
        .patch("cfg", &PatchParams::apply("alice"), &Patch::Apply(&smaller))
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap().keys().collect::<Vec<_>>(), ["a"]);

    let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "2"}});
    let conflict = api_error(
        api.patch("cfg", &PatchParams::apply("bob"), &Patch::Apply(&bob))
            .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("conflict with \"alice\""),
        "{}",
        conflict.message
    );
    let forced = api
        .patch(
            "cfg",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&bob),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "2");

    // The raw request without a fieldManager (kube refuses to build one, so go below it).
    let request = http_patch_without_manager(&api, &config);
    let response = api_error(api_raw(&api, request).await);
    assert_eq!((response.code, response.reason.as_str()), (422, "Invalid"));
}

fn http_patch_without_manager(
    _api: &Api<ConfigMap>,
    config: &serde_json::Value,
) -> axum::http::Request<Vec<u8>> {
    axum::http::Request::patch("/api/v1/namespaces/team/configmaps/cfg")
        .header("content-type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(config).unwrap())
        .unwrap()
}

async fn api_raw(
    api: &Api<ConfigMap>,
    request: axum::http::Request<Vec<u8>>,
) -> Result<ConfigMap, kube::Error> {
    let client: kube::Client = api.clone().into_client();
    client.request::<ConfigMap>(request).await
}

#[tokio::test]
async fn selectors_and_paging() {
    let (_server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        api.create(
            &PostParams::default(),
            &config_map(&format!("cm-{i}"), &[("tier", tier), ("n", &i.to_string())]),
        )
        .await
        .unwrap();
    }
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "other");
    other
        .create(
            &PostParams::default(),
            &config_map("cm-x", &[("tier", "even")]),
        )
        .await
        .unwrap();

    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect()
    };
    let cases: [(&str, &[&str]); 7] = [
        ("tier=even", &["cm-0", "cm-2", "cm-4", "cm-6"]),
        ("tier==odd", &["cm-1", "cm-3", "cm-5"]),
        ("tier!=even", &["cm-1", "cm-3", "cm-5"]),
        ("n in (1,2)", &["cm-1", "cm-2"]),
        ("n notin (0,1,2,3,4),tier=even", &["cm-6"]),
        (
            "n",
            &["cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "cm-5", "cm-6"],
        ),
        ("!n", &[]),
    ];
    for (selector, expected) in cases {
        let got = names(
            api.list(&ListParams::default().labels(selector))
                .await
                .unwrap(),
        );
        assert_eq!(got, expected, "labelSelector {selector}");
    }
    let by_name = names(
        api.list(&ListParams::default().fields("metadata.name=cm-3"))
            .await
            .unwrap(),
    );
    assert_eq!(by_name, ["cm-3"]);
    let all: Api<ConfigMap> = Api::all(client.clone());
    let everywhere = names(
        all.list(&ListParams::default().labels("tier=even"))
            .await
            .unwrap(),
    );
    assert_eq!(
        everywhere,
        ["cm-x", "cm-0", "cm-2", "cm-4", "cm-6"],
        "ordered by namespace, then name"
    );

    for bad in ["n in (1", "tier ~ x"] {
        let error = api_error(api.list(&ListParams::default().labels(bad)).await);
        assert_eq!(
            (error.code, error.reason.as_str()),
            (400, "BadRequest"),
            "{bad}"
        );
    }
    let unsupported = api_error(api.list(&ListParams::default().fields("data.k=v")).await);
    assert_eq!(unsupported.code, 400);
    assert!(
        unsupported.message.contains("field label not supported"),
        "{}",
        unsupported.message
    );

    // Paging: three at a time; every page carries the first page's resourceVersion.
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(3);
    let first = api.list(&params).await.unwrap();
    let list_rv = first.metadata.resource_version.clone();
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let mut page = first;
    loop {
        assert_eq!(page.metadata.resource_version, list_rv);
        assert!(page.items.len() <= 3);
        let token = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        seen.extend(names(page));
        let Some(token) = token else { break };
        params = params.continue_token(&token);
        page = api.list(&params).await.unwrap();
    }
    assert_eq!(seen, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());

    let filtered = api
        .list(&ListParams::default().labels("tier=odd").limit(2))
        .await
        .unwrap();
    assert_eq!(names(filtered.clone()), ["cm-1", "cm-3"]);
    let token = filtered.metadata.continue_.expect("more odd ones");
    let rest = api
        .list(
            &ListParams::default()
                .labels("tier=odd")
                .limit(2)
                .continue_token(&token),
        )
        .await
        .unwrap();
    assert_eq!(names(rest.clone()), ["cm-5"]);
    assert!(rest.metadata.continue_.is_none_or(|c| c.is_empty()));

    // A continue token older than the kept history is 410 Expired.
    api.create(&PostParams::default(), &config_map("cm-late", &[]))
        .await
        .unwrap();
    _server.compact();
    let expired = api_error(
        api.list(&ListParams::default().limit(2).continue_token(&token))
            .await,
    );
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn injected_failures_and_request_log() {
    let (server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &config_map("one", &[]))
        .await
        .unwrap();
    server.clear_requests();

    let get_one = || RequestMatcher {
        verb: Some(Verb::Get),
        resource: Some("configmaps".into()),
        name: Some("one".into()),
        ..Default::default()
    };
    server.fail_next(get_one(), 500);
    api.list(&ListParams::default())
        .await
        .expect("a list does not match a get matcher");
    let failed = api_error(api.get("one").await);
    assert_eq!(
        (failed.code, failed.reason.as_str()),
        (500, "InternalError")
    );
    api.get("one")
        .await
        .expect("an injected failure is used once");
    // kube 5 retries 429/503/504 by itself: the caller sees success, the log shows both.
    server.fail_next(get_one(), 503);
    api.get("one").await.expect("kube retries a 503");

    let requests = server.requests();
    let summary: Vec<_> = requests
        .iter()
        .map(|r| (r.verb, r.name.clone(), r.status))
        .collect();
    let one = || Some("one".to_string());
    assert_eq!(
        summary,
        [
            (Verb::List, None, 200),
            (Verb::Get, one(), 500),
            (Verb::Get, one(), 200),
            (Verb::Get, one(), 503),
            (Verb::Get, one(), 200)
        ]
    );
    let get = &requests[2];
    assert_eq!(
        (
            get.method.as_str(),
            get.path.as_str(),
            get.group.as_str(),
            get.version.as_str(),
            get.resource.as_str(),
            get.namespace.as_deref()
        ),
        (
            "GET",
            "/api/v1/namespaces/team/configmaps/one",
            "",
            "v1",
            "configmaps",
            Some("team")
        )
    );

    // Discovery and version work for the real client.
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    let groups = client.list_api_groups().await.unwrap();
    assert!(
        groups
            .groups
            .iter()
            .any(|g| g.name == "coordination.k8s.io")
    );
    let core = client.list_core_api_resources("v1").await.unwrap();
    assert!(core.resources.iter().any(|r| r.name == "pods/eviction"));
    let nodes: Api<Node> = Api::all(client.clone());
    assert!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_paths_and_oversized_bodies() {
    let (server, client) = start("team").await;
    let unknown = axum::http::Request::get("/apis/nothing.example/v1/things")
        .body(Vec::new())
        .unwrap();
    let error = api_error(client.request::<serde_json::Value>(unknown).await);
    assert_eq!((error.code, error.reason.as_str()), (404, "NotFound"));

    let mut big = config_map("big", &[]);
    big.data = Some(BTreeMap::from([(
        "blob".to_string(),
        "x".repeat(4 * 1024 * 1024),
    )]));
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let too_large = api_error(api.create(&PostParams::default(), &big).await);
    assert_eq!(too_large.code, 413);
    assert!(
        server
            .object("v1", "ConfigMap", Some("team"), "big")
            .is_none()
    );

    let wrong_method = axum::http::Request::post("/api/v1/namespaces/team/configmaps/x")
        .body(b"{}".to_vec())
        .unwrap();
    assert_eq!(
        api_error(client.request::<serde_json::Value>(wrong_method).await).code,
        405
    );
}
