//! Shutdown: SIGTERM or SIGINT starts a drain bounded by a grace period; a second
//! signal during the drain ends the process at once.

use std::future::Future;
use tokio::sync::watch;

/// A cloneable "shutdown has started" signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown has started (immediately if it already has).
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped, which also means shutdown.
        let _ = self.0.wait_for(|started| *started).await;
    }

    pub fn started(&self) -> bool {
        *self.0.borrow()
    }
}

/// Turns a future (a signal, or a test's oneshot) into a [`Shutdown`].
pub fn from_future(fut: impl Future<Output = ()> + Send + 'static) -> Shutdown {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        fut.await;
        let _ = tx.send(true);
        // Keep the sender alive so receivers see `true`, not a closed channel.
        std::future::pending::<()>().await;
    });
    Shutdown(rx)
}

/// Resolves on the first SIGTERM (kubelet stopping the pod) or SIGINT (Ctrl-C). A
/// second signal exits the process immediately, for an operator who will not wait.
pub async fn signal() {
    first_signal().await;
    tracing::info!("shutdown signal received; draining (send it again to exit now)");
    tokio::spawn(async {
        first_signal().await;
        tracing::warn!("second shutdown signal: exiting without draining");
        std::process::exit(130);
    });
}

async fn first_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
