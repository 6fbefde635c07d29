//! Shared by the coordinator's integration tests: a coordinator run in-process on
//! loopback with its own data directory, and a plain HTTP/1.1 GET.

#![allow(dead_code, unreachable_pub)]

pub mod apollo;
pub mod migration;
pub mod process;
pub mod seeds;

use aistor_coordinator::config::Config;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// A coordinator running in this process; stopped (gracefully) when dropped or by
/// [`Coordinator::stop`].
pub struct Coordinator {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// Where agents connect (`grpc` unless they have a listener of their own).
    pub agents: SocketAddr,
    /// The scheduler extender's listener, when configured.
    pub extender: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), aistor_coordinator::Error>>>,
    _data: tempfile::TempDir,
}

impl Coordinator {
    /// Starts one on ephemeral loopback ports with a fresh data directory; `tune`
    /// adjusts the configuration first.
    pub async fn start(tune: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().expect("a temporary data dir");
        let mut config = Config {
            refresh_every: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(5),
            ..Config::new(
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
                data.path().to_owned(),
            )
        };
        tune(&mut config);
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel();
        let task = tokio::spawn(aistor_coordinator::run(
            config,
            async { drop(stopped.await) },
            Some(bound_tx),
        ));
        let bound = tokio::time::timeout(Duration::from_secs(60), bound_rx)
            .await
            .expect("the coordinator binds within a minute")
            .expect("the coordinator binds");
        Self {
            grpc: bound.grpc,
            http: bound.http,
            agents: bound.agents,
            extender: bound.extender,
            stop: Some(stop),
            task: Some(task),
            _data: data,
        }
    }

    /// Stops it and waits for a clean exit.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("stops within a minute")
            .expect("no panic")
            .expect("a clean stop");
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `GET path` over HTTP/1.1 on loopback: the status and the JSON body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).expect("a JSON body"))
}

/// One HTTP/1.1 exchange on loopback: the status, the response head (for its
/// headers) and the body as JSON (`null` when empty).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (status, head.to_owned(), json)
}

/// A GET whose body is returned as text (e.g. `/metrics`).
pub async fn http_text(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Raw bytes to `addr`, then everything the server sends until it closes
/// (`Connection: close` in `request`): the status, the head and the body as JSON.
pub async fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, String, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers and closes within 30 s")
        .expect("a response");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (status, head.to_owned(), json)
}

/// The value of header `name` in a response head (case-insensitive name).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Connects, sends `bytes` (maybe nothing, maybe half a request) and waits for the
/// server to close the connection, reading and discarding what it sends (an
/// HTTP/2 server's SETTINGS, a 408). `None` when it was still open after
/// `within`; else how long the close took.
pub async fn closed_after(addr: SocketAddr, bytes: &[u8], within: Duration) -> Option<Duration> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    if !bytes.is_empty() {
        stream.write_all(bytes).await.unwrap();
    }
    let mut sink = Vec::new();
    // Ok(0) at the end, or a reset: either way the server closed it.
    match tokio::time::timeout(within, stream.read_to_end(&mut sink)).await {
        Ok(_) => Some(started.elapsed()),
        Err(_) => None,
    }
}

/// The HTTP/2 client connection preface, and nothing after it.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Runs `aistorctl` in-process with `args` (no program name), as a person would;
/// its output, or its error as text.
pub async fn aistorctl(args: &[&str]) -> Result<String, String> {
    use clap::Parser;
    let cli = aistor_coordinator::cli::Cli::try_parse_from(
        std::iter::once("aistorctl").chain(args.iter().copied()),
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        aistor_coordinator::cli::run(cli, &mut out),
    )
    .await
    .map_err(|_| "aistorctl timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A real agent's configuration for tests: this host read as node `node`, reporting
/// to `coordinator` every 200 ms, admin on an ephemeral loopback port, no GPU source
/// chosen, no TLS, no token, no local runtime. Tests change what they need with
/// struct update syntax.
pub fn agent_config(node: &str, coordinator: String) -> aistor_agent::config::RunConfig {
    use aistor_agent::config::{DEFAULT_DISK_EXCLUDE, HostConfig, PodConfig, RunConfig};
    RunConfig {
        host: HostConfig {
            host_root: "/".into(),
            node_name: node.into(),
            disk_exclude: regex::Regex::new(DEFAULT_DISK_EXCLUDE).unwrap(),
            pods: PodConfig::default(),
            gpu: Default::default(),
        },
        coordinator,
        interval: Duration::from_millis(200),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        admin_limits: Default::default(),
        replay_buffer: Duration::from_secs(60),
        replay_buffer_max_bytes: 8 << 20,
        shutdown_grace: Duration::from_secs(2),
        tls: None,
        token_file: None,
        local_runtime: None,
    }
}

impl Coordinator {
    /// Waits (at most a minute) until this coordinator answers `/ready` with 200: it leads.
    pub async fn until_leading(&self) {
        let local = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), self.http.port());
        tokio::time::timeout(Duration::from_secs(60), async {
            while http_get(local, "/ready").await.0 != 200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the coordinator leads within a minute");
    }
}
