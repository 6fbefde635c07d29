//! GPUs through NVML (`nvml-wrapper`; `libnvidia-ml.so.1` is loaded at run time).
//!
//! [`NvmlSource`] reads every device once per tick through the [`NvmlApi`] trait, so the
//! conversion below is the same for the real library and for the fake (`gpu::fake`).
//! A device whose calls fail is reported with its reasons while the others go on; a
//! value NVML does not give is absent and listed in that `Gpu`'s `missing` with the
//! call and NVML's error (`"nvmlDeviceGetPowerUsage: NotSupported"`), never 0.
//!
//! Per tick and device:
//! - identity (index, UUID, name, PCI bus id) is read once and kept (the handle comes
//!   from `nvmlDeviceGetHandleByIndex`, so the index is NVML's);
//! - memory, utilisation (not in MIG mode, where NVML does not report it), temperature,
//!   power and its enforced limit, SM and memory clocks, volatile ECC counts;
//! - XID critical errors: an event set per device is registered on first read and
//!   drained with a zero timeout each tick (`last_xid`, `xid_events_total` since the
//!   agent started; 999 is NVML's "unknown XID");
//! - PCIe: the cumulative byte counters (`NVML_FI_DEV_PCIE_COUNT_{TX,RX}_BYTES`) give a
//!   rate over the measured time between ticks. Where the driver lacks them,
//!   `nvmlDeviceGetPcieThroughput` (KiB/s) is used only when enabled with
//!   [`NvmlSource::with_pcie_sampling`], because each call blocks for its ~20 ms window;
//! - NVLink: links found on the first read, their state each tick;
//! - GPM (Hopper and newer, where `nvmlGpmQueryDeviceSupport` says so): metrics between
//!   this tick's sample and the previous one;
//! - MIG: instances through MIG device handles (memory per instance, processes);
//! - processes: the running compute processes (memory) joined with the utilisation
//!   samples newer than the last one seen (newest per pid). `NotFound` there means no
//!   samples; a running process without a sample keeps its memory with utilisation
//!   absent; a sampled pid gone from the running list has exited and is dropped.
//!
//! Pids are host pids (the driver is not pid-namespace aware); `gpu::attribution`
//! maps them to containers afterwards.

use super::device::{
    ApiError, ApiResult, DeviceApi, GpmSample, GpmValues, NvmlApi, PcieCounters, RunningProcess,
    UtilizationSample,
};
use aistor_proto::v1 as pb;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// The library `open(None)` loads (the name container toolkits inject).
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";
/// `NVML_NVLINK_MAX_LINKS`.
const MAX_NVLINKS: u32 = 18;
/// XID events taken from a device's event set per tick at most.
const MAX_XID_PER_TICK: usize = 256;

/// Reads GPUs through NVML. See the module docs.
pub struct NvmlSource {
    api: Box<dyn NvmlApi + Send>,
    driver_version: Option<String>,
    /// Enumerated on the first read that can count devices.
    devices: Option<Vec<DeviceState>>,
    pcie_sampling: bool,
}

impl std::fmt::Debug for NvmlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSource")
            .field("driver_version", &self.driver_version)
            .field("devices", &self.devices.as_ref().map(Vec::len))
            .field("pcie_sampling", &self.pcie_sampling)
            .finish_non_exhaustive()
    }
}

impl NvmlSource {
    /// Loads NVML from `lib_path` (None: the default `libnvidia-ml.so.1` search). Err(reason)
    /// when the library cannot be loaded or initialised — the caller then reports
    /// `gpu::unavailable(GpuSource::Nvml, reason)`.
    ///
    /// The library stays loaded for the life of the process (device handles, event sets
    /// and GPM samples borrow it); open it once.
    pub fn open(lib_path: Option<&Path>) -> Result<Self, String> {
        real::RealNvml::open(lib_path).map(|api| Self::with_api(Box::new(api)))
    }

    /// Same conversion over any implementation of the device trait (the fake in tests).
    pub fn with_api(api: Box<dyn NvmlApi + Send>) -> Self {
        Self {
            api,
            driver_version: None,
            devices: None,
            pcie_sampling: false,
        }
    }

    /// Falls back to `nvmlDeviceGetPcieThroughput` on devices without PCIe byte
    /// counters. Each call blocks for NVML's ~20 ms sampling window (two per device per
    /// tick), so it is off by default.
    #[must_use]
    pub fn with_pcie_sampling(mut self, enabled: bool) -> Self {
        self.pcie_sampling = enabled;
        self
    }

    /// One reading, with `now` as the time PCIe counter rates are computed against.
    pub fn read_at(&mut self, now: Instant) -> pb::GpuSection {
        let mut section = pb::GpuSection {
            source: pb::GpuSource::Nvml as i32,
            ..Default::default()
        };
        if self.driver_version.is_none() {
            match self.api.driver_version() {
                Ok(version) => self.driver_version = Some(version),
                Err(e) => section.missing.push(missing(
                    "driver_version",
                    call("nvmlSystemGetDriverVersion", &e),
                )),
            }
        }
        section.driver_version = self.driver_version.clone().unwrap_or_default();
        if self.devices.is_none() {
            match self.api.device_count() {
                Ok(count) => self.devices = Some((0..count).map(DeviceState::new).collect()),
                Err(e) => {
                    section
                        .missing
                        .push(missing("gpus", call("nvmlDeviceGetCount", &e)));
                    return section;
                }
            }
        }
        let Some(devices) = self.devices.as_mut() else {
            return section;
        };
        if devices.is_empty() {
            section
                .missing
                .push(missing("gpus", "NVML reports no GPU on this node"));
            return section;
        }
        section.gpus.reserve(devices.len());
        for device in devices.iter_mut() {
            section
                .gpus
                .push(device.read(self.api.as_ref(), now, self.pcie_sampling));
        }
        section
    }
}

