//! Serialisers that write proto enum fields (stored by prost as `i32`) as their
//! lower-case names, e.g. `"cgroup_mode": "hybrid"`, so JSON readers need no table.

use crate::v1::{
    CgroupMode, ContainerState, DiskKind, GpuSource, MeasurementState, NodeState, node_event,
};
use serde::Serializer;

/// Writes the enum's proto name without its prefix, lower-cased; an unknown number
/// (from a newer peer) is written as the number so nothing is lost.
fn name<S: Serializer>(
    value: i32,
    prefix: &str,
    name: Option<&str>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match name {
        Some(full) => {
            let short = full.strip_prefix(prefix).unwrap_or(full);
            s.serialize_str(&short.to_ascii_lowercase())
        }
        None => s.serialize_i32(value),
    }
}

macro_rules! enum_serializer {
    ($fn_name:ident, $ty:ty, $prefix:literal) => {
        pub(crate) fn $fn_name<S: Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
            name(
                *value,
                $prefix,
                <$ty>::try_from(*value).ok().map(|e| e.as_str_name()),
                s,
            )
        }
    };
}

enum_serializer!(cgroup_mode, CgroupMode, "CGROUP_MODE_");
enum_serializer!(disk_kind, DiskKind, "DISK_KIND_");
enum_serializer!(container_state, ContainerState, "CONTAINER_STATE_");
enum_serializer!(gpu_source, GpuSource, "GPU_SOURCE_");
enum_serializer!(node_state, NodeState, "NODE_STATE_");
enum_serializer!(node_event_kind, node_event::Kind, "KIND_");
enum_serializer!(measurement_state, MeasurementState, "MEASUREMENT_STATE_");

#[cfg(test)]
mod tests {
    use crate::v1::{CgroupMode, Disk, DiskKind, NodeIdentity};

    #[test]
    fn enums_are_written_as_names() {
        let node = NodeIdentity {
            cgroup_mode: CgroupMode::Hybrid as i32,
            ..Default::default()
        };
        let json = serde_json::to_value(&node).unwrap();
        assert_eq!(json["cgroup_mode"], "hybrid");
        let disk = Disk {
            kind: DiskKind::DeviceMapper as i32,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&disk).unwrap()["kind"],
            "device_mapper"
        );
    }

    #[test]
    fn unknown_enum_numbers_are_kept() {
        let node = NodeIdentity {
            cgroup_mode: 42,
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&node).unwrap()["cgroup_mode"], 42);
    }
}
