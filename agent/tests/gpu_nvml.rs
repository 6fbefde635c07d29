//! The NVML source end to end over the fake NVML (scenarios), then attribution to pods;
//! plus one `#[ignore]` test against the real library:
//! `cargo test -p aistor-agent --test gpu_nvml -- --ignored --nocapture`.

use aistor_agent::gpu::GpuSource;
use aistor_agent::gpu::attribution::attribute;
use aistor_agent::gpu::device::{ApiError, MemoryInfo, RunningProcess, UtilizationSample};
use aistor_agent::gpu::fake::{FakeGpu, FakeMig, FakeNvml};
use aistor_agent::gpu::nvml::NvmlSource;
use aistor_agent::gpu::pids::PidResolver;
use aistor_agent::source::HostFs;
use aistor_proto::v1 as pb;
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;

fn source(fake: &FakeNvml) -> NvmlSource {
    NvmlSource::with_api(Box::new(fake.clone()))
}

fn reason<'a>(gpu: &'a pb::Gpu, field: &str) -> Option<&'a str> {
    gpu.missing
        .iter()
        .find(|m| m.field == field)
        .map(|m| m.reason.as_str())
}

fn running(pid: u32, memory: u64) -> RunningProcess {
    RunningProcess {
        pid,
        used_memory_bytes: Some(memory),
        gpu_instance_id: None,
        compute_instance_id: None,
    }
}

fn sample(pid: u32, timestamp: u64, sm: u32) -> UtilizationSample {
    UtilizationSample {
        pid,
        timestamp,
        sm,
        memory: sm / 2,
        encoder: 0,
        decoder: 0,
    }
}

#[test]
fn healthy_gpu_values_are_converted() {
    let fake = FakeNvml::new(vec![FakeGpu::healthy(0)]);
    let mut nvml = source(&fake);
    let t0 = Instant::now();
    let section = nvml.read_at(t0);
    assert_eq!(section.source, pb::GpuSource::Nvml as i32);
    assert_eq!(section.driver_version, "550.54.15");
    assert!(section.missing.is_empty(), "{:?}", section.missing);
    let gpu = &section.gpus[0];
    assert_eq!(gpu.index, 0);
    assert!(gpu.uuid.starts_with("GPU-"));
    assert_eq!(gpu.model, "NVIDIA H100 80GB HBM3");
    assert_eq!(gpu.pci_bus_id, "00000000:18:00.0");
    assert_eq!(gpu.mig_enabled, Some(false));
    assert_eq!(gpu.memory_total_bytes, Some(80 * GIB));
    assert_eq!(gpu.memory_reserved_bytes, Some(GIB / 4));
    assert_eq!(gpu.utilization_percent, Some(0.0));
    assert_eq!(gpu.temperature_celsius, Some(34.0));
    assert_eq!(gpu.power_watts, Some(71.5));
    assert_eq!(gpu.power_limit_watts, Some(700.0));
    assert_eq!(gpu.sm_clock_mhz, Some(345));
    assert_eq!(gpu.memory_clock_mhz, Some(2619));
    assert_eq!(gpu.ecc_corrected_volatile_total, Some(0));
    assert_eq!(gpu.nvlinks.len(), 18);
    assert!(
        gpu.nvlinks
            .iter()
            .all(|l| l.active && l.tx_bytes_total.is_none())
    );
    assert!(reason(gpu, "nvlinks.tx_bytes_total").is_some());
    // First reading: no PCIe rate yet, and the first GPM sample only.
    assert_eq!(gpu.pcie_tx_bytes_per_second, None);
    assert!(reason(gpu, "pcie_tx_bytes_per_second").is_some_and(|r| r.contains("first")));
    assert!(gpu.gpm.is_none());
    assert!(reason(gpu, "gpm").is_some_and(|r| r.contains("first GPM sample")));

    let section = nvml.read_at(t0 + Duration::from_secs(2));
    let gpu = &section.gpus[0];
    // 1 MiB and 2 MiB per read, over 2 s.
    assert_eq!(gpu.pcie_tx_bytes_per_second, Some(512.0 * 1024.0));
    assert_eq!(gpu.pcie_rx_bytes_per_second, Some(1024.0 * 1024.0));
    assert_eq!(
        gpu.gpm.as_ref().and_then(|g| g.sm_active_percent),
        Some(0.0)
    );
    assert_eq!(reason(gpu, "gpm"), None);
    assert_eq!(reason(gpu, "pcie_tx_bytes_per_second"), None);
}

