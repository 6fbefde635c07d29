//! LIVE: `CgroupReader` and `usage()` against real cgroups created on this machine.
//!
//! Needs root and a writable cgroup file system. Where that is missing the tests print that they
//! were skipped, or fail under `AISTOR_REQUIRE_TOOLS=1` (hack/test.sh sets it).
//!
//! The cgroups are made (by `examples/support/live.rs`, shared with the measurement benchmarks)
//! with plain `mkdir` and `cgroup.procs` writes, not with the cgroups-rs crate:
//! cgroups-rs 0.5 depends on zbus (a whole D-Bus stack) and nix 0.25 without an option to leave
//! them out, which is a large footprint for creating a directory; and its v1 hierarchy creates the
//! cgroup in every mounted controller (cpuset included, which needs cpus/mems set first), where
//! these tests need only the ones the reader reads.
//!
//! Helper processes are this test binary run again with `AISTOR_CGROUP_LIVE_HELPER` set, running
//! the same test, which turns into the helper before doing anything else. A helper waits for a
//! line on stdin before it starts (so it is in the cgroup first) and exits when stdin closes.

#[path = "../examples/support/live.rs"]
mod live;

use aistor_agent::cgroup_usage::usage;
use aistor_agent::clock;
use aistor_agent::source::{CgroupRead, CgroupReader, CgroupSample, HostFs};
use aistor_proto::v1::CgroupMode;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

const HELPER_ENV: &str = "AISTOR_CGROUP_LIVE_HELPER";

/// The tests share the machine's CPUs and cgroup roots: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------------
// Helpers run inside the cgroup.

/// In a helper process, becomes the helper and never returns; otherwise returns.
fn become_helper_if_asked() {
    let Ok(role) = std::env::var(HELPER_ENV) else {
        return;
    };
    let mut lines = std::io::stdin().lock().lines();
    // Wait for "go": the parent has moved this process into the cgroup.
    if !matches!(lines.next(), Some(Ok(_))) {
        std::process::exit(0);
    }
    let mut out = std::io::stdout().lock();
    match role.split_once(':') {
        Some(("burn", duty)) => {
            let duty: f64 = duty.parse().expect("helper duty cycle");
            std::thread::spawn(move || burn(duty));
            // Each further line asks for this process's CPU time so far.
            for line in lines {
                if line.is_err() {
                    break;
                }
                let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
                let nanos = i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
                writeln!(out, "@cputime {nanos}").expect("stdout");
                out.flush().expect("stdout");
            }
        }
        Some(("alloc", mib)) => {
            let bytes: usize = mib.parse::<usize>().expect("helper MiB") << 20;
            let mut block = vec![0u8; bytes];
            // Touch every page so it is really allocated (and charged to the cgroup).
            for i in (0..bytes).step_by(4096) {
                block[i] = 1;
            }
            std::hint::black_box(&block);
            writeln!(out, "@ready {bytes}").expect("stdout");
            out.flush().expect("stdout");
            for line in lines {
                if line.is_err() {
                    break;
                }
            }
            std::hint::black_box(&block);
        }
        _ => panic!("unknown helper role {role:?}"),
    }
    std::process::exit(0);
}

