//! Process plumbing: log setup, the shutdown signal, and the drain handle that
//! long-lived streams watch so they end promptly on shutdown.

use crate::config::LogFormat;
use std::future::Future;
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

impl Drain {
    /// Starts draining when `trigger` resolves.
    pub fn on(trigger: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            trigger.await;
            tx.send_replace(true);
            tx.closed().await;
        });
        Self(rx)
    }

    pub async fn signaled(&mut self) {
        let _ = self.0.wait_for(|d| *d).await;
    }
}
