//! Offline validation of the kustomize base in `deploy/base` and of the overlays built on it
//! (`deploy/overlays/gpu`); no cluster involved. Every check below runs on every rendering, so an
//! overlay keeps every property of the base; the overlay's own changes are asserted separately.
//!
//! 1. `kubectl kustomize <dir>` renders the stream.
//! 2. Every document is deserialised into its k8s-openapi type by `kind` (an unknown kind fails), and
//!    serialising it back must give the same document: a field k8s-openapi does not know (a typo) would
//!    otherwise be dropped silently.
//! 3. The properties that matter for the agent and the coordinator are asserted on the typed objects;
//!    the RBAC must grant exactly the calls in `aistor_coordinator::k8s::API_CALLS` (the list the
//!    `k8s_*` tests check every request against), and the generated CRDs must all be applied.
//! 4. `kubernetes-validate --strict` checks the stream against the OpenAPI schemas of the same
//!    Kubernetes version as the k8s-openapi feature.
//!
//! A missing tool (kubectl, kubernetes-validate) skips its part with a note on stderr, unless
//! `AISTOR_REQUIRE_TOOLS=1`, where it fails.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Write as _};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use aistor_coordinator::k8s::{API_CALLS, Scope, crd};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    Container, Namespace, PodSecurityContext, PodSpec, Probe, Service, ServiceAccount,
};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{Metadata, NamespaceResourceScope, Resource};
use serde::Deserialize as _;
use serde_json::Value;

/// The coordinator's namespace (Pod Security `restricted`).
const NAMESPACE: &str = "aistor-system";
/// The agents' namespace (Pod Security `privileged`: hostPath mounts, and hostPID on GPU nodes).
const AGENT_NAMESPACE: &str = "aistor-node";
const AGENT: &str = "aistor-agent";
const COORDINATOR: &str = "aistor-coordinator";
/// The Kubernetes version the schemas are checked against; matches the k8s-openapi feature (`v1_37`).
const KUBERNETES_VERSION: &str = "1.37.0";
/// The kustomizations rendered, relative to the repository root.
const BASE: &str = "deploy/base";
const GPU_OVERLAY: &str = "deploy/overlays/gpu";
/// The checkpoints overlay plus what the agent needs for kubelet pods' checkpoints and freezes.
const MIGRATION_OVERLAY: &str = "deploy/overlays/migration";
/// The capabilities the migration overlay adds back to the agent (its manifest says why).
const MIGRATION_CAPABILITIES: [&str; 2] = ["KILL", "DAC_READ_SEARCH"];
/// The env vars the NVIDIA container runtime reads; the GPU overlay sets them, the base must not.
const NVIDIA_ENV: [(&str, &str); 2] = [
    ("NVIDIA_VISIBLE_DEVICES", "all"),
    ("NVIDIA_DRIVER_CAPABILITIES", "utility"),
];
const GPU_NODE_LABEL: &str = "nvidia.com/gpu.present";

// ---------------------------------------------------------------------------------------------------
// Rendering and typing
// ---------------------------------------------------------------------------------------------------

macro_rules! kinds {
    ($($kind:ident),* $(,)?) => {
        /// Every kind the manifests may contain. A new kind is added here, and to the checks below.
        // Test-only and a handful of values: variant sizes do not matter.
        #[allow(clippy::large_enum_variant)]
        enum Object {
            $($kind($kind)),*
        }

        impl Object {
            fn from_value(value: Value) -> Result<Self, String> {
                let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
                match kind.as_str() {
                    $(stringify!($kind) => serde_json::from_value::<$kind>(value)
                        .map(Object::$kind)
                        .map_err(|e| format!("{kind} does not deserialise into k8s-openapi: {e}")),)*
                    other => Err(format!(
                        "unknown kind {other:?}: add it to the test's `kinds!` list (and its checks) \
                         or remove it from the manifests"
                    )),
                }
            }

            fn kind(&self) -> &'static str {
                match self {
                    $(Object::$kind(_) => <$kind as Resource>::KIND,)*
                }
            }

            fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Object::$kind(o) => o.metadata(),)*
                }
            }

            fn is_namespaced(&self) -> bool {
                match self {
                    $(Object::$kind(_) => TypeId::of::<<$kind as Resource>::Scope>()
                        == TypeId::of::<NamespaceResourceScope>(),)*
                }
            }

            fn to_value(&self) -> Value {
                match self {
                    $(Object::$kind(o) => serde_json::to_value(o).expect("k8s-openapi serialises"),)*
                }
            }
        }
    };
}

kinds!(
    Namespace,
    ServiceAccount,
    ClusterRole,
    ClusterRoleBinding,
    Role,
    RoleBinding,
    CustomResourceDefinition,
    DaemonSet,
    Deployment,
    Service,
    PersistentVolume,
    PersistentVolumeClaim,
    NetworkPolicy
);

struct Document {
    raw: Value,
    object: Object,
}

impl Document {
    fn id(&self) -> String {
        format!(
            "{}/{}",
            self.object.kind(),
            self.object
                .metadata()
                .name
                .as_deref()
                .unwrap_or("<unnamed>")
        )
    }
}

struct Rendered {
    /// The kustomization, relative to the repository root.
    dir: &'static str,
    yaml: String,
    documents: Vec<Document>,
}

fn repo_dir(dir: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    path.canonicalize().unwrap_or(path)
}

/// A tool the test needs is not installed: fail under `AISTOR_REQUIRE_TOOLS=1`, otherwise say so on
/// stderr (written directly, so the note shows even though the test harness captures `eprintln!`).
fn tool_missing(tool: &str, what: &str) {
    if std::env::var("AISTOR_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{tool} is required (AISTOR_REQUIRE_TOOLS=1) but was not found on PATH");
    }
    let _ = writeln!(
        std::io::stderr(),
        "deploy_manifests: skipped {what}: {tool} not found on PATH (set AISTOR_REQUIRE_TOOLS=1 to fail instead)"
    );
}

/// Runs a tool; `None` when it is not installed (not on PATH, or a pyenv/asdf shim answering 127).
fn run_tool(command: &mut Command) -> Option<Output> {
    match command.output() {
        Ok(output) if output.status.code() == Some(127) => None,
        Ok(output) => Some(output),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => panic!("could not run {command:?}: {e}"),
    }
}

fn render(dir: &'static str) -> Option<Rendered> {
    let path = repo_dir(dir);
    let Some(output) = run_tool(Command::new("kubectl").arg("kustomize").arg(&path)) else {
        tool_missing("kubectl", &format!("rendering {dir}"));
        return None;
    };
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed ({}):\n{}",
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).expect("kustomize output is UTF-8");

    let mut documents = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(&yaml).enumerate() {
        let raw = Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("document {index} of the rendered {dir} is not YAML: {e}"));
        if raw.is_null() {
            continue; // an empty document between separators
        }
        let object = Object::from_value(raw.clone())
            .unwrap_or_else(|e| panic!("document {index} of the rendered {dir}: {e}"));
        documents.push(Document { raw, object });
    }
    assert!(
        !documents.is_empty(),
        "kustomize rendered no objects from {dir}"
    );
    Some(Rendered {
        dir,
        yaml,
        documents,
    })
}

/// `deploy/base`, rendered once per test binary; `None` when kubectl is missing (and not required).
fn rendered() -> Option<&'static Rendered> {
    static RENDERED: OnceLock<Option<Rendered>> = OnceLock::new();
    RENDERED.get_or_init(|| render(BASE)).as_ref()
}

