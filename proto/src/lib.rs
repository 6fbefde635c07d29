//! aistor's gRPC contracts. The `.proto` files under `aistor/v1/` are the source of
//! truth; the Rust in `src/gen/` is generated from them by `tests/codegen.rs`, which
//! fails when the checked-in code differs from what the protos produce.

/// `aistor.v1`: agent stream, measurements, the cluster view, the local runtime's
/// workloads and the autoscalers.
pub mod v1 {
    #![allow(unreachable_pub, clippy::all, rust_2018_idioms)]
    include!("gen/aistor.v1.rs");

    /// Encoded `FileDescriptorSet` of every aistor proto, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/aistor_descriptor.bin");
}

/// The kubelet's APIs that the agent calls, from our own minimal copies of their
/// wire contracts under `kubelet/` (same packages and field numbers as the kubelet's).
pub mod kubelet {
    /// Pod resources (`/var/lib/kubelet/pod-resources/kubelet.sock`).
    pub mod podresources {
        /// Package `v1`: `PodResourcesLister.List`, gRPC path `/v1.PodResourcesLister/List`.
        pub mod v1 {
            #![allow(unreachable_pub, clippy::all, rust_2018_idioms)]
            include!("gen/v1.rs");
        }
    }
}

/// APOLLO's scheduling-policy service (package `apollo`), from our own copy of its
/// wire contract under `apollo/` (the scheduler's field numbering): the coordinator's
/// placement is its client; the coordinator's tests serve a fake of it.
pub mod apollo {
    #![allow(unreachable_pub, clippy::all, rust_2018_idioms)]
    include!("gen/apollo.rs");
}

/// The largest `NodeReport` the coordinator's `AgentService.Connect` accepts, in
/// encoded bytes (tonic's default decoding limit, which the coordinator keeps). The
/// agent keeps every report under it.
pub const MAX_REPORT_BYTES: usize = 4 << 20;

mod json;