impl super::GpuSource for NvmlSource {
    fn read(&mut self) -> pb::GpuSection {
        self.read_at(Instant::now())
    }
}

fn missing(field: &str, reason: impl Into<String>) -> pb::Missing {
    pb::Missing {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn call(name: &str, error: &ApiError) -> String {
    format!("{name}: {error}")
}

/// Runs a device's calls, collecting the reasons of those that fail; after `GpuLost`
/// the remaining calls are skipped (they would all fail the same way).
struct Calls<'a> {
    missing: &'a mut Vec<pb::Missing>,
    lost: bool,
}

impl Calls<'_> {
    fn get<T>(&mut self, field: &str, name: &str, f: impl FnOnce() -> ApiResult<T>) -> Option<T> {
        self.get_all(&[field], name, f)
    }

    /// One call that fills several fields: each is listed when it fails.
    fn get_all<T>(
        &mut self,
        fields: &[&str],
        name: &str,
        f: impl FnOnce() -> ApiResult<T>,
    ) -> Option<T> {
        if self.lost {
            return None;
        }
        match f() {
            Ok(value) => Some(value),
            Err(e) => {
                for field in fields {
                    self.note(field, name, &e);
                }
                None
            }
        }
    }

    /// The call's own result, for callers that treat some errors as values; `None` when
    /// skipped after `GpuLost`.
    fn get_raw<T>(&self, f: impl FnOnce() -> ApiResult<T>) -> Option<ApiResult<T>> {
        (!self.lost).then(f)
    }

    fn note(&mut self, field: &str, name: &str, e: &ApiError) {
        if *e == ApiError::GpuLost {
            self.lost = true;
        }
        self.missing.push(missing(field, call(name, e)));
    }
}

/// What is kept about one device between ticks.
struct DeviceState {
    index: u32,
    handle: Option<Box<dyn DeviceApi + Send>>,
    uuid: Option<String>,
    model: Option<String>,
    pci_bus_id: Option<String>,
    /// The registration's outcome, once tried.
    xid_registration: Option<Result<(), String>>,
    last_xid: u64,
    xid_events_total: u64,
    /// Newest utilisation sample timestamp seen (µs); 0 before the first.
    util_last_seen: u64,
    /// `Ok(false)` also when the device answers `NotSupported`.
    gpm_support: Option<Result<bool, String>>,
    gpm_previous: Option<GpmSample>,
    /// Links the device has, found on the first read that could tell.
    nvlinks: Option<Vec<u32>>,
    /// `Some(Err)` once the PCIe byte counters failed before ever working.
    pcie_counters: Option<Result<(), String>>,
    pcie_previous: Option<(Instant, PcieCounters)>,
}

impl DeviceState {
    fn new(index: u32) -> Self {
        Self {
            index,
            handle: None,
            uuid: None,
            model: None,
            pci_bus_id: None,
            xid_registration: None,
            last_xid: 0,
            xid_events_total: 0,
            util_last_seen: 0,
            gpm_support: None,
            gpm_previous: None,
            nvlinks: None,
            pcie_counters: None,
            pcie_previous: None,
        }
    }

    fn read(&mut self, api: &dyn NvmlApi, now: Instant, pcie_sampling: bool) -> pb::Gpu {
        let mut gpu = pb::Gpu {
            index: self.index,
            ..Default::default()
        };
        // The handle comes by index, so the index is the NVML index.
        if self.handle.is_none() {
            match api.device(self.index) {
                Ok(handle) => self.handle = Some(handle),
                Err(e) => {
                    gpu.missing
                        .push(missing("gpu", call("nvmlDeviceGetHandleByIndex", &e)));
                    return gpu;
                }
            }
        }
        let Some(mut handle) = self.handle.take() else {
            return gpu;
        };
        let mut missing_out = std::mem::take(&mut gpu.missing);
        let lost = {
            let mut calls = Calls {
                missing: &mut missing_out,
                lost: false,
            };
            self.read_device(handle.as_mut(), &mut gpu, &mut calls, now, pcie_sampling);
            calls.lost
        };
        if lost {
            missing_out.push(missing(
                "gpu",
                "GpuLost: the device fell off the bus or is inaccessible; its remaining readings were skipped",
            ));
        }
        gpu.missing = missing_out;
        self.handle = Some(handle);
        gpu
    }

