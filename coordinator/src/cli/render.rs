//! Turning node and pod statuses into what `aistorctl nodes`, `aistorctl pods`
//! and `aistorctl gpus` print, in every `-o` format. Pure: the caller passes the
//! clock, so output is a function of its inputs.

use std::cmp::Ordering;

use aistor_proto::v1::{CgroupMode, Gpu, GpuSource, NodeState, NodeStatus, PodStatus};
use serde::Serialize;

use super::args::{Format, PodFilter, PodSort};
use super::error::CliError;
use super::summary::{GpuSummary, NodeSummary, PodSummary, node_name};
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

const WIDE_EXTRA_HEADER: [&str; 8] = [
    "KERNEL",
    "CGROUP",
    "CPUS",
    "PODS",
    "GPUS",
    "PSI CPU",
    "AGENT",
    "COORDINATOR",
];

const POD_TABLE_HEADER: [&str; 9] = [
    "NAMESPACE",
    "NAME",
    "NODE",
    "CPU",
    "MEMORY",
    "IO READ",
    "IO WRITE",
    "IOPS",
    "CONTAINERS",
];

const POD_WIDE_EXTRA_HEADER: [&str; 5] = ["QOS", "UID", "DISCOVERED BY", "RSS", "NODE STATE"];

const GPU_TABLE_HEADER: [&str; 8] = [
    "NODE", "GPU", "MODEL", "UTIL", "MEMORY", "POWER", "TEMP", "PODS",
];

const GPU_WIDE_EXTRA_HEADER: [&str; 7] = [
    "UUID",
    "SOURCE",
    "POWER LIMIT",
    "SM CLOCK",
    "SM ACTIVE",
    "TENSOR ACTIVE",
    "PROCESSES",
];

/// Printed in the PODS cell of a GPU no pod is known to use or hold.
pub const NO_PODS: &str = "-";

/// The `json` / `yaml` document of `nodes`.
#[derive(Serialize)]
struct NodeList<'a> {
    nodes: Vec<&'a NodeStatus>,
    count: usize,
}

/// The `json` / `yaml` document of `pods`.
#[derive(Serialize)]
struct PodList<'a> {
    pods: Vec<&'a PodStatus>,
    count: usize,
}

/// The `json` / `yaml` document of `gpus`.
#[derive(Serialize)]
struct GpuList<'a> {
    gpus: Vec<GpuEntry<'a>>,
    count: usize,
    /// Every node (of those asked about) that reported no GPU, with why.
    nodes_without_gpus: Vec<NodeWithoutGpus<'a>>,
}

/// One GPU as the agent reported it, with its node, source and pods.
#[derive(Serialize)]
struct GpuEntry<'a> {
    node: &'a str,
    /// `nvml`, `dcgm_exporter`, ... as the REST API names it.
    source: &'static str,
    /// `namespace/name` of the pods using or holding it (the REST API's rule).
    pods: Vec<String>,
    gpu: &'a Gpu,
}

#[derive(Serialize)]
struct NodeWithoutGpus<'a> {
    node: &'a str,
    reasons: Vec<String>,
}

/// `doc` as YAML, or else as pretty JSON with a final newline.
fn document(doc: &impl Serialize, yaml: bool) -> Result<String, CliError> {
    if yaml {
        return Ok(serde_yaml_ng::to_string(doc)?);
    }
    let mut text = serde_json::to_string_pretty(doc)?;
    text.push('\n');
    Ok(text)
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
        Format::Json | Format::Yaml => {
            let doc = NodeList {
                count: sorted.len(),
                nodes: sorted,
            };
            document(&doc, format == Format::Yaml)
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
                text(s.coordinator_mode),
            ]);
        }
        t.push(row);
    }
    t.render()
}

/// What `table` and `wide` print when no pod matched.
pub(crate) fn no_pods(filter: &PodFilter) -> String {
    let mut text = "No pods found".to_owned();
    if let Some(node) = filter.node.as_deref().filter(|n| !n.is_empty()) {
        text.push_str(" on node ");
        text.push_str(node);
    }
    if let Some(namespace) = filter.namespace.as_deref().filter(|n| !n.is_empty()) {
        text.push_str(" in namespace ");
        text.push_str(namespace);
    }
    text.push_str(".\n");
    text
}

