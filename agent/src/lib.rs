//! aistor node agent: reads what a node, its pods and its GPUs use, and streams it to
//! the coordinator.
//!
//! Pure parts (`parse`, `rate`) turn kernel text into typed values and rates; the I/O
//! shell (`source`) reads files under the configured host root.

pub mod parse;
pub mod rate;