/// Busy for `duty` of every 10 ms, asleep for the rest.
fn burn(duty: f64) {
    let period = Duration::from_millis(10);
    let busy = period.mul_f64(duty);
    loop {
        let start = Instant::now();
        while start.elapsed() < busy {
            std::hint::spin_loop();
        }
        if let Some(rest) = period.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent side: a cgroup in every hierarchy the reader reads, removed on drop.

/// A fresh cgroup (made by the shared [`live::LiveCgroup`]) plus the helper processes and
/// shells a test starts in it; they are killed and the directories removed when it drops, also
/// when a test fails.
struct LiveCgroup {
    rel: String,
    cg: live::LiveCgroup,
    children: Vec<Child>,
}

impl LiveCgroup {
    /// Creates `aistor-live-<pid>-<name>` under each hierarchy root the reader reads.
    fn create(_reader: &CgroupReader, name: &str) -> Result<Self, String> {
        let cg = live::LiveCgroup::create(&format!("aistor-live-{}-{name}", std::process::id()))?;
        Ok(Self {
            rel: cg.rel.clone(),
            cg,
            children: Vec::new(),
        })
    }

    /// Moves process `pid` (all its threads) into the cgroup in every hierarchy.
    fn join(&self, pid: u32) {
        self.cg.join(pid).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts this test binary as a helper with `role`, in the cgroup, and tells it to go.
    fn spawn_helper(&mut self, test: &str, role: &str) -> Helper {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the helper");
        let stdin = child.stdin.take().expect("helper stdin");
        let stdout = BufReader::new(child.stdout.take().expect("helper stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        self.children.push(child);
        self.join(pid);
        let mut helper = Helper { pid, stdin, lines };
        helper.send("go");
        helper
    }

    /// Starts a shell command in the cgroup once it is in; returns when the command has exited.
    fn run_shell(&mut self, script: &str) {
        let mut child = Command::new("sh")
            .args(["-c", &format!("read go; exec {script}")])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawning sh");
        self.join(child.id());
        let mut stdin = child.stdin.take().expect("sh stdin");
        writeln!(stdin, "go").expect("telling sh to go");
        drop(stdin);
        let status = child.wait().expect("waiting for sh");
        assert!(status.success(), "{script}: {status}");
    }

    /// Kills the helpers and removes the directories, reporting what could not be removed.
    fn remove(&mut self) -> Result<(), String> {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.cg.remove()
    }
}

impl Drop for LiveCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("cgroup_live: cleanup: {e}");
        }
    }
}

/// A helper's stdin, and its stdout lines as a thread forwards them (so reads can time out).
struct Helper {
    pid: u32,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

/// How long a helper may take to answer before the test fails (and its guard cleans up).
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

impl Helper {
    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("writing to the helper");
        self.stdin.flush().expect("writing to the helper");
    }

    /// What follows `marker` on the next line that has it. The helper's test harness prints its
    /// own text too, on the same line ("test name ... ") before the helper's first output.
    fn expect_line(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + HELPER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the helper printed no {marker:?} within {HELPER_TIMEOUT:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the helper exited before printing {marker:?}")
                }
            };
            if let Some((_, rest)) = line.split_once(marker) {
                return rest.trim().to_owned();
            }
        }
    }

    /// The helper's own CPU time (CLOCK_PROCESS_CPUTIME_ID), in nanoseconds.
    fn cpu_time(&mut self) -> u64 {
        self.send("cputime?");
        self.expect_line("@cputime ")
            .parse()
            .expect("cputime value")
    }
}

/// The reader for this machine's `/`, or why the live tests cannot run here.
fn live_reader() -> Result<CgroupReader, String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not running as root".into());
    }
    let reader = CgroupReader::detect(HostFs::new("/"))
        .map_err(|e| format!("cannot detect the cgroup layout: {e}"))?;
    Ok(reader)
}

/// Sets up a cgroup, or skips (returns None) / fails under AISTOR_REQUIRE_TOOLS=1.
fn setup(name: &str) -> Option<(CgroupReader, LiveCgroup)> {
    let result = live_reader().and_then(|r| {
        let cg = LiveCgroup::create(&r, name)?;
        Ok((r, cg))
    });
    match result {
        Ok(ok) => Some(ok),
        Err(why) => {
            if std::env::var("AISTOR_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!(
                    "cgroup_live needs root and writable cgroups (AISTOR_REQUIRE_TOOLS=1): {why}"
                );
            }
            eprintln!(
                "cgroup_live: skipped {name}: {why} (set AISTOR_REQUIRE_TOOLS=1 to fail instead)"
            );
            None
        }
    }
}