    fn read_device(
        &mut self,
        dev: &mut (dyn DeviceApi + Send),
        gpu: &mut pb::Gpu,
        calls: &mut Calls<'_>,
        now: Instant,
        pcie_sampling: bool,
    ) {
        self.identity(dev, gpu, calls);
        gpu.mig_enabled = match calls.get_raw(|| dev.mig_enabled()) {
            None => None,
            Some(Ok(enabled)) => Some(enabled),
            // Not MIG capable: MIG is certainly off.
            Some(Err(ApiError::NotSupported)) => Some(false),
            Some(Err(e)) => {
                calls.note("mig_enabled", "nvmlDeviceGetMigMode", &e);
                None
            }
        };
        let mig = gpu.mig_enabled == Some(true);
        if let Some(memory) = calls.get_all(
            &[
                "memory_total_bytes",
                "memory_used_bytes",
                "memory_reserved_bytes",
                "memory_free_bytes",
            ],
            "nvmlDeviceGetMemoryInfo_v2",
            || dev.memory_info(),
        ) {
            gpu.memory_total_bytes = Some(memory.total);
            gpu.memory_used_bytes = Some(memory.used);
            gpu.memory_reserved_bytes = Some(memory.reserved);
            gpu.memory_free_bytes = Some(memory.free);
        }
        if mig {
            for field in ["utilization_percent", "memory_utilization_percent"] {
                calls.missing.push(missing(
                    field,
                    "not reported in MIG mode (nvmlDeviceGetUtilizationRates is not supported on MIG-enabled GPUs)",
                ));
            }
        } else if let Some(util) = calls.get_all(
            &["utilization_percent", "memory_utilization_percent"],
            "nvmlDeviceGetUtilizationRates",
            || dev.utilization_rates(),
        ) {
            gpu.utilization_percent = Some(f64::from(util.gpu));
            gpu.memory_utilization_percent = Some(f64::from(util.memory));
        }
        gpu.temperature_celsius = calls
            .get("temperature_celsius", "nvmlDeviceGetTemperature", || {
                dev.temperature_celsius()
            })
            .map(f64::from);
        gpu.power_watts = calls
            .get("power_watts", "nvmlDeviceGetPowerUsage", || {
                dev.power_usage_milliwatts()
            })
            .map(|mw| f64::from(mw) / 1000.0);
        gpu.power_limit_watts = calls
            .get(
                "power_limit_watts",
                "nvmlDeviceGetEnforcedPowerLimit",
                || dev.power_limit_milliwatts(),
            )
            .map(|mw| f64::from(mw) / 1000.0);
        gpu.sm_clock_mhz = calls.get("sm_clock_mhz", "nvmlDeviceGetClockInfo(SM)", || {
            dev.sm_clock_mhz()
        });
        gpu.memory_clock_mhz = calls.get("memory_clock_mhz", "nvmlDeviceGetClockInfo(MEM)", || {
            dev.memory_clock_mhz()
        });
        gpu.ecc_corrected_volatile_total = calls.get(
            "ecc_corrected_volatile_total",
            "nvmlDeviceGetTotalEccErrors(CORRECTED, VOLATILE)",
            || dev.ecc_volatile_total(true),
        );
        gpu.ecc_uncorrected_volatile_total = calls.get(
            "ecc_uncorrected_volatile_total",
            "nvmlDeviceGetTotalEccErrors(UNCORRECTED, VOLATILE)",
            || dev.ecc_volatile_total(false),
        );
        self.xid(dev, gpu, calls);
        self.pcie(dev, gpu, calls, now, pcie_sampling);
        self.nvlinks(dev, gpu, calls);
        self.gpm(dev, gpu, calls);
        let processes = if mig {
            self.mig_instances(dev, gpu, calls)
        } else {
            calls.get(
                "processes",
                "nvmlDeviceGetComputeRunningProcesses_v3",
                || {
                    dev.running_compute_processes()
                        .map(|list| list.into_iter().map(|p| (p, String::new())).collect())
                },
            )
        };
        if let Some(processes) = processes {
            self.processes(dev, gpu, calls, processes, mig);
        }
    }

    fn identity(&mut self, dev: &(dyn DeviceApi + Send), gpu: &mut pb::Gpu, calls: &mut Calls<'_>) {
        if self.uuid.is_none() {
            self.uuid = calls.get("uuid", "nvmlDeviceGetUUID", || dev.uuid());
        }
        if self.model.is_none() {
            self.model = calls.get("model", "nvmlDeviceGetName", || dev.name());
        }
        if self.pci_bus_id.is_none() {
            self.pci_bus_id = calls.get("pci_bus_id", "nvmlDeviceGetPciInfo", || dev.pci_bus_id());
        }
        gpu.uuid = self.uuid.clone().unwrap_or_default();
        gpu.model = self.model.clone().unwrap_or_default();
        gpu.pci_bus_id = self.pci_bus_id.clone().unwrap_or_default();
    }

