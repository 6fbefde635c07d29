//! Prometheus exposition of the latest collection, under the names users' dashboards
//! already use (node_exporter's `node_*`), plus the agent's own `aistor_agent_*`.
//! Encoded at scrape time from the newest report: no per-series state to keep, and a
//! value the agent could not read produces no series rather than a zero.

use crate::parse::stat::CpuTicks;
use crate::report::Extras;
use crate::uplink::{Outbox, UplinkStats};
use aistor_proto::v1::NodeReport;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::watch;

/// One collection as published to readers (exposition, readiness).
#[derive(Debug, Clone)]
pub struct Published {
    pub report: NodeReport,
    pub extras: Extras,
    pub ticks_per_second: u64,
    pub collect_seconds: f64,
}

#[derive(Debug)]
pub struct AgentCollector {
    latest: watch::Receiver<Option<Arc<Published>>>,
    uplink: Arc<UplinkStats>,
    outbox: Outbox,
}

impl AgentCollector {
    pub fn new(
        latest: watch::Receiver<Option<Arc<Published>>>,
        uplink: Arc<UplinkStats>,
        outbox: Outbox,
    ) -> Self {
        Self {
            latest,
            uplink,
            outbox,
        }
    }
}

/// Writes one metric family; nothing at all when there is no series.
fn family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        let encoder = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(encoder)?,
            _ => ConstGauge::new(value).encode(encoder)?,
        }
    }
    Ok(())
}

/// Writes a metric without labels; nothing when the value is absent.
fn single(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    value: Option<f64>,
) -> fmt::Result {
    let Some(value) = value else { return Ok(()) };
    let metric = enc.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(metric),
        _ => ConstGauge::new(value).encode(metric),
    }
}

impl Collector for AgentCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let latest = self.latest.borrow().clone();
        if let Some(p) = latest {
            encode_node(&mut enc, &p)?;
            single(
                &mut enc,
                "aistor_agent_collect_duration_seconds",
                "Time the latest collection took.",
                MetricType::Gauge,
                Some(p.collect_seconds),
            )?;
            single(
                &mut enc,
                "aistor_agent_collections",
                "Collections since the agent started (the latest report's seq).",
                MetricType::Counter,
                Some(p.report.seq as f64),
            )?;
        }
        let (buffered, dropped) = {
            let b = self.outbox.lock();
            (b.len() as f64, b.dropped_total() as f64)
        };
        let u = &self.uplink;
        let gauges = [
            (
                "aistor_agent_uplink_connected",
                "1 while the stream to the coordinator is up.",
                f64::from(u8::from(u.connected.load(Relaxed))),
            ),
            (
                "aistor_agent_replay_buffer_reports",
                "Reports collected but not yet acknowledged by the coordinator.",
                buffered,
            ),
        ];
        for (name, help, v) in gauges {
            single(&mut enc, name, help, MetricType::Gauge, Some(v))?;
        }
        let counters = [
            (
                "aistor_agent_reports_sent",
                "Reports written to the coordinator stream, replays included.",
                u.reports_sent_total.load(Relaxed) as f64,
            ),
            (
                "aistor_agent_uplink_connects",
                "Attempts to open the coordinator stream.",
                u.connects_total.load(Relaxed) as f64,
            ),
            (
                "aistor_agent_replay_dropped_reports",
                "Reports dropped unacknowledged because they outlived the replay buffer.",
                dropped,
            ),
        ];
        for (name, help, v) in counters {
            single(&mut enc, name, help, MetricType::Counter, Some(v))?;
        }
        Ok(())
    }
}

