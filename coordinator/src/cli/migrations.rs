//! `aistorctl migrate`, `aistorctl migrations` and `aistorctl describe migration`,
//! through the coordinator's `MigrationService`. `migrate --wait` follows the migration
//! stage by stage (elapsed time, bytes staged) until it ends.

use super::client::{self, Conn, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Server, request};
use super::error::CliError;
use super::table::Table;
use super::units;
use super::workloads::GetFormat;
use crate::k8s::crd::{MeasuredResources, Migration, MigrationPhase};
use aistor_proto::v1 as pb;
use aistor_proto::v1::migration_service_client::MigrationServiceClient;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::fmt::Write as _;
use std::io::Write;

const NONE: &str = "<none>";

async fn connect(url: &Server) -> Result<MigrationServiceClient<Conn>, CliError> {
    Ok(MigrationServiceClient::new(client::channel(url).await?)
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES))
}

fn decode(url: &str, call: &'static str, json: &[u8]) -> Result<Migration, CliError> {
    serde_json::from_slice(json).map_err(|e| CliError::Rpc {
        url: url.to_owned(),
        call,
        code: tonic::Code::Internal,
        message: format!("the coordinator sent a Migration aistorctl cannot read: {e}"),
    })
}

fn unix_nanos(t: &Time) -> u64 {
    u64::try_from(t.0.as_nanosecond()).unwrap_or(0)
}

fn name(m: &Migration) -> &str {
    m.metadata.name.as_deref().unwrap_or("")
}

fn phase(m: &Migration) -> &'static str {
    match m.status.as_ref().and_then(|s| s.phase) {
        Some(MigrationPhase::Pending) => "Pending",
        Some(MigrationPhase::Running) => "Running",
        Some(MigrationPhase::Completed) => "Completed",
        Some(MigrationPhase::Failed) => "Failed",
        Some(MigrationPhase::Cancelled) => "Cancelled",
        None => "Unknown",
    }
}

fn ended(m: &Migration) -> bool {
    matches!(
        m.status.as_ref().and_then(|s| s.phase),
        Some(MigrationPhase::Completed | MigrationPhase::Failed | MigrationPhase::Cancelled)
    )
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| NONE.to_owned(), |s| format!("{s:.2}s"))
}

/// What `migrate` asks for.
#[derive(Debug, Clone)]
pub struct MigrateRequest {
    pub namespace: String,
    pub pod: String,
    /// Empty: where the pod is now.
    pub from: String,
    pub to: String,
    pub preserve_pv: bool,
    pub timeout_seconds: u32,
    pub force_restart: bool,
    pub wait: bool,
}

/// `aistorctl migrate NS/POD --to NODE [--wait]`.
pub(crate) async fn migrate(
    url: &Server,
    req: MigrateRequest,
    now_unix_nanos: impl Fn() -> u64,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    let started = c
        .start(request(pb::StartMigrationRequest {
            namespace: req.namespace.clone(),
            pod: req.pod.clone(),
            source_node: req.from.clone(),
            target_node: req.to.clone(),
            preserve_pv: req.preserve_pv,
            timeout_seconds: req.timeout_seconds,
            force_restart: req.force_restart,
        }))
        .await
        .map_err(|s| CliError::from_status(url, "Start", &s))?
        .into_inner();
    let m = decode(url, "Start", &started.object_json)?;
    writeln!(
        out,
        "migration/{} started: pod {}/{} to {}",
        name(&m),
        req.namespace,
        req.pod,
        req.to
    )?;
    out.flush()?;
    if !req.wait {
        return Ok(());
    }
    let mut stream = c
        .watch(tonic::Request::new(pb::WatchMigrationRequest {
            id: name(&m).to_owned(),
        }))
        .await
        .map_err(|s| CliError::from_status(url, "Watch", &s))?
        .into_inner();
    let start = m
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or_else(&now_unix_nanos, unix_nanos);
    let mut last_line = String::new();
    let mut last = m;
    while let Some(next) = stream
        .message()
        .await
        .map_err(|s| CliError::from_status(url, "Watch", &s))?
    {
        last = decode(url, "Watch", &next.object_json)?;
        let line = progress(&last);
        if line != last_line {
            let elapsed = now_unix_nanos().saturating_sub(start) as f64 / 1e9;
            writeln!(out, "[{elapsed:6.1}s] {line}")?;
            out.flush()?;
            last_line = line;
        }
        if ended(&last) {
            break;
        }
    }
    write!(out, "{}", outcome(&last))?;
    match last.status.as_ref().and_then(|s| s.phase) {
        Some(MigrationPhase::Completed) => Ok(()),
        _ => Err(CliError::Failed(format!(
            "migration/{} {}: {}",
            name(&last),
            phase(&last).to_lowercase(),
            last.status
                .as_ref()
                .and_then(|s| s.error.clone().or(s.message.clone()))
                .unwrap_or_default()
        ))),
    }
}

