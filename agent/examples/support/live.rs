//! Shared by the live measurement programs: the `burner` and `precision` examples and the
//! `measure_live` and `cgroup_live` tests, which include this file with `#[path]` (each uses part of it).
//!
//! - A CPU burner that logs its own CPU clock ([`burner_main`], [`Trace`]): ground truth for what
//!   the agent reads from the burner's cgroup.
//! - [`LiveCgroup`]: a fresh cgroup with one relative path in every hierarchy the agent reads
//!   (on v1/hybrid hosts the cpu, cpuacct, memory, blkio and pids hierarchies and the unified
//!   one; on v2 the unified one); dropping it kills what runs in it and removes the directories.
//! - [`Burner`]: a burner process started inside a [`LiveCgroup`], killed on drop.
//!
//! Needs root. Every wait is bounded.
#![allow(dead_code)]

use aistor_agent::source::{CgroupReader, HostFs};
use aistor_proto::v1::CgroupMode;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Marks a trace line; what precedes it on the line is ignored (a test harness may print there).
pub(crate) const TRACE_MARK: &str = "@cpu ";

/// The burner's busy/idle period.
const PERIOD: Duration = Duration::from_millis(10);

fn timespec_nanos(t: rustix::time::Timespec) -> u64 {
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs * 1_000_000_000 + nanos
}

/// This process's CPU time (CLOCK_PROCESS_CPUTIME_ID, all threads), in nanoseconds.
pub(crate) fn cpu_time_nanos() -> u64 {
    timespec_nanos(rustix::time::clock_gettime(
        rustix::time::ClockId::ProcessCPUTime,
    ))
}

/// CLOCK_REALTIME in nanoseconds: the clock of the agent's `wall_time_unix_nanos`.
pub(crate) fn wall_nanos() -> u64 {
    timespec_nanos(rustix::time::clock_gettime(rustix::time::ClockId::Realtime))
}

// ---------------------------------------------------------------------------------------------
// The burner program.

pub(crate) const BURNER_USAGE: &str = "usage: burner DUTY [--seconds N] [--trace] [--stdin]

Busy for DUTY (0 < DUTY <= 1) of every 10 ms on one thread, asleep for the rest.
  --trace      print \"@cpu WALL_NS CPU_NS\" (CLOCK_REALTIME, CLOCK_PROCESS_CPUTIME_ID) at the
               start and the end of every busy phase (every 10 ms at DUTY 1), so the CPU time at
               any instant is a linear interpolation between two lines
  --stdin      wait for a line on stdin before starting (the parent moves the burner into its
               cgroup first) and stop when stdin closes
  --seconds N  stop after N seconds";

struct BurnerArgs {
    duty: f64,
    seconds: Option<f64>,
    trace: bool,
    stdin: bool,
}

