//! Measurement runs kept durably in a [`Store`] (kind `measurements`, keyed by run id):
//! the durable successor of the in-memory map in `crate::measurements`.
//!
//! A body is a small JSON summary (id, node, state, creation time, error) plus the whole
//! `pb::Measurement` as protobuf bytes in base64. The protobuf is what is read back: it
//! is already the versioned contract (field numbers survive additions), so no second
//! JSON schema of a dozen nested messages has to be kept in step with it. The summary is
//! for people and tools (`kubectl get` columns, `sqlite3`) and for retention, which reads
//! it without decoding the run.
//!
//! Ids come from a counter stored as kind `sequences`, key `measurements`, reserved in
//! blocks with optimistic concurrency, so they stay unique across restarts and across
//! coordinators sharing one store; a restart skips at most the rest of one block.
//!
//! Retention keeps at most `keep_finished` finished runs, deleting the oldest (by
//! creation time) first; running runs are never dropped. Which runs are finished is
//! indexed in memory, built from the store by [`Measurements::open`].

use super::{ListOptions, MAX_LIST_LIMIT, Store, StoreError};
use aistor_proto::v1 as pb;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

/// The store kind of measurement runs.
pub const KIND: &str = "measurements";
/// The store kind of id counters; the measurement counter's key is [`KIND`].
pub const SEQUENCES: &str = "sequences";
/// Finished runs kept by default (what the in-memory map kept).
pub const DEFAULT_KEEP_FINISHED: usize = 1000;
/// Ids reserved per write of the counter.
const ID_BLOCK: u64 = 64;
/// Attempts of a read-modify-write before a conflict is returned to the caller.
const ATTEMPTS: usize = 8;

/// The JSON body of one run.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    id: String,
    node: String,
    /// `running`, `succeeded`, `failed` (the proto enum's name, lower-case).
    state: String,
    created_unix_nanos: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    error: String,
    /// The whole `pb::Measurement`, protobuf-encoded, base64 (standard alphabet).
    protobuf: String,
}

/// The counter's JSON body.
#[derive(Debug, Serialize, Deserialize)]
struct Sequence {
    /// The first id not yet reserved by anyone.
    next: u64,
}

fn is_finished(state: i32) -> bool {
    matches!(
        pb::MeasurementState::try_from(state),
        Ok(pb::MeasurementState::Succeeded | pb::MeasurementState::Failed)
    )
}

fn state_name(state: i32) -> String {
    match pb::MeasurementState::try_from(state) {
        Ok(s) => s
            .as_str_name()
            .trim_start_matches("MEASUREMENT_STATE_")
            .to_ascii_lowercase(),
        Err(_) => state.to_string(),
    }
}

fn encode(m: &pb::Measurement) -> serde_json::Value {
    let body = Body {
        id: m.id.clone(),
        node: m.node.clone(),
        state: state_name(m.state),
        created_unix_nanos: m.created_unix_nanos,
        error: m.error.clone(),
        protobuf: BASE64.encode(m.encode_to_vec()),
    };
    // A struct of strings and integers always serialises.
    serde_json::to_value(body).unwrap_or_default()
}

