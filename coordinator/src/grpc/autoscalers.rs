//! `AutoscalerService`: the stored `Autoscaler` objects over gRPC (what `aistorctl
//! get|describe|apply|delete` autoscalers use), the same objects the REST API's
//! `/api/v1/autoscaling` shows. Objects travel as their Kubernetes JSON.

use crate::autoscalers::{AutoscalerError, Autoscalers, object};
use crate::k8s::crd::Autoscaler;
use crate::process::Drain;
use aistor_proto::v1 as pb;
use aistor_proto::v1::autoscaler_event::Kind;
use aistor_proto::v1::autoscaler_service_server::{AutoscalerService, AutoscalerServiceServer};
use prost::Message;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The largest request: one object.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// The largest response (as `ClusterService`'s); a list over it is
/// RESOURCE_EXHAUSTED, and one namespace at a time is listed instead.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// How often a watch looks for changes.
pub const WATCH_POLL: Duration = Duration::from_secs(1);
/// Watches open at once; each copies the autoscalers it shows once per poll.
pub const MAX_WATCHERS: usize = 64;
/// Events a watch holds for a slow client before it waits for it.
const WATCH_BUFFER: usize = 16;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AutoscalerEvent, Status>> + Send>>;

#[derive(Debug, Clone)]
pub struct AutoscalerApi {
    autoscalers: Autoscalers,
    drain: Drain,
    watchers: Arc<Semaphore>,
}

pub fn autoscaler_server(
    autoscalers: Autoscalers,
    drain: Drain,
) -> AutoscalerServiceServer<AutoscalerApi> {
    AutoscalerServiceServer::new(AutoscalerApi {
        autoscalers,
        drain,
        watchers: Arc::new(Semaphore::new(MAX_WATCHERS)),
    })
    .max_decoding_message_size(MAX_REQUEST_BYTES)
    .max_encoding_message_size(MAX_RESPONSE_BYTES)
}

fn status(e: AutoscalerError) -> Status {
    match e {
        AutoscalerError::NotFound(_) => Status::not_found(e.to_string()),
        AutoscalerError::Invalid(_) => Status::invalid_argument(e.to_string()),
        AutoscalerError::Store(s) => Status::unavailable(format!("store: {s}")),
    }
}

/// The object as Kubernetes JSON (with its apiVersion and kind).
pub fn encode(a: &Autoscaler) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(a).map_err(|e| {
        Status::internal(format!(
            "autoscaler {} cannot be encoded: {e}",
            a.metadata.name.as_deref().unwrap_or("")
        ))
    })
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!(
            "field `{field}` is required"
        )))
    } else {
        Ok(value)
    }
}

/// What a watch remembers of one autoscaler: the object and its JSON.
type Seen = BTreeMap<String, (Autoscaler, Vec<u8>)>;

fn event(kind: Kind, name: &str, object_json: Vec<u8>) -> pb::AutoscalerEvent {
    pb::AutoscalerEvent {
        kind: kind as i32,
        name: name.to_owned(),
        object_json,
    }
}

/// The events from `before` to `now` (ADDED, MODIFIED when the JSON differs,
/// DELETED with the last object), by name; `before` becomes `now`.
fn changes(before: &mut Seen, now: Vec<Autoscaler>) -> Vec<pb::AutoscalerEvent> {
    let mut events = Vec::new();
    let mut next = Seen::new();
    for a in now {
        let name = a.metadata.name.clone().unwrap_or_default();
        match before.remove(&name) {
            // Unchanged: nothing to encode.
            Some((old, json)) if old == a => {
                next.insert(name, (old, json));
            }
            old => {
                let Ok(json) = encode(&a) else { continue };
                match old {
                    Some((_, old_json)) if old_json == json => {}
                    Some(_) => events.push(event(Kind::Modified, &name, json.clone())),
                    None => events.push(event(Kind::Added, &name, json.clone())),
                }
                next.insert(name, (a, json));
            }
        }
    }
    for (name, (_, json)) in std::mem::take(before) {
        events.push(event(Kind::Deleted, &name, json));
    }
    *before = next;
    events
}

/// Sends `e`; false when the client went away or the coordinator drains.
async fn send(
    tx: &mpsc::Sender<Result<pb::AutoscalerEvent, Status>>,
    drain: &mut Drain,
    e: pb::AutoscalerEvent,
) -> bool {
    tokio::select! {
        sent = tx.send(Ok(e)) => sent.is_ok(),
        () = drain.signaled() => false,
    }
}

