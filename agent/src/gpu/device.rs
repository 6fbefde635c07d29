//! The NVML calls the agent uses, as a small trait pair: [`NvmlApi`] for the library and
//! [`DeviceApi`] for one device (a whole GPU or a MIG instance).
//!
//! [`super::nvml::NvmlSource`] turns these calls into the wire's `GpuSection` the same way
//! whether they reach the real library (`nvml-wrapper`, see `nvml.rs`) or the scenario
//! driven fake (`fake.rs`). Values are NVML's own units (milliwatts, KiB/s, ...); the
//! source converts. Errors keep NVML's error kind ([`ApiError`]) because the conversion
//! depends on it (`NotFound` from the utilisation samples means "no samples").

use std::any::Any;
use std::fmt;

/// What an NVML call returned instead of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// `NVML_ERROR_NOT_SUPPORTED`: the device or driver does not offer this.
    NotSupported,
    /// `NVML_ERROR_NOT_FOUND`: nothing to return (no samples, no MIG device at an index).
    NotFound,
    /// `NVML_ERROR_NO_PERMISSION`.
    NoPermission,
    /// `NVML_ERROR_TIMEOUT`: no event within the wait.
    Timeout,
    /// `NVML_ERROR_GPU_IS_LOST`: the device fell off the bus; its other calls fail too.
    GpuLost,
    /// `NVML_ERROR_INVALID_ARGUMENT` (e.g. an NVLink index the device does not have).
    InvalidArg,
    /// Anything else, as NVML (or the wrapper) describes it.
    Other(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported => f.write_str("NotSupported"),
            Self::NotFound => f.write_str("NotFound"),
            Self::NoPermission => f.write_str("NoPermission"),
            Self::Timeout => f.write_str("Timeout"),
            Self::GpuLost => f.write_str("GpuLost"),
            Self::InvalidArg => f.write_str("InvalidArg"),
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ApiError {}

/// The result of one NVML call.
pub type ApiResult<T> = Result<T, ApiError>;

/// `nvmlDeviceGetMemoryInfo_v2`, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryInfo {
    pub total: u64,
    pub used: u64,
    pub reserved: u64,
    pub free: u64,
}

/// `nvmlDeviceGetUtilizationRates`, percent over the driver's sample period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utilization {
    pub gpu: u32,
    pub memory: u32,
}

/// One entry of `nvmlDeviceGetComputeRunningProcesses_v3`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunningProcess {
    /// Host pid: the driver is not pid-namespace aware.
    pub pid: u32,
    /// `None` when NVML reports `NVML_VALUE_NOT_AVAILABLE`.
    pub used_memory_bytes: Option<u64>,
    /// Set in MIG mode only.
    pub gpu_instance_id: Option<u32>,
    pub compute_instance_id: Option<u32>,
}

/// One entry of `nvmlDeviceGetProcessUtilization`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UtilizationSample {
    pub pid: u32,
    /// CPU timestamp, microseconds.
    pub timestamp: u64,
    pub sm: u32,
    pub memory: u32,
    pub encoder: u32,
    pub decoder: u32,
}

/// GPM metrics between two samples, each as NVML returned it (a metric can fail alone).
#[derive(Debug, Clone, PartialEq)]
pub struct GpmValues {
    pub graphics_engine_active: ApiResult<f64>,
    pub sm_active: ApiResult<f64>,
    pub sm_occupancy: ApiResult<f64>,
    pub tensor_active: ApiResult<f64>,
    pub dram_active: ApiResult<f64>,
}

/// A GPM sample, opaque to the conversion: each implementation downcasts its own.
pub type GpmSample = Box<dyn Any + Send>;

/// The PCIe byte counters (`NVML_FI_DEV_PCIE_COUNT_TX_BYTES` / `_RX_BYTES`), cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PcieCounters {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

/// The library: driver version and device handles.
pub trait NvmlApi {
    fn driver_version(&self) -> ApiResult<String>;
    fn device_count(&self) -> ApiResult<u32>;
    fn device(&self, index: u32) -> ApiResult<Box<dyn DeviceApi + Send>>;
}

/// One device handle. For a MIG device handle only the identity, memory and process
/// calls are used.
pub trait DeviceApi {
    fn uuid(&self) -> ApiResult<String>;
    fn name(&self) -> ApiResult<String>;
    fn pci_bus_id(&self) -> ApiResult<String>;
    /// Current MIG mode (`true` = enabled).
    fn mig_enabled(&self) -> ApiResult<bool>;
    fn memory_info(&self) -> ApiResult<MemoryInfo>;
    fn utilization_rates(&self) -> ApiResult<Utilization>;
    /// GPU die temperature, °C.
    fn temperature_celsius(&self) -> ApiResult<u32>;
    /// Milliwatts.
    fn power_usage_milliwatts(&self) -> ApiResult<u32>;
    /// Enforced power limit, milliwatts.
    fn power_limit_milliwatts(&self) -> ApiResult<u32>;
    fn sm_clock_mhz(&self) -> ApiResult<u32>;
    fn memory_clock_mhz(&self) -> ApiResult<u32>;
    /// Volatile ECC error count since the driver loaded.
    fn ecc_volatile_total(&self, corrected: bool) -> ApiResult<u64>;
    /// Cumulative PCIe byte counters (field values; cheap, newer drivers).
    fn pcie_counters(&self) -> ApiResult<PcieCounters>;
    /// `nvmlDeviceGetPcieThroughput`: KiB/s over a ~20 ms window the call blocks for.
    fn pcie_throughput_kib_per_second(&self, tx: bool) -> ApiResult<u32>;
    /// Whether NVLink `link` is up; `NotSupported`/`InvalidArg` when the device has no
    /// such link.
    fn nvlink_active(&self, link: u32) -> ApiResult<bool>;
    /// Registers for XID critical-error events (done once per device).
    fn register_xid_events(&mut self) -> ApiResult<()>;
    /// The next pending XID without waiting: `Ok(None)` when none is pending.
    fn next_xid(&mut self) -> ApiResult<Option<u64>>;
    fn gpm_supported(&self) -> ApiResult<bool>;
    fn gpm_sample(&self) -> ApiResult<GpmSample>;
    fn gpm_metrics(&self, earlier: &GpmSample, later: &GpmSample) -> ApiResult<GpmValues>;
    fn running_compute_processes(&self) -> ApiResult<Vec<RunningProcess>>;
    /// Samples newer than `last_seen` (µs, 0 for every buffered sample); `NotFound` when
    /// there is none.
    fn process_utilization(&self, last_seen: u64) -> ApiResult<Vec<UtilizationSample>>;
    /// Upper bound of MIG device indexes (`nvmlDeviceGetMaxMigDeviceCount`).
    fn max_mig_devices(&self) -> ApiResult<u32>;
    /// The MIG device at `index`; `NotFound` for an empty slot.
    fn mig_device(&self, index: u32) -> ApiResult<Box<dyn DeviceApi + Send>>;
}
