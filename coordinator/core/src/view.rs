//! The live cluster view: the newest report per node, a short window of figures per
//! node for percentiles and stabilisation, de-duplication of replayed reports, and
//! staleness.
//!
//! The payload `R` is whatever the shell keeps of a report (the encoded protobuf):
//! the core only reads the figures in [`NodeSample`].

use crate::sequence::SeqTracker;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

/// The coordinator's clocks at one instant: monotonic time decides staleness (wall
/// clocks jump); wall time is what people are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    pub monotonic: Duration,
    pub wall_unix_nanos: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewConfig {
    /// How much history each node keeps.
    pub window: Duration,
    /// Collection intervals without a report after which a node is stale.
    pub stale_after_intervals: u32,
}

impl Default for ViewConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            stale_after_intervals: 3,
        }
    }
}

/// Identifies one report: the agent process (`boot_id`, `agent_instance`) and its seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportKey<'a> {
    pub node: &'a str,
    pub boot_id: &'a str,
    pub agent_instance: &'a str,
    pub seq: u64,
}

/// The decision-relevant figures of one report. `None` means the agent could not
/// measure it; it is never replaced by zero.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeSample {
    pub wall_time_unix_nanos: u64,
    pub cpu_millicores: Option<f64>,
    pub cpu_capacity_millicores: u64,
    pub memory_working_set_bytes: Option<u64>,
    pub memory_total_bytes: u64,
    pub disk_read_bytes_per_second: Option<f64>,
    pub disk_write_bytes_per_second: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Ready,
    /// Shown to people, never used for decisions.
    Stale,
}

/// What happened to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored; `latest` when it is now the node's newest report.
    Applied { latest: bool },
    /// Already applied (a replay after a lost acknowledgement): dropped.
    Duplicate,
}

/// Agent processes remembered per node for de-duplication; older ones are forgotten
/// (their replays cannot arrive once a newer process reports).
const INSTANCES_KEPT: usize = 4;

#[derive(Debug, Clone)]
pub struct NodeEntry<R> {
    name: String,
    latest: R,
    latest_sample: NodeSample,
    latest_origin: (String, u64),
    last_received: Duration,
    last_received_wall_unix_nanos: u64,
    collect_interval: Duration,
    state: NodeState,
    window: VecDeque<NodeSample>,
    instances: Vec<(String, SeqTracker)>,
    reports_received_total: u64,
    duplicates_dropped_total: u64,
}

impl<R> NodeEntry<R> {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The newest report (highest seq of the newest agent process).
    pub fn latest(&self) -> &R {
        &self.latest
    }
    pub fn latest_sample(&self) -> &NodeSample {
        &self.latest_sample
    }
    /// The state as of the last [`ClusterView::refresh`] or ingest.
    pub fn state(&self) -> NodeState {
        self.state
    }
    pub fn last_received_wall_unix_nanos(&self) -> u64 {
        self.last_received_wall_unix_nanos
    }
    pub fn reports_received_total(&self) -> u64 {
        self.reports_received_total
    }
    pub fn duplicates_dropped_total(&self) -> u64 {
        self.duplicates_dropped_total
    }
    /// Samples within the window, oldest first (by the agent's wall time).
    pub fn window(&self) -> impl ExactSizeIterator<Item = &NodeSample> {
        self.window.iter()
    }

    fn state_at(&self, now: Duration, config: &ViewConfig) -> NodeState {
        let allowed = self
            .collect_interval
            .saturating_mul(config.stale_after_intervals);
        if now.saturating_sub(self.last_received) > allowed {
            NodeState::Stale
        } else {
            NodeState::Ready
        }
    }

    fn tracker(&mut self, agent_process: String) -> &mut SeqTracker {
        let at = match self.instances.iter().position(|(k, _)| *k == agent_process) {
            Some(at) => at,
            None => {
                if self.instances.len() == INSTANCES_KEPT {
                    self.instances.remove(0);
                }
                self.instances.push((agent_process, SeqTracker::default()));
                self.instances.len() - 1
            }
        };
        &mut self.instances[at].1
    }

    fn insert_sample(&mut self, sample: NodeSample, window: Duration) {
        // Replays arrive late; keep the window ordered by the agent's clock.
        let at = self
            .window
            .partition_point(|s| s.wall_time_unix_nanos <= sample.wall_time_unix_nanos);
        self.window.insert(at, sample);
        let newest = self.window.back().map_or(0, |s| s.wall_time_unix_nanos);
        let horizon = newest.saturating_sub(u64::try_from(window.as_nanos()).unwrap_or(u64::MAX));
        while self
            .window
            .front()
            .is_some_and(|s| s.wall_time_unix_nanos < horizon)
        {
            self.window.pop_front();
        }
    }
}

