//! Precision of `aistor-agent measure` against ground truth: burners at several duty cycles,
//! each in a fresh cgroup, measured through the agent's real code path (the release binary,
//! `measure --cgroup PATH --samples N --interval 1s --trim 0.1 --json`), compared with each
//! burner's own CPU clock. Run by hack/bench/precision.sh (needs root).
//!
//!     precision [--agent PATH] [--burner PATH] [--samples 30] [--short-samples 20]
//!               [--duties 0.1,0.25,0.5,1.0] [--burner-nice N]
//!
//! Alignment: the burner prints (CLOCK_REALTIME, CLOCK_PROCESS_CPUTIME_ID) at the start and end
//! of every busy phase (every 10 ms at duty 1), so its CPU time is piecewise linear between
//! records. Each agent sample carries `wall_time_unix_nanos` (CLOCK_REALTIME taken just before
//! the cgroup is read) and `elapsed_nanos` (CLOCK_MONOTONIC between this read and the previous
//! one); the truth for that sample is the burner's CPU time interpolated at
//! `wall_time_unix_nanos` minus that at `wall_time_unix_nanos - elapsed_nanos`, over
//! `elapsed_nanos`. The run's truth spans the first sample's start to the last sample's end.
//!
//! Prints tables and PASS/MISS lines; exits non-zero only when something could not run.

#[path = "support/live.rs"]
mod live;

use aistor_agent::measure::stats::{Summary, summarize};
use live::{LiveCgroup, Trace};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TRIM: f64 = 0.1;
/// Per interval: within 1 % or within 5 millicores.
const INTERVAL_PERCENT: f64 = 1.0;
const INTERVAL_MILLICORES: f64 = 5.0;
const TRIMMED_MEAN_PERCENT: f64 = 0.5;

struct Options {
    agent: PathBuf,
    burner: PathBuf,
    samples: u32,
    short_samples: u32,
    duties: Vec<f64>,
    /// Run the burners under `nice -n N` (a steadier workload on a busy host).
    burner_nice: Option<i32>,
}

