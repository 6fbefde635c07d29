//! The store on Kubernetes: objects of kinds that have an aistor custom resource are
//! kept as those resources, so `kubectl get autoscalers` shows the very object the
//! REST API and `aistorctl` show, and a new leader reads what the old one wrote.
//!
//! A stored body is the whole resource (apiVersion, kind, metadata, spec, status);
//! the key is `namespace/name`, checked as the API checks them (a namespace is a DNS
//! label of at most 63 bytes, a name a DNS subdomain of at most 253). Bodies are held
//! to [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) as on every store, well inside etcd's 1.5 MiB per object.
//!
//! Where this store differs from the standalone one (each is part of the [`Store`]
//! contract's fixture, `tests/store_contract`):
//! - only kinds with a resource ([`KINDS`]) are kept; another kind is
//!   [`StoreError::InvalidKind`];
//! - the generation is the resource's resourceVersion (etcd's revision, a number):
//!   every write names the version it read and the API server refuses a stale one with
//!   409, which is [`StoreError::Conflict`] naming the version found. Versions increase
//!   with every write, not by exactly one, and a write that changes nothing keeps the
//!   version (the API server skips it);
//! - times are the API server's: `created_unix_nanos` is `metadata.creationTimestamp`
//!   (whole seconds) and, as the API keeps no update time, `updated_unix_nanos` is the
//!   same; the times a caller passes are not kept;
//! - the status goes through the `status` subresource, the rest through the main
//!   resource, each written only when it changed: a write that changes both is two
//!   requests, and a crash between them leaves the status of the version before.

use super::{ListOptions, Object, Page, Store, StoreError, check_kind, check_list};
use crate::k8s::crd::{Autoscaler, Measurement, Migration};
use futures::future::BoxFuture;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions};
use kube::core::ApiResource;
use serde_json::Value;

/// The store kinds kept here, each as the custom resource of the same plural name.
pub const KINDS: [&str; 3] = ["autoscalers", "measurements", "migrations"];

/// Longest namespace (a DNS label).
pub const MAX_NAMESPACE_BYTES: usize = 63;
/// Longest name (a DNS subdomain).
pub const MAX_NAME_BYTES: usize = 253;

/// Kinds kept as custom resources, with their resource type.
fn resource_of(kind: &'static str) -> Result<ApiResource, StoreError> {
    check_kind(kind)?;
    match kind {
        // The kind name the autoscalers are stored under (`autoscalers::AUTOSCALERS`).
        "autoscalers" => Ok(ApiResource::erase::<Autoscaler>(&())),
        // `store::measurements::KIND`.
        "measurements" => Ok(ApiResource::erase::<Measurement>(&())),
        // `migrations::KIND`.
        "migrations" => Ok(ApiResource::erase::<Migration>(&())),
        _ => Err(StoreError::InvalidKind {
            kind,
            reason: "not kept in the cluster (only kinds with an aistor.io custom resource are)"
                .into(),
        }),
    }
}

/// Whether `name` is a DNS-1123 subdomain (lower-case letters, digits, '-' and '.',
/// starting and ending with a letter or digit) of at most [`MAX_NAME_BYTES`].
pub fn is_resource_name(name: &str) -> bool {
    name_problem(name, MAX_NAME_BYTES, true).is_none()
}

/// What is wrong with a namespace (`dots: false`) or a name, if anything.
fn name_problem(name: &str, limit: usize, dots: bool) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > limit {
        return Some(format!(
            "is {} bytes, the limit is {limit} bytes",
            name.len()
        ));
    }
    let allowed =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.');
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !name.bytes().all(allowed) || !edge(name.as_bytes().first()) || !edge(name.as_bytes().last())
    {
        return Some(if dots {
            "must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (a DNS subdomain)".into()
        } else {
            "must be lower-case letters, digits and '-', starting and ending with a letter or digit (a DNS label)".into()
        });
    }
    None
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

/// A key as (namespace, name), checked as the API server checks them.
fn split(kind: &'static str, key: &str) -> Result<(String, String), StoreError> {
    let invalid = |reason: String| StoreError::InvalidKey {
        kind,
        key: key.chars().take(64).collect(),
        reason,
    };
    let Some((ns, name)) = key.split_once('/') else {
        return Err(invalid("must be namespace/name".into()));
    };
    if let Some(why) = name_problem(ns, MAX_NAMESPACE_BYTES, false) {
        return Err(invalid(format!(
            "must be namespace/name; the namespace {why}"
        )));
    }
    if let Some(why) = name_problem(name, MAX_NAME_BYTES, true) {
        return Err(invalid(format!("must be namespace/name; the name {why}")));
    }
    Ok((ns.into(), name.into()))
}

