//! LIVE: the local runtime against a real, private containerd with a locally built OCI
//! image imported by `ctr images import` (no registry): pods with several containers, one
//! that completes, one that fails and is restarted with back-off, limits in the cgroup
//! files, readiness probes, logs, discovery seeing the pods as the kubelet's, SIGTERM on
//! delete, a host-rootfs pod, an image that is not there, and an agent restart that
//! adopts what runs and removes orphans; a pod frozen and thawed through its cgroup
//! freezer (FreezePod), across an agent restart, and deleted while frozen.
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
    LocalRuntime::new(runtime_config(private, work))
}

fn runtime_config(private: &Private, work: &Path) -> RuntimeConfig {
    RuntimeConfig {
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
    }
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

/// Thaws the pod cgroup when dropped, so a failed assertion never leaves frozen
/// processes behind (on cgroup v1 they would not even die of the cleanup's SIGKILL).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_thaw_and_delete_while_frozen() {
    use aistor_agent::runtime::directives::{self, Action};
    use aistor_proto::v1 as pb;
    use std::sync::Arc;

    let Some((mut private, work)) = setup().await else {
        return;
    };
    let rt = Arc::new(runtime(&private, work.path()));
    let uid = uid();
    let out_dir = work.path().join("out");
    let counter = out_dir.join("n");
    // Counts into /out/<file> every 100 ms; SIGTERM is answered in /out/term.
    let counting_pod = |name: &str, uid: &str, file: &str| {
        pod(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "mig", "uid": uid},
            "spec": {
                "terminationGracePeriodSeconds": 30,
                "volumes": [{"name": "out", "hostPath": {"path": out_dir.display().to_string()}}],
                "containers": [{
                    "name": "count", "image": IMAGE,
                    "command": ["sh", "-c", format!("trap 'echo got TERM > /out/term; exit 0' TERM; i=0; while :; do i=$((i+1)); echo $i > /out/{file}; sleep 0.1; done")],
                    // CPU for the probe's exec on a busy machine (BestEffort gets 2 shares).
                    "resources": {"limits": {"cpu": "500m", "memory": "32Mi"}},
                    "volumeMounts": [{"name": "out", "mountPath": "/out"}],
                    // Quiet: an exec probe that writes to stdout fails in this runtime.
                    "readinessProbe": {"exec": {"command": ["sh", "-c", format!("cat /out/{file} > /dev/null")]},
                                       "periodSeconds": 1, "timeoutSeconds": 5}
                }]
            }
        }))
    };
    let manifest = counting_pod("counter", &uid, "n");
    rt.run(manifest.clone()).await.expect("run");
    let state = wait_until(&rt, &uid, "counter ready", Duration::from_secs(30), |s| {
        container(s, "count").ready
    })
    .await;
    let cgroup = state.cgroup_path.clone();
    private.cgroups.push(cgroup.clone());
    let _thaw = ThawOnDrop(cgroup.clone());
    assert!(!state.frozen);
    assert!(
        advances(&counter, Duration::from_secs(10)).await,
        "it counts"
    );

    // FreezePod through the directive path: the result comes back under its id.
    let (actions, actions_rx) = tokio::sync::mpsc::channel(4);
    let (results_tx, mut results) = tokio::sync::mpsc::channel(4);
    tokio::spawn(directives::serve(rt.clone(), actions_rx, results_tx));
    let freeze = |frozen| {
        Action::Freeze(pb::FreezePod {
            uid: uid.clone(),
            frozen,
        })
    };
    let started = Instant::now();
    actions
        .send(("d-freeze".into(), freeze(true)))
        .await
        .unwrap();
    let result = results.recv().await.expect("a result");
    eprintln!("frozen in {:?}", started.elapsed());
    assert_eq!(
        (result.id.as_str(), result.error.as_str()),
        ("d-freeze", "")
    );
    let frozen_at = count(&counter);
    assert!(
        !advances(&counter, Duration::from_secs(3)).await,
        "the counter stopped at {frozen_at}"
    );
    // Frozen, and still running: no restart, not failed (probes pause meanwhile).
    let state = rt.state(&uid).expect("the pod");
    assert!(state.frozen, "{state:#?}");
    assert!(
        matches!(
            container(&state, "count").state,
            ContainerState::Running { .. }
        ),
        "{state:#?}"
    );
    assert_eq!(container(&state, "count").restart_count, 0);
    assert_eq!(state.phase, PodPhase::Running);
    let reported = directives::status(&rt);
    assert!(
        reported.pods.iter().any(|p| p.uid == uid && p.frozen),
        "LocalPod.frozen: {reported:?}"
    );
    // The kernel says so too (v1 and hybrid: the freezer hierarchy; v2: cgroup.events).
    let v1_state = Path::new(CGROUP_ROOT)
        .join("freezer")
        .join(&cgroup)
        .join("freezer.state");
    if v1_state.exists() {
        assert_eq!(read(&v1_state), "FROZEN");
    } else {
        let events = read(Path::new(CGROUP_ROOT).join(&cgroup).join("cgroup.events"));
        assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    }
    // Idempotent; an unknown uid is an error naming it.
    actions
        .send(("d-again".into(), freeze(true)))
        .await
        .unwrap();
    let result = results.recv().await.expect("a result");
    assert_eq!((result.id.as_str(), result.error.as_str()), ("d-again", ""));
    actions
        .send((
            "d-unknown".into(),
            Action::Freeze(pb::FreezePod {
                uid: "no-such-uid".into(),
                frozen: true,
            }),
        ))
        .await
        .unwrap();
    let result = results.recv().await.expect("a result");
    assert_eq!(result.id, "d-unknown");
    assert!(result.error.contains("no-such-uid"), "{}", result.error);

    // An agent restart: the new runtime adopts the pod and reads it frozen from the
    // cgroup; it starts nothing new.
    drop(actions);
    drop(rt);
    let rt2 = runtime(&private, work.path());
    rt2.run(manifest.clone()).await.expect("adopt");
    let adopted = wait_until(
        &rt2,
        &uid,
        "adopted while frozen",
        Duration::from_secs(10),
        |s| matches!(container(s, "count").state, ContainerState::Running { .. }),
    )
    .await;
    assert!(adopted.frozen, "{adopted:#?}");
    assert_eq!(
        container(&adopted, "count").container_id,
        container(&state, "count").container_id
    );
    assert!(!advances(&counter, Duration::from_secs(1)).await);

    // Thaw: it counts again, from where it stopped.
    rt2.freeze(&uid, false).await.expect("thaw");
    assert!(
        advances(&counter, Duration::from_secs(10)).await,
        "counts again"
    );
    assert!(count(&counter) > frozen_at);
    let thawed = rt2.state(&uid).expect("the pod");
    assert!(!thawed.frozen);
    assert_eq!(container(&thawed, "count").restart_count, 0);
    rt2.freeze(&uid, false).await.expect("thaw again");

    // Delete while frozen: thawed first, so SIGTERM is handled and the pod goes well
    // within its 30 s grace period.
    rt2.freeze(&uid, true).await.expect("freeze");
    assert!(rt2.state(&uid).expect("the pod").frozen);
    let deleting = Instant::now();
    rt2.delete(&uid).await.expect("delete");
    let took = deleting.elapsed();
    eprintln!("deleted while frozen in {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(
        read(out_dir.join("term")),
        "got TERM",
        "SIGTERM reached the thawed container"
    );
    assert!(rt2.state(&uid).is_none());
    let left = private.ctr_output(&["containers", "ls", "-q"]).expect("ls");
    assert_eq!(left.trim(), "", "no container left behind");
    for hierarchy in ["freezer", "cpu", "memory", ""] {
        let dir = Path::new(CGROUP_ROOT).join(hierarchy).join(&cgroup);
        assert!(!dir.exists(), "{} removed", dir.display());
    }

    // SyncPods removing a frozen pod no agent knows any more (frozen, then its agent went
    // away): its cgroup is thawed so the SIGKILL takes effect.
    let orphan = crate::uid();
    rt2.run(counting_pod("orphan", &orphan, "m"))
        .await
        .expect("run");
    let state = wait_until(
        &rt2,
        &orphan,
        "orphan ready",
        Duration::from_secs(30),
        |s| container(s, "count").ready,
    )
    .await;
    private.cgroups.push(state.cgroup_path.clone());
    let _thaw_orphan = ThawOnDrop(state.cgroup_path.clone());
    assert!(advances(&out_dir.join("m"), Duration::from_secs(10)).await);
    rt2.freeze(&orphan, true).await.expect("freeze");
    assert!(!advances(&out_dir.join("m"), Duration::from_secs(1)).await);
    drop(rt2);
    let rt3 = Arc::new(runtime(&private, work.path()));
    let (actions, actions_rx) = tokio::sync::mpsc::channel(4);
    let (results_tx, mut results) = tokio::sync::mpsc::channel(4);
    tokio::spawn(directives::serve(rt3.clone(), actions_rx, results_tx));
    let syncing = Instant::now();
    actions
        .send(("d-sync".into(), Action::Sync(pb::SyncPods { pods: vec![] })))
        .await
        .unwrap();
    let result = results.recv().await.expect("a result");
    let took = syncing.elapsed();
    eprintln!("frozen orphan removed in {took:?}");
    assert_eq!((result.id.as_str(), result.error.as_str()), ("d-sync", ""));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let left = private.ctr_output(&["containers", "ls", "-q"]).expect("ls");
    assert_eq!(left.trim(), "", "no container left behind");
    let v1_state = Path::new(CGROUP_ROOT)
        .join("freezer")
        .join(&state.cgroup_path)
        .join("freezer.state");
    if v1_state.exists() {
        assert_eq!(read(&v1_state), "THAWED");
    }
}

