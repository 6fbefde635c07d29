//! `CgroupReader` and `usage()` over the fixture host roots in tests/fixtures/cgroup (see its
//! README for which files were captured and which were written). Every expected number below is
//! the text of a fixture file.

use aistor_agent::cgroup_usage::usage;
use aistor_agent::parse::pressure::{PressureFile, Stall};
use aistor_agent::source::{
    CgroupCpuSample, CgroupMemorySample, CgroupRead, CgroupReader, CgroupSample, DeviceCounters,
    HostFs,
};
use aistor_proto::v1 as pb;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cgroup");
const SERVICE: &str = "aistor.slice/fixture.service";
const MEMORY_ONLY: &str = "/aistor.slice/memory-only.scope";
const POD: &str = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f6a3c2e_9b1d_4e6f_8a2b_5c7d9e1f3a4b.slice";
const CONTAINER: &str =
    "cri-containerd-3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b.scope";
const AT: Duration = Duration::from_secs(100);

fn root(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn reader(root: &Path) -> CgroupReader {
    CgroupReader::detect(HostFs::new(root))
        .expect("fixture mountinfo parses")
        .with_ticks_per_second(100)
}

fn present(read: CgroupRead) -> CgroupSample {
    match read {
        CgroupRead::Present(sample) => sample,
        CgroupRead::Vanished => panic!("the fixture cgroup should be present"),
    }
}

fn read(fixture: &str, path: &str) -> CgroupSample {
    present(reader(&root(fixture)).read(path, AT))
}

fn missing_fields(sample: &CgroupSample) -> Vec<&str> {
    sample.missing.iter().map(|(f, _)| f.as_str()).collect()
}

fn reason<'a>(sample: &'a CgroupSample, field: &str) -> &'a str {
    sample
        .missing
        .iter()
        .find(|(f, _)| f == field)
        .map(|(_, r)| r.as_str())
        .unwrap_or_else(|| panic!("{field} is not listed as missing: {:?}", sample.missing))
}

/// The captured hybrid `fixture.service` numbers (README table), the same on v1.
fn captured_service_cpu() -> CgroupCpuSample {
    CgroupCpuSample {
        usage_nanos: Some(770_318_647),
        user_nanos: Some(611_908_568),
        system_nanos: Some(143_976_205),
        periods: Some(18),
        throttled_periods: Some(14),
        throttled_nanos: Some(343_882_885),
        // cfs_quota_us 50000 / cfs_period_us 100000.
        limit_millicores: Some(500.0),
    }
}

fn captured_service_memory() -> CgroupMemorySample {
    CgroupMemorySample {
        usage_bytes: Some(91_693_056),
        // memory.usage_in_bytes − total_inactive_file = 91693056 − 16777216.
        working_set_bytes: Some(74_915_840),
        rss_bytes: Some(74_145_792),
        cache_bytes: Some(16_838_656),
        anon_bytes: Some(74_145_792),
        file_bytes: Some(16_838_656),
        active_file_bytes: Some(61_440),
        inactive_file_bytes: Some(16_777_216),
        shmem_bytes: Some(0),
        slab_reclaimable_bytes: None,
        slab_unreclaimable_bytes: None,
        kernel_bytes: Some(708_608),
        swap_bytes: Some(0),
        peak_bytes: Some(92_000_256),
        limit_bytes: Some(268_435_456),
        oom_events: None,
        oom_kill_events: Some(0),
    }
}

fn captured_service_io() -> BTreeMap<(u32, u32), DeviceCounters> {
    BTreeMap::from([(
        (254, 0),
        DeviceCounters {
            read_bytes: 10_543_104,
            write_bytes: 10_485_760,
            reads: 167,
            writes: 160,
            discard_bytes: Some(0),
            discards: Some(0),
        },
    )])
}

#[test]
fn hybrid_layout_from_the_captured_mountinfo() {
    let r = reader(&root("hybrid"));
    let layout = r.layout();
    assert_eq!(layout.mode, pb::CgroupMode::Hybrid);
    assert_eq!(layout.unified.as_deref(), Some("/sys/fs/cgroup/unified"));
    let v1: Vec<(&str, &str)> = layout
        .v1
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        v1,
        [
            ("blkio", "/sys/fs/cgroup/blkio"),
            ("cpu", "/sys/fs/cgroup/cpu"),
            ("cpuacct", "/sys/fs/cgroup/cpuacct"),
            ("cpuset", "/sys/fs/cgroup/cpuset"),
            ("devices", "/sys/fs/cgroup/devices"),
            ("freezer", "/sys/fs/cgroup/freezer"),
            ("memory", "/sys/fs/cgroup/memory"),
            ("name=systemd", "/sys/fs/cgroup/systemd"),
            ("pids", "/sys/fs/cgroup/pids"),
        ]
    );
    assert_eq!(
        r.hierarchy_dir("memory"),
        Some(root("hybrid").join("sys/fs/cgroup/memory"))
    );
    // A controller that no v1 hierarchy has: the unified hierarchy.
    assert_eq!(
        r.hierarchy_dir("io"),
        Some(root("hybrid").join("sys/fs/cgroup/unified"))
    );
}

