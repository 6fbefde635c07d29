//! Containers from containerd's gRPC API (`containerd-client`, tonic 0.14).
//!
//! [`Containerd::list`] asks containerd for every container and task in the configured
//! namespaces (`k8s.io` by default, the one the CRI plugin uses), skips pod sandboxes
//! (label `io.cri-containerd.kind=sandbox`), takes the pod identity from the labels the
//! CRI plugin sets, and maps each running task's pid to its cgroup through
//! `/proc/<pid>/cgroup` read under the host root.
//!
//! ## Which cgroup line
//!
//! On a cgroup v2 host `/proc/<pid>/cgroup` has the one line `0::<path>`. On a v1 or hybrid
//! host it has a line per hierarchy: the `0::` line wins if its path is not `/` (hybrid hosts
//! where the runtime also joins the unified hierarchy), else the line of the `memory`
//! controller, else `cpu`, else `cpuacct`. See [`parse_proc_cgroup`].
//!
//! ## Cgroup namespaces
//!
//! The kernel writes the path relative to the cgroup namespace of the process *reading* the
//! file. An agent in its own cgroup namespace (the default for pods on cgroup v2) therefore
//! sees another pod's container as `/../../kubepods-besteffort.slice/…/cri-containerd-<id>.scope`:
//! `n` leading `/..` components climb from the agent's namespace root to a common
//! ancestor, and the rest is the container's path below that ancestor. The host's cgroup
//! filesystem mounted under the host root still shows the whole tree, so the path relative
//! to the real cgroup root is `<ancestor>/<rest>`. The ancestor is unknown to the agent;
//! the rule used here:
//!
//! 1. strip the `n` leading `/..` components; the rest ends in the container's own cgroup
//!    directory, named after its id (`cri-containerd-<id>.scope` with the systemd driver,
//!    `<id>` with cgroupfs), so it occurs once in the tree;
//! 2. look for the shallowest directory `A` under the hierarchy's mount (breadth first, at
//!    most [`MAX_PREFIX_DEPTH`] levels deep and [`MAX_PREFIX_SCAN`] directories) such that
//!    `A/<rest>` is a directory; the cgroup path is `A/<rest>`;
//! 3. remember `A` per (hierarchy, `n`): every container seen with the same `n` shares the
//!    same ancestor, so later containers cost one `stat`.
//!
//! A path that is not found this way is reported as `None` (the pod is still listed), never
//! guessed. `..` anywhere but at the start is rejected, so data from `/proc` cannot make
//! the agent read outside the cgroup filesystem.

use crate::source::HostFs;
use aistor_proto::v1::ContainerState;
use containerd_client::services::v1::{
    Container, GetContainerRequest, ListContainersRequest, ListTasksRequest, SubscribeRequest,
};
use containerd_client::types::Envelope;
use containerd_client::types::v1::{Process, Status};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;

/// containerd's default socket.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// The namespace the CRI plugin (Kubernetes) puts its containers in.
pub const DEFAULT_NAMESPACE: &str = "k8s.io";

/// Labels the CRI plugin sets on containers.
pub mod labels {
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
    /// `sandbox` for a pod's pause container, `container` for the others.
    pub const KIND: &str = "io.cri-containerd.kind";
    pub const KIND_SANDBOX: &str = "sandbox";
    /// How often the kubelet restarted this container name before this instance. The
    /// kubelet sets it as a CRI annotation (the OCI spec's annotations); a label of the same
    /// name is read first.
    pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
}

/// Event topics that change what [`Containerd::list`] returns.
pub const EVENT_TOPICS: [&str; 8] = [
    "/tasks/start",
    "/tasks/exit",
    "/tasks/delete",
    "/tasks/oom",
    "/tasks/paused",
    "/tasks/resumed",
    "/containers/create",
    "/containers/delete",
];

/// How deep below a hierarchy's mount the ancestor of a namespaced path is looked for.
pub const MAX_PREFIX_DEPTH: usize = 6;
/// How many directories that search visits at most.
pub const MAX_PREFIX_SCAN: usize = 20_000;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One container as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// containerd namespace, e.g. "k8s.io".
    pub runtime_namespace: String,
    /// Empty when not a Kubernetes container.
    pub pod_uid: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub container_name: String,
    pub image: String,
    /// Task pid (host pid namespace); `None` when no running task.
    pub pid: Option<u32>,
    /// Relative to the cgroup root, no leading '/', e.g.
    /// "kubepods.slice/.../cri-containerd-<id>.scope".
    pub cgroup_path: Option<String>,
    /// RUNNING / PAUSED / STOPPED (task status), UNSPECIFIED if unknown.
    pub state: ContainerState,
    /// How the container's task ended, when known: from its stopped task's status here,
    /// and from `/tasks/exit` events remembered by discovery once the task is deleted.
    pub exited: Option<Exited>,
    /// [`labels::RESTART_COUNT`], from the label or else the OCI spec's annotation.
    pub restart_count: Option<u32>,
    /// The cgroup its OCI spec names (`linux.cgroupsPath`), relative to the cgroup root,
    /// for containers without a running task: where it ran, which places an ended
    /// container in its pod. `None` for running ones (see `cgroup_path`) and when the spec
    /// names none or is unreadable.
    pub spec_cgroup_path: Option<String>,
}

/// How a container's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exited {
    /// As the kubelet reads it: containerd's `exit_status` (128 + signal for a signal) as
    /// an int32.
    pub exit_code: i32,
    pub finished_unix_nanos: u64,
}

/// containerd could not be asked; every message names the socket.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot connect to containerd at {socket}: {message}")]
    Connect { socket: String, message: String },
    #[error("containerd at {socket}: {call} in namespace {namespace:?} failed: {message}")]
    Call {
        socket: String,
        call: &'static str,
        namespace: String,
        message: String,
        /// containerd's gRPC code, so callers can tell "not found" from a failure.
        code: tonic::Code,
    },
    #[error("containerd at {socket}: {call} timed out after {timeout:?}")]
    Timeout {
        socket: String,
        call: &'static str,
        timeout: Duration,
    },
    #[error("containerd at {socket}: invalid namespace {namespace:?}")]
    Namespace { socket: String, namespace: String },
    #[error("containerd at {socket}: event stream ended")]
    StreamEnded { socket: String },
}

impl RuntimeError {
    /// The socket the failed call went to.
    pub fn socket(&self) -> &str {
        match self {
            Self::Connect { socket, .. }
            | Self::Call { socket, .. }
            | Self::Timeout { socket, .. }
            | Self::Namespace { socket, .. }
            | Self::StreamEnded { socket } => socket,
        }
    }