    fn xid(&mut self, dev: &mut (dyn DeviceApi + Send), gpu: &mut pb::Gpu, calls: &mut Calls<'_>) {
        if calls.lost {
            return;
        }
        if self.xid_registration.is_none() {
            let name = "nvmlDeviceRegisterEvents(XID_CRITICAL_ERROR)";
            match dev.register_xid_events() {
                Ok(()) => self.xid_registration = Some(Ok(())),
                // Lost: asked again if the device comes back.
                Err(ApiError::GpuLost) => {
                    calls.note("last_xid", name, &ApiError::GpuLost);
                    return;
                }
                Err(e) => self.xid_registration = Some(Err(call(name, &e))),
            }
        }
        if let Some(Err(reason)) = &self.xid_registration {
            calls.missing.push(missing("last_xid", reason.clone()));
            calls
                .missing
                .push(missing("xid_events_total", reason.clone()));
            return;
        }
        for _ in 0..MAX_XID_PER_TICK {
            match dev.next_xid() {
                Ok(Some(xid)) => {
                    self.last_xid = xid;
                    self.xid_events_total += 1;
                }
                Ok(None) | Err(ApiError::Timeout) => break,
                Err(e) => {
                    // Counts so far stay valid; a failed drain is worth saying.
                    calls.note("xid_events_total", "nvmlEventSetWait_v2", &e);
                    break;
                }
            }
        }
        gpu.last_xid = Some(self.last_xid);
        gpu.xid_events_total = Some(self.xid_events_total);
    }

    fn pcie(
        &mut self,
        dev: &(dyn DeviceApi + Send),
        gpu: &mut pb::Gpu,
        calls: &mut Calls<'_>,
        now: Instant,
        pcie_sampling: bool,
    ) {
        if calls.lost {
            return;
        }
        if let Some(Err(reason)) = &self.pcie_counters {
            let reason = reason.clone();
            self.pcie_fallback(dev, gpu, calls, &reason, pcie_sampling);
            return;
        }
        let both = ["pcie_tx_bytes_per_second", "pcie_rx_bytes_per_second"];
        match dev.pcie_counters() {
            Ok(current) => {
                self.pcie_counters = Some(Ok(()));
                let previous = self.pcie_previous.replace((now, current));
                let rate = previous.and_then(|(then, before)| {
                    let seconds = now.checked_duration_since(then)?.as_secs_f64();
                    let tx = current.tx_bytes.checked_sub(before.tx_bytes)?;
                    let rx = current.rx_bytes.checked_sub(before.rx_bytes)?;
                    (seconds > 0.0).then(|| (tx as f64 / seconds, rx as f64 / seconds))
                });
                if let Some((tx, rx)) = rate {
                    gpu.pcie_tx_bytes_per_second = Some(tx);
                    gpu.pcie_rx_bytes_per_second = Some(rx);
                } else {
                    let reason = if previous.is_none() {
                        "first reading of the PCIe byte counters: a rate needs two"
                    } else {
                        "PCIe byte counters went back (wrapped or reset) or no time passed: no rate this tick"
                    };
                    for field in both {
                        calls.missing.push(missing(field, reason));
                    }
                }
            }
            Err(e) => {
                self.pcie_previous = None;
                let name = "nvmlDeviceGetFieldValues(PCIE_COUNT_TX/RX_BYTES)";
                let settled = matches!(e, ApiError::NotSupported | ApiError::Other(_));
                if self.pcie_counters.is_none() && settled {
                    // Never worked on this device (old driver or GPU): not asked again.
                    let reason = call(name, &e);
                    self.pcie_fallback(dev, gpu, calls, &reason, pcie_sampling);
                    self.pcie_counters = Some(Err(reason));
                } else {
                    for field in both {
                        calls.note(field, name, &e);
                    }
                }
            }
        }
    }

    /// `nvmlDeviceGetPcieThroughput`, when enabled, for devices without byte counters.
    fn pcie_fallback(
        &self,
        dev: &(dyn DeviceApi + Send),
        gpu: &mut pb::Gpu,
        calls: &mut Calls<'_>,
        counters_reason: &str,
        pcie_sampling: bool,
    ) {
        if !pcie_sampling {
            let reason = format!(
                "{counters_reason}; nvmlDeviceGetPcieThroughput blocks ~20 ms per call and is off (pcie sampling)"
            );
            calls
                .missing
                .push(missing("pcie_tx_bytes_per_second", reason.clone()));
            calls
                .missing
                .push(missing("pcie_rx_bytes_per_second", reason));
            return;
        }
        let kib = |v: u32| f64::from(v) * 1024.0;
        gpu.pcie_tx_bytes_per_second = calls
            .get(
                "pcie_tx_bytes_per_second",
                "nvmlDeviceGetPcieThroughput(TX)",
                || dev.pcie_throughput_kib_per_second(true),
            )
            .map(kib);
        gpu.pcie_rx_bytes_per_second = calls
            .get(
                "pcie_rx_bytes_per_second",
                "nvmlDeviceGetPcieThroughput(RX)",
                || dev.pcie_throughput_kib_per_second(false),
            )
            .map(kib);
    }

