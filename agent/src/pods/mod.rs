//! Pods and containers on this node: which cgroups belong to which pod, and their
//! measurements.

pub mod layout;
pub mod sampler;
pub mod targets;
