//! The coordinator's own Prometheus metrics (`aistor_coordinator_*`).

use aistor_core::Ingested;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: &'static str,
}

#[derive(Debug, Clone)]
pub struct CoordinatorMetrics {
    reports: Family<Outcome, Counter>,
    nodes: Family<State, Gauge>,
    agent_streams: Gauge,
    migrations: Family<Status, Gauge>,
    migrations_finished: Family<Status, Counter>,
    migration_downtime: Histogram,
}

impl Default for CoordinatorMetrics {
    fn default() -> Self {
        Self {
            reports: Family::default(),
            nodes: Family::default(),
            agent_streams: Gauge::default(),
            migrations: Family::default(),
            migrations_finished: Family::default(),
            // 50 ms to about 7 minutes.
            migration_downtime: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
        }
    }
}

impl CoordinatorMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("aistor_coordinator");
        sub.register(
            "reports",
            "Agent reports received, by outcome (applied, duplicate, invalid, too_large, superseded, too_many_nodes, wrong_stream, unauthenticated, wrong_identity)",
            self.reports.clone(),
        );
        sub.register(
            "nodes",
            "Nodes in the view, by state (ready, stale)",
            self.nodes.clone(),
        );
        sub.register(
            "agent_streams",
            "Agent streams currently open",
            self.agent_streams.clone(),
        );
        sub.register(
            "migrations",
            "Migrations held, by status (pending, running, completed, failed, cancelled)",
            self.migrations.clone(),
        );
        sub.register(
            "migrations_finished",
            "Migrations that ended since the coordinator started, by status",
            self.migrations_finished.clone(),
        );
        sub.register_with_unit(
            "migration_downtime",
            "Completed migrations' downtime: from the source's stop to the target's Ready",
            prometheus_client::registry::Unit::Seconds,
            self.migration_downtime.clone(),
        );
    }

    /// How many migrations are held in each status now.
    pub fn set_migrations(&self, counts: &[(&'static str, usize)]) {
        for (status, n) in counts {
            self.migrations
                .get_or_create(&Status { status })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// A migration ended with `status`; `downtime` when it completed and it was measured.
    pub fn migration_finished(&self, status: &'static str, downtime: Option<std::time::Duration>) {
        self.migrations_finished
            .get_or_create(&Status { status })
            .inc();
        if let Some(d) = downtime {
            self.migration_downtime.observe(d.as_secs_f64());
        }
    }

    pub fn record_ingest(&self, outcome: Ingested) {
        let outcome = match outcome {
            Ingested::Applied { .. } => "applied",
            Ingested::Duplicate => "duplicate",
            Ingested::Superseded => "superseded",
            Ingested::TooManyNodes { .. } => "too_many_nodes",
        };
        self.record(outcome);
    }

    pub fn record_invalid(&self) {
        self.record("invalid");
    }

    /// Over `--max-report-bytes`.
    pub fn record_too_large(&self) {
        self.record("too_large");
    }

    /// Names another node or agent process than the stream began with.
    pub fn record_wrong_stream(&self) {
        self.record("wrong_stream");
    }

    /// A stream without a usable client certificate where one is required.
    pub fn record_unauthenticated(&self) {
        self.record("unauthenticated");
    }

    /// Names another node than its connection's certificate.
    pub fn record_wrong_identity(&self) {
        self.record("wrong_identity");
    }

    fn record(&self, outcome: &'static str) {
        self.reports.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn set_node_counts(&self, counts: &HashMap<&'static str, usize>) {
        for (state, n) in counts {
            self.nodes
                .get_or_create(&State { state })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    pub fn stream_opened(&self) {
        self.agent_streams.inc();
    }

    pub fn stream_closed(&self) {
        self.agent_streams.dec();
    }
}