/// Renders `pods` in `format`, ordered by `sort` (see [`sort_pods`]). `filter`
/// is what was asked for; it only words the message shown when nothing matched.
pub fn render_pods(
    pods: &[PodStatus],
    format: Format,
    sort: Option<PodSort>,
    filter: &PodFilter,
) -> Result<String, CliError> {
    let sorted = sort_pods(pods, sort);
    match format {
        Format::Table | Format::Wide => {
            let rows: Vec<PodSummary<'_>> = sorted.into_iter().map(|(_, s)| s).collect();
            Ok(pod_table(&rows, format == Format::Wide, filter))
        }
        Format::Json | Format::Yaml => {
            let doc = PodList {
                count: sorted.len(),
                pods: sorted.into_iter().map(|(p, _)| p).collect(),
            };
            document(&doc, format == Format::Yaml)
        }
    }
}

/// `pods` with their summaries, in display order: largest `sort` figure first,
/// pods without that figure after those with it; ties, and every pod when there
/// is no `sort`, by namespace, then name, then node (absent ones last each time).
pub(crate) fn sort_pods(
    pods: &[PodStatus],
    sort: Option<PodSort>,
) -> Vec<(&PodStatus, PodSummary<'_>)> {
    let mut rows: Vec<_> = pods.iter().map(|p| (p, PodSummary::of(p))).collect();
    rows.sort_by(|(_, a), (_, b)| {
        let by_figure = match sort {
            None => Ordering::Equal,
            Some(PodSort::Cpu) => largest_first(a.cpu_millicores, b.cpu_millicores),
            Some(PodSort::Memory) => largest_first(
                a.memory_working_set_bytes.map(|v| v as f64),
                b.memory_working_set_bytes.map(|v| v as f64),
            ),
            Some(PodSort::Io) => largest_first(a.io_bytes_per_second(), b.io_bytes_per_second()),
        };
        by_figure
            .then_with(|| absent_last(a.namespace, b.namespace))
            .then_with(|| absent_last(a.name, b.name))
            .then_with(|| absent_last(a.node, b.node))
    });
    rows
}

fn largest_first(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn absent_last(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The `table` (or `wide`) text of pods, in the order given.
pub(crate) fn pod_table(pods: &[PodSummary<'_>], wide: bool, filter: &PodFilter) -> String {
    if pods.is_empty() {
        return no_pods(filter);
    }
    let mut header = POD_TABLE_HEADER.to_vec();
    if wide {
        header.extend(POD_WIDE_EXTRA_HEADER);
    }
    let mut t = Table::new(header);
    for s in pods {
        let mut row = vec![
            text(s.namespace),
            text(s.name),
            text(s.node),
            text(s.cpu_millicores.map(units::cpu)),
            text(s.memory_working_set_bytes.map(units::bytes_iec)),
            text(s.io_read_bytes_per_second.map(units::bytes_per_second)),
            text(s.io_write_bytes_per_second.map(units::bytes_per_second)),
            text(s.iops.map(units::count_per_second)),
            s.containers.to_string(),
        ];
        if wide {
            row.extend([
                text(s.qos_class.map(qos)),
                text(s.uid),
                text(s.discovered_by),
                text(s.memory_rss_bytes.map(units::bytes_iec)),
                text(s.node_state.map(state)),
            ]);
        }
        t.push(row);
    }
    t.render()
}

/// The nodes `gpus` looks at, sorted by name: all of them, or the one `--node` names.
fn gpu_nodes<'a>(nodes: &[&'a NodeStatus], node: Option<&str>) -> Vec<&'a NodeStatus> {
    let node = node.filter(|n| !n.is_empty());
    let mut picked: Vec<&NodeStatus> = nodes
        .iter()
        .copied()
        .filter(|s| node.is_none_or(|n| node_name(s) == n))
        .collect();
    picked.sort_by(|a, b| node_name(a).cmp(node_name(b)));
    picked
}

