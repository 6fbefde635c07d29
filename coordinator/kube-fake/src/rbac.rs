//! RBAC authorization as the real API server's RBAC authorizer decides it, for one subject:
//! given the rules bound to it, a resource request is allowed when one rule matches its verb,
//! API group, resource (with subresource) and namespace; otherwise it is answered 403 Forbidden
//! with the real server's `Status` and message.
//!
//! Simplifications: one subject (every request is that subject's; there is no authentication),
//! and non-resource URLs are judged by the `system:discovery` and `system:public-info-viewer`
//! ClusterRoles every authenticated user has (`/api`, `/apis`, their group/version documents,
//! `/version`, `/healthz`, `/livez`, `/readyz`, `/openapi`): those are allowed, any other
//! non-resource URL is forbidden.

use crate::record::RecordedRequest;
use crate::route::Route;
use crate::status::{ApiError, Reason};

/// One RBAC `PolicyRule` as bound to the subject: from a ClusterRole through a
/// ClusterRoleBinding (`namespace: None`, every namespace and cluster-scoped resources), or from
/// a Role (or ClusterRole) through a RoleBinding in `namespace` (that namespace only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `""` is the core group; `"*"` any group.
    pub api_groups: Vec<String>,
    /// Plurals, `plural/subresource`, `"*"` (any resource and subresource) or `"*/sub"`
    /// (that subresource of any resource).
    pub resources: Vec<String>,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `"*"`.
    pub verbs: Vec<String>,
    /// Empty: any name. Otherwise only requests naming one of these objects (a list, watch or
    /// create names none, so such a rule never allows them, as in Kubernetes).
    pub resource_names: Vec<String>,
    /// `None`: bound cluster-wide. `Some(ns)`: bound in `ns` only.
    pub namespace: Option<String>,
}

impl Rule {
    /// A rule bound cluster-wide (a ClusterRole and a ClusterRoleBinding).
    pub fn cluster(group: &str, resource: &str, verbs: &[&str]) -> Rule {
        Rule {
            api_groups: vec![group.to_owned()],
            resources: vec![resource.to_owned()],
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            resource_names: Vec::new(),
            namespace: None,
        }
    }

    /// A rule bound in one namespace (a Role and a RoleBinding there).
    pub fn namespaced(namespace: &str, group: &str, resource: &str, verbs: &[&str]) -> Rule {
        Rule {
            namespace: Some(namespace.to_owned()),
            ..Rule::cluster(group, resource, verbs)
        }
    }

    /// The same rule limited to these object names.
    pub fn with_names(mut self, names: &[&str]) -> Rule {
        self.resource_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    fn allows(&self, request: &RecordedRequest) -> bool {
        let namespace_ok = match &self.namespace {
            None => true,
            // A RoleBinding grants nothing on cluster-scoped resources or across namespaces.
            Some(bound) => request.namespace.as_deref() == Some(bound.as_str()),
        };
        namespace_ok
            && self
                .verbs
                .iter()
                .any(|v| v == "*" || v == request.verb.as_str())
            && self
                .api_groups
                .iter()
                .any(|g| g == "*" || *g == request.group)
            && self.resources.iter().any(|r| resource_matches(r, request))
            && (self.resource_names.is_empty()
                || request
                    .name
                    .as_ref()
                    .is_some_and(|n| self.resource_names.contains(n)))
    }
}

/// As `rbac.ResourceMatches`: `*`, the exact `plural[/sub]`, or `*/sub` for a subresource.
fn resource_matches(rule: &str, request: &RecordedRequest) -> bool {
    if rule == "*" {
        return true;
    }
    match &request.subresource {
        None => rule == request.resource,
        Some(sub) => {
            rule == format!("{}/{sub}", request.resource)
                || rule.strip_prefix("*/") == Some(sub.as_str())
        }
    }
}

/// The policy in force: who the subject is (for messages) and its rules.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) user: String,
    pub(crate) rules: Vec<Rule>,
}

impl Policy {
    /// `None` when allowed; the 403 to answer otherwise.
    pub(crate) fn check(&self, route: &Route, request: &RecordedRequest) -> Option<ApiError> {
        match route {
            Route::Resource(_) => {
                if self.rules.iter().any(|r| r.allows(request)) {
                    None
                } else {
                    Some(self.forbidden(request))
                }
            }
            Route::Version
            | Route::Health
            | Route::CoreVersions
            | Route::Groups
            | Route::ResourceList { .. } => None,
            Route::Unknown if request.path.starts_with("/openapi") => None,
            Route::Unknown => Some(ApiError::new(
                403,
                Reason::Forbidden,
                format!(
                    "forbidden: User \"{}\" cannot {} path \"{}\"",
                    self.user,
                    request.method.to_lowercase(),
                    request.path
                ),
            )),
        }
    }

