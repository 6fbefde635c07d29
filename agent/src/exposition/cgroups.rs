//! cAdvisor's `container_*` names and labels for pod and container cgroups.

use super::family;
use aistor_proto::v1::NodeReport;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::fmt;

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

pub(super) fn encode(enc: &mut DescriptorEncoder<'_>, report: &NodeReport) -> fmt::Result {
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