fn parse_burner_args(args: &[String]) -> Result<BurnerArgs, String> {
    let mut out = BurnerArgs {
        duty: f64::NAN,
        seconds: None,
        trace: false,
        stdin: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--trace" => out.trace = true,
            "--stdin" => out.stdin = true,
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a value")?;
                out.seconds = Some(v.parse().map_err(|e| format!("--seconds {v}: {e}"))?);
            }
            duty if out.duty.is_nan() => {
                out.duty = duty.parse().map_err(|e| format!("DUTY {duty}: {e}"))?;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if !(out.duty > 0.0 && out.duty <= 1.0) {
        return Err("DUTY must be above 0 and at most 1".into());
    }
    Ok(out)
}

/// Runs the burner with `args` (without the program name) until it is told to stop.
pub(crate) fn burner_main(args: &[String]) -> Result<(), String> {
    let args = parse_burner_args(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    if args.stdin {
        let mut go = String::new();
        match std::io::stdin().read_line(&mut go) {
            Ok(n) if n > 0 => {}
            _ => return Ok(()),
        }
        let stop = stop.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                if line.is_err() {
                    break;
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut flushed = Instant::now();
    let mark = |out: &mut std::io::BufWriter<_>| -> bool {
        if !args.trace {
            return true;
        }
        // Wall clock first: the CPU clock then includes the (tiny) cost of reading it.
        let wall = wall_nanos();
        let cpu = cpu_time_nanos();
        writeln!(out, "{TRACE_MARK}{wall} {cpu}").is_ok()
    };
    let busy = PERIOD.mul_f64(args.duty);
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let start = Instant::now();
        if !mark(&mut out) {
            break;
        }
        while start.elapsed() < busy {
            std::hint::spin_loop();
        }
        if args.duty < 1.0 {
            if !mark(&mut out) {
                break;
            }
            if let Some(rest) = PERIOD.checked_sub(start.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        if args.trace && flushed.elapsed() >= Duration::from_millis(100) {
            if out.flush().is_err() {
                break;
            }
            flushed = Instant::now();
        }
    }
    mark(&mut out);
    let _ = out.flush();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Ground truth from a burner's trace.

/// A burner's (wall ns, CPU ns) records, in time order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trace(pub(crate) Vec<(u64, u64)>);

impl Trace {
    /// The record on a trace line, if it is one.
    pub(crate) fn parse_line(line: &str) -> Option<(u64, u64)> {
        let (_, rest) = line.split_once(TRACE_MARK)?;
        let (wall, cpu) = rest.trim().split_once(' ')?;
        Some((wall.parse().ok()?, cpu.parse().ok()?))
    }

    /// The burner's CPU time (ns) at wall time `wall`, interpolated linearly between the two
    /// records around it; None outside the trace.
    pub(crate) fn cpu_at(&self, wall: u64) -> Option<f64> {
        let records = &self.0;
        let after = records.partition_point(|&(w, _)| w < wall);
        if after == 0 || after == records.len() {
            // Exactly on the first record is inside; anything else outside is not.
            return records
                .get(after)
                .filter(|&&(w, _)| w == wall)
                .map(|&(_, c)| c as f64);
        }
        let (w0, c0) = records[after - 1];
        let (w1, c1) = records[after];
        let f = (wall - w0) as f64 / (w1 - w0).max(1) as f64;
        Some(c0 as f64 + f * (c1 as f64 - c0 as f64))
    }

    /// The burner's CPU rate from wall time `from` to `to`, in millicores.
    pub(crate) fn millicores(&self, from: u64, to: u64) -> Option<f64> {
        if to <= from {
            return None;
        }
        let cpu = self.cpu_at(to)? - self.cpu_at(from)?;
        Some(cpu / (to - from) as f64 * 1000.0)
    }
}

// ---------------------------------------------------------------------------------------------
// A fresh cgroup, and a burner in it.

/// A fresh cgroup with the same relative path in each hierarchy the agent reads.
pub(crate) struct LiveCgroup {
    /// Relative to the cgroup root: what `aistor-agent measure --cgroup` takes.
    pub(crate) rel: String,
    dirs: Vec<PathBuf>,
}

/// The hierarchy mount points a cgroup must be created in for the agent to read all of it.
fn hierarchy_mounts() -> Result<Vec<String>, String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not running as root".into());
    }
    let reader = CgroupReader::detect(HostFs::new("/"))
        .map_err(|e| format!("cannot detect the cgroup layout: {e}"))?;
    let layout = reader.layout();
    let mut mounts: Vec<String> = Vec::new();
    if layout.mode == CgroupMode::V2 {
        let unified = layout.unified.clone().ok_or("v2 without a unified mount")?;
        // A child has the controllers' files only when the parent delegates them.
        let control = PathBuf::from(&unified).join("cgroup.subtree_control");
        std::fs::write(&control, "+cpu +memory +io +pids")
            .map_err(|e| format!("enabling controllers in {}: {e}", control.display()))?;
        mounts.push(unified);
    } else {
        for controller in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
            let mount = layout
                .v1
                .get(controller)
                .ok_or(format!("no v1 hierarchy has the {controller} controller"))?;
            if !mounts.contains(mount) {
                mounts.push(mount.clone());
            }
        }
        mounts.extend(layout.unified.iter().cloned());
    }
    Ok(mounts)
}

impl LiveCgroup {
    /// Creates `<name>` (a relative path whose parents exist) in every hierarchy; Err says why
    /// it cannot be done here (not root, no cgroup filesystem, read-only).
    pub(crate) fn create(name: &str) -> Result<Self, String> {
        let mounts = hierarchy_mounts()?;
        let mut cg = Self {
            rel: name.trim_matches('/').to_owned(),
            dirs: Vec::new(),
        };
        for mount in mounts {
            let dir = PathBuf::from(mount).join(&cg.rel);
            // `cg` removes what was made so far if this fails.
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            cg.dirs.push(dir);
        }
        Ok(cg)
    }

    /// Moves process `pid` into the cgroup in every hierarchy.
    pub(crate) fn join(&self, pid: u32) -> Result<(), String> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .map_err(|e| format!("writing {pid} to {}: {e}", procs.display()))?;
        }
        Ok(())
    }

    /// Starts `command` (a burner run with `--stdin`, and `--trace` for a trace) in the cgroup:
    /// it is moved in before it is told to go.
    pub(crate) fn spawn_burner(&self, mut command: Command) -> Result<Burner, String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning the burner: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let mut burner = Burner {
            child,
            stdin,
            trace: Arc::new(Mutex::new(Trace::default())),
            reader: None,
        };
        self.join(burner.child.id())?;
        if let Some(stdout) = stdout {
            let trace = burner.trace.clone();
            burner.reader = Some(std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(record) = Trace::parse_line(&line) {
                        trace
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                            .push(record);
                    }
                }
            }));
        }
        let stdin = burner.stdin.as_mut().ok_or("no stdin to the burner")?;
        writeln!(stdin, "go")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("telling the burner to go: {e}"))?;
        Ok(burner)
    }

    /// Kills whatever still runs in the cgroup and removes the directories (children before
    /// parents is the caller's order of drops); reports what could not be removed.
    pub(crate) fn remove(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        for dir in self.dirs.drain(..).rev() {
            let mut result = std::fs::remove_dir(&dir);
            // A cgroup whose last task is still exiting is busy for a moment: 2 s at most.
            for _ in 0..100 {
                if result.is_ok() || !dir.exists() {
                    break;
                }
                kill_all_in(&dir);
                std::thread::sleep(Duration::from_millis(20));
                result = std::fs::remove_dir(&dir);
            }
            if let Err(e) = result
                && dir.exists()
            {
                errors.push(format!("rmdir {}: {e}", dir.display()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// SIGKILLs every process listed in `dir/cgroup.procs` (only this program put any there).
fn kill_all_in(dir: &std::path::Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for LiveCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("live cgroup cleanup: {e}");
        }
    }
}

/// A burner process in a [`LiveCgroup`] and the trace it printed so far.
pub(crate) struct Burner {
    child: Child,
    stdin: Option<ChildStdin>,
    trace: Arc<Mutex<Trace>>,
    reader: Option<JoinHandle<()>>,
}

impl Burner {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The records printed so far (the burner flushes every 100 ms).
    pub(crate) fn trace(&self) -> Trace {
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Closes its stdin (the burner writes a last record and exits), waits at most 5 s (then
    /// kills it) and returns the whole trace.
    pub(crate) fn stop(mut self) -> Trace {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            // The pipe closed with the process, so the reader ends.
            let _ = reader.join();
        }
        self.trace()
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