/// `deploy/overlays/gpu`, rendered once per test binary, like [`rendered`].
fn rendered_gpu() -> Option<&'static Rendered> {
    static RENDERED: OnceLock<Option<Rendered>> = OnceLock::new();
    RENDERED.get_or_init(|| render(GPU_OVERLAY)).as_ref()
}

/// `deploy/overlays/checkpoints`, rendered once per test binary, like [`rendered`].
fn rendered_checkpoints() -> Option<&'static Rendered> {
    static RENDERED: OnceLock<Option<Rendered>> = OnceLock::new();
    RENDERED
        .get_or_init(|| render("deploy/overlays/checkpoints"))
        .as_ref()
}

/// `deploy/overlays/migration`, rendered once per test binary, like [`rendered`].
fn rendered_migration() -> Option<&'static Rendered> {
    static RENDERED: OnceLock<Option<Rendered>> = OnceLock::new();
    RENDERED.get_or_init(|| render(MIGRATION_OVERLAY)).as_ref()
}

/// Runs `check` on the base and on every overlay. The kustomization being checked is printed first,
/// so a failure (whose output the harness shows) names it.
fn each_rendering(check: impl Fn(&Rendered)) {
    for rendered in [
        rendered(),
        rendered_gpu(),
        rendered_checkpoints(),
        rendered_migration(),
    ]
    .into_iter()
    .flatten()
    {
        println!("checking {}", rendered.dir);
        check(rendered);
    }
}

impl Rendered {
    fn find<'a, T>(&'a self, name: &str, pick: impl Fn(&'a Object) -> Option<&'a T>) -> &'a T {
        self.documents
            .iter()
            .filter(|d| d.object.metadata().name.as_deref() == Some(name))
            .find_map(|d| pick(&d.object))
            .unwrap_or_else(|| {
                panic!(
                    "the rendered {} has no object named {name} of that kind",
                    self.dir
                )
            })
    }

    fn daemon_set(&self, name: &str) -> &DaemonSet {
        self.find(name, |o| match o {
            Object::DaemonSet(x) => Some(x),
            _ => None,
        })
    }

    fn deployment(&self, name: &str) -> &Deployment {
        self.find(name, |o| match o {
            Object::Deployment(x) => Some(x),
            _ => None,
        })
    }

    fn service(&self, name: &str) -> &Service {
        self.find(name, |o| match o {
            Object::Service(x) => Some(x),
            _ => None,
        })
    }

    fn namespace(&self, name: &str) -> &Namespace {
        self.find(name, |o| match o {
            Object::Namespace(x) => Some(x),
            _ => None,
        })
    }

    fn network_policies(&self) -> impl Iterator<Item = &NetworkPolicy> {
        self.documents.iter().filter_map(|d| match &d.object {
            Object::NetworkPolicy(x) => Some(x),
            _ => None,
        })
    }

    fn service_account(&self, name: &str) -> &ServiceAccount {
        self.find(name, |o| match o {
            Object::ServiceAccount(x) => Some(x),
            _ => None,
        })
    }

    fn cluster_roles(&self) -> impl Iterator<Item = &ClusterRole> {
        self.documents.iter().filter_map(|d| match &d.object {
            Object::ClusterRole(x) => Some(x),
            _ => None,
        })
    }

    fn roles(&self) -> impl Iterator<Item = &Role> {
        self.documents.iter().filter_map(|d| match &d.object {
            Object::Role(x) => Some(x),
            _ => None,
        })
    }

    fn role_bindings(&self) -> impl Iterator<Item = &RoleBinding> {
        self.documents.iter().filter_map(|d| match &d.object {
            Object::RoleBinding(x) => Some(x),
            _ => None,
        })
    }

    fn cluster_role_bindings(&self) -> impl Iterator<Item = &ClusterRoleBinding> {
        self.documents.iter().filter_map(|d| match &d.object {
            Object::ClusterRoleBinding(x) => Some(x),
            _ => None,
        })
    }

    /// `(object id, pod spec, pod template labels)` of every workload.
    fn pod_templates(&self) -> Vec<(String, &PodSpec, BTreeMap<String, String>)> {
        let mut out = Vec::new();
        for d in &self.documents {
            let template = match &d.object {
                Object::DaemonSet(x) => &x.spec.template,
                Object::Deployment(x) => &x.spec.template,
                _ => continue,
            };
            let spec = template
                .spec
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no pod spec", d.id()));
            let labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            out.push((d.id(), spec, labels));
        }
        out
    }
}

fn pod_spec_of_daemon_set(ds: &DaemonSet) -> &PodSpec {
    ds.spec
        .template
        .spec
        .as_ref()
        .expect("the DaemonSet has a pod spec")
}

fn pod_spec_of_deployment(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("the Deployment has a pod spec")
}

fn template_labels_of_deployment(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// Init containers and containers: every check that holds for one must hold for all.
fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
}

// ---------------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------------

/// Paths present in `original` that are missing or different in `round_trip`.
fn differences(original: &Value, round_trip: &Value, path: &str, out: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => differences(value, other, &here, out),
                    None => out.push(format!("{here} (unknown to k8s-openapi)")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        // kustomize writes a schema's `minimum: 1.0` as `1`; the same number either way.
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) => out.push(format!("{path} ({a} became {b})")),
    }
}

#[test]
fn every_document_is_a_known_kind_and_has_no_unknown_fields() {
    each_rendering(|rendered| {
        let kinds: BTreeSet<&str> = rendered.documents.iter().map(|d| d.object.kind()).collect();
        for expected in [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "CustomResourceDefinition",
            "DaemonSet",
            "Deployment",
            "Service",
            "NetworkPolicy",
        ] {
            assert!(
                kinds.contains(expected),
                "{} renders no {expected}",
                rendered.dir
            );
        }
        for d in &rendered.documents {
            let mut diff = Vec::new();
            differences(&d.raw, &d.object.to_value(), "", &mut diff);
            assert!(
                diff.is_empty(),
                "{} does not survive a k8s-openapi round trip (misspelt or misplaced fields?): {diff:#?}",
                d.id()
            );
        }
    });
}

/// The namespace an object belongs in: the agent's objects (and the checkpoint claim it mounts)
/// in the agents' namespace, everything else in the coordinator's.
fn home_namespace(d: &Document) -> &'static str {
    let name = d.object.metadata().name.as_deref().unwrap_or_default();
    let agents = name.starts_with(AGENT) || name == "aistor-checkpoints";
    let policy_of = |ns: &str| {
        matches!(&d.object, Object::NetworkPolicy(_))
            && d.object.metadata().namespace.as_deref() == Some(ns)
    };
    if agents || policy_of(AGENT_NAMESPACE) {
        AGENT_NAMESPACE
    } else {
        NAMESPACE
    }
}

#[test]
fn namespaced_objects_live_in_their_components_namespace() {
    each_rendering(|rendered| {
        for d in &rendered.documents {
            let namespace = d.object.metadata().namespace.as_deref();
            if d.object.is_namespaced() {
                let home = home_namespace(d);
                assert_eq!(
                    namespace,
                    Some(home),
                    "{} must be in namespace {home}",
                    d.id()
                );
            } else {
                assert_eq!(
                    namespace,
                    None,
                    "{} is cluster-scoped and must not name a namespace",
                    d.id()
                );
            }
            let labels = d.object.metadata().labels.clone().unwrap_or_default();
            assert_eq!(
                labels.get("app.kubernetes.io/part-of").map(String::as_str),
                Some("aistor"),
                "{} must carry app.kubernetes.io/part-of: aistor",
                d.id()
            );
        }
        for ns in [NAMESPACE, AGENT_NAMESPACE] {
            rendered.namespace(ns);
        }
    });
}

