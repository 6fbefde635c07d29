//! A private containerd for live tests: root, state, socket and config under a tempdir,
//! the CRI plugin disabled so it never touches the host's Kubernetes state; dropping it
//! kills what it ran and removes it all. Shared by the `containerd_live` and
//! `runtime_live` tests, which include this file with `#[path]` (each uses part of it).
//!
//! Needs root, `containerd`, `containerd-shim-runc-v2`, `runc`, `ctr` and a static busybox
//! (Debian: `containerd runc busybox-static`); [`start`] says what is missing.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const NAMESPACE: &str = "k8s.io";
pub(crate) const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub(crate) fn require_tools() -> bool {
    std::env::var("AISTOR_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A statically linked ELF64 executable (no PT_INTERP program header), so it runs in a
/// rootfs without libraries.
pub(crate) fn is_static_elf(path: &Path) -> bool {
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
pub(crate) struct Created {
    pub(crate) id: String,
    pub(crate) pid: Option<u32>,
}

/// The private containerd and everything created through it; `Drop` removes it all,
/// also when an assertion failed.
pub(crate) struct Private {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) socket: PathBuf,
    pub(crate) child: Option<Child>,
    pub(crate) created: Vec<Created>,
    /// Cgroup directories to remove (deepest first), relative to each controller mount.
    pub(crate) cgroups: Vec<String>,
}

impl Private {
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub(crate) fn ctr(&self, args: &[&str]) {
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

    /// `ctr` with its standard output, `Err` with its error output.
    pub(crate) fn ctr_output(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", NAMESPACE])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ctr: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "ctr {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    pub(crate) fn cleanup(&mut self) {
        let mut created = std::mem::take(&mut self.created);
        let alive = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if alive {
            // Containers made by the code under test, too.
            for id in self
                .ctr_output(&["containers", "ls", "-q"])
                .unwrap_or_default()
                .lines()
            {
                if !created.iter().any(|c| c.id == id) {
                    created.push(Created {
                        id: id.to_owned(),
                        pid: None,
                    });
                }
            }
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

pub(crate) fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

pub(crate) fn shims_of(socket: &Path) -> Vec<u32> {
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

pub(crate) fn config(dir: &Path, socket: &Path) -> String {
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
pub(crate) async fn start() -> Result<Private, String> {
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
