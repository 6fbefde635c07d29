//! The store on Kubernetes: objects of kinds that have an aistor custom resource are
//! kept as those resources, so `kubectl get autoscalers` shows the very object the
//! REST API and `aistorctl` show, and a new leader reads what the old one wrote.
//!
//! A stored body is the whole resource (apiVersion, kind, metadata, spec, status);
//! the key is `namespace/name`. The generation is the resource's resourceVersion
//! (etcd's revision, a number): every write names the version it read and the API
//! server refuses a stale one with 409, which is [`StoreError::Conflict`]. Versions
//! increase with every write, not by exactly one. The status goes through the
//! `status` subresource, the rest through the main resource, each written only when
//! it changed.

use super::{ListOptions, Object, Page, Store, StoreError, check_list};
use crate::k8s::crd::{Autoscaler, Migration};
use futures::future::BoxFuture;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions};
use kube::core::ApiResource;
use serde_json::Value;

/// Kinds kept as custom resources, with their resource type.
fn resource_of(kind: &'static str) -> Result<ApiResource, StoreError> {
    match kind {
        // The kind name the autoscalers are stored under (`autoscalers::AUTOSCALERS`).
        "autoscalers" => Ok(ApiResource::erase::<Autoscaler>(&())),
        // `migrations::KIND`.
        "migrations" => Ok(ApiResource::erase::<Migration>(&())),
        _ => Err(StoreError::InvalidKind {
            kind,
            reason: "not kept in the cluster (only kinds with an aistor.io custom resource are)"
                .into(),
        }),
    }
}

#[derive(Clone)]
pub struct CustomResourceStore {
    client: Client,
}

impl std::fmt::Debug for CustomResourceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomResourceStore")
            .finish_non_exhaustive()
    }
}

fn split(kind: &'static str, key: &str) -> Result<(String, String), StoreError> {
    match key.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok((ns.into(), name.into())),
        _ => Err(StoreError::InvalidKey {
            kind,
            key: key.chars().take(64).collect(),
            reason: "must be namespace/name".into(),
        }),
    }
}

