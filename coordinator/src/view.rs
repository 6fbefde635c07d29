//! The live cluster view, owned: the core's [`ClusterView`] behind one lock, the feed
//! of node changes for watchers, and the clock that stamps both. Reads hand out wire
//! types built from the model under the lock, a page at a time.

use crate::convert;
use crate::metrics::CoordinatorMetrics;
use crate::wire::ReportHead;
use aistor_core::model::Pod;
use aistor_core::{
    Clock, ClusterView, Ingested, NodeEntry, NodeReading, NodeState, Now, ReportKey, ViewConfig,
};
use aistor_proto::v1 as pb;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;

/// What the view keeps of a report beside the model: its head (identity, node
/// usage, disks, GPU section), for display.
pub type StoredHead = Arc<ReportHead>;

#[derive(Debug, Clone)]
pub struct LiveView {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    view: Mutex<ClusterView<StoredHead>>,
    events: broadcast::Sender<pb::NodeEvent>,
    clock: Arc<dyn Clock>,
    metrics: CoordinatorMetrics,
}

/// Where a page of pods continues: after this pod of this node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodCursor {
    pub node: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Which pods a listing wants.
#[derive(Debug, Clone, Default)]
pub struct PodFilter {
    /// Empty: every node.
    pub node: String,
    /// Empty: every namespace.
    pub namespace: String,
}

impl LiveView {
    pub fn new(config: ViewConfig, clock: Arc<dyn Clock>, metrics: CoordinatorMetrics) -> Self {
        // Watchers that fall this far behind are told to resynchronise.
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                view: Mutex::new(ClusterView::new(config)),
                events,
                clock,
                metrics,
            }),
        }
    }

    pub fn now(&self) -> Now {
        self.inner.clock.now()
    }

    pub fn metrics(&self) -> &CoordinatorMetrics {
        &self.inner.metrics
    }

    fn lock(&self) -> MutexGuard<'_, ClusterView<StoredHead>> {
        // Every view operation leaves it consistent; a panic elsewhere must not take
        // the coordinator's view down with it.
        self.inner.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the view under its lock (keep `f` short: ingest waits for it).
    pub fn read<T>(&self, f: impl FnOnce(&ClusterView<StoredHead>) -> T) -> T {
        f(&self.lock())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<pb::NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Applies one converted report; announces the node to watchers when the report
    /// became its latest.
    pub fn apply(
        &self,
        key: ReportKey<'_>,
        collect_interval: Duration,
        reading: NodeReading,
        head: ReportHead,
        now: Now,
    ) -> Ingested {
        let watched = self.inner.events.receiver_count() > 0;
        let (outcome, summary) = {
            let mut view = self.lock();
            let outcome = view.ingest(key, collect_interval, reading, Arc::new(head), now);
            let summary = match outcome {
                Ingested::Applied { latest: true } if watched => {
                    view.node(key.node).map(|n| node_status(n, false))
                }
                _ => None,
            };
            (outcome, summary)
        };
        self.inner.metrics.record_ingest(outcome);
        if let Some(summary) = summary {
            self.announce(summary);
        }
        outcome
    }

    /// Re-evaluates staleness and announces every node whose state changed.
    pub fn refresh(&self) {
        let now = self.now();
        let watched = self.inner.events.receiver_count() > 0;
        let changed: Vec<(String, NodeState, Option<pb::NodeStatus>)> = {
            let mut view = self.lock();
            let names = view.refresh(now.monotonic);
            self.inner.metrics.set_node_counts(&view.state_counts());
            names
                .into_iter()
                .filter_map(|n| {
                    let entry = view.node(&n)?;
                    Some((n, entry.state(), watched.then(|| node_status(entry, false))))
                })
                .collect()
        };
        for (name, state, summary) in changed {
            tracing::info!(node = %name, ?state, "node state changed");
            if let Some(summary) = summary {
                self.announce(summary);
            }
        }
    }

    fn announce(&self, node: pb::NodeStatus) {
        // No receiver is fine: nobody is watching.
        let _ = self.inner.events.send(pb::NodeEvent {
            kind: pb::node_event::Kind::Updated as i32,
            node: Some(node),
        });
    }

    /// One node with every pod's figures.
    pub fn node_status(&self, name: &str) -> Option<pb::NodeStatus> {
        self.read(|v| v.node(name).map(|n| node_status(n, true)))
    }

    /// One node's summary (no pod figures).
    pub fn node_summary(&self, name: &str) -> Option<pb::NodeStatus> {
        self.read(|v| v.node(name).map(|n| node_status(n, false)))
    }

    /// Node summaries (no pod figures) by name, at most `limit` after `after`; and
    /// whether more follow.
    pub fn node_summaries(&self, after: Option<&str>, limit: usize) -> (Vec<pb::NodeStatus>, bool) {
        self.read(|v| {
            let mut nodes = v.nodes_after(after);
            let page: Vec<pb::NodeStatus> = nodes
                .by_ref()
                .take(limit)
                .map(|n| node_status(n, false))
                .collect();
            (page, nodes.next().is_some())
        })
    }

    pub fn node_state(&self, name: &str) -> Option<NodeState> {
        self.read(|v| v.node(name).map(NodeEntry::state))
    }

    /// The node whose latest report has a pod matching `matches`.
    pub fn find_pod_node(&self, matches: impl Fn(&Pod) -> bool) -> Option<String> {
        self.read(|v| {
            v.nodes()
                .find(|n| n.pods().is_ok_and(|pods| pods.iter().any(&matches)))
                .map(|n| n.name().to_owned())
        })
    }

    /// Pods in key order (node, namespace, name, uid), at most `limit` after
    /// `after`; and whether more follow.
    pub fn pods(
        &self,
        filter: &PodFilter,
        after: Option<&PodCursor>,
        limit: usize,
    ) -> (Vec<pb::PodStatus>, bool) {
        self.read(|v| {
            let start = after.map(|c| c.node.as_str());
            // The cursor's own node may still have pods after the cursor.
            let first = after.and_then(|c| v.node(&c.node));
            let nodes = first.into_iter().chain(v.nodes_after(start));
            let mut out = Vec::new();
            for node in nodes {
                if !filter.node.is_empty() && node.name() != filter.node {
                    continue;
                }
                let Ok(pods) = node.pods() else { continue };
                let state = convert::node_state(node.state()) as i32;
                let wall = node.latest_sample().wall_time_unix_nanos;
                for pod in pods {
                    if !filter.namespace.is_empty() && pod.namespace() != filter.namespace {
                        continue;
                    }
                    if after.is_some_and(|c| cursor(node.name(), pod) <= *c) {
                        continue;
                    }
                    if out.len() == limit {
                        return (out, true);
                    }
                    out.push(pb::PodStatus {
                        node: node.name().to_owned(),
                        node_state: state,
                        report_wall_time_unix_nanos: wall,
                        pod: Some(convert::pod(pod)),
                    });
                }
            }
            (out, false)
        })
    }

    /// Every node's latest report with pods named (not measured), for views that
    /// read inside reports (GPUs).
    pub fn latest_reports(&self) -> Vec<(pb::NodeState, pb::NodeReport)> {
        self.read(|v| {
            v.nodes()
                .map(|n| {
                    let pods = gpu_pods(n);
                    (
                        convert::node_state(n.state()),
                        convert::node_report(n.latest(), pods),
                    )
                })
                .collect()
        })
    }
}