#[test]
fn unsupported_values_are_absent_with_the_nvml_error_never_zero() {
    let mut gpu = FakeGpu::healthy(0);
    gpu.power_milliwatts = Err(ApiError::NotSupported);
    gpu.ecc_corrected = Err(ApiError::NotSupported);
    gpu.ecc_uncorrected = Err(ApiError::NotSupported);
    gpu.utilization = Err(ApiError::NoPermission);
    gpu.nvlinks.clear();
    let fake = FakeNvml::new(vec![gpu]);
    let section = source(&fake).read();
    let gpu = &section.gpus[0];
    assert_eq!(gpu.power_watts, None);
    assert_eq!(
        reason(gpu, "power_watts"),
        Some("nvmlDeviceGetPowerUsage: NotSupported")
    );
    assert_eq!(gpu.ecc_uncorrected_volatile_total, None);
    assert!(
        reason(gpu, "ecc_uncorrected_volatile_total").is_some_and(|r| r.ends_with("NotSupported"))
    );
    assert_eq!(gpu.utilization_percent, None);
    assert_eq!(gpu.memory_utilization_percent, None);
    assert!(reason(gpu, "memory_utilization_percent").is_some_and(|r| r.contains("NoPermission")));
    // No NVLink on this device: no links and nothing missing about them.
    assert!(gpu.nvlinks.is_empty());
    assert_eq!(reason(gpu, "nvlinks"), None);
    assert_eq!(reason(gpu, "nvlinks.tx_bytes_total"), None);
    // What did work is there.
    assert_eq!(gpu.power_limit_watts, Some(700.0));
}

#[test]
fn idle_gpu_not_found_means_no_samples_and_last_seen_starts_at_zero() {
    let fake = FakeNvml::new(vec![FakeGpu::healthy(0)]);
    let mut nvml = source(&fake);
    for _ in 0..2 {
        let section = nvml.read();
        let gpu = &section.gpus[0];
        assert!(gpu.processes.is_empty());
        assert_eq!(reason(gpu, "processes"), None);
        assert_eq!(reason(gpu, "processes.sm_utilization_percent"), None);
    }
    // NotFound leaves the last-seen timestamp where it was.
    assert_eq!(fake.state().gpus[0].last_seen_calls, vec![0, 0]);
}

#[test]
fn processes_join_samples_newest_per_pid_and_pass_the_last_seen_timestamp() {
    let mut gpu = FakeGpu::healthy(0);
    gpu.processes = Ok(vec![running(100, GIB), running(101, 2 * GIB)]);
    // 100 sampled twice (newest wins); 101 idle (no sample); 102 exited already.
    gpu.samples = Ok(vec![
        sample(100, 10, 20),
        sample(100, 30, 60),
        sample(102, 25, 90),
    ]);
    let fake = FakeNvml::new(vec![gpu]);
    let mut nvml = source(&fake);

    let section = nvml.read();
    let processes = &section.gpus[0].processes;
    assert_eq!(processes.len(), 2, "{processes:?}");
    assert_eq!(processes[0].pid, 100);
    assert_eq!(processes[0].memory_used_bytes, Some(GIB));
    assert_eq!(processes[0].sm_utilization_percent, Some(60.0));
    assert_eq!(processes[0].memory_utilization_percent, Some(30.0));
    assert_eq!(processes[1].pid, 101);
    assert_eq!(processes[1].memory_used_bytes, Some(2 * GIB));
    assert_eq!(processes[1].sm_utilization_percent, None);
    assert!(processes.iter().all(|p| p.pid != 102));

    fake.with_gpu(0, |g| {
        if let Ok(samples) = g.samples.as_mut() {
            samples.push(sample(101, 40, 5));
        }
    });
    let section = nvml.read();
    let processes = &section.gpus[0].processes;
    assert_eq!(
        processes[0].sm_utilization_percent, None,
        "nothing newer for 100"
    );
    assert_eq!(processes[1].sm_utilization_percent, Some(5.0));
    assert_eq!(fake.state().gpus[0].last_seen_calls, vec![0, 30]);
}

