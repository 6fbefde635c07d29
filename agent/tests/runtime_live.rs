//! LIVE: the local runtime against a real, private containerd with a locally built OCI
//! image imported by `ctr images import` (no registry): pods with several containers, one
//! that completes, one that fails and is restarted with back-off, limits in the cgroup
//! files, readiness probes, logs, discovery seeing the pods as the kubelet's, SIGTERM on
//! delete, a host-rootfs pod, an image that is not there, and an agent restart that
//! adopts what runs and removes orphans.
//!
//! Needs root, containerd, runc, ctr, tar and a static busybox. Without them it prints
//! "skipped: ..." and passes, unless `AISTOR_REQUIRE_TOOLS=1`, where it fails.

#[path = "../examples/support/oci_image.rs"]
mod oci_image;
#[path = "../examples/support/containerd.rs"]
mod support;

use aistor_agent::runtime::manifest::{self, PodManifest};
use aistor_agent::runtime::pod::{Paths, PodState};
use aistor_agent::runtime::status::{ContainerState, PodPhase};
use aistor_agent::runtime::{LocalRuntime, RuntimeConfig};
use aistor_agent::source::HostFs;
use aistor_agent::source::containerd::Containerd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{CGROUP_ROOT, NAMESPACE, Private, require_tools, start};

const IMAGE: &str = "localhost/aistor/busybox:live";

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| support::is_static_elf(p))
}

async fn setup() -> Option<(Private, tempfile::TempDir)> {
    let private = match start().await {
        Ok(p) => p,
        Err(why) => {
            assert!(!require_tools(), "runtime_live needs its tools: {why}");
            eprintln!("skipped: {why}");
            return None;
        }
    };
    let work = tempfile::Builder::new()
        .prefix("aistor-rt-")
        .tempdir()
        .expect("tempdir");
    let archive = oci_image::build(
        work.path(),
        &busybox().expect("busybox checked by start"),
        IMAGE,
        &["sleep", "3600"],
    )
    .expect("build the OCI archive");
    private
        .ctr_output(&["images", "import", &archive.display().to_string()])
        .unwrap_or_else(|e| panic!("import: {e}\n{}", private.log_tail()));
    Some((private, work))
}

fn runtime(private: &Private, work: &Path) -> LocalRuntime {
    LocalRuntime::new(RuntimeConfig {
        containerd_socket: private.socket.clone(),
        namespace: NAMESPACE.to_owned(),
        snapshotter: "overlayfs".to_owned(),
        cgroup_root: PathBuf::from(CGROUP_ROOT),
        paths: Paths {
            data_dir: work.join("data"),
            volume_root: work.join("claims"),
            host_root: PathBuf::from("/"),
        },
        node: "local-1".into(),
        checkpoint_dir: None,
    })
}

fn uid() -> String {
    let id = aistor_agent::runtime::pod::new_id();
    format!("{}-{}-{}", &id[..8], &id[8..12], &id[12..24])
}

fn pod(yaml_json: serde_json::Value) -> PodManifest {
    manifest::from_value(yaml_json).unwrap_or_else(|e| panic!("manifest: {e}"))
}