fn sample(reader: &CgroupReader, rel: &str) -> CgroupSample {
    match reader.read(rel, clock::monotonic()) {
        CgroupRead::Present(s) => s,
        CgroupRead::Vanished => panic!("{rel} vanished while its test runs"),
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn cpu_millicores_match_the_burners_own_cpu_time() {
    become_helper_if_asked();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((reader, mut cg)) = setup("cpu") else {
        return;
    };
    let mut burner = cg.spawn_helper("cpu_millicores_match_the_burners_own_cpu_time", "burn:0.5");
    std::thread::sleep(Duration::from_secs(1));

    // Same order at both ends (cgroup, then the burner's clock), so the small gap cancels.
    let before = sample(&reader, &cg.rel);
    let cpu_before = burner.cpu_time();
    std::thread::sleep(Duration::from_secs(5));
    let after = sample(&reader, &cg.rel);
    let cpu_after = burner.cpu_time();

    let elapsed = after.monotonic - before.monotonic;
    let truth = (cpu_after - cpu_before) as f64 / elapsed.as_nanos() as f64 * 1000.0;
    let u = usage(Some(&before), &after);
    let cpu = u.cpu.expect("cpu");
    let measured = cpu
        .usage_millicores
        .unwrap_or_else(|| panic!("no usage_millicores: {:?}", u.missing));
    let error = (measured - truth).abs() / truth;
    eprintln!(
        "cgroup_live: usage_millicores {measured:.2} vs the burner's CLOCK_PROCESS_CPUTIME_ID \
         {truth:.2} over {elapsed:?}: {:.3} % apart",
        error * 100.0
    );
    // The burner ran at all (50 % duty: about 500 millicores on an idle machine).
    assert!(truth > 100.0, "the burner used only {truth:.1} millicores");
    assert!(
        error <= 0.03,
        "usage_millicores {measured} is not within 3 % of the burner's {truth}"
    );
    // user + system add up to the usage counter, within accounting granularity.
    let (user, system, total) = (
        cpu.user_nanos_total.expect("user"),
        cpu.system_nanos_total.expect("system"),
        cpu.usage_nanos_total.expect("usage"),
    );
    let parts = (user + system) as f64;
    assert!(
        (parts - total as f64).abs() <= 0.05 * total as f64 + 50_000_000.0,
        "user {user} + system {system} vs usage {total}"
    );
    cg.remove().expect("cleanup");
}

#[test]
fn touched_memory_shows_up_in_the_working_set_and_a_removed_cgroup_vanishes() {
    become_helper_if_asked();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((reader, mut cg)) = setup("memory") else {
        return;
    };
    const MIB: u64 = 1 << 20;
    let empty = sample(&reader, &cg.rel);
    let mut helper = cg.spawn_helper(
        "touched_memory_shows_up_in_the_working_set_and_a_removed_cgroup_vanishes",
        "alloc:96",
    );
    let bytes: u64 = helper.expect_line("@ready ").parse().expect("bytes");
    assert_eq!(bytes, 96 * MIB);
    let full = sample(&reader, &cg.rel);

    let ws_empty = empty.memory.working_set_bytes.expect("working set");
    let ws = full.memory.working_set_bytes.expect("working set");
    let anon = full.memory.anon_bytes.expect("anon");
    eprintln!(
        "cgroup_live: working set {ws_empty} B empty, {ws} B with {bytes} B touched (anon {anon} B)"
    );
    assert!(ws_empty < 8 * MIB, "an empty cgroup uses {ws_empty} B");
    assert!(
        (bytes..bytes + 32 * MIB).contains(&ws),
        "working set {ws} B for {bytes} B touched"
    );
    assert!(anon >= bytes, "anon {anon} B for {bytes} B touched");
    // pids.current counts tasks: the helper's threads (its test harness runs the test on one).
    let status = std::fs::read_to_string(format!("/proc/{}/status", helper.pid)).expect("status");
    let threads: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: in /proc/<pid>/status");
    assert_eq!(full.pids_current, Some(threads));

    let rel = cg.rel.clone();
    cg.remove().expect("removing the cgroup");
    assert!(!reader.exists(&rel));
    assert_eq!(reader.read(&rel, clock::monotonic()), CgroupRead::Vanished);
}

#[test]
fn direct_io_bytes_and_operations_per_device() {
    become_helper_if_asked();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((reader, mut cg)) = setup("io") else {
        return;
    };
    let scratch = tempfile::tempdir_in(std::env::temp_dir()).expect("scratch dir");
    let Some(disk) = whole_disk_of(scratch.path()) else {
        if std::env::var("AISTOR_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!(
                "cgroup_live: {} is not on a block device (AISTOR_REQUIRE_TOOLS=1)",
                scratch.path().display()
            );
        }
        eprintln!("cgroup_live: skipped io: the temp dir is not on a block device");
        return;
    };
    let (major, minor) = disk;
    if reader.layout().mode != CgroupMode::V2 {
        // blk-throttle counts a cgroup's I/O only on a disk with a throttle rule in place: set
        // one far above what any disk does.
        let blkio = PathBuf::from(&reader.layout().v1["blkio"]).join(&cg.rel);
        for file in [
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
        ] {
            std::fs::write(blkio.join(file), format!("{major}:{minor} 1099511627776"))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
    let file = scratch.path().join("direct");
    let before = sample(&reader, &cg.rel);
    const BYTES: u64 = 160 * 65536;
    cg.run_shell(&format!(
        "dd if=/dev/zero of={} bs=64k count=160 oflag=direct status=none",
        file.display()
    ));
    cg.run_shell(&format!(
        "dd if={} of=/dev/null bs=64k iflag=direct status=none",
        file.display()
    ));
    let after = sample(&reader, &cg.rel);
    let dev = |s: &CgroupSample| {
        s.io.as_ref()
            .unwrap_or_else(|| panic!("no io: {:?}", s.missing))
            .get(&disk)
            .copied()
            .unwrap_or_default()
    };
    let (b, a) = (dev(&before), dev(&after));
    let (read, written) = (a.read_bytes - b.read_bytes, a.write_bytes - b.write_bytes);
    eprintln!(
        "cgroup_live: {major}:{minor}: read {read} B in {} ops, wrote {written} B in {} ops",
        a.reads - b.reads,
        a.writes - b.writes
    );
    // dd's own O_DIRECT I/O, plus at most a little of the shell's and dd's (binaries are cached).
    assert!(
        (BYTES..BYTES + (1 << 20)).contains(&written),
        "{written} B written"
    );
    assert!((BYTES..BYTES + (1 << 20)).contains(&read), "{read} B read");
    assert!(a.writes - b.writes >= 160 && a.reads - b.reads >= 160);

    let u = usage(Some(&before), &after);
    let io = u.io.expect("io");
    let rates = io.rates.expect("total rates");
    let seconds = (after.monotonic - before.monotonic).as_secs_f64();
    let device = io
        .devices
        .iter()
        .find(|d| (d.major, d.minor) == disk)
        .expect("the disk in usage()");
    let device_rates = device.rates.expect("device rates");
    assert!((device_rates.write_bytes_per_second * seconds - written as f64).abs() < 1.0);
    assert!(rates.read_bytes_per_second >= device_rates.read_bytes_per_second);
    cg.remove().expect("cleanup");
}

/// The whole disk (not the partition) holding `path`, from its st_dev and sysfs.
fn whole_disk_of(path: &std::path::Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    // glibc's encoding of dev_t.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if !sys.exists() {
        return None;
    }
    let whole = if sys.join("partition").exists() {
        std::fs::read_to_string(sys.join("../dev")).ok()?
    } else {
        format!("{major}:{minor}")
    };
    let (ma, mi) = whole.trim().split_once(':')?;
    Some((ma.parse().ok()?, mi.parse().ok()?))
}

/// With too small a budget of open files, the files read every tick have first claim: after a
/// few reads of everything every cgroup's every-tick files are kept open (the first cgroup read
/// took the budget for its slow-cadence files, and gave it up), and the budget is never exceeded.
#[test]
fn every_tick_files_are_kept_open_first_when_the_budget_is_short() {
    become_helper_if_asked();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((reader, a)) = setup("budget-a") else {
        return;
    };
    let (b, c) = (
        LiveCgroup::create(&reader, "budget-b").expect("second cgroup"),
        LiveCgroup::create(&reader, "budget-c").expect("third cgroup"),
    );
    let v2 = reader.layout().mode == CgroupMode::V2;
    let every_tick: &[&str] = if v2 {
        &["cpu.stat", "memory.current", "pids.current"]
    } else {
        &[
            "cpuacct.usage",
            "cpuacct.usage_user",
            "cpuacct.usage_sys",
            "memory.usage_in_bytes",
            "pids.current",
        ]
    };
    // Room for the three cgroups' every-tick files and two more.
    let budget = 3 * every_tick.len() + 2;
    let reader = reader.with_keep_budget(budget);
    // Open files of this process by target path.
    let open_files = || -> Vec<String> {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .collect()
    };
    let cgroups = [&a.rel, &b.rel, &c.rel];
    for round in 0..3 {
        for rel in cgroups {
            // Every read reads everything (the slow-cadence files too).
            sample(&reader, rel);
            assert!(
                reader.kept_files() <= budget,
                "round {round}: over the budget"
            );
        }
    }
    let open = open_files();
    for rel in cgroups {
        for file in every_tick {
            let suffix = format!("/{rel}/{file}");
            assert!(
                open.iter().any(|p| p.ends_with(&suffix)),
                "{suffix} is not kept open: {:?}",
                open.iter()
                    .filter(|p| p.contains(rel.as_str()))
                    .collect::<Vec<_>>()
            );
        }
    }
    assert!(reader.kept_files() >= 3 * every_tick.len());
    // Reading goes on right: every-tick values still come from the kept files.
    for rel in cgroups {
        let s = sample(&reader, rel);
        assert!(
            s.cpu.usage_nanos.is_some() && s.pids_current.is_some(),
            "{rel}"
        );
    }
    drop((a, b, c));
}