#[test]
fn a_process_exiting_between_the_two_calls_is_dropped_next_tick() {
    let mut gpu = FakeGpu::healthy(0);
    gpu.processes = Ok(vec![running(200, GIB), running(201, GIB)]);
    gpu.samples = Ok(vec![sample(200, 5, 50), sample(201, 5, 10)]);
    gpu.renew_samples = true;
    // 200 is listed, then exits before the utilisation call (its samples remain buffered).
    gpu.exit_after_listing = Some(200);
    let fake = FakeNvml::new(vec![gpu]);
    let mut nvml = source(&fake);

    let first = nvml.read();
    let pids: Vec<u32> = first.gpus[0].processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids, vec![200, 201]);
    assert_eq!(
        first.gpus[0].processes[0].sm_utilization_percent,
        Some(50.0)
    );

    // Next tick: 200 still has (renewed) samples but is no longer running: dropped.
    let second = nvml.read();
    let pids: Vec<u32> = second.gpus[0].processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids, vec![201]);
    assert_eq!(
        second.gpus[0].processes[0].sm_utilization_percent,
        Some(10.0)
    );
}

#[test]
fn mig_instances_come_from_mig_handles_with_memory_and_processes() {
    let mut gpu = FakeGpu::healthy(0);
    gpu.mig_enabled = Ok(true);
    gpu.utilization = Err(ApiError::NotSupported);
    gpu.mig_devices = vec![
        Some(FakeMig {
            uuid: "MIG-aaaa".into(),
            name: "NVIDIA H100 80GB HBM3 MIG 3g.40gb".into(),
            memory: Ok(MemoryInfo {
                total: 40 * GIB,
                used: 5 * GIB,
                reserved: 0,
                free: 35 * GIB,
            }),
            processes: Ok(vec![RunningProcess {
                pid: 300,
                used_memory_bytes: Some(4 * GIB),
                gpu_instance_id: Some(1),
                compute_instance_id: Some(0),
            }]),
        }),
        None,
        Some(FakeMig {
            uuid: "MIG-bbbb".into(),
            name: "NVIDIA H100 80GB HBM3 MIG 1g.10gb".into(),
            memory: Ok(MemoryInfo {
                total: 10 * GIB,
                used: 12 << 20,
                reserved: 0,
                free: 10 * GIB - (12 << 20),
            }),
            processes: Ok(Vec::new()),
        }),
    ];
    let fake = FakeNvml::new(vec![gpu]);
    let section = source(&fake).read();
    let gpu = &section.gpus[0];
    assert_eq!(gpu.mig_enabled, Some(true));
    assert_eq!(gpu.utilization_percent, None);
    assert!(reason(gpu, "utilization_percent").is_some_and(|r| r.contains("MIG")));
    assert_eq!(gpu.mig_instances.len(), 2);
    let a = &gpu.mig_instances[0];
    assert_eq!(a.uuid, "MIG-aaaa");
    assert_eq!(a.profile, "3g.40gb");
    assert_eq!(a.memory_total_bytes, Some(40 * GIB));
    assert_eq!(a.memory_used_bytes, Some(5 * GIB));
    assert_eq!((a.gpu_instance_id, a.compute_instance_id), (1, Some(0)));
    let b = &gpu.mig_instances[1];
    assert_eq!(b.profile, "1g.10gb");
    // No process on it: its compute instance is unknown, absent with a reason (not 0).
    assert_eq!(b.compute_instance_id, None);
    assert!(
        reason(gpu, "mig_instances.compute_instance_id").is_some_and(|r| r.contains("MIG-bbbb"))
    );
    assert!(reason(gpu, "mig_instances.gpu_instance_id").is_some_and(|r| r.contains("MIG-bbbb")));
    assert_eq!(gpu.processes.len(), 1);
    let p = &gpu.processes[0];
    assert_eq!((p.pid, p.mig_uuid.as_str()), (300, "MIG-aaaa"));
    assert_eq!(p.memory_used_bytes, Some(4 * GIB));
    assert_eq!(p.sm_utilization_percent, None);
    assert!(reason(gpu, "processes.sm_utilization_percent").is_some());
    // The parent's process utilisation is not asked in MIG mode.
    assert!(fake.state().gpus[0].last_seen_calls.is_empty());
}

