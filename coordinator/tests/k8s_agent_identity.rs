//! On a cluster an agent proves its node with its projected ServiceAccount token:
//! the coordinator asks the API server (TokenReview, against the API fake that
//! follows the real server's answers) and lets the stream report only for the
//! node the token is bound to.

mod k8s_support;
mod support;

use aistor_coordinator::k8s::ClusterConfig;
use aistor_kube_fake::TokenInfo;
use aistor_proto::v1 as pb;
use support::Coordinator;
use tonic::Code;

fn report(node: &str) -> pb::NodeReport {
    pb::NodeReport {
        node: Some(pb::NodeIdentity {
            name: node.into(),
            ..Default::default()
        }),
        agent_instance: "a-1".into(),
        seq: 1,
        ..Default::default()
    }
}

/// One report over a new stream with `token`: the acknowledged seq, or the status.
async fn send(
    grpc: std::net::SocketAddr,
    token: Option<&str>,
    node: &str,
) -> Result<u64, (Code, String)> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
    let mut request = tonic::Request::new(tokio_stream::iter(vec![report(node)]));
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let failed = |s: tonic::Status| (s.code(), s.message().to_owned());
    let mut directives = client.connect(request).await.map_err(failed)?.into_inner();
    match directives.message().await {
        Ok(Some(pb::Directive {
            kind: Some(pb::directive::Kind::Ack(ack)),
            ..
        })) => Ok(ack.seq),
        Ok(other) => panic!("no ack: {other:?}"),
        Err(s) => Err(failed(s)),
    }
}

#[tokio::test]
async fn an_agents_token_proves_its_node_and_nothing_else_gets_in() {
    let fake = k8s_support::start().await;
    let k8s = fake.config("coordinator-a");
    let c = Coordinator::start(|cfg| cfg.cluster = ClusterConfig::Kubernetes(k8s)).await;
    c.until_leading().await;
    let token = fake.agent_token("node-1");
    assert_eq!(send(c.grpc, Some(&token), "node-1").await, Ok(1));

    let (code, message) = send(c.grpc, Some(&token), "node-2").await.unwrap_err();
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(message.contains("is for node \"node-1\""), "{message}");

    // Another ServiceAccount's token, one meant for the API server, an unknown one, none.
    fake.server.add_token(
        "a-workload-token",
        TokenInfo {
            username: "system:serviceaccount:default:default".into(),
            audiences: vec!["aistor".into()],
            extra: [(
                aistor_coordinator::identity::NODE_NAME_EXTRA.to_owned(),
                vec!["node-1".to_owned()],
            )]
            .into(),
            groups: Vec::new(),
        },
    );
    fake.server.add_token(
        "an-api-token",
        TokenInfo {
            username: "system:serviceaccount:aistor-node:aistor-agent".into(),
            audiences: vec!["https://kubernetes.default.svc".into()],
            extra: Default::default(),
            groups: Vec::new(),
        },
    );
    for (token, why) in [
        (Some("a-workload-token"), "not to an aistor agent"),
        (Some("an-api-token"), "token audiences is invalid"),
        (Some("made-up"), "invalid bearer token"),
        (None, "agents must prove their node"),
    ] {
        let (code, message) = send(c.grpc, token, "node-1").await.unwrap_err();
        assert_eq!(code, Code::Unauthenticated, "{token:?}: {message}");
        assert!(message.contains(why), "{token:?}: {message}");
    }
    let (_, metrics) = support::http_text(c.http, "/metrics").await;
    assert!(
        metrics.contains("aistor_coordinator_reports_total{outcome=\"unauthenticated\"} 4"),
        "{metrics}"
    );
    fake.assert_every_call_is_listed();
    c.stop().await;
}

