//! A coordinator killed mid-write restarts with its state: the real binary serves a
//! simulated agent while measurement runs are started in a loop, is killed with
//! SIGKILL at a random point, and is restarted on the same data directory, three
//! times. Every run it acknowledged (202) is still there, every run seen finished is
//! still finished with its result, results carried by reports it acknowledged are
//! kept, ids handed out after a restart never collide with earlier ones, and the
//! database file passes `PRAGMA integrity_check`.
//!
//! The agent is simulated over gRPC (not the real agent) so that its buffer of
//! unacknowledged reports and the results it sent are visible to the test; it keeps
//! and replays that buffer on every reconnection, as the real agent does.

mod support;

use aistor_coordinator::store::measurements::DEFAULT_KEEP_FINISHED;
use aistor_coordinator::store::sqlite::FILE_NAME;
use aistor_proto::v1 as pb;
use pb::agent_service_client::AgentServiceClient;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::process::{free_port, try_http_json as http, wait_for_exit};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

const BIN: &str = env!("CARGO_BIN_EXE_aistor-coordinator");
const NODE: &str = "crash-node";
const BOOT_ID: &str = "crash-boot";
const AGENT_INSTANCE: &str = "crash-agent-1";
const POD_NAMESPACE: &str = "crash-ns";
const POD_NAME: &str = "crash-pod";
const POD_UID: &str = "crash-pod-uid";
const KILLS: usize = 3;
/// The simulated agent's collection interval.
const REPORT_EVERY: Duration = Duration::from_millis(200);
/// Pause between two measurement starts: dozens per second, so the runs of the whole
/// test stay below the finished runs retention keeps (which would delete some).
const START_EVERY: Duration = Duration::from_millis(20);
/// Runs acknowledged by one coordinator before its kill is scheduled.
const ACKED_BEFORE_KILL: usize = 20;
/// Generous: everything here may wait for CPU on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);
/// The simulated agent's replay buffer bound, in reports.
const MAX_UNACKED: usize = 10_000;

