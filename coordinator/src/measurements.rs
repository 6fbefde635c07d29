//! Measurement runs requested through the APIs: validated here, sent as a directive on
//! the stream of the node that runs the target, completed when the agent's result
//! arrives in a report.

use crate::directives::{Directives, SendError};
use crate::view::LiveView;
use aistor_proto::v1 as pb;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs kept for `GetMeasurement`; the oldest finished ones are forgotten first.
const KEPT: usize = 1000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RunError {
    #[error(
        "field `target` is required: one of pod (namespace and name), pod_uid, container_id or cgroup_path"
    )]
    NoTarget,
    #[error("field `samples` must be between 1 and 100000, got {0}")]
    Samples(u32),
    #[error("field `interval` must be between 10ms and 1h, got {0:?}")]
    Interval(Duration),
    #[error("field `trim` must be at least 0 and below 0.5, got {0}")]
    Trim(f64),
    #[error("field `node` is required to measure a container id or cgroup path")]
    NodeRequired,
    #[error("pod {0} is not on any node that reports")]
    PodNotFound(String),
    #[error("node {0:?} has not reported")]
    UnknownNode(String),
    #[error("node {0:?} is stale: its agent is not reporting")]
    StaleNode(String),
    #[error("{0}")]
    NotSent(#[from] SendError),
}

impl RunError {
    /// Whether the request itself was wrong (as opposed to the cluster's state).
    pub fn is_invalid_request(&self) -> bool {
        matches!(
            self,
            Self::NoTarget
                | Self::Samples(_)
                | Self::Interval(_)
                | Self::Trim(_)
                | Self::NodeRequired
        )
    }
}

/// Checks a request's numbers; the target is checked when the node is resolved.
pub fn validate(req: &pb::StartMeasurementRequest) -> Result<(), RunError> {
    if req
        .target
        .as_ref()
        .and_then(|t| t.target.as_ref())
        .is_none()
    {
        return Err(RunError::NoTarget);
    }
    if !(1..=100_000).contains(&req.samples) {
        return Err(RunError::Samples(req.samples));
    }
    let interval = Duration::from_nanos(req.interval_nanos);
    if interval < Duration::from_millis(10) || interval > Duration::from_secs(3600) {
        return Err(RunError::Interval(interval));
    }
    if !(0.0..0.5).contains(&req.trim) {
        return Err(RunError::Trim(req.trim));
    }
    Ok(())
}

#[derive(Debug, Default)]
pub struct Store {
    runs: Mutex<(BTreeMap<String, pb::Measurement>, VecDeque<String>)>,
    next: std::sync::atomic::AtomicU64,
}

impl Store {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, (BTreeMap<String, pb::Measurement>, VecDeque<String>)> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<pb::Measurement> {
        self.lock().0.get(id).cloned()
    }

    fn insert(&self, m: pb::Measurement) {
        let mut guard = self.lock();
        let (runs, order) = &mut *guard;
        order.push_back(m.id.clone());
        runs.insert(m.id.clone(), m);
        while order.len() > KEPT {
            if let Some(old) = order.pop_front() {
                runs.remove(&old);
            }
        }
    }

    /// Records a result that arrived in a report; unknown ids (a run started by an
    /// earlier coordinator, or by the agent's CLI) are kept too, as finished runs.
    pub fn complete(&self, result: pb::MeasurementResult, now_unix_nanos: u64) {
        let mut guard = self.lock();
        let state = if result.error.is_empty() {
            pb::MeasurementState::Succeeded
        } else {
            pb::MeasurementState::Failed
        };
        let (runs, order) = &mut *guard;
        let entry = runs.entry(result.id.clone()).or_insert_with(|| {
            order.push_back(result.id.clone());
            pb::Measurement {
                id: result.id.clone(),
                node: result.node.clone(),
                run: result.run.clone(),
                created_unix_nanos: now_unix_nanos,
                ..Default::default()
            }
        });
        entry.state = state as i32;
        entry.error = result.error.clone();
        entry.result = Some(result);
    }

    fn next_id(&self, now_unix_nanos: u64) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("m-{now_unix_nanos:x}-{n}")
    }
}

/// The lifecycle of measurement runs: started through the APIs, sent to the node
/// that runs the target, completed when the agent's result arrives in a report.
#[derive(Debug, Clone)]
pub struct Measurements {
    view: LiveView,
    directives: Directives,
    runs: Arc<Store>,
}

impl Measurements {
    pub fn new(view: LiveView, directives: Directives) -> Self {
        Self {
            view,
            directives,
            runs: Arc::default(),
        }
    }

