//! Checkpoints and freezes of pods the kubelet runs (on Kubernetes): asked of the agent
//! of the pod's node by directive (StageCheckpoint with the pod's checkpoint path and
//! hook, FreezePod), and followed in that agent's reports (`NodeReport.checkpoints`,
//! `Pod.frozen`, the directives' results). Only checkpoints asked for (or followed
//! again after a restart) are kept, and at most [`KEEP`] of each, so memory is bounded
//! by the migrations under way, not by what reports carry.

use crate::directives::{Directives, SendError};
use crate::wire::ReportHead;
use aistor_proto::v1 as pb;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Checkpoints followed and directive errors kept (the oldest go first).
pub const KEEP: usize = 256;

/// A checkpoint as its agent reported it so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Staging {
    pub node: String,
    /// Set when the directive failed before any container was staged.
    pub error: String,
    pub containers: Vec<pb::CheckpointStatus>,
    /// Order of asking (the oldest is forgotten first).
    order: u64,
}

#[derive(Debug, Default)]
struct State {
    checkpoints: BTreeMap<String, Staging>,
    /// Directive id → (order, error).
    directive_errors: BTreeMap<String, (u64, String)>,
    /// Node → uids of its pods whose cgroup its last report said is frozen.
    frozen: BTreeMap<String, BTreeSet<String>>,
    order: u64,
}

/// The directives' id of a checkpoint's staging.
fn stage_id(checkpoint_id: &str) -> String {
    format!("stage-{checkpoint_id}")
}

/// Removes the oldest entry of `map` past [`KEEP`].
fn bound<V>(map: &mut BTreeMap<String, V>, order: impl Fn(&V) -> u64) {
    while map.len() > KEEP {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| order(v))
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        map.remove(&oldest);
    }
}

#[derive(Debug, Clone)]
pub struct KubeletPods {
    directives: Directives,
    state: Arc<Mutex<State>>,
}

