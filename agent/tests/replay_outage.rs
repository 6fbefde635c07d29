//! A 5-minute coordinator outage at 110 pods × 3 containers and a 1 s interval fits the
//! default replay buffer with nothing dropped, and what is replayed restores to exactly the
//! reports collected. Time is the buffer's (each report's collection time), not the wall
//! clock: 300 reports are pushed one simulated second apart, none acknowledged.
//!
//! The reports are built the way the agent builds them on a v1/hybrid host, the heavier
//! case: every cgroup lists the values its hierarchy lacks, each reason naming the cgroup's
//! path; CPU, memory usage and pids change every tick, and each cgroup's slow-cadence values
//! every 10 s, staggered as the sampler staggers them.

use aistor_agent::args::{Cli, Command};
use aistor_agent::report_delta::Picture;
use aistor_agent::uplink::ReplayBuffer;
use aistor_proto::v1 as pb;
use clap::Parser;
use prost::Message;
use std::time::Duration;

const PODS: u64 = 110;
const CONTAINERS: u64 = 3;
const OUTAGE: u64 = 300;
const SLOW_EVERY: u64 = 10;

fn missing(path: &str) -> Vec<pb::Missing> {
    let pressure = |file: &str| {
        format!("/sys/fs/cgroup/unified/{path}/{file}: No such file or directory (os error 2)")
    };
    let mut list = vec![
        pb::Missing {
            field: "memory.slab_reclaimable_bytes".into(),
            reason: "cgroup v1 memory.stat has no slab counters".into(),
        },
        pb::Missing {
            field: "memory.slab_unreclaimable_bytes".into(),
            reason: "cgroup v1 memory.stat has no slab counters".into(),
        },
        pb::Missing {
            field: "memory.oom_events_total".into(),
            reason: "cgroup v1 counts no OOM events (memory.oom_control has only oom_kill)".into(),
        },
    ];
    for (field, file) in [
        ("pressure.cpu", "cpu.pressure"),
        ("pressure.memory", "memory.pressure"),
        ("pressure.io", "io.pressure"),
    ] {
        list.push(pb::Missing {
            field: field.into(),
            reason: pressure(file),
        });
    }
    list
}

/// One cgroup's usage at tick `t` (seconds): fast values move every tick, slow ones are
/// those of its latest slow read (every SLOW_EVERY s from its own offset).
fn usage(n: u64, t: u64, path: &str) -> pb::CgroupUsage {
    let offset = n % SLOW_EVERY;
    let slow_at = if t >= offset {
        t - (t - offset) % SLOW_EVERY
    } else {
        0
    };
    let s = slow_at * 1000 + n;
    pb::CgroupUsage {
        cpu: Some(pb::CgroupCpu {
            usage_nanos_total: Some(t * 50_000_000 + n * 7_777_777),
            user_nanos_total: Some(t * 30_000_000 + n),
            system_nanos_total: Some(t * 20_000_000 + n),
            usage_millicores: Some(50.0 + (n % 7) as f64 * 0.37),
            periods_total: Some(s * 10),
            throttled_periods_total: Some(s),
            throttled_nanos_total: Some(s * 1_000_000),
            limit_millicores: Some(1000.0),
        }),
        memory: Some(pb::CgroupMemory {
            usage_bytes: Some(100_000_000 + t * 4096 + n),
            working_set_bytes: Some(80_000_000 + s),
            rss_bytes: Some(60_000_000 + s),
            cache_bytes: Some(40_000_000 + s),
            anon_bytes: Some(60_000_000 + s),
            file_bytes: Some(40_000_000 + s),
            active_file_bytes: Some(20_000_000 + s),
            inactive_file_bytes: Some(20_000_000 + s),
            shmem_bytes: Some(4096),
            kernel_bytes: Some(2_000_000 + s),
            swap_bytes: Some(0),
            peak_bytes: Some(120_000_000 + s),
            limit_bytes: Some(1 << 30),
            oom_kill_events_total: Some(0),
            ..Default::default()
        }),
        io: Some(pb::CgroupIo {
            counters: Some(pb::IoCounters {
                read_bytes_total: s * 4096,
                write_bytes_total: s * 8192,
                reads_total: s,
                writes_total: s * 2,
                ..Default::default()
            }),
            rates: Some(pb::IoRates {
                read_bytes_per_second: (s % 97) as f64 * 409.6,
                write_bytes_per_second: (s % 89) as f64 * 819.2,
                reads_per_second: (s % 97) as f64 / 10.0,
                writes_per_second: (s % 89) as f64 / 5.0,
            }),
            devices: vec![pb::DeviceIo {
                major: 8,
                minor: 0,
                device: "sda".into(),
                counters: None,
                rates: None,
            }],
        }),
        pressure: None,
        pids_current: Some(3 + n % 5),
        missing: missing(path),
        slow: Some(pb::SlowReading {
            monotonic_nanos: slow_at * 1_000_000_000 + 5,
            interval_nanos: (slow_at >= SLOW_EVERY).then_some(SLOW_EVERY * 1_000_000_000),
            unchanged: false,
        }),
        missing_unchanged: false,
    }
}

