//! The autoscaler REST API of seeds 000 and 004, verbatim, against a real standalone
//! coordinator over HTTP on loopback: both paths, both `workload_type` spellings,
//! validation errors naming their field, unknown fields warned about, an autoscaler
//! for a workload that does not exist yet kept inactive with the reason, and every
//! autoscaler still there after a restart.

mod support;

use serde_json::Value;
use support::seeds::{
    SEED_000_CREATE, SEED_004_CREATE, SEED_004_CURL, SEED_004_GPU_TRAINING, SEED_004_STORAGE_ONLY,
};
use support::{Coordinator, http_request};

fn id(body: &Value) -> String {
    body["autoscaling_id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_autoscaler_api_works_verbatim_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let c = Coordinator::start(|cfg| cfg.data_dir = dir.clone()).await;
    let http = c.http;

    let (status, _, created) =
        http_request(http, "POST", "/api/v1/autoscaling", SEED_004_CREATE).await;
    assert_eq!(status, 201, "{created}");
    let first = id(&created);
    assert!(
        first.len() == "autoscaler-".len() + 8
            && first.starts_with("autoscaler-")
            && first[11..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{first}"
    );
    // No such Deployment yet: created, inactive, and it says why.
    assert_eq!(created["status"], "inactive", "{created}");
    let message = created["message"].as_str().unwrap();
    assert!(
        message.contains("deployment \"default/nginx-deployment\" not found"),
        "{message}"
    );
    let d = &created["details"];
    assert_eq!(d["hpa_name"], first.as_str());
    assert_eq!(d["scale_up_count"], 0);
    assert_eq!(d["scale_down_count"], 0);
    assert_eq!(d["workload_type"], "Deployment");
    assert_eq!(
        (d["min_replicas"].as_i64(), d["max_replicas"].as_i64()),
        (Some(2), Some(10))
    );
    assert!(d["created_at"].as_str().unwrap().ends_with('Z'));
    // Nothing measured: no invented zero for any figure.
    for figure in [
        "current_cpu_percent",
        "current_gpu_percent",
        "current_storage_iops",
        "current_replicas",
    ] {
        assert!(d.get(figure).is_none(), "{figure} in {d}");
    }
    let able = d["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "AbleToScale")
        .expect("AbleToScale");
    assert_eq!(
        (able["status"].as_str(), able["reason"].as_str()),
        (Some("False"), Some("FailedGetScale"))
    );

    // The other seed bodies: the alias path, the lower-case type, a StatefulSet (which
    // the local runtime cannot scale: inactive, saying so), storage only.
    let mut ids = vec![first.clone()];
    for (path, body) in [
        ("/api/v1/autoscaling", SEED_004_CURL),
        ("/api/v1/autoscalers", SEED_000_CREATE),
        ("/api/v1/autoscalers", SEED_004_GPU_TRAINING),
        ("/api/v1/autoscaling", SEED_004_STORAGE_ONLY),
    ] {
        let (status, _, b) = http_request(http, "POST", path, body).await;
        assert_eq!(status, 201, "{path}: {b}");
        ids.push(id(&b));
    }
    let (_, _, seed000) =
        http_request(http, "GET", &format!("/api/v1/autoscalers/{}", ids[2]), "").await;
    assert_eq!(seed000["details"]["workload_type"], "Deployment");
    assert_eq!(seed000["details"]["scale_check_interval"], 30);
    let (_, _, sts) =
        http_request(http, "GET", &format!("/api/v1/autoscaling/{}", ids[3]), "").await;
    assert!(
        sts["message"]
            .as_str()
            .unwrap()
            .contains("runs Deployments only"),
        "{sts}"
    );

    // Both list paths show all five.
    for path in ["/api/v1/autoscaling", "/api/v1/autoscalers"] {
        let (status, _, list) = http_request(http, "GET", path, "").await;
        assert_eq!(status, 200);
        assert_eq!(list["count"], 5, "{list}");
        let listed: Vec<&str> = list["autoscalers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["autoscaling_id"].as_str().unwrap())
            .collect();
        for i in &ids {
            assert!(listed.contains(&i.as_str()), "{i} in {listed:?}");
        }
    }
    let (status, _, totals) = http_request(http, "GET", "/api/v1/autoscaling/metrics", "").await;
    assert_eq!(status, 200);
    assert_eq!(totals["total_autoscalers"], 5);
    assert_eq!(totals["active_autoscalers"], 0);
    assert_eq!(totals["total_scale_ups"], 0);
    assert_eq!(totals["average_cpu_utilization"], Value::Null, "{totals}");

    // Validation errors are 400 naming the field; malformed bodies too.
    let bad = SEED_000_CREATE.replace("\"min_replicas\": 1", "\"min_replicas\": 0");
    let (status, _, e) = http_request(http, "POST", "/api/v1/autoscalers", &bad).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "Validation failed");
    assert_eq!(e["details"], "min_replicas must be at least 1, got 0");
    let bad = SEED_000_CREATE.replace("\"max_replicas\": 5", "\"max_replicas\": -1");
    let (status, _, e) = http_request(http, "POST", "/api/v1/autoscaling", &bad).await;
    assert_eq!(status, 400);
    assert!(
        e["details"].as_str().unwrap().starts_with("max_replicas"),
        "{e}"
    );
    let none = r#"{"workload_name": "w", "workload_namespace": "default", "workload_type": "Deployment", "min_replicas": 1, "max_replicas": 2}"#;
    let (status, _, e) = http_request(http, "POST", "/api/v1/autoscaling", none).await;
    assert_eq!(status, 400);
    assert!(
        e["details"]
            .as_str()
            .unwrap()
            .starts_with("at least one target"),
        "{e}"
    );
    let (status, _, e) =
        http_request(http, "POST", "/api/v1/autoscaling", "{\"workload_name\": 3").await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "Invalid request format");
    let (status, _, e) = http_request(
        http,
        "POST",
        "/api/v1/autoscaling",
        &SEED_000_CREATE.replace("\"workload_type\": \"deployment\",", ""),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        e["details"].as_str().unwrap().contains("workload_type"),
        "{e}"
    );

    // Unknown fields are accepted and named in a Warning header.
    let extra = SEED_000_CREATE.replacen('{', "{\"priority\": \"high\",", 1);
    let (status, head, b) = http_request(http, "POST", "/api/v1/autoscalers", &extra).await;
    assert_eq!(status, 201, "{b}");
    assert!(
        head.to_ascii_lowercase()
            .contains("warning: 299 - \"unknown field \\\"priority\\\"\""),
        "{head}"
    );
    ids.push(id(&b));

    // Unknown ids are 404 on both paths and both verbs.
    for (method, path) in [
        ("GET", "/api/v1/autoscaling/autoscaler-00000000"),
        ("DELETE", "/api/v1/autoscalers/autoscaler-00000000"),
    ] {
        let (status, _, e) = http_request(http, method, path, "").await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(e["error"], "Autoscaler not found");
    }

    // A restart keeps every autoscaler, and its status.
    c.stop().await;
    let c = Coordinator::start(|cfg| cfg.data_dir = dir.clone()).await;
    let http = c.http;
    let (_, _, list) = http_request(http, "GET", "/api/v1/autoscaling", "").await;
    assert_eq!(list["count"], 6, "{list}");
    let (status, _, again) =
        http_request(http, "GET", &format!("/api/v1/autoscaling/{first}"), "").await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "inactive");
    assert_eq!(
        again["details"]["created_at"],
        created["details"]["created_at"]
    );

    // DELETE answers as the original did; the id is gone afterwards.
    let (status, _, gone) =
        http_request(http, "DELETE", &format!("/api/v1/autoscaling/{first}"), "").await;
    assert_eq!(status, 200);
    assert_eq!(gone["message"], "Autoscaler deleted successfully");
    assert_eq!(gone["autoscaler_id"], first.as_str());
    let (status, _, _) =
        http_request(http, "GET", &format!("/api/v1/autoscalers/{first}"), "").await;
    assert_eq!(status, 404);
    let (_, _, totals) = http_request(http, "GET", "/api/v1/autoscalers/metrics", "").await;
    assert_eq!(totals["total_autoscalers"], 5);
    c.stop().await;
}
