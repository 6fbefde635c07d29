//! Who may call the APIs: bearer tokens from `--api-tokens` (read and act are
//! separate), open health and metrics, and a coordinator that will not listen on a
//! reachable address with nobody authenticated unless told to. Real HTTP and gRPC
//! over loopback.

mod support;

use aistor_proto::v1 as pb;
use pb::cluster_service_client::ClusterServiceClient;
use std::io::Write;
use support::Coordinator;
use tonic::Code;

const READER: &str = "reader-token-0123456789";
const ACTOR: &str = "actor-token-0123456789ab";

fn tokens_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "# user tokens\n{READER},ana,read\n{ACTOR},ops,act").unwrap();
    file
}

/// A raw HTTP request with an optional bearer token: status, head, body.
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String, serde_json::Value) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = "{}";
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    support::http_raw(addr, request.as_bytes()).await
}

#[tokio::test]
async fn rest_needs_a_token_that_may_do_what_is_asked() {
    let tokens = tokens_file();
    let path = tokens.path().to_owned();
    let c = Coordinator::start(|config| config.api_tokens = Some(path)).await;

    let (status, head, body) = call(c.http, "GET", "/api/v1/nodes", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "Unauthorized");
    assert!(
        body["details"].as_str().unwrap().contains("bearer token"),
        "{body}"
    );
    assert_eq!(
        support::header(&head, "www-authenticate"),
        Some("Bearer realm=\"aistor\"")
    );
    let (status, _, body) = call(c.http, "GET", "/api/v1/nodes", Some("not-a-token-at-all")).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = call(c.http, "GET", "/api/v1/nodes", Some(READER)).await;
    assert_eq!(status, 200, "{body}");

    // Acting needs the act role.
    let (status, _, body) = call(c.http, "POST", "/api/v1/measurements", Some(READER)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["details"]
            .as_str()
            .unwrap()
            .contains("\"ana\" may read but not act"),
        "{body}"
    );
    let (status, _, body) = call(c.http, "POST", "/api/v1/measurements", Some(ACTOR)).await;
    assert!(status != 401 && status != 403, "{status}: {body}");

    // Health and metrics stay open.
    let (status, _, body) = call(c.http, "GET", "/health", None).await;
    assert_eq!((status, &body["warnings"]), (200, &serde_json::json!([])));
    assert_eq!(support::http_text(c.http, "/metrics").await.0, 200);
    c.stop().await;
}

#[tokio::test]
async fn grpc_needs_a_token_and_agents_keep_their_own_rules() {
    let tokens = tokens_file();
    let path = tokens.path().to_owned();
    let c = Coordinator::start(|config| config.api_tokens = Some(path)).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", c.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let with = |token: Option<&'static str>| {
        let channel = channel.clone();
        ClusterServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            if let Some(t) = token {
                r.metadata_mut()
                    .insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
            Ok(r)
        })
    };
    let refused = with(None)
        .list_nodes(pb::ListNodesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
    with(Some(READER))
        .list_nodes(pb::ListNodesRequest::default())
        .await
        .unwrap();
    let refused = with(Some(READER))
        .start_measurement(pb::StartMeasurementRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");
    let acted = with(Some(ACTOR))
        .start_measurement(pb::StartMeasurementRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        acted.code(),
        Code::InvalidArgument,
        "past auth to validation: {acted}"
    );

    // An agent on the shared port is not asked for an API token.
    let mut agent = pb::agent_service_client::AgentServiceClient::new(channel.clone());
    let report = pb::NodeReport {
        node: Some(pb::NodeIdentity {
            name: "n1".into(),
            ..Default::default()
        }),
        agent_instance: "a".into(),
        seq: 1,
        ..Default::default()
    };
    let mut directives = agent
        .connect(tokio_stream::iter(vec![report]))
        .await
        .unwrap()
        .into_inner();
    assert!(directives.message().await.unwrap().is_some());
    c.stop().await;
}

#[tokio::test]
async fn a_reachable_listener_with_nobody_authenticated_needs_the_operators_word() {
    let data = tempfile::tempdir().unwrap();
    let exposed = aistor_coordinator::config::Config::new(
        "127.0.0.1:0".parse().unwrap(),
        "0.0.0.0:0".parse().unwrap(),
        data.path().to_owned(),
    );
    let err = aistor_coordinator::run(exposed, std::future::pending(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("REST API would listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("--allow-unauthenticated"), "{err}");

    let c = Coordinator::start(|config| {
        config.http_addr = "0.0.0.0:0".parse().unwrap();
        config.grpc_addr = "0.0.0.0:0".parse().unwrap();
        config.allow_unauthenticated = true;
    })
    .await;
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], c.http.port()));
    let (status, _, body) = call(local, "GET", "/health", None).await;
    assert_eq!(status, 200);
    let warnings = body["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 3, "{body}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("agents report over 0.0.0.0:0 unauthenticated"),
        "{body}"
    );
    c.stop().await;
}
