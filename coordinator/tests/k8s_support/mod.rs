//! Shared by the `k8s_*` tests: the API server fake, the real kube-rs client the coordinator
//! builds for it (through a kubeconfig file, as `--kubeconfig` would), and the RBAC check of
//! every request the shell made.

#![allow(dead_code, unreachable_pub)]

pub mod agent;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use aistor_coordinator::k8s::{self, ClientSource, Cluster, KubernetesConfig, LeaseConfig};
use aistor_kube_fake::FakeApiServer;

/// Generous: CI machines are loaded; tests poll until this passes, never sleep-then-assert.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const NAMESPACE: &str = "aistor-system";

/// Who the coordinator is to the API server in a cluster (its ServiceAccount).
pub const COORDINATOR_USER: &str = "system:serviceaccount:aistor-system:aistor-coordinator";

/// `k8s::API_CALLS` as the RBAC rules bound to the coordinator: cluster-wide calls through the
/// ClusterRoleBinding, own-namespace calls through the RoleBinding in `NAMESPACE`.
pub fn granted_rules() -> Vec<aistor_kube_fake::Rule> {
    k8s::API_CALLS
        .iter()
        .map(|call| match call.scope {
            k8s::Scope::Cluster => {
                aistor_kube_fake::Rule::cluster(call.group, call.resource, call.verbs)
            }
            k8s::Scope::OwnNamespace => {
                aistor_kube_fake::Rule::namespaced(NAMESPACE, call.group, call.resource, call.verbs)
            }
        })
        .collect()
}

pub struct Fake {
    pub server: FakeApiServer,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

pub async fn start() -> Fake {
    let server = FakeApiServer::start()
        .await
        .expect("the fake API server binds loopback");
    let dir = tempfile::tempdir().expect("a temp dir");
    let kubeconfig = server
        .write_kubeconfig(dir.path(), NAMESPACE)
        .expect("write the kubeconfig");
    // The coordinator's ServiceAccount holds exactly what `k8s::API_CALLS` lists (which the
    // deploy RBAC equals: `deploy_manifests.rs`): a call the list misses is refused 403 here.
    server.enforce_rbac(COORDINATOR_USER, granted_rules());
    Fake {
        server,
        kubeconfig,
        _dir: dir,
    }
}

impl Fake {
    /// Serves aistor's custom resources as `deploy/base/crds` defines them (what
    /// `kubectl apply -k deploy/base` installs on a real cluster).
    pub fn install_crds(&self) {
        for (_, crd) in aistor_coordinator::k8s::crd::definitions() {
            let spec = &crd.spec;
            for version in spec.versions.iter().filter(|v| v.served) {
                let mut resource = aistor_kube_fake::Resource::new(
                    &spec.group,
                    &version.name,
                    &spec.names.kind,
                    &spec.names.plural,
                    spec.scope == "Namespaced",
                );
                if version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some())
                {
                    resource = resource.with_status();
                }
                self.server.register(resource);
            }
        }
    }

    pub fn config(&self, identity: &str) -> KubernetesConfig {
        KubernetesConfig {
            source: ClientSource::Kubeconfig(self.kubeconfig.clone()),
            namespace: None,
            identity: identity.to_owned(),
            lease: LeaseConfig::default(),
        }
    }

    /// A projected token of the agents' ServiceAccount, bound to a pod on `node` and
    /// meant for aistor: what the DaemonSet mounts. The fake's TokenReview knows it.
    pub fn agent_token(&self, node: &str) -> String {
        let token = format!("agent-token-for-{node}");
        self.server.add_token(
            &token,
            aistor_kube_fake::TokenInfo {
                username: "system:serviceaccount:aistor-node:aistor-agent".into(),
                audiences: vec!["aistor".into()],
                extra: [(
                    aistor_coordinator::identity::NODE_NAME_EXTRA.to_owned(),
                    vec![node.to_owned()],
                )]
                .into(),
                groups: Vec::new(),
            },
        );
        token
    }

    /// The coordinator's own client, built as `run` builds it.
    pub async fn connect(&self, identity: &str) -> Cluster {
        k8s::connect(&self.config(identity))
            .await
            .expect("connect to the fake")
    }

    /// Every request the fake served was one `k8s::API_CALLS` lists (so RBAC grants it).
    /// Discovery and `/version` are not resource requests and need no RBAC.
    pub fn assert_every_call_is_listed(&self) {
        let requests = self.server.requests();
        assert!(!requests.is_empty(), "the shell made no request at all");
        let unlisted: Vec<String> = requests
            .iter()
            .filter(|r| !r.resource.is_empty())
            .filter(|r| {
                !k8s::calls::permitted(
                    &r.group,
                    &r.resource,
                    r.subresource.as_deref(),
                    r.verb.as_str(),
                    r.namespace.as_deref(),
                    NAMESPACE,
                )
            })
            .map(|r| format!("{} {} {} ({})", r.verb.as_str(), r.method, r.path, r.query))
            .collect();
        assert!(
            unlisted.is_empty(),
            "requests not in k8s::API_CALLS (RBAC would refuse them): {unlisted:#?}"
        );
    }
}

/// Waits (up to PATIENCE) for `fut`, failing the test with `what` on timeout.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {PATIENCE:?} waiting for {what}"))
}

/// Polls `check` until it holds (up to PATIENCE).
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
