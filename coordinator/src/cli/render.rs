//! Turning node statuses into what `aistorctl nodes` prints, in every `-o` format.
//! Pure: the caller passes the clock, so output is a function of its inputs.

use aistor_proto::v1::{CgroupMode, NodeState, NodeStatus};
use serde::Serialize;

use super::args::Format;
use super::error::CliError;
use super::summary::NodeSummary;
use super::table::Table;
use super::units;

/// Printed in a cell whose value the report did not carry (never `0`).
pub const UNKNOWN: &str = "<unknown>";

/// Printed by `table` and `wide` when the coordinator knows no nodes.
pub const NO_NODES: &str = "No nodes have reported to the coordinator.\n";

const TABLE_HEADER: [&str; 9] = [
    "NAME",
    "STATUS",
    "CPU",
    "CPU%",
    "MEMORY",
    "MEMORY%",
    "DISK READ",
    "DISK WRITE",
    "AGE",
];

const WIDE_EXTRA_HEADER: [&str; 7] = [
    "KERNEL", "CGROUP", "CPUS", "PODS", "GPUS", "PSI CPU", "AGENT",
];

/// The `json` / `yaml` document.
#[derive(Serialize)]
struct NodeList<'a> {
    nodes: Vec<&'a NodeStatus>,
    count: usize,
}

/// Renders `nodes`, sorted by name, in `format`. AGE is measured against
/// `now_unix_nanos` (the local wall clock at the call site).
pub fn render_nodes(
    nodes: &[NodeStatus],
    format: Format,
    now_unix_nanos: u64,
) -> Result<String, CliError> {
    let mut sorted: Vec<&NodeStatus> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    match format {
        Format::Table => Ok(table(&sorted, false, now_unix_nanos)),
        Format::Wide => Ok(table(&sorted, true, now_unix_nanos)),
        Format::Json => {
            let doc = NodeList {
                count: sorted.len(),
                nodes: sorted,
            };
            let mut text = serde_json::to_string_pretty(&doc)?;
            text.push('\n');
            Ok(text)
        }
        Format::Yaml => {
            let doc = NodeList {
                count: sorted.len(),
                nodes: sorted,
            };
            Ok(serde_yaml_ng::to_string(&doc)?)
        }
    }
}

/// The `table` (or `wide`) text of `nodes`, in the order given.
pub(crate) fn table(nodes: &[&NodeStatus], wide: bool, now_unix_nanos: u64) -> String {
    if nodes.is_empty() {
        return NO_NODES.to_owned();
    }
    let mut header = TABLE_HEADER.to_vec();
    if wide {
        header.extend(WIDE_EXTRA_HEADER);
    }
    let mut t = Table::new(header);
    for status in nodes {
        let s = NodeSummary::of(status);
        let mut row = vec![
            text(Some(s.name).filter(|n| !n.is_empty())),
            text(s.state.map(state)),
            text(s.cpu_millicores.map(units::cpu)),
            text(
                s.cpu_millicores
                    .zip(s.cpu_capacity_millicores)
                    .and_then(|(used, capacity)| units::percent(used, capacity as f64)),
            ),
            text(s.memory_working_set_bytes.map(units::bytes_iec)),
            text(
                s.memory_working_set_bytes
                    .zip(s.memory_total_bytes)
                    .and_then(|(used, total)| units::percent(used as f64, total as f64)),
            ),
            text(s.disk_read_bytes_per_second.map(units::bytes_per_second)),
            text(s.disk_write_bytes_per_second.map(units::bytes_per_second)),
            text(s.age_nanos(now_unix_nanos).map(units::age)),
        ];
        if wide {
            row.extend([
                text(s.kernel_version),
                text(s.cgroup_mode.map(cgroup)),
                text(s.logical_cpus),
                text(s.pods),
                text(s.gpus),
                text(s.psi_cpu_some_avg10_percent.map(|p| format!("{p:.1}%"))),
                text(s.agent_version),
            ]);
        }
        t.push(row);
    }
    t.render()
}

fn text(value: Option<impl ToString>) -> String {
    value.map_or_else(|| UNKNOWN.to_owned(), |v| v.to_string())
}

fn state(s: NodeState) -> &'static str {
    match s {
        NodeState::Ready => "Ready",
        NodeState::Stale => "Stale",
        NodeState::Unspecified => UNKNOWN,
    }
}

