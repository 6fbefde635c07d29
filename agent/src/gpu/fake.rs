//! A scenario-driven fake of the NVML calls ([`NvmlApi`]/[`DeviceApi`]), for tests and
//! benchmarks without a GPU.
//!
//! [`FakeNvml`] shares its [`FakeState`] (`Arc<Mutex<_>>`): a test builds the devices,
//! hands a clone to `NvmlSource::with_api`, and changes the state between reads (a
//! process exits, an XID arrives). Behaviour that matters to the conversion follows NVML:
//! utilisation samples are returned only when newer than `last_seen`, and the call
//! answers `NotFound` when there is none; an empty MIG slot answers `NotFound`; XID
//! events are queued until drained.

use super::device::{
    ApiError, ApiResult, DeviceApi, GpmSample, GpmValues, MemoryInfo, NvmlApi, PcieCounters,
    RunningProcess, Utilization, UtilizationSample,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

const GIB: u64 = 1 << 30;

/// One fake MIG device.
#[derive(Debug, Clone)]
pub struct FakeMig {
    pub uuid: String,
    /// Like NVML's MIG device name, e.g. "NVIDIA H100 80GB HBM3 MIG 1g.10gb".
    pub name: String,
    pub memory: ApiResult<MemoryInfo>,
    pub processes: ApiResult<Vec<RunningProcess>>,
}

/// One fake GPU: what each call answers.
#[derive(Debug, Clone)]
pub struct FakeGpu {
    /// Every device call fails with this (a device that errors).
    pub fail_all: Option<ApiError>,
    /// `nvmlDeviceGetHandleByIndex` fails with this.
    pub handle_error: Option<ApiError>,
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: String,
    pub mig_enabled: ApiResult<bool>,
    pub memory: ApiResult<MemoryInfo>,
    pub utilization: ApiResult<Utilization>,
    pub temperature_celsius: ApiResult<u32>,
    pub power_milliwatts: ApiResult<u32>,
    pub power_limit_milliwatts: ApiResult<u32>,
    pub sm_clock_mhz: ApiResult<u32>,
    pub memory_clock_mhz: ApiResult<u32>,
    pub ecc_corrected: ApiResult<u64>,
    pub ecc_uncorrected: ApiResult<u64>,
    /// Cumulative PCIe byte counters; each read adds `pcie_step`.
    pub pcie_counters: ApiResult<PcieCounters>,
    pub pcie_step: PcieCounters,
    /// `nvmlDeviceGetPcieThroughput` (tx, rx) KiB/s.
    pub pcie_throughput_kib: ApiResult<(u32, u32)>,
    /// State per link; empty: the device has no NVLink (`NotSupported`).
    pub nvlinks: Vec<bool>,
    pub xid_registration: ApiResult<()>,
    /// XIDs waiting in the event set.
    pub pending_xids: VecDeque<u64>,
    pub gpm_supported: ApiResult<bool>,
    pub gpm_values: GpmValues,
    pub processes: ApiResult<Vec<RunningProcess>>,
    /// Buffered utilisation samples; a call returns those newer than its `last_seen`.
    pub samples: ApiResult<Vec<UtilizationSample>>,
    /// When no sample is newer than `last_seen`, move every sample just past it (a busy
    /// GPU that keeps producing samples; for benchmarks).
    pub renew_samples: bool,
    /// Process utilisation is not supported at all.
    pub utilization_samples_error: Option<ApiError>,
    /// `Some(pid)`: that pid leaves the running list right after it was listed (a
    /// process exiting between the two per-process calls).
    pub exit_after_listing: Option<u32>,
    /// MIG slots; `None` is an empty slot.
    pub mig_devices: Vec<Option<FakeMig>>,
    /// The `last_seen` of every utilisation call, oldest first.
    pub last_seen_calls: Vec<u64>,
    /// GPM samples taken.
    pub gpm_samples_taken: u64,
}

impl FakeGpu {
    /// A healthy, idle H100-like GPU without processes.
    pub fn healthy(index: u32) -> Self {
        Self {
            fail_all: None,
            handle_error: None,
            uuid: format!("GPU-00000000-0000-0000-0000-{index:012x}"),
            name: "NVIDIA H100 80GB HBM3".into(),
            pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + index),
            mig_enabled: Ok(false),
            memory: Ok(MemoryInfo {
                total: 80 * GIB,
                used: GIB / 2,
                reserved: GIB / 4,
                free: 80 * GIB - GIB / 2 - GIB / 4,
            }),
            utilization: Ok(Utilization { gpu: 0, memory: 0 }),
            temperature_celsius: Ok(34),
            power_milliwatts: Ok(71_500),
            power_limit_milliwatts: Ok(700_000),
            sm_clock_mhz: Ok(345),
            memory_clock_mhz: Ok(2619),
            ecc_corrected: Ok(0),
            ecc_uncorrected: Ok(0),
            pcie_counters: Ok(PcieCounters::default()),
            pcie_step: PcieCounters {
                tx_bytes: 1 << 20,
                rx_bytes: 2 << 20,
            },
            pcie_throughput_kib: Ok((1024, 2048)),
            nvlinks: vec![true; 18],
            xid_registration: Ok(()),
            pending_xids: VecDeque::new(),
            gpm_supported: Ok(true),
            gpm_values: GpmValues {
                graphics_engine_active: Ok(0.0),
                sm_active: Ok(0.0),
                sm_occupancy: Ok(0.0),
                tensor_active: Ok(0.0),
                dram_active: Ok(0.0),
            },
            processes: Ok(Vec::new()),
            samples: Ok(Vec::new()),
            renew_samples: false,
            utilization_samples_error: None,
            exit_after_listing: None,
            mig_devices: Vec::new(),
            last_seen_calls: Vec::new(),
            gpm_samples_taken: 0,
        }
    }

    /// A busy GPU: `processes` compute processes (pids `first_pid..`), each with memory
    /// and a fresh utilisation sample every read.
    pub fn busy(index: u32, first_pid: u32, processes: u32) -> Self {
        let mut gpu = Self::healthy(index);
        gpu.utilization = Ok(Utilization {
            gpu: 97,
            memory: 41,
        });
        let pids = first_pid..first_pid.saturating_add(processes);
        gpu.processes = Ok(pids
            .clone()
            .map(|pid| RunningProcess {
                pid,
                used_memory_bytes: Some(u64::from(pid % 7 + 1) * GIB / 8),
                gpu_instance_id: None,
                compute_instance_id: None,
            })
            .collect());
        gpu.samples = Ok(pids
            .map(|pid| UtilizationSample {
                pid,
                timestamp: 1,
                sm: pid % 90 + 1,
                memory: pid % 40,
                encoder: 0,
                decoder: 0,
            })
            .collect());
        gpu.renew_samples = true;
        gpu
    }
}

