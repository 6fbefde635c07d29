//! The core's model → the wire types the APIs answer with. Proto types stop here and
//! in the API adapters; the core never sees them.

use crate::wire::ReportHead;
use aistor_core::NodeState;
use aistor_core::model::{Container, ContainerState, GpuUse, Missing, Pod, Usage};
use aistor_proto::v1 as pb;

/// Node disk throughput of a report (the core's whole-disk rule).
pub fn whole_disk_rates(report: &pb::NodeReport) -> (Option<f64>, Option<f64>) {
    crate::wire::whole_disks_rates(&report.disks)
}

pub fn node_state(state: NodeState) -> pb::NodeState {
    match state {
        NodeState::Ready => pb::NodeState::Ready,
        NodeState::Stale => pb::NodeState::Stale,
    }
}

/// A report as the APIs show it: the stored head plus the given pods.
pub fn node_report(head: &ReportHead, pods: Vec<pb::Pod>) -> pb::NodeReport {
    pb::NodeReport {
        node: head.node.clone(),
        agent_instance: head.agent_instance.clone(),
        seq: head.seq,
        wall_time_unix_nanos: head.wall_time_unix_nanos,
        monotonic_nanos: head.monotonic_nanos,
        interval_nanos: head.interval_nanos,
        collect_interval_nanos: head.collect_interval_nanos,
        usage: head.usage.clone(),
        disks: head.disks.clone(),
        pods,
        gpu: head.gpu.clone(),
        measurements: Vec::new(),
        missing: head.missing.clone(),
        directive_results: head.directive_results.clone(),
        local_runtime: head.local_runtime.clone(),
        // Kubelet pods' checkpoints are not kept by the coordinator yet.
        checkpoints: Vec::new(),
    }
}

fn missing(list: &[Missing]) -> Vec<pb::Missing> {
    list.iter()
        .map(|m| pb::Missing {
            field: m.field.to_string(),
            reason: m.reason.to_string(),
        })
        .collect()
}

/// The figures the model keeps, in the wire's shape (what it does not keep, such as
/// per-device I/O and pressure, is absent).
pub fn usage(u: &Usage) -> pb::CgroupUsage {
    let f = u.figures();
    let io = match (
        f.io_read_bytes_per_second,
        f.io_write_bytes_per_second,
        f.io_reads_per_second,
        f.io_writes_per_second,
    ) {
        (Some(r), Some(w), Some(rs), Some(ws)) => Some(pb::CgroupIo {
            rates: Some(pb::IoRates {
                read_bytes_per_second: r,
                write_bytes_per_second: w,
                reads_per_second: rs,
                writes_per_second: ws,
            }),
            ..Default::default()
        }),
        _ => None,
    };
    pb::CgroupUsage {
        cpu: Some(pb::CgroupCpu {
            usage_millicores: f.cpu_millicores,
            limit_millicores: f.cpu_limit_millicores,
            ..Default::default()
        }),
        memory: Some(pb::CgroupMemory {
            usage_bytes: f.memory_usage_bytes,
            working_set_bytes: f.memory_working_set_bytes,
            rss_bytes: f.memory_rss_bytes,
            cache_bytes: f.memory_cache_bytes,
            limit_bytes: f.memory_limit_bytes,
            ..Default::default()
        }),
        io,
        pressure: None,
        pids_current: f.pids_current,
        missing: missing(u.missing()),
        slow: None,
        missing_unchanged: false,
    }
}

fn gpu_use(g: &GpuUse) -> pb::GpuUse {
    let f = g.figures();
    pb::GpuUse {
        gpu_uuid: f.gpu_uuid,
        mig_uuid: f.mig_uuid.unwrap_or_default(),
        allocated: f.allocated,
        memory_used_bytes: f.memory_used_bytes,
        sm_utilization_percent: f.sm_utilization_percent,
        memory_utilization_percent: f.memory_utilization_percent,
    }
}

fn container_state(state: &ContainerState) -> pb::ContainerState {
    match state {
        ContainerState::Running => pb::ContainerState::Running,
        ContainerState::Paused => pb::ContainerState::Paused,
        ContainerState::Terminated { .. } => pb::ContainerState::Stopped,
        ContainerState::Waiting { .. } | ContainerState::Unknown => pb::ContainerState::Unspecified,
    }
}

