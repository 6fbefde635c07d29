//! The coordinator's configuration as plain values, and the flags that build it
//! (every flag also an `AISTOR_COORDINATOR_*` environment variable).

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub view: aistor_core::ViewConfig,
    /// How often staleness is re-evaluated.
    pub refresh_every: Duration,
    /// Bounds on what one agent report may carry.
    pub limits: aistor_core::validate::Limits,
    pub shutdown_grace: Duration,
    /// Where the standalone store keeps its database.
    pub data_dir: std::path::PathBuf,
    /// Standalone, or the Kubernetes cluster to act on.
    pub cluster: crate::k8s::ClusterConfig,
    /// Where agents connect: the gRPC address (`None`), or a listener of their own.
    pub agents: Option<AgentListener>,
    /// Bearer tokens for the REST and gRPC APIs (`token,user,read|act` lines).
    pub api_tokens: Option<std::path::PathBuf>,
    /// TLS on the REST and gRPC API ports.
    pub api_tls: Option<crate::tls::ApiTls>,
    /// Serve APIs (and agents) on non-loopback addresses with no authentication.
    pub allow_unauthenticated: bool,
    /// On a cluster: the audience agents' tokens must be meant for.
    pub agent_token_audience: String,
    /// On a cluster: the users (`system:serviceaccount:<ns>:<name>`) agents run as.
    pub agent_service_accounts: Vec<String>,
    /// Bounds of the REST listener (connections, timeouts, request sizes).
    pub http_limits: crate::listener::HttpLimits,
    /// Bounds of the gRPC listener (connections, timeouts, HTTP/2 limits).
    pub grpc_limits: crate::listener::GrpcLimits,
    /// Origins whose browser scripts may call the REST API; empty: no CORS at all.
    pub cors_allow_origins: Vec<axum::http::HeaderValue>,
    /// How pod migrations run.
    pub migrations: MigrationConfig,
    /// Where and how pods are placed.
    pub placement: PlacementConfig,
}

/// Placement, from the coordinator's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementConfig {
    /// On a cluster: the AIStorageConfig followed (seed 001: `keti/default`).
    pub config_ref: crate::placement::scheduler::ConfigRef,
    /// On a cluster: bind pending pods of aistor's scheduler names.
    pub scheduler: bool,
    /// The scheduler extender's own listener (kube-scheduler cannot send a bearer
    /// token); `None`: no extender.
    pub extender_addr: Option<SocketAddr>,
    /// APOLLO's scheduling-policy service; `None`: placement without APOLLO.
    pub apollo: Option<crate::placement::apollo::ApolloConfig>,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        Self {
            config_ref: crate::placement::scheduler::ConfigRef {
                namespace: "keti".into(),
                name: "default".into(),
            },
            scheduler: true,
            extender_addr: None,
            apollo: None,
        }
    }
}

/// How migrations run, from the coordinator's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationConfig {
    /// Migrations that act at the same time; more wait (pending) for a slot.
    pub max_concurrent: usize,
    /// Each new migration's settings (measurement runs, settle delay, freeze).
    pub settings: aistor_core::migration::machine::Settings,
    /// Test only: the process exits right after storing a transition into this phase,
    /// before carrying out its effects (the crash tests).
    pub exit_after: Option<aistor_core::migration::machine::Phase>,
    /// Kubernetes: the checkpoint volume a migrated pod restores from.
    pub restore: RestoreConfig,
}

/// Kubernetes: how a pod started from a checkpoint restores it (init containers
/// running `aistor-agent restore`, reading the checkpoint volume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreConfig {
    /// The PersistentVolumeClaim, in the pod's namespace, of the shared checkpoint
    /// volume the agents stage to.
    pub checkpoint_claim: String,
    /// The image of the init containers (the agent's).
    pub image: String,
}

/// The claim `deploy/overlays/checkpoints` makes for the agents.
pub const DEFAULT_CHECKPOINT_CLAIM: &str = "aistor-checkpoints";
/// The agent image `deploy/base` runs.
pub const DEFAULT_RESTORE_IMAGE: &str = "aistor/agent:0.1.0";

