//! Regenerates `proto/src/gen` from the protos and fails when the result differs from
//! what is checked in. Run `cargo test -p aistor-proto-codegen` after editing a
//! `.proto`: it rewrites the files, and the second run passes.

use prost::Message;
use std::path::{Path, PathBuf};

const PROTOS: &[&str] = &[
    "aistor/v1/measurements.proto",
    "aistor/v1/measure.proto",
    "aistor/v1/runtime.proto",
    "aistor/v1/workloads.proto",
    "aistor/v1/autoscalers.proto",
    "aistor/v1/migrations.proto",
    "aistor/v1/placement.proto",
    "aistor/v1/agent.proto",
    "aistor/v1/cluster.proto",
];

/// Our own copy of the kubelet's pod-resources contract (package `v1`, lands in
/// `src/gen/v1.rs`). Compiled apart from the aistor protos so that their descriptor set,
/// which gRPC reflection serves, does not advertise the kubelet's service.
const KUBELET_PROTOS: &[&str] = &["kubelet/podresources/v1/api.proto"];

/// Our own copy of APOLLO's scheduling-policy contract (package `apollo`, lands in
/// `src/gen/apollo.rs`); apart from the aistor protos for the same reason.
const APOLLO_PROTOS: &[&str] = &["apollo/apollo.proto"];

#[test]
fn generated_code_matches_protos() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("codegen crate lives inside proto/");
    let gen_dir = root.join("src/gen");
    let scratch = tempdir(root);

    let fds = protox::compile(PROTOS, [root]).expect("protos compile");
    // compile_fds does not write the descriptor set itself; reflection needs it.
    std::fs::write(scratch.join("aistor_descriptor.bin"), fds.encode_to_vec())
        .expect("scratch dir is writable");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The transport helper `connect()` would clash with the `Connect` rpc; clients
        // are built from a `tonic::transport::Channel` instead.
        .build_transport(false)
        .out_dir(&scratch)
        // JSON for the REST API and `snapshot --json`; enum fields as their names.
        .type_attribute(".aistor.v1", "#[derive(serde::Serialize)]")
        .field_attribute(
            ".aistor.v1.NodeIdentity.cgroup_mode",
            r#"#[serde(serialize_with = "crate::json::cgroup_mode")]"#,
        )
        .field_attribute(
            ".aistor.v1.Disk.kind",
            r#"#[serde(serialize_with = "crate::json::disk_kind")]"#,
        )
        .field_attribute(
            ".aistor.v1.Container.state",
            r#"#[serde(serialize_with = "crate::json::container_state")]"#,
        )
        .field_attribute(
            ".aistor.v1.GpuSection.source",
            r#"#[serde(serialize_with = "crate::json::gpu_source")]"#,
        )
        .field_attribute(
            ".aistor.v1.NodeStatus.state",
            r#"#[serde(serialize_with = "crate::json::node_state")]"#,
        )
        .field_attribute(
            ".aistor.v1.Measurement.state",
            r#"#[serde(serialize_with = "crate::json::measurement_state")]"#,
        )
        .field_attribute(
            ".aistor.v1.PodStatus.node_state",
            r#"#[serde(serialize_with = "crate::json::node_state")]"#,
        )
        .field_attribute(
            ".aistor.v1.NodeEvent.kind",
            r#"#[serde(serialize_with = "crate::json::node_event_kind")]"#,
        )
        .compile_fds(fds)
        .expect("code generation succeeds");

    // Client for the agent, server for its tests' fake kubelet.
    let kubelet_fds = protox::compile(KUBELET_PROTOS, [root]).expect("kubelet protos compile");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .out_dir(&scratch)
        .compile_fds(kubelet_fds)
        .expect("kubelet code generation succeeds");

    // Client for the coordinator's placement, server for its tests' fake APOLLO.
    let apollo_fds = protox::compile(APOLLO_PROTOS, [root]).expect("apollo protos compile");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .out_dir(&scratch)
        .compile_fds(apollo_fds)
        .expect("apollo code generation succeeds");

    let mut drift = Vec::new();
    for name in [
        "aistor.v1.rs",
        "aistor_descriptor.bin",
        "v1.rs",
        "apollo.rs",
    ] {
        let fresh = std::fs::read(scratch.join(name)).expect("generated file exists");
        let checked_in = std::fs::read(gen_dir.join(name)).unwrap_or_default();
        if fresh != checked_in {
            std::fs::write(gen_dir.join(name), &fresh).expect("src/gen is writable");
            drift.push(name);
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
    assert!(
        drift.is_empty(),
        "generated code was out of date and has been rewritten: {drift:?}; review and commit src/gen"
    );
}

fn tempdir(root: &Path) -> PathBuf {
    let dir = root
        .parent()
        .expect("proto crate lives in the workspace")
        .join("target")
        .join(format!("proto-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