/// Every node that has reported, by name.
#[derive(Debug, Clone)]
pub struct ClusterView<R> {
    config: ViewConfig,
    nodes: BTreeMap<String, NodeEntry<R>>,
}

impl<R> ClusterView<R> {
    pub fn new(config: ViewConfig) -> Self {
        Self {
            config,
            nodes: BTreeMap::new(),
        }
    }

    /// Applies one report unless it is a duplicate. `collect_interval` is the agent's
    /// configured interval (it sets the staleness deadline).
    pub fn ingest(
        &mut self,
        key: ReportKey<'_>,
        collect_interval: Duration,
        sample: NodeSample,
        report: R,
        now: Now,
    ) -> Ingested {
        let window = self.config.window;
        let origin = (format!("{}/{}", key.boot_id, key.agent_instance), key.seq);
        let Some(entry) = self.nodes.get_mut(key.node) else {
            let mut entry = NodeEntry {
                name: key.node.to_owned(),
                latest: report,
                latest_sample: sample,
                latest_origin: origin.clone(),
                last_received: now.monotonic,
                last_received_wall_unix_nanos: now.wall_unix_nanos,
                collect_interval,
                state: NodeState::Ready,
                window: VecDeque::new(),
                instances: Vec::new(),
                reports_received_total: 1,
                duplicates_dropped_total: 0,
            };
            entry.tracker(origin.0).admit(key.seq);
            entry.insert_sample(sample, window);
            self.nodes.insert(key.node.to_owned(), entry);
            return Ingested::Applied { latest: true };
        };

        entry.reports_received_total += 1;
        if !entry.tracker(origin.0.clone()).admit(key.seq) {
            entry.duplicates_dropped_total += 1;
            return Ingested::Duplicate;
        }
        entry.insert_sample(sample, window);
        // Within one agent process seq orders reports; across processes (agent
        // restart) the agent's wall clock does.
        let newer = if entry.latest_origin.0 == origin.0 {
            key.seq > entry.latest_origin.1
        } else {
            sample.wall_time_unix_nanos >= entry.latest_sample.wall_time_unix_nanos
        };
        if newer {
            entry.latest = report;
            entry.latest_sample = sample;
            entry.latest_origin = origin;
            entry.collect_interval = collect_interval;
            entry.last_received = now.monotonic;
            entry.last_received_wall_unix_nanos = now.wall_unix_nanos;
            entry.state = NodeState::Ready;
        }
        Ingested::Applied { latest: newer }
    }

    /// Re-evaluates staleness at `now`; returns the names of nodes whose state changed.
    pub fn refresh(&mut self, now: Duration) -> Vec<String> {
        let config = self.config;
        let mut changed = Vec::new();
        for entry in self.nodes.values_mut() {
            let state = entry.state_at(now, &config);
            if state != entry.state {
                entry.state = state;
                changed.push(entry.name.clone());
            }
        }
        changed
    }

    pub fn node(&self, name: &str) -> Option<&NodeEntry<R>> {
        self.nodes.get(name)
    }

    /// All nodes by name, stale ones included (for display).
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &NodeEntry<R>> {
        self.nodes.values()
    }

