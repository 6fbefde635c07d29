//! The coordinator's listeners are bounded (issue 12, findings 6 and 7): connections
//! that send half a request, only the HTTP/2 preface or nothing are closed after the
//! header-read timeout; connections over the cap are closed on accept; every REST
//! error is `{"error", "details"}` JSON with the right status; CORS is off unless
//! origins are allowed; gRPC streams outlive the unary timeout.

mod support;

use std::time::Duration;
use support::{Coordinator, H2_PREFACE, closed_after, header, http_raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The short timeouts these tests configure; closes are awaited for 3× as long.
const TIMEOUT: Duration = Duration::from_secs(1);
const WITHIN: Duration = Duration::from_secs(3);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);

async fn short_timeouts() -> Coordinator {
    Coordinator::start(|c| {
        c.http_limits.header_read_timeout = TIMEOUT;
        c.grpc_limits.header_read_timeout = TIMEOUT;
        // Longer than the header-read timeout, so a close by the preface deadline
        // (within 3 s) is told apart from one by keepalive (after 3 s).
        c.grpc_limits.keepalive_interval = KEEPALIVE_INTERVAL;
        c.grpc_limits.keepalive_timeout = TIMEOUT;
    })
    .await
}

fn assert_closed_by_timeout(what: &str, took: Option<Duration>) {
    let took = took.unwrap_or_else(|| panic!("{what}: still open after {WITHIN:?}"));
    // Timers never fire early: a close before the timeout was not the timeout's.
    assert!(
        took >= TIMEOUT * 9 / 10,
        "{what}: closed after only {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_http_connections_are_closed_after_the_header_read_timeout() {
    let c = short_timeouts().await;
    for (what, bytes) in [
        ("nothing sent", &b""[..]),
        ("half a request", b"GET /health HTTP/1.1\r\nHost: x\r\n"),
        ("half a request line", b"GET /heal"),
        ("only the HTTP/2 preface", H2_PREFACE),
        ("half the HTTP/2 preface", &H2_PREFACE[..10]),
    ] {
        assert_closed_by_timeout(what, closed_after(c.http, bytes, WITHIN).await);
    }
    // A kept-alive connection idle after its first request is closed the same way.
    let mut s = tokio::net::TcpStream::connect(c.http).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(WITHIN, s.read_to_end(&mut rest))
        .await
        .expect("an idle kept-alive connection is closed")
        .ok();
    assert!(started.elapsed() >= TIMEOUT * 9 / 10);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_grpc_connections_are_closed() {
    let c = short_timeouts().await;
    for (what, bytes) in [
        ("nothing sent", &b""[..]),
        ("half the HTTP/2 preface", &H2_PREFACE[..10]),
        ("only the HTTP/2 preface", H2_PREFACE),
    ] {
        assert_closed_by_timeout(what, closed_after(c.grpc, bytes, WITHIN).await);
    }
    // The preface and an empty SETTINGS frame, then silence: the keepalive ping
    // (after 2 s) goes unanswered for 1 s.
    let settings = [H2_PREFACE, &[0, 0, 0, 4, 0, 0, 0, 0, 0]].concat();
    let keepalive = KEEPALIVE_INTERVAL + TIMEOUT;
    let took = closed_after(c.grpc, &settings, keepalive * 3)
        .await
        .expect("a peer that answers no ping is closed");
    assert!(took >= keepalive * 9 / 10, "closed after only {took:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_outlive_the_unary_timeout() {
    let c = Coordinator::start(|c| c.grpc_limits.request_timeout = TIMEOUT).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", c.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut cluster = aistor_proto::v1::cluster_service_client::ClusterServiceClient::new(channel);
    let mut events = cluster
        .watch_nodes(aistor_proto::v1::WatchNodesRequest {})
        .await
        .expect("the watch starts")
        .into_inner();
    let until = tokio::time::Instant::now() + WITHIN;
    loop {
        match tokio::time::timeout_at(until, events.message()).await {
            Err(_) => break, // still open after 3× the unary timeout
            Ok(Ok(Some(_))) => continue,
            Ok(other) => panic!("the watch ended: {other:?}"),
        }
    }
    // Unary calls still work on the same connection.
    cluster
        .list_nodes(aistor_proto::v1::ListNodesRequest::default())
        .await
        .expect("a unary call");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_on_accept_and_counted() {
    let c = Coordinator::start(|c| {
        c.http_limits.max_connections = 2;
        c.grpc_limits.max_connections = 1;
    })
    .await;
    // Two kept-alive HTTP connections, each served once, then held open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(c.http).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let took = closed_after(c.http, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", WITHIN)
        .await
        .expect("the third HTTP connection is closed");
    assert!(
        took < Duration::from_secs(2),
        "closed at once, not by a timeout: {took:?}"
    );
    // One gRPC connection held (inside its preface deadline), a second closed.
    let grpc_held = tokio::net::TcpStream::connect(c.grpc).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    closed_after(c.grpc, H2_PREFACE, WITHIN)
        .await
        .expect("the second gRPC connection is closed");

    // A place frees up when a held connection goes.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let mut s = tokio::net::TcpStream::connect(c.http).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        if text.starts_with("HTTP/1.1 200") {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no place freed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let value = |line: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{line} missing:\n{metrics}"))
    };
    assert!(value("aistor_coordinator_connections_refused_total{listener=\"http\"}") >= 1.0);
    assert!(value("aistor_coordinator_connections_refused_total{listener=\"grpc\"}") >= 1.0);
    assert!(value("aistor_coordinator_connections{listener=\"grpc\"}") >= 1.0);
    drop(grpc_held);
    c.stop().await;
}

/// `{"error": <text>, "details": <text>}` and nothing else.
fn assert_api_error(what: &str, status: u16, want: u16, head: &str, body: &serde_json::Value) {
    assert_eq!(status, want, "{what}: {head}\n{body}");
    assert_eq!(
        header(head, "content-type"),
        Some("application/json"),
        "{what}: {head}"
    );
    let fields = body.as_object().unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(
        fields.len() == 2 && body["error"].is_string() && body["details"].is_string(),
        "{what}: {body}"
    );
    assert!(
        !body["details"].as_str().unwrap().is_empty(),
        "{what}: {body}"
    );
}

fn post(path: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra_headers}\r\n")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rest_error_is_json_with_its_status() {
    let c = Coordinator::start(|c| {
        c.http_limits.max_body_bytes = 1024;
        c.http_limits.max_uri_bytes = 2048;
        c.http_limits.max_header_bytes = 4096;
    })
    .await;
    let big = "x".repeat(3000);
    let chunked_big = format!(
        "POST /api/v1/measurements HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unknown route", get("/api/v1/nope", ""), 404),
        (
            "wrong method",
            b"DELETE /api/v1/nodes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            405,
        ),
        (
            "bad JSON body",
            post("/api/v1/measurements", "application/json", "{not json"),
            400,
        ),
        (
            "wrong JSON shape",
            post(
                "/api/v1/measurements",
                "application/json",
                r#"{"samples":"x"}"#,
            ),
            400,
        ),
        (
            "not JSON",
            post("/api/v1/measurements", "text/plain", "{}"),
            415,
        ),
        ("bad path encoding", get("/api/v1/nodes/%FF", ""), 400),
        (
            "body over the limit (Content-Length)",
            post("/api/v1/measurements", "application/json", &big),
            413,
        ),
        (
            "body over the limit (chunked)",
            chunked_big.into_bytes(),
            413,
        ),
        (
            "autoscaler body over the limit",
            post("/api/v1/autoscaling", "application/json", &big),
            413,
        ),
        (
            "URI over the limit",
            get(&format!("/api/v1/nodes?continue={big}"), ""),
            414,
        ),
        (
            "headers over the limit",
            get("/api/v1/nodes", &format!("X-Big: {big}{big}\r\n")),
            431,
        ),
    ];
    for (what, request, want) in cases {
        let (status, head, body) = http_raw(c.http, &request).await;
        assert_api_error(what, status, want, &head, &body);
    }
    // The 405 still says what the endpoint accepts.
    let (_, head, body) = http_raw(
        c.http,
        b"DELETE /api/v1/nodes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(header(&head, "allow"), Some("GET,HEAD"), "{head}");
    assert!(
        body["details"].as_str().unwrap().contains("DELETE"),
        "{body}"
    );
    // Within the limits the same requests are served.
    let (status, _, _) = http_raw(c.http, &get("/api/v1/nodes?limit=5", "X-Small: 1\r\n")).await;
    assert_eq!(status, 200);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cors_by_default_and_only_allowed_origins_with_the_flag() {
    let origin = |o: &str| get("/health", &format!("Origin: {o}\r\n"));
    let c = Coordinator::start(|_| {}).await;
    let (status, head, _) = http_raw(c.http, &origin("https://evil.example")).await;
    assert_eq!(status, 200);
    assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
    c.stop().await;

    let c = Coordinator::start(|c| {
        c.cors_allow_origins = vec![
            "https://dash.example".parse().unwrap(),
            "http://localhost:3000".parse().unwrap(),
        ];
    })
    .await;
    let (_, head, _) = http_raw(c.http, &origin("https://dash.example")).await;
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("https://dash.example"),
        "{head}"
    );
    let (_, head, _) = http_raw(c.http, &origin("https://evil.example")).await;
    assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
    // A preflight from an allowed origin is answered; errors carry the header too.
    let (status, head, _) = http_raw(
        c.http,
        b"OPTIONS /api/v1/measurements HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
          Origin: http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    let (status, head, _) = http_raw(
        c.http,
        &get("/api/v1/nope", "Origin: http://localhost:3000\r\n"),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    c.stop().await;
}
