//! `aistorctl apply`, `get` and `delete`: the local runtime's Pods and Deployments
//! (standalone mode), with kubectl's look: `pod/train created`, `NAME READY STATUS
//! RESTARTS AGE`, `-o wide|json|yaml`.

use super::client::{self, Conn, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Server, request};
use super::error::CliError;
use super::table::Table;
use super::units;
use aistor_proto::v1 as pb;
use aistor_proto::v1::workload_service_client::WorkloadServiceClient;
use serde_json::Value;
use std::io::Write;

async fn connect(url: &Server) -> Result<WorkloadServiceClient<Conn>, CliError> {
    Ok(WorkloadServiceClient::new(client::channel(url).await?)
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES.max(8 << 20)))
}

/// The documents of a YAML (or JSON) file, as JSON objects; empty documents skipped.
pub fn documents(path: &str, text: &str) -> Result<Vec<Value>, CliError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (n, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| CliError::Input {
            path: path.to_owned(),
            cause: format!("document {}: {e}", n + 1),
        })?;
        match value {
            Value::Null => {}
            Value::Object(_) => out.push(value),
            // A `kind: List` is not expanded; neither is anything that is not an object.
            _ => {
                return Err(CliError::Input {
                    path: path.to_owned(),
                    cause: format!("document {} is not an object", n + 1),
                });
            }
        }
    }
    if out.is_empty() {
        return Err(CliError::Input {
            path: path.to_owned(),
            cause: "no objects in the file".to_owned(),
        });
    }
    Ok(out)
}

/// `aistorctl apply -f FILE` (`-` reads stdin): Pods and Deployments through
/// `WorkloadService.Apply` (all or none), then each `kind: Autoscaler` through
/// `AutoscalerService.Create` (the coordinator names it).
pub(crate) async fn apply(
    url: &Server,
    file: &str,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let text = read_input(file)?;
    let all = documents(file, &text)?;
    // Autoscalers are checked here first, so a refused one leaves nothing applied.
    for (n, o) in all.iter().enumerate() {
        if o["kind"] == crate::autoscalers::object::KIND {
            crate::autoscalers::object::parse(o).map_err(|e| CliError::Input {
                path: file.to_owned(),
                cause: format!("object {} (Autoscaler): {e}", n + 1),
            })?;
        }
    }
    // AIStorageConfigs go to placement; they are checked there before anything else
    // is applied.
    let (configs, all): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|o| o["kind"] == "AIStorageConfig");
    for config in &configs {
        crate::placement::config::parse_document(&config.to_string()).map_err(|e| {
            CliError::Input {
                path: file.to_owned(),
                cause: e.to_string(),
            }
        })?;
    }
    let (autoscalers, objects): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|o| o["kind"] == crate::autoscalers::object::KIND);
    // Workloads first, so an autoscaler in the same file finds its Deployment.
    if !objects.is_empty() {
        let objects_json = objects
            .iter()
            .map(|o| serde_json::to_vec(o).unwrap_or_default())
            .collect();
        let mut c = connect(url).await?;
        let applied = c
            .apply(request(pb::ApplyRequest { objects_json }))
            .await
            .map_err(|s| CliError::from_status(url, "Apply", &s))?
            .into_inner()
            .applied;
        for a in applied {
            writeln!(out, "{}/{} {}", a.kind, a.name, a.action)?;
        }
    }
    if !autoscalers.is_empty() {
        super::autoscalers::create(url, &autoscalers, out).await?;
    }
    for config in &configs {
        super::placement::apply_config(url, config, out).await?;
    }
    Ok(())
}

/// A file's text (`-`: stdin).
pub(crate) fn read_input(file: &str) -> Result<String, CliError> {
    if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).map_err(|e| CliError::Input {
            path: file.to_owned(),
            cause: e.to_string(),
        })
    }
}

