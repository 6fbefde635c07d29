//! GPUs read from a node-local NVIDIA dcgm-exporter, for clusters that already run it or
//! where NVML cannot be loaded in the agent.
//!
//! [`parse_payload`] maps one `/metrics` payload (Prometheus text format) into the wire's
//! `GpuSection`; [`DcgmSource`] fetches it in the background and hands out the latest
//! result. The exporter is read over plain HTTP on the node itself (its `hostPort` or
//! `127.0.0.1:9400` with host networking), never through a cluster Service, which would
//! land on another node's exporter.
//!
//! What dcgm-exporter knows, and so what this source reports:
//! * one row per GPU, or per GPU instance in MIG mode (labels `GPU_I_ID`, `GPU_I_PROFILE`;
//!   the parent's `UUID`, no MIG UUID and no compute-instance id);
//! * device fields (`DCGM_FI_DEV_*`) and, where its profiling module runs, ratios
//!   (`DCGM_FI_PROF_*`, 0–1, reported here as percent);
//! * with its Kubernetes mapping on, the pod holding each device (`pod`, `namespace`,
//!   `container`), which becomes the GPU's `allocations`;
//! * no per-process use, no per-link NVLink counters, no XID count (only the last XID).
//!
//! A field the payload lacks is absent with a reason in that GPU's `missing`.

