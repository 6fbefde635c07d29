//! aistor's pure domain: the live cluster view built from agent reports, and the
//! decisions taken from it (autoscaling so far). Nothing here does I/O or reads a
//! clock: time is a parameter, so every rule is tested with exact instants.

pub mod autoscale;
pub mod clock;
pub mod manifest;
pub mod migration;
pub mod model;
pub mod placement;
pub mod quantity;
pub mod selector;
pub mod sequence;
pub mod validate;
pub mod view;
pub mod workload;

pub use clock::{Clock, ManualClock, Now};
pub use view::{
    ClusterView, Ingested, NodeEntry, NodeReading, NodeSample, NodeState, ReportKey, ViewConfig,
};
