//! Block device facts from sysfs: whole disk or partition, dm or md, the parent of a
//! partition, rotational. Decided from sysfs rather than a name pattern so NVMe
//! (`nvme0n1p1`), dm and md devices are classified right. Cached: sysfs is read once
//! per device and again only after `refresh_every`.

use super::HostFs;
use crate::model::{DiskCatalog, DiskInfo};
use aistor_proto::v1::DiskKind;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct SysfsDisks {
    fs: HostFs,
    cache: HashMap<String, DiskInfo>,
    refreshed: Instant,
    refresh_every: Duration,
}

impl SysfsDisks {
    pub fn new(fs: HostFs, refresh_every: Duration) -> Self {
        Self {
            fs,
            cache: HashMap::new(),
            refreshed: Instant::now(),
            refresh_every,
        }
    }

    fn read(&self, name: &str) -> DiskInfo {
        // sysfs spells '/' in device names (cciss/c0d0) as '!'.
        let sys_name = name.replace('/', "!");
        let class = format!("/sys/class/block/{sys_name}");
        if self.fs.exists(&format!("{class}/partition")) {
            // /sys/class/block/sda1 links to .../block/sda/sda1: the parent is the
            // directory that holds the partition.
            let parent = std::fs::canonicalize(self.fs.path(&class))
                .ok()
                .and_then(|p| {
                    p.parent()
                        .and_then(|d| d.file_name())
                        .map(|n| n.to_string_lossy().replace('!', "/"))
                })
                .unwrap_or_default();
            let rotational = self.rotational(&parent.replace('/', "!"));
            return DiskInfo {
                kind: DiskKind::Partition,
                parent,
                rotational,
            };
        }
        let block = format!("/sys/block/{sys_name}");
        let kind = if self.fs.exists(&format!("{block}/dm")) {
            DiskKind::DeviceMapper
        } else if self.fs.exists(&format!("{block}/md")) {
            DiskKind::Md
        } else if self.fs.exists(&block) {
            DiskKind::Whole
        } else {
            DiskKind::Unspecified
        };
        DiskInfo {
            kind,
            parent: String::new(),
            rotational: self.rotational(&sys_name),
        }
    }

    fn rotational(&self, sys_name: &str) -> Option<bool> {
        match self
            .fs
            .read_trimmed(&format!("/sys/block/{sys_name}/queue/rotational"))
            .ok()?
            .as_str()
        {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        }
    }
}

impl DiskCatalog for SysfsDisks {
    fn describe(&mut self, name: &str) -> DiskInfo {
        if self.refreshed.elapsed() >= self.refresh_every {
            // Devices come and go (hotplug, dm volumes); re-read them lazily.
            self.cache.clear();
            self.refreshed = Instant::now();
        }
        if let Some(info) = self.cache.get(name) {
            return info.clone();
        }
        let info = self.read(name);
        self.cache.insert(name.to_owned(), info.clone());
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A sysfs tree shaped like the kernel's: devices under /sys/devices, links from
    /// /sys/block and /sys/class/block.
    fn fake_sysfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let dev = root.join("sys/devices/pci0000:00/nvme/nvme0/nvme0n1");
        fs::create_dir_all(dev.join("nvme0n1p1")).unwrap();
        fs::write(dev.join("nvme0n1p1/partition"), "1\n").unwrap();
        fs::create_dir_all(dev.join("queue")).unwrap();
        fs::write(dev.join("queue/rotational"), "0\n").unwrap();
        let dm = root.join("sys/devices/virtual/block/dm-0");
        fs::create_dir_all(dm.join("dm")).unwrap();
        let md = root.join("sys/devices/virtual/block/md0");
        fs::create_dir_all(md.join("md")).unwrap();
        fs::create_dir_all(root.join("sys/block")).unwrap();
        fs::create_dir_all(root.join("sys/class/block")).unwrap();
        let link = |target: &std::path::Path, at: &str| {
            std::os::unix::fs::symlink(target, root.join(at)).unwrap()
        };
        link(&dev, "sys/block/nvme0n1");
        link(&dm, "sys/block/dm-0");
        link(&md, "sys/block/md0");
        link(&dev, "sys/class/block/nvme0n1");
        link(&dev.join("nvme0n1p1"), "sys/class/block/nvme0n1p1");
        dir
    }

    #[test]
    fn classifies_from_sysfs_not_names() {
        let dir = fake_sysfs();
        let mut disks = SysfsDisks::new(HostFs::new(dir.path()), Duration::from_secs(60));
        assert_eq!(
            disks.describe("nvme0n1"),
            DiskInfo {
                kind: DiskKind::Whole,
                parent: String::new(),
                rotational: Some(false)
            }
        );
        assert_eq!(
            disks.describe("nvme0n1p1"),
            DiskInfo {
                kind: DiskKind::Partition,
                parent: "nvme0n1".into(),
                rotational: Some(false)
            }
        );
        assert_eq!(disks.describe("dm-0").kind, DiskKind::DeviceMapper);
        assert_eq!(disks.describe("md0").kind, DiskKind::Md);
        assert_eq!(disks.describe("sdz").kind, DiskKind::Unspecified);
    }

    #[test]
    fn this_hosts_disks_are_classified() {
        // Live check against the real sysfs of the machine running the tests.
        let mut disks = SysfsDisks::new(HostFs::new("/"), Duration::from_secs(60));
        let whole: Vec<_> = std::fs::read_dir("/sys/block")
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!whole.is_empty());
        for name in whole {
            let kind = disks.describe(&name).kind;
            assert!(
                matches!(
                    kind,
                    DiskKind::Whole | DiskKind::DeviceMapper | DiskKind::Md
                ),
                "{name} in /sys/block classified as {kind:?}"
            );
        }
    }
}