#[test]
fn xid_events_are_counted_and_the_last_kept() {
    let fake = FakeNvml::new(vec![FakeGpu::healthy(0)]);
    let mut nvml = source(&fake);
    let first = nvml.read();
    assert_eq!(first.gpus[0].last_xid, Some(0));
    assert_eq!(first.gpus[0].xid_events_total, Some(0));
    fake.with_gpu(0, |g| g.pending_xids.extend([79, 48]));
    let second = nvml.read();
    assert_eq!(second.gpus[0].last_xid, Some(48));
    assert_eq!(second.gpus[0].xid_events_total, Some(2));
    let third = nvml.read();
    assert_eq!(third.gpus[0].last_xid, Some(48));
    assert_eq!(third.gpus[0].xid_events_total, Some(2));

    let mut unsupported = FakeGpu::healthy(0);
    unsupported.xid_registration = Err(ApiError::NotSupported);
    let section = source(&FakeNvml::new(vec![unsupported])).read();
    assert_eq!(section.gpus[0].last_xid, None);
    assert!(reason(&section.gpus[0], "last_xid").is_some_and(|r| r.ends_with("NotSupported")));
}

#[test]
fn one_failing_device_does_not_stop_the_others() {
    let mut lost = FakeGpu::busy(0, 100, 3);
    lost.fail_all = Some(ApiError::GpuLost);
    let mut no_handle = FakeGpu::healthy(1);
    no_handle.handle_error = Some(ApiError::Other(
        "Unknown: an unexpected error occurred".into(),
    ));
    let fake = FakeNvml::new(vec![lost, no_handle, FakeGpu::busy(2, 500, 4)]);
    let section = source(&fake).read();
    assert_eq!(section.gpus.len(), 3);
    let lost = &section.gpus[0];
    assert_eq!(lost.uuid, "");
    assert!(lost.memory_total_bytes.is_none() && lost.processes.is_empty());
    assert!(
        reason(lost, "gpu").is_some_and(|r| r.contains("GpuLost")),
        "{:?}",
        lost.missing
    );
    // After GpuLost the remaining calls are skipped: a short list.
    assert!(lost.missing.len() <= 3, "{:?}", lost.missing);
    let no_handle = &section.gpus[1];
    assert_eq!(no_handle.index, 1);
    assert!(reason(no_handle, "gpu").is_some_and(|r| r.starts_with("nvmlDeviceGetHandleByIndex")));
    let ok = &section.gpus[2];
    assert_eq!(ok.utilization_percent, Some(97.0));
    assert_eq!(ok.processes.len(), 4);
    assert!(
        ok.processes
            .iter()
            .all(|p| p.sm_utilization_percent.is_some())
    );
}

#[test]
fn gpm_supported_versus_not() {
    let mut hopper = FakeGpu::healthy(0);
    if let Ok(v) = hopper.gpm_values.sm_active.as_mut() {
        *v = 42.5;
    }
    hopper.gpm_values.tensor_active = Err(ApiError::NotSupported);
    let mut ampere = FakeGpu::healthy(1);
    ampere.gpm_supported = Ok(false);
    let mut old_driver = FakeGpu::healthy(2);
    old_driver.gpm_supported = Err(ApiError::NotSupported);
    let fake = FakeNvml::new(vec![hopper, ampere, old_driver]);
    let mut nvml = source(&fake);
    nvml.read();
    let section = nvml.read();
    let hopper = &section.gpus[0];
    let gpm = hopper.gpm.as_ref().expect("GPM metrics on the second read");
    assert_eq!(gpm.sm_active_percent, Some(42.5));
    assert_eq!(gpm.tensor_active_percent, None);
    assert!(
        reason(hopper, "gpm.tensor_active_percent").is_some_and(|r| r.ends_with("NotSupported"))
    );
    for gpu in &section.gpus[1..] {
        assert!(gpu.gpm.is_none());
        assert!(reason(gpu, "gpm").is_some_and(|r| r.contains("not supported")));
    }
    assert_eq!(fake.state().gpus[0].gpm_samples_taken, 2);
    assert_eq!(fake.state().gpus[1].gpm_samples_taken, 0);
}

