//! Who an agent is: the node its client certificate names. The agents' listener
//! asks for a certificate signed by the configured CA during the TLS handshake
//! (rustls refuses anything else: no certificate, another CA, expired); here the
//! verified certificate's subject is read, and a stream may report only for the
//! node it names.

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