/// Renders the GPUs of `nodes` in `format`, sorted by node, then index; only
/// those of the node named `node`, when given.
pub fn render_gpus(
    nodes: &[NodeStatus],
    format: Format,
    node: Option<&str>,
) -> Result<String, CliError> {
    let all: Vec<&NodeStatus> = nodes.iter().collect();
    match format {
        Format::Table | Format::Wide => Ok(gpu_text(&all, format == Format::Wide, node)),
        Format::Json | Format::Yaml => {
            let mut gpus = Vec::new();
            let mut nodes_without_gpus = Vec::new();
            for status in gpu_nodes(&all, node) {
                let name = node_name(status);
                let found = status
                    .latest
                    .as_ref()
                    .map(crate::gpus::node_gpus)
                    .unwrap_or_default();
                if found.is_empty() {
                    nodes_without_gpus.push(NodeWithoutGpus {
                        node: name,
                        reasons: no_gpu_reasons(status),
                    });
                }
                let mut found: Vec<GpuEntry<'_>> = found
                    .into_iter()
                    .map(|g| GpuEntry {
                        node: name,
                        source: crate::gpus::source_name(g.source),
                        pods: g.pods,
                        gpu: g.gpu,
                    })
                    .collect();
                found.sort_by(|a, b| (a.gpu.index, &a.gpu.uuid).cmp(&(b.gpu.index, &b.gpu.uuid)));
                gpus.extend(found);
            }
            let doc = GpuList {
                count: gpus.len(),
                gpus,
                nodes_without_gpus,
            };
            document(&doc, format == Format::Yaml)
        }
    }
}

/// The `table` (or `wide`) text of the GPUs of `nodes` (only `node`'s when
/// given). When none of them reported a GPU, each node's reason instead, one
/// line per node: `node-1: NVML library not found: ...`.
pub(crate) fn gpu_text(nodes: &[&NodeStatus], wide: bool, node: Option<&str>) -> String {
    let node = node.filter(|n| !n.is_empty());
    let picked = gpu_nodes(nodes, node);
    if picked.is_empty() {
        return match node {
            Some(n) => format!("No node named {n} has reported to the coordinator.\n"),
            None => NO_NODES.to_owned(),
        };
    }
    let mut rows: Vec<GpuSummary<'_>> = Vec::new();
    for status in &picked {
        let mut gpus = GpuSummary::of_node(status);
        gpus.sort_by(|a, b| (a.index, a.uuid).cmp(&(b.index, b.uuid)));
        rows.extend(gpus);
    }
    if rows.is_empty() {
        let mut text = match node {
            Some(n) => format!("No GPUs found on node {n}:\n"),
            None => "No GPUs found on any node:\n".to_owned(),
        };
        for status in &picked {
            let name = Some(node_name(status)).filter(|n| !n.is_empty());
            text.push_str(name.unwrap_or(UNKNOWN));
            text.push_str(": ");
            text.push_str(&no_gpu_reasons(status).join("; "));
            text.push('\n');
        }
        return text;
    }
    gpu_table(&rows, wide)
}

/// Why a node reported no GPU: its GPU section's `missing` reasons (a reason
/// about a field other than `gpus` is prefixed with the field), or what is
/// lacking when it gave none.
pub(crate) fn no_gpu_reasons(status: &NodeStatus) -> Vec<String> {
    let Some(report) = status.latest.as_ref() else {
        return vec!["no report received yet".to_owned()];
    };
    let Some(section) = report.gpu.as_ref() else {
        return vec!["its report has no GPU section".to_owned()];
    };
    if section.missing.is_empty() {
        let source = GpuSource::try_from(section.source)
            .ok()
            .filter(|s| *s != GpuSource::Unspecified);
        return vec![match source {
            Some(s) => format!(
                "the GPU source ({}) reported no GPU",
                crate::gpus::source_name(s)
            ),
            None => "no GPU reported".to_owned(),
        }];
    }
    section
        .missing
        .iter()
        .map(|m| {
            if m.field.is_empty() || m.field == "gpus" {
                m.reason.clone()
            } else {
                format!("{}: {}", m.field, m.reason)
            }
        })
        .collect()
}

