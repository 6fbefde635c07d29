//! `AgentService.Connect`: one bidirectional stream per agent. Each report is applied
//! to the view, then acknowledged; acknowledgements are cumulative, so when the
//! outbound queue is full one can be skipped without loss.

use crate::process::Drain;
use crate::state::Shared;
use aistor_proto::v1::{Ack, Directive, NodeReport, agent_service_server::AgentService, directive};
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub struct Ingest {
    shared: Shared,
    drain: Drain,
}

impl Ingest {
    pub fn new(shared: Shared, drain: Drain) -> Self {
        Self { shared, drain }
    }
}

type DirectiveStream = Pin<Box<dyn Stream<Item = Result<Directive, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Ingest {
    type ConnectStream = DirectiveStream;

    async fn connect(
        &self,
        request: Request<Streaming<NodeReport>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let peer = request.remote_addr();
        let mut reports = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<Directive, Status>>(64);
        let shared = self.shared.clone();
        let mut drain = self.drain.clone();
        tokio::spawn(async move {
            shared.metrics().stream_opened();
            let mut node = String::new();
            loop {
                let message = tokio::select! {
                    m = reports.message() => m,
                    // Ending the stream lets the agent reconnect to a live replica.
                    () = drain.signaled() => break,
                };
                let report = match message {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(node, ?peer, %status, "agent stream ended with an error");
                        break;
                    }
                };
                match shared.ingest(&report) {
                    Ok(_) => {
                        if node.is_empty() {
                            node = report
                                .node
                                .as_ref()
                                .map(|n| n.name.clone())
                                .unwrap_or_default();
                            shared.register_stream(&node, tx.clone());
                            tracing::info!(node, ?peer, "agent connected");
                        }
                        let ack = Directive {
                            kind: Some(directive::Kind::Ack(Ack {
                                agent_instance: report.agent_instance,
                                seq: report.seq,
                            })),
                        };
                        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(ack)) {
                            break;
                        }
                    }
                    Err(invalid) => {
                        shared.metrics().record_invalid();
                        tracing::warn!(?peer, seq = report.seq, error = %invalid, "refused an invalid report");
                        let _ = tx
                            .send(Err(Status::invalid_argument(invalid.to_string())))
                            .await;
                        break;
                    }
                }
            }
            shared.metrics().stream_closed();
            if !node.is_empty() {
                shared.unregister_stream(&node, &tx);
                tracing::info!(node, "agent disconnected");
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
