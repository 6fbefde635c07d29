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
use aistor_proto::v1::{Ack, Directive, directive};
use bytes::Buf;
use prost::Message;
use std::pin::Pin;
use std::sync::Arc;
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
}

impl Agents {
    pub fn new(ingest: Ingest, directives: Directives, role: Role, drain: Drain) -> Self {
        Self {
            ingest,
            directives,
            role,
            drain,
        }
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
        let mut reports = request.into_inner();
        let mut leadership = self.role.leadership();
        let (tx, rx) = mpsc::channel::<Result<Directive, Status>>(64);
        let ingest = self.ingest.clone();
        let directives = self.directives.clone();
        let metrics = ingest.view().metrics().clone();
        let mut drain = self.drain.clone();
        tokio::spawn(async move {
            metrics.stream_opened();
            let mut node = String::new();
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
                let name = if node.is_empty() {
                    report.head.node.as_ref().map(|n| n.name.clone())
                } else {
                    None
                };
                match ingest.apply(report).await {
                    Ok(_) => {
                        if let Some(name) = name {
                            node = name;
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
        // reserved room for exactly this message, so the view keeps that allocation
        // and the stream starts a fresh one for the next message.
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
            let mut grpc = tonic::server::Grpc::new(ReportCodec);
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
        let clock = std::sync::Arc::new(aistor_core::ManualClock::new(aistor_core::Now {
            monotonic: std::time::Duration::from_secs(1),
            wall_unix_nanos: 2_000_000_000,
        }));
        let view = crate::view::LiveView::new(Default::default(), clock, Default::default());
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
        let ingest = Ingest::new(view.clone(), measurements, Default::default());
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
}
