//! The DCGM exporter source over recorded dcgm-exporter payloads (see
//! tests/fixtures/dcgm/README.md) and against a local HTTP server.

use aistor_agent::gpu::GpuSource;
use aistor_agent::gpu::dcgm::{DcgmSource, mig_instance_name, parse_payload};
use aistor_proto::v1 as pb;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/dcgm/",
            $name
        ))
    };
}

const L40S: &str = fixture!("l40s-upcloud.prom");
const H100_MIG: &str = fixture!("h100-mig-pods-issue512.prom");
const MIXED_MIG: &str = fixture!("a30-rtx2000-mig-pods-pr736.prom");

const MIB: u64 = 1024 * 1024;

fn missing_fields(gpu: &pb::Gpu) -> BTreeSet<&str> {
    gpu.missing.iter().map(|m| m.field.as_str()).collect()
}

fn reason<'a>(gpu: &'a pb::Gpu, field: &str) -> &'a str {
    gpu.missing
        .iter()
        .find(|m| m.field == field)
        .map(|m| m.reason.as_str())
        .unwrap_or_else(|| panic!("no missing entry for {field}: {:?}", gpu.missing))
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

fn holder(pod: &str, namespace: &str, container: &str, mig: &str) -> pb::GpuAllocation {
    pb::GpuAllocation {
        pod_uid: String::new(),
        pod_name: pod.into(),
        pod_namespace: namespace.into(),
        container_name: container.into(),
        mig_uuid: mig.into(),
    }
}

#[test]
fn l40s_payload_maps_every_field_it_has() {
    let section = parse_payload(L40S);
    assert_eq!(section.source, pb::GpuSource::DcgmExporter as i32);
    assert_eq!(section.driver_version, "595.58.03");
    assert!(section.missing.is_empty(), "{:?}", section.missing);
    assert_eq!(section.gpus.len(), 1);
    let gpu = &section.gpus[0];

    assert_eq!(gpu.index, 0);
    assert_eq!(gpu.uuid, "GPU-5b4e07f6-3a86-4340-039d-25f2a83cdc43");
    assert_eq!(gpu.model, "NVIDIA L40S");
    assert_eq!(gpu.pci_bus_id, "00000000:00:07.0");
    assert_eq!(gpu.mig_enabled, Some(false));
    assert_eq!(gpu.utilization_percent, Some(0.0));
    assert_eq!(gpu.memory_utilization_percent, Some(0.0));
    assert_eq!(gpu.memory_used_bytes, Some(0));
    assert_eq!(gpu.memory_free_bytes, Some(45_459 * MIB));
    assert_eq!(gpu.memory_reserved_bytes, Some(608 * MIB));
    assert_eq!(gpu.memory_total_bytes, Some((45_459 + 608) * MIB));
    assert!(close(gpu.power_watts, 35.686));
    assert_eq!(gpu.temperature_celsius, Some(32.0));
    assert_eq!(gpu.sm_clock_mhz, Some(210));
    assert_eq!(gpu.memory_clock_mhz, Some(405));
    // DCGM_FI_PROF_PCIE_*_BYTES are bytes per second already.
    assert_eq!(gpu.pcie_tx_bytes_per_second, Some(175_084.0));
    assert_eq!(gpu.pcie_rx_bytes_per_second, Some(19_831.0));
    let gpm = gpu
        .gpm
        .as_ref()
        .expect("profiling metrics are in the payload");
    assert_eq!(gpm.graphics_engine_active_percent, Some(0.0));
    assert_eq!(gpm.tensor_active_percent, Some(0.0));
    assert!(close(gpm.dram_active_percent, 0.0131));
    assert_eq!(gpm.sm_active_percent, None);
    assert_eq!(gpm.sm_occupancy_percent, None);
    assert!(gpu.mig_instances.is_empty());
    assert!(gpu.allocations.is_empty());
    assert!(gpu.processes.is_empty());

    assert_eq!(
        missing_fields(gpu),
        BTreeSet::from([
            "power_limit_watts",
            "ecc_corrected_volatile_total",
            "ecc_uncorrected_volatile_total",
            "last_xid",
            "xid_events_total",
            "gpm.sm_active_percent",
            "gpm.sm_occupancy_percent",
            "nvlinks",
            "processes",
        ])
    );
    assert_eq!(
        reason(gpu, "power_limit_watts"),
        "DCGM exporter payload has no DCGM_FI_DEV_POWER_MGMT_LIMIT"
    );
    assert_eq!(
        reason(gpu, "last_xid"),
        "DCGM exporter payload has no DCGM_FI_DEV_XID_ERRORS"
    );
    assert_eq!(
        reason(gpu, "gpm.sm_active_percent"),
        "DCGM exporter payload has no DCGM_FI_PROF_SM_ACTIVE"
    );
}