    fn nvlinks(&mut self, dev: &(dyn DeviceApi + Send), gpu: &mut pb::Gpu, calls: &mut Calls<'_>) {
        if calls.lost {
            return;
        }
        if self.nvlinks.is_none() {
            let mut links = Vec::new();
            let mut settled = true;
            for link in 0..MAX_NVLINKS {
                match dev.nvlink_active(link) {
                    Ok(active) => {
                        links.push(link);
                        gpu.nvlinks.push(pb::NvLink {
                            link,
                            active,
                            ..Default::default()
                        });
                    }
                    // No NVLink at all.
                    Err(ApiError::NotSupported) if link == 0 => break,
                    Err(ApiError::NotSupported | ApiError::InvalidArg) => {}
                    Err(e) => {
                        calls.note("nvlinks", &format!("nvmlDeviceGetNvLinkState({link})"), &e);
                        settled = false;
                        break;
                    }
                }
            }
            if settled {
                self.nvlinks = Some(links);
            } else {
                gpu.nvlinks.clear();
                return;
            }
        } else if let Some(links) = &self.nvlinks {
            for &link in links {
                match dev.nvlink_active(link) {
                    Ok(active) => gpu.nvlinks.push(pb::NvLink {
                        link,
                        active,
                        ..Default::default()
                    }),
                    Err(e) => {
                        calls.note("nvlinks", &format!("nvmlDeviceGetNvLinkState({link})"), &e);
                        if calls.lost {
                            return;
                        }
                    }
                }
            }
        }
        if !gpu.nvlinks.is_empty() {
            let reason = "per-link NVLink byte counters need a field-value scope (link id), which nvml-wrapper 0.13 cannot pass";
            calls
                .missing
                .push(missing("nvlinks.tx_bytes_total", reason));
            calls
                .missing
                .push(missing("nvlinks.rx_bytes_total", reason));
        }
    }

    fn gpm(&mut self, dev: &(dyn DeviceApi + Send), gpu: &mut pb::Gpu, calls: &mut Calls<'_>) {
        if calls.lost {
            return;
        }
        if self.gpm_support.is_none() {
            match dev.gpm_supported() {
                Ok(supported) => self.gpm_support = Some(Ok(supported)),
                Err(ApiError::NotSupported) => self.gpm_support = Some(Ok(false)),
                Err(e) => {
                    calls.note("gpm", "nvmlGpmQueryDeviceSupport", &e);
                    return;
                }
            }
        }
        match &self.gpm_support {
            Some(Ok(true)) => {}
            Some(Ok(false)) => {
                calls.missing.push(missing(
                    "gpm",
                    "nvmlGpmQueryDeviceSupport: GPM not supported on this device (Hopper and newer)",
                ));
                return;
            }
            Some(Err(reason)) => {
                calls.missing.push(missing("gpm", reason.clone()));
                return;
            }
            None => return,
        }
        let sample = match dev.gpm_sample() {
            Ok(sample) => sample,
            Err(e) => {
                self.gpm_previous = None;
                calls.note("gpm", "nvmlGpmSampleGet", &e);
                return;
            }
        };
        let Some(previous) = self.gpm_previous.replace(sample) else {
            calls.missing.push(missing(
                "gpm",
                "first GPM sample: metrics need two samples one tick apart",
            ));
            return;
        };
        let Some(latest) = self.gpm_previous.as_ref() else {
            return;
        };
        match dev.gpm_metrics(&previous, latest) {
            Ok(values) => gpu.gpm = Some(gpm_metrics(values, calls)),
            Err(e) => calls.note("gpm", "nvmlGpmMetricsGet", &e),
        }
    }

    /// MIG instances through MIG device handles; returns their processes (with the
    /// instance's UUID), `None` when none could be listed.
    fn mig_instances(
        &mut self,
        dev: &(dyn DeviceApi + Send),
        gpu: &mut pb::Gpu,
        calls: &mut Calls<'_>,
    ) -> Option<Vec<(RunningProcess, String)>> {
        let max = calls.get("mig_instances", "nvmlDeviceGetMaxMigDeviceCount", || {
            dev.max_mig_devices()
        })?;
        let mut processes = Vec::new();
        for index in 0..max {
            if calls.lost {
                return None;
            }
            let handle = match dev.mig_device(index) {
                Ok(handle) => handle,
                // An empty slot.
                Err(ApiError::NotFound | ApiError::InvalidArg) => continue,
                Err(e) => {
                    calls.note(
                        "mig_instances",
                        &format!("nvmlDeviceGetMigDeviceHandleByIndex({index})"),
                        &e,
                    );
                    continue;
                }
            };
            let mut instance = pb::MigInstance::default();
            match handle.uuid() {
                Ok(uuid) => instance.uuid = uuid,
                Err(e) => {
                    calls.note(
                        "mig_instances",
                        &format!("MIG device {index}: nvmlDeviceGetUUID"),
                        &e,
                    );
                    continue;
                }
            }
            let label = instance.uuid.clone();
            match handle.name() {
                Ok(name) => instance.profile = mig_profile(&name).to_owned(),
                Err(e) => calls.note(
                    "mig_instances.profile",
                    &format!("{label}: nvmlDeviceGetName"),
                    &e,
                ),
            }
            match handle.memory_info() {
                Ok(memory) => {
                    instance.memory_total_bytes = Some(memory.total);
                    instance.memory_used_bytes = Some(memory.used);
                }
                Err(e) => calls.note(
                    "mig_instances.memory_total_bytes",
                    &format!("{label}: nvmlDeviceGetMemoryInfo_v2"),
                    &e,
                ),
            }
            match handle.running_compute_processes() {
                Ok(list) => {
                    if let Some(first) = list.first() {
                        instance.gpu_instance_id = first.gpu_instance_id.unwrap_or_default();
                        instance.compute_instance_id = first.compute_instance_id;
                    }
                    if instance.compute_instance_id.is_none() {
                        calls.missing.push(missing(
                            "mig_instances.compute_instance_id",
                            format!(
                                "{label}: the compute instance id comes from the instance's processes, and none of them carries one"
                            ),
                        ));
                    }
                    if list.iter().all(|p| p.gpu_instance_id.is_none()) {
                        calls.missing.push(missing(
                            "mig_instances.gpu_instance_id",
                            format!(
                                "{label}: nvmlDeviceGetGpuInstanceId is not wrapped by nvml-wrapper 0.13; the ids come from the instance's processes, and it has none"
                            ),
                        ));
                    }
                    processes.extend(list.into_iter().map(|p| (p, label.clone())));
                }
                Err(e) => {
                    calls.note(
                        "processes",
                        &format!("{label}: nvmlDeviceGetComputeRunningProcesses_v3"),
                        &e,
                    );
                }
            }
            gpu.mig_instances.push(instance);
        }
        // A partial list still says something; the `processes` reasons say what is missing.
        Some(processes)
    }