async fn wait_until(
    rt: &LocalRuntime,
    uid: &str,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&PodState) -> bool,
) -> PodState {
    let deadline = Instant::now() + timeout;
    loop {
        let state = rt.state(uid).expect("pod known");
        if ok(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {state:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn container<'a>(
    state: &'a PodState,
    name: &str,
) -> &'a aistor_agent::runtime::status::ContainerStatus {
    state
        .containers
        .iter()
        .find(|c| c.name == name)
        .expect("container listed")
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_pods_like_the_kubelet() {
    let Some((mut private, work)) = setup().await else {
        return;
    };
    let rt = runtime(&private, work.path());
    let uid = uid();
    let out_dir = work.path().join("out");
    let training = pod(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "train", "namespace": "ml", "uid": uid},
        "spec": {
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 5,
            "volumes": [{"name": "scratch", "emptyDir": {}},
                        {"name": "out", "hostPath": {"path": out_dir.display().to_string()}}],
            "containers": [
                {"name": "runner", "image": IMAGE,
                 "command": ["sh", "-c", "trap 'echo got TERM > /out/term; exit 0' TERM; echo runner up; touch /data/ready; while :; do sleep 0.2; done"],
                 "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                 "volumeMounts": [{"name": "scratch", "mountPath": "/data"}, {"name": "out", "mountPath": "/out"}],
                 "readinessProbe": {"exec": {"command": ["cat", "/data/ready"]}, "periodSeconds": 1}},
                {"name": "prep", "image": IMAGE, "command": ["sh", "-c", "echo prepared > /data/prep; echo prep done"],
                 "resources": {"limits": {"cpu": "100m", "memory": "16Mi"}},
                 "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]},
                {"name": "flaky", "image": IMAGE, "command": ["sh", "-c", "echo failing; exit 3"],
                 "resources": {"limits": {"cpu": "100m", "memory": "16Mi"}}}
            ]
        }
    }));
    let started = Instant::now();
    rt.run(training.clone()).await.expect("run");
    // Idempotent: the same pod again changes nothing.
    rt.run(training.clone()).await.expect("run again");
    let state = wait_until(
        &rt,
        &uid,
        "runner ready, prep completed, flaky restarted",
        Duration::from_secs(40),
        |s| {
            container(s, "runner").ready
                && matches!(container(s, "prep").state, ContainerState::Terminated(_))
                && container(s, "flaky").restart_count >= 1
        },
    )
    .await;
    eprintln!("pod ready in {:?}", started.elapsed());
    assert_eq!(state.qos.as_str(), "Guaranteed");
    assert_eq!(state.cgroup_path, format!("kubepods/pod{uid}"));
    assert_eq!(state.phase, PodPhase::Running);
    let ContainerState::Terminated(prep) = &container(&state, "prep").state else {
        unreachable!()
    };
    assert_eq!((prep.exit_code, prep.reason.as_str()), (0, "Completed"));
    let flaky = container(&state, "flaky");
    assert_eq!(
        flaky
            .last_terminated
            .as_ref()
            .map(|t| (t.exit_code, t.reason.as_str())),
        Some((3, "Error"))
    );
    // The first restart is immediate, the next one backs off, as the kubelet does.
    assert_eq!(flaky.restart_count, 1, "{flaky:?}");
    // Limits: the pod cgroup has the summed limits, the container its own.
    let runner_id = container(&state, "runner")
        .container_id
        .clone()
        .expect("id");
    let pod_cpu = Path::new(CGROUP_ROOT).join("cpu").join(&state.cgroup_path);
    let pod_mem = Path::new(CGROUP_ROOT)
        .join("memory")
        .join(&state.cgroup_path);
    if pod_cpu.is_dir() {
        assert_eq!(read(pod_cpu.join("cpu.cfs_quota_us")), "70000");
        assert_eq!(
            read(pod_mem.join("memory.limit_in_bytes")),
            (96u64 << 20).to_string()
        );
        assert_eq!(
            read(pod_cpu.join(&runner_id).join("cpu.cfs_quota_us")),
            "50000"
        );
        assert_eq!(
            read(pod_mem.join(&runner_id).join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
    } else {
        let unified = Path::new(CGROUP_ROOT).join(&state.cgroup_path);
        assert_eq!(read(unified.join("cpu.max")), "70000 100000");
        assert_eq!(
            read(unified.join(&runner_id).join("memory.max")),
            (64u64 << 20).to_string()
        );
    }
    // Logs in the kubelet's layout; the emptyDir is shared by the pod's containers.
    let logs = rt.log_files(&uid, "prep");
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(read(&logs[0]), "prep done");
    assert!(logs[0].ends_with(format!("pods/ml_train_{uid}/prep/0.log")));
    assert!(
        rt.log_files(&uid, "flaky").len() >= 2,
        "one file per restart"
    );
    // Discovery sees the pod the way it sees the kubelet's.
    let discovered = Containerd::new(
        private.socket.clone(),
        vec![NAMESPACE.into()],
        HostFs::new("/"),
    )
    .list()
    .await
    .expect("list");
    let runner = discovered
        .iter()
        .find(|c| c.id == runner_id)
        .expect("discovered");
    assert_eq!(
        (
            runner.pod_uid.as_str(),
            runner.pod_name.as_str(),
            runner.pod_namespace.as_str(),
            runner.container_name.as_str()
        ),
        (uid.as_str(), "train", "ml", "runner")
    );
    assert!(
        runner
            .cgroup_path
            .as_deref()
            .is_some_and(|p| p.ends_with(&format!("kubepods/pod{uid}/{runner_id}"))),
        "{runner:?}"
    );
    private.cgroups.push(state.cgroup_path.clone());

    // An agent restart: a new runtime adopts the running container, no duplicate.
    let rt2 = runtime(&private, work.path());
    rt2.run(training.clone()).await.expect("adopt");
    let adopted = wait_until(&rt2, &uid, "adopted runner", Duration::from_secs(10), |s| {
        matches!(container(s, "runner").state, ContainerState::Running { .. })
    })
    .await;
    assert_eq!(
        container(&adopted, "runner").container_id.as_deref(),
        Some(runner_id.as_str())
    );
    // The completed container is not run again: it was kept, with its exit, as the
    // kubelet keeps exited containers.
    let prep_id = container(&state, "prep").container_id.clone();
    let kept = wait_until(
        &rt2,
        &uid,
        "prep known as completed",
        Duration::from_secs(10),
        |s| matches!(container(s, "prep").state, ContainerState::Terminated(_)),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rt2.state(&uid).expect("the pod");
    for s in [&kept, &after] {
        let prep = container(s, "prep");
        let ContainerState::Terminated(t) = &prep.state else {
            panic!("prep ran again after the agent restart: {prep:?}");
        };
        assert_eq!((t.exit_code, t.reason.as_str()), (0, "Completed"));
        assert_eq!(prep.container_id, prep_id, "the same, kept instance");
        assert_eq!(prep.restart_count, 0);
    }
    drop(rt);

    // Delete: SIGTERM reaches the container, everything is removed.
    rt2.delete(&uid).await.expect("delete");
    let left = private.ctr_output(&["containers", "ls", "-q"]).expect("ls");
    assert_eq!(left.trim(), "", "no container left behind");
    assert_eq!(
        read(out_dir.join("term")),
        "got TERM",
        "SIGTERM reached the container"
    );
    assert!(out_dir.is_dir(), "a hostPath volume is never removed");
    assert!(!pod_cpu.exists() && !pod_mem.exists(), "pod cgroup removed");
    assert!(
        !work.path().join("data/volumes").join(&uid).exists(),
        "emptyDir removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rootfs_missing_images_and_orphans() {
    let Some((private, work)) = setup().await else {
        return;
    };
    let rt = runtime(&private, work.path());
    // A host-rootfs pod runs the host's programs on a read-only view of its root.
    let host_uid = uid();
    rt.run(pod(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "local", "uid": host_uid, "annotations": {"aistor.io/rootfs": "host"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "probe", "image": "host",
            "command": ["/bin/sh", "-c", "echo host-$HOSTNAME; if touch /usr/aistor-rw-test 2>/dev/null; then echo writable; else echo read-only; fi; test -d /etc"]}]}
    })))
    .await
    .expect("run host pod");
    let state = wait_until(
        &rt,
        &host_uid,
        "host pod done",
        Duration::from_secs(20),
        |s| s.phase == PodPhase::Succeeded || s.phase == PodPhase::Failed,
    )
    .await;
    let log = read(&rt.log_files(&host_uid, "probe")[0]);
    assert_eq!(state.phase, PodPhase::Succeeded, "{state:#?}\n{log}");
    assert_eq!(log, "host-local\nread-only");
    assert!(!Path::new("/usr/aistor-rw-test").exists());

    // An image that is not in the store: waiting with the reason and how to fix it.
    let missing_uid = uid();
    rt.run(pod(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "nope", "uid": missing_uid},
        "spec": {"containers": [{"name": "c", "image": "localhost/not/there:1"}]}
    })))
    .await
    .expect("accepted");
    let state = wait_until(&rt, &missing_uid, "image error", Duration::from_secs(10), |s| {
        matches!(&s.containers[0].state, ContainerState::Waiting { reason, .. } if reason == "ErrImageNeverPull")
    })
    .await;
    let ContainerState::Waiting { message, .. } = &state.containers[0].state else {
        unreachable!()
    };
    assert!(
        message.contains("localhost/not/there:1")
            && message.contains("ctr -n k8s.io images import"),
        "{message}"
    );
    assert_eq!(state.phase, PodPhase::Pending);

    // An orphan: a pod whose agent went away and that nobody wants any more.
    let orphan_uid = uid();
    rt.run(pod(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "uid": orphan_uid},
        "spec": {"containers": [{"name": "c", "image": IMAGE}]}
    })))
    .await
    .expect("run orphan");
    wait_until(
        &rt,
        &orphan_uid,
        "orphan running",
        Duration::from_secs(20),
        |s| matches!(s.containers[0].state, ContainerState::Running { .. }),
    )
    .await;
    drop(rt);
    let rt2 = runtime(&private, work.path());
    let removed = rt2.reconcile(&[]).await.expect("reconcile");
    // The orphan's running container, and the host pod's completed one (kept, as the
    // kubelet keeps exited containers, until its pod goes: nobody wants that pod now).
    assert_eq!(
        removed.len(),
        2,
        "the orphan's container and the completed one: {removed:?}"
    );
    let left = private.ctr_output(&["containers", "ls", "-q"]).expect("ls");
    assert_eq!(left.trim(), "");
}