#[test]
fn h100_mig_payload_maps_instances_and_their_pods() {
    let section = parse_payload(H100_MIG);
    assert_eq!(section.driver_version, "535.129.03");
    assert_eq!(section.gpus.len(), 1);
    let gpu = &section.gpus[0];
    let parent = "GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77";
    assert_eq!(gpu.index, 0);
    assert_eq!(gpu.uuid, parent);
    assert_eq!(gpu.model, "NVIDIA H100 80GB HBM3");
    assert_eq!(gpu.pci_bus_id, "00000000:1A:00.0");
    assert_eq!(gpu.mig_enabled, Some(true));

    let instances: Vec<(u32, &str)> = gpu
        .mig_instances
        .iter()
        .map(|m| (m.gpu_instance_id, m.profile.as_str()))
        .collect();
    assert_eq!(instances, [(7, "1g.10gb"), (8, "1g.10gb"), (9, "1g.10gb")]);
    for instance in &gpu.mig_instances {
        assert_eq!(instance.uuid, "", "dcgm-exporter names no MIG UUID");
        let gpm = instance
            .gpm
            .as_ref()
            .expect("GR_ENGINE_ACTIVE per instance");
        assert_eq!(gpm.graphics_engine_active_percent, Some(0.0));
        assert_eq!(instance.memory_used_bytes, None);
        // Not in the payload: absent, never 0.
        assert_eq!(instance.compute_instance_id, None);
        assert_eq!(instance.memory_total_bytes, None);
    }
    let reasons = |field: &str| -> Vec<&str> {
        gpu.missing
            .iter()
            .filter(|m| m.field == field)
            .map(|m| m.reason.as_str())
            .collect()
    };
    let compute = reasons("mig_instances.compute_instance_id");
    assert_eq!(compute.len(), 3, "one per instance: {compute:?}");
    assert!(compute[0].starts_with("GPU instance 7: "), "{compute:?}");
    assert!(compute[0].contains("GPU_I_ID"), "{compute:?}");
    let total = reasons("mig_instances.memory_total_bytes");
    assert_eq!(total.len(), 3, "{total:?}");
    assert!(total[2].starts_with("GPU instance 9: "), "{total:?}");
    assert!(total[2].contains("DCGM_FI_DEV_FB_TOTAL"), "{total:?}");
    assert!(
        reasons("mig_instances.memory_used_bytes")
            .iter()
            .all(|r| r.contains("DCGM_FI_DEV_FB_USED"))
    );

    assert_eq!(
        gpu.allocations,
        vec![
            holder(
                "text-embedding-predictor-00008-deployment-57946f6c67-vdtjl",
                "model-playground-stg",
                "kserve-container",
                &mig_instance_name(parent, 7),
            ),
            holder(
                "tts-predictor-00011-deployment-5554f75554-8j8pl",
                "model-playground-stg",
                "kserve-container",
                &format!("{parent}/9"),
            ),
        ]
    );

    // Device-wide utilization and memory do not exist in MIG mode; the rest is simply
    // not in this (excerpted) payload.
    assert_eq!(gpu.utilization_percent, None);
    assert!(reason(gpu, "utilization_percent").starts_with("MIG mode"));
    assert!(reason(gpu, "memory_used_bytes").starts_with("MIG mode"));
    assert_eq!(gpu.temperature_celsius, None);
    assert_eq!(
        reason(gpu, "temperature_celsius"),
        "DCGM exporter payload has no DCGM_FI_DEV_GPU_TEMP"
    );
    assert_eq!(
        reason(gpu, "power_watts"),
        "DCGM exporter payload has no DCGM_FI_DEV_POWER_USAGE"
    );
    assert_eq!(
        reason(gpu, "pcie_tx_bytes_per_second"),
        "DCGM exporter payload has neither DCGM_FI_DEV_PCIE_TX_THROUGHPUT nor DCGM_FI_PROF_PCIE_TX_BYTES"
    );
}

