//! The coordinator's two listeners, bounded: a cap on open connections per listener,
//! a deadline for what a new connection must send first, and the protocol limits
//! hyper and tonic enforce (header sizes, HTTP/2 keepalive and streams).
//!
//! A connection over the cap is accepted and closed at once (and counted in
//! `aistor_coordinator_connections_refused_total{listener}`) rather than left
//! waiting in the kernel's backlog: a waiting client cannot tell a full server from
//! a dead one and spends its own timeout finding out, while a closed one can retry
//! elsewhere at once, and the operator sees the refusals.
//!
//! HTTP (REST and `/metrics`) is served here with hyper-util's `auto` builder,
//! because `axum::serve` cannot set a header-read timeout: a connection must deliver
//! its first request head within `header_read_timeout` (this also covers a client
//! that sends nothing, half an HTTP/1 request, or only the HTTP/2 preface); later
//! HTTP/1 requests on a kept-alive connection have the same bound (hyper's
//! `header_read_timeout`), and an HTTP/2 connection is closed when it stops
//! answering keepalive pings.
//!
//! gRPC keeps tonic's server (its `grpc-timeout`, per-connection concurrency limit
//! and remote addresses); [`grpc_incoming`] gives it the capped connections, each
//! of which must deliver the HTTP/2 client preface and the start of its SETTINGS
//! frame within `header_read_timeout`; after that hyper's HTTP/2 keepalive closes
//! a peer that stops answering pings.

use axum::Router;
use axum::extract::ConnectInfo;
use futures::{Stream, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

/// Bounds of the REST listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// How long a request head may take to arrive (the first on a connection, and
    /// each later one on a kept-alive HTTP/1 connection).
    pub header_read_timeout: Duration,
    /// How long one request may take, body and handler included (then 408).
    pub request_timeout: Duration,
    /// Largest request body (then 413).
    pub max_body_bytes: usize,
    /// Longest path and query (then 414).
    pub max_uri_bytes: usize,
    /// Largest header section, names and values (then 431).
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            max_uri_bytes: 8 << 10,
            max_header_bytes: 32 << 10,
        }
    }
}

impl HttpLimits {
    /// hyper's HTTP/1 read buffer: the request line and headers must fit in it, or
    /// hyper itself answers 431 with an empty body. It is kept above the limits the
    /// REST layer checks (which answer 414 and 431 in JSON), so it is only the
    /// backstop for heads far over them.
    fn hyper_buffer_bytes(&self) -> usize {
        (self.max_header_bytes + self.max_uri_bytes)
            .saturating_mul(2)
            .max(8192)
    }
}

/// Bounds of the gRPC listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcLimits {
    /// Connections open at once (every agent holds one); more are closed on accept.
    pub max_connections: usize,
    /// How long a new connection may take to send the HTTP/2 client preface (and
    /// the SETTINGS frame that follows it).
    pub header_read_timeout: Duration,
    /// HTTP/2 keepalive: a ping this long after the last frame read...
    pub keepalive_interval: Duration,
    /// ...that must be acknowledged within this, or the connection is closed.
    pub keepalive_timeout: Duration,
    /// TCP keepalive probes on idle connections (dead peers behind a NAT).
    pub tcp_keepalive: Duration,
    /// Longest unary call until its response (streams are not cut: tonic's
    /// timeout ends when a response starts, and a stream's starts at once).
    pub request_timeout: Duration,
    /// HTTP/2 streams (calls) open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Calls in progress at once per connection (waiting for their response).
    pub concurrency_per_connection: usize,
    /// Largest header list of a call (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`).
    pub max_header_bytes: u32,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            // Above the default --max-nodes (10,000 agents, one connection each)
            // with room for clients.
            max_connections: 16384,
            header_read_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            max_concurrent_streams: 128,
            concurrency_per_connection: 64,
            max_header_bytes: 32 << 10,
        }
    }
}

impl GrpcLimits {
    /// tonic's server with these bounds (services are added by the caller).
    pub fn server(&self) -> tonic::transport::Server {
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(self.keepalive_interval))
            .http2_keepalive_timeout(Some(self.keepalive_timeout))
            .max_concurrent_streams(self.max_concurrent_streams)
            .concurrency_limit_per_connection(self.concurrency_per_connection)
            .http2_max_header_list_size(self.max_header_bytes)
            .timeout(self.request_timeout)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Listener {
    listener: &'static str,
}

/// `aistor_coordinator_connections{listener}` and
/// `aistor_coordinator_connections_refused_total{listener}`.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    open: Family<Listener, Gauge>,
    refused: Family<Listener, Counter>,
}

impl ConnectionMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("aistor_coordinator");
        sub.register(
            "connections",
            "Connections open, by listener (http, grpc)",
            self.open.clone(),
        );
        sub.register(
            "connections_refused",
            "Connections closed on accept because the listener had its maximum open, by listener",
            self.refused.clone(),
        );
    }

    fn open(&self, listener: &'static str) -> Gauge {
        self.open.get_or_create(&Listener { listener }).clone()
    }

    fn refused(&self, listener: &'static str) -> Counter {
        self.refused.get_or_create(&Listener { listener }).clone()
    }
}

