//! Between the wire (`aistor_proto`) and the core's model. Proto types stop here and
//! in the API adapters; the core never sees them.

use aistor_core::{NodeEntry, NodeSample, NodeState};
use aistor_proto::v1 as pb;
use bytes::Bytes;
use prost::Message;

/// What the view keeps of a report: the protobuf exactly as the agent sent it
/// (compact; decoded only when someone asks for the full node).
pub type StoredReport = Bytes;

/// The part of a `NodeReport` the coordinator reads on every report: the same field
/// numbers as `aistor.v1.NodeReport` except the pods (10) and the GPU section (11),
/// the bulk of a report, which decoding this skips without building them.
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
    #[prost(message, repeated, tag = "12")]
    pub measurements: Vec<pb::MeasurementResult>,
    #[prost(message, repeated, tag = "15")]
    pub missing: Vec<pb::Missing>,
}

/// A report as received: its encoded bytes, kept as they are, and its decoded head.
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
}

/// Only the pods of an encoded report (field 10) and its wall time (field 4); every
/// other field is skipped.
#[derive(Clone, PartialEq, Message)]
pub struct ReportPods {
    #[prost(uint64, tag = "4")]
    pub wall_time_unix_nanos: u64,
    #[prost(message, repeated, tag = "10")]
    pub pods: Vec<pb::Pod>,
}

/// The figures the core decides on, taken from a report's head.
pub fn node_sample(report: &ReportHead) -> NodeSample {
    let usage = report.usage.as_ref();
    let (disk_read, disk_write) = whole_disks_rates(&report.disks);
    NodeSample {
        wall_time_unix_nanos: report.wall_time_unix_nanos,
        cpu_millicores: usage
            .and_then(|u| u.cpu.as_ref())
            .and_then(|c| c.usage_millicores),
        cpu_capacity_millicores: report
            .node
            .as_ref()
            .map_or(0, |n| n.cpu_capacity_millicores),
        memory_working_set_bytes: usage
            .and_then(|u| u.memory.as_ref())
            .and_then(|m| m.working_set_bytes),
        memory_total_bytes: report.node.as_ref().map_or(0, |n| n.memory_total_bytes),
        disk_read_bytes_per_second: disk_read,
        disk_write_bytes_per_second: disk_write,
    }
}

/// Node disk throughput: the sum over *whole* disks only (partitions, dm and md
/// volumes would count the same bytes again). `None` when no whole disk has rates
/// yet (first reading, or a counter reset).
pub fn whole_disk_rates(report: &pb::NodeReport) -> (Option<f64>, Option<f64>) {
    whole_disks_rates(&report.disks)
}

/// [`whole_disk_rates`] of a list of disks.
pub fn whole_disks_rates(disks: &[pb::Disk]) -> (Option<f64>, Option<f64>) {
    let rates: Vec<&pb::DiskRates> = disks
        .iter()
        .filter(|d| d.kind == pb::DiskKind::Whole as i32)
        .filter_map(|d| d.rates.as_ref())
        .collect();
    if rates.is_empty() {
        return (None, None);
    }
    (
        Some(rates.iter().map(|r| r.read_bytes_per_second).sum()),
        Some(rates.iter().map(|r| r.write_bytes_per_second).sum()),
    )
}

pub fn node_state(state: NodeState) -> pb::NodeState {
    match state {
        NodeState::Ready => pb::NodeState::Ready,
        NodeState::Stale => pb::NodeState::Stale,
    }
}

/// What the APIs need of one node, copied out of the view under its lock without
/// decoding anything (the report's bytes are reference-counted): decode it with
/// [`NodeSnapshot::status`] after the lock is released.
#[derive(Debug, Clone)]
pub struct NodeSnapshot {
    pub name: String,
    pub state: NodeState,
    pub last_report_unix_nanos: u64,
    pub reports_received_total: u64,
    pub duplicates_dropped_total: u64,
    pub latest: StoredReport,
}

impl NodeSnapshot {
    pub fn of(entry: &NodeEntry<StoredReport>) -> Self {
        Self {
            name: entry.name().to_owned(),
            state: entry.state(),
            last_report_unix_nanos: entry.last_received_wall_unix_nanos(),
            reports_received_total: entry.reports_received_total(),
            duplicates_dropped_total: entry.duplicates_dropped_total(),
            latest: entry.latest().clone(),
        }
    }