fn report(seq: u64) -> pb::NodeReport {
    let t = seq;
    let pods = (0..PODS)
        .map(|p| {
            let uid = format!("{p:08x}-9b1d-4e6f-8a2b-5c7d9e1f3a4b");
            let cgroup_path = format!("kubepods/burstable/pod{uid}");
            let containers = (0..CONTAINERS)
                .map(|c| {
                    let id = format!("{:064x}", p * 16 + c + 1);
                    let path = format!("{cgroup_path}/{id}");
                    pb::Container {
                        name: format!("container-{c}"),
                        cgroup_path: path.clone(),
                        pid: Some(10_000 + (p * 16 + c) as u32),
                        state: pb::ContainerState::Running as i32,
                        image: format!("registry.example.com/team/app-{c}:v1.{}", p % 7),
                        usage: Some(usage(p * 16 + c + 1, t, &path)),
                        id,
                        ..Default::default()
                    }
                })
                .collect();
            pb::Pod {
                name: format!("workload-{p:03}"),
                namespace: "default".into(),
                qos_class: "burstable".into(),
                usage: Some(usage(p * 16, t, &cgroup_path)),
                cgroup_path,
                uid,
                containers,
                discovered_by: "containerd".into(),
                ..Default::default()
            }
        })
        .collect();
    pb::NodeReport {
        agent_instance: "1-2".into(),
        seq,
        monotonic_nanos: t * 1_000_000_000,
        collect_interval_nanos: 1_000_000_000,
        pods,
        ..Default::default()
    }
}

fn default_buffer() -> ReplayBuffer {
    let cli = Cli::try_parse_from(["aistor-agent", "run", "--node-name", "n1"]).unwrap();
    let Command::Run(run) = cli.command else {
        panic!("run")
    };
    let c = run.into_config();
    ReplayBuffer::new(c.replay_buffer).with_max_bytes(c.replay_buffer_max_bytes)
}

#[test]
fn a_five_minute_outage_at_110_pods_loses_nothing() {
    let mut buffer = default_buffer();
    let full_size = report(1).encoded_len();
    // Acknowledged before the outage: the coordinator has report 1.
    buffer.push(Duration::from_secs(1), report(1));
    buffer.ack(1);
    for seq in 2..=OUTAGE + 1 {
        buffer.push(Duration::from_secs(seq), report(seq));
    }
    assert_eq!(buffer.dropped_total(), 0, "nothing dropped");
    assert_eq!(buffer.len() as u64, OUTAGE);
    let per_report = buffer.bytes() / buffer.len();
    println!(
        "{OUTAGE} reports of {PODS} pods x {CONTAINERS} containers: {:.1} KiB each on average as buffered ({:.1} KiB in full), {:.1} MiB in all",
        per_report as f64 / 1024.0,
        full_size as f64 / 1024.0,
        buffer.bytes() as f64 / (1 << 20) as f64
    );

    // The coordinator comes back (a new stream, so it knows nothing): the first report is
    // sent restored in full, the rest as buffered; restored, each is the report collected.
    let mut receiver = Picture::default();
    let first = buffer.first_of_stream(2).expect("report 2 is buffered");
    assert!(first.pods.iter().all(|p| !p.facts_unchanged));
    assert_eq!(receiver.restore(&first).unwrap(), report(2));
    let mut next = 3;
    while let Some(sent) = buffer.next_from(next) {
        assert_eq!(sent.seq, next);
        assert_eq!(
            receiver.restore(sent).unwrap(),
            report(next),
            "report {next}"
        );
        next += 1;
    }
    assert_eq!(next, OUTAGE + 2, "every report replayed");

    // Acknowledged up to the middle, then the stream breaks again: the next stream starts
    // at the first unacknowledged report, restored in full again.
    buffer.ack(150);
    let mut receiver = Picture::default();
    let first = buffer.first_of_stream(151).unwrap();
    assert_eq!(receiver.restore(&first).unwrap(), report(151));
    assert_eq!(
        receiver.restore(buffer.next_from(152).unwrap()).unwrap(),
        report(152)
    );
}

/// The same outage with a report that does not fit: the budget drops the oldest and counts
/// them, and what is left still restores (the first report after the gap is sent in full).
#[test]
fn an_outage_over_the_budget_drops_the_oldest_and_replays_the_rest_whole() {
    let one = {
        let mut b = ReplayBuffer::new(Duration::from_secs(300));
        b.push(Duration::ZERO, report(1));
        b.push(Duration::from_secs(1), report(2));
        b.bytes()
    };
    let mut buffer = ReplayBuffer::new(Duration::from_secs(300)).with_max_bytes(one * 2);
    for seq in 1..=40 {
        buffer.push(Duration::from_secs(seq), report(seq));
    }
    assert!(buffer.dropped_total() > 0);
    let oldest = buffer.oldest_seq().unwrap();
    let mut receiver = Picture::default();
    assert_eq!(
        receiver
            .restore(&buffer.first_of_stream(oldest).unwrap())
            .unwrap(),
        report(oldest)
    );
    for seq in oldest + 1..=40 {
        assert_eq!(
            receiver.restore(buffer.next_from(seq).unwrap()).unwrap(),
            report(seq)
        );
    }
}