#[test]
fn hybrid_service_reads_v1_controllers_and_unified_pressure() {
    let s = read("hybrid", SERVICE);
    assert_eq!(s.monotonic, AT);
    assert_eq!(s.cpu, captured_service_cpu());
    assert_eq!(s.memory, captured_service_memory());
    assert_eq!(s.io, Some(captured_service_io()));
    assert_eq!(s.pids_current, Some(1));
    // unified/aistor.slice/fixture.service/cpu.pressure
    assert_eq!(
        s.pressure.cpu,
        Some(PressureFile {
            some: Stall {
                avg10: 5.33,
                avg60: 1.13,
                avg300: 0.24,
                total_micros: 734_034
            },
            full: Some(Stall {
                avg10: 5.19,
                avg60: 1.10,
                avg300: 0.23,
                total_micros: 722_080
            }),
        })
    );
    assert_eq!(s.pressure.memory.map(|p| p.some.total_micros), Some(0));
    assert_eq!(s.pressure.io.map(|p| p.some.total_micros), Some(54_305));
    assert_eq!(
        missing_fields(&s),
        [
            "memory.slab_reclaimable_bytes",
            "memory.slab_unreclaimable_bytes",
            "memory.oom_events_total"
        ]
    );
    assert_eq!(
        reason(&s, "memory.slab_reclaimable_bytes"),
        "cgroup v1 memory.stat has no slab counters"
    );
}

#[test]
fn hybrid_cpuacct_stat_ticks_are_the_fallback_for_user_and_system() {
    let dir = copy_fixture("hybrid");
    let cg = dir.path().join("sys/fs/cgroup/cpuacct").join(SERVICE);
    std::fs::remove_file(cg.join("cpuacct.usage_user")).unwrap();
    std::fs::remove_file(cg.join("cpuacct.usage_sys")).unwrap();
    let s = present(reader(dir.path()).read(SERVICE, AT));
    // cpuacct.stat: "user 62", "system 14" at USER_HZ 100.
    assert_eq!(s.cpu.user_nanos, Some(620_000_000));
    assert_eq!(s.cpu.system_nanos, Some(140_000_000));
    assert_eq!(s.cpu.usage_nanos, Some(770_318_647));
}

