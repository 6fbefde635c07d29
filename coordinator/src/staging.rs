//! Checkpoints being staged by agents, followed in their reports: each container's
//! progress as last reported, and the error of the `StageCheckpoint` directive when it
//! failed before any container was staged. Only checkpoints asked for (or followed again
//! after a restart) are kept, at most `KEEP`, the oldest asked forgotten first, so memory
//! is bounded by what was asked, not by what reports carry. Shared by the local runtime's
//! workloads and the kubelet's pods, which differ only in what they note of a checkpoint.

use aistor_proto::v1 as pb;
use std::collections::BTreeMap;

/// The directive id of checkpoint `checkpoint_id`'s staging.
pub fn stage_id(checkpoint_id: &str) -> String {
    format!("stage-{checkpoint_id}")
}

/// One followed checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Staging<T> {
    /// What the asker notes of it (node, pod, ...).
    pub about: T,
    /// Set when the directive failed before any container was staged.
    pub error: String,
    pub containers: Vec<pb::CheckpointStatus>,
    /// Order of asking.
    order: u64,
}

/// The checkpoints followed, at most `KEEP`.
#[derive(Debug, Clone)]
pub struct Stagings<T, const KEEP: usize> {
    by_id: BTreeMap<String, Staging<T>>,
    order: u64,
}

impl<T, const KEEP: usize> Default for Stagings<T, KEEP> {
    fn default() -> Self {
        Self {
            by_id: BTreeMap::new(),
            order: 0,
        }
    }
}

impl<T, const KEEP: usize> Stagings<T, KEEP> {
    /// Follows checkpoint `id` (nothing changes when it is followed already).
    pub fn follow(&mut self, id: &str, about: T) {
        if self.by_id.contains_key(id) {
            return;
        }
        self.order += 1;
        let order = self.order;
        self.by_id.insert(
            id.to_owned(),
            Staging {
                about,
                error: String::new(),
                containers: Vec::new(),
                order,
            },
        );
        while self.by_id.len() > KEEP {
            let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.order)
                .map(|(id, _)| id.clone())
            else {
                return;
            };
            self.by_id.remove(&oldest);
        }
    }

    /// Checkpoint `id` is asked for again: its old error no longer stands.
    pub fn asked_again(&mut self, id: &str) {
        if let Some(s) = self.by_id.get_mut(id) {
            s.error.clear();
        }
    }

    pub fn get(&self, id: &str) -> Option<&Staging<T>> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Staging<T>)> {
        self.by_id.iter()
    }

    /// Takes in what one report says of followed checkpoints: failed staging directives
    /// and each container's progress.
    pub fn observe(&mut self, results: &[pb::DirectiveResult], statuses: &[pb::CheckpointStatus]) {
        for r in results.iter().filter(|r| !r.error.is_empty()) {
            if let Some(id) = r.id.strip_prefix("stage-")
                && let Some(s) = self.by_id.get_mut(id)
            {
                s.error.clone_from(&r.error);
            }
        }
        for reported in statuses {
            let Some(s) = self.by_id.get_mut(&reported.checkpoint_id) else {
                continue;
            };
            match s
                .containers
                .iter_mut()
                .find(|c| c.container == reported.container)
            {
                Some(slot) => slot.clone_from(reported),
                None => s.containers.push(reported.clone()),
            }
        }
    }
}

/// A container's reported progress, for tests here and in the modules that follow
/// checkpoints.
#[cfg(test)]
pub(crate) fn status(id: &str, container: &str, state: &str, bytes: u64) -> pb::CheckpointStatus {
    pb::CheckpointStatus {
        checkpoint_id: id.into(),
        container: container.into(),
        state: state.into(),
        bytes,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(id: &str) -> pb::DirectiveResult {
        pb::DirectiveResult {
            id: id.into(),
            error: "no such pod".into(),
            finished_unix_nanos: 1,
        }
    }

    #[test]
    fn followed_checkpoints_take_in_progress_and_others_are_ignored() {
        let mut s = Stagings::<_, 8>::default();
        s.follow("m-1", "n1");
        s.observe(
            &[],
            &[
                status("m-1", "a", "copying", 10),
                status("x", "a", "staged", 5),
            ],
        );
        s.observe(
            &[],
            &[
                status("m-1", "a", "staged", 20),
                status("m-1", "b", "copying", 1),
            ],
        );
        let m = s.get("m-1").unwrap();
        assert_eq!(m.about, "n1");
        assert_eq!(
            m.containers,
            [
                status("m-1", "a", "staged", 20),
                status("m-1", "b", "copying", 1)
            ]
        );
        assert!(s.get("x").is_none());
        // Following again keeps what was reported, and what was noted first.
        s.follow("m-1", "n2");
        assert_eq!(s.get("m-1").unwrap().about, "n1");
        assert_eq!(s.get("m-1").unwrap().containers.len(), 2);
        assert_eq!(s.iter().count(), 1);
    }

    #[test]
    fn a_failed_staging_is_kept_until_asked_again() {
        let mut s = Stagings::<_, 8>::default();
        s.follow("m-1", ());
        s.follow("m-2", ());
        // Only failed results of staging directives of followed checkpoints count.
        let ok = pb::DirectiveResult {
            error: String::new(),
            ..failed("stage-m-2")
        };
        s.observe(
            &[failed("stage-m-1"), failed("m-2"), ok, failed("stage-m-9")],
            &[],
        );
        assert_eq!(s.get("m-1").unwrap().error, "no such pod");
        assert_eq!(s.get("m-2").unwrap().error, "");
        s.asked_again("m-1");
        s.asked_again("m-9");
        assert_eq!(s.get("m-1").unwrap().error, "");
        assert_eq!(stage_id("m-1"), "stage-m-1");
    }

    #[test]
    fn what_is_kept_is_bounded_oldest_asked_first() {
        let mut s = Stagings::<_, 3>::default();
        for i in 0..5 {
            s.follow(&format!("c-{i}"), i);
        }
        let kept: Vec<&String> = s.iter().map(|(id, _)| id).collect();
        assert_eq!(kept, ["c-2", "c-3", "c-4"]);
    }
}
