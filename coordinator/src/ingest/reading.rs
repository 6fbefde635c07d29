//! A received report → the core's [`NodeReading`], once, validated by the core's
//! rules. After this nothing reads protobuf to decide.

use crate::wire::{self, ReceivedReport, ReportHead};
use aistor_core::model::{
    Container, ContainerState, DiscoveredBy, GpuDevice, GpuDeviceFigures, GpuUse, GpuUseFigures,
    Missing, Pod, PodKey, PodWindow, QosClass, Usage, UsageFigures,
};
use aistor_core::validate::{self, Invalid, Limits};
use aistor_core::{NodeReading, NodeSample};
use aistor_proto::v1 as pb;
use std::time::Duration;

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("field `pods` does not decode: {0}")]
    Pods(prost::DecodeError),
    #[error("field `pods`: {0}")]
    Stream(String),
    #[error("a measurement result could not be stored: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// A report taken apart: the figures for the view and the head kept for display.
#[derive(Debug)]
pub struct Converted {
    pub reading: NodeReading,
    /// The head without its measurement results (they are handed over separately).
    pub head: ReportHead,
    pub measurements: Vec<pb::MeasurementResult>,
    /// The uids of the pods whose cgroup the report says is frozen.
    pub frozen: Vec<String>,
}

/// Converts a report that leaves nothing out (see [`convert_on_stream`]).
pub fn convert(
    report: ReceivedReport,
    now_wall_unix_nanos: u64,
    limits: &Limits,
) -> Result<Converted, Refused> {
    convert_on_stream(
        report,
        now_wall_unix_nanos,
        limits,
        &mut wire::StreamPicture::default(),
    )
}

/// Converts a report received on the stream whose reports so far `picture` holds: what the
/// report left out as unchanged is put back from it first, and the picture then holds this
/// report (also when it is refused later, e.g. a replay already stored: the next report on
/// the stream follows this one).
pub fn convert_on_stream(
    report: ReceivedReport,
    now_wall_unix_nanos: u64,
    limits: &Limits,
    picture: &mut wire::StreamPicture,
) -> Result<Converted, Refused> {
    let mut pods = report.pods().map_err(Refused::Pods)?.pods;
    picture.restore(&mut pods).map_err(Refused::Stream)?;
    let ReceivedReport { mut head, .. } = report;
    validate::report_head(
        &validate::ReportHead {
            node_name: head.node.as_ref().map(|n| n.name.as_str()),
            boot_id: head.node.as_ref().map_or("", |n| n.boot_id.as_str()),
            agent_instance: &head.agent_instance,
            seq: head.seq,
            wall_time_unix_nanos: head.wall_time_unix_nanos,
            collect_interval_nanos: head.collect_interval_nanos,
            pods: pods.len(),
        },
        now_wall_unix_nanos,
        limits,
    )?;
    for (i, p) in pods.iter().enumerate() {
        validate::pod(
            i,
            &validate::PodText {
                uid: &p.uid,
                name: &p.name,
                namespace: &p.namespace,
                cgroup_path: &p.cgroup_path,
                containers: p.containers.len(),
            },
            limits,
        )?;
        for (j, c) in p.containers.iter().enumerate() {
            validate::container(
                i,
                j,
                &validate::ContainerText {
                    id: &c.id,
                    name: &c.name,
                    image: &c.image,
                },
                limits,
            )?;
        }
    }
    let frozen = pods
        .iter()
        .filter(|p| p.frozen)
        .map(|p| p.uid.clone())
        .collect();
    let pods = match head.missing.iter().find(|m| m.field == "pods") {
        Some(m) => Err(m.reason.clone().into_boxed_str()),
        None => Ok(pods.into_iter().map(pod).collect()),
    };
    let reading = NodeReading {
        sample: node_sample(&head),
        interval: head.interval_nanos.map(Duration::from_nanos),
        pods,
        gpus: head
            .gpu
            .as_ref()
            .map(|s| s.gpus.iter().map(gpu_device).collect())
            .unwrap_or_default(),
    };
    let measurements = std::mem::take(&mut head.measurements);
    Ok(Converted {
        reading,
        head,
        measurements,
        frozen,
    })
}

/// The node's own figures, from a report's head.
pub fn node_sample(head: &ReportHead) -> NodeSample {
    let usage = head.usage.as_ref();
    let (disk_read, disk_write) = wire::whole_disks_rates(&head.disks);
    NodeSample {
        wall_time_unix_nanos: head.wall_time_unix_nanos,
        cpu_millicores: usage
            .and_then(|u| u.cpu.as_ref())
            .and_then(|c| c.usage_millicores),
        cpu_capacity_millicores: head.node.as_ref().and_then(|n| n.cpu_capacity_millicores),
        memory_working_set_bytes: usage
            .and_then(|u| u.memory.as_ref())
            .and_then(|m| m.working_set_bytes),
        memory_total_bytes: head.node.as_ref().and_then(|n| n.memory_total_bytes),
        disk_read_bytes_per_second: disk_read,
        disk_write_bytes_per_second: disk_write,
        disk_busy_percent: wire::busiest_whole_disk(&head.disks),
    }
}

