//! Who an agent is: the node its client certificate names, or on Kubernetes the
//! node its ServiceAccount token is bound to. The agents' listener asks for a
//! certificate signed by the configured CA during the TLS handshake (rustls refuses
//! anything else: no certificate, another CA, expired); here the verified
//! certificate's subject is read. A token is sent to the API server (TokenReview,
//! [`TokenReviewer`]), which says whose it is and which node its pod runs on. A
//! stream may report only for the node so proven.

use crate::pki::AGENT_ORGANIZATION;
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Files of the agents' listener: its own certificate and key, and the CA that
/// signs agents' certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the client certificate does not parse: {0}")]
    Parse(String),
    #[error(
        "the client certificate's subject {subject:?} is not an aistor agent's (organisation {AGENT_ORGANIZATION:?} with the node as common name)"
    )]
    NotAnAgent { subject: String },
    #[error("the token was not accepted: {0}")]
    TokenRefused(String),
    #[error("the token belongs to {user:?}, not to an aistor agent ({allowed})")]
    NotAnAgentToken { user: String, allowed: String },
    #[error(
        "the token of {user:?} is not bound to a pod on a node (the API server gives no {NODE_NAME_EXTRA:?}); use a projected ServiceAccount token"
    )]
    NoNode { user: String },
    #[error("the token review failed: {0}")]
    Review(String),
}

/// The user-info extra in which the API server names the node of the pod a
/// projected ServiceAccount token is bound to (Kubernetes 1.30 and later).
pub const NODE_NAME_EXTRA: &str = "authentication.kubernetes.io/node-name";

/// Asks the cluster whose a bearer token is (the Kubernetes shell implements it
/// with a TokenReview; tests with a fake API server).
pub trait TokenReviewer: Send + Sync + std::fmt::Debug {
    fn node_of<'a>(
        &'a self,
        token: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, IdentityError>> + Send + 'a>>;
}

/// What a TokenReview answered, as plain values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Review {
    pub authenticated: bool,
    pub error: Option<String>,
    pub user: String,
    pub audiences: Vec<String>,
    pub nodes: Vec<String>,
}

/// The node an answered review proves: the token is valid for `audience`, belongs
/// to one of `agents` (`system:serviceaccount:<namespace>:<name>`), and is bound to
/// a pod on exactly one node.
pub fn node_from_review(
    review: &Review,
    audience: &str,
    agents: &[String],
) -> Result<String, IdentityError> {
    if !review.authenticated {
        return Err(IdentityError::TokenRefused(
            review
                .error
                .clone()
                .unwrap_or_else(|| "the API server did not authenticate it".into()),
        ));
    }
    if !review.audiences.iter().any(|a| a == audience) {
        return Err(IdentityError::TokenRefused(format!(
            "it is not meant for audience {audience:?} (it is for {:?})",
            review.audiences
        )));
    }
    if !agents.contains(&review.user) {
        return Err(IdentityError::NotAnAgentToken {
            user: review.user.clone(),
            allowed: agents.join(", "),
        });
    }
    match review.nodes.as_slice() {
        [node] if !node.is_empty() => Ok(node.clone()),
        _ => Err(IdentityError::NoNode {
            user: review.user.clone(),
        }),
    }
}

impl AgentTls {
    /// rustls' server configuration: a client certificate signed by `client_ca` is
    /// required to complete the handshake.
    pub fn server_config(&self) -> Result<ServerTlsConfig, IdentityError> {
        let identity = Identity::from_pem(read(&self.cert)?, read(&self.key)?);
        Ok(ServerTlsConfig::new()
            .identity(identity)
            .client_ca_root(Certificate::from_pem(read(&self.client_ca)?))
            // A peer that never finishes the handshake is dropped.
            .timeout(std::time::Duration::from_secs(10)))
    }
}

/// The node a verified agent certificate (DER) names.
pub fn agent_node(der: &[u8]) -> Result<String, IdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| IdentityError::Parse(e.to_string()))?;
    let subject = cert.subject();
    let organisation_ok = subject
        .iter_organization()
        .any(|o| o.as_str() == Ok(AGENT_ORGANIZATION));
    let names: Vec<&str> = subject
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .collect();
    match (organisation_ok, names.as_slice()) {
        (true, [node]) if !node.is_empty() => Ok((*node).to_owned()),
        _ => Err(IdentityError::NotAnAgent {
            subject: subject.to_string(),
        }),
    }
}

/// As [`agent_node`], for a PEM file's contents.
pub fn agent_node_of_pem(pem: &[u8]) -> Result<String, IdentityError> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| IdentityError::Parse(e.to_string()))?;
    agent_node(&pem.contents)
}

/// What a connection proved about itself: nothing (plain TCP), or the node its
/// verified certificate names.
pub fn peer_node<T>(request: &tonic::Request<T>) -> Result<Option<String>, IdentityError> {
    match request.peer_certs() {
        None => Ok(None),
        Some(chain) => match chain.first() {
            None => Ok(None),
            Some(leaf) => agent_node(leaf).map(Some),
        },
    }
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|source| IdentityError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_proves_a_node_only_for_an_agents_bound_token_meant_for_aistor() {
        let agents = ["system:serviceaccount:aistor-node:aistor-agent".to_owned()];
        let good = Review {
            authenticated: true,
            error: None,
            user: agents[0].clone(),
            audiences: vec!["aistor".into()],
            nodes: vec!["node-a".into()],
        };
        assert_eq!(
            node_from_review(&good, "aistor", &agents).unwrap(),
            "node-a"
        );
        let cases = [
            (
                Review {
                    authenticated: false,
                    error: Some("token has expired".into()),
                    ..good.clone()
                },
                "token has expired",
            ),
            (
                Review {
                    audiences: vec!["https://kubernetes.default.svc".into()],
                    ..good.clone()
                },
                "not meant for audience \"aistor\"",
            ),
            (
                Review {
                    user: "system:serviceaccount:default:default".into(),
                    ..good.clone()
                },
                "not to an aistor agent",
            ),
            (
                Review {
                    nodes: vec![],
                    ..good.clone()
                },
                "not bound to a pod on a node",
            ),
            (
                Review {
                    nodes: vec!["a".into(), "b".into()],
                    ..good.clone()
                },
                "not bound to a pod on a node",
            ),
        ];
        for (review, why) in cases {
            let err = node_from_review(&review, "aistor", &agents).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        }
    }

    #[test]
    fn a_certificate_outside_the_agents_organisation_names_no_node() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::pki::Authority::open_or_create(dir.path()).unwrap();
        let server = ca.issue_server(&["localhost".into()]).unwrap();
        let err = agent_node_of_pem(&std::fs::read(server.cert).unwrap()).unwrap_err();
        assert!(err.to_string().contains("CN=aistor-coordinator"), "{err}");
        assert!(matches!(
            agent_node(b"not a certificate"),
            Err(IdentityError::Parse(_))
        ));
    }
}