#[test]
fn hybrid_root_has_unlimited_memory_and_no_pids_file() {
    let s = read("hybrid", "/");
    // memory/memory.limit_in_bytes is 9223372036854771712: unlimited, so absent and not missing.
    assert_eq!(s.memory.limit_bytes, None);
    // cpu/cpu.cfs_quota_us is -1: no quota, absent and not missing.
    assert_eq!(s.cpu.limit_millicores, None);
    let fields = missing_fields(&s);
    assert!(!fields.contains(&"memory.limit_bytes"), "{fields:?}");
    assert!(!fields.contains(&"cpu.limit_millicores"), "{fields:?}");
    let text = |rel: &str| {
        std::fs::read_to_string(root("hybrid").join("sys/fs/cgroup").join(rel))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(s.cpu.usage_nanos, Some(text("cpuacct/cpuacct.usage")));
    assert_eq!(
        s.memory.usage_bytes,
        Some(text("memory/memory.usage_in_bytes"))
    );
    // The root of the pids hierarchy has no pids.current.
    assert_eq!(s.pids_current, None);
    let pids = reason(&s, "pids_current");
    assert!(
        pids.ends_with(
            "hybrid/sys/fs/cgroup/pids/pids.current: No such file or directory (os error 2)"
        ),
        "{pids}"
    );
}

#[test]
fn hybrid_cgroup_in_one_hierarchy_only() {
    let s = read("hybrid", MEMORY_ONLY);
    assert!(s.memory.usage_bytes.is_some());
    assert!(s.memory.working_set_bytes.is_some());
    assert_eq!(s.cpu, CgroupCpuSample::default());
    assert_eq!(s.io, None);
    let usage = reason(&s, "cpu.usage_nanos_total");
    assert!(
        usage.ends_with(
            "hybrid/sys/fs/cgroup/cpuacct/aistor.slice/memory-only.scope/cpuacct.usage: No such file or directory (os error 2)"
        ),
        "{usage}"
    );
    assert!(reason(&s, "io").contains(
        "blkio/aistor.slice/memory-only.scope/blkio.throttle.io_service_bytes_recursive"
    ));
    assert!(
        reason(&s, "pressure.cpu").contains("unified/aistor.slice/memory-only.scope/cpu.pressure")
    );
}

#[test]
fn v1_layout_reads_the_same_files_without_pressure() {
    let r = reader(&root("v1"));
    assert_eq!(r.layout().mode, pb::CgroupMode::V1);
    assert_eq!(r.layout().unified, None);
    let s = present(r.read(SERVICE, AT));
    assert_eq!(s.cpu, captured_service_cpu());
    assert_eq!(s.memory, captured_service_memory());
    assert_eq!(s.io, Some(captured_service_io()));
    assert_eq!(s.pressure.cpu, None);
    assert_eq!(
        reason(&s, "pressure.io"),
        "no cgroup2 hierarchy is mounted (pressure files are cgroup v2 only)"
    );
}

#[test]
fn v2_service_captured_cpu_and_written_memory_io() {
    let r = reader(&root("v2"));
    assert_eq!(r.layout().mode, pb::CgroupMode::V2);
    assert_eq!(r.layout().unified.as_deref(), Some("/sys/fs/cgroup"));
    assert_eq!(
        r.hierarchy_dir("memory"),
        Some(root("v2").join("sys/fs/cgroup"))
    );
    let s = present(r.read(SERVICE, AT));
    // Captured cpu.stat: usage_usec 770318 user_usec 623593 system_usec 146725, in nanoseconds.
    assert_eq!(
        s.cpu,
        CgroupCpuSample {
            usage_nanos: Some(770_318_000),
            user_nanos: Some(623_593_000),
            system_nanos: Some(146_725_000),
            // "max 100000": no quota.
            limit_millicores: None,
            ..Default::default()
        }
    );
    assert_eq!(
        s.memory,
        CgroupMemorySample {
            usage_bytes: Some(91_693_056),
            working_set_bytes: Some(91_693_056 - 16_777_216),
            rss_bytes: Some(74_145_792),
            cache_bytes: Some(16_838_656),
            anon_bytes: Some(74_145_792),
            file_bytes: Some(16_838_656),
            active_file_bytes: Some(61_440),
            inactive_file_bytes: Some(16_777_216),
            shmem_bytes: Some(0),
            slab_reclaimable_bytes: Some(131_072),
            slab_unreclaimable_bytes: Some(262_144),
            kernel_bytes: Some(708_608),
            swap_bytes: None,
            peak_bytes: None,
            // memory.max "max".
            limit_bytes: None,
            oom_events: Some(0),
            oom_kill_events: Some(0),
        }
    );
    assert_eq!(
        s.io.as_ref().map(|d| d.keys().copied().collect::<Vec<_>>()),
        Some(vec![(8, 16), (254, 0)])
    );
    assert_eq!(s.pids_current, Some(1));
    assert_eq!(
        missing_fields(&s),
        [
            "cpu.periods_total",
            "cpu.throttled_periods_total",
            "cpu.throttled_nanos_total",
            "memory.swap_bytes",
            "memory.peak_bytes",
        ]
    );
    assert!(reason(&s, "cpu.periods_total").ends_with(
        "v2/sys/fs/cgroup/aistor.slice/fixture.service/cpu.stat: no \"nr_periods\" key"
    ));
    assert!(
        reason(&s, "memory.peak_bytes").ends_with(
            "v2/sys/fs/cgroup/aistor.slice/fixture.service/memory.peak: No such file or directory (os error 2)"
        )
    );
}

#[test]
fn v2_pod_every_value_from_the_written_files() {
    let s = read("v2", POD);
    assert_eq!(
        s.cpu,
        CgroupCpuSample {
            usage_nanos: Some(81_234_567_000),
            user_nanos: Some(60_123_456_000),
            system_nanos: Some(21_111_111_000),
            periods: Some(51_234),
            throttled_periods: Some(1_234),
            throttled_nanos: Some(98_765_432_000),
            limit_millicores: Some(500.0),
        }
    );
    assert_eq!(
        s.memory,
        CgroupMemorySample {
            usage_bytes: Some(201_326_592),
            working_set_bytes: Some(201_326_592 - 52_428_800),
            rss_bytes: Some(138_412_032),
            cache_bytes: Some(58_720_256),
            anon_bytes: Some(138_412_032),
            file_bytes: Some(58_720_256),
            active_file_bytes: Some(4_194_304),
            inactive_file_bytes: Some(52_428_800),
            shmem_bytes: Some(2_097_152),
            slab_reclaimable_bytes: Some(983_040),
            slab_unreclaimable_bytes: Some(507_904),
            kernel_bytes: Some(3_407_872),
            swap_bytes: Some(0),
            peak_bytes: Some(268_431_360),
            limit_bytes: Some(268_435_456),
            oom_events: Some(2),
            oom_kill_events: Some(1),
        }
    );
    let io = s.io.clone().expect("io.stat");
    let dev = |r, w, ri, wi, db, di| DeviceCounters {
        read_bytes: r,
        write_bytes: w,
        reads: ri,
        writes: wi,
        discard_bytes: db,
        discards: di,
    };
    assert_eq!(
        io,
        BTreeMap::from([
            (
                (8, 0),
                dev(
                    90_430_464,
                    299_008_000,
                    8950,
                    1252,
                    Some(50_331_648),
                    Some(3021)
                )
            ),
            (
                (8, 16),
                dev(1_459_200, 314_773_504, 192, 353, Some(0), Some(0))
            ),
            // The bare "253:0 " line: no I/O.
            ((253, 0), dev(0, 0, 0, 0, None, None)),
            // Extra cost.* keys on the line are skipped.
            ((259, 0), dev(180_224, 1_118_208, 44, 204, Some(0), Some(0))),
        ])
    );
    assert_eq!(s.pids_current, Some(23));
    assert_eq!(
        s.pressure
            .memory
            .map(|p| (p.some.total_micros, p.full.map(|f| f.avg10))),
        Some((27_182_818, Some(10.0)))
    );
    assert!(s.missing.is_empty(), "{:?}", s.missing);

    // On the wire.
    let u = usage(None, &s);
    let cpu = u.cpu.expect("cpu");
    assert_eq!(cpu.limit_millicores, Some(500.0));
    assert_eq!(cpu.throttled_nanos_total, Some(98_765_432_000));
    let mem = u.memory.expect("memory");
    assert_eq!(mem.working_set_bytes, Some(148_897_792));
    assert_eq!(mem.oom_kill_events_total, Some(1));
    let io = u.io.expect("io");
    let total = io.counters.expect("totals");
    assert_eq!(total.read_bytes_total, 90_430_464 + 1_459_200 + 180_224);
    assert_eq!(total.writes_total, 1252 + 353 + 204);
    // 253:0 has no discard counts, so the total has none either.
    assert_eq!(total.discard_bytes_total, None);
    assert_eq!(io.devices.len(), 4);
    assert_eq!(io.devices[0].device, "");
    assert_eq!(u.pids_current, Some(23));
}

#[test]
fn v2_root_io_stat_with_iocost_root_keys() {
    let s = read("v2", "");
    assert_eq!(
        s.io.and_then(|d| d.get(&(8, 0)).copied()),
        Some(DeviceCounters {
            read_bytes: 90_430_464,
            write_bytes: 299_008_000,
            reads: 8950,
            writes: 1252,
            discard_bytes: Some(50_331_648),
            discards: Some(3021),
        })
    );
}

#[test]
fn working_set_is_clamped_at_zero() {
    let s = read("v2", &format!("{POD}/{CONTAINER}"));
    // memory.current 4096 < inactive_file 8192.
    assert_eq!(s.memory.usage_bytes, Some(4096));
    assert_eq!(s.memory.inactive_file_bytes, Some(8192));
    assert_eq!(s.memory.working_set_bytes, Some(0));
}

#[test]
fn a_cgroup_that_does_not_exist_has_vanished() {
    for fixture in ["hybrid", "v1", "v2"] {
        let r = reader(&root(fixture));
        assert_eq!(r.read("aistor.slice/ended.scope", AT), CgroupRead::Vanished);
        assert!(!r.exists("aistor.slice/ended.scope"));
        assert!(r.exists(SERVICE), "{fixture}");
        assert!(r.exists(&format!("/{SERVICE}/")), "{fixture}");
        // ".." would leave the hierarchy: no cgroup has such a path.
        assert_eq!(
            r.read(&format!("{SERVICE}/../fixture.service"), AT),
            CgroupRead::Vanished
        );
        assert!(!r.exists("aistor.slice/.."));
    }
}

#[test]
fn a_cgroup_removed_between_readings_has_vanished() {
    let dir = copy_fixture("v2");
    let r = reader(dir.path());
    present(r.read(POD, AT));
    std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup").join(POD)).unwrap();
    assert_eq!(r.read(POD, AT), CgroupRead::Vanished);
    assert!(!r.exists(POD));
}

#[test]
fn a_missing_or_malformed_file_is_absent_with_a_reason_naming_the_path() {
    let dir = copy_fixture("hybrid");
    let mem = dir.path().join("sys/fs/cgroup/memory").join(SERVICE);
    std::fs::remove_file(mem.join("memory.kmem.usage_in_bytes")).unwrap();
    std::fs::write(mem.join("memory.usage_in_bytes"), "lots\n").unwrap();
    let s = present(reader(dir.path()).read(SERVICE, AT));
    assert_eq!(s.memory.kernel_bytes, None);
    let kernel = reason(&s, "memory.kernel_bytes");
    let expected_path = mem.join("memory.kmem.usage_in_bytes");
    assert_eq!(
        kernel,
        format!(
            "{}: No such file or directory (os error 2)",
            expected_path.display()
        )
    );
    assert_eq!(s.memory.usage_bytes, None);
    assert_eq!(
        reason(&s, "memory.usage_bytes"),
        format!(
            "{}: memory.usage_in_bytes: line 1: expected a number for the value, got \"lots\"",
            mem.join("memory.usage_in_bytes").display()
        )
    );
    assert_eq!(s.memory.working_set_bytes, None);
    assert_eq!(
        reason(&s, "memory.working_set_bytes"),
        "needs memory.usage_bytes, which is absent"
    );
    // The rest of the cgroup is still read.
    assert_eq!(s.memory.inactive_file_bytes, Some(16_777_216));
    assert_eq!(s.cpu, captured_service_cpu());
}

#[test]
fn detect_names_the_mountinfo_path_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let Err(err) = CgroupReader::detect(HostFs::new(dir.path())) else {
        panic!("no mountinfo should fail");
    };
    assert!(err.not_found);
    assert!(err.path.ends_with("proc/1/mountinfo"), "{err}");
    std::fs::create_dir_all(dir.path().join("proc/1")).unwrap();
    std::fs::write(
        dir.path().join("proc/1/mountinfo"),
        "22 1 0:2 / / rw - ext4 /dev/vda rw\n",
    )
    .unwrap();
    let Err(err) = CgroupReader::detect(HostFs::new(dir.path())) else {
        panic!("no cgroup mount should fail");
    };
    assert!(!err.not_found);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: mountinfo: line 0: no cgroup or cgroup2 filesystem is mounted",
            dir.path().join("proc/1/mountinfo").display()
        )
    );
}

