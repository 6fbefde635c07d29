//! LIVE: the real `aistor-agent measure` binary against a fresh cgroup with a CPU burner in it.
//!
//! Needs root and a writable cgroup file system. Where that is missing the tests print that they
//! were skipped, or fail under `AISTOR_REQUIRE_TOOLS=1` (hack/test.sh sets it).
//!
//! The burner is this test binary run again with `AISTOR_MEASURE_LIVE_BURNER` set to the burner's
//! arguments; it turns into the burner before doing anything else. Its code, the cgroup guard and
//! the ground truth (the burner's own CLOCK_PROCESS_CPUTIME_ID, logged with CLOCK_REALTIME at
//! every busy start and end and interpolated at the agent's sample times) are shared with the
//! precision benchmark in `agent/examples/support/live.rs`.

#[path = "../examples/support/live.rs"]
mod live;

use live::LiveCgroup;
use serde_json::Value;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BURNER_ENV: &str = "AISTOR_MEASURE_LIVE_BURNER";

/// In a burner process, burns and exits; otherwise returns.
fn become_burner_if_asked() {
    let Ok(args) = std::env::var(BURNER_ENV) else {
        return;
    };
    let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    let code = match live::burner_main(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("measure_live burner: {e}");
            2
        }
    };
    std::process::exit(code);
}

/// Skips (None) or fails under AISTOR_REQUIRE_TOOLS=1 when `made` says why it could not be done.
fn required<T>(test: &str, made: Result<T, String>) -> Option<T> {
    match made {
        Ok(v) => Some(v),
        Err(why) => {
            if std::env::var("AISTOR_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!(
                    "measure_live needs root and writable cgroups (AISTOR_REQUIRE_TOOLS=1): {why}"
                );
            }
            eprintln!(
                "measure_live: skipped {test}: {why} (set AISTOR_REQUIRE_TOOLS=1 to fail instead)"
            );
            None
        }
    }
}

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the agent binary with `args`; its exit success and stdout. Killed after `limit`.
fn agent(args: &[&str], limit: Duration) -> (bool, String) {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_aistor-agent"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning aistor-agent"),
    );
    let mut stdout = child.0.stdout.take().expect("agent stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("waiting for aistor-agent") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "aistor-agent {args:?} did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The process exited, so its stdout is closed and the reader ends.
    let text = reader.join().expect("reading the agent's stdout");
    (status.success(), text)
}

#[test]
fn measure_matches_the_burners_own_cpu_time() {
    const TEST: &str = "measure_matches_the_burners_own_cpu_time";
    become_burner_if_asked();
    let name = format!("aistor-measure-live-{}", std::process::id());
    let Some(cg) = required(TEST, LiveCgroup::create(&name)) else {
        return;
    };
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(BURNER_ENV, "0.5 --trace --stdin --seconds 120");
    let burner = cg.spawn_burner(command).expect("starting the burner");
    // Running, and its trace flowing, before the measurement starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while burner.trace().0.len() < 20 {
        assert!(Instant::now() < deadline, "the burner printed no trace");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (ok, out) = agent(
        &[
            "measure",
            "--cgroup",
            &cg.rel,
            "--samples",
            "5",
            "--interval",
            "500ms",
            "--json",
            "--containerd-socket",
            "/nonexistent",
        ],
        Duration::from_secs(60),
    );
    // The trace must reach past the last read.
    std::thread::sleep(Duration::from_millis(200));
    let trace = burner.stop();
    assert!(ok, "measure failed: {out}");
    let result: Value = serde_json::from_str(&out).expect("measure prints JSON");
    let target = &result["targets"][0];
    assert_eq!(target["samples_taken"], 5, "{out}");
    assert_eq!(target["samples_failed"], 0, "{out}");

    let samples = target["samples"].as_array().expect("samples");
    let wall = |s: &Value| s["wall_time_unix_nanos"].as_u64().expect("wall time");
    let first = &samples[0];
    let from = wall(first) - first["elapsed_nanos"].as_u64().expect("elapsed");
    let to = wall(samples.last().expect("a sample"));
    let truth = trace
        .millicores(from, to)
        .expect("the run lies inside the burner's trace");
    let measured = target["summary"]["cpu_millicores"]["trimmed_mean"]
        .as_f64()
        .expect("trimmed mean");
    let error = (measured - truth).abs() / truth;
    eprintln!(
        "measure_live: trimmed mean {measured:.2} mc vs the burner's CLOCK_PROCESS_CPUTIME_ID \
         {truth:.2} mc over {:.3} s: {:.3} % apart",
        (to - from) as f64 / 1e9,
        error * 100.0
    );
    // The burner ran at all (50 % duty: about 500 millicores on an idle machine).
    assert!(truth > 100.0, "the burner used only {truth:.1} millicores");
    assert!(
        error <= 0.03,
        "trimmed mean {measured} is not within 3 % of the burner's {truth}"
    );
    drop(cg);
}

#[test]
fn measure_of_a_missing_cgroup_exits_non_zero_naming_the_path() {
    const TEST: &str = "measure_of_a_missing_cgroup_exits_non_zero_naming_the_path";
    become_burner_if_asked();
    // Needs only a cgroup file system to look in (without one the error is about that).
    let detected =
        aistor_agent::source::CgroupReader::detect(aistor_agent::source::HostFs::new("/"))
            .map_err(|e| format!("cannot detect the cgroup layout: {e}"));
    if required(TEST, detected).is_none() {
        return;
    }
    let (ok, out) = agent(
        &[
            "measure",
            "--cgroup",
            "does/not/exist",
            "--samples",
            "2",
            "--json",
            "--containerd-socket",
            "/nonexistent",
        ],
        Duration::from_secs(30),
    );
    assert!(!ok, "measure of a missing cgroup succeeded: {out}");
    let result: Value = serde_json::from_str(&out).expect("measure prints JSON");
    let error = result["error"].as_str().expect("error");
    assert!(error.contains("does/not/exist"), "{error}");
    assert_eq!(result["targets"].as_array().map(Vec::len), Some(0), "{out}");
}