/// API callers on a cluster present their own Kubernetes tokens: the coordinator
/// asks the API server who they are and whether RBAC lets them read or act.
#[tokio::test]
async fn api_callers_are_who_the_cluster_says_and_may_what_rbac_grants() {
    let fake = k8s_support::start().await;
    let k8s = fake.config("coordinator-a");
    // Reachable from other machines: on a cluster the APIs need no flag for that.
    let c = Coordinator::start(|cfg| {
        cfg.cluster = ClusterConfig::Kubernetes(k8s);
        cfg.http_addr = "0.0.0.0:0".parse().unwrap();
    })
    .await;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], c.http.port()));
    // This machine's own non-loopback address, to call as another machine would.
    let remote = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("10.255.255.255:1").and(s.local_addr()))
        .ok()
        .filter(|a| !a.ip().is_loopback() && !a.ip().is_unspecified())
        .map(|a| std::net::SocketAddr::new(a.ip(), c.http.port()));
    c.until_leading().await;
    let user = |name: &str, groups: &[&str]| {
        TokenInfo {
            username: name.into(),
            audiences: vec!["https://kubernetes.default.svc".into()],
            extra: Default::default(),
            groups: Vec::new(),
        }
        .with_groups(groups)
    };
    fake.server.add_token("ana-token", user("ana", &[]));
    fake.server.add_token("ops-token", user("olu", &["ops"]));
    fake.server.add_token("bob-token", user("bob", &[]));
    fake.server.grant("ana", "aistor.io", "api", &["read"]);
    fake.server
        .grant("ops", "aistor.io", "api", &["read", "act"]);

    let addr = remote.unwrap_or(loopback);
    let call = |method: &'static str, path: &'static str, token: Option<&'static str>| async move {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{auth}\
                 Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        support::http_raw(addr, request.as_bytes()).await
    };
    assert_eq!(call("GET", "/api/v1/nodes", Some("ana-token")).await.0, 200);
    let (status, _, body) = call("POST", "/api/v1/measurements", Some("ana-token")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["details"].as_str().unwrap().contains("may not act"),
        "{body}"
    );
    // A group's grant counts; past auth to the request's own checks.
    let (status, _, body) = call("POST", "/api/v1/measurements", Some("ops-token")).await;
    assert!(status != 401 && status != 403, "{status}: {body}");
    let (status, _, body) = call("GET", "/api/v1/nodes", Some("bob-token")).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = call("GET", "/api/v1/nodes", Some("made-up")).await;
    assert_eq!(status, 401, "{body}");
    match remote {
        Some(_) => {
            let (status, _, body) = call("GET", "/api/v1/nodes", None).await;
            assert_eq!(status, 401, "no token from another address: {body}");
        }
        None => eprintln!("no non-loopback address here: the tokenless remote call was not tried"),
    }
    // Loopback is `kubectl port-forward`, which the cluster already authorised.
    let (status, _, body) = support::http_raw(
        loopback,
        b"GET /api/v1/nodes HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The coordinator's own calls (TokenReview, SubjectAccessReview) are ones its RBAC grants.
    fake.assert_every_call_is_listed();
    c.stop().await;
}

/// The real agent reads its projected token from `--token-file` and is let in for
/// its own node.
#[tokio::test]
async fn the_real_agent_proves_its_node_with_its_token_file() {
    let fake = k8s_support::start().await;
    let k8s = fake.config("coordinator-a");
    let c = Coordinator::start(|cfg| cfg.cluster = ClusterConfig::Kubernetes(k8s)).await;
    c.until_leading().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    // As the kubelet writes it: the token, maybe with a final newline.
    std::fs::write(&token_file, format!("{}\n", fake.agent_token("token-node"))).unwrap();
    let config = aistor_agent::config::RunConfig {
        token_file: Some(token_file),
        ..support::agent_config("token-node", format!("http://{}", c.grpc))
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(aistor_agent::run(
        config,
        async { drop(stopped.await) },
        None,
    ));
    k8s_support::within("the agent's node to appear", async {
        while support::http_get(c.http, "/api/v1/nodes/token-node")
            .await
            .0
            != 200
        {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    let _ = stop.send(());
    agent.await.unwrap().unwrap();
    c.stop().await;
}
