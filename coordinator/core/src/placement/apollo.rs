//! The parts of APOLLO's `SchedulingPolicy` the scores read (keti.md §5.4, the
//! scheduler's numbering: `plugin_weights` 13, `workload_signature` 20). The shell
//! decodes the wire message into this; `None` in its place means "no policy" (no
//! endpoint, unreachable, slow): every score then takes its no-APOLLO branch.

/// `SchedulingDecision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedulingDecision {
    #[default]
    Unspecified,
    Allow,
    Prefer,
    /// Makes StorageTierAware's tier filter strict.
    Require,
    Delay,
    Reject,
}

/// `StorageClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageClass {
    #[default]
    Unspecified,
    Standard,
    Fast,
    UltraFast,
    Csd,
    Memory,
}

/// `IOPattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoPattern {
    #[default]
    Unknown,
    ReadHeavy,
    WriteHeavy,
    Balanced,
    Sequential,
    Random,
    Bursty,
}

/// `PipelineStage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PipelineStage {
    #[default]
    Unknown,
    DataLoading,
    Preprocessing,
    Training,
    Validation,
    Inference,
    Postprocessing,
    Checkpointing,
    Idle,
}

/// `PreprocessingType` (the scheduler's enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreprocessingType {
    #[default]
    Unknown,
    Augmentation,
    Transformation,
    Filtering,
    Aggregation,
    Sharding,
    Normalization,
    FeatureExtract,
}

impl PreprocessingType {
    /// The pod's spelling (`ai-storage.keti/preprocessing-type`), with the
    /// original's synonyms; anything else is `Unknown`.
    pub fn parse(text: &str) -> Self {
        match text.to_lowercase().as_str() {
            "augmentation" | "augment" | "aug" => Self::Augmentation,
            "transformation" | "transform" | "convert" => Self::Transformation,
            "filtering" | "filter" | "clean" => Self::Filtering,
            "aggregation" | "aggregate" | "agg" => Self::Aggregation,
            "sharding" | "shard" | "partition" => Self::Sharding,
            "feature_extraction" | "feature" | "extract" => Self::FeatureExtract,
            "normalization" | "normalize" | "norm" => Self::Normalization,
            _ => Self::Unknown,
        }
    }

    /// Its key in the AIStorageConfig's `preprocessingTypes`.
    pub fn config_key(self) -> Option<&'static str> {
        Some(match self {
            Self::Augmentation => "augmentation",
            Self::Transformation => "transformation",
            Self::Filtering => "filtering",
            Self::Aggregation => "aggregation",
            Self::Sharding => "sharding",
            Self::FeatureExtract => "featureExtraction",
            Self::Normalization => "normalization",
            Self::Unknown => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePreference {
    pub node_name: String,
    /// 0–100.
    pub score: i32,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageRequirements {
    pub storage_class: StorageClass,
    pub size_bytes: i64,
    pub min_iops: i64,
    pub min_throughput_mbps: i64,
    pub expected_io_pattern: IoPattern,
    pub requires_csd: bool,
}

/// `PluginWeights`: 0–1 each.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PluginWeights {
    pub data_locality_aware: f32,
    pub storage_tier_aware: f32,
    pub io_pattern_based: f32,
    pub kueue_aware: f32,
    pub pipeline_stage_aware: f32,
}

/// `WorkloadSignatureInfo`: the fields the scores read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkloadSignature {
    pub current_stage: PipelineStage,
    pub io_pattern: IoPattern,
    pub pipeline_step: String,
    pub preprocessing_type: PreprocessingType,
    pub data_locations: Vec<String>,
    pub cached_on_nodes: Vec<String>,
}

/// `SchedulingPolicy`: the fields the scores read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    pub request_id: String,
    pub decision: SchedulingDecision,
    pub node_preferences: Vec<NodePreference>,
    pub storage_requirements: Option<StorageRequirements>,
    pub plugin_weights: Option<PluginWeights>,
    pub workload_signature: Option<WorkloadSignature>,
}

/// The original's accessors (`S: internal/apollo/client.go`), each on an optional
/// policy so a plugin reads them the same way with or without one.
pub(crate) trait PolicyView<'a>: Copy {
    fn get(self) -> Option<&'a Policy>;

    fn signature(self) -> Option<&'a WorkloadSignature> {
        self.get().and_then(|p| p.workload_signature.as_ref())
    }

    fn storage(self) -> Option<&'a StorageRequirements> {
        self.get().and_then(|p| p.storage_requirements.as_ref())
    }

    /// `IsPreprocessingWorkload`: the signature's stage is PREPROCESSING or
    /// DATA_LOADING, or its step is exactly `preprocess`, `preprocessing` or
    /// `data-loading`.
    fn is_preprocessing(self) -> bool {
        self.signature().is_some_and(|s| {
            matches!(
                s.current_stage,
                PipelineStage::Preprocessing | PipelineStage::DataLoading
            ) || matches!(
                s.pipeline_step.as_str(),
                "preprocess" | "preprocessing" | "data-loading"
            )
        })
    }

    /// `GetNodePreferenceScore`: the first preference naming the node, else 0.
    fn preference(self, node: &str) -> i32 {
        self.get()
            .and_then(|p| p.node_preferences.iter().find(|n| n.node_name == node))
            .map_or(0, |n| n.score)
    }

    /// `GetIOPattern`: the storage requirements' pattern when there are storage
    /// requirements (even UNKNOWN), else the signature's.
    fn io_pattern(self) -> IoPattern {
        match (self.storage(), self.signature()) {
            (Some(s), _) => s.expected_io_pattern,
            (None, Some(w)) => w.io_pattern,
            (None, None) => IoPattern::Unknown,
        }
    }

    fn requires_csd(self) -> bool {
        self.storage().is_some_and(|s| s.requires_csd)
    }

    fn preprocessing_type(self) -> PreprocessingType {
        self.signature()
            .map_or(PreprocessingType::Unknown, |s| s.preprocessing_type)
    }

    fn pipeline_step(self) -> &'a str {
        self.signature().map_or("", |s| s.pipeline_step.as_str())
    }
}

