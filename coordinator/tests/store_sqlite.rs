//! The standalone store on real SQLite files: round trips, optimistic concurrency,
//! paging, bounds, schema migrations, refusal of corrupt and too-new files, and the
//! measurement runs layered over it.

use aistor_coordinator::store::measurements::{KIND, Measurements};
use aistor_coordinator::store::sqlite::{FILE_NAME, SCHEMA_VERSION, SqliteStore};
use aistor_coordinator::store::{ListOptions, MAX_KEY_BYTES, Store, StoreError};
use aistor_proto::v1 as pb;
use rusqlite::Connection;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

mod store_contract;

const K: &str = "things";

/// SQLite keeps any kind, any body, any key of printable characters; generations count
/// by one; times are the caller's.
fn contract() -> store_contract::Fixture {
    // Inserted out of order, with multi-byte keys: order is by UTF-8 bytes, as `str`.
    let mut ordering_keys: Vec<String> =
        (0..21).map(|i| format!("ns/{:02}", (i * 8) % 21)).collect();
    ordering_keys.extend(["z/é".to_owned(), "Z/upper".to_owned(), "ns/ä".to_owned()]);
    store_contract::Fixture {
        kind: K,
        other_kind: "others",
        empty_kind: "none",
        key: |name| format!("ns/{name}"),
        body: |_, _, payload| payload.clone(),
        payload: |body| body.clone(),
        generations: store_contract::Generations::CountByOne,
        times: store_contract::Times::Caller,
        ordering_keys,
        longest_key: "k".repeat(MAX_KEY_BYTES),
        too_long_key: "k".repeat(MAX_KEY_BYTES + 1),
        key_limit: MAX_KEY_BYTES,
    }
}

fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir).expect("open store"))
}

fn user_version(dir: &Path) -> i64 {
    Connection::open(dir.join(FILE_NAME))
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn objects_round_trip_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let updated = store_contract::objects_round_trip(open(&data), &contract()).await;

    let store = open(&data);
    assert_eq!(store.get(K, "ns/one").await.unwrap(), Some(updated));
    // The directory this store created is private to the coordinator.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "mode {mode:o}");
    assert_eq!(user_version(&data), SCHEMA_VERSION);
}

#[tokio::test]
async fn stale_writes_are_refused_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::stale_writes_are_refused_not_merged(open(dir.path()), &contract()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_modify_write_loses_no_update() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::concurrent_read_modify_write_loses_no_update(open(dir.path()), &contract())
        .await;
}

#[tokio::test]
async fn lists_page_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    store_contract::lists_page_in_key_order(open(dir.path()), &contract()).await;
}

#[tokio::test]
async fn bounds_are_enforced_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store_contract::bounds_are_enforced_naming_the_limit(store.clone(), &contract()).await;
    // SQLite integers are signed 64-bit.
    let err = store
        .create(K, "late", json!(1), u64::MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::OutOfRange {
                field: "now_unix_nanos",
                ..
            }
        ),
        "{err:?}"
    );
}

/// The version-1 layout, written out here (not taken from the binary) so that editing a
/// released migration is noticed.
const V1_SCHEMA: &str = "CREATE TABLE objects (
    kind TEXT NOT NULL, key TEXT NOT NULL, generation INTEGER NOT NULL,
    created_unix_nanos INTEGER NOT NULL, updated_unix_nanos INTEGER NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID;
    PRAGMA user_version = 1;";