impl Default for RestoreConfig {
    fn default() -> Self {
        Self {
            checkpoint_claim: DEFAULT_CHECKPOINT_CLAIM.into(),
            image: DEFAULT_RESTORE_IMAGE.into(),
        }
    }
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 4,
            settings: aistor_core::migration::machine::Settings::default(),
            exit_after: None,
            restore: RestoreConfig::default(),
        }
    }
}

/// The agents' own listener, with mutual TLS when `tls` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentListener {
    pub addr: SocketAddr,
    pub tls: Option<crate::identity::AgentTls>,
}

/// The audience agents' tokens are requested for (the DaemonSet's projected token).
pub const DEFAULT_AGENT_AUDIENCE: &str = "aistor";
/// The agents' ServiceAccount in `deploy/`.
pub const DEFAULT_AGENT_SERVICE_ACCOUNT: &str = "aistor-node/aistor-agent";

/// `namespace/name` → the user the API server reports for that ServiceAccount.
fn service_account_user(namespace_and_name: &str) -> String {
    let (namespace, name) = namespace_and_name
        .split_once('/')
        .unwrap_or(("default", namespace_and_name));
    format!("system:serviceaccount:{namespace}:{name}")
}

fn parse_service_account(s: &str) -> Result<String, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(s.to_owned())
        }
        _ => Err(format!("{s:?}: expected NAMESPACE/NAME")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "aistor-coordinator",
    version,
    about = "aistor coordinator: the live cluster view and its APIs"
)]
pub struct Cli {
    /// Log format: plain for people, json for log pipelines.
    #[arg(long, env = "AISTOR_COORDINATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC and REST APIs until SIGTERM/SIGINT.
    Run(Box<RunArgs>),
    /// Make a CA (once) and certificates for the coordinator's agent listener and
    /// for agents, for one machine or a test cluster.
    Pki(PkiArgs),
}