fn container(c: &Container) -> pb::Container {
    pb::Container {
        id: c.id.to_string(),
        name: c.name.to_string(),
        cgroup_path: String::new(),
        pid: None,
        state: container_state(&c.state) as i32,
        image: c.image.to_string(),
        usage: Some(usage(&c.usage)),
        gpus: c.gpus.iter().map(gpu_use).collect(),
        facts_unchanged: false,
        // Not kept by the coordinator's model yet.
        terminated: None,
        restart_count: None,
    }
}

/// A pod with every figure the model keeps.
pub fn pod(p: &Pod) -> pb::Pod {
    pb::Pod {
        uid: p.uid().to_owned(),
        name: p.name().to_owned(),
        namespace: p.namespace().to_owned(),
        qos_class: p.qos_class.as_str().to_owned(),
        cgroup_path: p.cgroup_path.to_string(),
        usage: Some(usage(&p.usage)),
        containers: p.containers.iter().map(container).collect(),
        gpus: p.gpus.iter().map(gpu_use).collect(),
        discovered_by: p.discovered_by.as_str().to_owned(),
        // Not kept by the coordinator's model yet.
        frozen: false,
        facts_unchanged: false,
    }
}

/// A pod's identity only (what a node summary keeps of the pods on its GPUs, so
/// GPU views can name them).
pub fn pod_identity(p: &Pod) -> pb::Pod {
    pb::Pod {
        uid: p.uid().to_owned(),
        name: p.name().to_owned(),
        namespace: p.namespace().to_owned(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::reading;
    use crate::wire::ReceivedReport;

    fn disk(name: &str, kind: pb::DiskKind, rates: Option<(f64, f64)>) -> pb::Disk {
        pb::Disk {
            name: name.into(),
            kind: kind as i32,
            rates: rates.map(|(r, w)| pb::DiskRates {
                read_bytes_per_second: r,
                write_bytes_per_second: w,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn disk_throughput_counts_whole_disks_once() {
        let report = pb::NodeReport {
            disks: vec![
                disk("nvme0n1", pb::DiskKind::Whole, Some((100.0, 10.0))),
                disk("nvme0n1p1", pb::DiskKind::Partition, Some((100.0, 10.0))),
                disk("dm-0", pb::DiskKind::DeviceMapper, Some((100.0, 10.0))),
                disk("sda", pb::DiskKind::Whole, Some((1.0, 2.0))),
            ],
            ..Default::default()
        };
        assert_eq!(whole_disk_rates(&report), (Some(101.0), Some(12.0)));
        assert_eq!(
            crate::wire::whole_disks_rates(&[disk("sda", pb::DiskKind::Whole, None)]),
            (None, None)
        );
    }

    /// Through the model and back: every figure the model keeps arrives unchanged.
    #[test]
    fn pods_round_trip_through_the_model() {
        let report = crate::wire::tests_support::full_report();
        let received = ReceivedReport::from_report(&report);
        let converted =
            reading::convert(received, report.wall_time_unix_nanos, &Default::default()).unwrap();
        let pods = converted.reading.pods.unwrap();
        let back = pod(&pods[0]);
        let sent = &report.pods[0];
        assert_eq!(
            (&back.uid, &back.name, &back.namespace, &back.qos_class),
            (&sent.uid, &sent.name, &sent.namespace, &sent.qos_class)
        );
        assert_eq!(back.cgroup_path, sent.cgroup_path);
        assert_eq!(back.discovered_by, sent.discovered_by);
        assert_eq!(back.gpus, sent.gpus);
        let (u, s) = (back.usage.unwrap(), sent.usage.clone().unwrap());
        assert_eq!(
            u.cpu.unwrap().usage_millicores,
            s.cpu.as_ref().unwrap().usage_millicores
        );
        let (m, sm) = (u.memory.unwrap(), s.memory.unwrap());
        assert_eq!(
            (
                m.usage_bytes,
                m.working_set_bytes,
                m.rss_bytes,
                m.cache_bytes,
                m.limit_bytes
            ),
            (
                sm.usage_bytes,
                sm.working_set_bytes,
                sm.rss_bytes,
                sm.cache_bytes,
                sm.limit_bytes
            )
        );
        assert_eq!(u.io.unwrap().rates, s.io.unwrap().rates);
        assert_eq!(u.pids_current, s.pids_current);
        assert_eq!(u.missing, s.missing);
        let c = &back.containers[0];
        assert_eq!(
            (&c.id, &c.name, &c.image, c.state),
            (
                &sent.containers[0].id,
                &sent.containers[0].name,
                &sent.containers[0].image,
                sent.containers[0].state
            )
        );
        let id = pod_identity(&pods[0]);
        assert_eq!((id.uid, id.usage), (sent.uid.clone(), None));
    }
}
