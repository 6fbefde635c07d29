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

/// Which pods a listing wants.
#[derive(Debug, Clone, Default)]
pub struct PodFilter {
    /// Empty: every node.
    pub node: String,
    /// Empty: every namespace.
    pub namespace: String,
    /// Empty: every pod; otherwise only pods whose (joined) labels match.
    pub selector: aistor_core::selector::LabelSelector,
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

    /// How much history each pod keeps (the longest window a decision can read).
    pub fn pod_window(&self) -> std::time::Duration {
        self.lock().config().pod_window
    }

    pub fn metrics(&self) -> &CoordinatorMetrics {
        &self.inner.metrics
    }

    fn lock(&self) -> MutexGuard<'_, ClusterView<StoredHead>> {
        // Every view operation leaves it consistent; a panic elsewhere must not take
        // the coordinator's view down with it.
        self.inner.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the view would refuse a report under `key` whatever it carries.
    pub fn refusal(&self, key: &ReportKey<'_>) -> Option<Ingested> {
        self.lock().refusal(key)
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
        let forgotten;
        let changed: Vec<(String, NodeState, Option<pb::NodeStatus>)> = {
            let mut view = self.lock();
            let names = view.refresh(now.monotonic);
            forgotten = view.forget_silent(now.monotonic);
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
        for name in forgotten {
            tracing::info!(node = %name, "node forgotten: silent for longer than --forget-nodes-after");
            if watched {
                let _ = self.inner.events.send(pb::NodeEvent {
                    kind: pb::node_event::Kind::Deleted as i32,
                    node: Some(pb::NodeStatus {
                        name,
                        ..Default::default()
                    }),
                });
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

    /// The names of the nodes after `after` (all when `None`), in order: what a
    /// listing pages over, one node at a time.
    pub fn node_names(&self, after: Option<&str>) -> Vec<String> {
        self.read(|v| v.nodes_after(after).map(|n| n.name().to_owned()).collect())
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

    /// Pods with every figure, in key order (node, namespace, name, uid). Callers
    /// page by node (`filter.node`), so no call builds more than one node's pods
    /// unless asked to.
    pub fn pods(&self, filter: &PodFilter) -> Vec<pb::PodStatus> {
        self.read(|v| {
            let nodes: Vec<&NodeEntry<StoredHead>> = if filter.node.is_empty() {
                v.nodes().collect()
            } else {
                v.node(&filter.node).into_iter().collect()
            };
            let mut out = Vec::new();
            for node in nodes {
                let Ok(pods) = node.pods() else { continue };
                let state = convert::node_state(node.state()) as i32;
                let wall = node.latest_sample().wall_time_unix_nanos;
                out.extend(
                    pods.iter()
                        .filter(|p| {
                            filter.namespace.is_empty() || p.namespace() == filter.namespace
                        })
                        .filter(|p| {
                            filter.selector.is_empty()
                                || filter
                                    .selector
                                    .matches(p.labels.iter().map(|(k, v)| (&**k, &**v)))
                        })
                        .map(|pod| pb::PodStatus {
                            node: node.name().to_owned(),
                            node_state: state,
                            report_wall_time_unix_nanos: wall,
                            pod: Some(convert::pod(pod)),
                        }),
                );
            }
            out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::reading;
    use crate::wire::ReceivedReport;
    use aistor_core::ManualClock;
    use std::time::Duration;

    const START: u64 = 1_700_000_000_000_000_000;

    fn pod(uid: &str, namespace: &str, name: &str) -> pb::Pod {
        pb::Pod {
            uid: uid.into(),
            name: name.into(),
            namespace: namespace.into(),
            cgroup_path: format!("kubepods/pod{uid}"),
            ..Default::default()
        }
    }

    fn report(node: &str, seq: u64, pods: Vec<pb::Pod>) -> pb::NodeReport {
        pb::NodeReport {
            node: Some(pb::NodeIdentity {
                name: node.into(),
                boot_id: "boot".into(),
                ..Default::default()
            }),
            agent_instance: "a".into(),
            seq,
            wall_time_unix_nanos: START + seq,
            collect_interval_nanos: 1_000_000_000,
            pods,
            // One GPU process belongs to pod "g".
            gpu: Some(pb::GpuSection {
                gpus: vec![pb::Gpu {
                    uuid: "GPU-1".into(),
                    processes: vec![pb::GpuProcess {
                        pid: 1,
                        pod_uid: "g".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn apply(view: &LiveView, r: &pb::NodeReport) -> Ingested {
        let c = reading::convert(
            ReceivedReport::from_report(r),
            view.now().wall_unix_nanos,
            &Default::default(),
        )
        .unwrap();
        let node = r.node.as_ref().unwrap();
        let key = ReportKey {
            node: &node.name,
            boot_id: &node.boot_id,
            agent_instance: &r.agent_instance,
            seq: r.seq,
            connection: 1,
        };
        view.apply(key, Duration::from_secs(1), c.reading, c.head, view.now())
    }

    fn view() -> (LiveView, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Now {
            monotonic: Duration::from_secs(1),
            wall_unix_nanos: START,
        }));
        let view = LiveView::new(ViewConfig::default(), clock.clone(), Default::default());
        (view, clock)
    }

    fn names(pods: &[pb::PodStatus]) -> Vec<String> {
        pods.iter()
            .map(|p| {
                let pod = p.pod.as_ref().unwrap();
                format!("{}:{}/{}", p.node, pod.namespace, pod.name)
            })
            .collect()
    }

    #[test]
    fn summaries_count_pods_and_keep_only_those_on_gpus() {
        let (v, _) = view();
        let pods = vec![pod("a", "ml", "train"), pod("g", "ml", "infer")];
        assert_eq!(
            apply(&v, &report("n1", 1, pods)),
            Ingested::Applied { latest: true }
        );
        let summary = v.node_summary("n1").unwrap();
        assert_eq!(summary.pod_count, Some(2));
        let kept = summary.latest.unwrap().pods;
        assert_eq!(kept.len(), 1, "only the pod a GPU process belongs to");
        assert_eq!((kept[0].uid.as_str(), kept[0].usage.is_none()), ("g", true));
        let full = v.node_status("n1").unwrap();
        assert_eq!(full.pod_count, Some(2));
        assert_eq!(full.latest.unwrap().pods.len(), 2);
        assert!(v.node_status("nope").is_none() && v.node_summary("nope").is_none());
        let (gpus_state, gpus_report) = &v.latest_reports()[0];
        assert_eq!(*gpus_state, pb::NodeState::Ready);
        assert_eq!(gpus_report.pods.len(), 1);
    }

    #[test]
    fn pods_are_listed_in_key_order_and_filtered() {
        let (v, _) = view();
        apply(
            &v,
            &report("n2", 1, vec![pod("c", "b", "z"), pod("d", "a", "y")]),
        );
        apply(&v, &report("n1", 1, vec![pod("e", "b", "x")]));
        let all = v.pods(&PodFilter::default());
        assert_eq!(names(&all), ["n1:b/x", "n2:a/y", "n2:b/z"]);
        let n2 = v.pods(&PodFilter {
            node: "n2".into(),
            ..Default::default()
        });
        assert_eq!(names(&n2), ["n2:a/y", "n2:b/z"]);
        let ns_b = v.pods(&PodFilter {
            namespace: "b".into(),
            ..Default::default()
        });
        assert_eq!(names(&ns_b), ["n1:b/x", "n2:b/z"]);
        assert!(
            v.pods(&PodFilter {
                node: "none".into(),
                ..Default::default()
            })
            .is_empty()
        );
        assert_eq!(v.find_pod_node(|p| p.uid() == "d"), Some("n2".into()));
        assert_eq!(v.find_pod_node(|p| p.uid() == "zz"), None);
        assert_eq!(v.node_names(None), ["n1", "n2"]);
        assert_eq!(v.node_names(Some("n1")), ["n2"]);
        assert!(v.node_names(Some("n2")).is_empty());
    }

    #[tokio::test]
    async fn watchers_get_summaries_of_new_reports_and_state_changes() {
        let (v, clock) = view();
        let mut events = v.subscribe();
        apply(&v, &report("n1", 1, vec![pod("a", "ml", "p")]));
        let e = events.try_recv().unwrap();
        let node = e.node.unwrap();
        assert_eq!(e.kind, pb::node_event::Kind::Updated as i32);
        assert_eq!(
            (node.pod_count, node.latest.unwrap().pods.len()),
            (Some(1), 0)
        );
        // A replay is not news.
        assert_eq!(apply(&v, &report("n1", 1, vec![])), Ingested::Duplicate);
        assert!(events.try_recv().is_err());
        // Three silent intervals: stale, announced.
        clock.advance(Duration::from_secs(4));
        v.refresh();
        let stale = events.try_recv().unwrap().node.unwrap();
        assert_eq!(stale.state, pb::NodeState::Stale as i32);
        assert_eq!(v.node_state("n1"), Some(NodeState::Stale));
    }
}
