//! `aistorctl top autoscalers`: scaling as it happens. `AutoscalerService.List` is
//! polled every `--interval` and drawn as `get autoscalers -o wide`, followed by the
//! newest decision of each autoscaler (when, from and to how many replicas, why).
//! Errors keep the last table under an error line and retry with a backoff (a
//! refused token ends it with the error instead); Ctrl-C exits 0; `--frames N`
//! exits 0 after N frames.

use std::io::Write;

use tokio::time::Instant;

use super::{Backoff, Screen, interrupted};
use crate::cli::args::TopAutoscalersArgs;
use crate::cli::autoscalers::{list, render_table};
use crate::cli::client::Server;
use crate::cli::error::CliError;
use crate::k8s::crd::Autoscaler;

/// One frame: the table, then each autoscaler's latest decision.
pub(crate) fn frame(items: &[Autoscaler], all_namespaces: bool, now_unix_nanos: u64) -> String {
    let mut text = render_table(items, all_namespaces, true, now_unix_nanos);
    let mut latest: Vec<String> = items
        .iter()
        .filter_map(|a| {
            let d = a.status.as_ref()?.last_decisions.last()?;
            Some(format!(
                "{}  {}  {} -> {}  {}",
                crate::autoscalers::spec::time_text(&d.time),
                a.metadata.name.as_deref().unwrap_or(""),
                d.current_replicas,
                d.desired_replicas,
                d.message
            ))
        })
        .collect();
    if !latest.is_empty() {
        latest.sort();
        text.push_str("\nLATEST DECISIONS\n");
        for line in latest {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

pub(crate) async fn run(
    url: &Server,
    args: &TopAutoscalersArgs,
    terminal: bool,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let namespace = if args.all_namespaces {
        ""
    } else {
        args.namespace.as_str()
    };
    let mut screen = Screen::new(terminal, args.frames);
    let mut backoff = Backoff::new();
    let mut last = String::new();
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    let mut next = Instant::now();
    loop {
        let result = tokio::select! {
            biased;
            () = &mut interrupted => return Ok(()),
            r = async {
                tokio::time::sleep_until(next).await;
                list(url, namespace).await
            } => r,
        };
        let started = Instant::now();
        let text = match result {
            Ok(items) => {
                backoff.reset();
                next = started + args.interval;
                last = frame(&items, args.all_namespaces, super::super::now_unix_nanos());
                last.clone()
            }
            // Retrying with the same token cannot help: stop, as kubectl does.
            Err(e) if e.is_about_the_token() => return Err(e),
            Err(e) => {
                let delay = backoff.next();
                next = started + delay;
                format!(
                    "error: {e} (retrying in {})\n{last}",
                    humantime::format_duration(delay)
                )
            }
        };
        if screen.draw(out, &text)? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_frame_is_the_wide_table_then_each_latest_decision() {
        let a: Autoscaler = serde_json::from_value(json!({
            "apiVersion": "aistor.io/v1alpha1", "kind": "Autoscaler",
            "metadata": {"name": "autoscaler-0a1b2c3d", "namespace": "demo",
                         "creationTimestamp": "2026-11-30T09:00:00Z"},
            "spec": {"workloadRef": {"kind": "Deployment", "name": "burner"},
                     "minReplicas": 1, "maxReplicas": 4, "metrics": {"cpuPercent": 50}},
            "status": {
                "phase": "Active", "currentReplicas": 1, "desiredReplicas": 3,
                "scaleUpCount": 1,
                "lastDecisions": [
                    {"time": "2026-11-30T09:01:00Z", "currentReplicas": 1, "desiredReplicas": 1,
                     "limitedBy": "ScaleUpStabilized", "message": "held at 1 by ScaleUpStabilized"},
                    {"time": "2026-11-30T09:02:00Z", "currentReplicas": 1, "desiredReplicas": 3,
                     "message": "New size: 3; reason: cpu above target"},
                ],
            },
        }))
        .unwrap();
        let idle: Autoscaler = serde_json::from_value(json!({
            "apiVersion": "aistor.io/v1alpha1", "kind": "Autoscaler",
            "metadata": {"name": "autoscaler-ffffffff", "namespace": "demo"},
            "spec": {"workloadRef": {"kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 2, "metrics": {"cpuPercent": 50}},
        }))
        .unwrap();
        let now = 1_796_029_320_000_000_000; // 2026-11-30T09:02:00Z
        let text = frame(&[a, idle], false, now);
        let (table, decisions) = text.split_once("\nLATEST DECISIONS\n").expect("both parts");
        assert!(table.starts_with("NAME"), "{text}");
        assert!(table.contains("UPS"), "the wide table: {text}");
        assert_eq!(
            decisions,
            "2026-11-30T09:02:00Z  autoscaler-0a1b2c3d  1 -> 3  New size: 3; reason: cpu above target\n",
            "only the newest decision, and none for an autoscaler without one"
        );
        assert!(!frame(&[], false, now).contains("LATEST"));
    }
}