impl KubeletPods {
    pub fn new(directives: Directives) -> Self {
        Self {
            directives,
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks `node`'s agent to stage `request` and follows it.
    pub fn stage(&self, node: &str, request: pb::StageCheckpoint) -> Result<(), SendError> {
        let id = request.checkpoint_id.clone();
        {
            let mut state = self.state();
            state.directive_errors.remove(&stage_id(&id));
            if let Some(c) = state.checkpoints.get_mut(&id) {
                c.error.clear();
            }
        }
        self.directives.send(
            node,
            pb::Directive {
                kind: Some(pb::directive::Kind::StageCheckpoint(request)),
                id: stage_id(&id),
            },
        )?;
        self.follow(&id, node);
        Ok(())
    }

    /// Follows checkpoint `id` in `node`'s reports without asking for it (a coordinator
    /// that restarted while it was staged).
    pub fn follow(&self, id: &str, node: &str) {
        let mut state = self.state();
        if state.checkpoints.contains_key(id) {
            return;
        }
        state.order += 1;
        let order = state.order;
        state.checkpoints.insert(
            id.to_owned(),
            Staging {
                node: node.to_owned(),
                order,
                ..Staging::default()
            },
        );
        bound(&mut state.checkpoints, |c| c.order);
    }

    /// Checkpoint `id` as reported so far; `None` when it is not followed.
    pub fn staging(&self, id: &str) -> Option<Staging> {
        self.state().checkpoints.get(id).cloned()
    }

    /// Freezes (or thaws) pod `uid` on `node`; the agent's answer comes back under
    /// `directive_id`.
    pub fn freeze(
        &self,
        node: &str,
        uid: &str,
        frozen: bool,
        directive_id: &str,
    ) -> Result<(), SendError> {
        self.state().directive_errors.remove(directive_id);
        self.directives.send(
            node,
            pb::Directive {
                kind: Some(pb::directive::Kind::FreezePod(pb::FreezePod {
                    uid: uid.to_owned(),
                    frozen,
                })),
                id: directive_id.to_owned(),
            },
        )
    }

    /// What the agent said of directive `id`, when it failed.
    pub fn directive_error(&self, id: &str) -> Option<String> {
        self.state()
            .directive_errors
            .get(id)
            .map(|(_, e)| e.clone())
    }

    /// Whether the last report of `node` said pod `uid` is frozen.
    pub fn is_frozen(&self, node: &str, uid: &str) -> bool {
        self.state()
            .frozen
            .get(node)
            .is_some_and(|uids| uids.contains(uid))
    }

    /// Takes in what one report of `node` says: its directives' errors, the staging of
    /// followed checkpoints and which pods are frozen (`frozen`, their uids).
    pub fn observe(&self, node: &str, head: &ReportHead, frozen: &[String]) {
        let mut state = self.state();
        for r in head
            .directive_results
            .iter()
            .filter(|r| !r.error.is_empty())
        {
            state.order += 1;
            let order = state.order;
            state
                .directive_errors
                .insert(r.id.clone(), (order, r.error.clone()));
            if let Some(id) = r.id.strip_prefix("stage-")
                && let Some(c) = state.checkpoints.get_mut(id)
            {
                c.error = r.error.clone();
            }
        }
        bound(&mut state.directive_errors, |(order, _)| *order);
        for reported in &head.checkpoints {
            let Some(c) = state.checkpoints.get_mut(&reported.checkpoint_id) else {
                continue;
            };
            match c
                .containers
                .iter_mut()
                .find(|s| s.container == reported.container)
            {
                Some(slot) => *slot = reported.clone(),
                None => c.containers.push(reported.clone()),
            }
        }
        if frozen.is_empty() {
            state.frozen.remove(node);
        } else {
            state
                .frozen
                .insert(node.to_owned(), frozen.iter().cloned().collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn status(id: &str, container: &str, state: &str, bytes: u64) -> pb::CheckpointStatus {
        pb::CheckpointStatus {
            checkpoint_id: id.into(),
            container: container.into(),
            state: state.into(),
            bytes,
            ..Default::default()
        }
    }

    #[test]
    fn followed_checkpoints_take_in_reports_and_others_are_ignored() {
        let directives = Directives::default();
        let (tx, mut rx) = mpsc::channel(8);
        directives.register("n1", tx);
        let pods = KubeletPods::new(directives);
        pods.stage(
            "n1",
            pb::StageCheckpoint {
                pod_uid: "u1".into(),
                checkpoint_id: "m-1".into(),
                checkpoint_path: "/ckpt".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let sent = rx.try_recv().unwrap().unwrap();
        assert_eq!(sent.id, "stage-m-1");
        assert!(matches!(
            sent.kind,
            Some(pb::directive::Kind::StageCheckpoint(s)) if s.checkpoint_path == "/ckpt"
        ));
        let head = ReportHead {
            checkpoints: vec![
                status("m-1", "a", "copying", 10),
                status("other", "a", "staged", 5),
            ],
            ..Default::default()
        };
        pods.observe("n1", &head, &["u1".into()]);
        let head = ReportHead {
            checkpoints: vec![
                status("m-1", "a", "staged", 20),
                status("m-1", "b", "copying", 1),
            ],
            ..Default::default()
        };
        pods.observe("n1", &head, &["u1".into()]);
        let s = pods.staging("m-1").unwrap();
        assert_eq!(s.node, "n1");
        assert_eq!(
            s.containers,
            [
                status("m-1", "a", "staged", 20),
                status("m-1", "b", "copying", 1)
            ]
        );
        assert_eq!(pods.staging("other"), None);
        assert!(pods.is_frozen("n1", "u1"));
        assert!(!pods.is_frozen("n2", "u1"));
        // Thawed: the next report lists no frozen pod.
        pods.observe("n1", &ReportHead::default(), &[]);
        assert!(!pods.is_frozen("n1", "u1"));
    }

    #[test]
    fn a_failed_directive_is_kept_and_cleared_when_asked_again() {
        let directives = Directives::default();
        let (tx, _rx) = mpsc::channel(8);
        directives.register("n1", tx);
        let pods = KubeletPods::new(directives);
        pods.follow("m-1", "n1");
        let failed = |id: &str| ReportHead {
            directive_results: vec![pb::DirectiveResult {
                id: id.into(),
                error: "no such pod".into(),
                finished_unix_nanos: 1,
            }],
            ..Default::default()
        };
        pods.observe("n1", &failed("stage-m-1"), &[]);
        pods.observe("n1", &failed("freeze-m"), &[]);
        assert_eq!(pods.staging("m-1").unwrap().error, "no such pod");
        assert_eq!(
            pods.directive_error("freeze-m").as_deref(),
            Some("no such pod")
        );
        pods.freeze("n1", "u1", true, "freeze-m").unwrap();
        assert_eq!(pods.directive_error("freeze-m"), None);
        pods.stage(
            "n1",
            pb::StageCheckpoint {
                checkpoint_id: "m-1".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(pods.staging("m-1").unwrap().error, "");
        // Not connected: the send fails, naming the node.
        assert_eq!(
            pods.freeze("n9", "u1", true, "x"),
            Err(SendError::NotConnected("n9".into()))
        );
    }

    #[test]
    fn what_is_kept_is_bounded() {
        let pods = KubeletPods::new(Directives::default());
        for i in 0..(KEEP + 10) {
            pods.follow(&format!("c-{i}"), "n1");
        }
        let errors = ReportHead {
            directive_results: (0..(KEEP + 10))
                .map(|i| pb::DirectiveResult {
                    id: format!("d-{i}"),
                    error: "x".into(),
                    finished_unix_nanos: 1,
                })
                .collect(),
            ..Default::default()
        };
        pods.observe("n1", &errors, &[]);
        let state = pods.state();
        assert_eq!(state.checkpoints.len(), KEEP);
        assert_eq!(state.directive_errors.len(), KEEP);
        // The oldest went first.
        assert!(!state.checkpoints.contains_key("c-0"));
        assert!(state.checkpoints.contains_key(&format!("c-{}", KEEP + 9)));
        assert!(!state.directive_errors.contains_key("d-0"));
    }
}
