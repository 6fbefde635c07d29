//! The Kubernetes Pod manifests the local runtime accepts, checked and reduced to what it
//! runs. Pure: JSON in, a [`PodManifest`] or an error naming the field out. The agent
//! runs what this accepts; the coordinator checks with it before it stores a pod, so
//! `aistorctl apply` fails with the same message the agent would give.
//!
//! The rule is the issue's: a field that would change behaviour and is not implemented is
//! refused by name, never silently ignored. Two passes make that exact:
//! 1. the JSON is decoded into k8s-openapi's `Pod` and encoded again; a key of the input
//!    that does not survive the round trip is not a Kubernetes field at all (a typo);
//! 2. every key left is checked against the subset below, so a real but unsupported field
//!    (`initContainers`, `env[].valueFrom`, `hostPort`, ...) is named too.

use k8s_openapi::api::core::v1 as k8s;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Annotation selecting a read-only view of the host's root instead of the image.
pub const ROOTFS_ANNOTATION: &str = "aistor.io/rootfs";
/// Annotation naming the staged checkpoint a new pod starts from.
pub const RESTORE_ANNOTATION: &str = "aistor.io/restore-from";
/// Kubernetes' default grace period.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Bounds a manifest so a hostile one cannot make the agent allocate without limit.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
const MAX_CONTAINERS: usize = 64;

/// What is wrong with a manifest: the field (JSON path as `kubectl explain` names it) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.field, self.problem)
        }
    }
}

impl std::error::Error for ManifestError {}

