//! `AutoscalerService` against a real standalone coordinator on loopback, driven by
//! `aistorctl` as a person types it: an Autoscaler applied from YAML for a
//! Deployment that does not exist is listed inactive and described with the
//! failed-get-scale condition, bad objects are refused naming the field (by
//! aistorctl before sending, and by the coordinator), `delete` removes it, and a
//! Watch sees the initial listing and then the deletion.

mod support;

use aistor_proto::v1 as pb;
use aistor_proto::v1::autoscaler_event::Kind;
use aistor_proto::v1::autoscaler_service_client::AutoscalerServiceClient;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::Coordinator;

async fn aistorctl(server: SocketAddr, args: &[&str]) -> Result<String, String> {
    let server = server.to_string();
    let argv: Vec<&str> = ["--server", &server]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    support::aistorctl(&argv).await
}

const AUTOSCALER: &str = "\
apiVersion: aistor.io/v1alpha1
kind: Autoscaler
metadata:
  namespace: demo
spec:
  workloadRef:
    kind: Deployment
    name: missing
  minReplicas: 1
  maxReplicas: 3
  metrics:
    cpuPercent: 60
    iops: 3000
";

fn cells(line: &str) -> Vec<&str> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

async fn client(grpc: SocketAddr) -> AutoscalerServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .expect("the coordinator answers");
    AutoscalerServiceClient::new(channel)
}

async fn next_event(stream: &mut tonic::Streaming<pb::AutoscalerEvent>) -> pb::AutoscalerEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("the stream is healthy")
        .expect("the stream is open")
}