use crate::gpu::GpuSource;
use crate::shutdown::Shutdown;
use aistor_proto::v1 as pb;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prometheus_parse::{Sample, Scrape, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::watch;

/// dcgm-exporter's default listen address, on the node itself.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9400/metrics";
/// One GET (connect, request, whole body) must finish within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Larger bodies are refused (an 8-GPU node with MIG and every field is well under 1 MiB).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

const MIB: f64 = 1024.0 * 1024.0;
/// DCGM's "blank" sentinels (no data) start here for fp64 and exceed it for int64.
const DCGM_BLANK: f64 = 140_737_488_355_328.0;

// Fields read, by their DCGM names (matched case-insensitively: old exporters used
// lower-case metric names).
const GPU_UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";
const MEM_COPY_UTIL: &str = "DCGM_FI_DEV_MEM_COPY_UTIL";
const FB_USED: &str = "DCGM_FI_DEV_FB_USED";
const FB_FREE: &str = "DCGM_FI_DEV_FB_FREE";
const FB_RESERVED: &str = "DCGM_FI_DEV_FB_RESERVED";
const FB_TOTAL: &str = "DCGM_FI_DEV_FB_TOTAL";
const POWER_USAGE: &str = "DCGM_FI_DEV_POWER_USAGE";
const POWER_LIMIT: &str = "DCGM_FI_DEV_POWER_MGMT_LIMIT";
const GPU_TEMP: &str = "DCGM_FI_DEV_GPU_TEMP";
const SM_CLOCK: &str = "DCGM_FI_DEV_SM_CLOCK";
const MEM_CLOCK: &str = "DCGM_FI_DEV_MEM_CLOCK";
const XID_ERRORS: &str = "DCGM_FI_DEV_XID_ERRORS";
const ECC_SBE_VOL: &str = "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL";
const ECC_DBE_VOL: &str = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL";
const PCIE_TX_KBPS: &str = "DCGM_FI_DEV_PCIE_TX_THROUGHPUT";
const PCIE_RX_KBPS: &str = "DCGM_FI_DEV_PCIE_RX_THROUGHPUT";
const PROF_PCIE_TX: &str = "DCGM_FI_PROF_PCIE_TX_BYTES";
const PROF_PCIE_RX: &str = "DCGM_FI_PROF_PCIE_RX_BYTES";
const GR_ENGINE_ACTIVE: &str = "DCGM_FI_PROF_GR_ENGINE_ACTIVE";
const SM_ACTIVE: &str = "DCGM_FI_PROF_SM_ACTIVE";
const SM_OCCUPANCY: &str = "DCGM_FI_PROF_SM_OCCUPANCY";
const TENSOR_ACTIVE: &str = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE";
const DRAM_ACTIVE: &str = "DCGM_FI_PROF_DRAM_ACTIVE";

const FIELDS: &[&str] = &[
    GPU_UTIL,
    MEM_COPY_UTIL,
    FB_USED,
    FB_FREE,
    FB_RESERVED,
    FB_TOTAL,
    POWER_USAGE,
    POWER_LIMIT,
    GPU_TEMP,
    SM_CLOCK,
    MEM_CLOCK,
    XID_ERRORS,
    ECC_SBE_VOL,
    ECC_DBE_VOL,
    PCIE_TX_KBPS,
    PCIE_RX_KBPS,
    PROF_PCIE_TX,
    PROF_PCIE_RX,
    GR_ENGINE_ACTIVE,
    SM_ACTIVE,
    SM_OCCUPANCY,
    TENSOR_ACTIVE,
    DRAM_ACTIVE,
];

/// A value as found: a number, or why it cannot be used.
type Reading = Result<f64, String>;
/// Field name -> first reading seen for it on one row.
type Fields = HashMap<&'static str, Reading>;

/// One GPU instance (MIG mode): the rows carrying its `GPU_I_ID`.
#[derive(Default)]
struct Instance {
    profile: String,
    fields: Fields,
}

/// One physical GPU: its identity labels, its own rows and its instances' rows.
#[derive(Default)]
struct Device {
    index: Option<u32>,
    uuid: String,
    model: String,
    pci_bus_id: String,
    whole: Fields,
    instances: BTreeMap<u32, Instance>,
    allocations: Vec<pb::GpuAllocation>,
}

impl Device {
    /// A device-wide field: from the GPU's own rows, else from any of its instances'
    /// rows (in MIG mode dcgm-exporter repeats device-wide values on every instance).
    fn device_wide(&self, field: &str) -> Option<&Reading> {
        self.whole
            .get(field)
            .or_else(|| self.instances.values().find_map(|i| i.fields.get(field)))
    }
}

/// Maps one dcgm-exporter `/metrics` payload. Bad input gives an empty `gpus` with the
/// reason in the section's `missing`; never panics.
pub fn parse_payload(text: &str) -> pb::GpuSection {
    if text.trim().is_empty() {
        return section_unavailable("DCGM exporter payload is empty".to_string());
    }
    let scrape = match Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))) {
        Ok(scrape) => scrape,
        Err(e) => return section_unavailable(format!("DCGM exporter payload: {e}")),
    };

    let mut devices: BTreeMap<String, Device> = BTreeMap::new();
    let mut driver_version: Option<String> = None;
    let mut dcgm_samples = 0usize;
    for sample in &scrape.samples {
        if !sample.metric.to_ascii_uppercase().starts_with("DCGM_FI_") {
            continue;
        }
        dcgm_samples += 1;
        if driver_version.is_none() {
            driver_version =
                label(sample, &["DCGM_FI_DRIVER_VERSION", "DRIVER_VERSION"]).map(str::to_owned);
        }
        let Some(key) = device_key(sample) else {
            continue;
        };
        let device = devices.entry(key).or_default();
        fill_identity(device, sample);
        let instance_id = label(sample, &["GPU_I_ID"]).and_then(|v| v.parse::<u32>().ok());
        if let Some(allocation) = allocation(sample, device, instance_id)
            && !device.allocations.contains(&allocation)
        {
            device.allocations.push(allocation);
        }
        let row = match instance_id {
            Some(id) => {
                let instance = device.instances.entry(id).or_default();
                if instance.profile.is_empty()
                    && let Some(profile) = label(sample, &["GPU_I_PROFILE"])
                {
                    instance.profile = profile.to_owned();
                }
                &mut instance.fields
            }
            None => &mut device.whole,
        };
        if let Some(field) = known_field(&sample.metric) {
            row.entry(field)
                .or_insert_with(|| reading(field, &sample.value));
        }
    }

    if devices.is_empty() {
        let reason = if dcgm_samples == 0 {
            format!(
                "DCGM exporter payload has no DCGM_FI_* samples ({} lines, {} samples of other metrics)",
                text.lines().count(),
                scrape.samples.len()
            )
        } else {
            format!(
                "DCGM exporter payload has {dcgm_samples} DCGM_FI_* samples but none names a device (no gpu, UUID or device label)"
            )
        };
        return section_unavailable(reason);
    }

    let mut gpus: Vec<pb::Gpu> = devices.into_values().map(build_gpu).collect();
    gpus.sort_by(|a, b| a.index.cmp(&b.index).then_with(|| a.uuid.cmp(&b.uuid)));
    let mut missing = Vec::new();
    if driver_version.is_none() {
        missing.push(pb::Missing {
            field: "driver_version".into(),
            reason: "DCGM exporter payload has no DCGM_FI_DRIVER_VERSION label".into(),
        });
    }
    pb::GpuSection {
        source: pb::GpuSource::DcgmExporter as i32,
        gpus,
        driver_version: driver_version.unwrap_or_default(),
        missing,
    }
}

