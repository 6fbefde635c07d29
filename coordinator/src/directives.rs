//! Directives to agents: the open stream of each node's agent, and sending on it.
//! A directive that needs an answer carries an id its result comes back with
//! (a measurement run's id; checkpoints and pod actions follow the same way).

use aistor_proto::v1 as pb;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

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
}

impl Directives {
    fn streams(&self) -> MutexGuard<'_, HashMap<String, DirectiveSender>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Queues a directive for `node`'s agent.
    pub fn send(&self, node: &str, directive: pb::Directive) -> Result<(), SendError> {
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
