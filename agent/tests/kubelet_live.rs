//! LIVE: checkpoints and freezing of a kubelet pod (one the local runtime does not run),
//! against a real, private containerd. No kubelet runs here: the test plays its part and
//! creates the pod's containers itself, as the CRI plugin would, with the CRI labels
//! (`io.kubernetes.pod.uid`, ...), a pause-like sandbox, the cgroupfs-driver layout
//! `kubepods/besteffort/pod<uid>/<id>` and a host directory bind-mounted at
//! `/checkpoint`. Then, through the agent's directive path with the local runtime off:
//! StageCheckpoint with a SIGUSR1 hook (the application writes its state and touches
//! `/checkpoint/.aistor-checkpoint-done`) and with an exec hook (containerd exec as the
//! container's process), the staged files and manifest, a refusal naming a container
//! with nothing at the path, FreezePod (a counter stops; `Pod.frozen` in a snapshot
//! report) and a thaw by a fresh agent (state read from the kernel), then
//! `aistor-agent restore` into a fresh directory (idempotent), and a corrupted staged
//! file that makes restore fail naming it.
//!
//! Needs root, containerd, runc, ctr and a static busybox. Without them it prints
//! "skipped: ..." and passes, unless `AISTOR_REQUIRE_TOOLS=1`, where it fails.

#[path = "../examples/support/containerd.rs"]
mod support;

use aistor_agent::runtime::directives::Action;
use aistor_agent::runtime::kubelet::{self, KubeletConfig, KubeletPods};
use aistor_proto::v1 as pb;
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, StartRequest,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{CGROUP_ROOT, Created, NAMESPACE, Private, SPEC_TYPE_URL, require_tools, start};
use tokio::sync::mpsc;
use tonic::Request;

const POD: &str = "trainer-0";
const POD_NS: &str = "ml";

fn spec(rootfs: &Path, args: &[&str], cgroups_path: &str, mounts: &[(&Path, &str)]) -> Vec<u8> {
    let mut all = vec![
        serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        serde_json::json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
    ];
    for (source, destination) in mounts {
        // What the CRI plugin writes for a volume mount.
        all.push(serde_json::json!({
            "destination": destination, "type": "bind",
            "source": source.display().to_string(), "options": ["rbind", "rprivate", "rw"]
        }));
    }
    serde_json::to_vec(&serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "APP=trainer"],
            "cwd": "/",
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
        },
        "root": {"path": rootfs.display().to_string(), "readonly": false},
        "hostname": POD,
        "mounts": all,
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    }))
    .unwrap()
}

/// Creates a container as the CRI plugin would and starts its task; returns its pid.
async fn run_container(
    private: &mut Private,
    client: &containerd_client::Client,
    id: &str,
    labels: &[(&str, &str)],
    cgroup_dirs: &[String],
    spec: Vec<u8>,
) -> u32 {
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
            value: spec,
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
    created.pid
}

/// Thaws the pod cgroup when dropped, so a failed assertion never leaves frozen
/// processes behind.
struct ThawOnDrop(String);

impl Drop for ThawOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(
            Path::new(CGROUP_ROOT)
                .join("freezer")
                .join(&self.0)
                .join("freezer.state"),
            "THAWED",
        );
        let _ = std::fs::write(
            Path::new(CGROUP_ROOT).join(&self.0).join("cgroup.freeze"),
            "0",
        );
    }
}

fn count(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether the count in `path` moves within `within`.
async fn advances(path: &Path, within: Duration) -> bool {
    let before = count(path);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if count(path) > before {
            return true;
        }
    }
    false
}

fn agent(
    kubelet: KubeletPods,
) -> (
    Arc<KubeletPods>,
    mpsc::Sender<(String, Action)>,
    mpsc::Receiver<pb::DirectiveResult>,
) {
    let kubelet = Arc::new(kubelet);
    let (actions, actions_rx) = mpsc::channel(8);
    let (results_tx, results) = mpsc::channel(8);
    tokio::spawn(kubelet::serve(kubelet.clone(), actions_rx, results_tx));
    (kubelet, actions, results)
}

