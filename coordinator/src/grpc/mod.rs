//! gRPC adapters. Domain errors become `tonic::Status` here and nowhere else.

pub mod agent;
pub mod autoscalers;
pub mod cluster;
pub mod migrations;
pub mod placement;
pub mod workloads;

/// How the gRPC API says who a caller is and refuses one: UNAUTHENTICATED or
/// PERMISSION_DENIED.
#[derive(Debug, Clone, Copy)]
pub struct GrpcProtocol;

impl crate::auth::Protocol for GrpcProtocol {
    type Body = tonic::body::Body;

    fn need(&self, _method: &axum::http::Method, path: &str) -> crate::auth::Need {
        crate::auth::grpc_need(path)
    }

    fn peer(&self, extensions: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
        extensions
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|i| i.remote_addr())
    }

    fn deny(&self, denied: crate::auth::Denied) -> axum::http::Response<tonic::body::Body> {
        match denied {
            crate::auth::Denied::Unauthenticated(why) => tonic::Status::unauthenticated(why),
            crate::auth::Denied::Forbidden(why) => tonic::Status::permission_denied(why),
        }
        .into_http()
    }
}