#[derive(Debug, Args)]
pub struct PkiArgs {
    /// Directory of the CA and the certificates (the CA is reused when present).
    #[arg(long, default_value = ".aistor/pki")]
    pub dir: std::path::PathBuf,
    /// Names (DNS or IP) the coordinator's agent listener is reached by.
    #[arg(long = "host", default_values = ["localhost", "127.0.0.1", "::1"])]
    pub hosts: Vec<String>,
    /// A node to issue an agent certificate for (repeatable).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// gRPC address (agents, aistorctl, health, reflection).
    #[arg(
        long,
        env = "AISTOR_COORDINATOR_GRPC_ADDR",
        default_value = "0.0.0.0:50051"
    )]
    pub grpc_addr: SocketAddr,
    /// REST and /metrics address.
    #[arg(
        long,
        env = "AISTOR_COORDINATOR_HTTP_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub http_addr: SocketAddr,
    /// History kept per node for percentiles and stabilisation.
    #[arg(long, env = "AISTOR_COORDINATOR_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub window: Duration,
    /// History kept per pod: the longest span a decision reads (mean, percentile).
    #[arg(long, env = "AISTOR_COORDINATOR_POD_WINDOW", default_value = "30s", value_parser = parse_duration)]
    pub pod_window: Duration,
    /// Collection intervals without a report before a node is stale.
    #[arg(long, env = "AISTOR_COORDINATOR_STALE_AFTER_INTERVALS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub stale_after_intervals: u32,
    /// The most nodes the coordinator tracks; a report for one more is refused.
    #[arg(long, env = "AISTOR_COORDINATOR_MAX_NODES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_nodes: u64,
    /// A node that sends nothing for this long is forgotten.
    #[arg(long, env = "AISTOR_COORDINATOR_FORGET_NODES_AFTER", default_value = "1h", value_parser = parse_duration)]
    pub forget_nodes_after: Duration,
    /// Migrations that act at the same time; more wait (pending) for a slot.
    #[arg(long, env = "AISTOR_COORDINATOR_MAX_CONCURRENT_MIGRATIONS", default_value_t = 4, value_parser = parse_concurrency)]
    pub max_concurrent_migrations: usize,
    /// Samples of the measurement runs before and after a migration (0: none).
    #[arg(long, env = "AISTOR_COORDINATOR_MIGRATION_MEASURE_SAMPLES", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub migration_measure_samples: u32,
    /// The interval of those samples.
    #[arg(long, env = "AISTOR_COORDINATOR_MIGRATION_MEASURE_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub migration_measure_interval: Duration,
    /// Fraction trimmed at each end of those samples (0 <= trim < 0.5).
    #[arg(long, env = "AISTOR_COORDINATOR_MIGRATION_MEASURE_TRIM", default_value_t = 0.1, value_parser = parse_trim)]
    pub migration_measure_trim: f64,
    /// Wait after a migration's source is gone before the target is measured.
    #[arg(long, env = "AISTOR_COORDINATOR_MIGRATION_SETTLE", default_value = "15s", value_parser = parse_duration)]
    pub migration_settle: Duration,
    /// Do not freeze a make-before-break migration's source while its target starts
    /// (the two then run side by side for a moment).
    #[arg(long, env = "AISTOR_COORDINATOR_MIGRATION_NO_FREEZE")]
    pub migration_no_freeze: bool,
    /// On a cluster: the AIStorageConfig (NAMESPACE/NAME) whose values placement follows.
    #[arg(
        long,
        env = "AISTOR_COORDINATOR_PLACEMENT_CONFIG",
        default_value = "keti/default"
    )]
    pub placement_config: crate::placement::scheduler::ConfigRef,
    /// On a cluster: do not bind pending pods whose schedulerName is
    /// `ai-storage-scheduler` or `aistor` (another scheduler does).
    #[arg(long, env = "AISTOR_COORDINATOR_NO_SCHEDULER")]
    pub no_scheduler: bool,
    /// Serve kube-scheduler's extender (`POST /scheduler/filter`, `/scheduler/prioritize`)
    /// on this address, without authentication (kube-scheduler's extender client cannot
    /// send a token; restrict it with a NetworkPolicy). Off by default.
    #[arg(long, env = "AISTOR_COORDINATOR_EXTENDER_LISTEN")]
    pub extender_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub apollo: crate::placement::apollo::ApolloArgs,
    /// Kubernetes: the PersistentVolumeClaim (in the migrated pod's namespace) of the
    /// shared checkpoint volume a pod started from a checkpoint restores from.
    #[arg(long, env = "AISTOR_COORDINATOR_MIGRATION_CHECKPOINT_CLAIM", default_value = DEFAULT_CHECKPOINT_CLAIM)]
    pub migration_checkpoint_claim: String,
    /// Kubernetes: the image of the restore init containers (`aistor-agent restore`).
    #[arg(long, env = "AISTOR_COORDINATOR_MIGRATION_RESTORE_IMAGE", default_value = DEFAULT_RESTORE_IMAGE)]
    pub migration_restore_image: String,
    /// Test only: exit right after storing a migration's transition into this phase.
    #[arg(long, env = "AISTOR_COORDINATOR_TEST_EXIT_AFTER_MIGRATION_PHASE", hide = true, value_parser = parse_phase)]
    pub test_exit_after_migration_phase: Option<aistor_core::migration::machine::Phase>,
    /// The largest agent report accepted, in bytes (agents keep theirs under it).
    #[arg(long, env = "AISTOR_COORDINATOR_MAX_REPORT_BYTES", default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1024..=(1 << 30)))]
    pub max_report_bytes: u64,
    /// Bearer tokens for the REST and gRPC APIs: one `token,user,read|act` per line.
    /// Without it the APIs must listen on loopback (or see --allow-unauthenticated).
    #[arg(long, env = "AISTOR_COORDINATOR_API_TOKENS")]
    pub api_tokens: Option<std::path::PathBuf>,
    /// TLS on the REST and gRPC API ports: this certificate (chain, PEM)...
    #[arg(long, env = "AISTOR_COORDINATOR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// ...and its private key (PEM).
    #[arg(long, env = "AISTOR_COORDINATOR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Listen on non-loopback addresses with nobody authenticated: anyone who reaches
    /// the ports may read (and agents report unproven). Logged at start and on /health.
    #[arg(long, env = "AISTOR_COORDINATOR_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// On a cluster: the audience agents' projected ServiceAccount tokens are meant for.
    #[arg(long, env = "AISTOR_COORDINATOR_AGENT_TOKEN_AUDIENCE", default_value = DEFAULT_AGENT_AUDIENCE)]
    pub agent_token_audience: String,
    /// On a cluster: the agents' ServiceAccount as NAMESPACE/NAME (repeatable).
    #[arg(long = "agent-service-account", env = "AISTOR_COORDINATOR_AGENT_SERVICE_ACCOUNT", default_value = DEFAULT_AGENT_SERVICE_ACCOUNT, value_delimiter = ',', value_parser = parse_service_account)]
    pub agent_service_accounts: Vec<String>,
    /// A listener of the agents' own (mutual TLS with the `--agent-tls-*` files);
    /// without it agents use the gRPC address, unauthenticated.
    #[arg(long, env = "AISTOR_COORDINATOR_AGENT_ADDR")]
    pub agent_addr: Option<SocketAddr>,
    /// The agent listener's certificate (PEM).
    #[arg(long, env = "AISTOR_COORDINATOR_AGENT_TLS_CERT", requires_all = ["agent_addr", "agent_tls_key", "agent_tls_client_ca"])]
    pub agent_tls_cert: Option<std::path::PathBuf>,
    /// The agent listener's private key (PEM).
    #[arg(
        long,
        env = "AISTOR_COORDINATOR_AGENT_TLS_KEY",
        requires = "agent_tls_cert"
    )]
    pub agent_tls_key: Option<std::path::PathBuf>,
    /// The CA that signs agents' client certificates (PEM); each certificate's
    /// common name is the node its agent may report for.
    #[arg(
        long,
        env = "AISTOR_COORDINATOR_AGENT_TLS_CLIENT_CA",
        requires = "agent_tls_cert"
    )]
    pub agent_tls_client_ca: Option<std::path::PathBuf>,
    /// Where durable state is kept (the SQLite database of a standalone coordinator).
    #[arg(
        long,
        env = "AISTOR_COORDINATOR_DATA_DIR",
        default_value = ".aistor/coordinator"
    )]
    pub data_dir: std::path::PathBuf,
    #[command(flatten)]
    pub kubernetes: crate::k8s::Args,
    /// Longest drain after SIGTERM.
    #[arg(long, env = "AISTOR_COORDINATOR_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    #[command(flatten)]
    pub listeners: ListenerArgs,
}