    /// containerd answered that the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Call {
                code: tonic::Code::NotFound,
                ..
            }
        )
    }
}

/// An event that should trigger a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    pub namespace: String,
    pub topic: String,
    /// What the event says happened to one container, where discovery keeps it.
    pub news: Option<ContainerNews>,
}

/// The part of an event's payload discovery remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerNews {
    /// `/tasks/exit` or `/tasks/delete` of a container's init process.
    Exited {
        container_id: String,
        exited: Exited,
    },
    /// `/containers/delete`.
    Deleted { container_id: String },
}

type Subscription = Result<tonic::Response<tonic::Streaming<Envelope>>, tonic::Status>;

/// A subscription to containerd's events, filtered to [`EVENT_TOPICS`] in the configured
/// namespaces.
///
/// containerd answers `Events.Subscribe` (response headers included) only with its first
/// event, so the call runs in its own task from [`Containerd::subscribe`] on: the
/// request is on the wire before the caller lists, and [`EventStream::next`] waits for
/// the answer.
pub struct EventStream {
    state: StreamState,
    namespaces: Vec<String>,
    socket: String,
}

enum StreamState {
    Waiting(tokio::task::JoinHandle<Subscription>),
    Open(Box<tonic::Streaming<Envelope>>),
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let StreamState::Waiting(call) = &self.state {
            call.abort();
        }
    }
}

impl EventStream {
    fn failed(&self, status: &tonic::Status) -> RuntimeError {
        RuntimeError::Call {
            socket: self.socket.clone(),
            call: "Events.Subscribe",
            namespace: self.namespaces.join(","),
            message: status_message(status),
            code: status.code(),
        }
    }

    /// The next relevant event; `Ok(None)` when containerd closed the stream.
    /// Cancel safe.
    pub async fn next(&mut self) -> Result<Option<RuntimeEvent>, RuntimeError> {
        loop {
            let message = match &mut self.state {
                StreamState::Waiting(call) => {
                    let answered = match call.await {
                        Ok(answered) => answered,
                        Err(e) => Err(tonic::Status::cancelled(e.to_string())),
                    };
                    match answered {
                        Ok(response) => {
                            self.state = StreamState::Open(Box::new(response.into_inner()));
                            continue;
                        }
                        Err(status) => return Err(self.failed(&status)),
                    }
                }
                StreamState::Open(stream) => stream.message().await,
            };
            let envelope = match message {
                Ok(Some(envelope)) => envelope,
                Ok(None) => return Ok(None),
                Err(status) => return Err(self.failed(&status)),
            };
            // The server filters already; check again so a server that ignores filters
            // cannot make us refresh on every image pull.
            if self.namespaces.contains(&envelope.namespace)
                && EVENT_TOPICS.contains(&envelope.topic.as_str())
            {
                let news = container_news(&envelope);
                return Ok(Some(RuntimeEvent {
                    namespace: envelope.namespace,
                    topic: envelope.topic,
                    news,
                }));
            }
        }
    }
}

/// One containerd connection (lazy: connects on first use, reconnects after errors),
/// shared by discovery and the local runtime.
#[derive(Debug)]
pub struct Connection {
    socket: PathBuf,
    channel: tokio::sync::Mutex<Option<Channel>>,
}

/// Container discovery over a [`Connection`].
pub struct Containerd {
    conn: Connection,
    namespaces: Vec<String>,
    fs: HostFs,
    resolver: Arc<CgroupResolver>,
    /// [`spec_facts`] per (namespace, container id): a container's spec does not change,
    /// so each is parsed once. Holds only the containers of the latest list.
    specs: Mutex<HashMap<(String, String), SpecFacts>>,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("socket", &self.conn.socket)
            .field("namespaces", &self.namespaces)
            .field("host_root", &self.fs.root())
            .finish_non_exhaustive()
    }
}

impl Containerd {
    pub fn new(socket: PathBuf, namespaces: Vec<String>, fs: crate::source::HostFs) -> Self {
        let namespaces = if namespaces.is_empty() {
            vec![DEFAULT_NAMESPACE.to_owned()]
        } else {
            namespaces
        };
        Self {
            conn: Connection::new(socket),
            namespaces,
            resolver: Arc::new(CgroupResolver::new(fs.clone())),
            fs,
            specs: Mutex::new(HashMap::new()),
        }
    }

    pub fn socket(&self) -> &Path {
        self.conn.socket()
    }

    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Drops the connection so that the next call reconnects.
    pub async fn disconnect(&self) {
        self.conn.forget().await;
    }
}

impl Connection {
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            channel: tokio::sync::Mutex::new(None),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn socket_name(&self) -> String {
        self.socket.display().to_string()
    }

    pub async fn channel(&self) -> Result<Channel, RuntimeError> {
        let mut guard = self.channel.lock().await;
        if let Some(channel) = guard.as_ref() {
            return Ok(channel.clone());
        }
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, containerd_client::connect(&self.socket)).await;
        let channel = match connected {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                return Err(RuntimeError::Connect {
                    socket: self.socket_name(),
                    message: error_chain(&e),
                });
            }
            Err(_) => {
                return Err(RuntimeError::Timeout {
                    socket: self.socket_name(),
                    call: "connect",
                    timeout: CONNECT_TIMEOUT,
                });
            }
        };
        *guard = Some(channel.clone());
        Ok(channel)
    }

    /// Drops the connection so that the next call reconnects.
    pub async fn forget(&self) {
        *self.channel.lock().await = None;
    }

    /// A request in containerd `namespace`.
    pub fn request<T>(
        &self,
        message: T,
        namespace: &str,
    ) -> Result<tonic::Request<T>, RuntimeError> {
        let mut request = tonic::Request::new(message);
        let value = tonic::metadata::MetadataValue::try_from(namespace).map_err(|_| {
            RuntimeError::Namespace {
                socket: self.socket_name(),
                namespace: namespace.to_owned(),
            }
        })?;
        // The header containerd reads the namespace from (containerd/pkg/namespaces/grpc.go).
        request.metadata_mut().insert("containerd-namespace", value);
        Ok(request)
    }

    /// The error of a call containerd answered with `status`.
    pub fn refused(
        &self,
        call: &'static str,
        namespace: &str,
        status: &tonic::Status,
    ) -> RuntimeError {
        RuntimeError::Call {
            socket: self.socket_name(),
            call,
            namespace: namespace.to_owned(),
            message: status_message(status),
            code: status.code(),
        }
    }

    /// Runs one call with a timeout; an error drops the connection (containerd may have
    /// restarted) so the next call reconnects.
    pub async fn call<F, T>(
        &self,
        call: &'static str,
        namespace: &str,
        fut: F,
    ) -> Result<T, RuntimeError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => {
                // A refused call (not found, already exists) says nothing about the link.
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
                ) {
                    self.forget().await;
                }
                Err(self.refused(call, namespace, &status))
            }
            Err(_) => {
                self.forget().await;
                Err(RuntimeError::Timeout {
                    socket: self.socket_name(),
                    call,
                    timeout: CALL_TIMEOUT,
                })
            }
        }
    }
}