#[test]
fn pcie_without_counters_is_absent_unless_sampling_is_enabled() {
    let mut gpu = FakeGpu::healthy(0);
    gpu.pcie_counters = Err(ApiError::NotSupported);
    let fake = FakeNvml::new(vec![gpu]);
    let section = source(&fake).read();
    assert_eq!(section.gpus[0].pcie_tx_bytes_per_second, None);
    assert!(
        reason(&section.gpus[0], "pcie_tx_bytes_per_second").is_some_and(|r| r.contains("20 ms"))
    );
    let section = source(&fake).with_pcie_sampling(true).read();
    assert_eq!(
        section.gpus[0].pcie_tx_bytes_per_second,
        Some(1024.0 * 1024.0)
    );
    assert_eq!(
        section.gpus[0].pcie_rx_bytes_per_second,
        Some(2048.0 * 1024.0)
    );
}

#[test]
fn no_device_or_no_count_gives_an_empty_section_with_a_reason() {
    let section = source(&FakeNvml::new(Vec::new())).read();
    assert!(section.gpus.is_empty());
    assert_eq!(section.missing[0].field, "gpus");
    let fake = FakeNvml::new(vec![FakeGpu::healthy(0)]);
    fake.state().count_error = Some(ApiError::Other(
        "DriverNotLoaded: NVIDIA driver is not loaded".into(),
    ));
    let mut nvml = source(&fake);
    let section = nvml.read();
    assert!(section.gpus.is_empty());
    assert!(
        section
            .missing
            .iter()
            .any(|m| m.field == "gpus" && m.reason.contains("DriverNotLoaded"))
    );
    // It is asked again next tick.
    fake.state().count_error = None;
    assert_eq!(nvml.read().gpus.len(), 1);
}

#[test]
fn open_without_the_library_says_why() {
    let missing = std::path::Path::new("/nonexistent/libnvidia-ml.so.1");
    let err = NvmlSource::open(Some(missing)).expect_err("no NVML here");
    assert!(err.contains("/nonexistent/libnvidia-ml.so.1"), "{err}");
}

fn container(id: &str, name: &str, cgroup: &str) -> pb::Container {
    pb::Container {
        id: id.into(),
        name: name.into(),
        cgroup_path: cgroup.into(),
        ..Default::default()
    }
}

