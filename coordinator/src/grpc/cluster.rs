//! `ClusterService`: the live view for people and tools.

use crate::measurements::{self, Measurements};
use crate::paging::{self, Key, Listing, PageError, TokenError};
use crate::process::Drain;
use crate::view::{LiveView, PodFilter};
use aistor_core::selector::LabelSelector;
use aistor_proto::v1::{
    GetMeasurementRequest, GetNodeRequest, ListNodesRequest, ListNodesResponse, ListPodsRequest,
    ListPodsResponse, Measurement, NodeEvent, NodeStatus, PodStatus, StartMeasurementRequest,
    WatchNodesRequest,
    cluster_service_server::{ClusterService, ClusterServiceServer},
    node_event,
};
use prost::Message;
use std::pin::Pin;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The largest response `ClusterService` sends. List pages stop below it; a single
/// node or pod over it is RESOURCE_EXHAUSTED naming it. Clients must accept at
/// least this much (aistorctl accepts 64 MiB).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// The largest request it reads: requests are a few names and a page token.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Room a page leaves under [`MAX_RESPONSE_BYTES`] for the response's other
/// fields (the next page token, at most [`paging::MAX_TOKEN_CHARS`]).
const PAGE_MARGIN: usize = 64 << 10;
/// The byte budget of one list page's items.
pub const PAGE_BUDGET: usize = MAX_RESPONSE_BYTES - PAGE_MARGIN;

/// `ClusterService` with its message limits set deliberately (tonic's defaults
/// are 4 MiB to decode and no limit to encode). Serve this, not a bare
/// `ClusterServiceServer::new`.
pub fn cluster_server(
    view: LiveView,
    measurements: Measurements,
    mode: &'static str,
    drain: Drain,
) -> ClusterServiceServer<Cluster> {
    ClusterServiceServer::new(Cluster::new(view, measurements, mode, drain))
        .max_encoding_message_size(MAX_RESPONSE_BYTES)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
}

pub struct Cluster {
    view: LiveView,
    measurements: Measurements,
    /// `standalone` or `kubernetes`, stamped on every node the service answers with.
    mode: &'static str,
    drain: Drain,
}

impl Cluster {
    fn stamped(&self, mut node: NodeStatus) -> NodeStatus {
        node.coordinator_mode = self.mode.to_owned();
        node
    }

    pub fn new(
        view: LiveView,
        measurements: Measurements,
        mode: &'static str,
        drain: Drain,
    ) -> Self {
        Self {
            view,
            measurements,
            mode,
            drain,
        }
    }
}

/// Why a list page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    TooLarge(#[from] PageError),
}

impl ListError {
    /// The gRPC status; `what` names the items ("node summary", "pod").
    fn status(&self, what: &str) -> Status {
        match self {
            Self::Token(e) => Status::invalid_argument(format!("field `page_token`: {e}")),
            Self::TooLarge(PageError::ItemTooLarge { key, bytes, .. }) => {
                Status::resource_exhausted(format!(
                    "{what} {} alone is {bytes} bytes, over the {} MiB response limit",
                    key.join("/"),
                    MAX_RESPONSE_BYTES >> 20
                ))
            }
        }
    }
}