/// One line per change a person follows: the stage and what it has done so far.
fn progress(m: &Migration) -> String {
    let Some(s) = &m.status else {
        return "pending".into();
    };
    let mut line = s.stage.clone().unwrap_or_default();
    if let Some(c) = &s.checkpoint {
        match (c.bytes, &c.error) {
            (_, Some(e)) => {
                let _ = write!(line, "  checkpoint failed: {e}");
            }
            (Some(bytes), None) => {
                let _ = write!(line, "  staged {}", units::bytes_iec(bytes));
            }
            (None, None) if line == "checkpointing" => {
                let _ = write!(line, "  checkpoint {} (attempt {})", c.id, c.attempt);
            }
            _ => {}
        }
    }
    if let Some(msg) = &s.message
        && !msg.is_empty()
    {
        let _ = write!(line, "  {msg}");
    }
    line
}

fn outcome(m: &Migration) -> String {
    let mut text = String::new();
    let Some(s) = &m.status else {
        return text;
    };
    let _ = writeln!(
        text,
        "migration/{} {}: pod {} on {} (downtime {}, time to resume {})",
        name(m),
        phase(m).to_lowercase(),
        s.new_pod.as_deref().unwrap_or(NONE),
        m.spec.target_node,
        seconds(s.downtime_seconds),
        seconds(s.time_to_resume_seconds),
    );
    text
}

fn resources(r: Option<&MeasuredResources>) -> String {
    let Some(r) = r else {
        return "not measured yet".into();
    };
    let mut parts = Vec::new();
    if let Some(cpu) = r.cpu_cores {
        parts.push(format!("cpu {}", units::cpu(cpu * 1000.0)));
    }
    if let Some(memory) = r.memory_bytes {
        parts.push(format!("memory {}", units::bytes_iec(memory)));
    }
    if let Some(missing) = &r.missing {
        parts.push(missing.clone());
    }
    parts.join(", ")
}

