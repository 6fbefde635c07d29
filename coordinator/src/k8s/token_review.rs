//! Agents' ServiceAccount tokens checked by the API server (TokenReview): the one
//! place the coordinator asks who a token is.

use crate::identity::{IdentityError, NODE_NAME_EXTRA, Review, TokenReviewer, node_from_review};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
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
