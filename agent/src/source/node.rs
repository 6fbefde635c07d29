//! Reads the node-level files for one tick, and the node's identity once.

use super::HostFs;
use crate::clock;
use crate::model::{NodeReading, StaticIdentity};
use crate::parse::mountinfo;

/// Reads the node's files into a [`NodeReading`].
pub trait NodeSource: Send {
    fn read(&mut self) -> NodeReading;
}

pub struct HostNode {
    fs: HostFs,
}

impl HostNode {
    pub fn new(fs: HostFs) -> Self {
        Self { fs }
    }

    pub fn fs(&self) -> &HostFs {
        &self.fs
    }

    /// Identity facts; each one that cannot be read carries its reason.
    pub fn identity(&self, name: String) -> StaticIdentity {
        let fs = &self.fs;
        let text = |path: &str| fs.read_trimmed(path).map_err(|e| e.to_string());
        StaticIdentity {
            name,
            machine_id: text("/etc/machine-id"),
            boot_id: text("/proc/sys/kernel/random/boot_id"),
            kernel_version: text("/proc/sys/kernel/osrelease"),
            os_image: os_image(fs),
            // pid 1's view is the host's: the agent's own mount namespace differs in a pod.
            cgroup_mode: fs
                .read("/proc/1/mountinfo")
                .map_err(|e| e.to_string())
                .and_then(|t| mountinfo::cgroup_mode(&t).map_err(|e| e.to_string())),
        }
    }
}

fn os_image(fs: &HostFs) -> Result<String, String> {
    let text = fs
        .read("/etc/os-release")
        .or_else(|_| fs.read("/usr/lib/os-release"))
        .map_err(|e| format!("{e} (and /usr/lib/os-release)"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .ok_or_else(|| "os-release has no PRETTY_NAME".to_owned())
}

impl NodeSource for HostNode {
    fn read(&mut self) -> NodeReading {
        // The timestamp sits next to /proc/stat, the counter whose rate needs it most.
        let monotonic = clock::monotonic();
        let wall_unix_nanos = clock::wall_unix_nanos();
        let fs = &self.fs;
        NodeReading {
            monotonic,
            wall_unix_nanos,
            stat: fs.read("/proc/stat"),
            meminfo: fs.read("/proc/meminfo"),
            pressure_cpu: fs.read("/proc/pressure/cpu"),
            pressure_memory: fs.read("/proc/pressure/memory"),
            pressure_io: fs.read("/proc/pressure/io"),
            diskstats: fs.read("/proc/diskstats"),
        }
    }
}