    pub async fn get(&self, id: &str) -> Option<pb::Measurement> {
        self.runs.get(id)
    }

    /// Records a result that arrived in a report.
    pub async fn complete(&self, result: pb::MeasurementResult, now_unix_nanos: u64) {
        self.runs.complete(result, now_unix_nanos);
    }

    /// Finds the node, sends the run, records it as running.
    pub async fn start(
        &self,
        req: pb::StartMeasurementRequest,
    ) -> Result<pb::Measurement, RunError> {
        validate(&req)?;
        let target = req.target.clone().unwrap_or_default();
        let view = &self.view;
        let node = match (&target.target, req.node.is_empty()) {
            (_, false) => req.node.clone(),
            (Some(pb::measure_target::Target::Pod(p)), true) => view
                .find_pod_node(|pod| pod.namespace() == p.namespace && pod.name() == p.name)
                .ok_or_else(|| RunError::PodNotFound(format!("{}/{}", p.namespace, p.name)))?,
            (Some(pb::measure_target::Target::PodUid(uid)), true) => view
                .find_pod_node(|pod| pod.uid() == uid)
                .ok_or_else(|| RunError::PodNotFound(format!("uid {uid}")))?,
            _ => return Err(RunError::NodeRequired),
        };
        match view.node_state(&node) {
            None => return Err(RunError::UnknownNode(node)),
            Some(aistor_core::NodeState::Stale) => return Err(RunError::StaleNode(node)),
            Some(aistor_core::NodeState::Ready) => {}
        }
        let now = view.now().wall_unix_nanos;
        let run = pb::MeasureRun {
            id: self.runs.next_id(now),
            target: Some(target),
            samples: req.samples,
            interval_nanos: req.interval_nanos,
            trim: req.trim,
        };
        let directive = pb::Directive {
            kind: Some(pb::directive::Kind::Measure(run.clone())),
        };
        self.directives.send(&node, directive)?;
        let measurement = pb::Measurement {
            id: run.id.clone(),
            node,
            state: pb::MeasurementState::Running as i32,
            run: Some(run),
            created_unix_nanos: now,
            ..Default::default()
        };
        self.runs.insert(measurement.clone());
        Ok(measurement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::StartMeasurementRequest {
        pb::StartMeasurementRequest {
            target: Some(pb::MeasureTarget {
                target: Some(pb::measure_target::Target::CgroupPath("a/b".into())),
            }),
            node: "n1".into(),
            samples: 20,
            interval_nanos: 1_000_000_000,
            trim: 0.1,
        }
    }

    #[test]
    fn requests_are_validated_naming_the_field() {
        assert_eq!(validate(&request()), Ok(()));
        type Breaks = fn(&mut pb::StartMeasurementRequest);
        let cases: [(Breaks, &str); 5] = [
            (|r| r.target = None, "`target`"),
            (|r| r.samples = 0, "`samples`"),
            (|r| r.interval_nanos = 1_000, "`interval`"),
            (|r| r.trim = 0.5, "`trim`"),
            (|r| r.trim = -0.1, "`trim`"),
        ];
        for (break_it, field) in cases {
            let mut r = request();
            break_it(&mut r);
            let err = validate(&r).unwrap_err();
            assert!(err.is_invalid_request());
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn results_complete_runs_and_unknown_ids_are_kept() {
        let store = Store::default();
        store.insert(pb::Measurement {
            id: "m1".into(),
            state: pb::MeasurementState::Running as i32,
            ..Default::default()
        });
        store.complete(
            pb::MeasurementResult {
                id: "m1".into(),
                ..Default::default()
            },
            5,
        );
        assert_eq!(
            store.get("m1").unwrap().state,
            pb::MeasurementState::Succeeded as i32
        );
        store.complete(
            pb::MeasurementResult {
                id: "x".into(),
                error: "target not found".into(),
                ..Default::default()
            },
            5,
        );
        let failed = store.get("x").unwrap();
        assert_eq!(failed.state, pb::MeasurementState::Failed as i32);
        assert_eq!(failed.error, "target not found");
    }

    #[test]
    fn the_store_is_bounded() {
        let store = Store::default();
        for i in 0..(KEPT + 5) {
            store.insert(pb::Measurement {
                id: format!("m{i}"),
                ..Default::default()
            });
        }
        assert!(store.get("m0").is_none());
        assert!(store.get(&format!("m{}", KEPT + 4)).is_some());
    }
}
