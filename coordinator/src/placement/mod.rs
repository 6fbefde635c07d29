//! Placement's I/O shell: what the scoring core (`aistor_core::placement`) needs from outside.

pub mod apollo;