#[test]
fn usage_rates_over_the_measured_elapsed_time_and_no_rate_after_a_reset() {
    let dir = copy_fixture("hybrid");
    let r = reader(dir.path());
    let cg = |h: &str, f: &str| {
        dir.path()
            .join("sys/fs/cgroup")
            .join(h)
            .join(SERVICE)
            .join(f)
    };
    let t0 = Duration::from_millis(5_000);
    let first = present(r.read(SERVICE, t0));

    let u = usage(None, &first);
    assert_eq!(u.cpu.as_ref().unwrap().usage_millicores, None);
    assert!(u.missing.iter().any(|m| m.field == "cpu.usage_millicores"
        && m.reason == "no previous reading to take a rate from"));

    // 400 ms of CPU, 2 MiB read and 1 MiB written in 50 + 25 I/Os, and 0.2 s of CPU stall,
    // over a measured 800 ms.
    std::fs::write(cg("cpuacct", "cpuacct.usage"), "1170318647\n").unwrap();
    std::fs::write(
        cg("blkio", "blkio.throttle.io_service_bytes_recursive"),
        "254:0 Read 12640256\n254:0 Write 11534336\n254:0 Sync 24174592\n254:0 Async 0\n\
         254:0 Discard 0\n254:0 Total 24174592\nTotal 24174592\n",
    )
    .unwrap();
    std::fs::write(
        cg("blkio", "blkio.throttle.io_serviced_recursive"),
        "254:0 Read 217\n254:0 Write 185\n254:0 Sync 402\n254:0 Async 0\n254:0 Discard 0\n\
         254:0 Total 402\nTotal 402\n",
    )
    .unwrap();
    std::fs::write(
        cg("unified", "cpu.pressure"),
        "some avg10=5.33 avg60=1.13 avg300=0.24 total=934034\n\
         full avg10=5.19 avg60=1.10 avg300=0.23 total=722080\n",
    )
    .unwrap();
    let t1 = t0 + Duration::from_millis(800);
    let second = present(r.read(SERVICE, t1));
    let u = usage(Some(&first), &second);
    let cpu = u.cpu.expect("cpu");
    assert_eq!(cpu.usage_nanos_total, Some(1_170_318_647));
    // 400000000 ns / 800000000 ns × 1000.
    assert_eq!(cpu.usage_millicores, Some(500.0));
    let io = u.io.expect("io");
    let rates = io.rates.expect("total rates");
    assert_eq!(rates.read_bytes_per_second, 2_097_152.0 / 0.8);
    assert_eq!(rates.write_bytes_per_second, 1_048_576.0 / 0.8);
    assert_eq!(rates.reads_per_second, 50.0 / 0.8);
    assert_eq!(rates.writes_per_second, 25.0 / 0.8);
    assert_eq!(io.devices[0].rates, Some(rates));
    assert_eq!((io.devices[0].major, io.devices[0].minor), (254, 0));
    let stall = u.pressure.unwrap().cpu.unwrap();
    // 200000 µs stalled over 0.8 s = 25 %; the full line did not move.
    assert_eq!(stall.some.unwrap().stalled_percent, Some(25.0));
    assert_eq!(stall.full.unwrap().stalled_percent, Some(0.0));
    let rate_missing: Vec<&str> = u
        .missing
        .iter()
        .map(|m| m.field.as_str())
        .filter(|f| f.contains("rate") || f.contains("millicores") || f.contains("percent"))
        .collect();
    assert!(rate_missing.is_empty(), "{rate_missing:?}");

    // The counter went backwards (the cgroup was recreated): no rate, with the reason.
    std::fs::write(cg("cpuacct", "cpuacct.usage"), "1000\n").unwrap();
    let third = present(r.read(SERVICE, t1 + Duration::from_secs(1)));
    let u = usage(Some(&second), &third);
    assert_eq!(u.cpu.as_ref().unwrap().usage_millicores, None);
    assert_eq!(u.cpu.as_ref().unwrap().usage_nanos_total, Some(1000));
    assert!(
        u.missing.iter().any(|m| m.field == "cpu.usage_millicores"
            && m.reason
                == "cpu.usage_nanos_total went backwards (1170318647 to 1000): counter reset"),
        "{:?}",
        u.missing
    );
    // Zero elapsed time: no rate either.
    let u = usage(Some(&third), &third);
    assert!(
        u.missing
            .iter()
            .any(|m| m.field == "io.rates"
                && m.reason == "no time elapsed since the previous reading")
    );
}

