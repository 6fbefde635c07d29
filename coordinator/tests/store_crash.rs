//! Crash safety of the standalone store: a child process writes in a loop and prints
//! each key only after the write returned; it is killed with SIGKILL at a random point,
//! several times, each time on the same data directory. After every kill, every
//! acknowledged write is there with its full body, the file passes
//! `PRAGMA integrity_check`, and nothing is half-written.
//!
//! The child is this test binary itself, re-run with only the ignored `writer_child`
//! test selected, so no separately built helper can be stale or missing.

use aistor_coordinator::store::sqlite::{FILE_NAME, SqliteStore};
use aistor_coordinator::store::{ListOptions, MAX_LIST_LIMIT, Store, StoreError};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const DIR_ENV: &str = "AISTOR_STORE_CRASH_DIR";
const ROUND_ENV: &str = "AISTOR_STORE_CRASH_ROUND";
const RECORDS: &str = "records";
const COUNTERS: &str = "counters";
/// Generous: the child may wait for CPU on a loaded 2-core machine.
const QUIET_LIMIT: Duration = Duration::from_secs(120);

/// The body written for record `i` of `round`: its size varies up to several pages
/// (SQLite overflow pages), and its content can be checked from the key alone.
fn record(round: u64, i: u64) -> Value {
    let len = ((i * 7919 + round * 104_729) % 20_000) as usize;
    let fill: String = (0..len)
        .map(|j| char::from(b'a' + ((i as usize + j) % 26) as u8))
        .collect();
    json!({"round": round, "i": i, "len": len, "fill": fill})
}

fn key(round: u64, i: u64) -> String {
    format!("r{round}/{i:08}")
}