fn section_unavailable(reason: String) -> pb::GpuSection {
    super::unavailable(pb::GpuSource::DcgmExporter, reason)
}

/// The first non-empty value among these label names.
fn label<'a>(sample: &'a Sample, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|name| sample.labels.get(name))
        .filter(|value| !value.is_empty())
}

/// Which device a sample belongs to: its `gpu` index, else its UUID, else `nvidiaN`.
fn device_key(sample: &Sample) -> Option<String> {
    if let Some(gpu) = label(sample, &["gpu"]) {
        return Some(format!("gpu {gpu}"));
    }
    if let Some(uuid) = label(sample, &["UUID", "uuid"]) {
        return Some(format!("uuid {uuid}"));
    }
    label(sample, &["device"]).map(|device| format!("device {device}"))
}

fn fill_identity(device: &mut Device, sample: &Sample) {
    if device.index.is_none() {
        device.index = label(sample, &["gpu"])
            .and_then(|gpu| gpu.parse().ok())
            .or_else(|| {
                label(sample, &["device"])
                    .and_then(|d| d.strip_prefix("nvidia"))
                    .and_then(|n| n.parse().ok())
            });
    }
    for (slot, names) in [
        (&mut device.uuid, &["UUID", "uuid"][..]),
        (&mut device.model, &["modelName", "modelname"][..]),
        (&mut device.pci_bus_id, &["pci_bus_id"][..]),
    ] {
        if slot.is_empty()
            && let Some(value) = label(sample, names)
        {
            *slot = value.to_owned();
        }
    }
}

/// The pod holding this device (or instance), from the exporter's Kubernetes labels
/// (current names, then the `--use-old-namespace` ones).
fn allocation(
    sample: &Sample,
    device: &Device,
    instance_id: Option<u32>,
) -> Option<pb::GpuAllocation> {
    let pod_name = label(sample, &["pod", "pod_name"])?;
    Some(pb::GpuAllocation {
        pod_uid: label(sample, &["pod_uid"]).unwrap_or_default().to_owned(),
        pod_name: pod_name.to_owned(),
        pod_namespace: label(sample, &["namespace", "pod_namespace"])
            .unwrap_or_default()
            .to_owned(),
        container_name: label(sample, &["container", "container_name"])
            .unwrap_or_default()
            .to_owned(),
        mig_uuid: instance_id
            .map(|id| mig_instance_name(&device.uuid, id))
            .unwrap_or_default(),
    })
}

/// How a GPU instance is named in `GpuAllocation.mig_uuid` by this source: the parent
/// GPU's UUID and the `GPU_I_ID`, which is all dcgm-exporter says about it (its payload
/// has no MIG UUID).
pub fn mig_instance_name(parent_uuid: &str, gpu_instance_id: u32) -> String {
    format!("{parent_uuid}/{gpu_instance_id}")
}

fn known_field(metric: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .copied()
        .find(|field| field.eq_ignore_ascii_case(metric))
}

fn reading(field: &str, value: &Value) -> Reading {
    let v = match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(_) | Value::Summary(_) => {
            return Err(format!("{field} is not a gauge or counter in the payload"));
        }
    };
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{field} has an unusable value {v}"));
    }
    if v >= DCGM_BLANK {
        return Err(format!("{field} is blank (DCGM has no data for it)"));
    }
    Ok(v)
}

