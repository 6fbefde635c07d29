//! Container discovery: which containers run on this node, kept current from the
//! runtime's events plus a periodic reconcile, published through a watch channel.
//! Ended containers carry their exit ([`exits`]) until containerd deletes them.

pub mod exits;

use crate::backoff::Backoff;
use crate::shutdown::Shutdown;
use crate::source::containerd::{ContainerInfo, Containerd, RuntimeError};
use exits::Exits;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Events arriving together (a pod start is several) cause one refresh this long after
/// the first of them.
pub const EVENT_DEBOUNCE: Duration = Duration::from_millis(100);
/// First wait before retrying an unreachable runtime; doubles (with jitter) up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The containers currently known.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub containers: Arc<Vec<ContainerInfo>>,
    /// Why discovery is not working right now (socket unreachable, ...), for `missing` in
    /// reports. The last known containers stay in `containers` meanwhile.
    pub error: Option<String>,
    /// "containerd".
    pub source: &'static str,
}

impl Discovered {
    /// The container whose task has this host pid.
    pub fn by_pid(&self, pid: u32) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.pid == Some(pid))
    }
}

const SOURCE: &str = "containerd";

/// Publishes only on a change, so receivers wake for news.
fn publish_list(publish: &watch::Sender<Discovered>, containers: Vec<ContainerInfo>) {
    publish.send_if_modified(|current| {
        let changed = current.error.is_some()
            || current.source != SOURCE
            || *current.containers != containers;
        if changed {
            *current = Discovered {
                containers: Arc::new(containers),
                error: None,
                source: SOURCE,
            };
        }
        changed
    });
}

fn publish_error(publish: &watch::Sender<Discovered>, error: &RuntimeError) {
    let message = error.to_string();
    publish.send_if_modified(|current| {
        let changed =
            current.error.as_deref() != Some(message.as_str()) || current.source != SOURCE;
        if changed {
            current.error = Some(message.clone());
            current.source = SOURCE;
        }
        changed
    });
}

/// Sleeps `delay` unless shutdown starts first; `false` on shutdown.
async fn pause(delay: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.wait() => false,
    }
}

/// The containers currently known, refreshed on containerd events and every
/// `reconcile_every`. Runs until `shutdown`.
///
/// Each round subscribes to events first and lists second, so nothing that happens in
/// between is missed. An unreachable socket, a failed list or a broken event stream is
/// published as `error` (keeping the last known containers) and retried after 1 s,
/// doubling to 30 s while failures continue.
pub async fn run_containerd(
    runtime: Containerd,
    reconcile_every: Duration,
    publish: watch::Sender<Discovered>,
    mut shutdown: Shutdown,
) {
    let reconcile_every = reconcile_every.max(Duration::from_millis(100));
    let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
    // Kept across reconnects: exits seen before containerd went away still hold.
    let mut exits = Exits::default();
    loop {
        if shutdown.started() {
            return;
        }
        if let Err(e) = watch_once(
            &runtime,
            reconcile_every,
            &publish,
            &mut shutdown,
            &mut backoff,
            &mut exits,
        )
        .await
        {
            tracing::warn!(error = %e, "container discovery through containerd failed; retrying");
            publish_error(&publish, &e);
            runtime.disconnect().await;
        }
        if shutdown.started() || !pause(backoff.delay(), &mut shutdown).await {
            return;
        }
    }
}

