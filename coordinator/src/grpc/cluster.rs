//! `ClusterService`: the live view for people and tools.

use crate::measurements::{self, Measurements};
use crate::process::Drain;
use crate::view::{LiveView, PodFilter};
use aistor_proto::v1::{
    GetMeasurementRequest, GetNodeRequest, ListNodesRequest, ListNodesResponse, ListPodsRequest,
    ListPodsResponse, Measurement, NodeEvent, NodeStatus, StartMeasurementRequest,
    WatchNodesRequest, cluster_service_server::ClusterService, node_event,
};
use std::pin::Pin;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub struct Cluster {
    view: LiveView,
    measurements: Measurements,
    drain: Drain,
}

impl Cluster {
    pub fn new(view: LiveView, measurements: Measurements, drain: Drain) -> Self {
        Self {
            view,
            measurements,
            drain,
        }
    }

    fn all(&self) -> Vec<NodeStatus> {
        self.view.node_summaries(None, usize::MAX).0
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<NodeEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ClusterService for Cluster {
    async fn list_nodes(
        &self,
        _: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Ok(Response::new(ListNodesResponse { nodes: self.all() }))
    }

    async fn get_node(
        &self,
        request: Request<GetNodeRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let name = request.into_inner().name;
        if name.is_empty() {
            return Err(Status::invalid_argument("field `name` is required"));
        }
        let node = self
            .view
            .node_status(&name)
            .ok_or_else(|| Status::not_found(format!("no agent on node {name:?} has reported")))?;
        Ok(Response::new(node))
    }

    async fn list_pods(
        &self,
        request: Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        let ListPodsRequest { node, namespace } = request.into_inner();
        Ok(Response::new(ListPodsResponse {
            pods: self
                .view
                .pods(&PodFilter { node, namespace }, None, usize::MAX)
                .0,
        }))
    }

    async fn start_measurement(
        &self,
        request: Request<StartMeasurementRequest>,
    ) -> Result<Response<Measurement>, Status> {
        self.measurements
            .start(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| {
                use measurements::RunError as E;
                match e {
                    e if e.is_invalid_request() => Status::invalid_argument(e.to_string()),
                    e @ (E::PodNotFound(_) | E::UnknownNode(_)) => Status::not_found(e.to_string()),
                    e @ E::Store(_) => Status::unavailable(e.to_string()),
                    e => Status::failed_precondition(e.to_string()),
                }
            })
    }

    async fn get_measurement(
        &self,
        request: Request<GetMeasurementRequest>,
    ) -> Result<Response<Measurement>, Status> {
        let id = request.into_inner().id;
        self.measurements
            .get(&id)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no measurement with id {id:?}")))
    }

    type WatchNodesStream = EventStream;

    async fn watch_nodes(
        &self,
        _: Request<WatchNodesRequest>,
    ) -> Result<Response<Self::WatchNodesStream>, Status> {
        // Subscribe before listing so no change between the two is missed.
        let mut updates = self.view.subscribe();
        let existing = self.all();
        let mut drain = self.drain.clone();
        let stream = async_stream(move |tx| async move {
            for node in existing {
                let event = NodeEvent {
                    kind: node_event::Kind::Existing as i32,
                    node: Some(node),
                };
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            loop {
                let received = tokio::select! {
                    r = updates.recv() => r,
                    () = drain.signaled() => {
                        // Deliver what happened before the drain, then end the stream.
                        while let Ok(event) = updates.try_recv() {
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        return;
                    }
                };
                let item = match received {
                    Ok(event) => Ok(event),
                    Err(RecvError::Lagged(n)) => Err(Status::data_loss(format!(
                        "watcher fell {n} updates behind; re-run WatchNodes to resynchronise"
                    ))),
                    Err(RecvError::Closed) => return,
                };
                let end = item.is_err();
                if tx.send(item).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task; the task stops when the client goes away.
fn async_stream<F, Fut>(body: F) -> EventStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<NodeEvent, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
