//! Shared by the integration tests: a fake server and a real kube client pointed at it.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use aistor_kube_fake::FakeApiServer;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Generous: CI machines are loaded; tests poll until this passes, never sleep-then-assert.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub async fn start(namespace: &str) -> (FakeApiServer, kube::Client) {
    let server = FakeApiServer::start()
        .await
        .expect("the fake API server binds loopback");
    let client = client_for(&server, namespace).await;
    (server, client)
}

/// A real kube-rs client built from the server's generated kubeconfig.
pub async fn client_for(server: &FakeApiServer, namespace: &str) -> kube::Client {
    let kubeconfig =
        Kubeconfig::from_yaml(&server.kubeconfig_yaml(namespace)).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig loads");
    assert_eq!(config.default_namespace, namespace);
    kube::Client::try_from(config).expect("client builds")
}

/// A client without kube's default retry of 429/503/504 (up to 15 attempts with exponential
/// backoff), for tests that want to see such an answer rather than wait out the retries.
pub async fn client_without_retry(server: &FakeApiServer, namespace: &str) -> kube::Client {
    let kubeconfig =
        Kubeconfig::from_yaml(&server.kubeconfig_yaml(namespace)).expect("kubeconfig parses");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig loads");
    config.default_retry = false;
    kube::Client::try_from(config).expect("client builds")
}

/// The API error inside a kube error, or a panic naming what came back instead.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Waits (up to PATIENCE) for `fut`, failing the test with `what` on timeout.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