fn summary(key: &str, body: &serde_json::Value) -> Result<Body, StoreError> {
    Body::deserialize(body).map_err(|e| StoreError::InvalidBody {
        kind: KIND,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn decode(key: &str, body: &serde_json::Value) -> Result<pb::Measurement, StoreError> {
    let invalid = |reason: String| StoreError::InvalidBody {
        kind: KIND,
        key: key.to_owned(),
        reason,
    };
    let body = summary(key, body)?;
    let bytes = BASE64
        .decode(body.protobuf.as_bytes())
        .map_err(|e| invalid(format!("field `protobuf`: {e}")))?;
    pb::Measurement::decode(bytes.as_slice()).map_err(|e| invalid(format!("field `protobuf`: {e}")))
}

/// Measurement runs over a [`Store`].
#[derive(Debug)]
pub struct Measurements {
    store: Arc<dyn Store>,
    keep_finished: usize,
    /// Ids reserved in the store and not yet handed out.
    ids: tokio::sync::Mutex<Range<u64>>,
    /// Finished runs as (creation time, id), oldest first.
    finished: std::sync::Mutex<BTreeSet<(u64, String)>>,
}

impl Measurements {
    /// Reads which runs are finished from the store and applies retention.
    pub async fn open(store: Arc<dyn Store>, keep_finished: usize) -> Result<Self, StoreError> {
        let mut finished = BTreeSet::new();
        let mut options = ListOptions::first(MAX_LIST_LIMIT);
        loop {
            let page = store.list(KIND, options.clone()).await?;
            for object in &page.items {
                let body = summary(&object.key, &object.body)?;
                if body.state == "succeeded" || body.state == "failed" {
                    finished.insert((body.created_unix_nanos, object.key.clone()));
                }
            }
            match page.continue_after {
                Some(after) => options.continue_after = Some(after),
                None => break,
            }
        }
        let this = Self {
            store,
            keep_finished,
            ids: tokio::sync::Mutex::new(0..0),
            finished: std::sync::Mutex::new(finished),
        };
        this.retain().await?;
        Ok(this)
    }

    fn finished(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u64, String)>> {
        self.finished.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new run id, unique across restarts: `m-` and a zero-padded counter, so ids
    /// sort in the order they were handed out.
    pub async fn next_id(&self, now_unix_nanos: u64) -> Result<String, StoreError> {
        let mut ids = self.ids.lock().await;
        if ids.is_empty() {
            *ids = self.reserve(now_unix_nanos).await?;
        }
        let n = ids.start;
        ids.start += 1;
        Ok(format!("m-{n:010}"))
    }

    /// Reserves the next block of ids by advancing the stored counter.
    async fn reserve(&self, now: u64) -> Result<Range<u64>, StoreError> {
        let body = |next: u64| serde_json::json!(Sequence { next });
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let attempt = match self.store.get(SEQUENCES, KIND).await? {
                None => self
                    .store
                    .create(SEQUENCES, KIND, body(ID_BLOCK), now)
                    .await
                    .map(|_| 0..ID_BLOCK),
                Some(object) => {
                    let start = Sequence::deserialize(&object.body)
                        .map_err(|e| StoreError::InvalidBody {
                            kind: SEQUENCES,
                            key: KIND.into(),
                            reason: e.to_string(),
                        })?
                        .next;
                    let end = start.saturating_add(ID_BLOCK);
                    self.store
                        .update(SEQUENCES, KIND, object.generation, body(end), now)
                        .await
                        .map(|_| start..end)
                }
            };
            match attempt {
                // Another coordinator reserved a block first: read again.
                Err(e @ (StoreError::Conflict { .. } | StoreError::AlreadyExists { .. })) => {
                    last = Some(e)
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(StoreError::Closed))
    }

    /// Records a new run (normally running); [`StoreError::AlreadyExists`] if the id is taken.
    pub async fn create(&self, m: &pb::Measurement, now_unix_nanos: u64) -> Result<(), StoreError> {
        self.store
            .create(KIND, &m.id, encode(m), now_unix_nanos)
            .await?;
        if is_finished(m.state) {
            self.finished().insert((m.created_unix_nanos, m.id.clone()));
            self.retain().await?;
        }
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<pb::Measurement>, StoreError> {
        match self.store.get(KIND, id).await? {
            Some(object) => decode(&object.key, &object.body).map(Some),
            None => Ok(None),
        }
    }

    /// Records a result that arrived in a report and returns the finished run; unknown
    /// ids (a run started by an earlier coordinator, or by the agent's CLI) are kept
    /// too, as finished runs created now.
    pub async fn complete(
        &self,
        result: pb::MeasurementResult,
        now_unix_nanos: u64,
    ) -> Result<pb::Measurement, StoreError> {
        let state = if result.error.is_empty() {
            pb::MeasurementState::Succeeded
        } else {
            pb::MeasurementState::Failed
        };
        let finish = |m: &mut pb::Measurement| {
            m.state = state as i32;
            m.error = result.error.clone();
            m.result = Some(result.clone());
        };
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let attempt = match self.store.get(KIND, &result.id).await? {
                Some(object) => {
                    let mut m = decode(&object.key, &object.body)?;
                    finish(&mut m);
                    self.store
                        .update(KIND, &m.id, object.generation, encode(&m), now_unix_nanos)
                        .await
                        .map(|_| m)
                }
                None => {
                    let mut m = pb::Measurement {
                        id: result.id.clone(),
                        node: result.node.clone(),
                        run: result.run.clone(),
                        created_unix_nanos: now_unix_nanos,
                        ..Default::default()
                    };
                    finish(&mut m);
                    self.store
                        .create(KIND, &m.id, encode(&m), now_unix_nanos)
                        .await
                        .map(|_| m)
                }
            };
            match attempt {
                Ok(m) => {
                    self.finished().insert((m.created_unix_nanos, m.id.clone()));
                    self.retain().await?;
                    return Ok(m);
                }
                // Changed (or created) between our read and our write: read again.
                Err(e @ (StoreError::Conflict { .. } | StoreError::AlreadyExists { .. })) => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(StoreError::Closed))
    }

    /// A page of runs in id order, and the id to continue after when more remain.
    pub async fn list(
        &self,
        options: ListOptions,
    ) -> Result<(Vec<pb::Measurement>, Option<String>), StoreError> {
        let page = self.store.list(KIND, options).await?;
        let runs = page
            .items
            .iter()
            .map(|o| decode(&o.key, &o.body))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((runs, page.continue_after))
    }

    /// Deletes the oldest finished runs beyond `keep_finished`.
    async fn retain(&self) -> Result<(), StoreError> {
        loop {
            let oldest = {
                let mut finished = self.finished();
                if finished.len() <= self.keep_finished {
                    return Ok(());
                }
                finished.pop_first()
            };
            let Some((created, id)) = oldest else {
                return Ok(());
            };
            match self.store.delete(KIND, &id, None).await {
                // Already gone (another coordinator's retention): nothing to do.
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => {
                    self.finished().insert((created, id));
                    return Err(e);
                }
            }
        }
    }
}
