//! Ingest: a report received from an agent is validated by the core's rules,
//! converted once into the core's model (outside any lock), applied to the live
//! view, its measurement results handed to their runs and its directive results to
//! the directives' owner.

pub mod reading;

use crate::directives::Directives;
use crate::measurements::Measurements;
use crate::view::LiveView;
use crate::wire::{ReceivedReport, StreamPicture};
use aistor_core::model::PodSpecs;
use aistor_core::validate::Limits;
use aistor_core::{Ingested, ReportKey};
use reading::Refused;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Ingest {
    view: LiveView,
    measurements: Measurements,
    directives: Directives,
    limits: Limits,
    specs: Option<Arc<dyn PodSpecs>>,
    workloads: Option<crate::workloads::Workloads>,
    kubelet_pods: Option<crate::kubelet_pods::KubeletPods>,
}

impl Ingest {
    pub fn new(
        view: LiveView,
        measurements: Measurements,
        directives: Directives,
        limits: Limits,
    ) -> Self {
        Self {
            view,
            measurements,
            directives,
            limits,
            specs: None,
            workloads: None,
            kubelet_pods: None,
        }
    }

    /// Hands each report's kubelet-pod checkpoints, frozen pods and staging results to
    /// `pods` (Kubernetes).
    pub fn with_kubelet_pods(mut self, pods: crate::kubelet_pods::KubeletPods) -> Self {
        self.kubelet_pods = Some(pods);
        self
    }

    /// Hands each report's local-runtime section to the standalone workloads, and tells
    /// them when an agent connects (it then gets its pods).
    pub fn with_workloads(mut self, workloads: crate::workloads::Workloads) -> Self {
        self.workloads = Some(workloads);
        self
    }

    /// An agent's stream is registered for directives.
    pub fn connected(&self, node: &str) {
        if let Some(w) = &self.workloads {
            w.connected(node);
        }
    }

    /// Joins each measured pod with its spec from `specs` (by uid) as reports arrive.
    pub fn with_specs(mut self, specs: Arc<dyn PodSpecs>) -> Self {
        self.specs = Some(specs);
        self
    }

