//! LIVE, end to end on one machine: seed 002's migration API against a real coordinator
//! and a real agent running seed 003's pod shape on a private containerd. The pod's
//! completed container is not re-run, the trainer resumes from its staged checkpoint,
//! the source is frozen before the target starts and deleted once it is Ready, and the
//! figures are measured. The API's errors name what was wrong.
//!
//! Needs root, containerd, runc, ctr, tar and a static busybox. Without them it prints
//! "skipped: ..." and passes, unless `AISTOR_REQUIRE_TOOLS=1`, where it fails.

#[path = "../../agent/examples/support/containerd.rs"]
mod containerd;
#[path = "support/local_runtime.rs"]
mod local;
#[path = "../../agent/examples/support/oci_image.rs"]
mod oci_image;
mod support;

use local::{NODE, agent, aistorctl, until};
use std::time::Duration;
use support::migration::{IMAGE, request, starts, until_ended};
use support::{Coordinator, http_request};

fn pod_rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_002s_request_moves_seed_003s_pod_through_its_checkpoint() {
    let Some(private) = local::containerd_or_skip("migration_local").await else {
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("aistor-mig-")
        .tempdir()
        .unwrap();
    local::import_busybox(&private, work.path(), IMAGE).unwrap_or_else(|e| panic!("import: {e}"));
    std::fs::create_dir_all(work.path().join("checkpoints")).unwrap();
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let coordinator = Coordinator::start(|c| {
        c.migrations.settings.measure_samples = 3;
        c.migrations.settings.measure_interval_nanos = 300_000_000;
        c.migrations.settings.settle_nanos = 1_000_000_000;
    })
    .await;
    let (server, http) = (coordinator.grpc, coordinator.http);
    let node_agent = agent(server, &private.socket, work.path());

    let file = work.path().join("pod.yaml");
    std::fs::write(&file, support::migration::pod("ai", &out)).unwrap();
    aistorctl(server, &["apply", "-f", &file.display().to_string()])
        .await
        .unwrap();
    until(
        server,
        &["get", "pods", "-n", "ai", "-o", "wide"],
        "tf running with its processor completed",
        |t| t.contains("trainer:Running,processor:Completed(0),monitor:Running"),
    )
    .await;
    // Let the trainer count.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Errors first, each naming what was wrong, nothing started.
    let cases = [
        ("{not json", 400, "Invalid request format", ""),
        (
            r#"{"pod_name": "tf"}"#,
            400,
            "Validation failed",
            "required: pod_namespace, source_node, target_node",
        ),
        (
            r#"{"pod_name": "tf", "pod_namespace": "ai", "source_node": "local-1", "target_node": "local-1", "timeout": -1}"#,
            400,
            "Validation failed",
            "timeout -1 is negative",
        ),
        (
            r#"{"pod_name": "nope", "pod_namespace": "ai", "source_node": "local-1", "target_node": "local-1"}"#,
            404,
            "Failed to start migration",
            "pod ai/nope not found",
        ),
        (
            r#"{"pod_name": "tf", "pod_namespace": "ai", "source_node": "worker-9", "target_node": "local-1"}"#,
            409,
            "Failed to start migration",
            "pod ai/tf is on node local-1, not on worker-9",
        ),
        (
            r#"{"pod_name": "tf", "pod_namespace": "ai", "source_node": "local-1", "target_node": "worker-2"}"#,
            404,
            "Failed to start migration",
            "target node worker-2 is unknown",
        ),
    ];
    for (body, status, error, details) in cases {
        let (got, _, json) = http_request(http, "POST", "/api/v1/migrations", body).await;
        assert_eq!(got, status, "{body}: {json}");
        assert_eq!(json["error"], error, "{body}: {json}");
        assert!(
            json["details"].as_str().unwrap().contains(details),
            "{body}: {json}"
        );
    }

    // Seed 002's request, verbatim but for the names.
    let (status, head, started) =
        http_request(http, "POST", "/api/v1/migrations", &request("ai", NODE)).await;
    assert_eq!(status, 202, "{head}\n{started}");
    let id = started["migration_id"].as_str().unwrap().to_owned();
    assert!(
        id.len() == 18
            && id.starts_with("migration-")
            && id[10..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(started["status"], "pending");
    assert_eq!(started["message"], "Migration started");
    // One migration per pod at a time.
    let (again, _, busy) =
        http_request(http, "POST", "/api/v1/migrations", &request("ai", NODE)).await;
    assert_eq!(again, 409, "{busy}");
    assert!(
        busy["details"]
            .as_str()
            .unwrap()
            .contains(&format!("migration {id} is already moving pod ai/tf")),
        "{busy}"
    );

    let done = until_ended(http, server, &id, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    // The same through seed 003's route without `v1`.
    let (_, _, shown) = http_request(http, "GET", &format!("/api/migrations/{id}"), "").await;
    let d = &shown["details"];
    eprintln!("{shown:#}");
    assert_eq!(d["strategy"], "make-before-break");
    let states: Vec<(String, String, bool)> = d["container_states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["state"].as_str().unwrap().to_owned(),
                c["should_migrate"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("trainer".to_owned(), "running".to_owned(), true),
            ("processor".to_owned(), "completed".to_owned(), false),
            ("monitor".to_owned(), "running".to_owned(), true),
        ]
    );
    let stages: Vec<&str> = d["stage_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "pending",
            "measuring_source",
            "checkpointing",
            "freezing",
            "creating_target",
            "waiting_ready",
            "deleting_source",
            "measuring_target",
            "completed"
        ]
    );
    let new_pod = d["new_pod_name"].as_str().unwrap();
    assert_eq!(new_pod, format!("tf-{}", &id[10..]));
    assert!(
        d["checkpoint_path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/ai/tf/{id}-1")),
        "{d}"
    );
    assert!(d["checkpoint"]["bytes"].as_u64().unwrap() > 0, "{d}");
    let downtime = d["downtime_seconds"].as_f64().unwrap();
    assert!(downtime > 0.0 && downtime < 30.0, "{d}");
    for figures in ["original_resources", "optimized_resources"] {
        assert!(
            d[figures]["memory_usage"].as_u64().unwrap() > 0,
            "{figures}: {d}"
        );
        assert!(d[figures]["cpu_usage"].as_f64().is_some(), "{figures}: {d}");
    }
    assert!(d["error_message"].is_null());
    assert!(d["end_time"].is_string() && d["duration"].as_u64().unwrap() > 0);

    // Only the new pod is left, without the completed processor; its trainer went on
    // from the checkpointed step.
    let table = aistorctl(server, &["get", "pods", "-n", "ai", "-o", "wide"])
        .await
        .unwrap();
    let rows = pod_rows(&table);
    assert_eq!(rows.len(), 1, "{table}");
    assert_eq!(rows[0][0], new_pod, "{table}");
    let table = until(
        server,
        &["get", "pods", "-n", "ai", "-o", "wide"],
        "the new pod running",
        |t| t.contains("trainer:Running,monitor:Running"),
    )
    .await;
    assert!(!table.contains("processor"), "{table}");
    let steps = starts(&out);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0], 0);
    assert!(steps[1] > 5, "the trainer started from scratch: {steps:?}");

    let (_, _, status) =
        http_request(http, "GET", &format!("/api/v1/migrations/{id}/status"), "").await;
    assert_eq!(status["status"], "completed");
    assert!(status["duration_seconds"].as_f64().unwrap() > 0.0);
    let (_, _, totals) = http_request(http, "GET", "/api/v1/metrics", "").await;
    assert_eq!(totals["total_migrations"], 1, "{totals}");
    assert_eq!(totals["successful_migrations"], 1);
    assert_eq!(totals["failed_migrations"], 0);
    assert!(totals["average_duration"].as_u64().unwrap() > 0);
    assert!(totals["cpu_savings_percentage"].is_number(), "{totals}");
    assert!(totals["memory_savings_percentage"].is_number(), "{totals}");
    let (_, _, listed) = http_request(http, "GET", "/api/migrations", "").await;
    assert_eq!(listed["count"], 1);
    let (missing, _, json) =
        http_request(http, "GET", "/api/v1/migrations/migration-00000000", "").await;
    assert_eq!(missing, 404);
    assert_eq!(json["error"], "Migration not found");
    // Too late to cancel a finished migration.
    let (late, _, json) =
        http_request(http, "POST", &format!("/api/v1/migrations/{id}/cancel"), "").await;
    assert_eq!(late, 409, "{json}");

    // A migration cancelled before its point of no return rolls back: the pod stays
    // where it is, running, and nothing was started in its place.
    let (status, _, started) = http_request(
        http,
        "POST",
        "/api/v1/migrations",
        &request("ai", NODE).replace("\"tf\"", &format!("\"{new_pod}\"")),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let second = started["migration_id"].as_str().unwrap().to_owned();
    let (status, _, cancelling) = http_request(
        http,
        "POST",
        &format!("/api/v1/migrations/{second}/cancel"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{cancelling}");
    assert_eq!(cancelling["details"]["cancel_requested"], true);
    let done = until_ended(http, server, &second, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "cancelled", "{done:#}");
    let table = aistorctl(server, &["get", "pods", "-n", "ai", "-o", "wide"])
        .await
        .unwrap();
    let rows = pod_rows(&table);
    assert_eq!(rows.len(), 1, "{table}");
    assert_eq!(rows[0][0], new_pod, "{table}");
    assert_eq!(starts(&out).len(), 2, "nothing started again");
    let (_, _, totals) = http_request(http, "GET", "/api/v1/metrics", "").await;
    assert_eq!(totals["total_migrations"], 2, "{totals}");
    assert_eq!(totals["successful_migrations"], 1, "{totals}");

    // The same through gRPC and aistorctl: migrate in place and follow it stage by
    // stage, then list and describe it.
    let followed = aistorctl(
        server,
        &["migrate", &format!("ai/{new_pod}"), "--to", NODE, "--wait"],
    )
    .await
    .unwrap();
    eprintln!("{followed}");
    let third = followed
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("migration/"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the first line names the migration")
        .to_owned();
    for stage in ["checkpointing", "freezing", "waiting_ready", "completed"] {
        assert!(followed.contains(stage), "{stage}: {followed}");
    }
    assert!(
        followed.contains(&format!("migration/{third} completed: pod {new_pod}-")),
        "{followed}"
    );
    let listed = aistorctl(server, &["migrations", "-n", "ai"])
        .await
        .unwrap();
    let rows = pod_rows(&listed);
    assert_eq!(rows.len(), 3, "{listed}");
    assert_eq!(
        rows[0][..6],
        [third.as_str(), "ai", new_pod, NODE, NODE, "Completed"],
        "{listed}"
    );
    assert_eq!(rows[1][5], "Cancelled", "{listed}");
    let described = aistorctl(server, &["describe", "migration", &third])
        .await
        .unwrap();
    eprintln!("{described}");
    for expected in [
        "Status:         Completed (completed)",
        "Strategy:       MakeBeforeBreak",
        "  trainer",
        "Restore",
        "  Succeeded",
        "  TargetReady",
        "  Checkpointed",
    ] {
        assert!(described.contains(expected), "{expected}: {described}");
    }
    let json = aistorctl(server, &["migrations", "-o", "json"])
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["items"][0]["kind"], "Migration");
    assert_eq!(list["items"][0]["status"]["phase"], "Completed");
    // Operators see them in /metrics too.
    let (_, exposition) = support::http_text(http, "/metrics").await;
    for line in [
        "aistor_coordinator_migrations{status=\"completed\"} 2",
        "aistor_coordinator_migrations{status=\"cancelled\"} 1",
        "aistor_coordinator_migrations_finished_total{status=\"completed\"} 2",
        "aistor_coordinator_migration_downtime_seconds_count 2",
    ] {
        assert!(exposition.contains(line), "{line}:\n{exposition}");
    }
    let missing = aistorctl(server, &["describe", "migration", "migration-00000000"])
        .await
        .unwrap_err();
    assert!(missing.contains("NotFound"), "{missing}");

    node_agent.stop().await;
    coordinator.stop().await;
}
