//! Agents over mutual TLS: a connection proves its node with a certificate from the
//! agents' CA and may report only for that node. Real rustls on loopback, real
//! certificates (`aistor_coordinator::pki`), the generated client and the real agent.

mod support;

use aistor_agent::config::{ClientTls, RunConfig};
use aistor_coordinator::config::AgentListener;
use aistor_coordinator::identity::AgentTls;
use aistor_coordinator::pki::{Authority, Issued};
use aistor_proto::v1 as pb;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::Coordinator;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

struct Pki {
    dir: tempfile::TempDir,
    ca: Authority,
    server: Issued,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::open_or_create(dir.path()).unwrap();
    let server = ca
        .issue_server(&["localhost".into(), "127.0.0.1".into()])
        .unwrap();
    Pki { dir, ca, server }
}

async fn coordinator(pki: &Pki) -> Coordinator {
    let tls = AgentTls {
        cert: pki.server.cert.clone(),
        key: pki.server.key.clone(),
        client_ca: pki.ca.ca_path(),
    };
    Coordinator::start(|c| {
        c.agents = Some(AgentListener {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: Some(tls),
        });
    })
    .await
}

fn report(node: &str) -> pb::NodeReport {
    pb::NodeReport {
        node: Some(pb::NodeIdentity {
            name: node.into(),
            ..Default::default()
        }),
        agent_instance: "test-1".into(),
        seq: 1,
        ..Default::default()
    }
}

/// Sends one report over TLS as `client` (or with no client certificate); the
/// acknowledged seq, or why not.
async fn send(
    agents: SocketAddr,
    ca: &Path,
    client: Option<&Issued>,
    report: pb::NodeReport,
) -> Result<u64, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("localhost");
    if let Some(c) = client {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&c.cert).unwrap(),
            std::fs::read(&c.key).unwrap(),
        ));
    }
    let channel = Endpoint::from_shared(format!("https://{agents}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
    let mut directives = client
        .connect(tokio_stream::iter(vec![report]))
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    match directives.message().await {
        Ok(Some(pb::Directive {
            kind: Some(pb::directive::Kind::Ack(ack)),
            ..
        })) => Ok(ack.seq),
        Ok(other) => Err(format!("no ack: {other:?}")),
        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
    }
}

#[tokio::test]
async fn an_agent_reports_for_its_own_node_only() {
    let pki = pki();
    let c = coordinator(&pki).await;
    assert_ne!(c.agents, c.grpc, "agents have a listener of their own");
    let node_a = pki.ca.issue_agent("node-a").unwrap();
    assert_eq!(
        send(c.agents, &pki.ca.ca_path(), Some(&node_a), report("node-a")).await,
        Ok(1)
    );
    let spoofed = send(c.agents, &pki.ca.ca_path(), Some(&node_a), report("node-b"))
        .await
        .unwrap_err();
    assert!(
        spoofed.starts_with("PermissionDenied")
            && spoofed.contains("certificate is for node \"node-a\""),
        "{spoofed}"
    );
    let (status, body) = support::http_get(c.http, "/api/v1/nodes/node-b").await;
    assert_eq!(status, 404, "{body}");
    let (_, metrics) = support::http_text(c.http, "/metrics").await;
    assert!(
        metrics.contains("aistor_coordinator_reports_total{outcome=\"wrong_identity\"} 1"),
        "{metrics}"
    );
    c.stop().await;
}

#[tokio::test]
async fn no_wrong_expired_or_missing_certificate_gets_in() {
    let pki = pki();
    let c = coordinator(&pki).await;
    let other = tempfile::tempdir().unwrap();
    let foreign = Authority::open_or_create(other.path())
        .unwrap()
        .issue_agent("node-a")
        .unwrap();
    let expired = pki
        .ca
        .issue_agent_valid(
            "node-a",
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2021, 1, 1),
        )
        .unwrap();
    let ca = pki.ca.ca_path();
    for (what, client) in [
        ("another CA's", Some(&foreign)),
        ("an expired", Some(&expired)),
        ("no", None),
    ] {
        let refused = send(c.agents, &ca, client, report("node-a")).await;
        assert!(refused.is_err(), "{what} certificate was let in");
    }
    // Nor does cleartext.
    let plain = Endpoint::from_shared(format!("http://{}", c.agents))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
        assert!(
            client
                .connect(tokio_stream::iter(vec![report("node-a")]))
                .await
                .is_err()
        );
    }
    let (status, _) = support::http_get(c.http, "/api/v1/nodes/node-a").await;
    assert_eq!(status, 404);
    drop(pki.dir);
    c.stop().await;
}

#[tokio::test]
async fn the_real_agent_speaks_mutual_tls_and_refuses_to_downgrade() {
    let pki = pki();
    let c = coordinator(&pki).await;
    let cert = pki.ca.issue_agent("tls-node").unwrap();
    let tls = ClientTls {
        ca: pki.ca.ca_path(),
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    };
    let config = |coordinator: String, tls: Option<ClientTls>| RunConfig {
        tls,
        ..support::agent_config("tls-node", coordinator)
    };
    // https:// without TLS files, and TLS files with http://: refused before anything is sent.
    for (url, tls) in [
        (format!("https://localhost:{}", c.agents.port()), None),
        (
            format!("http://localhost:{}", c.agents.port()),
            Some(tls.clone()),
        ),
    ] {
        let err = aistor_agent::run(config(url.clone(), tls), std::future::pending(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--tls") || err.contains("https://"),
            "{url}: {err}"
        );
    }

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(aistor_agent::run(
        config(format!("https://localhost:{}", c.agents.port()), Some(tls)),
        async { drop(stopped.await) },
        None,
    ));
    let mut shown = false;
    for _ in 0..100 {
        let (status, _) = support::http_get(c.http, "/api/v1/nodes/tls-node").await;
        if status == 200 {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shown, "the agent's reports arrived over mutual TLS");
    let _ = stop.send(());
    agent.await.unwrap().unwrap();
    c.stop().await;
}
