//! Leader election on a coordination.k8s.io/v1 Lease in the coordinator's namespace, through
//! kube-lease-manager (server-side apply, so two candidates can never both take it). Only the
//! leader decides and acts; `/ready` follows [`Leadership::watch`] so the Service sends agents to it.
//!
//! The task is ours rather than kube-lease-manager's `watch()` (which spawns and detaches one):
//! the caller supervises it, and on shutdown it steps down first, then releases the Lease so a
//! standby takes over at once instead of after the lease duration. Any API error also steps down
//! (acting on a Lease we cannot confirm is the one thing leader election must prevent) and
//! starts again from a fresh read of the Lease.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseParams};
use tokio::sync::watch;

use super::config::{ConfigError, LeaseConfig};

/// The election task: runs until the shutdown future given to [`Leadership::new`] resolves.
pub type LeadershipFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Whether this coordinator is the leader now. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Leadership {
    leader: watch::Receiver<bool>,
    identity: String,
}

impl Leadership {
    /// Leadership, not yet leader, and the task that takes and renews the Lease `lease.name` in
    /// `namespace` as `identity` until `shutdown` resolves (then releases it). Fails only on a
    /// lease timing kube-lease-manager cannot use.
    pub fn new(
        client: Client,
        namespace: &str,
        identity: &str,
        lease: &LeaseConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(Leadership, LeadershipFuture), ConfigError> {
        let (duration, margin) = lease.seconds()?;
        let params = LeaseParams::new(identity, duration, margin);
        let (tx, leader) = watch::channel(false);
        let task = elect(
            Candidate {
                client,
                namespace: namespace.to_owned(),
                lease_name: lease.name.clone(),
                identity: identity.to_owned(),
                params,
                release_within: lease.renew_deadline,
            },
            tx,
            shutdown,
        );
        Ok((
            Leadership {
                leader,
                identity: identity.to_owned(),
            },
            Box::pin(task),
        ))
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Changes of leadership (`true`: leader).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }
}

struct Candidate {
    client: Client,
    namespace: String,
    lease_name: String,
    identity: String,
    params: LeaseParams,
    /// The longest a release on shutdown may take (the API server may be gone).
    release_within: Duration,
}

/// Sleeps for `delay` unless `shutdown` comes first; `true` when it did.
async fn sleep_or<F: Future<Output = ()> + Unpin>(delay: Duration, shutdown: &mut F) -> bool {
    tokio::select! {
        biased;
        () = shutdown => true,
        () = tokio::time::sleep(delay) => false,
    }
}

async fn elect(
    candidate: Candidate,
    tx: watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let Candidate {
        client,
        namespace,
        lease_name,
        identity,
        params,
        release_within,
    } = candidate;
    let mut shutdown = Box::pin(shutdown);
    let mut retry = RETRY_MIN;
    let set = |leader: bool| {
        let was = tx.send_replace(leader);
        if was != leader {
            if leader {
                tracing::info!(lease = %lease_name, %namespace, %identity, "became the leader");
            } else {
                tracing::warn!(lease = %lease_name, %namespace, %identity, "no longer the leader");
            }
        }
    };

    loop {
        // Reads (and creates, if missing) the Lease.
        let manager = tokio::select! {
            biased;
            () = &mut shutdown => return,
            manager = LeaseManager::new(
                client.clone(),
                &lease_name,
                &namespace,
                params.clone(),
                LeaseCreateMode::AutoCreate,
            ) => manager,
        };
        let manager = match manager {
            Ok(manager) => manager,
            Err(e) => {
                tracing::warn!(lease = %lease_name, %namespace, error = %e, retry_in = ?retry, "cannot read the leader Lease");
                set(false);
                if sleep_or(retry, &mut shutdown).await {
                    return;
                }
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };

        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    // Stop acting before the Lease is free for the next leader.
                    set(false);
                    match tokio::time::timeout(release_within, manager.release()).await {
                        Ok(Ok(())) => tracing::info!(lease = %lease_name, %identity, "released the leader Lease"),
                        Ok(Err(e)) => tracing::warn!(lease = %lease_name, error = %e, "could not release the leader Lease; it expires by itself"),
                        Err(_) => tracing::warn!(lease = %lease_name, "releasing the leader Lease timed out; it expires by itself"),
                    }
                    return;
                }
                changed = manager.changed() => match changed {
                    Ok(leader) => {
                        retry = RETRY_MIN;
                        set(leader);
                    }
                    Err(e) => {
                        tracing::warn!(lease = %lease_name, %namespace, error = %e, retry_in = ?retry, "leader Lease update failed; stepping down");
                        set(false);
                        if sleep_or(retry, &mut shutdown).await {
                            return;
                        }
                        retry = (retry * 2).min(RETRY_MAX);
                        // A fresh manager re-reads the Lease: if it is still ours, we lead again.
                        break;
                    }
                },
            }
        }
    }
}
