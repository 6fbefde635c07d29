//! `aistorctl get|describe|delete autoscaler` and the Autoscalers of `apply -f`,
//! through the coordinator's `AutoscalerService`, with kubectl's look for a
//! HorizontalPodAutoscaler: `NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS ...`,
//! `describe` with its metrics, conditions and decisions.

use super::client::{self, Conn, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Server, request};
use super::error::CliError;
use super::table::Table;
use super::units;
use super::workloads::GetFormat;
use crate::autoscalers::spec::{all_metrics, time_text};
use crate::k8s::crd::{Autoscaler, MetricStatus, ScalingRules};
use aistor_proto::v1 as pb;
use aistor_proto::v1::autoscaler_service_client::AutoscalerServiceClient;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Write;

/// What a metric's figure reads as when it has none.
pub const UNKNOWN: &str = "<unknown>";

async fn connect(url: &Server) -> Result<AutoscalerServiceClient<Conn>, CliError> {
    Ok(AutoscalerServiceClient::new(client::channel(url).await?)
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES))
}

/// The object the coordinator sent, typed.
fn decode(url: &str, call: &'static str, json: &[u8]) -> Result<Autoscaler, CliError> {
    serde_json::from_slice(json).map_err(|e| CliError::Rpc {
        url: url.to_owned(),
        call,
        code: tonic::Code::Internal,
        message: format!("the coordinator sent an Autoscaler aistorctl cannot read: {e}"),
    })
}

