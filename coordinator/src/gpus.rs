//! GPUs as people list them: every GPU of a node's latest report, with the pods
//! on it. One rule for the REST API (`GET /api/v1/gpus`) and `aistorctl gpus`, so
//! the two never disagree about who is on a GPU.

use std::collections::HashMap;

use aistor_proto::v1 as pb;

/// One GPU of a node's report, with the pods on it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeGpu<'a> {
    /// Where the node's GPU section came from (NVML, the DCGM exporter, ...).
    pub source: pb::GpuSource,
    pub gpu: &'a pb::Gpu,
    /// `namespace/name` of every pod using the GPU (a process attributed to a pod
    /// the report lists) or holding it (an allocation), sorted, without repeats.
    pub pods: Vec<String>,
}

/// Every GPU of `report`, in the report's order; none without a GPU section.
pub fn node_gpus(report: &pb::NodeReport) -> Vec<NodeGpu<'_>> {
    let Some(section) = report.gpu.as_ref() else {
        return Vec::new();
    };
    let source = pb::GpuSource::try_from(section.source).unwrap_or(pb::GpuSource::Unspecified);
    let pod_names: HashMap<&str, String> = report
        .pods
        .iter()
        .map(|p| (p.uid.as_str(), format!("{}/{}", p.namespace, p.name)))
        .collect();
    section
        .gpus
        .iter()
        .map(|gpu| NodeGpu {
            source,
            gpu,
            pods: pods_on(gpu, &pod_names),
        })
        .collect()
}

/// The pods on `gpu`: those whose uid a process carries (named from the report's
/// pods; a uid the report does not list adds nothing) plus every allocation's pod.
fn pods_on(gpu: &pb::Gpu, pod_names: &HashMap<&str, String>) -> Vec<String> {
    let mut pods: Vec<String> = gpu
        .processes
        .iter()
        .filter_map(|p| pod_names.get(p.pod_uid.as_str()).cloned())
        .chain(
            gpu.allocations
                .iter()
                .map(|a| format!("{}/{}", a.pod_namespace, a.pod_name)),
        )
        .collect();
    pods.sort();
    pods.dedup();
    pods
}

/// The source as the REST API and `aistorctl gpus -o wide` name it.
pub fn source_name(source: pb::GpuSource) -> &'static str {
    match source {
        pb::GpuSource::Nvml => "nvml",
        pb::GpuSource::DcgmExporter => "dcgm_exporter",
        pb::GpuSource::None => "none",
        pb::GpuSource::Unspecified => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, namespace: &str, name: &str) -> pb::Pod {
        pb::Pod {
            uid: uid.into(),
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        }
    }

    fn process(pid: u32, pod_uid: &str) -> pb::GpuProcess {
        pb::GpuProcess {
            pid,
            pod_uid: pod_uid.into(),
            ..Default::default()
        }
    }

    fn allocation(namespace: &str, name: &str) -> pb::GpuAllocation {
        pb::GpuAllocation {
            pod_name: name.into(),
            pod_namespace: namespace.into(),
            ..Default::default()
        }
    }

    #[test]
    fn pods_are_process_owners_and_holders_sorted_once() {
        let report = pb::NodeReport {
            pods: vec![pod("u1", "ml", "trainer"), pod("u2", "ml", "eval")],
            gpu: Some(pb::GpuSection {
                source: pb::GpuSource::DcgmExporter as i32,
                gpus: vec![
                    pb::Gpu {
                        index: 0,
                        processes: vec![
                            process(7, "u1"),
                            // Two processes of one pod, and one that is no pod's.
                            process(8, "u1"),
                            process(9, ""),
                            // A uid the report does not list adds nothing.
                            process(10, "u-gone"),
                        ],
                        // Holding and using: listed once.
                        allocations: vec![allocation("ml", "trainer"), allocation("a", "idle")],
                        ..Default::default()
                    },
                    pb::Gpu {
                        index: 1,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let gpus = node_gpus(&report);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].source, pb::GpuSource::DcgmExporter);
        assert_eq!(gpus[0].gpu.index, 0);
        assert_eq!(gpus[0].pods, ["a/idle", "ml/trainer"]);
        assert!(gpus[1].pods.is_empty());
    }

    #[test]
    fn no_section_no_gpus() {
        assert!(node_gpus(&pb::NodeReport::default()).is_empty());
        let report = pb::NodeReport {
            gpu: Some(pb::GpuSection {
                source: 99,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(node_gpus(&report).is_empty());
    }

    #[test]
    fn sources_have_stable_names() {
        assert_eq!(source_name(pb::GpuSource::Nvml), "nvml");
        assert_eq!(source_name(pb::GpuSource::DcgmExporter), "dcgm_exporter");
        assert_eq!(source_name(pb::GpuSource::None), "none");
        assert_eq!(source_name(pb::GpuSource::Unspecified), "unknown");
    }
}
