//! How discovered containers ended, remembered between containerd's lists.
//!
//! containerd's task list shows an ended container's exit status only while its task
//! exists (STOPPED). The CRI plugin deletes the task as soon as it has seen the exit, and
//! the container stays (STOPPED, no task) until the kubelet removes it: from then on only
//! the `/tasks/exit` (and `/tasks/delete`) events had the exit code. [`Exits`] keeps what
//! those events and stopped tasks said, per container, until containerd deletes the
//! container, and fills it into each list. Pure: no I/O, no clock.

use crate::source::containerd::{ContainerInfo, ContainerNews, Exited};
use aistor_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap, HashSet};

/// How many ended containers are remembered at most; past it the longest-remembered one is
/// forgotten (it is then reported STOPPED without its exit, as before it was seen).
pub const MAX_REMEMBERED: usize = 4096;

/// (containerd namespace, container id).
type Key = (String, String);

/// The exits of containers that containerd still keeps, bounded by [`MAX_REMEMBERED`].
#[derive(Debug)]
pub struct Exits {
    cap: usize,
    /// Increases with every record; orders entries for eviction.
    next: u64,
    entries: HashMap<Key, (u64, Exited)>,
    order: BTreeMap<u64, Key>,
}

impl Default for Exits {
    fn default() -> Self {
        Self::new(MAX_REMEMBERED)
    }
}

impl Exits {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            next: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The remembered exit of a container.
    pub fn get(&self, namespace: &str, id: &str) -> Option<Exited> {
        self.entries
            .get(&(namespace.to_owned(), id.to_owned()))
            .map(|(_, e)| *e)
    }

