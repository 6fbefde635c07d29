//! Between the wire (`aistor_proto`) and the core's model. Proto types stop here and
//! in the API adapters; the core never sees them.

use aistor_core::{NodeEntry, NodeSample, NodeState};
use aistor_proto::v1 as pb;
use bytes::Bytes;
use prost::Message;

/// What the view keeps of a report: the encoded protobuf (compact; decoded only when
/// someone asks for the full node).
pub type StoredReport = Bytes;

/// The figures the core decides on, taken from a report.
pub fn node_sample(report: &pb::NodeReport) -> NodeSample {
    let usage = report.usage.as_ref();
    let (disk_read, disk_write) = whole_disk_rates(report);
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
    let rates: Vec<&pb::DiskRates> = report
        .disks
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

/// The full status of a node for the APIs. A stored report that no longer decodes
/// cannot happen (we encoded it), but is reported as absent rather than a panic.
pub fn node_status(entry: &NodeEntry<StoredReport>) -> pb::NodeStatus {
    pb::NodeStatus {
        name: entry.name().to_owned(),
        state: node_state(entry.state()) as i32,
        last_report_unix_nanos: entry.last_received_wall_unix_nanos(),
        reports_received_total: entry.reports_received_total(),
        duplicates_dropped_total: entry.duplicates_dropped_total(),
        latest: pb::NodeReport::decode(entry.latest().clone()).ok(),
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
    }

    #[test]
    fn no_rates_yet_is_unknown_not_zero() {
        let report = pb::NodeReport {
            disks: vec![disk("sda", pb::DiskKind::Whole, None)],
            ..Default::default()
        };
        assert_eq!(whole_disk_rates(&report), (None, None));
        assert_eq!(node_sample(&report).cpu_millicores, None);
    }
}