/// Bounds of the two listeners, and CORS.
#[derive(Debug, Args)]
pub struct ListenerArgs {
    /// Time a client has to send a request head (REST) or the HTTP/2 preface (gRPC)
    /// before its connection is closed.
    #[arg(long, env = "AISTOR_COORDINATOR_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,
    /// REST connections open at once; more are closed on accept (and counted).
    #[arg(long, env = "AISTOR_COORDINATOR_HTTP_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,
    /// Longest REST request, body and handler included (then 408).
    #[arg(long, env = "AISTOR_COORDINATOR_HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub http_request_timeout: Duration,
    /// Largest REST request body in bytes (then 413).
    #[arg(long, env = "AISTOR_COORDINATOR_HTTP_MAX_BODY_BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_body_bytes: u32,
    /// Longest REST path and query in bytes (then 414).
    #[arg(long, env = "AISTOR_COORDINATOR_HTTP_MAX_URI_BYTES", default_value_t = 8 << 10, value_parser = clap::value_parser!(u32).range(256..=65_000))]
    pub http_max_uri_bytes: u32,
    /// Largest header section in bytes, REST (then 431) and gRPC calls.
    #[arg(long, env = "AISTOR_COORDINATOR_MAX_HEADER_BYTES", default_value_t = 32 << 10, value_parser = clap::value_parser!(u32).range(1024..=1 << 20))]
    pub max_header_bytes: u32,
    /// gRPC connections open at once (one per agent); more are closed on accept.
    #[arg(long, env = "AISTOR_COORDINATOR_GRPC_MAX_CONNECTIONS", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(1..))]
    pub grpc_max_connections: u32,
    /// Longest unary gRPC call; streams (agents' Connect, watches) are not cut.
    #[arg(long, env = "AISTOR_COORDINATOR_GRPC_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub grpc_request_timeout: Duration,
    /// HTTP/2 keepalive ping interval on gRPC connections.
    #[arg(long, env = "AISTOR_COORDINATOR_GRPC_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_positive_duration)]
    pub grpc_keepalive_interval: Duration,
    /// How long a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "AISTOR_COORDINATOR_GRPC_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub grpc_keepalive_timeout: Duration,
    /// gRPC calls open at once on one connection (HTTP/2 streams).
    #[arg(long, env = "AISTOR_COORDINATOR_GRPC_MAX_CONCURRENT_STREAMS", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub grpc_max_concurrent_streams: u32,
    /// Origin allowed to call the REST API from a browser (CORS), e.g.
    /// https://dashboard.example.com; repeat or separate with commas. None by default.
    #[arg(long = "cors-allow-origin", env = "AISTOR_COORDINATOR_CORS_ALLOW_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_allow_origins: Vec<axum::http::HeaderValue>,
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be more than zero".into()),
        d => Ok(d),
    }
}

