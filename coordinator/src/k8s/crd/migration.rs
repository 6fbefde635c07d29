//! `Migration`: moves a pod (in the resource's namespace) from one node to another, keeping
//! completed containers' results and, with `preservePv`, its persistent volumes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "aistor.io",
    version = "v1alpha1",
    kind = "Migration",
    plural = "migrations",
    shortname = "mig",
    category = "aistor",
    namespaced,
    status = "MigrationStatus",
    derive = "PartialEq",
    doc = "Moves a pod in this namespace to another node, resuming from a checkpoint.",
    printcolumn(name = "Pod", type_ = "string", json_path = ".spec.pod"),
    printcolumn(name = "Source", type_ = "string", json_path = ".spec.sourceNode"),
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.targetNode"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Stage",
        type_ = "string",
        json_path = ".status.stage",
        priority = "1"
    ),
    printcolumn(
        name = "New Pod",
        type_ = "string",
        json_path = ".status.newPod",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSpec {
    /// The pod's name, in the Migration's namespace.
    pub pod: String,
    pub source_node: String,
    pub target_node: String,
    /// Keep the pod's PersistentVolumeClaims and mount them in the new pod.
    #[serde(default)]
    pub preserve_pv: bool,
    /// Give up (and roll back) after this long; default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: Option<u32>,
    /// Go on without a checkpoint when staging it fails (the containers start cold).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_restart: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MigrationPhase {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MigrationPhase>,
    /// The step of the state machine in progress (checkpoint, create, restore, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerMigration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// metav1.Conditions, one per type (`Checkpointed`, `TargetReady`, `SourceDeleted`,
    /// `Succeeded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `MakeBeforeBreak` or `BreakBeforeMake`, once planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Claims only one node may mount (they made it break-before-make).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub single_node_claims: Vec<String>,
    /// Every stage so far, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<MigrationStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<MigrationCheckpoint>,
    /// The pod measured before the move (a measurement run's trimmed means).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_resources: Option<MeasuredResources>,
    /// The new pod measured after the settle delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimized_resources: Option<MeasuredResources>,
    /// From the source's stop (frozen or deleted) to the target's Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_seconds: Option<f64>,
    /// From the start of the migration to the target's Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_resume_seconds: Option<f64>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A cancel was asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_requested: bool,
}

/// One stage of the state machine as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStep {
    pub stage: String,
    pub start_time: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The checkpoint staged to the shared volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationCheckpoint {
    pub id: String,
    pub attempt: u32,
    pub containers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// The copy to the volume, summed over containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A pod's CPU and memory by a measurement run, or why it could not be measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasuredResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Why a figure is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// A container's state when the migration began, and whether it is re-run on the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerMigration {
    pub name: String,
    pub state: ContainerState,
    pub restart_count: i32,
    /// Completed containers are not re-run: their results stay on the volume.
    pub migrate: bool,
    /// `Restore`, `Recreate`, `Completed` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// An init container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ContainerState {
    Waiting,
    Running,
    Completed,
    Failed,
}
