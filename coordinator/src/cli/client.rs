//! Dialling the coordinator: one [`Server`] (its URL and the bearer token, if
//! any), one [`channel`] that carries the token on every call of every service,
//! and the `ClusterService` lists.

use std::path::Path;
use std::time::Duration;

use aistor_proto::v1::cluster_service_client::ClusterServiceClient;
use aistor_proto::v1::{ListNodesRequest, ListPodsRequest, NodeStatus, PodStatus};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::args::PodFilter;
use super::error::{CliError, chain};

/// How long to wait for the TCP (and HTTP/2) connection before giving up.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadline for unary calls such as `ListNodes` and `ListPods` (never applied to
/// watch streams).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A unary call's request, bounded by [`CALL_TIMEOUT`].
pub(crate) fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(CALL_TIMEOUT);
    r
}

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

/// Whether `url` (normalised) names a transport aistorctl speaks: `http://`, or
/// `https://` (TLS, which also needs `--certificate-authority`; see [`channel`],
/// which never speaks cleartext to an `https://` URL).
pub(crate) fn server_transport(url: &str) -> Result<(), String> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => Ok(()),
        _ => Err("expected http://HOST:PORT, https://HOST:PORT or HOST:PORT".to_owned()),
    }
}

/// `--server` as given: normalised, and refused at parse time when this build cannot
/// speak its scheme.
pub(crate) fn parse_server(server: &str) -> Result<String, String> {
    let url = normalise(server);
    server_transport(&url)?;
    Ok(url)
}

/// A bearer token, as given by `--token` / `AISTOR_TOKEN`. Never shown: its
/// `Debug` is redacted, and errors about it name where it came from, not it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The clap value parser: takes the text as given (checked by
    /// [`Bearer::new`], whose error does not repeat it as clap's would).
    pub(crate) fn parse(text: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self(text.to_owned()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// What every call carries: `authorization: Bearer <token>` (a sensitive header
/// value, so never logged), or nothing.
#[derive(Clone, Default)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "Bearer(<redacted>)",
            None => "Bearer(none)",
        })
    }
}

impl Bearer {
    /// The token of `--token` or the (trimmed) content of `--token-file`; neither:
    /// no header (a coordinator without `--api-tokens` needs none). clap keeps the
    /// two apart; both given here is a caller's mistake and refused.
    pub(crate) fn new(token: Option<&Token>, file: Option<&Path>) -> Result<Self, CliError> {
        let (text, from) = match (token, file) {
            (None, None) => return Ok(Self(None)),
            (Some(_), Some(_)) => {
                return Err(CliError::Token {
                    from: "--token and --token-file".to_owned(),
                    cause: "give one or the other".to_owned(),
                });
            }
            (Some(Token(text)), None) => (text.clone(), "--token / AISTOR_TOKEN".to_owned()),
            (None, Some(path)) => {
                let from = format!(
                    "token file {} (--token-file / AISTOR_TOKEN_FILE)",
                    path.display()
                );
                match std::fs::read_to_string(path) {
                    Ok(text) => (text.trim().to_owned(), from),
                    Err(e) => {
                        return Err(CliError::Token {
                            from,
                            cause: e.to_string(),
                        });
                    }
                }
            }
        };
        if text.is_empty() {
            return Err(CliError::Token {
                from,
                cause: "the token is empty".to_owned(),
            });
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CliError::Token {
                from,
                cause: "a token is one word of visible ASCII characters".to_owned(),
            });
        }
        let mut value =
            MetadataValue::try_from(format!("Bearer {text}")).map_err(|_| CliError::Token {
                from: from.clone(),
                cause: "not a valid header value".to_owned(),
            })?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// What every client of aistorctl is built on: the connection, with the bearer
/// token (if any) on each call.
pub(crate) type Conn = InterceptedService<Channel, Bearer>;

/// The coordinator aistorctl talks to: its URL (normalised) and the credentials
/// every call carries. Derefs to the URL, which is what messages name; `Debug`
/// and `Display` never show the token.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    url: String,
    bearer: Bearer,
    /// The CA (PEM) an `https://` coordinator's certificate must chain to.
    ca: Option<Vec<u8>>,
}

