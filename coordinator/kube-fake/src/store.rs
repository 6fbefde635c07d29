//! The object store: every object by resource, namespace and name; the global resourceVersion;
//! the event history watches replay from; and the live watch subscriptions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::apply::{FieldOwners, conflict_message};
use crate::metadata::{Identities, now_rfc3339};
use crate::patch::{PatchKind, apply_patch};
use crate::resource::{Registry, Resource, ResourceId};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Reason};
use crate::watch::{self, Change, ChangeKind, Filter, SUBSCRIBER_BUFFER, Subscriber};

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

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Main,
    Status,
    /// Spec and status in one write (the binding subresource sets nodeName and a condition).
    Whole,
}

/// Per-request write options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteOptions<'a> {
    /// `dryRun=All`: validate and answer, but store nothing.
    pub(crate) dry_run: bool,
    /// `fieldManager`, or the client's default.
    pub(crate) manager: &'a str,
}

/// `labelSelector`, `fieldSelector`, `limit` and `continue` of a list.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListQuery {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
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

/// DeleteOptions.preconditions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Preconditions {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
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

    /// A `{Kind}List` page.
    pub(crate) fn list(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<Value, ApiError> {
        let (list_revision, after) = match &query.continue_token {
            Some(token) => {
                let (rv, key) = decode_continue(token)?;
                if rv < self.floor {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some(key))
            }
            None => (self.revision, None),
        };
        let empty = BTreeMap::new();
        let all = self.objects.get(&resource.id()).unwrap_or(&empty);
        let limit = query.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<(&ObjectKey, &Stored)> = all
            .iter()
            .filter(|(key, _)| after.as_ref().is_none_or(|a| *key > a))
            .filter(|((ns, _), _)| namespace.is_none_or(|want| !resource.namespaced || ns == want))
            .filter(|(_, s)| query.labels.matches(&s.object) && query.fields.matches(&s.object))
            .take(limit)
            .collect();
        let last_key = page.last().map(|(key, _)| (*key).clone());
        let items: Vec<Value> = page.into_iter().map(|(_, s)| s.object.clone()).collect();
        // Note: continuing pages are read from the current state, not from a snapshot at
        // `list_revision` as the real server (etcd) does; the list's resourceVersion is kept.
        let mut metadata = json!({"resourceVersion": list_revision.to_string()});
        let more = self.has_more(
            resource,
            namespace,
            query,
            last_key.as_ref(),
            items.len() == limit,
        );
        if let (true, Some(key)) = (more > 0, last_key) {
            metadata["continue"] = json!(encode_continue(list_revision, &key));
            metadata["remainingItemCount"] = json!(more);
        }
        Ok(json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// How many matching objects follow `last` when a page was filled.
    fn has_more(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        query: &ListQuery,
        last: Option<&ObjectKey>,
        page_full: bool,
    ) -> usize {
        let (Some(last), true) = (last, page_full) else {
            return 0;
        };
        self.objects
            .get(&resource.id())
            .into_iter()
            .flat_map(|m| {
                m.range((
                    std::ops::Bound::Excluded(last.clone()),
                    std::ops::Bound::Unbounded,
                ))
            })
            .filter(|((ns, _), _)| namespace.is_none_or(|want| !resource.namespaced || ns == want))
            .filter(|(_, s)| query.labels.matches(&s.object) && query.fields.matches(&s.object))
            .count()
    }

    /// Checks and completes a body for create (name, namespace, kind) without storing it.
    fn prepare_create(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        mut body: Value,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        check_type(resource, &mut body)?;
        let generated = meta_str(&body, "generateName").map(str::to_owned);
        let name = match (meta_str(&body, "name"), generated) {
            (Some(name), _) => name.to_owned(),
            (None, Some(prefix)) => format!("{prefix}{}", self.identities.name_suffix()),
            (None, None) => {
                return Err(ApiError::invalid(
                    resource,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
        };
        if !is_dns_subdomain(&name) {
            return Err(ApiError::invalid(
                resource,
                &name,
                "metadata.name",
                &format!(
                    "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
                     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        let namespace = check_namespace(resource, namespace, &body, &name)?;
        if meta_str(&body, "resourceVersion").is_some() {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if resource.status_subresource && !keep_status {
            // As the real server's create strategies do: status is the controllers' to write.
            match resource.kind.as_str() {
                "Pod" => body["status"] = json!({"phase": "Pending"}),
                "Namespace" => body["status"] = json!({"phase": "Active"}),
                _ => {
                    if let Some(map) = body.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        let uid = self.identities.uid();
        let meta = metadata_mut(&mut body);
        meta.insert("name".into(), json!(name));
        match namespace {
            Some(ns) => meta.insert("namespace".into(), json!(ns)),
            None => meta.remove("namespace"),
        };
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("managedFields");
        Ok(body)
    }

    pub(crate) fn create(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        body: Value,
        options: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        let object = self.prepare_create(resource, namespace, body, false)?;
        self.store_new(resource, object, options)
    }

    /// A test seed: like a create, but status is kept (so pods can be seeded Running).
    pub(crate) fn insert(&mut self, body: Value) -> Result<Value, ApiError> {
        let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
        let resource = self
            .registry
            .by_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request(format!("no resource registered for {api_version} {kind}"))
            })?;
        let namespace = meta_str(&body, "namespace")
            .map(str::to_owned)
            .or_else(|| resource.namespaced.then(|| "default".to_owned()));
        let object = self.prepare_create(&resource, namespace.as_deref(), body, true)?;
        let options = WriteOptions {
            dry_run: false,
            manager: "aistor-kube-fake",
        };
        self.store_new(&resource, object, options)
    }

    fn store_new(
        &mut self,
        resource: &Resource,
        object: Value,
        options: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        let name = meta_str(&object, "name").unwrap_or_default().to_owned();
        let namespace = meta_str(&object, "namespace").map(str::to_owned);
        if self.stored(resource, namespace.as_deref(), &name).is_some() {
            return Err(ApiError::already_exists(resource, &name));
        }
        if options.dry_run {
            return Ok(object);
        }
        let mut owners = FieldOwners::default();
        owners.record_update(None, &object, options.manager);
        Ok(self.commit(resource, ChangeKind::Created, object, None, owners))
    }

    /// PUT: replaces the main resource or its status.
    pub(crate) fn replace(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        mut body: Value,
        target: Target,
        options: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        check_type(resource, &mut body)?;
        let current = self.get(resource, namespace, name)?;
        if let Some(rv) = meta_str(&body, "resourceVersion")
            && Some(rv) != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::stale(resource, name));
        }
        self.write_update(
            resource, namespace, name, current, body, target, options, None,
        )
    }

    /// PATCH with a merge, JSON or strategic patch.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: &Value,
        target: Target,
        options: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        let current = self.get(resource, namespace, name)?;
        let patched = apply_patch(kind, &current, patch)
            .map_err(|why| ApiError::new(422, Reason::Invalid, why))?;
        // A resourceVersion in the patched object is a precondition, as on the real server.
        if let Some(rv) = meta_str(&patched, "resourceVersion")
            && Some(rv) != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::stale(resource, name));
        }
        let mut patched = patched;
        check_type(resource, &mut patched)?;
        self.write_update(
            resource, namespace, name, current, patched, target, options, None,
        )
    }

    /// Server-side apply (`application/apply-patch+yaml`); creates the object when missing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        mut config: Value,
        target: Target,
        force: bool,
        options: WriteOptions<'_>,
    ) -> Result<(Value, bool), ApiError> {
        check_type(resource, &mut config)?;
        if meta_str(&config, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&config, "name").unwrap_or_default()
            )));
        }
        let existing = self
            .stored(resource, namespace, name)
            .map(|s| (s.object.clone(), s.owners.clone()));
        let api_version = resource.api_version();
        let Some((current, mut owners)) = existing else {
            if target == Target::Status {
                return Err(ApiError::not_found(resource, name));
            }
            let mut owners = FieldOwners::default();
            let mut body = owners
                .apply(None, &config, options.manager, force)
                .map_err(|c| {
                    ApiError::conflict_apply(resource, name, &conflict_message(&c, &api_version))
                })?;
            metadata_mut(&mut body).insert("name".into(), json!(name));
            let object = self.prepare_create(resource, namespace, body, false)?;
            if options.dry_run {
                return Ok((object, true));
            }
            let mut fresh = FieldOwners::default();
            fresh.apply(None, &config, options.manager, true).ok();
            return Ok((
                self.commit(resource, ChangeKind::Created, object, None, fresh),
                true,
            ));
        };
        if let Some(rv) = meta_str(&config, "resourceVersion")
            && Some(rv) != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::stale(resource, name));
        }
        let applied = owners
            .apply(Some(&current), &config, options.manager, force)
            .map_err(|c| {
                ApiError::conflict_apply(resource, name, &conflict_message(&c, &api_version))
            })?;
        let updated = self.write_update(
            resource,
            namespace,
            name,
            current,
            applied,
            target,
            options,
            Some(owners),
        )?;
        Ok((updated, false))
    }

    /// The common tail of PUT, PATCH and apply: keeps server-owned metadata, honours the status
    /// subresource, counts generations, skips no-op writes, and finishes a pending deletion.
    #[allow(clippy::too_many_arguments)]
    fn write_update(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        current: Value,
        mut body: Value,
        target: Target,
        options: WriteOptions<'_>,
        owners: Option<FieldOwners>,
    ) -> Result<Value, ApiError> {
        if let Some(body_name) = meta_str(&body, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        check_namespace(resource, namespace, &body, name)?;
        let mut next = match target {
            // A status write changes nothing but .status (metadata included, as the real
            // server's ResetObjectMetaForStatus does).
            Target::Status => {
                let mut next = current.clone();
                match body.get("status") {
                    Some(status) => next["status"] = status.clone(),
                    None => {
                        if let Some(map) = next.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                next
            }
            Target::Main | Target::Whole => {
                if resource.status_subresource && target == Target::Main {
                    match current.get("status") {
                        Some(status) => body["status"] = status.clone(),
                        None => {
                            if let Some(map) = body.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
                let old_meta = current
                    .get("metadata")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let meta = metadata_mut(&mut body);
                for field in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "resourceVersion",
                ] {
                    match old_meta.get(field) {
                        Some(v) => meta.insert(field.into(), v.clone()),
                        None => meta.remove(field),
                    };
                }
                meta.remove("managedFields");
                body
            }
        };
        if desired_state(&next) != desired_state(&current) {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            metadata_mut(&mut next).insert("generation".into(), json!(generation + 1));
        }
        if next == current {
            return Ok(current);
        }
        if options.dry_run {
            return Ok(next);
        }
        let owners = owners.unwrap_or_else(|| {
            let mut owners = self
                .stored(resource, namespace, name)
                .map(|s| s.owners.clone())
                .unwrap_or_default();
            owners.record_update(Some(&current), &next, options.manager);
            owners
        });
        let finished = next.pointer("/metadata/deletionTimestamp").is_some()
            && next
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        let updated = self.commit(resource, ChangeKind::Updated, next, Some(current), owners);
        if finished {
            // The last finalizer is gone: the pending deletion completes now.
            self.commit(
                resource,
                ChangeKind::Deleted,
                updated.clone(),
                None,
                FieldOwners::default(),
            );
        }
        Ok(updated)
    }

    /// DELETE one object: immediate, or marked with a deletionTimestamp while finalizers remain.
    pub(crate) fn delete(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        preconditions: &Preconditions,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(resource, namespace, name)?;
        if let Some(uid) = &preconditions.uid {
            let actual = meta_str(&current, "uid").unwrap_or_default();
            if uid != actual {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                    ),
                ));
            }
        }
        if let Some(rv) = &preconditions.resource_version {
            let actual = meta_str(&current, "resourceVersion").unwrap_or_default();
            if rv != actual {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, \
                         ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(current);
            }
            let mut marked = current.clone();
            let meta = metadata_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if dry_run {
                return Ok(marked);
            }
            let owners = self
                .stored(resource, namespace, name)
                .map(|s| s.owners.clone())
                .unwrap_or_default();
            return Ok(self.commit(resource, ChangeKind::Updated, marked, Some(current), owners));
        }
        if dry_run {
            return Ok(current);
        }
        Ok(self.commit(
            resource,
            ChangeKind::Deleted,
            current,
            None,
            FieldOwners::default(),
        ))
    }

    /// DELETE on a collection: deletes every object the selectors match; returns them as a list.
    pub(crate) fn delete_collection(
        &mut self,
        resource: &Resource,
        namespace: Option<&str>,
        query: &ListQuery,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let selected = ListQuery {
            limit: None,
            continue_token: None,
            ..query.clone()
        };
        let list = self.list(resource, namespace, &selected)?;
        let mut deleted = Vec::new();
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let name = meta_str(&item, "name").unwrap_or_default().to_owned();
            let ns = meta_str(&item, "namespace").map(str::to_owned);
            deleted.push(self.delete(
                resource,
                ns.as_deref(),
                &name,
                &Preconditions::default(),
                dry_run,
            )?);
        }
        Ok(json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": {"resourceVersion": self.revision.to_string()},
            "items": deleted,
        }))
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

