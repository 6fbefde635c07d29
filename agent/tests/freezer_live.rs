//! LIVE: the pod freezer (`PodCgroups::set_frozen`, `PodCgroups::frozen`) against the real
//! kernel, on cgroups this test creates under a temporary name with a real counting
//! process in a child cgroup (as a container sits below its pod cgroup).
//!
//! - v1: the freezer controller's hierarchy (`/sys/fs/cgroup/freezer`), where runc puts
//!   containers on v1 and hybrid hosts. Also shows why a frozen pod is thawed before it is
//!   deleted: SIGKILL does not kill a v1-frozen process until it is thawed.
//! - v2: the unified hierarchy (`/sys/fs/cgroup` on a v2 host, `/sys/fs/cgroup/unified` on
//!   a hybrid one): `cgroup.freeze` and `cgroup.events` of the real kernel. On a hybrid
//!   host this checks the v2 freezer files and their semantics, not a pod that runc placed
//!   on a pure v2 host (none is available here).
//!
//! Needs root and a writable cgroup file system; a hierarchy this host does not mount is
//! skipped with a message. Without root the tests print "skipped" and pass, unless
//! `AISTOR_REQUIRE_TOOLS=1`, where they fail.

use aistor_agent::runtime::cgroup::PodCgroups;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const WAIT: Duration = Duration::from_secs(10);

