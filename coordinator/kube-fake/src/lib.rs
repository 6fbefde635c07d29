//! A Kubernetes API server fake for tests (test support only, never shipped).
//!
//! Real HTTP/1.1 on `127.0.0.1:0`, reached by the real kube-rs client through a generated
//! kubeconfig. Objects are JSON values kept in memory; the behaviour follows the Kubernetes API
//! conventions (resourceVersions, watch events, `Status` errors with their reasons,
//! subresources), not any one client's expectations. Where it simplifies, the module that owns
//! the behaviour says how.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = aistor_kube_fake::FakeApiServer::start().await?;
//! let yaml = server.kubeconfig_yaml("default");
//! // kube::Config::from_custom_kubeconfig(serde_yaml::from_str(&yaml)?, &Default::default())
//! # let _ = yaml; Ok(()) }
//! ```

mod apply;
mod authn;
mod discovery;
mod http;
mod kubeconfig;
mod metadata;
mod patch;
mod rbac;
mod record;
mod resource;
mod route;
mod selector;
mod status;
mod store;
mod subresource;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use authn::TokenInfo;
pub use rbac::Rule;
pub use record::{RecordedRequest, RequestMatcher, Verb};
pub use resource::Resource;

/// How long `shutdown` lets in-flight requests finish before stopping the server anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running fake API server. Clones share it; it stops when the last clone drops or on
/// [`FakeApiServer::shutdown`].
#[derive(Clone, Debug)]
pub struct FakeApiServer {
    handle: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    shared: Arc<http::Shared>,
    url: String,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.store().close_watches();
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

impl FakeApiServer {
    /// Binds `127.0.0.1:0` and serves the built-in resources.
    pub async fn start() -> std::io::Result<FakeApiServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(http::Shared::new(address.to_string()));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = http::router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                eprintln!("aistor-kube-fake: server on {address} failed: {error}");
            }
        });
        Ok(FakeApiServer {
            handle: Arc::new(Handle {
                shared,
                url: format!("http://{address}"),
                stop: Mutex::new(Some(stop)),
                task: Mutex::new(Some(task)),
            }),
        })
    }

    fn shared(&self) -> &http::Shared {
        &self.handle.shared
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.handle.url.clone()
    }

    /// A kubeconfig whose cluster, user and context are named `aistor-fake`, with `namespace`
    /// as the context's default namespace.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        kubeconfig::yaml(&self.handle.url, namespace)
    }

    /// Writes `kubeconfig` into `dir` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path, namespace: &str) -> std::io::Result<PathBuf> {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig_yaml(namespace)).map_err(|e| {
            std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
        })?;
        Ok(path)
    }

    /// Serves another resource type (a CRD's), or replaces the definition of a known one.
    pub fn register(&self, resource: Resource) {
        self.shared().store().registry.register(resource);
    }

    /// Stores an object as if it had been created (uid, resourceVersion, creationTimestamp,
    /// generation are set; watches see ADDED), keeping its status. A namespaced object without
    /// a namespace goes to `default`.
    ///
    /// # Panics
    /// When the object is invalid or already exists: seeding is test setup, and a bad seed is
    /// a bug in the test.
    pub fn insert(&self, object: Value) -> Value {
        match self.shared().store().insert(object) {
            Ok(stored) => stored,
            Err(error) => panic!("FakeApiServer::insert: {}", error.message),
        }
    }

    /// Replaces the status of an object, as its controller or the kubelet would through the
    /// `status` subresource (watches see MODIFIED; resourceVersion moves on).
    ///
    /// # Panics
    /// When the kind is not served or the object does not exist: test setup bugs.
    pub fn set_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status: Value,
    ) -> Value {
        let mut store = self.shared().store();
        let resource = store
            .registry
            .by_kind(api_version, kind)
            .cloned()
            .unwrap_or_else(|| panic!("FakeApiServer::set_status: no {api_version} {kind}"));
        let options = store::WriteOptions {
            dry_run: false,
            manager: "aistor-kube-fake",
        };
        let mut body = serde_json::json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": name},
            "status": status,
        });
        if let Some(namespace) = namespace {
            body["metadata"]["namespace"] = namespace.into();
        }
        match store.replace(
            &resource,
            namespace,
            name,
            body,
            store::Target::Status,
            options,
        ) {
            Ok(stored) => stored,
            Err(error) => panic!("FakeApiServer::set_status: {}", error.message),
        }
    }

    /// One object by apiVersion (`v1`, `apps/v1`), kind and name.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let store = self.shared().store();
        let resource = store.registry.by_kind(api_version, kind)?.clone();
        store.get(&resource, namespace, name).ok()
    }

    /// Every object of a kind, in one namespace or (None) all, ordered by namespace and name.
    pub fn objects(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let store = self.shared().store();
        match store.registry.by_kind(api_version, kind).cloned() {
            Some(resource) => store.objects_of(&resource, namespace),
            None => Vec::new(),
        }
    }

    /// Every request served so far, in order (the most recent 100,000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared().recorder.requests()
    }

    pub fn clear_requests(&self) {
        self.shared().recorder.clear();
    }

    /// The next request that `matcher` matches is answered with a `Status` error of this code
    /// (and the reason the real server uses for it). Several calls queue several failures.
    pub fn fail_next(&self, matcher: RequestMatcher, status: u16) {
        self.shared().recorder.fail_next(matcher, status);
    }

    /// From now on, authorizes every request as Kubernetes' RBAC authorizer would for `user`
    /// bound to `rules`: a resource request no rule allows is answered 403 Forbidden (a
    /// `Status` with reason `Forbidden` and the real server's message) before anything else
    /// happens; discovery, `/version` and health paths stay open (see [`Rule`]). Test setup
    /// through [`FakeApiServer::insert`] is not a request and is not checked.
    /// Makes TokenReviews of `token` answer `info` (any other token is refused).
    pub fn add_token(&self, token: &str, info: TokenInfo) {
        self.handle
            .shared
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(token, info);
    }

    /// Lets SubjectAccessReviews allow `verbs` on `group`/`resource` to `subject` (a
    /// user or a group), as a ClusterRole bound to it would.
    pub fn grant(&self, subject: &str, group: &str, resource: &str, verbs: &[&str]) {
        self.handle
            .shared
            .grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(subject, group, resource, verbs);
    }

    pub fn enforce_rbac(&self, user: &str, rules: Vec<Rule>) {
        *self
            .shared()
            .policy
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(rbac::Policy {
            user: user.to_owned(),
            rules,
        });
    }

    /// Ends every open watch; clients must watch again.
    pub fn close_watches(&self) {
        self.shared().store().close_watches();
    }

    /// Forgets the event history: a watch from an older resourceVersion gets 410 Gone (reason
    /// Expired), and so does a list continued with an older continue token.
    pub fn compact(&self) {
        self.shared().store().compact();
    }

    /// Stops serving: open watches end, in-flight requests get a few seconds to finish.
    pub async fn shutdown(self) {
        self.handle.shared.store().close_watches();
        let stop = self
            .handle
            .stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let task = self
            .handle
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut task) = task
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}
