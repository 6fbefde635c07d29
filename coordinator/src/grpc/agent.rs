//! `AgentService.Connect`: one bidirectional stream per agent. Each report is applied
//! to the view, then acknowledged; acknowledgements are cumulative, so when the
//! outbound queue is full one can be skipped without loss.
//!
//! The route is served by [`AgentServer`] rather than the generated server so that a
//! report is not decoded in full on arrival: [`ReportCodec`] keeps each message's
//! bytes as received (they are what the view stores) and decodes only its head
//! ([`ReportHead`](crate::wire::ReportHead): identity, seq, node usage, disks,
//! GPUs, measurement results); ingest then decodes the pods lean, once.

use crate::directives::Directives;
use crate::ingest::Ingest;
use crate::process::Drain;
use crate::role::Role;
use crate::wire::ReceivedReport;
use aistor_core::Ingested;
use aistor_proto::v1::{Ack, Directive, directive};
use bytes::Buf;
use prost::Message;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::{Code, Request, Response, Status, Streaming};

/// The gRPC path of the one method served here.
const CONNECT_PATH: &str = "/aistor.v1.AgentService/Connect";

/// The agents' side of the coordinator: one task per connected agent.
pub struct Agents {
    ingest: Ingest,
    directives: Directives,
    role: Role,
    drain: Drain,
    /// Numbers streams in the order they open: the newest one for a node owns it.
    connections: AtomicU64,
    /// Streams that prove no node (certificate or token) are refused.
    identity_required: bool,
    /// Asks the cluster whose a stream's bearer token is.
    tokens: Option<Arc<dyn crate::identity::TokenReviewer>>,
}

impl Agents {
    pub fn new(ingest: Ingest, directives: Directives, role: Role, drain: Drain) -> Self {
        Self {
            ingest,
            directives,
            role,
            drain,
            connections: AtomicU64::new(0),
            identity_required: false,
            tokens: None,
        }
    }

    /// Agents prove their node with a ServiceAccount token (`authorization: Bearer`),
    /// checked by `reviewer`; streams that prove nothing are refused.
    pub fn with_token_reviewer(
        mut self,
        reviewer: Arc<dyn crate::identity::TokenReviewer>,
    ) -> Self {
        self.tokens = Some(reviewer);
        self.identity_required = true;
        self
    }

    /// Refuse streams that present no client certificate (the agents' listener
    /// with mutual TLS).
    pub fn identity_required(mut self) -> Self {
        self.identity_required = true;
        self
    }
}

/// Why a standby refuses agents: they retry, and the Service (which sends traffic only
/// to the ready leader) takes them there.
const NOT_LEADER: &str =
    "this coordinator is not the leader; reconnect (the Service sends agents to the leader)";

type DirectiveStream = Pin<Box<dyn Stream<Item = Result<Directive, Status>> + Send>>;

