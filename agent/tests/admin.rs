//! The admin endpoint of a running agent whose coordinator is down: it keeps
//! measuring, buffers reports for replay, and says so in its metrics.

use aistor_agent::config::{DEFAULT_DISK_EXCLUDE, HostConfig, PodConfig, RunConfig};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    (
        raw[9..12].parse().unwrap(),
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measures_and_buffers_while_the_coordinator_is_down() {
    let workload = Workload::create();
    // A port nothing listens on.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = RunConfig {
        host: HostConfig {
            host_root: "/".into(),
            node_name: "admin-test".into(),
            disk_exclude: regex::Regex::new(DEFAULT_DISK_EXCLUDE).unwrap(),
            pods: PodConfig {
                workload_cgroups: workload.globs(),
                ..PodConfig::default()
            },
            gpu: Default::default(),
        },
        coordinator: format!("http://{nowhere}"),
        interval: Duration::from_millis(100),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        admin_limits: Default::default(),
        replay_buffer: Duration::from_secs(60),
        replay_buffer_max_bytes: 32 << 20,
        shutdown_grace: Duration::from_millis(200),
        tls: None,
        token_file: None,
        local_runtime: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(aistor_agent::run(
        config,
        async { drop(stopped.await) },
        Some(bound_tx),
    ));
    let addr = bound_rx.await.unwrap();

    assert_eq!(get(addr, "/live").await.0, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get(addr, "/ready").await.0, 200);
    let (code, metrics) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} missing from:\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("aistor_agent_uplink_connected"), 0.0);
    let buffered = value("aistor_agent_replay_buffer_reports");
    assert!(buffered >= 4.0, "reports kept for replay: {buffered}");
    assert_eq!(
        value("aistor_agent_replay_buffer_reports"),
        value("aistor_agent_collections_total")
    );
    // The limits as configured, and the outage held so far (the reports are one interval
    // apart at least).
    assert_eq!(value("aistor_agent_replay_buffer_max_age_seconds"), 60.0);
    assert_eq!(
        value("aistor_agent_replay_buffer_max_bytes"),
        f64::from(32u32 << 20)
    );
    let span = value("aistor_agent_replay_buffer_span_seconds");
    assert!(span > 0.0 && span < 60.0, "span {span}");
    assert!(value("node_memory_MemTotal_bytes") > 0.0);
    assert!(
        metrics.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("node_disk_read_bytes_total{device="),
        "{metrics}"
    );
    assert!(
        !metrics.contains("{}"),
        "empty label sets are not valid exposition"
    );
    if let Some(name) = &workload.name {
        let series = format!(
            "container_memory_working_set_bytes{{container=\"\",id=\"/{name}\",namespace=\"\",pod=\"{name}\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
        assert!(
            metrics.contains("container_cpu_usage_seconds_total{"),
            "{metrics}"
        );
    }
    promtool_accepts(&metrics);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops promptly")
        .unwrap()
        .unwrap();
}

/// `promtool check metrics` on the exposition. node_exporter's own names
/// (`node_memory_MemTotal_bytes`) draw its camelCase lint; we keep them on purpose so
/// dashboards work unchanged, and allow exactly that complaint.
fn promtool_accepts(metrics: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("AISTOR_REQUIRE_TOOLS").is_none() => {
            eprintln!("skipped promtool check: {e} (install Debian's prometheus package)");
            return;
        }
        Err(e) => panic!("promtool is required (AISTOR_REQUIRE_TOOLS=1): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let complaints =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let unexpected: Vec<&str> = complaints
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !(l.starts_with("node_memory_") && l.contains("camelCase")))
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool complaints:\n{}",
        unexpected.join("\n")
    );
}

/// A cgroup of our own, reported as a workload so the exposition has `container_*`
/// series; removed on drop. Needs root: without it the cAdvisor part is skipped
/// (or fails under AISTOR_REQUIRE_TOOLS=1).
struct Workload {
    name: Option<String>,
    dirs: Vec<std::path::PathBuf>,
}

impl Workload {
    fn create() -> Self {
        use aistor_agent::source::{CgroupReader, HostFs};
        let name = format!("aistor-admin-test-{}", std::process::id());
        let reader = CgroupReader::detect(HostFs::new("/")).expect("a cgroup filesystem");
        let mut dirs: Vec<_> = ["cpu", "cpuacct", "memory"]
            .iter()
            .filter_map(|c| reader.hierarchy_dir(c))
            .map(|d| d.join(&name))
            .collect();
        dirs.dedup();
        for dir in &dirs {
            if let Err(e) = std::fs::create_dir_all(dir) {
                assert!(
                    std::env::var_os("AISTOR_REQUIRE_TOOLS").is_none(),
                    "cannot create {}: {e} (root needed)",
                    dir.display()
                );
                eprintln!(
                    "skipped the container_* part: cannot create {}: {e}",
                    dir.display()
                );
                return Self {
                    name: None,
                    dirs: Vec::new(),
                };
            }
        }
        Self {
            name: Some(name),
            dirs,
        }
    }

    fn globs(&self) -> Vec<String> {
        self.name.iter().cloned().collect()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