/// Pod Security Admission: the coordinator's namespace enforces, audits and warns at `restricted`;
/// the agents' namespace is `privileged` (hostPath and hostPID are admitted by no other level) and
/// holds nothing but the agent.
#[test]
fn pod_security_levels_per_namespace() {
    each_rendering(|rendered| {
        let level = |ns: &str, mode: &str| {
            rendered
                .namespace(ns)
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(&format!("pod-security.kubernetes.io/{mode}")))
                .cloned()
        };
        for mode in ["enforce", "audit", "warn"] {
            assert_eq!(
                level(NAMESPACE, mode).as_deref(),
                Some("restricted"),
                "{}: namespace {NAMESPACE} pod-security {mode}",
                rendered.dir
            );
        }
        assert_eq!(
            level(AGENT_NAMESPACE, "enforce").as_deref(),
            Some("privileged")
        );
        for (owner, _, _) in rendered.pod_templates() {
            let d = rendered
                .documents
                .iter()
                .find(|d| d.id() == owner)
                .expect("the owner");
            let ns = d.object.metadata().namespace.as_deref();
            if owner == format!("DaemonSet/{AGENT}") {
                assert_eq!(ns, Some(AGENT_NAMESPACE), "{owner}");
            } else {
                assert_eq!(ns, Some(NAMESPACE), "{owner} belongs with the coordinator");
            }
        }
        // What `restricted` demands of the coordinator's pod, field by field (the API server
        // would refuse the pod otherwise).
        let pod = pod_spec_of_deployment(rendered.deployment(COORDINATOR));
        assert!(
            pod.host_pid != Some(true)
                && pod.host_network != Some(true)
                && pod.host_ipc != Some(true),
            "restricted: no host namespaces"
        );
        assert!(
            pod.volumes.iter().flatten().all(|v| v.host_path.is_none()),
            "restricted: no hostPath"
        );
        for container in all_containers(pod) {
            assert_hardened("Deployment/aistor-coordinator", pod, container);
            assert!(
                container
                    .ports
                    .iter()
                    .flatten()
                    .all(|p| p.host_port.is_none()),
                "restricted: no hostPort"
            );
        }
    });
}

fn assert_hardened(owner: &str, pod: &PodSpec, container: &Container) {
    assert_hardened_adding(owner, pod, container, &[]);
}

/// [`assert_hardened`], with `added` the only capabilities added back.
fn assert_hardened_adding(owner: &str, pod: &PodSpec, container: &Container, added: &[&str]) {
    let who = format!("{owner} container {}", container.name);
    let sc = container
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("{who} has no securityContext"));
    assert_eq!(
        sc.read_only_root_filesystem,
        Some(true),
        "{who}: readOnlyRootFilesystem must be true"
    );
    assert_eq!(
        sc.allow_privilege_escalation,
        Some(false),
        "{who}: allowPrivilegeEscalation must be false"
    );
    assert_ne!(sc.privileged, Some(true), "{who} must not be privileged");
    let caps = sc.capabilities.as_ref();
    assert!(
        caps.and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|c| c == "ALL")),
        "{who}: capabilities must drop ALL"
    );
    let adds: Vec<&str> = caps
        .and_then(|c| c.add.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(
        adds, added,
        "{who}: only these capabilities may be added back (if a read needs one, justify it in the manifest and here)"
    );
    let seccomp = sc
        .seccomp_profile
        .as_ref()
        .or_else(|| pod.security_context.as_ref()?.seccomp_profile.as_ref());
    assert_eq!(
        seccomp.map(|p| p.type_.as_str()),
        Some("RuntimeDefault"),
        "{who}: seccompProfile must be RuntimeDefault (pod or container level)"
    );
}

fn assert_probe(who: &str, container: &Container, probe: Option<&Probe>, path: &str) {
    let get = probe
        .and_then(|p| p.http_get.as_ref())
        .unwrap_or_else(|| panic!("{who} needs an httpGet probe on {path}"));
    assert_eq!(
        get.path.as_deref(),
        Some(path),
        "{who}: the probe must GET {path}"
    );
    assert!(
        port_declared(container, &get.port),
        "{who}: the probe on {path} targets port {:?}, which the container does not declare",
        get.port
    );
}

fn port_declared(container: &Container, port: &IntOrString) -> bool {
    container.ports.iter().flatten().any(|p| match port {
        IntOrString::Int(n) => p.container_port == *n,
        IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

#[test]
fn agent_daemon_set_reads_the_host_safely() {
    each_rendering(|rendered| {
        let ds = rendered.daemon_set(AGENT);
        let pod = pod_spec_of_daemon_set(ds);
        let who = format!("DaemonSet/{AGENT}");

        // hostPID only where NVML needs it (the GPU overlay) and where checkpoint hooks
        // signal host pids (the migration overlay); never the host's network or IPC.
        let migration = rendered.dir == MIGRATION_OVERLAY;
        let want_host_pid = rendered.dir == GPU_OVERLAY || migration;
        assert_eq!(
            pod.host_pid.unwrap_or(false),
            want_host_pid,
            "{who}: hostPID only under the GPU overlay (NVML's per-process use) and the migration overlay (signal hooks); /proc is read through the /host/proc mount"
        );
        assert_ne!(pod.host_network, Some(true), "{who}: no hostNetwork");
        assert_ne!(pod.host_ipc, Some(true), "{who}: no hostIPC");
        assert!(
            pod.tolerations
                .iter()
                .flatten()
                .any(|t| t.operator.as_deref() == Some("Exists")
                    && t.key.is_none()
                    && t.effect.is_none()),
            "{who} must tolerate every taint: a toleration with operator Exists and no key or effect"
        );

        // Every hostPath volume is mounted read-only wherever it is mounted, but the cgroup
        // filesystem under the migration overlay (the freezer is written).
        let host_paths: BTreeMap<&str, &str> = pod
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| Some((v.name.as_str(), v.host_path.as_ref()?.path.as_str())))
            .collect();
        assert!(!host_paths.is_empty(), "{who} mounts no hostPath volume");
        for container in all_containers(pod) {
            for mount in container.volume_mounts.iter().flatten() {
                if let Some(host_path) = host_paths.get(mount.name.as_str())
                    && !(migration && *host_path == "/sys/fs/cgroup")
                {
                    assert_eq!(
                        mount.read_only,
                        Some(true),
                        "{who} container {}: hostPath {host_path} mounted at {} must be readOnly",
                        container.name,
                        mount.mount_path
                    );
                }
            }
        }

        let agent = pod
            .containers
            .iter()
            .find(|c| c.name == "agent")
            .unwrap_or_else(|| panic!("{who} has no container named agent"));

        // /proc and /sys are mounted under the configured host root.
        let host_root = env_value(agent, "AISTOR_AGENT_HOST_ROOT")
            .unwrap_or_else(|| panic!("{who}: AISTOR_AGENT_HOST_ROOT is not set"));
        for host in ["/proc", "/sys"] {
            let want = format!("{host_root}{host}");
            assert!(
                agent
                    .volume_mounts
                    .iter()
                    .flatten()
                    .any(|m| m.mount_path == want && host_paths.get(m.name.as_str()) == Some(&host)),
                "{who}: hostPath {host} must be mounted at {want} (AISTOR_AGENT_HOST_ROOT + {host})"
            );
        }

        let node_name = agent
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "AISTOR_AGENT_NODE_NAME")
            .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
            .map(|f| f.field_path.as_str());
        assert_eq!(
            node_name,
            Some("spec.nodeName"),
            "{who}: AISTOR_AGENT_NODE_NAME must come from fieldRef spec.nodeName"
        );

        assert_probe(&who, agent, agent.liveness_probe.as_ref(), "/live");
        assert_probe(&who, agent, agent.readiness_probe.as_ref(), "/ready");

        for container in all_containers(pod) {
            let added: &[&str] = if migration && container.name == "agent" {
                &MIGRATION_CAPABILITIES
            } else {
                &[]
            };
            assert_hardened_adding(&who, pod, container, added);
            let resources = container.resources.as_ref();
            for (what, map) in [
                ("requests", resources.and_then(|r| r.requests.as_ref())),
                ("limits", resources.and_then(|r| r.limits.as_ref())),
            ] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        map.is_some_and(|m| m.contains_key(resource)),
                        "{who} container {} must set resources.{what}.{resource}",
                        container.name
                    );
                }
            }
        }
    });
}