impl Containerd {
    /// Every non-sandbox container with its task state, pid and cgroup path, sorted by
    /// (namespace, id).
    pub async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let channel = self.conn.channel().await?;
        let client = containerd_client::Client::from(channel);
        let mut found = Vec::new();
        let mut specs = std::mem::take(&mut *self.specs.lock().unwrap_or_else(|e| e.into_inner()));
        let mut kept = HashMap::new();
        for namespace in &self.namespaces {
            let containers = self
                .conn
                .call(
                    "Containers.List",
                    namespace,
                    client.containers().list(
                        self.conn
                            .request(ListContainersRequest::default(), namespace)?,
                    ),
                )
                .await?
                .containers;
            let tasks = self
                .conn
                .call(
                    "Tasks.List",
                    namespace,
                    client
                        .tasks()
                        .list(self.conn.request(ListTasksRequest::default(), namespace)?),
                )
                .await?
                .tasks;
            let tasks: HashMap<&str, &Process> = tasks
                .iter()
                .map(|t| {
                    let id = if t.container_id.is_empty() {
                        t.id.as_str()
                    } else {
                        t.container_id.as_str()
                    };
                    (id, t)
                })
                .collect();
            for container in &containers {
                if let Some(mut info) = container_info(namespace, container) {
                    apply_task(&mut info, tasks.get(container.id.as_str()).copied());
                    let key = (namespace.clone(), container.id.clone());
                    let facts = specs.remove(&key).unwrap_or_else(|| spec_facts(container));
                    info.restart_count = info.restart_count.or(facts.restart_count);
                    if info.pid.is_none() {
                        info.spec_cgroup_path.clone_from(&facts.cgroup_path);
                    }
                    kept.insert(key, facts);
                    found.push(info);
                }
            }
        }
        *self.specs.lock().unwrap_or_else(|e| e.into_inner()) = kept;
        // /proc and cgroupfs reads (and, once, a directory walk) off the async threads.
        let pids: Vec<u32> = found.iter().filter_map(|c| c.pid).collect();
        let resolver = self.resolver.clone();
        let fs = self.fs.clone();
        let cgroups = tokio::task::spawn_blocking(move || {
            pids.into_iter()
                .map(|pid| (pid, cgroup_of_pid(&fs, &resolver, pid)))
                .collect::<HashMap<_, _>>()
        })
        .await
        .unwrap_or_default();
        for info in &mut found {
            info.cgroup_path = info
                .pid
                .and_then(|pid| cgroups.get(&pid).cloned().flatten());
        }
        found.sort_by(|a, b| (&a.runtime_namespace, &a.id).cmp(&(&b.runtime_namespace, &b.id)));
        Ok(found)
    }

    /// One container as containerd keeps it (labels, OCI spec, runtime), by id.
    pub async fn get(&self, namespace: &str, id: &str) -> Result<Container, RuntimeError> {
        let channel = self.conn.channel().await?;
        let client = containerd_client::Client::from(channel);
        let got = self
            .conn
            .call(
                "Containers.Get",
                namespace,
                client.containers().get(
                    self.conn
                        .request(GetContainerRequest { id: id.to_owned() }, namespace)?,
                ),
            )
            .await?;
        got.container.ok_or_else(|| RuntimeError::Call {
            socket: self.conn.socket_name(),
            call: "Containers.Get",
            namespace: namespace.to_owned(),
            message: format!("no container {id} in the answer"),
            code: tonic::Code::NotFound,
        })
    }

    /// Subscribes to the events that change [`Containerd::list`]'s answer.
    pub async fn subscribe(&self) -> Result<EventStream, RuntimeError> {
        let channel = self.conn.channel().await?;
        let client = containerd_client::Client::from(channel);
        // Filters are ORed; the fields inside one filter are ANDed.
        let filters = self
            .namespaces
            .iter()
            .flat_map(|ns| {
                EVENT_TOPICS
                    .iter()
                    .map(move |topic| format!("namespace=={ns},topic=={topic:?}"))
            })
            .collect();
        let mut events = client.events();
        let call = tokio::spawn(async move {
            events
                .subscribe(tonic::Request::new(SubscribeRequest { filters }))
                .await
        });
        Ok(EventStream {
            state: StreamState::Waiting(call),
            namespaces: self.namespaces.clone(),
            socket: self.conn.socket_name(),
        })
    }
}

/// The error and its causes, "outer: inner: ...", without repeats.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

fn status_message(status: &tonic::Status) -> String {
    let mut out = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Whether the labels mark a pod sandbox (pause) container.
pub fn is_sandbox(container_labels: &HashMap<String, String>) -> bool {
    container_labels.get(labels::KIND).map(String::as_str) == Some(labels::KIND_SANDBOX)
}

/// Maps a containerd container to a [`ContainerInfo`] without task data (pid, cgroup and
/// state unset); `None` for a pod sandbox. A container without Kubernetes labels keeps
/// empty pod fields.
pub fn container_info(runtime_namespace: &str, container: &Container) -> Option<ContainerInfo> {
    if is_sandbox(&container.labels) {
        return None;
    }
    let label = |key: &str| container.labels.get(key).cloned().unwrap_or_default();
    Some(ContainerInfo {
        id: container.id.clone(),
        runtime_namespace: runtime_namespace.to_owned(),
        pod_uid: label(labels::POD_UID),
        pod_name: label(labels::POD_NAME),
        pod_namespace: label(labels::POD_NAMESPACE),
        container_name: label(labels::CONTAINER_NAME),
        image: container.image.clone(),
        pid: None,
        cgroup_path: None,
        state: ContainerState::Unspecified,
        exited: None,
        restart_count: container
            .labels
            .get(labels::RESTART_COUNT)
            .and_then(|v| v.parse().ok()),
        spec_cgroup_path: None,
    })
}

/// What is read from a container's OCI spec.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SpecFacts {
    /// The [`labels::RESTART_COUNT`] annotation.
    pub restart_count: Option<u32>,
    /// `linux.cgroupsPath` as a path relative to the cgroup root ([`spec_cgroup`]).
    pub cgroup_path: Option<String>,
}