async fn ask(
    actions: &mpsc::Sender<(String, Action)>,
    results: &mut mpsc::Receiver<pb::DirectiveResult>,
    id: &str,
    action: Action,
) -> String {
    actions.send((id.to_owned(), action)).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(60), results.recv())
        .await
        .expect("a result within 60 s")
        .expect("a result");
    assert_eq!(result.id, id);
    result.error
}

fn stage(uid: &str, id: &str, hook: &str, containers: &[&str]) -> Action {
    Action::Stage(pb::StageCheckpoint {
        pod_uid: uid.to_owned(),
        checkpoint_id: id.to_owned(),
        containers: containers.iter().map(|c| (*c).to_owned()).collect(),
        hook_timeout_nanos: 20_000_000_000,
        // empty: the default /checkpoint
        checkpoint_path: String::new(),
        hook: hook.to_owned(),
    })
}

/// The pod `uid` in a snapshot report (the agent's whole collection path).
async fn snapshot(host: aistor_agent::config::HostConfig, uid: &str) -> serde_json::Value {
    let mut buf = Vec::new();
    aistor_agent::snapshot(host, Duration::from_millis(200), &mut buf)
        .await
        .expect("snapshot");
    let report: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    report["pods"]
        .as_array()
        .and_then(|pods| pods.iter().find(|p| p["uid"] == uid).cloned())
        .unwrap_or_else(|| panic!("pod {uid} missing from {}", report["pods"]))
}