#[test]
fn coordinator_runs_as_non_root() {
    each_rendering(|rendered| {
        let deployment = rendered.deployment(COORDINATOR);
        let pod = pod_spec_of_deployment(deployment);
        let who = format!("Deployment/{COORDINATOR}");
        let pod_sc: Option<&PodSecurityContext> = pod.security_context.as_ref();
        for container in all_containers(pod) {
            let sc = container.security_context.as_ref();
            let non_root = sc
                .and_then(|s| s.run_as_non_root)
                .or_else(|| pod_sc?.run_as_non_root);
            assert_eq!(
                non_root,
                Some(true),
                "{who} container {}: runAsNonRoot must be true",
                container.name
            );
            let user = sc
                .and_then(|s| s.run_as_user)
                .or_else(|| pod_sc?.run_as_user);
            assert!(
                user.is_some_and(|u| u != 0),
                "{who} container {}: runAsUser must be set to a non-zero uid (got {user:?})",
                container.name
            );
            assert_hardened(&who, pod, container);
            assert!(
                container
                    .resources
                    .as_ref()
                    .and_then(|r| r.limits.as_ref())
                    .is_some_and(|l| l.contains_key("memory")),
                "{who} container {} must set a memory limit",
                container.name
            );
        }
    });
}

/// `(apiGroup, resource, verb)` triples a rule grants, refusing what the coordinator never
/// needs: wildcards, resourceNames (the objects it acts on are not known in advance) and
/// non-resource URLs.
fn grants(who: &str, rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        for (field, values) in [
            ("apiGroups", rule.api_groups.as_ref()),
            ("resources", rule.resources.as_ref()),
            ("verbs", Some(&rule.verbs)),
        ] {
            assert!(
                !values.into_iter().flatten().any(|v| v.contains('*')),
                "{who}: wildcard in {field}"
            );
        }
        assert!(
            rule.resource_names.as_ref().is_none_or(Vec::is_empty)
                && rule.non_resource_urls.as_ref().is_none_or(Vec::is_empty),
            "{who}: resourceNames and nonResourceURLs are not used by the coordinator"
        );
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

/// What `k8s::API_CALLS` says the coordinator does in `scope`, as RBAC triples.
fn calls(scope: Scope) -> BTreeSet<(String, String, String)> {
    API_CALLS
        .iter()
        .filter(|c| c.scope == scope)
        .flat_map(|c| {
            c.verbs
                .iter()
                .map(|v| (c.group.to_owned(), c.resource.to_owned(), (*v).to_owned()))
        })
        .collect()
}

fn describe(triples: &BTreeSet<(String, String, String)>) -> Vec<String> {
    triples
        .iter()
        .map(|(g, r, v)| {
            format!(
                "{v} {}{r}",
                if g.is_empty() {
                    String::new()
                } else {
                    format!("{g}/")
                }
            )
        })
        .collect()
}

#[test]
fn rbac_grants_exactly_the_calls_the_coordinator_makes() {
    each_rendering(|rendered| {
        let mut cluster = BTreeSet::new();
        // The API-access roles (api-access-rbac.yaml) are for people to bind, not the
        // coordinator's; they grant only aistor.io's virtual `api` resource.
        for role in rendered.cluster_roles().filter(|r| {
            !r.metadata
                .name
                .as_deref()
                .unwrap_or_default()
                .starts_with("aistor-api-")
        }) {
            let name = role.metadata.name.as_deref().unwrap_or_default();
            assert!(
                role.aggregation_rule.is_none(),
                "ClusterRole/{name} must not aggregate other roles"
            );
            cluster.extend(grants(
                &format!("ClusterRole/{name}"),
                role.rules.as_deref().unwrap_or_default(),
            ));
        }
        let mut own_namespace = BTreeSet::new();
        for role in rendered.roles() {
            let name = role.metadata.name.as_deref().unwrap_or_default();
            assert_eq!(
                role.metadata.namespace.as_deref(),
                Some(NAMESPACE),
                "Role/{name}: the coordinator's namespaced grants are in its own namespace"
            );
            own_namespace.extend(grants(
                &format!("Role/{name}"),
                role.rules.as_deref().unwrap_or_default(),
            ));
        }
        for (what, granted, wanted) in [
            ("ClusterRole", &cluster, calls(Scope::Cluster)),
            (
                "Role (own namespace)",
                &own_namespace,
                calls(Scope::OwnNamespace),
            ),
        ] {
            let extra: BTreeSet<_> = granted.difference(&wanted).cloned().collect();
            let missing: BTreeSet<_> = wanted.difference(granted).cloned().collect();
            assert!(
                extra.is_empty() && missing.is_empty(),
                "{}: the {what} grants differ from k8s::API_CALLS.\n  granted but never called: {:?}\n  called but not granted: {:?}",
                rendered.dir,
                describe(&extra),
                describe(&missing)
            );
        }
    });
}

#[test]
fn the_crds_the_coordinator_uses_are_applied() {
    each_rendering(|rendered| {
        let applied: BTreeSet<String> = rendered
            .documents
            .iter()
            .filter_map(|d| match &d.object {
                Object::CustomResourceDefinition(c) => c.metadata.name.clone(),
                _ => None,
            })
            .collect();
        let generated: BTreeSet<String> = crd::definitions()
            .into_iter()
            .filter_map(|(_, c)| c.metadata.name)
            .collect();
        assert_eq!(applied, generated, "{}: the CRDs applied", rendered.dir);
        // The store's calls on them are granted (checked against API_CALLS above); make sure
        // that list names every one of them.
        for name in &generated {
            let (plural, group) = name.split_once('.').unwrap_or_default();
            assert!(
                API_CALLS
                    .iter()
                    .any(|c| c.group == group && c.resource == plural),
                "k8s::API_CALLS has no call on {name}"
            );
        }
    });
}

#[test]
fn service_accounts_and_bindings_line_up() {
    each_rendering(|rendered| {
        let agent_pod = pod_spec_of_daemon_set(rendered.daemon_set(AGENT));
        assert_eq!(
            agent_pod.service_account_name.as_deref(),
            Some(AGENT),
            "DaemonSet/{AGENT} must use the {AGENT} ServiceAccount"
        );
        assert_eq!(
            rendered
                .service_account(AGENT)
                .automount_service_account_token,
            Some(false),
            "ServiceAccount/{AGENT}: automountServiceAccountToken must be false (the agent never calls the API server)"
        );
        assert_ne!(
            agent_pod.automount_service_account_token,
            Some(true),
            "DaemonSet/{AGENT} must not mount a service account token"
        );

        let coordinator_pod = pod_spec_of_deployment(rendered.deployment(COORDINATOR));
        assert_eq!(
            coordinator_pod.service_account_name.as_deref(),
            Some(COORDINATOR),
            "Deployment/{COORDINATOR} must use the {COORDINATOR} ServiceAccount"
        );
        rendered.service_account(COORDINATOR);

        let roles: BTreeSet<&str> = rendered
            .cluster_roles()
            .filter_map(|r| r.metadata.name.as_deref())
            .collect();
        let mut bound = false;
        for binding in rendered.cluster_role_bindings() {
            let name = binding.metadata.name.as_deref().unwrap_or_default();
            assert!(
                binding.role_ref.kind == "ClusterRole"
                    && roles.contains(binding.role_ref.name.as_str()),
                "ClusterRoleBinding/{name} must reference a ClusterRole of the manifests, not {:?}",
                binding.role_ref.name
            );
            for subject in binding.subjects.iter().flatten() {
                assert_eq!(
                    (subject.kind.as_str(), subject.namespace.as_deref()),
                    ("ServiceAccount", Some(NAMESPACE)),
                    "ClusterRoleBinding/{name}: subjects must be ServiceAccounts in {NAMESPACE}"
                );
                assert_ne!(
                    subject.name, AGENT,
                    "ClusterRoleBinding/{name}: the agent must hold no RBAC"
                );
                bound |= subject.name == COORDINATOR;
            }
        }
        assert!(
            bound,
            "no ClusterRoleBinding grants the {COORDINATOR} ServiceAccount its ClusterRole"
        );

        let namespaced_roles: BTreeSet<&str> = rendered
            .roles()
            .filter_map(|r| r.metadata.name.as_deref())
            .collect();
        let mut bound = false;
        for binding in rendered.role_bindings() {
            let name = binding.metadata.name.as_deref().unwrap_or_default();
            assert!(
                binding.role_ref.kind == "Role"
                    && namespaced_roles.contains(binding.role_ref.name.as_str()),
                "RoleBinding/{name} must reference a Role of the manifests, not {:?}",
                binding.role_ref.name
            );
            for subject in binding.subjects.iter().flatten() {
                assert_eq!(
                    (
                        subject.kind.as_str(),
                        subject.name.as_str(),
                        subject.namespace.as_deref()
                    ),
                    ("ServiceAccount", COORDINATOR, Some(NAMESPACE)),
                    "RoleBinding/{name}: only the coordinator's ServiceAccount"
                );
                bound = true;
            }
        }
        assert!(
            bound || namespaced_roles.is_empty(),
            "no RoleBinding grants the {COORDINATOR} ServiceAccount its Role"
        );
    });
}

/// `repo[:port]/name:tag` or `...@sha256:...`; a tag of `latest` does not count.
fn image_is_pinned(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    matches!(last.split_once(':'), Some((name, tag)) if !name.is_empty() && !tag.is_empty() && tag != "latest")
}

#[test]
fn every_container_image_has_a_tag() {
    each_rendering(|rendered| {
        let templates = rendered.pod_templates();
        assert!(
            !templates.is_empty(),
            "{} renders no workloads",
            rendered.dir
        );
        for (owner, pod, _) in templates {
            for container in all_containers(pod) {
                let image = container.image.as_deref().unwrap_or_default();
                assert!(
                    image_is_pinned(image),
                    "{owner} container {}: image {image:?} needs an explicit tag (not latest) or digest",
                    container.name
                );
            }
        }
    });
}

#[test]
fn image_tag_rule() {
    assert!(image_is_pinned("aistor/agent:0.1.0"));
    assert!(image_is_pinned("registry.example:5000/aistor/agent:0.1.0"));
    assert!(image_is_pinned("aistor/agent@sha256:0123"));
    assert!(!image_is_pinned("aistor/agent"));
    assert!(!image_is_pinned("registry.example:5000/aistor/agent"));
    assert!(!image_is_pinned("aistor/agent:latest"));
    assert!(!image_is_pinned(""));
}

#[test]
fn service_selects_the_coordinator_pods() {
    each_rendering(|rendered| {
        let service = rendered.service(COORDINATOR);
        let spec = service.spec.as_ref().expect("the Service has a spec");
        let selector = spec.selector.clone().unwrap_or_default();
        assert!(
            !selector.is_empty(),
            "Service/{COORDINATOR} needs a selector"
        );

        let deployment = rendered.deployment(COORDINATOR);
        let labels = template_labels_of_deployment(deployment);
        for (key, value) in &selector {
            assert_eq!(
                labels.get(key),
                Some(value),
                "Service/{COORDINATOR} selects {key}={value}, which the coordinator pods do not carry"
            );
        }
        for (owner, _, labels) in rendered.pod_templates() {
            if owner != format!("Deployment/{COORDINATOR}") {
                assert!(
                    !selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
                    "Service/{COORDINATOR} also selects the pods of {owner}"
                );
            }
        }

        // Every Service port lands on a declared coordinator port.
        let pod = pod_spec_of_deployment(deployment);
        let ports = spec.ports.as_deref().unwrap_or_default();
        assert!(!ports.is_empty(), "Service/{COORDINATOR} exposes no port");
        for port in ports {
            let target = port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.port));
            assert!(
                pod.containers.iter().any(|c| port_declared(c, &target)),
                "Service/{COORDINATOR} port {} targets {target:?}, which no coordinator container declares",
                port.port
            );
        }
        let grpc = ports
            .iter()
            .find(|p| p.name.as_deref() == Some("grpc"))
            .unwrap_or_else(|| panic!("Service/{COORDINATOR} needs a port named grpc"));
        assert_eq!(
            grpc.app_protocol.as_deref(),
            Some("grpc"),
            "Service/{COORDINATOR}: the grpc port must declare appProtocol grpc"
        );

        // The agent dials exactly this Service.
        let agent_pod = pod_spec_of_daemon_set(rendered.daemon_set(AGENT));
        let url = agent_pod
            .containers
            .iter()
            .find_map(|c| env_value(c, "AISTOR_AGENT_COORDINATOR"))
            .expect("the agent sets AISTOR_AGENT_COORDINATOR");
        let want_host = format!("{COORDINATOR}.{NAMESPACE}.svc");
        let (host, port) = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once(':'))
            .unwrap_or_else(|| panic!("AISTOR_AGENT_COORDINATOR {url:?} is not http://host:port"));
        assert_eq!(
            host, want_host,
            "AISTOR_AGENT_COORDINATOR must name the coordinator Service"
        );
        assert_eq!(
            port.parse::<i32>().ok(),
            Some(grpc.port),
            "AISTOR_AGENT_COORDINATOR must use the Service's grpc port"
        );
    });
}

