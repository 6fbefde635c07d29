//! Pod start latency of the local runtime: a program that prints figures, not a test.
//!
//! ```text
//! cargo bench -p aistor-agent --bench pod_start -- [--runs 20]
//! ```
//!
//! On a private containerd with a locally built busybox image (the same one for both),
//! alternating, `--runs` times each:
//! - **aistor**: `LocalRuntime::run` of a one-container pod until its state is Running
//!   (manifest check, image resolution in the content store, pod cgroup with limits,
//!   snapshot, container, task, start);
//! - **ctr run**: `ctr run --detach` of the same image, timed until `ctr` returns (the
//!   task started), as the peer.
//!
//! Both are removed after each run. Needs root, containerd, runc, ctr, tar and a static
//! busybox; without them it says so and exits.

#[path = "../examples/support/containerd.rs"]
mod containerd;
#[path = "../examples/support/oci_image.rs"]
mod oci_image;

use aistor_agent::runtime::manifest;
use aistor_agent::runtime::pod::Paths;
use aistor_agent::runtime::status::ContainerState;
use aistor_agent::runtime::{LocalRuntime, RuntimeConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/aistor/busybox:bench";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut d: Vec<Duration>) -> Duration {
    d.sort();
    let median = percentile(&d, 50.0);
    println!(
        "{name:<10} runs {:>3}  min {:>7.1} ms  median {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms",
        d.len(),
        d[0].as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        percentile(&d, 90.0).as_secs_f64() * 1e3,
        d[d.len() - 1].as_secs_f64() * 1e3,
    );
    median
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let private = match containerd::start().await {
        Ok(p) => p,
        Err(why) => {
            println!("pod_start: cannot run here: {why}");
            return;
        }
    };
    let work = tempfile::tempdir().expect("tempdir");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| containerd::is_static_elf(p))
        .expect("checked by start");
    let archive =
        oci_image::build(work.path(), &busybox, IMAGE, &["sleep", "3600"]).expect("image");
    private
        .ctr_output(&["images", "import", &archive.display().to_string()])
        .expect("import");
    let rt = LocalRuntime::new(RuntimeConfig {
        containerd_socket: private.socket.clone(),
        namespace: containerd::NAMESPACE.to_owned(),
        snapshotter: "overlayfs".to_owned(),
        cgroup_root: PathBuf::from(containerd::CGROUP_ROOT),
        paths: Paths {
            data_dir: work.path().join("data"),
            volume_root: work.path().join("claims"),
            host_root: PathBuf::from("/"),
        },
        node: "local-1".into(),
        checkpoint_dir: None,
    });
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for n in 0..runs {
        let uid = format!("bench-{n}-{}", std::process::id());
        let pod = manifest::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{n}"), "uid": uid},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": IMAGE,
                                     "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}}}]}
        }))
        .expect("manifest");
        let started = Instant::now();
        rt.run(pod).await.expect("run");
        loop {
            let state = rt.state(&uid).expect("known");
            if matches!(state.containers[0].state, ContainerState::Running { .. }) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{state:?}");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        ours.push(started.elapsed());
        rt.delete(&uid).await.expect("delete");

        let id = format!("ctr-bench-{n}");
        let started = Instant::now();
        private
            .ctr_output(&["run", "--detach", IMAGE, &id])
            .expect("ctr run");
        peer.push(started.elapsed());
        private.ctr(&["tasks", "kill", "--signal", "SIGKILL", &id]);
        std::thread::sleep(Duration::from_millis(100));
        private.ctr(&["tasks", "delete", "--force", &id]);
        private.ctr(&["containers", "delete", &id]);
    }
    println!("pod start latency, private containerd, busybox image, {runs} runs each, alternating");
    let a = summary("aistor", ours);
    let b = summary("ctr run", peer);
    println!(
        "aistor / ctr run (median): {:.2}x",
        a.as_secs_f64() / b.as_secs_f64()
    );
}