/// `aistorctl migrations`.
pub(crate) async fn list(
    url: &Server,
    namespace: &str,
    format: GetFormat,
    now_unix_nanos: u64,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    let listed = c
        .list(request(pb::ListMigrationsRequest {
            namespace: namespace.to_owned(),
        }))
        .await
        .map_err(|s| CliError::from_status(url, "List", &s))?
        .into_inner();
    let all = listed
        .items
        .iter()
        .map(|i| decode(url, "List", &i.object_json))
        .collect::<Result<Vec<_>, _>>()?;
    let text = match format {
        GetFormat::Json | GetFormat::Yaml => super::autoscalers::render_documents(
            all.iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?,
            format,
        )?,
        GetFormat::Table | GetFormat::Wide => render_list(&all, format, now_unix_nanos),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

pub fn render_list(all: &[Migration], format: GetFormat, now_unix_nanos: u64) -> String {
    if all.is_empty() {
        return "No resources found.\n".into();
    }
    let wide = format == GetFormat::Wide;
    let mut header = vec![
        "NAME",
        "NAMESPACE",
        "POD",
        "SOURCE",
        "TARGET",
        "STATUS",
        "STAGE",
        "NEW POD",
    ];
    if wide {
        header.extend(["DOWNTIME", "STRATEGY", "MESSAGE"]);
    }
    header.push("AGE");
    let mut t = Table::new(header);
    for m in all {
        let s = m.status.clone().unwrap_or_default();
        let mut row = vec![
            name(m).to_owned(),
            m.metadata.namespace.clone().unwrap_or_default(),
            m.spec.pod.clone(),
            m.spec.source_node.clone(),
            m.spec.target_node.clone(),
            phase(m).to_owned(),
            s.stage.clone().unwrap_or_default(),
            s.new_pod.clone().unwrap_or_else(|| NONE.into()),
        ];
        if wide {
            row.push(seconds(s.downtime_seconds));
            row.push(s.strategy.clone().unwrap_or_else(|| NONE.into()));
            row.push(s.error.clone().or(s.message.clone()).unwrap_or_default());
        }
        row.push(m.metadata.creation_timestamp.as_ref().map_or_else(
            || NONE.into(),
            |t| units::age(now_unix_nanos.saturating_sub(unix_nanos(t))),
        ));
        t.push(row);
    }
    t.render()
}

/// `aistorctl describe migration ID`.
pub(crate) async fn describe(
    url: &Server,
    id: &str,
    now_unix_nanos: u64,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut c = connect(url).await?;
    let found = c
        .get(request(pb::GetMigrationRequest { id: id.to_owned() }))
        .await
        .map_err(|s| CliError::from_status(url, "Get", &s))?
        .into_inner();
    let m = decode(url, "Get", &found.object_json)?;
    write!(out, "{}", render_describe(&m, now_unix_nanos))?;
    Ok(())
}

pub fn render_describe(m: &Migration, now_unix_nanos: u64) -> String {
    let s = m.status.clone().unwrap_or_default();
    let mut o = String::new();
    let field = |o: &mut String, k: &str, v: &str| {
        let _ = writeln!(o, "{:<16}{v}", format!("{k}:"));
    };
    field(&mut o, "Name", name(m));
    field(
        &mut o,
        "Namespace",
        m.metadata.namespace.as_deref().unwrap_or(""),
    );
    field(
        &mut o,
        "Pod",
        &format!(
            "{} ({} -> {})",
            m.spec.pod, m.spec.source_node, m.spec.target_node
        ),
    );
    field(
        &mut o,
        "Status",
        &format!("{} ({})", phase(m), s.stage.as_deref().unwrap_or("")),
    );
    field(&mut o, "Message", s.message.as_deref().unwrap_or(""));
    if let Some(e) = &s.error {
        field(&mut o, "Error", e);
    }
    field(
        &mut o,
        "Strategy",
        &match (&s.strategy, s.single_node_claims.is_empty()) {
            (Some(st), true) => st.clone(),
            (Some(st), false) => format!("{st} (claims {})", s.single_node_claims.join(", ")),
            (None, _) => NONE.into(),
        },
    );
    field(&mut o, "New Pod", s.new_pod.as_deref().unwrap_or(NONE));
    field(
        &mut o,
        "Checkpoint",
        &s.checkpoint.as_ref().map_or_else(
            || "none (preserve_pv off, or no container mounts the checkpoint path)".into(),
            |c| match (&c.error, c.bytes) {
                (Some(e), _) => format!("{} failed: {e}", c.id),
                (None, Some(bytes)) => format!(
                    "{}: {} in {} files, staged in {}{}",
                    c.id,
                    units::bytes_iec(bytes),
                    c.files.unwrap_or(0),
                    seconds(c.staging_seconds),
                    s.checkpoint_path
                        .as_ref()
                        .map(|p| format!(" to {p}"))
                        .unwrap_or_default()
                ),
                (None, None) => format!("{} (attempt {}), not staged yet", c.id, c.attempt),
            },
        ),
    );
    field(&mut o, "Downtime", &seconds(s.downtime_seconds));
    field(&mut o, "Time to resume", &seconds(s.time_to_resume_seconds));
    field(&mut o, "Before", &resources(s.original_resources.as_ref()));
    field(&mut o, "After", &resources(s.optimized_resources.as_ref()));
    field(
        &mut o,
        "Age",
        &m.metadata.creation_timestamp.as_ref().map_or_else(
            || NONE.into(),
            |t| units::age(now_unix_nanos.saturating_sub(unix_nanos(t))),
        ),
    );
    o.push_str("Containers:\n");
    let mut t = Table::new(vec![
        "  NAME", "STATE", "RESTARTS", "MIGRATE", "ACTION", "WHY",
    ]);
    for c in &s.containers {
        t.push(vec![
            format!("  {}{}", c.name, if c.init { " (init)" } else { "" }),
            format!("{:?}", c.state),
            c.restart_count.to_string(),
            c.migrate.to_string(),
            c.action.clone().unwrap_or_default(),
            c.reason.clone().unwrap_or_default(),
        ]);
    }
    o.push_str(&t.render());
    o.push_str("Steps:\n");
    let mut t = Table::new(vec!["  STAGE", "TOOK", "MESSAGE"]);
    for step in &s.steps {
        let took = step
            .end_time
            .as_ref()
            .map(|e| unix_nanos(e).saturating_sub(unix_nanos(&step.start_time)) as f64 / 1e9);
        t.push(vec![
            format!("  {}", step.stage),
            seconds(took),
            step.message.clone(),
        ]);
    }
    o.push_str(&t.render());
    o.push_str("Conditions:\n");
    let mut t = Table::new(vec!["  TYPE", "STATUS", "REASON", "MESSAGE"]);
    for c in &s.conditions {
        t.push(vec![
            format!("  {}", c.type_),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
        ]);
    }
    o.push_str(&t.render());
    o
}
