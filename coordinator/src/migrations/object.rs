//! A migration record as its `Migration` object (`aistor.io/v1alpha1`): what the gRPC
//! API and `aistorctl -o json` show, in Kubernetes spelling, with conditions a person
//! can wait on (`Checkpointed`, `TargetReady`, `SourceDeleted`, `Succeeded`).

use crate::k8s::crd::{
    ContainerMigration, ContainerState, MeasuredResources, Migration as Object,
    MigrationCheckpoint, MigrationPhase, MigrationSpec, MigrationStatus, MigrationStep,
};
use aistor_core::migration::machine::{Measured, Migration, Phase};
use aistor_core::migration::{Action, ContainerState as Seen, Strategy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

fn time(unix_nanos: u64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(unix_nanos)).unwrap_or_default())
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

fn phase(p: Phase) -> MigrationPhase {
    match p {
        Phase::Pending => MigrationPhase::Pending,
        Phase::Completed => MigrationPhase::Completed,
        Phase::Failed => MigrationPhase::Failed,
        Phase::Cancelled => MigrationPhase::Cancelled,
        _ => MigrationPhase::Running,
    }
}

fn resources(m: &Measured) -> Option<MeasuredResources> {
    if m.cpu_cores.is_none() && m.memory_bytes.is_none() && m.missing.is_none() {
        return None;
    }
    Some(MeasuredResources {
        cpu_cores: m.cpu_cores,
        memory_bytes: m.memory_bytes,
        time: m.at_unix_nanos.map(time),
        missing: m.missing.clone(),
    })
}

/// A condition from when its stage started (`None`: not reached).
fn condition(kind: &str, since: Option<u64>, reason: &str, message: String) -> Option<Condition> {
    Some(Condition {
        type_: kind.to_owned(),
        status: "True".into(),
        reason: reason.to_owned(),
        message,
        last_transition_time: time(since?),
        observed_generation: None,
    })
}

fn conditions(m: &Migration) -> Vec<Condition> {
    let staged_at = m
        .checkpoint
        .as_ref()
        .filter(|c| c.staged.is_some())
        .and_then(|_| {
            m.steps
                .iter()
                .find(|s| s.phase == Phase::Checkpointing)
                .and_then(|s| s.ended_unix_nanos)
        });
    let mut list: Vec<Condition> = [
        condition(
            "Checkpointed",
            staged_at,
            "Staged",
            m.checkpoint
                .as_ref()
                .map(|c| format!("checkpoint {} on the shared volume", c.id))
                .unwrap_or_default(),
        ),
        condition(
            "TargetReady",
            m.target_ready_unix_nanos,
            "Ready",
            format!(
                "pod {} is Ready on {}",
                m.target_name, m.request.target_node
            ),
        ),
        condition(
            "SourceDeleted",
            m.source_deleted_unix_nanos,
            "Deleted",
            format!("pod {} was deleted", m.request.pod),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(ended) = m.ended_unix_nanos {
        let (status, reason) = match m.phase {
            Phase::Completed => ("True", "Completed"),
            Phase::Cancelled => ("False", "Cancelled"),
            _ => ("False", "Failed"),
        };
        list.push(Condition {
            type_: "Succeeded".into(),
            status: status.into(),
            reason: reason.into(),
            message: m.message.clone(),
            last_transition_time: time(ended),
            observed_generation: None,
        });
    }
    list
}

/// The record as a `Migration` object in the pod's namespace.
pub fn to_object(m: &Migration) -> Object {
    let (strategy, claims) = match m.strategy() {
        Some(Strategy::MakeBeforeBreak) => (Some("MakeBeforeBreak".to_owned()), Vec::new()),
        Some(Strategy::BreakBeforeMake { claims }) => {
            (Some("BreakBeforeMake".to_owned()), claims.clone())
        }
        None => (None, Vec::new()),
    };
    let containers = m
        .plan
        .iter()
        .flat_map(|p| &p.containers)
        .map(|c| ContainerMigration {
            name: c.name.clone(),
            state: match c.state {
                Seen::Waiting => ContainerState::Waiting,
                Seen::Running => ContainerState::Running,
                Seen::Terminated { exit_code: 0 } => ContainerState::Completed,
                Seen::Terminated { .. } => ContainerState::Failed,
            },
            restart_count: i32::try_from(c.restart_count).unwrap_or(i32::MAX),
            migrate: c.action.should_migrate(),
            action: Some(
                match c.action {
                    Action::Restore => "Restore",
                    Action::Recreate => "Recreate",
                    Action::Completed => "Completed",
                    Action::Failed { .. } => "Failed",
                }
                .into(),
            ),
            reason: Some(c.why.clone()),
            init: c.init,
        })
        .collect();
    let mut object = Object::new(
        &m.id,
        MigrationSpec {
            pod: m.request.pod.clone(),
            source_node: m.request.source_node.clone(),
            target_node: m.request.target_node.clone(),
            preserve_pv: m.request.preserve_pv,
            timeout_seconds: u32::try_from(m.request.timeout_secs)
                .ok()
                .filter(|t| *t > 0),
            force_restart: m.request.force_restart,
        },
    );
    object.metadata = ObjectMeta {
        name: Some(m.id.clone()),
        namespace: Some(m.request.namespace.clone()),
        creation_timestamp: Some(time(m.created_unix_nanos)),
        ..ObjectMeta::default()
    };
    object.status = Some(MigrationStatus {
        phase: Some(phase(m.phase)),
        stage: Some(m.phase.as_str().to_owned()),
        new_pod: Some(m.target_name.clone()),
        checkpoint_path: m.checkpoint_dir(),
        containers,
        start_time: Some(time(m.created_unix_nanos)),
        completion_time: m.ended_unix_nanos.map(time),
        message: Some(m.message.clone()),
        observed_generation: None,
        conditions: conditions(m),
        strategy,
        single_node_claims: claims,
        steps: m
            .steps
            .iter()
            .map(|s| MigrationStep {
                stage: s.phase.as_str().to_owned(),
                start_time: time(s.started_unix_nanos),
                end_time: s.ended_unix_nanos.map(time),
                message: s.message.clone(),
            })
            .collect(),
        checkpoint: m.checkpoint.as_ref().map(|c| MigrationCheckpoint {
            id: c.id.clone(),
            attempt: c.attempt,
            containers: c.containers.clone(),
            bytes: c.staged.as_ref().map(|s| s.bytes),
            files: c.staged.as_ref().map(|s| s.files),
            staging_seconds: c.staged.as_ref().map(|s| seconds(s.copy_nanos)),
            error: c.error.clone(),
        }),
        original_resources: resources(&m.before),
        optimized_resources: resources(&m.after),
        downtime_seconds: m.downtime_nanos().map(seconds),
        time_to_resume_seconds: m.time_to_resume_nanos().map(seconds),
        error: m.error.clone(),
        cancel_requested: m.cancel_requested,
    });
    object
}

/// The object as the JSON the gRPC API carries.
pub fn to_json(m: &Migration) -> Vec<u8> {
    serde_json::to_vec(&to_object(m)).unwrap_or_default()
}
