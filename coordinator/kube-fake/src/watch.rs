//! Watch: the changes the store records, who is subscribed to which, and the
//! newline-delimited event stream a watch request receives.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::resource::ResourceId;
use crate::selector::{FieldSelector, LabelSelector};

/// Events a watcher may fall behind by before the server drops it (it must re-watch),
/// which is what the real server does with slow watchers; keeps memory bounded.
pub(crate) const SUBSCRIBER_BUFFER: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

/// One committed write, kept in the event history for watches that start from an older version.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) revision: u64,
    pub(crate) resource: ResourceId,
    pub(crate) namespace: Option<String>,
    pub(crate) kind: ChangeKind,
    /// The object after the write (for a delete: the last state, with the delete's revision).
    pub(crate) object: Value,
    /// The object before an update: selectors decide between MODIFIED, ADDED and DELETED.
    pub(crate) old: Option<Value>,
}

/// Which changes one watch wants.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    pub(crate) resource: ResourceId,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Filter {
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The watch event a change becomes for this filter, if any. An update that moves an
    /// object into or out of the selection is an ADDED or DELETED, as on the real server.
    pub(crate) fn event_for(&self, change: &Change) -> Option<Value> {
        if change.resource != self.resource {
            return None;
        }
        if self.namespace.is_some() && change.namespace != self.namespace {
            return None;
        }
        let now = self.matches(&change.object);
        let kind = match change.kind {
            ChangeKind::Created if now => "ADDED",
            ChangeKind::Deleted if now => "DELETED",
            ChangeKind::Updated => {
                let before = change.old.as_ref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            _ => return None,
        };
        Some(event(kind, change.object.clone()))
    }
}

pub(crate) fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

/// A live watch as the store sees it.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) filter: Filter,
    pub(crate) sender: mpsc::Sender<Value>,
}

impl Subscriber {
    /// Delivers the change if it concerns this watch; false when the watch is gone or too far
    /// behind and should be dropped.
    pub(crate) fn deliver(&self, change: &Change) -> bool {
        match self.filter.event_for(change) {
            Some(event) => self.sender.try_send(event).is_ok(),
            None => !self.sender.is_closed(),
        }
    }
}

/// How a watch response stream ends and what it says on the way out.
pub(crate) struct StreamOptions {
    /// `timeoutSeconds`: the server ends the watch at this instant.
    pub(crate) deadline: Option<Instant>,
    /// `allowWatchBookmarks`: a BOOKMARK with the current revision precedes a timeout.
    pub(crate) bookmarks: bool,
    /// The store's revision, updated after each write's events are queued.
    pub(crate) revision: Arc<AtomicU64>,
    pub(crate) api_version: String,
    pub(crate) kind: String,
}

pub(crate) fn bookmark(api_version: &str, kind: &str, revision: u64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event(
        "BOOKMARK",
        json!({"kind": kind, "apiVersion": api_version, "metadata": metadata}),
    )
}

struct StreamState {
    queued: VecDeque<Value>,
    receiver: Option<mpsc::Receiver<Value>>,
    options: StreamOptions,
    last_revision: u64,
}

/// The response body of a watch: `initial` events first, then live ones, one JSON object per line.
pub(crate) fn event_stream(
    initial: Vec<Value>,
    receiver: Option<mpsc::Receiver<Value>>,
    options: StreamOptions,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let state = StreamState {
        queued: initial.into(),
        receiver,
        options,
        last_revision: 0,
    };
    futures::stream::unfold(state, |mut state| async move {
        let event = next_event(&mut state).await?;
        if let Some(rv) = event
            .pointer("/object/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|rv| rv.parse().ok())
        {
            state.last_revision = state.last_revision.max(rv);
        }
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok(Bytes::from(line)), state))
    })
}

async fn next_event(state: &mut StreamState) -> Option<Value> {
    if let Some(event) = state.queued.pop_front() {
        return Some(event);
    }
    let receiver = state.receiver.as_mut()?;
    let received = match state.options.deadline {
        Some(deadline) => tokio::select! {
            event = receiver.recv() => event,
            () = tokio::time::sleep_until(deadline) => {
                return finish_on_timeout(state);
            }
        },
        None => receiver.recv().await,
    };
    if received.is_none() {
        state.receiver = None;
    }
    received
}

/// The watch timed out: flush what was already sent to us, then (if asked) a bookmark
/// no older than anything delivered.
fn finish_on_timeout(state: &mut StreamState) -> Option<Value> {
    let revision = state.options.revision.load(Ordering::Acquire);
    let mut receiver = state.receiver.take()?;
    receiver.close();
    while let Ok(event) = receiver.try_recv() {
        state.queued.push_back(event);
    }
    if state.options.bookmarks {
        let delivered = state
            .queued
            .iter()
            .filter_map(|e| {
                e.pointer("/object/metadata/resourceVersion")?
                    .as_str()?
                    .parse()
                    .ok()
            })
            .fold(state.last_revision, u64::max);
        state.queued.push_back(bookmark(
            &state.options.api_version,
            &state.options.kind,
            revision.max(delivered),
            false,
        ));
    }
    state.queued.pop_front()
}
