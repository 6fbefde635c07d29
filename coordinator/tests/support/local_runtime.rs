//! Shared by the live local-runtime tests: an in-process agent with `--local-runtime`
//! on the test's private containerd (the including test declares `mod containerd`),
//! and `aistorctl` run in-process as a person would.

#![allow(dead_code, unreachable_pub)]

use aistor_agent::config::{DEFAULT_DISK_EXCLUDE, HostConfig, PodConfig, RunConfig};
use aistor_agent::runtime::RuntimeConfig;
use aistor_agent::runtime::pod::Paths;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const NODE: &str = "local-1";

/// A private containerd, or `None` (after saying why) when this machine lacks the
/// tools; with `AISTOR_REQUIRE_TOOLS=1` their absence fails `test` instead.
pub async fn containerd_or_skip(test: &str) -> Option<crate::containerd::Private> {
    match crate::containerd::start().await {
        Ok(p) => Some(p),
        Err(why) => {
            assert!(
                !crate::containerd::require_tools(),
                "{test} needs its tools: {why}"
            );
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Builds an OCI image `image` of the host's static busybox in `work` and imports it
/// into `private` (no registry is reachable).
pub fn import_busybox(
    private: &crate::containerd::Private,
    work: &Path,
    image: &str,
) -> Result<(), String> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| crate::containerd::is_static_elf(p))
        .ok_or("no static busybox")?;
    let archive = crate::oci_image::build(work, &busybox, image, &["sleep", "3600"])?;
    private
        .ctr_output(&["images", "import", &archive.display().to_string()])
        .map(drop)
}

pub async fn aistorctl(server: SocketAddr, args: &[&str]) -> Result<String, String> {
    let server = server.to_string();
    let argv: Vec<&str> = ["--server", &server]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    crate::support::aistorctl(&argv).await
}

/// Runs `aistorctl` until `ok` holds for its output.
pub async fn until(
    server: SocketAddr,
    args: &[&str],
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = aistorctl(server, args).await.unwrap_or_else(|e| e);
        if ok(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last output:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub struct Agent {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), aistor_agent::Error>>,
}

/// An agent with the local runtime on the private containerd at `socket`, reporting
/// every 250 ms.
pub fn agent(grpc: SocketAddr, socket: &Path, work: &Path) -> Agent {
    agent_every(grpc, socket, work, Duration::from_millis(250))
}

/// The same, reporting every `interval`.
pub fn agent_every(grpc: SocketAddr, socket: &Path, work: &Path, interval: Duration) -> Agent {
    agent_as(
        grpc,
        socket,
        work,
        interval,
        NODE,
        crate::containerd::NAMESPACE,
        &work.join("runtime"),
    )
}

/// An agent for node `node` whose pods live in containerd namespace `namespace` and
/// whose own files are under `runtime_dir`: two of them on one containerd are two
/// nodes (each sees only its namespace), sharing the volume root and the checkpoint
/// volume under `work` as nodes share an NFS claim.
pub fn agent_as(
    grpc: SocketAddr,
    socket: &Path,
    work: &Path,
    interval: Duration,
    node: &str,
    namespace: &str,
    runtime_dir: &Path,
) -> Agent {
    let config = RunConfig {
        host: HostConfig {
            host_root: "/".into(),
            node_name: node.into(),
            disk_exclude: regex::Regex::new(DEFAULT_DISK_EXCLUDE).unwrap(),
            pods: PodConfig {
                containerd_socket: socket.to_owned(),
                containerd_namespaces: vec![namespace.to_owned()],
                reconcile_every: Duration::from_secs(2),
                ..PodConfig::default()
            },
            gpu: aistor_agent::config::GpuConfig {
                source: aistor_agent::config::GpuSourceKind::Off,
                ..Default::default()
            },
        },
        coordinator: format!("http://{grpc}"),
        interval,
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        admin_limits: Default::default(),
        replay_buffer: Duration::from_secs(60),
        replay_buffer_max_bytes: 32 << 20,
        shutdown_grace: Duration::from_secs(2),
        tls: None,
        token_file: None,
        local_runtime: Some(RuntimeConfig {
            containerd_socket: socket.to_owned(),
            namespace: namespace.to_owned(),
            snapshotter: "overlayfs".to_owned(),
            cgroup_root: PathBuf::from(crate::containerd::CGROUP_ROOT),
            paths: Paths {
                data_dir: runtime_dir.to_owned(),
                volume_root: work.join("volumes"),
                host_root: PathBuf::from("/"),
            },
            node: node.into(),
            checkpoint_dir: Some(work.join("checkpoints")),
        }),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(aistor_agent::run(
        config,
        async { drop(stopped.await) },
        None,
    ));
    Agent { stop, task }
}

impl Agent {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the agent stops")
            .expect("no panic")
            .expect("a clean stop");
    }
}
