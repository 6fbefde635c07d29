//! Issue 12, finding 3: a measurement result too large for one report made the
//! agent's next report exceed the coordinator's limit, so the node went stale and the
//! run stayed `running`. Through the real measurement run and the real collector:
//! every report stays under [`aistor_proto::MAX_REPORT_BYTES`] and every result
//! arrives.

use aistor_agent::collector::{Along, Collector};
use aistor_agent::measure;
use aistor_agent::model::{NodeReading, StaticIdentity};
use aistor_agent::report::{ReportBuilder, ReportConfig};
use aistor_agent::source::{CgroupReader, HostFs, NodeSource};
use aistor_proto::MAX_REPORT_BYTES;
use aistor_proto::v1 as pb;
use prost::Message;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const PROC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc");
const CGROUP_V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cgroup/v2");

/// The recorded /proc files, a second later on every read.
struct Recorded {
    at: Duration,
}

impl NodeSource for Recorded {
    fn read(&mut self) -> NodeReading {
        self.at += Duration::from_secs(1);
        let file = |name: &str| Ok(std::fs::read_to_string(Path::new(PROC).join(name)).unwrap());
        NodeReading {
            monotonic: self.at,
            wall_unix_nanos: 1_795_393_676_000_000_000 + self.at.as_secs() * 1_000_000_000,
            stat: file("stat"),
            meminfo: file("meminfo"),
            pressure_cpu: file("pressure-cpu"),
            pressure_memory: file("pressure-memory"),
            pressure_io: file("pressure-io"),
            diskstats: file("diskstats-20"),
        }
    }
}

fn collector() -> Collector {
    let builder = ReportBuilder::new(
        ReportConfig {
            agent_instance: "1-1".into(),
            collect_interval: Duration::from_secs(1),
            disk_exclude: regex::Regex::new(aistor_agent::config::DEFAULT_DISK_EXCLUDE).unwrap(),
            ticks_per_second: 100,
        },
        StaticIdentity {
            name: "n1".into(),
            machine_id: Ok("m".into()),
            boot_id: Ok("b".into()),
            kernel_version: Ok("6.18".into()),
            os_image: Ok("test".into()),
            cgroup_mode: Ok(pb::CgroupMode::V2),
        },
    );
    Collector::new(
        Box::new(Recorded { at: Duration::ZERO }),
        Box::new(HashMap::new()),
        builder,
        100,
        Err("not measured in this test".into()),
        Err(pb::GpuSection::default()),
    )
}

fn cgroup_run(id: &str, path: String) -> pb::MeasureRun {
    pb::MeasureRun {
        id: id.into(),
        target: Some(pb::MeasureTarget {
            target: Some(pb::measure_target::Target::CgroupPath(path)),
        }),
        samples: 2,
        interval_nanos: 10_000_000,
        trim: 0.0,
    }
}

fn along(measurements: Vec<pb::MeasurementResult>) -> Along {
    Along {
        measurements,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_run_on_a_three_mib_cgroup_path_arrives_in_a_report_under_the_limit() {
    let reader = CgroupReader::detect(HostFs::new(CGROUP_V2)).expect("fixture cgroupfs");
    let path = "a/".repeat(3 << 19);
    let huge = measure::run(cgroup_run("m-1", path.clone()), "n1", &[], &reader).await;
    // The real run repeats the path in its target and its error: over 6 MiB.
    assert!(huge.error.contains(&path[..1000]), "{}", &huge.error[..200]);
    assert!(huge.encoded_len() > MAX_REPORT_BYTES);
    // A real run of a fixture cgroup, which must ride along untouched.
    let normal = measure::run(
        cgroup_run("m-2", "aistor.slice/fixture.service".into()),
        "n1",
        &[],
        &reader,
    )
    .await;
    assert_eq!(normal.error, "");

    let mut c = collector();
    let (published, _) = c.collect(along(vec![huge, normal.clone()]));
    let report = &published.report;
    assert!(
        report.encoded_len() <= MAX_REPORT_BYTES,
        "{}",
        report.encoded_len()
    );
    let ids: Vec<&str> = report.measurements.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m-1", "m-2"]);
    let cut = &report.measurements[0];
    assert!(cut.error.len() <= 4096);
    assert!(
        cut.truncated.contains("run.target.cgroup_path cut from"),
        "{}",
        cut.truncated
    );
    assert_eq!(report.measurements[1], normal);
}

#[tokio::test]
async fn results_too_large_together_are_spread_over_successive_reports() {
    // Five results of ~1.7 MB: two per report, all of them delivered whole.
    let sample = pb::MeasureSample {
        wall_time_unix_nanos: 1,
        elapsed_nanos: 1_000_000_000,
        cpu_millicores: Some(1.5),
        memory_working_set_bytes: Some(1 << 30),
        memory_rss_bytes: Some(1 << 29),
        io_read_bytes_per_second: Some(1.5),
        io_write_bytes_per_second: Some(2.5),
        io_reads_per_second: Some(3.5),
        io_writes_per_second: Some(4.5),
    };
    let results: Vec<pb::MeasurementResult> = (1..=5)
        .map(|i| pb::MeasurementResult {
            id: format!("m-{i}"),
            node: "n1".into(),
            targets: vec![pb::MeasuredCgroup {
                kind: "cgroup".into(),
                samples: vec![sample; 25_000],
                samples_taken: 25_000,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let each = results[0].encoded_len();
    assert!(
        2 * each < MAX_REPORT_BYTES - 10_000 && 3 * each > MAX_REPORT_BYTES,
        "{each}"
    );
    let mut c = collector();
    let mut delivered = Vec::new();
    let (first, _) = c.collect(along(results.clone()));
    delivered.extend(first.report.measurements.clone());
    for _ in 0..4 {
        let (next, _) = c.collect(Along::default());
        assert!(next.report.encoded_len() <= MAX_REPORT_BYTES);
        delivered.extend(next.report.measurements.clone());
    }
    assert!(first.report.encoded_len() <= MAX_REPORT_BYTES);
    assert_eq!(first.report.measurements.len(), 2);
    assert_eq!(delivered, results, "every result, whole, in order");
}