    /// The full status of the node for the APIs (decodes the whole report). A stored
    /// report that does not decode (its pods or GPU section, which ingest does not
    /// read, are malformed) is reported as absent rather than a panic.
    pub fn status(self) -> pb::NodeStatus {
        pb::NodeStatus {
            latest: pb::NodeReport::decode(self.latest).ok(),
            name: self.name,
            state: node_state(self.state) as i32,
            last_report_unix_nanos: self.last_report_unix_nanos,
            reports_received_total: self.reports_received_total,
            duplicates_dropped_total: self.duplicates_dropped_total,
            // Set by the API adapter that decides whether pods travel (grpc::cluster).
            pod_count: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(whole_disks_rates(&report.disks), (Some(101.0), Some(12.0)));
    }

    #[test]
    fn no_rates_yet_is_unknown_not_zero() {
        let head = ReportHead {
            disks: vec![disk("sda", pb::DiskKind::Whole, None)],
            ..Default::default()
        };
        assert_eq!(whole_disks_rates(&head.disks), (None, None));
        assert_eq!(node_sample(&head).cpu_millicores, None);
    }

    fn full_report() -> pb::NodeReport {
        pb::NodeReport {
            node: Some(pb::NodeIdentity {
                name: "node-a".into(),
                boot_id: "boot".into(),
                cpu_capacity_millicores: 8000,
                memory_total_bytes: 1 << 34,
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
            disks: vec![disk("sda", pb::DiskKind::Whole, Some((1.0, 2.0)))],
            pods: (0..3)
                .map(|i| pb::Pod {
                    namespace: "default".into(),
                    name: format!("pod-{i}"),
                    uid: format!("uid-{i}"),
                    ..Default::default()
                })
                .collect(),
            gpu: Some(pb::GpuSection::default()),
            measurements: vec![pb::MeasurementResult {
                id: "m-1".into(),
                ..Default::default()
            }],
            missing: vec![pb::Missing {
                field: "pods".into(),
                reason: "none".into(),
            }],
        }
    }

    #[test]
    fn head_has_every_field_but_pods_and_gpu() {
        let report = full_report();
        let encoded = Bytes::from(report.encode_to_vec());
        let received = ReceivedReport::decode(encoded.clone()).unwrap();
        let head = &received.head;
        assert_eq!(head.node, report.node);
        assert_eq!(head.agent_instance, report.agent_instance);
        assert_eq!(head.seq, report.seq);
        assert_eq!(head.wall_time_unix_nanos, report.wall_time_unix_nanos);
        assert_eq!(head.monotonic_nanos, report.monotonic_nanos);
        assert_eq!(head.interval_nanos, report.interval_nanos);
        assert_eq!(head.collect_interval_nanos, report.collect_interval_nanos);
        assert_eq!(head.usage, report.usage);
        assert_eq!(head.disks, report.disks);
        assert_eq!(head.measurements, report.measurements);
        assert_eq!(head.missing, report.missing);
        // Pods and the GPU section are skipped, not kept as unknown fields: the
        // head re-encodes to less than the report.
        assert!(head.encoded_len() < encoded.len());
        let mut without_bulk = report.clone();
        without_bulk.pods.clear();
        without_bulk.gpu = None;
        assert_eq!(head.encode_to_vec(), without_bulk.encode_to_vec());

        // The bytes are kept exactly as received (and not copied).
        assert_eq!(received.bytes, encoded);
        assert_eq!(received.bytes.as_ptr(), encoded.as_ptr());
        assert_eq!(pb::NodeReport::decode(received.bytes).unwrap(), report);

        let sample = node_sample(head);
        assert_eq!(sample.cpu_millicores, Some(1234.5));
        assert_eq!(sample.cpu_capacity_millicores, 8000);
        assert_eq!(sample.disk_write_bytes_per_second, Some(2.0));
    }

    #[test]
    fn pods_decode_alone() {
        let report = full_report();
        let pods = ReportPods::decode(report.encode_to_vec().as_slice()).unwrap();
        assert_eq!(pods.pods, report.pods);
        assert_eq!(pods.wall_time_unix_nanos, report.wall_time_unix_nanos);
    }

    #[test]
    fn malformed_bytes_are_an_error_not_a_panic() {
        let encoded = full_report().encode_to_vec();
        for bad in [
            &encoded[..encoded.len() / 2],
            &[0xff, 0xff, 0xff][..],
            &[0x0a, 0x7f, 0x01][..],
        ] {
            assert!(ReceivedReport::decode(Bytes::copy_from_slice(bad)).is_err());
        }
    }
}
