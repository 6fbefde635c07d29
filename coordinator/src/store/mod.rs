//! Durable state behind one [`Store`] trait: an embedded SQLite database when the
//! coordinator runs standalone ([`sqlite`]), custom resources in a cluster
//! ([`custom_resources`]: the kinds with an aistor.io resource; where it differs from
//! SQLite is said there and held by the contract tests, `tests/store_contract`).
//!
//! Objects are JSON bodies identified by `(kind, key)`, with a `generation` for
//! optimistic concurrency: an update names the generation it read, and a stale one is
//! refused with [`StoreError::Conflict`], never merged. Times are passed in by the
//! caller (the store never reads the clock). A write's future resolves only after the
//! write is durable, so whatever a caller acknowledges survives a crash.
//!
//! The trait is async and object-safe (boxed futures) so the coordinator holds an
//! `Arc<dyn Store>` and a Kubernetes-backed implementation fits behind it; nothing
//! here names SQLite.

pub mod custom_resources;
pub mod measurement_resource;
pub mod measurements;
pub mod sqlite;

use futures::future::BoxFuture;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Longest key accepted, in bytes ("namespace/name" in Kubernetes is at most 63 + 1 + 253).
pub const MAX_KEY_BYTES: usize = 512;
/// Largest body accepted, as serialised JSON bytes; below the 1.5 MiB that etcd stores
/// per object, so whatever fits here also fits in a custom resource.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest kind name, in bytes (a DNS label, so it can name a resource type).
pub const MAX_KIND_BYTES: usize = 63;
/// Most objects one `list` call returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// One stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub key: String,
    /// 1 when created, incremented by every update.
    pub generation: u64,
    pub created_unix_nanos: u64,
    pub updated_unix_nanos: u64,
    pub body: Value,
}

/// One page of a kind's objects, in key order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub items: Vec<Object>,
    /// The key to pass as `continue_after` for the next page; `None` on the last page.
    pub continue_after: Option<String>,
}

/// What a `list` call asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ListOptions {
    /// 1..=[`MAX_LIST_LIMIT`].
    pub limit: usize,
    /// Return only keys strictly after this one (the previous page's `continue_after`).
    pub continue_after: Option<String>,
}

impl ListOptions {
    pub fn first(limit: usize) -> Self {
        Self {
            limit,
            continue_after: None,
        }
    }
}

/// Why a store operation failed; every variant names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {key:?} not found")]
    NotFound { kind: &'static str, key: String },
    #[error("{kind} {key:?} already exists")]
    AlreadyExists { kind: &'static str, key: String },
    #[error(
        "{kind} {key:?} was changed by someone else: expected generation {expected}, found {actual}"
    )]
    Conflict {
        kind: &'static str,
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("kind {kind:?} is invalid: {reason}")]
    InvalidKind { kind: &'static str, reason: String },
    #[error("{kind} key {key:?} is invalid: {reason}")]
    InvalidKey {
        kind: &'static str,
        /// At most the first 64 characters of the offending key.
        key: String,
        reason: String,
    },
    #[error("{kind} {key:?}: body is {size} bytes, the limit is {max} bytes")]
    BodyTooLarge {
        kind: &'static str,
        key: String,
        size: usize,
        max: usize,
    },
    #[error("{kind}: list limit must be between 1 and {max}, got {limit}")]
    InvalidLimit {
        kind: &'static str,
        limit: usize,
        max: usize,
    },
    #[error("{kind} {key:?}: {field} is {value}, past the largest value stored ({max})", max = i64::MAX)]
    OutOfRange {
        kind: &'static str,
        key: String,
        field: &'static str,
        value: u64,
    },
    #[error("{kind} {key:?}: stored body is not what this binary expects: {reason}")]
    InvalidBody {
        kind: &'static str,
        key: String,
        reason: String,
    },
    #[error("{path}: {operation}: {source}")]
    Io {
        path: PathBuf,
        operation: &'static str,
        source: std::io::Error,
    },
    #[error(
        "{path}: the database has schema version {found}, newer than this binary's {supported}; \
         run a newer aistor-coordinator (or restore a backup)"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path}: the database is corrupt ({detail}); restore a backup or move the file away")]
    Corrupt { path: PathBuf, detail: String },
    /// The backend failed (database error, API server unreachable, ...).
    #[error("{context}: {source}")]
    Backend {
        /// What was being done, naming the kind/key or the file.
        context: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the store is closed")]
    Closed,
}