#[test]
fn attribution_to_two_containers_of_a_pod_an_unattributed_pid_and_an_allocated_idle_gpu() {
    let pod_cgroup = "kubepods.slice/kubepods-podu1.slice";
    let train = format!("{pod_cgroup}/cri-containerd-c1.scope");
    let eval = format!("{pod_cgroup}/cri-containerd-c2.scope");
    let host = tempfile::tempdir().unwrap();
    for (pid, cgroup) in [
        (1000, format!("0::/{train}\n")),
        (1001, format!("0::/{train}/worker\n")),
        (1002, format!("0::/{eval}\n")),
        (
            1003,
            "0::/system.slice/nvidia-persistenced.service\n".to_owned(),
        ),
    ] {
        let dir = host.path().join(format!("proc/{pid}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
    }
    let mut busy = FakeGpu::healthy(0);
    busy.processes = Ok(vec![
        running(1000, 10 * GIB),
        running(1001, 2 * GIB),
        running(1002, GIB),
        running(1003, GIB / 2),
    ]);
    busy.samples = Ok(vec![
        sample(1000, 7, 70),
        sample(1002, 7, 20),
        sample(1003, 7, 1),
    ]);
    let fake = FakeNvml::new(vec![busy, FakeGpu::healthy(1)]);
    let mut section = source(&fake).read();
    let idle_uuid = section.gpus[1].uuid.clone();
    section.gpus[1].allocations.push(pb::GpuAllocation {
        // pod-resources names pods by namespace and name only.
        pod_uid: String::new(),
        pod_name: "trainer-0".into(),
        pod_namespace: "ml".into(),
        container_name: "eval".into(),
        mig_uuid: String::new(),
    });
    let mut pods = vec![pb::Pod {
        uid: "u1".into(),
        name: "trainer-0".into(),
        namespace: "ml".into(),
        cgroup_path: pod_cgroup.into(),
        containers: vec![
            container("c1", "train", &train),
            container("c2", "eval", &eval),
        ],
        ..Default::default()
    }];
    let mut resolver = PidResolver::new(HostFs::new(host.path()));
    let pods_now = pods.clone();
    let container_of = resolver.container_of(&pods_now);
    attribute(&mut section, &mut pods, &container_of);

    let owners: Vec<(u32, &str, &str)> = section.gpus[0]
        .processes
        .iter()
        .map(|p| (p.pid, p.pod_uid.as_str(), p.container_id.as_str()))
        .collect();
    assert_eq!(
        owners,
        vec![
            (1000, "u1", "c1"),
            (1001, "u1", "c1"),
            (1002, "u1", "c2"),
            (1003, "", ""),
        ]
    );
    let busy_uuid = section.gpus[0].uuid.clone();
    let train_use = &pods[0].containers[0].gpus;
    assert_eq!(train_use.len(), 1);
    assert_eq!(train_use[0].gpu_uuid, busy_uuid);
    assert_eq!(train_use[0].memory_used_bytes, Some(12 * GIB));
    assert_eq!(train_use[0].sm_utilization_percent, Some(70.0));
    assert!(!train_use[0].allocated);
    let eval_use = &pods[0].containers[1].gpus;
    assert_eq!(eval_use.len(), 2, "{eval_use:?}");
    assert_eq!(eval_use[0].gpu_uuid, busy_uuid);
    assert_eq!(eval_use[0].sm_utilization_percent, Some(20.0));
    assert_eq!(eval_use[1].gpu_uuid, idle_uuid);
    assert!(eval_use[1].allocated);
    assert_eq!(eval_use[1].memory_used_bytes, Some(0));
    assert_eq!(eval_use[1].sm_utilization_percent, Some(0.0));
    let pod_use = &pods[0].gpus;
    assert_eq!(pod_use.len(), 2);
    assert_eq!(pod_use[0].memory_used_bytes, Some(13 * GIB));
    assert_eq!(pod_use[0].sm_utilization_percent, Some(90.0));
    assert!(pod_use[1].allocated);
}

/// Runs against the real library on a GPU machine:
/// `cargo test -p aistor-agent --test gpu_nvml -- --ignored --nocapture`.
#[test]
#[ignore = "needs an NVIDIA GPU and libnvidia-ml.so.1"]
fn real_nvml_reads_at_least_one_gpu() {
    let path = std::env::var_os("AISTOR_NVML_LIBRARY").map(std::path::PathBuf::from);
    let mut nvml = match NvmlSource::open(path.as_deref()) {
        Ok(nvml) => nvml,
        Err(reason) => panic!("NVML did not open: {reason}"),
    };
    let started = Instant::now();
    let first = nvml.read();
    let first_cost = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let second = nvml.read();
    let second_cost = started.elapsed();
    println!(
        "{}",
        serde_json::to_string_pretty(&second).unwrap_or_default()
    );
    let gpus = second.gpus.len().max(1) as u32;
    println!(
        "read cost: first {first_cost:?}, second {second_cost:?} ({:?} per GPU); first read's section missing: {:?}",
        second_cost / gpus,
        first.missing
    );
    assert!(!second.gpus.is_empty(), "no GPU: {:?}", second.missing);
    let gpu = &second.gpus[0];
    assert!(!gpu.uuid.is_empty(), "{:?}", gpu.missing);
    assert!(gpu.memory_total_bytes.unwrap_or(0) > 0, "{:?}", gpu.missing);
}