fn restore(dir: &Path, id: &str, into: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_aistor-agent"))
        .args(["restore", "--checkpoint-dir"])
        .arg(dir)
        .args([
            "--namespace",
            POD_NS,
            "--checkpoint-id",
            id,
            "--container",
            "app",
            "--into",
        ])
        .arg(into)
        .output()
        .expect("run aistor-agent restore")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_pod_checkpoint_freeze_and_restore() {
    let mut private = match start().await {
        Ok(p) => p,
        Err(why) if require_tools() => {
            panic!("kubelet live test cannot run (AISTOR_REQUIRE_TOOLS=1): {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let rootfs = private.path("rootfs");
    for applet in ["touch", "mkdir"] {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
    }
    let client = containerd_client::Client::from_path(&private.socket)
        .await
        .expect("connect to the private containerd");
    let work = tempfile::Builder::new()
        .prefix("aistor-kubelet-")
        .tempdir()
        .unwrap();
    // The pod's volumes on the host (a kubelet would use /var/lib/kubelet/pods/<uid>/volumes).
    let volume = work.path().join("pods/volumes/state");
    let out = work.path().join("pods/volumes/out");
    let checkpoints = work.path().join("checkpoints");
    for d in [&volume, &out, &checkpoints] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(volume.join("weights.bin"), vec![7u8; 300_000]).unwrap();

    let id = aistor_agent::runtime::pod::new_id();
    let uid = format!(
        "{}-{}-4{}-8{}-{}",
        &id[..8],
        &id[8..12],
        &id[13..16],
        &id[17..20],
        &id[20..32]
    );
    let pod_dir = format!("kubepods/besteffort/pod{uid}");
    let mut parents = Vec::new();
    for dir in ["kubepods", "kubepods/besteffort"] {
        if !Path::new(CGROUP_ROOT).join("memory").join(dir).exists()
            && !Path::new(CGROUP_ROOT).join(dir).exists()
        {
            parents.push(dir.to_owned());
        }
    }
    let dirs = |cid: &str| {
        let mut d = parents.clone();
        d.extend([pod_dir.clone(), format!("{pod_dir}/{cid}")]);
        d
    };
    let pod_labels = [
        ("io.kubernetes.pod.uid", uid.as_str()),
        ("io.kubernetes.pod.name", POD),
        ("io.kubernetes.pod.namespace", POD_NS),
    ];
    let (sandbox, app, sidecar) = (
        format!("kl-sandbox-{}", &id[..12]),
        format!("kl-app-{}", &id[..12]),
        format!("kl-sidecar-{}", &id[..12]),
    );
    run_container(
        &mut private,
        &client,
        &sandbox,
        &[
            pod_labels.as_slice(),
            &[("io.cri-containerd.kind", "sandbox")],
        ]
        .concat(),
        &dirs(&sandbox),
        spec(
            &rootfs,
            &["/bin/sleep", "3600"],
            &format!("/{pod_dir}/{sandbox}"),
            &[],
        ),
    )
    .await;
    let _thaw = ThawOnDrop(pod_dir.clone());
    // The application: counts into /out/n; on SIGUSR1 writes its state into its
    // checkpoint directory, then the marker.
    let script = "trap 'echo \"step $i\" > /checkpoint/state; mkdir -p /checkpoint/sub; echo nested > /checkpoint/sub/file; touch /checkpoint/.aistor-checkpoint-done' USR1; \
                  i=0; while :; do i=$((i+1)); echo $i > /out/n; sleep 0.1; done";
    run_container(
        &mut private,
        &client,
        &app,
        &[
            pod_labels.as_slice(),
            &[
                ("io.kubernetes.container.name", "app"),
                ("io.cri-containerd.kind", "container"),
            ],
        ]
        .concat(),
        &dirs(&app),
        spec(
            &rootfs,
            &["/bin/sh", "-c", script],
            &format!("/{pod_dir}/{app}"),
            &[(&volume, "/checkpoint"), (&out, "/out")],
        ),
    )
    .await;
    run_container(
        &mut private,
        &client,
        &sidecar,
        &[
            pod_labels.as_slice(),
            &[
                ("io.kubernetes.container.name", "sidecar"),
                ("io.cri-containerd.kind", "container"),
            ],
        ]
        .concat(),
        &dirs(&sidecar),
        spec(
            &rootfs,
            &["/bin/sleep", "3600"],
            &format!("/{pod_dir}/{sidecar}"),
            &[],
        ),
    )
    .await;
    let counter = out.join("n");
    assert!(
        advances(&counter, Duration::from_secs(10)).await,
        "it counts"
    );

    let config = || KubeletConfig {
        containerd_socket: private.socket.clone(),
        namespaces: vec![NAMESPACE.to_owned()],
        host_root: PathBuf::from("/"),
        node: "kubelet-1".into(),
        checkpoint_dir: Some(checkpoints.clone()),
    };
    let (kp, actions, mut results) = agent(KubeletPods::new(config()));

    // StageCheckpoint with a SIGUSR1 hook: only `app` mounts /checkpoint.
    let started = Instant::now();
    let error = ask(
        &actions,
        &mut results,
        "d-stage",
        stage(&uid, "ckpt-1", "signal:SIGUSR1", &[]),
    )
    .await;
    assert_eq!(error, "", "stage failed");
    eprintln!("staged with the signal hook in {:?}", started.elapsed());
    let staged = checkpoints
        .join(POD_NS)
        .join(POD)
        .join("ckpt-1")
        .join("app");
    let data = staged.join("data");
    assert!(
        std::fs::read_to_string(data.join("state"))
            .unwrap()
            .starts_with("step "),
        "the application's state"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("sub/file")).unwrap(),
        "nested\n"
    );
    assert_eq!(
        std::fs::read(data.join("weights.bin")).unwrap().len(),
        300_000
    );
    assert!(
        !data.join(".aistor-checkpoint-done").exists(),
        "the marker is not staged"
    );
    assert!(
        !checkpoints
            .join(POD_NS)
            .join(POD)
            .join("ckpt-1")
            .join("sidecar")
            .exists(),
        "the sidecar mounts nothing there"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(staged.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["namespace"], POD_NS);
    assert_eq!(manifest["pod"], POD);
    assert_eq!(manifest["container"], "app");
    assert_eq!(manifest["node"], "kubelet-1");
    assert_eq!(manifest["files"], 3);
    assert_eq!(manifest["source"], volume.display().to_string());
    assert_eq!(manifest["hook"]["spec"], "signal:SIGUSR1");
    assert_eq!(manifest["hook"]["outcome"], "done");
    let statuses = kp.checkpoints().statuses();
    let s = statuses.last().expect("a status");
    assert_eq!(
        (
            s.checkpoint_id.as_str(),
            s.pod_uid.as_str(),
            s.namespace.as_str(),
            s.pod.as_str(),
            s.container.as_str(),
            s.state.as_str()
        ),
        ("ckpt-1", uid.as_str(), POD_NS, POD, "app", "staged"),
        "{s:?}"
    );
    assert_eq!(s.files, 3);
    assert!(
        s.bytes > 300_000 && s.hook.starts_with("signal:SIGUSR1: done"),
        "{s:?}"
    );
    assert_eq!(s.dir, staged.display().to_string());

    // An exec hook runs in the container through containerd, as its process.
    let error = ask(
        &actions,
        &mut results,
        "d-exec",
        stage(
            &uid,
            "ckpt-2",
            "exec:sh -c 'echo \"$APP\" > /checkpoint/exec-state'",
            &["app"],
        ),
    )
    .await;
    assert_eq!(error, "", "stage with the exec hook failed");
    let exec_state = checkpoints
        .join(POD_NS)
        .join(POD)
        .join("ckpt-2/app/data/exec-state");
    assert_eq!(std::fs::read_to_string(exec_state).unwrap(), "trainer\n");

    // A container with nothing at the path is refused by name; so are an unknown uid and
    // an existing checkpoint id.
    let error = ask(
        &actions,
        &mut results,
        "d-side",
        stage(&uid, "ckpt-3", "", &["sidecar"]),
    )
    .await;
    assert!(
        error.contains("container sidecar of pod ml/trainer-0")
            && error.contains("nothing is mounted at /checkpoint"),
        "{error}"
    );
    let error = ask(
        &actions,
        &mut results,
        "d-none",
        stage("no-such-uid", "ckpt-4", "", &[]),
    )
    .await;
    assert!(error.contains("no pod with uid no-such-uid"), "{error}");
    let error = ask(
        &actions,
        &mut results,
        "d-dup",
        stage(&uid, "ckpt-1", "", &[]),
    )
    .await;
    assert!(error.contains("already exists"), "{error}");

    // FreezePod: the counter stops; the report says frozen, read from the kernel.
    let started = Instant::now();
    let freeze = |frozen| {
        Action::Freeze(pb::FreezePod {
            uid: uid.clone(),
            frozen,
        })
    };
    assert_eq!(
        ask(&actions, &mut results, "d-freeze", freeze(true)).await,
        ""
    );
    eprintln!("frozen in {:?}", started.elapsed());
    let frozen_at = count(&counter);
    assert!(
        !advances(&counter, Duration::from_secs(2)).await,
        "the counter stopped at {frozen_at}"
    );
    assert_eq!(
        ask(&actions, &mut results, "d-again", freeze(true)).await,
        "",
        "idempotent"
    );
    let host = aistor_agent::config::HostConfig {
        host_root: "/".into(),
        node_name: "kubelet-1".into(),
        disk_exclude: regex::Regex::new(aistor_agent::config::DEFAULT_DISK_EXCLUDE).unwrap(),
        pods: aistor_agent::config::PodConfig {
            containerd_socket: private.socket.clone(),
            containerd_namespaces: vec![NAMESPACE.to_owned()],
            ..Default::default()
        },
        gpu: Default::default(),
    };
    let pod = snapshot(host.clone(), &uid).await;
    assert_eq!(pod["frozen"], true, "{pod}");
    assert_eq!(pod["cgroup_path"], pod_dir.as_str());

    // An agent restart: a fresh handler, knowing nothing, thaws it.
    drop(actions);
    drop(kp);
    let (_kp2, actions, mut results) = agent(KubeletPods::new(config()));
    assert_eq!(
        ask(&actions, &mut results, "d-thaw", freeze(false)).await,
        ""
    );
    assert!(
        advances(&counter, Duration::from_secs(10)).await,
        "counts again"
    );
    assert!(count(&counter) > frozen_at);
    assert_eq!(
        ask(&actions, &mut results, "d-thaw2", freeze(false)).await,
        "",
        "idempotent"
    );
    let pod = snapshot(host, &uid).await;
    assert_eq!(pod["frozen"], false, "{pod}");

    // Restore in a new pod's init container: verified, then idempotent by its marker.
    let into = work.path().join("new-pod/checkpoint");
    let first = restore(&checkpoints, "ckpt-1", &into);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&first.stdout).trim());
    assert!(
        std::fs::read_to_string(into.join("state"))
            .unwrap()
            .starts_with("step ")
    );
    assert_eq!(
        std::fs::read_to_string(into.join("sub/file")).unwrap(),
        "nested\n"
    );
    assert_eq!(
        std::fs::read(into.join("weights.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    assert!(into.join(".aistor-restored").is_file());
    let again = restore(&checkpoints, "ckpt-1", &into);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("already"));
    // The marker of another checkpoint: refused.
    let other = restore(&checkpoints, "ckpt-2", &into);
    assert!(!other.status.success());
    // A corrupted staged file: restore fails naming it, and leaves nothing behind.
    let corrupt = data.join("weights.bin");
    let mut bytes = std::fs::read(&corrupt).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&corrupt, bytes).unwrap();
    let into2 = work.path().join("other-pod/checkpoint");
    let failed = restore(&checkpoints, "ckpt-1", &into2);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains(&corrupt.display().to_string()) && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert!(!into2.exists(), "nothing half-restored");
    let missing = restore(&checkpoints, "ckpt-9", &into2);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no checkpoint ckpt-9 of namespace ml")
    );

    drop(client);
    private.cleanup();
}

/// `spec` with OCI annotations, as the CRI plugin writes the kubelet's.
fn annotated(spec: Vec<u8>, annotations: &[(&str, &str)]) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(&spec).unwrap();
    value["annotations"] = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    serde_json::to_vec(&value).unwrap()
}

/// The containers of pod `uid` as the running agent's collection reports them: the
/// discovery it keeps current, grouped into pods and sampled.
fn reported(
    discovered: &tokio::sync::watch::Receiver<aistor_agent::discovery::Discovered>,
    sampler: &mut aistor_agent::pods::sampler::PodSampler,
    reader: &aistor_agent::source::CgroupReader,
    uid: &str,
) -> Option<Vec<pb::Container>> {
    let targets = aistor_agent::pods::targets::from_containers(&discovered.borrow().containers);
    sampler
        .sample(reader, &targets, &Default::default())
        .into_iter()
        .find(|p| p.uid == uid)
        .map(|p| p.containers)
}

/// Waits up to 20 s for `check` to hold on the reported containers of `uid`.
async fn until_reported(
    discovered: &tokio::sync::watch::Receiver<aistor_agent::discovery::Discovered>,
    sampler: &mut aistor_agent::pods::sampler::PodSampler,
    reader: &aistor_agent::source::CgroupReader,
    uid: &str,
    what: &str,
    check: impl Fn(&[pb::Container]) -> bool,
) -> Vec<pb::Container> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = reported(discovered, sampler, reader, uid).unwrap_or_default();
        if check(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what}: {now:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn by_name<'a>(containers: &'a [pb::Container], name: &str) -> Option<&'a pb::Container> {
    containers.iter().find(|c| c.name == name)
}