/// Durable objects by `(kind, key)`. Every write resolves only after it is durable; a
/// write whose future is dropped before it resolves may or may not have happened.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The object, or `None` when there is none.
    fn get<'a>(
        &'a self,
        kind: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Object>, StoreError>>;

    /// A page of `kind`'s objects ordered by key.
    fn list<'a>(
        &'a self,
        kind: &'static str,
        options: ListOptions,
    ) -> BoxFuture<'a, Result<Page, StoreError>>;

    /// Creates the object with generation 1; [`StoreError::AlreadyExists`] if the key is taken.
    fn create<'a>(
        &'a self,
        kind: &'static str,
        key: &'a str,
        body: Value,
        now_unix_nanos: u64,
    ) -> BoxFuture<'a, Result<Object, StoreError>>;

    /// Replaces the body if the stored generation is `expected_generation`, and
    /// increments it; [`StoreError::Conflict`] otherwise, [`StoreError::NotFound`] if absent.
    fn update<'a>(
        &'a self,
        kind: &'static str,
        key: &'a str,
        expected_generation: u64,
        body: Value,
        now_unix_nanos: u64,
    ) -> BoxFuture<'a, Result<Object, StoreError>>;

    /// Deletes the object (only if its generation is `expected_generation`, when given);
    /// [`StoreError::NotFound`] if absent.
    fn delete<'a>(
        &'a self,
        kind: &'static str,
        key: &'a str,
        expected_generation: Option<u64>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Called once on a clean shutdown, after the last write: leaves the backing
    /// storage complete on its own (nothing pending in side files). Writes after it
    /// may fail.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Opens (creating it if needed) the standalone store, `<data_dir>/coordinator.db`.
/// Blocking: call it before serving, or from `spawn_blocking`.
pub fn open_standalone(data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sqlite::SqliteStore::open(data_dir)?))
}

/// Checks a kind name: a DNS label (lower-case letters, digits, '-'), so every
/// implementation can use it as a table value or a resource name.
pub fn check_kind(kind: &'static str) -> Result<(), StoreError> {
    let invalid = |reason: String| Err(StoreError::InvalidKind { kind, reason });
    if kind.is_empty() || kind.len() > MAX_KIND_BYTES {
        return invalid(format!("must be 1 to {MAX_KIND_BYTES} bytes"));
    }
    if !kind
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || kind.starts_with('-')
        || kind.ends_with('-')
    {
        return invalid("must be lower-case letters, digits and '-' (a DNS label)".into());
    }
    Ok(())
}

/// Checks a kind and a key: 1..=[`MAX_KEY_BYTES`] bytes, no control characters.
pub fn check_key(kind: &'static str, key: &str) -> Result<(), StoreError> {
    check_kind(kind)?;
    let invalid = |reason: String| {
        Err(StoreError::InvalidKey {
            kind,
            key: key.chars().take(64).collect(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("must not be empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return invalid(format!(
            "is {} bytes, the limit is {MAX_KEY_BYTES} bytes",
            key.len()
        ));
    }
    if key.chars().any(char::is_control) {
        return invalid("must not contain control characters".into());
    }
    Ok(())
}

/// Serialises a body, refusing one over [`MAX_BODY_BYTES`].
pub fn encode_body(kind: &'static str, key: &str, body: &Value) -> Result<String, StoreError> {
    // Serialising a `Value` cannot fail (its map keys are strings).
    let text = body.to_string();
    if text.len() > MAX_BODY_BYTES {
        return Err(StoreError::BodyTooLarge {
            kind,
            key: key.to_owned(),
            size: text.len(),
            max: MAX_BODY_BYTES,
        });
    }
    Ok(text)
}

/// Checks a list request's bounds.
pub fn check_list(kind: &'static str, options: &ListOptions) -> Result<(), StoreError> {
    check_kind(kind)?;
    if !(1..=MAX_LIST_LIMIT).contains(&options.limit) {
        return Err(StoreError::InvalidLimit {
            kind,
            limit: options.limit,
            max: MAX_LIST_LIMIT,
        });
    }
    Ok(())
}