/// LIVE: `aistor.io/checkpoint-mode` against this node's CRIU probe. Where CRIU does not
/// work (this host: its vDSO), a `criu` stage is refused with the probe's reason and
/// nothing is staged; `auto` stages the application checkpoint and its status says why
/// (`note`, mode `application`). Where CRIU works, both take containerd's task
/// checkpoint into `<container>/criu/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_modes_follow_the_criu_probe() {
    let Some((private, work)) = setup().await else {
        return;
    };
    let checkpoints = work.path().join("checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    let rt = LocalRuntime::new(RuntimeConfig {
        checkpoint_dir: Some(checkpoints.clone()),
        ..runtime_config(&private, work.path())
    });
    let probe =
        aistor_agent::checkpoint::criu::probe(Path::new("criu"), Duration::from_secs(30)).await;
    rt.checkpoints().set_criu(&probe);
    let run = |name: &str, mode: &str| {
        let uid = uid();
        let manifest = pod(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "uid": uid, "annotations": {"aistor.io/checkpoint-mode": mode}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "volumes": [{"name": "state", "emptyDir": {}}],
                "containers": [{"name": "app", "image": IMAGE,
                    "command": ["/bin/sh", "-c", "echo state > /checkpoint/s; sleep 3600"],
                    "volumeMounts": [{"name": "state", "mountPath": "/checkpoint"}]}]}
        }));
        (uid, manifest)
    };
    let stage = |uid: &str, id: &str| aistor_proto::v1::StageCheckpoint {
        pod_uid: uid.to_owned(),
        checkpoint_id: id.to_owned(),
        ..Default::default()
    };
    let (criu_uid, criu_pod) = run("wants-criu", "criu");
    let (auto_uid, auto_pod) = run("auto", "auto");
    for (uid, manifest) in [(&criu_uid, criu_pod), (&auto_uid, auto_pod)] {
        rt.run(manifest).await.expect("run");
        wait_until(&rt, uid, "running", Duration::from_secs(20), |s| {
            matches!(s.containers[0].state, ContainerState::Running { .. })
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let criu = rt.stage_checkpoint(&stage(&criu_uid, "ck-criu")).await;
    let auto = rt.stage_checkpoint(&stage(&auto_uid, "ck-auto")).await;
    let statuses = rt.checkpoints().statuses();
    let status = |id: &str| statuses.iter().find(|s| s.checkpoint_id == id).cloned();
    if probe.available {
        eprintln!("CRIU works here: {}", probe.reason);
        assert_eq!(criu, Ok(()));
        assert_eq!(auto, Ok(()));
        for (id, name) in [("ck-criu", "wants-criu"), ("ck-auto", "auto")] {
            let dir = checkpoints.join("default").join(name).join(id).join("app");
            assert!(
                dir.join("criu/descriptors.json").is_file(),
                "{}",
                dir.display()
            );
            assert_eq!(status(id).unwrap().mode, "criu");
        }
    } else {
        let refused = criu.expect_err("criu is refused where it does not work");
        eprintln!("criu refused: {refused}");
        assert!(
            refused.contains("aistor.io/checkpoint-mode=criu refused")
                && refused.contains(&probe.reason),
            "{refused}"
        );
        assert!(
            !checkpoints.join("default/wants-criu").exists(),
            "nothing staged"
        );
        assert!(status("ck-criu").is_none(), "no stage began");
        assert_eq!(auto, Ok(()), "auto falls back");
        let dir = checkpoints.join("default/auto/ck-auto/app");
        assert_eq!(read(dir.join("data/s")), "state");
        let s = status("ck-auto").expect("a status");
        assert_eq!(
            (s.state.as_str(), s.mode.as_str()),
            ("staged", "application")
        );
        assert!(
            s.note.contains("aistor.io/checkpoint-mode=auto") && s.note.contains(&probe.reason),
            "{s:?}"
        );
    }
    for uid in [&criu_uid, &auto_uid] {
        rt.delete(uid).await.expect("delete");
    }
}
