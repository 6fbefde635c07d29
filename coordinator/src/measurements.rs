//! Measurement runs requested through the APIs: validated here, sent as a directive on
//! the stream of the node that runs the target, completed when the agent's result
//! arrives in a report.

use crate::directives::{Directives, SendError};
use crate::store::StoreError;
use crate::store::measurements::Measurements as Runs;
use crate::view::LiveView;
use aistor_proto::v1 as pb;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
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
    #[error("field `{field}` is {len} bytes; at most {limit} are accepted")]
    TooLong {
        field: &'static str,
        len: usize,
        limit: usize,
    },
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
    #[error("the coordinator's store failed: {0}")]
    Store(#[from] StoreError),
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
                | Self::TooLong { .. }
                | Self::NodeRequired
        )
    }
}

/// The longest `cgroup_path` accepted: Linux's PATH_MAX. A longer one names no
/// cgroup, and would make the agent's result (which repeats it) needlessly large.
pub const MAX_CGROUP_PATH_BYTES: usize = 4096;
/// The longest node, pod namespace, pod name, pod uid or container id accepted:
/// a Kubernetes DNS subdomain name's limit, far above a uid's or container id's length.
pub const MAX_NAME_BYTES: usize = 253;

fn bounded(field: &'static str, value: &str, limit: usize) -> Result<(), RunError> {
    if value.len() > limit {
        return Err(RunError::TooLong {
            field,
            len: value.len(),
            limit,
        });
    }
    Ok(())
}

/// Checks a request's numbers and lengths; the target is checked when the node is
/// resolved.
pub fn validate(req: &pb::StartMeasurementRequest) -> Result<(), RunError> {
    use pb::measure_target::Target;
    let Some(target) = req.target.as_ref().and_then(|t| t.target.as_ref()) else {
        return Err(RunError::NoTarget);
    };
    match target {
        Target::Pod(p) => {
            bounded("target.pod.namespace", &p.namespace, MAX_NAME_BYTES)?;
            bounded("target.pod.name", &p.name, MAX_NAME_BYTES)?;
        }
        Target::PodUid(uid) => bounded("target.pod_uid", uid, MAX_NAME_BYTES)?,
        Target::ContainerId(id) => bounded("target.container_id", id, MAX_NAME_BYTES)?,
        Target::CgroupPath(path) => bounded("target.cgroup_path", path, MAX_CGROUP_PATH_BYTES)?,
    }
    bounded("node", &req.node, MAX_NAME_BYTES)?;
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

/// The lifecycle of measurement runs: started through the APIs, sent to the node
/// that runs the target, completed when the agent's result arrives in a report.
#[derive(Debug, Clone)]
pub struct Measurements {
    view: LiveView,
    directives: Directives,
    runs: Arc<Runs>,
}

impl Measurements {
    pub fn new(view: LiveView, directives: Directives, runs: Arc<Runs>) -> Self {
        Self {
            view,
            directives,
            runs,
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<pb::Measurement>, StoreError> {
        self.runs.get(id).await
    }

    /// Records a result that arrived in a report (durably: the report is
    /// acknowledged only after this returns).
    pub async fn complete(
        &self,
        result: pb::MeasurementResult,
        now_unix_nanos: u64,
    ) -> Result<(), StoreError> {
        self.runs.complete(result, now_unix_nanos).await.map(drop)
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
            id: self.runs.next_id(now).await?,
            target: Some(target),
            samples: req.samples,
            interval_nanos: req.interval_nanos,
            trim: req.trim,
        };
        let measurement = pb::Measurement {
            id: run.id.clone(),
            node: node.clone(),
            state: pb::MeasurementState::Running as i32,
            run: Some(run.clone()),
            created_unix_nanos: now,
            ..Default::default()
        };
        // Stored before it is sent: a run the agent may be doing is never unknown.
        self.runs.create(&measurement, now).await?;
        let directive = pb::Directive {
            kind: Some(pb::directive::Kind::Measure(run.clone())),
            // A measurement run carries its own id.
            id: String::new(),
        };
        if let Err(e) = self.directives.send(&node, directive) {
            let failed = pb::MeasurementResult {
                id: run.id.clone(),
                node,
                run: Some(run),
                error: format!("not sent: {e}"),
                ..Default::default()
            };
            self.runs.complete(failed, now).await?;
            return Err(e.into());
        }
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
        assert!(validate(&request()).is_ok());
        type Breaks = fn(&mut pb::StartMeasurementRequest);
        let cases: [(Breaks, &str); 7] = [
            (|r| r.target = None, "`target`"),
            (
                |r| r.node = "n".repeat(254),
                "`node` is 254 bytes; at most 253",
            ),
            (
                |r| {
                    r.target = Some(pb::MeasureTarget {
                        target: Some(pb::measure_target::Target::PodUid("u".repeat(300))),
                    })
                },
                "`target.pod_uid`",
            ),
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
    fn a_cgroup_path_longer_than_path_max_is_refused_naming_field_and_limit() {
        let set = |path: String| {
            let mut r = request();
            r.target = Some(pb::MeasureTarget {
                target: Some(pb::measure_target::Target::CgroupPath(path)),
            });
            r
        };
        assert!(validate(&set("a".repeat(MAX_CGROUP_PATH_BYTES))).is_ok());
        // Finding 3 of issue 12: a 3 MiB path.
        let err = validate(&set("a/".repeat(3 << 19))).unwrap_err();
        assert!(err.is_invalid_request());
        assert_eq!(
            err.to_string(),
            "field `target.cgroup_path` is 3145728 bytes; at most 4096 are accepted"
        );
    }
}