/// Collects reasons for absent fields of one GPU.
struct Reasons(Vec<pb::Missing>);

impl Reasons {
    fn add(&mut self, field: &str, reason: String) {
        self.0.push(pb::Missing {
            field: field.to_owned(),
            reason,
        });
    }

    /// The value of `dcgm` for wire field `field`, or a reason.
    fn take(&mut self, field: &str, dcgm: &str, found: Option<&Reading>) -> Option<f64> {
        match found {
            Some(Ok(v)) => Some(*v),
            Some(Err(reason)) => {
                self.add(field, reason.clone());
                None
            }
            None => {
                self.add(field, format!("DCGM exporter payload has no {dcgm}"));
                None
            }
        }
    }
}

fn to_u32(v: f64) -> Option<u32> {
    (v <= f64::from(u32::MAX)).then_some(v.round() as u32)
}

fn to_u64(v: f64) -> Option<u64> {
    // Readings are finite, non-negative and below DCGM_BLANK, so this never saturates.
    Some(v.round() as u64)
}

fn mib_to_bytes(mib: f64) -> Option<u64> {
    to_u64(mib * MIB)
}

fn gpm(
    fields: &dyn Fn(&str) -> Option<Reading>,
    reasons: Option<&mut Reasons>,
) -> Option<pb::GpmMetrics> {
    let mut sink = Reasons(Vec::new());
    let reasons = match reasons {
        Some(r) => r,
        None => &mut sink,
    };
    let mut percent = |field: &str, dcgm: &str| {
        let found = fields(dcgm);
        reasons
            .take(&format!("gpm.{field}"), dcgm, found.as_ref())
            .map(|ratio| ratio * 100.0)
    };
    let metrics = pb::GpmMetrics {
        graphics_engine_active_percent: percent("graphics_engine_active_percent", GR_ENGINE_ACTIVE),
        sm_active_percent: percent("sm_active_percent", SM_ACTIVE),
        sm_occupancy_percent: percent("sm_occupancy_percent", SM_OCCUPANCY),
        tensor_active_percent: percent("tensor_active_percent", TENSOR_ACTIVE),
        dram_active_percent: percent("dram_active_percent", DRAM_ACTIVE),
    };
    let any = metrics.graphics_engine_active_percent.is_some()
        || metrics.sm_active_percent.is_some()
        || metrics.sm_occupancy_percent.is_some()
        || metrics.tensor_active_percent.is_some()
        || metrics.dram_active_percent.is_some();
    any.then_some(metrics)
}

