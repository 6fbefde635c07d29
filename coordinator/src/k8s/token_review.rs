//! Bearer tokens checked by the API server: agents' ServiceAccount tokens
//! (TokenReview: which node), and API callers' (TokenReview, then
//! SubjectAccessReview: may they read or act). The one place the coordinator asks
//! who a token is.

use crate::auth::{Caller, ClusterReviewer, Denied, Need};
use crate::identity::{IdentityError, NODE_NAME_EXTRA, Review, TokenReviewer, node_from_review};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

#[derive(Clone)]
pub struct KubeTokenReviewer {
    client: kube::Client,
    audience: String,
    agents: Vec<String>,
}

impl std::fmt::Debug for KubeTokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTokenReviewer")
            .field("audience", &self.audience)
            .field("agents", &self.agents)
            .finish_non_exhaustive()
    }
}

impl KubeTokenReviewer {
    /// Tokens must be meant for `audience` and belong to one of `agents`
    /// (`system:serviceaccount:<namespace>:<name>`).
    pub fn new(client: kube::Client, audience: String, agents: Vec<String>) -> Self {
        Self {
            client,
            audience,
            agents,
        }
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn node_of<'a>(
        &'a self,
        token: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, IdentityError>> + Send + 'a>> {
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: token.to_owned(),
                    audiences: Some(vec![self.audience.clone()]),
                },
                ..Default::default()
            };
            let answered = Api::<TokenReview>::all(self.client.clone())
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| IdentityError::Review(e.to_string()))?;
            let status = answered.status.unwrap_or_default();
            let user = status.user.unwrap_or_default();
            let review = Review {
                authenticated: status.authenticated.unwrap_or(false),
                error: status.error,
                user: user.username.unwrap_or_default(),
                audiences: status.audiences.unwrap_or_default(),
                nodes: user
                    .extra
                    .and_then(|mut extra| extra.remove(NODE_NAME_EXTRA))
                    .unwrap_or_default(),
            };
            node_from_review(&review, &self.audience, &self.agents)
        })
    }
}

/// API callers' bearer tokens on a cluster: TokenReview says who the caller is, then
/// a SubjectAccessReview whether RBAC lets them `read` or `act` on the `api`
/// resource of `aistor.io` (the ClusterRoles `aistor-api-reader` and
/// `aistor-api-operator` in `deploy/` grant that). Answers are remembered for
/// [`REVIEW_TTL`] so a busy client does not cost two API calls per request.
pub struct KubeApiReviewer {
    client: kube::Client,
    remembered: std::sync::Mutex<Remembered>,
}

type Remembered =
    std::collections::HashMap<([u8; 32], bool), (Result<Caller, Denied>, std::time::Instant)>;

/// How long a review's answer is reused.
pub const REVIEW_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// Answers remembered at most (all are dropped when full: a flood of made-up
/// tokens cannot grow memory).
const REMEMBERED_MAX: usize = 4096;

impl std::fmt::Debug for KubeApiReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApiReviewer").finish_non_exhaustive()
    }
}

impl KubeApiReviewer {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            remembered: Default::default(),
        }
    }

    async fn ask(&self, token: &str, need: Need) -> Result<Caller, Denied> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..Default::default()
        };
        let answered = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Denied::Unauthenticated(format!("the token review failed: {e}")))?;
        let status = answered.status.unwrap_or_default();
        if !status.authenticated.unwrap_or(false) {
            return Err(Denied::Unauthenticated(format!(
                "the bearer token is not valid: {}",
                status
                    .error
                    .unwrap_or_else(|| "the API server did not authenticate it".into())
            )));
        }
        let user = status.user.unwrap_or_default();
        let name = user.username.clone().unwrap_or_default();
        let verb = if need == Need::Act { "act" } else { "read" };
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                resource_attributes: Some(ResourceAttributes {
                    group: Some("aistor.io".into()),
                    resource: Some("api".into()),
                    verb: Some(verb.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answered = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
            .map_err(|e| Denied::Forbidden(format!("the access review failed: {e}")))?;
        if answered.status.is_some_and(|s| s.allowed) {
            Ok(Caller {
                user: name,
                may_act: need == Need::Act,
            })
        } else {
            Err(Denied::Forbidden(format!(
                "user {name:?} may not {verb}: RBAC grants no verb {verb:?} on resource \"api\" of group \"aistor.io\""
            )))
        }
    }
}

impl ClusterReviewer for KubeApiReviewer {
    fn review<'a>(
        &'a self,
        token: &'a str,
        need: Need,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Caller, Denied>> + Send + 'a>> {
        Box::pin(async move {
            use sha2::Digest;
            let key = (
                sha2::Sha256::digest(token.as_bytes()).into(),
                need == Need::Act,
            );
            let now = std::time::Instant::now();
            let lock = || self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((answer, at)) = lock().get(&key)
                && now.duration_since(*at) < REVIEW_TTL
            {
                return answer.clone();
            }
            let answer = self.ask(token, need).await;
            let mut remembered = lock();
            if remembered.len() >= REMEMBERED_MAX {
                remembered.clear();
            }
            remembered.insert(key, (answer.clone(), now));
            answer
        })
    }
}