#[test]
fn mixed_node_payload_keeps_devices_apart() {
    let section = parse_payload(MIXED_MIG);
    assert_eq!(section.driver_version, "");
    assert_eq!(section.missing.len(), 1);
    assert_eq!(section.missing[0].field, "driver_version");
    let indexes: Vec<u32> = section.gpus.iter().map(|g| g.index).collect();
    assert_eq!(indexes, [0, 1, 2]);

    let a30 = &section.gpus[0];
    let a30_uuid = "GPU-9a63752e-af8d-fe52-7f0d-968bca6d52e3";
    assert_eq!(a30.uuid, a30_uuid);
    assert_eq!(a30.model, "NVIDIA A30");
    assert_eq!(a30.mig_enabled, Some(true));
    // Temperature is device-wide; in MIG mode it comes on an instance's row.
    assert_eq!(a30.temperature_celsius, Some(50.0));
    let instances: Vec<u32> = a30
        .mig_instances
        .iter()
        .map(|m| m.gpu_instance_id)
        .collect();
    assert_eq!(instances, [3, 6]);
    assert_eq!(a30.mig_instances[1].profile, "1g.6gb");
    assert_eq!(a30.mig_instances[1].memory_used_bytes, Some(3_744 * MIB));
    assert_eq!(a30.mig_instances[1].memory_total_bytes, None);
    assert_eq!(a30.mig_instances[0].memory_used_bytes, None);
    assert_eq!(
        a30.allocations,
        vec![
            holder(
                "triton-server-f7cb5d77-2w5b2",
                "default",
                "triton-server",
                &mig_instance_name(a30_uuid, 6)
            ),
            holder(
                "triton-server-f7cb5d77-wwk9g",
                "default",
                "triton-server",
                &mig_instance_name(a30_uuid, 3)
            ),
        ]
    );

    let rtx = &section.gpus[1];
    assert_eq!(rtx.uuid, "GPU-fc60126e-514d-3522-2828-c5daa8e99d85");
    assert_eq!(rtx.model, "NVIDIA RTX 2000 Ada Generation");
    assert_eq!(rtx.pci_bus_id, "00000000:B1:00.0");
    assert_eq!(rtx.mig_enabled, Some(false));
    assert_eq!(rtx.memory_free_bytes, Some(11_275 * MIB));
    assert_eq!(rtx.memory_used_bytes, None);
    assert_eq!(
        reason(rtx, "memory_used_bytes"),
        "DCGM exporter payload has no DCGM_FI_DEV_FB_USED"
    );
    assert_eq!(rtx.memory_total_bytes, None);
    assert!(reason(rtx, "memory_total_bytes").contains("DCGM_FI_DEV_FB_TOTAL"));
    assert_eq!(rtx.temperature_celsius, Some(44.0));
    assert_eq!(rtx.utilization_percent, None);
    assert!(rtx.allocations.is_empty());

    let a30b = &section.gpus[2];
    assert_eq!(a30b.uuid, "GPU-63bc0b91-2265-1b94-831c-15c41fe92675");
    assert_eq!(a30b.temperature_celsius, Some(45.0));
    assert_eq!(a30b.mig_instances.len(), 1);
    assert_eq!(a30b.mig_instances[0].gpu_instance_id, 3);
    assert_eq!(
        a30b.allocations,
        vec![holder(
            "triton-server-f7cb5d77-95xcf",
            "default",
            "triton-server",
            &mig_instance_name("GPU-63bc0b91-2265-1b94-831c-15c41fe92675", 3)
        )]
    );
}