    fn processes(
        &mut self,
        dev: &(dyn DeviceApi + Send),
        gpu: &mut pb::Gpu,
        calls: &mut Calls<'_>,
        running: Vec<(RunningProcess, String)>,
        mig: bool,
    ) {
        let samples: HashMap<u32, UtilizationSample> = if mig {
            for field in [
                "processes.sm_utilization_percent",
                "processes.memory_utilization_percent",
            ] {
                calls.missing.push(missing(
                    field,
                    "not reported per process in MIG mode (memory only)",
                ));
            }
            HashMap::new()
        } else if calls.lost {
            return;
        } else {
            match dev.process_utilization(self.util_last_seen) {
                Ok(list) => newest_per_pid(list, &mut self.util_last_seen),
                // No process was busy since the last sample seen.
                Err(ApiError::NotFound) => HashMap::new(),
                Err(e) => {
                    for field in [
                        "processes.sm_utilization_percent",
                        "processes.memory_utilization_percent",
                    ] {
                        calls.note(field, "nvmlDeviceGetProcessUtilization", &e);
                    }
                    HashMap::new()
                }
            }
        };
        gpu.processes.reserve(running.len());
        for (process, mig_uuid) in running {
            let sample = samples.get(&process.pid);
            gpu.processes.push(pb::GpuProcess {
                pid: process.pid,
                memory_used_bytes: process.used_memory_bytes,
                sm_utilization_percent: sample.map(|s| f64::from(s.sm)),
                memory_utilization_percent: sample.map(|s| f64::from(s.memory)),
                encoder_utilization_percent: sample.map(|s| f64::from(s.encoder)),
                decoder_utilization_percent: sample.map(|s| f64::from(s.decoder)),
                mig_uuid,
                container_id: String::new(),
                pod_uid: String::new(),
            });
        }
    }
}

/// The newest sample per pid; advances `last_seen` to the newest timestamp.
fn newest_per_pid(
    samples: Vec<UtilizationSample>,
    last_seen: &mut u64,
) -> HashMap<u32, UtilizationSample> {
    let mut newest: HashMap<u32, UtilizationSample> = HashMap::with_capacity(samples.len());
    for sample in samples {
        *last_seen = (*last_seen).max(sample.timestamp);
        match newest.get(&sample.pid) {
            Some(kept) if kept.timestamp >= sample.timestamp => {}
            _ => {
                newest.insert(sample.pid, sample);
            }
        }
    }
    newest
}

fn gpm_metrics(values: GpmValues, calls: &mut Calls<'_>) -> pb::GpmMetrics {
    let mut take = |field: &str, value: ApiResult<f64>| match value {
        Ok(v) => Some(v),
        Err(e) => {
            calls.note(&format!("gpm.{field}"), "nvmlGpmMetricsGet", &e);
            None
        }
    };
    pb::GpmMetrics {
        graphics_engine_active_percent: take(
            "graphics_engine_active_percent",
            values.graphics_engine_active,
        ),
        sm_active_percent: take("sm_active_percent", values.sm_active),
        sm_occupancy_percent: take("sm_occupancy_percent", values.sm_occupancy),
        tensor_active_percent: take("tensor_active_percent", values.tensor_active),
        dram_active_percent: take("dram_active_percent", values.dram_active),
    }
}

/// "NVIDIA H100 80GB HBM3 MIG 1g.10gb" → "1g.10gb"; the whole name when it has no "MIG ".
fn mig_profile(name: &str) -> &str {
    name.rsplit_once("MIG ")
        .map_or(name, |(_, profile)| profile.trim())
}

/// The real library through `nvml-wrapper`.
mod real {
    use super::super::device::{
        ApiError, ApiResult, DeviceApi, GpmSample, GpmValues, MemoryInfo, NvmlApi, PcieCounters,
        RunningProcess, Utilization, UtilizationSample,
    };
    use nvml_wrapper::bitmasks::event::EventTypes;
    use nvml_wrapper::enum_wrappers::device::{
        Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
    };
    use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
    use nvml_wrapper::enums::event::XidError;
    use nvml_wrapper::enums::gpm::GpmMetricId;
    use nvml_wrapper::error::NvmlError;
    use nvml_wrapper::event::EventSet;
    use nvml_wrapper::structs::device::FieldId;
    use nvml_wrapper::sys_exports::field_id::{
        NVML_FI_DEV_PCIE_COUNT_RX_BYTES, NVML_FI_DEV_PCIE_COUNT_TX_BYTES,
    };
    use nvml_wrapper::{Device, Nvml};
    use std::path::Path;