    /// Nodes that may be used for decisions at `now`: never a stale one.
    pub fn usable_nodes(&self, now: Duration) -> impl Iterator<Item = &NodeEntry<R>> {
        let config = self.config;
        self.nodes
            .values()
            .filter(move |n| n.state_at(now, &config) == NodeState::Ready)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Counts by state, for metrics.
    pub fn state_counts(&self) -> HashMap<&'static str, usize> {
        let mut counts = HashMap::from([("ready", 0), ("stale", 0)]);
        for n in self.nodes.values() {
            let key = match n.state {
                NodeState::Ready => "ready",
                NodeState::Stale => "stale",
            };
            *counts.entry(key).or_default() += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn key(seq: u64) -> ReportKey<'static> {
        ReportKey {
            node: "n1",
            boot_id: "boot-a",
            agent_instance: "100-1",
            seq,
        }
    }

    fn sample(wall_secs: u64, cpu: f64) -> NodeSample {
        NodeSample {
            wall_time_unix_nanos: wall_secs * SEC,
            cpu_millicores: Some(cpu),
            cpu_capacity_millicores: 2000,
            ..Default::default()
        }
    }

    fn at(secs: u64) -> Now {
        Now {
            monotonic: Duration::from_secs(secs),
            wall_unix_nanos: (1000 + secs) * SEC,
        }
    }

    fn view() -> ClusterView<u64> {
        ClusterView::new(ViewConfig::default())
    }

    const INTERVAL: Duration = Duration::from_secs(1);

    #[test]
    fn newest_report_is_latest_and_replays_are_dropped() {
        let mut v = view();
        assert_eq!(
            v.ingest(key(1), INTERVAL, sample(1, 10.0), 1, at(1)),
            Ingested::Applied { latest: true }
        );
        assert_eq!(
            v.ingest(key(2), INTERVAL, sample(2, 20.0), 2, at(2)),
            Ingested::Applied { latest: true }
        );
        assert_eq!(
            v.ingest(key(2), INTERVAL, sample(2, 20.0), 2, at(3)),
            Ingested::Duplicate
        );
        let n = v.node("n1").unwrap();
        assert_eq!(*n.latest(), 2);
        assert_eq!(n.reports_received_total(), 3);
        assert_eq!(n.duplicates_dropped_total(), 1);
        assert_eq!(n.window().len(), 2);
    }

    #[test]
    fn a_late_gap_fill_joins_the_window_but_not_latest() {
        let mut v = view();
        v.ingest(key(1), INTERVAL, sample(1, 10.0), 1, at(1));
        v.ingest(key(3), INTERVAL, sample(3, 30.0), 3, at(3));
        assert_eq!(
            v.ingest(key(2), INTERVAL, sample(2, 20.0), 2, at(4)),
            Ingested::Applied { latest: false }
        );
        let n = v.node("n1").unwrap();
        assert_eq!(*n.latest(), 3);
        let cpus: Vec<_> = n.window().map(|s| s.cpu_millicores.unwrap()).collect();
        assert_eq!(cpus, [10.0, 20.0, 30.0], "window ordered by agent time");
    }

    #[test]
    fn a_restarted_agent_is_not_mistaken_for_a_replay() {
        let mut v = view();
        v.ingest(key(5), INTERVAL, sample(5, 10.0), 5, at(5));
        let restarted = ReportKey {
            agent_instance: "200-9",
            seq: 1,
            ..key(0)
        };
        assert_eq!(
            v.ingest(restarted, INTERVAL, sample(6, 60.0), 6, at(6)),
            Ingested::Applied { latest: true }
        );
        assert_eq!(*v.node("n1").unwrap().latest(), 6);
    }

    #[test]
    fn a_node_silent_for_three_intervals_becomes_stale_and_recovers() {
        let mut v = view();
        v.ingest(key(1), INTERVAL, sample(1, 10.0), 1, at(10));
        assert!(
            v.refresh(Duration::from_secs(13)).is_empty(),
            "exactly 3 intervals is still ready"
        );
        assert_eq!(v.usable_nodes(Duration::from_secs(13)).count(), 1);
        assert_eq!(v.refresh(Duration::from_millis(13_001)), ["n1"]);
        assert_eq!(v.node("n1").unwrap().state(), NodeState::Stale);
        assert_eq!(v.usable_nodes(Duration::from_millis(13_001)).count(), 0);
        assert_eq!(v.state_counts()["stale"], 1);
        v.ingest(key(2), INTERVAL, sample(14, 10.0), 2, at(14));
        assert_eq!(v.node("n1").unwrap().state(), NodeState::Ready);
    }

    #[test]
    fn staleness_follows_each_agents_interval() {
        let mut v = view();
        v.ingest(key(1), Duration::from_secs(10), sample(1, 1.0), 1, at(0));
        assert!(v.refresh(Duration::from_secs(29)).is_empty());
        assert_eq!(v.refresh(Duration::from_secs(31)), ["n1"]);
    }

    #[test]
    fn window_drops_samples_older_than_its_span() {
        let mut v = ClusterView::new(ViewConfig {
            window: Duration::from_secs(10),
            ..Default::default()
        });
        for s in 1..=30 {
            v.ingest(key(s), INTERVAL, sample(s, s as f64), s, at(s));
        }
        let n = v.node("n1").unwrap();
        let first = n.window().next().unwrap().wall_time_unix_nanos;
        assert_eq!(first, 20 * SEC);
        assert_eq!(n.window().len(), 11);
    }

    #[test]
    fn missing_figures_stay_missing() {
        let mut v = view();
        let blind = NodeSample {
            cpu_millicores: None,
            ..sample(1, 0.0)
        };
        v.ingest(key(1), INTERVAL, blind, 1, at(1));
        assert_eq!(v.node("n1").unwrap().latest_sample().cpu_millicores, None);
    }
}