/// Everything the fake library answers.
#[derive(Debug, Clone)]
pub struct FakeState {
    pub driver_version: ApiResult<String>,
    /// `nvmlDeviceGetCount` fails with this.
    pub count_error: Option<ApiError>,
    pub gpus: Vec<FakeGpu>,
}

impl Default for FakeState {
    fn default() -> Self {
        Self {
            driver_version: Ok("550.54.15".into()),
            count_error: None,
            gpus: Vec::new(),
        }
    }
}

/// The fake library; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct FakeNvml {
    state: Arc<Mutex<FakeState>>,
}

impl FakeNvml {
    pub fn new(gpus: Vec<FakeGpu>) -> Self {
        Self {
            state: Arc::new(Mutex::new(FakeState {
                gpus,
                ..FakeState::default()
            })),
        }
    }

    /// `gpus` busy GPUs with `processes` processes each (distinct pids).
    pub fn busy(gpus: u32, processes: u32) -> Self {
        Self::new(
            (0..gpus)
                .map(|i| FakeGpu::busy(i, 1000 + i * 10_000, processes))
                .collect(),
        )
    }

    /// The shared state, to change between reads.
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    /// Runs `f` on GPU `index` (nothing when there is no such GPU).
    pub fn with_gpu(&self, index: usize, f: impl FnOnce(&mut FakeGpu)) {
        if let Some(gpu) = self.state().gpus.get_mut(index) {
            f(gpu);
        }
    }
}

