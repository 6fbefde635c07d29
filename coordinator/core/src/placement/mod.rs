//! Placement (issue 11, first slice, pure core): where a pod should run, and why.
//!
//! [`rank`] runs, for every candidate node, the filters a secondary scheduler must
//! honour (fresh agent, cordon, taints, nodeSelector and required node affinity,
//! bound volumes' node affinity, requests that fit what is allocatable minus what
//! is assigned and assumed), the live-headroom thresholds, and the seed's plugin
//! filters; then scores every node with the seed's three plugins (keti.md §5.2:
//! DataLocalityAware, StorageTierAware, IOPatternBased) and live headroom, each
//! normalised to 0–100, and adds them with their weights. Every node keeps each
//! filter's reason and each plugin's parts, so a placement can be explained.
//!
//! Normalisation: a seed plugin's raw score is out of the sum of its part maxima
//! from the AIStorageConfig (default 100 each), so `normalised = raw × 100 / max`
//! (the original summed raw scores). The original's literal 50 for pods a plugin
//! does not judge stays 50. Headroom is 0–100 already.
//!
//! Where aistor departs from the original on purpose (keti.md §1.4, each said
//! where it is done): a bound network volume does not pin a preprocessing pod
//! (DataLocalityAware's filter); the pod's own preprocessing type feeds
//! IOPatternBased's traits when APOLLO gives none; ties go to the node whose name
//! sorts first, not to map order.

pub mod apollo;
mod config;
mod data_locality;
mod filter;
#[cfg(test)]
mod fixtures;
mod headroom;
mod input;
mod io_pattern;
mod rank;
mod score;
mod storage_tier;

pub use config::{
    Config, ConfigError, CsdBonuses, DataLocalityScoring, Headroom, IoPatternScoring, MAX_WEIGHT,
    PerResource, Plugin, PreprocessingTraits, ScalingFactors, ScoreMax, StorageTierScoring,
    StorageTiers, TierScores, default_preprocessing_types,
};
pub use filter::{FitResource, Rejection};
pub use headroom::{
    Absent, DEFAULT_CPU_MILLICORES, DEFAULT_MEMORY_BYTES, HeadroomDetail, LoadResource,
    ResourceHeadroom, estimate_pod,
};
pub use input::{
    AccessMode, BoundVolume, Claim, Estimate, HOSTNAME_LABEL, LiveLoad, NodeInput,
    NodeSelectorRequirement, NodeSelectorTerm, PodInput, Reservation, Resources, SelectorOperator,
    Taint, TaintEffect, Toleration, TolerationOperator,
};
pub use io_pattern::TraitsFrom;
pub use rank::{
    Choice, Decision, NodeVerdict, PluginScore, PodReading, Weight, WeightFrom, choose,
    nodes_to_find, rank,
};
pub use score::{Few, Part, Parts, PluginName, Scored};
pub use storage_tier::StorageTier;