/// A MIG instance row of the recorded mixed-node payload (A30 gpu 2, instance 3 has
/// FB_FREE there), with FB_USED and optionally FB_RESERVED added in the same labels.
fn a30_instance(extra: &[(&str, u64)]) -> String {
    let labels = r#"{gpu="2",UUID="GPU-63bc0b91-2265-1b94-831c-15c41fe92675",pci_bus_id="00000000:CA:00.0",device="nvidia2",modelName="NVIDIA A30",GPU_I_PROFILE="1g.6gb",GPU_I_ID="3"}"#;
    let recorded = MIXED_MIG
        .lines()
        .find(|l| l.starts_with("DCGM_FI_DEV_FB_FREE{gpu=\"2\""))
        .expect("the recorded FB_FREE row of gpu 2");
    assert!(recorded.contains(r#"GPU_I_ID="3""#), "{recorded}");
    let mut payload = format!("{recorded}\n");
    for (name, mib) in extra {
        payload.push_str(&format!("{name}{labels} {mib}\n"));
    }
    payload
}

#[test]
fn mig_instance_total_is_never_summed_with_an_invented_reserved_zero() {
    // Used and free but no reserved: the total is unknown, not used + free.
    let section = parse_payload(&a30_instance(&[("DCGM_FI_DEV_FB_USED", 100)]));
    let gpu = &section.gpus[0];
    let instance = &gpu.mig_instances[0];
    assert_eq!(instance.gpu_instance_id, 3);
    assert_eq!(instance.memory_used_bytes, Some(100 * MIB));
    assert_eq!(instance.memory_total_bytes, None);
    assert!(
        reason(gpu, "mig_instances.memory_total_bytes").contains("DCGM_FI_DEV_FB_RESERVED"),
        "{:?}",
        gpu.missing
    );
    assert_eq!(instance.compute_instance_id, None);
    assert!(reason(gpu, "mig_instances.compute_instance_id").starts_with("GPU instance 3: "));

    // With reserved stated, the sum is a measurement.
    let section = parse_payload(&a30_instance(&[
        ("DCGM_FI_DEV_FB_USED", 100),
        ("DCGM_FI_DEV_FB_RESERVED", 20),
    ]));
    let gpu = &section.gpus[0];
    let free = MIXED_MIG
        .lines()
        .find(|l| l.starts_with("DCGM_FI_DEV_FB_FREE{gpu=\"2\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("a whole MiB figure");
    assert_eq!(
        gpu.mig_instances[0].memory_total_bytes,
        Some((100 + 20 + free) * MIB)
    );
    assert!(
        gpu.missing
            .iter()
            .all(|m| m.field != "mig_instances.memory_total_bytes"),
        "{:?}",
        gpu.missing
    );
}

#[test]
fn fields_the_default_counters_leave_out_are_mapped_when_present() {
    let payload = r#"DCGM_FI_DEV_XID_ERRORS{gpu="3",UUID="GPU-x",DCGM_FI_DRIVER_VERSION="550.54.15"} 79
DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{gpu="3",UUID="GPU-x"} 12
DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{gpu="3",UUID="GPU-x"} 1
DCGM_FI_DEV_PCIE_TX_THROUGHPUT{gpu="3",UUID="GPU-x"} 100
DCGM_FI_DEV_PCIE_RX_THROUGHPUT{gpu="3",UUID="GPU-x"} 2
DCGM_FI_PROF_PCIE_TX_BYTES{gpu="3",UUID="GPU-x"} 999999
DCGM_FI_DEV_POWER_MGMT_LIMIT{gpu="3",UUID="GPU-x"} 300.000000
DCGM_FI_DEV_FB_TOTAL{gpu="3",UUID="GPU-x"} 81920
DCGM_FI_DEV_FB_USED{gpu="3",UUID="GPU-x"} 1024
DCGM_FI_PROF_SM_ACTIVE{gpu="3",UUID="GPU-x"} 0.5
DCGM_FI_PROF_SM_OCCUPANCY{gpu="3",UUID="GPU-x"} 0.25
DCGM_FI_DEV_GPU_UTIL{gpu="3",UUID="GPU-x",pod_name="old",pod_namespace="ns",container_name="c"} 97
"#;
    let section = parse_payload(payload);
    assert_eq!(section.driver_version, "550.54.15");
    let gpu = &section.gpus[0];
    assert_eq!(gpu.index, 3);
    assert_eq!(gpu.last_xid, Some(79));
    assert_eq!(gpu.ecc_corrected_volatile_total, Some(12));
    assert_eq!(gpu.ecc_uncorrected_volatile_total, Some(1));
    // KB/s from NVML wins over the profiling module's bytes/s.
    assert_eq!(gpu.pcie_tx_bytes_per_second, Some(102_400.0));
    assert_eq!(gpu.pcie_rx_bytes_per_second, Some(2_048.0));
    assert_eq!(gpu.power_limit_watts, Some(300.0));
    assert_eq!(gpu.memory_total_bytes, Some(81_920 * MIB));
    assert_eq!(gpu.memory_used_bytes, Some(1_024 * MIB));
    assert_eq!(gpu.utilization_percent, Some(97.0));
    let gpm = gpu.gpm.as_ref().unwrap();
    assert_eq!(gpm.sm_active_percent, Some(50.0));
    assert_eq!(gpm.sm_occupancy_percent, Some(25.0));
    // --use-old-namespace label names.
    assert_eq!(gpu.allocations, vec![holder("old", "ns", "c", "")]);
}

#[test]
fn unusable_values_are_reasons_not_numbers() {
    let payload = r#"DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-x"} NaN
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-x"} -5
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-x"} 9223372036854775794
DCGM_FI_DEV_MEM_CLOCK{gpu="0",UUID="GPU-x"} +Inf
DCGM_FI_DEV_VGPU_PER_PROCESS_UTILIZATION{gpu="0",UUID="GPU-x"} ERROR - FAILED TO CONVERT TO STRING
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-x"} 17
"#;
    let gpu = &parse_payload(payload).gpus[0];
    assert_eq!(gpu.temperature_celsius, None);
    assert!(reason(gpu, "temperature_celsius").contains("unusable value NaN"));
    assert_eq!(gpu.power_watts, None);
    assert!(reason(gpu, "power_watts").contains("unusable value -5"));
    assert_eq!(gpu.sm_clock_mhz, None);
    assert!(reason(gpu, "sm_clock_mhz").contains("blank"));
    assert_eq!(gpu.memory_clock_mhz, None);
    assert_eq!(gpu.utilization_percent, Some(17.0));
}

#[test]
fn garbage_gives_no_gpus_and_says_why() {
    for (input, expected) in [
        ("", "payload is empty"),
        ("  \n\n", "payload is empty"),
        (
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "no DCGM_FI_* samples",
        ),
        (
            "# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 42\n",
            "no DCGM_FI_* samples (3 lines, 1 samples of other metrics)",
        ),
        ("DCGM_FI_DEV_GPU_UTIL 5\n", "none names a device"),
        ("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"", "no DCGM_FI_* samples"),
        ("\u{0}\u{1}{}}}{{=\"\"\"", "no DCGM_FI_* samples"),
    ] {
        let section = parse_payload(input);
        assert!(section.gpus.is_empty(), "{input:?}");
        assert_eq!(section.source, pb::GpuSource::DcgmExporter as i32);
        assert_eq!(section.missing.len(), 1, "{input:?}");
        assert_eq!(section.missing[0].field, "gpus");
        assert!(
            section.missing[0].reason.contains(expected),
            "{input:?}: {}",
            section.missing[0].reason
        );
    }
}

fn dcgm_line() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_FB_RESERVED",
        "DCGM_FI_DEV_FB_TOTAL",
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_PROF_SM_ACTIVE",
        "dcgm_fi_dev_gpu_temp",
        "DCGM_FI_DEV_PCIE_TX_THROUGHPUT",
    ]);
    let labels = prop::collection::vec(
        (
            prop::sample::select(vec![
                "gpu",
                "UUID",
                "GPU_I_ID",
                "GPU_I_PROFILE",
                "pod",
                "namespace",
                "device",
                "le",
                "quantile",
                "",
            ]),
            "[-a-zA-Z0-9.,=\"}{ ]{0,12}",
        ),
        0..5,
    );
    let value = prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        Just("NaN".to_owned()),
        Just("-Inf".to_owned()),
        Just("1e308".to_owned()),
        "[a-z ]{0,6}",
    ];
    (name, labels, value).prop_map(|(name, labels, value)| {
        let labels: Vec<String> = labels
            .into_iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        format!("{name}{{{}}} {value}", labels.join(","))
    })
}

proptest! {
    #[test]
    fn never_panics_on_any_text(text in any::<String>()) {
        let section = parse_payload(&text);
        prop_assert!(!section.gpus.is_empty() || !section.missing.is_empty());
    }

    #[test]
    fn never_panics_on_dcgm_like_lines(
        lines in prop::collection::vec(dcgm_line(), 0..40),
        types in prop::collection::vec(
            prop::sample::select(vec!["gauge", "counter", "histogram", "summary", "junk"]),
            0..3,
        ),
    ) {
        let mut text = String::new();
        for (i, t) in types.iter().enumerate() {
            text.push_str(&format!("# TYPE DCGM_FI_DEV_FB_USED{i} {t}\n# TYPE DCGM_FI_DEV_GPU_UTIL {t}\n"));
        }
        text.push_str(&lines.join("\n"));
        let section = parse_payload(&text);
        // Bounded output: no more devices or instances than sample lines, a bounded
        // number of reasons per device, and nothing filled in that the lines lack.
        prop_assert!(section.gpus.len() <= lines.len());
        let instances: usize = section.gpus.iter().map(|g| g.mig_instances.len()).sum();
        prop_assert!(instances <= lines.len());
        for gpu in &section.gpus {
            for v in [gpu.utilization_percent, gpu.temperature_celsius, gpu.power_watts] {
                prop_assert!(v.is_none_or(|v| v.is_finite() && v >= 0.0));
            }
            prop_assert!(gpu.missing.len() <= 64 + 3 * gpu.mig_instances.len(), "{:?}", gpu.missing);
            for m in &gpu.missing {
                prop_assert!(m.reason.len() <= 1024 + text.len(), "{}", m.field);
            }
            for instance in &gpu.mig_instances {
                // dcgm-exporter never names a compute instance.
                prop_assert_eq!(instance.compute_instance_id, None);
            }
        }
    }
}

/// A local exporter: serves `payload` on /metrics until told to stop.
async fn exporter(
    payload: &'static str,
    status: u16,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                payload,
            )
        }),
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (address, stop, server)
}

