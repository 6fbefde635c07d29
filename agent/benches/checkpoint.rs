//! Checkpoint staging benchmark: a program that prints figures, not a test.
//!
//! ```text
//! cargo bench -p aistor-agent --bench checkpoint -- [--dir PATH] [--runs 3] [--quick]
//! ```
//!
//! Compares, on the same data in the same run, `checkpoint::stage` (copy + sha256 of
//! every file + manifest + syncfs/fsync + rename) with its peers:
//! - `cp -a SRC DST && sha256sum` of every copied file (`find DST -type f -exec sha256sum
//!   {} +`), the brief's peer, which writes nothing durably;
//! - the same with `sync -f DST` between copy and hash, the like-for-like peer (stage
//!   makes everything durable before it returns).
//!
//! Data sets: one 10 MiB file, one 1 GiB file (skipped with `--quick`), 10,000 files of
//! 4 KiB; pseudo-random bytes. Page-cache state: dropping caches needs root and is not
//! reliable in a shared machine, so every side runs **warm**: the source is read once
//! before timing, one untimed run of each side comes first, and after every timed run
//! the copy is deleted and `sync` runs (untimed), so no side inherits another's dirty
//! pages. Each side runs `--runs` times, interleaved, and the median is reported.
//! Target from the issue: stage ≥ 0.8× the `cp -a && sha256sum` peer's throughput.

use aistor_agent::checkpoint::{self, HookTarget, StageRequest};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: cargo bench -p aistor-agent --bench checkpoint -- [--dir PATH] [--runs 3] [--quick]";
const TARGET: f64 = 0.8;

struct Options {
    dir: Option<PathBuf>,
    runs: usize,
    quick: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        dir: None,
        runs: 3,
        quick: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => options.dir = Some(args.next().ok_or("--dir needs a value")?.into()),
            "--runs" => {
                let v = args.next().ok_or("--runs needs a value")?;
                options.runs = v.parse::<usize>().map_err(|e| format!("{v}: {e}"))?.max(1);
            }
            "--quick" => options.quick = true,
            // cargo bench passes --bench
            "--bench" => {}
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

struct DataSet {
    name: &'static str,
    src: PathBuf,
    bytes: u64,
    files: u64,
}

fn make_sets(base: &Path, quick: bool) -> std::io::Result<Vec<DataSet>> {
    let mut sets = Vec::new();
    let one = |name: &'static str, len: usize| -> std::io::Result<DataSet> {
        let src = base.join(name);
        std::fs::create_dir(&src)?;
        // written in 64 MiB pieces so the 1 GiB set needs little memory
        let mut file = std::fs::File::create(src.join("data.bin"))?;
        let mut left = len;
        let mut seed = 1;
        while left > 0 {
            let n = left.min(64 << 20);
            std::io::Write::write_all(&mut file, &pseudo_random(n, seed))?;
            left -= n;
            seed += 1;
        }
        Ok(DataSet {
            name,
            src,
            bytes: len as u64,
            files: 1,
        })
    };
    sets.push(one("10MiB-1-file", 10 << 20)?);
    if !quick {
        sets.push(one("1GiB-1-file", 1 << 30)?);
    }
    let src = base.join("10000-files-4KiB");
    for d in 0..100 {
        let dir = src.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir)?;
        for f in 0..100 {
            std::fs::write(
                dir.join(format!("f{f:02}")),
                pseudo_random(4096, d * 100 + f),
            )?;
        }
    }
    sets.push(DataSet {
        name: "10000-files-4KiB",
        src,
        bytes: 10_000 * 4096,
        files: 10_000,
    });
    Ok(sets)
}

fn sh(script: &str, args: &[&Path]) -> Result<(), String> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .status()
        .map_err(|e| format!("sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{script}: {status}"))
    }
}

fn settle(path: &Path) -> Result<(), String> {
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(|e| format!("removing {}: {e}", path.display()))?;
    }
    sh("sync", &[])
}

const CP_HASH: &str = r#"cp -a "$1" "$2" && find "$2" -type f -exec sha256sum {} + > /dev/null"#;
const CP_SYNC_HASH: &str =
    r#"cp -a "$1" "$2" && sync -f "$2" && find "$2" -type f -exec sha256sum {} + > /dev/null"#;

