//! Measurement runs: N samples of one target's cgroups at a fixed interval, with
//! summary statistics, for migration benchmarks.

pub mod stats;