fn build_gpu(device: Device) -> pb::Gpu {
    let mut reasons = Reasons(Vec::new());
    let mig = !device.instances.is_empty();
    let mut gpu = pb::Gpu {
        index: device.index.unwrap_or_default(),
        uuid: device.uuid.clone(),
        model: device.model.clone(),
        pci_bus_id: device.pci_bus_id.clone(),
        mig_enabled: Some(mig),
        ..Default::default()
    };
    if device.index.is_none() {
        reasons.add(
            "index",
            "DCGM exporter payload has no gpu label for this device".into(),
        );
    }

    // Utilization and memory: per device outside MIG mode, per instance inside it.
    if mig {
        for field in ["utilization_percent", "memory_utilization_percent"] {
            reasons.add(
                field,
                "MIG mode: no device-wide utilization (see mig_instances[].gpm)".into(),
            );
        }
        for field in [
            "memory_total_bytes",
            "memory_used_bytes",
            "memory_free_bytes",
            "memory_reserved_bytes",
        ] {
            reasons.add(
                field,
                "MIG mode: DCGM exporter reports framebuffer per GPU instance (see mig_instances)"
                    .into(),
            );
        }
        reasons.add(
            "gpm",
            "MIG mode: profiling metrics are per GPU instance (see mig_instances[].gpm)".into(),
        );
    } else {
        let whole = &device.whole;
        gpu.utilization_percent =
            reasons.take("utilization_percent", GPU_UTIL, whole.get(GPU_UTIL));
        gpu.memory_utilization_percent = reasons.take(
            "memory_utilization_percent",
            MEM_COPY_UTIL,
            whole.get(MEM_COPY_UTIL),
        );
        let used = reasons.take("memory_used_bytes", FB_USED, whole.get(FB_USED));
        let free = reasons.take("memory_free_bytes", FB_FREE, whole.get(FB_FREE));
        let reserved = reasons.take("memory_reserved_bytes", FB_RESERVED, whole.get(FB_RESERVED));
        gpu.memory_used_bytes = used.and_then(mib_to_bytes);
        gpu.memory_free_bytes = free.and_then(mib_to_bytes);
        gpu.memory_reserved_bytes = reserved.and_then(mib_to_bytes);
        gpu.memory_total_bytes = match (whole.get(FB_TOTAL), used, free, reserved) {
            (Some(Ok(total)), ..) => mib_to_bytes(*total),
            (_, Some(u), Some(f), Some(r)) => mib_to_bytes(u + f + r),
            _ => {
                reasons.add(
                    "memory_total_bytes",
                    format!(
                        "DCGM exporter payload has no {FB_TOTAL}, and not all of {FB_USED}, {FB_FREE} and {FB_RESERVED}"
                    ),
                );
                None
            }
        };
        let fields = |name: &str| whole.get(name).cloned();
        gpu.gpm = gpm(&fields, Some(&mut reasons));
    }

    gpu.temperature_celsius = reasons.take(
        "temperature_celsius",
        GPU_TEMP,
        device.device_wide(GPU_TEMP),
    );
    gpu.power_watts = reasons.take("power_watts", POWER_USAGE, device.device_wide(POWER_USAGE));
    gpu.power_limit_watts = reasons.take(
        "power_limit_watts",
        POWER_LIMIT,
        device.device_wide(POWER_LIMIT),
    );
    gpu.sm_clock_mhz = reasons
        .take("sm_clock_mhz", SM_CLOCK, device.device_wide(SM_CLOCK))
        .and_then(to_u32);
    gpu.memory_clock_mhz = reasons
        .take("memory_clock_mhz", MEM_CLOCK, device.device_wide(MEM_CLOCK))
        .and_then(to_u32);
    gpu.ecc_corrected_volatile_total = reasons
        .take(
            "ecc_corrected_volatile_total",
            ECC_SBE_VOL,
            device.device_wide(ECC_SBE_VOL),
        )
        .and_then(to_u64);
    gpu.ecc_uncorrected_volatile_total = reasons
        .take(
            "ecc_uncorrected_volatile_total",
            ECC_DBE_VOL,
            device.device_wide(ECC_DBE_VOL),
        )
        .and_then(to_u64);
    gpu.last_xid = reasons
        .take("last_xid", XID_ERRORS, device.device_wide(XID_ERRORS))
        .and_then(to_u64);
    reasons.add(
        "xid_events_total",
        "DCGM exporter reports only the last XID, not how many were seen".into(),
    );
    gpu.pcie_tx_bytes_per_second = pcie(
        &device,
        &mut reasons,
        "pcie_tx_bytes_per_second",
        PCIE_TX_KBPS,
        PROF_PCIE_TX,
    );
    gpu.pcie_rx_bytes_per_second = pcie(
        &device,
        &mut reasons,
        "pcie_rx_bytes_per_second",
        PCIE_RX_KBPS,
        PROF_PCIE_RX,
    );
    reasons.add(
        "nvlinks",
        "DCGM exporter reports no per-link NVLink counters".into(),
    );
    reasons.add(
        "processes",
        "DCGM exporter does not report per-process GPU use".into(),
    );

    gpu.mig_instances = device
        .instances
        .iter()
        .map(|(id, instance)| mig_instance(*id, instance, &mut reasons))
        .collect();
    gpu.allocations = device.allocations;
    gpu.missing = reasons.0;
    gpu
}