/// The cursor that `pod` of `node` would leave.
pub fn cursor(node: &str, pod: &Pod) -> PodCursor {
    PodCursor {
        node: node.to_owned(),
        namespace: pod.namespace().to_owned(),
        name: pod.name().to_owned(),
        uid: pod.uid().to_owned(),
    }
}

/// Names of the pods on the node's GPUs (a GPU process carries a pod uid; the
/// summary names those pods so GPU views can show them without every pod).
fn gpu_pods(n: &NodeEntry<StoredHead>) -> Vec<pb::Pod> {
    let on_gpus: HashSet<&str> = n
        .latest()
        .gpu
        .iter()
        .flat_map(|s| &s.gpus)
        .flat_map(|g| &g.processes)
        .map(|p| p.pod_uid.as_str())
        .filter(|uid| !uid.is_empty())
        .collect();
    n.pods()
        .unwrap_or_default()
        .iter()
        .filter(|p| on_gpus.contains(p.uid()))
        .map(convert::pod_identity)
        .collect()
}

/// A node as the APIs show it: with every pod's figures, or as a summary (no pod
/// figures, `pod_count` instead).
fn node_status(n: &NodeEntry<StoredHead>, with_pods: bool) -> pb::NodeStatus {
    let pods = if with_pods {
        n.pods()
            .unwrap_or_default()
            .iter()
            .map(convert::pod)
            .collect()
    } else {
        gpu_pods(n)
    };
    pb::NodeStatus {
        pod_count: n
            .pods()
            .ok()
            .map(|p| u32::try_from(p.len()).unwrap_or(u32::MAX)),
        name: n.name().to_owned(),
        state: convert::node_state(n.state()) as i32,
        last_report_unix_nanos: n.last_received_wall_unix_nanos(),
        reports_received_total: n.reports_received_total(),
        duplicates_dropped_total: n.duplicates_dropped_total(),
        latest: Some(convert::node_report(n.latest(), pods)),
        // Stamped by the API that answers (the view does not know how it runs).
        coordinator_mode: String::new(),
    }
}
