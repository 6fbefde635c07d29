//! The I/O shell: everything that reads the host. Files are read under a configurable
//! host root (`/host` in the DaemonSet) so tests point it at a captured tree.

mod cgroupfs;
pub mod containerd;
mod host;
mod node;
mod sysfs;

pub use cgroupfs::*;
pub use containerd::{
    CgroupMembership, CgroupResolver, ContainerInfo, Containerd, EventStream, RuntimeError,
    RuntimeEvent,
};
pub use host::{HostFs, ReadError};
pub use node::{HostNode, NodeSource};
pub use sysfs::{DiskInfo, SysfsDisks};

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
