//! The Kubernetes Pod manifests the local runtime accepts, checked and reduced to what it
//! runs. Pure: JSON in, a [`PodManifest`] or an error naming the field out.
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
    let Some(spec) = pod.get("spec") else {
        return Err(err("spec", "required"));
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
            aistor_core::quantity::cpu_millicores(&q.0).map(|m| m.ceil() as u64)
        } else {
            aistor_core::quantity::bytes(&q.0)
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
