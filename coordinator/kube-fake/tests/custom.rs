//! Registered custom resources (CRDs), discovery, delete-collection and the kubeconfig file.

mod support;

use aistor_kube_fake::Resource;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use serde_json::json;
use support::{api_error, start};

fn widget_type() -> ApiResource {
    ApiResource {
        group: "aistor.io".into(),
        version: "v1alpha1".into(),
        api_version: "aistor.io/v1alpha1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    }
}

fn widget(name: &str, replicas: i64) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "aistor.io/v1alpha1", "kind": "Widget",
        "metadata": {"name": name, "labels": {"kind": "widget"}},
        "spec": {"replicas": replicas, "size": "large"}
    }))
    .unwrap()
}

#[tokio::test]
async fn custom_resources_behave_like_built_ins() {
    let (server, client) = start("team").await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "team", &widget_type());
    let unknown = api_error(widgets.list(&ListParams::default()).await);
    assert_eq!(unknown.code, 404, "not served before it is registered");

    server.register(
        Resource::new("aistor.io", "v1alpha1", "Widget", "widgets", true)
            .with_status()
            .with_scale(),
    );
    let created = widgets
        .create(&PostParams::default(), &widget("w1", 2))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let status = json!({"status": {"replicas": 2, "selector": "kind=widget", "phase": "Ready"}});
    let with_status = widgets
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["phase"], "Ready");
    assert_eq!(with_status.metadata.generation, Some(1));

    let scale = widgets.get_scale("w1").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(
        scale.status.unwrap().selector.as_deref(),
        Some("kind=widget")
    );
    let patch = json!({"spec": {"replicas": 4}});
    widgets
        .patch_scale("w1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let stored = server
        .object("aistor.io/v1alpha1", "Widget", Some("team"), "w1")
        .unwrap();
    assert_eq!(stored["spec"]["replicas"], 4);
    assert_eq!(stored["metadata"]["generation"], 2);
    assert_eq!(
        stored["status"]["phase"], "Ready",
        "a spec write keeps the status"
    );

    // Discovery finds the registered group and its subresources.
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let group = discovery
        .get("aistor.io")
        .expect("the custom group is discovered");
    let (resource, caps) = group
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.kind == "Widget")
        .expect("Widget discovered");
    assert_eq!(resource.plural, "widgets");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "widgets/scale" || s.plural == "scale")
    );
    assert!(discovery.get("apps").is_some());

    // Delete a collection by label; objects elsewhere stay.
    widgets
        .create(&PostParams::default(), &widget("w2", 1))
        .await
        .unwrap();
    let mut other = widget("keep", 1);
    other.metadata.labels = None;
    widgets
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    let deleted = widgets
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("kind=widget"),
        )
        .await
        .unwrap();
    let names: Vec<_> = deleted
        .left()
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["w1", "w2"]);
    let left: Vec<_> = server
        .objects("aistor.io/v1alpha1", "Widget", None)
        .iter()
        .map(|o| o["metadata"]["name"].clone())
        .collect();
    assert_eq!(left, [json!("keep")]);
}

#[tokio::test]
async fn written_kubeconfig_reaches_the_server() {
    let (server, _) = start("team").await;
    let dir = tempfile::tempdir().unwrap();
    let path = server.write_kubeconfig(dir.path(), "elsewhere").unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    assert_eq!(kubeconfig.current_context.as_deref(), Some("aistor-fake"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "elsewhere");
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        server.url()
    );
    let client = kube::Client::try_from(config).unwrap();
    assert_eq!(
        client.apiserver_version().await.unwrap().git_version,
        "v1.37.0-aistor-fake"
    );
}

#[tokio::test]
async fn shutdown_ends_watches_and_stops_serving() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::WatchParams;

    let (server, client) = start("team").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut watch = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let url = server.url();
    server.shutdown().await;
    assert!(
        support::within("the watch to end", watch.next())
            .await
            .is_none()
    );
    let refused = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await;
    assert!(refused.is_err(), "nothing listens after shutdown");
}