/// The facts of `container`'s OCI spec (JSON in a protobuf `Any`); nothing from a spec
/// that does not parse.
pub fn spec_facts(container: &Container) -> SpecFacts {
    #[derive(serde::Deserialize)]
    struct Spec {
        #[serde(default)]
        annotations: HashMap<String, String>,
        #[serde(default)]
        linux: Option<Linux>,
    }
    #[derive(serde::Deserialize)]
    struct Linux {
        #[serde(default, rename = "cgroupsPath")]
        cgroups_path: Option<String>,
    }
    let Some(spec) = container
        .spec
        .as_ref()
        .and_then(|any| serde_json::from_slice::<Spec>(&any.value).ok())
    else {
        return SpecFacts::default();
    };
    SpecFacts {
        restart_count: spec
            .annotations
            .get(labels::RESTART_COUNT)
            .and_then(|v| v.parse().ok()),
        cgroup_path: spec
            .linux
            .and_then(|l| l.cgroups_path)
            .and_then(|p| spec_cgroup(&p)),
    }
}

/// An OCI `linux.cgroupsPath` as a path relative to the cgroup root, as runc places it:
/// a plain path (cgroupfs driver, `/kubepods/besteffort/pod<uid>/<id>`) as written; the
/// systemd driver's `slice:prefix:name` as systemd nests it
/// (`kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>` →
/// `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`).
/// `None` for an empty path, one with `..` or an ill-formed slice.
pub fn spec_cgroup(cgroups_path: &str) -> Option<String> {
    let parts: Vec<&str> = cgroups_path.split(':').collect();
    let path = match parts.as_slice() {
        [plain] => plain.trim_matches('/').to_owned(),
        [slice, prefix, name] => {
            let unit = if name.ends_with(".slice") {
                (*name).to_owned()
            } else if prefix.is_empty() {
                format!("{name}.scope")
            } else {
                format!("{prefix}-{name}.scope")
            };
            let slice = if slice.is_empty() {
                "system.slice"
            } else {
                slice
            };
            join(&expand_slice(slice)?, &unit)
        }
        _ => return None,
    };
    (!path.is_empty() && !path.split('/').any(|c| c == ".." || c == ".")).then_some(path)
}

/// A systemd slice name as its directory path: `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`;
/// `-.slice` (the root slice) → "". `None` when not a well-formed slice name.
fn expand_slice(slice: &str) -> Option<String> {
    let stem = slice.strip_suffix(".slice")?;
    if stem == "-" {
        return Some(String::new());
    }
    if stem.is_empty()
        || stem.contains('/')
        || stem.starts_with('-')
        || stem.ends_with('-')
        || stem.contains("--")
    {
        return None;
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(component);
        path = join(&path, &format!("{prefix}.slice"));
    }
    Some(path)
}

/// Unix nanoseconds of a protobuf timestamp; `None` for an unset (zero) one or one before
/// 1970.
pub fn unix_nanos(t: &prost_types::Timestamp) -> Option<u64> {
    let seconds = u64::try_from(t.seconds).ok()?;
    let nanos = u64::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    let total = seconds.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    (total != 0).then_some(total)
}

fn exited(exit_status: u32, exited_at: Option<&prost_types::Timestamp>) -> Option<Exited> {
    Some(Exited {
        // As the CRI plugin does (int32(exitStatus)).
        exit_code: exit_status as i32,
        finished_unix_nanos: unix_nanos(exited_at?)?,
    })
}

/// What an event's payload says about one container: the init process's exit (`/tasks/exit`,
/// `/tasks/delete`; an exec's exit is not the container's) or the container's deletion.
/// `None` for other topics, a payload that does not decode, or an exit without its time.
pub fn container_news(envelope: &Envelope) -> Option<ContainerNews> {
    use containerd_client::events::{ContainerDelete, TaskDelete, TaskExit};
    use prost::Message;
    let payload = envelope.event.as_ref()?;
    // The init process's exec id is the container id (or empty).
    let init = |container_id: &str, id: &str| id.is_empty() || id == container_id;
    match envelope.topic.as_str() {
        "/tasks/exit" => {
            let e = TaskExit::decode(payload.value.as_slice()).ok()?;
            if !init(&e.container_id, &e.id) || e.container_id.is_empty() {
                return None;
            }
            Some(ContainerNews::Exited {
                exited: exited(e.exit_status, e.exited_at.as_ref())?,
                container_id: e.container_id,
            })
        }
        "/tasks/delete" => {
            let e = TaskDelete::decode(payload.value.as_slice()).ok()?;
            if !init(&e.container_id, &e.id) || e.container_id.is_empty() {
                return None;
            }
            Some(ContainerNews::Exited {
                exited: exited(e.exit_status, e.exited_at.as_ref())?,
                container_id: e.container_id,
            })
        }
        "/containers/delete" => {
            let e = ContainerDelete::decode(payload.value.as_slice()).ok()?;
            (!e.id.is_empty()).then_some(ContainerNews::Deleted { container_id: e.id })
        }
        _ => None,
    }
}

/// Maps a containerd task status to ours. `CREATED` (not yet started) and unknown values
/// are UNSPECIFIED.
pub fn task_state(status: i32) -> ContainerState {
    match Status::try_from(status) {
        Ok(Status::Running) => ContainerState::Running,
        Ok(Status::Paused | Status::Pausing) => ContainerState::Paused,
        Ok(Status::Stopped) => ContainerState::Stopped,
        Ok(Status::Created | Status::Unknown) | Err(_) => ContainerState::Unspecified,
    }
}

/// Fills state and pid from the container's task; no task means the container exists but
/// does not run (STOPPED).
pub fn apply_task(info: &mut ContainerInfo, task: Option<&Process>) {
    info.exited = None;
    let Some(task) = task else {
        info.state = ContainerState::Stopped;
        info.pid = None;
        return;
    };
    info.state = task_state(task.status);
    if info.state == ContainerState::Stopped {
        info.exited = exited(task.exit_status, task.exited_at.as_ref());
    }
    let has_process = matches!(
        Status::try_from(task.status),
        Ok(Status::Running | Status::Paused | Status::Pausing | Status::Created)
    );
    info.pid = (has_process && task.pid != 0).then_some(task.pid);
}