fn err(field: impl Into<String>, problem: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A pod the local runtime can run.
#[derive(Debug, Clone, PartialEq)]
pub struct PodManifest {
    pub namespace: String,
    pub name: String,
    /// Assigned by whoever creates the pod (the coordinator); `None` in a bare manifest.
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub node_name: Option<String>,
    pub restart_policy: RestartPolicy,
    pub grace_period: Duration,
    pub rootfs: Rootfs,
    pub containers: Vec<ContainerManifest>,
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// Where a container's root filesystem comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rootfs {
    /// The image's layers from containerd's snapshotter, as the kubelet runs them.
    Image,
    /// A read-only view of the host's root (`aistor.io/rootfs: host`).
    Host,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerManifest {
    pub name: String,
    pub image: String,
    /// Replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when not empty (or when `command` is set).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub resources: Resources,
    pub mounts: Vec<Mount>,
    pub readiness: Option<Probe>,
}

/// Requests and limits in the units cgroups take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub volume: String,
    pub path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A directory owned by the pod, removed with it.
    EmptyDir,
    /// A host directory.
    HostPath(String),
    /// A claim: a directory of that name under the configured volume root, shared by every
    /// local node.
    Claim { name: String, read_only: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    Exec(Vec<String>),
    /// GET `http://127.0.0.1:<port><path>` (host network).
    Http {
        port: u16,
        path: String,
    },
    Tcp {
        port: u16,
    },
}

/// Decodes and checks a Pod manifest (JSON).
pub fn parse(json: &[u8]) -> Result<PodManifest, ManifestError> {
    if json.len() > MAX_MANIFEST_BYTES {
        return Err(err(
            "",
            format!(
                "manifest is {} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                json.len()
            ),
        ));
    }
    let value: Value =
        serde_json::from_slice(json).map_err(|e| err("", format!("not JSON: {e}")))?;
    from_value(value)
}

/// Checks a Pod manifest already decoded as JSON (e.g. one document of a YAML file).
pub fn from_value(value: Value) -> Result<PodManifest, ManifestError> {
    let Value::Object(top) = &value else {
        return Err(err("", "a Pod manifest is a JSON object"));
    };
    match top.get("apiVersion").and_then(Value::as_str) {
        Some("v1") => {}
        Some(other) => return Err(err("apiVersion", format!("\"{other}\" is not v1"))),
        None => return Err(err("apiVersion", "required (v1)")),
    }
    match top.get("kind").and_then(Value::as_str) {
        Some("Pod") => {}
        Some(other) => return Err(err("kind", format!("\"{other}\" is not Pod"))),
        None => return Err(err("kind", "required (Pod)")),
    }
    // serde_path_to_error names the field a type error is at; serde alone does not.
    let pod: k8s::Pod = serde_path_to_error::deserialize(&value).map_err(|e| {
        let field = e.path().to_string();
        err(
            if field == "." { String::new() } else { field },
            e.into_inner().to_string(),
        )
    })?;
    let round_trip =
        serde_json::to_value(&pod).map_err(|e| err("", format!("cannot re-encode: {e}")))?;
    unknown_fields(&value, &round_trip, "")?;
    supported_fields(&round_trip)?;
    build(pod)
}

/// A key present in `input` but not in `known` (the typed round trip) is not a field of
/// the Kubernetes type there. `null` values count as absent, as in Kubernetes.
fn unknown_fields(input: &Value, known: &Value, path: &str) -> Result<(), ManifestError> {
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, value) in i {
                if value.is_null() {
                    continue;
                }
                let child = join(path, key);
                match k.get(key) {
                    Some(known) => unknown_fields(value, known, &child)?,
                    None => return Err(err(child, "unknown field")),
                }
            }
            Ok(())
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (value, known)) in i.iter().zip(k).enumerate() {
                unknown_fields(value, known, &format!("{path}[{n}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
/// Informational metadata, plus what controllers set (owner, template hash labels).
const METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "labels",
    "annotations",
    "ownerReferences",
    "generateName",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "managedFields",
];
const SPEC: &[&str] = &[
    "containers",
    "volumes",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "nodeName",
    "hostNetwork",
];
const CONTAINER: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "workingDir",
    "resources",
    "volumeMounts",
    "readinessProbe",
    "ports",
    "terminationMessagePath",
    "terminationMessagePolicy",
];
const ENV: &[&str] = &["name", "value"];
const RESOURCES: &[&str] = &["requests", "limits"];
const RESOURCE_NAMES: &[&str] = &["cpu", "memory"];
const MOUNT: &[&str] = &["name", "mountPath", "readOnly"];
const PORT: &[&str] = &["name", "containerPort", "protocol"];
const PROBE: &[&str] = &[
    "exec",
    "httpGet",
    "tcpSocket",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
];
const HTTP_GET: &[&str] = &["port", "path", "scheme"];
const TCP_SOCKET: &[&str] = &["port"];
const EXEC: &[&str] = &["command"];
const VOLUME: &[&str] = &["name", "emptyDir", "hostPath", "persistentVolumeClaim"];
const EMPTY_DIR: &[&str] = &[];
const HOST_PATH: &[&str] = &["path", "type"];
const CLAIM: &[&str] = &["claimName", "readOnly"];

/// Checks every key against the subset the runtime implements.
fn supported_fields(pod: &Value) -> Result<(), ManifestError> {
    only(pod, "", TOP)?;
    only_at(pod, "metadata", METADATA)?;
    // A missing spec is reported after the name, by `build`.
    let Some(spec) = pod.get("spec") else {
        return Ok(());
    };
    only(spec, "spec", SPEC)?;
    for (n, c) in array(spec, "containers").iter().enumerate() {
        let path = format!("spec.containers[{n}]");
        only(c, &path, CONTAINER)?;
        for (e, env) in array(c, "env").iter().enumerate() {
            only(env, &format!("{path}.env[{e}]"), ENV)?;
        }
        if let Some(resources) = c.get("resources") {
            let at = format!("{path}.resources");
            only(resources, &at, RESOURCES)?;
            only_at(resources, "requests", RESOURCE_NAMES).map_err(|e| prefix(e, &at))?;
            only_at(resources, "limits", RESOURCE_NAMES).map_err(|e| prefix(e, &at))?;
        }
        for (m, mount) in array(c, "volumeMounts").iter().enumerate() {
            only(mount, &format!("{path}.volumeMounts[{m}]"), MOUNT)?;
        }
        for (p, port) in array(c, "ports").iter().enumerate() {
            only(port, &format!("{path}.ports[{p}]"), PORT)?;
        }
        if let Some(probe) = c.get("readinessProbe") {
            let at = format!("{path}.readinessProbe");
            only(probe, &at, PROBE)?;
            only_at(probe, "httpGet", HTTP_GET).map_err(|e| prefix(e, &at))?;
            only_at(probe, "tcpSocket", TCP_SOCKET).map_err(|e| prefix(e, &at))?;
            only_at(probe, "exec", EXEC).map_err(|e| prefix(e, &at))?;
        }
    }
    for (n, v) in array(spec, "volumes").iter().enumerate() {
        let path = format!("spec.volumes[{n}]");
        only(v, &path, VOLUME)?;
        only_at(v, "emptyDir", EMPTY_DIR).map_err(|e| prefix(e, &path))?;
        only_at(v, "hostPath", HOST_PATH).map_err(|e| prefix(e, &path))?;
        only_at(v, "persistentVolumeClaim", CLAIM).map_err(|e| prefix(e, &path))?;
    }
    Ok(())
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn prefix(mut e: ManifestError, path: &str) -> ManifestError {
    e.field = join(path, &e.field);
    e
}

fn only_at(value: &Value, key: &str, allowed: &[&str]) -> Result<(), ManifestError> {
    match value.get(key) {
        Some(inner) => only(inner, key, allowed),
        None => Ok(()),
    }
}

fn only(value: &Value, path: &str, allowed: &[&str]) -> Result<(), ManifestError> {
    if let Value::Object(map) = value
        && let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str()))
    {
        return Err(err(
            join(path, key),
            "not supported by the local runtime (supported here: ".to_owned()
                + &if allowed.is_empty() {
                    "no fields".to_owned()
                } else {
                    allowed.join(", ")
                }
                + ")",
        ));
    }
    Ok(())
}

/// A DNS label (RFC 1123): what Kubernetes requires of pod, container and volume names.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS subdomain (RFC 1123): what Kubernetes requires of pod names.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn build(pod: k8s::Pod) -> Result<PodManifest, ManifestError> {
    let meta = pod.metadata;
    let name = meta.name.ok_or_else(|| err("metadata.name", "required"))?;
    if !is_dns_subdomain(&name) {
        return Err(err(
            "metadata.name",
            format!("\"{name}\" is not a DNS subdomain (lower-case letters, digits, '-', '.')"),
        ));
    }
    let namespace = meta.namespace.unwrap_or_else(|| "default".to_owned());
    if !is_dns_label(&namespace) {
        return Err(err(
            "metadata.namespace",
            format!("\"{namespace}\" is not a DNS label"),
        ));
    }
    if let Some(uid) = &meta.uid
        && (uid.is_empty()
            || uid.len() > 64
            || !uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(err(
            "metadata.uid",
            "must be letters, digits and '-' (at most 64)",
        ));
    }
    let annotations = meta.annotations.unwrap_or_default();
    let rootfs = match annotations.get(ROOTFS_ANNOTATION).map(String::as_str) {
        None | Some("image") => Rootfs::Image,
        Some("host") => Rootfs::Host,
        Some(other) => {
            return Err(err(
                format!("metadata.annotations[{ROOTFS_ANNOTATION}]"),
                format!("\"{other}\" is neither \"host\" nor \"image\""),
            ));
        }
    };
    if let Some(id) = annotations.get(RESTORE_ANNOTATION)
        && (id.is_empty()
            || id.len() > 63
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        return Err(err(
            format!("metadata.annotations[{RESTORE_ANNOTATION}]"),
            format!(
                "\"{id}\" is not a checkpoint id (lower-case letters, digits, '-', at most 63)"
            ),
        ));
    }
    let spec = pod.spec.ok_or_else(|| err("spec", "required"))?;
    if spec.host_network == Some(false) {
        return Err(err(
            "spec.hostNetwork",
            "the local runtime runs pods on the host network only",
        ));
    }
    let restart_policy = match spec.restart_policy.as_deref() {
        None | Some("Always") => RestartPolicy::Always,
        Some("OnFailure") => RestartPolicy::OnFailure,
        Some("Never") => RestartPolicy::Never,
        Some(other) => {
            return Err(err(
                "spec.restartPolicy",
                format!("\"{other}\" is not Always, OnFailure or Never"),
            ));
        }
    };
    let grace_period = match spec.termination_grace_period_seconds {
        None => DEFAULT_GRACE,
        Some(s) => Duration::from_secs(u64::try_from(s).map_err(|_| {
            err(
                "spec.terminationGracePeriodSeconds",
                format!("{s} is negative"),
            )
        })?),
    };
    let mut volumes = Vec::new();
    for (n, v) in spec.volumes.unwrap_or_default().into_iter().enumerate() {
        volumes.push(volume(v, &format!("spec.volumes[{n}]"))?);
    }
    for (i, v) in volumes.iter().enumerate() {
        if volumes[..i].iter().any(|o| o.name == v.name) {
            return Err(err(
                format!("spec.volumes[{i}].name"),
                format!("\"{}\" is used twice", v.name),
            ));
        }
    }
    if spec.containers.is_empty() {
        return Err(err("spec.containers", "at least one container is required"));
    }
    if spec.containers.len() > MAX_CONTAINERS {
        return Err(err(
            "spec.containers",
            format!("more than {MAX_CONTAINERS} containers"),
        ));
    }
    let mut containers = Vec::new();
    for (n, c) in spec.containers.into_iter().enumerate() {
        let path = format!("spec.containers[{n}]");
        let c = container(c, &path, &volumes, rootfs)?;
        if containers
            .iter()
            .any(|o: &ContainerManifest| o.name == c.name)
        {
            return Err(err(
                format!("{path}.name"),
                format!("\"{}\" is used twice", c.name),
            ));
        }
        containers.push(c);
    }
    Ok(PodManifest {
        namespace,
        name,
        uid: meta.uid,
        labels: meta.labels.unwrap_or_default(),
        annotations,
        node_name: spec.node_name.filter(|n| !n.is_empty()),
        restart_policy,
        grace_period,
        rootfs,
        containers,
        volumes,
    })
}

