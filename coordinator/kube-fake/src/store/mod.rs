//! The object store: every object by resource, namespace and name; the global resourceVersion;
//! the event history watches replay from; and the live watch subscriptions.

mod list;
mod write;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::apply::FieldOwners;
use crate::metadata::Identities;
use crate::resource::{Registry, Resource, ResourceId};
use crate::status::ApiError;
use crate::watch::{self, Change, ChangeKind, Filter, SUBSCRIBER_BUFFER, Subscriber};

pub(crate) use list::ListQuery;
pub(crate) use write::{Preconditions, Target, WriteOptions};

/// Changes kept for watches that start from an older resourceVersion; older ones are forgotten
/// (such a watch gets 410 Expired), which bounds memory as etcd compaction does.
const HISTORY_LIMIT: usize = 10_000;

/// (namespace, or "" for cluster-scoped, name): sorts like the real server's keys.
type ObjectKey = (String, String);

#[derive(Debug)]
struct Stored {
    object: Value,
    owners: FieldOwners,
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchFrom {
    /// No resourceVersion or "0": synthetic ADDED events for what exists, then changes.
    Current,
    /// `sendInitialEvents=true`: like `Current`, then a bookmark marking the end of the initial events.
    InitialEvents,
    /// Changes after this resourceVersion.
    Revision(u64),
}

pub(crate) struct WatchStart {
    pub(crate) initial: Vec<Value>,
    pub(crate) receiver: mpsc::Receiver<Value>,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) registry: Registry,
    objects: HashMap<ResourceId, BTreeMap<ObjectKey, Stored>>,
    revision: u64,
    /// The revision readable without the lock (watch bookmarks); set after events are queued.
    published: Arc<AtomicU64>,
    history: VecDeque<Change>,
    /// Watches from a revision below this one have missed forgotten changes: 410 Expired.
    floor: u64,
    subscribers: Vec<Subscriber>,
    identities: Identities,
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get("metadata")?
        .get(field)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// `spec` and everything else outside metadata and status: what `generation` counts.
fn desired_state(object: &Value) -> Map<String, Value> {
    object
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            revision: 1,
            published: Arc::new(AtomicU64::new(1)),
            history: VecDeque::new(),
            floor: 1,
            subscribers: Vec::new(),
            identities: Identities::new(),
        }
    }

    pub(crate) fn revision_handle(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.published)
    }

    fn key(resource: &Resource, namespace: Option<&str>, name: &str) -> ObjectKey {
        let ns = if resource.namespaced {
            namespace.unwrap_or("")
        } else {
            ""
        };
        (ns.to_owned(), name.to_owned())
    }

    fn stored(&self, resource: &Resource, namespace: Option<&str>, name: &str) -> Option<&Stored> {
        self.objects
            .get(&resource.id())?
            .get(&Self::key(resource, namespace, name))
    }

    pub(crate) fn get(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.stored(resource, namespace, name)
            .map(|s| s.object.clone())
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    /// Objects of a resource in one namespace (or all), in key order.
    pub(crate) fn objects_of(&self, resource: &Resource, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .get(&resource.id())
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|((ns, _), _)| namespace.is_none_or(|want| !resource.namespaced || ns == want))
            .map(|(_, s)| s.object.clone())
            .collect()
    }

    /// Records a write: bumps the revision, stores or removes the object, keeps the change in
    /// the history and hands it to the live watches.
    fn commit(
        &mut self,
        resource: &Resource,
        kind: ChangeKind,
        mut object: Value,
        old: Option<Value>,
        owners: FieldOwners,
    ) -> Value {
        self.revision += 1;
        metadata_mut(&mut object)
            .insert("resourceVersion".into(), json!(self.revision.to_string()));
        let name = meta_str(&object, "name").unwrap_or_default().to_owned();
        let namespace = meta_str(&object, "namespace").map(str::to_owned);
        let key = Self::key(resource, namespace.as_deref(), &name);
        let objects = self.objects.entry(resource.id()).or_default();
        if kind == ChangeKind::Deleted {
            objects.remove(&key);
        } else {
            objects.insert(
                key,
                Stored {
                    object: object.clone(),
                    owners,
                },
            );
        }
        let change = Change {
            revision: self.revision,
            resource: resource.id(),
            namespace,
            kind,
            object: object.clone(),
            old,
        };
        self.subscribers.retain(|s| s.deliver(&change));
        self.history.push_back(change);
        while self.history.len() > HISTORY_LIMIT {
            if let Some(dropped) = self.history.pop_front() {
                self.floor = self.floor.max(dropped.revision);
            }
        }
        self.published.store(self.revision, Ordering::Release);
        object
    }

    /// Starts a watch: the events it must replay now, and the receiver for later ones.
    pub(crate) fn watch(
        &mut self,
        resource: &Resource,
        filter: Filter,
        from: WatchFrom,
    ) -> Result<WatchStart, ApiError> {
        let initial = match from {
            WatchFrom::Revision(rv) => {
                if rv < self.floor {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        self.floor
                    )));
                }
                self.history
                    .iter()
                    .filter(|c| c.revision > rv)
                    .filter_map(|c| filter.event_for(c))
                    .collect()
            }
            WatchFrom::Current | WatchFrom::InitialEvents => {
                let mut events: Vec<Value> = self
                    .objects_of(resource, filter.namespace.as_deref())
                    .into_iter()
                    .filter(|o| filter.matches(o))
                    .map(|o| watch::event("ADDED", o))
                    .collect();
                if from == WatchFrom::InitialEvents {
                    events.push(watch::bookmark(
                        &resource.api_version(),
                        &resource.kind,
                        self.revision,
                        true,
                    ));
                }
                events
            }
        };
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.subscribers.retain(|s| !s.sender.is_closed());
        self.subscribers.push(Subscriber { filter, sender });
        Ok(WatchStart { initial, receiver })
    }

    /// Ends every open watch (their streams finish; clients re-watch).
    pub(crate) fn close_watches(&mut self) {
        self.subscribers.clear();
    }

    /// Forgets the event history: watches from an older revision get 410 Expired.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.floor = self.revision;
    }
}