/// PCIe throughput: `DCGM_FI_DEV_PCIE_*_THROUGHPUT` (KB/s, from NVML), else the
/// profiling module's `DCGM_FI_PROF_PCIE_*_BYTES` (bytes/s), which the default
/// counters enable.
fn pcie(
    device: &Device,
    reasons: &mut Reasons,
    field: &str,
    throughput: &str,
    prof_bytes: &str,
) -> Option<f64> {
    match (
        device.device_wide(throughput),
        device.device_wide(prof_bytes),
    ) {
        (Some(Ok(kb)), _) => Some(kb * 1024.0),
        (_, Some(Ok(bytes))) => Some(*bytes),
        (Some(Err(reason)), _) | (None, Some(Err(reason))) => {
            reasons.add(field, reason.clone());
            None
        }
        (None, None) => {
            reasons.add(
                field,
                format!("DCGM exporter payload has neither {throughput} nor {prof_bytes}"),
            );
            None
        }
    }
}

/// One MIG instance (GPU instance `id`). dcgm-exporter labels instances by GPU
/// instance only (`GPU_I_ID`), so the compute instance is absent with a reason; so is
/// a total it does not state and cannot be summed without inventing reserved memory.
fn mig_instance(id: u32, instance: &Instance, reasons: &mut Reasons) -> pb::MigInstance {
    let fields = &instance.fields;
    let value = |name: &str| fields.get(name).and_then(|r| r.as_ref().ok()).copied();
    let used = value(FB_USED);
    let free = value(FB_FREE);
    let total = match (value(FB_TOTAL), used, free, value(FB_RESERVED)) {
        (Some(total), ..) => Some(total),
        (None, Some(u), Some(f), Some(r)) => Some(u + f + r),
        _ => {
            reasons.add(
                "mig_instances.memory_total_bytes",
                format!(
                    "GPU instance {id}: DCGM exporter payload has no {FB_TOTAL}, and not all of {FB_USED}, {FB_FREE} and {FB_RESERVED}"
                ),
            );
            None
        }
    };
    match fields.get(FB_USED) {
        Some(Ok(_)) => {}
        Some(Err(reason)) => reasons.add(
            "mig_instances.memory_used_bytes",
            format!("GPU instance {id}: {reason}"),
        ),
        None => reasons.add(
            "mig_instances.memory_used_bytes",
            format!("GPU instance {id}: DCGM exporter payload has no {FB_USED}"),
        ),
    }
    reasons.add(
        "mig_instances.compute_instance_id",
        format!(
            "GPU instance {id}: DCGM exporter labels MIG rows by GPU instance (GPU_I_ID) only, not by compute instance"
        ),
    );
    let lookup = |name: &str| fields.get(name).cloned();
    pb::MigInstance {
        uuid: String::new(),
        gpu_instance_id: id,
        compute_instance_id: None,
        profile: instance.profile.clone(),
        memory_total_bytes: total.and_then(mib_to_bytes),
        memory_used_bytes: used.and_then(mib_to_bytes),
        gpm: gpm(&lookup, None),
    }
}

/// A checked `http://host:port/path` to fetch.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    /// `host:port` to connect to.
    address: String,
    /// The `Host` header.
    host: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("DCGM exporter URL {url:?}: {why}");
    let uri: hyper::Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(bad(&format!(
                "scheme {other:?} is not supported; use plain http:// to the exporter on this node"
            )));
        }
        None => return Err(bad("expected http://host:port/path")),
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user information in the URL is not supported"));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = authority.port_u16().unwrap_or(80);
    Ok(Target {
        url: url.to_owned(),
        address: format!("{host}:{port}"),
        host: authority.as_str().to_owned(),
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
    })
}

/// GET the target: the body as text, or "GET <url>: <why>".
async fn fetch(target: &Target) -> Result<String, String> {
    let fail = |why: String| format!("GET {}: {why}", target.url);
    match tokio::time::timeout(FETCH_TIMEOUT, exchange(target)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(why)) => Err(fail(why)),
        Err(_) => Err(fail(format!(
            "no complete answer within {}",
            humantime::format_duration(FETCH_TIMEOUT)
        ))),
    }
}