#[test]
fn kubernetes_validate_strict_accepts_every_rendering() {
    each_rendering(|rendered| {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("rendered.yaml");
        std::fs::write(&file, &rendered.yaml).expect("write the rendered manifests");
        let Some(output) = run_tool(
            Command::new("kubernetes-validate")
                .args([
                    "--strict",
                    "--quiet",
                    "--kubernetes-version",
                    KUBERNETES_VERSION,
                ])
                .arg(&file),
        ) else {
            tool_missing(
                "kubernetes-validate",
                "schema validation (pip install kubernetes-validate)",
            );
            return;
        };
        assert!(
            output.status.success(),
            "kubernetes-validate --strict (Kubernetes {KUBERNETES_VERSION}) rejected the rendered {} ({}):\n{}{}",
            rendered.dir,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

// ---------------------------------------------------------------------------------------------------
// Agent configuration and the GPU overlay
// ---------------------------------------------------------------------------------------------------

fn agent_of(rendered: &Rendered) -> (&PodSpec, &Container) {
    let pod = pod_spec_of_daemon_set(rendered.daemon_set(AGENT));
    let agent = pod
        .containers
        .iter()
        .find(|c| c.name == "agent")
        .unwrap_or_else(|| panic!("DaemonSet/{AGENT} has no container named agent"));
    (pod, agent)
}

/// The hostPath (path, type) of the volume mounted in `container` at exactly `mount_path`.
fn host_path_mounted_at<'a>(
    pod: &'a PodSpec,
    container: &Container,
    mount_path: &str,
) -> Option<(&'a str, Option<&'a str>)> {
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == mount_path)?;
    let host_path = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)?
        .host_path
        .as_ref()?;
    Some((host_path.path.as_str(), host_path.type_.as_deref()))
}

#[test]
fn agent_env_points_at_the_mounted_sockets_and_the_nodes_dcgm_exporter() {
    each_rendering(|rendered| {
        let (pod, agent) = agent_of(rendered);
        let who = format!("{} DaemonSet/{AGENT}", rendered.dir);
        let env = |name: &str| {
            env_value(agent, name).unwrap_or_else(|| panic!("{who}: {name} is not set"))
        };

        // containerd: the socket exactly where the host's socket is mounted.
        let containerd = env("AISTOR_AGENT_CONTAINERD_SOCKET");
        assert_eq!(
            host_path_mounted_at(pod, agent, containerd),
            Some(("/run/containerd/containerd.sock", Some("Socket"))),
            "{who}: AISTOR_AGENT_CONTAINERD_SOCKET={containerd} must be where the host's containerd socket is mounted"
        );
        assert_eq!(env("AISTOR_AGENT_CONTAINERD_NAMESPACES"), "k8s.io");

        // pod-resources: kubelet.sock inside the mounted kubelet directory.
        let pod_resources = env("AISTOR_AGENT_POD_RESOURCES_SOCKET");
        let (dir, file) = pod_resources
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("{who}: {pod_resources} is not a path"));
        assert_eq!(
            file, "kubelet.sock",
            "{who}: AISTOR_AGENT_POD_RESOURCES_SOCKET"
        );
        assert_eq!(
            host_path_mounted_at(pod, agent, dir),
            Some(("/var/lib/kubelet/pod-resources", Some("Directory"))),
            "{who}: AISTOR_AGENT_POD_RESOURCES_SOCKET={pod_resources} must be inside the mounted \
             kubelet pod-resources directory"
        );

        assert_eq!(env("AISTOR_AGENT_GPU_SOURCE"), "auto", "{who}");

        // DCGM: the pod is not on the host network, so the node-local exporter is reached by the
        // node's IP. Kubernetes expands $(HOST_IP) only from a variable defined earlier in the list.
        assert_ne!(
            pod.host_network,
            Some(true),
            "{who}: on the host network the DCGM URL would not need HOST_IP"
        );
        let vars = agent.env.as_deref().unwrap_or_default();
        let host_ip = vars
            .iter()
            .position(|e| {
                e.name == "HOST_IP"
                    && e.value_from
                        .as_ref()
                        .and_then(|v| v.field_ref.as_ref())
                        .is_some_and(|f| f.field_path == "status.hostIP")
            })
            .unwrap_or_else(|| panic!("{who}: HOST_IP must come from fieldRef status.hostIP"));
        let dcgm = vars
            .iter()
            .position(|e| e.name == "AISTOR_AGENT_DCGM_URL")
            .unwrap_or_else(|| panic!("{who}: AISTOR_AGENT_DCGM_URL is not set"));
        assert_eq!(
            vars[dcgm].value.as_deref(),
            Some("http://$(HOST_IP):9400/metrics"),
            "{who}"
        );
        assert!(
            host_ip < dcgm,
            "{who}: HOST_IP must be defined before AISTOR_AGENT_DCGM_URL, which uses it"
        );
    });
}

