//! Who may call the REST and public gRPC APIs, and what they may do. Reading and
//! acting are separate permissions. Callers prove themselves with a bearer token
//! from a static tokens file (`--api-tokens`); without one configured, only this
//! machine can reach the APIs (loopback listeners), or the operator said
//! `--allow-unauthenticated`. Unauthenticated callers act from loopback only.
//!
//! Health, liveness, readiness and metrics stay open; so do gRPC health and
//! reflection (they describe, they do not disclose).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Health, metrics, gRPC health and reflection.
    Nothing,
    Read,
    Act,
}

/// Who called, as far as it was proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub may_act: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401 / UNAUTHENTICATED.
    Unauthenticated(String),
    /// 403 / PERMISSION_DENIED.
    Forbidden(String),
}

impl Denied {
    pub fn message(&self) -> &str {
        match self {
            Self::Unauthenticated(m) | Self::Forbidden(m) => m,
        }
    }
}

/// How the APIs are protected.
#[derive(Debug, Clone)]
pub enum ApiAuth {
    /// No tokens: every caller is unauthenticated (acting from loopback only).
    Open,
    Tokens(StaticTokens),
    /// On a cluster: the static tokens if any, else the cluster's word on the token.
    Cluster {
        tokens: Option<StaticTokens>,
        reviewer: std::sync::Arc<dyn ClusterReviewer>,
    },
}

