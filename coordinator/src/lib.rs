//! aistor coordinator: keeps the live cluster view built from agent streams and serves
//! it over gRPC and REST. `cli` is `aistorctl`, the command line for people.
//!
//! [`app::run`] is the composition root of `aistor-coordinator`.

pub mod actuate;
pub mod app;
pub mod auth;
pub mod autoscalers;
pub mod cli;
pub mod config;
pub mod convert;
pub mod directives;
pub mod gpus;
pub mod grpc;
pub mod identity;
pub mod ingest;
pub mod k8s;
pub mod kubelet_pods;
pub mod listener;
pub mod measurements;
pub mod metrics;
pub mod migrations;
pub mod paging;
pub mod pki;
pub mod placement;
pub mod process;
pub mod rest;
pub mod role;
pub mod staging;
pub mod store;
pub mod tls;
pub mod view;
pub mod wire;
pub mod workloads;

pub use app::{Bound, Error, run};