/// Copies a fixture host root (following the v1 fixture's symbolic link) into a temporary folder.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            // metadata() follows symbolic links.
            if std::fs::metadata(entry.path()).unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&root(name), dir.path());
    dir
}

/// `read_fast` reads CPU usage, memory usage and pids only; the slow-cadence values are
/// absent and not listed as missing (they were not read, not found missing).
#[test]
fn a_fast_read_leaves_the_slow_cadence_values_out() {
    let r = reader(&root("v2"));
    let fast = present(r.read_fast(POD, AT));
    let full = present(r.read(POD, AT));
    assert!(!fast.slow && full.slow);
    assert_eq!(fast.cpu.usage_nanos, full.cpu.usage_nanos);
    assert_eq!(fast.cpu.user_nanos, Some(60_123_456_000));
    assert_eq!((fast.cpu.periods, fast.cpu.limit_millicores), (None, None));
    assert_eq!(
        fast.memory,
        CgroupMemorySample {
            usage_bytes: Some(201_326_592),
            ..Default::default()
        }
    );
    assert_eq!(fast.pids_current, full.pids_current);
    assert_eq!(fast.io, None);
    assert_eq!(fast.pressure, Default::default());
    assert!(fast.missing.is_empty(), "{:?}", fast.missing);
    assert!(full.io.is_some() && full.pressure.cpu.is_some());
}

