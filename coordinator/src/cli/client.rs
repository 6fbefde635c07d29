//! Dialling the coordinator's `ClusterService`.

use std::time::Duration;

use aistor_proto::v1::cluster_service_client::ClusterServiceClient;
use aistor_proto::v1::{ListNodesRequest, ListPodsRequest, NodeStatus, PodStatus};
use tonic::transport::{Channel, Endpoint};

use super::args::PodFilter;
use super::error::{CliError, chain};

/// How long to wait for the TCP (and HTTP/2) connection before giving up.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadline for unary calls such as `ListNodes` and `ListPods` (never applied to
/// watch streams).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// `host:port` means `http://host:port`: people type addresses without a scheme.
pub(crate) fn normalise(server: &str) -> String {
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Connects to the coordinator at `url` (already normalised).
pub(crate) async fn connect(url: &str) -> Result<ClusterServiceClient<Channel>, CliError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| CliError::InvalidServer {
        url: url.to_owned(),
        cause: chain(&e),
    })?;
    let channel = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| CliError::Unreachable {
            url: url.to_owned(),
            // tonic's own text is just "transport error"; the cause says what failed.
            cause: std::error::Error::source(&e).map_or_else(|| chain(&e), chain),
        })?;
    Ok(ClusterServiceClient::new(channel))
}

/// `ListNodes` under [`CALL_TIMEOUT`]: every node the coordinator knows.
pub(crate) async fn list_nodes(
    client: &mut ClusterServiceClient<Channel>,
    url: &str,
) -> Result<Vec<NodeStatus>, CliError> {
    let mut request = tonic::Request::new(ListNodesRequest {});
    request.set_timeout(CALL_TIMEOUT);
    Ok(client
        .list_nodes(request)
        .await
        .map_err(|s| CliError::from_status(url, "ListNodes", &s))?
        .into_inner()
        .nodes)
}

/// `ListPods` under [`CALL_TIMEOUT`]; the coordinator applies `filter`.
pub(crate) async fn list_pods(
    client: &mut ClusterServiceClient<Channel>,
    url: &str,
    filter: &PodFilter,
) -> Result<Vec<PodStatus>, CliError> {
    let mut request = tonic::Request::new(ListPodsRequest {
        // Empty asks for every node / namespace.
        node: filter.node.clone().unwrap_or_default(),
        namespace: filter.namespace.clone().unwrap_or_default(),
    });
    request.set_timeout(CALL_TIMEOUT);
    Ok(client
        .list_pods(request)
        .await
        .map_err(|s| CliError::from_status(url, "ListPods", &s))?
        .into_inner()
        .pods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_address_gets_http() {
        assert_eq!(normalise("10.0.0.1:50051"), "http://10.0.0.1:50051");
        assert_eq!(normalise("https://c.example:443"), "https://c.example:443");
    }

    #[tokio::test]
    async fn a_malformed_address_is_named() {
        let err = connect("http://bad host:1").await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("invalid coordinator address \"http://bad host:1\""),
            "{text}"
        );
    }
}