fn volume(v: k8s::Volume, path: &str) -> Result<Volume, ManifestError> {
    if !is_dns_label(&v.name) {
        return Err(err(
            format!("{path}.name"),
            format!("\"{}\" is not a DNS label", v.name),
        ));
    }
    let sources = [
        v.empty_dir.is_some(),
        v.host_path.is_some(),
        v.persistent_volume_claim.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(err(
            path,
            "exactly one of emptyDir, hostPath and persistentVolumeClaim is required",
        ));
    }
    let source = if let Some(h) = v.host_path {
        if !h.path.starts_with('/') {
            return Err(err(
                format!("{path}.hostPath.path"),
                format!("\"{}\" is not an absolute path", h.path),
            ));
        }
        match h.type_.as_deref() {
            None | Some("" | "Directory" | "DirectoryOrCreate") => {}
            Some(other) => {
                return Err(err(
                    format!("{path}.hostPath.type"),
                    format!("\"{other}\" is not supported (Directory, DirectoryOrCreate)"),
                ));
            }
        }
        VolumeSource::HostPath(h.path)
    } else if let Some(c) = v.persistent_volume_claim {
        if !is_dns_subdomain(&c.claim_name) {
            return Err(err(
                format!("{path}.persistentVolumeClaim.claimName"),
                format!("\"{}\" is not a DNS subdomain", c.claim_name),
            ));
        }
        VolumeSource::Claim {
            name: c.claim_name,
            read_only: c.read_only.unwrap_or(false),
        }
    } else {
        VolumeSource::EmptyDir
    };
    Ok(Volume {
        name: v.name,
        source,
    })
}

