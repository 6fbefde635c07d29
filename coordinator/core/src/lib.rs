//! aistor core.