impl<'a> PolicyView<'a> for Option<&'a Policy> {
    fn get(self) -> Option<&'a Policy> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_signature(s: WorkloadSignature) -> Policy {
        Policy {
            workload_signature: Some(s),
            ..Policy::default()
        }
    }

    #[test]
    fn preprocessing_is_the_stage_or_the_exact_step() {
        for (stage, step, expected) in [
            (PipelineStage::Preprocessing, "", true),
            (PipelineStage::DataLoading, "", true),
            (PipelineStage::Training, "preprocess", true),
            (PipelineStage::Unknown, "preprocessing", true),
            (PipelineStage::Unknown, "data-loading", true),
            // The step is compared exactly, as the original does.
            (PipelineStage::Unknown, "Preprocessing", false),
            (PipelineStage::Training, "train", false),
        ] {
            let p = with_signature(WorkloadSignature {
                current_stage: stage,
                pipeline_step: step.into(),
                ..WorkloadSignature::default()
            });
            assert_eq!(Some(&p).is_preprocessing(), expected, "{stage:?} {step:?}");
        }
        assert!(!None::<&Policy>.is_preprocessing());
        assert!(!Some(&Policy::default()).is_preprocessing());
    }

    #[test]
    fn accessors_read_the_fields_the_original_reads() {
        let mut p = Policy {
            node_preferences: vec![
                NodePreference {
                    node_name: "a".into(),
                    score: 70,
                    reason: String::new(),
                },
                NodePreference {
                    node_name: "a".into(),
                    score: 10,
                    reason: String::new(),
                },
            ],
            ..with_signature(WorkloadSignature {
                io_pattern: IoPattern::Random,
                pipeline_step: "training".into(),
                preprocessing_type: PreprocessingType::Filtering,
                ..WorkloadSignature::default()
            })
        };
        let v = Some(&p);
        assert_eq!(v.preference("a"), 70);
        assert_eq!(v.preference("b"), 0);
        assert_eq!(v.io_pattern(), IoPattern::Random);
        assert_eq!(v.pipeline_step(), "training");
        assert_eq!(v.preprocessing_type(), PreprocessingType::Filtering);
        assert!(!v.requires_csd());
        // Storage requirements win for the pattern, even when theirs is UNKNOWN.
        p.storage_requirements = Some(StorageRequirements {
            requires_csd: true,
            ..StorageRequirements::default()
        });
        let v = Some(&p);
        assert_eq!(v.io_pattern(), IoPattern::Unknown);
        assert!(v.requires_csd());
        let none = None::<&Policy>;
        assert_eq!(none.io_pattern(), IoPattern::Unknown);
        assert_eq!(none.preference("a"), 0);
        assert_eq!(none.pipeline_step(), "");
        assert_eq!(none.preprocessing_type(), PreprocessingType::Unknown);
        assert_eq!(
            Some(&Policy::default()).io_pattern(),
            IoPattern::Unknown,
            "no storage requirements, no signature"
        );
    }

    #[test]
    fn preprocessing_types_parse_with_the_originals_synonyms() {
        use PreprocessingType::*;
        for (text, t, key) in [
            ("augmentation", Augmentation, "augmentation"),
            ("AUG", Augmentation, "augmentation"),
            ("augment", Augmentation, "augmentation"),
            ("transform", Transformation, "transformation"),
            ("transformation", Transformation, "transformation"),
            ("convert", Transformation, "transformation"),
            ("filter", Filtering, "filtering"),
            ("filtering", Filtering, "filtering"),
            ("clean", Filtering, "filtering"),
            ("agg", Aggregation, "aggregation"),
            ("aggregate", Aggregation, "aggregation"),
            ("aggregation", Aggregation, "aggregation"),
            ("partition", Sharding, "sharding"),
            ("shard", Sharding, "sharding"),
            ("sharding", Sharding, "sharding"),
            ("feature_extraction", FeatureExtract, "featureExtraction"),
            ("feature", FeatureExtract, "featureExtraction"),
            ("extract", FeatureExtract, "featureExtraction"),
            ("norm", Normalization, "normalization"),
            ("normalize", Normalization, "normalization"),
            ("normalization", Normalization, "normalization"),
        ] {
            assert_eq!(PreprocessingType::parse(text), t, "{text}");
            assert_eq!(t.config_key(), Some(key));
        }
        // The config key is not one of the pod's spellings.
        assert_eq!(PreprocessingType::parse("featureExtraction"), Unknown);
        assert_eq!(Unknown.config_key(), None);
    }
}
