//! Request paths: which API endpoint a URL names.

use axum::http::Method;

use crate::record::Verb;

/// A resource path: `/api/v1/namespaces/{ns}/pods/{name}/status` and its relatives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) plural: String,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/api/v1`, `/apis/{group}/{version}`
    ResourceList {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
    Unknown,
}

pub(crate) fn parse(path: &str) -> Route {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz"] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Route::Unknown,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    if rest.is_empty() {
        return Route::ResourceList {
            group: group.to_owned(),
            version: version.to_owned(),
        };
    }
    if rest.iter().any(|s| s.is_empty()) {
        return Route::Unknown;
    }
    // `namespaces/{ns}/{plural}/...` is namespaced, except the core group's own
    // `namespaces/{name}/status|finalize` subresources.
    let namespaced = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(group.is_empty() && rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return Route::Unknown;
    }
    Route::Resource(ResourcePath {
        group: group.to_owned(),
        version: version.to_owned(),
        plural: rest[0].to_owned(),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    })
}

/// The verb RBAC would see; None for a method the API does not serve.
pub(crate) fn verb(method: &Method, has_name: bool, watch: bool) -> Option<Verb> {
    Some(match *method {
        Method::GET if watch => Verb::Watch,
        Method::GET if has_name => Verb::Get,
        Method::GET => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if has_name => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let p = resource("/api/v1/namespaces/ns1/pods/p1/eviction");
        assert_eq!(
            (
                p.group.as_str(),
                p.plural.as_str(),
                p.namespace.as_deref(),
                p.name.as_deref(),
                p.subresource.as_deref()
            ),
            ("", "pods", Some("ns1"), Some("p1"), Some("eviction"))
        );
        let n = resource("/api/v1/namespaces/ns1/status");
        assert_eq!(
            (
                n.plural.as_str(),
                n.name.as_deref(),
                n.subresource.as_deref()
            ),
            ("namespaces", Some("ns1"), Some("status"))
        );
        let all = resource("/apis/apps/v1/deployments");
        assert_eq!(
            (all.group.as_str(), all.namespace, all.name),
            ("apps", None, None)
        );
        let lease = resource("/apis/coordination.k8s.io/v1/namespaces/x/leases");
        assert_eq!(
            (lease.plural.as_str(), lease.namespace.as_deref()),
            ("leases", Some("x"))
        );
        assert_eq!(parse("/apis"), Route::Groups);
        assert_eq!(
            parse("/api/v1"),
            Route::ResourceList {
                group: String::new(),
                version: "v1".into()
            }
        );
        assert_eq!(parse("/nope"), Route::Unknown);
        assert_eq!(parse("/api/v1/namespaces/a/pods/b/c/d"), Route::Unknown);
    }
}
