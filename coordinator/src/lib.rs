//! coordinator.