/// Whether any container requests or limits an `nvidia.com/gpu`.
fn takes_a_gpu(pod: &PodSpec) -> bool {
    all_containers(pod).any(|c| {
        let r = c.resources.as_ref();
        [
            r.and_then(|r| r.requests.as_ref()),
            r.and_then(|r| r.limits.as_ref()),
        ]
        .into_iter()
        .flatten()
        .any(|m| m.keys().any(|k| k.starts_with("nvidia.com/")))
    })
}

#[test]
fn the_base_is_gpu_agnostic() {
    let Some(rendered) = rendered() else { return };
    let (pod, agent) = agent_of(rendered);
    let who = format!("{BASE} DaemonSet/{AGENT}");
    assert_eq!(
        pod.runtime_class_name, None,
        "{who}: the base uses the default runtime (the nvidia one is deploy/overlays/gpu's)"
    );
    assert!(
        pod.node_selector.is_none() && pod.affinity.is_none(),
        "{who}: the base runs on every node"
    );
    for (name, _) in NVIDIA_ENV {
        assert_eq!(
            env_value(agent, name),
            None,
            "{who}: {name} belongs in the GPU overlay"
        );
    }
    assert!(!takes_a_gpu(pod), "{who} must not take a GPU");
}

/// `value` with the object at `path` (keys) removed; `true` when it was there.
fn remove_at(value: &mut Value, path: &[&str]) -> bool {
    let (last, parents) = path.split_last().expect("a path");
    let mut here = value;
    for key in parents {
        match here.get_mut(*key) {
            Some(next) => here = next,
            None => return false,
        }
    }
    here.as_object_mut().and_then(|o| o.remove(*last)).is_some()
}

#[test]
fn gpu_overlay_runs_the_agent_under_the_nvidia_runtime_on_gpu_nodes() {
    let Some(overlay) = rendered_gpu() else {
        return;
    };
    let (pod, agent) = agent_of(overlay);
    let who = format!("{GPU_OVERLAY} DaemonSet/{AGENT}");

    assert_eq!(
        pod.runtime_class_name.as_deref(),
        Some("nvidia"),
        "{who}: the NVIDIA container runtime injects libnvidia-ml and the device nodes"
    );
    assert_eq!(
        pod.node_selector.clone().unwrap_or_default(),
        BTreeMap::from([(GPU_NODE_LABEL.to_owned(), "true".to_owned())]),
        "{who}: only GPU nodes have the nvidia runtime"
    );
    for (name, value) in NVIDIA_ENV {
        assert_eq!(env_value(agent, name), Some(value), "{who}: {name}");
    }
    assert!(
        !takes_a_gpu(pod),
        "{who}: the agent reads every GPU through NVIDIA_VISIBLE_DEVICES=all and must not take one \
         from the device plugin"
    );

    // The overlay is the base plus exactly these: every other object and field is the base's.
    let Some(base) = rendered() else { return };
    let ids = |r: &Rendered| {
        r.documents
            .iter()
            .map(Document::id)
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        ids(overlay),
        ids(base),
        "{GPU_OVERLAY} renders the base's objects"
    );
    for d in &overlay.documents {
        let original = &base
            .documents
            .iter()
            .find(|b| b.id() == d.id())
            .expect("same ids")
            .raw;
        let mut raw = d.raw.clone();
        if d.id() == format!("DaemonSet/{AGENT}") {
            let spec = ["spec", "template", "spec"];
            for key in ["runtimeClassName", "nodeSelector"] {
                assert!(remove_at(&mut raw, &[&spec[..], &[key]].concat()));
            }
            // NVML's per-process use needs the host PID namespace; the base leaves it off.
            assert_eq!(raw["spec"]["template"]["spec"]["hostPID"], true);
            raw["spec"]["template"]["spec"]["hostPID"] = Value::Bool(false);
            // ... and says why to checkov, in place.
            let skip = raw["metadata"]["annotations"]
                .as_object_mut()
                .and_then(|a| a.remove("checkov.io/skip5"));
            assert!(
                skip.as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.starts_with("CKV_K8S_17=")),
                "the GPU overlay justifies hostPID to checkov"
            );
            let containers = raw["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .expect("containers");
            for container in containers {
                if let Some(env) = container["env"].as_array_mut() {
                    env.retain(|e| !NVIDIA_ENV.iter().any(|(name, _)| e["name"] == *name));
                }
            }
        }
        assert_eq!(
            &raw,
            original,
            "{GPU_OVERLAY}: {} differs from the base beyond the GPU changes",
            d.id()
        );
    }
}