impl Agents {
    pub async fn connect(
        &self,
        request: Request<Streaming<ReceivedReport>>,
    ) -> Result<Response<DirectiveStream>, Status> {
        if !self.role.is_leader() {
            return Err(Status::unavailable(NOT_LEADER));
        }
        let peer = request.remote_addr();
        let metrics = self.ingest.view().metrics().clone();
        // The node the client certificate names (TLS), or else the token's (TokenReview).
        let proven = match crate::identity::peer_node(&request) {
            Ok(Some(node)) => Ok(Some(node)),
            Ok(None) => match (&self.tokens, bearer(request.metadata())) {
                (Some(reviewer), Some(token)) => reviewer.node_of(token).await.map(Some),
                _ => Ok(None),
            },
            Err(e) => Err(e),
        };
        let proven = match proven {
            Ok(None) if self.identity_required => {
                metrics.record_unauthenticated();
                return Err(Status::unauthenticated(
                    "agents must prove their node: a client certificate signed by the agents' CA, \
                     or (on Kubernetes) a projected ServiceAccount token with audience aistor",
                ));
            }
            Ok(proven) => proven,
            Err(e) => {
                metrics.record_unauthenticated();
                tracing::warn!(?peer, error = %e, "refused an agent stream");
                return Err(Status::unauthenticated(e.to_string()));
            }
        };
        let connection = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let max_report_bytes = self.ingest.limits().max_report_bytes;
        let mut reports = request.into_inner();
        let mut leadership = self.role.leadership();
        let (tx, rx) = mpsc::channel::<Result<Directive, Status>>(64);
        let ingest = self.ingest.clone();
        let directives = self.directives.clone();
        let mut drain = self.drain.clone();
        tokio::spawn(async move {
            metrics.stream_opened();
            let mut node = String::new();
            // The node and agent process the stream's first report named: every
            // later report must name the same (one stream cannot speak for many).
            let mut pinned: Option<(String, String)> = None;
            // What this stream's reports carried: later ones leave out what is unchanged.
            let mut picture = crate::wire::StreamPicture::default();
            loop {
                let message = tokio::select! {
                    m = reports.message() => m,
                    // Ending the stream lets the agent reconnect to a live replica.
                    () = drain.signaled() => break,
                    // Leadership lost: the agent replays what is unacknowledged to the new leader.
                    lost = async { leadership.wait_for(|leader| !*leader).await.map(drop) } => {
                        if lost.is_ok() {
                            tracing::info!(node, ?peer, "leadership lost; ending the agent's stream");
                            let _ = tx.send(Err(Status::unavailable(NOT_LEADER))).await;
                        }
                        break;
                    }
                };
                let report = match message {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(status) if status.code() == Code::OutOfRange => {
                        // tonic's words name the size and the limit.
                        metrics.record_too_large();
                        tracing::warn!(node, ?peer, %status, "refused a report over the size limit");
                        let _ = tx
                            .send(Err(Status::resource_exhausted(format!(
                                "report refused: {} (the coordinator's --max-report-bytes is {max_report_bytes})",
                                status.message()
                            ))))
                            .await;
                        break;
                    }
                    Err(status) if status.code() == Code::InvalidArgument => {
                        // A message that is not a report: tell the agent why.
                        metrics.record_invalid();
                        tracing::warn!(node, ?peer, %status, "refused a report that does not decode");
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                    Err(status) => {
                        tracing::debug!(node, ?peer, %status, "agent stream ended with an error");
                        break;
                    }
                };
                let seq = report.head.seq;
                let agent_instance = report.head.agent_instance.clone();
                let identity = report_identity(&report);
                if let Some(certified) = &proven
                    && *certified != identity.0
                {
                    metrics.record_wrong_identity();
                    tracing::warn!(certified, claimed = ?identity.0, ?peer, "refused a report for another node than the certificate's");
                    let _ = tx
                        .send(Err(Status::permission_denied(format!(
                            "the client certificate is for node {certified:?}; it may not report for node {:?}",
                            identity.0
                        ))))
                        .await;
                    break;
                }
                if let Some(first) = &pinned
                    && *first != identity
                {
                    metrics.record_wrong_stream();
                    tracing::warn!(node, ?peer, other = ?identity.0, "refused a report for another node or agent process");
                    let _ = tx
                        .send(Err(Status::invalid_argument(format!(
                            "this stream reports for node {:?} (agent process {:?}); a report for node {:?} (agent process {:?}) needs a stream of its own",
                            first.0, first.1, identity.0, identity.1
                        ))))
                        .await;
                    break;
                }
                match ingest
                    .apply_on_stream(report, connection, &mut picture)
                    .await
                {
                    Ok(Ingested::Superseded) => {
                        tracing::warn!(node = %identity.0, ?peer, "a newer stream took the node over; ending this one");
                        let _ = tx
                            .send(Err(Status::aborted(format!(
                                "node {:?}: a newer stream for this node took it over; this one ends",
                                identity.0
                            ))))
                            .await;
                        break;
                    }
                    Ok(Ingested::TooManyNodes { max }) => {
                        tracing::warn!(node = %identity.0, ?peer, max, "refused a node over the node limit");
                        let _ = tx
                            .send(Err(Status::resource_exhausted(format!(
                                "node {:?} refused: the coordinator already tracks {max} nodes (--max-nodes); a node silent for --forget-nodes-after makes room",
                                identity.0
                            ))))
                            .await;
                        break;
                    }
                    Ok(_) => {
                        if pinned.is_none() {
                            node = identity.0.clone();
                            pinned = Some(identity);
                            directives.register(&node, tx.clone());
                            tracing::info!(node, ?peer, "agent connected");
                            ingest.connected(&node);
                        }
                        let ack = Directive {
                            kind: Some(directive::Kind::Ack(Ack {
                                agent_instance,
                                seq,
                            })),
                            id: String::new(),
                        };
                        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(ack)) {
                            break;
                        }
                    }
                    Err(crate::ingest::reading::Refused::Store(e)) => {
                        // Not acknowledged: the agent keeps the report and replays it.
                        tracing::error!(node, ?peer, seq, error = %e, "a report could not be stored");
                        let _ = tx
                            .send(Err(Status::unavailable(format!("report not stored: {e}"))))
                            .await;
                        break;
                    }
                    Err(invalid) => {
                        metrics.record_invalid();
                        tracing::warn!(?peer, seq, error = %invalid, "refused an invalid report");
                        let _ = tx
                            .send(Err(Status::invalid_argument(invalid.to_string())))
                            .await;
                        break;
                    }
                }
            }
            metrics.stream_closed();
            if !node.is_empty() {
                directives.unregister(&node, &tx);
                tracing::info!(node, "agent disconnected");
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The bearer token of a request, if it carries one.
fn bearer(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The node a report names and the agent process that sent it.
fn report_identity(report: &ReceivedReport) -> (String, String) {
    let (name, boot_id) = report
        .head
        .node
        .as_ref()
        .map_or((String::new(), String::new()), |n| {
            (n.name.clone(), n.boot_id.clone())
        });
    (name, format!("{boot_id}/{}", report.head.agent_instance))
}

/// Decodes `NodeReport` messages into [`ReceivedReport`]s (bytes kept, head decoded)
/// and encodes `Directive`s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportCodec;

impl Codec for ReportCodec {
    type Encode = Directive;
    type Decode = ReceivedReport;
    type Encoder = DirectiveEncoder;
    type Decoder = ReportDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DirectiveEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ReportDecoder
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DirectiveEncoder;

impl Encoder for DirectiveEncoder {
    type Item = Directive;
    type Error = Status;

    fn encode(&mut self, item: Directive, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding a directive: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        // Directives are acks of a few dozen bytes; the default 8 KiB buffer per
        // stream would be most of what a stream costs.
        BufferSettings::new(256, 32 * 1024)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ReportDecoder;

impl Decoder for ReportDecoder {
    type Item = ReceivedReport;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<ReceivedReport>, Status> {
        // The message's bytes are split off the stream's buffer, not copied: tonic
        // reserved room for exactly this message; while the report is converted the
        // stream's next message goes to a fresh allocation.
        let bytes = src.copy_to_bytes(src.remaining());
        ReceivedReport::decode(bytes)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("message is not a NodeReport: {e}")))
    }
}

/// `aistor.v1.AgentService` with [`ReportCodec`] (the generated server would decode
/// every report in full).
#[derive(Clone)]
pub struct AgentServer {
    agents: Arc<Agents>,
}

impl AgentServer {
    pub fn new(agents: Agents) -> Self {
        Self {
            agents: Arc::new(agents),
        }
    }
}

impl tonic::server::NamedService for AgentServer {
    const NAME: &'static str = aistor_proto::v1::agent_service_server::SERVICE_NAME;
}

struct ConnectMethod(Arc<Agents>);

impl tonic::server::StreamingService<ReceivedReport> for ConnectMethod {
    type Response = Directive;
    type ResponseStream = DirectiveStream;
    type Future = BoxFuture<Response<DirectiveStream>, Status>;

    fn call(&mut self, request: Request<Streaming<ReceivedReport>>) -> Self::Future {
        let agents = Arc::clone(&self.0);
        Box::pin(async move { agents.connect(request).await })
    }
}

impl<B> Service<http::Request<B>> for AgentServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != CONNECT_PATH {
            return Box::pin(async {
                Ok(Status::unimplemented("no such method in aistor.v1.AgentService").into_http())
            });
        }
        let method = ConnectMethod(Arc::clone(&self.agents));
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ReportCodec)
                .max_decoding_message_size(method.0.ingest.limits().max_report_bytes);
            Ok(grpc.streaming(method, req).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aistor_proto::v1 as pb;

    /// Messages framed as on the wire (uncompressed), read back through tonic's
    /// request decoding with [`ReportDecoder`].
    async fn receive(messages: &[&[u8]]) -> Vec<Result<ReceivedReport, Status>> {
        let mut body = Vec::new();
        for m in messages {
            body.push(0u8);
            body.extend_from_slice(&u32::try_from(m.len()).unwrap().to_be_bytes());
            body.extend_from_slice(m);
        }
        let body = http_body_util::Full::new(bytes::Bytes::from(body));
        let mut stream = Streaming::new_request(ReportDecoder, body, None, None);
        let mut out = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(r)) => out.push(Ok(r)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    fn report(seq: u64) -> pb::NodeReport {
        pb::NodeReport {
            agent_instance: "a".into(),
            seq,
            pods: vec![pb::Pod {
                uid: "u1".into(),
                name: "p".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_decoder_keeps_the_bytes_and_decodes_the_head() {
        let (one, two) = (report(7).encode_to_vec(), report(8).encode_to_vec());
        let received = receive(&[&one, &two]).await;
        assert_eq!(received.len(), 2);
        for (r, (encoded, seq)) in received.into_iter().zip([(&one, 7), (&two, 8)]) {
            let r = r.unwrap();
            assert_eq!(r.head.seq, seq);
            assert_eq!(r.head.agent_instance, "a");
            assert_eq!(r.bytes.as_ref(), encoded.as_slice());
        }
    }

    #[tokio::test]
    async fn a_malformed_message_is_invalid_argument() {
        let good = report(1).encode_to_vec();
        let received = receive(&[&good, &[0x0a, 0x7f, 0x01]]).await;
        assert!(received[0].is_ok());
        let status = received[1].as_ref().err().unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("not a NodeReport"), "{status}");
    }

    /// Through a real server and the generated client (what agents use): the report
    /// is acknowledged and the view holds what the client sent.
    struct Served {
        addr: std::net::SocketAddr,
        view: crate::view::LiveView,
        _dir: tempfile::TempDir,
    }

    /// The agents' service on loopback, with a real view, directives and store.
    async fn serve(role: Role) -> Served {
        serve_with(role, Default::default(), Default::default()).await
    }

    async fn serve_with(
        role: Role,
        config: aistor_core::ViewConfig,
        limits: aistor_core::validate::Limits,
    ) -> Served {
        let clock = std::sync::Arc::new(aistor_core::ManualClock::new(aistor_core::Now {
            monotonic: std::time::Duration::from_secs(1),
            wall_unix_nanos: 2_000_000_000,
        }));
        let view = crate::view::LiveView::new(config, clock, Default::default());
        let streams = Directives::default();
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_standalone(dir.path()).unwrap();
        let runs = crate::store::measurements::Measurements::open(store, 10)
            .await
            .unwrap();
        let measurements = crate::measurements::Measurements::new(
            view.clone(),
            streams.clone(),
            std::sync::Arc::new(runs),
        );
        let ingest = Ingest::new(view.clone(), measurements, streams.clone(), limits);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AgentServer::new(Agents::new(
                    ingest,
                    streams,
                    role,
                    Drain::never(),
                )))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Served {
            addr,
            view,
            _dir: dir,
        }
    }

    async fn client(
        addr: std::net::SocketAddr,
    ) -> pb::agent_service_client::AgentServiceClient<tonic::transport::Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        pb::agent_service_client::AgentServiceClient::new(channel)
    }

    /// A standby refuses agents; a leader that loses the Lease ends their streams,
    /// so they reconnect (through the Service) to the new leader and replay.
    #[tokio::test]
    async fn only_the_leader_takes_agents_and_a_lost_lease_ends_their_streams() {
        let (leader, following) = tokio::sync::watch::channel(false);
        let role = Role::following(crate::k8s::ClusterMode::Standalone, following);
        let served = serve(role).await;
        let mut agent = client(served.addr).await;
        let mut sent = report(1);
        sent.node = Some(pb::NodeIdentity {
            name: "n".into(),
            ..Default::default()
        });
        let refused = agent
            .connect(tokio_stream::iter(vec![sent.clone()]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable);
        assert_eq!(refused.message(), NOT_LEADER);

        leader.send_replace(true);
        let (tx, rx) = mpsc::channel(4);
        tx.send(sent).await.unwrap();
        let mut directives = agent
            .connect(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        assert!(matches!(
            directives.message().await.unwrap().unwrap().kind,
            Some(directive::Kind::Ack(_))
        ));
        leader.send_replace(false);
        let ended = directives.message().await.unwrap_err();
        assert_eq!(ended.code(), Code::Unavailable);
        assert_eq!(ended.message(), NOT_LEADER);
        drop(tx);
    }

    #[tokio::test]
    async fn a_report_from_the_generated_client_is_acknowledged_and_applied() {
        let Served {
            addr, view, _dir, ..
        } = serve(Role::standalone()).await;
        let mut client = client(addr).await;
        let mut sent = report(3);
        sent.node = Some(pb::NodeIdentity {
            name: "n".into(),
            ..Default::default()
        });
        let mut directives = client
            .connect(tokio_stream::iter(vec![sent.clone()]))
            .await
            .unwrap()
            .into_inner();
        let ack = directives.message().await.unwrap().unwrap();
        assert_eq!(
            ack.kind,
            Some(directive::Kind::Ack(Ack {
                agent_instance: "a".into(),
                seq: 3
            }))
        );
        let mut shown = view.node_status("n").unwrap().latest.unwrap();
        assert_eq!(shown.pods.len(), 1);
        assert_eq!((&*shown.pods[0].uid, &*shown.pods[0].name), ("u1", "p"));
        shown.pods.clear();
        sent.pods.clear();
        assert_eq!(shown, sent);
    }

    fn from(node: &str, instance: &str, seq: u64, wall_secs: u64) -> pb::NodeReport {
        pb::NodeReport {
            node: Some(pb::NodeIdentity {
                name: node.into(),
                ..Default::default()
            }),
            agent_instance: instance.into(),
            wall_time_unix_nanos: wall_secs * 1_000_000_000,
            ..report(seq)
        }
    }

    /// An agent's stream: reports go in through `tx`, directives come out.
    async fn open(
        addr: std::net::SocketAddr,
        first: pb::NodeReport,
    ) -> (mpsc::Sender<pb::NodeReport>, Streaming<Directive>) {
        let (tx, rx) = mpsc::channel(4);
        tx.send(first).await.unwrap();
        let directives = client(addr)
            .await
            .connect(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        (tx, directives)
    }

    async fn acked(directives: &mut Streaming<Directive>) -> u64 {
        match directives.message().await.unwrap().unwrap().kind {
            Some(directive::Kind::Ack(ack)) => ack.seq,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    /// The reports counter of one outcome, as /metrics shows it.
    fn counted(view: &crate::view::LiveView, outcome: &str) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        view.metrics().register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let series = format!("aistor_coordinator_reports_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or("absent")
            .to_owned()
    }

    /// A process whose clock ran ahead is replaced by a new one with the right
    /// clock: the new stream owns the node from its first report, and the old
    /// stream is ended instead of being acknowledged.
    #[tokio::test]
    async fn a_newer_stream_takes_the_node_over_whatever_the_clocks_say() {
        let Served { addr, view, _dir } = serve(Role::standalone()).await;
        let (old_tx, mut old) = open(addr, from("n", "old", 1, 500)).await;
        assert_eq!(acked(&mut old).await, 1);
        let (_new_tx, mut new) = open(addr, from("n", "new", 1, 2)).await;
        assert_eq!(acked(&mut new).await, 1);
        let shown = view.node_status("n").unwrap().latest.unwrap();
        assert_eq!(
            (shown.agent_instance.as_str(), shown.wall_time_unix_nanos),
            ("new", 2_000_000_000)
        );

        old_tx.send(from("n", "old", 2, 501)).await.unwrap();
        let ended = old.message().await.unwrap_err();
        assert_eq!(ended.code(), Code::Aborted, "{ended}");
        assert!(ended.message().contains("newer stream"), "{ended}");
        let shown = view.node_status("n").unwrap().latest.unwrap();
        assert_eq!(shown.agent_instance, "new");
        assert_eq!(counted(&view, "superseded"), "1");
    }

    #[tokio::test]
    async fn a_stream_speaks_for_one_node_and_one_agent_process() {
        let Served { addr, view, _dir } = serve(Role::standalone()).await;
        for other in [from("m", "a", 2, 1), from("n", "b", 2, 1)] {
            let (tx, mut directives) = open(addr, from("n", "a", 1, 1)).await;
            acked(&mut directives).await;
            tx.send(other).await.unwrap();
            let refused = directives.message().await.unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument);
            assert!(
                refused.message().contains("needs a stream of its own"),
                "{refused}"
            );
        }
        assert!(view.node_status("m").is_none());
        assert_eq!(counted(&view, "wrong_stream"), "2");
    }

    #[tokio::test]
    async fn an_oversized_report_is_refused_with_its_size_and_the_limit() {
        let limits = aistor_core::validate::Limits {
            max_report_bytes: 16 << 10,
            ..Default::default()
        };
        let Served { addr, view, _dir } =
            serve_with(Role::standalone(), Default::default(), limits).await;
        let mut big = from("n", "a", 1, 1);
        big.pods = (0..400)
            .map(|i| pb::Pod {
                uid: format!("uid-{i:04}"),
                name: format!("a-pod-with-a-long-enough-name-{i:04}"),
                ..Default::default()
            })
            .collect();
        let size = big.encoded_len();
        assert!(size > 16 << 10);
        let (_tx, mut directives) = open(addr, big).await;
        let refused = directives.message().await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
        for part in [
            size.to_string(),
            "16384".to_owned(),
            "--max-report-bytes".to_owned(),
        ] {
            assert!(refused.message().contains(&part), "{part} not in {refused}");
        }
        assert!(view.node_status("n").is_none());
        assert_eq!(counted(&view, "too_large"), "1");
    }

    #[tokio::test]
    async fn a_node_over_the_limit_is_refused_and_known_ones_go_on() {
        let config = aistor_core::ViewConfig {
            max_nodes: 1,
            ..Default::default()
        };
        let Served { addr, view, _dir } =
            serve_with(Role::standalone(), config, Default::default()).await;
        let (tx, mut known) = open(addr, from("n", "a", 1, 1)).await;
        assert_eq!(acked(&mut known).await, 1);
        let (_tx, mut other) = open(addr, from("m", "b", 1, 1)).await;
        let refused = other.message().await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
        assert!(refused.message().contains("--max-nodes"), "{refused}");
        tx.send(from("n", "a", 2, 2)).await.unwrap();
        assert_eq!(acked(&mut known).await, 2);
        assert_eq!(counted(&view, "too_many_nodes"), "1");
        assert!(view.node_status("m").is_none());
    }
}