#[tonic::async_trait]
impl AutoscalerService for AutoscalerApi {
    async fn create(
        &self,
        request: Request<pb::CreateAutoscalerRequest>,
    ) -> Result<Response<pb::Autoscaler>, Status> {
        let a = &self.autoscalers;
        let raw = request.into_inner().object_json;
        let value: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| Status::invalid_argument(format!("the object is not JSON: {e}")))?;
        let parsed = object::parse(&value).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let created = a
            .create(&parsed.namespace, parsed.spec)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::Autoscaler {
            object_json: encode(&created)?,
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetAutoscalerRequest>,
    ) -> Result<Response<pb::Autoscaler>, Status> {
        let a = &self.autoscalers;
        let r = request.into_inner();
        let found = a.get(required("name", &r.name)?).map_err(status)?;
        Ok(Response::new(pb::Autoscaler {
            object_json: encode(&found)?,
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListAutoscalersRequest>,
    ) -> Result<Response<pb::ListAutoscalersResponse>, Status> {
        let a = &self.autoscalers;
        let namespace = request.into_inner().namespace;
        let items = a
            .list(&namespace)
            .iter()
            .map(|o| encode(o).map(|object_json| pb::Autoscaler { object_json }))
            .collect::<Result<Vec<_>, _>>()?;
        let response = pb::ListAutoscalersResponse { items };
        let bytes = response.encoded_len();
        if bytes > MAX_RESPONSE_BYTES {
            return Err(Status::resource_exhausted(format!(
                "the {} autoscalers are {bytes} bytes, over the {} MiB response limit; \
                 list one namespace at a time",
                response.items.len(),
                MAX_RESPONSE_BYTES >> 20
            )));
        }
        Ok(Response::new(response))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteAutoscalerRequest>,
    ) -> Result<Response<pb::DeleteAutoscalerResponse>, Status> {
        let a = &self.autoscalers;
        let r = request.into_inner();
        a.delete(required("name", &r.name)?).await.map_err(status)?;
        Ok(Response::new(pb::DeleteAutoscalerResponse {}))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        request: Request<pb::WatchAutoscalersRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let a = self.autoscalers.clone();
        let namespace = request.into_inner().namespace;
        let permit = self.watchers.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{MAX_WATCHERS} autoscaler watches are open already, the limit; retry later"
            ))
        })?;
        let mut drain = self.drain.clone();
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            let _permit = permit;
            let mut seen = Seen::new();
            for o in a.list(&namespace) {
                let name = o.metadata.name.clone().unwrap_or_default();
                let json = match encode(&o) {
                    Ok(json) => json,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if !send(&tx, &mut drain, event(Kind::Existing, &name, json.clone())).await {
                    return;
                }
                seen.insert(name, (o, json));
            }
            if !send(&tx, &mut drain, event(Kind::Synced, "", Vec::new())).await {
                return;
            }
            let mut ticker = tokio::time::interval(WATCH_POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = tx.closed() => return,
                    () = drain.signaled() => return,
                }
                for e in changes(&mut seen, a.list(&namespace)) {
                    if !send(&tx, &mut drain, e).await {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::crd::{AutoscalerMetrics, AutoscalerSpec, AutoscalerStatus, WorkloadTarget};

    fn autoscaler(name: &str, phase: &str) -> Autoscaler {
        let mut a = Autoscaler::new(
            name,
            AutoscalerSpec {
                workload_ref: WorkloadTarget {
                    kind: "Deployment".into(),
                    name: "web".into(),
                },
                min_replicas: 1,
                max_replicas: 3,
                metrics: AutoscalerMetrics {
                    cpu_percent: Some(70),
                    ..Default::default()
                },
                scale_up: None,
                scale_down: None,
                sync_period_seconds: None,
                metric_window_seconds: None,
                metric_resolution_seconds: None,
                hpa: None,
            },
        );
        a.status = Some(AutoscalerStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        a
    }

    fn kinds(events: &[pb::AutoscalerEvent]) -> Vec<(Kind, &str)> {
        events
            .iter()
            .map(|e| (Kind::try_from(e.kind).unwrap(), e.name.as_str()))
            .collect()
    }

    #[test]
    fn a_watch_sends_what_was_added_changed_and_deleted() {
        let mut seen = Seen::new();
        let first = changes(
            &mut seen,
            vec![autoscaler("a", "Inactive"), autoscaler("b", "Active")],
        );
        assert_eq!(kinds(&first), [(Kind::Added, "a"), (Kind::Added, "b")]);
        assert!(
            changes(
                &mut seen,
                vec![autoscaler("a", "Inactive"), autoscaler("b", "Active")]
            )
            .is_empty()
        );
        let next = changes(
            &mut seen,
            vec![autoscaler("a", "Active"), autoscaler("c", "Active")],
        );
        assert_eq!(
            kinds(&next),
            [
                (Kind::Modified, "a"),
                (Kind::Added, "c"),
                (Kind::Deleted, "b")
            ]
        );
        let modified: serde_json::Value = serde_json::from_slice(&next[0].object_json).unwrap();
        assert_eq!(modified["status"]["phase"], "Active");
        assert_eq!(modified["kind"], "Autoscaler");
        let deleted: serde_json::Value = serde_json::from_slice(&next[2].object_json).unwrap();
        assert_eq!(deleted["metadata"]["name"], "b", "the last object seen");
        assert_eq!(seen.len(), 2);
    }
}
