//! The parts of an encoded `NodeReport` that ingest reads, as lean prost messages
//! with the same field numbers as `aistor.v1`: prost skips every field a message
//! does not declare without building it, so per-device I/O, pressure, counters and
//! cgroup paths of containers cost nothing to decode.

use aistor_proto::v1 as pb;
use bytes::Bytes;
use prost::Message;

/// The node-level part of a report: every field of `aistor.v1.NodeReport` except
/// the pods (10), the bulk of a report.
#[derive(Clone, PartialEq, Message)]
pub struct ReportHead {
    #[prost(message, optional, tag = "1")]
    pub node: Option<pb::NodeIdentity>,
    #[prost(string, tag = "2")]
    pub agent_instance: String,
    #[prost(uint64, tag = "3")]
    pub seq: u64,
    #[prost(uint64, tag = "4")]
    pub wall_time_unix_nanos: u64,
    #[prost(uint64, tag = "5")]
    pub monotonic_nanos: u64,
    #[prost(uint64, optional, tag = "6")]
    pub interval_nanos: Option<u64>,
    #[prost(uint64, tag = "7")]
    pub collect_interval_nanos: u64,
    #[prost(message, optional, tag = "8")]
    pub usage: Option<pb::NodeUsage>,
    #[prost(message, repeated, tag = "9")]
    pub disks: Vec<pb::Disk>,
    #[prost(message, optional, tag = "11")]
    pub gpu: Option<pb::GpuSection>,
    #[prost(message, repeated, tag = "12")]
    pub measurements: Vec<pb::MeasurementResult>,
    #[prost(message, repeated, tag = "13")]
    pub directive_results: Vec<pb::DirectiveResult>,
    #[prost(message, optional, tag = "14")]
    pub local_runtime: Option<pb::LocalRuntimeStatus>,
    #[prost(message, repeated, tag = "15")]
    pub missing: Vec<pb::Missing>,
    /// Kubelet pods' checkpoints this agent staged (the last 64), with their progress.
    #[prost(message, repeated, tag = "16")]
    pub checkpoints: Vec<pb::CheckpointStatus>,
}

/// The pods of a report (field 10), each with only what the model keeps.
#[derive(Clone, PartialEq, Message)]
pub struct ReportPods {
    #[prost(message, repeated, tag = "10")]
    pub pods: Vec<Pod>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Pod {
    #[prost(string, tag = "1")]
    pub uid: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(string, tag = "4")]
    pub qos_class: String,
    #[prost(string, tag = "5")]
    pub cgroup_path: String,
    #[prost(message, optional, tag = "6")]
    pub usage: Option<Usage>,
    #[prost(message, repeated, tag = "7")]
    pub containers: Vec<Container>,
    #[prost(message, repeated, tag = "8")]
    pub gpus: Vec<pb::GpuUse>,
    #[prost(string, tag = "9")]
    pub discovered_by: String,
    /// The pod cgroup is frozen now (read from the kernel at this report).
    #[prost(bool, tag = "10")]
    pub frozen: bool,
    #[prost(bool, tag = "11")]
    pub facts_unchanged: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Container {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(enumeration = "pb::ContainerState", tag = "5")]
    pub state: i32,
    #[prost(string, tag = "6")]
    pub image: String,
    #[prost(message, optional, tag = "7")]
    pub usage: Option<Usage>,
    #[prost(message, repeated, tag = "8")]
    pub gpus: Vec<pb::GpuUse>,
    #[prost(bool, tag = "9")]
    pub facts_unchanged: bool,
}

