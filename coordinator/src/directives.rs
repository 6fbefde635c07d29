//! Directives to agents: the open stream of each node's agent, sending on it, and the
//! errors agents report for them. A directive that needs an answer carries an id its
//! result comes back with in a report (a measurement run's id, `stage-<checkpoint>`,
//! a freeze's id, ...); the loops that sent one ask here whether it failed.

use aistor_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Directive errors remembered (the oldest reported go first).
pub const KEEP_ERRORS: usize = 256;

/// Where directives for one node's agent go: its open stream.
pub type DirectiveSender = mpsc::Sender<Result<pb::Directive, tonic::Status>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("node {0:?} has no open agent stream")]
    NotConnected(String),
    #[error("the stream of node {0:?} is full; its agent is not reading")]
    Full(String),
}

#[derive(Debug, Clone, Default)]
pub struct Directives {
    streams: Arc<Mutex<HashMap<String, DirectiveSender>>>,
    errors: Arc<Mutex<Errors>>,
}

/// Directive id → (order reported, the agent's error), the newest [`KEEP_ERRORS`].
#[derive(Debug, Default)]
struct Errors {
    by_id: BTreeMap<String, (u64, String)>,
    order: u64,
}

impl Directives {
    fn streams(&self) -> MutexGuard<'_, HashMap<String, DirectiveSender>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn errors(&self) -> MutexGuard<'_, Errors> {
        self.errors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the stream of `node`'s agent (the newest stream wins).
    pub fn register(&self, node: &str, tx: DirectiveSender) {
        self.streams().insert(node.to_owned(), tx);
    }

    /// Forgets `node`'s stream if it is still `tx` (a newer one may have replaced it).
    pub fn unregister(&self, node: &str, tx: &DirectiveSender) {
        let mut streams = self.streams();
        if streams
            .get(node)
            .is_some_and(|current| current.same_channel(tx))
        {
            streams.remove(node);
        }
    }

    pub fn is_connected(&self, node: &str) -> bool {
        self.streams().get(node).is_some_and(|tx| !tx.is_closed())
    }

    /// Queues a directive for `node`'s agent. An error remembered under its id is
    /// forgotten: the id is asked again, and only its new answer counts.
    pub fn send(&self, node: &str, directive: pb::Directive) -> Result<(), SendError> {
        if !directive.id.is_empty() {
            self.errors().by_id.remove(&directive.id);
        }
        let tx = self
            .streams()
            .get(node)
            .cloned()
            .ok_or_else(|| SendError::NotConnected(node.to_owned()))?;
        tx.try_send(Ok(directive)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full(node.to_owned()),
            mpsc::error::TrySendError::Closed(_) => SendError::NotConnected(node.to_owned()),
        })
    }

    pub fn connected(&self) -> usize {
        self.streams().len()
    }

    /// Takes in the results one report of `node` carries: the failed ones are kept
    /// for [`Self::error`].
    pub fn observe(&self, node: &str, results: &[pb::DirectiveResult]) {
        let mut failed = results.iter().filter(|r| !r.error.is_empty()).peekable();
        if failed.peek().is_none() {
            return;
        }
        let mut errors = self.errors();
        for r in failed {
            tracing::warn!(%node, id = r.id, error = r.error, "the agent could not carry out a directive");
            errors.order += 1;
            let order = errors.order;
            errors.by_id.insert(r.id.clone(), (order, r.error.clone()));
        }
        while errors.by_id.len() > KEEP_ERRORS {
            let Some(oldest) = errors
                .by_id
                .iter()
                .min_by_key(|(_, (order, _))| *order)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            errors.by_id.remove(&oldest);
        }
    }

    /// What an agent said of directive `id`, when it failed (since it was last sent).
    pub fn error(&self, id: &str) -> Option<String> {
        self.errors().by_id.get(id).map(|(_, e)| e.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directive() -> pb::Directive {
        pb::Directive {
            kind: Some(pb::directive::Kind::Ack(pb::Ack::default())),
            id: String::new(),
        }
    }

    #[tokio::test]
    async fn the_newest_stream_wins_and_an_old_one_cannot_unregister_it() {
        let d = Directives::default();
        let (old, _old_rx) = mpsc::channel(1);
        let (new, mut new_rx) = mpsc::channel(1);
        d.register("n1", old.clone());
        d.register("n1", new.clone());
        d.unregister("n1", &old);
        assert!(d.is_connected("n1"));
        d.send("n1", directive()).unwrap();
        assert!(new_rx.recv().await.is_some());
        assert_eq!(d.send("n1", directive()), Ok(()));
        assert_eq!(d.send("n1", directive()), Err(SendError::Full("n1".into())));
        d.unregister("n1", &new);
        assert_eq!(
            d.send("n1", directive()),
            Err(SendError::NotConnected("n1".into()))
        );
        assert_eq!(d.connected(), 0);
    }

    fn failed(id: &str, error: &str) -> pb::DirectiveResult {
        pb::DirectiveResult {
            id: id.into(),
            error: error.into(),
            finished_unix_nanos: 1,
        }
    }

    #[tokio::test]
    async fn a_failed_directive_is_kept_until_it_is_sent_again() {
        let d = Directives::default();
        let (tx, _rx) = mpsc::channel(8);
        d.register("n1", tx);
        let ok = pb::DirectiveResult {
            id: "ok".into(),
            ..failed("", "")
        };
        d.observe("n1", &[failed("freeze-m", "no such pod"), ok]);
        assert_eq!(d.error("freeze-m").as_deref(), Some("no such pod"));
        assert_eq!(d.error("ok"), None);
        // Another directive sent leaves it; the same id sent again forgets it.
        d.send("n1", directive()).unwrap();
        assert_eq!(d.error("freeze-m").as_deref(), Some("no such pod"));
        let again = pb::Directive {
            id: "freeze-m".into(),
            ..directive()
        };
        d.send("n1", again.clone()).unwrap();
        assert_eq!(d.error("freeze-m"), None);
        // Also when the send itself fails: the old answer is not the new one's.
        d.observe("n1", &[failed("freeze-m", "again")]);
        assert!(d.send("n9", again).is_err());
        assert_eq!(d.error("freeze-m"), None);
    }

    #[test]
    fn remembered_errors_are_bounded_oldest_first() {
        let d = Directives::default();
        let results: Vec<_> = (0..KEEP_ERRORS + 10)
            .map(|i| failed(&format!("d-{i}"), "x"))
            .collect();
        d.observe("n1", &results);
        d.observe("n1", &[failed("d-0", "reported again: newest now")]);
        let errors = d.errors();
        assert_eq!(errors.by_id.len(), KEEP_ERRORS);
        assert!(errors.by_id.contains_key("d-0"));
        assert!(!errors.by_id.contains_key("d-1"));
        assert!(!errors.by_id.contains_key("d-10"));
        assert!(errors.by_id.contains_key("d-11"));
        assert!(errors.by_id.contains_key(&format!("d-{}", KEEP_ERRORS + 9)));
    }

    #[tokio::test]
    async fn a_closed_stream_is_not_connected() {
        let d = Directives::default();
        let (tx, rx) = mpsc::channel(1);
        d.register("n1", tx);
        drop(rx);
        assert!(!d.is_connected("n1"));
        assert_eq!(
            d.send("n1", directive()),
            Err(SendError::NotConnected("n1".into()))
        );
    }
}
