//! Prometheus exposition of the latest collection, under the names users' dashboards
//! already use (node_exporter's `node_*`, cAdvisor's `container_*`), plus the agent's
//! own `aistor_agent_*`.
//! Encoded at scrape time from the newest report: no per-series state to keep, and a
//! value the agent could not read produces no series rather than a zero.

use crate::report::Extras;
use crate::uplink::{Outbox, UplinkStats};
use aistor_proto::v1::NodeReport;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prost::Message as _;
use std::fmt;

mod cgroups;
mod node;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::watch;

/// One collection as published to readers (exposition, readiness).
#[derive(Debug, Clone)]
pub struct Published {
    pub report: Arc<NodeReport>,
    pub extras: Extras,
    pub ticks_per_second: u64,
    pub collect_seconds: f64,
}

#[derive(Debug)]
pub struct AgentCollector {
    latest: watch::Receiver<Option<Arc<Published>>>,
    uplink: Arc<UplinkStats>,
    outbox: Outbox,
}

impl AgentCollector {
    pub fn new(
        latest: watch::Receiver<Option<Arc<Published>>>,
        uplink: Arc<UplinkStats>,
        outbox: Outbox,
    ) -> Self {
        Self {
            latest,
            uplink,
            outbox,
        }
    }
}

/// Writes one metric family; nothing at all when there is no series.
pub(crate) fn family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        let encoder = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(encoder)?,
            _ => ConstGauge::new(value).encode(encoder)?,
        }
    }
    Ok(())
}

/// Writes a metric without labels; nothing when the value is absent.
pub(crate) fn single(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    value: Option<f64>,
) -> fmt::Result {
    let Some(value) = value else { return Ok(()) };
    let metric = enc.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(metric),
        _ => ConstGauge::new(value).encode(metric),
    }
}

impl Collector for AgentCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        // The buffer first, then the report: the collector updates both under the buffer's
        // lock, so this scrape's figures belong to one tick.
        let (latest, buffered, buffered_bytes, dropped, span, (max_age, max_bytes), sent_bytes) = {
            let b = self.outbox.lock();
            let latest = self.latest.borrow().clone();
            (
                latest,
                b.len() as f64,
                b.bytes() as f64,
                b.dropped_total() as f64,
                b.span().as_secs_f64(),
                b.limits(),
                b.last_sent_bytes(),
            )
        };
        if let Some(p) = latest {
            node::encode(&mut enc, &p)?;
            cgroups::encode(&mut enc, &p.report)?;
            single(
                &mut enc,
                "aistor_agent_collect_duration_seconds",
                "Time the latest collection took.",
                MetricType::Gauge,
                Some(p.collect_seconds),
            )?;
            single(
                &mut enc,
                "aistor_agent_collections",
                "Collections since the agent started (the latest report's seq).",
                MetricType::Counter,
                Some(p.report.seq as f64),
            )?;
            single(
                &mut enc,
                "aistor_agent_report_full_bytes",
                "Encoded size of the latest report in full, as the first report of a stream carries it.",
                MetricType::Gauge,
                Some(p.report.encoded_len() as f64),
            )?;
        }
        single(
            &mut enc,
            "aistor_agent_report_bytes",
            "Encoded size of the latest report as sent on the stream (what the previous report carried unchanged left out).",
            MetricType::Gauge,
            sent_bytes.map(|b| b as f64),
        )?;
        let u = &self.uplink;
        let gauges = [
            (
                "aistor_agent_uplink_connected",
                "1 while the stream to the coordinator is up.",
                f64::from(u8::from(u.connected.load(Relaxed))),
            ),
            (
                "aistor_agent_replay_buffer_reports",
                "Reports collected but not yet acknowledged by the coordinator.",
                buffered,
            ),
            (
                "aistor_agent_replay_buffer_bytes",
                "Encoded size of the reports waiting for the coordinator's acknowledgement.",
                buffered_bytes,
            ),
            (
                "aistor_agent_replay_buffer_span_seconds",
                "Collection time from the oldest to the newest report waiting: the outage the buffer holds now.",
                span,
            ),
            (
                "aistor_agent_replay_buffer_max_age_seconds",
                "Limit: reports older than this are dropped unacknowledged (--replay-buffer).",
                max_age.as_secs_f64(),
            ),
            (
                "aistor_agent_replay_buffer_max_bytes",
                "Limit: the oldest reports are dropped while the encoded size is over this (--replay-buffer-max-mib).",
                max_bytes as f64,
            ),
        ];
        for (name, help, v) in gauges {
            single(&mut enc, name, help, MetricType::Gauge, Some(v))?;
        }
        let counters = [
            (
                "aistor_agent_reports_sent",
                "Reports written to the coordinator stream, replays included.",
                u.reports_sent_total.load(Relaxed) as f64,
            ),
            (
                "aistor_agent_uplink_connects",
                "Attempts to open the coordinator stream.",
                u.connects_total.load(Relaxed) as f64,
            ),
            (
                "aistor_agent_replay_dropped_reports",
                "Reports dropped unacknowledged because they outlived the replay buffer's age or size.",
                dropped,
            ),
        ];
        for (name, help, v) in counters {
            single(&mut enc, name, help, MetricType::Counter, Some(v))?;
        }
        Ok(())
    }
}