/// The line of `/proc/<pid>/cgroup` that locates a process, see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMembership {
    /// "" for the unified (v2) hierarchy, else the v1 controller list as written
    /// (`memory`, `cpu,cpuacct`, ...).
    pub controllers: String,
    /// How many leading `/..` components the path had; more than 0 means the reader is
    /// inside a cgroup namespace.
    pub escapes: usize,
    /// The path after those components, without leading '/'; "" for the (namespace) root.
    pub path: String,
}

impl CgroupMembership {
    pub fn is_unified(&self) -> bool {
        self.controllers.is_empty()
    }
}

/// Picks the cgroup of a process from `/proc/<pid>/cgroup`: the `0::` line if its path is
/// not `/`, else the `memory`, `cpu` or `cpuacct` v1 line, else a `0::/` line. `None` when
/// no usable line is there (or a path has `..` after its start).
pub fn parse_proc_cgroup(text: &str) -> Option<CgroupMembership> {
    let mut unified = None;
    let mut v1: Vec<(&str, &str)> = Vec::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            unified = Some(path);
        } else if !controllers.is_empty() {
            v1.push((controllers, path));
        }
    }
    let split = |controllers: &str, path: &str| {
        let (escapes, rest) = split_escapes(path)?;
        Some(CgroupMembership {
            controllers: controllers.to_owned(),
            escapes,
            path: rest,
        })
    };
    if let Some(path) = unified.filter(|p| p.trim() != "/") {
        return split("", path);
    }
    for wanted in ["memory", "cpu", "cpuacct"] {
        if let Some((controllers, path)) = v1
            .iter()
            .find(|(controllers, _)| controllers.split(',').any(|c| c == wanted))
        {
            return split(controllers, path);
        }
    }
    unified.and_then(|path| split("", path))
}

/// "/../../a/b" → (2, "a/b"). `None` for a relative path or `..` after the start.
fn split_escapes(path: &str) -> Option<(usize, String)> {
    let path = path.trim_end_matches(['\n', '\r']);
    let rest = path.strip_prefix('/')?;
    let mut escapes = 0;
    let mut parts = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.is_empty() => escapes += 1,
            ".." => return None,
            other => parts.push(other),
        }
    }
    Some((escapes, parts.join("/")))
}

/// The cgroup path (relative to the cgroup root) of a host pid, `None` when the process
/// is gone, sits in the root cgroup, or its namespaced path cannot be resolved.
fn cgroup_of_pid(fs: &HostFs, resolver: &CgroupResolver, pid: u32) -> Option<String> {
    let text = match fs.read(&format!("/proc/{pid}/cgroup")) {
        Ok(text) => text,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read a task's cgroup");
            return None;
        }
    };
    let membership = parse_proc_cgroup(&text)?;
    let path = resolver.resolve(&membership)?;
    (!path.is_empty()).then_some(path)
}

/// Resolves namespaced cgroup paths (module docs), caching the ancestor per
/// (hierarchy mount, escapes).
#[derive(Debug)]
pub struct CgroupResolver {
    fs: HostFs,
    prefixes: Mutex<HashMap<(String, usize), String>>,
}

impl CgroupResolver {
    pub fn new(fs: HostFs) -> Self {
        Self {
            fs,
            prefixes: Mutex::new(HashMap::new()),
        }
    }

    /// Where the hierarchy is mounted on the host (`/sys/fs/cgroup`,
    /// `/sys/fs/cgroup/unified`, `/sys/fs/cgroup/memory`, ...), as a host path.
    pub fn mount_of(&self, membership: &CgroupMembership) -> Option<String> {
        let candidates: Vec<String> = if membership.is_unified() {
            ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
                .iter()
                .filter(|dir| self.fs.exists(&format!("{dir}/cgroup.controllers")))
                .map(|dir| (*dir).to_owned())
                .collect()
        } else {
            std::iter::once(membership.controllers.clone())
                .chain(membership.controllers.split(',').map(str::to_owned))
                .map(|c| format!("/sys/fs/cgroup/{}", c.trim_start_matches("name=")))
                .collect()
        };
        candidates
            .into_iter()
            .find(|dir| !dir.contains("..") && self.fs.path(dir).is_dir())
    }

    /// The path relative to the cgroup root; the path as written when the reader is not
    /// in a cgroup namespace (no leading `/..`).
    pub fn resolve(&self, membership: &CgroupMembership) -> Option<String> {
        if membership.escapes == 0 {
            return Some(membership.path.clone());
        }
        let mount = self.mount_of(membership)?;
        let key = (mount.clone(), membership.escapes);
        let cached = self.prefixes.lock().ok()?.get(&key).cloned();
        if let Some(prefix) = cached {
            let candidate = join(&prefix, &membership.path);
            if self.fs.path(&format!("{mount}/{candidate}")).is_dir() {
                return Some(candidate);
            }
        }
        let prefix = self.find_prefix(&mount, &membership.path)?;
        if let Ok(mut prefixes) = self.prefixes.lock() {
            prefixes.insert(key, prefix.clone());
        }
        Some(join(&prefix, &membership.path))
    }

    /// Breadth first: the shallowest directory `A` under `mount` with `A/<rest>` a
    /// directory, as a path relative to `mount` ("" for the mount itself).
    fn find_prefix(&self, mount: &str, rest: &str) -> Option<String> {
        let base = self.fs.path(mount);
        let mut queue = VecDeque::from([(String::new(), 0usize)]);
        let mut seen = HashSet::new();
        let mut visited = 0usize;
        while let Some((relative, depth)) = queue.pop_front() {
            visited += 1;
            if visited > MAX_PREFIX_SCAN {
                break;
            }
            let dir = if relative.is_empty() {
                base.clone()
            } else {
                base.join(&relative)
            };
            if dir.join(rest).is_dir() {
                return Some(relative);
            }
            if depth >= MAX_PREFIX_DEPTH {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                // Cgroup directories are real directories; skip files and symlinks.
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let child = join(&relative, &name);
                if seen.insert(child.clone()) {
                    queue.push_back((child, depth + 1));
                }
            }
        }
        tracing::debug!(
            mount,
            rest,
            "no ancestor found for a namespaced cgroup path"
        );
        None
    }
}

