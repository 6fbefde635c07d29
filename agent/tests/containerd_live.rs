//! Container discovery against a real, private containerd.
//!
//! The test starts its own containerd (root, state, socket and config under a tempdir;
//! CRI plugin disabled so it never touches the host's Kubernetes state), creates
//! containers from a busybox-static rootfs without pulling any image, runs them with runc
//! through containerd's gRPC API, and checks what `Containerd::list` and
//! `run_containerd` report. Needs root, `containerd`, `containerd-shim-runc-v2`, `runc`
//! and a static busybox (Debian: `containerd runc busybox-static`). Without them it
//! prints "skipped: ..." and passes, unless `AISTOR_REQUIRE_TOOLS=1`, where it fails.

use aistor_agent::discovery::{Discovered, run_containerd};
use aistor_agent::source::HostFs;
use aistor_agent::source::containerd::{ContainerInfo, Containerd};
use aistor_proto::v1::ContainerState;
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetRequest, KillRequest, StartRequest, WaitRequest,
};
use containerd_client::types::v1::Status;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::Request;

const NAMESPACE: &str = "k8s.io";
const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn require_tools() -> bool {
    std::env::var("AISTOR_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A statically linked ELF64 executable (no PT_INTERP program header), so it runs in a
/// rootfs without libraries.
fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    if bytes.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        u32_at(phoff + i * usize::from(phentsize))
            .is_some_and(|kind| kind != 3 /* PT_INTERP */)
    })
}

/// A container the test created, for cleanup.
#[derive(Debug, Clone)]
struct Created {
    id: String,
    pid: Option<u32>,
}

/// The private containerd and everything created through it; `Drop` removes it all,
/// also when an assertion failed.
struct Private {
    dir: tempfile::TempDir,
    socket: PathBuf,
    child: Option<Child>,
    created: Vec<Created>,
    /// Cgroup directories to remove (deepest first), relative to each controller mount.
    cgroups: Vec<String>,
}

impl Private {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn ctr(&self, args: &[&str]) {
        let _ = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", NAMESPACE])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn cleanup(&mut self) {
        let created = std::mem::take(&mut self.created);
        let alive = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if alive {
            for c in &created {
                self.ctr(&["tasks", "kill", "--signal", "SIGKILL", &c.id]);
            }
            std::thread::sleep(Duration::from_millis(200));
            for c in &created {
                self.ctr(&["tasks", "delete", "--force", &c.id]);
                self.ctr(&["containers", "delete", &c.id]);
            }
        }
        // Container processes that outlived their shim: only ours (their cgroup names
        // our container id).
        for c in &created {
            if let Some(pid) = c.pid {
                let ours = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .is_ok_and(|text| text.contains(&c.id));
                if ours {
                    signal(pid, rustix::process::Signal::KILL);
                }
            }
        }
        if let Some(mut child) = self.child.take() {
            signal(child.id(), rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Shims started for our socket, should any remain.
        for pid in shims_of(&self.socket) {
            signal(pid, rustix::process::Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(100));
        let cgroups = std::mem::take(&mut self.cgroups);
        if let Ok(controllers) = std::fs::read_dir(CGROUP_ROOT) {
            let mounts: Vec<PathBuf> = controllers.flatten().map(|e| e.path()).collect();
            for relative in &cgroups {
                for mount in mounts.iter().chain([&PathBuf::from(CGROUP_ROOT)]) {
                    // rmdir only removes empty cgroups, never someone else's work.
                    let _ = std::fs::remove_dir(mount.join(relative));
                }
            }
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn shims_of(socket: &Path) -> Vec<u32> {
    let needle = socket.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
                let cmd = String::from_utf8_lossy(&cmd);
                cmd.contains("containerd-shim") && cmd.contains(&needle)
            })
        })
        .collect()
}

fn config(dir: &Path, socket: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#,
        socket = socket.display()
    )
}

/// Starts the private containerd and waits for its API; `Err` says what is missing.
async fn start() -> Result<Private, String> {
    let mut missing = Vec::new();
    for tool in ["containerd", "containerd-shim-runc-v2", "runc", "ctr"] {
        if find_in_path(tool).is_none() {
            missing.push(tool.to_owned());
        }
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| is_static_elf(p));
    if busybox.is_none() {
        missing.push("a static /bin/busybox (busybox-static)".to_owned());
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing {} (Debian: apt-get install containerd runc busybox-static)",
            missing.join(", ")
        ));
    }
    if !rustix::process::geteuid().is_root() {
        return Err("running containers needs root".to_owned());
    }
    let dir = tempfile::Builder::new()
        .prefix("aistor-ctrd-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let socket = dir.path().join("c.sock");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config(dir.path(), &socket)).map_err(|e| e.to_string())?;
    let log =
        std::fs::File::create(dir.path().join("containerd.log")).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new("containerd")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("cannot start containerd: {e}"))?;
    let mut private = Private {
        dir,
        socket,
        child: Some(child),
        created: Vec::new(),
        cgroups: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(child) = private.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(format!(
                "containerd exited ({status}):\n{}",
                private.log_tail()
            ));
        }
        if private.socket.exists()
            && let Ok(client) = containerd_client::Client::from_path(&private.socket).await
            && client.version().version(()).await.is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "containerd did not answer on {} within 15 s:\n{}",
                private.socket.display(),
                private.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rootfs = private.path("rootfs");
    for sub in ["bin", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(sub)).map_err(|e| e.to_string())?;
    }
    if let Some(busybox) = busybox {
        std::fs::copy(busybox, rootfs.join("bin/busybox")).map_err(|e| e.to_string())?;
    }
    for applet in ["sh", "sleep", "cat", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .map_err(|e| e.to_string())?;
    }
    Ok(private)
}

