//! aistor coordinator: keeps the live cluster view built from agent streams and serves
//! it over gRPC and REST. `cli` is `aistorctl`, the command line for people.
//!
//! [`run`] is the composition root of `aistor-coordinator`.

pub mod cli;
pub mod config;
pub mod convert;
pub mod gpus;
pub mod grpc;
pub mod measurements;
pub mod metrics;
pub mod paging;
pub mod process;
pub mod rest;
pub mod state;

use aistor_proto::v1::cluster_service_server::ClusterServiceServer;
use config::Config;
use process::Drain;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// The addresses actually bound (port 0 in tests becomes a real port).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { what, addr, source })?;
    Ok((listener, local))
}

/// Serves until `shutdown` resolves, then drains for at most the grace period.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bound: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> Result<(), Error> {
    let drain = Drain::on(shutdown);
    let (grpc_listener, grpc_addr) = bind("gRPC", config.grpc_addr).await?;
    let (http_listener, http_addr) = bind("HTTP", config.http_addr).await?;

    let metrics = metrics::CoordinatorMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let shared = state::Shared::new(config.view, metrics);

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<grpc::ingest::AgentServer>().await;
    health
        .set_serving::<ClusterServiceServer<grpc::cluster::Cluster>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(aistor_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let grpc_server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(grpc::ingest::AgentServer::new(grpc::ingest::Ingest::new(
            shared.clone(),
            drain.clone(),
        )))
        .add_service(ClusterServiceServer::new(grpc::cluster::Cluster::new(
            shared.clone(),
            drain.clone(),
        )))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            {
                let mut drain = drain.clone();
                let health = health.clone();
                async move {
                    drain.signaled().await;
                    health.set_not_serving::<grpc::ingest::AgentServer>().await;
                    health
                        .set_not_serving::<ClusterServiceServer<grpc::cluster::Cluster>>()
                        .await;
                }
            },
        );
    let http_server = axum::serve(
        http_listener,
        rest::router(shared.clone(), Arc::new(registry)),
    )
    .with_graceful_shutdown({
        let mut drain = drain.clone();
        async move { drain.signaled().await }
    })
    .into_future();

    let refresher = {
        let shared = shared.clone();
        let mut drain = drain.clone();
        let every = config.refresh_every;
        async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = ticker.tick() => shared.refresh(),
                    () = drain.signaled() => return,
                }
            }
        }
    };

    tracing::info!(grpc = %grpc_addr, http = %http_addr, "aistor-coordinator serving");
    if let Some(tx) = bound {
        let _ = tx.send(Bound {
            grpc: grpc_addr,
            http: http_addr,
        });
    }

    let serving = async {
        let (grpc, http, ()) = tokio::join!(grpc_server, http_server, refresher);
        grpc?;
        if let Err(e) = http {
            tracing::error!(error = %e, "HTTP server failed");
        }
        Ok::<(), Error>(())
    };
    tokio::pin!(serving);
    let mut draining = drain.clone();
    tokio::select! {
        result = &mut serving => return result,
        () = draining.signaled() => {}
    }
    match tokio::time::timeout(config.shutdown_grace, serving).await {
        Ok(result) => result?,
        Err(_) => {
            tracing::warn!(grace = ?config.shutdown_grace, "drain took longer than the grace period; exiting")
        }
    }
    tracing::info!("aistor-coordinator stopped");
    Ok(())
}