impl Server {
    pub(crate) fn new(url: String, bearer: Bearer) -> Self {
        Self {
            url,
            bearer,
            ca: None,
        }
    }

    /// Trusts `ca` (PEM) for an `https://` coordinator.
    pub(crate) fn with_ca(mut self, ca: Option<Vec<u8>>) -> Self {
        self.ca = ca;
        self
    }
}

impl std::ops::Deref for Server {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// Connects to the coordinator's `ClusterService`.
pub(crate) async fn connect(server: &Server) -> Result<ClusterServiceClient<Conn>, CliError> {
    Ok(ClusterServiceClient::new(channel(server).await?)
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES))
}

/// The HTTP/2 connection to the coordinator, for any of its services, every call
/// carrying the server's bearer token.
pub(crate) async fn channel(server: &Server) -> Result<Conn, CliError> {
    let url = server.url.as_str();
    server_transport(url).map_err(|cause| CliError::InvalidServer {
        url: url.to_owned(),
        cause,
    })?;
    let mut endpoint =
        Endpoint::from_shared(url.to_owned()).map_err(|e| CliError::InvalidServer {
            url: url.to_owned(),
            cause: chain(&e),
        })?;
    let https = endpoint.uri().scheme_str() == Some("https");
    let invalid = |cause: &str| CliError::InvalidServer {
        url: url.to_owned(),
        cause: cause.to_owned(),
    };
    match (https, &server.ca) {
        (false, None) => {}
        (false, Some(_)) => {
            return Err(invalid(
                "--certificate-authority is given but the server is not https://; use https:// to speak TLS",
            ));
        }
        (true, None) => {
            return Err(invalid(
                "https:// needs --certificate-authority (AISTOR_CERTIFICATE_AUTHORITY): the CA that signs the coordinator's certificate; aistorctl never falls back to cleartext",
            ));
        }
        (true, Some(ca)) => {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca));
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| CliError::InvalidServer {
                    url: url.to_owned(),
                    cause: chain(&e),
                })?;
        }
    }
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
    Ok(InterceptedService::new(channel, server.bearer.clone()))
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
    client: &mut ClusterServiceClient<Conn>,
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
    client: &mut ClusterServiceClient<Conn>,
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

    fn open(url: &str) -> Server {
        Server::new(url.to_owned(), Bearer::default())
    }

    #[test]
    fn a_bare_address_gets_http() {
        assert_eq!(normalise("10.0.0.1:50051"), "http://10.0.0.1:50051");
        assert_eq!(normalise("https://c.example:443"), "https://c.example:443");
    }

    #[tokio::test]
    async fn https_needs_a_certificate_authority_and_it_needs_https() {
        for url in ["https://c.example:443", "HTTPS://c.example:443"] {
            assert_eq!(parse_server(url).unwrap(), url);
            // Refused before dialing: never cleartext to an https:// URL.
            let text = connect(&open(url)).await.unwrap_err().to_string();
            assert!(text.contains("--server"), "{text}");
            assert!(text.contains("needs --certificate-authority"), "{text}");
        }
        let with_ca = open("http://c.example:1").with_ca(Some(b"-----".to_vec()));
        let text = connect(&with_ca).await.unwrap_err().to_string();
        assert!(text.contains("not https://"), "{text}");
        assert_eq!(
            parse_server("10.0.0.1:50051").unwrap(),
            "http://10.0.0.1:50051"
        );
        assert!(parse_server("ftp://c.example:1").is_err());

        use clap::Parser;
        let err =
            crate::cli::Cli::try_parse_from(["aistorctl", "--server", "ftp://c:443", "nodes"])
                .unwrap_err()
                .to_string();
        assert!(err.contains("--server"), "{err}");
        let cli =
            crate::cli::Cli::try_parse_from(["aistorctl", "--server", "c:1", "nodes"]).unwrap();
        assert_eq!(cli.server, "http://c:1");
    }

    #[tokio::test]
    async fn a_malformed_address_is_named() {
        let err = connect(&open("http://bad host:1")).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("invalid coordinator address \"http://bad host:1\""),
            "{text}"
        );
    }

    const SECRET: &str = "s3cret-token-0123456789";

    fn header(bearer: &mut Bearer) -> Option<MetadataValue<Ascii>> {
        let request = bearer.call(tonic::Request::new(())).unwrap();
        request.metadata().get("authorization").cloned()
    }

    #[test]
    fn a_token_goes_on_every_call_as_a_sensitive_bearer_header() {
        let token = Token::parse(SECRET).unwrap();
        let mut bearer = Bearer::new(Some(&token), None).unwrap();
        let value = header(&mut bearer).expect("the header is set");
        assert_eq!(value.to_str().unwrap(), format!("Bearer {SECRET}"));
        assert!(value.is_sensitive());
        // Nothing that may be printed shows it.
        for shown in [
            format!("{value:?}"),
            format!("{bearer:?}"),
            format!("{token:?}"),
            format!("{:?}", Server::new("http://h:1".into(), bearer.clone())),
        ] {
            assert!(!shown.contains(SECRET), "{shown}");
        }
        // No token: no header.
        assert!(header(&mut Bearer::new(None, None).unwrap()).is_none());
    }

    #[test]
    fn a_token_file_is_trimmed_and_an_unreadable_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("  {SECRET}\n\n")).unwrap();
        let mut bearer = Bearer::new(None, Some(&path)).unwrap();
        assert_eq!(
            header(&mut bearer).unwrap().to_str().unwrap(),
            format!("Bearer {SECRET}")
        );

        let missing = dir.path().join("missing");
        let text = Bearer::new(None, Some(&missing)).unwrap_err().to_string();
        assert!(
            text.starts_with(&format!("token file {} (--token-file", missing.display())),
            "{text}"
        );

        std::fs::write(&path, "\n").unwrap();
        let text = Bearer::new(None, Some(&path)).unwrap_err().to_string();
        assert!(text.contains("the token is empty"), "{text}");

        // Two lines are not one token; the error does not show the file's content.
        std::fs::write(&path, format!("{SECRET}\nsecond-line\n")).unwrap();
        let text = Bearer::new(None, Some(&path)).unwrap_err().to_string();
        assert!(text.contains("one word"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
    }

    #[test]
    fn a_bad_token_is_refused_without_being_shown() {
        for bad in ["", "two words", "caf\u{e9}-token"] {
            let token = Token::parse(bad).unwrap();
            let err = Bearer::new(Some(&token), None).unwrap_err();
            assert!(err.is_about_the_token());
            let text = err.to_string();
            assert!(text.starts_with("--token / AISTOR_TOKEN: "), "{text}");
            assert!(bad.is_empty() || !text.contains(bad), "{text}");
        }
    }

    #[test]
    fn token_flags_are_global_exclusive_and_their_env_value_is_hidden() {
        use clap::{CommandFactory, Parser};
        let cli =
            crate::cli::Cli::try_parse_from(["aistorctl", "nodes", "--token", SECRET]).unwrap();
        assert_eq!(cli.token, Some(Token::parse(SECRET).unwrap()));
        let cli =
            crate::cli::Cli::try_parse_from(["aistorctl", "--token-file", "/t", "nodes"]).unwrap();
        assert_eq!(cli.token_file.as_deref(), Some(Path::new("/t")));
        let err = crate::cli::Cli::try_parse_from([
            "aistorctl",
            "--token",
            SECRET,
            "--token-file",
            "/t",
            "nodes",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        // `--help` would show `[env: AISTOR_TOKEN=<value>]` without hide_env_values.
        let token = crate::cli::Cli::command()
            .get_arguments()
            .find(|a| a.get_id() == "token")
            .cloned()
            .unwrap();
        assert!(token.is_hide_env_values_set());
    }
}
