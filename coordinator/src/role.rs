//! What this coordinator is: standalone or in a Kubernetes cluster, and whether it
//! leads. Only the leader decides and acts; readiness (REST `/ready`, gRPC health)
//! follows leadership so the Service sends agents to the leader.

use crate::k8s::{ClusterMode, Leadership};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Role {
    mode: ClusterMode,
    leader: watch::Receiver<bool>,
    // Standalone, nobody changes leadership; the sender is kept so that waiting for
    // a change waits forever instead of failing at once.
    _constant: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl Role {
    /// Standalone: the only coordinator there is, so always the leader.
    pub fn standalone() -> Self {
        let (constant, leader) = watch::channel(true);
        Self {
            mode: ClusterMode::Standalone,
            leader,
            _constant: Some(std::sync::Arc::new(constant)),
        }
    }

    pub fn kubernetes(mode: ClusterMode, leadership: &Leadership) -> Self {
        Self::following(mode, leadership.watch())
    }

    /// Leads while `leader` says so.
    pub fn following(mode: ClusterMode, leader: watch::Receiver<bool>) -> Self {
        Self {
            mode,
            leader,
            _constant: None,
        }
    }

    pub fn mode(&self) -> &ClusterMode {
        &self.mode
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Changes of leadership (the current value first).
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standalone_coordinator_always_leads() {
        let role = Role::standalone();
        assert!(role.is_leader());
        assert_eq!(role.mode().name(), "standalone");
        assert!(*role.leadership().borrow());
    }

    #[tokio::test]
    async fn standalone_leadership_never_changes_and_never_closes() {
        let role = Role::standalone();
        let mut leadership = role.leadership();
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            leadership.wait_for(|leader| !*leader),
        )
        .await;
        assert!(waited.is_err(), "still waiting: the channel stays open");
    }
}
