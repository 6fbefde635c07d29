//! The admin listener, bounded: HTTP/1 only (probes and scrapers speak it), a
//! header-read timeout on every request head (the first, and each later one on a
//! kept-alive connection: a connection that sends nothing or half a request is
//! closed; the HTTP/2 preface is refused at once), a small header buffer, and a cap
//! on open connections.
//!
//! A connection over the cap is accepted and closed at once, and counted in
//! `aistor_agent_admin_connections_refused_total`, rather than left waiting in the
//! kernel's backlog: a prober that waits cannot tell a full agent from a dead one,
//! one that is refused retries, and the refusals show.
//! (`axum::serve` cannot set a header-read timeout, hence this small accept loop.)

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Bounds of the admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// How long a request head may take to arrive.
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Probes, a scraper or two and a person with curl.
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// hyper's read buffer (its minimum): a request line and headers beyond it are
/// answered 431 by hyper itself, with an empty body.
const MAX_HEAD_BYTES: usize = 8192;

/// Registers `aistor_agent_admin_connections_refused_total` and returns it.
pub fn refused_counter(registry: &mut Registry) -> Counter {
    let refused = Counter::default();
    registry.register(
        "aistor_agent_admin_connections_refused",
        "Admin connections closed on accept because the maximum were open",
        refused.clone(),
    );
    refused
}

/// Serves `router` until `shutdown` resolves, then stops accepting, lets open
/// connections finish their requests (idle ones close at once) and returns when
/// all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    refused: Counter,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    use io::ErrorKind as K;
                    if !matches!(e.kind(), K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset) {
                        // Out of file descriptors, say: pause instead of spinning.
                        tracing::warn!(error = %e, "admin accept failed; retrying in 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused.inc();
            tracing::debug!(%peer, max, "admin connection refused: listener full");
            continue;
        };
        let service = hyper::service::service_fn({
            let router = router.clone();
            move |request: hyper::Request<hyper::body::Incoming>| {
                router.clone().oneshot(request.map(axum::body::Body::new))
            }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            let mut draining = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(e) = served {
                            tracing::debug!(%peer, error = %e, "admin connection ended with an error");
                        }
                        return;
                    }
                    _ = stopping.changed(), if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let _ = permits
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
    Ok(())
}