fn options() -> Result<Options, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let examples = exe.parent().ok_or("no examples dir")?.to_path_buf();
    let mut o = Options {
        agent: examples
            .parent()
            .map(|release| release.join("aistor-agent"))
            .ok_or("no target dir")?,
        burner: examples.join("burner"),
        samples: 30,
        short_samples: 20,
        duties: vec![0.1, 0.25, 0.5, 1.0],
        burner_nice: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--agent" => o.agent = value()?.into(),
            "--burner" => o.burner = value()?.into(),
            "--samples" => o.samples = value()?.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--short-samples" => {
                o.short_samples = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
            }
            "--duties" => {
                o.duties = value()?
                    .split(',')
                    .map(|d| d.parse().map_err(|e| format!("{flag} {d}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--burner-nice" => {
                o.burner_nice = Some(value()?.parse().map_err(|e| format!("{flag}: {e}"))?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// One agent sample with its ground truth.
struct Compared {
    agent: f64,
    truth: f64,
}

impl Compared {
    fn error(&self) -> f64 {
        self.agent - self.truth
    }
    fn error_percent(&self) -> f64 {
        self.error() / self.truth * 100.0
    }
    fn within_target(&self) -> bool {
        self.error().abs() <= INTERVAL_MILLICORES || self.error_percent().abs() <= INTERVAL_PERCENT
    }
}

/// One `measure` run compared with the trace.
struct RunFigures {
    samples: Vec<Compared>,
    failed: u64,
    trimmed_mean: f64,
    run_truth: f64,
    window: Duration,
}

impl RunFigures {
    fn trimmed_mean_error_percent(&self) -> f64 {
        (self.trimmed_mean - self.run_truth) / self.run_truth * 100.0
    }

    /// The same statistic computed over the per-interval truths (the library's own
    /// `summarize`): what the agent's trimmed mean would be with exact readings.
    fn truth_summary(&self) -> Option<Summary> {
        let truths: Vec<f64> = self.samples.iter().map(|c| c.truth).collect();
        summarize(&truths, TRIM)
    }

    /// How much the burner's own rate varied between intervals: stddev / mean, in %.
    fn truth_cv_percent(&self) -> f64 {
        self.truth_summary().map_or(f64::NAN, |s| {
            let mean = self.samples.iter().map(|c| c.truth).sum::<f64>() / s.count as f64;
            s.stddev / mean * 100.0
        })
    }

    /// The agent's trimmed mean against the truths' trimmed mean, in %.
    fn versus_truth_trimmed_mean_percent(&self) -> f64 {
        self.truth_summary().map_or(f64::NAN, |s| {
            (self.trimmed_mean - s.trimmed_mean) / s.trimmed_mean * 100.0
        })
    }
}

/// Runs `aistor-agent measure` on `cgroup`; the parsed JSON, bounded in time.
fn measure(agent: &PathBuf, cgroup: &str, samples: u32) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let out_path = dir.path().join("measure.json");
    let out = std::fs::File::create(&out_path).map_err(|e| format!("{e}"))?;
    let err = std::fs::File::create(dir.path().join("measure.log")).map_err(|e| format!("{e}"))?;
    let samples_arg = samples.to_string();
    let mut child = Command::new(agent)
        .args(["measure", "--cgroup", cgroup, "--samples", &samples_arg])
        .args(["--interval", "1s", "--trim", &TRIM.to_string(), "--json"])
        .args(["--containerd-socket", "/nonexistent"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("running {}: {e}", agent.display()))?;
    let deadline = Instant::now() + Duration::from_secs(u64::from(samples) + 30);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{e}"))? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "measure --samples {samples} did not finish in time"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).map_err(|e| format!("{e}"))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| format!("measure printed no JSON ({status}): {e}: {text}"))?;
    if !status.success() {
        return Err(format!("measure failed ({status}): {}", json["error"]));
    }
    Ok(json)
}

fn compare(json: &Value, trace: &Trace) -> Result<RunFigures, String> {
    let target = &json["targets"][0];
    let samples = target["samples"].as_array().ok_or("no samples")?;
    let mut compared = Vec::new();
    let (mut first_start, mut last_end) = (u64::MAX, 0);
    for s in samples {
        let wall = s["wall_time_unix_nanos"].as_u64().ok_or("no wall time")?;
        let elapsed = s["elapsed_nanos"].as_u64().ok_or("no elapsed")?;
        let agent = s["cpu_millicores"].as_f64().ok_or("no cpu_millicores")?;
        let start = wall - elapsed;
        first_start = first_start.min(start);
        last_end = last_end.max(wall);
        let truth = trace
            .millicores(start, wall)
            .ok_or("a sample lies outside the burner's trace")?;
        compared.push(Compared { agent, truth });
    }
    Ok(RunFigures {
        samples: compared,
        failed: target["samples_failed"].as_u64().unwrap_or(0),
        trimmed_mean: target["summary"]["cpu_millicores"]["trimmed_mean"]
            .as_f64()
            .ok_or("no trimmed mean")?,
        run_truth: trace
            .millicores(first_start, last_end)
            .ok_or("the run lies outside the burner's trace")?,
        window: Duration::from_nanos(last_end.saturating_sub(first_start)),
    })
}

struct BurnerResult {
    duty: f64,
    long: RunFigures,
    short: RunFigures,
}

fn bench_one(o: &Options, duty: f64, index: usize) -> Result<BurnerResult, String> {
    let name = format!("aistor-precision-{}-{index}", std::process::id());
    let cg = LiveCgroup::create(&name)?;
    // nice execs the burner: the pid moved into the cgroup is the burner's.
    let mut command = match o.burner_nice {
        Some(n) => {
            let mut c = Command::new("nice");
            c.args(["-n", &n.to_string()]).arg(&o.burner);
            c
        }
        None => Command::new(&o.burner),
    };
    let cap = u64::from(o.samples + o.short_samples) + 120;
    command.args([
        &duty.to_string(),
        "--trace",
        "--stdin",
        "--seconds",
        &cap.to_string(),
    ]);
    let burner = cg.spawn_burner(command)?;
    // Settle: the burner is in its cgroup and running steadily.
    std::thread::sleep(Duration::from_secs(2));
    let long = measure(&o.agent, &cg.rel, o.samples)?;
    let short = measure(&o.agent, &cg.rel, o.short_samples)?;
    // A little more trace after the last read, so it lies inside.
    std::thread::sleep(Duration::from_millis(200));
    let trace = burner.stop();
    drop(cg);
    Ok(BurnerResult {
        duty,
        long: compare(&long, &trace)?,
        short: compare(&short, &trace)?,
    })
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("precision: {e}");
            std::process::exit(2);
        }
    };
    for exe in [&o.agent, &o.burner] {
        if !exe.is_file() {
            eprintln!(
                "precision: {} is missing (cargo build --release -p aistor-agent --examples --bins)",
                exe.display()
            );
            std::process::exit(2);
        }
    }
    let mut results = Vec::new();
    for (i, &duty) in o.duties.iter().enumerate() {
        eprintln!(
            "precision: burner at {duty} core: measure --samples {} then --samples {} ...",
            o.samples, o.short_samples
        );
        match bench_one(&o, duty, i) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("precision: burner at {duty} core: {e}");
                std::process::exit(1);
            }
        }
    }
    report(&o, &results);
}

fn report(o: &Options, results: &[BurnerResult]) {
    println!(
        "per interval: {} samples at 1s; error = agent sample - burner CPU clock over the same interval",
        o.samples
    );
    println!(
        "{:>7} {:>9} {:>8} {:>13} {:>12} {:>12} {:>11} {:>10}",
        "burner",
        "truth_mc",
        "samples",
        "mean|err|_mc",
        "mean|err|_%",
        "max|err|_mc",
        "max|err|_%",
        "failed"
    );
    for r in results {
        let s = &r.long.samples;
        let n = s.len().max(1) as f64;
        let mean_mc = s.iter().map(|c| c.error().abs()).sum::<f64>() / n;
        let mean_pc = s.iter().map(|c| c.error_percent().abs()).sum::<f64>() / n;
        let max_mc = s.iter().map(|c| c.error().abs()).fold(0.0, f64::max);
        let max_pc = s
            .iter()
            .map(|c| c.error_percent().abs())
            .fold(0.0, f64::max);
        println!(
            "{:>7} {:>9.1} {:>8} {:>13.2} {:>12.3} {:>12.2} {:>11.3} {:>10}",
            format!("{:.2}", r.duty),
            r.long.run_truth,
            s.len(),
            mean_mc,
            mean_pc,
            max_mc,
            max_pc,
            r.long.failed
        );
    }
    println!();
    println!(
        "trimmed mean (trim {TRIM}): summary.cpu_millicores.trimmed_mean vs the burner's CPU clock over the whole run"
    );
    println!(
        "(context: truth_tm_mc is the same trimmed mean over the per-interval truths, vs_tm_% the agent's against it, truth_cv_% how much the burner's rate varied between intervals)"
    );
    println!(
        "{:>7} {:>8} {:>9} {:>10} {:>10} {:>9} {:>12} {:>8} {:>11}",
        "burner",
        "samples",
        "window_s",
        "agent_mc",
        "truth_mc",
        "error_%",
        "truth_tm_mc",
        "vs_tm_%",
        "truth_cv_%"
    );
    for r in results {
        for run in [&r.long, &r.short] {
            println!(
                "{:>7} {:>8} {:>9.2} {:>10.2} {:>10.2} {:>+9.3} {:>12.2} {:>+8.3} {:>11.2}",
                format!("{:.2}", r.duty),
                run.samples.len(),
                run.window.as_secs_f64(),
                run.trimmed_mean,
                run.run_truth,
                run.trimmed_mean_error_percent(),
                run.truth_summary().map_or(f64::NAN, |s| s.trimmed_mean),
                run.versus_truth_trimmed_mean_percent(),
                run.truth_cv_percent()
            );
        }
    }
    println!();
    for r in results {
        let s = &r.long.samples;
        let over = s.iter().filter(|c| !c.within_target()).count();
        let worst = s
            .iter()
            .max_by(|a, b| a.error().abs().total_cmp(&b.error().abs()));
        let verdict = if over == 0 && r.long.failed == 0 {
            "PASS"
        } else {
            "MISS"
        };
        let worst = worst.map_or(String::from("-"), |c| {
            format!("worst {:+.2} mc = {:+.3} %", c.error(), c.error_percent())
        });
        println!(
            "target per interval <= {INTERVAL_PERCENT} % or <= {INTERVAL_MILLICORES} mc ({:.2} core): {verdict}  ({}/{} intervals outside; {worst})",
            r.duty,
            over,
            s.len()
        );
    }
    for r in results {
        for run in [&r.long, &r.short] {
            let e = run.trimmed_mean_error_percent();
            let verdict = if e.abs() <= TRIMMED_MEAN_PERCENT {
                "PASS"
            } else {
                "MISS"
            };
            println!(
                "target trimmed mean <= {TRIMMED_MEAN_PERCENT} % ({:.2} core, {} samples): {verdict}  ({e:+.3} %; {:+.3} % vs the truths' trimmed mean; burner varied {:.1} %)",
                r.duty,
                run.samples.len(),
                run.versus_truth_trimmed_mean_percent(),
                run.truth_cv_percent()
            );
        }
    }
}
