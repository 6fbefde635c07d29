//! The agent's own sample types: what the sources (`source`) read and the pure report
//! builder (`report`) consumes. They live here, owned by neither side, so both depend
//! on `model` and not on each other.

use aistor_proto::v1 as pb;
use std::io;
use std::path::Path;
use std::time::Duration;

/// A file that could not be read; the message names the host path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ReadError {
    pub path: String,
    pub message: String,
    /// The file does not exist (a feature the kernel lacks, a vanished cgroup).
    pub not_found: bool,
}

impl ReadError {
    pub(crate) fn new(path: &Path, err: &io::Error) -> Self {
        Self {
            path: path.display().to_string(),
            message: err.to_string(),
            not_found: err.kind() == io::ErrorKind::NotFound,
        }
    }
}

/// The raw text of the node's files at one instant, as read.
#[derive(Debug, Clone)]
pub struct NodeReading {
    /// CLOCK_MONOTONIC when the files were read.
    pub monotonic: Duration,
    pub wall_unix_nanos: u64,
    pub stat: Result<String, ReadError>,
    pub meminfo: Result<String, ReadError>,
    pub pressure_cpu: Result<String, ReadError>,
    pub pressure_memory: Result<String, ReadError>,
    pub pressure_io: Result<String, ReadError>,
    pub diskstats: Result<String, ReadError>,
}

/// Facts about the node that do not change between ticks, read once at start.
#[derive(Debug, Clone)]
pub struct StaticIdentity {
    pub name: String,
    pub machine_id: Result<String, String>,
    pub boot_id: Result<String, String>,
    pub kernel_version: Result<String, String>,
    pub os_image: Result<String, String>,
    pub cgroup_mode: Result<pb::CgroupMode, String>,
}

impl Default for NodeReading {
    fn default() -> Self {
        let absent = || {
            Err(ReadError {
                path: String::new(),
                message: "not read".into(),
                not_found: true,
            })
        };
        Self {
            monotonic: Duration::ZERO,
            wall_unix_nanos: 0,
            stat: absent(),
            meminfo: absent(),
            pressure_cpu: absent(),
            pressure_memory: absent(),
            pressure_io: absent(),
            diskstats: absent(),
        }
    }
}

/// A block device as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskInfo {
    pub kind: pb::DiskKind,
    pub parent: String,
    pub rotational: Option<bool>,
}

/// Describes block devices by name (kind, parent, rotational). The real one reads
/// sysfs; tests use a map.
pub trait DiskCatalog {
    fn describe(&mut self, name: &str) -> DiskInfo;
}

impl DiskCatalog for std::collections::HashMap<String, DiskInfo> {
    fn describe(&mut self, name: &str) -> DiskInfo {
        self.get(name).cloned().unwrap_or_default()
    }
}
