//! What the server was asked (every request, in order) and the failures tests inject.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Requests kept for `requests()`; the oldest are dropped beyond this, so a long test cannot
/// grow memory without bound.
const REQUEST_LOG_LIMIT: usize = 100_000;

/// Kubernetes' verb for a request: what RBAC sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    /// The lower-case name RBAC rules use (`deletecollection`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// One request the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (percent-encoded), "" when none.
    pub query: String,
    pub verb: Verb,
    /// API group; "" for the core group and for non-resource paths.
    pub group: String,
    pub version: String,
    /// The plural resource, "" for non-resource paths (`/version`, discovery).
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The HTTP status of the response (200 for a watch that started streaming).
    pub status: u16,
}

/// Which requests an injected failure applies to; `Default` matches every request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMatcher {
    pub verb: Option<Verb>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub name: Option<String>,
}

impl RequestMatcher {
    pub fn matches(&self, request: &RecordedRequest) -> bool {
        self.verb.is_none_or(|v| v == request.verb)
            && self
                .resource
                .as_ref()
                .is_none_or(|r| *r == request.resource)
            && self
                .subresource
                .as_ref()
                .is_none_or(|s| Some(s) == request.subresource.as_ref())
            && self
                .name
                .as_ref()
                .is_none_or(|n| Some(n) == request.name.as_ref())
    }
}

/// The request log and the queue of injected failures.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    requests: Mutex<VecDeque<RecordedRequest>>,
    failures: Mutex<Vec<(RequestMatcher, u16)>>,
}

impl Recorder {
    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if requests.len() == REQUEST_LOG_LIMIT {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub(crate) fn fail_next(&self, matcher: RequestMatcher, status: u16) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.push((matcher, status));
    }

    /// The first injected failure matching this request, consumed.
    pub(crate) fn take_failure(&self, request: &RecordedRequest) -> Option<u16> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let index = failures.iter().position(|(m, _)| m.matches(request))?;
        Some(failures.remove(index).1)
    }
}