/// A small xorshift generator: random kill points without a dependency. The seed is
/// printed; `AISTOR_CRASH_SEED` replays one.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Self {
        let seed = std::env::var("AISTOR_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| unix_nanos() | 1);
        println!("seed {seed} (AISTOR_CRASH_SEED={seed} replays it)");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Polls until `check` holds; panics naming `what` after [`PATIENCE`].
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Addrs {
    grpc: SocketAddr,
    http: SocketAddr,
}

/// One `aistor-coordinator run` process; its stdout and stderr go to `log`.
struct Coordinator {
    child: Child,
    addrs: Addrs,
    log: PathBuf,
}

impl Coordinator {
    fn spawn(data_dir: &Path, log: &Path) -> (Child, Addrs) {
        let addrs = Addrs {
            grpc: free_port(),
            http: free_port(),
        };
        let out = File::create(log).expect("log file");
        let child = Command::new(BIN)
            .arg("run")
            .args(["--grpc-addr", &addrs.grpc.to_string()])
            .args(["--http-addr", &addrs.http.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--shutdown-grace", "5s"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("aistor-coordinator starts");
        (child, addrs)
    }

    /// Starts the binary on `data_dir` and waits until it serves `/health`. A port
    /// taken between choosing and binding it is retried with new ones.
    async fn start(data_dir: &Path, log: &Path) -> Self {
        for _ in 0..5 {
            let (child, addrs) = Self::spawn(data_dir, log);
            let mut this = Self {
                child,
                addrs,
                log: log.to_owned(),
            };
            loop {
                if let Some(status) = this.child.try_wait().unwrap() {
                    let log = this.log();
                    assert!(
                        log.contains("cannot listen"),
                        "coordinator exited ({status}) before serving:\n{log}"
                    );
                    break;
                }
                if let Ok((200, _)) = http(addrs.http, "GET", "/health", None).await {
                    return this;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("no free ports for the coordinator after 5 tries")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no drain, no clean close of the database.
    async fn kill(&mut self) {
        self.child.kill().expect("SIGKILL sent");
        wait_for_exit(&mut self.child, PATIENCE)
            .await
            .expect("a killed process exits");
    }

    /// SIGTERM, then the drain: exits 0 once streams and the store are closed.
    async fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("the kill command runs");
        assert!(sent.success(), "SIGTERM not sent");
        wait_for_exit(&mut self.child, PATIENCE)
            .await
            .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", self.log()))
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The coordinator serving now (`None` while it is down), with its lifetime number
/// (0 for the first start, incremented by each restart).
type Current = watch::Receiver<Option<(usize, Addrs)>>;

/// What the simulated agent did, shared with the test.
#[derive(Debug, Default)]
struct AgentLog {
    /// Runs it received as `Measure` directives.
    directed: BTreeSet<String>,
    /// Results waiting for the next report.
    pending: Vec<pb::MeasurementResult>,
    /// Reports sent and not yet acknowledged, oldest first: replayed on reconnection.
    unacked: VecDeque<pb::NodeReport>,
    /// Runs whose result went out in a report that was acknowledged.
    acked_results: BTreeSet<String>,
    connections: usize,
    replayed: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn report(seq: u64, measurements: Vec<pb::MeasurementResult>) -> pb::NodeReport {
    pb::NodeReport {
        node: Some(pb::NodeIdentity {
            name: NODE.into(),
            boot_id: BOOT_ID.into(),
            logical_cpus: 4,
            cpu_capacity_millicores: Some(4000),
            memory_total_bytes: Some(8 << 30),
            agent_version: "0.1.0".into(),
            ..Default::default()
        }),
        agent_instance: AGENT_INSTANCE.into(),
        seq,
        wall_time_unix_nanos: unix_nanos(),
        monotonic_nanos: seq * u64::try_from(REPORT_EVERY.as_nanos()).unwrap(),
        collect_interval_nanos: 1_000_000_000,
        pods: vec![pb::Pod {
            uid: POD_UID.into(),
            name: POD_NAME.into(),
            namespace: POD_NAMESPACE.into(),
            ..Default::default()
        }],
        measurements,
        ..Default::default()
    }
}

/// The number in a run id (`m-0000000042` → 42): the simulated result carries it,
/// so a result read back can be told apart from another run's.
fn id_number(id: &str) -> u64 {
    id.trim_start_matches("m-")
        .parse()
        .unwrap_or_else(|_| panic!("run id {id:?} is not m-<number>"))
}

fn result_for(run: &pb::MeasureRun) -> pb::MeasurementResult {
    let now = unix_nanos();
    pb::MeasurementResult {
        id: run.id.clone(),
        node: NODE.into(),
        run: Some(run.clone()),
        started_unix_nanos: now,
        finished_unix_nanos: now,
        targets: vec![pb::MeasuredCgroup {
            kind: "pod".into(),
            name: POD_NAME.into(),
            namespace: POD_NAMESPACE.into(),
            pod_uid: POD_UID.into(),
            samples: vec![pb::MeasureSample {
                wall_time_unix_nanos: now,
                elapsed_nanos: 1_000_000_000,
                cpu_millicores: Some(id_number(&run.id) as f64),
                ..Default::default()
            }],
            samples_taken: 1,
            ..Default::default()
        }],
        error: String::new(),
        truncated: String::new(),
    }
}

/// The simulated agent: collects a report every [`REPORT_EVERY`] whether or not a
/// coordinator listens, puts the result of every `Measure` it receives in its next
/// report, drops reports once acknowledged (acknowledgements are cumulative) and
/// sends the rest again, oldest first, on every reconnection.
async fn simulated_agent(mut current: Current, log: Arc<Mutex<AgentLog>>, stop: Arc<AtomicBool>) {
    type Link = (
        mpsc::Sender<pb::NodeReport>,
        tonic::Streaming<pb::Directive>,
    );
    let mut seq = 0u64;
    let mut link: Option<Link> = None;
    let mut ticker = tokio::time::interval(REPORT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let serving = *current.borrow_and_update();
        if link.is_none()
            && let Some((_, addrs)) = serving
        {
            link = connect(addrs.grpc, &log).await;
        }
        tokio::select! {
            _ = ticker.tick() => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                seq += 1;
                let collected = {
                    let mut log = lock(&log);
                    let r = report(seq, std::mem::take(&mut log.pending));
                    if log.unacked.len() == MAX_UNACKED {
                        log.unacked.pop_front();
                    }
                    log.unacked.push_back(r.clone());
                    r
                };
                if let Some((tx, _)) = &link
                    && tx.try_send(collected).is_err()
                {
                    link = None;
                }
            }
            message = next_directive(&mut link) => match message {
                Some(pb::directive::Kind::Ack(ack)) => {
                    assert_eq!(ack.agent_instance, AGENT_INSTANCE);
                    let mut log = lock(&log);
                    while log.unacked.front().is_some_and(|r| r.seq <= ack.seq) {
                        let r = log.unacked.pop_front().unwrap();
                        log.acked_results.extend(r.measurements.into_iter().map(|m| m.id));
                    }
                }
                Some(pb::directive::Kind::Measure(run)) => {
                    let mut log = lock(&log);
                    log.directed.insert(run.id.clone());
                    log.pending.push(result_for(&run));
                }
                Some(other) => panic!("this coordinator sends no pod actions: {other:?}"),
                // The coordinator went away: collect on, reconnect to the next one.
                None => link = None,
            },
            // While disconnected: look for a coordinator again soon.
            () = tokio::time::sleep(Duration::from_millis(50)), if link.is_none() => {}
        }
    }
}

/// Opens the agent stream and sends every unacknowledged report first.
async fn connect(
    grpc: SocketAddr,
    log: &Mutex<AgentLog>,
) -> Option<(
    mpsc::Sender<pb::NodeReport>,
    tonic::Streaming<pb::Directive>,
)> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    let (tx, rx) = mpsc::channel(MAX_UNACKED + 16);
    {
        let mut log = lock(log);
        log.connections += 1;
        log.replayed += log.unacked.len();
        for r in &log.unacked {
            // The channel holds more than the buffer's bound: never full here.
            tx.try_send(r.clone()).expect("the replay fits the channel");
        }
    }
    let inbound = AgentServiceClient::new(channel)
        .connect(ReceiverStream::new(rx))
        .await
        .ok()?
        .into_inner();
    Some((tx, inbound))
}

/// The next directive on the link; `None` when the stream ended or failed. Never
/// resolves without a link.
async fn next_directive(
    link: &mut Option<(
        mpsc::Sender<pb::NodeReport>,
        tonic::Streaming<pb::Directive>,
    )>,
) -> Option<pb::directive::Kind> {
    let Some((_, inbound)) = link else {
        return std::future::pending().await;
    };
    loop {
        match inbound.message().await {
            Ok(Some(pb::Directive {
                kind: Some(kind), ..
            })) => return Some(kind),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// What the test saw through REST.
#[derive(Debug, Default, Clone)]
struct Ledger {
    /// Every run acknowledged with 202, with the lifetime that acknowledged it.
    acked: BTreeMap<String, usize>,
    /// Runs read back as `succeeded`: the lifetime that showed it, and the result.
    succeeded: BTreeMap<String, (usize, Value)>,
    /// An id acknowledged twice.
    collisions: Vec<String>,
    /// Refusals while the node was not (yet) connected: 404 and 409.
    not_ready: usize,
    /// Requests that reached no live coordinator.
    unreachable: usize,
    /// Any other answer: always a failure.
    unexpected: Vec<String>,
}

impl Ledger {
    fn acked_by(&self, lifetime: usize) -> usize {
        self.acked.values().filter(|&&l| l == lifetime).count()
    }

    fn succeeded_in(&self, lifetime: usize) -> usize {
        self.succeeded
            .values()
            .filter(|(l, _)| *l == lifetime)
            .count()
    }
}

/// Starts measurement runs of the simulated pod in a loop, recording every 202.
async fn writer(mut current: Current, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let request = json!({
        "pod_namespace": POD_NAMESPACE,
        "pod_name": POD_NAME,
        "samples": 1,
        "interval": "1s",
    });
    while !stop.load(Ordering::Relaxed) {
        let Some((lifetime, addrs)) = *current.borrow_and_update() else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let answer = http(addrs.http, "POST", "/api/v1/measurements", Some(&request)).await;
        {
            let mut ledger = lock(&ledger);
            match answer {
                Ok((202, body)) => match body["measurement_id"].as_str() {
                    Some(id) => {
                        if ledger.acked.insert(id.to_owned(), lifetime).is_some() {
                            ledger.collisions.push(id.to_owned());
                        }
                    }
                    None => ledger.unexpected.push(format!("202 without an id: {body}")),
                },
                Ok((404 | 409, _)) => ledger.not_ready += 1,
                Ok((code, body)) => ledger.unexpected.push(format!("POST: {code} {body}")),
                Err(_) => ledger.unreachable += 1,
            }
        }
        tokio::time::sleep(START_EVERY).await;
    }
}

/// Reads acknowledged runs back until they show `succeeded`, recording the result
/// each one was first seen with.
async fn completion_watcher(
    mut current: Current,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some((lifetime, addrs)) = *current.borrow_and_update() else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        // The newest first: older runs still running may never finish (their
        // directive died with a coordinator).
        let pending: Vec<String> = {
            let ledger = lock(&ledger);
            ledger
                .acked
                .keys()
                .rev()
                .filter(|id| !ledger.succeeded.contains_key(*id))
                .take(40)
                .cloned()
                .collect()
        };
        for id in pending {
            let path = format!("/api/v1/measurements/{id}");
            if let Ok((200, run)) = http(addrs.http, "GET", &path, None).await
                && run["state"] == "succeeded"
            {
                lock(&ledger)
                    .succeeded
                    .insert(id, (lifetime, run["result"].clone()));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every acknowledged run is there, running or succeeded; every run seen succeeded
/// still is, with the same result, and that result is its own. Returns how many
/// are succeeded now.
async fn verify(http_addr: SocketAddr, seen: &Ledger) -> usize {
    let mut succeeded = 0;
    for id in seen.acked.keys() {
        let path = format!("/api/v1/measurements/{id}");
        let (code, run) = http(http_addr, "GET", &path, None)
            .await
            .unwrap_or_else(|e| panic!("acknowledged run {id} not read: {e}"));
        assert_eq!(code, 200, "acknowledged run {id} lost: {run}");
        assert_eq!(run["id"], id.as_str(), "{run}");
        assert_eq!(run["node"], NODE, "{run}");
        let state = run["state"].as_str().unwrap_or_default();
        assert!(
            state == "running" || state == "succeeded",
            "acknowledged run {id} is {state:?}: {run}"
        );
        if state == "succeeded" {
            succeeded += 1;
            let cpu = &run["result"]["targets"][0]["samples"][0]["cpu_millicores"];
            assert_eq!(
                cpu.as_f64(),
                Some(id_number(id) as f64),
                "{id}'s result: {run}"
            );
        }
        if let Some((_, result)) = seen.succeeded.get(id) {
            assert_eq!(state, "succeeded", "run {id} was seen succeeded: {run}");
            assert_eq!(&run["result"], result, "run {id}'s result changed");
        }
    }
    succeeded
}

/// `PRAGMA integrity_check` on the database, opened read-only.
fn integrity_check(data_dir: &Path) -> Vec<String> {
    let path = data_dir.join(FILE_NAME);
    let conn = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("{} does not open read-only: {e}", path.display()));
    let mut check = conn.prepare("PRAGMA integrity_check").unwrap();
    check
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_mid_write_restarts_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = |lifetime: usize| dir.path().join(format!("coordinator-{lifetime}.log"));
    let mut rng = Rng::from_env_or_clock();

    let mut coordinator = Coordinator::start(&data, &log_path(0)).await;
    let (current_tx, current) = watch::channel(Some((0, coordinator.addrs)));
    let stop = Arc::new(AtomicBool::new(false));
    let agent_stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let agent_log = Arc::new(Mutex::new(AgentLog::default()));
    let tasks = [
        tokio::spawn(simulated_agent(
            current.clone(),
            agent_log.clone(),
            agent_stop.clone(),
        )),
        tokio::spawn(writer(current.clone(), ledger.clone(), stop.clone())),
        tokio::spawn(completion_watcher(current, ledger.clone(), stop.clone())),
    ];

    let mut lifetime = 0;
    let mut seen_before_kills = Ledger::default();
    for kill in 1..=KILLS {
        // The loop is demonstrably writing (runs started and completed) before the
        // kill is scheduled, then it lands at a random point of the writes.
        eventually(
            &format!("coordinator {lifetime} acknowledges runs and completions"),
            async || {
                let l = lock(&ledger);
                l.acked_by(lifetime) >= ACKED_BEFORE_KILL && l.succeeded_in(lifetime) >= 1
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100 + rng.below(600))).await;
        coordinator.kill().await;
        current_tx.send_replace(None);
        // Everything acknowledged was acknowledged before the kill.
        seen_before_kills = lock(&ledger).clone();
        assert_eq!(
            integrity_check(&data),
            ["ok"],
            "after kill {kill}: {}",
            coordinator.log()
        );

        lifetime += 1;
        coordinator = Coordinator::start(&data, &log_path(lifetime)).await;
        current_tx.send_replace(Some((lifetime, coordinator.addrs)));
        verify(coordinator.addrs.http, &seen_before_kills).await;
        println!(
            "kill {kill}: {} runs acknowledged, {} seen succeeded, all there after the restart",
            seen_before_kills.acked.len(),
            seen_before_kills.succeeded.len()
        );
    }

    // Ids handed out after the last restart are new ones (a collision would be a
    // 202 for an id already acknowledged, or a refusal to store it).
    eventually(
        "the restarted coordinator acknowledges new runs",
        async || lock(&ledger).acked_by(lifetime) >= ACKED_BEFORE_KILL,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    // Stop the agent last: the results of every run it was sent are reported
    // and acknowledged first.
    for task in &tasks[1..] {
        while !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let ledger = lock(&ledger).clone();
    assert!(
        ledger.collisions.is_empty(),
        "ids acknowledged twice: {:?}",
        ledger.collisions
    );
    assert!(
        ledger.unexpected.is_empty(),
        "{} unexpected answers, the first: {:?}",
        ledger.unexpected.len(),
        &ledger.unexpected[..ledger.unexpected.len().min(3)]
    );
    assert!(
        ledger.acked.len() < DEFAULT_KEEP_FINISHED,
        "{} runs: retention may have deleted some; start fewer",
        ledger.acked.len()
    );
    let first_after_last_restart = ledger
        .acked
        .iter()
        .filter(|(_, l)| **l == lifetime)
        .map(|(id, _)| id)
        .min()
        .unwrap();
    assert!(
        seen_before_kills
            .acked
            .keys()
            .all(|id| id < first_after_last_restart),
        "ids after the restart sort after every earlier one"
    );
    eventually(
        "the agent's results are all reported and acknowledged",
        async || {
            let log = lock(&agent_log);
            log.pending.is_empty() && log.unacked.iter().all(|r| r.measurements.is_empty())
        },
    )
    .await;
    agent_stop.store(true, Ordering::Relaxed);
    tasks[0].abort();
    let agent = std::mem::take(&mut *lock(&agent_log));

    let succeeded = verify(coordinator.addrs.http, &ledger).await;
    // A result in a report the coordinator acknowledged is stored, whichever
    // coordinator acknowledged it (the agent forgot those reports).
    for id in &agent.acked_results {
        let (code, run) = http(
            coordinator.addrs.http,
            "GET",
            &format!("/api/v1/measurements/{id}"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            (code, run["state"].as_str()),
            (200, Some("succeeded")),
            "{id}: {run}"
        );
    }
    let status = coordinator.terminate().await;
    assert!(status.success(), "{status}:\n{}", coordinator.log());
    // A clean stop checkpoints the write-ahead log: the file alone is complete.
    let wal = data.join(format!("{FILE_NAME}-wal"));
    assert_eq!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()),
        0,
        "{} after a clean stop",
        wal.display()
    );
    assert_eq!(integrity_check(&data), ["ok"]);
    println!(
        "kills {KILLS}; runs acknowledged {}, seen succeeded before a kill {}, succeeded at the end {succeeded}, \
         results acknowledged to the agent {}; agent connections {}, reports replayed {}; \
         refused while the node was away {}, requests to a dead coordinator {}",
        ledger.acked.len(),
        seen_before_kills.succeeded.len(),
        agent.acked_results.len(),
        agent.connections,
        agent.replayed,
        ledger.not_ready,
        ledger.unreachable,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_database_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Coordinator::start(&data, &dir.path().join("first.log")).await;
    let status = first.terminate().await;
    assert!(status.success(), "{status}:\n{}", first.log());
    let file = data.join(FILE_NAME);
    let len = std::fs::metadata(&file).unwrap().len().max(4096);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let garbage: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
    std::fs::write(&file, garbage).unwrap();
    // A clean stop leaves an empty WAL behind (checkpointed and truncated); the
    // sidecars go, so the file alone is what is checked here.
    for sidecar in ["-wal", "-shm"] {
        let path = data.join(format!("{FILE_NAME}{sidecar}"));
        if path.exists() {
            std::fs::remove_file(&path).unwrap();
        }
    }

    let log = dir.path().join("second.log");
    let (mut child, addrs) = Coordinator::spawn(&data, &log);
    let exited = wait_for_exit(&mut child, PATIENCE).await;
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let serving = http(addrs.http, "GET", "/health", None).await.is_ok();
    let _ = child.kill();
    let _ = child.wait();
    let status = exited.unwrap_or_else(|| panic!("still running (serving: {serving}):\n{output}"));
    assert!(
        !status.success(),
        "exit {status} on a garbage database:\n{output}"
    );
    assert!(
        output.contains(&file.display().to_string()),
        "the error names {}:\n{output}",
        file.display()
    );
    assert!(output.contains("corrupt"), "{output}");
}