    fn record(&mut self, key: Key, exited: Exited) {
        if let Some((seq, _)) = self.entries.remove(&key) {
            self.order.remove(&seq);
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, key.clone());
        self.entries.insert(key, (seq, exited));
        while self.entries.len() > self.cap {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    fn forget(&mut self, key: &Key) {
        if let Some((seq, _)) = self.entries.remove(key) {
            self.order.remove(&seq);
        }
    }

    /// Takes in an event's news from containerd `namespace`.
    pub fn note(&mut self, namespace: &str, news: &ContainerNews) {
        match news {
            ContainerNews::Exited {
                container_id,
                exited,
            } => self.record((namespace.to_owned(), container_id.clone()), *exited),
            ContainerNews::Deleted { container_id } => {
                self.forget(&(namespace.to_owned(), container_id.clone()))
            }
        }
    }

    /// Reconciles with a fresh list: an exit the list shows (a stopped task) is
    /// remembered; a container whose task runs again has none; one without a task gets
    /// the remembered one; containers containerd no longer has are forgotten.
    pub fn reconcile(&mut self, listed: &mut [ContainerInfo]) {
        let mut present: HashSet<Key> = HashSet::with_capacity(listed.len());
        for c in listed.iter_mut() {
            let key = (c.runtime_namespace.clone(), c.id.clone());
            match (c.exited, c.pid) {
                (Some(exited), _) => self.record(key.clone(), exited),
                // A task runs (again): its earlier exit is over.
                (None, Some(_)) => self.forget(&key),
                (None, None) => c.exited = self.entries.get(&key).map(|(_, e)| *e),
            }
            present.insert(key);
        }
        let gone: Vec<Key> = self
            .entries
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in &gone {
            self.forget(key);
        }
    }
}

/// Reasons the kubelet gives a terminated container.
pub const REASON_COMPLETED: &str = "Completed";
pub const REASON_ERROR: &str = "Error";

/// The report's terminated state of an ended container, as the kubelet words it:
/// `Completed` for exit code 0, `Error` otherwise. The start is not known here.
pub fn terminated(exited: &Exited) -> pb::ContainerTerminated {
    pb::ContainerTerminated {
        exit_code: exited.exit_code,
        reason: if exited.exit_code == 0 {
            REASON_COMPLETED
        } else {
            REASON_ERROR
        }
        .to_owned(),
        message: String::new(),
        started_unix_nanos: None,
        finished_unix_nanos: exited.finished_unix_nanos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aistor_proto::v1::ContainerState;

    fn info(id: &str, pid: Option<u32>, exited: Option<Exited>) -> ContainerInfo {
        ContainerInfo {
            id: id.to_owned(),
            runtime_namespace: "k8s.io".to_owned(),
            pod_uid: "u".to_owned(),
            pod_name: "p".to_owned(),
            pod_namespace: "n".to_owned(),
            container_name: id.to_owned(),
            image: String::new(),
            pid,
            cgroup_path: None,
            state: if pid.is_some() {
                ContainerState::Running
            } else {
                ContainerState::Stopped
            },
            exited,
            restart_count: None,
            spec_cgroup_path: None,
        }
    }

    fn exit(code: i32, at: u64) -> Exited {
        Exited {
            exit_code: code,
            finished_unix_nanos: at,
        }
    }

    fn exited_news(id: &str, code: i32, at: u64) -> ContainerNews {
        ContainerNews::Exited {
            container_id: id.to_owned(),
            exited: exit(code, at),
        }
    }

    #[test]
    fn an_exit_event_fills_a_container_whose_task_is_gone() {
        let mut exits = Exits::default();
        assert!(exits.is_empty());
        exits.note("k8s.io", &exited_news("a", 3, 10));
        exits.note("other", &exited_news("b", 0, 11));
        assert!(!exits.is_empty());
        let mut listed = vec![info("a", None, None), info("b", None, None)];
        exits.reconcile(&mut listed);
        assert_eq!(listed[0].exited, Some(exit(3, 10)));
        // The same id in another namespace is another container.
        assert_eq!(listed[1].exited, None);
        assert_eq!(exits.get("k8s.io", "a"), Some(exit(3, 10)));
        assert_eq!(exits.get("other", "b"), None, "not listed: forgotten");
        assert_eq!(exits.len(), 1);
    }

    #[test]
    fn a_stopped_task_in_the_list_is_remembered_for_after_its_deletion() {
        let mut exits = Exits::default();
        let mut listed = vec![info("a", None, Some(exit(0, 5)))];
        exits.reconcile(&mut listed);
        assert_eq!(exits.get("k8s.io", "a"), Some(exit(0, 5)));
        // The task is deleted: the list has no exit any more, the memory has.
        let mut listed = vec![info("a", None, None)];
        exits.reconcile(&mut listed);
        assert_eq!(listed[0].exited, Some(exit(0, 5)));
        // The list's own figure wins over an older event's.
        exits.note("k8s.io", &exited_news("a", 1, 4));
        let mut listed = vec![info("a", None, Some(exit(0, 5)))];
        exits.reconcile(&mut listed);
        assert_eq!(exits.get("k8s.io", "a"), Some(exit(0, 5)));
    }

    #[test]
    fn a_running_task_clears_the_exit_and_a_deletion_forgets_it() {
        let mut exits = Exits::default();
        exits.note("k8s.io", &exited_news("a", 2, 1));
        exits.note("k8s.io", &exited_news("b", 2, 1));
        let mut listed = vec![info("a", Some(42), None), info("b", None, None)];
        exits.reconcile(&mut listed);
        assert_eq!(listed[0].exited, None);
        assert_eq!(exits.get("k8s.io", "a"), None, "runs again");
        assert_eq!(exits.get("k8s.io", "b"), Some(exit(2, 1)));
        exits.note(
            "k8s.io",
            &ContainerNews::Deleted {
                container_id: "b".to_owned(),
            },
        );
        assert_eq!(exits.get("k8s.io", "b"), None);
        assert!(exits.is_empty());
        // Deleting what is not remembered is nothing.
        exits.note(
            "k8s.io",
            &ContainerNews::Deleted {
                container_id: "zz".to_owned(),
            },
        );
        assert!(exits.is_empty());
    }

    #[test]
    fn memory_is_capped_and_forgets_the_longest_remembered_first() {
        let mut exits = Exits::new(3);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            exits.note("k8s.io", &exited_news(id, 1, i as u64 + 1));
        }
        // Recording "a" again makes it the newest.
        exits.note("k8s.io", &exited_news("a", 1, 9));
        exits.note("k8s.io", &exited_news("d", 1, 10));
        assert_eq!(exits.len(), 3);
        assert_eq!(exits.get("k8s.io", "b"), None, "the oldest went");
        assert_eq!(exits.get("k8s.io", "a"), Some(exit(1, 9)));
        assert!(exits.get("k8s.io", "c").is_some());
        assert!(exits.get("k8s.io", "d").is_some());
        assert_eq!(exits.order.len(), exits.entries.len());
        // A zero cap still keeps one.
        let mut one = Exits::new(0);
        one.note("k8s.io", &exited_news("a", 1, 1));
        one.note("k8s.io", &exited_news("b", 1, 2));
        assert_eq!(one.len(), 1);
        assert!(one.get("k8s.io", "b").is_some());
        assert_eq!(Exits::default().cap, MAX_REMEMBERED);
    }

    #[test]
    fn many_exits_stay_within_the_cap() {
        let mut exits = Exits::new(100);
        for i in 0..10_000u64 {
            exits.note("k8s.io", &exited_news(&format!("c{i}"), 1, i + 1));
        }
        assert_eq!(exits.len(), 100);
        assert_eq!(exits.order.len(), 100);
        assert!(exits.get("k8s.io", "c9999").is_some());
        assert!(exits.get("k8s.io", "c9899").is_none());
    }

    #[test]
    fn reasons_are_the_kubelets() {
        let ok = terminated(&exit(0, 7));
        assert_eq!(
            (ok.exit_code, ok.reason.as_str(), ok.finished_unix_nanos),
            (0, "Completed", 7)
        );
        assert_eq!(ok.started_unix_nanos, None);
        let failed = terminated(&exit(3, 8));
        assert_eq!((failed.exit_code, failed.reason.as_str()), (3, "Error"));
        assert_eq!(terminated(&exit(-1, 8)).reason, "Error");
        assert_eq!(terminated(&exit(137, 8)).reason, "Error");
    }
}
