//! Checkpoint staging: copying a container's application checkpoint directory to the
//! shared (NFS) checkpoint volume with a verified manifest, atomically; verifying and
//! restoring it; checkpoint hooks; and whether CRIU works on this node.
//!
//! This commit holds the pure parts: names, the manifest, hook values and reading
//! CRIU's output.

pub mod criu;
pub mod hook;
pub mod manifest;
pub mod names;

pub use criu::CriuCapability;
pub use hook::Hook;
