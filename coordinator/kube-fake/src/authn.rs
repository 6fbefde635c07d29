//! `POST /apis/authentication.k8s.io/v1/tokenreviews`: the API server's answer to
//! "whose token is this?". Tokens are registered by the test with the user, the
//! audiences they were issued for and the user-info extra the real server adds
//! (for a projected token bound to a pod: the node's name under
//! `authentication.kubernetes.io/node-name`). As the real server does, a review
//! always answers 201 with a status: `authenticated: false` and an `error` for a
//! token it does not know or that is not meant for any requested audience, and
//! `audiences` the intersection of the requested and the token's.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What the test says a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub username: String,
    pub audiences: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    pub groups: Vec<String>,
}

impl TokenInfo {
    /// The same user in these groups.
    pub fn with_groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }
}

#[derive(Debug, Default)]
pub(crate) struct Tokens(BTreeMap<String, TokenInfo>);

impl Tokens {
    pub(crate) fn add(&mut self, token: &str, info: TokenInfo) {
        self.0.insert(token.to_owned(), info);
    }

    /// The reviewed object: the request's body with `status` filled in.
    pub(crate) fn review(&self, request: &Value) -> Value {
        let token = request["spec"]["token"].as_str().unwrap_or("");
        let requested: Vec<String> = request["spec"]["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let status = match self.0.get(token) {
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
            Some(info) => {
                // No audiences requested: the API server's own.
                let wanted = if requested.is_empty() {
                    vec!["https://kubernetes.default.svc".to_owned()]
                } else {
                    requested
                };
                let shared: Vec<&String> = wanted
                    .iter()
                    .filter(|a| info.audiences.contains(a))
                    .collect();
                if shared.is_empty() {
                    json!({"authenticated": false, "error": "token audiences is invalid for the target audiences"})
                } else {
                    json!({
                        "authenticated": true,
                        "user": {"username": info.username, "groups": info.groups, "extra": info.extra},
                        "audiences": shared,
                    })
                }
            }
        };
        let mut reviewed = request.clone();
        reviewed["apiVersion"] = json!("authentication.k8s.io/v1");
        reviewed["kind"] = json!("TokenReview");
        reviewed["status"] = status;
        reviewed
    }
}

/// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` for resource attributes:
/// allowed when a grant of the user (or of one of its groups) matches the group,
/// resource and verb (`"*"` matching any), as an RBAC ClusterRole bound to them would.
#[derive(Debug, Default)]
pub(crate) struct Grants(Vec<(String, String, String, Vec<String>)>);

impl Grants {
    pub(crate) fn add(&mut self, subject: &str, group: &str, resource: &str, verbs: &[&str]) {
        self.0.push((
            subject.to_owned(),
            group.to_owned(),
            resource.to_owned(),
            verbs.iter().map(|v| (*v).to_owned()).collect(),
        ));
    }

    pub(crate) fn review(&self, request: &Value) -> Value {
        let spec = &request["spec"];
        let user = spec["user"].as_str().unwrap_or("");
        let groups: Vec<&str> = spec["groups"]
            .as_array()
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let attributes = &spec["resourceAttributes"];
        let field = |name: &str| attributes[name].as_str().unwrap_or("");
        let (group, resource, verb) = (field("group"), field("resource"), field("verb"));
        let any = |granted: &str, asked: &str| granted == "*" || granted == asked;
        let allowed = !attributes.is_null()
            && self.0.iter().any(|(subject, g, r, verbs)| {
                (subject == user || groups.contains(&subject.as_str()))
                    && any(g, group)
                    && any(r, resource)
                    && verbs.iter().any(|v| any(v, verb))
            });
        let mut reviewed = request.clone();
        reviewed["apiVersion"] = json!("authorization.k8s.io/v1");
        reviewed["kind"] = json!("SubjectAccessReview");
        reviewed["status"] = if allowed {
            json!({"allowed": true, "reason": "RBAC: allowed by a test grant"})
        } else {
            json!({"allowed": false})
        };
        reviewed
    }
}