/// `aistor.v1.CgroupUsage` without pressure, counters and per-device I/O.
#[derive(Clone, PartialEq, Message)]
pub struct Usage {
    #[prost(message, optional, tag = "1")]
    pub cpu: Option<Cpu>,
    #[prost(message, optional, tag = "2")]
    pub memory: Option<Memory>,
    #[prost(message, optional, tag = "3")]
    pub io: Option<Io>,
    #[prost(uint64, optional, tag = "5")]
    pub pids_current: Option<u64>,
    #[prost(message, repeated, tag = "15")]
    pub missing: Vec<pb::Missing>,
    #[prost(message, optional, tag = "6")]
    pub slow: Option<pb::SlowReading>,
    #[prost(bool, tag = "7")]
    pub missing_unchanged: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Cpu {
    #[prost(double, optional, tag = "4")]
    pub usage_millicores: Option<f64>,
    #[prost(double, optional, tag = "8")]
    pub limit_millicores: Option<f64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Memory {
    #[prost(uint64, optional, tag = "1")]
    pub usage_bytes: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub working_set_bytes: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub rss_bytes: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    pub cache_bytes: Option<u64>,
    #[prost(uint64, optional, tag = "15")]
    pub limit_bytes: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Io {
    #[prost(message, optional, tag = "2")]
    pub rates: Option<pb::IoRates>,
}

/// Node disk throughput of a report's disks: the core's whole-disk rule, with the
/// disk kind the agent decided from sysfs.
pub fn whole_disks_rates(disks: &[pb::Disk]) -> (Option<f64>, Option<f64>) {
    aistor_core::model::whole_disk_throughput(disks.iter().map(|d| {
        aistor_core::model::DiskRates {
            whole: d.kind == pb::DiskKind::Whole as i32,
            rates: d
                .rates
                .as_ref()
                .map(|r| (r.read_bytes_per_second, r.write_bytes_per_second)),
        }
    }))
}

/// The busy share of the busiest whole disk with rates; absent when none has rates.
pub fn busiest_whole_disk(disks: &[pb::Disk]) -> Option<f64> {
    disks
        .iter()
        .filter(|d| d.kind == pb::DiskKind::Whole as i32)
        .filter_map(|d| d.rates.as_ref())
        .map(|r| r.busy_percent)
        .filter(|b| b.is_finite())
        .reduce(f64::max)
}

/// What one stream's reports carried so far, per pod and container, as ingest keeps it: an
/// agent leaves out of a report the facts, `missing` lists and slow-cadence values that are
/// unchanged since its previous report on the stream (`facts_unchanged`, `missing_unchanged`,
/// `slow.unchanged`); [`StreamPicture::restore`] puts them back. A new stream (an agent
/// reconnecting, a coordinator restart) starts with an empty picture, and the agent's first
/// report on it carries everything.
#[derive(Debug, Default)]
pub struct StreamPicture {
    pods: std::collections::HashMap<String, PodEntry>,
    /// Counts reports: entries not in the latest one are dropped.
    generation: u64,
}

#[derive(Debug)]
struct PodEntry {
    name: String,
    namespace: String,
    qos_class: String,
    cgroup_path: String,
    discovered_by: String,
    usage: UsageEntry,
    containers: std::collections::HashMap<String, ContainerEntry>,
    seen: u64,
}

#[derive(Debug)]
struct ContainerEntry {
    name: String,
    state: i32,
    image: String,
    usage: UsageEntry,
    seen: u64,
}

/// A cgroup's `missing` list and the slow-cadence values the model keeps, as last carried.
#[derive(Debug, Default)]
struct UsageEntry {
    missing: Vec<pb::Missing>,
    slow: Option<SlowPart>,
}

#[derive(Debug)]
struct SlowPart {
    reading: pb::SlowReading,
    cpu_limit_millicores: Option<f64>,
    /// Without its usage, which is read every tick.
    memory: Option<Memory>,
    io: Option<Io>,
}

impl UsageEntry {
    /// Puts back into `u` what it left out; `what` names the cgroup for errors (built only
    /// when there is one: this runs for every cgroup of every report).
    fn restore(
        known: Option<&Self>,
        u: &mut Usage,
        what: &dyn Fn() -> String,
    ) -> Result<(), String> {
        if u.missing_unchanged {
            let known = known.ok_or_else(|| unknown(&what(), "missing"))?;
            u.missing.clone_from(&known.missing);
            u.missing_unchanged = false;
        }
        if u.slow.is_some_and(|s| s.unchanged) {
            let slow = known
                .and_then(|k| k.slow.as_ref())
                .ok_or_else(|| unknown(&what(), "slow values"))?;
            let cpu = u.cpu.get_or_insert_with(Cpu::default);
            cpu.limit_millicores = slow.cpu_limit_millicores;
            let usage_bytes = u.memory.as_ref().and_then(|m| m.usage_bytes);
            u.memory = Some(Memory {
                usage_bytes,
                ..slow.memory.clone().unwrap_or_default()
            });
            u.io.clone_from(&slow.io);
            u.slow = Some(slow.reading);
        }
        Ok(())
    }

    /// Takes in a usage restored in full (or none).
    fn absorb(&mut self, u: Option<&Usage>) {
        let Some(u) = u else {
            *self = Self::default();
            return;
        };
        if u.missing != self.missing {
            self.missing.clone_from(&u.missing);
        }
        let same = match (&self.slow, u.slow) {
            (Some(kept), Some(now)) => kept.reading == now,
            _ => false,
        };
        if !same {
            self.slow = u.slow.map(|reading| SlowPart {
                reading,
                cpu_limit_millicores: u.cpu.as_ref().and_then(|c| c.limit_millicores),
                memory: u.memory.as_ref().map(|m| Memory {
                    usage_bytes: None,
                    ..m.clone()
                }),
                io: u.io.clone(),
            });
        }
    }
}

impl StreamPicture {
    /// Puts back what the pods left out and remembers them (only these pods). Errors, naming
    /// the pod or container, when a pod leaves out what this stream never carried; the
    /// picture is then unchanged.
    pub fn restore(&mut self, pods: &mut [Pod]) -> Result<(), String> {
        for pod in pods.iter_mut() {
            let entry = self.pods.get(&pod.uid);
            let what = || format!("pod {:?}", pod.uid);
            if pod.facts_unchanged {
                let known = entry.ok_or_else(|| unknown(&what(), "facts"))?;
                pod.name.clone_from(&known.name);
                pod.namespace.clone_from(&known.namespace);
                pod.qos_class.clone_from(&known.qos_class);
                pod.cgroup_path.clone_from(&known.cgroup_path);
                pod.discovered_by.clone_from(&known.discovered_by);
                pod.facts_unchanged = false;
            }
            if let Some(u) = pod.usage.as_mut() {
                UsageEntry::restore(entry.map(|e| &e.usage), u, &what)?;
            }
            for c in &mut pod.containers {
                let known = entry.and_then(|e| e.containers.get(&c.id));
                let what = || format!("{} container {:?}", what(), c.id);
                if c.facts_unchanged {
                    let known = known.ok_or_else(|| unknown(&what(), "facts"))?;
                    c.name.clone_from(&known.name);
                    c.state = known.state;
                    c.image.clone_from(&known.image);
                    c.facts_unchanged = false;
                }
                if let Some(u) = c.usage.as_mut() {
                    UsageEntry::restore(known.map(|k| &k.usage), u, &what)?;
                }
            }
        }
        self.generation += 1;
        let generation = self.generation;
        for p in pods.iter() {
            self.absorb(p, generation);
        }
        self.pods.retain(|_, e| e.seen == generation);
        Ok(())
    }

    /// Remembers one pod restored in full; strings are copied only when they changed.
    fn absorb(&mut self, p: &Pod, generation: u64) {
        let entry = self.pods.entry(p.uid.clone()).or_insert_with(|| PodEntry {
            name: String::new(),
            namespace: String::new(),
            qos_class: String::new(),
            cgroup_path: String::new(),
            discovered_by: String::new(),
            usage: UsageEntry::default(),
            containers: std::collections::HashMap::new(),
            seen: generation,
        });
        entry.seen = generation;
        for (kept, now) in [
            (&mut entry.name, &p.name),
            (&mut entry.namespace, &p.namespace),
            (&mut entry.qos_class, &p.qos_class),
            (&mut entry.cgroup_path, &p.cgroup_path),
            (&mut entry.discovered_by, &p.discovered_by),
        ] {
            if kept != now {
                kept.clone_from(now);
            }
        }
        entry.usage.absorb(p.usage.as_ref());
        for c in &p.containers {
            let e = entry
                .containers
                .entry(c.id.clone())
                .or_insert_with(|| ContainerEntry {
                    name: String::new(),
                    state: 0,
                    image: String::new(),
                    usage: UsageEntry::default(),
                    seen: generation,
                });
            e.seen = generation;
            if e.name != c.name {
                e.name.clone_from(&c.name);
            }
            if e.image != c.image {
                e.image.clone_from(&c.image);
            }
            e.state = c.state;
            e.usage.absorb(c.usage.as_ref());
        }
        entry.containers.retain(|_, e| e.seen == generation);
    }
}

fn unknown(what: &str, left_out: &str) -> String {
    format!(
        "{what}: {left_out} marked unchanged, but this stream's previous report did not carry it"
    )
}

/// A report as received: its head decoded, the rest kept encoded until ingest
/// converts the pods (once, outside any lock).
#[derive(Debug, Clone)]
pub struct ReceivedReport {
    pub head: ReportHead,
    pub bytes: Bytes,
}

impl ReceivedReport {
    /// Decodes the head of an encoded `NodeReport`; the bytes are kept, not copied.
    pub fn decode(bytes: Bytes) -> Result<Self, prost::DecodeError> {
        let head = ReportHead::decode(bytes.as_ref())?;
        Ok(Self { head, bytes })
    }

    /// Encodes `report` (tests and tools; agents' reports arrive encoded).
    pub fn from_report(report: &pb::NodeReport) -> Self {
        Self::decode(Bytes::from(report.encode_to_vec())).expect("a report just encoded decodes")
    }

    /// The pods, decoded lean.
    pub fn pods(&self) -> Result<ReportPods, prost::DecodeError> {
        ReportPods::decode(self.bytes.as_ref())
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use aistor_proto::v1 as pb;

    /// A report with every section filled (shared by the conversion tests).
    pub(crate) fn full_report() -> pb::NodeReport {
        let usage = pb::CgroupUsage {
            cpu: Some(pb::CgroupCpu {
                usage_millicores: Some(250.0),
                usage_nanos_total: Some(99),
                limit_millicores: Some(1000.0),
                ..Default::default()
            }),
            memory: Some(pb::CgroupMemory {
                usage_bytes: Some(10),
                working_set_bytes: Some(8),
                rss_bytes: Some(5),
                cache_bytes: Some(3),
                limit_bytes: Some(100),
                anon_bytes: Some(4),
                ..Default::default()
            }),
            io: Some(pb::CgroupIo {
                rates: Some(pb::IoRates {
                    read_bytes_per_second: 1.0,
                    write_bytes_per_second: 2.0,
                    reads_per_second: 3.0,
                    writes_per_second: 4.0,
                }),
                devices: vec![pb::DeviceIo::default()],
                ..Default::default()
            }),
            pressure: Some(pb::PressureSet::default()),
            pids_current: Some(7),
            missing: vec![pb::Missing {
                field: "io.counters.discards_total".into(),
                reason: "v1".into(),
            }],
            slow: None,
            missing_unchanged: false,
        };
        pb::NodeReport {
            node: Some(pb::NodeIdentity {
                name: "node-a".into(),
                boot_id: "boot".into(),
                cpu_capacity_millicores: Some(8000),
                memory_total_bytes: Some(1 << 34),
                ..Default::default()
            }),
            agent_instance: "1234@5".into(),
            seq: 42,
            wall_time_unix_nanos: 1_700_000_000_000_000_000,
            monotonic_nanos: 99,
            interval_nanos: Some(10_000_000_000),
            collect_interval_nanos: 10_000_000_000,
            usage: Some(pb::NodeUsage {
                cpu: Some(pb::NodeCpu {
                    usage_millicores: Some(1234.5),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            disks: vec![pb::Disk {
                name: "sda".into(),
                ..Default::default()
            }],
            pods: (0..3)
                .map(|i| pb::Pod {
                    namespace: "default".into(),
                    name: format!("pod-{i}"),
                    uid: format!("uid-{i}"),
                    qos_class: "burstable".into(),
                    cgroup_path: format!("kubepods/burstable/poduid-{i}"),
                    usage: Some(usage.clone()),
                    containers: vec![pb::Container {
                        id: format!("c{i}"),
                        name: "main".into(),
                        cgroup_path: "long/path".into(),
                        pid: Some(7),
                        state: pb::ContainerState::Running as i32,
                        image: "busybox".into(),
                        usage: Some(usage.clone()),
                        gpus: vec![],
                        facts_unchanged: false,
                        terminated: None,
                        restart_count: None,
                    }],
                    gpus: vec![pb::GpuUse {
                        gpu_uuid: "GPU-1".into(),
                        sm_utilization_percent: Some(50.0),
                        ..Default::default()
                    }],
                    discovered_by: "containerd".into(),
                    frozen: false,
                    facts_unchanged: false,
                })
                .collect(),
            gpu: Some(pb::GpuSection {
                source: pb::GpuSource::Nvml as i32,
                ..Default::default()
            }),
            measurements: vec![pb::MeasurementResult {
                id: "m-1".into(),
                ..Default::default()
            }],
            directive_results: vec![pb::DirectiveResult {
                id: "d-1".into(),
                error: "no".into(),
                finished_unix_nanos: 3,
            }],
            local_runtime: Some(pb::LocalRuntimeStatus {
                pods: vec![pb::LocalPod {
                    uid: "u".into(),
                    phase: "Running".into(),
                    ..Default::default()
                }],
                checkpoints: vec![pb::CheckpointStatus {
                    checkpoint_id: "ckpt-1".into(),
                    state: "staged".into(),
                    ..Default::default()
                }],
                criu: Some(pb::CriuStatus {
                    available: false,
                    version: "3.17.1".into(),
                    reason: "vdso".into(),
                }),
                logs: vec![pb::LogChunk {
                    request_id: "logs-1".into(),
                    data: b"hello\n".to_vec(),
                    ..Default::default()
                }],
            }),
            missing: vec![pb::Missing {
                field: "disks".into(),
                reason: "none".into(),
            }],
            checkpoints: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::full_report;
    use super::*;

    #[test]
    fn head_has_every_field_but_pods() {
        let report = full_report();
        let encoded = Bytes::from(report.encode_to_vec());
        let received = ReceivedReport::decode(encoded.clone()).unwrap();
        let mut without_pods = report.clone();
        without_pods.pods.clear();
        assert_eq!(received.head.encode_to_vec(), without_pods.encode_to_vec());
        // The bytes are kept exactly as received (and not copied).
        assert_eq!(received.bytes.as_ptr(), encoded.as_ptr());
    }

    #[test]
    fn lean_pods_keep_exactly_the_model_fields() {
        let report = full_report();
        let pods = ReceivedReport::from_report(&report).pods().unwrap().pods;
        assert_eq!(pods.len(), 3);
        let p = &pods[1];
        assert_eq!(
            (&*p.uid, &*p.name, &*p.namespace, &*p.qos_class),
            ("uid-1", "pod-1", "default", "burstable")
        );
        assert_eq!(p.cgroup_path, "kubepods/burstable/poduid-1");
        assert_eq!(p.discovered_by, "containerd");
        assert_eq!(p.gpus, report.pods[1].gpus);
        let u = p.usage.as_ref().unwrap();
        let cpu = u.cpu.as_ref().unwrap();
        assert_eq!(
            (cpu.usage_millicores, cpu.limit_millicores),
            (Some(250.0), Some(1000.0))
        );
        let m = u.memory.as_ref().unwrap();
        assert_eq!(
            (
                m.usage_bytes,
                m.working_set_bytes,
                m.rss_bytes,
                m.cache_bytes,
                m.limit_bytes
            ),
            (Some(10), Some(8), Some(5), Some(3), Some(100))
        );
        assert_eq!(
            u.io.as_ref().unwrap().rates,
            report.pods[1]
                .usage
                .as_ref()
                .unwrap()
                .io
                .as_ref()
                .unwrap()
                .rates
        );
        assert_eq!(u.pids_current, Some(7));
        assert_eq!(u.missing.len(), 1);
        let c = &p.containers[0];
        assert_eq!((&*c.id, &*c.name, &*c.image), ("c1", "main", "busybox"));
        assert_eq!(c.state, pb::ContainerState::Running as i32);
        assert!(c.usage.is_some());
    }

    /// What an agent leaves out of a stream report as unchanged comes back from the
    /// stream's previous report; left out without one, it is an error naming the cgroup.
    #[test]
    fn a_stream_picture_restores_what_was_left_out() {
        let mut full = full_report();
        for p in &mut full.pods {
            for u in std::iter::once(p.usage.as_mut().unwrap())
                .chain(p.containers.iter_mut().map(|c| c.usage.as_mut().unwrap()))
            {
                u.slow = Some(pb::SlowReading {
                    monotonic_nanos: 5,
                    interval_nanos: Some(10),
                    unchanged: false,
                });
            }
        }
        let lean = |r: &pb::NodeReport| ReceivedReport::from_report(r).pods().unwrap().pods;
        let mut compact = full.clone();
        for p in &mut compact.pods {
            p.name.clear();
            p.namespace.clear();
            p.qos_class.clear();
            p.cgroup_path.clear();
            p.discovered_by.clear();
            p.facts_unchanged = true;
            for c in &mut p.containers {
                c.name.clear();
                c.image.clear();
                c.state = 0;
                c.facts_unchanged = true;
            }
            for u in std::iter::once(p.usage.as_mut().unwrap())
                .chain(p.containers.iter_mut().map(|c| c.usage.as_mut().unwrap()))
            {
                u.missing.clear();
                u.missing_unchanged = true;
                u.io = None;
                u.cpu.as_mut().unwrap().limit_millicores = None;
                let m = u.memory.as_mut().unwrap();
                *m = pb::CgroupMemory {
                    usage_bytes: Some(11),
                    ..Default::default()
                };
                u.slow = Some(pb::SlowReading {
                    unchanged: true,
                    ..Default::default()
                });
            }
        }
        let mut picture = StreamPicture::default();
        let mut first = lean(&full);
        picture.restore(&mut first).unwrap();
        assert_eq!(first, lean(&full), "a full report is taken as it is");
        let mut second = lean(&compact);
        picture.restore(&mut second).unwrap();
        let mut expected = lean(&full);
        for p in &mut expected {
            for u in std::iter::once(p.usage.as_mut().unwrap())
                .chain(p.containers.iter_mut().map(|c| c.usage.as_mut().unwrap()))
            {
                // The fresh figure is the compact report's own.
                u.memory.as_mut().unwrap().usage_bytes = Some(11);
            }
        }
        assert_eq!(second, expected);
        let mut orphan = lean(&compact);
        let err = StreamPicture::default().restore(&mut orphan).unwrap_err();
        assert!(
            err.starts_with("pod \"uid-0\": facts marked unchanged"),
            "{err}"
        );
        let mut facts_only = lean(&compact);
        facts_only[0] = lean(&full)[0].clone();
        facts_only[0].containers[0].usage = lean(&compact)[0].containers[0].usage.clone();
        let err = StreamPicture::default()
            .restore(&mut facts_only)
            .unwrap_err();
        assert!(
            err.contains("container \"c0\": missing marked unchanged"),
            "{err}"
        );
    }

    #[test]
    fn the_busiest_whole_disk_with_rates_gives_the_node_disk_busy_share() {
        let disk = |kind: pb::DiskKind, busy: Option<f64>| pb::Disk {
            kind: kind as i32,
            rates: busy.map(|busy_percent| pb::DiskRates {
                busy_percent,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            busiest_whole_disk(&[
                disk(pb::DiskKind::Whole, Some(12.5)),
                disk(pb::DiskKind::Partition, Some(99.0)),
                disk(pb::DiskKind::Whole, Some(40.0)),
                disk(pb::DiskKind::Whole, None),
                disk(pb::DiskKind::Whole, Some(f64::NAN)),
            ]),
            Some(40.0)
        );
        assert_eq!(busiest_whole_disk(&[disk(pb::DiskKind::Whole, None)]), None);
        assert_eq!(busiest_whole_disk(&[]), None);
    }

    #[test]
    fn malformed_bytes_are_an_error_not_a_panic() {
        let encoded = full_report().encode_to_vec();
        for bad in [
            &encoded[..encoded.len() / 2],
            &[0xff, 0xff, 0xff][..],
            &[0x0a, 0x7f, 0x01][..],
        ] {
            let head = ReceivedReport::decode(Bytes::copy_from_slice(bad));
            let pods = ReportPods::decode(bad);
            assert!(head.is_err() || pods.is_err());
        }
    }
}
