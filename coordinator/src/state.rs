//! The coordinator's shared state: the core's view behind a lock, the feed of node
//! changes for watchers, and the coordinator's clocks.

use crate::convert::{self, StoredReport};
use crate::measurements;
use crate::metrics::CoordinatorMetrics;
use aistor_core::{ClusterView, Ingested, Now, ReportKey, ViewConfig};
use aistor_proto::v1 as pb;
use prost::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// Where directives for one node's agent go: its open stream.
pub type DirectiveSender = mpsc::Sender<Result<pb::Directive, tonic::Status>>;

/// Why a report was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidReport {
    #[error("report has no node identity (field `node`)")]
    NoNode,
    #[error("report has an empty node name (field `node.name`)")]
    NoName,
    #[error("report has seq 0; seqs start at 1 (field `seq`)")]
    ZeroSeq,
    #[error("report has no agent instance (field `agent_instance`)")]
    NoInstance,
}

#[derive(Debug, Clone)]
pub struct Shared {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    view: Mutex<ClusterView<StoredReport>>,
    events: broadcast::Sender<pb::NodeEvent>,
    started: Instant,
    metrics: CoordinatorMetrics,
    streams: Mutex<HashMap<String, DirectiveSender>>,
    measurements: measurements::Store,
}

impl Shared {
    pub fn new(config: ViewConfig, metrics: CoordinatorMetrics) -> Self {
        // Watchers that fall this far behind are told to resynchronise.
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                view: Mutex::new(ClusterView::new(config)),
                events,
                started: Instant::now(),
                metrics,
                streams: Mutex::default(),
                measurements: measurements::Store::default(),
            }),
        }
    }

    pub fn now(&self) -> Now {
        Now {
            monotonic: self.inner.started.elapsed(),
            wall_unix_nanos: wall_unix_nanos(),
        }
    }

    pub fn view(&self) -> MutexGuard<'_, ClusterView<StoredReport>> {
        // Every view operation leaves it consistent; a panic elsewhere must not
        // take the coordinator's view down with it.
        self.inner.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn metrics(&self) -> &CoordinatorMetrics {
        &self.inner.metrics
    }

    pub fn subscribe(&self) -> broadcast::Receiver<pb::NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Validates and applies one report; announces it to watchers when it became the
    /// node's latest.
    pub fn ingest(&self, report: &pb::NodeReport) -> Result<Ingested, InvalidReport> {
        let node = report.node.as_ref().ok_or(InvalidReport::NoNode)?;
        if node.name.is_empty() {
            return Err(InvalidReport::NoName);
        }
        if report.seq == 0 {
            return Err(InvalidReport::ZeroSeq);
        }
        if report.agent_instance.is_empty() {
            return Err(InvalidReport::NoInstance);
        }
        let key = ReportKey {
            node: &node.name,
            boot_id: &node.boot_id,
            agent_instance: &report.agent_instance,
            seq: report.seq,
        };
        let sample = convert::node_sample(report);
        let interval = Duration::from_nanos(report.collect_interval_nanos.max(1));
        let stored = StoredReport::from(report.encode_to_vec());
        let now = self.now();
        let (outcome, status) = {
            let mut view = self.view();
            let outcome = view.ingest(key, interval, sample, stored, now);
            // Decoding the full status is only worth it when someone is watching.
            let watched = self.inner.events.receiver_count() > 0;
            let status = match outcome {
                Ingested::Applied { latest: true } if watched => {
                    view.node(&node.name).map(convert::node_status)
                }
                _ => None,
            };
            (outcome, status)
        };
        self.inner.metrics.record_ingest(outcome);
        if let Ingested::Applied { .. } = outcome {
            for result in &report.measurements {
                self.inner
                    .measurements
                    .complete(result.clone(), now.wall_unix_nanos);
            }
        }
        if let Some(status) = status {
            self.announce(status);
        }
        Ok(outcome)
    }

    /// Re-evaluates staleness and announces every node whose state changed.
    pub fn refresh(&self) {
        let now = self.now();
        // Decoding a full status is only worth it when someone is watching.
        let watched = self.inner.events.receiver_count() > 0;
        let changed: Vec<(String, aistor_core::NodeState, Option<pb::NodeStatus>)> = {
            let mut view = self.view();
            let names = view.refresh(now.monotonic);
            let counts = view.state_counts();
            self.inner.metrics.set_node_counts(&counts);
            names
                .into_iter()
                .filter_map(|n| {
                    let entry = view.node(&n)?;
                    Some((n, entry.state(), watched.then(|| convert::node_status(entry))))
                })
                .collect()
        };
        for (name, state, status) in changed {
            tracing::info!(node = %name, ?state, "node state changed");
            if let Some(status) = status {
                self.announce(status);
            }
        }
    }

    pub fn measurements(&self) -> &measurements::Store {
        &self.inner.measurements
    }

    /// Registers the stream of `node`'s agent (the newest stream wins).
    pub fn register_stream(&self, node: &str, tx: DirectiveSender) {
        self.streams().insert(node.to_owned(), tx);
    }

    /// Forgets `node`'s stream if it is still `tx` (a newer one may have replaced it).
    pub fn unregister_stream(&self, node: &str, tx: &DirectiveSender) {
        let mut streams = self.streams();
        if streams
            .get(node)
            .is_some_and(|current| current.same_channel(tx))
        {
            streams.remove(node);
        }
    }

    /// Queues a directive for `node`'s agent; false when it has no open stream.
    pub fn send_directive(&self, node: &str, directive: pb::Directive) -> bool {
        let tx = self.streams().get(node).cloned();
        tx.is_some_and(|tx| tx.try_send(Ok(directive)).is_ok())
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, DirectiveSender>> {
        self.inner.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn node_state(&self, node: &str) -> Option<aistor_core::NodeState> {
        self.view().node(node).map(|n| n.state())
    }

    /// The node whose latest report has a pod matching `matches`.
    pub fn find_pod_node(&self, matches: impl Fn(&pb::Pod) -> bool) -> Option<String> {
        let view = self.view();
        view.nodes().find_map(|entry| {
            let report = pb::NodeReport::decode(entry.latest().clone()).ok()?;
            report
                .pods
                .iter()
                .any(&matches)
                .then(|| entry.name().to_owned())
        })
    }

    /// Pods of every node (filtered), from each node's latest report.
    pub fn pods(&self, node: &str, namespace: &str) -> Vec<pb::PodStatus> {
        let view = self.view();
        let mut out = Vec::new();
        for entry in view.nodes().filter(|e| node.is_empty() || e.name() == node) {
            let Ok(report) = pb::NodeReport::decode(entry.latest().clone()) else {
                continue;
            };
            for pod in report.pods {
                if namespace.is_empty() || pod.namespace == namespace {
                    out.push(pb::PodStatus {
                        node: entry.name().to_owned(),
                        node_state: convert::node_state(entry.state()) as i32,
                        report_wall_time_unix_nanos: report.wall_time_unix_nanos,
                        pod: Some(pod),
                    });
                }
            }
        }
        out
    }

    /// Every node's latest report, decoded, with the node's state (for views that
    /// read inside reports: GPUs).
    pub fn latest_reports(&self) -> Vec<(pb::NodeState, pb::NodeReport)> {
        let view = self.view();
        view.nodes()
            .filter_map(|e| {
                let report = pb::NodeReport::decode(e.latest().clone()).ok()?;
                Some((convert::node_state(e.state()), report))
            })
            .collect()
    }

    fn announce(&self, node: pb::NodeStatus) {
        // No receiver is fine: nobody is watching.
        let _ = self.inner.events.send(pb::NodeEvent {
            kind: pb::node_event::Kind::Updated as i32,
            node: Some(node),
        });
    }
}

pub fn wall_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