/// The body as sent, held to the store's size limit.
fn to_sent(kind: &'static str, key: &str, body: Value) -> Result<DynamicObject, StoreError> {
    super::encode_body(kind, key, &body)?;
    to_dynamic(kind, key, body)
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
        match api
            .replace_status(name, &PostParams::default(), object)
            .await
        {
            Ok(o) => Ok(o),
            Err(e) => Err(self.write_error(api, kind, key, name, object, e).await),
        }
    }

    /// A refused write as the store's error: a 409 names the version the API holds now
    /// (read again, as the API's error does not say it).
    async fn write_error(
        &self,
        api: &Api<DynamicObject>,
        kind: &'static str,
        key: &str,
        name: &str,
        sent: &DynamicObject,
        e: kube::Error,
    ) -> StoreError {
        let expected = version(kind, key, sent).unwrap_or(0);
        match api_code(&e) {
            Some(409) => self.conflict(api, kind, key, name, expected).await,
            Some(404) => StoreError::NotFound {
                kind,
                key: key.to_owned(),
            },
            _ => backend(format!("writing {kind} {key:?}"), e),
        }
    }

    async fn conflict(
        &self,
        api: &Api<DynamicObject>,
        kind: &'static str,
        key: &str,
        name: &str,
        expected: u64,
    ) -> StoreError {
        match api.get_opt(name).await {
            Ok(Some(now)) => StoreError::Conflict {
                kind,
                key: key.to_owned(),
                expected,
                actual: version(kind, key, &now).unwrap_or(0),
            },
            // Deleted since: the write's target is gone.
            Ok(None) => StoreError::NotFound {
                kind,
                key: key.to_owned(),
            },
            Err(e) => backend(
                format!("{kind} {key:?} changed since generation {expected}; reading it again"),
                e,
            ),
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
            resource_of(kind)?;
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
            resource_of(kind)?;
            let (ns, name) = split(kind, key)?;
            let api = self.api(kind, &ns)?;
            let mut object = to_sent(kind, key, body)?;
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
            resource_of(kind)?;
            let (ns, name) = split(kind, key)?;
            let api = self.api(kind, &ns)?;
            let mut wanted = to_sent(kind, key, body)?;
            wanted.metadata.namespace = Some(ns);
            wanted.metadata.name = Some(name.clone());
            wanted.metadata.resource_version = Some(expected_generation.to_string());
            // The status first, guarded by the version read: most writes are status only.
            let mut stored = self.write_status(&api, kind, key, &name, &wanted).await?;
            if main_part(&stored) != main_part(&wanted) {
                let mut main = wanted.clone();
                main.metadata.resource_version = stored.metadata.resource_version.clone();
                stored = match api.replace(&name, &PostParams::default(), &main).await {
                    Ok(o) => o,
                    Err(e) => return Err(self.write_error(&api, kind, key, &name, &main, e).await),
                };
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
            resource_of(kind)?;
            let (ns, name) = split(kind, key)?;
            let api = self.api(kind, &ns)?;
            let params = DeleteParams {
                preconditions: expected_generation.map(|g| Preconditions {
                    resource_version: Some(g.to_string()),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => Ok(()),
                Err(e) if api_code(&e) == Some(404) => Err(StoreError::NotFound {
                    kind,
                    key: key.to_owned(),
                }),
                Err(e) if api_code(&e) == Some(409) => Err(self
                    .conflict(&api, kind, key, &name, expected_generation.unwrap_or(0))
                    .await),
                Err(e) => Err(backend(format!("deleting {kind} {key:?}"), e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(key: &str) -> String {
        match split("measurements", key) {
            Err(StoreError::InvalidKey { reason, .. }) => reason,
            other => panic!("{key:?}: expected InvalidKey, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_namespace_and_name_as_the_api_server_checks_them() {
        let longest = format!("{}/{}", "n".repeat(63), "k".repeat(253));
        assert_eq!(
            split("measurements", &longest).unwrap(),
            ("n".repeat(63), "k".repeat(253))
        );
        assert_eq!(
            split("measurements", "a-1/b.c-2").unwrap(),
            ("a-1".into(), "b.c-2".into())
        );
        assert_eq!(reason("no-slash"), "must be namespace/name");
        assert_eq!(
            reason("/n"),
            "must be namespace/name; the namespace must not be empty"
        );
        assert_eq!(
            reason("ns/"),
            "must be namespace/name; the name must not be empty"
        );
        assert_eq!(
            reason(&format!("{}/n", "n".repeat(64))),
            "must be namespace/name; the namespace is 64 bytes, the limit is 63 bytes"
        );
        assert_eq!(
            reason(&format!("ns/{}", "k".repeat(254))),
            "must be namespace/name; the name is 254 bytes, the limit is 253 bytes"
        );
        for bad_namespace in ["a.b", "A", "-a", "a-", "a_b"] {
            assert!(
                reason(&format!("{bad_namespace}/n")).contains("(a DNS label)"),
                "{bad_namespace}"
            );
        }
        for bad_name in ["Name", ".a", "a.", "-a", "a-", "a_b", "a/b"] {
            assert!(
                reason(&format!("ns/{bad_name}")).contains("(a DNS subdomain)"),
                "{bad_name}"
            );
        }
        assert!(is_resource_name("a") && is_resource_name("0.a-b.9"));
        assert!(!is_resource_name("") && !is_resource_name(&"a".repeat(254)));
    }

    #[test]
    fn only_kinds_with_a_resource_are_kept() {
        for kind in KINDS {
            assert!(resource_of(kind).is_ok(), "{kind}");
        }
        assert_eq!(resource_of("measurements").unwrap().kind, "Measurement");
        assert_eq!(resource_of("autoscalers").unwrap().kind, "Autoscaler");
        assert_eq!(resource_of("migrations").unwrap().kind, "Migration");
        for kind in ["sequences", "things", "Upper"] {
            assert!(
                matches!(resource_of(kind), Err(StoreError::InvalidKind { .. })),
                "{kind}"
            );
        }
    }
}