fn lock(state: &Mutex<FakeState>) -> MutexGuard<'_, FakeState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl NvmlApi for FakeNvml {
    fn driver_version(&self) -> ApiResult<String> {
        self.state().driver_version.clone()
    }

    fn device_count(&self) -> ApiResult<u32> {
        let state = self.state();
        match &state.count_error {
            Some(e) => Err(e.clone()),
            None => Ok(u32::try_from(state.gpus.len()).unwrap_or(u32::MAX)),
        }
    }

    fn device(&self, index: u32) -> ApiResult<Box<dyn DeviceApi + Send>> {
        let state = self.state();
        let gpu = state.gpus.get(index as usize).ok_or(ApiError::InvalidArg)?;
        if let Some(e) = &gpu.handle_error {
            return Err(e.clone());
        }
        Ok(Box::new(FakeDevice {
            state: self.state.clone(),
            gpu: index as usize,
            mig: None,
        }))
    }
}

/// A handle into the shared state: a GPU, or one of its MIG devices.
#[derive(Debug)]
struct FakeDevice {
    state: Arc<Mutex<FakeState>>,
    gpu: usize,
    mig: Option<usize>,
}

impl FakeDevice {
    /// Runs `f` on this handle's GPU, failing as the GPU is told to.
    fn on<T>(&self, f: impl FnOnce(&mut FakeGpu) -> ApiResult<T>) -> ApiResult<T> {
        let mut state = lock(&self.state);
        let gpu = state.gpus.get_mut(self.gpu).ok_or(ApiError::GpuLost)?;
        if let Some(e) = &gpu.fail_all {
            return Err(e.clone());
        }
        f(gpu)
    }

    fn on_mig<T>(&self, index: usize, f: impl FnOnce(&FakeMig) -> ApiResult<T>) -> ApiResult<T> {
        self.on(|gpu| {
            let mig = gpu
                .mig_devices
                .get(index)
                .and_then(Option::as_ref)
                .ok_or(ApiError::NotFound)?;
            f(mig)
        })
    }

    /// Calls that a MIG device handle does not answer in this fake.
    fn whole_gpu<T>(&self, f: impl FnOnce(&mut FakeGpu) -> ApiResult<T>) -> ApiResult<T> {
        if self.mig.is_some() {
            return Err(ApiError::NotSupported);
        }
        self.on(f)
    }
}

impl DeviceApi for FakeDevice {
    fn uuid(&self) -> ApiResult<String> {
        match self.mig {
            Some(m) => self.on_mig(m, |mig| Ok(mig.uuid.clone())),
            None => self.on(|g| Ok(g.uuid.clone())),
        }
    }

    fn name(&self) -> ApiResult<String> {
        match self.mig {
            Some(m) => self.on_mig(m, |mig| Ok(mig.name.clone())),
            None => self.on(|g| Ok(g.name.clone())),
        }
    }

    fn pci_bus_id(&self) -> ApiResult<String> {
        self.on(|g| Ok(g.pci_bus_id.clone()))
    }

    fn mig_enabled(&self) -> ApiResult<bool> {
        self.whole_gpu(|g| g.mig_enabled.clone())
    }

    fn memory_info(&self) -> ApiResult<MemoryInfo> {
        match self.mig {
            Some(m) => self.on_mig(m, |mig| mig.memory.clone()),
            None => self.on(|g| g.memory.clone()),
        }
    }

    fn utilization_rates(&self) -> ApiResult<Utilization> {
        self.whole_gpu(|g| g.utilization.clone())
    }

    fn temperature_celsius(&self) -> ApiResult<u32> {
        self.whole_gpu(|g| g.temperature_celsius.clone())
    }

    fn power_usage_milliwatts(&self) -> ApiResult<u32> {
        self.whole_gpu(|g| g.power_milliwatts.clone())
    }

    fn power_limit_milliwatts(&self) -> ApiResult<u32> {
        self.whole_gpu(|g| g.power_limit_milliwatts.clone())
    }

    fn sm_clock_mhz(&self) -> ApiResult<u32> {
        self.whole_gpu(|g| g.sm_clock_mhz.clone())
    }

    fn memory_clock_mhz(&self) -> ApiResult<u32> {
        self.whole_gpu(|g| g.memory_clock_mhz.clone())
    }

    fn ecc_volatile_total(&self, corrected: bool) -> ApiResult<u64> {
        self.whole_gpu(|g| {
            if corrected {
                g.ecc_corrected.clone()
            } else {
                g.ecc_uncorrected.clone()
            }
        })
    }