async fn exchange(target: &Target) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(&target.address)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let request = hyper::Request::get(target.path.as_str())
        .header(hyper::header::HOST, target.host.as_str())
        .header(hyper::header::ACCEPT, "text/plain")
        .header(hyper::header::USER_AGENT, "aistor-agent")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let call = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8 text".to_owned())
    };
    // The connection is driven alongside the call and dropped with it; it never decides
    // the outcome on its own (its errors reach the call as well).
    let drive = async {
        let _ = connection.await;
        std::future::pending::<()>().await;
    };
    tokio::select! {
        result = call => result,
        () = drive => Err("connection ended".to_owned()),
    }
}

/// A [`GpuSource`] that reads a node-local dcgm-exporter: a background task GETs the URL
/// every `interval` (each GET bounded by [`FETCH_TIMEOUT`]) and [`GpuSource::read`]
/// returns the latest parsed payload, or the latest error as the section's `missing`.
#[derive(Debug)]
pub struct DcgmSource {
    latest: watch::Receiver<pb::GpuSection>,
    url: String,
}

impl DcgmSource {
    /// Starts fetching `url` (plain `http://host:port/path`; anything else is an error)
    /// now and every `interval` until `shutdown` or until the source is dropped.
    /// Needs a running Tokio runtime.
    pub fn spawn(url: String, interval: Duration, shutdown: Shutdown) -> Result<Self, String> {
        let target = parse_url(&url)?;
        if interval.is_zero() {
            return Err("DCGM exporter poll interval must be greater than zero".to_owned());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| format!("DCGM exporter source needs a Tokio runtime: {e}"))?;
        let (publish, latest) = watch::channel(section_unavailable(format!(
            "no answer yet from the DCGM exporter at {url}"
        )));
        runtime.spawn(poll(target, interval, publish, shutdown));
        Ok(Self { latest, url })
    }

    /// The URL being read.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl GpuSource for DcgmSource {
    fn read(&mut self) -> pb::GpuSection {
        self.latest.borrow_and_update().clone()
    }
}

async fn poll(
    target: Target,
    interval: Duration,
    publish: watch::Sender<pb::GpuSection>,
    mut shutdown: Shutdown,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.wait() => return,
            () = publish.closed() => return,
        }
        let section = match fetch(&target).await {
            Ok(body) => {
                if last_error.take().is_some() {
                    tracing::info!(url = %target.url, "DCGM exporter reachable again");
                }
                parse_payload(&body)
            }
            Err(reason) => {
                if last_error.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(%reason, "cannot read the DCGM exporter");
                }
                last_error = Some(reason.clone());
                section_unavailable(reason)
            }
        };
        if publish.send(section).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("http://127.0.0.1:9400/metrics").unwrap();
        assert_eq!(t.address, "127.0.0.1:9400");
        assert_eq!(t.host, "127.0.0.1:9400");
        assert_eq!(t.path, "/metrics");
        let t = parse_url("http://localhost").unwrap();
        assert_eq!(t.address, "localhost:80");
        assert_eq!(t.path, "/");
        let t = parse_url("http://[::1]:9400/metrics?x=1").unwrap();
        assert_eq!(t.address, "[::1]:9400");
        assert_eq!(t.path, "/metrics?x=1");
        for bad in [
            "https://127.0.0.1:9400/metrics",
            "127.0.0.1:9400/metrics",
            "/metrics",
            "",
            "http://user:pw@127.0.0.1:9400/metrics",
            "unix:///run/dcgm.sock",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn blank_and_bad_values_are_reasons() {
        assert_eq!(reading(GPU_TEMP, &Value::Gauge(41.0)), Ok(41.0));
        assert!(reading(GPU_TEMP, &Value::Gauge(f64::NAN)).is_err());
        assert!(reading(GPU_TEMP, &Value::Gauge(-1.0)).is_err());
        assert!(
            reading(GPU_TEMP, &Value::Gauge(9_223_372_036_854_775_794.0))
                .unwrap_err()
                .contains("blank")
        );
    }

    #[test]
    fn lower_case_metric_names_match() {
        assert_eq!(
            known_field("dcgm_fi_prof_gr_engine_active"),
            Some(GR_ENGINE_ACTIVE)
        );
        assert_eq!(known_field("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"), None);
    }
}
