//! TLS on the API ports (`--tls-cert`, `--tls-key`): REST and gRPC answer over real
//! rustls with a certificate from `aistor_coordinator::pki`, cleartext gets nothing,
//! and aistorctl speaks TLS to an `https://` URL with `--certificate-authority`.

mod support;

use aistor_coordinator::pki::Authority;
use aistor_coordinator::tls::ApiTls;
use std::sync::Arc;
use std::time::Duration;
use support::{Coordinator, aistorctl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn the_apis_answer_over_tls_and_not_in_cleartext() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::open_or_create(dir.path()).unwrap();
    let issued = ca
        .issue_server(&["localhost".into(), "127.0.0.1".into()])
        .unwrap();
    let tls = ApiTls {
        cert: issued.cert.clone(),
        key: issued.key.clone(),
    };
    let c = Coordinator::start(|config| config.api_tls = Some(tls)).await;

    // REST over TLS, verified against the CA.
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca.ca_path()).unwrap();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(c.http).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"healthy\""), "{answer}");

    // Cleartext HTTP to the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(c.http).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut raw)).await;
    assert!(!String::from_utf8_lossy(&raw).contains("healthy"));

    // gRPC over TLS through aistorctl; without the CA it refuses rather than downgrade.
    let server = format!("https://localhost:{}", c.grpc.port());
    let ca_path = ca.ca_path();
    let ca_arg = ca_path.to_str().unwrap();
    let out = aistorctl(&[
        "--server",
        &server,
        "--certificate-authority",
        ca_arg,
        "nodes",
    ])
    .await
    .unwrap();
    assert!(out.contains("No nodes") || out.contains("NAME"), "{out}");
    let err = aistorctl(&["--server", &server, "nodes"])
        .await
        .unwrap_err();
    assert!(err.contains("needs --certificate-authority"), "{err}");
    // Another CA's certificate is not trusted.
    let other = tempfile::tempdir().unwrap();
    let foreign = Authority::open_or_create(other.path()).unwrap().ca_path();
    let err = aistorctl(&[
        "--server",
        &server,
        "--certificate-authority",
        foreign.to_str().unwrap(),
        "nodes",
    ])
    .await
    .unwrap_err();
    assert!(
        err.contains("unreachable") || err.contains("certificate") || err.contains("invalid peer"),
        "{err}"
    );
    c.stop().await;
}
