//! A Kubernetes API server fake for tests (work in progress).
