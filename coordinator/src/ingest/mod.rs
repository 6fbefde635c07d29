//! Ingest: a report received from an agent is validated by the core's rules,
//! converted once into the core's model (outside any lock), applied to the live
//! view, and its measurement results handed to their runs.

pub mod reading;

use crate::measurements::Measurements;
use crate::view::LiveView;
use crate::wire::ReceivedReport;
use aistor_core::validate::Limits;
use aistor_core::{Ingested, ReportKey};
use reading::Refused;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Ingest {
    view: LiveView,
    measurements: Measurements,
    limits: Limits,
}

impl Ingest {
    pub fn new(view: LiveView, measurements: Measurements, limits: Limits) -> Self {
        Self {
            view,
            measurements,
            limits,
        }
    }

    pub fn view(&self) -> &LiveView {
        &self.view
    }

    /// Validates, converts and applies one report.
    pub async fn apply(&self, report: ReceivedReport) -> Result<Ingested, Refused> {
        let now = self.view.now();
        let converted = reading::convert(report, now.wall_unix_nanos, &self.limits)?;
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
        };
        let interval = Duration::from_nanos(head.collect_interval_nanos.max(1));
        // Results are stored before the report is applied (and so acknowledged): if
        // the store fails, the agent replays the report and nothing is lost. A replay
        // of a report already applied stores the same result again, harmlessly.
        for result in converted.measurements {
            self.measurements
                .complete(result, now.wall_unix_nanos)
                .await?;
        }
        Ok(self
            .view
            .apply(key, interval, converted.reading, converted.head, now))
    }
}
