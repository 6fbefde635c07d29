//! aistorctl.
