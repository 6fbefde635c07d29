//! `AIStorageConfig` (`ai-storage.keti/v1`): seed 001's placement configuration, in the
//! shape the original scheduler's CRD has (keti.md §5.3), plus aistor's `liveHeadroom`
//! plugin. Every field is optional: what is absent takes the seed's default. The values
//! are checked when the configuration is applied (`placement::config`), each error
//! naming the field.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ai-storage.keti",
    version = "v1",
    kind = "AIStorageConfig",
    plural = "aistorageconfigs",
    shortname = "aisc",
    shortname = "aisconfig",
    category = "aistor",
    namespaced,
    status = "AIStorageConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Placement configuration of aistor's scheduler (seed 001's AIStorageConfig).",
    printcolumn(
        name = "Applied",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Applied\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AIStorageConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Plugins>,
    /// Per preprocessing type (`augmentation`, `featureExtraction`, ...): how it uses
    /// the machine. A type given here replaces the default one whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing_types: Option<BTreeMap<String, PreprocessingType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_tiers: Option<StorageTiers>,
    /// The seed's APOLLO section. aistor takes APOLLO's endpoint and timeouts from its
    /// flags (`--apollo-endpoint`); these values are accepted and shown, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apollo: Option<ApolloSection>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugins {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_locality_aware: Option<PluginSection<DataLocalityScoring>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_tier_aware: Option<PluginSection<StorageTierScoring>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_pattern_based: Option<PluginSection<IoPatternScoring>>,
    /// aistor's live headroom from the agents' figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_headroom: Option<LiveHeadroom>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSection<S> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// 0–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring: Option<S>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataLocalityScoring {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apollo_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_locality_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_score_max: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageTierScoring {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_pattern_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_stage_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_score_max: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IoPatternScoring {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apollo_preference_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_match_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_optimization_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expansion_score_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csd_score_max: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreprocessingType {
    #[serde(default)]
    pub read_intensive: bool,
    #[serde(default)]
    pub write_intensive: bool,
    #[serde(default)]
    pub cpu_intensive: bool,
    #[serde(default)]
    pub memory_intensive: bool,
    /// Output size over input size (1 = the same).
    #[serde(default = "one")]
    pub data_expansion: f64,
    #[serde(default)]
    pub sequential_access: bool,
    #[serde(default, rename = "requiresCSD")]
    pub requires_csd: bool,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageTiers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvme: Option<TierScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssd: Option<TierScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdd: Option<TierScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csd: Option<CsdBonuses>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierScores {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_heavy_score: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_heavy_score: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_score: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential_score: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsdBonuses {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtering_bonus: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_bonus: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformation_bonus: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApolloSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_expiry_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_timeout_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_enabled: Option<bool>,
}

/// Per resource the headroom reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerResource<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<T>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiveHeadroom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// 0–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub weight: Option<i64>,
    /// Weights of each resource's headroom in the node's score (≥ 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_weights: Option<PerResource<i64>>,
    /// Percent (0–100) the estimated usage after placing the pod may not exceed; a
    /// resource without one is never filtered on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_thresholds: Option<PerResource<f64>>,
    /// Percent (1–100) of a pod's request it is estimated to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_scaling_factors: Option<PerResource<i64>>,
    /// Agents' figures older than this are not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_measurement_age_seconds: Option<u64>,
}

/// Whether the configuration is in force (condition `Applied`), and why not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIStorageConfigStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}