    /// NVML's "unknown XID" value (`nvmlEventData_t.eventData`).
    const UNKNOWN_XID: u64 = 999;
    /// `NVML_DEVICE_MIG_ENABLE`.
    const MIG_ENABLE: u32 = 1;

    const GPM_METRICS: [GpmMetricId; 5] = [
        GpmMetricId::GraphicsUtil,
        GpmMetricId::SmUtil,
        GpmMetricId::SmOccupancy,
        GpmMetricId::AnyTensorUtil,
        GpmMetricId::DramBwUtil,
    ];

    fn api_error(e: NvmlError) -> ApiError {
        match e {
            NvmlError::NotSupported => ApiError::NotSupported,
            NvmlError::NotFound => ApiError::NotFound,
            NvmlError::NoPermission => ApiError::NoPermission,
            NvmlError::Timeout => ApiError::Timeout,
            NvmlError::GpuLost => ApiError::GpuLost,
            NvmlError::InvalidArg => ApiError::InvalidArg,
            other => {
                let debug = format!("{other:?}");
                let kind = debug
                    .split(|c: char| !c.is_alphanumeric())
                    .next()
                    .unwrap_or_default();
                ApiError::Other(format!("{kind}: {other}"))
            }
        }
    }

    pub(super) struct RealNvml {
        nvml: &'static Nvml,
    }

    impl RealNvml {
        pub(super) fn open(lib_path: Option<&Path>) -> Result<Self, String> {
            let shown = lib_path.map_or_else(
                || super::DEFAULT_LIBRARY.to_owned(),
                |p| p.display().to_string(),
            );
            let mut builder = Nvml::builder();
            if let Some(path) = lib_path {
                builder.lib_path(path.as_os_str());
            }
            let nvml = builder
                .init()
                .map_err(|e| format!("cannot load or initialise {shown}: {e}"))?;
            // Devices, event sets and GPM samples borrow the library: it lives as long as
            // the process (one source per agent).
            Ok(Self {
                nvml: Box::leak(Box::new(nvml)),
            })
        }
    }

    impl NvmlApi for RealNvml {
        fn driver_version(&self) -> ApiResult<String> {
            self.nvml.sys_driver_version().map_err(api_error)
        }

        fn device_count(&self) -> ApiResult<u32> {
            self.nvml.device_count().map_err(api_error)
        }

        fn device(&self, index: u32) -> ApiResult<Box<dyn DeviceApi + Send>> {
            let device = self.nvml.device_by_index(index).map_err(api_error)?;
            Ok(Box::new(RealDevice {
                nvml: self.nvml,
                device,
                events: None,
            }))
        }
    }

    struct RealDevice {
        nvml: &'static Nvml,
        device: Device<'static>,
        events: Option<EventSet<'static>>,
    }

    fn sample_u64(value: &SampleValue) -> Option<u64> {
        match *value {
            SampleValue::U64(v) => Some(v),
            SampleValue::U32(v) => Some(u64::from(v)),
            SampleValue::I64(v) => u64::try_from(v).ok(),
            SampleValue::F64(_) => None,
        }
    }

    impl DeviceApi for RealDevice {
        fn uuid(&self) -> ApiResult<String> {
            self.device.uuid().map_err(api_error)
        }

        fn name(&self) -> ApiResult<String> {
            self.device.name().map_err(api_error)
        }

        fn pci_bus_id(&self) -> ApiResult<String> {
            self.device.pci_info().map(|p| p.bus_id).map_err(api_error)
        }

        fn mig_enabled(&self) -> ApiResult<bool> {
            self.device
                .mig_mode()
                .map(|m| m.current == MIG_ENABLE)
                .map_err(api_error)
        }

        fn memory_info(&self) -> ApiResult<MemoryInfo> {
            self.device
                .memory_info()
                .map(|m| MemoryInfo {
                    total: m.total,
                    used: m.used,
                    reserved: m.reserved,
                    free: m.free,
                })
                .map_err(api_error)
        }

        fn utilization_rates(&self) -> ApiResult<Utilization> {
            self.device
                .utilization_rates()
                .map(|u| Utilization {
                    gpu: u.gpu,
                    memory: u.memory,
                })
                .map_err(api_error)
        }

        fn temperature_celsius(&self) -> ApiResult<u32> {
            self.device
                .temperature(TemperatureSensor::Gpu)
                .map_err(api_error)
        }

        fn power_usage_milliwatts(&self) -> ApiResult<u32> {
            self.device.power_usage().map_err(api_error)
        }

        fn power_limit_milliwatts(&self) -> ApiResult<u32> {
            self.device.enforced_power_limit().map_err(api_error)
        }

        fn sm_clock_mhz(&self) -> ApiResult<u32> {
            self.device.clock_info(Clock::SM).map_err(api_error)
        }

        fn memory_clock_mhz(&self) -> ApiResult<u32> {
            self.device.clock_info(Clock::Memory).map_err(api_error)
        }

        fn ecc_volatile_total(&self, corrected: bool) -> ApiResult<u64> {
            let kind = if corrected {
                MemoryError::Corrected
            } else {
                MemoryError::Uncorrected
            };
            self.device
                .total_ecc_errors(kind, EccCounter::Volatile)
                .map_err(api_error)
        }

