//! gRPC adapters. Domain errors become `tonic::Status` here and nowhere else.

pub mod agent;
pub mod autoscalers;
pub mod cluster;
pub mod workloads;