/// Bytes `len` bytes of message take as one element of a repeated field (tag < 16).
fn element_bytes(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

/// One page of node summaries, and the token of the next (empty on the last).
/// Only the page's nodes are decoded.
pub fn nodes_page(
    view: &LiveView,
    page_size: u64,
    page_token: &str,
    budget: usize,
) -> Result<(Vec<NodeStatus>, String), ListError> {
    let after = paging::decode_token(Listing::Nodes, page_token)?;
    let size = paging::page_size(page_size, paging::DEFAULT_NODE_PAGE);
    let names = view.node_names(after.as_ref().map(|a| a[0].as_str()));
    let items = names.into_iter().filter_map(|name| {
        // A node that went away since the names were read is simply not listed.
        let status = view.node_summary(&name)?;
        Some((vec![name], status))
    });
    let page = paging::page(items, after.as_ref(), size, budget, |s: &NodeStatus| {
        element_bytes(s.encoded_len())
    })?;
    let token = page
        .next
        .map(|k| paging::encode_token(Listing::Nodes, &k))
        .unwrap_or_default();
    Ok((page.items, token))
}

/// A pod's place in the listing: node, namespace, name, uid, cgroup path.
fn pod_key(status: &PodStatus) -> Key {
    let pod = status.pod.as_ref();
    let part = |f: fn(&aistor_proto::v1::Pod) -> &String| pod.map(f).cloned().unwrap_or_default();
    vec![
        status.node.clone(),
        part(|p| &p.namespace),
        part(|p| &p.name),
        part(|p| &p.uid),
        part(|p| &p.cgroup_path),
    ]
}

/// One page of pods (of one node and/or namespace when not empty), and the token
/// of the next (empty on the last). Only the nodes the page reaches are decoded.
pub fn pods_page(
    view: &LiveView,
    node: &str,
    namespace: &str,
    selector: &LabelSelector,
    page_size: u64,
    page_token: &str,
    budget: usize,
) -> Result<(Vec<PodStatus>, String), ListError> {
    let after = paging::decode_token(Listing::Pods, page_token)?;
    let size = paging::page_size(page_size, paging::DEFAULT_POD_PAGE);
    let mut names = view.node_names(None);
    names.retain(|n| {
        (node.is_empty() || n == node) && after.as_ref().is_none_or(|after| n >= &after[0])
    });
    let items = names.into_iter().flat_map(|name| {
        let filter = PodFilter {
            node: name,
            namespace: namespace.to_owned(),
            selector: selector.clone(),
        };
        let mut pods: Vec<(Key, PodStatus)> = view
            .pods(&filter)
            .into_iter()
            .map(|p| (pod_key(&p), p))
            .collect();
        pods.sort_by(|a, b| a.0.cmp(&b.0));
        pods
    });
    let page = paging::page(items, after.as_ref(), size, budget, |p: &PodStatus| {
        element_bytes(p.encoded_len())
    })?;
    let token = page
        .next
        .map(|k| paging::encode_token(Listing::Pods, &k))
        .unwrap_or_default();
    Ok((page.items, token))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<NodeEvent, Status>> + Send>>;

/// `node` as answered by a coordinator running as `mode`.
fn stamp(node: Option<NodeStatus>, mode: &str) -> Option<NodeStatus> {
    node.map(|mut n| {
        n.coordinator_mode = mode.to_owned();
        n
    })
}

/// The event as a watcher gets it (the view announces node summaries), or an
/// error naming the limit when even the summary is too large to send.
fn summary_event(kind: i32, node: Option<NodeStatus>) -> Result<NodeEvent, Status> {
    let event = NodeEvent { kind, node };
    let bytes = event.encoded_len();
    if bytes > MAX_RESPONSE_BYTES {
        let name = event.node.as_ref().map_or("", |n| n.name.as_str());
        return Err(Status::resource_exhausted(format!(
            "the summary of node {name:?} is {bytes} bytes, over the {} MiB message limit",
            MAX_RESPONSE_BYTES >> 20
        )));
    }
    Ok(event)
}

#[tonic::async_trait]
impl ClusterService for Cluster {
    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let ListNodesRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let (nodes, next_page_token) =
            nodes_page(&self.view, u64::from(page_size), &page_token, PAGE_BUDGET)
                .map_err(|e| e.status("the summary of node"))?;
        Ok(Response::new(ListNodesResponse {
            nodes: nodes.into_iter().map(|n| self.stamped(n)).collect(),
            next_page_token,
        }))
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
            .map(|n| self.stamped(n))
            .ok_or_else(|| Status::not_found(format!("no agent on node {name:?} has reported")))?;
        let bytes = node.encoded_len();
        if bytes > MAX_RESPONSE_BYTES {
            return Err(Status::resource_exhausted(format!(
                "node {name:?} with its {} pods is {bytes} bytes, over the {} MiB response \
                 limit; list its pods with ListPods (node {name:?}) instead",
                node.pod_count.unwrap_or(0),
                MAX_RESPONSE_BYTES >> 20
            )));
        }
        Ok(Response::new(node))
    }

    async fn list_pods(
        &self,
        request: Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        let ListPodsRequest {
            node,
            namespace,
            page_size,
            page_token,
            label_selector,
        } = request.into_inner();
        let selector = LabelSelector::parse(&label_selector)
            .map_err(|e| Status::invalid_argument(format!("field `label_selector`: {e}")))?;
        let (pods, next_page_token) = pods_page(
            &self.view,
            &node,
            &namespace,
            &selector,
            u64::from(page_size),
            &page_token,
            PAGE_BUDGET,
        )
        .map_err(|e| e.status("pod"))?;
        Ok(Response::new(ListPodsResponse {
            pods,
            next_page_token,
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
        // Subscribe before listing so no change between the two is missed. The
        // listing decodes one node at a time as the watcher takes them.
        let mut updates = self.view.subscribe();
        let existing = self.view.node_names(None);
        let view = self.view.clone();
        let mode = self.mode;
        let mut drain = self.drain.clone();
        let stream = async_stream(move |tx| async move {
            for name in existing {
                let Some(mut node) = view.node_summary(&name) else {
                    continue;
                };
                node.coordinator_mode = mode.to_owned();
                let event = summary_event(node_event::Kind::Existing as i32, Some(node));
                let end = event.is_err();
                if tx.send(event).await.is_err() || end {
                    return;
                }
            }
            let synced = NodeEvent {
                kind: node_event::Kind::Synced as i32,
                node: None,
            };
            if tx.send(Ok(synced)).await.is_err() {
                return;
            }
            loop {
                let received = tokio::select! {
                    r = updates.recv() => r,
                    () = drain.signaled() => {
                        // Deliver what happened before the drain, then end the stream.
                        while let Ok(event) = updates.try_recv() {
                            let event = summary_event(event.kind, stamp(event.node, mode));
                            let end = event.is_err();
                            if tx.send(event).await.is_err() || end {
                                return;
                            }
                        }
                        return;
                    }
                };
                let item = match received {
                    Ok(event) => summary_event(event.kind, stamp(event.node, mode)),
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
