//! What the REST and gRPC APIs offer of placement: explain a pod's placement without
//! binding it, and show or (standalone) apply the AIStorageConfig in force. Standalone,
//! an applied document is kept in the store and put back in force at start.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::{Candidates, ConfigInForce, Explanation, Placement, PolicyUse, config};
use crate::store::{Store, StoreError};

/// The store's kind for the applied AIStorageConfig (one object, key `default`).
const KIND: &str = "placementconfigs";
const KEY: &str = "default";

/// Finds a pod the coordinator knows by namespace and name.
pub type PodLookup = Arc<dyn Fn(&str, &str) -> Option<Pod> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong (400 / INVALID_ARGUMENT); the text names what.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Not here (on a cluster the resource itself is followed).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The APIs' view of placement. Cheap to clone.
#[derive(Clone)]
pub struct PlacementService {
    placement: Placement,
    candidates: Arc<dyn Candidates>,
    lookup: PodLookup,
    /// Standalone: where applied documents are kept. `None` on a cluster.
    store: Option<Arc<dyn Store>>,
}

impl std::fmt::Debug for PlacementService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacementService").finish_non_exhaustive()
    }
}

/// The largest AIStorageConfig document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 256 << 10;

impl PlacementService {
    /// Standalone (`store` given): the document applied before is put back in force; a
    /// stored one this binary refuses is said and left as it is (the defaults apply).
    pub async fn open(
        placement: Placement,
        candidates: Arc<dyn Candidates>,
        lookup: PodLookup,
        store: Option<Arc<dyn Store>>,
    ) -> Result<Self, StoreError> {
        let service = Self {
            placement,
            candidates,
            lookup,
            store,
        };
        if let Some(store) = &service.store
            && let Some(stored) = store.get(KIND, KEY).await?
        {
            let text = stored.body.to_string();
            let laid = config::parse_document(&text).and_then(|(o, _)| {
                config::from_spec_over(service.placement.base().clone(), &o.spec)
                    .map_err(config::DocumentError::Invalid)
            });
            match laid {
                Ok(c) => {
                    let _ = service.placement.set_config(
                        c,
                        "AIStorageConfig applied through the API".into(),
                        Some(stored.body),
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "the stored AIStorageConfig is not valid; the defaults apply")
                }
            }
        }
        Ok(service)
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The ranking for a manifest, or for a known pod.
    pub fn explain(
        &self,
        pod_json: Option<&[u8]>,
        namespace: &str,
        name: &str,
    ) -> Result<Explanation, ServiceError> {
        let pod = match pod_json.filter(|b| !b.is_empty()) {
            Some(bytes) => {
                let value: Value = serde_json::from_slice(bytes).map_err(|e| {
                    ServiceError::Invalid(format!("the pod manifest is not JSON: {e}"))
                })?;
                if value["kind"].as_str().is_some_and(|k| k != "Pod") {
                    return Err(ServiceError::Invalid(format!(
                        "kind {} is not Pod",
                        value["kind"]
                    )));
                }
                let pod: Pod = serde_json::from_value(value)
                    .map_err(|e| ServiceError::Invalid(format!("not a Pod: {e}")))?;
                if pod.metadata.name.as_deref().is_none_or(str::is_empty) {
                    return Err(ServiceError::Invalid("metadata.name is required".into()));
                }
                pod
            }
            None => {
                if name.is_empty() {
                    return Err(ServiceError::Invalid(
                        "give a pod manifest, or the namespace and name of a pod".into(),
                    ));
                }
                let namespace = if namespace.is_empty() {
                    "default"
                } else {
                    namespace
                };
                (self.lookup)(namespace, name).ok_or_else(|| {
                    ServiceError::NotFound(format!("pod {namespace}/{name} not found"))
                })?
            }
        };
        let claims = self.candidates.claims(&pod);
        let (_, explanation) = self.placement.decide(
            &pod,
            claims,
            self.candidates.nodes(),
            PolicyUse {
                policy: None,
                note: "not asked when explaining".into(),
            },
        );
        Ok(explanation)
    }

    /// The configuration in force.
    pub fn config(&self) -> ConfigInForce {
        self.placement.config()
    }

    /// Puts a document in force (standalone), keeping it in the store first.
    pub async fn apply(&self, text: &str) -> Result<ConfigInForce, ServiceError> {
        let Some(store) = &self.store else {
            return Err(ServiceError::Unavailable(
                "on a cluster placement follows the AIStorageConfig resource: kubectl apply it"
                    .into(),
            ));
        };
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(ServiceError::Invalid(format!(
                "the document is {} bytes, more than {MAX_DOCUMENT_BYTES}",
                text.len()
            )));
        }
        let (object, _) =
            config::parse_document(text).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let c = config::from_spec_over(self.placement.base().clone(), &object.spec)
            .map_err(|e| ServiceError::Invalid(format!("invalid AIStorageConfig: {e}")))?;
        let body =
            serde_json::to_value(&object).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let now = self.placement.view().now().wall_unix_nanos;
        match store.get(KIND, KEY).await? {
            Some(stored) => {
                store
                    .update(KIND, KEY, stored.generation, body.clone(), now)
                    .await?;
            }
            None => {
                store.create(KIND, KEY, body.clone(), now).await?;
            }
        }
        self.placement
            .set_config(
                c,
                "AIStorageConfig applied through the API".into(),
                Some(body),
            )
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        Ok(self.placement.config())
    }
}
