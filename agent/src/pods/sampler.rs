//! Reads every pod and container cgroup once per tick and turns the readings into
//! report sections, with rates against the previous tick's readings.

use super::targets::{ContainerTarget, PodTarget};
use crate::cgroup_usage;
use crate::clock;
use crate::source::{CgroupRead, CgroupReader, CgroupSample};
use aistor_proto::v1 as pb;
use std::collections::HashMap;

/// Block device names by (major, minor), from /proc/diskstats, to label per-device I/O.
pub type DeviceNames = HashMap<(u32, u32), String>;

#[derive(Debug, Default)]
pub struct PodSampler {
    previous: HashMap<String, CgroupSample>,
}

impl PodSampler {
    /// Pods and containers whose cgroup vanished since discovery ended: they are left
    /// out, not reported as errors.
    pub fn sample(
        &mut self,
        reader: &CgroupReader,
        targets: &[PodTarget],
        devices: &DeviceNames,
    ) -> Vec<pb::Pod> {
        let mut seen = HashMap::with_capacity(self.previous.len());
        let mut pods = Vec::with_capacity(targets.len());
        for target in targets {
            let Some(usage) = self.read(reader, &target.cgroup_path, devices, &mut seen) else {
                continue;
            };
            let containers = target
                .containers
                .iter()
                .filter_map(|c| {
                    let usage = self.read(reader, &c.cgroup_path, devices, &mut seen)?;
                    Some(container(c, usage))
                })
                .collect();
            pods.push(pb::Pod {
                uid: target.uid.clone(),
                name: target.name.clone(),
                namespace: target.namespace.clone(),
                qos_class: target.qos_class.clone(),
                cgroup_path: target.cgroup_path.clone(),
                usage: Some(usage),
                containers,
                gpus: Vec::new(),
                discovered_by: target.discovered_by.to_owned(),
                // read from the freezer by the collector
                frozen: false,
            });
        }
        // Only what was read this tick is kept: ended workloads leave no state behind, and the
        // reader closes what it kept open for them.
        for path in self.previous.keys().filter(|p| !seen.contains_key(*p)) {
            reader.forget(path);
        }
        self.previous = seen;
        pods
    }

    fn read(
        &self,
        reader: &CgroupReader,
        path: &str,
        devices: &DeviceNames,
        seen: &mut HashMap<String, CgroupSample>,
    ) -> Option<pb::CgroupUsage> {
        // Each cgroup gets its own timestamp: rates use the time between *its* reads.
        let current = match reader.read(path, clock::monotonic()) {
            CgroupRead::Present(s) => s,
            CgroupRead::Vanished => return None,
        };
        let mut usage = cgroup_usage::usage(self.previous.get(path), &current);
        if let Some(io) = usage.io.as_mut() {
            for d in io.devices.iter_mut().filter(|d| d.device.is_empty()) {
                if let Some(name) = devices.get(&(d.major, d.minor)) {
                    d.device.clone_from(name);
                }
            }
        }
        seen.insert(path.to_owned(), current);
        Some(usage)
    }
}

fn container(c: &ContainerTarget, usage: pb::CgroupUsage) -> pb::Container {
    pb::Container {
        id: c.id.clone(),
        name: c.name.clone(),
        cgroup_path: c.cgroup_path.clone(),
        pid: c.pid,
        state: c.state as i32,
        image: c.image.clone(),
        usage: Some(usage),
        gpus: Vec::new(),
    }
}