/// Tokens by their SHA-256 (the file's secrets are not kept in memory as such, and a
/// lookup's timing says nothing about a guess's prefix).
#[derive(Debug, Clone, Default)]
pub struct StaticTokens {
    by_digest: HashMap<[u8; 32], Caller>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {why} (expected `token,user,read|act`)")]
    Line {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{path}: no tokens")]
    Empty { path: PathBuf },
}

impl StaticTokens {
    /// Reads a tokens file: one `token,user,role` per line (role `read` or `act`;
    /// `act` includes reading); blank lines and `#` comments are skipped.
    pub fn read(path: &Path) -> Result<Self, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, why)| match line {
            0 => TokensError::Empty {
                path: path.to_owned(),
            },
            line => TokensError::Line {
                path: path.to_owned(),
                line,
                why,
            },
        })
    }

    /// As [`read`](Self::read), from the text; an error is (line, why), line 0 for
    /// a file without tokens.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut tokens = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [token, user, role] = fields.as_slice() else {
                return Err((i + 1, format!("{} fields", fields.len())));
            };
            if token.len() < 16 {
                return Err((i + 1, "a token shorter than 16 characters".into()));
            }
            if user.is_empty() {
                return Err((i + 1, "an empty user".into()));
            }
            let may_act = match *role {
                "read" => false,
                "act" => true,
                other => return Err((i + 1, format!("role {other:?}"))),
            };
            let caller = Caller {
                user: (*user).to_owned(),
                may_act,
            };
            if tokens.by_digest.insert(digest(token), caller).is_some() {
                return Err((i + 1, "a token that is already listed".into()));
            }
        }
        if tokens.by_digest.is_empty() {
            return Err((0, String::new()));
        }
        Ok(tokens)
    }

    fn caller(&self, token: &str) -> Option<&Caller> {
        self.by_digest.get(&digest(token))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl ApiAuth {
    /// Decides one request: `authorization` is its `Authorization` header, `peer`
    /// the address it came from. A token only the cluster knows is left for
    /// [`Decision::Review`].
    pub fn decide(
        &self,
        need: Need,
        authorization: Option<&str>,
        peer: Option<SocketAddr>,
    ) -> Decision {
        if need == Need::Nothing {
            return Decision::Done(Ok(None));
        }
        let (tokens, reviewer) = match self {
            Self::Open => return Decision::Done(Self::finish(None, need, peer)),
            Self::Tokens(tokens) => (Some(tokens), None),
            Self::Cluster { tokens, reviewer } => (tokens.as_ref(), Some(reviewer)),
        };
        let local = peer.is_some_and(|p| p.ip().is_loopback());
        let Some(header) = authorization else {
            // On a cluster, loopback is `kubectl port-forward` (which the cluster's RBAC
            // already allowed) or the coordinator's own pod: trusted as on one machine.
            if local && reviewer.is_some() {
                return Decision::Done(Self::finish(None, need, peer));
            }
            return Decision::Done(Err(Denied::Unauthenticated(
                "this API needs a bearer token (Authorization: Bearer <token>)".into(),
            )));
        };
        let Some(token) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
        else {
            return Decision::Done(Err(Denied::Unauthenticated(
                "the Authorization header is not `Bearer <token>`".into(),
            )));
        };
        if let Some(caller) = tokens.and_then(|t| t.caller(token)) {
            return Decision::Done(Self::finish(Some(caller.clone()), need, peer));
        }
        match reviewer {
            Some(reviewer) => Decision::Review {
                token: token.to_owned(),
                reviewer: reviewer.clone(),
            },
            None => Decision::Done(Err(Denied::Unauthenticated(
                "the bearer token is not valid".into(),
            ))),
        }
    }

    /// [`decide`](Self::decide) where no review can follow (the unit tests): a
    /// token only the cluster knows is refused.
    #[cfg(test)]
    fn authorize(
        &self,
        need: Need,
        authorization: Option<&str>,
        peer: Option<SocketAddr>,
    ) -> Result<Option<Caller>, Denied> {
        match self.decide(need, authorization, peer) {
            Decision::Done(decided) => decided,
            Decision::Review { .. } => Err(Denied::Unauthenticated(
                "the bearer token needs the cluster's review".into(),
            )),
        }
    }

    /// Whether `caller` (None: unauthenticated) may do what is needed.
    pub fn finish(
        caller: Option<Caller>,
        need: Need,
        peer: Option<SocketAddr>,
    ) -> Result<Option<Caller>, Denied> {
        let local = peer.is_some_and(|p| p.ip().is_loopback());
        match (&caller, need) {
            (Some(c), Need::Act) if !c.may_act => Err(Denied::Forbidden(format!(
                "user {:?} may read but not act",
                c.user
            ))),
            (None, Need::Act) if !local => Err(Denied::Forbidden(match peer {
                Some(p) => format!(
                    "unauthenticated callers act only from this machine (loopback); {p} is not local"
                ),
                None => "unauthenticated callers act only from this machine (loopback)".into(),
            })),
            _ => Ok(caller),
        }
    }
}

/// What [`ApiAuth::decide`] could decide at once, or the review it needs.
pub enum Decision {
    Done(Result<Option<Caller>, Denied>),
    /// A bearer token the static file does not list: the cluster decides.
    Review {
        token: String,
        reviewer: std::sync::Arc<dyn ClusterReviewer>,
    },
}

/// Asks the cluster who a bearer token is and whether it may do what is needed (the
/// Kubernetes shell: TokenReview, then SubjectAccessReview on `aistor.io`'s `api`
/// resource with the verb `read` or `act`).
pub trait ClusterReviewer: Send + Sync + std::fmt::Debug {
    fn review<'a>(
        &'a self,
        token: &'a str,
        need: Need,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Caller, Denied>> + Send + 'a>>;
}

/// What a REST request needs, by method and path.
pub fn rest_need(method: &axum::http::Method, path: &str) -> Need {
    if matches!(
        path,
        "/health" | "/ready" | "/metrics" | "/api/v1/openapi.json"
    ) {
        Need::Nothing
    } else if matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) || (*method == axum::http::Method::POST && path == "/api/v1/placements/explain")
    {
        Need::Read
    } else {
        Need::Act
    }
}

/// What a gRPC call needs, by its path `/package.Service/Method`: reads are the
/// `Get`, `List`, `Watch` and `Explain` methods (a placement explained binds
/// nothing); every other method acts.
pub fn grpc_need(path: &str) -> Need {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.") {
        Need::Nothing
    } else if service == "aistor.v1.AgentService" {
        // Agents prove their node by their own rules (`crate::identity`).
        Need::Nothing
    } else if ["Get", "List", "Watch", "Explain"]
        .iter()
        .any(|read| method.starts_with(read))
    {
        Need::Read
    } else {
        Need::Act
    }
}

/// A listener that is not on loopback with nobody authenticated: refused unless the
/// operator allowed it.
pub fn check_exposure(
    what: &'static str,
    addr: SocketAddr,
    auth: &ApiAuth,
    allow_unauthenticated: bool,
) -> Result<(), String> {
    if addr.ip().is_loopback() || !matches!(auth, ApiAuth::Open) || allow_unauthenticated {
        return Ok(());
    }
    Err(format!(
        "the {what} API would listen on {addr} with no authentication: give --api-tokens, \
         listen on loopback, or pass --allow-unauthenticated"
    ))
}

