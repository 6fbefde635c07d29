//! See `tests/drift.rs`: this crate only hosts the code-generation check.