#[tokio::test]
async fn autoscalers_are_applied_listed_described_watched_and_deleted() {
    let c = Coordinator::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };

    // Created from YAML; the coordinator names it.
    let file = write("autoscaler.yaml", AUTOSCALER);
    let out = aistorctl(c.grpc, &["apply", "-f", &file]).await.unwrap();
    let name = out
        .trim_end()
        .strip_prefix("autoscaler/")
        .and_then(|r| r.strip_suffix(" created"))
        .unwrap_or_else(|| panic!("{out:?}"))
        .to_owned();
    assert!(name.starts_with("autoscaler-"), "{name}");

    // Listed inactive: its Deployment does not exist.
    let table = aistorctl(c.grpc, &["get", "autoscalers", "-n", "demo"])
        .await
        .unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "STATUS",
            "AGE"
        ],
        "{table}"
    );
    let row = cells(lines[1]);
    assert_eq!(
        row[..7],
        [
            name.as_str(),
            "Deployment/missing",
            "cpu: <unknown>/60%, storage-iops: <unknown>/3000",
            "1",
            "3",
            "<unknown>",
            "inactive"
        ],
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
    for args in [["get", "asc", "-A"], ["get", "autoscaler", "-A"]] {
        let all = aistorctl(c.grpc, &args).await.unwrap();
        let row = cells(all.lines().nth(1).unwrap_or_default());
        assert_eq!(row[..2], ["demo", name.as_str()], "{all}");
    }
    assert_eq!(
        aistorctl(c.grpc, &["get", "autoscalers", "-n", "other"])
            .await
            .unwrap(),
        "No resources found.\n"
    );
    let json = aistorctl(c.grpc, &["get", "autoscalers", "-n", "demo", "-o", "json"])
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["items"][0]["kind"], "Autoscaler");
    assert_eq!(list["items"][0]["apiVersion"], "aistor.io/v1alpha1");
    assert_eq!(list["items"][0]["status"]["phase"], "Inactive");

    // `top autoscalers` draws the wide table (one frame for a script).
    let top = aistorctl(c.grpc, &["top", "autoscalers", "-A", "--frames", "1"])
        .await
        .unwrap();
    assert!(top.starts_with("NAMESPACE"), "{top}");
    assert!(top.contains(&name) && top.contains("inactive"), "{top}");

    // Described with the reason.
    let described = aistorctl(c.grpc, &["describe", "autoscaler", &name])
        .await
        .unwrap();
    assert!(
        described.contains("Reference:          Deployment/missing"),
        "{described}"
    );
    assert!(
        described.contains("Status:             inactive: "),
        "{described}"
    );
    assert!(
        described.lines().any(|l| {
            l.split_whitespace().take(3).collect::<Vec<_>>()
                == ["AbleToScale", "False", "FailedGetScale"]
        }),
        "{described}"
    );

    // Refused, naming the field: by aistorctl before anything is sent, and by the
    // coordinator for any other client.
    let mut grpc = client(c.grpc).await;
    let bad = [
        (
            AUTOSCALER.replace("minReplicas: 1", "minReplicas: 0"),
            "spec.minReplicas",
        ),
        (
            AUTOSCALER.replace("kind: Deployment", "kind: Job"),
            "spec.workloadRef.kind",
        ),
        (
            AUTOSCALER.replace("  metrics:\n    cpuPercent: 60\n    iops: 3000\n", ""),
            "spec.metrics",
        ),
    ];
    for (text, field) in bad {
        let file = write("bad.yaml", &text);
        let e = aistorctl(c.grpc, &["apply", "-f", &file])
            .await
            .expect_err("refused");
        assert!(e.contains(field), "{field}: {e}");
        let object = aistorctl_documents(&text);
        let e = grpc
            .create(pb::CreateAutoscalerRequest {
                object_json: serde_json::to_vec(&object).unwrap(),
            })
            .await
            .expect_err("refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let all = aistorctl(c.grpc, &["get", "autoscalers", "-A"])
        .await
        .unwrap();
    assert_eq!(all.lines().count(), 2, "nothing else was created: {all}");

    // A watch: the listing, its end, then the deletion.
    let mut watch = grpc
        .watch(pb::WatchAutoscalersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = next_event(&mut watch).await;
    assert_eq!(first.kind, Kind::Existing as i32);
    assert_eq!(first.name, name);
    let object: serde_json::Value = serde_json::from_slice(&first.object_json).unwrap();
    assert_eq!(object["metadata"]["namespace"], "demo");
    assert_eq!(next_event(&mut watch).await.kind, Kind::Synced as i32);

    let out = aistorctl(c.grpc, &["delete", "autoscaler", &name])
        .await
        .unwrap();
    assert_eq!(out, format!("autoscaler.aistor.io \"{name}\" deleted\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = next_event(&mut watch).await;
        // Its syncs may change its status before it goes.
        if e.kind == Kind::Deleted as i32 {
            assert_eq!(e.name, name);
            break;
        }
        assert_eq!(e.kind, Kind::Modified as i32, "{e:?}");
        assert!(Instant::now() < deadline, "no DELETED event");
    }

    // Gone.
    assert_eq!(
        aistorctl(c.grpc, &["get", "autoscalers", "-A"])
            .await
            .unwrap(),
        "No resources found.\n"
    );
    for args in [
        ["describe", "autoscaler", name.as_str()],
        ["delete", "autoscaler", name.as_str()],
    ] {
        let e = aistorctl(c.grpc, &args).await.expect_err("not found");
        assert!(e.contains("NotFound") && e.contains(&name), "{args:?}: {e}");
    }
    drop(watch);
    c.stop().await;
}

/// The one object of a YAML text, as aistorctl sends it.
fn aistorctl_documents(text: &str) -> serde_json::Value {
    aistor_coordinator::cli::workloads::documents("bad.yaml", text)
        .unwrap()
        .remove(0)
}

/// A Deployment and two Autoscalers of it, one fed as metrics-server feeds the HPA
/// (a 60 s window every 15 s), on a coordinator that keeps the default 30 s per pod:
/// that one says, in its status, that it cannot be fed (never a shorter window); an
/// object asking for a window out of bounds is refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_longer_than_the_coordinator_keeps_is_reported_not_shortened() {
    let c = Coordinator::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let deployment = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: localhost/web:1
          resources: {requests: {cpu: 100m}}
";
    aistorctl(c.grpc, &["apply", "-f", &write("web.yaml", deployment)])
        .await
        .unwrap();
    let autoscaler = |feed: &str| {
        format!(
            "\
apiVersion: aistor.io/v1alpha1
kind: Autoscaler
metadata: {{namespace: demo}}
spec:
  workloadRef: {{kind: Deployment, name: web}}
  minReplicas: 1
  maxReplicas: 3
  metrics: {{cpuPercent: 50}}
{feed}"
        )
    };
    let file = write(
        "fed.yaml",
        &autoscaler("  metricWindowSeconds: 60\n  metricResolutionSeconds: 15\n"),
    );
    let out = aistorctl(c.grpc, &["apply", "-f", &file]).await.unwrap();
    let name = out
        .trim_end()
        .strip_prefix("autoscaler/")
        .and_then(|r| r.strip_suffix(" created"))
        .unwrap_or_else(|| panic!("{out:?}"))
        .to_owned();
    let json = aistorctl(c.grpc, &["get", "autoscalers", "-n", "demo", "-o", "json"])
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    let object = &list["items"][0];
    assert_eq!(object["metadata"]["name"], name.as_str(), "{list}");
    assert_eq!(object["spec"]["metricWindowSeconds"], 60, "{object}");
    assert_eq!(object["spec"]["metricResolutionSeconds"], 15, "{object}");
    let cpu = &object["status"]["metrics"][0];
    assert_eq!(cpu["name"], "cpu", "{object}");
    assert!(cpu.get("current").is_none(), "{object}");
    assert_eq!(
        cpu["message"],
        "not observed: metricWindowSeconds 60 with metricResolutionSeconds 15 needs 75 s of \
         samples per pod; this coordinator keeps 30 s (its pod window, --pod-window)",
        "{object}"
    );
    let scaling_active = object["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ScalingActive")
        .cloned()
        .unwrap_or_default();
    assert_eq!(scaling_active["status"], "False", "{object}");
    assert!(
        scaling_active["message"]
            .as_str()
            .unwrap_or_default()
            .contains("needs 75 s of samples per pod"),
        "{object}"
    );

    let file = write("wide.yaml", &autoscaler("  metricWindowSeconds: 301\n"));
    let e = aistorctl(c.grpc, &["apply", "-f", &file])
        .await
        .expect_err("refused");
    assert!(
        e.contains("spec.metricWindowSeconds must be between 1 and 300, got 301"),
        "{e}"
    );
    c.stop().await;
}