fn backend(context: String, e: kube::Error) -> StoreError {
    StoreError::Backend {
        context,
        source: Box::new(e),
    }
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn version(kind: &'static str, key: &str, o: &DynamicObject) -> Result<u64, StoreError> {
    let rv = o.metadata.resource_version.as_deref().unwrap_or("");
    rv.parse().map_err(|_| StoreError::InvalidBody {
        kind,
        key: key.to_owned(),
        reason: format!(
            "resourceVersion {rv:?} is not a number; this store relies on etcd's numeric versions"
        ),
    })
}

fn unix_nanos(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> u64 {
    t.map_or(0, |t| u64::try_from(t.0.as_nanosecond()).unwrap_or(0))
}

fn to_object(kind: &'static str, o: DynamicObject) -> Result<Object, StoreError> {
    let key = format!(
        "{}/{}",
        o.metadata.namespace.as_deref().unwrap_or(""),
        o.metadata.name.as_deref().unwrap_or("")
    );
    let generation = version(kind, &key, &o)?;
    let created = unix_nanos(o.metadata.creation_timestamp.as_ref());
    let body = serde_json::to_value(&o).map_err(|e| StoreError::InvalidBody {
        kind,
        key: key.clone(),
        reason: e.to_string(),
    })?;
    Ok(Object {
        key,
        generation,
        created_unix_nanos: created,
        // The API keeps no update time of its own; a write's caller knows it.
        updated_unix_nanos: created,
        body,
    })
}

fn to_dynamic(kind: &'static str, key: &str, body: Value) -> Result<DynamicObject, StoreError> {
    serde_json::from_value(body).map_err(|e| StoreError::InvalidBody {
        kind,
        key: key.to_owned(),
        reason: format!("not a Kubernetes object: {e}"),
    })
}

/// Everything but the status and the server's bookkeeping: what the main resource's
/// write would change.
fn main_part(o: &DynamicObject) -> (Value, Value, Value) {
    let mut data = o.data.clone();
    if let Some(map) = data.as_object_mut() {
        map.remove("status");
    }
    (
        data,
        serde_json::to_value(&o.metadata.labels).unwrap_or_default(),
        serde_json::to_value(&o.metadata.annotations).unwrap_or_default(),
    )
}

impl CustomResourceStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn api(&self, kind: &'static str, namespace: &str) -> Result<Api<DynamicObject>, StoreError> {
        Ok(Api::namespaced_with(
            self.client.clone(),
            namespace,
            &resource_of(kind)?,
        ))
    }

    async fn write_status(
        &self,
        api: &Api<DynamicObject>,
        kind: &'static str,
        key: &str,
        name: &str,
        object: &DynamicObject,
    ) -> Result<DynamicObject, StoreError> {
        api.replace_status(name, &PostParams::default(), object)
            .await
            .map_err(|e| self.write_error(kind, key, object, e))
    }

    fn write_error(
        &self,
        kind: &'static str,
        key: &str,
        sent: &DynamicObject,
        e: kube::Error,
    ) -> StoreError {
        match api_code(&e) {
            Some(409) => StoreError::Conflict {
                kind,
                key: key.to_owned(),
                expected: version(kind, key, sent).unwrap_or(0),
                // The API does not say which version it holds now.
                actual: 0,
            },
            Some(404) => StoreError::NotFound {
                kind,
                key: key.to_owned(),
            },
            _ => backend(format!("writing {kind} {key:?}"), e),
        }
    }
}

impl Store for CustomResourceStore {
    fn get<'a>(
        &'a self,
        kind: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Object>, StoreError>> {
        Box::pin(async move {
            let (ns, name) = split(kind, key)?;
            match self.api(kind, &ns)?.get_opt(&name).await {
                Ok(found) => found.map(|o| to_object(kind, o)).transpose(),
                Err(e) => Err(backend(format!("reading {kind} {key:?}"), e)),
            }
        })
    }

    fn list<'a>(
        &'a self,
        kind: &'static str,
        options: ListOptions,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            check_list(kind, &options)?;
            // The API pages by its own tokens; this store's pages are by key, so it
            // reads every page and cuts by key (kinds kept here are bounded in number).
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource_of(kind)?);
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut params = ListParams::default().limit(500);
                if let Some(t) = &token {
                    params = params.continue_token(t);
                }
                let page = api
                    .list(&params)
                    .await
                    .map_err(|e| backend(format!("listing {kind}"), e))?;
                for o in page.items {
                    all.push(to_object(kind, o)?);
                }
                token = page.metadata.continue_.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
            all.sort_by(|a, b| a.key.cmp(&b.key));
            let after = options.continue_after.unwrap_or_default();
            let mut items: Vec<Object> = all.into_iter().filter(|o| o.key > after).collect();
            let more = items.len() > options.limit;
            items.truncate(options.limit);
            let continue_after = more.then(|| items.last().map(|o| o.key.clone())).flatten();
            Ok(Page {
                items,
                continue_after,
            })
        })
    }

    fn create<'a>(
        &'a self,
        kind: &'static str,
        key: &'a str,
        body: Value,
        _now_unix_nanos: u64,
    ) -> BoxFuture<'a, Result<Object, StoreError>> {
        Box::pin(async move {
            let (ns, name) = split(kind, key)?;
            let api = self.api(kind, &ns)?;
            let mut object = to_dynamic(kind, key, body)?;
            object.metadata.namespace = Some(ns);
            object.metadata.name = Some(name.clone());
            object.metadata.resource_version = None;
            let status = object.data.get("status").cloned();
            let mut created = api
                .create(&PostParams::default(), &object)
                .await
                .map_err(|e| match api_code(&e) {
                    Some(409) => StoreError::AlreadyExists {
                        kind,
                        key: key.to_owned(),
                    },
                    _ => backend(format!("creating {kind} {key:?}"), e),
                })?;
            // A resource with a status subresource drops the status on create.
            if let Some(status) = status {
                created.data["status"] = status;
                created = self.write_status(&api, kind, key, &name, &created).await?;
            }
            to_object(kind, created)
        })
    }

    fn update<'a>(
        &'a self,
        kind: &'static str,
        key: &'a str,
        expected_generation: u64,
        body: Value,
        _now_unix_nanos: u64,
    ) -> BoxFuture<'a, Result<Object, StoreError>> {
        Box::pin(async move {
            let (ns, name) = split(kind, key)?;
            let api = self.api(kind, &ns)?;
            let mut wanted = to_dynamic(kind, key, body)?;
            wanted.metadata.namespace = Some(ns);
            wanted.metadata.name = Some(name.clone());
            wanted.metadata.resource_version = Some(expected_generation.to_string());
            // The status first, guarded by the version read: most writes are status only.
            let mut stored = self.write_status(&api, kind, key, &name, &wanted).await?;
            if main_part(&stored) != main_part(&wanted) {
                let mut main = wanted.clone();
                main.metadata.resource_version = stored.metadata.resource_version.clone();
                stored = api
                    .replace(&name, &PostParams::default(), &main)
                    .await
                    .map_err(|e| self.write_error(kind, key, &main, e))?;
            }
            to_object(kind, stored)
        })
    }

    fn delete<'a>(
        &'a self,
        kind: &'static str,
        key: &'a str,
        expected_generation: Option<u64>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (ns, name) = split(kind, key)?;
            let params = DeleteParams {
                preconditions: expected_generation.map(|g| Preconditions {
                    resource_version: Some(g.to_string()),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match self.api(kind, &ns)?.delete(&name, &params).await {
                Ok(_) => Ok(()),
                Err(e) if api_code(&e) == Some(404) => Err(StoreError::NotFound {
                    kind,
                    key: key.to_owned(),
                }),
                Err(e) if api_code(&e) == Some(409) => Err(StoreError::Conflict {
                    kind,
                    key: key.to_owned(),
                    expected: expected_generation.unwrap_or(0),
                    actual: 0,
                }),
                Err(e) => Err(backend(format!("deleting {kind} {key:?}"), e)),
            }
        })
    }
}
