//! The pod cgroup, created with its limits before runc puts containers below it (runc
//! creates the container cgroups from the OCI spec's `cgroupsPath`), and removed with the
//! pod. cgroup v1 (and hybrid hosts, where runc uses the v1 controllers) and v2.

use super::plan::{CFS_PERIOD_US, PodLimits};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("pod cgroup {path}: {action}: {source}")]
pub struct CgroupError {
    pub path: PathBuf,
    pub action: &'static str,
    #[source]
    pub source: std::io::Error,
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_owned();
    move |source| CgroupError {
        path,
        action,
        source,
    }
}

/// The cgroup filesystem the pods go in.
#[derive(Debug, Clone)]
pub struct PodCgroups {
    root: PathBuf,
}

/// cgroup v2 `cpu.weight` from v1 shares, the conversion runc and the kubelet use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

impl PodCgroups {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cgroup root (`/sys/fs/cgroup`, or where the host's is mounted).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// cgroup v2 (`cgroup.controllers` at the root); otherwise v1 or hybrid, where the
    /// v1 controllers hold the containers.
    pub fn unified(&self) -> bool {
        self.root.join("cgroup.controllers").is_file()
    }

    /// Creates the pod cgroup `relative` (e.g. `kubepods/burstable/pod<uid>`) and writes
    /// its limits. Idempotent: an existing cgroup gets the limits again.
    pub fn create(&self, relative: &str, limits: &PodLimits) -> Result<(), CgroupError> {
        if self.unified() {
            self.create_v2(relative, limits)
        } else {
            self.create_v1(relative, limits)
        }
    }

    fn create_v1(&self, relative: &str, limits: &PodLimits) -> Result<(), CgroupError> {
        // Only below a mounted controller: never create the hierarchy's own directory.
        for controller in ["cpu", "memory"] {
            let mount = self.root.join(controller);
            if !mount.is_dir() {
                return Err(CgroupError {
                    action: "find the controller",
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("no {controller} controller at {}", mount.display()),
                    ),
                    path: mount,
                });
            }
        }
        let cpu = self.root.join("cpu").join(relative);
        std::fs::create_dir_all(&cpu).map_err(io(&cpu, "create"))?;
        write(&cpu, "cpu.shares", &limits.cpu_shares.to_string())?;
        write(&cpu, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
        let quota = limits
            .cpu_quota_us
            .map_or("-1".to_owned(), |q| q.to_string());
        write(&cpu, "cpu.cfs_quota_us", &quota)?;
        let memory = self.root.join("memory").join(relative);
        std::fs::create_dir_all(&memory).map_err(io(&memory, "create"))?;
        let limit = limits
            .memory_limit_bytes
            .map_or("-1".to_owned(), |m| m.to_string());
        write(&memory, "memory.limit_in_bytes", &limit)
    }

    fn create_v2(&self, relative: &str, limits: &PodLimits) -> Result<(), CgroupError> {
        // Each ancestor must delegate the controllers to its children.
        let mut dir = self.root.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            write(&dir, "cgroup.subtree_control", "+cpu +memory +pids")?;
            dir.push(part);
            if !dir.is_dir() {
                std::fs::create_dir(&dir).map_err(io(&dir, "create"))?;
            }
        }
        write(
            &dir,
            "cpu.weight",
            &shares_to_weight(limits.cpu_shares).to_string(),
        )?;
        let quota = limits
            .cpu_quota_us
            .map_or("max".to_owned(), |q| q.to_string());
        write(&dir, "cpu.max", &format!("{quota} {CFS_PERIOD_US}"))?;
        let limit = limits
            .memory_limit_bytes
            .map_or("max".to_owned(), |m| m.to_string());
        write(&dir, "memory.max", &limit)
    }

