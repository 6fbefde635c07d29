//! `Autoscaler`: scales one Deployment, StatefulSet or ReplicaSet (in the resource's namespace)
//! over CPU, memory, GPU and storage I/O measured by the agents, with HPA-style behaviour.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The original API's `scale_up_policy {stabilization_window_seconds, max_scale_change}` is
/// `scaleUp {stabilizationWindowSeconds, policies: [{type: Pods, value: max_scale_change,
/// periodSeconds: 15}]}` here (its loop ran every 15 s).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "aistor.io",
    version = "v1alpha1",
    kind = "Autoscaler",
    plural = "autoscalers",
    shortname = "asc",
    category = "aistor",
    namespaced,
    status = "AutoscalerStatus",
    derive = "PartialEq",
    doc = "Scales a workload in this namespace over CPU, memory, GPU and storage I/O measured by aistor agents.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.workloadRef.kind"),
    printcolumn(
        name = "Workload",
        type_ = "string",
        json_path = ".spec.workloadRef.name"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicas"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicas"),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.currentReplicas"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerSpec {
    pub workload_ref: WorkloadTarget,
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Targets, the original API's fields; at least one is set here or in
    /// `hpa.metrics`. The largest recommendation over them wins.
    #[serde(default)]
    pub metrics: AutoscalerMetrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
    /// How often the autoscaler decides (the HPA's sync period; the original's
    /// `scale_check_interval`); default 15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub sync_period_seconds: Option<u32>,
    /// The span of each pod's mean that a sync reads, in seconds; default 30 (or all
    /// the coordinator keeps per pod, when that is less). Set, the coordinator must
    /// keep that much per pod (its pod window; plus the resolution when one is set), or
    /// the metric is reported not observed, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 300))]
    pub metric_window_seconds: Option<u32>,
    /// How often a value is handed over, in seconds; default: every sample (the
    /// newest ends the window). When set, a sync reads the mean over the window ending
    /// at the latest multiple of it (unix time), as a metrics pipeline scraping that
    /// often (metrics-server: 15) would; samples after that instant are not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 300))]
    pub metric_resolution_seconds: Option<u32>,
    /// For people who write HorizontalPodAutoscalers: `metrics` and `behavior` exactly
    /// as in an HPA's spec (`autoscaling/v2`). Metrics of type `Resource` (cpu, memory)
    /// and `Pods` (gpu, storage-read-bytes-per-second, storage-write-bytes-per-second,
    /// storage-iops) are measured by the agents; others are refused with the reason.
    /// They add to `metrics` above; a direction's rules are set here or in
    /// `scaleUp`/`scaleDown`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HpaStyle>,
}

/// An HPA's `metrics` and `behavior`, as written for a HorizontalPodAutoscaler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HpaStyle {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<k8s_openapi::api::autoscaling::v2::MetricSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior>,
}

/// The workload scaled, in the Autoscaler's namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadTarget {
    /// `Deployment`, `StatefulSet` or `ReplicaSet`.
    #[schemars(regex(pattern = r"^(Deployment|StatefulSet|ReplicaSet)$"))]
    pub kind: String,
    pub name: String,
}

/// Target figures per pod: percentages of the pods' requests (CPU, memory) or of the GPUs they
/// hold, and storage I/O in MB/s (10^6 bytes) and operations per second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerMetrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub cpu_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub memory_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub gpu_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub io_read_megabytes_per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub io_write_megabytes_per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub iops: Option<f64>,
}

/// How fast to scale in one direction (the HPA's `behavior.scaleUp/scaleDown`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Recommendations over this window are considered (up: lowest, down: highest); defaults:
    /// up 0, down 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub stabilization_window_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<ScalingPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    #[serde(rename = "type")]
    pub type_: ScalingPolicyType,
    /// Pods, or percent of the current replicas, changed at most per period.
    #[schemars(range(min = 1))]
    pub value: i32,
    #[schemars(range(min = 1, max = 1800))]
    pub period_seconds: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ScalingPolicyType {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// `Active` (deciding), `Inactive` (its workload cannot be read or scaled: see the
    /// message and conditions) or `Failed` (its spec cannot be used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// The figures of the last decision (absent: not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_metrics: Option<AutoscalerMetricValues>,
    #[serde(default)]
    pub scale_up_count: u64,
    #[serde(default)]
    pub scale_down_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// metav1.Conditions, one per type: the HPA's `AbleToScale`, `ScalingActive`
    /// and `ScalingLimited`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Per metric of the last decision: its value, target and proposal, or why it
    /// has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricStatus>,
    /// The most recent decisions that changed the replica count or were held by a
    /// rule, newest last (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_decisions: Vec<DecisionRecord>,
    /// What stabilisation and rate policies remember between syncs, so a restarted
    /// or new leader decides as the old one would have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<ScalingHistory>,
}

/// One metric of one decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// `cpu`, `memory`, `gpu`, `storage-read-bytes-per-second`,
    /// `storage-write-bytes-per-second` or `storage-iops`.
    pub name: String,
    /// The target, in the unit it was written in (`unit`).
    pub target: f64,
    /// `%`, `MB/s`, `B/s`, `m` (millicores), `B` (bytes), or empty (operations/s).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// The current value in the same units; absent when it could not be computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_replicas: Option<u32>,
    /// Pods counted as measured, unready (left out) and missing (assumed).
    #[serde(default)]
    pub ready_pods: u32,
    #[serde(default)]
    pub unready_pods: u32,
    #[serde(default)]
    pub missing_pods: u32,
    /// Why the value is absent, or which pods were missing and why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One decision, kept so a person can see why the count moved (or did not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    pub time: Time,
    pub current_replicas: u32,
    pub desired_replicas: u32,
    /// The rule that last moved or held the count (`ScaleDownStabilized`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub limited_by: String,
    /// The reason, in the HPA's event wording.
    pub message: String,
}

/// Stabilisation and rate-policy memory: `[replicas or change, unix nanoseconds]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingHistory {
    #[serde(default)]
    pub recommendations: Vec<(u32, u64)>,
    #[serde(default)]
    pub scale_up_events: Vec<(u32, u64)>,
    #[serde(default)]
    pub scale_down_events: Vec<(u32, u64)>,
}

/// Measured values in the units of [`AutoscalerMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerMetricValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_read_megabytes_per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_write_megabytes_per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<f64>,
}
