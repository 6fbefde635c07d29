//! `MigrationService`: the migrations over gRPC (what `aistorctl migrate`,
//! `aistorctl migrations` and `aistorctl describe migration` use), the same ones the
//! REST API's `/api/v1/migrations` shows. Each travels as its `Migration` object's JSON.

use crate::migrations::{MigrationError, Migrations, StartRequest, object};
use crate::process::Drain;
use aistor_proto::v1 as pb;
use aistor_proto::v1::migration_service_server::{MigrationService, MigrationServiceServer};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub const MAX_REQUEST_BYTES: usize = 64 << 10;
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// How often a watch looks for changes (the loop steps every 250 ms).
pub const WATCH_POLL: Duration = Duration::from_millis(250);
pub const MAX_WATCHERS: usize = 64;

type MigrationStream = Pin<Box<dyn Stream<Item = Result<pb::Migration, Status>> + Send>>;

#[derive(Debug, Clone)]
pub struct MigrationApi {
    migrations: Option<Migrations>,
    drain: Drain,
    watchers: Arc<Semaphore>,
}

pub fn migration_server(
    migrations: Option<Migrations>,
    drain: Drain,
) -> MigrationServiceServer<MigrationApi> {
    MigrationServiceServer::new(MigrationApi {
        migrations,
        drain,
        watchers: Arc::new(Semaphore::new(MAX_WATCHERS)),
    })
    .max_decoding_message_size(MAX_REQUEST_BYTES)
    .max_encoding_message_size(MAX_RESPONSE_BYTES)
}

fn status(e: MigrationError) -> Status {
    match e {
        MigrationError::Invalid(_) => Status::invalid_argument(e.to_string()),
        MigrationError::NotFound(_) => Status::not_found(e.to_string()),
        MigrationError::Conflict(_) => Status::failed_precondition(e.to_string()),
        MigrationError::Unavailable(_) => Status::unavailable(e.to_string()),
        MigrationError::Store(s) => Status::unavailable(format!("store: {s}")),
    }
}

impl MigrationApi {
    fn migrations(&self) -> Result<&Migrations, Status> {
        self.migrations.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "this coordinator has no runtime to migrate pods on (migrations on Kubernetes are not built yet)",
            )
        })
    }

    fn found(&self, id: &str) -> Result<aistor_core::migration::machine::Migration, Status> {
        if id.is_empty() {
            return Err(Status::invalid_argument("field `id` is required"));
        }
        self.migrations()?
            .get(id)
            .ok_or_else(|| Status::not_found(format!("migration {id:?} not found")))
    }
}

fn message(m: &aistor_core::migration::machine::Migration) -> pb::Migration {
    pb::Migration {
        object_json: object::to_json(m),
    }
}

#[tonic::async_trait]
impl MigrationService for MigrationApi {
    async fn start(
        &self,
        request: Request<pb::StartMigrationRequest>,
    ) -> Result<Response<pb::Migration>, Status> {
        let mut r = request.into_inner();
        let migrations = self.migrations()?;
        // `aistorctl migrate` without --from: where the pod is (the REST API, as the
        // original, wants it named).
        if r.source_node.is_empty()
            && let Some(node) = migrations.pod_node(&r.namespace, &r.pod)
        {
            r.source_node = node;
        }
        let started = migrations
            .start(StartRequest {
                pod_name: r.pod,
                pod_namespace: r.namespace,
                source_node: r.source_node,
                target_node: r.target_node,
                preserve_pv: r.preserve_pv,
                timeout_secs: i64::from(r.timeout_seconds),
                force_restart: r.force_restart,
            })
            .await
            .map_err(status)?;
        Ok(Response::new(message(&started)))
    }

    async fn get(
        &self,
        request: Request<pb::GetMigrationRequest>,
    ) -> Result<Response<pb::Migration>, Status> {
        Ok(Response::new(message(
            &self.found(&request.into_inner().id)?,
        )))
    }

    async fn list(
        &self,
        request: Request<pb::ListMigrationsRequest>,
    ) -> Result<Response<pb::ListMigrationsResponse>, Status> {
        let namespace = request.into_inner().namespace;
        let items: Vec<pb::Migration> = self
            .migrations()?
            .list()
            .iter()
            .filter(|m| namespace.is_empty() || m.request.namespace == namespace)
            .map(message)
            .collect();
        Ok(Response::new(pb::ListMigrationsResponse { items }))
    }

    type WatchStream = MigrationStream;

    async fn watch(
        &self,
        request: Request<pb::WatchMigrationRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let id = request.into_inner().id;
        let first = self.found(&id)?;
        let migrations = self.migrations()?.clone();
        let permit = self.watchers.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{MAX_WATCHERS} migration watches are open already, the limit; retry later"
            ))
        })?;
        let mut drain = self.drain.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let _permit = permit;
            let mut last = first;
            if tx.send(Ok(message(&last))).await.is_err() {
                return;
            }
            let mut ticker = tokio::time::interval(WATCH_POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !last.phase.is_final() {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = tx.closed() => return,
                    () = drain.signaled() => return,
                }
                let Some(now) = migrations.get(&last.id) else {
                    let _ = tx
                        .send(Err(Status::not_found(format!(
                            "migration {:?} is gone",
                            last.id
                        ))))
                        .await;
                    return;
                };
                if now != last {
                    last = now;
                    if tx.send(Ok(message(&last))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelMigrationRequest>,
    ) -> Result<Response<pb::Migration>, Status> {
        let id = request.into_inner().id;
        self.found(&id)?;
        let m = self.migrations()?.cancel(&id).await.map_err(status)?;
        Ok(Response::new(message(&m)))
    }
}