        fn pcie_counters(&self) -> ApiResult<PcieCounters> {
            let values = self
                .device
                .field_values_for(&[
                    FieldId(NVML_FI_DEV_PCIE_COUNT_TX_BYTES),
                    FieldId(NVML_FI_DEV_PCIE_COUNT_RX_BYTES),
                ])
                .map_err(api_error)?;
            let mut read = values.into_iter().map(|v| {
                let sample = v.map_err(api_error)?;
                let value = sample.value.map_err(api_error)?;
                sample_u64(&value)
                    .ok_or_else(|| ApiError::Other(format!("unexpected value type {value:?}")))
            });
            let tx = read
                .next()
                .unwrap_or(Err(ApiError::Other("no TX value".into())))?;
            let rx = read
                .next()
                .unwrap_or(Err(ApiError::Other("no RX value".into())))?;
            Ok(PcieCounters {
                tx_bytes: tx,
                rx_bytes: rx,
            })
        }

        fn pcie_throughput_kib_per_second(&self, tx: bool) -> ApiResult<u32> {
            let counter = if tx {
                PcieUtilCounter::Send
            } else {
                PcieUtilCounter::Receive
            };
            self.device.pcie_throughput(counter).map_err(api_error)
        }

        fn nvlink_active(&self, link: u32) -> ApiResult<bool> {
            self.device
                .link_wrapper_for(link)
                .is_active()
                .map_err(api_error)
        }

        fn register_xid_events(&mut self) -> ApiResult<()> {
            let set = self.nvml.create_event_set().map_err(api_error)?;
            let set = self
                .device
                .register_events(EventTypes::CRITICAL_XID_ERROR, set)
                .map_err(|e| api_error(e.error))?;
            self.events = Some(set);
            Ok(())
        }

        fn next_xid(&mut self) -> ApiResult<Option<u64>> {
            let Some(set) = &self.events else {
                return Err(ApiError::Other("XID events are not registered".into()));
            };
            loop {
                match set.wait(0) {
                    Ok(event) => {
                        if !event.event_type.contains(EventTypes::CRITICAL_XID_ERROR) {
                            continue;
                        }
                        return Ok(Some(match event.event_data {
                            Some(XidError::Value(xid)) => xid,
                            Some(XidError::Unknown) | None => UNKNOWN_XID,
                        }));
                    }
                    Err(NvmlError::Timeout) => return Ok(None),
                    Err(e) => return Err(api_error(e)),
                }
            }
        }

        fn gpm_supported(&self) -> ApiResult<bool> {
            self.device.gpm_support().map_err(api_error)
        }

        fn gpm_sample(&self) -> ApiResult<GpmSample> {
            let sample = self.device.gpm_sample().map_err(api_error)?;
            Ok(Box::new(sample))
        }

        fn gpm_metrics(&self, earlier: &GpmSample, later: &GpmSample) -> ApiResult<GpmValues> {
            type Sample = nvml_wrapper::gpm::GpmSample<'static>;
            let (Some(earlier), Some(later)) = (
                earlier.downcast_ref::<Sample>(),
                later.downcast_ref::<Sample>(),
            ) else {
                return Err(ApiError::Other("GPM sample of another source".into()));
            };
            let results =
                nvml_wrapper::gpm::gpm_metrics_get(self.nvml, earlier, later, &GPM_METRICS)
                    .map_err(api_error)?;
            let mut values = results
                .into_iter()
                .map(|r| r.map(|m| m.value).map_err(api_error));
            let mut next = || {
                values
                    .next()
                    .unwrap_or(Err(ApiError::Other("metric not returned".into())))
            };
            Ok(GpmValues {
                graphics_engine_active: next(),
                sm_active: next(),
                sm_occupancy: next(),
                tensor_active: next(),
                dram_active: next(),
            })
        }

        fn running_compute_processes(&self) -> ApiResult<Vec<RunningProcess>> {
            let list = self.device.running_compute_processes().map_err(api_error)?;
            Ok(list
                .into_iter()
                .map(|p| RunningProcess {
                    pid: p.pid,
                    used_memory_bytes: match p.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => Some(bytes),
                        UsedGpuMemory::Unavailable => None,
                    },
                    gpu_instance_id: p.gpu_instance_id,
                    compute_instance_id: p.compute_instance_id,
                })
                .collect())
        }

        fn process_utilization(&self, last_seen: u64) -> ApiResult<Vec<UtilizationSample>> {
            let list = self
                .device
                .process_utilization_stats(last_seen)
                .map_err(api_error)?;
            Ok(list
                .into_iter()
                .map(|s| UtilizationSample {
                    pid: s.pid,
                    timestamp: s.timestamp,
                    sm: s.sm_util,
                    memory: s.mem_util,
                    encoder: s.enc_util,
                    decoder: s.dec_util,
                })
                .collect())
        }

        fn max_mig_devices(&self) -> ApiResult<u32> {
            self.device.mig_device_count().map_err(api_error)
        }

        fn mig_device(&self, index: u32) -> ApiResult<Box<dyn DeviceApi + Send>> {
            let device = self.device.mig_device_by_index(index).map_err(api_error)?;
            Ok(Box::new(RealDevice {
                nvml: self.nvml,
                device,
                events: None,
            }))
        }
    }
}
