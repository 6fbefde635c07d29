//! What this coordinator is: standalone or in a Kubernetes cluster, and whether it
//! leads. Only the leader decides and acts; readiness (REST `/ready`, gRPC health)
//! follows leadership so the Service sends agents to the leader.

use crate::k8s::{ClusterMode, Leadership};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Role {
    mode: ClusterMode,
    leader: watch::Receiver<bool>,
}

impl Role {
    /// Standalone: the only coordinator there is, so always the leader.
    pub fn standalone() -> Self {
        let (_, leader) = watch::channel(true);
        Self {
            mode: ClusterMode::Standalone,
            leader,
        }
    }

    pub fn kubernetes(mode: ClusterMode, leadership: &Leadership) -> Self {
        Self {
            mode,
            leader: leadership.watch(),
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
}
