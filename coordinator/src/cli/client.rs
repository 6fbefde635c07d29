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

/// The largest response aistorctl reads. The coordinator sends at most 16 MiB
/// (`grpc::cluster::MAX_RESPONSE_BYTES`); the headroom is for coordinators
/// configured otherwise. tonic's default, 4 MiB, is what broke `aistorctl nodes`
/// at a dozen busy nodes before ListNodes returned summaries.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// The largest request aistorctl sends (a few names and a page token).
pub(crate) const MAX_REQUEST_BYTES: usize = 1 << 20;

/// `host:port` means `http://host:port`: people type addresses without a scheme.
pub(crate) fn normalise(server: &str) -> String {
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Whether this build can speak to the coordinator at `url` (normalised) as its scheme
/// promises. The one place that decides it, so that TLS support replaces only this:
/// `https://` needs TLS, which this build does not configure, and is refused rather
/// than silently spoken in cleartext.
pub(crate) fn server_transport(url: &str) -> Result<(), String> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some(s) if s.eq_ignore_ascii_case("http") => Ok(()),
        Some(s) if s.eq_ignore_ascii_case("https") => Err(
            "https:// needs TLS, which this build of aistorctl does not configure; it refuses \
             rather than speak cleartext to an https:// URL (use http:// where cleartext is \
             acceptable)"
                .to_owned(),
        ),
        _ => Err("expected http://HOST:PORT or HOST:PORT".to_owned()),
    }
}

/// `--server` as given: normalised, and refused at parse time when this build cannot
/// speak its scheme.
pub(crate) fn parse_server(server: &str) -> Result<String, String> {
    let url = normalise(server);
    server_transport(&url)?;
    Ok(url)
}

/// Connects to the coordinator at `url` (already normalised).
pub(crate) async fn connect(url: &str) -> Result<ClusterServiceClient<Channel>, CliError> {
    Ok(ClusterServiceClient::new(channel(url).await?)
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES))
}

/// The HTTP/2 connection to the coordinator at `url`, for any of its services.
pub(crate) async fn channel(url: &str) -> Result<Channel, CliError> {
    server_transport(url).map_err(|cause| CliError::InvalidServer {
        url: url.to_owned(),
        cause,
    })?;
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
    Ok(channel)
}

/// Follows page tokens from `first` until a page comes without one, collecting
/// every page's items. `call` makes one request for a token. A coordinator that
/// hands back a token it was just given would loop forever; that is an error.
async fn all_pages<T, F, Fut>(
    url: &str,
    name: &'static str,
    mut call: F,
) -> Result<Vec<T>, CliError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = call(token.clone())
            .await
            .map_err(|s| CliError::from_status(url, name, &s))?;
        items.extend(page);
        if next.is_empty() {
            return Ok(items);
        }
        if next == token {
            return Err(CliError::Rpc {
                url: url.to_owned(),
                call: name,
                code: tonic::Code::Internal,
                message: "the coordinator returned the page token it was given; stopping \
                          instead of asking for the same page forever"
                    .to_owned(),
            });
        }
        token = next;
    }
}

/// Every node summary, `ListNodes` page by page (`chunk_size` per page; 0: the
/// coordinator's default), each call under [`CALL_TIMEOUT`].
pub(crate) async fn list_nodes(
    client: &mut ClusterServiceClient<Channel>,
    url: &str,
    chunk_size: u32,
) -> Result<Vec<NodeStatus>, CliError> {
    all_pages(url, "ListNodes", |page_token| {
        let mut client = client.clone();
        async move {
            let mut request = tonic::Request::new(ListNodesRequest {
                page_size: chunk_size,
                page_token,
            });
            request.set_timeout(CALL_TIMEOUT);
            let r = client.list_nodes(request).await?.into_inner();
            Ok((r.nodes, r.next_page_token))
        }
    })
    .await
}

/// Every pod `filter` selects (the coordinator applies it), `ListPods` page by
/// page (`chunk_size` per page; 0: the coordinator's default), each call under
/// [`CALL_TIMEOUT`].
pub(crate) async fn list_pods(
    client: &mut ClusterServiceClient<Channel>,
    url: &str,
    filter: &PodFilter,
    chunk_size: u32,
) -> Result<Vec<PodStatus>, CliError> {
    all_pages(url, "ListPods", |page_token| {
        let mut client = client.clone();
        let request = ListPodsRequest {
            // Empty asks for every node / namespace.
            node: filter.node.clone().unwrap_or_default(),
            namespace: filter.namespace.clone().unwrap_or_default(),
            page_size: chunk_size,
            page_token,
            label_selector: filter.selector.clone().unwrap_or_default(),
        };
        async move {
            let mut request = tonic::Request::new(request);
            request.set_timeout(CALL_TIMEOUT);
            let r = client.list_pods(request).await?.into_inner();
            Ok((r.pods, r.next_page_token))
        }
    })
    .await
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
    async fn https_is_refused_until_tls_is_built() {
        for url in ["https://c.example:443", "HTTPS://c.example:443"] {
            let err = parse_server(url).unwrap_err();
            assert!(err.contains("https:// needs TLS"), "{err}");
            // A client that skipped the flag parser is refused the same way, before dialing.
            let text = connect(url).await.unwrap_err().to_string();
            assert!(text.contains("--server"), "{text}");
            assert!(text.contains("does not configure"), "{text}");
        }
        assert_eq!(
            parse_server("10.0.0.1:50051").unwrap(),
            "http://10.0.0.1:50051"
        );
        assert!(parse_server("ftp://c.example:1").is_err());

        use clap::Parser;
        let err =
            crate::cli::Cli::try_parse_from(["aistorctl", "--server", "https://c:443", "nodes"])
                .unwrap_err()
                .to_string();
        assert!(err.contains("--server"), "{err}");
        assert!(err.contains("https:// needs TLS"), "{err}");
        let cli =
            crate::cli::Cli::try_parse_from(["aistorctl", "--server", "c:1", "nodes"]).unwrap();
        assert_eq!(cli.server, "http://c:1");
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