fn missing(list: Vec<pb::Missing>) -> Vec<Missing> {
    list.into_iter()
        .map(|m| Missing {
            field: m.field.into_boxed_str(),
            reason: m.reason.into_boxed_str(),
        })
        .collect()
}

fn usage(u: Option<wire::Usage>) -> Usage {
    let Some(u) = u else {
        return Usage::new(
            UsageFigures::default(),
            vec![
                Missing::new("cpu", "no usage in the report"),
                Missing::new("memory", "no usage in the report"),
                Missing::new("io", "no usage in the report"),
                Missing::new("pids_current", "no usage in the report"),
            ],
        );
    };
    let cpu = u.cpu.unwrap_or_default();
    let memory = u.memory.unwrap_or_default();
    let rates = u.io.and_then(|io| io.rates);
    Usage::new(
        UsageFigures {
            cpu_millicores: cpu.usage_millicores,
            cpu_limit_millicores: cpu.limit_millicores,
            memory_usage_bytes: memory.usage_bytes,
            memory_working_set_bytes: memory.working_set_bytes,
            memory_rss_bytes: memory.rss_bytes,
            memory_cache_bytes: memory.cache_bytes,
            memory_limit_bytes: memory.limit_bytes,
            io_read_bytes_per_second: rates.map(|r| r.read_bytes_per_second),
            io_write_bytes_per_second: rates.map(|r| r.write_bytes_per_second),
            io_reads_per_second: rates.map(|r| r.reads_per_second),
            io_writes_per_second: rates.map(|r| r.writes_per_second),
            pids_current: u.pids_current,
        },
        missing(u.missing),
    )
}

fn gpu_use(g: pb::GpuUse) -> GpuUse {
    GpuUse::new(GpuUseFigures {
        gpu_uuid: g.gpu_uuid,
        mig_uuid: (!g.mig_uuid.is_empty()).then_some(g.mig_uuid),
        allocated: g.allocated,
        memory_used_bytes: g.memory_used_bytes,
        sm_utilization_percent: g.sm_utilization_percent,
        memory_utilization_percent: g.memory_utilization_percent,
    })
}

fn container_state(state: i32) -> ContainerState {
    match pb::ContainerState::try_from(state) {
        Ok(pb::ContainerState::Running) => ContainerState::Running,
        Ok(pb::ContainerState::Paused) => ContainerState::Paused,
        // containerd's task ended; the agent does not carry the exit status yet.
        Ok(pb::ContainerState::Stopped) => ContainerState::Terminated {
            exit_code: None,
            reason: "stopped".into(),
        },
        Ok(pb::ContainerState::Unspecified) | Err(_) => ContainerState::Unknown,
    }
}

fn pod(p: wire::Pod) -> Pod {
    Pod {
        key: PodKey {
            namespace: p.namespace.into(),
            name: p.name.into(),
            uid: p.uid.into(),
        },
        qos_class: QosClass::parse(&p.qos_class),
        cgroup_path: p.cgroup_path.into(),
        discovered_by: DiscoveredBy::parse(&p.discovered_by),
        usage: usage(p.usage),
        containers: p
            .containers
            .into_iter()
            .map(|c| Container {
                id: c.id.into(),
                name: c.name.into(),
                image: c.image.into(),
                state: container_state(c.state),
                // Neither is in an agent's report: they come from the pod's spec and
                // status (Kubernetes API or local runtime) when joined.
                restart_count: None,
                requests: None,
                usage: usage(c.usage),
                gpus: c.gpus.into_iter().map(gpu_use).collect(),
            })
            .collect(),
        gpus: p.gpus.into_iter().map(gpu_use).collect(),
        window: PodWindow::default(),
        // Labels are not in a report; the spec join brings them.
        labels: Box::new([]),
    }
}

fn gpu_device(g: &pb::Gpu) -> GpuDevice {
    GpuDevice::new(
        GpuDeviceFigures {
            index: g.index,
            uuid: g.uuid.clone(),
            model: g.model.clone(),
            mig_enabled: g.mig_enabled,
            utilization_percent: g.utilization_percent,
            memory_used_bytes: g.memory_used_bytes,
            memory_total_bytes: g.memory_total_bytes,
            power_watts: g.power_watts,
            temperature_celsius: g.temperature_celsius,
        },
        missing(g.missing.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A report whose pods section does not decode is refused, naming the field;
    /// it is never shown as a node with no pods.
    #[test]
    fn a_malformed_pods_section_is_refused() {
        let mut report = crate::wire::tests_support::full_report();
        report.pods.clear();
        let mut bytes = report.encode_to_vec();
        // Field 10 (`pods`), length-delimited, holding bytes that are not a Pod.
        bytes.extend_from_slice(&[(10 << 3) | 2, 3, 0x0a, 0x7f, 0x01]);
        let received = ReceivedReport::decode(bytes::Bytes::from(bytes)).unwrap();
        let refused = convert(received, u64::MAX, &Limits::default()).unwrap_err();
        assert!(matches!(refused, Refused::Pods(_)), "{refused}");
        assert!(
            refused
                .to_string()
                .starts_with("field `pods` does not decode"),
            "{refused}"
        );
    }
}
