//! Watch caches (kube-runtime reflectors) of the kinds decisions read: Nodes, Pods, Deployments,
//! StatefulSets, ReplicaSets, PodDisruptionBudgets, PersistentVolumeClaims and PersistentVolumes,
//! across namespaces.
//!
//! [`Cache::new`] returns the owner of the stores and one task per reflector; the caller
//! supervises the tasks (they run until dropped: the watcher re-lists and re-watches by itself,
//! with backoff, after errors, closed watches and 410 Gone). `managedFields` are dropped on the
//! way in: they are most of an object's size and nothing here reads them.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::Task;
use super::join::{self, Joined};
use super::specs::SpecIndex;

const KINDS: usize = 8;

/// The read side of the watch caches. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    nodes: Store<Node>,
    pods: Store<Pod>,
    deployments: Store<Deployment>,
    stateful_sets: Store<StatefulSet>,
    replica_sets: Store<ReplicaSet>,
    pod_disruption_budgets: Store<PodDisruptionBudget>,
    persistent_volume_claims: Store<PersistentVolumeClaim>,
    persistent_volumes: Store<PersistentVolume>,
    /// Pod specs by uid, for ingest to join into the model.
    specs: SpecIndex,
    ready: watch::Receiver<bool>,
}

impl Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("ready", &*self.ready.borrow())
            .field("nodes", &self.nodes.len())
            .field("pods", &self.pods.len())
            .finish_non_exhaustive()
    }
}

/// Counts reflectors whose first list completed; flips `ready` when all have.
struct Readiness {
    synced: AtomicUsize,
    ready: watch::Sender<bool>,
}

impl Readiness {
    fn one_synced(&self) {
        if self.synced.fetch_add(1, Ordering::AcqRel) + 1 == KINDS {
            self.ready.send_replace(true);
        }
    }
}

fn reflect<K>(
    name: &'static str,
    client: &Client,
    sync: &Arc<Readiness>,
    tasks: &mut Vec<Task>,
    on_event: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let api = Api::<K>::all(client.clone());
    let sync = Arc::clone(sync);
    let stream = watcher(api, watcher::Config::default())
        .modify(slim)
        .default_backoff();
    let task = async move {
        let mut counted = false;
        let events = reflector::reflector(writer, stream);
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            if let Ok(event) = &event {
                on_event(event);
            }
            match event {
                Ok(watcher::Event::InitDone) if !counted => {
                    counted = true;
                    tracing::debug!(kind = name, "reflector synced");
                    sync.one_synced();
                }
                Ok(_) => {}
                // The watcher retries after its backoff; say why it had to.
                Err(e) => tracing::warn!(kind = name, error = %e, "watch failed; retrying"),
            }
        }
        tracing::error!(kind = name, "reflector stream ended");
    };
    tasks.push(Task {
        name: format!("reflector/{name}"),
        future: Box::pin(task),
    });
    reader
}

/// Drops what the cache keeps but nothing reads (managedFields: often half an object's size).
fn slim<K: ResourceExt>(object: &mut K) {
    object.managed_fields_mut().clear();
}

impl Cache {
    /// The stores and their reflector tasks (which the caller spawns and supervises).
    pub fn new(client: &Client) -> (Cache, Vec<Task>) {
        let (ready_tx, ready) = watch::channel(false);
        let sync = Arc::new(Readiness {
            synced: AtomicUsize::new(0),
            ready: ready_tx,
        });
        let mut tasks = Vec::with_capacity(KINDS);
        let specs = SpecIndex::default();
        let cache = Cache {
            nodes: reflect("nodes", client, &sync, &mut tasks, |_| {}),
            pods: reflect("pods", client, &sync, &mut tasks, {
                let specs = specs.clone();
                move |event| specs.apply(event)
            }),
            deployments: reflect("deployments", client, &sync, &mut tasks, |_| {}),
            stateful_sets: reflect("statefulsets", client, &sync, &mut tasks, |_| {}),
            replica_sets: reflect("replicasets", client, &sync, &mut tasks, |_| {}),
            pod_disruption_budgets: reflect(
                "poddisruptionbudgets",
                client,
                &sync,
                &mut tasks,
                |_| {},
            ),
            persistent_volume_claims: reflect(
                "persistentvolumeclaims",
                client,
                &sync,
                &mut tasks,
                |_| {},
            ),
            persistent_volumes: reflect("persistentvolumes", client, &sync, &mut tasks, |_| {}),
            specs,
            ready,
        };
        debug_assert_eq!(tasks.len(), KINDS);
        (cache, tasks)
    }

    /// Whether every reflector has completed its first list.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Flips to `true` once every reflector has completed its first list (and stays there:
    /// later re-lists keep serving the previous state until they complete).
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    /// Resolves once every reflector has synced (at once if they have).
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        // The sender lives in the reflector tasks; if they are all gone, this never resolves,
        // which is what "not ready" means.
        if ready.wait_for(|r| *r).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn nodes(&self) -> &Store<Node> {
        &self.nodes
    }
    /// Pod specs by uid (requests, restart counts, container states).
    pub fn specs(&self) -> &SpecIndex {
        &self.specs
    }

    pub fn pods(&self) -> &Store<Pod> {
        &self.pods
    }
    pub fn deployments(&self) -> &Store<Deployment> {
        &self.deployments
    }
    pub fn stateful_sets(&self) -> &Store<StatefulSet> {
        &self.stateful_sets
    }
    pub fn replica_sets(&self) -> &Store<ReplicaSet> {
        &self.replica_sets
    }
    pub fn pod_disruption_budgets(&self) -> &Store<PodDisruptionBudget> {
        &self.pod_disruption_budgets
    }
    pub fn persistent_volume_claims(&self) -> &Store<PersistentVolumeClaim> {
        &self.persistent_volume_claims
    }
    pub fn persistent_volumes(&self) -> &Store<PersistentVolume> {
        &self.persistent_volumes
    }

    /// The Kubernetes Node and pods of the node an agent reports as `agent_node`, joined with
    /// the pod uids of its report (see [`join::join`]).
    pub fn join<'u>(
        &self,
        agent_node: &str,
        report_pod_uids: impl IntoIterator<Item = &'u str>,
    ) -> Joined {
        join::join(
            agent_node,
            report_pod_uids,
            &self.nodes.state(),
            &self.pods.state(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn cached_objects_lose_their_managed_fields() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..ManagedFieldsEntry::default()
        }]);
        slim(&mut pod);
        assert!(
            pod.metadata
                .managed_fields
                .as_ref()
                .is_none_or(Vec::is_empty)
        );
        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
    }
}
