//! `Measurement`: one measurement run of a pod, container or cgroup on a node (what
//! `aistorctl measure` and `StartMeasurement` start), and its summary once done. On a
//! cluster the coordinator keeps every run as one of these (`store::measurement_resource`);
//! one made with kubectl is not a run (nothing starts it).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A measurement run: `samples` readings `intervalMilliseconds` apart of the target's cgroup,
/// summarised with a mean trimmed by `trim` at each end.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "aistor.io",
    version = "v1alpha1",
    kind = "Measurement",
    plural = "measurements",
    shortname = "meas",
    category = "aistor",
    namespaced,
    status = "MeasurementStatus",
    derive = "PartialEq",
    doc = "A measurement run of a pod, container or cgroup on one node.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "Samples", type_ = "integer", json_path = ".spec.samples"),
    printcolumn(
        name = "CPU(m)",
        type_ = "number",
        json_path = ".status.result.cpuMillicores.trimmedMean",
        description = "trimmed mean CPU in millicores"
    ),
    printcolumn(
        name = "Memory",
        type_ = "integer",
        json_path = ".status.result.memoryWorkingSetBytes.trimmedMean",
        description = "trimmed mean working set in bytes",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementSpec {
    pub target: MeasurementTarget,
    /// Node that runs the target; required for a container id or cgroup path, found from the
    /// pod otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Absent when the request is not known (a result whose request its agent dropped)
    /// or is outside this range (a run started on the agent itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub samples: Option<u32>,
    /// Whole milliseconds (the run's own interval is kept to the nanosecond in
    /// `status.record`); absent as `samples` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 3600000))]
    pub interval_milliseconds: Option<u64>,
    /// Fraction dropped at each end for the trimmed mean (0 <= trim < 0.5); absent as
    /// `samples` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 0.5), extend("exclusiveMaximum" = true))]
    pub trim: Option<f64>,
}

/// What to measure: exactly one of these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Relative to the node's cgroup root, e.g. `system.slice/foo.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodName {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MeasurementPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MeasurementPhase>,
    /// The node the run was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<MeasurementResult>,
    /// Why the run failed, or failed samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// metav1.Conditions, one per type: `Complete` (the run ended: reason `Succeeded` or
    /// `Failed`) and, once a result is in, `SamplesKept` (False when per-sample readings
    /// were dropped to fit a size limit; the message names the limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The whole run as the `aistor.v1.Measurement` protobuf (every sample that fit, see
    /// `SamplesKept`), base64: what the coordinator's APIs read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub record: Option<String>,
}

/// One summary per figure; a figure measured in no sample is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementResult {
    /// Samples taken (after the baseline reading).
    pub samples: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millicores: Option<FigureSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_working_set_bytes: Option<FigureSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_rss_bytes: Option<FigureSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_read_bytes_per_second: Option<FigureSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_write_bytes_per_second: Option<FigureSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_reads_per_second: Option<FigureSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_writes_per_second: Option<FigureSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FigureSummary {
    /// Samples in which this figure was measured.
    pub count: u32,
    pub trimmed_mean: f64,
    pub trimmed_each_end: u32,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub stddev: f64,
}