fn never() -> aistor_agent::shutdown::Shutdown {
    aistor_agent::shutdown::from_future(std::future::pending())
}

async fn eventually(
    source: &mut DcgmSource,
    what: &str,
    test: impl Fn(&pb::GpuSection) -> bool,
) -> pb::GpuSection {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let section = source.read();
        if test(&section) {
            return section;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last: {section:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn source_reads_the_exporter_then_reports_it_gone() {
    let (address, stop, server) = exporter(L40S, 200).await;
    let url = format!("http://{address}/metrics");
    let mut source = DcgmSource::spawn(url.clone(), Duration::from_millis(50), never()).unwrap();
    assert_eq!(source.url(), url);

    let section = eventually(&mut source, "a reading", |s| !s.gpus.is_empty()).await;
    assert_eq!(section, parse_payload(L40S));
    assert_eq!(section.gpus[0].temperature_celsius, Some(32.0));

    stop.send(()).unwrap();
    server.await.unwrap();
    let section = eventually(&mut source, "the error", |s| s.gpus.is_empty()).await;
    assert_eq!(section.source, pb::GpuSource::DcgmExporter as i32);
    let reason = &section.missing[0].reason;
    assert!(reason.starts_with(&format!("GET {url}: ")), "{reason}");
    assert!(
        reason.to_lowercase().contains("connection refused"),
        "{reason}"
    );
}

#[tokio::test]
async fn source_reports_http_errors() {
    let (address, _stop, _server) = exporter("busy", 503).await;
    let url = format!("http://{address}/metrics");
    let mut source = DcgmSource::spawn(url.clone(), Duration::from_millis(50), never()).unwrap();
    let section = eventually(&mut source, "the HTTP error", |s| {
        s.missing.iter().any(|m| m.reason.contains("HTTP 503"))
    })
    .await;
    assert!(section.gpus.is_empty());
    assert_eq!(
        section.missing[0].reason,
        format!("GET {url}: HTTP 503 Service Unavailable")
    );
}

#[tokio::test]
async fn source_before_its_first_answer_says_so() {
    // Nothing listens on port 9 (discard) here; either way the first read comes before
    // any answer.
    let mut source = DcgmSource::spawn(
        "http://127.0.0.1:9/metrics".into(),
        Duration::from_secs(60),
        never(),
    )
    .unwrap();
    let section = source.read();
    assert!(section.gpus.is_empty());
    assert!(!section.missing.is_empty());
}

#[tokio::test]
async fn only_plain_http_urls_and_real_intervals() {
    for url in [
        "https://127.0.0.1:9400/metrics",
        "127.0.0.1:9400",
        "dcgm-exporter.gpu-operator.svc:9400",
        "",
    ] {
        let err = DcgmSource::spawn(url.into(), Duration::from_secs(1), never()).unwrap_err();
        assert!(err.contains("DCGM exporter URL"), "{err}");
    }
    assert!(
        DcgmSource::spawn(
            "http://127.0.0.1:9400/metrics".into(),
            Duration::ZERO,
            never()
        )
        .is_err()
    );
}

#[test]
fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
    let shutdown_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shutdown = shutdown_runtime.block_on(async { never() });
    let err = DcgmSource::spawn(
        "http://127.0.0.1:9400/metrics".into(),
        Duration::from_secs(1),
        shutdown,
    )
    .unwrap_err();
    assert!(err.contains("Tokio runtime"), "{err}");
}