fn v1_file(dir: &Path, rows: &[(&str, &str, i64, &str)]) {
    let conn = Connection::open(dir.join(FILE_NAME)).unwrap();
    conn.execute_batch(V1_SCHEMA).unwrap();
    for (kind, key, generation, body) in rows {
        conn.execute(
            "INSERT INTO objects VALUES (?1, ?2, ?3, 10, 20, ?4)",
            rusqlite::params![kind, key, generation, body],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn older_databases_are_migrated_with_their_data() {
    // Version 0: an empty file, as `touch` or an interrupted first start leaves it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::File::create(dir.path().join(FILE_NAME)).unwrap();
    let store = open(dir.path());
    store.create(K, "k", json!(1), 1).await.unwrap();
    assert_eq!(user_version(dir.path()), SCHEMA_VERSION);

    // Version 1, with data.
    let dir = tempfile::tempdir().unwrap();
    v1_file(
        dir.path(),
        &[
            (K, "a", 3, r#"{"x":[1,2]}"#),
            ("measurements", "m-1", 1, r#"{"y":"z"}"#),
        ],
    );
    let store = open(dir.path());
    let a = store.get(K, "a").await.unwrap().unwrap();
    assert_eq!(
        (
            a.generation,
            a.created_unix_nanos,
            a.updated_unix_nanos,
            a.body
        ),
        (3, 10, 20, json!({"x": [1, 2]}))
    );
    let m = store.get("measurements", "m-1").await.unwrap().unwrap();
    assert_eq!(m.body, json!({"y": "z"}));
    store.update(K, "a", 3, json!("after"), 30).await.unwrap();
    assert_eq!(user_version(dir.path()), SCHEMA_VERSION);
    let sql: String = Connection::open(dir.path().join(FILE_NAME))
        .unwrap()
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'objects'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("STRICT"), "{sql}");
}

#[tokio::test]
async fn a_failed_migration_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    // Generation 0 breaks version 2's CHECK: the migration must fail as a whole.
    v1_file(dir.path(), &[(K, "good", 1, "{}"), (K, "bad", 0, "{}")]);
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("migration 1 to 2"), "{err}");
    assert!(err.to_string().contains(FILE_NAME), "{err}");
    assert_eq!(user_version(dir.path()), 1);
    let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "the half-built version-2 table was rolled back");
}

#[tokio::test]
async fn a_newer_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let future = SCHEMA_VERSION + 7;
    Connection::open(dir.path().join(FILE_NAME))
        .unwrap()
        .pragma_update(None, "user_version", future)
        .unwrap();
    match SqliteStore::open(dir.path()) {
        Err(StoreError::TooNew {
            path,
            found,
            supported,
        }) => {
            assert_eq!(path, dir.path().join(FILE_NAME));
            assert_eq!((found, supported), (future, SCHEMA_VERSION));
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert_eq!(user_version(dir.path()), future);
}

#[tokio::test]
async fn corrupt_files_are_refused_naming_the_path() {
    // Not a database at all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    // A real database with one damaged page: enough rows for several b-tree pages,
    // written without WAL so everything is in the main file, then a leaf overwritten.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(V1_SCHEMA).unwrap();
        for i in 0..400 {
            conn.execute(
                "INSERT INTO objects VALUES ('things', ?1, 1, 1, 1, ?2)",
                rusqlite::params![format!("key-{i:04}"), format!("\"{}\"", "v".repeat(200))],
            )
            .unwrap();
        }
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    assert!(bytes.len() >= 6 * page, "only {} bytes", bytes.len());
    bytes[3 * page..4 * page].fill(0xa5);
    std::fs::write(&path, bytes).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { path: p, .. } if *p == path),
        "{err:?}"
    );
}

fn running(id: &str, created: u64) -> pb::Measurement {
    pb::Measurement {
        id: id.into(),
        node: "n1".into(),
        state: pb::MeasurementState::Running as i32,
        run: Some(pb::MeasureRun {
            id: id.into(),
            target: Some(pb::MeasureTarget {
                target: Some(pb::measure_target::Target::CgroupPath("kubepods/a".into())),
            }),
            samples: 20,
            interval_nanos: 1_000_000_000,
            trim: 0.1,
        }),
        created_unix_nanos: created,
        ..Default::default()
    }
}

fn result(id: &str, error: &str) -> pb::MeasurementResult {
    pb::MeasurementResult {
        id: id.into(),
        node: "n1".into(),
        started_unix_nanos: 5,
        finished_unix_nanos: 9,
        error: error.into(),
        targets: vec![pb::MeasuredCgroup::default()],
        ..Default::default()
    }
}

/// A result too large for one stored object (the agent sends up to 4 MiB) is stored
/// as its summary, saying so; before, the store refused it and the report carrying it
/// was never acknowledged.
#[tokio::test]
async fn a_result_larger_than_an_object_is_stored_as_its_summary_saying_so() {
    use aistor_coordinator::store::MAX_BODY_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let runs = Measurements::open(store.clone(), 10).await.unwrap();
    runs.create(&running("m-big", 1), 1).await.unwrap();
    let mut big = result("m-big", "");
    big.targets[0].samples_taken = 30_000;
    big.targets[0].samples = vec![
        pb::MeasureSample {
            wall_time_unix_nanos: u64::MAX,
            cpu_millicores: Some(1.5),
            memory_working_set_bytes: Some(u64::MAX),
            ..Default::default()
        };
        30_000
    ];
    big.targets[0].summary = Some(pb::MeasureSummary {
        cpu_millicores: Some(pb::FigureSummary {
            count: 30_000,
            trimmed_mean: 1.5,
            ..Default::default()
        }),
        ..Default::default()
    });
    let stored = runs.complete(big, 2).await.unwrap();
    let target = &stored.result.as_ref().unwrap().targets[0];
    assert!(target.samples.is_empty());
    assert_eq!(target.samples_taken, 30_000);
    assert_eq!(
        target.summary.unwrap().cpu_millicores.unwrap().trimmed_mean,
        1.5
    );
    let note = &stored.result.as_ref().unwrap().truncated;
    assert!(
        note.contains(&format!("limit of {MAX_BODY_BYTES} bytes per object"))
            && note.contains("30000 per-sample readings dropped"),
        "{note}"
    );
    assert_eq!(runs.get("m-big").await.unwrap(), Some(stored));
}