/// How one protocol classifies a request, finds its peer and says no.
pub trait Protocol: Clone + Send + Sync + 'static {
    type Body: Send + 'static;
    fn need(&self, method: &axum::http::Method, path: &str) -> Need;
    fn peer(&self, extensions: &axum::http::Extensions) -> Option<SocketAddr>;
    fn deny(&self, denied: Denied) -> axum::http::Response<Self::Body>;
}

/// A tower layer that authorises every request before the API sees it; the
/// authenticated [`Caller`] goes into the request's extensions.
#[derive(Clone)]
pub struct AuthLayer<P> {
    auth: std::sync::Arc<ApiAuth>,
    protocol: P,
}

impl<P> AuthLayer<P> {
    pub fn new(auth: std::sync::Arc<ApiAuth>, protocol: P) -> Self {
        Self { auth, protocol }
    }
}

impl<S, P: Clone> tower::Layer<S> for AuthLayer<P> {
    type Service = Authorized<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorized {
            inner,
            auth: self.auth.clone(),
            protocol: self.protocol.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authorized<S, P> {
    inner: S,
    auth: std::sync::Arc<ApiAuth>,
    protocol: P,
}

impl<S, P, B> tower::Service<axum::http::Request<B>> for Authorized<S, P>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<P::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    P: Protocol,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        let need = self.protocol.need(request.method(), request.uri().path());
        let header = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let peer = self.protocol.peer(request.extensions());
        // The clone is the one polled ready; the ready one answers this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let protocol = self.protocol.clone();
        let refuse = move |denied: Denied, path: &str| {
            tracing::info!(
                ?peer,
                path,
                reason = denied.message(),
                "API request refused"
            );
            protocol.deny(denied)
        };
        match self.auth.decide(need, header, peer) {
            Decision::Done(Ok(caller)) => {
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                Box::pin(inner.call(request))
            }
            Decision::Done(Err(denied)) => {
                let response = refuse(denied, request.uri().path());
                Box::pin(async move { Ok(response) })
            }
            Decision::Review { token, reviewer } => Box::pin(async move {
                let reviewed = reviewer.review(&token, need).await;
                match reviewed.and_then(|c| ApiAuth::finish(Some(c), need, peer)) {
                    Ok(caller) => {
                        if let Some(caller) = caller {
                            request.extensions_mut().insert(caller);
                        }
                        inner.call(request).await
                    }
                    Err(denied) => Ok(refuse(denied, request.uri().path())),
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# who may call\n\
        reader-token-0123456789,ana,read\n\n\
        actor-token-0123456789ab,ops,act\n";

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_tokens_file_gives_each_token_its_user_and_role() {
        let auth = ApiAuth::Tokens(StaticTokens::parse(FILE).unwrap());
        let remote = peer("10.0.0.9:4000");
        let reader = Some("Bearer reader-token-0123456789");
        let actor = Some("Bearer actor-token-0123456789ab");
        assert_eq!(
            auth.authorize(Need::Read, reader, remote)
                .unwrap()
                .unwrap()
                .user,
            "ana"
        );
        assert!(matches!(
            auth.authorize(Need::Act, reader, remote),
            Err(Denied::Forbidden(m)) if m.contains("\"ana\" may read but not act")
        ));
        assert!(
            auth.authorize(Need::Act, actor, remote)
                .unwrap()
                .unwrap()
                .may_act
        );
        for (header, why) in [
            (None, "needs a bearer token"),
            (Some("Bearer wrong-token-0123456789"), "not valid"),
            (Some("Basic YTpi"), "not `Bearer <token>`"),
        ] {
            // Loopback is not trusted once tokens are configured.
            match auth.authorize(Need::Read, header, peer("127.0.0.1:1")) {
                Err(Denied::Unauthenticated(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{header:?}: {other:?}"),
            }
        }
        assert_eq!(auth.authorize(Need::Nothing, None, remote), Ok(None));
    }

    #[test]
    fn without_tokens_anyone_reads_and_only_loopback_acts() {
        let auth = ApiAuth::Open;
        assert_eq!(
            auth.authorize(Need::Read, None, peer("10.0.0.9:1")),
            Ok(None)
        );
        assert_eq!(
            auth.authorize(Need::Act, None, peer("127.0.0.1:1")),
            Ok(None)
        );
        assert_eq!(auth.authorize(Need::Act, None, peer("[::1]:1")), Ok(None));
        assert!(matches!(
            auth.authorize(Need::Act, None, peer("10.0.0.9:1")),
            Err(Denied::Forbidden(m)) if m.contains("10.0.0.9:1 is not local")
        ));
        assert!(auth.authorize(Need::Act, None, None).is_err());
    }

    #[derive(Debug)]
    struct NeverAsked;

    impl ClusterReviewer for NeverAsked {
        fn review<'a>(
            &'a self,
            _: &'a str,
            _: Need,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Caller, Denied>> + Send + 'a>>
        {
            unreachable!("decide never reviews by itself")
        }
    }

    #[test]
    fn on_a_cluster_listed_tokens_answer_at_once_and_others_go_to_review() {
        let auth = ApiAuth::Cluster {
            tokens: Some(StaticTokens::parse(FILE).unwrap()),
            reviewer: std::sync::Arc::new(NeverAsked),
        };
        let remote = peer("10.0.0.9:4000");
        match auth.decide(Need::Read, Some("Bearer reader-token-0123456789"), remote) {
            Decision::Done(Ok(Some(c))) => assert_eq!(c.user, "ana"),
            _ => panic!("a listed token is decided at once"),
        }
        match auth.decide(Need::Act, Some("Bearer a-cluster-token"), remote) {
            Decision::Review { token, .. } => assert_eq!(token, "a-cluster-token"),
            _ => panic!("an unlisted token goes to the cluster"),
        }
        assert!(matches!(
            auth.decide(Need::Read, None, remote),
            Decision::Done(Err(Denied::Unauthenticated(_)))
        ));
        // Loopback (kubectl port-forward) without a token is trusted, acting too.
        assert!(matches!(
            auth.decide(Need::Act, None, peer("127.0.0.1:9")),
            Decision::Done(Ok(None))
        ));
        assert!(matches!(
            auth.decide(Need::Nothing, None, remote),
            Decision::Done(Ok(None))
        ));
    }

    #[test]
    fn bad_tokens_files_name_the_line() {
        for (text, line, why) in [
            ("short,ana,read\n", 1, "shorter than 16"),
            ("# c\nreader-token-0123456789,ana\n", 2, "2 fields"),
            ("reader-token-0123456789,ana,admin\n", 1, "role \"admin\""),
            ("reader-token-0123456789,,read\n", 1, "empty user"),
            (
                "reader-token-0123456789,a,read\nreader-token-0123456789,b,act\n",
                2,
                "already listed",
            ),
            ("# nothing\n", 0, ""),
        ] {
            let (at, message) = StaticTokens::parse(text).unwrap_err();
            assert_eq!(at, line, "{text}");
            assert!(message.contains(why), "{message}");
        }
    }

    #[test]
    fn requests_are_classified_by_what_they_do() {
        use axum::http::Method;
        assert_eq!(rest_need(&Method::GET, "/metrics"), Need::Nothing);
        assert_eq!(rest_need(&Method::GET, "/health"), Need::Nothing);
        assert_eq!(rest_need(&Method::GET, "/api/v1/nodes"), Need::Read);
        assert_eq!(rest_need(&Method::POST, "/api/v1/measurements"), Need::Act);
        assert_eq!(
            rest_need(&Method::DELETE, "/api/v1/autoscalers/x"),
            Need::Act
        );
        assert_eq!(grpc_need("/grpc.health.v1.Health/Check"), Need::Nothing);
        assert_eq!(
            grpc_need("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Need::Nothing
        );
        assert_eq!(grpc_need("/aistor.v1.AgentService/Connect"), Need::Nothing);
        assert_eq!(grpc_need("/aistor.v1.ClusterService/ListNodes"), Need::Read);
        assert_eq!(
            grpc_need("/aistor.v1.ClusterService/WatchNodes"),
            Need::Read
        );
        assert_eq!(grpc_need("/aistor.v1.ClusterService/GetNode"), Need::Read);
        assert_eq!(
            grpc_need("/aistor.v1.ClusterService/StartMeasurement"),
            Need::Act
        );
        assert_eq!(grpc_need("/aistor.v1.WorkloadService/Apply"), Need::Act);
        assert_eq!(grpc_need("garbage"), Need::Act);
    }

    #[test]
    fn an_exposed_listener_needs_tokens_or_the_operators_word() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let tokens = ApiAuth::Tokens(StaticTokens::parse(FILE).unwrap());
        assert!(check_exposure("REST", local, &ApiAuth::Open, false).is_ok());
        assert!(check_exposure("REST", any, &tokens, false).is_ok());
        assert!(check_exposure("REST", any, &ApiAuth::Open, true).is_ok());
        let err = check_exposure("REST", any, &ApiAuth::Open, false).unwrap_err();
        assert!(err.contains("--allow-unauthenticated"), "{err}");
    }
}