fn encode_node(enc: &mut DescriptorEncoder<'_>, p: &Published) -> fmt::Result {
    let tps = p.ticks_per_second.max(1) as f64;
    let modes = |t: &CpuTicks| {
        [
            ("user", Some(t.user)),
            ("nice", Some(t.nice)),
            ("system", Some(t.system)),
            ("idle", Some(t.idle)),
            ("iowait", t.iowait),
            ("irq", t.irq),
            ("softirq", t.softirq),
            ("steal", t.steal),
        ]
    };
    family(
        enc,
        "node_cpu_seconds",
        "Seconds the CPUs spent in each mode.",
        MetricType::Counter,
        p.extras.per_cpu.iter().flat_map(|(cpu, t)| {
            let cpu = cpu.to_string();
            modes(t).into_iter().filter_map(move |(mode, v)| {
                v.map(|v| {
                    (
                        [("cpu", cpu.clone()), ("mode", mode.to_owned())],
                        v as f64 / tps,
                    )
                })
            })
        }),
    )?;

    if let Some(m) = &p.extras.meminfo {
        let mem = [
            (
                "node_memory_MemTotal_bytes",
                "Memory information field MemTotal_bytes.",
                Some(m.total_bytes),
            ),
            (
                "node_memory_MemFree_bytes",
                "Memory information field MemFree_bytes.",
                m.free_bytes,
            ),
            (
                "node_memory_MemAvailable_bytes",
                "Memory information field MemAvailable_bytes.",
                m.available_bytes,
            ),
            (
                "node_memory_Buffers_bytes",
                "Memory information field Buffers_bytes.",
                m.buffers_bytes,
            ),
            (
                "node_memory_Cached_bytes",
                "Memory information field Cached_bytes.",
                m.cached_bytes,
            ),
            (
                "node_memory_Active_file_bytes",
                "Memory information field Active_file_bytes.",
                m.active_file_bytes,
            ),
            (
                "node_memory_Inactive_file_bytes",
                "Memory information field Inactive_file_bytes.",
                m.inactive_file_bytes,
            ),
            (
                "node_memory_SwapTotal_bytes",
                "Memory information field SwapTotal_bytes.",
                m.swap_total_bytes,
            ),
            (
                "node_memory_SwapFree_bytes",
                "Memory information field SwapFree_bytes.",
                m.swap_free_bytes,
            ),
        ];
        for (name, help, v) in mem {
            single(enc, name, help, MetricType::Gauge, v.map(|v| v as f64))?;
        }
    }

    let pressure = p.report.usage.as_ref().and_then(|u| u.pressure.as_ref());
    let stall_seconds = |s: Option<&aistor_proto::v1::PressureStall>| {
        s.map(|s| s.stalled_micros_total as f64 / 1e6)
    };
    if let Some(ps) = pressure {
        let some = |x: &Option<aistor_proto::v1::Pressure>| {
            stall_seconds(x.as_ref().and_then(|p| p.some.as_ref()))
        };
        let full = |x: &Option<aistor_proto::v1::Pressure>| {
            stall_seconds(x.as_ref().and_then(|p| p.full.as_ref()))
        };
        let psi = [
            (
                "node_pressure_cpu_waiting_seconds",
                "Total time in seconds that processes have waited for CPU time.",
                some(&ps.cpu),
            ),
            (
                "node_pressure_cpu_stalled_seconds",
                "Total time in seconds no process could make progress due to CPU congestion.",
                full(&ps.cpu),
            ),
            (
                "node_pressure_memory_waiting_seconds",
                "Total time in seconds that processes have waited for memory.",
                some(&ps.memory),
            ),
            (
                "node_pressure_memory_stalled_seconds",
                "Total time in seconds no process could make progress due to memory congestion.",
                full(&ps.memory),
            ),
            (
                "node_pressure_io_waiting_seconds",
                "Total time in seconds that processes have waited due to IO congestion.",
                some(&ps.io),
            ),
            (
                "node_pressure_io_stalled_seconds",
                "Total time in seconds no process could make progress due to IO congestion.",
                full(&ps.io),
            ),
        ];
        for (name, help, v) in psi {
            single(enc, name, help, MetricType::Counter, v)?;
        }
    }

    encode_disks(enc, &p.report)?;
    encode_cgroups(enc, &p.report)
}