#[derive(Clone, Copy)]
enum Side {
    Stage,
    Cp,
    CpSync,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Self::Stage => "stage()",
            Self::Cp => "cp -a && sha256sum",
            Self::CpSync => "cp -a && sync -f && sha256sum",
        }
    }
}

fn run_once(
    rt: &tokio::runtime::Runtime,
    side: Side,
    set: &DataSet,
    work: &Path,
    n: usize,
) -> Result<Duration, String> {
    let dst = work.join(format!("{}-{n}", set.name));
    let started = Instant::now();
    match side {
        Side::Stage => {
            std::fs::create_dir_all(&dst).map_err(|e| e.to_string())?;
            let req = StageRequest {
                checkpoint_dir: dst.clone(),
                node: "bench".into(),
                namespace: "bench".into(),
                pod: "bench".into(),
                checkpoint_id: format!("run-{n}"),
                container: "main".into(),
                source: set.src.clone(),
                hook: None,
                hook_timeout: Duration::from_secs(1),
                content: Default::default(),
            };
            let staged = rt
                .block_on(checkpoint::stage(req, HookTarget::default(), |_| {}))
                .map_err(|e| e.to_string())?;
            if staged.bytes != set.bytes || staged.files != set.files {
                return Err(format!("{}: staged {staged:?}", set.name));
            }
        }
        Side::Cp => sh(CP_HASH, &[&set.src, &dst])?,
        Side::CpSync => sh(CP_SYNC_HASH, &[&set.src, &dst])?,
    }
    let took = started.elapsed();
    settle(&dst)?;
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn main() {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = bench(&options) {
        eprintln!("checkpoint bench failed: {e}");
        std::process::exit(1);
    }
}

fn bench(options: &Options) -> Result<(), String> {
    let base = match &options.dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .map_err(|e| format!("temporary directory: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (data, work) = (base.path().join("src"), base.path().join("work"));
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let sets = make_sets(&data, options.quick).map_err(|e| format!("making data: {e}"))?;
    sh("sync", &[])?;

    println!("checkpoint staging benchmark");
    println!(
        "dir {} ({} CPUs); warm page cache (see the header of benches/checkpoint.rs); {} timed runs per side, median",
        base.path().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.runs
    );
    let sides = [Side::Stage, Side::Cp, Side::CpSync];
    let mut misses = 0;
    for set in &sets {
        // warm: read the source, then one untimed run of each side
        sh(
            r#"find "$1" -type f -exec cat {} + > /dev/null"#,
            &[&set.src],
        )?;
        for side in sides {
            run_once(&rt, side, set, &work, 0)?;
        }
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); sides.len()];
        for n in 1..=options.runs {
            // interleaved, starting with a different side each round
            for k in 0..sides.len() {
                let i = (k + n) % sides.len();
                times[i].push(run_once(&rt, sides[i], set, &work, n)?);
            }
        }
        println!();
        println!(
            "{} ({} files, {:.1} MiB)",
            set.name,
            set.files,
            set.bytes as f64 / (1 << 20) as f64
        );
        let medians: Vec<Duration> = times.iter().map(|t| median(t.clone())).collect();
        for (i, side) in sides.iter().enumerate() {
            let runs: Vec<String> = times[i]
                .iter()
                .map(|d| format!("{:.3}", d.as_secs_f64()))
                .collect();
            println!(
                "  {:<32} median {:>8.3} s  {:>8.1} MiB/s   runs [{}] s",
                side.name(),
                medians[i].as_secs_f64(),
                mib_s(set.bytes, medians[i]),
                runs.join(", ")
            );
        }
        let vs_cp = medians[1].as_secs_f64() / medians[0].as_secs_f64();
        let vs_sync = medians[2].as_secs_f64() / medians[0].as_secs_f64();
        let verdict = if vs_cp >= TARGET { "PASS" } else { "MISS" };
        if vs_cp < TARGET {
            misses += 1;
        }
        println!(
            "  stage throughput = {vs_cp:.2}x cp -a && sha256sum ({verdict}, target >= {TARGET}x); \
             {vs_sync:.2}x with sync -f"
        );
    }
    println!();
    println!(
        "{}",
        if misses == 0 {
            "all data sets at or above target".to_owned()
        } else {
            format!("{misses} data set(s) below target")
        }
    );
    Ok(())
}