fn join(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}/{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, labels: &[(&str, &str)]) -> Container {
        Container {
            id: id.to_owned(),
            image: "docker.io/library/busybox:1.36".to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Container::default()
        }
    }

    #[test]
    fn kubernetes_labels_map_to_pod_identity() {
        let c = container(
            "abc",
            &[
                (labels::POD_UID, "1111-2222"),
                (labels::POD_NAME, "web-0"),
                (labels::POD_NAMESPACE, "shop"),
                (labels::CONTAINER_NAME, "nginx"),
                (labels::KIND, "container"),
            ],
        );
        let info = container_info("k8s.io", &c).unwrap();
        assert_eq!(info.id, "abc");
        assert_eq!(info.runtime_namespace, "k8s.io");
        assert_eq!(info.pod_uid, "1111-2222");
        assert_eq!(info.pod_name, "web-0");
        assert_eq!(info.pod_namespace, "shop");
        assert_eq!(info.container_name, "nginx");
        assert_eq!(info.image, "docker.io/library/busybox:1.36");
        assert_eq!(info.pid, None);
        assert_eq!(info.state, ContainerState::Unspecified);
        assert_eq!(info.exited, None);
        assert_eq!(info.restart_count, None);
        assert_eq!(info.spec_cgroup_path, None);
    }

    #[test]
    fn sandboxes_are_skipped_and_plain_containers_keep_empty_pod_fields() {
        let sandbox = container(
            "pause",
            &[(labels::KIND, "sandbox"), (labels::POD_UID, "1111")],
        );
        assert!(container_info("k8s.io", &sandbox).is_none());
        let plain = container("redis", &[("app", "redis")]);
        let info = container_info("default", &plain).unwrap();
        assert_eq!(info.pod_uid, "");
        assert_eq!(info.pod_name, "");
        assert_eq!(info.pod_namespace, "");
        assert_eq!(info.container_name, "");
        assert_eq!(info.runtime_namespace, "default");
    }

    #[test]
    fn task_status_sets_state_and_pid() {
        let mut info = container_info("k8s.io", &container("a", &[])).unwrap();
        let task = |status: Status, pid: u32| Process {
            container_id: "a".to_owned(),
            pid,
            status: status as i32,
            ..Process::default()
        };
        apply_task(&mut info, Some(&task(Status::Running, 42)));
        assert_eq!((info.state, info.pid), (ContainerState::Running, Some(42)));
        apply_task(&mut info, Some(&task(Status::Paused, 42)));
        assert_eq!((info.state, info.pid), (ContainerState::Paused, Some(42)));
        apply_task(&mut info, Some(&task(Status::Stopped, 42)));
        assert_eq!((info.state, info.pid), (ContainerState::Stopped, None));
        apply_task(&mut info, Some(&task(Status::Running, 0)));
        assert_eq!((info.state, info.pid), (ContainerState::Running, None));
        apply_task(&mut info, None);
        assert_eq!((info.state, info.pid), (ContainerState::Stopped, None));
        assert_eq!(task_state(99), ContainerState::Unspecified);
        assert_eq!(task_state(-1), ContainerState::Unspecified);
    }

    #[test]
    fn a_stopped_task_carries_its_exit() {
        let mut info = container_info("k8s.io", &container("a", &[])).unwrap();
        let at = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        let stopped = Process {
            container_id: "a".to_owned(),
            pid: 42,
            status: Status::Stopped as i32,
            exit_status: 3,
            exited_at: Some(at),
            ..Process::default()
        };
        apply_task(&mut info, Some(&stopped));
        assert_eq!(
            info.exited,
            Some(Exited {
                exit_code: 3,
                finished_unix_nanos: 1_700_000_000_000_000_005
            })
        );
        // Without its time the exit is not known.
        apply_task(
            &mut info,
            Some(&Process {
                exited_at: None,
                ..stopped.clone()
            }),
        );
        assert_eq!(info.exited, None);
        // A running task or none at all: no exit here.
        apply_task(&mut info, Some(&stopped));
        apply_task(
            &mut info,
            Some(&Process {
                status: Status::Running as i32,
                ..stopped.clone()
            }),
        );
        assert_eq!(info.exited, None);
        apply_task(&mut info, Some(&stopped));
        apply_task(&mut info, None);
        assert_eq!(info.exited, None);
        // containerd's uint32 as the kubelet's int32.
        apply_task(
            &mut info,
            Some(&Process {
                exit_status: u32::MAX,
                ..stopped
            }),
        );
        assert_eq!(info.exited.unwrap().exit_code, -1);
    }

    #[test]
    fn timestamps_to_unix_nanos() {
        let t = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
        assert_eq!(unix_nanos(&t(2, 7)), Some(2_000_000_007));
        assert_eq!(unix_nanos(&t(0, 1)), Some(1));
        assert_eq!(unix_nanos(&t(0, 0)), None, "unset");
        assert_eq!(unix_nanos(&t(-1, 0)), None);
        assert_eq!(unix_nanos(&t(1, -1)), None);
        assert_eq!(unix_nanos(&t(1, 1_000_000_000)), None);
        assert_eq!(unix_nanos(&t(1, 999_999_999)), Some(1_999_999_999));
        assert_eq!(unix_nanos(&t(i64::MAX, 0)), None, "overflow");
        assert_eq!(unix_nanos(&t(18_446_744_073, 709_551_615)), Some(u64::MAX));
        assert_eq!(unix_nanos(&t(18_446_744_073, 709_551_616)), None);
    }

    fn envelope(topic: &str, type_url: &str, payload: Vec<u8>) -> Envelope {
        Envelope {
            timestamp: None,
            namespace: "k8s.io".to_owned(),
            topic: topic.to_owned(),
            event: Some(prost_types::Any {
                type_url: type_url.to_owned(),
                value: payload,
            }),
        }
    }

    #[test]
    fn events_say_which_container_ended_or_went() {
        use containerd_client::events::{ContainerDelete, TaskDelete, TaskExit, TaskOom};
        use prost::Message;
        let at = Some(prost_types::Timestamp {
            seconds: 10,
            nanos: 0,
        });
        let exit = |id: &str, status| TaskExit {
            container_id: "c1".to_owned(),
            id: id.to_owned(),
            pid: 9,
            exit_status: status,
            exited_at: at,
        };
        let ended = |code| {
            Some(ContainerNews::Exited {
                container_id: "c1".to_owned(),
                exited: Exited {
                    exit_code: code,
                    finished_unix_nanos: 10_000_000_000,
                },
            })
        };
        let news = |topic, payload: Vec<u8>| {
            container_news(&envelope(topic, "containerd.events.X", payload))
        };
        assert_eq!(news("/tasks/exit", exit("c1", 3).encode_to_vec()), ended(3));
        assert_eq!(news("/tasks/exit", exit("", 0).encode_to_vec()), ended(0));
        assert_eq!(
            news("/tasks/exit", exit("exec-1", 1).encode_to_vec()),
            None,
            "an exec's exit is not the container's"
        );
        let no_time = TaskExit {
            exited_at: None,
            ..exit("c1", 3)
        };
        assert_eq!(news("/tasks/exit", no_time.encode_to_vec()), None);
        let no_container = TaskExit {
            container_id: String::new(),
            ..exit("", 3)
        };
        assert_eq!(news("/tasks/exit", no_container.encode_to_vec()), None);
        let delete = |id: &str| TaskDelete {
            container_id: "c1".to_owned(),
            pid: 9,
            exit_status: 2,
            exited_at: at,
            id: id.to_owned(),
        };
        assert_eq!(news("/tasks/delete", delete("").encode_to_vec()), ended(2));
        assert_eq!(
            news("/tasks/delete", delete("c1").encode_to_vec()),
            ended(2)
        );
        assert_eq!(news("/tasks/delete", delete("e").encode_to_vec()), None);
        let no_container = TaskDelete {
            container_id: String::new(),
            ..delete("")
        };
        assert_eq!(news("/tasks/delete", no_container.encode_to_vec()), None);
        let gone = ContainerDelete {
            id: "c1".to_owned(),
        };
        assert_eq!(
            news("/containers/delete", gone.encode_to_vec()),
            Some(ContainerNews::Deleted {
                container_id: "c1".to_owned()
            })
        );
        assert_eq!(
            news(
                "/containers/delete",
                ContainerDelete::default().encode_to_vec()
            ),
            None
        );
        let oom = TaskOom {
            container_id: "c1".to_owned(),
        };
        assert_eq!(news("/tasks/oom", oom.encode_to_vec()), None);
        // Garbage and a missing payload are nothing, not a panic.
        assert_eq!(news("/tasks/exit", vec![0xff, 0xff, 0xff]), None);
        assert_eq!(news("/tasks/delete", vec![0x0a, 0x10]), None);
        assert_eq!(news("/containers/delete", vec![0x0a, 0x10]), None);
        let mut bare = envelope("/tasks/exit", "", vec![]);
        bare.event = None;
        assert_eq!(container_news(&bare), None);
    }

    #[test]
    fn spec_cgroups_path_as_runc_places_it() {
        assert_eq!(
            spec_cgroup("/kubepods/besteffort/pod1/abc").as_deref(),
            Some("kubepods/besteffort/pod1/abc")
        );
        assert_eq!(spec_cgroup("kubepods/x").as_deref(), Some("kubepods/x"));
        assert_eq!(
            spec_cgroup("kubepods-besteffort-pod1_2.slice:cri-containerd:abc").as_deref(),
            Some(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1_2.slice/cri-containerd-abc.scope"
            )
        );
        assert_eq!(
            spec_cgroup("kubepods.slice:cri-containerd:abc").as_deref(),
            Some("kubepods.slice/cri-containerd-abc.scope")
        );
        assert_eq!(
            spec_cgroup("-.slice:docker:abc").as_deref(),
            Some("docker-abc.scope")
        );
        assert_eq!(
            spec_cgroup(":docker:abc").as_deref(),
            Some("system.slice/docker-abc.scope")
        );
        assert_eq!(
            spec_cgroup("a.slice::abc").as_deref(),
            Some("a.slice/abc.scope")
        );
        assert_eq!(
            spec_cgroup("a-b.slice:x:c.slice").as_deref(),
            Some("a.slice/a-b.slice/c.slice")
        );
        for bad in [
            "",
            "/",
            "/a/../b",
            "./a",
            "a:b",
            "a:b:c:d",
            "notaslice:p:n",
            "-a.slice:p:n",
            "a-.slice:p:n",
            "a--b.slice:p:n",
            "a/b.slice:p:n",
            ".slice:p:n",
            "a.slice::../../etc",
            "a.slice:p:x/../../../etc",
        ] {
            assert_eq!(spec_cgroup(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn spec_facts_read_the_annotation_and_the_cgroup() {
        let with_spec = |json: &[u8], labels: &[(&str, &str)]| Container {
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".to_owned(),
                value: json.to_vec(),
            }),
            ..container("a", labels)
        };
        let spec = br#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.container.restartCount":"4"},"linux":{"cgroupsPath":"/kubepods/pod1/a","resources":{}}}"#;
        assert_eq!(
            spec_facts(&with_spec(spec, &[])),
            SpecFacts {
                restart_count: Some(4),
                cgroup_path: Some("kubepods/pod1/a".to_owned())
            }
        );
        assert_eq!(
            spec_facts(&with_spec(
                br#"{"annotations":{"io.kubernetes.container.restartCount":"x"}}"#,
                &[]
            )),
            SpecFacts::default()
        );
        assert_eq!(
            spec_facts(&with_spec(b"not json", &[])),
            SpecFacts::default()
        );
        assert_eq!(spec_facts(&container("a", &[])), SpecFacts::default());
        // The label is read by container_info itself.
        let labelled =
            container_info("k8s.io", &container("a", &[(labels::RESTART_COUNT, "2")])).unwrap();
        assert_eq!(labelled.restart_count, Some(2));
        let bad =
            container_info("k8s.io", &container("a", &[(labels::RESTART_COUNT, "-1")])).unwrap();
        assert_eq!(bad.restart_count, None);
    }

    fn membership(controllers: &str, escapes: usize, path: &str) -> CgroupMembership {
        CgroupMembership {
            controllers: controllers.to_owned(),
            escapes,
            path: path.to_owned(),
        }
    }

    #[test]
    fn parses_cgroup_v2() {
        let text = "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1_2.slice/cri-containerd-abc.scope\n";
        assert_eq!(
            parse_proc_cgroup(text),
            Some(membership(
                "",
                0,
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1_2.slice/cri-containerd-abc.scope"
            ))
        );
        assert_eq!(parse_proc_cgroup("0::/\n"), Some(membership("", 0, "")));
        assert_eq!(parse_proc_cgroup(""), None);
        assert_eq!(parse_proc_cgroup("garbage\n\n::\n"), None);
    }

    #[test]
    fn parses_v1_and_hybrid() {
        // Hybrid, runtime also joined the unified hierarchy: the 0:: line wins.
        let hybrid = "12:memory:/kubepods/besteffort/pod1/abc\n1:name=systemd:/kubepods/besteffort/pod1/abc\n0::/kubepods/besteffort/pod1/abc\n";
        assert_eq!(
            parse_proc_cgroup(hybrid),
            Some(membership("", 0, "kubepods/besteffort/pod1/abc"))
        );
        // Hybrid with 0::/ (runtime did not use the unified hierarchy): memory line.
        let v1 = "11:cpu,cpuacct:/kubepods/pod1/cpu\n9:memory:/kubepods/pod1/abc\n1:name=systemd:/x\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(v1),
            Some(membership("memory", 0, "kubepods/pod1/abc"))
        );
        // No memory controller: cpu line (also when co-mounted with cpuacct).
        let cpu = "4:cpu,cpuacct:/kubepods/pod1/abc\n2:pids:/other\n";
        assert_eq!(
            parse_proc_cgroup(cpu),
            Some(membership("cpu,cpuacct", 0, "kubepods/pod1/abc"))
        );
        // This test host's layout: cpu and cpuacct mounted apart.
        let apart = "2:cpuacct:/kubepods/besteffort/podx/c\n1:cpu:/kubepods/besteffort/podx/c\n";
        assert_eq!(
            parse_proc_cgroup(apart),
            Some(membership("cpu", 0, "kubepods/besteffort/podx/c"))
        );
    }

    #[test]
    fn parses_cgroup_namespace_escapes_and_rejects_traversal() {
        let text = "0::/../../kubepods-besteffort.slice/kubepods-besteffort-pod9.slice/cri-containerd-abc.scope\n";
        assert_eq!(
            parse_proc_cgroup(text),
            Some(membership(
                "",
                2,
                "kubepods-besteffort.slice/kubepods-besteffort-pod9.slice/cri-containerd-abc.scope"
            ))
        );
        assert_eq!(
            parse_proc_cgroup("9:memory:/../abc\n0::/\n"),
            Some(membership("memory", 1, "abc"))
        );
        assert_eq!(parse_proc_cgroup("0::/a/../../etc\n"), None);
        assert_eq!(parse_proc_cgroup("0::relative\n"), None);
        // A path with ':' in it keeps it.
        assert_eq!(
            parse_proc_cgroup("0::/a:b\n"),
            Some(membership("", 0, "a:b"))
        );
    }

    #[test]
    fn resolves_namespaced_paths_against_the_host_tree() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("sys/fs/cgroup");
        let container = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9.slice/cri-containerd-abc.scope";
        let other = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7.slice/cri-containerd-def.scope";
        let agent = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-agent.scope";
        for p in [container, other, agent] {
            std::fs::create_dir_all(cg.join(p)).unwrap();
        }
        std::fs::write(cg.join("cgroup.controllers"), "cpu memory\n").unwrap();
        let resolver = CgroupResolver::new(HostFs::new(dir.path()));
        // Seen from the agent's namespace root: three levels up to kubepods.slice.
        let seen = parse_proc_cgroup(
            "0::/../../../kubepods-besteffort.slice/kubepods-besteffort-pod9.slice/cri-containerd-abc.scope\n",
        )
        .unwrap();
        assert_eq!(resolver.resolve(&seen).as_deref(), Some(container));
        // The ancestor is cached per escape count: the next one uses it directly.
        let next = parse_proc_cgroup(
            "0::/../../../kubepods-besteffort.slice/kubepods-besteffort-pod7.slice/cri-containerd-def.scope\n",
        )
        .unwrap();
        assert_eq!(resolver.resolve(&next).as_deref(), Some(other));
        assert_eq!(
            resolver
                .prefixes
                .lock()
                .unwrap()
                .get(&("/sys/fs/cgroup".to_owned(), 3)),
            Some(&"kubepods.slice".to_owned())
        );
        // Unknown container: not guessed.
        let gone = parse_proc_cgroup("0::/../../../kubepods-besteffort.slice/nope\n").unwrap();
        assert_eq!(resolver.resolve(&gone), None);
        // Not namespaced: as written.
        let plain = parse_proc_cgroup(&format!("0::/{container}\n")).unwrap();
        assert_eq!(resolver.resolve(&plain).as_deref(), Some(container));
    }

    #[test]
    fn resolves_v1_namespaced_paths_under_the_controller_mount() {
        let dir = tempfile::tempdir().unwrap();
        let mem = dir.path().join("sys/fs/cgroup/memory");
        std::fs::create_dir_all(mem.join("kubepods/besteffort/pod9/abc")).unwrap();
        let resolver = CgroupResolver::new(HostFs::new(dir.path()));
        let seen = parse_proc_cgroup("4:memory:/../../besteffort/pod9/abc\n0::/\n").unwrap();
        assert_eq!(
            resolver.resolve(&seen).as_deref(),
            Some("kubepods/besteffort/pod9/abc")
        );
    }

    #[test]
    fn cgroup_of_a_pid_reads_proc_under_the_host_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/42")).unwrap();
        std::fs::write(dir.path().join("proc/42/cgroup"), "0::/kubepods/pod1/abc\n").unwrap();
        std::fs::create_dir_all(dir.path().join("proc/43")).unwrap();
        std::fs::write(dir.path().join("proc/43/cgroup"), "0::/\n").unwrap();
        let fs = HostFs::new(dir.path());
        let resolver = CgroupResolver::new(fs.clone());
        assert_eq!(
            cgroup_of_pid(&fs, &resolver, 42).as_deref(),
            Some("kubepods/pod1/abc")
        );
        assert_eq!(cgroup_of_pid(&fs, &resolver, 43), None);
        assert_eq!(cgroup_of_pid(&fs, &resolver, 44), None);
    }

    #[tokio::test]
    async fn unreachable_socket_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("no-such-containerd.sock");
        let runtime = Containerd::new(socket.clone(), vec![], HostFs::new("/"));
        assert_eq!(runtime.namespaces(), ["k8s.io".to_owned()]);
        let err = runtime.list().await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&socket.display().to_string()), "{text}");
        assert!(matches!(err, RuntimeError::Connect { .. }), "{err:?}");
        assert_eq!(err.socket(), socket.display().to_string());
        let err = runtime.subscribe().await.err().unwrap();
        assert!(err.to_string().contains("no-such-containerd.sock"), "{err}");
    }

    #[tokio::test]
    async fn a_socket_that_is_not_containerd_is_an_error_not_a_panic() {
        // Something listens but speaks no gRPC: every call fails with the socket named.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("not-grpc.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\ngarbage")
                    .await;
            }
        });
        let runtime = Containerd::new(socket.clone(), vec!["k8s.io".into()], HostFs::new("/"));
        let err = runtime.list().await.unwrap_err();
        assert!(err.to_string().contains("not-grpc.sock"), "{err}");
        server.abort();
    }
}
