//! The live cluster view: the newest report per node, a short window of figures per
//! node for percentiles and stabilisation, de-duplication of replayed reports, and
//! staleness.
//!
//! The payload `R` is whatever the shell keeps of a report (the encoded protobuf):
//! the core only reads the figures in [`NodeSample`].

pub use crate::clock::Now;
use crate::model::{GpuDevice, Pod, PodSample};
use crate::sequence::SeqTracker;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewConfig {
    /// How much history each node keeps.
    pub window: Duration,
    /// How much history each pod keeps: the longest span a decision reads.
    pub pod_window: Duration,
    /// Collection intervals without a report after which a node is stale.
    pub stale_after_intervals: u32,
    /// At most this many nodes are kept; a report naming another node is refused.
    pub max_nodes: usize,
    /// A node silent this long is forgotten (its agent is gone, or it was never real).
    pub forget_after: Duration,
}

impl Default for ViewConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            pod_window: Duration::from_secs(30),
            stale_after_intervals: 3,
            max_nodes: 10_000,
            forget_after: Duration::from_secs(3600),
        }
    }
}

/// Identifies one report: the agent process (`boot_id`, `agent_instance`) and its
/// seq, and the connection it came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportKey<'a> {
    pub node: &'a str,
    pub boot_id: &'a str,
    pub agent_instance: &'a str,
    pub seq: u64,
    /// The shell numbers connections in the order they were opened. The newest
    /// connection for a node owns it: its agent process's reports are the node's
    /// latest, whatever their wall clock says, and an older connection is
    /// superseded. Agents' clocks only label data; they never decide who is newer.
    pub connection: u64,
}

/// The decision-relevant figures of one report. `None` means the agent could not
/// measure it; it is never replaced by zero.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeSample {
    pub wall_time_unix_nanos: u64,
    pub cpu_millicores: Option<f64>,
    pub cpu_capacity_millicores: Option<u64>,
    pub memory_working_set_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub disk_read_bytes_per_second: Option<f64>,
    pub disk_write_bytes_per_second: Option<f64>,
    /// Share of the interval the busiest whole disk had I/O in flight (0–100).
    pub disk_busy_percent: Option<f64>,
}

/// Everything ingest took from one report, converted once.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReading {
    pub sample: NodeSample,
    /// The measured interval the report's rates cover; absent on an agent's first report.
    pub interval: Option<Duration>,
    /// The node's pods, or why the agent could not look.
    pub pods: Result<Vec<Pod>, Box<str>>,
    pub gpus: Vec<GpuDevice>,
}

impl Default for NodeReading {
    fn default() -> Self {
        Self {
            sample: NodeSample::default(),
            interval: None,
            pods: Ok(Vec::new()),
            gpus: Vec::new(),
        }
    }
}

impl From<NodeSample> for NodeReading {
    /// A reading of the node's own figures only (no pods or GPUs reported).
    fn from(sample: NodeSample) -> Self {
        Self {
            sample,
            ..Self::default()
        }
    }
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
    /// From a connection older than the one that now owns the node: dropped, and
    /// the shell ends that connection.
    Superseded,
    /// A node the view does not know, and it already holds `max` nodes: refused.
    TooManyNodes { max: usize },
}

/// How far below the highest seq applied a reconnected agent process may start
/// replaying: the acknowledgements it can have missed (those in flight when its
/// stream broke: the outbound queue and the socket's buffers), with room to spare.
const MAX_REPLAY_GAP: u64 = 4096;

/// Agent processes remembered per node for de-duplication; older ones are forgotten
/// (their replays cannot arrive once a newer process reports).
const INSTANCES_KEPT: usize = 4;