/// One subscription's life: subscribe, list, then refresh on events and on the reconcile
/// tick until something fails (`Err`) or shutdown starts (`Ok`).
async fn watch_once(
    runtime: &Containerd,
    reconcile_every: Duration,
    publish: &watch::Sender<Discovered>,
    shutdown: &mut Shutdown,
    backoff: &mut Backoff,
    exits: &mut Exits,
) -> Result<(), RuntimeError> {
    let mut events = tokio::select! {
        events = runtime.subscribe() => events?,
        _ = shutdown.wait() => return Ok(()),
    };
    let mut listed = tokio::select! {
        listed = runtime.list() => listed?,
        _ = shutdown.wait() => return Ok(()),
    };
    exits.reconcile(&mut listed);
    tracing::info!(
        socket = %runtime.socket().display(),
        containers = listed.len(),
        "container discovery through containerd"
    );
    publish_list(publish, listed);
    backoff.reset();

    let mut reconcile = tokio::time::interval_at(Instant::now() + reconcile_every, reconcile_every);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: Option<Instant> = None;
    loop {
        let refresh = tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            event = events.next() => {
                match event? {
                    Some(event) => {
                        tracing::debug!(topic = %event.topic, namespace = %event.namespace, "containerd event");
                        if let Some(news) = &event.news {
                            exits.note(&event.namespace, news);
                        }
                        pending.get_or_insert_with(|| Instant::now() + EVENT_DEBOUNCE);
                        false
                    }
                    None => {
                        return Err(RuntimeError::StreamEnded {
                            socket: runtime.socket().display().to_string(),
                        });
                    }
                }
            }
            _ = sleep_until_some(pending) => true,
            _ = reconcile.tick() => true,
        };
        if refresh {
            pending = None;
            let mut listed = tokio::select! {
                listed = runtime.list() => listed?,
                _ = shutdown.wait() => return Ok(()),
            };
            exits.reconcile(&mut listed);
            publish_list(publish, listed);
        }
    }
}

/// Sleeps until the deadline, forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::HostFs;
    use aistor_proto::v1::ContainerState;

    fn info(id: &str, pid: Option<u32>) -> ContainerInfo {
        ContainerInfo {
            id: id.to_owned(),
            runtime_namespace: "k8s.io".to_owned(),
            pod_uid: String::new(),
            pod_name: String::new(),
            pod_namespace: String::new(),
            container_name: String::new(),
            image: String::new(),
            pid,
            cgroup_path: None,
            state: ContainerState::Running,
            exited: None,
            restart_count: None,
            spec_cgroup_path: None,
        }
    }

    #[test]
    fn publishes_only_changes_and_keeps_containers_on_error() {
        let (tx, mut rx) = watch::channel(Discovered::default());
        publish_list(&tx, vec![info("a", Some(7))]);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        publish_list(&tx, vec![info("a", Some(7))]);
        assert!(!rx.has_changed().unwrap());
        let err = RuntimeError::StreamEnded {
            socket: "/run/x.sock".to_owned(),
        };
        publish_error(&tx, &err);
        assert!(rx.has_changed().unwrap());
        {
            let now = rx.borrow_and_update();
            assert_eq!(now.containers.len(), 1);
            assert!(now.error.as_deref().unwrap().contains("/run/x.sock"));
            assert_eq!(now.source, "containerd");
            assert_eq!(now.by_pid(7).map(|c| c.id.as_str()), Some("a"));
        }
        publish_error(&tx, &err);
        assert!(!rx.has_changed().unwrap());
        publish_list(&tx, vec![info("a", Some(7))]);
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow().error.is_none());
    }

    #[tokio::test]
    async fn unreachable_socket_is_published_and_shutdown_ends_the_loop() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("gone.sock");
        let runtime = Containerd::new(socket.clone(), vec![], HostFs::new("/"));
        let (tx, mut rx) = watch::channel(Discovered::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = crate::shutdown::from_future(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(run_containerd(
            runtime,
            Duration::from_secs(30),
            tx,
            shutdown,
        ));
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("an error is published")
            .unwrap();
        {
            let now = rx.borrow();
            let error = now.error.as_deref().unwrap();
            assert!(error.contains(&socket.display().to_string()), "{error}");
            assert_eq!(now.source, "containerd");
            assert!(now.containers.is_empty());
        }
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops on shutdown while backing off")
            .unwrap();
    }
}