fn spec(rootfs: &Path, args: &[&str], cgroups_path: &str) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
        },
        "root": {"path": rootfs.display().to_string(), "readonly": false},
        "hostname": "aistor-live",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Creates a container through the containers service and starts its task; returns the
/// task pid.
async fn run_container(
    private: &mut Private,
    client: &containerd_client::Client,
    id: &str,
    labels: &[(&str, &str)],
    cgroup_dirs: &[String],
    args: &[&str],
) -> u32 {
    let cgroups_path = format!("/{}", cgroup_dirs.last().expect("a cgroup path"));
    let spec = spec(&private.path("rootfs"), args, &cgroups_path);
    let container = Container {
        id: id.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        image: "local/busybox-rootfs".to_owned(),
        runtime: Some(Runtime {
            name: "io.containerd.runc.v2".to_owned(),
            options: None,
        }),
        spec: Some(prost_types::Any {
            type_url: SPEC_TYPE_URL.to_owned(),
            value: serde_json::to_vec(&spec).expect("spec json"),
        }),
        ..Container::default()
    };
    client
        .containers()
        .create(containerd_client::with_namespace!(
            CreateContainerRequest {
                container: Some(container),
            },
            NAMESPACE
        ))
        .await
        .unwrap_or_else(|e| panic!("create container {id}: {e}\n{}", private.log_tail()));
    private.created.push(Created {
        id: id.to_owned(),
        pid: None,
    });
    for dir in cgroup_dirs.iter().rev() {
        if !private.cgroups.contains(dir) {
            private.cgroups.push(dir.clone());
        }
    }
    private
        .cgroups
        .sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    let created = client
        .tasks()
        .create(containerd_client::with_namespace!(
            CreateTaskRequest {
                container_id: id.to_owned(),
                ..CreateTaskRequest::default()
            },
            NAMESPACE
        ))
        .await
        .unwrap_or_else(|e| panic!("create task {id}: {e}\n{}", private.log_tail()))
        .into_inner();
    if let Some(c) = private.created.iter_mut().find(|c| c.id == id) {
        c.pid = Some(created.pid);
    }
    client
        .tasks()
        .start(containerd_client::with_namespace!(
            StartRequest {
                container_id: id.to_owned(),
                ..StartRequest::default()
            },
            NAMESPACE
        ))
        .await
        .unwrap_or_else(|e| panic!("start task {id}: {e}\n{}", private.log_tail()));
    let task = client
        .tasks()
        .get(containerd_client::with_namespace!(
            GetRequest {
                container_id: id.to_owned(),
                ..GetRequest::default()
            },
            NAMESPACE
        ))
        .await
        .expect("get task")
        .into_inner()
        .process
        .expect("task process");
    assert_eq!(task.status, Status::Running as i32, "task {id} runs");
    task.pid
}