/// `scheme://host[:port]`, as browsers send it in `Origin`; no wildcard, path or
/// trailing slash.
fn parse_origin(s: &str) -> Result<axum::http::HeaderValue, String> {
    let s = s.trim();
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?}: expected an origin such as https://app.example.com"))?;
    if rest.is_empty() || rest.contains(['/', '*', '?', '#', ' ']) {
        return Err(format!(
            "{s:?}: expected scheme://host[:port] with no wildcard, path or trailing slash"
        ));
    }
    axum::http::HeaderValue::from_str(s).map_err(|e| format!("{s:?}: {e}"))
}

impl ListenerArgs {
    fn into_limits(
        self,
    ) -> (
        crate::listener::HttpLimits,
        crate::listener::GrpcLimits,
        Vec<axum::http::HeaderValue>,
    ) {
        let usize_of = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        let http = crate::listener::HttpLimits {
            max_connections: usize_of(self.http_max_connections),
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.http_request_timeout,
            max_body_bytes: usize_of(self.http_max_body_bytes),
            max_uri_bytes: usize_of(self.http_max_uri_bytes),
            max_header_bytes: usize_of(self.max_header_bytes),
        };
        let grpc = crate::listener::GrpcLimits {
            max_connections: usize_of(self.grpc_max_connections),
            header_read_timeout: self.header_read_timeout,
            keepalive_interval: self.grpc_keepalive_interval,
            keepalive_timeout: self.grpc_keepalive_timeout,
            request_timeout: self.grpc_request_timeout,
            max_concurrent_streams: self.grpc_max_concurrent_streams,
            max_header_bytes: self.max_header_bytes,
            ..crate::listener::GrpcLimits::default()
        };
        (http, grpc, self.cors_allow_origins)
    }
}

fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: expected a count from 1 to 1000")),
    }
}

fn parse_trim(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.0..0.5).contains(&t) => Ok(t),
        _ => Err(format!(
            "{s:?}: expected a fraction from 0 up to (not including) 0.5"
        )),
    }
}

fn parse_phase(s: &str) -> Result<aistor_core::migration::machine::Phase, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("{s:?} is not a migration phase"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected a duration such as 10s or 5m)"))
}