/// The sampler reads the slow-cadence values every `slow_every` and carries the latest ones,
/// with the time they were read, in between; CPU and memory usage are read every tick.
#[test]
fn the_sampler_reads_slow_values_on_their_cadence_and_says_when() {
    use aistor_agent::pods::sampler::PodSampler;
    use aistor_agent::pods::targets::PodTarget;
    let dir = copy_fixture("v2");
    let r = reader(dir.path());
    let targets = [PodTarget {
        uid: "0f6a3c2e-9b1d-4e6f-8a2b-5c7d9e1f3a4b".into(),
        name: String::new(),
        namespace: String::new(),
        qos_class: "burstable".into(),
        cgroup_path: POD.into(),
        discovered_by: "cgroupfs",
        containers: Vec::new(),
    }];
    let pod_dir = dir.path().join("sys/fs/cgroup").join(POD);
    let write = |file: &str, text: &str| std::fs::write(pod_dir.join(file), text).unwrap();
    let stat = std::fs::read_to_string(pod_dir.join("memory.stat")).unwrap();
    let usage = |pods: &[pb::Pod]| pods[0].usage.clone().expect("usage");
    let devices = Default::default();
    for (slow_every, slow_again) in [(Duration::from_secs(3600), false), (Duration::ZERO, true)] {
        write("memory.current", "201326592\n");
        write("memory.stat", &stat);
        let mut sampler = PodSampler::new(slow_every);
        let first = usage(&sampler.sample(&r, &targets, &devices));
        let read_at = first.slow.expect("the first reading reads everything");
        assert_eq!(read_at.interval_nanos, None);
        let working_set = 201_326_592 - 52_428_800;
        assert_eq!(first.memory.unwrap().working_set_bytes, Some(working_set));
        // Memory grows by 1 MiB, all of it inactive file pages: the working set stays.
        write("memory.current", "202375168\n");
        write(
            "memory.stat",
            &stat.replace("inactive_file 52428800", "inactive_file 53477376"),
        );
        let second = usage(&sampler.sample(&r, &targets, &devices));
        let m = second.memory.unwrap();
        assert_eq!(m.usage_bytes, Some(202_375_168), "read every tick");
        assert_eq!(m.working_set_bytes, Some(working_set));
        assert_eq!(second.cpu.unwrap().limit_millicores, Some(500.0));
        assert!(second.io.is_some() && second.pressure.is_some());
        let slow = second.slow.unwrap();
        if slow_again {
            assert!(slow.monotonic_nanos > read_at.monotonic_nanos);
            assert!(slow.interval_nanos.is_some());
            assert_eq!(m.inactive_file_bytes, Some(53_477_376));
        } else {
            assert_eq!(
                slow, read_at,
                "the slow values are those read first, and say so"
            );
            assert_eq!(m.inactive_file_bytes, Some(52_428_800));
            // The slow reasons stand with the slow values (no I/O rate at the first read);
            // the CPU rate, read every tick, now has its previous reading.
            let mut expected = first.missing.clone();
            expected.retain(|m| m.field != "cpu.usage_millicores");
            assert_eq!(second.missing, expected);
            assert!(second.cpu.unwrap().usage_millicores.is_some());
        }
    }
}