fn skip(name: &str, why: &str) {
    assert!(
        std::env::var("AISTOR_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "freezer_live {name} needs root and writable cgroups (AISTOR_REQUIRE_TOOLS=1): {why}"
    );
    eprintln!("freezer_live: skipped {name}: {why}");
}

/// The test's cgroups (pod and container level) in one hierarchy, and the counting
/// process in the container cgroup; dropping it kills the process and removes them.
struct Counting {
    hierarchy: PathBuf,
    /// `aistor-freeze-<test>-<pid>/pod`, relative to the hierarchy.
    pod: String,
    child: Child,
    counter: PathBuf,
    _dir: tempfile::TempDir,
}

impl Counting {
    fn start(hierarchy: &Path, test: &str) -> Result<Self, String> {
        let top = format!("aistor-freeze-{test}-{}", std::process::id());
        let pod = format!("{top}/pod");
        let container = hierarchy.join(&pod).join("c");
        std::fs::create_dir_all(&container)
            .map_err(|e| format!("cannot create {}: {e}", container.display()))?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let counter = dir.path().join("n");
        // Waits for "go" (it is in its cgroup by then), then counts; each `sleep` is a
        // new process in the cgroup, so forks happen while it is frozen and thawed.
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "read go; i=0; while :; do i=$((i+1)); echo $i > {}.tmp; mv {0}.tmp {0}; sleep 0.02; done",
                counter.display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("/bin/sh: {e}"))?;
        // From here on, dropping it cleans up (also when a step below fails).
        let mut counting = Self {
            hierarchy: hierarchy.to_owned(),
            pod,
            child,
            counter,
            _dir: dir,
        };
        let procs = container.join("cgroup.procs");
        std::fs::write(&procs, counting.child.id().to_string())
            .map_err(|e| format!("cannot write {}: {e}", procs.display()))?;
        writeln!(counting.child.stdin.as_mut().expect("stdin"), "go")
            .map_err(|e| format!("go: {e}"))?;
        Ok(counting)
    }

    fn count(&self) -> u64 {
        std::fs::read_to_string(&self.counter)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether the count moves within `within`.
    fn advances(&self, within: Duration) -> bool {
        let before = self.count();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            if self.count() > before {
                return true;
            }
        }
        false
    }

    fn exited_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // Thawed so the kill takes effect whatever the test left behind.
        for file in ["freezer.state", "cgroup.freeze"] {
            let path = self.hierarchy.join(&self.pod).join(file);
            if path.exists() {
                let _ = std::fs::write(
                    &path,
                    if file == "freezer.state" {
                        "THAWED"
                    } else {
                        "0"
                    },
                );
            }
        }
        let _ = self.child.wait();
        // The shell's last `sleep` may outlive it for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let top = self.pod.split('/').next().unwrap_or_default().to_owned();
        for dir in [
            self.hierarchy.join(&self.pod).join("c"),
            self.hierarchy.join(&self.pod),
            self.hierarchy.join(top),
        ] {
            while dir.exists() && std::fs::remove_dir(&dir).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn root_or_skip(name: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        skip(name, "not running as root");
        false
    }
}

#[test]
fn v1_freezer_stops_and_resumes_a_real_process() {
    let name = "v1";
    if !root_or_skip(name) {
        return;
    }
    let freezer = Path::new(CGROUP_ROOT).join("freezer");
    let cgroups = PodCgroups::new(CGROUP_ROOT);
    if cgroups.unified() || !freezer.is_dir() {
        eprintln!("freezer_live: skipped v1: no v1 freezer hierarchy on this host (cgroup v2)");
        return;
    }
    let mut counting = Counting::start(&freezer, "v1").unwrap_or_else(|e| panic!("{e}"));
    let pod = counting.pod.clone();
    assert!(counting.advances(WAIT), "the counter runs");
    assert!(!cgroups.frozen(&pod).unwrap());

    cgroups.set_frozen(&pod, true, WAIT).expect("freeze");
    assert!(cgroups.frozen(&pod).unwrap(), "the pod cgroup reads FROZEN");
    assert!(!cgroups.thawed(&pod));
    let container_state = std::fs::read_to_string(freezer.join(&pod).join("c/freezer.state"))
        .expect("container freezer.state");
    assert_eq!(
        container_state.trim(),
        "FROZEN",
        "the child cgroup is frozen too"
    );
    let frozen_at = counting.count();
    assert!(
        !counting.advances(Duration::from_millis(500)),
        "the counter stopped at {frozen_at}"
    );
    // Idempotent.
    cgroups.set_frozen(&pod, true, WAIT).expect("freeze again");

    cgroups.set_frozen(&pod, false, WAIT).expect("thaw");
    assert!(!cgroups.frozen(&pod).unwrap());
    assert!(cgroups.thawed(&pod));
    assert!(counting.advances(WAIT), "the counter runs again");
    cgroups.set_frozen(&pod, false, WAIT).expect("thaw again");

    // Why deletion thaws first: SIGKILL does not kill a v1-frozen process...
    cgroups.set_frozen(&pod, true, WAIT).expect("freeze");
    counting.kill();
    assert!(
        !counting.exited_within(Duration::from_millis(500)),
        "a v1-frozen process died of SIGKILL without a thaw"
    );
    // ...until it is thawed.
    cgroups.set_frozen(&pod, false, WAIT).expect("thaw");
    assert!(counting.exited_within(WAIT), "killed once thawed");
}

#[test]
fn v2_freezer_stops_and_resumes_a_real_process() {
    let name = "v2";
    if !root_or_skip(name) {
        return;
    }
    // The unified hierarchy: the root on a v2 host, `unified` on a hybrid one.
    let Some(root) = [CGROUP_ROOT, "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").is_file())
    else {
        eprintln!("freezer_live: skipped v2: no cgroup v2 hierarchy mounted on this host");
        return;
    };
    let cgroups = PodCgroups::new(&root);
    assert!(cgroups.unified());
    let mut counting = Counting::start(&root, "v2").unwrap_or_else(|e| panic!("{e}"));
    let pod = counting.pod.clone();
    if !root.join(&pod).join("cgroup.freeze").exists() {
        eprintln!("freezer_live: skipped v2: this kernel has no cgroup.freeze (before 5.2)");
        return;
    }
    assert!(counting.advances(WAIT), "the counter runs");
    assert!(!cgroups.frozen(&pod).unwrap());

    cgroups.set_frozen(&pod, true, WAIT).expect("freeze");
    assert!(cgroups.frozen(&pod).unwrap(), "cgroup.events says frozen 1");
    assert!(!cgroups.thawed(&pod));
    let container_events = std::fs::read_to_string(root.join(&pod).join("c/cgroup.events"))
        .expect("container cgroup.events");
    assert!(
        container_events.lines().any(|l| l == "frozen 1"),
        "the child cgroup is frozen too: {container_events}"
    );
    let frozen_at = counting.count();
    assert!(
        !counting.advances(Duration::from_millis(500)),
        "the counter stopped at {frozen_at}"
    );
    cgroups.set_frozen(&pod, true, WAIT).expect("freeze again");

    cgroups.set_frozen(&pod, false, WAIT).expect("thaw");
    assert!(!cgroups.frozen(&pod).unwrap());
    assert!(cgroups.thawed(&pod));
    assert!(counting.advances(WAIT), "the counter runs again");
    cgroups.set_frozen(&pod, false, WAIT).expect("thaw again");

    // Unlike v1, a fatal signal kills a v2-frozen process (the agent thaws first anyway).
    cgroups.set_frozen(&pod, true, WAIT).expect("freeze");
    counting.kill();
    assert!(
        counting.exited_within(WAIT),
        "SIGKILL kills a v2-frozen process"
    );
    cgroups.set_frozen(&pod, false, WAIT).expect("thaw");
}