impl Config {
    /// The defaults of `aistor-coordinator run` on the given addresses.
    pub fn new(grpc_addr: SocketAddr, http_addr: SocketAddr, data_dir: std::path::PathBuf) -> Self {
        Self {
            grpc_addr,
            http_addr,
            view: aistor_core::ViewConfig::default(),
            refresh_every: Duration::from_millis(250),
            limits: aistor_core::validate::Limits::default(),
            shutdown_grace: Duration::from_secs(10),
            data_dir,
            cluster: crate::k8s::ClusterConfig::Standalone,
            agents: None,
            api_tokens: None,
            api_tls: None,
            allow_unauthenticated: false,
            agent_token_audience: DEFAULT_AGENT_AUDIENCE.to_owned(),
            agent_service_accounts: vec![service_account_user(DEFAULT_AGENT_SERVICE_ACCOUNT)],
            http_limits: crate::listener::HttpLimits::default(),
            grpc_limits: crate::listener::GrpcLimits::default(),
            cors_allow_origins: Vec::new(),
            migrations: MigrationConfig::default(),
            placement: PlacementConfig::default(),
        }
    }
}

impl RunArgs {
    /// The plain configuration; an inconsistent Kubernetes setting is an error
    /// naming it.
    pub fn into_config(self) -> Result<Config, crate::k8s::config::ConfigError> {
        let apollo = self.apollo.config().map_err(|e| {
            crate::k8s::config::ConfigError::Flag(format!("--apollo-endpoint: {e}"))
        })?;
        let (http_limits, grpc_limits, cors_allow_origins) = self.listeners.into_limits();
        Ok(Config {
            grpc_addr: self.grpc_addr,
            http_addr: self.http_addr,
            view: aistor_core::ViewConfig {
                window: self.window,
                pod_window: self.pod_window,
                stale_after_intervals: self.stale_after_intervals,
                max_nodes: usize::try_from(self.max_nodes).unwrap_or(usize::MAX),
                forget_after: self.forget_nodes_after,
            },
            refresh_every: Duration::from_millis(250),
            limits: aistor_core::validate::Limits {
                max_report_bytes: usize::try_from(self.max_report_bytes).unwrap_or(usize::MAX),
                ..aistor_core::validate::Limits::default()
            },
            shutdown_grace: self.shutdown_grace,
            data_dir: self.data_dir,
            cluster: self.kubernetes.into_config()?,
            api_tokens: self.api_tokens,
            api_tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(crate::tls::ApiTls { cert, key }),
                _ => None,
            },
            agent_token_audience: self.agent_token_audience,
            agent_service_accounts: self
                .agent_service_accounts
                .iter()
                .map(|sa| service_account_user(sa))
                .collect(),
            allow_unauthenticated: self.allow_unauthenticated,
            agents: self.agent_addr.map(|addr| AgentListener {
                addr,
                tls: match (
                    self.agent_tls_cert,
                    self.agent_tls_key,
                    self.agent_tls_client_ca,
                ) {
                    (Some(cert), Some(key), Some(client_ca)) => Some(crate::identity::AgentTls {
                        cert,
                        key,
                        client_ca,
                    }),
                    _ => None,
                },
            }),
            http_limits,
            grpc_limits,
            cors_allow_origins,
            migrations: MigrationConfig {
                max_concurrent: self.max_concurrent_migrations,
                settings: aistor_core::migration::machine::Settings {
                    measure_samples: self.migration_measure_samples,
                    measure_interval_nanos: u64::try_from(
                        self.migration_measure_interval.as_nanos(),
                    )
                    .unwrap_or(u64::MAX),
                    measure_trim: self.migration_measure_trim,
                    settle_nanos: u64::try_from(self.migration_settle.as_nanos())
                        .unwrap_or(u64::MAX),
                    freeze: !self.migration_no_freeze,
                },
                exit_after: self.test_exit_after_migration_phase,
                restore: RestoreConfig {
                    checkpoint_claim: self.migration_checkpoint_claim,
                    image: self.migration_restore_image,
                },
            },
            placement: PlacementConfig {
                config_ref: self.placement_config,
                scheduler: !self.no_scheduler,
                extender_addr: self.extender_listen,
                apollo,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("aistor-coordinator").chain(args.iter().copied()))
    }

    fn run_config(args: &[&str]) -> Config {
        let Command::Run(run) = parse(args).unwrap().command else {
            panic!("not run")
        };
        run.into_config().unwrap()
    }

    #[test]
    fn agents_have_a_listener_of_their_own_only_when_asked_with_all_three_tls_files() {
        assert_eq!(run_config(&["run"]).agents, None);
        let tls = [
            "--agent-tls-cert",
            "c.pem",
            "--agent-tls-key",
            "k.pem",
            "--agent-tls-client-ca",
            "ca.pem",
        ];
        let args: Vec<&str> = ["run", "--agent-addr", "127.0.0.1:50052"]
            .into_iter()
            .chain(tls)
            .collect();
        let listener = run_config(&args).agents.unwrap();
        assert_eq!(listener.addr, "127.0.0.1:50052".parse().unwrap());
        assert_eq!(
            listener.tls.unwrap().client_ca,
            std::path::Path::new("ca.pem")
        );
        // A part of the TLS set, or TLS without the listener, is an error naming what is missing.
        for args in [
            &[
                "run",
                "--agent-addr",
                "127.0.0.1:1",
                "--agent-tls-cert",
                "c.pem",
            ][..],
            &[&["run"][..], &tls[..]].concat(),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains("--agent-"), "{args:?}: {err}");
        }
    }

