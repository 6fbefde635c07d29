//! aistor coordinator: keeps the live cluster view built from agent streams and serves
//! it over gRPC and REST. `cli` is `aistorctl`, the command line for people.

pub mod cli;
