//! Checkpoints and freezes of pods the kubelet runs (on Kubernetes): asked of the agent
//! of the pod's node by directive (StageCheckpoint with the pod's checkpoint path and
//! hook, FreezePod), and followed in that agent's reports (`NodeReport.checkpoints`,
//! `Pod.frozen`, the directives' results). Only checkpoints asked for (or followed
//! again after a restart) are kept, at most [`KEEP`] (`crate::staging`), so memory is
//! bounded by the migrations under way, not by what reports carry.

use crate::directives::{Directives, SendError};
use crate::staging::{Staging, Stagings, stage_id};
use crate::wire::ReportHead;
use aistor_proto::v1 as pb;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Checkpoints followed (the oldest asked go first).
pub const KEEP: usize = 256;

#[derive(Debug, Default)]
struct State {
    /// Each checkpoint's node.
    checkpoints: Stagings<String, KEEP>,
    /// Node → uids of its pods whose cgroup its last report said is frozen.
    frozen: BTreeMap<String, BTreeSet<String>>,
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
        self.state().checkpoints.asked_again(&id);
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
        self.state().checkpoints.follow(id, node.to_owned());
    }

    /// Checkpoint `id` as reported so far (`about` is its node); `None` when it is not
    /// followed.
    pub fn staging(&self, id: &str) -> Option<Staging<String>> {
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
        self.directives.error(id)
    }

    /// Whether the last report of `node` said pod `uid` is frozen.
    pub fn is_frozen(&self, node: &str, uid: &str) -> bool {
        self.state()
            .frozen
            .get(node)
            .is_some_and(|uids| uids.contains(uid))
    }

    /// Takes in what one report of `node` says: the staging of followed checkpoints and
    /// which pods are frozen (`frozen`, their uids). Its directives' errors are taken in
    /// by [`Directives::observe`].
    pub fn observe(&self, node: &str, head: &ReportHead, frozen: &[String]) {
        let mut state = self.state();
        state
            .checkpoints
            .observe(&head.directive_results, &head.checkpoints);
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
    use crate::staging::status;
    use tokio::sync::mpsc;

    #[test]
    fn followed_checkpoints_take_in_reports_and_frozen_pods_are_seen() {
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
        assert_eq!(s.about, "n1");
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
    fn a_failed_directive_is_seen_and_cleared_when_asked_again() {
        let directives = Directives::default();
        let (tx, _rx) = mpsc::channel(8);
        directives.register("n1", tx);
        let pods = KubeletPods::new(directives.clone());
        pods.follow("m-1", "n1");
        let failed = |id: &str| ReportHead {
            directive_results: vec![pb::DirectiveResult {
                id: id.into(),
                error: "no such pod".into(),
                finished_unix_nanos: 1,
            }],
            ..Default::default()
        };
        // As ingest does: the directives take in the errors, the pods the staging.
        for head in [failed("stage-m-1"), failed("freeze-m")] {
            directives.observe("n1", &head.directive_results);
            pods.observe("n1", &head, &[]);
        }
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
        assert_eq!(pods.directive_error("stage-m-1"), None);
        // Not connected: the send fails, naming the node.
        assert_eq!(
            pods.freeze("n9", "u1", true, "x"),
            Err(SendError::NotConnected("n9".into()))
        );
    }

    #[test]
    fn followed_checkpoints_are_bounded() {
        let pods = KubeletPods::new(Directives::default());
        for i in 0..(KEEP + 10) {
            pods.follow(&format!("c-{i}"), "n1");
        }
        assert_eq!(pods.state().checkpoints.iter().count(), KEEP);
        // The oldest went first.
        assert!(pods.staging("c-0").is_none());
        assert!(pods.staging(&format!("c-{}", KEEP + 9)).is_some());
    }
}
