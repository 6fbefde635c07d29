//! Measurement runs kept durably in a [`Store`] (kind `measurements`), in one of two
//! layouts ([`Layout`]):
//!
//! - **plain** (standalone, SQLite): keyed by run id; a body is a small JSON summary
//!   (id, node, state, creation time, error) plus the whole `pb::Measurement` as
//!   protobuf bytes in base64. The protobuf is what is read back: it is already the
//!   versioned contract (field numbers survive additions), so no second JSON schema of
//!   a dozen nested messages has to be kept in step with it. The summary is for people
//!   and tools (`sqlite3`) and for retention, which reads it without decoding the run.
//!   Ids come from a counter stored as kind `sequences`, key `measurements`, reserved
//!   in blocks with optimistic concurrency, so they stay unique across restarts and
//!   across coordinators sharing one store; a restart skips at most the rest of one block.
//! - **resources** (in a cluster, the custom-resource store): each run is a
//!   `Measurement` resource in the coordinator's namespace (`measurement_resource`), so
//!   `kubectl get measurements` shows it and a new leader reads it. No counter: an id is
//!   `m-` with the wall time in nanoseconds (20 digits, never repeated within a process)
//!   and `-` with this process's instance tag, so ids sort by creation time, two
//!   coordinators never hand out the same one, and a restarted one (a new instance)
//!   cannot repeat an old one; the API server refuses a duplicate name besides
//!   ([`StoreError::AlreadyExists`]).
//!
//! Either way a stored run is held to the store's object limit
//! ([`MAX_BODY_BYTES`](super::MAX_BODY_BYTES), inside etcd's 1.5 MiB): a run whose
//! body would be larger is stored without its per-sample readings (then without sample
//! failure reasons, then without its measured targets), and its `result.truncated` says
//! what was dropped, the limit and the size it had; on a cluster the `SamplesKept`
//! condition says it too. The summaries stay.
//!
//! Retention keeps at most `keep_finished` finished runs, deleting the oldest (by
//! creation time) first; running runs are never dropped. Which runs are finished is
//! indexed in memory, built from the store by [`Measurements::open`] (on a cluster also
//! when the index could not be read at open, and after every change of leadership, so a
//! new leader counts the runs its predecessor finished).

use super::measurement_resource::{self as resource, STORE_LIMIT_NOTE};
use super::{ListOptions, MAX_BODY_BYTES, MAX_LIST_LIMIT, Store, StoreError};
use aistor_proto::v1 as pb;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;
use tokio::sync::watch;

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

/// Where and how runs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Keyed by id, JSON summary and protobuf; ids from the `sequences` counter.
    Plain,
    /// `Measurement` resources in `namespace`; ids from time and `instance`.
    Resources { namespace: String, instance: String },
}