/// CPU time used by the cgroup, ns: v1 `cpuacct.usage`, else v2 `cpu.stat` usage_usec.
fn cpu_usage_ns(cgroup_path: &str) -> Option<u64> {
    let v1 = Path::new(CGROUP_ROOT)
        .join("cpuacct")
        .join(cgroup_path)
        .join("cpuacct.usage");
    if let Ok(text) = std::fs::read_to_string(&v1) {
        return text.trim().parse().ok();
    }
    for mount in [CGROUP_ROOT.to_owned(), format!("{CGROUP_ROOT}/unified")] {
        let stat = Path::new(&mount).join(cgroup_path).join("cpu.stat");
        if let Ok(text) = std::fs::read_to_string(stat) {
            let usec = text
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok());
            return usec.map(|u| u * 1000);
        }
    }
    None
}

/// Waits (at most `within`) until the published state satisfies `ok`.
async fn wait_for(
    rx: &mut watch::Receiver<Discovered>,
    within: Duration,
    what: &str,
    ok: impl Fn(&Discovered) -> bool,
) -> Duration {
    let started = Instant::now();
    let seen = matches!(
        tokio::time::timeout(within, rx.wait_for(|d| ok(d))).await,
        Ok(Ok(_))
    );
    assert!(
        seen,
        "discovery did not report {what} within {within:?}; last: {:?}",
        *rx.borrow()
    );
    started.elapsed()
}