fn container(
    c: k8s::Container,
    path: &str,
    volumes: &[Volume],
    rootfs: Rootfs,
) -> Result<ContainerManifest, ManifestError> {
    if !is_dns_label(&c.name) {
        return Err(err(
            format!("{path}.name"),
            format!("\"{}\" is not a DNS label", c.name),
        ));
    }
    let image = c.image.unwrap_or_default();
    if image.is_empty() && rootfs == Rootfs::Image {
        return Err(err(format!("{path}.image"), "required"));
    }
    if let Some(policy) = c.image_pull_policy.as_deref()
        && policy == "Always"
    {
        return Err(err(
            format!("{path}.imagePullPolicy"),
            "Always needs a registry; the local runtime uses containerd's image store \
             (IfNotPresent or Never)",
        ));
    }
    let command = c.command.unwrap_or_default();
    let args = c.args.unwrap_or_default();
    if rootfs == Rootfs::Host && command.is_empty() {
        return Err(err(
            format!("{path}.command"),
            "required with aistor.io/rootfs: host (there is no image entrypoint)",
        ));
    }
    let mut env = Vec::new();
    for (e, var) in c.env.unwrap_or_default().into_iter().enumerate() {
        if var.name.is_empty() || var.name.contains('=') || var.name.contains('\0') {
            return Err(err(
                format!("{path}.env[{e}].name"),
                format!("\"{}\" is not a variable name", var.name),
            ));
        }
        env.push((var.name, var.value.unwrap_or_default()));
    }
    for port in c.ports.unwrap_or_default() {
        // Informational on the host network; only the protocol could matter.
        if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
            return Err(err(format!("{path}.ports"), "only TCP ports are supported"));
        }
    }
    let resources = resources(
        c.resources.unwrap_or_default(),
        &format!("{path}.resources"),
    )?;
    let mut mounts = Vec::new();
    for (m, mount) in c.volume_mounts.unwrap_or_default().into_iter().enumerate() {
        let at = format!("{path}.volumeMounts[{m}]");
        if !volumes.iter().any(|v| v.name == mount.name) {
            return Err(err(
                format!("{at}.name"),
                format!("no volume named \"{}\"", mount.name),
            ));
        }
        if !mount.mount_path.starts_with('/')
            || mount.mount_path.split('/').any(|part| part == "..")
        {
            return Err(err(
                format!("{at}.mountPath"),
                format!("\"{}\" is not an absolute path", mount.mount_path),
            ));
        }
        mounts.push(Mount {
            volume: mount.name,
            path: mount.mount_path,
            read_only: mount.read_only.unwrap_or(false),
        });
    }
    let readiness = c
        .readiness_probe
        .map(|p| probe(p, &format!("{path}.readinessProbe")))
        .transpose()?;
    Ok(ContainerManifest {
        name: c.name,
        image,
        command,
        args,
        env,
        working_dir: c.working_dir.filter(|w| !w.is_empty()),
        resources,
        mounts,
        readiness,
    })
}

fn resources(r: k8s::ResourceRequirements, path: &str) -> Result<Resources, ManifestError> {
    let get = |map: &Option<
        BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               kind: &str,
               key: &str|
     -> Result<Option<u64>, ManifestError> {
        let Some(q) = map.as_ref().and_then(|m| m.get(key)) else {
            return Ok(None);
        };
        let value = if key == "cpu" {
            crate::quantity::cpu_millicores(&q.0).map(|m| m.ceil() as u64)
        } else {
            crate::quantity::bytes(&q.0)
        };
        value.map(Some).ok_or_else(|| {
            err(
                format!("{path}.{kind}.{key}"),
                format!("\"{}\" is not a quantity", q.0),
            )
        })
    };
    let cpu_limit_millis = get(&r.limits, "limits", "cpu")?;
    let memory_limit_bytes = get(&r.limits, "limits", "memory")?;
    // The API server's defaulting: a limit without a request is also the request.
    let out = Resources {
        cpu_request_millis: get(&r.requests, "requests", "cpu")?.or(cpu_limit_millis),
        cpu_limit_millis,
        memory_request_bytes: get(&r.requests, "requests", "memory")?.or(memory_limit_bytes),
        memory_limit_bytes,
    };
    // As the API server: a request above its limit is invalid.
    for (kind, request, limit) in [
        ("cpu", out.cpu_request_millis, out.cpu_limit_millis),
        ("memory", out.memory_request_bytes, out.memory_limit_bytes),
    ] {
        if let (Some(request), Some(limit)) = (request, limit)
            && request > limit
        {
            return Err(err(
                format!("{path}.requests.{kind}"),
                "must be less than or equal to the limit",
            ));
        }
    }
    Ok(out)
}