    /// The real authorizer's message, e.g. `pods "p" is forbidden: User "u" cannot get resource
    /// "pods" in API group "" in the namespace "ml"`.
    fn forbidden(&self, request: &RecordedRequest) -> ApiError {
        let resource = match &request.subresource {
            Some(sub) => format!("{}/{sub}", request.resource),
            None => request.resource.clone(),
        };
        let qualified = if request.group.is_empty() {
            request.resource.clone()
        } else {
            format!("{}.{}", request.resource, request.group)
        };
        let object = match &request.name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified,
        };
        let scope = match &request.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let mut error = ApiError::new(
            403,
            Reason::Forbidden,
            format!(
                "{object} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
                self.user,
                request.verb.as_str(),
                request.group
            ),
        );
        error.details = Some(Box::new(crate::status::Details {
            name: request.name.clone().unwrap_or_default(),
            group: request.group.clone(),
            kind: request.resource.clone(),
        }));
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Verb;

    fn request(
        verb: Verb,
        group: &str,
        resource: &str,
        sub: Option<&str>,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> RecordedRequest {
        RecordedRequest {
            method: "GET".into(),
            path: "/x".into(),
            query: String::new(),
            verb,
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: sub.map(Into::into),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            status: 0,
        }
    }

    #[test]
    fn matching_follows_the_rbac_authorizer() {
        let pods = Rule::cluster("", "pods", &["list", "watch"]);
        assert!(pods.allows(&request(Verb::List, "", "pods", None, None, None)));
        assert!(pods.allows(&request(Verb::Watch, "", "pods", None, Some("ml"), None)));
        assert!(!pods.allows(&request(Verb::Get, "", "pods", None, Some("ml"), Some("p"))));
        // A grant on pods is no grant on a subresource, nor on another group's `pods`.
        assert!(!pods.allows(&request(Verb::List, "", "pods", Some("log"), None, None)));
        assert!(!pods.allows(&request(
            Verb::List,
            "metrics.k8s.io",
            "pods",
            None,
            None,
            None
        )));

        let evict = Rule::cluster("", "pods/eviction", &["create"]);
        assert!(evict.allows(&request(
            Verb::Create,
            "",
            "pods",
            Some("eviction"),
            Some("ml"),
            Some("p")
        )));
        assert!(!evict.allows(&request(Verb::Create, "", "pods", None, Some("ml"), None)));
        let any_scale = Rule::cluster("apps", "*/scale", &["get"]);
        assert!(any_scale.allows(&request(
            Verb::Get,
            "apps",
            "deployments",
            Some("scale"),
            Some("ml"),
            Some("d")
        )));

        let lease = Rule::namespaced("aistor-system", "coordination.k8s.io", "leases", &["get"])
            .with_names(&["leader"]);
        let get = |ns, name| {
            request(
                Verb::Get,
                "coordination.k8s.io",
                "leases",
                None,
                Some(ns),
                Some(name),
            )
        };
        assert!(lease.allows(&get("aistor-system", "leader")));
        assert!(!lease.allows(&get("aistor-system", "other")));
        assert!(!lease.allows(&get("kube-system", "leader")));
        // A RoleBinding never reaches cluster-scoped resources or all-namespace lists.
        let nodes_in_ns = Rule::namespaced("aistor-system", "", "nodes", &["list"]);
        assert!(!nodes_in_ns.allows(&request(Verb::List, "", "nodes", None, None, None)));
    }

    #[test]
    fn the_forbidden_status_reads_as_the_real_one() {
        let policy = Policy {
            user: "system:serviceaccount:aistor-system:aistor-coordinator".into(),
            rules: vec![],
        };
        let req = request(Verb::Get, "", "secrets", None, Some("ml"), Some("token"));
        let route = Route::Resource(Default::default());
        let status = policy.check(&route, &req).expect("forbidden").to_status();
        assert_eq!(status["code"], 403);
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(
            status["message"],
            "secrets \"token\" is forbidden: User \"system:serviceaccount:aistor-system:aistor-coordinator\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ml\""
        );
        assert_eq!(status["details"]["kind"], "secrets");
        let list = request(Verb::List, "apps", "deployments", None, None, None);
        assert!(
            policy.check(&route, &list).expect("forbidden").message.ends_with(
                "cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
            )
        );
        assert!(policy.check(&Route::Groups, &list).is_none());
    }
}