/// LIVE: a kubelet pod's containers that exit 0 and 3 are reported terminated with their
/// exit code, reason and finished time and no usage figures ("container ended"): by the
/// running agent (from containerd's /tasks/exit events, and still once the task is
/// deleted as the CRI plugin does), by a fresh agent (a snapshot: containerd's stopped
/// task status), until containerd deletes the container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_pod_exit_states() {
    let mut private = match start().await {
        Ok(p) => p,
        Err(why) if require_tools() => {
            panic!("kubelet live test cannot run (AISTOR_REQUIRE_TOOLS=1): {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let rootfs = private.path("rootfs");
    let client = containerd_client::Client::from_path(&private.socket)
        .await
        .expect("connect to the private containerd");
    let id = aistor_agent::runtime::pod::new_id();
    let uid = format!(
        "{}-{}-4{}-8{}-{}",
        &id[..8],
        &id[8..12],
        &id[13..16],
        &id[17..20],
        &id[20..32]
    );
    let pod_dir = format!("kubepods/besteffort/pod{uid}");
    let mut parents = Vec::new();
    for dir in ["kubepods", "kubepods/besteffort"] {
        if !Path::new(CGROUP_ROOT).join("memory").join(dir).exists()
            && !Path::new(CGROUP_ROOT).join(dir).exists()
        {
            parents.push(dir.to_owned());
        }
    }
    let dirs = |cid: &str| {
        let mut d = parents.clone();
        d.extend([pod_dir.clone(), format!("{pod_dir}/{cid}")]);
        d
    };
    let pod_labels = [
        ("io.kubernetes.pod.uid", uid.as_str()),
        ("io.kubernetes.pod.name", "job-0"),
        ("io.kubernetes.pod.namespace", POD_NS),
    ];
    let (sandbox, done, failed, long) = (
        format!("ex-sandbox-{}", &id[..12]),
        format!("ex-done-{}", &id[..12]),
        format!("ex-failed-{}", &id[..12]),
        format!("ex-long-{}", &id[..12]),
    );
    let kind = |name: &'static str| {
        [
            pod_labels.as_slice(),
            &[
                ("io.kubernetes.container.name", name),
                ("io.cri-containerd.kind", "container"),
            ],
        ]
        .concat()
    };
    run_container(
        &mut private,
        &client,
        &sandbox,
        &[
            pod_labels.as_slice(),
            &[("io.cri-containerd.kind", "sandbox")],
        ]
        .concat(),
        &dirs(&sandbox),
        spec(
            &rootfs,
            &["/bin/sleep", "3600"],
            &format!("/{pod_dir}/{sandbox}"),
            &[],
        ),
    )
    .await;

    // The agent runs before the containers end: it learns their exits from events.
    let host_fs = aistor_agent::source::HostFs::new("/");
    let runtime = aistor_agent::source::Containerd::new(
        private.socket.clone(),
        vec![NAMESPACE.to_owned()],
        host_fs.clone(),
    );
    let (tx, discovered) = tokio::sync::watch::channel(Default::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let discovery = tokio::spawn(aistor_agent::discovery::run_containerd(
        runtime,
        Duration::from_secs(3600),
        tx,
        aistor_agent::shutdown::from_future(async move {
            let _ = stopped.await;
        }),
    ));
    let reader = aistor_agent::source::CgroupReader::detect(host_fs).expect("cgroups");
    let mut sampler = aistor_agent::pods::sampler::PodSampler::default();

    // `done` exits 0 (restart count from the kubelet's annotation), `failed` exits 3
    // (restart count from a label), `long` keeps running.
    run_container(
        &mut private,
        &client,
        &done,
        &kind("done"),
        &dirs(&done),
        annotated(
            spec(
                &rootfs,
                &["/bin/sh", "-c", "sleep 1; exit 0"],
                &format!("/{pod_dir}/{done}"),
                &[],
            ),
            &[("io.kubernetes.container.restartCount", "1")],
        ),
    )
    .await;
    run_container(
        &mut private,
        &client,
        &failed,
        &[
            kind("failed").as_slice(),
            &[("io.kubernetes.container.restartCount", "2")],
        ]
        .concat(),
        &dirs(&failed),
        spec(
            &rootfs,
            &["/bin/sh", "-c", "sleep 1; exit 3"],
            &format!("/{pod_dir}/{failed}"),
            &[],
        ),
    )
    .await;
    run_container(
        &mut private,
        &client,
        &long,
        &kind("long"),
        &dirs(&long),
        spec(
            &rootfs,
            &["/bin/sleep", "3600"],
            &format!("/{pod_dir}/{long}"),
            &[],
        ),
    )
    .await;
    let started = Instant::now();
    let ended = |c: Option<&pb::Container>, code: i32, reason: &str| {
        c.and_then(|c| c.terminated.as_ref())
            .is_some_and(|t| t.exit_code == code && t.reason == reason)
    };
    let now = until_reported(&discovered, &mut sampler, &reader, &uid, "both end", |c| {
        ended(by_name(c, "done"), 0, "Completed") && ended(by_name(c, "failed"), 3, "Error")
    })
    .await;
    eprintln!("exits reported {:?} after the starts", started.elapsed());
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for (name, restarts) in [("done", 1), ("failed", 2)] {
        let c = by_name(&now, name).unwrap();
        let t = c.terminated.as_ref().unwrap();
        assert!(
            t.finished_unix_nanos > unix_now - 60_000_000_000 && t.finished_unix_nanos <= unix_now,
            "{c:?}"
        );
        assert_eq!(c.state, pb::ContainerState::Stopped as i32, "{c:?}");
        assert_eq!(c.pid, None);
        assert_eq!(c.restart_count, Some(restarts), "{c:?}");
        let usage = c.usage.as_ref().unwrap();
        assert!(
            usage.cpu.is_none() && usage.memory.is_none(),
            "never zero: {usage:?}"
        );
        assert!(
            usage
                .missing
                .iter()
                .any(|m| m.field == "cpu" && m.reason == "container ended"),
            "{usage:?}"
        );
        assert_eq!(c.cgroup_path, format!("{pod_dir}/{}", c.id));
    }
    let running = by_name(&now, "long").unwrap();
    assert!(running.terminated.is_none() && running.usage.as_ref().unwrap().cpu.is_some());
    assert_eq!(running.restart_count, None);

    // A fresh agent (a snapshot lists once, no events): containerd's stopped tasks say it.
    let host = aistor_agent::config::HostConfig {
        host_root: "/".into(),
        node_name: "kubelet-1".into(),
        disk_exclude: regex::Regex::new(aistor_agent::config::DEFAULT_DISK_EXCLUDE).unwrap(),
        pods: aistor_agent::config::PodConfig {
            containerd_socket: private.socket.clone(),
            containerd_namespaces: vec![NAMESPACE.to_owned()],
            ..Default::default()
        },
        gpu: Default::default(),
    };
    let pod = snapshot(host.clone(), &uid).await;
    let container = |pod: &serde_json::Value, name: &str| {
        pod["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name).cloned())
    };
    for (name, code, reason) in [("done", 0, "Completed"), ("failed", 3, "Error")] {
        let c = container(&pod, name).unwrap_or_else(|| panic!("{name} in {pod}"));
        assert_eq!(c["terminated"]["exit_code"], code, "{c}");
        assert_eq!(c["terminated"]["reason"], reason, "{c}");
        assert!(
            c["terminated"]["finished_unix_nanos"].as_u64().unwrap() > 0,
            "{c}"
        );
        assert!(c["usage"]["cpu"].is_null(), "{c}");
    }

    // The task of `failed` is deleted, as the CRI plugin does once it saw the exit: the
    // running agent still knows the exit (from its events), containerd's list no more.
    private.ctr(&["tasks", "delete", &failed]);
    assert!(
        !private
            .ctr_output(&["tasks", "ls", "-q"])
            .unwrap()
            .contains(&failed),
        "task deleted"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = until_reported(
        &discovered,
        &mut sampler,
        &reader,
        &uid,
        "after task delete",
        |c| ended(by_name(c, "failed"), 3, "Error"),
    )
    .await;
    assert!(ended(by_name(&now, "done"), 0, "Completed"));

    // containerd deletes `done`: it is gone, from the running agent and from a fresh one.
    private.ctr(&["tasks", "delete", &done]);
    private.ctr(&["containers", "delete", &done]);
    until_reported(&discovered, &mut sampler, &reader, &uid, "done gone", |c| {
        by_name(c, "done").is_none() && by_name(c, "long").is_some()
    })
    .await;
    let pod = snapshot(host, &uid).await;
    assert!(container(&pod, "done").is_none(), "{pod}");
    assert!(container(&pod, "long").is_some(), "{pod}");

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), discovery).await;
    drop(client);
    private.cleanup();
}

/// LIVE: the CRIU path through the real containerd, as far as this host's CRIU goes.
/// `Tasks.Checkpoint` of a running container reaches runc and CRIU, which fail here (the
/// probe says why); the stage's error quotes containerd's and CRIU's words, the checkpoint
/// volume holds nothing (no container directory, no staging directory) and the export's
/// temporary directory is gone. Where CRIU works this test says so and checks the image
/// was staged instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn criu_checkpoint_through_containerd() {
    let mut private = match start().await {
        Ok(p) => p,
        Err(why) if require_tools() => {
            panic!("kubelet live test cannot run (AISTOR_REQUIRE_TOOLS=1): {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let probe =
        aistor_agent::checkpoint::criu::probe(Path::new("criu"), Duration::from_secs(30)).await;
    eprintln!("CRIU probe: {probe:?}");
    let rootfs = private.path("rootfs");
    let client = containerd_client::Client::from_path(&private.socket)
        .await
        .expect("connect to the private containerd");
    let id = format!("criu-{}", &aistor_agent::runtime::pod::new_id()[..12]);
    let pod_dir = format!("aistor-criu-test-{}", &id[5..]);
    run_container(
        &mut private,
        &client,
        &id,
        &[("io.kubernetes.container.name", "app")],
        &[pod_dir.clone(), format!("{pod_dir}/{id}")],
        spec(
            &rootfs,
            &["/bin/sleep", "3600"],
            &format!("/{pod_dir}/{id}"),
            &[],
        ),
    )
    .await;
    let volume = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let conn = aistor_agent::source::containerd::Connection::new(private.socket.clone());
    let images = aistor_agent::runtime::criu::ContainerdImages {
        conn: &conn,
        namespace: NAMESPACE,
    };
    let req = aistor_agent::checkpoint::StageRequest {
        checkpoint_dir: volume.path().to_path_buf(),
        node: "node-1".into(),
        namespace: POD_NS.into(),
        pod: "criu-0".into(),
        checkpoint_id: "ck-criu".into(),
        container: "app".into(),
        source: Default::default(),
        hook: None,
        hook_timeout: Duration::from_secs(1),
        content: Default::default(),
    };
    let started = Instant::now();
    let staged =
        aistor_agent::checkpoint::criu_image::stage(&images, &id, req, temp.path(), |_| {}).await;
    eprintln!("Tasks.Checkpoint answered in {:?}", started.elapsed());
    let left: Vec<_> = std::fs::read_dir(temp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "export directory left: {left:?}");
    match staged {
        Err(e) => {
            eprintln!("CRIU stage failed as expected here: {e}");
            assert!(!probe.available, "CRIU works per the probe, yet: {e}");
            assert!(
                e.contains(&format!("containerd task checkpoint of {id}"))
                    && e.contains("Tasks.Checkpoint")
                    && e.to_lowercase().contains("criu"),
                "{e}"
            );
            // CRIU's own words, from the log runc names, where the agent can read it.
            assert!(e.contains("criu-dump.log says: Error ("), "{e}");
            let on_volume: Vec<_> = std::fs::read_dir(volume.path())
                .unwrap()
                .flatten()
                .collect();
            assert!(on_volume.is_empty(), "nothing on the volume: {on_volume:?}");
        }
        Ok(s) => {
            eprintln!(
                "CRIU works here: staged {} bytes in {} files",
                s.bytes, s.files
            );
            assert!(s.dir.join("criu").join("descriptors.json").is_file());
        }
    }
    // The content calls a restore makes, against the real content store: a blob written
    // (streamed in 1 MiB messages, committed with its digest) reads back the same; again is
    // fine (already there); one whose bytes do not match its digest is refused.
    use aistor_agent::checkpoint::criu_image::{Blob, TaskImages, digest_of};
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i % 253) as u8).collect();
    let file = temp.path().join("blob");
    std::fs::write(&file, &data).unwrap();
    let blob = Blob {
        media_type: aistor_agent::checkpoint::criu_image::MEDIA_CHECKPOINT.into(),
        digest: digest_of(&data),
        size: data.len() as u64,
    };
    images.write(&blob, &file).await.expect("Content.Write");
    images.write(&blob, &file).await.expect("written again");
    let back = temp.path().join("back");
    let mut out = std::fs::File::create(&back).unwrap();
    let read = images.read(&blob, &mut out).await.expect("Content.Read");
    drop(out);
    assert_eq!(read, data.len() as u64);
    assert!(std::fs::read(&back).unwrap() == data, "the same bytes");
    let wrong = Blob {
        digest: digest_of(b"other"),
        ..blob.clone()
    };
    let err = images.write(&wrong, &file).await.unwrap_err();
    eprintln!("a blob with the wrong digest: {err}");
    assert!(err.contains("Content.Write"), "{err}");

    // The container still runs: a failed checkpoint left it as it was.
    let tasks = private.ctr_output(&["tasks", "ls"]).unwrap();
    assert!(
        tasks
            .lines()
            .any(|l| l.contains(&id) && l.contains("RUNNING")),
        "{tasks}"
    );
    drop(client);
    private.cleanup();
}