fn probe(p: k8s::Probe, path: &str) -> Result<Probe, ManifestError> {
    let seconds = |v: Option<i32>, field: &str, default: i32, min: i32| {
        let v = v.unwrap_or(default);
        if v < min {
            Err(err(
                format!("{path}.{field}"),
                format!("{v} is less than {min}"),
            ))
        } else {
            Ok(v as u32)
        }
    };
    let port = |port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
                field: &str|
     -> Result<u16, ManifestError> {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        match port {
            IntOrString::Int(n) => u16::try_from(*n)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| err(format!("{path}.{field}"), format!("{n} is not a port"))),
            IntOrString::String(s) => Err(err(
                format!("{path}.{field}"),
                format!("named port \"{s}\" is not supported; give the number"),
            )),
        }
    };
    let action = match (p.exec, p.http_get, p.tcp_socket) {
        (Some(exec), None, None) => {
            let command = exec.command.unwrap_or_default();
            if command.is_empty() {
                return Err(err(format!("{path}.exec.command"), "required"));
            }
            ProbeAction::Exec(command)
        }
        (None, Some(http), None) => {
            if http.scheme.as_deref().is_some_and(|s| s != "HTTP") {
                return Err(err(
                    format!("{path}.httpGet.scheme"),
                    "only HTTP is supported",
                ));
            }
            let url_path = http.path.unwrap_or_else(|| "/".to_owned());
            if !url_path.starts_with('/') || url_path.chars().any(char::is_control) {
                return Err(err(
                    format!("{path}.httpGet.path"),
                    format!("\"{url_path}\" is not an absolute URL path"),
                ));
            }
            ProbeAction::Http {
                port: port(&http.port, "httpGet.port")?,
                path: url_path,
            }
        }
        (None, None, Some(tcp)) => ProbeAction::Tcp {
            port: port(&tcp.port, "tcpSocket.port")?,
        },
        _ => {
            return Err(err(
                path,
                "exactly one of exec, httpGet and tcpSocket is required",
            ));
        }
    };
    Ok(Probe {
        action,
        initial_delay: Duration::from_secs(u64::from(seconds(
            p.initial_delay_seconds,
            "initialDelaySeconds",
            0,
            0,
        )?)),
        period: Duration::from_secs(u64::from(seconds(
            p.period_seconds,
            "periodSeconds",
            10,
            1,
        )?)),
        timeout: Duration::from_secs(u64::from(seconds(
            p.timeout_seconds,
            "timeoutSeconds",
            1,
            1,
        )?)),
        success_threshold: seconds(p.success_threshold, "successThreshold", 1, 1)?,
        failure_threshold: seconds(p.failure_threshold, "failureThreshold", 3, 1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_with(container: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [container]}})
    }

    fn error_of(value: Value) -> String {
        from_value(value).unwrap_err().to_string()
    }

    #[test]
    fn a_full_pod_is_reduced_to_what_runs() {
        let pod = from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "train", "namespace": "ml", "uid": "u-1",
                         "labels": {"app": "t"}, "annotations": {"a": "b"}},
            "spec": {
                "restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 7,
                "nodeName": "n1", "hostNetwork": true,
                "volumes": [{"name": "d", "emptyDir": {}},
                            {"name": "h", "hostPath": {"path": "/srv", "type": "Directory"}},
                            {"name": "c", "persistentVolumeClaim": {"claimName": "ckpt", "readOnly": true}}],
                "containers": [{
                    "name": "main", "image": "img:1", "imagePullPolicy": "IfNotPresent",
                    "command": ["python3"], "args": ["-c", "1"], "workingDir": "/w",
                    "env": [{"name": "A", "value": "1"}, {"name": "B"}],
                    "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                  "limits": {"cpu": "1", "memory": "128Mi"}},
                    "volumeMounts": [{"name": "d", "mountPath": "/d"},
                                     {"name": "c", "mountPath": "/c", "readOnly": true}],
                    "readinessProbe": {"httpGet": {"port": 80, "path": "/healthz"},
                                       "initialDelaySeconds": 2, "periodSeconds": 3,
                                       "timeoutSeconds": 4, "successThreshold": 1,
                                       "failureThreshold": 5}
                }]
            }
        }))
        .unwrap();
        assert_eq!((pod.namespace.as_str(), pod.name.as_str()), ("ml", "train"));
        assert_eq!(pod.uid.as_deref(), Some("u-1"));
        assert_eq!(pod.labels["app"], "t");
        assert_eq!(pod.annotations["a"], "b");
        assert_eq!(pod.node_name.as_deref(), Some("n1"));
        assert_eq!(pod.restart_policy, RestartPolicy::OnFailure);
        assert_eq!(pod.grace_period, Duration::from_secs(7));
        assert_eq!(pod.rootfs, Rootfs::Image);
        assert_eq!(
            pod.volumes,
            vec![
                Volume {
                    name: "d".into(),
                    source: VolumeSource::EmptyDir
                },
                Volume {
                    name: "h".into(),
                    source: VolumeSource::HostPath("/srv".into())
                },
                Volume {
                    name: "c".into(),
                    source: VolumeSource::Claim {
                        name: "ckpt".into(),
                        read_only: true
                    }
                },
            ]
        );
        let c = &pod.containers[0];
        assert_eq!(c.command, ["python3"]);
        assert_eq!(c.args, ["-c", "1"]);
        assert_eq!(c.working_dir.as_deref(), Some("/w"));
        assert_eq!(
            c.env,
            [("A".into(), "1".into()), ("B".into(), String::new())]
        );
        assert_eq!(
            c.resources,
            Resources {
                cpu_request_millis: Some(250),
                cpu_limit_millis: Some(1000),
                memory_request_bytes: Some(64 << 20),
                memory_limit_bytes: Some(128 << 20),
            }
        );
        assert_eq!(
            c.mounts,
            [
                Mount {
                    volume: "d".into(),
                    path: "/d".into(),
                    read_only: false
                },
                Mount {
                    volume: "c".into(),
                    path: "/c".into(),
                    read_only: true
                },
            ]
        );
        assert_eq!(
            c.readiness,
            Some(Probe {
                action: ProbeAction::Http {
                    port: 80,
                    path: "/healthz".into()
                },
                initial_delay: Duration::from_secs(2),
                period: Duration::from_secs(3),
                timeout: Duration::from_secs(4),
                success_threshold: 1,
                failure_threshold: 5,
            })
        );
    }

    #[test]
    fn defaults_are_kubernetes_defaults() {
        let pod = from_value(pod_with(json!({"name": "c", "image": "i",
            "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
            "readinessProbe": {"tcpSocket": {"port": 9}}})))
        .unwrap();
        assert_eq!(pod.namespace, "default");
        assert_eq!(pod.uid, None);
        assert_eq!(pod.restart_policy, RestartPolicy::Always);
        assert_eq!(pod.grace_period, Duration::from_secs(30));
        let c = &pod.containers[0];
        // A limit without a request is also the request.
        assert_eq!(c.resources.cpu_request_millis, Some(2000));
        assert_eq!(c.resources.memory_request_bytes, Some(1 << 30));
        let p = c.readiness.as_ref().unwrap();
        assert_eq!(p.action, ProbeAction::Tcp { port: 9 });
        assert_eq!(
            (
                p.initial_delay,
                p.period,
                p.timeout,
                p.success_threshold,
                p.failure_threshold
            ),
            (
                Duration::ZERO,
                Duration::from_secs(10),
                Duration::from_secs(1),
                1,
                3
            )
        );
        let exec = from_value(pod_with(json!({"name": "c", "image": "i",
            "readinessProbe": {"exec": {"command": ["true"]}}})))
        .unwrap();
        assert_eq!(
            exec.containers[0].readiness.as_ref().unwrap().action,
            ProbeAction::Exec(vec!["true".into()])
        );
        let http = from_value(pod_with(json!({"name": "c", "image": "i",
            "readinessProbe": {"httpGet": {"port": 8080, "scheme": "HTTP"}}})))
        .unwrap();
        assert_eq!(
            http.containers[0].readiness.as_ref().unwrap().action,
            ProbeAction::Http {
                port: 8080,
                path: "/".into()
            }
        );
        // null is absent, as in Kubernetes.
        let nulls = from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": null},
            "spec": {"volumes": null, "containers": [{"name": "c", "image": "i", "env": null}]}}));
        assert!(nulls.is_ok(), "{nulls:?}");
    }

    #[test]
    fn typos_and_unsupported_fields_are_named() {
        let e = error_of(pod_with(json!({"name": "c", "image": "i", "imagee": "x"})));
        assert_eq!(e, "spec.containers[0].imagee: unknown field");
        let e = error_of(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}],
                     "initContainers": [{"name": "i", "image": "i"}]}}),
        );
        assert!(
            e.starts_with("spec.initContainers: not supported by the local runtime"),
            "{e}"
        );
        let e = error_of(pod_with(json!({"name": "c", "image": "i",
            "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]})));
        assert!(
            e.starts_with("spec.containers[0].env[0].valueFrom: not supported"),
            "{e}"
        );
        let e = error_of(pod_with(json!({"name": "c", "image": "i",
            "ports": [{"containerPort": 80, "hostPort": 80}]})));
        assert!(
            e.starts_with("spec.containers[0].ports[0].hostPort: not supported"),
            "{e}"
        );
        let e = error_of(pod_with(json!({"name": "c", "image": "i",
            "resources": {"limits": {"nvidia.com/gpu": "1"}}})));
        assert!(
            e.starts_with("spec.containers[0].resources.limits.nvidia.com/gpu: not supported"),
            "{e}"
        );
        let e = error_of(pod_with(json!({"name": "c", "image": "i",
            "readinessProbe": {"grpc": {"port": 1}}})));
        assert!(
            e.starts_with("spec.containers[0].readinessProbe.grpc: not supported"),
            "{e}"
        );
        let e = error_of(pod_with(json!({"name": "c", "image": "i",
            "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "x"}]})));
        assert!(
            e.starts_with("spec.containers[0].volumeMounts[0].subPath: not supported"),
            "{e}"
        );
        let e = error_of(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}],
                     "volumes": [{"name": "v", "configMap": {"name": "x"}}]}}),
        );
        assert!(
            e.starts_with("spec.volumes[0].configMap: not supported"),
            "{e}"
        );
        let e = error_of(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}],
                     "volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}}]}}),
        );
        assert!(
            e.starts_with("spec.volumes[0].emptyDir.medium: not supported"),
            "{e}"
        );
        assert!(e.contains("(supported here: no fields)"), "{e}");
        let e = error_of(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "finalizers": ["x"]}, "spec": {"containers": [{"name": "c", "image": "i"}]}}));
        assert!(e.starts_with("metadata.finalizers: not supported"), "{e}");
        let e = error_of(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}],
                     "tolerations": [{"key": "k"}]}}),
        );
        assert!(e.starts_with("spec.tolerations: not supported"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"kind": "Pod"}), "apiVersion: required (v1)"),
            (
                json!({"apiVersion": "apps/v1", "kind": "Pod"}),
                "apiVersion: \"apps/v1\" is not v1",
            ),
            (json!({"apiVersion": "v1"}), "kind: required (Pod)"),
            (
                json!({"apiVersion": "v1", "kind": "Service"}),
                "kind: \"Service\" is not Pod",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
                "metadata.name: required",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
                "spec: required",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"}, "spec": {"containers": []}}),
                "metadata.name: \"Bad_Name\" is not a DNS subdomain (lower-case letters, digits, '-', '.')",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "a.b"}, "spec": {"containers": []}}),
                "metadata.namespace: \"a.b\" is not a DNS label",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "a/b"}, "spec": {"containers": []}}),
                "metadata.uid: must be letters, digits and '-' (at most 64)",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}),
                "spec.containers: at least one container is required",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                    "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "i"}]}}),
                "spec.restartPolicy: \"Sometimes\" is not Always, OnFailure or Never",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                    "spec": {"terminationGracePeriodSeconds": -1, "containers": [{"name": "c", "image": "i"}]}}),
                "spec.terminationGracePeriodSeconds: -1 is negative",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                    "spec": {"hostNetwork": false, "containers": [{"name": "c", "image": "i"}]}}),
                "spec.hostNetwork: the local runtime runs pods on the host network only",
            ),
            (
                pod_with(json!({"name": "C", "image": "i"})),
                "spec.containers[0].name: \"C\" is not a DNS label",
            ),
            (
                pod_with(json!({"name": "c"})),
                "spec.containers[0].image: required",
            ),
            (
                pod_with(json!({"name": "c", "image": "i", "imagePullPolicy": "Always"})),
                "spec.containers[0].imagePullPolicy: Always needs a registry; the local runtime uses containerd's image store (IfNotPresent or Never)",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "resources": {"limits": {"memory": "12Mx"}}}),
                ),
                "spec.containers[0].resources.limits.memory: \"12Mx\" is not a quantity",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "resources": {"requests": {"cpu": "lots"}}}),
                ),
                "spec.containers[0].resources.requests.cpu: \"lots\" is not a quantity",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}),
                ),
                "spec.containers[0].resources.requests.cpu: must be less than or equal to the limit",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}),
                ),
                "spec.containers[0].resources.requests.memory: must be less than or equal to the limit",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "env": [{"name": "A=B", "value": "x"}]}),
                ),
                "spec.containers[0].env[0].name: \"A=B\" is not a variable name",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "ports": [{"containerPort": 53, "protocol": "UDP"}]}),
                ),
                "spec.containers[0].ports: only TCP ports are supported",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}),
                ),
                "spec.containers[0].volumeMounts[0].name: no volume named \"v\"",
            ),
            (
                pod_with(json!({"name": "c", "image": "i", "readinessProbe": {}})),
                "spec.containers[0].readinessProbe: exactly one of exec, httpGet and tcpSocket is required",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"exec": {"command": ["a"]}, "tcpSocket": {"port": 1}}}),
                ),
                "spec.containers[0].readinessProbe: exactly one of exec, httpGet and tcpSocket is required",
            ),
            (
                pod_with(json!({"name": "c", "image": "i", "readinessProbe": {"exec": {}}})),
                "spec.containers[0].readinessProbe.exec.command: required",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"tcpSocket": {"port": "http"}}}),
                ),
                "spec.containers[0].readinessProbe.tcpSocket.port: named port \"http\" is not supported; give the number",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"tcpSocket": {"port": 70000}}}),
                ),
                "spec.containers[0].readinessProbe.tcpSocket.port: 70000 is not a port",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"tcpSocket": {"port": 0}}}),
                ),
                "spec.containers[0].readinessProbe.tcpSocket.port: 0 is not a port",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"httpGet": {"port": 1, "scheme": "HTTPS"}}}),
                ),
                "spec.containers[0].readinessProbe.httpGet.scheme: only HTTP is supported",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"httpGet": {"port": 1, "path": "x"}}}),
                ),
                "spec.containers[0].readinessProbe.httpGet.path: \"x\" is not an absolute URL path",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 0}}),
                ),
                "spec.containers[0].readinessProbe.periodSeconds: 0 is less than 1",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"tcpSocket": {"port": 1}, "initialDelaySeconds": -1}}),
                ),
                "spec.containers[0].readinessProbe.initialDelaySeconds: -1 is less than 0",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"tcpSocket": {"port": 1}, "failureThreshold": 0}}),
                ),
                "spec.containers[0].readinessProbe.failureThreshold: 0 is less than 1",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"tcpSocket": {"port": 1}, "successThreshold": 0}}),
                ),
                "spec.containers[0].readinessProbe.successThreshold: 0 is less than 1",
            ),
            (
                pod_with(
                    json!({"name": "c", "image": "i", "readinessProbe": {"tcpSocket": {"port": 1}, "timeoutSeconds": 0}}),
                ),
                "spec.containers[0].readinessProbe.timeoutSeconds: 0 is less than 1",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(error_of(value.clone()), expected, "{value}");
        }
    }

    #[test]
    fn volumes_and_names_are_checked() {
        let with_volumes = |volumes: Value, mounts: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"volumes": volumes,
                            "containers": [{"name": "c", "image": "i", "volumeMounts": mounts}]}})
        };
        let e = error_of(with_volumes(json!([{"name": "v"}]), json!([])));
        assert_eq!(
            e,
            "spec.volumes[0]: exactly one of emptyDir, hostPath and persistentVolumeClaim is required"
        );
        let e = error_of(with_volumes(
            json!([{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
            json!([]),
        ));
        assert!(e.starts_with("spec.volumes[0]: exactly one"), "{e}");
        let e = error_of(with_volumes(
            json!([{"name": "V", "emptyDir": {}}]),
            json!([]),
        ));
        assert_eq!(e, "spec.volumes[0].name: \"V\" is not a DNS label");
        let e = error_of(with_volumes(
            json!([{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
            json!([]),
        ));
        assert_eq!(e, "spec.volumes[1].name: \"v\" is used twice");
        let e = error_of(with_volumes(
            json!([{"name": "v", "hostPath": {"path": "rel"}}]),
            json!([]),
        ));
        assert_eq!(
            e,
            "spec.volumes[0].hostPath.path: \"rel\" is not an absolute path"
        );
        let e = error_of(with_volumes(
            json!([{"name": "v", "hostPath": {"path": "/s", "type": "Socket"}}]),
            json!([]),
        ));
        assert_eq!(
            e,
            "spec.volumes[0].hostPath.type: \"Socket\" is not supported (Directory, DirectoryOrCreate)"
        );
        let e = error_of(with_volumes(
            json!([{"name": "v", "persistentVolumeClaim": {"claimName": "../x"}}]),
            json!([]),
        ));
        assert_eq!(
            e,
            "spec.volumes[0].persistentVolumeClaim.claimName: \"../x\" is not a DNS subdomain"
        );
        let e = error_of(with_volumes(
            json!([{"name": "v", "emptyDir": {}}]),
            json!([{"name": "v", "mountPath": "/a/../../etc"}]),
        ));
        assert_eq!(
            e,
            "spec.containers[0].volumeMounts[0].mountPath: \"/a/../../etc\" is not an absolute path"
        );
        let e = error_of(with_volumes(
            json!([{"name": "v", "emptyDir": {}}]),
            json!([{"name": "v", "mountPath": "rel"}]),
        ));
        assert_eq!(
            e,
            "spec.containers[0].volumeMounts[0].mountPath: \"rel\" is not an absolute path"
        );
        let e = error_of(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "c", "image": "j"}]}}),
        );
        assert_eq!(e, "spec.containers[1].name: \"c\" is used twice");
        let many: Vec<Value> = (0..65)
            .map(|n| json!({"name": format!("c{n}"), "image": "i"}))
            .collect();
        let e = error_of(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": many}}),
        );
        assert_eq!(e, "spec.containers: more than 64 containers");
        let sixty_four: Vec<Value> = (0..64)
            .map(|n| json!({"name": format!("c{n}"), "image": "i"}))
            .collect();
        assert!(
            from_value(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": sixty_four}})
            )
            .is_ok()
        );
        for (claim, ok) in [("a.b-c", true), ("a..b", false), ("", false)] {
            let r = from_value(with_volumes(
                json!([{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]),
                json!([]),
            ));
            assert_eq!(r.is_ok(), ok, "{claim}: {r:?}");
        }
        assert!(
            is_dns_label("a-1") && !is_dns_label("-a") && !is_dns_label("a-") && !is_dns_label("")
        );
        assert!(is_dns_label(&"a".repeat(63)) && !is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("a.b") && !is_dns_subdomain(&format!("{}.b", "a".repeat(252))));
        let long_uid = "a".repeat(65);
        let e = error_of(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": long_uid}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        assert!(e.starts_with("metadata.uid"), "{e}");
        assert!(from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "a".repeat(64)}, "spec": {"containers": [{"name": "c", "image": "i"}]}})).is_ok());
    }

    #[test]
    fn host_rootfs_needs_a_command_and_images_are_optional() {
        let host = |c: Value| {
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {ROOTFS_ANNOTATION: "host"}},
            "spec": {"containers": [c]}})
        };
        let pod = from_value(host(json!({"name": "c", "command": ["python3"]}))).unwrap();
        assert_eq!(pod.rootfs, Rootfs::Host);
        assert_eq!(pod.containers[0].image, "");
        let e = error_of(host(json!({"name": "c", "image": "i"})));
        assert_eq!(
            e,
            "spec.containers[0].command: required with aistor.io/rootfs: host (there is no image entrypoint)"
        );
        let e = error_of(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {ROOTFS_ANNOTATION: "hostile"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}));
        assert_eq!(
            e,
            "metadata.annotations[aistor.io/rootfs]: \"hostile\" is neither \"host\" nor \"image\""
        );
        for (id, ok) in [
            ("ckpt-1a2b", true),
            ("", false),
            ("Ckpt", false),
            ("a/b", false),
        ] {
            let r = from_value(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "annotations": {RESTORE_ANNOTATION: id}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}));
            assert_eq!(r.is_ok(), ok, "{id}: {r:?}");
        }
        // 63 characters are allowed, 64 are not.
        let longest = from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {RESTORE_ANNOTATION: "x".repeat(63)}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}));
        assert!(longest.is_ok(), "{longest:?}");
        let e = error_of(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {RESTORE_ANNOTATION: "x".repeat(64)}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}));
        assert!(
            e.starts_with("metadata.annotations[aistor.io/restore-from]: "),
            "{e}"
        );
        let explicit = from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {ROOTFS_ANNOTATION: "image"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}))
        .unwrap();
        assert_eq!(explicit.rootfs, Rootfs::Image);
    }

    #[test]
    fn json_errors_name_where() {
        let e = parse(b"{").unwrap_err().to_string();
        assert!(e.starts_with("not JSON"), "{e}");
        let e = parse(b"[]").unwrap_err().to_string();
        assert_eq!(e, "a Pod manifest is a JSON object");
        let e = error_of(pod_with(
            json!({"name": "c", "image": "i", "ports": [{"containerPort": "x"}]}),
        ));
        assert!(
            e.starts_with("spec.containers[0].ports[0].containerPort: invalid type"),
            "{e}"
        );
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        let e = parse(&big).unwrap_err().to_string();
        assert!(e.contains("more than the 1048576 allowed"), "{e}");
        let ok = serde_json::to_vec(&pod_with(json!({"name": "c", "image": "i"}))).unwrap();
        assert!(parse(&ok).is_ok());
        // Exactly the limit is allowed (trailing whitespace is still JSON).
        let mut at_limit = ok.clone();
        at_limit.resize(MAX_MANIFEST_BYTES, b' ');
        assert!(parse(&at_limit).is_ok());
        let e = err("", "plain").to_string();
        assert_eq!(e, "plain");
    }

    #[test]
    fn restart_policies() {
        assert!(RestartPolicy::Always.restarts(0) && RestartPolicy::Always.restarts(1));
        assert!(!RestartPolicy::OnFailure.restarts(0) && RestartPolicy::OnFailure.restarts(1));
        assert!(!RestartPolicy::Never.restarts(0) && !RestartPolicy::Never.restarts(1));
    }
}