#[derive(Debug, Clone)]
pub struct NodeEntry<R> {
    name: String,
    latest: R,
    latest_sample: NodeSample,
    latest_interval: Option<Duration>,
    pods: Result<Vec<Pod>, Box<str>>,
    gpus: Vec<GpuDevice>,
    latest_origin: (String, u64),
    /// The connection that owns the node (see [`ReportKey::connection`]).
    owner: u64,
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
    /// The interval the latest report's rates were measured over.
    pub fn latest_interval(&self) -> Option<Duration> {
        self.latest_interval
    }
    /// The pods of the latest report, ordered by namespace, name and uid; or why
    /// the agent could not look.
    pub fn pods(&self) -> Result<&[Pod], &str> {
        self.pods.as_deref().map_err(|reason| &**reason)
    }
    /// The GPUs of the latest report.
    pub fn gpus(&self) -> &[GpuDevice] {
        &self.gpus
    }
    /// The state as of the last [`ClusterView::refresh`] or ingest.
    pub fn state(&self) -> NodeState {
        self.state
    }
    /// When the latest report arrived, on the coordinator's monotonic clock.
    pub fn last_received(&self) -> Duration {
        self.last_received
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

    /// The latest pods replace the previous ones; each keeps its window (matched by
    /// identity) and gains this report's sample. A pod that left the node leaves
    /// its window behind with it.
    fn replace_pods(
        &mut self,
        pods: Result<Vec<Pod>, Box<str>>,
        at_unix_nanos: u64,
        span: Duration,
    ) {
        let mut previous: HashMap<Box<str>, crate::model::PodWindow> =
            match std::mem::replace(&mut self.pods, Ok(Vec::new())) {
                Ok(old) => old
                    .into_iter()
                    .map(|p| (pod_identity(&p).into(), p.window))
                    .collect(),
                Err(_) => HashMap::new(),
            };
        self.pods = pods.map(|mut pods| {
            for pod in &mut pods {
                let mut window = previous.remove(pod_identity(pod)).unwrap_or_default();
                window.insert(
                    PodSample::on_node(at_unix_nanos, &pod.usage, &pod.gpus, &self.gpus),
                    span,
                );
                pod.window = window;
            }
            pods
        });
    }

    /// A late report (a replay filling a gap) adds its samples to the windows of the
    /// pods that are still here; it changes nothing else.
    fn fill_pod_windows(
        &mut self,
        pods: Result<Vec<Pod>, Box<str>>,
        gpus: &[GpuDevice],
        at_unix_nanos: u64,
        span: Duration,
    ) {
        let (Ok(late), Ok(current)) = (pods, &mut self.pods) else {
            return;
        };
        let at: HashMap<Box<str>, usize> = current
            .iter()
            .enumerate()
            .map(|(i, p)| (pod_identity(p).into(), i))
            .collect();
        for pod in &late {
            if let Some(&i) = at.get(pod_identity(pod)) {
                current[i].window.insert(
                    PodSample::on_node(at_unix_nanos, &pod.usage, &pod.gpus, gpus),
                    span,
                );
            }
        }
    }

    /// Forgets the node's and its pods' samples later than `at_unix_nanos`.
    fn forget_after(&mut self, at_unix_nanos: u64) {
        let keep = self
            .window
            .partition_point(|s| s.wall_time_unix_nanos <= at_unix_nanos);
        self.window.truncate(keep);
        if let Ok(pods) = &mut self.pods {
            for pod in pods {
                pod.window.forget_after(at_unix_nanos);
            }
        }
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

/// What identifies a pod across reports: its uid, or for a workload cgroup (no
/// uid) its cgroup path.
fn pod_identity(pod: &Pod) -> &str {
    if pod.key.uid.is_empty() {
        &pod.cgroup_path
    } else {
        &pod.key.uid
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

    /// Why a report under `key` would be refused whatever it carries: its
    /// connection was superseded, or its node is new and the view is full. The shell
    /// asks before it acts on a report's contents (measurement results).
    pub fn refusal(&self, key: &ReportKey<'_>) -> Option<Ingested> {
        match self.nodes.get(key.node) {
            Some(entry) if key.connection < entry.owner => Some(Ingested::Superseded),
            Some(_) => None,
            None if self.nodes.len() >= self.config.max_nodes => Some(Ingested::TooManyNodes {
                max: self.config.max_nodes,
            }),
            None => None,
        }
    }

    /// Applies one report unless it is a duplicate. `collect_interval` is the agent's
    /// configured interval (it sets the staleness deadline).
    pub fn ingest(
        &mut self,
        key: ReportKey<'_>,
        collect_interval: Duration,
        reading: NodeReading,
        report: R,
        now: Now,
    ) -> Ingested {
        let (window, pod_window) = (self.config.window, self.config.pod_window);
        let origin = (format!("{}/{}", key.boot_id, key.agent_instance), key.seq);
        let NodeReading {
            sample,
            interval,
            mut pods,
            gpus,
        } = reading;
        if let Ok(pods) = &mut pods {
            pods.sort_by(|a, b| a.key.cmp(&b.key));
        }
        if let Some(refused) = self.refusal(&key) {
            return refused;
        }
        let Some(entry) = self.nodes.get_mut(key.node) else {
            let mut entry = NodeEntry {
                name: key.node.to_owned(),
                latest: report,
                latest_sample: sample,
                latest_interval: interval,
                pods: Ok(Vec::new()),
                gpus,
                latest_origin: origin.clone(),
                owner: key.connection,
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
            entry.replace_pods(pods, sample.wall_time_unix_nanos, pod_window);
            self.nodes.insert(key.node.to_owned(), entry);
            return Ingested::Applied { latest: true };
        };

        entry.reports_received_total += 1;
        let new_connection = key.connection > entry.owner;
        entry.owner = key.connection;
        let tracker = entry.tracker(origin.0.clone());
        if new_connection && key.seq.saturating_add(MAX_REPLAY_GAP) < tracker.highest() {
            // A reconnected agent replays from just after the last acknowledgement it
            // got; a record this far ahead was never its own (a report sent under its
            // name, e.g. seq u64::MAX first). Start the record again from this stream.
            *tracker = SeqTracker::default();
            if entry.latest_origin.0 == origin.0 {
                entry.latest_origin.1 = 0;
            }
        }
        if !entry.tracker(origin.0.clone()).admit(key.seq) {
            entry.duplicates_dropped_total += 1;
            return Ingested::Duplicate;
        }
        // Within one agent process seq orders reports. Another process reporting
        // over the owning connection has taken the node over (an agent restart):
        // its reports are the latest from now on, even when its clock is behind,
        // and what an earlier clock labelled later than its first sample goes.
        let newer = if entry.latest_origin.0 == origin.0 {
            key.seq > entry.latest_origin.1
        } else {
            entry.forget_after(sample.wall_time_unix_nanos);
            true
        };
        entry.insert_sample(sample, window);
        if newer {
            entry.latest = report;
            entry.latest_sample = sample;
            entry.latest_interval = interval;
            entry.gpus = gpus;
            entry.replace_pods(pods, sample.wall_time_unix_nanos, pod_window);
            entry.latest_origin = origin;
            entry.collect_interval = collect_interval;
            entry.last_received = now.monotonic;
            entry.last_received_wall_unix_nanos = now.wall_unix_nanos;
            entry.state = NodeState::Ready;
        } else {
            entry.fill_pod_windows(pods, &gpus, sample.wall_time_unix_nanos, pod_window);
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

    /// Forgets the nodes silent for longer than `forget_after` at `now`; returns
    /// their names.
    pub fn forget_silent(&mut self, now: Duration) -> Vec<String> {
        let ttl = self.config.forget_after;
        let mut forgotten = Vec::new();
        self.nodes.retain(|name, entry| {
            let keep = now.saturating_sub(entry.last_received) <= ttl;
            if !keep {
                forgotten.push(name.clone());
            }
            keep
        });
        forgotten
    }

    pub fn node(&self, name: &str) -> Option<&NodeEntry<R>> {
        self.nodes.get(name)
    }

    /// All nodes by name, stale ones included (for display).
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &NodeEntry<R>> {
        self.nodes.values()
    }

    /// Nodes by name after `after` (all of them when `None`): where a page that
    /// ended at `after` continues, however nodes came and went in between.
    pub fn nodes_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a NodeEntry<R>> + 'a {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        self.nodes
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(_, n)| n)
    }

    /// Nodes that may be used for decisions at `now`: never a stale one.
    pub fn usable_nodes(&self, now: Duration) -> impl Iterator<Item = &NodeEntry<R>> {
        let config = self.config;
        self.nodes
            .values()
            .filter(move |n| n.state_at(now, &config) == NodeState::Ready)
    }

    pub fn config(&self) -> &ViewConfig {
        &self.config
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
            connection: 1,
        }
    }

    fn sample(wall_secs: u64, cpu: f64) -> NodeSample {
        NodeSample {
            wall_time_unix_nanos: wall_secs * SEC,
            cpu_millicores: Some(cpu),
            cpu_capacity_millicores: Some(2000),
            ..Default::default()
        }
    }

    fn reading(wall_secs: u64, cpu: f64) -> NodeReading {
        sample(wall_secs, cpu).into()
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
            v.ingest(key(1), INTERVAL, reading(1, 10.0), 1, at(1)),
            Ingested::Applied { latest: true }
        );
        assert_eq!(
            v.ingest(key(2), INTERVAL, reading(2, 20.0), 2, at(2)),
            Ingested::Applied { latest: true }
        );
        assert_eq!(
            v.ingest(key(2), INTERVAL, reading(2, 20.0), 2, at(3)),
            Ingested::Duplicate
        );
        assert_eq!(
            v.ingest(key(1), INTERVAL, reading(1, 10.0), 1, at(4)),
            Ingested::Duplicate
        );
        let n = v.node("n1").unwrap();
        assert_eq!(*n.latest(), 2);
        assert_eq!(n.reports_received_total(), 4);
        assert_eq!(n.duplicates_dropped_total(), 2);
        assert_eq!(n.window().len(), 2);
    }

    #[test]
    fn a_late_gap_fill_joins_the_window_but_not_latest() {
        let mut v = view();
        v.ingest(key(1), INTERVAL, reading(1, 10.0), 1, at(1));
        v.ingest(key(3), INTERVAL, reading(3, 30.0), 3, at(3));
        assert_eq!(
            v.ingest(key(2), INTERVAL, reading(2, 20.0), 2, at(4)),
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
        v.ingest(key(5), INTERVAL, reading(5, 10.0), 5, at(5));
        let restarted = ReportKey {
            agent_instance: "200-9",
            seq: 1,
            ..key(0)
        };
        assert_eq!(
            v.ingest(restarted, INTERVAL, reading(6, 60.0), 6, at(6)),
            Ingested::Applied { latest: true }
        );
        assert_eq!(*v.node("n1").unwrap().latest(), 6);
    }

    #[test]
    fn a_node_silent_for_three_intervals_becomes_stale_and_recovers() {
        let mut v = view();
        v.ingest(key(1), INTERVAL, reading(1, 10.0), 1, at(10));
        assert!(
            v.refresh(Duration::from_secs(13)).is_empty(),
            "exactly 3 intervals is still ready"
        );
        assert_eq!(v.usable_nodes(Duration::from_secs(13)).count(), 1);
        assert_eq!(v.refresh(Duration::from_millis(13_001)), ["n1"]);
        assert_eq!(v.node("n1").unwrap().state(), NodeState::Stale);
        assert_eq!(v.usable_nodes(Duration::from_millis(13_001)).count(), 0);
        assert_eq!(v.state_counts()["stale"], 1);
        v.ingest(key(2), INTERVAL, reading(14, 10.0), 2, at(14));
        assert_eq!(v.node("n1").unwrap().state(), NodeState::Ready);
    }

    #[test]
    fn staleness_follows_each_agents_interval() {
        let mut v = view();
        v.ingest(key(1), Duration::from_secs(10), reading(1, 1.0), 1, at(0));
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
            v.ingest(key(s), INTERVAL, reading(s, s as f64), s, at(s));
        }
        let n = v.node("n1").unwrap();
        let first = n.window().next().unwrap().wall_time_unix_nanos;
        assert_eq!(first, 20 * SEC);
        assert_eq!(n.window().len(), 11);
    }

    #[test]
    fn nodes_after_continues_past_a_name_that_is_gone() {
        let mut v = view();
        for name in ["a", "b", "d"] {
            let k = ReportKey {
                node: name,
                ..key(1)
            };
            v.ingest(k, INTERVAL, reading(1, 1.0), 1, at(1));
        }
        let after = |a| {
            v.nodes_after(a)
                .map(|n| n.name().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(after(None), ["a", "b", "d"]);
        assert_eq!(after(Some("a")), ["b", "d"]);
        assert_eq!(after(Some("c")), ["d"]);
        assert!(after(Some("d")).is_empty());
    }

    #[test]
    fn the_view_counts_the_nodes_that_reported() {
        let mut v = view();
        assert_eq!((v.len(), v.is_empty()), (0, true));
        for name in ["a", "b"] {
            let k = ReportKey {
                node: name,
                ..key(1)
            };
            v.ingest(k, INTERVAL, reading(1, 1.0), 1, at(1));
        }
        // A second report of a known node adds no node.
        let k = ReportKey {
            node: "a",
            ..key(2)
        };
        v.ingest(k, INTERVAL, reading(2, 1.0), 2, at(2));
        assert_eq!((v.len(), v.is_empty()), (2, false));
    }

    fn gpu(uuid: &str) -> GpuDevice {
        GpuDevice::new(
            crate::model::GpuDeviceFigures {
                uuid: uuid.into(),
                ..Default::default()
            },
            Vec::new(),
        )
    }

    #[test]
    fn the_latest_report_sets_the_sample_gpus_and_arrival_a_late_one_does_not() {
        let mut v = view();
        let full = NodeSample {
            memory_working_set_bytes: Some(7 << 20),
            memory_total_bytes: Some(16 << 30),
            disk_read_bytes_per_second: Some(1.5),
            disk_write_bytes_per_second: Some(2.5),
            ..sample(1, 10.0)
        };
        let first = NodeReading {
            gpus: vec![gpu("GPU-1")],
            ..full.into()
        };
        v.ingest(key(1), INTERVAL, first, 1, at(1));
        let n = v.node("n1").unwrap();
        assert_eq!(*n.latest_sample(), full);
        assert_eq!(n.gpus(), [gpu("GPU-1")]);
        assert_eq!(n.last_received_wall_unix_nanos(), at(1).wall_unix_nanos);

        let third = NodeReading {
            gpus: vec![gpu("GPU-3a"), gpu("GPU-3b")],
            ..reading(3, 30.0)
        };
        v.ingest(key(3), INTERVAL, third, 3, at(3));
        let late = NodeReading {
            gpus: vec![gpu("GPU-2")],
            ..reading(2, 20.0)
        };
        v.ingest(key(2), INTERVAL, late, 2, at(4));
        let n = v.node("n1").unwrap();
        assert_eq!(*n.latest_sample(), sample(3, 30.0));
        assert_eq!(n.gpus(), [gpu("GPU-3a"), gpu("GPU-3b")]);
        assert_eq!(
            n.last_received_wall_unix_nanos(),
            at(3).wall_unix_nanos,
            "a gap fill is not news of the node"
        );
    }

    #[test]
    fn a_newer_connection_takes_the_node_over_whatever_the_clocks_say() {
        let mut v = view();
        // A process whose clock runs 500 s ahead reports first...
        v.ingest(key(1), INTERVAL, reading(1500, 10.0), 1, at(10));
        // ...then another process connects for the node; its clock is right.
        let other = ReportKey {
            agent_instance: "200-9",
            seq: 1,
            connection: 2,
            ..key(0)
        };
        assert_eq!(
            v.ingest(other, INTERVAL, reading(1010, 20.0), 2, at(11)),
            Ingested::Applied { latest: true }
        );
        let later = ReportKey { seq: 2, ..other };
        assert_eq!(
            v.ingest(later, INTERVAL, reading(1011, 30.0), 3, at(12)),
            Ingested::Applied { latest: true }
        );
        // The first process's connection is superseded: nothing of it is applied.
        assert_eq!(
            v.ingest(key(2), INTERVAL, reading(1501, 99.0), 4, at(13)),
            Ingested::Superseded
        );
        let n = v.node("n1").unwrap();
        assert_eq!(*n.latest(), 3);
        assert_eq!(n.latest_sample().cpu_millicores, Some(30.0));
        assert_eq!(n.last_received_wall_unix_nanos(), at(12).wall_unix_nanos);
        // The sample labelled by the clock that ran ahead is gone with the
        // superseded one; the window is the new owner's.
        let cpus: Vec<_> = n.window().map(|s| s.cpu_millicores.unwrap()).collect();
        assert_eq!(cpus, [20.0, 30.0]);
    }

    #[test]
    fn an_agent_that_reconnects_continues_by_seq() {
        let mut v = view();
        for seq in 1..=3 {
            v.ingest(key(seq), INTERVAL, reading(seq, 1.0), seq, at(seq));
        }
        let again = |seq| ReportKey {
            connection: 2,
            ..key(seq)
        };
        // The reply to seq 3 was lost: the agent replays it over its new connection.
        assert_eq!(
            v.ingest(again(3), INTERVAL, reading(3, 1.0), 3, at(4)),
            Ingested::Duplicate
        );
        // A clock stepped back does not make the next report old.
        assert_eq!(
            v.ingest(again(4), INTERVAL, reading(2, 4.0), 4, at(5)),
            Ingested::Applied { latest: true }
        );
        assert_eq!(
            v.ingest(key(5), INTERVAL, reading(5, 5.0), 5, at(6)),
            Ingested::Superseded
        );
        assert_eq!(*v.node("n1").unwrap().latest(), 4);
    }

    #[test]
    fn a_record_poisoned_under_an_agents_name_is_reset_when_the_agent_reconnects() {
        let mut v = view();
        // A report under the agent's name with seq u64::MAX comes first...
        assert_eq!(
            v.ingest(key(u64::MAX), INTERVAL, reading(1, 99.0), 0, at(1)),
            Ingested::Applied { latest: true }
        );
        // ...so the real agent's reports look like replays on that stream,
        assert_eq!(
            v.ingest(key(7), INTERVAL, reading(2, 7.0), 7, at(2)),
            Ingested::Duplicate
        );
        // but over its new stream it starts a fresh record and is news again.
        let again = |seq| ReportKey {
            connection: 2,
            ..key(seq)
        };
        assert_eq!(
            v.ingest(again(7), INTERVAL, reading(2, 7.0), 7, at(3)),
            Ingested::Applied { latest: true }
        );
        assert_eq!(
            v.ingest(again(8), INTERVAL, reading(3, 8.0), 8, at(4)),
            Ingested::Applied { latest: true }
        );
        assert_eq!(*v.node("n1").unwrap().latest(), 8);
        // An ordinary replay after a reconnect is still a duplicate.
        let third = |seq| ReportKey {
            connection: 3,
            ..key(seq)
        };
        assert_eq!(
            v.ingest(third(8), INTERVAL, reading(3, 8.0), 8, at(5)),
            Ingested::Duplicate
        );
    }

    #[test]
    fn a_reconnect_within_the_replay_gap_keeps_the_record() {
        let mut v = view();
        v.ingest(key(5000), INTERVAL, reading(1, 1.0), 5000, at(1));
        let on = |connection, seq| ReportKey {
            connection,
            ..key(seq)
        };
        assert_eq!(
            v.ingest(
                on(2, 5000 - MAX_REPLAY_GAP),
                INTERVAL,
                reading(1, 1.0),
                1,
                at(2)
            ),
            Ingested::Duplicate
        );
        assert_eq!(
            v.ingest(
                on(3, 5000 - MAX_REPLAY_GAP - 1),
                INTERVAL,
                reading(2, 1.0),
                2,
                at(3)
            ),
            Ingested::Applied { latest: true }
        );
    }

    #[test]
    fn a_node_beyond_the_limit_is_refused_and_known_ones_go_on() {
        let mut v = ClusterView::new(ViewConfig {
            max_nodes: 2,
            ..ViewConfig::default()
        });
        for node in ["n1", "n2"] {
            let k = ReportKey { node, ..key(1) };
            assert!(matches!(
                v.ingest(k, INTERVAL, reading(1, 1.0), 1, at(1)),
                Ingested::Applied { .. }
            ));
        }
        let third = ReportKey {
            node: "n3",
            ..key(1)
        };
        assert_eq!(
            v.ingest(third, INTERVAL, reading(1, 1.0), 1, at(1)),
            Ingested::TooManyNodes { max: 2 }
        );
        assert_eq!(v.len(), 2);
        assert_eq!(
            v.ingest(key(2), INTERVAL, reading(2, 2.0), 2, at(2)),
            Ingested::Applied { latest: true }
        );
    }

    #[test]
    fn ten_thousand_names_fill_the_default_view_and_the_next_is_refused() {
        let mut v = view();
        let names: Vec<String> = (0..=10_000).map(|i| format!("node-{i:05}")).collect();
        for name in &names[..10_000] {
            let k = ReportKey {
                node: name,
                ..key(1)
            };
            assert!(matches!(
                v.ingest(k, INTERVAL, reading(1, 1.0), 1, at(1)),
                Ingested::Applied { .. }
            ));
        }
        let one_more = ReportKey {
            node: &names[10_000],
            ..key(1)
        };
        assert_eq!(
            v.ingest(one_more, INTERVAL, reading(1, 1.0), 1, at(1)),
            Ingested::TooManyNodes { max: 10_000 }
        );
        assert_eq!(v.len(), 10_000);
    }

    #[test]
    fn a_silent_node_is_forgotten_after_its_time_and_may_come_back() {
        let mut v = ClusterView::new(ViewConfig {
            forget_after: Duration::from_secs(60),
            max_nodes: 1,
            ..ViewConfig::default()
        });
        v.ingest(key(1), INTERVAL, reading(1, 1.0), 1, at(10));
        assert!(v.forget_silent(Duration::from_secs(70)).is_empty());
        assert_eq!(v.forget_silent(Duration::from_millis(70_001)), ["n1"]);
        assert!(v.is_empty());
        // The room it left is free again.
        let other = ReportKey {
            node: "n2",
            ..key(1)
        };
        assert_eq!(
            v.ingest(other, INTERVAL, reading(2, 1.0), 1, at(71)),
            Ingested::Applied { latest: true }
        );
    }

    #[test]
    fn missing_figures_stay_missing() {
        let mut v = view();
        let blind = NodeSample {
            cpu_millicores: None,
            ..sample(1, 0.0)
        };
        v.ingest(key(1), INTERVAL, blind.into(), 1, at(1));
        assert_eq!(v.node("n1").unwrap().latest_sample().cpu_millicores, None);
    }

    fn pod(uid: &str, name: &str, cpu: f64) -> Pod {
        use crate::model::{DiscoveredBy, PodKey, PodWindow, QosClass, Usage, UsageFigures};
        Pod {
            key: PodKey {
                namespace: "ns".into(),
                name: name.into(),
                uid: uid.into(),
            },
            qos_class: QosClass::Burstable,
            cgroup_path: format!("kubepods/pod{uid}").into(),
            discovered_by: DiscoveredBy::Containerd,
            usage: Usage::new(
                UsageFigures {
                    cpu_millicores: Some(cpu),
                    ..Default::default()
                },
                Vec::new(),
            ),
            containers: Box::new([]),
            gpus: Box::new([]),
            window: PodWindow::default(),
            labels: Box::new([]),
        }
    }

    fn with_pods(wall_secs: u64, pods: Vec<Pod>) -> NodeReading {
        NodeReading {
            pods: Ok(pods),
            interval: Some(INTERVAL),
            ..reading(wall_secs, 1.0)
        }
    }

    fn cpus(v: &ClusterView<u64>, uid: &str) -> Vec<(u64, f64)> {
        let pods = v.node("n1").unwrap().pods().unwrap();
        let p = pods.iter().find(|p| p.uid() == uid).unwrap();
        p.window
            .samples()
            .map(|s| {
                (
                    s.at_unix_nanos / SEC,
                    s.get(crate::model::Metric::CpuMillicores).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn pods_are_sorted_and_keep_their_windows_across_reports() {
        let mut v = view();
        v.ingest(
            key(1),
            INTERVAL,
            with_pods(1, vec![pod("b", "zeta", 1.0), pod("a", "alpha", 10.0)]),
            1,
            at(1),
        );
        v.ingest(
            key(2),
            INTERVAL,
            with_pods(2, vec![pod("a", "alpha", 20.0), pod("c", "new", 5.0)]),
            2,
            at(2),
        );
        let n = v.node("n1").unwrap();
        let names: Vec<&str> = n.pods().unwrap().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["alpha", "new"], "sorted; the pod that left is gone");
        assert_eq!(n.latest_interval(), Some(INTERVAL));
        assert_eq!(cpus(&v, "a"), [(1, 10.0), (2, 20.0)]);
        assert_eq!(cpus(&v, "c"), [(2, 5.0)]);
        // The latest figures are the latest report's.
        assert_eq!(
            v.node("n1").unwrap().pods().unwrap()[0]
                .usage
                .cpu_millicores()
                .measured(),
            Some(20.0)
        );
    }

    #[test]
    fn a_late_report_fills_pod_windows_without_replacing_pods() {
        let mut v = view();
        v.ingest(
            key(1),
            INTERVAL,
            with_pods(1, vec![pod("a", "p", 1.0)]),
            1,
            at(1),
        );
        v.ingest(
            key(3),
            INTERVAL,
            with_pods(3, vec![pod("a", "p", 3.0)]),
            3,
            at(3),
        );
        let late = with_pods(2, vec![pod("a", "p", 2.0), pod("gone", "q", 9.0)]);
        assert_eq!(
            v.ingest(key(2), INTERVAL, late, 2, at(4)),
            Ingested::Applied { latest: false }
        );
        assert_eq!(cpus(&v, "a"), [(1, 1.0), (2, 2.0), (3, 3.0)]);
        assert_eq!(v.node("n1").unwrap().pods().unwrap().len(), 1);
        // A duplicate adds nothing.
        let again = with_pods(2, vec![pod("a", "p", 99.0)]);
        assert_eq!(
            v.ingest(key(2), INTERVAL, again, 2, at(5)),
            Ingested::Duplicate
        );
        assert_eq!(cpus(&v, "a"), [(1, 1.0), (2, 2.0), (3, 3.0)]);
    }

    #[test]
    fn a_whole_allocated_gpu_is_read_from_the_device_on_time_and_late() {
        use crate::model::{GpuDeviceFigures, GpuUse, GpuUseFigures, Metric};
        let device = |util: f64| {
            GpuDevice::new(
                GpuDeviceFigures {
                    uuid: "GPU-1".into(),
                    utilization_percent: Some(util),
                    ..Default::default()
                },
                Vec::new(),
            )
        };
        let on_gpu = |wall: u64, util: f64| {
            let mut p = pod("a", "p", 1.0);
            p.gpus = Box::new([GpuUse::new(GpuUseFigures {
                gpu_uuid: "GPU-1".into(),
                allocated: true,
                ..Default::default()
            })]);
            NodeReading {
                gpus: vec![device(util)],
                ..with_pods(wall, vec![p])
            }
        };
        let mut v = view();
        v.ingest(key(1), INTERVAL, on_gpu(1, 10.0), 1, at(1));
        v.ingest(key(3), INTERVAL, on_gpu(3, 30.0), 3, at(3));
        // A late report is read with its own devices, not the latest ones.
        v.ingest(key(2), INTERVAL, on_gpu(2, 20.0), 2, at(4));
        let pods = v.node("n1").unwrap().pods().unwrap();
        let sm: Vec<Option<f64>> = pods[0]
            .window
            .samples()
            .map(|s| s.get(Metric::GpuSmPercent))
            .collect();
        assert_eq!(sm, [Some(10.0), Some(20.0), Some(30.0)]);
    }

    #[test]
    fn pod_windows_span_the_pod_window_not_the_node_window() {
        let mut v = ClusterView::new(ViewConfig {
            pod_window: Duration::from_secs(5),
            ..Default::default()
        });
        for s in 1..=20 {
            v.ingest(
                key(s),
                INTERVAL,
                with_pods(s, vec![pod("a", "p", s as f64)]),
                s,
                at(s),
            );
        }
        assert_eq!(cpus(&v, "a").first(), Some(&(15, 15.0)));
        assert_eq!(v.node("n1").unwrap().window().len(), 20);
    }

    #[test]
    fn pods_the_agent_could_not_list_say_why_and_windows_restart() {
        let mut v = view();
        v.ingest(
            key(1),
            INTERVAL,
            with_pods(1, vec![pod("a", "p", 1.0)]),
            1,
            at(1),
        );
        let blind = NodeReading {
            pods: Err("containerd: connection refused".into()),
            ..reading(2, 1.0)
        };
        v.ingest(key(2), INTERVAL, blind, 2, at(2));
        assert_eq!(
            v.node("n1").unwrap().pods().unwrap_err(),
            "containerd: connection refused"
        );
        // A late report while pods are unknown changes nothing.
        v.ingest(
            key(1),
            INTERVAL,
            with_pods(1, vec![pod("a", "p", 1.0)]),
            1,
            at(3),
        );
        v.ingest(
            key(3),
            INTERVAL,
            with_pods(3, vec![pod("a", "p", 3.0)]),
            3,
            at(3),
        );
        assert_eq!(cpus(&v, "a"), [(3, 3.0)]);
    }

    #[test]
    fn workload_cgroups_without_uid_keep_windows_by_path() {
        let mut v = view();
        let workload = |cpu| Pod {
            cgroup_path: "system.slice/batch.service".into(),
            ..pod("", "", cpu)
        };
        v.ingest(
            key(1),
            INTERVAL,
            with_pods(1, vec![workload(1.0)]),
            1,
            at(1),
        );
        v.ingest(
            key(2),
            INTERVAL,
            with_pods(2, vec![workload(2.0)]),
            2,
            at(2),
        );
        assert_eq!(cpus(&v, ""), [(1, 1.0), (2, 2.0)]);
    }
}