impl Layout {
    /// The resources layout, with an instance tag of 8 hex digits derived from `seed`
    /// (something this process alone has: its Lease identity, process id and start time).
    pub fn resources(namespace: &str, seed: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(seed.as_bytes());
        Self::Resources {
            namespace: namespace.to_owned(),
            instance: digest[..4].iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The store key of run `id`; an empty id (from the network) is refused by name.
    fn key(&self, id: &str) -> Result<String, StoreError> {
        match self {
            Self::Plain => Ok(id.to_owned()),
            Self::Resources { .. } if id.is_empty() => Err(StoreError::InvalidKey {
                kind: KIND,
                key: String::new(),
                reason: "a run id must not be empty".into(),
            }),
            Self::Resources { namespace, .. } => {
                Ok(format!("{namespace}/{}", resource::name_of(id)))
            }
        }
    }

    fn encode(&self, m: &pb::Measurement) -> serde_json::Value {
        match self {
            Self::Plain => encode(m),
            Self::Resources { namespace, .. } => resource::to_resource(m, namespace),
        }
    }

    /// Whether a store key is one of this layout's runs: on a cluster, Measurements in
    /// other namespaces are not this coordinator's.
    fn holds(&self, key: &str) -> bool {
        match self {
            Self::Plain => true,
            Self::Resources { namespace, .. } => key
                .strip_prefix(namespace.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
        }
    }

    /// The run an object holds; `None` for a resource aistor did not make (skipped, and
    /// said in the log), an error for a broken one or one that holds another id.
    fn decode(
        &self,
        key: &str,
        id: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<Option<pb::Measurement>, StoreError> {
        let invalid = |reason: String| StoreError::InvalidBody {
            kind: KIND,
            key: key.to_owned(),
            reason,
        };
        let m = match self {
            Self::Plain => decode(key, body)?,
            Self::Resources { .. } => {
                let looks_made = body.pointer("/status/record").is_some()
                    || body
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(resource::RECORD_ANNOTATION))
                        .is_some();
                if !looks_made {
                    tracing::warn!(
                        key,
                        "a Measurement without aistor's record is not a run; skipped"
                    );
                    return Ok(None);
                }
                resource::from_resource(body).map_err(invalid)?
            }
        };
        match id {
            Some(id) if m.id != id => Err(invalid(format!(
                "holds run {:?}, not {id:?} (two ids with one resource name)",
                m.id
            ))),
            _ => Ok(Some(m)),
        }
    }
}

/// The JSON body of one run (plain layout).
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

/// Calls `f` on every measured cgroup of `list`, containers included.
fn for_each_cgroup(list: &mut [pb::MeasuredCgroup], f: &mut dyn FnMut(&mut pb::MeasuredCgroup)) {
    for c in list {
        f(c);
        for_each_cgroup(&mut c.containers, f);
    }
}

/// Shortens `m` until `size(m)` is at most `limit`: its per-sample readings go first,
/// then sample failure reasons, then the measured targets (summaries with them); its
/// `result.truncated` says what went, the limit and the size it had. `Err(size)` when
/// even that does not fit (a run with no result, or one whose request alone is too
/// large): the caller refuses it, naming the size.
pub fn fit(
    m: &mut pb::Measurement,
    limit: usize,
    size: impl Fn(&pb::Measurement) -> usize,
) -> Result<(), usize> {
    let original = size(m);
    if original <= limit {
        return Ok(());
    }
    let Some(result) = m.result.as_mut() else {
        return Err(original);
    };
    let agent_note = std::mem::take(&mut result.truncated);
    let note = |cuts: &[String]| {
        let ours = format!(
            "{STORE_LIMIT_NOTE} of {limit} bytes per object (this run was {original} bytes): {}",
            cuts.join("; ")
        );
        if agent_note.is_empty() {
            ours
        } else {
            format!("{agent_note}; {ours}")
        }
    };
    type Cut = fn(&mut pb::MeasurementResult) -> Option<String>;
    let cuts: [Cut; 3] = [
        |r| {
            let mut dropped = 0;
            for_each_cgroup(&mut r.targets, &mut |c| {
                dropped += std::mem::take(&mut c.samples).len()
            });
            (dropped > 0).then(|| {
                format!(
                    "{dropped} per-sample readings dropped (summaries, samples_taken and samples_failed are as measured)"
                )
            })
        },
        |r| {
            let mut dropped = 0;
            for_each_cgroup(&mut r.targets, &mut |c| {
                dropped += std::mem::take(&mut c.failures).len()
            });
            (dropped > 0).then(|| {
                format!("{dropped} sample failure reasons dropped (samples_failed is as measured)")
            })
        },
        |r| {
            let dropped = std::mem::take(&mut r.targets).len();
            (dropped > 0)
                .then(|| format!("{dropped} measured targets dropped, summaries with them"))
        },
    ];
    let mut done = Vec::new();
    for cut in cuts {
        let Some(result) = m.result.as_mut() else {
            break;
        };
        if let Some(what) = cut(result) {
            done.push(what);
        }
        result.truncated = note(&done);
        let now = size(m);
        if now <= limit {
            return Ok(());
        }
    }
    Err(size(m))
}

/// Measurement runs over a [`Store`].
#[derive(Debug)]
pub struct Measurements {
    store: Arc<dyn Store>,
    layout: Layout,
    keep_finished: usize,
    /// Ids reserved in the store and not yet handed out (plain layout).
    ids: tokio::sync::Mutex<Range<u64>>,
    /// The last time an id was made of (resources layout): ids never repeat in a process.
    last_id_nanos: std::sync::Mutex<u64>,
    /// Finished runs as (creation time, id), oldest first; `None` until read.
    finished: std::sync::Mutex<Option<BTreeSet<(u64, String)>>>,
    /// Leadership: when it changes the index is read again (another coordinator may
    /// have finished runs meanwhile).
    leadership: std::sync::Mutex<Option<watch::Receiver<bool>>>,
}

impl Measurements {
    /// Plain layout (standalone): reads which runs are finished and applies retention.
    pub async fn open(store: Arc<dyn Store>, keep_finished: usize) -> Result<Self, StoreError> {
        let this = Self::new(store, Layout::Plain, keep_finished, None);
        this.load_index().await?;
        this.retain().await?;
        Ok(this)
    }

    /// The resources layout (a cluster). The index is read now if the API answers, or
    /// else on the first write; it is read again after `leadership` changes.
    pub async fn open_in_cluster(
        store: Arc<dyn Store>,
        layout: Layout,
        keep_finished: usize,
        leadership: watch::Receiver<bool>,
    ) -> Self {
        let this = Self::new(store, layout, keep_finished, Some(leadership));
        if let Err(e) = this.retain().await {
            tracing::warn!(error = %e, "cannot read the Measurement resources yet; reading them on the first write");
        }
        this
    }

    fn new(
        store: Arc<dyn Store>,
        layout: Layout,
        keep_finished: usize,
        leadership: Option<watch::Receiver<bool>>,
    ) -> Self {
        Self {
            store,
            layout,
            keep_finished,
            ids: tokio::sync::Mutex::new(0..0),
            last_id_nanos: std::sync::Mutex::new(0),
            finished: std::sync::Mutex::new(None),
            leadership: std::sync::Mutex::new(leadership),
        }
    }

    fn finished(&self) -> std::sync::MutexGuard<'_, Option<BTreeSet<(u64, String)>>> {
        self.finished.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a finished run in the index (when there is one: otherwise the next read
    /// of the index finds it).
    fn note_finished(&self, m: &pb::Measurement) {
        if let Some(index) = self.finished().as_mut() {
            index.insert((m.created_unix_nanos, m.id.clone()));
        }
    }

    /// Reads which runs are finished from the store.
    async fn load_index(&self) -> Result<(), StoreError> {
        let mut finished = BTreeSet::new();
        let mut options = ListOptions::first(MAX_LIST_LIMIT);
        loop {
            let page = self.store.list(KIND, options.clone()).await?;
            for object in &page.items {
                let (created, id, state) = match &self.layout {
                    // The summary says it without decoding the protobuf.
                    Layout::Plain => {
                        let body = summary(&object.key, &object.body)?;
                        let finished = body.state == "succeeded" || body.state == "failed";
                        (body.created_unix_nanos, object.key.clone(), finished)
                    }
                    Layout::Resources { .. } => {
                        if !self.layout.holds(&object.key) {
                            continue;
                        }
                        match self.layout.decode(&object.key, None, &object.body)? {
                            Some(m) => (m.created_unix_nanos, m.id, is_finished(m.state)),
                            None => continue,
                        }
                    }
                };
                if state {
                    finished.insert((created, id));
                }
            }
            match page.continue_after {
                Some(after) => options.continue_after = Some(after),
                None => break,
            }
        }
        *self.finished() = Some(finished);
        Ok(())
    }

    /// A new run id, unique across restarts and coordinators (see the module's doc).
    /// Plain: `m-` and a zero-padded counter; resources: `m-`, the time and the
    /// instance. Either way ids sort in the order they were handed out (by one
    /// coordinator).
    pub async fn next_id(&self, now_unix_nanos: u64) -> Result<String, StoreError> {
        if let Layout::Resources { instance, .. } = &self.layout {
            let mut last = self.last_id_nanos.lock().unwrap_or_else(|e| e.into_inner());
            *last = now_unix_nanos.max(last.saturating_add(1));
            return Ok(format!("m-{:020}-{instance}", *last));
        }
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

    /// The body `m` is stored as, shortened to the store's limit if it must be (see
    /// [`fit`]); `m` becomes what was stored.
    fn body(&self, m: &mut pb::Measurement) -> Result<serde_json::Value, StoreError> {
        let size = |m: &pb::Measurement| self.layout.encode(m).to_string().len();
        let mut fitted = m.clone();
        match fit(&mut fitted, MAX_BODY_BYTES, size) {
            Ok(()) => {
                *m = fitted;
                Ok(self.layout.encode(m))
            }
            Err(size) => Err(StoreError::BodyTooLarge {
                kind: KIND,
                key: self.layout.key(&m.id).unwrap_or_default(),
                size,
                max: MAX_BODY_BYTES,
            }),
        }
    }

    /// Records a new run (normally running); [`StoreError::AlreadyExists`] if the id is
    /// taken. Returns the run as stored (shortened if it had to be).
    pub async fn create(
        &self,
        m: &pb::Measurement,
        now_unix_nanos: u64,
    ) -> Result<pb::Measurement, StoreError> {
        let mut m = m.clone();
        let body = self.body(&mut m)?;
        self.store
            .create(KIND, &self.layout.key(&m.id)?, body, now_unix_nanos)
            .await?;
        if is_finished(m.state) {
            self.note_finished(&m);
            self.retain().await?;
        }
        Ok(m)
    }

    pub async fn get(&self, id: &str) -> Result<Option<pb::Measurement>, StoreError> {
        let key = self.layout.key(id)?;
        match self.store.get(KIND, &key).await? {
            Some(object) => self.layout.decode(&object.key, Some(id), &object.body),
            None => Ok(None),
        }
    }

    /// Records a result that arrived in a report and returns the finished run as stored;
    /// unknown ids (a run started by an earlier coordinator, or by the agent's CLI) are
    /// kept too, as finished runs created now.
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
        let key = self.layout.key(&result.id)?;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let found = self.store.get(KIND, &key).await?;
            let known = match &found {
                Some(object) => self
                    .layout
                    .decode(&object.key, Some(&result.id), &object.body)?,
                None => None,
            };
            let attempt = match (found, known) {
                (Some(object), Some(mut m)) => {
                    finish(&mut m);
                    let body = self.body(&mut m)?;
                    self.store
                        .update(KIND, &key, object.generation, body, now_unix_nanos)
                        .await
                        .map(|_| m)
                }
                (Some(object), None) => {
                    return Err(StoreError::InvalidBody {
                        kind: KIND,
                        key: object.key,
                        reason: "a Measurement aistor did not make has this run's name".into(),
                    });
                }
                (None, _) => {
                    let mut m = pb::Measurement {
                        id: result.id.clone(),
                        node: result.node.clone(),
                        run: result.run.clone(),
                        created_unix_nanos: now_unix_nanos,
                        ..Default::default()
                    };
                    finish(&mut m);
                    let body = self.body(&mut m)?;
                    self.store
                        .create(KIND, &key, body, now_unix_nanos)
                        .await
                        .map(|_| m)
                }
            };
            match attempt {
                Ok(m) => {
                    self.note_finished(&m);
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

    /// A page of runs in key order (plain: the id), and the key to continue after when
    /// more remain. On a cluster, Measurements aistor did not make, or in another
    /// namespace, are not this coordinator's runs and are left out (a page may then
    /// hold fewer than `limit`).
    pub async fn list(
        &self,
        options: ListOptions,
    ) -> Result<(Vec<pb::Measurement>, Option<String>), StoreError> {
        let page = self.store.list(KIND, options).await?;
        let mut runs = Vec::with_capacity(page.items.len());
        for o in &page.items {
            if self.layout.holds(&o.key) {
                runs.extend(self.layout.decode(&o.key, None, &o.body)?);
            }
        }
        Ok((runs, page.continue_after))
    }

    /// Whether leadership changed since the index was read (then it is read again).
    fn leadership_changed(&self) -> bool {
        let mut leadership = self.leadership.lock().unwrap_or_else(|e| e.into_inner());
        match leadership.as_mut() {
            Some(rx) => match rx.has_changed() {
                Ok(changed) => {
                    rx.borrow_and_update();
                    changed
                }
                // The election ended (shutting down): nothing changes any more.
                Err(_) => false,
            },
            None => false,
        }
    }

    /// Deletes the oldest finished runs beyond `keep_finished`.
    async fn retain(&self) -> Result<(), StoreError> {
        if self.leadership_changed() || self.finished().is_none() {
            self.load_index().await?;
        }
        loop {
            let oldest = {
                let mut finished = self.finished();
                let Some(index) = finished.as_mut() else {
                    return Ok(());
                };
                if index.len() <= self.keep_finished {
                    return Ok(());
                }
                index.pop_first()
            };
            let Some((created, id)) = oldest else {
                return Ok(());
            };
            let key = self.layout.key(&id)?;
            match self.store.delete(KIND, &key, None).await {
                // Already gone (another coordinator's retention): nothing to do.
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => {
                    self.note_finished(&pb::Measurement {
                        id,
                        created_unix_nanos: created,
                        ..Default::default()
                    });
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cgroup(samples: usize, failures: usize) -> pb::MeasuredCgroup {
        pb::MeasuredCgroup {
            kind: "pod".into(),
            samples: vec![
                pb::MeasureSample {
                    cpu_millicores: Some(1.0),
                    ..Default::default()
                };
                samples
            ],
            failures: vec![
                pb::SampleFailure {
                    index: 1,
                    reason: "gone".into(),
                };
                failures
            ],
            summary: Some(pb::MeasureSummary::default()),
            ..Default::default()
        }
    }

    fn run(targets: Vec<pb::MeasuredCgroup>, agent_note: &str) -> pb::Measurement {
        pb::Measurement {
            id: "m-1".into(),
            result: Some(pb::MeasurementResult {
                targets,
                truncated: agent_note.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn size(m: &pb::Measurement) -> usize {
        m.encoded_len()
    }

    #[test]
    fn a_run_that_fits_is_left_alone_even_at_the_limit() {
        let mut m = run(vec![cgroup(10, 2)], "");
        let before = m.clone();
        assert_eq!(fit(&mut m, size(&before), size), Ok(()));
        assert_eq!(m, before);
    }

    #[test]
    fn samples_go_first_from_every_cgroup_containers_included_and_the_note_says_so() {
        let mut pod = cgroup(100, 2);
        pod.containers = vec![cgroup(50, 0), cgroup(50, 0)];
        let mut m = run(vec![pod], "");
        let original = size(&m);
        let mut bare = m.clone();
        for_each_cgroup(&mut bare.result.as_mut().unwrap().targets, &mut |c| {
            c.samples.clear()
        });
        // Room for the run without samples and a note of up to 400 bytes.
        let limit = size(&bare) + 400;
        assert_eq!(fit(&mut m, limit, size), Ok(()));
        let r = m.result.as_ref().unwrap();
        assert!(r.targets[0].samples.is_empty() && r.targets[0].containers[1].samples.is_empty());
        assert_eq!(
            r.targets[0].failures.len(),
            2,
            "failures kept while they fit"
        );
        assert!(r.targets[0].summary.is_some());
        assert_eq!(
            r.truncated,
            format!(
                "{STORE_LIMIT_NOTE} of {limit} bytes per object (this run was {original} bytes): \
                 200 per-sample readings dropped (summaries, samples_taken and samples_failed are as measured)"
            )
        );
        assert!(size(&m) <= limit);
    }

    #[test]
    fn then_failure_reasons_then_targets_and_the_agents_own_note_is_kept() {
        let mut m = run(vec![cgroup(50, 40)], "shortened by the agent");
        let mut no_lists = m.clone();
        no_lists.result.as_mut().unwrap().targets[0].samples.clear();
        no_lists.result.as_mut().unwrap().targets[0]
            .failures
            .clear();
        let limit = size(&no_lists) + 500;
        assert_eq!(fit(&mut m, limit, size), Ok(()));
        let r = m.result.as_ref().unwrap();
        assert!(r.targets[0].failures.is_empty() && r.targets[0].samples.is_empty());
        assert!(
            r.truncated.starts_with("shortened by the agent; "),
            "{}",
            r.truncated
        );
        assert!(r.truncated.ends_with("50 per-sample readings dropped (summaries, samples_taken and samples_failed are as measured); 40 sample failure reasons dropped (samples_failed is as measured)"), "{}", r.truncated);

        let mut long = cgroup(1, 0);
        long.cgroup_path = "a".repeat(2000);
        let mut m = run(vec![cgroup(50, 40), long], "");
        let mut empty = m.clone();
        empty.result.as_mut().unwrap().targets.clear();
        let limit = size(&empty) + 500;
        assert_eq!(fit(&mut m, limit, size), Ok(()));
        let r = m.result.as_ref().unwrap();
        assert!(r.targets.is_empty());
        assert!(
            r.truncated
                .ends_with("; 2 measured targets dropped, summaries with them"),
            "{}",
            r.truncated
        );
    }

    #[test]
    fn a_step_that_drops_nothing_is_not_named() {
        // No samples to drop: the note starts at the failure reasons.
        let mut m = run(vec![cgroup(0, 40)], "");
        let mut bare = m.clone();
        bare.result.as_mut().unwrap().targets[0].failures.clear();
        assert_eq!(fit(&mut m, size(&bare) + 300, size), Ok(()));
        let note = &m.result.as_ref().unwrap().truncated;
        assert!(!note.contains("per-sample"), "{note}");
        assert!(
            note.ends_with("): 40 sample failure reasons dropped (samples_failed is as measured)"),
            "{note}"
        );
        // No failures either: the targets go, and only they are named.
        let mut long = cgroup(0, 0);
        long.cgroup_path = "a".repeat(2000);
        let mut m = run(vec![long], "");
        assert_eq!(fit(&mut m, size(&bare) + 300, size), Ok(()));
        let note = &m.result.as_ref().unwrap().truncated;
        assert!(
            note.ends_with("): 1 measured targets dropped, summaries with them"),
            "{note}"
        );
    }

    #[test]
    fn a_run_that_cannot_fit_is_an_error_with_its_size() {
        let mut m = run(vec![cgroup(50, 0)], "");
        assert!(matches!(fit(&mut m, 10, size), Err(n) if n > 10));
        let mut no_result = pb::Measurement {
            id: "x".repeat(100),
            ..Default::default()
        };
        assert_eq!(fit(&mut no_result, 10, size), Err(size(&no_result)));
        assert_eq!(no_result.id.len(), 100, "nothing to drop, nothing changed");
    }

    #[test]
    fn ids_on_a_cluster_never_repeat_and_carry_the_instance() {
        let layout = Layout::resources("aistor", "pod-a/1/2");
        let Layout::Resources { instance, .. } = &layout else {
            unreachable!()
        };
        assert_eq!(instance.len(), 8);
        assert!(instance.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(Layout::resources("aistor", "pod-b/1/2"), layout);
        assert_eq!(Layout::resources("aistor", "pod-a/1/2"), layout);
        assert_eq!(layout.key("m-1").unwrap(), "aistor/m-1");
        assert!(layout.key("").is_err());
        assert_eq!(Layout::Plain.key("m-1").unwrap(), "m-1");
        assert!(layout.holds("aistor/m-1"));
        assert!(!layout.holds("aistor-2/m-1") && !layout.holds("other/m-1"));
        assert!(Layout::Plain.holds("anything"));
    }
}
