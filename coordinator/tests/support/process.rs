//! The real `aistor-coordinator` binary as a child process, for tests that kill,
//! pause or restart it, and HTTP exchanges that fail (instead of panicking) while it
//! is down or stopped.

use serde_json::Value;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const COORDINATOR_BIN: &str = env!("CARGO_BIN_EXE_aistor-coordinator");
/// Generous: everything here may wait for CPU on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(90);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A loopback port free a moment ago.
pub fn free_port() -> SocketAddr {
    free_port_on("127.0.0.1".parse().unwrap())
}

/// A port on `ip` free a moment ago.
pub fn free_port_on(ip: std::net::IpAddr) -> SocketAddr {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One HTTP/1.1 exchange over a real socket: the status and the body as text.
/// `Err` when nothing answers (down, stopped, unreachable) within
/// [`REQUEST_TIMEOUT`].
pub async fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let raw = String::from_utf8_lossy(&raw);
        let status = raw.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| {
            format!(
                "{method} {path}: no HTTP status in {:?}",
                &raw[..raw.len().min(80)]
            )
        })?;
        let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}"))?
}

/// [`try_http`] with the body as JSON (`null` when it is not JSON).
pub async fn try_http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let (status, text) = try_http(addr, method, path, body).await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// The value of one sample in a Prometheus/OpenMetrics text exposition, `line`
/// being its name and labels exactly as exposed (`name{label="v"}`).
pub fn metric(exposition: &str, line: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let rest = l.strip_prefix(line)?;
        rest.strip_prefix(' ')?.split(' ').next()?.parse().ok()
    })
}

/// Polls until `check` holds; panics naming `what` after `within`.
pub async fn eventually_within(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a child without blocking the runtime; `None` if it is still running
/// after `within`.
pub async fn wait_for_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("child status readable") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `signal` (`TERM`, `STOP`, `CONT`, ...) to `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("the kill command runs");
    assert!(sent.success(), "SIG{signal} not sent to {pid}");
}

/// One `aistor-coordinator run` process on fixed addresses and a data directory;
/// [`CoordinatorProcess::restart`] starts the next one on the same addresses and
/// directory. Its output goes to `<log_prefix>-<n>.log`, `n` counting starts.
pub struct CoordinatorProcess {
    /// `None` only before the first launch.
    child: Option<Child>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    data_dir: PathBuf,
    log_prefix: PathBuf,
    starts: usize,
    extra: Vec<String>,
}

impl CoordinatorProcess {
    fn spawn(
        grpc: SocketAddr,
        http: SocketAddr,
        data_dir: &Path,
        log: &Path,
        extra: &[String],
    ) -> Child {
        let out = File::create(log).expect("log file");
        Command::new(COORDINATOR_BIN)
            .arg("run")
            .args(["--grpc-addr", &grpc.to_string()])
            .args(["--http-addr", &http.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--shutdown-grace", "5s"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("aistor-coordinator starts")
    }

    /// Starts one on `grpc` (a free loopback port when `None`) and a free loopback
    /// HTTP port, with `extra` arguments, and waits until it serves `/health`.
    pub async fn start(
        grpc: Option<SocketAddr>,
        data_dir: &Path,
        log_prefix: &Path,
        extra: &[&str],
    ) -> Self {
        let fixed_grpc = grpc.is_some();
        for _ in 0..5 {
            let grpc = grpc.unwrap_or_else(free_port);
            let http = free_port();
            let mut this = Self {
                child: None,
                grpc,
                http,
                data_dir: data_dir.to_owned(),
                log_prefix: log_prefix.to_owned(),
                starts: 0,
                extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            };
            if this.launch().await {
                return this;
            }
            assert!(!fixed_grpc, "cannot listen on {grpc}:\n{}", this.log());
        }
        panic!("no free ports for the coordinator after 5 tries")
    }

    /// Spawns the process on this one's addresses; false if a port was taken.
    async fn launch(&mut self) -> bool {
        self.starts += 1;
        let log = self.log_path();
        self.child = Some(Self::spawn(
            self.grpc,
            self.http,
            &self.data_dir,
            &log,
            &self.extra,
        ));
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child_mut().try_wait().unwrap() {
                let log = self.log();
                assert!(
                    log.contains("cannot listen"),
                    "coordinator exited ({status}) before serving:\n{log}"
                );
                return false;
            }
            if let Ok((200, _)) = try_http(self.http, "GET", "/health", None).await {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "not serving /health within {PATIENCE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the next process on the same addresses and data directory (after
    /// [`Self::kill`] or [`Self::terminate`]). A port taken meanwhile by another
    /// program is retried for a while: the agents know only this address.
    pub async fn restart(&mut self) {
        for _ in 0..20 {
            if self.launch().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "cannot listen on {} / {} again:\n{}",
            self.grpc,
            self.http,
            self.log()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    fn child(&self) -> &Child {
        self.child.as_ref().expect("launched")
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("launched")
    }

    fn log_path(&self) -> PathBuf {
        let mut name = self.log_prefix.as_os_str().to_owned();
        name.push(format!("-{}.log", self.starts));
        name.into()
    }

    /// The output of the current (or last) process.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits for the process to exit by itself (a fault point), at most `within`.
    pub async fn exited(&mut self, within: Duration) -> Option<ExitStatus> {
        wait_for_exit(self.child_mut(), within).await
    }

    /// SIGKILL: no drain, no clean close of the database.
    pub async fn kill(&mut self) {
        self.child_mut().kill().expect("SIGKILL sent");
        wait_for_exit(self.child_mut(), PATIENCE)
            .await
            .expect("a killed process exits");
    }

    /// SIGSTOP: the process stays, its sockets keep accepting into the kernel's
    /// queues, and nothing is answered.
    pub fn pause(&self) {
        send_signal(self.pid(), "STOP");
    }

    pub fn resume(&self) {
        send_signal(self.pid(), "CONT");
    }

    /// SIGTERM, then the drain: the exit status.
    pub async fn terminate(&mut self) -> ExitStatus {
        send_signal(self.pid(), "TERM");
        match wait_for_exit(self.child_mut(), PATIENCE).await {
            Some(status) => status,
            None => panic!("no exit after SIGTERM:\n{}", self.log()),
        }
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        match try_http(self.http, "GET", "/metrics", None).await {
            Ok((200, text)) => text,
            other => panic!("/metrics: {other:?}"),
        }
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        // A paused process takes SIGKILL too.
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