/// The `table` (or `wide`) rows of GPUs, in the order given.
pub(crate) fn gpu_table(gpus: &[GpuSummary<'_>], wide: bool) -> String {
    let mut header = GPU_TABLE_HEADER.to_vec();
    if wide {
        header.extend(GPU_WIDE_EXTRA_HEADER);
    }
    let mut t = Table::new(header);
    for g in gpus {
        let mut row = vec![
            text(g.node),
            g.index.to_string(),
            text(g.model),
            text(g.utilization_percent.map(whole_percent)),
            gpu_memory(g.memory_used_bytes, g.memory_total_bytes),
            text(g.power_watts.map(watts)),
            text(g.temperature_celsius.map(|c| format!("{c:.0}°C"))),
            text(g.pods.as_ref().map(|p| {
                if p.is_empty() {
                    NO_PODS.to_owned()
                } else {
                    p.join(",")
                }
            })),
        ];
        if wide {
            row.extend([
                text(g.uuid),
                text(g.source.map(crate::gpus::source_name)),
                text(g.power_limit_watts.map(watts)),
                text(g.sm_clock_mhz.map(|m| format!("{m}MHz"))),
                text(g.sm_active_percent.map(whole_percent)),
                text(g.tensor_active_percent.map(whole_percent)),
                text(g.processes),
            ]);
        }
        t.push(row);
    }
    t.render()
}

/// `used/total` in IEC units; `<unknown>` for either part that is absent, and
/// for the whole cell when both are.
fn gpu_memory(used: Option<u64>, total: Option<u64>) -> String {
    if used.is_none() && total.is_none() {
        return UNKNOWN.to_owned();
    }
    format!(
        "{}/{}",
        text(used.map(units::bytes_iec)),
        text(total.map(units::bytes_iec))
    )
}

fn whole_percent(p: f64) -> String {
    format!("{p:.0}%")
}

fn watts(w: f64) -> String {
    format!("{w:.0}W")
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

/// The agent's QoS class (from the cgroup layout, lower case) as Kubernetes writes it.
fn qos(class: &str) -> &str {
    match class {
        "guaranteed" => "Guaranteed",
        "burstable" => "Burstable",
        "besteffort" => "BestEffort",
        other => other,
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
                    cpu_capacity_millicores: Some(4000),
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
            [
                "6.8.0-45-generic",
                "v2",
                "4",
                "0",
                UNKNOWN,
                "2.3%",
                "0.1.0",
                UNKNOWN
            ]
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

    mod pods {
        use super::rows;
        use crate::cli::render::*;
        use crate::cli::table::column_starts;
        use aistor_proto::v1::{
            CgroupCpu, CgroupIo, CgroupMemory, CgroupUsage, Container, IoRates, Pod,
        };

        /// A pod on node `n1` with CPU, working set and I/O throughput as given.
        fn pod(
            namespace: &str,
            name: &str,
            cpu: Option<f64>,
            memory: Option<u64>,
            io: Option<(f64, f64)>,
        ) -> PodStatus {
            PodStatus {
                node: "n1".to_owned(),
                node_state: NodeState::Ready as i32,
                report_wall_time_unix_nanos: 1,
                pod: Some(Pod {
                    name: name.to_owned(),
                    namespace: namespace.to_owned(),
                    usage: Some(CgroupUsage {
                        cpu: Some(CgroupCpu {
                            usage_millicores: cpu,
                            ..Default::default()
                        }),
                        memory: Some(CgroupMemory {
                            working_set_bytes: memory,
                            ..Default::default()
                        }),
                        io: Some(CgroupIo {
                            rates: io.map(|(read, write)| IoRates {
                                read_bytes_per_second: read,
                                write_bytes_per_second: write,
                                reads_per_second: 1.0,
                                writes_per_second: 2.0,
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }
        }

        fn order(pods: &[PodStatus], sort: Option<PodSort>) -> Vec<String> {
            sort_pods(pods, sort)
                .iter()
                .map(|(_, s)| format!("{}/{}", s.namespace.unwrap_or("-"), s.name.unwrap_or("-")))
                .collect()
        }

        fn sample() -> Vec<PodStatus> {
            vec![
                pod("ml", "b", Some(100.0), Some(5 << 20), Some((10.0, 0.0))),
                pod("", "z", Some(900.0), None, Some((1.0, 1.0))),
                pod("default", "c", None, Some(9 << 20), None),
                pod("ml", "a", Some(100.0), Some(1 << 20), Some((0.0, 30.0))),
            ]
        }

        #[test]
        fn default_order_is_namespace_then_name_absent_last() {
            assert_eq!(order(&sample(), None), ["default/c", "ml/a", "ml/b", "-/z"]);
        }

        #[test]
        fn sort_is_largest_first_absent_last_ties_by_name() {
            let pods = sample();
            // a and b tie on CPU: a before b by name.
            assert_eq!(
                order(&pods, Some(PodSort::Cpu)),
                ["-/z", "ml/a", "ml/b", "default/c"]
            );
            assert_eq!(
                order(&pods, Some(PodSort::Memory)),
                ["default/c", "ml/b", "ml/a", "-/z"]
            );
            // Read plus write: a 30, b 10, z 2, c none.
            assert_eq!(
                order(&pods, Some(PodSort::Io)),
                ["ml/a", "ml/b", "-/z", "default/c"]
            );
        }

        #[test]
        fn a_pod_status_without_a_pod_is_unknown_and_last() {
            let mut pods = sample();
            pods.push(PodStatus::default());
            assert_eq!(order(&pods, None).last().unwrap(), "-/-");
            let out = render_pods(&pods[4..], Format::Wide, None, &PodFilter::default()).unwrap();
            let r = rows(&out);
            assert_eq!(
                r[1].len(),
                POD_TABLE_HEADER.len() + POD_WIDE_EXTRA_HEADER.len()
            );
            for (i, cell) in r[1].iter().enumerate() {
                let want = if r[0][i] == "CONTAINERS" {
                    "0"
                } else {
                    UNKNOWN
                };
                assert_eq!(*cell, want, "column {}", r[0][i]);
            }
        }

        #[test]
        fn table_and_wide_humanise_every_column() {
            let mut status = pod(
                "ml",
                "trainer-0",
                Some(1234.0),
                Some(3 << 29),
                Some((12_300_000.0, 450_000.0)),
            );
            let p = status.pod.as_mut().unwrap();
            p.uid = "6f1c".to_owned();
            p.qos_class = "besteffort".to_owned();
            p.discovered_by = "containerd".to_owned();
            p.containers = vec![Container::default(); 3];
            p.usage.as_mut().unwrap().memory.as_mut().unwrap().rss_bytes = Some(1 << 30);
            status.node_state = NodeState::Stale as i32;
            let filter = PodFilter::default();

            let out =
                render_pods(std::slice::from_ref(&status), Format::Table, None, &filter).unwrap();
            assert_eq!(
                rows(&out),
                vec![
                    POD_TABLE_HEADER.to_vec(),
                    vec![
                        "ml",
                        "trainer-0",
                        "n1",
                        "1.23",
                        "1.5Gi",
                        "12.3MB/s",
                        "450kB/s",
                        "3",
                        "3"
                    ],
                ]
            );
            let out = render_pods(&[status], Format::Wide, None, &filter).unwrap();
            let r = rows(&out);
            assert_eq!(&r[0][9..], POD_WIDE_EXTRA_HEADER);
            assert_eq!(
                &r[1][9..],
                ["BestEffort", "6f1c", "containerd", "1.0Gi", "Stale"]
            );
        }

        #[test]
        fn columns_are_aligned() {
            let out = render_pods(&sample(), Format::Wide, None, &PodFilter::default()).unwrap();
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 5);
            let starts = column_starts(lines[0]);
            assert_eq!(
                starts.len(),
                POD_TABLE_HEADER.len() + POD_WIDE_EXTRA_HEADER.len()
            );
            for line in &lines {
                assert_eq!(column_starts(line), starts, "line {line:?}");
            }
        }

        #[test]
        fn no_pods_names_the_filter() {
            let mut filter = PodFilter::default();
            let none = |f: &PodFilter| render_pods(&[], Format::Table, None, f).unwrap();
            assert_eq!(none(&filter), "No pods found.\n");
            filter.node = Some("gpu-1".to_owned());
            assert_eq!(none(&filter), "No pods found on node gpu-1.\n");
            filter.namespace = Some("ml".to_owned());
            assert_eq!(
                none(&filter),
                "No pods found on node gpu-1 in namespace ml.\n"
            );
            let json = render_pods(&[], Format::Json, None, &filter).unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v, serde_json::json!({"pods": [], "count": 0}));
        }

        #[test]
        fn json_and_yaml_follow_the_sort() {
            let pods = sample();
            let json = render_pods(
                &pods,
                Format::Json,
                Some(PodSort::Cpu),
                &PodFilter::default(),
            )
            .unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["count"], 4);
            let names: Vec<&str> = v["pods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["pod"]["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["z", "a", "b", "c"]);
            assert_eq!(v["pods"][0]["node_state"], "ready");
            assert_eq!(
                v["pods"][3]["pod"]["usage"]["cpu"]["usage_millicores"],
                serde_json::Value::Null
            );

            let yaml = render_pods(&pods, Format::Yaml, None, &PodFilter::default()).unwrap();
            assert!(
                yaml.starts_with("pods:\n- node: n1\n  node_state: ready\n"),
                "{yaml}"
            );
            assert!(yaml.ends_with("count: 4\n"), "{yaml}");
            let from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
            assert_eq!(from_yaml["pods"][0]["pod"]["name"], "c");
        }
    }

    mod gpus {
        use super::rows;
        use crate::cli::render::*;
        use crate::cli::table::column_starts;
        use aistor_proto::v1::{GpuAllocation, GpuSection, Missing, NodeIdentity, NodeReport, Pod};

        fn node(name: &str, section: Option<GpuSection>) -> NodeStatus {
            NodeStatus {
                name: name.to_owned(),
                state: NodeState::Ready as i32,
                latest: Some(NodeReport {
                    node: Some(NodeIdentity {
                        name: name.to_owned(),
                        ..Default::default()
                    }),
                    pods: vec![Pod {
                        uid: "u1".to_owned(),
                        name: "trainer".to_owned(),
                        namespace: "ml".to_owned(),
                        ..Default::default()
                    }],
                    gpu: section,
                    ..Default::default()
                }),
                ..Default::default()
            }
        }

        fn nvml(gpus: Vec<Gpu>) -> Option<GpuSection> {
            Some(GpuSection {
                source: GpuSource::Nvml as i32,
                gpus,
                ..Default::default()
            })
        }

        fn gpu(index: u32) -> Gpu {
            Gpu {
                index,
                uuid: format!("GPU-{index}"),
                model: "NVIDIA L4".to_owned(),
                ..Default::default()
            }
        }

        fn missing(field: &str, reason: &str) -> Missing {
            Missing {
                field: field.to_owned(),
                reason: reason.to_owned(),
            }
        }

        #[test]
        fn rows_are_sorted_by_node_then_index_and_aligned() {
            let nodes = [
                node("b", nvml(vec![gpu(1), gpu(0)])),
                node("a", nvml(vec![gpu(7)])),
                node("c", None),
            ];
            for format in [Format::Table, Format::Wide] {
                let out = render_gpus(&nodes, format, None).unwrap();
                let keys: Vec<(&str, &str)> =
                    rows(&out).iter().skip(1).map(|r| (r[0], r[1])).collect();
                assert_eq!(keys, [("a", "7"), ("b", "0"), ("b", "1")], "{out}");
                let lines: Vec<&str> = out.lines().collect();
                let starts = column_starts(lines[0]);
                for line in &lines {
                    assert_eq!(column_starts(line), starts, "{format:?} line {line:?}");
                }
            }
            let out = render_gpus(&nodes, Format::Table, Some("b")).unwrap();
            assert_eq!(out.lines().count(), 3, "{out}");
        }

        #[test]
        fn absent_values_are_unknown_and_no_pods_is_a_dash() {
            let mut held = gpu(1);
            held.memory_total_bytes = Some(24 << 30);
            held.allocations = vec![GpuAllocation {
                pod_name: "b".to_owned(),
                pod_namespace: "x".to_owned(),
                ..Default::default()
            }];
            let mut unread = gpu(2);
            unread.missing = vec![missing("processes", "not supported")];
            let nodes = [node("n", nvml(vec![gpu(0), held, unread]))];
            let out = render_gpus(&nodes, Format::Wide, None).unwrap();
            let r = rows(&out);
            assert_eq!(
                r[0].len(),
                GPU_TABLE_HEADER.len() + GPU_WIDE_EXTRA_HEADER.len()
            );
            // Nothing measured: unknown everywhere, but no pod and no process is known.
            assert_eq!(
                r[1],
                [
                    "n",
                    "0",
                    "NVIDIA L4",
                    UNKNOWN,
                    UNKNOWN,
                    UNKNOWN,
                    UNKNOWN,
                    NO_PODS,
                    "GPU-0",
                    "nvml",
                    UNKNOWN,
                    UNKNOWN,
                    UNKNOWN,
                    UNKNOWN,
                    "0"
                ]
            );
            assert_eq!(r[2][4], "<unknown>/24Gi", "{out}");
            assert_eq!(r[2][7], "x/b");
            assert_eq!(r[3][7], UNKNOWN, "processes not listed: pods unknown");
            assert_eq!(r[3][14], UNKNOWN);
            assert!(
                !out.contains(" 0%"),
                "no zero stands in for a missing value:\n{out}"
            );
        }

        #[test]
        fn without_any_gpu_each_node_says_why() {
            let nodes = [
                node(
                    "b",
                    Some(GpuSection {
                        source: GpuSource::Nvml as i32,
                        missing: vec![
                            missing(
                                "driver_version",
                                "nvmlSystemGetDriverVersion: Uninitialized",
                            ),
                            missing("gpus", "nvmlDeviceGetCount: Uninitialized"),
                        ],
                        ..Default::default()
                    }),
                ),
                node("a", None),
                node("d", nvml(vec![])),
                node(
                    "e",
                    Some(GpuSection {
                        source: 0,
                        ..Default::default()
                    }),
                ),
                NodeStatus {
                    name: "c".to_owned(),
                    ..Default::default()
                },
            ];
            let out = render_gpus(&nodes, Format::Table, None).unwrap();
            assert_eq!(
                out,
                "No GPUs found on any node:\n\
                 a: its report has no GPU section\n\
                 b: driver_version: nvmlSystemGetDriverVersion: Uninitialized; nvmlDeviceGetCount: Uninitialized\n\
                 c: no report received yet\n\
                 d: the GPU source (nvml) reported no GPU\n\
                 e: no GPU reported\n"
            );
            assert_eq!(
                render_gpus(&nodes, Format::Wide, Some("d")).unwrap(),
                "No GPUs found on node d:\nd: the GPU source (nvml) reported no GPU\n"
            );
            assert_eq!(render_gpus(&[], Format::Table, None).unwrap(), NO_NODES);
            assert_eq!(
                render_gpus(&nodes, Format::Table, Some("z")).unwrap(),
                "No node named z has reported to the coordinator.\n"
            );
            let json = render_gpus(&nodes, Format::Json, Some("z")).unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"gpus": [], "count": 0, "nodes_without_gpus": []})
            );
        }

        #[test]
        fn json_names_the_source_and_pods_with_every_gpu_field() {
            let mut busy = gpu(0);
            busy.utilization_percent = Some(50.0);
            busy.processes = vec![aistor_proto::v1::GpuProcess {
                pid: 9,
                pod_uid: "u1".to_owned(),
                ..Default::default()
            }];
            let nodes = [node("n", nvml(vec![gpu(1), busy])), node("m", None)];
            let json = render_gpus(&nodes, Format::Json, None).unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["count"], 2);
            assert_eq!(v["gpus"][0]["node"], "n");
            assert_eq!(v["gpus"][0]["source"], "nvml");
            assert_eq!(v["gpus"][0]["pods"], serde_json::json!(["ml/trainer"]));
            assert_eq!(v["gpus"][0]["gpu"]["utilization_percent"], 50.0);
            assert_eq!(v["gpus"][1]["gpu"]["index"], 1);
            assert_eq!(v["gpus"][1]["pods"], serde_json::json!([]));
            assert_eq!(
                v["nodes_without_gpus"],
                serde_json::json!([{"node": "m", "reasons": ["its report has no GPU section"]}])
            );
            let yaml = render_gpus(&nodes, Format::Yaml, None).unwrap();
            let from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
            assert_eq!(from_yaml, v);
        }
    }
}