    fn pcie_counters(&self) -> ApiResult<PcieCounters> {
        self.whole_gpu(|g| {
            let step = g.pcie_step;
            let counters = g.pcie_counters.as_mut().map_err(|e| e.clone())?;
            let current = *counters;
            counters.tx_bytes = counters.tx_bytes.wrapping_add(step.tx_bytes);
            counters.rx_bytes = counters.rx_bytes.wrapping_add(step.rx_bytes);
            Ok(current)
        })
    }

    fn pcie_throughput_kib_per_second(&self, tx: bool) -> ApiResult<u32> {
        self.whole_gpu(|g| {
            g.pcie_throughput_kib
                .clone()
                .map(|(t, r)| if tx { t } else { r })
        })
    }

    fn nvlink_active(&self, link: u32) -> ApiResult<bool> {
        self.whole_gpu(|g| {
            if g.nvlinks.is_empty() {
                return Err(ApiError::NotSupported);
            }
            g.nvlinks
                .get(link as usize)
                .copied()
                .ok_or(ApiError::InvalidArg)
        })
    }

    fn register_xid_events(&mut self) -> ApiResult<()> {
        self.whole_gpu(|g| g.xid_registration.clone())
    }

    fn next_xid(&mut self) -> ApiResult<Option<u64>> {
        self.whole_gpu(|g| Ok(g.pending_xids.pop_front()))
    }

    fn gpm_supported(&self) -> ApiResult<bool> {
        self.whole_gpu(|g| g.gpm_supported.clone())
    }

    fn gpm_sample(&self) -> ApiResult<GpmSample> {
        self.whole_gpu(|g| {
            g.gpm_samples_taken += 1;
            Ok(Box::new(g.gpm_samples_taken) as GpmSample)
        })
    }

    fn gpm_metrics(&self, earlier: &GpmSample, later: &GpmSample) -> ApiResult<GpmValues> {
        let (Some(a), Some(b)) = (earlier.downcast_ref::<u64>(), later.downcast_ref::<u64>())
        else {
            return Err(ApiError::InvalidArg);
        };
        if a >= b {
            return Err(ApiError::InvalidArg);
        }
        self.whole_gpu(|g| Ok(g.gpm_values.clone()))
    }

    fn running_compute_processes(&self) -> ApiResult<Vec<RunningProcess>> {
        match self.mig {
            Some(m) => self.on_mig(m, |mig| mig.processes.clone()),
            None => self.on(|g| {
                let listed = g.processes.clone()?;
                if let (Some(pid), Ok(list)) = (g.exit_after_listing.take(), g.processes.as_mut()) {
                    list.retain(|p| p.pid != pid);
                }
                Ok(listed)
            }),
        }
    }

    fn process_utilization(&self, last_seen: u64) -> ApiResult<Vec<UtilizationSample>> {
        self.whole_gpu(|g| {
            g.last_seen_calls.push(last_seen);
            if let Some(e) = &g.utilization_samples_error {
                return Err(e.clone());
            }
            let renew = g.renew_samples;
            let samples = g.samples.as_mut().map_err(|e| e.clone())?;
            if renew && !samples.iter().any(|s| s.timestamp > last_seen) {
                for (i, s) in (0u64..).zip(samples.iter_mut()) {
                    s.timestamp = last_seen + 1 + i;
                }
            }
            let newer: Vec<UtilizationSample> = samples
                .iter()
                .filter(|s| s.timestamp > last_seen)
                .copied()
                .collect();
            if newer.is_empty() {
                Err(ApiError::NotFound)
            } else {
                Ok(newer)
            }
        })
    }

    fn max_mig_devices(&self) -> ApiResult<u32> {
        self.whole_gpu(|g| {
            if g.mig_devices.is_empty() {
                Err(ApiError::NotSupported)
            } else {
                Ok(u32::try_from(g.mig_devices.len()).unwrap_or(u32::MAX))
            }
        })
    }

    fn mig_device(&self, index: u32) -> ApiResult<Box<dyn DeviceApi + Send>> {
        let slot = index as usize;
        self.whole_gpu(|g| match g.mig_devices.get(slot) {
            Some(Some(_)) => Ok(()),
            Some(None) => Err(ApiError::NotFound),
            None => Err(ApiError::InvalidArg),
        })?;
        Ok(Box::new(FakeDevice {
            state: self.state.clone(),
            gpu: self.gpu,
            mig: Some(slot),
        }))
    }
}
