//! The coordinator's shared state: the core's view behind a lock, the feed of node
//! changes for watchers, and the coordinator's clocks.

use crate::convert::{self, NodeSnapshot, ReceivedReport, ReportPods, StoredReport};
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
    /// node's latest. The report's bytes are stored as they are; only its head was
    /// decoded.
    pub fn ingest(&self, report: ReceivedReport) -> Result<Ingested, InvalidReport> {
        let ReceivedReport { head, bytes } = report;
        let node = head.node.as_ref().ok_or(InvalidReport::NoNode)?;
        if node.name.is_empty() {
            return Err(InvalidReport::NoName);
        }
        if head.seq == 0 {
            return Err(InvalidReport::ZeroSeq);
        }
        if head.agent_instance.is_empty() {
            return Err(InvalidReport::NoInstance);
        }
        let key = ReportKey {
            node: &node.name,
            boot_id: &node.boot_id,
            agent_instance: &head.agent_instance,
            seq: head.seq,
        };
        let sample = convert::node_sample(&head);
        let interval = Duration::from_nanos(head.collect_interval_nanos.max(1));
        let now = self.now();
        let (outcome, snapshot) = {
            let mut view = self.view();
            let outcome = view.ingest(key, interval, sample, bytes, now);
            // Decoding the full status is only worth it when someone is watching; it
            // happens after the lock is released.
            let watched = self.inner.events.receiver_count() > 0;
            let snapshot = match outcome {
                Ingested::Applied { latest: true } if watched => {
                    view.node(&node.name).map(NodeSnapshot::of)
                }
                _ => None,
            };
            (outcome, snapshot)
        };
        self.inner.metrics.record_ingest(outcome);
        if let Ingested::Applied { .. } = outcome {
            for result in head.measurements {
                self.inner
                    .measurements
                    .complete(result, now.wall_unix_nanos);
            }
        }
        if let Some(snapshot) = snapshot {
            self.announce(snapshot.status());
        }
        Ok(outcome)
    }

    /// Re-evaluates staleness and announces every node whose state changed.
    pub fn refresh(&self) {
        let now = self.now();
        // Decoding a full status is only worth it when someone is watching.
        let watched = self.inner.events.receiver_count() > 0;
        let changed: Vec<(String, aistor_core::NodeState, Option<NodeSnapshot>)> = {
            let mut view = self.view();
            let names = view.refresh(now.monotonic);
            let counts = view.state_counts();
            self.inner.metrics.set_node_counts(&counts);
            names
                .into_iter()
                .filter_map(|n| {
                    let entry = view.node(&n)?;
                    Some((n, entry.state(), watched.then(|| NodeSnapshot::of(entry))))
                })
                .collect()
        };
        for (name, state, snapshot) in changed {
            tracing::info!(node = %name, ?state, "node state changed");
            if let Some(snapshot) = snapshot {
                self.announce(snapshot.status());
            }
        }
    }

    /// The full status of `node` (its latest report decoded outside the view's lock).
    pub fn node_status(&self, node: &str) -> Option<pb::NodeStatus> {
        let snapshot = self.view().node(node).map(NodeSnapshot::of);
        snapshot.map(NodeSnapshot::status)
    }

    /// The full status of every node (reports decoded outside the view's lock).
    pub fn node_statuses(&self) -> Vec<pb::NodeStatus> {
        self.snapshots()
            .into_iter()
            .map(NodeSnapshot::status)
            .collect()
    }

    /// Every node's bookkeeping and latest report bytes, copied under the lock
    /// (cheap: the bytes are reference-counted), for decoding after it.
    fn snapshots(&self) -> Vec<NodeSnapshot> {
        self.view().nodes().map(NodeSnapshot::of).collect()
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
        self.snapshots().into_iter().find_map(|node| {
            let report = ReportPods::decode(node.latest).ok()?;
            report.pods.iter().any(&matches).then_some(node.name)
        })
    }

    /// Pods of every node (filtered), from each node's latest report.
    pub fn pods(&self, node: &str, namespace: &str) -> Vec<pb::PodStatus> {
        let snapshots: Vec<NodeSnapshot> = self
            .view()
            .nodes()
            .filter(|e| node.is_empty() || e.name() == node)
            .map(NodeSnapshot::of)
            .collect();
        let mut out = Vec::new();
        for snapshot in snapshots {
            let Ok(report) = ReportPods::decode(snapshot.latest) else {
                continue;
            };
            let node_state = convert::node_state(snapshot.state) as i32;
            for pod in report.pods {
                if namespace.is_empty() || pod.namespace == namespace {
                    out.push(pb::PodStatus {
                        node: snapshot.name.clone(),
                        node_state,
                        report_wall_time_unix_nanos: report.wall_time_unix_nanos,
                        pod: Some(pod),
                    });
                }
            }
        }
        out
    }

    /// Every node's latest report, decoded (outside the view's lock), with the
    /// node's state (for views that read inside reports: GPUs).
    pub fn latest_reports(&self) -> Vec<(pb::NodeState, pb::NodeReport)> {
        self.snapshots()
            .into_iter()
            .filter_map(|s| {
                let report = pb::NodeReport::decode(s.latest).ok()?;
                Some((convert::node_state(s.state), report))
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