    /// Removes the pod cgroup and any empty container cgroups left below it, in every
    /// hierarchy. Only `rmdir`: a cgroup with processes in it is an error, never emptied.
    pub fn remove(&self, relative: &str) -> Result<(), CgroupError> {
        let hierarchies: Vec<PathBuf> = if self.unified() {
            vec![self.root.clone()]
        } else {
            std::fs::read_dir(&self.root)
                .map_err(io(&self.root, "list"))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        };
        for hierarchy in hierarchies {
            let dir = hierarchy.join(relative);
            if !dir.is_dir() {
                continue;
            }
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in children.flatten() {
                    if child.path().is_dir() {
                        let path = child.path();
                        std::fs::remove_dir(&path).map_err(io(&path, "remove"))?;
                    }
                }
            }
            std::fs::remove_dir(&dir).map_err(io(&dir, "remove"))?;
        }
        Ok(())
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(io(&path, "write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 100);
    }

    #[test]
    fn v1_layout_gets_limits_and_is_removed() {
        let root = tempfile::tempdir().unwrap();
        for c in ["cpu", "memory", "pids"] {
            std::fs::create_dir(root.path().join(c)).unwrap();
        }
        let cg = PodCgroups::new(root.path());
        let limits = PodLimits {
            cpu_shares: 512,
            cpu_quota_us: Some(50_000),
            memory_limit_bytes: Some(1 << 20),
        };
        cg.create("kubepods/burstable/podu1", &limits).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("cpu/kubepods/burstable/podu1/cpu.shares"), "512");
        assert_eq!(
            read("cpu/kubepods/burstable/podu1/cpu.cfs_quota_us"),
            "50000"
        );
        assert_eq!(
            read("cpu/kubepods/burstable/podu1/cpu.cfs_period_us"),
            "100000"
        );
        assert_eq!(
            read("memory/kubepods/burstable/podu1/memory.limit_in_bytes"),
            "1048576"
        );
        let unlimited = PodLimits {
            cpu_quota_us: None,
            memory_limit_bytes: None,
            ..limits
        };
        cg.create("kubepods/burstable/podu1", &unlimited).unwrap();
        assert_eq!(read("cpu/kubepods/burstable/podu1/cpu.cfs_quota_us"), "-1");
        assert_eq!(
            read("memory/kubepods/burstable/podu1/memory.limit_in_bytes"),
            "-1"
        );
        // runc's container cgroup in another hierarchy, left empty.
        std::fs::create_dir_all(root.path().join("pids/kubepods/burstable/podu1/c1")).unwrap();
        // A real cgroupfs would refuse rmdir of a directory holding files; tmpfs does too,
        // so clear the limit files this test wrote first.
        for f in ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"] {
            std::fs::remove_file(root.path().join("cpu/kubepods/burstable/podu1").join(f)).unwrap();
        }
        std::fs::remove_file(
            root.path()
                .join("memory/kubepods/burstable/podu1/memory.limit_in_bytes"),
        )
        .unwrap();
        cg.remove("kubepods/burstable/podu1").unwrap();
        for c in ["cpu", "memory", "pids"] {
            assert!(
                !root
                    .path()
                    .join(c)
                    .join("kubepods/burstable/podu1")
                    .exists()
            );
            assert!(root.path().join(c).join("kubepods/burstable").exists() || c == "pids");
        }
        // Removing what is gone is fine.
        cg.remove("kubepods/burstable/podu1").unwrap();
    }

    #[test]
    fn v2_layout_delegates_and_writes_limits() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        let cg = PodCgroups::new(root.path());
        let limits = PodLimits {
            cpu_shares: 1024,
            cpu_quota_us: None,
            memory_limit_bytes: Some(4096),
        };
        cg.create("kubepods/podu2", &limits).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("cgroup.subtree_control"), "+cpu +memory +pids");
        assert_eq!(
            read("kubepods/cgroup.subtree_control"),
            "+cpu +memory +pids"
        );
        assert_eq!(read("kubepods/podu2/cpu.weight"), "39");
        assert_eq!(read("kubepods/podu2/cpu.max"), "max 100000");
        assert_eq!(read("kubepods/podu2/memory.max"), "4096");
        let err = PodCgroups::new("/nonexistent/aistor")
            .create("kubepods/x", &limits)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no cpu controller at /nonexistent/aistor/cpu"),
            "{err}"
        );
        assert!(!Path::new("/nonexistent").exists());
    }
}