/// cAdvisor's labels: pod cgroups appear with `container=""` (as cAdvisor shows them),
/// `id` is the cgroup path.
type CgroupLabels = [(&'static str, String); 4];

/// Every measured cgroup of the report: pods, then their containers.
fn cgroups(report: &NodeReport) -> Vec<(CgroupLabels, &aistor_proto::v1::CgroupUsage)> {
    let mut out = Vec::new();
    for pod in &report.pods {
        let labels = |container: &str, path: &str| {
            [
                ("container", container.to_owned()),
                ("id", format!("/{path}")),
                ("namespace", pod.namespace.clone()),
                ("pod", pod.name.clone()),
            ]
        };
        if let Some(u) = &pod.usage {
            out.push((labels("", &pod.cgroup_path), u));
        }
        for c in &pod.containers {
            if let Some(u) = &c.usage {
                out.push((labels(&c.name, &c.cgroup_path), u));
            }
        }
    }
    out
}

fn secs(nanos: Option<u64>) -> Option<f64> {
    nanos.map(|n| n as f64 / 1e9)
}

fn count(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

/// Seconds stalled from a PSI line ("some" or "full").
fn stalled(p: Option<&aistor_proto::v1::Pressure>, full: bool) -> Option<f64> {
    p.and_then(|p| {
        if full {
            p.full.as_ref()
        } else {
            p.some.as_ref()
        }
    })
    .map(|s| s.stalled_micros_total as f64 / 1e6)
}

fn encode_cgroups(enc: &mut DescriptorEncoder<'_>, report: &NodeReport) -> fmt::Result {
    use aistor_proto::v1::CgroupUsage as U;
    type Pick = fn(&U) -> Option<f64>;
    let all = cgroups(report);
    let families: [(&str, &str, MetricType, Pick); 18] = [
        (
            "container_cpu_usage_seconds",
            "Cumulative cpu time consumed in seconds.",
            MetricType::Counter,
            |u| secs(u.cpu.as_ref()?.usage_nanos_total),
        ),
        (
            "container_cpu_user_seconds",
            "Cumulative user cpu time consumed in seconds.",
            MetricType::Counter,
            |u| secs(u.cpu.as_ref()?.user_nanos_total),
        ),
        (
            "container_cpu_system_seconds",
            "Cumulative system cpu time consumed in seconds.",
            MetricType::Counter,
            |u| secs(u.cpu.as_ref()?.system_nanos_total),
        ),
        (
            "container_cpu_cfs_periods",
            "Number of elapsed enforcement period intervals.",
            MetricType::Counter,
            |u| count(u.cpu.as_ref()?.periods_total),
        ),
        (
            "container_cpu_cfs_throttled_periods",
            "Number of throttled period intervals.",
            MetricType::Counter,
            |u| count(u.cpu.as_ref()?.throttled_periods_total),
        ),
        (
            "container_cpu_cfs_throttled_seconds",
            "Total time duration the container has been throttled.",
            MetricType::Counter,
            |u| secs(u.cpu.as_ref()?.throttled_nanos_total),
        ),
        (
            "container_memory_usage_bytes",
            "Current memory usage in bytes, including all memory regardless of when it was accessed.",
            MetricType::Gauge,
            |u| count(u.memory.as_ref()?.usage_bytes),
        ),
        (
            "container_memory_working_set_bytes",
            "Current working set in bytes.",
            MetricType::Gauge,
            |u| count(u.memory.as_ref()?.working_set_bytes),
        ),
        (
            "container_memory_rss",
            "Size of RSS in bytes.",
            MetricType::Gauge,
            |u| count(u.memory.as_ref()?.rss_bytes),
        ),
        (
            "container_memory_cache",
            "Number of bytes of page cache memory.",
            MetricType::Gauge,
            |u| count(u.memory.as_ref()?.cache_bytes),
        ),
        (
            "container_memory_max_usage_bytes",
            "Maximum memory usage recorded in bytes.",
            MetricType::Gauge,
            |u| count(u.memory.as_ref()?.peak_bytes),
        ),
        (
            "container_oom_events",
            "Count of out of memory events observed for the container.",
            MetricType::Counter,
            |u| count(u.memory.as_ref()?.oom_kill_events_total),
        ),
        (
            "container_processes",
            "Number of processes running inside the container.",
            MetricType::Gauge,
            |u| count(u.pids_current),
        ),
        (
            "container_pressure_cpu_waiting_seconds",
            "Total time duration tasks in the container have waited due to CPU congestion.",
            MetricType::Counter,
            |u| stalled(u.pressure.as_ref()?.cpu.as_ref(), false),
        ),
        (
            "container_pressure_memory_waiting_seconds",
            "Total time duration tasks in the container have waited due to memory congestion.",
            MetricType::Counter,
            |u| stalled(u.pressure.as_ref()?.memory.as_ref(), false),
        ),
        (
            "container_pressure_memory_stalled_seconds",
            "Total time duration no tasks in the container could make progress due to memory congestion.",
            MetricType::Counter,
            |u| stalled(u.pressure.as_ref()?.memory.as_ref(), true),
        ),
        (
            "container_pressure_io_waiting_seconds",
            "Total time duration tasks in the container have waited due to IO congestion.",
            MetricType::Counter,
            |u| stalled(u.pressure.as_ref()?.io.as_ref(), false),
        ),
        (
            "container_pressure_io_stalled_seconds",
            "Total time duration no tasks in the container could make progress due to IO congestion.",
            MetricType::Counter,
            |u| stalled(u.pressure.as_ref()?.io.as_ref(), true),
        ),
    ];
    for (name, help, kind, pick) in families {
        family(
            enc,
            name,
            help,
            kind,
            all.iter()
                .filter_map(|(labels, u)| pick(u).map(|v| (labels.clone(), v))),
        )?;
    }
    // Block I/O per device, as cAdvisor's container_fs_* with a `device` label.
    type IoPick = fn(&aistor_proto::v1::IoCounters) -> f64;
    let io: [(&str, &str, IoPick); 4] = [
        (
            "container_fs_reads_bytes",
            "Cumulative count of bytes read",
            |c| c.read_bytes_total as f64,
        ),
        (
            "container_fs_writes_bytes",
            "Cumulative count of bytes written",
            |c| c.write_bytes_total as f64,
        ),
        (
            "container_fs_reads",
            "Cumulative count of reads completed",
            |c| c.reads_total as f64,
        ),
        (
            "container_fs_writes",
            "Cumulative count of writes completed",
            |c| c.writes_total as f64,
        ),
    ];
    for (name, help, pick) in io {
        family(
            enc,
            name,
            help,
            MetricType::Counter,
            all.iter().flat_map(|(labels, u)| {
                u.io.iter()
                    .flat_map(|io| io.devices.iter())
                    .filter_map(move |d| {
                        let counters = d.counters.as_ref()?;
                        let device = if d.device.is_empty() {
                            format!("{}:{}", d.major, d.minor)
                        } else {
                            format!("/dev/{}", d.device)
                        };
                        let [a, b, c, e] = labels.clone();
                        Some(([a, ("device", device), b, c, e], pick(counters)))
                    })
            }),
        )?;
    }
    Ok(())
}

fn encode_disks(enc: &mut DescriptorEncoder<'_>, report: &NodeReport) -> fmt::Result {
    use aistor_proto::v1::DiskCounters as C;
    type Pick = fn(&C) -> Option<f64>;
    let counters: [(&str, &str, Pick); 16] = [
        (
            "node_disk_reads_completed",
            "The total number of reads completed successfully.",
            |c| Some(c.reads_completed as f64),
        ),
        (
            "node_disk_reads_merged",
            "The total number of reads merged.",
            |c| Some(c.reads_merged as f64),
        ),
        (
            "node_disk_read_bytes",
            "The total number of bytes read successfully.",
            |c| Some(c.read_bytes as f64),
        ),
        (
            "node_disk_read_time_seconds",
            "The total number of seconds spent by all reads.",
            |c| Some(c.read_time_millis as f64 / 1000.0),
        ),
        (
            "node_disk_writes_completed",
            "The total number of writes completed successfully.",
            |c| Some(c.writes_completed as f64),
        ),
        (
            "node_disk_writes_merged",
            "The number of writes merged.",
            |c| Some(c.writes_merged as f64),
        ),
        (
            "node_disk_written_bytes",
            "The total number of bytes written successfully.",
            |c| Some(c.written_bytes as f64),
        ),
        (
            "node_disk_write_time_seconds",
            "This is the total number of seconds spent by all writes.",
            |c| Some(c.write_time_millis as f64 / 1000.0),
        ),
        (
            "node_disk_io_time_seconds",
            "Total seconds spent doing I/Os.",
            |c| Some(c.io_time_millis as f64 / 1000.0),
        ),
        (
            "node_disk_io_time_weighted_seconds",
            "The weighted # of seconds spent doing I/Os.",
            |c| Some(c.io_weighted_time_millis as f64 / 1000.0),
        ),
        (
            "node_disk_discards_completed",
            "The total number of discards completed successfully.",
            |c| c.discards_completed.map(|v| v as f64),
        ),
        (
            "node_disk_discards_merged",
            "The total number of discards merged.",
            |c| c.discards_merged.map(|v| v as f64),
        ),
        // node_exporter reports raw 512-byte sectors here, not bytes.
        (
            "node_disk_discarded_sectors",
            "The total number of sectors discarded successfully.",
            |c| c.discarded_bytes.map(|v| (v / 512) as f64),
        ),
        (
            "node_disk_discard_time_seconds",
            "This is the total number of seconds spent by all discards.",
            |c| c.discard_time_millis.map(|v| v as f64 / 1000.0),
        ),
        (
            "node_disk_flush_requests",
            "The total number of flush requests completed successfully",
            |c| c.flushes_completed.map(|v| v as f64),
        ),
        (
            "node_disk_flush_requests_time_seconds",
            "This is the total number of seconds spent by all flush requests.",
            |c| c.flush_time_millis.map(|v| v as f64 / 1000.0),
        ),
    ];
    let with_counters = || {
        report
            .disks
            .iter()
            .filter_map(|d| d.counters.as_ref().map(|c| (d.name.as_str(), c)))
    };
    for (name, help, pick) in counters {
        family(
            enc,
            name,
            help,
            MetricType::Counter,
            with_counters().filter_map(|(dev, c)| pick(c).map(|v| ([("device", dev)], v))),
        )?;
    }
    family(
        enc,
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        MetricType::Gauge,
        with_counters().map(|(dev, c)| ([("device", dev)], c.io_in_progress as f64)),
    )?;
    Ok(())
}