/// The cap of one listener: a permit per open connection.
#[derive(Clone)]
struct Cap {
    permits: Arc<Semaphore>,
    max: usize,
    open: Gauge,
    refused: Counter,
    name: &'static str,
}

/// A permit held for the life of one connection (the gauge follows it).
struct Held {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl Cap {
    fn new(name: &'static str, max: usize, metrics: &ConnectionMetrics) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            open: metrics.open(name),
            refused: metrics.refused(name),
            name,
        }
    }

    /// A permit, or `None` (counted) when the listener is full.
    fn admit(&self, peer: SocketAddr) -> Option<Held> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.open.inc();
                Some(Held {
                    _permit: permit,
                    open: self.open.clone(),
                })
            }
            Err(_) => {
                self.refused.inc();
                tracing::debug!(listener = self.name, %peer, max = self.max, "connection refused: listener full");
                None
            }
        }
    }

    /// Until every connection has ended.
    async fn all_closed(&self) {
        let max = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(max).await;
    }
}

/// After an accept error: errors of one connection are skipped at once; others
/// (out of file descriptors) are retried after a pause instead of spinning.
async fn accept_error(listener: &'static str, e: io::Error) {
    use io::ErrorKind as K;
    if !matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    ) {
        tracing::warn!(listener, error = %e, "accept failed; retrying in 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting,
/// lets every connection finish its requests (idle ones close at once) and
/// returns when all are closed. The router sees the peer as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    metrics: ConnectionMetrics,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let cap = Cap::new("http", limits.max_connections, &metrics);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.hyper_buffer_bytes());
    builder
        .http2()
        .timer(TokioTimer::new())
        // A peer that stops answering pings (or sends only the preface) is closed.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(limits.header_read_timeout)
        .max_concurrent_streams(128)
        .max_header_list_size(u32::try_from(limits.hyper_buffer_bytes()).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error("http", e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(held) = cap.admit(peer) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (builder, router, stopping) = (builder.clone(), router.clone(), stopping.clone());
        let within = limits.header_read_timeout;
        match tls.clone() {
            None => {
                tokio::spawn(http_connection(
                    builder, stream, peer, router, within, stopping, held,
                ));
            }
            // The handshake shares the first request's deadline: a peer that never
            // finishes it is closed like one that never sends a request head.
            Some(acceptor) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(within, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            http_connection(builder, stream, peer, router, within, stopping, held)
                                .await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not finished in time");
                        }
                    }
                });
            }
        }
    }
    // No new connections (the socket closes now); the open ones finish.
    drop(listener);
    let _ = stop.send(true);
    cap.all_closed().await;
    Ok(())
}

async fn http_connection<S>(
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    stream: S,
    peer: SocketAddr,
    router: Router,
    first_request_within: Duration,
    mut stopping: watch::Receiver<bool>,
    _held: Held,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let requested = Arc::new(Notify::new());
    let service = hyper::service::service_fn({
        let requested = requested.clone();
        move |mut request: hyper::Request<hyper::body::Incoming>| {
            requested.notify_one();
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let first = tokio::time::timeout(first_request_within, requested.notified());
    tokio::pin!(first);
    let (mut first_seen, mut draining) = (false, false);
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            arrived = &mut first, if !first_seen => {
                if arrived.is_err() {
                    tracing::debug!(%peer, timeout = ?first_request_within, "HTTP connection closed: no request head in time");
                    return;
                }
                first_seen = true;
            }
            _ = stopping.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// One accepted gRPC connection: its place under the cap, and until the HTTP/2
/// preface has arrived, the deadline for it.
pub struct GrpcConnection {
    io: TcpStream,
    /// Preface bytes still expected, and by when.
    preface: Option<(usize, Pin<Box<tokio::time::Sleep>>)>,
    _held: Held,
}

/// The HTTP/2 client connection preface and the header of the SETTINGS frame that
/// must follow it (RFC 9113 §3.4): every client sends both at once, so a peer
/// that stops inside them is closed at the deadline, not only by keepalive.
const PREFACE_LEN: usize = 24 + 9;

impl AsyncRead for GrpcConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let Some((left, deadline)) = this.preface.as_mut() else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                if read == 0 || read >= *left {
                    this.preface = None;
                } else {
                    *left -= read;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 preface and SETTINGS within the header read timeout",
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for GrpcConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for GrpcConnection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// The connections tonic serves: accepted from `listener` with TCP keepalive and
/// no Nagle delay, closed at once over the cap, each with its preface deadline.
pub fn grpc_incoming(
    name: &'static str,
    listener: TcpListener,
    limits: &GrpcLimits,
    metrics: &ConnectionMetrics,
) -> impl Stream<Item = io::Result<GrpcConnection>> + Send + 'static {
    let cap = Cap::new(name, limits.max_connections, metrics);
    let preface_within = limits.header_read_timeout;
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(limits.tcp_keepalive))
        .filter_map(move |accepted| {
            let cap = cap.clone();
            async move {
                let stream = match accepted {
                    Ok(stream) => stream,
                    Err(e) => {
                        accept_error(name, e).await;
                        return None;
                    }
                };
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let held = cap.admit(peer)?;
                Some(Ok(GrpcConnection {
                    io: stream,
                    preface: Some((PREFACE_LEN, Box::pin(tokio::time::sleep(preface_within)))),
                    _held: held,
                }))
            }
        })
}
