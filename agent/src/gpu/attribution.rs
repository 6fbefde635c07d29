//! Who uses which GPU (pure): GPU processes to containers, and per-container and
//! per-pod sums, the same for every GPU source.
//!
//! - Each `GpuProcess` whose host pid maps to a container gets that container's id and
//!   its pod's uid; a pid that maps to none keeps empty ids (it runs outside Kubernetes,
//!   or exited): it stays in `processes`, which is the information.
//! - `Container.gpus` and `Pod.gpus` get one `GpuUse` per GPU (and MIG instance) used:
//!   memory and utilisation summed over the processes. Utilisation samples exist only for
//!   processes that were busy, so where the device's per-process utilisation was read, a
//!   group with no sample is 0 % rather than unknown; where it was not read (MIG mode,
//!   an error) it is absent. Memory is absent when no process of the group reported it.
//! - A GPU allocated to a container (`Gpu.allocations`, from kubelet pod-resources, which
//!   names pods by namespace and name: matched by uid when the allocation has one) marks
//!   the use `allocated`; an allocated GPU without processes shows up with measured zero
//!   use when the source reported the device (and listed its processes), with absent
//!   values when it could not list them. An allocation whose device (or MIG instance) the
//!   source did not report adds nothing.

use aistor_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap};

/// What a device's `missing` says about its per-process readings.
#[derive(Debug, Clone, Copy)]
struct Measured {
    /// The running-process list was read.
    processes: bool,
    sm: bool,
    memory_utilization: bool,
}

impl Measured {
    fn of(gpu: &pb::Gpu) -> Self {
        let lacks = |field: &str| gpu.missing.iter().any(|m| m.field == field);
        let processes = !lacks("gpu") && !lacks("processes");
        Self {
            processes,
            sm: processes && !lacks("processes.sm_utilization_percent"),
            memory_utilization: processes && !lacks("processes.memory_utilization_percent"),
        }
    }
}

/// Sums for one (pod, container, GPU, MIG instance).
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    allocated: bool,
    memory: Option<u64>,
    sm: Option<f64>,
    memory_utilization: Option<f64>,
}

impl Sum {
    fn add(&mut self, other: &Sum) {
        self.allocated |= other.allocated;
        self.memory = add_u64(self.memory, other.memory);
        self.sm = add_f64(self.sm, other.sm);
        self.memory_utilization = add_f64(self.memory_utilization, other.memory_utilization);
    }

    /// Fills what was measured but not seen with zero (see the module docs).
    fn settle(&mut self, measured: Measured, has_processes: bool) {
        if !has_processes && measured.processes {
            self.memory.get_or_insert(0);
        }
        if measured.sm {
            self.sm.get_or_insert(0.0);
        }
        if measured.memory_utilization {
            self.memory_utilization.get_or_insert(0.0);
        }
    }

    fn to_use(self, gpu_uuid: &str, mig_uuid: &str) -> pb::GpuUse {
        pb::GpuUse {
            gpu_uuid: gpu_uuid.to_owned(),
            mig_uuid: mig_uuid.to_owned(),
            allocated: self.allocated,
            memory_used_bytes: self.memory,
            sm_utilization_percent: self.sm,
            memory_utilization_percent: self.memory_utilization,
        }
    }
}