fn find<'a>(list: &'a [ContainerInfo], id: &str) -> Option<&'a ContainerInfo> {
    list.iter().find(|c| c.id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_containers_of_a_private_containerd() {
    let test_started = Instant::now();
    let mut private = match start().await {
        Ok(p) => p,
        Err(why) if require_tools() => {
            panic!("containerd live test cannot run (AISTOR_REQUIRE_TOOLS=1): {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let client = containerd_client::Client::from_path(&private.socket)
        .await
        .expect("connect to the private containerd");

    let unique = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    );
    // Kubernetes pod uids are UUIDs; the kubelet's cgroup names depend on that shape.
    let pod_uid = format!(
        "a1570000-0000-4000-8000-{:0>12}",
        &unique[unique.len().saturating_sub(12)..]
    );
    let work_id = format!("aistor-work-{unique}");
    let sandbox_id = format!("aistor-sandbox-{unique}");
    // cgroupfs-driver layout (this kind of host runs no systemd): kubepods/<qos>/pod<uid>/<id>.
    let pod_dir = format!("kubepods/besteffort/pod{pod_uid}");
    let mut parents = Vec::new();
    for dir in ["kubepods", "kubepods/besteffort"] {
        // Remove shared parents afterwards only if this test created them.
        if !Path::new(CGROUP_ROOT).join("memory").join(dir).exists()
            && !Path::new(CGROUP_ROOT).join(dir).exists()
        {
            parents.push(dir.to_owned());
        }
    }
    let mut work_dirs = parents.clone();
    work_dirs.extend([pod_dir.clone(), format!("{pod_dir}/{work_id}")]);
    let mut sandbox_dirs = parents.clone();
    sandbox_dirs.extend([pod_dir.clone(), format!("{pod_dir}/{sandbox_id}")]);

    let pod_labels = [
        ("io.kubernetes.pod.uid", pod_uid.as_str()),
        ("io.kubernetes.pod.name", "busy-0"),
        ("io.kubernetes.pod.namespace", "aistor-test"),
    ];
    let sandbox_pid = run_container(
        &mut private,
        &client,
        &sandbox_id,
        &[
            pod_labels.as_slice(),
            &[("io.cri-containerd.kind", "sandbox")],
        ]
        .concat(),
        &sandbox_dirs,
        &["/bin/sleep", "3600"],
    )
    .await;
    let work_pid = run_container(
        &mut private,
        &client,
        &work_id,
        &[
            pod_labels.as_slice(),
            &[
                ("io.kubernetes.container.name", "spin"),
                ("io.cri-containerd.kind", "container"),
            ],
        ]
        .concat(),
        &work_dirs,
        &["/bin/sh", "-c", "while :; do :; done"],
    )
    .await;
    assert_ne!(sandbox_pid, 0);

    // One list through our code.
    let runtime = Containerd::new(
        private.socket.clone(),
        vec![NAMESPACE.to_owned()],
        HostFs::new("/"),
    );
    let listed = runtime.list().await.expect("list the private containerd");
    assert!(
        find(&listed, &sandbox_id).is_none(),
        "sandboxes are skipped: {listed:?}"
    );
    let work = find(&listed, &work_id).unwrap_or_else(|| panic!("work container in {listed:?}"));
    assert_eq!(work.runtime_namespace, NAMESPACE);
    assert_eq!(work.pod_uid, pod_uid);
    assert_eq!(work.pod_name, "busy-0");
    assert_eq!(work.pod_namespace, "aistor-test");
    assert_eq!(work.container_name, "spin");
    assert_eq!(work.image, "local/busybox-rootfs");
    assert_eq!(work.state, ContainerState::Running);
    assert_eq!(work.pid, Some(work_pid));
    assert!(
        Path::new(&format!("/proc/{work_pid}")).exists(),
        "task pid alive"
    );
    let cgroup = work.cgroup_path.clone().expect("cgroup path");
    assert_eq!(cgroup, format!("{pod_dir}/{work_id}"));
    assert!(!cgroup.starts_with('/'));
    let controllers = ["cpuacct", "memory", "unified", ""];
    assert!(
        controllers
            .iter()
            .any(|c| Path::new(CGROUP_ROOT).join(c).join(&cgroup).is_dir()),
        "{cgroup} exists under {CGROUP_ROOT}/<controller>"
    );
    let before = cpu_usage_ns(&cgroup).expect("cpu usage of the container cgroup");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = cpu_usage_ns(&cgroup).expect("cpu usage of the container cgroup");
    assert!(
        after > before + 10_000_000,
        "the spinning container used CPU: {before} -> {after} ns"
    );

    // The whole agent path: a snapshot reports the container under its pod, with the
    // pod's identity from containerd and CPU measured from the pod's own cgroup.
    let host = aistor_agent::config::HostConfig {
        host_root: "/".into(),
        node_name: "containerd-test".into(),
        disk_exclude: regex::Regex::new(aistor_agent::config::DEFAULT_DISK_EXCLUDE).unwrap(),
        pods: aistor_agent::config::PodConfig {
            containerd_socket: private.socket.clone(),
            containerd_namespaces: vec![NAMESPACE.to_owned()],
            ..Default::default()
        },
        gpu: Default::default(),
    };
    let mut out = Vec::new();
    aistor_agent::snapshot(host, Duration::from_millis(300), &mut out)
        .await
        .expect("snapshot");
    let report: serde_json::Value = serde_json::from_slice(&out).expect("snapshot JSON");
    let pod = report["pods"]
        .as_array()
        .and_then(|pods| pods.iter().find(|p| p["uid"] == pod_uid.as_str()))
        .unwrap_or_else(|| panic!("pod {pod_uid} missing from {}", report["pods"]));
    assert_eq!(pod["name"], "busy-0");
    assert_eq!(pod["namespace"], "aistor-test");
    assert_eq!(pod["discovered_by"], "containerd");
    assert_eq!(pod["qos_class"], "besteffort");
    assert_eq!(pod["cgroup_path"], pod_dir.as_str());
    let spin = pod["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == work_id.as_str()))
        .expect("the spinning container in its pod");
    assert_eq!(spin["name"], "spin");
    assert_eq!(spin["state"], "running");
    for (what, usage) in [("container", &spin["usage"]), ("pod", &pod["usage"])] {
        let cpu = usage["cpu"]["usage_millicores"]
            .as_f64()
            .unwrap_or_else(|| panic!("{what} CPU rate: {usage}"));
        assert!(
            cpu > 200.0,
            "the spinning {what} uses CPU: {cpu} millicores"
        );
    }

    // The long-running discovery: reconcile far away, so updates must come from events.
    let (tx, mut rx) = watch::channel(Discovered::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = aistor_agent::shutdown::from_future(async move {
        let _ = stopped.await;
    });
    let discovery = tokio::spawn(run_containerd(
        Containerd::new(
            private.socket.clone(),
            vec![NAMESPACE.to_owned()],
            HostFs::new("/"),
        ),
        Duration::from_secs(60),
        tx,
        shutdown,
    ));
    wait_for(
        &mut rx,
        Duration::from_secs(10),
        "the running container",
        |d| {
            d.error.is_none()
                && d.source == "containerd"
                && find(&d.containers, &work_id).is_some_and(|c| c.state == ContainerState::Running)
                && find(&d.containers, &sandbox_id).is_none()
        },
    )
    .await;

    // Kill and delete the task: the next refresh is event driven.
    let killed_at = Instant::now();
    client
        .tasks()
        .kill(containerd_client::with_namespace!(
            KillRequest {
                container_id: work_id.clone(),
                signal: 9,
                ..KillRequest::default()
            },
            NAMESPACE
        ))
        .await
        .expect("kill task");
    tokio::time::timeout(
        Duration::from_secs(10),
        client.tasks().wait(containerd_client::with_namespace!(
            WaitRequest {
                container_id: work_id.clone(),
                ..WaitRequest::default()
            },
            NAMESPACE
        )),
    )
    .await
    .expect("task exits")
    .expect("wait task");
    client
        .tasks()
        .delete(containerd_client::with_namespace!(
            DeleteTaskRequest {
                container_id: work_id.clone(),
            },
            NAMESPACE
        ))
        .await
        .expect("delete task");
    let took = wait_for(&mut rx, Duration::from_secs(5), "the task gone", |d| {
        find(&d.containers, &work_id)
            .is_none_or(|c| c.state != ContainerState::Running && c.pid.is_none())
    })
    .await;
    println!(
        "task kill+delete seen after {:?} (from kill: {:?})",
        took,
        killed_at.elapsed()
    );

    client
        .containers()
        .delete(containerd_client::with_namespace!(
            DeleteContainerRequest {
                id: work_id.clone()
            },
            NAMESPACE
        ))
        .await
        .expect("delete container");
    private.created.retain(|c| c.id != work_id);
    wait_for(&mut rx, Duration::from_secs(5), "the container gone", |d| {
        find(&d.containers, &work_id).is_none() && d.error.is_none()
    })
    .await;

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), discovery)
        .await
        .expect("discovery stops on shutdown")
        .expect("discovery task");
    drop(client);
    private.cleanup();
    assert!(
        shims_of(&private.socket).is_empty(),
        "no shim left for the private containerd"
    );
    for dir in [format!("{pod_dir}/{work_id}"), pod_dir.clone()] {
        assert!(
            !Path::new(CGROUP_ROOT).join("memory").join(&dir).exists(),
            "cgroup {dir} removed"
        );
    }
    println!("containerd live test took {:?}", test_started.elapsed());
}