impl ApiError {
    fn conflict_apply(resource: &Resource, name: &str, message: &str) -> ApiError {
        let mut error = ApiError::new(409, Reason::Conflict, message.to_owned());
        error.details = Some(crate::status::Details::of(resource, name));
        error
    }
}

/// Fills in or checks apiVersion and kind against the URL's resource.
fn check_type(resource: &Resource, body: &mut Value) -> Result<(), ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let api_version = resource.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(resource.kind));
        }
        Some(k) if k != resource.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )));
        }
        Some(_) => {}
    }
    Ok(())
}

/// The namespace an object will live in; a body naming another namespace than the URL is a
/// 400 BadRequest, as on the real server.
fn check_namespace(
    resource: &Resource,
    url_namespace: Option<&str>,
    body: &Value,
    name: &str,
) -> Result<Option<String>, ApiError> {
    if !resource.namespaced {
        return Ok(None);
    }
    let Some(url_ns) = url_namespace else {
        return Err(ApiError::bad_request(format!(
            "{} \"{name}\" is namespaced: the request must name a namespace",
            resource.qualified()
        )));
    };
    match meta_str(body, "namespace") {
        Some(ns) if ns != url_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => Ok(Some(url_ns.to_owned())),
    }
}

/// Continue tokens: opaque to clients; here the hex of "revision\nnamespace\nname".
fn encode_continue(revision: u64, key: &ObjectKey) -> String {
    format!("{revision}\n{}\n{}", key.0, key.1)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<(u64, ObjectKey), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if token.len() % 2 != 0 || token.len() > 2048 {
        return Err(invalid());
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '\n');
    let rv = parts
        .next()
        .and_then(|r| r.parse().ok())
        .ok_or_else(invalid)?;
    let ns = parts.next().ok_or_else(invalid)?.to_owned();
    let name = parts.next().ok_or_else(invalid)?.to_owned();
    Ok((rv, (ns, name)))
}