/// The checkpoints overlay mounts one ReadWriteMany NFS claim into every agent, read-write, where
/// `--checkpoint-dir` points; the claim binds only to its PersistentVolume.
#[test]
fn checkpoints_overlay_mounts_the_shared_volume_into_the_agent() {
    let Some(overlay) = rendered_checkpoints() else {
        return;
    };
    let (pod, agent) = agent_of(overlay);
    let who = "deploy/overlays/checkpoints DaemonSet/aistor-agent";
    let dir = env_value(agent, "AISTOR_AGENT_CHECKPOINT_DIR").expect("the checkpoint dir is set");
    let mount = agent
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .unwrap_or_else(|| panic!("{who}: a volume is mounted at {dir}"));
    assert!(
        !mount.read_only.unwrap_or(false),
        "{who}: checkpoints are written"
    );
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the mounted volume exists");
    let claim = volume
        .persistent_volume_claim
        .as_ref()
        .expect("the checkpoint volume is a claim")
        .claim_name
        .clone();
    let doc = |kind: &str, name: &str| {
        overlay
            .documents
            .iter()
            .find(|d| d.object.kind() == kind && d.object.metadata().name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{kind}/{name} is rendered"))
    };
    let pvc = doc("PersistentVolumeClaim", &claim);
    assert_eq!(
        pvc.raw["spec"]["accessModes"][0], "ReadWriteMany",
        "shared by every node"
    );
    let pv_name = pvc.raw["spec"]["volumeName"]
        .as_str()
        .expect("bound to its volume");
    let pv = doc("PersistentVolume", pv_name);
    assert!(pv.raw["spec"]["nfs"]["server"].is_string(), "an NFS volume");
    assert_eq!(pv.raw["spec"]["claimRef"]["name"], claim.as_str());
}

/// The migration overlay gives the agent what kubelet pods' checkpoints and freezes need, on top
/// of the checkpoints overlay: the host pid namespace and CAP_KILL (signal hooks), the cgroup
/// filesystem writable (the freezer), the kubelet's pod volumes read-only with
/// HostToContainer propagation and CAP_DAC_READ_SEARCH (staging), the containerd socket (tasks,
/// exec hooks), and the checkpoint claim where `--checkpoint-dir` points.
#[test]
fn migration_overlay_gives_the_agent_what_kubelet_pods_need() {
    let Some(overlay) = rendered_migration() else {
        return;
    };
    let (pod, agent) = agent_of(overlay);
    let who = "deploy/overlays/migration DaemonSet/aistor-agent";
    assert_eq!(
        pod.host_pid,
        Some(true),
        "{who}: signal hooks reach host pids"
    );
    let host_root = env_value(agent, "AISTOR_AGENT_HOST_ROOT").expect("the host root is set");
    let mount_of = |path: &str| {
        agent
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == path)
            .unwrap_or_else(|| panic!("{who}: nothing mounted at {path}"))
    };
    let host_path_of = |name: &str| {
        pod.volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .and_then(|v| v.host_path.as_ref())
            .map(|h| h.path.clone())
    };
    let cgroup = mount_of(&format!("{host_root}/sys/fs/cgroup"));
    assert_eq!(
        host_path_of(&cgroup.name).as_deref(),
        Some("/sys/fs/cgroup")
    );
    assert_ne!(
        cgroup.read_only,
        Some(true),
        "{who}: the freezer is written"
    );
    let pods = mount_of(&format!("{host_root}/var/lib/kubelet/pods"));
    assert_eq!(
        host_path_of(&pods.name).as_deref(),
        Some("/var/lib/kubelet/pods")
    );
    assert_eq!(
        pods.read_only,
        Some(true),
        "{who}: pod volumes are only read"
    );
    assert_eq!(
        pods.mount_propagation.as_deref(),
        Some("HostToContainer"),
        "{who}: volumes mounted after the agent started are seen"
    );
    let socket = env_value(agent, "AISTOR_AGENT_CONTAINERD_SOCKET").expect("the socket is set");
    let socket_mount = mount_of(socket);
    assert_eq!(
        host_path_of(&socket_mount.name).as_deref(),
        Some("/run/containerd/containerd.sock")
    );
    let dir = env_value(agent, "AISTOR_AGENT_CHECKPOINT_DIR").expect("the checkpoint dir is set");
    let checkpoints = mount_of(dir);
    assert_ne!(
        checkpoints.read_only,
        Some(true),
        "{who}: checkpoints are written"
    );
    let adds = agent
        .security_context
        .as_ref()
        .and_then(|sc| sc.capabilities.as_ref())
        .and_then(|c| c.add.clone())
        .unwrap_or_default();
    assert_eq!(adds, MIGRATION_CAPABILITIES, "{who}");
    // Everything else of the base stays: the other overlays' checks run on this one too
    // (`each_rendering`).
}

// ---------------------------------------------------------------------------------------------------
// NetworkPolicies
// ---------------------------------------------------------------------------------------------------

/// One end of a connection: a pod (its namespace, that namespace's labels, its own labels) or an
/// address outside the pod network (the API server, a node's IP, the internet).
#[derive(Clone, Debug)]
enum End {
    Pod {
        namespace: &'static str,
        namespace_labels: Vec<(&'static str, &'static str)>,
        labels: Vec<(&'static str, &'static str)>,
    },
    Outside,
}

fn pod_in(namespace: &'static str, labels: &[(&'static str, &'static str)]) -> End {
    End::Pod {
        namespace,
        namespace_labels: Vec::new(),
        labels: labels.to_vec(),
    }
}

fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    assert!(
        selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty),
        "the test's evaluator reads matchLabels only"
    );
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
}

impl End {
    fn namespace(&self) -> Option<&str> {
        match self {
            End::Pod { namespace, .. } => Some(namespace),
            End::Outside => None,
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        match self {
            End::Pod { labels, .. } => labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            End::Outside => BTreeMap::new(),
        }
    }

    /// The namespace's labels, with the `kubernetes.io/metadata.name` the API server sets.
    fn namespace_labels(&self) -> BTreeMap<String, String> {
        match self {
            End::Pod {
                namespace,
                namespace_labels,
                ..
            } => namespace_labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .chain([(
                    "kubernetes.io/metadata.name".to_owned(),
                    (*namespace).to_owned(),
                )])
                .collect(),
            End::Outside => BTreeMap::new(),
        }
    }

    /// Whether a policy's `from`/`to` peer names this end (`policy_ns`: the policy's namespace,
    /// which a peer with only a podSelector means).
    fn matches(&self, peer: &NetworkPolicyPeer, policy_ns: &str) -> bool {
        if let Some(block) = &peer.ip_block {
            // The manifests use no ipBlock; an overlay's would name outside addresses.
            return matches!(self, End::Outside) && block.cidr == "0.0.0.0/0";
        }
        let End::Pod { .. } = self else {
            return false;
        };
        let namespace_ok = match &peer.namespace_selector {
            Some(selector) => selects(Some(selector), &self.namespace_labels()),
            None => self.namespace() == Some(policy_ns),
        };
        namespace_ok && selects(peer.pod_selector.as_ref(), &self.labels())
    }
}

fn port_matches(ports: Option<&Vec<NetworkPolicyPort>>, port: i32, protocol: &str) -> bool {
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return true;
    };
    ports.iter().any(|p| {
        p.protocol.as_deref().unwrap_or("TCP") == protocol
            && match &p.port {
                None => true,
                Some(IntOrString::Int(n)) => *n == port,
                Some(IntOrString::String(name)) => panic!("named port {name}: unsupported here"),
            }
    })
}