/// `aistorctl delete pod|deployment NAME -n NS`.
pub(crate) async fn delete(
    url: &Server,
    kind: &str,
    name: &str,
    namespace: &str,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    c.delete(request(pb::DeleteWorkloadRequest {
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }))
    .await
    .map_err(|s| CliError::from_status(url, "Delete", &s))?;
    let singular = match kind {
        "pods" | "po" => "pod",
        "deployments" | "deploy" => "deployment",
        other => other,
    };
    writeln!(out, "{singular} \"{name}\" deleted")?;
    Ok(())
}

/// How `get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetFormat {
    Table,
    Wide,
    Json,
    Yaml,
}

/// `aistorctl get pods|deployments [-n NS | -A]`.
pub(crate) async fn get(
    url: &Server,
    kind: &str,
    namespace: &str,
    format: GetFormat,
    now_unix_nanos: u64,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    let items = c
        .list(request(pb::ListWorkloadsRequest {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
        }))
        .await
        .map_err(|s| CliError::from_status(url, "List", &s))?
        .into_inner()
        .items;
    let text = match kind {
        "checkpoints" => render_checkpoints(&items, namespace.is_empty(), format, now_unix_nanos)?,
        "pods" => render(&items, true, namespace.is_empty(), format, now_unix_nanos)?,
        _ => render(&items, false, namespace.is_empty(), format, now_unix_nanos)?,
    };
    write!(out, "{text}")?;
    Ok(())
}

/// `aistorctl logs [NS/]POD [-c C] [--tail N] [-p]`.
pub(crate) async fn logs(
    url: &Server,
    namespace: &str,
    name: &str,
    container: &str,
    tail_lines: u32,
    previous: bool,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    let r = c
        .logs(request(pb::LogsRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            container: container.to_owned(),
            tail_lines,
            previous,
        }))
        .await
        .map_err(|s| CliError::from_status(url, "Logs", &s))?
        .into_inner();
    out.write_all(&r.data)?;
    Ok(())
}

