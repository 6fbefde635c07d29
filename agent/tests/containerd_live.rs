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
use std::path::Path;
use std::time::{Duration, Instant};
use support::{
    CGROUP_ROOT, Created, NAMESPACE, Private, SPEC_TYPE_URL, require_tools, shims_of, start,
};
use tokio::sync::watch;
use tonic::Request;

#[path = "../examples/support/containerd.rs"]
mod support;

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