#[tokio::test]
async fn measurement_runs_round_trip_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let runs = Measurements::open(store.clone(), 10).await.unwrap();
    let m = running("m-a", 1_000);
    runs.create(&m, 1_000).await.unwrap();
    assert_eq!(runs.get("m-a").await.unwrap(), Some(m.clone()));
    assert!(matches!(
        runs.create(&m, 1_000).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    // The body says what it holds without decoding the protobuf.
    let body = store.get(KIND, "m-a").await.unwrap().unwrap().body;
    assert_eq!(
        (body["state"].as_str(), body["node"].as_str()),
        (Some("running"), Some("n1"))
    );

    let done = runs.complete(result("m-a", ""), 2_000).await.unwrap();
    let stored = runs.get("m-a").await.unwrap().unwrap();
    assert_eq!(stored, done);
    assert_eq!(stored.state, pb::MeasurementState::Succeeded as i32);
    assert_eq!(stored.created_unix_nanos, 1_000);
    assert_eq!(stored.run, m.run);
    assert_eq!(stored.result, Some(result("m-a", "")));

    // A result for a run this store never saw is kept, as a finished run created now.
    let unknown = runs
        .complete(result("cli-7", "target not found"), 3_000)
        .await
        .unwrap();
    assert_eq!(unknown.state, pb::MeasurementState::Failed as i32);
    assert_eq!(unknown.error, "target not found");
    assert_eq!(unknown.created_unix_nanos, 3_000);
    assert_eq!(runs.get("cli-7").await.unwrap(), Some(unknown));
    let body = store.get(KIND, "cli-7").await.unwrap().unwrap().body;
    assert_eq!(body["state"].as_str(), Some("failed"));

    // Ids come from the network: a bad one is an error, not a panic.
    let err = runs
        .complete(result(&"x".repeat(MAX_KEY_BYTES + 1), ""), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }), "{err:?}");
    let err = runs.complete(result("", ""), 1).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }), "{err:?}");

    let (page, next) = runs.list(ListOptions::first(1)).await.unwrap();
    assert_eq!((page.len(), page[0].id.as_str()), (1, "cli-7"));
    let (page, next) = runs
        .list(ListOptions {
            limit: 5,
            continue_after: next,
        })
        .await
        .unwrap();
    assert_eq!((page.len(), page[0].id.as_str(), next), (1, "m-a", None));
}

#[tokio::test]
async fn retention_drops_the_oldest_finished_runs_never_running_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let runs = Measurements::open(store.clone(), 3).await.unwrap();
    runs.create(&running("r-old", 1), 1).await.unwrap();
    runs.create(&running("f-2", 2), 2).await.unwrap();
    for (id, created) in [("f-1", 10), ("f-3", 30), ("f-4", 40)] {
        runs.complete(result(id, ""), created).await.unwrap();
    }
    // f-2 was created at 2, so once finished it is the oldest of four finished runs.
    runs.complete(result("f-2", ""), 50).await.unwrap();
    let ids = |runs: Vec<pb::Measurement>| runs.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let (all, _) = runs.list(ListOptions::first(100)).await.unwrap();
    assert_eq!(ids(all), ["f-1", "f-3", "f-4", "r-old"]);
    runs.complete(result("f-5", ""), 60).await.unwrap();
    let (all, _) = runs.list(ListOptions::first(100)).await.unwrap();
    assert_eq!(ids(all), ["f-3", "f-4", "f-5", "r-old"]);
    drop(runs);

    // A coordinator started with a smaller limit applies it to what it finds.
    let runs = Measurements::open(store.clone(), 1).await.unwrap();
    let (all, _) = runs.list(ListOptions::first(100)).await.unwrap();
    assert_eq!(ids(all), ["f-5", "r-old"]);
    assert_eq!(
        runs.get("r-old").await.unwrap().unwrap().state,
        pb::MeasurementState::Running as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ids_stay_unique_across_restarts_and_coordinators() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut last = String::new();
    for _restart in 0..3 {
        let store = open(dir.path());
        let runs = Measurements::open(store, 10).await.unwrap();
        for _ in 0..5 {
            let id = runs.next_id(1).await.unwrap();
            assert!(
                id > last,
                "{id} after {last}: ids sort in the order handed out"
            );
            assert!(seen.insert(id.clone()), "{id} handed out twice");
            last = id;
        }
    }
    // Two coordinators on one store (a leader change) racing for blocks.
    let store = open(dir.path());
    let a = Arc::new(Measurements::open(store.clone(), 10).await.unwrap());
    let b = Arc::new(Measurements::open(store.clone(), 10).await.unwrap());
    let mut handles = Vec::new();
    for runs in [a.clone(), b.clone(), a, b] {
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..150 {
                ids.push(runs.next_id(1).await.unwrap());
            }
            ids
        }));
    }
    for h in handles {
        for id in h.await.unwrap() {
            assert!(seen.insert(id.clone()), "{id} handed out twice");
        }
    }
    assert_eq!(seen.len(), 15 + 600);
}
