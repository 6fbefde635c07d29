//! The handful of values a person looks at, pulled out of a `NodeStatus`
//! ([`NodeSummary`], and [`GpuSummary`] for each of its GPUs) or a `PodStatus`
//! ([`PodSummary`]). Every value a report did not carry is `None` (printed as
//! `<unknown>`), never 0: proto `optional` fields, unset messages, and the
//! identity fields the agent leaves at 0 or empty when it could not read them.

use aistor_proto::v1::{CgroupMode, Gpu, GpuSource, NodeReport, NodeState, NodeStatus, PodStatus};

use crate::convert::whole_disk_rates;
use crate::gpus::node_gpus;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeSummary<'a> {
    pub(crate) name: &'a str,
    pub(crate) state: Option<NodeState>,
    pub(crate) cpu_millicores: Option<f64>,
    pub(crate) cpu_capacity_millicores: Option<u64>,
    pub(crate) memory_working_set_bytes: Option<u64>,
    pub(crate) memory_total_bytes: Option<u64>,
    pub(crate) disk_read_bytes_per_second: Option<f64>,
    pub(crate) disk_write_bytes_per_second: Option<f64>,
    pub(crate) last_report_unix_nanos: Option<u64>,
    pub(crate) kernel_version: Option<&'a str>,
    pub(crate) cgroup_mode: Option<CgroupMode>,
    pub(crate) logical_cpus: Option<u32>,
    pub(crate) pods: Option<usize>,
    pub(crate) gpus: Option<usize>,
    pub(crate) psi_cpu_some_avg10_percent: Option<f64>,
    pub(crate) agent_version: Option<&'a str>,
    /// How the answering coordinator runs (`standalone` or `kubernetes`).
    pub(crate) coordinator_mode: Option<&'a str>,
}

impl<'a> NodeSummary<'a> {
    pub(crate) fn of(status: &'a NodeStatus) -> Self {
        let report = status.latest.as_ref();
        let identity = report.and_then(|r| r.node.as_ref());
        let usage = report.and_then(|r| r.usage.as_ref());
        let memory = usage.and_then(|u| u.memory.as_ref());
        // The coordinator's own rule (whole disks only), so the CLI and the
        // coordinator's decisions never disagree about a node's throughput.
        let (disk_read, disk_write) = report.map_or((None, None), whole_disk_rates);

        Self {
            name: node_name(status),
            state: NodeState::try_from(status.state)
                .ok()
                .filter(|s| *s != NodeState::Unspecified),
            cpu_millicores: usage
                .and_then(|u| u.cpu.as_ref())
                .and_then(|c| c.usage_millicores)
                .filter(|v| v.is_finite()),
            cpu_capacity_millicores: identity.and_then(|n| n.cpu_capacity_millicores),
            memory_working_set_bytes: memory.and_then(|m| m.working_set_bytes),
            memory_total_bytes: memory
                .map(|m| m.total_bytes)
                .filter(|v| *v > 0)
                .or_else(|| identity.and_then(|n| n.memory_total_bytes)),
            disk_read_bytes_per_second: disk_read.filter(|v| v.is_finite()),
            disk_write_bytes_per_second: disk_write.filter(|v| v.is_finite()),
            last_report_unix_nanos: Some(status.last_report_unix_nanos).filter(|v| *v > 0),
            kernel_version: identity
                .map(|n| n.kernel_version.as_str())
                .filter(|v| !v.is_empty()),
            cgroup_mode: identity
                .and_then(|n| CgroupMode::try_from(n.cgroup_mode).ok())
                .filter(|m| *m != CgroupMode::Unspecified),
            logical_cpus: identity.map(|n| n.logical_cpus).filter(|v| *v > 0),
            // The coordinator counts the pods of a summary (which does not carry
            // them); a status with its pods (GetNode, an older coordinator) is counted here.
            pods: status
                .pod_count
                .map(|n| n as usize)
                .or_else(|| report.and_then(pod_count)),
            gpus: report.and_then(gpu_count),
            psi_cpu_some_avg10_percent: usage
                .and_then(|u| u.pressure.as_ref())
                .and_then(|p| p.cpu.as_ref())
                .and_then(|c| c.some.as_ref())
                .map(|s| s.avg10_percent)
                .filter(|v| v.is_finite()),
            agent_version: identity
                .map(|n| n.agent_version.as_str())
                .filter(|v| !v.is_empty()),
            coordinator_mode: Some(status.coordinator_mode.as_str()).filter(|v| !v.is_empty()),
        }
    }