/// Writes records until killed: create record i, then bump the shared counter, then
/// print both acknowledgements.
#[test]
#[ignore = "the child process of acknowledged_writes_survive_sigkill; does nothing alone"]
fn writer_child() {
    let dir = std::env::var_os(DIR_ENV).expect("run by acknowledged_writes_survive_sigkill");
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = SqliteStore::open(Path::new(&dir)).unwrap();
        let mut generation = match store.get(COUNTERS, "c").await.unwrap() {
            Some(o) => o.generation,
            None => {
                store
                    .create(COUNTERS, "c", json!({"n": 1}), 1)
                    .await
                    .unwrap()
                    .generation
            }
        };
        let mut out = std::io::stdout().lock();
        for i in 0.. {
            let k = key(round, i);
            store
                .create(RECORDS, &k, record(round, i), i)
                .await
                .unwrap();
            writeln!(out, "ack record {k}").unwrap();
            out.flush().unwrap();
            let o = store
                .update(COUNTERS, "c", generation, json!({"n": generation + 1}), i)
                .await
                .unwrap();
            generation = o.generation;
            writeln!(out, "ack counter {generation}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// A small xorshift generator: random kill points without a dependency; the seed is
/// printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Default, Debug)]
struct Acks {
    records: Vec<String>,
    counter: u64,
}

impl Acks {
    /// The first acknowledgement shares its line with libtest's "test writer_child ... ".
    fn take(&mut self, line: &str) {
        if let Some((_, k)) = line.split_once("ack record ") {
            self.records.push(k.to_owned());
        } else if let Some((_, g)) = line.split_once("ack counter ") {
            self.counter = g.parse().unwrap();
        }
    }
}

/// Runs one child; kills it with SIGKILL once it has acknowledged `kill_after` records
/// (plus a random short pause, so the kill lands anywhere in a write); returns every
/// acknowledgement it printed.
fn run_child(dir: &Path, round: u64, kill_after: usize, pause: Duration) -> Acks {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "writer_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acks = Acks::default();
    while acks.records.len() < kill_after {
        match lines.recv_timeout(QUIET_LIMIT) {
            Ok(line) => acks.take(&line),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("round {round}: child silent or gone ({e:?}) after {acks:?}")
            }
        }
    }
    std::thread::sleep(pause);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "round {round}: child ended by itself: {status}"
    );
    // Whatever it printed before dying was acknowledged too.
    reader.join().unwrap();
    for line in lines.try_iter() {
        acks.take(&line);
    }
    acks
}

async fn all(store: &dyn Store, kind: &'static str) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    let mut options = ListOptions::first(MAX_LIST_LIMIT);
    loop {
        let page = store.list(kind, options.clone()).await.unwrap();
        found.extend(page.items.into_iter().map(|o| (o.key, o.body)));
        match page.continue_after {
            Some(after) => options.continue_after = Some(after),
            None => return found,
        }
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill points from seed {seed}");
    let mut rng = Rng(seed);
    let mut acked_counter = 0;
    let mut last_round_acked = 0;
    for round in 0..6u64 {
        // Round 0 may die before any write (while creating or migrating the schema).
        let kill_after = if round == 0 {
            0
        } else {
            1 + rng.below(120) as usize
        };
        let pause = Duration::from_millis(rng.below(30));
        let acks = run_child(dir.path(), round, kill_after, pause);
        last_round_acked = acks.records.len();
        acked_counter = acked_counter.max(acks.counter);

        // Integrity of the file as the killed process left it (the WAL included).
        let conn = rusqlite::Connection::open(dir.path().join(FILE_NAME)).unwrap();
        let check: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(check, ["ok"], "round {round}, seed {seed}");
        drop(conn);

        let store = match SqliteStore::open(dir.path()) {
            Ok(store) => store,
            Err(e) => panic!("round {round}, seed {seed}: reopen failed: {e}"),
        };
        let records = all(&store, RECORDS).await;
        for k in &acks.records {
            assert!(
                records.contains_key(k),
                "round {round}, seed {seed}: acknowledged {k} lost"
            );
        }
        // Nothing half-written: every stored record, acknowledged or not, is whole, and
        // each round's records are a gap-free prefix (writes were sequential).
        let mut per_round: BTreeMap<u64, u64> = BTreeMap::new();
        for (k, body) in &records {
            let r = body["round"].as_u64().unwrap();
            let i = body["i"].as_u64().unwrap();
            assert_eq!(*k, key(r, i), "seed {seed}");
            assert_eq!(
                *body,
                record(r, i),
                "round {round}, seed {seed}: {k} is not whole"
            );
            *per_round.entry(r).or_default() += 1;
        }
        for (r, n) in &per_round {
            assert!(
                records.contains_key(&key(*r, n - 1)),
                "round {r}: gap below {n}"
            );
        }
        let stored_round = per_round.get(&round).copied().unwrap_or(0) as usize;
        eprintln!(
            "round {round}: killed after {} acknowledged records ({stored_round} stored), counter {}",
            acks.records.len(),
            acks.counter
        );
        assert!(
            stored_round >= acks.records.len() && stored_round <= acks.records.len() + 1,
            "round {round}, seed {seed}: {stored_round} stored, {} acknowledged",
            acks.records.len()
        );
        let counter = store.get(COUNTERS, "c").await.unwrap();
        if acked_counter > 0 {
            let counter = counter.expect("acknowledged counter lost");
            assert!(counter.generation >= acked_counter, "seed {seed}");
            assert_eq!(
                counter.body,
                json!({"n": counter.generation}),
                "seed {seed}"
            );
        }
        // A stale writer is still refused after the crash.
        if let Some(c) = store
            .get(COUNTERS, "c")
            .await
            .unwrap()
            .filter(|c| c.generation > 1)
        {
            let stale = store
                .update(COUNTERS, "c", c.generation - 1, json!(0), 0)
                .await;
            assert!(
                matches!(stale, Err(StoreError::Conflict { .. })),
                "{stale:?}"
            );
        }
    }
    assert!(
        last_round_acked > 0 && acked_counter > 0,
        "the children never wrote"
    );
}
