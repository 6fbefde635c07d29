//! The resource types the fake serves: built-ins plus whatever tests register (CRDs).

/// One servable resource type, as the API server's discovery describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group; empty for the core group (`/api/v1`).
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Lower-case plural used in paths, e.g. `pods`.
    pub plural: String,
    pub namespaced: bool,
    /// When true, `.status` is written only through `/status` and main-resource writes keep the old status.
    pub status_subresource: bool,
    /// When true, `/scale` maps `spec.replicas`, `status.replicas` and `status.selector`.
    pub scale_subresource: bool,
}

impl Resource {
    /// A resource without subresources; chain [`Resource::with_status`] / [`Resource::with_scale`].
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Resource {
        Resource {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
            status_subresource: false,
            scale_subresource: false,
        }
    }

    pub fn with_status(mut self) -> Resource {
        self.status_subresource = true;
        self
    }

    pub fn with_scale(mut self) -> Resource {
        self.scale_subresource = true;
        self
    }

    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`: how the real server names a resource in error messages.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub(crate) fn id(&self) -> ResourceId {
        ResourceId {
            group: self.group.clone(),
            version: self.version.clone(),
            plural: self.plural.clone(),
        }
    }
}

/// The identity of a resource type inside the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ResourceId {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) plural: String,
}

/// Every resource type the server knows, in registration order (discovery lists them so).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    resources: Vec<Resource>,
}

impl Registry {
    pub(crate) fn with_builtins() -> Registry {
        let mut registry = Registry::default();
        for resource in builtins() {
            registry.register(resource);
        }
        registry
    }

    /// Adds a resource type, replacing one with the same group, version and plural.
    pub(crate) fn register(&mut self, resource: Resource) {
        let id = resource.id();
        if let Some(existing) = self.resources.iter_mut().find(|r| r.id() == id) {
            *existing = resource;
        } else {
            self.resources.push(resource);
        }
    }

    pub(crate) fn by_path(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub(crate) fn by_kind(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.api_version() == api_version)
    }

    pub(crate) fn all(&self) -> &[Resource] {
        &self.resources
    }

    pub(crate) fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.resources
            .iter()
            .any(|r| r.group == group && r.version == version)
    }
}

fn builtins() -> Vec<Resource> {
    vec![
        Resource::new("", "v1", "Node", "nodes", false).with_status(),
        Resource::new("", "v1", "Pod", "pods", true).with_status(),
        Resource::new(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
        )
        .with_status(),
        Resource::new("", "v1", "PersistentVolume", "persistentvolumes", false).with_status(),
        Resource::new("", "v1", "Namespace", "namespaces", false).with_status(),
        Resource::new("", "v1", "Event", "events", true),
        Resource::new("", "v1", "ConfigMap", "configmaps", true),
        Resource::new("apps", "v1", "Deployment", "deployments", true)
            .with_status()
            .with_scale(),
        Resource::new("apps", "v1", "StatefulSet", "statefulsets", true)
            .with_status()
            .with_scale(),
        Resource::new("apps", "v1", "ReplicaSet", "replicasets", true)
            .with_status()
            .with_scale(),
        Resource::new(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
        )
        .with_status(),
        Resource::new(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        )
        .with_status(),
        Resource::new("coordination.k8s.io", "v1", "Lease", "leases", true),
        Resource::new("events.k8s.io", "v1", "Event", "events", true),
        Resource::new(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )
        .with_status(),
    ]
}
