//! Pod specs from the API, indexed by uid, for ingest to join into the measured model
//! (requests, restart counts, container states with exit codes). Kept current by the
//! pods reflector's events; a re-list builds a fresh index and swaps it in whole.

use aistor_core::model::{ContainerSpec, ContainerState, PodSpec, PodSpecs, Requests, join_spec};
use aistor_core::quantity::{bytes, cpu_millicores};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::runtime::watcher;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// The index: uid → spec. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SpecIndex {
    specs: Arc<RwLock<HashMap<String, PodSpec>>>,
    // The index a re-list is building (between Init and InitDone).
    pending: Arc<Mutex<Option<HashMap<String, PodSpec>>>>,
}

impl SpecIndex {
    /// Follows one event of the pods watcher.
    pub fn apply(&self, event: &watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => *self.pending() = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(pending), Some(uid)) =
                    (self.pending().as_mut(), pod.metadata.uid.as_ref())
                {
                    pending.insert(uid.clone(), pod_spec(pod));
                }
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = self.pending().take() {
                    *self.specs.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                }
            }
            watcher::Event::Apply(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.write().insert(uid.clone(), pod_spec(pod));
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.write().remove(uid);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Option<HashMap<String, PodSpec>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, PodSpec>> {
        self.specs.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl SpecIndex {
    /// A copy of one pod's spec (for inspection; ingest joins in place).
    pub fn spec(&self, uid: &str) -> Option<PodSpec> {
        self.read().get(uid).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, PodSpec>> {
        self.specs.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl PodSpecs for SpecIndex {
    fn join(&self, pod: &mut aistor_core::model::Pod) {
        if let Some(spec) = self.read().get(pod.uid()) {
            join_spec(pod, spec);
        }
    }
}

/// What the model takes from a Pod object.
pub fn pod_spec(pod: &Pod) -> PodSpec {
    let statuses: &[ContainerStatus] = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            let status = statuses.iter().find(|s| s.name == c.name);
            ContainerSpec {
                name: c.name.clone(),
                requests: Requests {
                    cpu_millicores: requests
                        .and_then(|r| r.get("cpu"))
                        .and_then(|q| cpu_millicores(&q.0)),
                    memory_bytes: requests
                        .and_then(|r| r.get("memory"))
                        .and_then(|q| bytes(&q.0)),
                },
                restart_count: status.and_then(|s| u32::try_from(s.restart_count).ok()),
                state: status.and_then(container_state),
            }
        })
        .collect();
    let labels = pod
        .metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    PodSpec { containers, labels }
}

fn container_state(status: &ContainerStatus) -> Option<ContainerState> {
    let state = status.state.as_ref()?;
    if let Some(t) = &state.terminated {
        return Some(ContainerState::Terminated {
            exit_code: Some(t.exit_code),
            reason: t.reason.clone().unwrap_or_default().into(),
        });
    }
    if let Some(w) = &state.waiting {
        return Some(ContainerState::Waiting {
            reason: w.reason.clone().unwrap_or_default().into(),
        });
    }
    state.running.as_ref().map(|_| ContainerState::Running)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState as K8sState, ContainerStateTerminated, ContainerStateWaiting,
        PodSpec as K8sPodSpec, PodStatus, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn k8s_pod(uid: &str) -> Pod {
        let requests = |cpu: &str, mem: &str| ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity(cpu.into())),
                ("memory".to_owned(), Quantity(mem.into())),
            ])),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: Some(K8sPodSpec {
                containers: vec![
                    Container {
                        name: "trainer".into(),
                        resources: Some(requests("1500m", "1Gi")),
                        ..Default::default()
                    },
                    Container {
                        name: "prep".into(),
                        resources: Some(requests("200m", "128Mi")),
                        ..Default::default()
                    },
                    Container {
                        name: "bare".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![
                    ContainerStatus {
                        name: "prep".into(),
                        restart_count: 1,
                        state: Some(K8sState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: 0,
                                reason: Some("Completed".into()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ContainerStatus {
                        name: "bare".into(),
                        restart_count: 0,
                        state: Some(K8sState {
                            waiting: Some(ContainerStateWaiting {
                                reason: Some("ImagePullBackOff".into()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_pod_object_gives_requests_restarts_states_and_labels() {
        let mut pod = k8s_pod("u1");
        pod.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "train".to_owned())]));
        let spec = pod_spec(&pod);
        assert_eq!(spec.labels, [("app".to_owned(), "train".to_owned())]);
        assert_eq!(spec.containers.len(), 3);
        let trainer = &spec.containers[0];
        assert_eq!(
            trainer.requests,
            Requests {
                cpu_millicores: Some(1500.0),
                memory_bytes: Some(1 << 30)
            }
        );
        assert_eq!((trainer.restart_count, &trainer.state), (None, &None));
        let prep = &spec.containers[1];
        assert_eq!(prep.restart_count, Some(1));
        assert_eq!(
            prep.state,
            Some(ContainerState::Terminated {
                exit_code: Some(0),
                reason: "Completed".into()
            })
        );
        let bare = &spec.containers[2];
        assert_eq!(bare.requests, Requests::default());
        assert_eq!(
            bare.state,
            Some(ContainerState::Waiting {
                reason: "ImagePullBackOff".into()
            })
        );
    }

    #[test]
    fn the_index_follows_events_and_swaps_in_a_relist_whole() {
        let index = SpecIndex::default();
        index.apply(&watcher::Event::Apply(k8s_pod("a")));
        assert!(index.spec("a").is_some());
        assert_eq!(index.len(), 1);
        // A re-list in progress does not hide what is known.
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(k8s_pod("b")));
        assert!(index.spec("a").is_some() && index.spec("b").is_none());
        index.apply(&watcher::Event::InitDone);
        assert!(index.spec("a").is_none(), "gone from the re-list");
        assert!(index.spec("b").is_some());
        index.apply(&watcher::Event::Delete(k8s_pod("b")));
        assert!(index.is_empty());
        // A pod without uid is not indexed.
        let mut no_uid = k8s_pod("x");
        no_uid.metadata.uid = None;
        index.apply(&watcher::Event::Apply(no_uid));
        assert!(index.is_empty());
    }
}