    #[test]
    fn defaults() {
        let c = run_config(&["run"]);
        assert_eq!(c.grpc_addr, "0.0.0.0:50051".parse().unwrap());
        assert_eq!(c.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.view.window, Duration::from_secs(300));
        assert_eq!(c.view.pod_window, Duration::from_secs(30));
        assert_eq!(c.view.stale_after_intervals, 3);
        assert_eq!(c.view.max_nodes, 10_000);
        assert_eq!(c.view.forget_after, Duration::from_secs(3600));
        assert_eq!(c.limits.max_report_bytes, 4 << 20);
        assert_eq!(c.data_dir, std::path::Path::new(".aistor/coordinator"));
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
            assert_eq!(c.cluster, crate::k8s::ClusterConfig::Standalone);
        }
        // The flags' defaults are the limits' defaults (one set of figures).
        assert_eq!(c.http_limits, crate::listener::HttpLimits::default());
        assert_eq!(c.grpc_limits, crate::listener::GrpcLimits::default());
        assert!(c.cors_allow_origins.is_empty(), "no CORS by default");
    }

    #[test]
    fn cors_origins_repeat_or_split_on_commas() {
        let c = run_config(&[
            "run",
            "--cors-allow-origin",
            "https://a.example,http://b.example:8080",
            "--cors-allow-origin=https://c.example",
        ]);
        assert_eq!(
            c.cors_allow_origins,
            [
                "https://a.example",
                "http://b.example:8080",
                "https://c.example"
            ]
        );
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (&["run", "--grpc-addr", "x"][..], "--grpc-addr"),
            (&["run", "--http-addr", "1.2.3.4"][..], "--http-addr"),
            (&["run", "--window", "soon"][..], "--window"),
            (
                &["run", "--stale-after-intervals", "0"][..],
                "--stale-after-intervals",
            ),
            (&["run", "--log-format", "xml"][..], "--log-format"),
            (
                &["run", "--cors-allow-origin", "*"][..],
                "--cors-allow-origin",
            ),
            (
                &["run", "--cors-allow-origin", "https://a.example/"][..],
                "--cors-allow-origin",
            ),
            (
                &["run", "--header-read-timeout", "0s"][..],
                "--header-read-timeout",
            ),
            (
                &["run", "--http-max-body-bytes", "0"][..],
                "--http-max-body-bytes",
            ),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}