/// Whether the rendered NetworkPolicies let `from` open a connection to `to` on `port`, as the
/// NetworkPolicy API defines it: a pod selected by no policy of a direction is open in that
/// direction; a selected one allows what any selecting policy's rules allow.
fn allowed(rendered: &Rendered, from: &End, to: &End, port: i32, protocol: &str) -> bool {
    let policies: Vec<&NetworkPolicy> = rendered.network_policies().collect();
    let direction_allows = |pod: &End, other: &End, egress: bool| {
        let End::Pod { .. } = pod else {
            return true; // outside the cluster: no policy applies
        };
        let selecting: Vec<&NetworkPolicy> = policies
            .iter()
            .copied()
            .filter(|p| {
                let spec = p.spec.as_ref().expect("a spec");
                p.metadata.namespace.as_deref() == pod.namespace()
                    && selects(spec.pod_selector.as_ref(), &pod.labels())
                    && spec
                        .policy_types
                        .iter()
                        .flatten()
                        .any(|t| t == if egress { "Egress" } else { "Ingress" })
            })
            .collect();
        selecting.is_empty()
            || selecting.iter().any(|p| {
                let spec = p.spec.as_ref().expect("a spec");
                let ns = p.metadata.namespace.as_deref().unwrap_or_default();
                if egress {
                    spec.egress.iter().flatten().any(|rule| {
                        port_matches(rule.ports.as_ref(), port, protocol)
                            && rule
                                .to
                                .as_ref()
                                .filter(|t| !t.is_empty())
                                .is_none_or(|to| to.iter().any(|peer| other.matches(peer, ns)))
                    })
                } else {
                    spec.ingress.iter().flatten().any(|rule| {
                        port_matches(rule.ports.as_ref(), port, protocol)
                            && rule
                                .from
                                .as_ref()
                                .filter(|f| !f.is_empty())
                                .is_none_or(|f| f.iter().any(|peer| other.matches(peer, ns)))
                    })
                }
            })
    };
    direction_allows(from, to, true) && direction_allows(to, from, false)
}

/// Agents reach the coordinator's gRPC port; API users in namespaces labelled
/// `aistor.io/api-access: "true"` reach its gRPC and REST ports; the coordinator reaches the API
/// server and DNS; agents reach DNS and dcgm-exporter's port. Nothing else, in either namespace.
#[test]
fn network_policies_allow_only_the_named_flows() {
    each_rendering(|rendered| {
        let name = "app.kubernetes.io/name";
        let coordinator = pod_in(NAMESPACE, &[(name, COORDINATOR)]);
        let agent = pod_in(AGENT_NAMESPACE, &[(name, AGENT)]);
        let dns = pod_in("kube-system", &[("k8s-app", "kube-dns")]);
        let user = End::Pod {
            namespace: "ml",
            namespace_labels: vec![("aistor.io/api-access", "true")],
            labels: vec![("app", "notebook")],
        };
        let stranger = pod_in("default", &[("app", "web")]);
        // Another pod an attacker might start in an aistor namespace, or a pod of another app
        // with the agent's labels in another namespace.
        let intruder = pod_in(AGENT_NAMESPACE, &[("app", "x")]);
        let impostor = pod_in("default", &[(name, AGENT)]);
        let outside = End::Outside;
        let yes = [
            (&agent, &coordinator, 50051, "TCP", "agent stream"),
            (&user, &coordinator, 50051, "TCP", "public gRPC"),
            (&user, &coordinator, 8080, "TCP", "REST"),
            (&coordinator, &outside, 6443, "TCP", "API server"),
            (&coordinator, &outside, 443, "TCP", "API server (managed)"),
            (&coordinator, &dns, 53, "UDP", "coordinator DNS"),
            (&coordinator, &dns, 53, "TCP", "coordinator DNS over TCP"),
            (&agent, &dns, 53, "UDP", "agent DNS"),
            (&agent, &outside, 9400, "TCP", "the node's dcgm-exporter"),
        ];
        let no = [
            (
                &agent,
                &coordinator,
                8080,
                "TCP",
                "agents have no business on REST",
            ),
            (
                &stranger,
                &coordinator,
                50051,
                "TCP",
                "an unlabelled namespace",
            ),
            (
                &stranger,
                &coordinator,
                8080,
                "TCP",
                "an unlabelled namespace",
            ),
            (
                &impostor,
                &coordinator,
                50051,
                "TCP",
                "agent labels elsewhere",
            ),
            (
                &intruder,
                &coordinator,
                50051,
                "TCP",
                "another pod in aistor-node",
            ),
            (&user, &agent, 9101, "TCP", "the agent's admin port"),
            (&coordinator, &agent, 9101, "TCP", "the agent's admin port"),
            (&stranger, &agent, 9101, "TCP", "the agent's admin port"),
            (
                &coordinator,
                &outside,
                80,
                "TCP",
                "coordinator to the internet",
            ),
            (
                &coordinator,
                &stranger,
                8080,
                "TCP",
                "coordinator to other pods",
            ),
            (&agent, &outside, 443, "TCP", "agent to the internet"),
            (&agent, &stranger, 50051, "TCP", "agent to other pods"),
            (&intruder, &outside, 443, "TCP", "other pods in aistor-node"),
            (&intruder, &dns, 53, "UDP", "other pods in aistor-node"),
        ];
        for (from, to, port, protocol, what) in yes {
            assert!(
                allowed(rendered, from, to, port, protocol),
                "{}: {what} ({port}/{protocol}) must be allowed",
                rendered.dir
            );
        }
        for (from, to, port, protocol, what) in no {
            assert!(
                !allowed(rendered, from, to, port, protocol),
                "{}: {what} ({port}/{protocol}) must be denied",
                rendered.dir
            );
        }
    });
}

/// Every check `hack/checkov.sh` is told to skip is skipped in place, on the object it concerns,
/// as `checkov.io/skip<N>: CKV_K8S_<id>=<reason>` with a reason that says something.
#[test]
fn every_checkov_skip_is_justified_in_place() {
    each_rendering(|rendered| {
        for d in &rendered.documents {
            for (key, value) in d.object.metadata().annotations.iter().flatten() {
                if !key.starts_with("checkov.io/") {
                    continue;
                }
                let n = key.strip_prefix("checkov.io/skip").unwrap_or_default();
                assert!(
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()),
                    "{}: {key} is not a checkov.io/skip<N> annotation",
                    d.id()
                );
                let (check, reason) = value
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{}: {key} has no =<reason>", d.id()));
                let id = check.strip_prefix("CKV_K8S_").unwrap_or_default();
                assert!(
                    !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
                    "{}: {key} names {check:?}, not a CKV_K8S_<id> check",
                    d.id()
                );
                assert!(
                    reason.split_whitespace().count() >= 8,
                    "{}: {key} skips {check} without a real reason: {reason:?}",
                    d.id()
                );
            }
        }
    });
}