    pub(crate) fn age_nanos(&self, now_unix_nanos: u64) -> Option<u64> {
        // A report stamped after `now` (clock skew between hosts) is 0s old.
        self.last_report_unix_nanos
            .map(|t| now_unix_nanos.saturating_sub(t))
    }
}

/// The node's name: the coordinator's, else the one the agent reported ("" if neither).
pub(crate) fn node_name(status: &NodeStatus) -> &str {
    if status.name.is_empty() {
        status
            .latest
            .as_ref()
            .and_then(|r| r.node.as_ref())
            .map_or("", |n| n.name.as_str())
    } else {
        status.name.as_str()
    }
}

/// Pods found on the node; unknown when the agent says it could not look.
fn pod_count(report: &NodeReport) -> Option<usize> {
    let could_not_look = report.missing.iter().any(|m| m.field == "pods");
    if report.pods.is_empty() && could_not_look {
        None
    } else {
        Some(report.pods.len())
    }
}

/// GPUs found on the node; unknown without a GPU section, or when the section has
/// no GPUs and says why (e.g. NVML missing), since that is "could not tell", not 0.
fn gpu_count(report: &NodeReport) -> Option<usize> {
    let gpu = report.gpu.as_ref()?;
    if gpu.gpus.is_empty() && !gpu.missing.is_empty() {
        None
    } else {
        Some(gpu.gpus.len())
    }
}

/// The values of one GPU that `aistorctl gpus` shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GpuSummary<'a> {
    pub(crate) node: Option<&'a str>,
    pub(crate) index: u32,
    pub(crate) uuid: Option<&'a str>,
    pub(crate) model: Option<&'a str>,
    /// Where the node's GPU section came from; unknown when unspecified.
    pub(crate) source: Option<GpuSource>,
    pub(crate) utilization_percent: Option<f64>,
    pub(crate) memory_used_bytes: Option<u64>,
    pub(crate) memory_total_bytes: Option<u64>,
    pub(crate) power_watts: Option<f64>,
    pub(crate) power_limit_watts: Option<f64>,
    pub(crate) temperature_celsius: Option<f64>,
    pub(crate) sm_clock_mhz: Option<u32>,
    pub(crate) sm_active_percent: Option<f64>,
    pub(crate) tensor_active_percent: Option<f64>,
    /// Processes running on the GPU; unknown when the agent could not list them.
    pub(crate) processes: Option<usize>,
    /// `namespace/name` of the pods on the GPU, by the coordinator's rule
    /// ([`crate::gpus::node_gpus`]). Unknown, rather than none, when none were
    /// found but the agent could not list the GPU's processes or allocations.
    pub(crate) pods: Option<Vec<String>>,
}

impl<'a> GpuSummary<'a> {
    /// Every GPU of the node's latest report, in the report's order.
    pub(crate) fn of_node(status: &'a NodeStatus) -> Vec<Self> {
        let Some(report) = status.latest.as_ref() else {
            return Vec::new();
        };
        let node = Some(node_name(status)).filter(|n| !n.is_empty());
        node_gpus(report)
            .into_iter()
            .map(|g| {
                let gpu = g.gpu;
                let lacks = |field: &str| gpu.missing.iter().any(|m| m.field == field);
                let processes_unread = lacks("gpu") || lacks("processes");
                let holders_unread = processes_unread || lacks("allocations");
                let gpm = gpu.gpm.as_ref();
                Self {
                    node,
                    index: gpu.index,
                    uuid: Some(gpu.uuid.as_str()).filter(|v| !v.is_empty()),
                    model: Some(gpu.model.as_str()).filter(|v| !v.is_empty()),
                    source: Some(g.source).filter(|s| *s != GpuSource::Unspecified),
                    utilization_percent: finite(gpu.utilization_percent),
                    memory_used_bytes: gpu.memory_used_bytes,
                    memory_total_bytes: gpu.memory_total_bytes.filter(|v| *v > 0),
                    power_watts: finite(gpu.power_watts),
                    power_limit_watts: finite(gpu.power_limit_watts),
                    temperature_celsius: finite(gpu.temperature_celsius),
                    sm_clock_mhz: gpu.sm_clock_mhz,
                    sm_active_percent: finite(gpm.and_then(|m| m.sm_active_percent)),
                    tensor_active_percent: finite(gpm.and_then(|m| m.tensor_active_percent)),
                    processes: process_count(gpu, processes_unread),
                    pods: Some(g.pods).filter(|p| !p.is_empty() || !holders_unread),
                }
            })
            .collect()
    }
}

fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

fn process_count(gpu: &Gpu, unread: bool) -> Option<usize> {
    if gpu.processes.is_empty() && unread {
        None
    } else {
        Some(gpu.processes.len())
    }
}

/// The values of one pod (or workload cgroup) that `aistorctl pods` shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodSummary<'a> {
    pub(crate) namespace: Option<&'a str>,
    /// The pod's name; its uid when only the cgroup layout found it (no name);
    /// the cgroup path of a workload cgroup without a name.
    pub(crate) name: Option<&'a str>,
    pub(crate) node: Option<&'a str>,
    pub(crate) node_state: Option<NodeState>,
    pub(crate) cpu_millicores: Option<f64>,
    pub(crate) memory_working_set_bytes: Option<u64>,
    pub(crate) memory_rss_bytes: Option<u64>,
    pub(crate) io_read_bytes_per_second: Option<f64>,
    pub(crate) io_write_bytes_per_second: Option<f64>,
    /// Reads plus writes per second.
    pub(crate) iops: Option<f64>,
    pub(crate) containers: usize,
    pub(crate) qos_class: Option<&'a str>,
    pub(crate) uid: Option<&'a str>,
    pub(crate) discovered_by: Option<&'a str>,
}

impl<'a> PodSummary<'a> {
    pub(crate) fn of(status: &'a PodStatus) -> Self {
        let pod = status.pod.as_ref();
        let usage = pod.and_then(|p| p.usage.as_ref());
        let memory = usage.and_then(|u| u.memory.as_ref());
        let rates = usage
            .and_then(|u| u.io.as_ref())
            .and_then(|io| io.rates.as_ref());
        let text = |field: fn(&'a aistor_proto::v1::Pod) -> &'a str| {
            pod.map(field).filter(|v| !v.is_empty())
        };
        Self {
            namespace: text(|p| &p.namespace),
            name: text(|p| &p.name)
                .or_else(|| text(|p| &p.uid))
                .or_else(|| text(|p| &p.cgroup_path)),
            node: Some(status.node.as_str()).filter(|v| !v.is_empty()),
            node_state: NodeState::try_from(status.node_state)
                .ok()
                .filter(|s| *s != NodeState::Unspecified),
            cpu_millicores: usage
                .and_then(|u| u.cpu.as_ref())
                .and_then(|c| c.usage_millicores)
                .filter(|v| v.is_finite()),
            memory_working_set_bytes: memory.and_then(|m| m.working_set_bytes),
            memory_rss_bytes: memory.and_then(|m| m.rss_bytes),
            io_read_bytes_per_second: rates
                .map(|r| r.read_bytes_per_second)
                .filter(|v| v.is_finite()),
            io_write_bytes_per_second: rates
                .map(|r| r.write_bytes_per_second)
                .filter(|v| v.is_finite()),
            iops: rates
                .map(|r| r.reads_per_second + r.writes_per_second)
                .filter(|v| v.is_finite()),
            containers: pod.map_or(0, |p| p.containers.len()),
            qos_class: text(|p| &p.qos_class),
            uid: text(|p| &p.uid),
            discovered_by: text(|p| &p.discovered_by),
        }
    }

    /// Read plus write throughput, what `--sort io` orders by.
    pub(crate) fn io_bytes_per_second(&self) -> Option<f64> {
        self.io_read_bytes_per_second
            .zip(self.io_write_bytes_per_second)
            .map(|(read, write)| read + write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aistor_proto::v1::{
        CgroupCpu, CgroupIo, CgroupMemory, CgroupUsage, Container, Disk, DiskKind, DiskRates,
        GpmMetrics, GpuAllocation, GpuProcess, GpuSection, IoRates, Missing, NodeCpu, NodeIdentity,
        NodeMemory, NodeUsage, Pod,
    };

    fn disk(name: &str, kind: DiskKind, rates: Option<(f64, f64)>) -> Disk {
        Disk {
            name: name.to_owned(),
            kind: kind as i32,
            rates: rates.map(|(r, w)| DiskRates {
                read_bytes_per_second: r,
                write_bytes_per_second: w,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn status(report: NodeReport) -> NodeStatus {
        NodeStatus {
            name: "n1".to_owned(),
            state: NodeState::Ready as i32,
            last_report_unix_nanos: 5,
            latest: Some(report),
            ..Default::default()
        }
    }

    #[test]
    fn disk_columns_follow_the_coordinators_whole_disk_rule() {
        // The rule itself is `convert::whole_disk_rates`'s (tested there); this
        // checks the columns are fed from it, and that a non-finite sum is unknown.
        let report = NodeReport {
            disks: vec![
                disk("sda", DiskKind::Whole, Some((1000.0, 10.0))),
                disk("sda1", DiskKind::Partition, Some((900.0, 9.0))),
                disk("dm-0", DiskKind::DeviceMapper, Some((800.0, 8.0))),
                disk("md0", DiskKind::Md, Some((700.0, 7.0))),
                disk("nvme0n1", DiskKind::Whole, Some((500.0, 5.0))),
                disk("sdb", DiskKind::Whole, None),
            ],
            ..Default::default()
        };
        let st = status(report);
        let s = NodeSummary::of(&st);
        assert_eq!(s.disk_read_bytes_per_second, Some(1500.0));
        assert_eq!(s.disk_write_bytes_per_second, Some(15.0));

        let report = NodeReport {
            disks: vec![
                disk("sda", DiskKind::Whole, None),
                // A partition with rates does not stand in for its disk.
                disk("sda1", DiskKind::Partition, Some((900.0, 9.0))),
            ],
            ..Default::default()
        };
        let st = status(report);
        let s = NodeSummary::of(&st);
        assert_eq!(s.disk_read_bytes_per_second, None);
        assert_eq!(s.disk_write_bytes_per_second, None);

        let report = NodeReport {
            disks: vec![disk("sda", DiskKind::Whole, Some((f64::NAN, 5.0)))],
            ..Default::default()
        };
        let st = status(report);
        let s = NodeSummary::of(&st);
        assert_eq!(s.disk_read_bytes_per_second, None);
        assert_eq!(s.disk_write_bytes_per_second, Some(5.0));
    }

    #[test]
    fn an_empty_status_is_unknown_everywhere() {
        let st = NodeStatus {
            name: "bare".to_owned(),
            ..Default::default()
        };
        let s = NodeSummary::of(&st);
        assert_eq!(
            s,
            NodeSummary {
                name: "bare",
                state: None,
                cpu_millicores: None,
                cpu_capacity_millicores: None,
                memory_working_set_bytes: None,
                memory_total_bytes: None,
                disk_read_bytes_per_second: None,
                disk_write_bytes_per_second: None,
                last_report_unix_nanos: None,
                kernel_version: None,
                cgroup_mode: None,
                logical_cpus: None,
                pods: None,
                gpus: None,
                psi_cpu_some_avg10_percent: None,
                agent_version: None,
                coordinator_mode: None,
            }
        );
    }

    #[test]
    fn values_come_from_the_documented_fields() {
        let report = NodeReport {
            node: Some(NodeIdentity {
                name: "from-identity".to_owned(),
                cpu_capacity_millicores: Some(8000),
                memory_total_bytes: Some(999),
                logical_cpus: 8,
                cgroup_mode: CgroupMode::Hybrid as i32,
                kernel_version: "6.8.0".to_owned(),
                agent_version: "0.1.0".to_owned(),
                ..Default::default()
            }),
            usage: Some(NodeUsage {
                cpu: Some(NodeCpu {
                    usage_millicores: Some(1500.0),
                    ..Default::default()
                }),
                memory: Some(NodeMemory {
                    total_bytes: 16 << 30,
                    working_set_bytes: Some(4 << 30),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            pods: vec![Pod::default(), Pod::default()],
            gpu: Some(GpuSection::default()),
            ..Default::default()
        };
        let mut st = status(report);
        st.name.clear();
        let s = NodeSummary::of(&st);
        assert_eq!(s.name, "from-identity");
        assert_eq!(s.state, Some(NodeState::Ready));
        assert_eq!(s.cpu_millicores, Some(1500.0));
        assert_eq!(s.cpu_capacity_millicores, Some(8000));
        assert_eq!(s.memory_working_set_bytes, Some(4 << 30));
        // meminfo's total wins over the identity's.
        assert_eq!(s.memory_total_bytes, Some(16 << 30));
        assert_eq!(s.cgroup_mode, Some(CgroupMode::Hybrid));
        assert_eq!(s.logical_cpus, Some(8));
        assert_eq!(s.pods, Some(2));
        assert_eq!(s.gpus, Some(0));
        assert_eq!(s.psi_cpu_some_avg10_percent, None);
        assert_eq!(s.kernel_version, Some("6.8.0"));
        assert_eq!(s.agent_version, Some("0.1.0"));
        assert_eq!(
            s.age_nanos(3),
            Some(0),
            "skewed clocks read as 0s, not a wrap"
        );
        assert_eq!(s.age_nanos(2_000_000_005), Some(2_000_000_000));
    }

    #[test]
    fn counts_are_unknown_when_the_agent_could_not_look() {
        let report = NodeReport {
            missing: vec![Missing {
                field: "pods".to_owned(),
                reason: "no container runtime configured".to_owned(),
            }],
            gpu: Some(GpuSection {
                missing: vec![Missing {
                    field: "gpus".to_owned(),
                    reason: "NVML library not found".to_owned(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let st = status(report);
        let s = NodeSummary::of(&st);
        assert_eq!(s.pods, None);
        assert_eq!(s.gpus, None);
    }

    fn gpu_status(name: &str, identity_name: &str, pods: Vec<Pod>, gpus: Vec<Gpu>) -> NodeStatus {
        NodeStatus {
            name: name.to_owned(),
            latest: Some(NodeReport {
                node: Some(NodeIdentity {
                    name: identity_name.to_owned(),
                    ..Default::default()
                }),
                pods,
                gpu: Some(GpuSection {
                    source: GpuSource::Nvml as i32,
                    gpus,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lacking(fields: &[&str]) -> Vec<Missing> {
        fields
            .iter()
            .map(|f| Missing {
                field: (*f).to_owned(),
                reason: "not read".to_owned(),
            })
            .collect()
    }

    #[test]
    fn gpu_values_come_from_the_documented_fields() {
        let gpu = Gpu {
            index: 3,
            uuid: "GPU-3".to_owned(),
            model: "NVIDIA A100".to_owned(),
            memory_used_bytes: Some(0),
            memory_total_bytes: Some(40 << 30),
            utilization_percent: Some(55.0),
            power_watts: Some(250.0),
            power_limit_watts: Some(400.0),
            temperature_celsius: Some(f64::NAN),
            sm_clock_mhz: Some(1410),
            gpm: Some(GpmMetrics {
                sm_active_percent: Some(40.0),
                tensor_active_percent: None,
                ..Default::default()
            }),
            processes: vec![GpuProcess {
                pid: 1,
                pod_uid: "u1".to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let trainer = Pod {
            uid: "u1".to_owned(),
            name: "trainer".to_owned(),
            namespace: "ml".to_owned(),
            ..Default::default()
        };
        let st = gpu_status("", "from-identity", vec![trainer], vec![gpu]);
        assert_eq!(
            GpuSummary::of_node(&st),
            [GpuSummary {
                node: Some("from-identity"),
                index: 3,
                uuid: Some("GPU-3"),
                model: Some("NVIDIA A100"),
                source: Some(GpuSource::Nvml),
                utilization_percent: Some(55.0),
                memory_used_bytes: Some(0),
                memory_total_bytes: Some(40 << 30),
                power_watts: Some(250.0),
                power_limit_watts: Some(400.0),
                temperature_celsius: None,
                sm_clock_mhz: Some(1410),
                sm_active_percent: Some(40.0),
                tensor_active_percent: None,
                processes: Some(1),
                pods: Some(vec!["ml/trainer".to_owned()]),
            }]
        );
    }

    #[test]
    fn gpu_pods_and_processes_are_unknown_only_when_unread() {
        let gpu = |missing: &[&str]| Gpu {
            missing: lacking(missing),
            ..Default::default()
        };
        let st = gpu_status(
            "n1",
            "",
            vec![],
            vec![
                gpu(&[]),
                gpu(&["processes"]),
                gpu(&["allocations"]),
                gpu(&["gpu"]),
                Gpu {
                    allocations: vec![GpuAllocation {
                        pod_name: "p".to_owned(),
                        pod_namespace: "ns".to_owned(),
                        ..Default::default()
                    }],
                    ..gpu(&["processes"])
                },
            ],
        );
        let got: Vec<_> = GpuSummary::of_node(&st)
            .into_iter()
            .map(|g| (g.processes, g.pods))
            .collect();
        assert_eq!(
            got,
            [
                // Everything read, nothing there: none, not unknown.
                (Some(0), Some(vec![])),
                (None, None),
                // Processes read (none), holders not: who holds it is unknown.
                (Some(0), None),
                (None, None),
                // A holder is known even when processes were not read.
                (None, Some(vec!["ns/p".to_owned()])),
            ]
        );
        assert_eq!(GpuSummary::of_node(&st)[0].uuid, None, "empty is unknown");
        assert_eq!(GpuSummary::of_node(&st)[0].node, Some("n1"));
        assert!(GpuSummary::of_node(&NodeStatus::default()).is_empty());
    }

    fn pod_status(pod: Pod) -> PodStatus {
        PodStatus {
            node: "n1".to_owned(),
            node_state: NodeState::Stale as i32,
            report_wall_time_unix_nanos: 7,
            pod: Some(pod),
        }
    }

    #[test]
    fn pod_values_come_from_the_documented_fields() {
        let st = pod_status(Pod {
            uid: "uid-1".to_owned(),
            name: "web-0".to_owned(),
            namespace: "shop".to_owned(),
            qos_class: "burstable".to_owned(),
            cgroup_path: "kubepods.slice/pod".to_owned(),
            discovered_by: "containerd".to_owned(),
            usage: Some(CgroupUsage {
                cpu: Some(CgroupCpu {
                    usage_millicores: Some(250.0),
                    ..Default::default()
                }),
                memory: Some(CgroupMemory {
                    working_set_bytes: Some(300 << 20),
                    rss_bytes: Some(200 << 20),
                    usage_bytes: Some(999 << 20),
                    ..Default::default()
                }),
                io: Some(CgroupIo {
                    rates: Some(IoRates {
                        read_bytes_per_second: 4000.0,
                        write_bytes_per_second: 1000.0,
                        reads_per_second: 7.0,
                        writes_per_second: 3.0,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers: vec![Container::default(), Container::default()],
            ..Default::default()
        });
        let s = PodSummary::of(&st);
        assert_eq!(
            s,
            PodSummary {
                namespace: Some("shop"),
                name: Some("web-0"),
                node: Some("n1"),
                node_state: Some(NodeState::Stale),
                cpu_millicores: Some(250.0),
                memory_working_set_bytes: Some(300 << 20),
                memory_rss_bytes: Some(200 << 20),
                io_read_bytes_per_second: Some(4000.0),
                io_write_bytes_per_second: Some(1000.0),
                iops: Some(10.0),
                containers: 2,
                qos_class: Some("burstable"),
                uid: Some("uid-1"),
                discovered_by: Some("containerd"),
            }
        );
        assert_eq!(s.io_bytes_per_second(), Some(5000.0));
    }

    #[test]
    fn a_pod_without_a_name_is_named_by_uid_then_cgroup_path() {
        let by_uid = pod_status(Pod {
            uid: "0a1b".to_owned(),
            cgroup_path: "kubepods/burstable/pod0a1b".to_owned(),
            ..Default::default()
        });
        assert_eq!(PodSummary::of(&by_uid).name, Some("0a1b"));
        let by_path = pod_status(Pod {
            cgroup_path: "aistor.slice/batch.service".to_owned(),
            discovered_by: "workload-cgroup".to_owned(),
            ..Default::default()
        });
        let s = PodSummary::of(&by_path);
        assert_eq!(s.name, Some("aistor.slice/batch.service"));
        assert_eq!(s.uid, None, "no uid is unknown, not empty");
        assert_eq!(s.namespace, None);
    }

    #[test]
    fn unmeasured_pod_values_are_unknown_not_zero() {
        let st = pod_status(Pod {
            name: "p".to_owned(),
            usage: Some(CgroupUsage {
                cpu: Some(CgroupCpu {
                    usage_millicores: Some(f64::INFINITY),
                    ..Default::default()
                }),
                memory: Some(CgroupMemory::default()),
                // Counters but no rates yet: the first reading.
                io: Some(CgroupIo::default()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let s = PodSummary::of(&st);
        assert_eq!(s.cpu_millicores, None);
        assert_eq!(s.memory_working_set_bytes, None);
        assert_eq!(s.memory_rss_bytes, None);
        assert_eq!(s.io_read_bytes_per_second, None);
        assert_eq!(s.io_write_bytes_per_second, None);
        assert_eq!(s.iops, None);
        assert_eq!(s.io_bytes_per_second(), None);

        let empty = PodStatus::default();
        let s = PodSummary::of(&empty);
        assert_eq!(
            s,
            PodSummary {
                namespace: None,
                name: None,
                node: None,
                node_state: None,
                cpu_millicores: None,
                memory_working_set_bytes: None,
                memory_rss_bytes: None,
                io_read_bytes_per_second: None,
                io_write_bytes_per_second: None,
                iops: None,
                containers: 0,
                qos_class: None,
                uid: None,
                discovered_by: None,
            }
        );
    }
}