/// `aistorctl checkpoint POD`: asks for it, then (with `wait`) follows it until it is
/// staged or failed.
pub(crate) async fn checkpoint(
    url: &Server,
    name: &str,
    namespace: &str,
    containers: Vec<String>,
    wait: bool,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    let r = c
        .checkpoint(request(pb::CheckpointRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            containers,
        }))
        .await
        .map_err(|s| CliError::from_status(url, "Checkpoint", &s))?
        .into_inner();
    writeln!(
        out,
        "checkpoint/{} requested on node {}",
        r.checkpoint_id, r.node
    )?;
    if !wait {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let items = c
            .list(request(pb::ListWorkloadsRequest {
                kind: "checkpoints".into(),
                namespace: namespace.to_owned(),
            }))
            .await
            .map_err(|s| CliError::from_status(url, "List", &s))?
            .into_inner()
            .items;
        let found = items
            .iter()
            .filter_map(|w| serde_json::from_slice::<Value>(&w.object_json).ok())
            .find(|o| o["metadata"]["name"] == r.checkpoint_id.as_str());
        if let Some(o) = found {
            let state = text(&o["status"]["state"]);
            if state == "staged" || state == "failed" {
                for c in o["status"]["containers"].as_array().into_iter().flatten() {
                    let line = match c["error"].as_str() {
                        Some(e) => format!("  {}: failed: {e}", text(&c["name"])),
                        None => format!(
                            "  {}: {} files, {} in {:.2} s ({}), hook {}",
                            text(&c["name"]),
                            c["files"].as_u64().unwrap_or(0),
                            units::bytes_iec(c["bytes"].as_u64().unwrap_or(0)),
                            c["durationSeconds"].as_f64().unwrap_or(0.0),
                            units::bytes_per_second(c["bytesPerSecond"].as_f64().unwrap_or(0.0)),
                            text(&c["hook"])
                        ),
                    };
                    writeln!(out, "{line}")?;
                }
                if state == "failed" {
                    let why = o["status"]["error"]
                        .as_str()
                        .unwrap_or("a container failed");
                    return Err(CliError::Rpc {
                        url: url.to_string(),
                        call: "Checkpoint",
                        code: tonic::Code::Aborted,
                        message: format!("checkpoint {} failed: {why}", r.checkpoint_id),
                    });
                }
                writeln!(out, "checkpoint/{} staged", r.checkpoint_id)?;
                return Ok(());
            }
        }
        if std::time::Instant::now() > deadline {
            writeln!(
                out,
                "checkpoint/{} still staging after 10 minutes; see `aistorctl get checkpoints`",
                r.checkpoint_id
            )?;
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Checkpoints: `NAME POD STATE FILES SIZE THROUGHPUT AGE` (wide: node, containers).
pub fn render_checkpoints(
    items: &[pb::Workload],
    all_namespaces: bool,
    format: GetFormat,
    now_unix_nanos: u64,
) -> Result<String, CliError> {
    if matches!(format, GetFormat::Json | GetFormat::Yaml) || items.is_empty() {
        return render(items, false, all_namespaces, format, now_unix_nanos);
    }
    let wide = format == GetFormat::Wide;
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "POD", "STATE", "FILES", "SIZE", "THROUGHPUT", "AGE"]);
    if wide {
        header.extend(["NODE", "CONTAINERS"]);
    }
    let mut table = Table::new(header);
    for w in items {
        let o: Value = serde_json::from_slice(&w.object_json).unwrap_or(Value::Null);
        let containers = o["status"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let files: u64 = containers.iter().filter_map(|c| c["files"].as_u64()).sum();
        let bytes: u64 = containers.iter().filter_map(|c| c["bytes"].as_u64()).sum();
        let seconds: f64 = containers
            .iter()
            .filter_map(|c| c["durationSeconds"].as_f64())
            .sum();
        let mut row = Vec::new();
        if all_namespaces {
            row.push(text(&o["metadata"]["namespace"]));
        }
        row.extend([
            text(&o["metadata"]["name"]),
            text(&o["spec"]["pod"]),
            text(&o["status"]["state"]),
            files.to_string(),
            units::bytes_iec(bytes),
            if seconds > 0.0 {
                units::bytes_per_second(bytes as f64 / seconds)
            } else {
                "-".to_owned()
            },
            created_age(&o, now_unix_nanos),
        ]);
        if wide {
            row.push(text(&o["spec"]["node"]));
            row.push(
                containers
                    .iter()
                    .map(|c| format!("{}:{}", text(&c["name"]), text(&c["state"])))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        table.push(row);
    }
    Ok(table.render())
}

/// Renders a list; pure so tests read it.
pub fn render(
    items: &[pb::Workload],
    pods: bool,
    all_namespaces: bool,
    format: GetFormat,
    now_unix_nanos: u64,
) -> Result<String, CliError> {
    let objects: Vec<Value> = items
        .iter()
        .map(|w| serde_json::from_slice(&w.object_json).unwrap_or(Value::Null))
        .collect();
    match format {
        GetFormat::Json | GetFormat::Yaml => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            return Ok(if format == GetFormat::Json {
                serde_json::to_string_pretty(&list)? + "\n"
            } else {
                serde_yaml_ng::to_string(&list)?
            });
        }
        GetFormat::Table | GetFormat::Wide => {}
    }
    if items.is_empty() {
        return Ok("No resources found.\n".to_owned());
    }
    let wide = format == GetFormat::Wide;
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    if pods {
        header.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        if wide {
            header.extend(["CPU", "MEMORY", "NODE", "CONTAINERS"]);
        }
    } else {
        header.extend(["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
        if wide {
            header.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
        }
    }
    let mut table = Table::new(header);
    for (w, o) in items.iter().zip(&objects) {
        let mut row = Vec::new();
        if all_namespaces {
            row.push(text(&o["metadata"]["namespace"]));
        }
        row.push(text(&o["metadata"]["name"]));
        let age = created_age(o, now_unix_nanos);
        if pods {
            let statuses = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: u64 = statuses
                .iter()
                .filter_map(|c| c["restartCount"].as_u64())
                .sum();
            row.extend([
                format!("{ready}/{total}"),
                pod_status_word(o),
                restarts.to_string(),
                age,
            ]);
            if wide {
                row.push(
                    w.cpu_millicores
                        .map_or_else(|| "<unknown>".to_owned(), units::cpu),
                );
                row.push(
                    w.memory_working_set_bytes
                        .map_or_else(|| "<unknown>".to_owned(), units::bytes_iec),
                );
                row.push(if w.node.is_empty() {
                    "<none>".to_owned()
                } else {
                    w.node.clone()
                });
                row.push(container_states(&statuses));
            }
        } else {
            let s = &o["status"];
            let want = o["spec"]["replicas"].as_u64().unwrap_or(1);
            row.extend([
                format!("{}/{want}", s["readyReplicas"].as_u64().unwrap_or(0)),
                s["updatedReplicas"].as_u64().unwrap_or(0).to_string(),
                s["availableReplicas"].as_u64().unwrap_or(0).to_string(),
                age,
            ]);
            if wide {
                let containers = o["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                row.push(join(&containers, "name"));
                row.push(join(&containers, "image"));
                let selector = o["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                row.push(selector);
            }
        }
        table.push(row);
    }
    Ok(table.render())
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

fn join(items: &[Value], field: &str) -> String {
    items
        .iter()
        .map(|c| text(&c[field]))
        .collect::<Vec<_>>()
        .join(",")
}

fn created_age(o: &Value, now_unix_nanos: u64) -> String {
    o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_rfc3339)
        .map_or_else(
            || "<unknown>".to_owned(),
            |t| units::age(now_unix_nanos.saturating_sub(t)),
        )
}

/// Seconds-precision RFC 3339 UTC ("2026-11-30T06:00:00Z") to Unix nanoseconds.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days since 1970-01-01 (Howard Hinnant's algorithm, inverse of the writer's).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs).ok().map(|s| s * 1_000_000_000)
}

/// kubectl's STATUS: the first container's waiting or terminated reason when there is
/// one, else the phase.
fn pod_status_word(o: &Value) -> String {
    if o["status"]["reason"] == "Terminating" {
        return "Terminating".to_owned();
    }
    let statuses = o["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &statuses {
        if let Some(reason) = c["state"]["waiting"]["reason"].as_str()
            && reason != "ContainerCreating"
        {
            return reason.to_owned();
        }
    }
    let running = statuses.iter().any(|c| c["state"]["running"].is_object());
    if !running {
        for c in &statuses {
            if let Some(reason) = c["state"]["terminated"]["reason"].as_str() {
                return reason.to_owned();
            }
        }
        if statuses
            .iter()
            .any(|c| c["state"]["waiting"]["reason"] == "ContainerCreating")
        {
            return "ContainerCreating".to_owned();
        }
    }
    o["status"]["phase"]
        .as_str()
        .unwrap_or("Unknown")
        .to_owned()
}

/// Each container's state in one cell: `name:Running`, `prep:Completed(0)`,
/// `flaky:CrashLoopBackOff`.
fn container_states(statuses: &[Value]) -> String {
    statuses
        .iter()
        .map(|c| {
            let name = text(&c["name"]);
            let s = &c["state"];
            let state = if s["running"].is_object() {
                "Running".to_owned()
            } else if let Some(t) = s["terminated"].as_object() {
                format!(
                    "{}({})",
                    t.get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("Terminated"),
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(-1)
                )
            } else {
                s["waiting"]["reason"]
                    .as_str()
                    .unwrap_or("Waiting")
                    .to_owned()
            };
            format!("{name}:{state}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_documents_become_objects() {
        let docs = documents(
            "f.yaml",
            "---\napiVersion: v1\nkind: Pod\n---\n\n---\nkind: Deployment\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "Deployment");
        let e = documents("f.yaml", "kind: [").unwrap_err().to_string();
        assert!(e.starts_with("f.yaml: document 1:"), "{e}");
        let e = documents("f.yaml", "- a\n").unwrap_err().to_string();
        assert_eq!(e, "f.yaml: document 1 is not an object");
        let e = documents("f.yaml", "").unwrap_err().to_string();
        assert_eq!(e, "f.yaml: no objects in the file");
        assert_eq!(documents("f.json", r#"{"kind":"Pod"}"#).unwrap().len(), 1);
    }

    #[test]
    fn timestamps_round_trip() {
        for t in [0u64, 1_700_000_000, 951_782_400, 1_798_675_199] {
            let s = crate::workloads::rfc3339(t * 1_000_000_000);
            assert_eq!(parse_rfc3339(&s), Some(t * 1_000_000_000), "{s}");
        }
        assert_eq!(parse_rfc3339("2026-11-30 06:00:00"), None);
        assert_eq!(parse_rfc3339(""), None);
    }

    fn pod(name: &str, statuses: Value, phase: &str) -> pb::Workload {
        let o = json!({"metadata": {"name": name, "namespace": "ml", "creationTimestamp": "2026-11-30T06:00:00Z"},
                       "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                       "status": {"phase": phase, "containerStatuses": statuses}});
        pb::Workload {
            object_json: serde_json::to_vec(&o).unwrap(),
            node: "n1".into(),
            cpu_millicores: Some(250.0),
            memory_working_set_bytes: Some(64 << 20),
            usage_missing: String::new(),
        }
    }

    #[test]
    fn pod_tables_read_like_kubectl() {
        let now = parse_rfc3339("2026-11-30T06:02:00Z").unwrap();
        let items = vec![
            pod(
                "train",
                json!([
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ]),
                "Running",
            ),
            pod(
                "done",
                json!([
                    {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                    {"name": "b", "ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}
                ]),
                "Succeeded",
            ),
            pod("new", json!([]), "Pending"),
        ];
        let t = render(&items, true, false, GetFormat::Table, now).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["train", "1/2", "CrashLoopBackOff", "2", "2m"]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["done", "0/2", "Completed", "0", "2m"]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["new", "0/2", "Pending", "0", "2m"]
        );
        let w = render(&items[..1], true, true, GetFormat::Wide, now).unwrap();
        let row: Vec<&str> = w.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row[0], "ml");
        assert_eq!(
            &row[6..],
            ["250m", "64Mi", "n1", "a:Running,b:CrashLoopBackOff"]
        );
        let j = render(&items[..1], true, false, GetFormat::Json, now).unwrap();
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["metadata"]["name"], "train");
        let y = render(&items[..1], true, false, GetFormat::Yaml, now).unwrap();
        assert!(y.contains("kind: List") && y.contains("name: train"), "{y}");
        assert_eq!(
            render(&[], true, false, GetFormat::Table, now).unwrap(),
            "No resources found.\n"
        );
    }

    #[test]
    fn deployment_tables_read_like_kubectl() {
        let o = json!({"metadata": {"name": "web", "namespace": "ml", "creationTimestamp": "2026-11-30T05:00:00Z"},
                       "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                                "template": {"spec": {"containers": [{"name": "c", "image": "img:1"}]}}},
                       "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let items = vec![pb::Workload {
            object_json: serde_json::to_vec(&o).unwrap(),
            ..Default::default()
        }];
        let now = parse_rfc3339("2026-11-30T06:00:00Z").unwrap();
        let t = render(&items, false, false, GetFormat::Wide, now).unwrap();
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            lines[0],
            [
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ]
        );
        assert_eq!(
            lines[1],
            ["web", "2/3", "3", "2", "60m", "c", "img:1", "app=web"]
        );
    }
}
