//! LIVE: a coordinator that dies at any step of a migration loses nothing. For each
//! phase, the real coordinator binary exits (test fault point, exit code 75) right
//! after storing its transition into that phase and before carrying out what the phase
//! starts; the next process on the same data directory resumes the migration, which
//! completes with exactly one pod left — the target, started once, from the checkpoint
//! — and the source never deleted before the target was Ready.
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
use support::process::{CoordinatorProcess, try_http_json};

const PHASES: [&str; 8] = [
    "measuring_source",
    "checkpointing",
    "freezing",
    "creating_target",
    "waiting_ready",
    "deleting_source",
    "measuring_target",
    "completed",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_after_any_transition_resumes_the_migration() {
    let Some(private) = local::containerd_or_skip("migration_crash").await else {
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("aistor-migcrash-")
        .tempdir()
        .unwrap();
    local::import_busybox(&private, work.path(), IMAGE).unwrap_or_else(|e| panic!("import: {e}"));
    std::fs::create_dir_all(work.path().join("checkpoints")).unwrap();
    for (n, phase) in PHASES.into_iter().enumerate() {
        let ns = format!("crash-{n}");
        let out = work.path().join(&ns);
        std::fs::create_dir_all(&out).unwrap();
        let data = work.path().join(format!("data-{n}"));
        let mut coordinator = CoordinatorProcess::start(
            None,
            &data,
            &work.path().join(format!("coordinator-{n}")),
            &[
                "--test-exit-after-migration-phase",
                phase,
                "--migration-measure-samples",
                "2",
                "--migration-measure-interval",
                "300ms",
                "--migration-settle",
                "1s",
            ],
        )
        .await;
        let server = coordinator.grpc;
        let node_agent = agent(server, &private.socket, work.path());
        let file = out.join("pod.yaml");
        std::fs::write(&file, support::migration::pod(&ns, &out)).unwrap();
        aistorctl(server, &["apply", "-f", &file.display().to_string()])
            .await
            .unwrap();
        until(
            server,
            &["get", "pods", "-n", &ns, "-o", "wide"],
            "tf running",
            |t| t.contains("trainer:Running,processor:Completed(0),monitor:Running"),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let body: serde_json::Value = serde_json::from_str(&request(&ns, NODE)).unwrap();
        let (status, started) =
            try_http_json(coordinator.http, "POST", "/api/v1/migrations", Some(&body))
                .await
                .unwrap();
        assert_eq!(status, 202, "{started}");
        let id = started["migration_id"].as_str().unwrap().to_owned();

        let exit = coordinator.exited(Duration::from_secs(60)).await;
        assert_eq!(
            exit.and_then(|s| s.code()),
            Some(75),
            "{phase}: the fault point did not fire:\n{}",
            coordinator.log()
        );
        coordinator.restart().await;
        let done = until_ended(
            coordinator.http,
            coordinator.grpc,
            &id,
            Duration::from_secs(90),
        )
        .await;
        assert_eq!(
            done["status"],
            "completed",
            "{phase}: {done:#}\n{}",
            coordinator.log()
        );
        let d = &done["details"];
        let stages: Vec<&str> = d["stage_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stage"].as_str().unwrap())
            .collect();
        assert!(stages.contains(&phase), "{phase}: {stages:?}");
        // The source was deleted only after the target was Ready.
        let started_at = |stage: &str| {
            d["stage_history"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["stage"] == stage)
                .map(|s| s["started_at"].as_str().unwrap().to_owned())
        };
        assert!(started_at("deleting_source") >= started_at("waiting_ready"));

        // One pod: the target, running, started once from the checkpoint.
        let new_pod = d["new_pod_name"].as_str().unwrap().to_owned();
        let table = until(
            coordinator.grpc,
            &["get", "pods", "-n", &ns, "-o", "wide"],
            "only the target, running",
            |t| {
                t.lines().count() == 2
                    && t.contains(&new_pod)
                    && t.contains("trainer:Running,monitor:Running")
            },
        )
        .await;
        assert!(!table.contains("tf "), "{phase}: {table}");
        let steps = starts(&out);
        assert_eq!(steps.len(), 2, "{phase}: started {steps:?}");
        assert!(steps[1] > 0, "{phase}: the target started cold: {steps:?}");
        let (_, listed) = try_http_json(coordinator.http, "GET", "/api/v1/migrations", None)
            .await
            .unwrap();
        assert_eq!(listed["count"], 1, "{phase}");
        eprintln!(
            "{phase}: resumed and completed; downtime {} s",
            d["downtime_seconds"]
        );

        aistorctl(server, &["delete", "pod", &new_pod, "-n", &ns])
            .await
            .unwrap();
        until(server, &["get", "pods", "-n", &ns], "the pod gone", |t| {
            t.starts_with("No resources found")
        })
        .await;
        node_agent.stop().await;
        coordinator.terminate().await;
    }
}