/// Every file of the v2 fixture says where it comes from (v2/PROVENANCE): captured files are
/// byte for byte their source in the hybrid capture, written ones name what they follow.
#[test]
fn every_v2_fixture_file_states_its_provenance() {
    fn files(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let v2 = root("v2");
    let manifest = std::fs::read_to_string(v2.join("PROVENANCE")).expect("v2/PROVENANCE");
    let mut listed = BTreeMap::new();
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut parts = line.splitn(3, ' ');
        let (kind, file, basis) = (parts.next(), parts.next(), parts.next());
        let (Some(kind), Some(file), Some(basis)) = (kind, file, basis) else {
            panic!("PROVENANCE: {line:?} is not `<captured|written> <file> <source>`");
        };
        match kind {
            "captured" => assert_eq!(
                std::fs::read(v2.join(file)).unwrap_or_else(|e| panic!("{file}: {e}")),
                std::fs::read(Path::new(FIXTURES).join(basis))
                    .unwrap_or_else(|e| panic!("{file}'s source {basis}: {e}")),
                "{file} is listed as captured from {basis} but differs from it"
            ),
            "written" => assert!(
                basis.trim().len() > 10,
                "{file}: say what it is written from"
            ),
            other => panic!("PROVENANCE: {file} is {other:?}, neither captured nor written"),
        }
        assert!(
            listed.insert(file.to_owned(), kind).is_none(),
            "{file} listed twice"
        );
    }
    let mut present = Vec::new();
    files(&v2, &v2, &mut present);
    present.retain(|f| f != "PROVENANCE");
    present.sort();
    let listed_files: Vec<&String> = listed.keys().collect();
    assert_eq!(
        present.iter().collect::<Vec<_>>(),
        listed_files,
        "v2/PROVENANCE lists exactly the files of v2/"
    );
}

