//! `aistorctl place NS/POD` (or `-f pod.yaml`): where aistor would place a pod and why,
//! nothing bound; and `apply -f` of an AIStorageConfig (standalone).

use super::args::PlaceOutput;
use super::client::{self, Conn, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Server, request};
use super::error::CliError;
use super::table::Table;
use crate::placement::Explanation;
use aistor_proto::v1 as pb;
use aistor_proto::v1::placement_service_client::PlacementServiceClient;
use serde_json::Value;
use std::io::Write;

async fn connect(url: &Server) -> Result<PlacementServiceClient<Conn>, CliError> {
    Ok(PlacementServiceClient::new(client::channel(url).await?)
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES))
}

/// What to explain: a pod the coordinator knows, or a manifest.
pub(crate) enum Subject {
    Pod { namespace: String, name: String },
    Manifest(Value),
}

pub(crate) async fn place(
    url: &Server,
    subject: Subject,
    format: PlaceOutput,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let req = match subject {
        Subject::Pod { namespace, name } => pb::ExplainPlacementRequest {
            namespace,
            name,
            ..Default::default()
        },
        Subject::Manifest(v) => pb::ExplainPlacementRequest {
            pod_json: serde_json::to_vec(&v).unwrap_or_default(),
            ..Default::default()
        },
    };
    let reply = connect(url)
        .await?
        .explain(request(req))
        .await
        .map_err(|s| CliError::from_status(url, "Explain", &s))?
        .into_inner();
    let explanation: Explanation =
        serde_json::from_slice(&reply.explanation_json).map_err(|e| CliError::Rpc {
            url: url.to_string(),
            call: "Explain",
            code: tonic::Code::Internal,
            message: format!("the coordinator sent an explanation aistorctl cannot read: {e}"),
        })?;
    match format {
        PlaceOutput::Json => {
            serde_json::to_writer_pretty(&mut *out, &explanation)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            writeln!(out)?;
        }
        PlaceOutput::Yaml => write!(
            out,
            "{}",
            serde_yaml_ng::to_string(&explanation)
                .map_err(|e| std::io::Error::other(e.to_string()))?
        )?,
        PlaceOutput::Table => render(&explanation, out)?,
    }
    Ok(())
}

/// The ranking as `kubectl describe` would show it: the choice, then one row per node
/// (total, each plugin's normalised score, the first reason it was rejected).
fn render(e: &Explanation, out: &mut impl Write) -> std::io::Result<()> {
    match (&e.node, &e.unschedulable) {
        (Some(node), _) => writeln!(out, "Pod {} would go to {node}", e.pod)?,
        (None, Some(why)) => writeln!(out, "Pod {} fits no node: {why}", e.pod)?,
        (None, None) => writeln!(out, "Pod {} fits no node", e.pod)?,
    }
    let weights: Vec<String> = e
        .weights
        .iter()
        .map(|w| format!("{} {} ({})", w.plugin, w.weight, w.from))
        .collect();
    writeln!(out, "Weights: {}", weights.join(", "))?;
    writeln!(out, "Config: {}", e.config_source)?;
    if let Some(node) = &e.reserved_node {
        writeln!(out, "Reserved by a migration: {node}")?;
    }
    let column = |plugin: &str| -> &'static str {
        match plugin {
            "DataLocalityAware" => "LOCALITY",
            "StorageTierAware" => "TIER",
            "IOPatternBased" => "IO-PATTERN",
            "LiveHeadroom" => "HEADROOM",
            _ => "SCORE",
        }
    };
    let mut header = vec!["NODE", "FEASIBLE", "TOTAL"];
    header.extend(e.weights.iter().map(|w| column(&w.plugin)));
    header.push("REASON");
    let mut table = Table::new(header);
    for n in &e.nodes {
        let mut row = vec![
            n.name.clone(),
            if n.feasible { "yes" } else { "no" }.to_owned(),
            format!("{:.0}", n.total),
        ];
        for w in &e.weights {
            row.push(
                n.scores
                    .iter()
                    .find(|s| s.plugin == w.plugin)
                    .map_or("-".to_owned(), |s| format!("{:.0}", s.normalised)),
            );
        }
        row.push(
            n.rejections
                .iter()
                .map(|r| format!("{}: {}", r.filter, r.reason))
                .collect::<Vec<_>>()
                .join("; "),
        );
        table.push(row);
    }
    write!(out, "{}", table.render())
}

/// `apply -f` of an AIStorageConfig (standalone): puts it in force.
pub(crate) async fn apply_config(
    url: &Server,
    document: &Value,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let name = document["metadata"]["name"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    connect(url)
        .await?
        .apply_config(request(pb::ApplyPlacementConfigRequest {
            document: document.to_string(),
        }))
        .await
        .map_err(|s| CliError::from_status(url, "ApplyConfig", &s))?;
    writeln!(out, "aistorageconfig/{name} configured")?;
    Ok(())
}
