//! `PlacementService`: explain a placement and show or apply the AIStorageConfig (what
//! `aistorctl place` and `aistorctl apply -f` of an AIStorageConfig use), the same as the
//! REST API's `/api/v1/placements/*`.

use crate::placement::service::{PlacementService as Service, ServiceError};
use aistor_proto::v1 as pb;
use aistor_proto::v1::placement_service_server::{PlacementService, PlacementServiceServer};
use tonic::{Request, Response, Status};

/// A manifest or a configuration document fits well inside this.
pub const MAX_REQUEST_BYTES: usize = 512 << 10;
/// An explanation lists every node: room for thousands.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct PlacementApi {
    service: Service,
}

pub fn placement_server(service: Service) -> PlacementServiceServer<PlacementApi> {
    PlacementServiceServer::new(PlacementApi { service })
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES)
}

fn status(e: ServiceError) -> Status {
    match e {
        ServiceError::Invalid(_) => Status::invalid_argument(e.to_string()),
        ServiceError::NotFound(_) => Status::not_found(e.to_string()),
        ServiceError::Unavailable(_) => Status::failed_precondition(e.to_string()),
        ServiceError::Store(s) => Status::unavailable(format!("store: {s}")),
    }
}

fn config(c: crate::placement::ConfigInForce) -> pb::PlacementConfig {
    pb::PlacementConfig {
        source: c.source,
        document_json: c
            .document
            .map(|d| serde_json::to_vec(&d).unwrap_or_default())
            .unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl PlacementService for PlacementApi {
    async fn explain(
        &self,
        request: Request<pb::ExplainPlacementRequest>,
    ) -> Result<Response<pb::PlacementExplanation>, Status> {
        let r = request.into_inner();
        let explanation = self
            .service
            .explain(Some(&r.pod_json), &r.namespace, &r.name)
            .map_err(status)?;
        let explanation_json =
            serde_json::to_vec(&explanation).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::PlacementExplanation { explanation_json }))
    }

    async fn get_config(
        &self,
        _request: Request<pb::GetPlacementConfigRequest>,
    ) -> Result<Response<pb::PlacementConfig>, Status> {
        Ok(Response::new(config(self.service.config())))
    }

    async fn apply_config(
        &self,
        request: Request<pb::ApplyPlacementConfigRequest>,
    ) -> Result<Response<pb::PlacementConfig>, Status> {
        let applied = self
            .service
            .apply(&request.into_inner().document)
            .await
            .map_err(status)?;
        Ok(Response::new(config(applied)))
    }
}
