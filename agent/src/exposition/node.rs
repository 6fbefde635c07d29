//! node_exporter's names for what the agent covers: CPU, memory, pressure, disks.

use super::{Published, family, single};
use crate::parse::stat::CpuTicks;
use aistor_proto::v1::NodeReport;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::fmt;

pub(super) fn encode(enc: &mut DescriptorEncoder<'_>, p: &Published) -> fmt::Result {
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

    encode_disks(enc, &p.report)
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