    pub fn view(&self) -> &LiveView {
        &self.view
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Validates, converts and applies one report that came over `connection` (see
    /// [`ReportKey::connection`]). A report the view refuses whatever it carries
    /// (superseded connection, node limit) is refused before any of it is used.
    pub async fn apply(
        &self,
        report: ReceivedReport,
        connection: u64,
    ) -> Result<Ingested, Refused> {
        self.apply_on_stream(report, connection, &mut StreamPicture::default())
            .await
    }

    /// [`Self::apply`] for a report of the stream whose reports so far `picture` holds
    /// (see [`reading::convert_on_stream`]).
    pub async fn apply_on_stream(
        &self,
        report: ReceivedReport,
        connection: u64,
        picture: &mut StreamPicture,
    ) -> Result<Ingested, Refused> {
        let now = self.view.now();
        let mut converted =
            reading::convert_on_stream(report, now.wall_unix_nanos, &self.limits, picture)?;
        if let (Some(specs), Ok(pods)) = (&self.specs, &mut converted.reading.pods) {
            for pod in pods.iter_mut().filter(|p| !p.uid().is_empty()) {
                specs.join(pod);
            }
        }
        let head = &converted.head;
        let node = head
            .node
            .as_ref()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let boot_id = head
            .node
            .as_ref()
            .map(|n| n.boot_id.clone())
            .unwrap_or_default();
        let agent_instance = head.agent_instance.clone();
        let key = ReportKey {
            node: &node,
            boot_id: &boot_id,
            agent_instance: &agent_instance,
            seq: head.seq,
            connection,
        };
        if let Some(refused) = self.view.refusal(&key) {
            self.view.metrics().record_ingest(refused);
            return Ok(refused);
        }
        let interval = Duration::from_nanos(head.collect_interval_nanos.max(1));
        // Results are stored before the report is applied (and so acknowledged): if
        // the store fails, the agent replays the report and nothing is lost. A replay
        // of a report already applied stores the same result again, harmlessly.
        for result in converted.measurements {
            self.measurements
                .complete(result, now.wall_unix_nanos)
                .await?;
        }
        self.directives
            .observe(&node, &converted.head.directive_results);
        if let Some(w) = &self.workloads {
            w.observe(&node, &converted.head);
        }
        if let Some(p) = &self.kubelet_pods {
            p.observe(&node, &converted.head, &converted.frozen);
        }
        Ok(self
            .view
            .apply(key, interval, converted.reading, converted.head, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aistor_core::model::{ContainerSpec, PodSpec, Requests};
    use aistor_core::{ManualClock, Now};
    use aistor_proto::v1 as pb;

    /// Specs of one pod, as an index would hold them.
    #[derive(Debug)]
    struct OneSpec;

    impl PodSpecs for OneSpec {
        fn join(&self, pod: &mut aistor_core::model::Pod) {
            if pod.uid() != "u1" {
                return;
            }
            let spec = PodSpec {
                containers: vec![ContainerSpec {
                    name: "main".into(),
                    requests: Requests {
                        cpu_millicores: Some(500.0),
                        memory_bytes: Some(1 << 20),
                    },
                    restart_count: Some(3),
                    state: None,
                }],
                labels: vec![("app".into(), "web".into())],
            };
            aistor_core::model::join_spec(pod, &spec);
        }
    }

    #[tokio::test]
    async fn measured_pods_are_joined_with_their_specs_by_uid() {
        let clock = Arc::new(ManualClock::new(Now {
            monotonic: std::time::Duration::from_secs(1),
            wall_unix_nanos: 2_000_000_000,
        }));
        let view = LiveView::new(Default::default(), clock, Default::default());
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_standalone(dir.path()).unwrap();
        let runs = crate::store::measurements::Measurements::open(store, 10)
            .await
            .unwrap();
        let measurements = Measurements::new(view.clone(), Directives::default(), Arc::new(runs));
        let ingest = Ingest::new(
            view.clone(),
            measurements,
            Directives::default(),
            Limits::default(),
        )
        .with_specs(Arc::new(OneSpec));
        let container = pb::Container {
            id: "c".into(),
            name: "main".into(),
            state: pb::ContainerState::Running as i32,
            ..Default::default()
        };
        let report = pb::NodeReport {
            node: Some(pb::NodeIdentity {
                name: "n".into(),
                ..Default::default()
            }),
            agent_instance: "a".into(),
            seq: 1,
            wall_time_unix_nanos: 1_000_000_000,
            pods: ["u1", "u2"]
                .map(|uid| pb::Pod {
                    uid: uid.into(),
                    name: uid.into(),
                    containers: vec![container.clone()],
                    ..Default::default()
                })
                .to_vec(),
            ..Default::default()
        };
        ingest
            .apply(ReceivedReport::from_report(&report), 1)
            .await
            .unwrap();
        view.read(|v| {
            let pods = v.node("n").unwrap().pods().unwrap();
            let joined = &pods[0].containers[0];
            assert_eq!(joined.restart_count, Some(3));
            assert_eq!(pods[0].cpu_request_millicores().measured(), Some(500.0));
            let unknown = &pods[1].containers[0];
            assert_eq!((unknown.requests, unknown.restart_count), (None, None));
        });
        // Joined labels are what selectors match.
        let selected = |selector: &str| {
            view.pods(&crate::view::PodFilter {
                selector: aistor_core::selector::LabelSelector::parse(selector).unwrap(),
                ..Default::default()
            })
            .into_iter()
            .map(|p| p.pod.unwrap().uid)
            .collect::<Vec<_>>()
        };
        assert_eq!(selected("app=web"), ["u1"]);
        assert_eq!(selected("!app"), ["u2"]);
        assert_eq!(selected(""), ["u1", "u2"]);
    }
}
