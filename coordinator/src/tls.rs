//! TLS on the API ports (`--tls-cert`, `--tls-key`): the REST listener's rustls
//! configuration (HTTP/2 and HTTP/1.1 by ALPN) and the gRPC server's. Files are read
//! once at start; a bad one stops the start naming its path.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The API listeners' certificate (chain) and key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Pem { path: PathBuf, why: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

impl ApiTls {
    /// The REST listener's acceptor.
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let certs = CertificateDer::pem_slice_iter(&read(&self.cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem(&self.cert, e))?;
        if certs.is_empty() {
            return Err(TlsError::Pem {
                path: self.cert.clone(),
                why: "no certificate in it".into(),
            });
        }
        let key =
            PrivateKeyDer::from_pem_slice(&read(&self.key)?).map_err(|e| pem(&self.key, e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// The gRPC server's configuration.
    pub fn grpc(&self) -> Result<tonic::transport::ServerTlsConfig, TlsError> {
        // Parsed here too, so a bad file is named before tonic sees it.
        self.acceptor()?;
        Ok(tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                read(&self.cert)?,
                read(&self.key)?,
            ))
            .timeout(std::time::Duration::from_secs(10)))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        why: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::pki::Authority::open_or_create(dir.path()).unwrap();
        let server = ca.issue_server(&["localhost".into()]).unwrap();
        let good = ApiTls {
            cert: server.cert.clone(),
            key: server.key.clone(),
        };
        assert!(good.acceptor().is_ok());
        assert!(good.grpc().is_ok());
        let missing = ApiTls {
            cert: dir.path().join("nope.pem"),
            ..good.clone()
        };
        let err = missing.acceptor().err().unwrap().to_string();
        assert!(err.contains("nope.pem"), "{err}");
        // A key where the certificate should be: no certificate in it.
        let swapped = ApiTls {
            cert: server.key.clone(),
            key: server.key.clone(),
        };
        let err = swapped.acceptor().err().unwrap().to_string();
        assert!(err.contains("no certificate"), "{err}");
        // The CA's certificate with the server's key: they do not match.
        let mismatched = ApiTls {
            cert: ca.ca_path(),
            ..good
        };
        assert!(matches!(mismatched.acceptor(), Err(TlsError::Config(_))));
    }
}
