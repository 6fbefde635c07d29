//! Process plumbing: log setup, the shutdown signal, and the drain handle that
//! long-lived streams watch so they end promptly on shutdown.

use crate::config::LogFormat;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// Installs the global log subscriber (stderr; `RUST_LOG` overrides `info`).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    // A second install (several coordinators in one test process) keeps the first.
    let _ = if format == LogFormat::Json {
        fmt.json().try_init()
    } else {
        fmt.try_init()
    };
}

/// Resolves on SIGTERM or SIGINT; a second one exits at once without draining.
pub async fn termination() {
    wait_for_signal().await;
    tracing::info!("shutting down: draining streams (signal again to exit now)");
    tokio::spawn(async {
        wait_for_signal().await;
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "SIGTERM cannot be caught; use Ctrl-C");
            None
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(_) = async { term.as_mut()?.recv().await } => {}
    }
}

/// Watched by every long-lived task; flips once when shutdown starts.
#[derive(Debug, Clone)]
pub struct Drain(watch::Receiver<bool>);

/// Starts a drain from inside the process (an essential task ended).
#[derive(Debug, Clone)]
pub struct DrainTrigger(Arc<watch::Sender<bool>>);

impl DrainTrigger {
    pub fn drain(&self) {
        self.0.send_replace(true);
    }
}

impl Drain {
    /// Starts draining when `trigger` resolves, or when the returned trigger fires.
    pub fn on(trigger: impl Future<Output = ()> + Send + 'static) -> (Self, DrainTrigger) {
        let (tx, rx) = watch::channel(false);
        let tx = Arc::new(tx);
        let handle = DrainTrigger(Arc::clone(&tx));
        tokio::spawn(async move {
            tokio::select! {
                () = trigger => { tx.send_replace(true); }
                () = tx.closed() => {}
            }
        });
        (Self(rx), handle)
    }

    /// A drain that starts only when told to (tests).
    pub fn never() -> Self {
        Self::on(std::future::pending()).0
    }

    pub async fn signaled(&mut self) {
        let _ = self.0.wait_for(|d| *d).await;
    }

    pub fn is_signaled(&self) -> bool {
        *self.0.borrow()
    }
}

/// The essential tasks of a process. The process lives as long as all of them:
/// when one ends or panics before shutdown, the supervisor says which and why,
/// drains the others, and the process exits non-zero.
pub struct Supervisor {
    tasks: tokio::task::JoinSet<(String, Result<(), String>)>,
    // A panicked task's JoinError carries only its id.
    names: std::collections::HashMap<tokio::task::Id, String>,
}

/// An essential task that ended before shutdown.
#[derive(Debug, thiserror::Error)]
#[error("essential task {task:?} ended: {cause}")]
pub struct TaskEnded {
    pub task: String,
    pub cause: String,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        Self {
            tasks: tokio::task::JoinSet::new(),
            names: std::collections::HashMap::new(),
        }
    }

    /// Spawns an essential task; its error becomes the process's.
    pub fn spawn<E: std::fmt::Display>(
        &mut self,
        name: impl Into<String>,
        task: impl Future<Output = Result<(), E>> + Send + 'static,
    ) {
        let name = name.into();
        let label = name.clone();
        let handle = self
            .tasks
            .spawn(async move { (label, task.await.map_err(|e| e.to_string())) });
        self.names.insert(handle.id(), name);
    }

    /// Runs until shutdown (then waits at most `grace` for the tasks to finish) or
    /// until a task ends on its own (then drains the rest the same way and returns
    /// which one ended). A task that panics is reported by the name it was given.
    pub async fn run(
        mut self,
        drain: Drain,
        trigger: DrainTrigger,
        grace: std::time::Duration,
    ) -> Result<(), TaskEnded> {
        let mut first_failure: Option<TaskEnded> = None;
        let mut watching = drain.clone();
        loop {
            tokio::select! {
                joined = self.tasks.join_next() => {
                    let Some(joined) = joined else { break };
                    let ended = match joined {
                        Ok((_, Ok(()))) if drain.is_signaled() => None,
                        Ok((task, Ok(()))) => Some(TaskEnded { task, cause: "it returned before shutdown".into() }),
                        Ok((task, Err(e))) => Some(TaskEnded { task, cause: e }),
                        Err(e) => Some(TaskEnded {
                            task: self.names.get(&e.id()).cloned().unwrap_or_else(|| "unnamed".into()),
                            cause: panic_text(e),
                        }),
                    };
                    if let Some(ended) = ended {
                        tracing::error!(task = %ended.task, cause = %ended.cause, "an essential task ended; shutting down");
                        first_failure.get_or_insert(ended);
                        trigger.drain();
                        break;
                    }
                }
                () = watching.signaled() => break,
            }
        }
        if tokio::time::timeout(grace, async {
            while let Some(joined) = self.tasks.join_next().await {
                if let Ok((task, Err(e))) = joined {
                    tracing::warn!(%task, error = %e, "task failed while draining");
                }
            }
        })
        .await
        .is_err()
        {
            tracing::warn!(?grace, "drain took longer than the grace period; exiting");
            self.tasks.abort_all();
        }
        first_failure.map_or(Ok(()), Err)
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| format!("panicked: {s}"))
            .or_else(|| {
                payload
                    .downcast_ref::<String>()
                    .map(|s| format!("panicked: {s}"))
            })
            .unwrap_or_else(|| "panicked".into()),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_task_that_ends_early_drains_the_others_and_is_named() {
        let (drain, trigger) = Drain::on(std::future::pending());
        let mut s = Supervisor::new();
        let mut d = drain.clone();
        s.spawn("server", async move {
            d.signaled().await;
            Ok::<(), String>(())
        });
        s.spawn("refresher", async { Err::<(), _>("disk on fire") });
        let ended = s
            .run(drain.clone(), trigger, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(ended.task, "refresher");
        assert_eq!(
            ended.to_string(),
            "essential task \"refresher\" ended: disk on fire"
        );
        assert!(drain.is_signaled(), "the others were told to drain");
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_not_swallowed() {
        let (drain, trigger) = Drain::on(std::future::pending());
        let mut s = Supervisor::new();
        s.spawn("reflector", async {
            if true {
                panic!("watch decoding bug");
            }
            Ok::<(), String>(())
        });
        let ended = s
            .run(drain, trigger, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(ended.task, "reflector");
        assert!(
            ended.cause.contains("panicked: watch decoding bug"),
            "{ended}"
        );
    }

    #[tokio::test]
    async fn shutdown_waits_for_tasks_and_is_not_a_failure() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (drain, trigger) = Drain::on(async {
            let _ = rx.await;
        });
        let mut s = Supervisor::new();
        let mut d = drain.clone();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = Arc::clone(&finished);
        s.spawn("server", async move {
            d.signaled().await;
            f.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<(), String>(())
        });
        tx.send(()).unwrap();
        s.run(drain, trigger, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_drain_is_cut_at_the_grace_period() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (drain, trigger) = Drain::on(async {
            let _ = rx.await;
        });
        let mut s = Supervisor::new();
        s.spawn("stubborn", std::future::pending::<Result<(), String>>());
        tx.send(()).unwrap();
        s.run(drain, trigger, Duration::from_millis(50))
            .await
            .unwrap();
    }
}