/// A pod's `frozen` comes from its freezer (v2: `cgroup.events`), read again every tick.
#[test]
fn the_sampler_reads_a_pods_freezer_state_every_tick() {
    use aistor_agent::pods::sampler::PodSampler;
    use aistor_agent::pods::targets::PodTarget;
    let dir = copy_fixture("v2");
    let r = reader(dir.path());
    let targets = [PodTarget {
        uid: "0f6a3c2e-9b1d-4e6f-8a2b-5c7d9e1f3a4b".into(),
        name: String::new(),
        namespace: String::new(),
        qos_class: "burstable".into(),
        cgroup_path: POD.into(),
        discovered_by: "cgroupfs",
        containers: Vec::new(),
    }];
    let events = dir
        .path()
        .join("sys/fs/cgroup")
        .join(POD)
        .join("cgroup.events");
    let mut sampler = PodSampler::new(Duration::from_secs(10));
    let devices = Default::default();
    for frozen in [true, false, true] {
        std::fs::write(
            &events,
            format!("populated 1\nfrozen {}\n", u8::from(frozen)),
        )
        .unwrap();
        let pods = sampler.sample(&r, &targets, &devices);
        assert_eq!(pods[0].frozen, frozen);
    }
    // Unreadable content or no file: not frozen.
    std::fs::write(&events, "populated 1\nfrozen maybe\n").unwrap();
    assert!(!sampler.sample(&r, &targets, &devices)[0].frozen);
    std::fs::remove_file(&events).unwrap();
    assert!(!sampler.sample(&r, &targets, &devices)[0].frozen);
}

/// `read_kept` reads a file beside a cgroup's values every time; an absent one is looked for
/// again on its back-off (1 s, then 2 s, ...), not on every read.
#[test]
fn read_kept_looks_for_an_absent_file_again_on_a_back_off() {
    let dir = copy_fixture("v2");
    let r = reader(dir.path());
    let mount = r.layout().unified.clone().unwrap();
    let file = dir
        .path()
        .join("sys/fs/cgroup")
        .join(POD)
        .join("cgroup.events");
    let read = |at: Duration| {
        r.read_kept(POD, &mount, "cgroup.events", at, |t| {
            Some(t.trim().to_owned())
        })
    };
    present(r.read(POD, AT));
    assert_eq!(read(AT), None, "absent");
    std::fs::write(&file, "frozen 1\n").unwrap();
    assert_eq!(
        read(AT + Duration::from_millis(900)),
        None,
        "not looked for yet"
    );
    assert_eq!(
        read(AT + Duration::from_secs(1)).as_deref(),
        Some("frozen 1")
    );
    std::fs::write(&file, "frozen 0\n").unwrap();
    assert_eq!(
        read(AT + Duration::from_secs(1)).as_deref(),
        Some("frozen 0"),
        "read again"
    );
    // Gone again: absent, and the next look is 1 s later (the back-off starts over).
    std::fs::remove_file(&file).unwrap();
    assert_eq!(read(AT + Duration::from_secs(2)), None);
    std::fs::write(&file, "frozen 1\n").unwrap();
    assert_eq!(read(AT + Duration::from_millis(2900)), None);
    assert_eq!(
        read(AT + Duration::from_secs(3)).as_deref(),
        Some("frozen 1")
    );
    // Absent twice in a row: the back-off doubles (1 s, then 2 s).
    std::fs::remove_file(&file).unwrap();
    assert_eq!(read(AT + Duration::from_secs(4)), None);
    assert_eq!(
        read(AT + Duration::from_secs(5)),
        None,
        "looked again after 1 s"
    );
    std::fs::write(&file, "frozen 0\n").unwrap();
    assert_eq!(
        read(AT + Duration::from_millis(6900)),
        None,
        "next look after 2 s"
    );
    assert_eq!(
        read(AT + Duration::from_secs(7)).as_deref(),
        Some("frozen 0")
    );
    // Without a plan for the cgroup (never read): by path.
    let fresh = reader(dir.path());
    assert_eq!(
        fresh
            .read_kept(POD, &mount, "cgroup.events", AT, |t| Some(t.len()))
            .unwrap(),
        9
    );
}
