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
pub use host::HostFs;
pub use node::{HostNode, NodeSource};
pub use sysfs::SysfsDisks;
