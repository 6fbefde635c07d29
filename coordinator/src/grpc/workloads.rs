//! `WorkloadService`: the local runtime's Pods and Deployments over gRPC (standalone
//! mode). On Kubernetes the service answers FAILED_PRECONDITION: kubectl owns workloads
//! there.

use crate::workloads::{WorkloadError, Workloads};
use aistor_proto::v1 as pb;
use aistor_proto::v1::workload_service_server::{WorkloadService, WorkloadServiceServer};
use tonic::{Request, Response, Status};

/// Largest apply request (many YAML documents turned JSON).
pub const MAX_REQUEST_BYTES: usize = 8 << 20;
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct WorkloadApi {
    /// `None` on Kubernetes.
    workloads: Option<Workloads>,
}

pub fn workload_server(workloads: Option<Workloads>) -> WorkloadServiceServer<WorkloadApi> {
    WorkloadServiceServer::new(WorkloadApi { workloads })
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES)
}

fn status(e: WorkloadError) -> Status {
    match e {
        WorkloadError::Invalid { .. } | WorkloadError::Refused(_) => {
            Status::invalid_argument(e.to_string())
        }
        WorkloadError::NotFound { .. } => Status::not_found(e.to_string()),
        WorkloadError::Store(s) => Status::unavailable(format!("store: {s}")),
    }
}

impl WorkloadApi {
    fn workloads(&self) -> Result<&Workloads, Status> {
        self.workloads.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "this coordinator runs on Kubernetes: manage workloads with kubectl",
            )
        })
    }
}

#[tonic::async_trait]
impl WorkloadService for WorkloadApi {
    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let w = self.workloads()?;
        let mut objects = Vec::new();
        for (n, raw) in request.into_inner().objects_json.iter().enumerate() {
            let value: serde_json::Value = serde_json::from_slice(raw)
                .map_err(|e| Status::invalid_argument(format!("object {n} is not JSON: {e}")))?;
            if !value.is_object() {
                return Err(Status::invalid_argument(format!(
                    "object {n} is not a JSON object"
                )));
            }
            objects.push(value);
        }
        let applied = w.apply(objects).await.map_err(status)?;
        Ok(Response::new(pb::ApplyResponse { applied }))
    }

    async fn list(
        &self,
        request: Request<pb::ListWorkloadsRequest>,
    ) -> Result<Response<pb::ListWorkloadsResponse>, Status> {
        let w = self.workloads()?;
        let r = request.into_inner();
        let items = match r.kind.as_str() {
            "pods" | "pod" | "po" => w.list_pods(&r.namespace),
            "deployments" | "deployment" | "deploy" => w.list_deployments(&r.namespace),
            "checkpoints" | "checkpoint" => w.list_checkpoints(&r.namespace),
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown kind {other:?} (pods, deployments or checkpoints)"
                )));
            }
        };
        Ok(Response::new(pb::ListWorkloadsResponse { items }))
    }

    async fn checkpoint(
        &self,
        request: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let w = self.workloads()?;
        let r = request.into_inner();
        let (checkpoint_id, node) = w
            .checkpoint(&r.namespace, &r.name, r.containers)
            .map_err(status)?;
        Ok(Response::new(pb::CheckpointResponse {
            checkpoint_id,
            node,
        }))
    }

    async fn logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<pb::LogsResponse>, Status> {
        let w = self.workloads()?;
        let r = request.into_inner();
        let chunk = w
            .logs(
                &r.namespace,
                &r.name,
                &r.container,
                r.tail_lines,
                r.previous,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::LogsResponse {
            data: chunk.data,
            truncated: chunk.truncated,
        }))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteWorkloadRequest>,
    ) -> Result<Response<pb::DeleteWorkloadResponse>, Status> {
        let w = self.workloads()?;
        let r = request.into_inner();
        w.delete(&r.kind, &r.namespace, &r.name)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteWorkloadResponse {}))
    }
}