fn add_u64(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

fn add_f64(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// The pod an allocation names: by uid where the allocation has one, else by namespace
/// and name (kubelet pod-resources names pods only so).
fn holds(pod: &pb::Pod, allocation: &pb::GpuAllocation) -> bool {
    if allocation.pod_uid.is_empty() {
        !allocation.pod_name.is_empty()
            && pod.name == allocation.pod_name
            && pod.namespace == allocation.pod_namespace
    } else {
        pod.uid == allocation.pod_uid
    }
}

/// (pod uid, container id or "" for the pod only, GPU uuid, MIG uuid).
type Key = (String, String, String, String);

/// Fills `GpuProcess.container_id/pod_uid` from `container_of(host pid)` and replaces
/// `Container.gpus` / `Pod.gpus` with the sums. See the module docs.
pub fn attribute(
    section: &mut pb::GpuSection,
    pods: &mut [pb::Pod],
    container_of: &dyn Fn(u32) -> Option<(String, String)>,
) {
    let mut owners: HashMap<u32, Option<(String, String)>> = HashMap::new();
    // BTreeMap: stable order in the output.
    let mut sums: BTreeMap<Key, (Sum, Measured, bool)> = BTreeMap::new();
    for gpu in &mut section.gpus {
        let measured = Measured::of(gpu);
        for process in &mut gpu.processes {
            let owner = owners
                .entry(process.pid)
                .or_insert_with(|| container_of(process.pid));
            let Some((pod_uid, container_id)) = owner else {
                continue;
            };
            process.pod_uid.clone_from(pod_uid);
            process.container_id.clone_from(container_id);
            let key = (
                pod_uid.clone(),
                container_id.clone(),
                gpu.uuid.clone(),
                process.mig_uuid.clone(),
            );
            let entry = sums.entry(key).or_insert((Sum::default(), measured, true));
            entry.0.add(&Sum {
                allocated: false,
                memory: process.memory_used_bytes,
                sm: process.sm_utilization_percent,
                memory_utilization: process.memory_utilization_percent,
            });
        }
        for allocation in &gpu.allocations {
            let reported = allocation.mig_uuid.is_empty()
                || gpu
                    .mig_instances
                    .iter()
                    .any(|m| m.uuid == allocation.mig_uuid);
            if !reported || gpu.uuid.is_empty() {
                continue;
            }
            let Some(pod) = pods.iter().find(|p| holds(p, allocation)) else {
                continue;
            };
            let container_id = pod
                .containers
                .iter()
                .find(|c| {
                    !allocation.container_name.is_empty() && c.name == allocation.container_name
                })
                .map(|c| c.id.clone())
                .unwrap_or_default();
            let key = (
                pod.uid.clone(),
                container_id,
                gpu.uuid.clone(),
                allocation.mig_uuid.clone(),
            );
            let entry = sums.entry(key).or_insert((Sum::default(), measured, false));
            entry.0.allocated = true;
        }
    }

    for pod in pods.iter_mut() {
        pod.gpus.clear();
        for container in &mut pod.containers {
            container.gpus.clear();
        }
    }
    let pod_index: HashMap<String, usize> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| (p.uid.clone(), i))
        .collect();
    let mut pod_sums: BTreeMap<(usize, String, String), Sum> = BTreeMap::new();
    for ((pod_uid, container_id, gpu_uuid, mig_uuid), (mut sum, measured, has_processes)) in sums {
        sum.settle(measured, has_processes);
        let Some(&index) = pod_index.get(&pod_uid) else {
            continue;
        };
        if !container_id.is_empty()
            && let Some(container) = pods[index]
                .containers
                .iter_mut()
                .find(|c| c.id == container_id)
        {
            container.gpus.push(sum.to_use(&gpu_uuid, &mig_uuid));
        }
        pod_sums
            .entry((index, gpu_uuid, mig_uuid))
            .or_default()
            .add(&sum);
    }
    for ((index, gpu_uuid, mig_uuid), sum) in pod_sums {
        if let Some(pod) = pods.get_mut(index) {
            pod.gpus.push(sum.to_use(&gpu_uuid, &mig_uuid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(uuid: &str, processes: Vec<pb::GpuProcess>) -> pb::Gpu {
        pb::Gpu {
            uuid: uuid.into(),
            processes,
            ..Default::default()
        }
    }

    fn process(pid: u32, memory: u64, sm: Option<f64>) -> pb::GpuProcess {
        pb::GpuProcess {
            pid,
            memory_used_bytes: Some(memory),
            sm_utilization_percent: sm,
            memory_utilization_percent: sm.map(|s| s / 2.0),
            ..Default::default()
        }
    }

    fn pod(uid: &str, containers: &[(&str, &str)]) -> pb::Pod {
        pb::Pod {
            uid: uid.into(),
            containers: containers
                .iter()
                .map(|(id, name)| pb::Container {
                    id: (*id).into(),
                    name: (*name).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn owners(pid: u32) -> Option<(String, String)> {
        match pid {
            10 | 11 => Some(("pod-a".into(), "c1".into())),
            20 => Some(("pod-a".into(), "c2".into())),
            _ => None,
        }
    }

    #[test]
    fn sums_per_container_and_pod_and_leaves_strangers_unattributed() {
        let mut section = pb::GpuSection {
            gpus: vec![gpu(
                "GPU-0",
                vec![
                    process(10, 100, Some(30.0)),
                    process(11, 50, None),
                    process(20, 7, Some(5.0)),
                    process(99, 1, Some(1.0)),
                ],
            )],
            ..Default::default()
        };
        let mut pods = vec![pod("pod-a", &[("c1", "train"), ("c2", "sidecar")])];
        attribute(&mut section, &mut pods, &owners);
        let p = &section.gpus[0].processes;
        assert_eq!(
            (p[0].pod_uid.as_str(), p[0].container_id.as_str()),
            ("pod-a", "c1")
        );
        assert_eq!(p[2].container_id, "c2");
        assert!(p[3].pod_uid.is_empty() && p[3].container_id.is_empty());
        let c1 = &pods[0].containers[0].gpus;
        assert_eq!(c1.len(), 1);
        assert_eq!(c1[0].memory_used_bytes, Some(150));
        assert_eq!(c1[0].sm_utilization_percent, Some(30.0));
        assert!(!c1[0].allocated);
        let pod_use = &pods[0].gpus;
        assert_eq!(pod_use.len(), 1);
        assert_eq!(pod_use[0].memory_used_bytes, Some(157));
        assert_eq!(pod_use[0].sm_utilization_percent, Some(35.0));
        assert_eq!(pod_use[0].memory_utilization_percent, Some(17.5));
    }

    #[test]
    fn allocated_idle_gpu_is_zero_when_listed_and_absent_when_not_reported() {
        let mut listed = gpu("GPU-1", vec![]);
        listed.allocations.push(pb::GpuAllocation {
            pod_uid: "pod-a".into(),
            container_name: "train".into(),
            ..Default::default()
        });
        let mut unlisted = gpu("GPU-2", vec![]);
        unlisted.missing.push(pb::Missing {
            field: "processes".into(),
            reason: "nvmlDeviceGetComputeRunningProcesses_v3: Unknown".into(),
        });
        unlisted.allocations = listed.allocations.clone();
        let mut mig = gpu("GPU-3", vec![]);
        mig.allocations.push(pb::GpuAllocation {
            pod_uid: "pod-a".into(),
            container_name: "train".into(),
            mig_uuid: "MIG-gone".into(),
            ..Default::default()
        });
        let mut section = pb::GpuSection {
            gpus: vec![listed, unlisted, mig],
            ..Default::default()
        };
        let mut pods = vec![pod("pod-a", &[("c1", "train")])];
        attribute(&mut section, &mut pods, &|_| None);
        let uses = &pods[0].containers[0].gpus;
        assert_eq!(uses.len(), 2, "{uses:?}");
        assert_eq!(uses[0].gpu_uuid, "GPU-1");
        assert!(uses[0].allocated);
        assert_eq!(uses[0].memory_used_bytes, Some(0));
        assert_eq!(uses[0].sm_utilization_percent, Some(0.0));
        assert_eq!(uses[1].gpu_uuid, "GPU-2");
        assert!(uses[1].allocated);
        assert_eq!(uses[1].memory_used_bytes, None);
        assert_eq!(uses[1].sm_utilization_percent, None);
        assert_eq!(pods[0].gpus.len(), 2);
    }

    #[test]
    fn utilisation_not_read_stays_absent() {
        let mut g = gpu("GPU-0", vec![process(10, 5, None)]);
        g.missing.push(pb::Missing {
            field: "processes.sm_utilization_percent".into(),
            reason: "not reported per process in MIG mode (memory only)".into(),
        });
        let mut section = pb::GpuSection {
            gpus: vec![g],
            ..Default::default()
        };
        let mut pods = vec![pod("pod-a", &[("c1", "train")])];
        attribute(&mut section, &mut pods, &owners);
        let u = &pods[0].containers[0].gpus[0];
        assert_eq!(u.memory_used_bytes, Some(5));
        assert_eq!(u.sm_utilization_percent, None);
        // memory utilisation was read (no reason listed) and nobody was busy: 0.
        assert_eq!(u.memory_utilization_percent, Some(0.0));
    }
}