/// Creates each object (from `apply -f`): `autoscaler/<name> created`.
pub(crate) async fn create(
    url: &Server,
    objects: &[Value],
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    for o in objects {
        let created = c
            .create(request(pb::CreateAutoscalerRequest {
                object_json: serde_json::to_vec(o)?,
            }))
            .await
            .map_err(|s| CliError::from_status(url, "Create", &s))?
            .into_inner();
        let a = decode(url, "Create", &created.object_json)?;
        writeln!(
            out,
            "autoscaler/{} created",
            a.metadata.name.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

/// `aistorctl delete autoscaler NAME`.
pub(crate) async fn delete(
    url: &Server,
    name: &str,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    c.delete(request(pb::DeleteAutoscalerRequest {
        name: name.to_owned(),
    }))
    .await
    .map_err(|s| CliError::from_status(url, "Delete", &s))?;
    writeln!(out, "autoscaler.aistor.io \"{name}\" deleted")?;
    Ok(())
}

/// Every autoscaler of `namespace` (empty: all), as the coordinator sent them.
async fn list_raw(url: &Server, namespace: &str) -> Result<Vec<pb::Autoscaler>, CliError> {
    let mut c = connect(url).await?;
    Ok(c.list(request(pb::ListAutoscalersRequest {
        namespace: namespace.to_owned(),
    }))
    .await
    .map_err(|s| CliError::from_status(url, "List", &s))?
    .into_inner()
    .items)
}

/// Every autoscaler of `namespace` (empty: all), typed.
pub(crate) async fn list(url: &Server, namespace: &str) -> Result<Vec<Autoscaler>, CliError> {
    list_raw(url, namespace)
        .await?
        .iter()
        .map(|i| decode(url, "List", &i.object_json))
        .collect()
}

/// `aistorctl get autoscalers [-n NS | -A] [-o wide|json|yaml]`.
pub(crate) async fn get(
    url: &Server,
    namespace: &str,
    format: GetFormat,
    now_unix_nanos: u64,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let items = list_raw(url, namespace).await?;
    let text = match format {
        GetFormat::Json | GetFormat::Yaml => {
            let objects: Vec<Value> = items
                .iter()
                .map(|i| serde_json::from_slice(&i.object_json).unwrap_or(Value::Null))
                .collect();
            render_documents(objects, format)?
        }
        GetFormat::Table | GetFormat::Wide => {
            let objects = items
                .iter()
                .map(|i| decode(url, "List", &i.object_json))
                .collect::<Result<Vec<_>, _>>()?;
            render_table(
                &objects,
                namespace.is_empty(),
                format == GetFormat::Wide,
                now_unix_nanos,
            )
        }
    };
    write!(out, "{text}")?;
    Ok(())
}

/// `aistorctl describe autoscaler NAME`.
pub(crate) async fn describe(
    url: &Server,
    name: &str,
    now_unix_nanos: u64,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    let found = c
        .get(request(pb::GetAutoscalerRequest {
            name: name.to_owned(),
        }))
        .await
        .map_err(|s| CliError::from_status(url, "Get", &s))?
        .into_inner();
    let a = decode(url, "Get", &found.object_json)?;
    write!(out, "{}", render_describe(&a, now_unix_nanos))?;
    Ok(())
}

/// `-o json|yaml`: a `List` of the objects as the coordinator sent them.
pub fn render_documents(objects: Vec<Value>, format: GetFormat) -> Result<String, CliError> {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    Ok(if format == GetFormat::Yaml {
        serde_yaml_ng::to_string(&list)?
    } else {
        serde_json::to_string_pretty(&list)? + "\n"
    })
}

fn unix_nanos(t: &Time) -> u64 {
    u64::try_from(t.0.as_nanosecond()).unwrap_or(0)
}

fn age(t: Option<&Time>, now_unix_nanos: u64) -> String {
    t.map_or_else(
        || UNKNOWN.to_owned(),
        |t| units::age(now_unix_nanos.saturating_sub(unix_nanos(t))),
    )
}

/// `active`, `inactive`, `failed` or `pending`, as the REST API says it.
fn phase(a: &Autoscaler) -> String {
    a.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
        .to_lowercase()
}

/// A figure without needless decimals: `75`, `12.5`, `0.25`.
fn number(v: f64) -> String {
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A figure in its unit: `75%`, `500MB/s`, `250m`, `3000`.
fn figure(unit: &str, v: f64) -> String {
    format!("{}{unit}", number(v))
}

/// Each metric of the spec (in the order the status shows them) with its target,
/// its unit and the last decision's figures for it, when it had any.
fn metrics(a: &Autoscaler) -> Vec<(&'static str, f64, &'static str, Option<&MetricStatus>)> {
    let status = a
        .status
        .as_ref()
        .map(|s| s.metrics.as_slice())
        .unwrap_or(&[]);
    all_metrics(&a.spec)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let name = m.spec.kind.name();
            // The status lists the metrics in the same order.
            let s = status.get(i).filter(|s| s.name == name);
            (name, m.target, m.unit, s)
        })
        .collect()
}

fn current(m: Option<&MetricStatus>, unit: &str) -> String {
    m.and_then(|m| m.current)
        .map_or_else(|| UNKNOWN.to_owned(), |v| figure(unit, v))
}

/// `cpu: 75%/70%, storage-iops: <unknown>/3000`.
pub fn targets(a: &Autoscaler) -> String {
    metrics(a)
        .into_iter()
        .map(|(name, target, unit, m)| {
            format!("{name}: {}/{}", current(m, unit), figure(unit, target))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The list as kubectl prints HorizontalPodAutoscalers; `wide` adds the desired
/// replicas, the scale counts, the last scale and the status message.
pub fn render_table(
    items: &[Autoscaler],
    all_namespaces: bool,
    wide: bool,
    now_unix_nanos: u64,
) -> String {
    if items.is_empty() {
        return "No resources found.\n".to_owned();
    }
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "NAME",
        "REFERENCE",
        "TARGETS",
        "MINPODS",
        "MAXPODS",
        "REPLICAS",
        "STATUS",
        "AGE",
    ]);
    if wide {
        header.extend(["DESIRED", "UPS", "DOWNS", "LAST SCALE", "MESSAGE"]);
    }
    let mut table = Table::new(header);
    for a in items {
        let status = a.status.clone().unwrap_or_default();
        let mut row = Vec::new();
        if all_namespaces {
            row.push(a.metadata.namespace.clone().unwrap_or_default());
        }
        row.extend([
            a.metadata.name.clone().unwrap_or_default(),
            format!("{}/{}", a.spec.workload_ref.kind, a.spec.workload_ref.name),
            targets(a),
            a.spec.min_replicas.to_string(),
            a.spec.max_replicas.to_string(),
            status
                .current_replicas
                .map_or_else(|| UNKNOWN.to_owned(), |r| r.to_string()),
            phase(a),
            age(a.metadata.creation_timestamp.as_ref(), now_unix_nanos),
        ]);
        if wide {
            row.extend([
                status
                    .desired_replicas
                    .map_or_else(|| UNKNOWN.to_owned(), |r| r.to_string()),
                status.scale_up_count.to_string(),
                status.scale_down_count.to_string(),
                status
                    .last_scale_time
                    .as_ref()
                    .map_or_else(|| "<none>".to_owned(), |t| age(Some(t), now_unix_nanos)),
                if status.message.is_empty() {
                    "<none>".to_owned()
                } else {
                    status.message.clone()
                },
            ]);
        }
        table.push(row);
    }
    table.render()
}

/// `2026-11-30T06:00:00Z (2m ago)`, or `<none>`.
fn when(t: Option<&Time>, now_unix_nanos: u64) -> String {
    t.map_or_else(
        || "<none>".to_owned(),
        |t| format!("{} ({} ago)", time_text(t), age(Some(t), now_unix_nanos)),
    )
}

fn behavior(r: Option<&ScalingRules>) -> String {
    let Some(r) = r else {
        return "<default>".to_owned();
    };
    let mut parts = Vec::new();
    if let Some(w) = r.stabilization_window_seconds {
        parts.push(format!("stabilization window {w}s"));
    }
    if let Some(p) = r.select_policy {
        parts.push(format!("select {p:?}"));
    }
    for p in &r.policies {
        parts.push(format!(
            "{:?} {} per {}s",
            p.type_, p.value, p.period_seconds
        ));
    }
    if parts.is_empty() {
        "<default>".to_owned()
    } else {
        parts.join("; ")
    }
}

/// A table indented under a `describe` heading, with kubectl's dashed rule.
fn indented_table(header: Vec<&'static str>, rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new(header.clone());
    table.push(header.iter().map(|h| "-".repeat(h.len())).collect());
    for row in rows {
        table.push(row);
    }
    table.render().lines().map(|l| format!("  {l}\n")).collect()
}

/// Where `describe` starts its values.
const VALUE_COLUMN: usize = 20;

/// `Label:` padded to the value column (a longer label keeps one space).
fn field(out: &mut String, label: &str, value: &str) {
    let line = format!(
        "{:<width$} {value}",
        format!("{label}:"),
        width = VALUE_COLUMN - 1
    );
    out.push_str(line.trim_end());
    out.push('\n');
}

/// kubectl-describe's look: the object, its metrics with their pods, the
/// conditions and the recent decisions.
pub fn render_describe(a: &Autoscaler, now_unix_nanos: u64) -> String {
    let status = a.status.clone().unwrap_or_default();
    let mut out = String::new();
    field(&mut out, "Name", a.metadata.name.as_deref().unwrap_or(""));
    field(
        &mut out,
        "Namespace",
        a.metadata.namespace.as_deref().unwrap_or(""),
    );
    field(
        &mut out,
        "CreationTimestamp",
        &when(a.metadata.creation_timestamp.as_ref(), now_unix_nanos),
    );
    let target = &a.spec.workload_ref;
    field(
        &mut out,
        "Reference",
        &format!("{}/{}", target.kind, target.name),
    );
    field(&mut out, "Min replicas", &a.spec.min_replicas.to_string());
    field(&mut out, "Max replicas", &a.spec.max_replicas.to_string());
    field(
        &mut out,
        "Sync period",
        &format!(
            "{}s",
            a.spec
                .sync_period_seconds
                .unwrap_or(crate::autoscalers::request::DEFAULT_SYNC_SECONDS)
        ),
    );
    field(&mut out, "Scale up", &behavior(a.spec.scale_up.as_ref()));
    field(
        &mut out,
        "Scale down",
        &behavior(a.spec.scale_down.as_ref()),
    );
    let phase = phase(a);
    field(
        &mut out,
        "Status",
        &if status.message.is_empty() {
            phase
        } else {
            format!("{phase}: {}", status.message)
        },
    );
    let replicas = |r: Option<i32>| r.map_or_else(|| UNKNOWN.to_owned(), |r| r.to_string());
    field(
        &mut out,
        &format!("{} pods", target.kind),
        &format!(
            "{} current / {} desired",
            replicas(status.current_replicas),
            replicas(status.desired_replicas)
        ),
    );
    field(
        &mut out,
        "Last sync",
        &when(status.last_sync_time.as_ref(), now_unix_nanos),
    );
    field(&mut out, "Metrics", "( current / target )");
    for (name, target, unit, m) in metrics(a) {
        let pods = m.map_or_else(
            || "not measured yet".to_owned(),
            |m| {
                let mut s = format!(
                    "pods: {} ready, {} unready, {} missing",
                    m.ready_pods, m.unready_pods, m.missing_pods
                );
                if let Some(p) = m.proposed_replicas {
                    let _ = write!(s, "; proposes {p}");
                }
                s
            },
        );
        field(
            &mut out,
            &format!("  {name}"),
            &format!("{} / {}  ({pods})", current(m, unit), figure(unit, target)),
        );
        if let Some(m) = m.filter(|m| !m.message.is_empty()) {
            let _ = writeln!(out, "{:VALUE_COLUMN$}{}", "", m.message);
        }
    }
    if status.conditions.is_empty() {
        field(&mut out, "Conditions", "<none>");
    } else {
        field(&mut out, "Conditions", "");
        out.push_str(&indented_table(
            vec!["Type", "Status", "Reason", "Message"],
            status
                .conditions
                .iter()
                .map(|c| {
                    vec![
                        c.type_.clone(),
                        c.status.clone(),
                        c.reason.clone(),
                        c.message.clone(),
                    ]
                })
                .collect(),
        ));
    }
    if status.last_decisions.is_empty() {
        field(&mut out, "Last decisions", "<none>");
    } else {
        field(&mut out, "Last decisions", "");
        out.push_str(&indented_table(
            vec!["Time", "Replicas", "Limited by", "Message"],
            status
                .last_decisions
                .iter()
                .map(|d| {
                    vec![
                        time_text(&d.time),
                        format!("{} -> {}", d.current_replicas, d.desired_replicas),
                        if d.limited_by.is_empty() {
                            "<none>".to_owned()
                        } else {
                            d.limited_by.clone()
                        },
                        d.message.clone(),
                    ]
                })
                .collect(),
        ));
    }
    field(&mut out, "Scale ups", &status.scale_up_count.to_string());
    field(
        &mut out,
        "Scale downs",
        &status.scale_down_count.to_string(),
    );
    field(
        &mut out,
        "Last scale time",
        &when(status.last_scale_time.as_ref(), now_unix_nanos),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An autoscaler as the coordinator sends it: synced once with one metric
    /// measured and one not, a rule holding the count, and one scale up.
    fn fixture() -> Autoscaler {
        serde_json::from_value(json!({
            "apiVersion": "aistor.io/v1alpha1",
            "kind": "Autoscaler",
            "metadata": {
                "name": "autoscaler-0a1b2c3d",
                "namespace": "demo",
                "uid": "u-1",
                "creationTimestamp": "2026-11-30T06:00:00Z"
            },
            "spec": {
                "workloadRef": {"kind": "Deployment", "name": "web"},
                "minReplicas": 1,
                "maxReplicas": 5,
                "metrics": {"cpuPercent": 70, "ioReadMegabytesPerSecond": 500, "iops": 3000},
                "scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}]},
                "syncPeriodSeconds": 15
            },
            "status": {
                "phase": "Active",
                "message": "Autoscaler is active",
                "lastSyncTime": "2026-11-30T06:01:50Z",
                "currentReplicas": 2,
                "desiredReplicas": 3,
                "lastScaleTime": "2026-11-30T06:01:00Z",
                "scaleUpCount": 1,
                "scaleDownCount": 0,
                "conditions": [
                    {"type": "AbleToScale", "status": "True", "reason": "ScaleUpStabilized",
                     "message": "recent recommendations were lower than current one",
                     "lastTransitionTime": "2026-11-30T06:01:00Z"},
                    {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound",
                     "message": "the HPA was able to successfully calculate a replica count from cpu",
                     "lastTransitionTime": "2026-11-30T06:00:00Z"}
                ],
                "metrics": [
                    {"name": "cpu", "target": 70.0, "current": 75.0, "proposedReplicas": 3,
                     "readyPods": 2, "unreadyPods": 0, "missingPods": 0},
                    {"name": "storage-read-bytes-per-second", "target": 500.0, "current": 12.5,
                     "proposedReplicas": 1, "readyPods": 1, "unreadyPods": 0, "missingPods": 1,
                     "message": "web-2: node n2 is stale"},
                    {"name": "storage-iops", "target": 3000.0, "readyPods": 0, "unreadyPods": 0,
                     "missingPods": 0, "message": "no pod has a storage-iops figure"}
                ],
                "lastDecisions": [
                    {"time": "2026-11-30T06:01:00Z", "currentReplicas": 1, "desiredReplicas": 2,
                     "message": "New size: 2; reason: cpu above target"},
                    {"time": "2026-11-30T06:01:50Z", "currentReplicas": 2, "desiredReplicas": 2,
                     "limitedBy": "ScaleUpStabilized", "message": "held at 2 by ScaleUpStabilized"}
                ]
            }
        }))
        .expect("the fixture is an Autoscaler")
    }

    fn now() -> u64 {
        // 2026-11-30T06:02:00Z
        let t: Time = serde_json::from_value(json!("2026-11-30T06:02:00Z")).unwrap();
        unix_nanos(&t)
    }

    #[test]
    fn the_list_reads_like_kubectls_hpa_table() {
        let a = fixture();
        let mut inactive = fixture();
        inactive.metadata.name = Some("autoscaler-ffffffff".into());
        inactive.spec.workload_ref.name = "gone".into();
        inactive.status = Some(crate::k8s::crd::AutoscalerStatus {
            phase: Some("Inactive".into()),
            message: "the workload cannot be scaled: deployment demo/gone not found".into(),
            ..Default::default()
        });
        let text = render_table(&[a, inactive], false, false, now());
        let lines: Vec<&str> = text.lines().collect();
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
            ]
        );
        let starts = super::super::table::column_starts(lines[0]);
        for line in &lines {
            assert_eq!(super::super::table::column_starts(line), starts, "{line:?}");
        }
        assert!(
            lines[1].contains(
                "cpu: 75%/70%, storage-read-bytes-per-second: 12.5MB/s/500MB/s, storage-iops: <unknown>/3000"
            ),
            "{text}"
        );
        let cells = |line: &str| -> Vec<String> {
            line.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let row = cells(lines[1]);
        assert_eq!(row[0], "autoscaler-0a1b2c3d");
        assert_eq!(row[1], "Deployment/web");
        assert_eq!(&row[3..], ["1", "5", "2", "active", "2m"]);
        let row = cells(lines[2]);
        assert_eq!(row[1], "Deployment/gone");
        assert_eq!(
            row[2],
            "cpu: <unknown>/70%, storage-read-bytes-per-second: <unknown>/500MB/s, storage-iops: <unknown>/3000"
        );
        assert_eq!(&row[3..], ["1", "5", "<unknown>", "inactive", "2m"]);

        let all = render_table(&[fixture()], true, true, now());
        let lines: Vec<&str> = all.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE   NAME"), "{all}");
        assert!(
            lines[0].ends_with("DESIRED   UPS   DOWNS   LAST SCALE   MESSAGE"),
            "{all}"
        );
        let row = cells(lines[1]);
        assert_eq!(row[0], "demo");
        assert_eq!(&row[9..], ["3", "1", "0", "60s", "Autoscaler is active"]);
        assert_eq!(
            render_table(&[], false, false, now()),
            "No resources found.\n"
        );
    }

    #[test]
    fn json_and_yaml_are_a_list_of_the_objects() {
        let o = serde_json::to_value(fixture()).unwrap();
        let j = render_documents(vec![o.clone()], GetFormat::Json).unwrap();
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["kind"], "Autoscaler");
        assert_eq!(v["items"][0]["status"]["metrics"][0]["current"], 75.0);
        let y = render_documents(vec![o], GetFormat::Yaml).unwrap();
        assert!(y.contains("kind: Autoscaler") && y.contains("name: autoscaler-0a1b2c3d"));
    }

    #[test]
    fn describe_reads_like_kubectl_describe() {
        let text = render_describe(&fixture(), now());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Name:               autoscaler-0a1b2c3d");
        assert_eq!(lines[3], "Reference:          Deployment/web");
        assert_eq!(
            lines[8],
            "Scale down:         stabilization window 60s; Pods 1 per 15s"
        );
        assert_eq!(lines[9], "Status:             active: Autoscaler is active");
        assert_eq!(lines[10], "Deployment pods:    2 current / 3 desired");
        assert_eq!(lines[12], "Metrics:            ( current / target )");
        assert_eq!(
            lines[13],
            "  cpu:              75% / 70%  (pods: 2 ready, 0 unready, 0 missing; proposes 3)"
        );
        assert!(
            lines[14].starts_with("  storage-read-bytes-per-second: 12.5MB/s / 500MB/s"),
            "{text}"
        );
        assert_eq!(lines[15].trim(), "web-2: node n2 is stale");
        assert_eq!(
            lines[16],
            "  storage-iops:     <unknown> / 3000  (pods: 0 ready, 0 unready, 0 missing)"
        );
        assert_eq!(lines[17].trim(), "no pod has a storage-iops figure");
        assert_eq!(lines[18], "Conditions:");
        assert_eq!(
            lines[19].split_whitespace().collect::<Vec<_>>(),
            ["Type", "Status", "Reason", "Message"]
        );
        assert!(lines[20].trim_start().starts_with("----"));
        assert!(
            lines[21].starts_with("  AbleToScale     True     ScaleUpStabilized"),
            "{text}"
        );
        assert_eq!(lines[23], "Last decisions:");
        assert!(lines[26].contains("1 -> 2     <none>"), "{text}");
        assert!(lines[27].contains("2 -> 2"), "{text}");
        assert!(
            lines[27].contains("ScaleUpStabilized   held at 2"),
            "{text}"
        );
        assert_eq!(lines[28], "Scale ups:          1");
        assert_eq!(lines[29], "Scale downs:        0");
        assert_eq!(
            lines[30],
            "Last scale time:    2026-11-30T06:01:00Z (60s ago)"
        );
        assert_eq!(lines.len(), 31);
    }

    #[test]
    fn describe_without_a_sync_says_what_is_missing() {
        let mut a = fixture();
        a.status = Some(crate::k8s::crd::AutoscalerStatus {
            phase: Some("Inactive".into()),
            message: "the workload cannot be scaled: deployment demo/web not found".into(),
            conditions: vec![
                serde_json::from_value(json!({
                    "type": "AbleToScale", "status": "False", "reason": "FailedGetScale",
                    "message": "deployment demo/web not found",
                    "lastTransitionTime": "2026-11-30T06:00:00Z"
                }))
                .unwrap(),
            ],
            ..Default::default()
        });
        let text = render_describe(&a, now());
        assert!(
            text.contains(
                "Status:             inactive: the workload cannot be scaled: deployment demo/web not found"
            ),
            "{text}"
        );
        assert!(text.contains("Deployment pods:    <unknown> current / <unknown> desired"));
        assert!(text.contains("  cpu:              <unknown> / 70%  (not measured yet)"));
        assert!(
            text.contains(
                "  AbleToScale   False    FailedGetScale   deployment demo/web not found"
            ),
            "{text}"
        );
        assert!(text.contains("Last decisions:     <none>"));
        assert!(text.contains("Last scale time:    <none>"));
    }

    #[test]
    fn figures_keep_their_units_and_drop_needless_decimals() {
        assert_eq!(figure("%", 75.0), "75%");
        assert_eq!(figure("%", 80.456), "80.46%");
        assert_eq!(figure("MB/s", 0.25), "0.25MB/s");
        assert_eq!(figure("", 3000.0), "3000");
        assert_eq!(figure("m", 250.0), "250m");
        assert_eq!(number(-0.001), "0");
    }
}