fn cgroup(mode: CgroupMode) -> &'static str {
    match mode {
        CgroupMode::V1 => "v1",
        CgroupMode::V2 => "v2",
        CgroupMode::Hybrid => "hybrid",
        CgroupMode::Unspecified => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::table::column_starts;
    use aistor_proto::v1::{
        Disk, DiskKind, DiskRates, NodeCpu, NodeIdentity, NodeMemory, NodeReport, NodeUsage,
        Pressure, PressureSet, PressureStall,
    };

    const S: u64 = 1_000_000_000;
    const NOW: u64 = 1_700_000_000 * S;

    fn full(name: &str) -> NodeStatus {
        NodeStatus {
            name: name.to_owned(),
            state: NodeState::Ready as i32,
            last_report_unix_nanos: NOW - 3 * S,
            latest: Some(NodeReport {
                node: Some(NodeIdentity {
                    cpu_capacity_millicores: 4000,
                    logical_cpus: 4,
                    kernel_version: "6.8.0-45-generic".to_owned(),
                    cgroup_mode: CgroupMode::V2 as i32,
                    agent_version: "0.1.0".to_owned(),
                    ..Default::default()
                }),
                usage: Some(NodeUsage {
                    cpu: Some(NodeCpu {
                        usage_millicores: Some(1234.0),
                        ..Default::default()
                    }),
                    memory: Some(NodeMemory {
                        total_bytes: 8 << 30,
                        working_set_bytes: Some(3 << 29),
                        ..Default::default()
                    }),
                    pressure: Some(PressureSet {
                        cpu: Some(Pressure {
                            some: Some(PressureStall {
                                avg10_percent: 2.26,
                                ..Default::default()
                            }),
                            full: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                disks: vec![Disk {
                    name: "sda".to_owned(),
                    kind: DiskKind::Whole as i32,
                    rates: Some(DiskRates {
                        read_bytes_per_second: 12_300_000.0,
                        write_bytes_per_second: 0.0,
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn bare(name: &str) -> NodeStatus {
        NodeStatus {
            name: name.to_owned(),
            state: NodeState::Stale as i32,
            ..Default::default()
        }
    }

    fn rows(text: &str) -> Vec<Vec<&str>> {
        text.lines()
            .map(|l| {
                l.split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn table_humanises_every_column() {
        let out = render_nodes(&[full("node-a")], Format::Table, NOW).unwrap();
        assert_eq!(
            rows(&out),
            vec![
                TABLE_HEADER.to_vec(),
                vec![
                    "node-a", "Ready", "1.23", "31%", "1.5Gi", "19%", "12.3MB/s", "0B/s", "3s"
                ],
            ]
        );
    }

    #[test]
    fn absent_values_are_unknown_never_zero() {
        let out = render_nodes(&[bare("node-z")], Format::Wide, NOW).unwrap();
        let r = rows(&out);
        assert_eq!(r[1][0], "node-z");
        assert_eq!(r[1][1], "Stale");
        assert_eq!(r[1].len(), TABLE_HEADER.len() + WIDE_EXTRA_HEADER.len());
        for (i, cell) in r[1].iter().enumerate().skip(2) {
            assert_eq!(*cell, UNKNOWN, "column {}", r[0][i]);
        }
        assert!(
            !out.contains(" 0"),
            "no zero stands in for a missing value:\n{out}"
        );
    }

    #[test]
    fn wide_adds_identity_counts_and_pressure() {
        let out = render_nodes(&[full("node-a")], Format::Wide, NOW).unwrap();
        let r = rows(&out);
        assert_eq!(&r[0][9..], WIDE_EXTRA_HEADER);
        assert_eq!(
            &r[1][9..],
            ["6.8.0-45-generic", "v2", "4", "0", UNKNOWN, "2.3%", "0.1.0"]
        );
    }

    #[test]
    fn rows_are_sorted_by_name_and_aligned() {
        let nodes = [
            bare("worker-10"),
            full("a"),
            bare("control-plane-long-name"),
        ];
        for format in [Format::Table, Format::Wide] {
            let out = render_nodes(&nodes, format, NOW).unwrap();
            let names: Vec<&str> = rows(&out).iter().skip(1).map(|r| r[0]).collect();
            assert_eq!(names, ["a", "control-plane-long-name", "worker-10"]);
            let lines: Vec<&str> = out.lines().collect();
            let starts = column_starts(lines[0]);
            assert_eq!(starts.len(), rows(&out)[0].len());
            for line in &lines {
                assert_eq!(column_starts(line), starts, "{format:?} line {line:?}");
            }
        }
    }

    #[test]
    fn no_nodes_says_so() {
        assert_eq!(render_nodes(&[], Format::Table, NOW).unwrap(), NO_NODES);
        let json = render_nodes(&[], Format::Json, NOW).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v, serde_json::json!({"nodes": [], "count": 0}));
    }

    #[test]
    fn json_and_yaml_carry_every_field_sorted() {
        let nodes = [bare("b"), full("a")];
        let json = render_nodes(&nodes, Format::Json, NOW).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["count"], 2);
        assert_eq!(v["nodes"][0]["name"], "a");
        assert_eq!(v["nodes"][0]["state"], "ready");
        assert_eq!(v["nodes"][0]["latest"]["node"]["cgroup_mode"], "v2");
        assert_eq!(v["nodes"][1]["name"], "b");
        assert_eq!(v["nodes"][1]["latest"], serde_json::Value::Null);

        let yaml = render_nodes(&nodes, Format::Yaml, NOW).unwrap();
        assert!(
            yaml.starts_with("nodes:\n- name: a\n  state: ready\n"),
            "{yaml}"
        );
        assert!(yaml.ends_with("count: 2\n"), "{yaml}");
    }
}
