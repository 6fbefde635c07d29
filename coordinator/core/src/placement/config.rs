//! Placement's configuration: the AIStorageConfig resource's shape (keti.md §5.3,
//! `S: api/v1/types.go`, `config/crd/aistorageconfig.yaml`) plus the live-headroom
//! section aistor adds. `Default` is the seed's defaults (`DefaultAIStorageConfigSpec`)
//! and Koordinator LoadAware's for headroom (coordinator-anchors.md §3.7). Errors
//! name the field as the resource spells it (`spec.plugins.dataLocalityAware.weight`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One plugin's switch, weight and score maxima.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plugin<S> {
    /// A disabled plugin neither filters nor scores.
    pub enabled: bool,
    /// 0–10 (the CRD's bounds). The total adds `weight × normalised score`.
    pub weight: i64,
    pub scoring: S,
}

/// DataLocalityAware's part maxima (A, P, C, T).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLocalityScoring {
    pub apollo_score_max: i64,
    pub pvc_locality_score_max: i64,
    pub cache_score_max: i64,
    pub topology_score_max: i64,
}

/// StorageTierAware's part maxima (I, S, F, Cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageTierScoring {
    pub io_pattern_score_max: i64,
    pub pipeline_stage_score_max: i64,
    pub iops_score_max: i64,
    pub capacity_score_max: i64,
}

/// IOPatternBased's part maxima (Ap, Res, IO, Exp, CSD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoPatternScoring {
    pub apollo_preference_score_max: i64,
    pub resource_match_score_max: i64,
    pub io_optimization_score_max: i64,
    pub expansion_score_max: i64,
    pub csd_score_max: i64,
}

/// A plugin's raw score is out of the sum of its part maxima: the normalised score
/// is `raw × 100 / max`.
pub trait ScoreMax {
    fn max(&self) -> i64;
}

impl ScoreMax for DataLocalityScoring {
    fn max(&self) -> i64 {
        self.apollo_score_max
            + self.pvc_locality_score_max
            + self.cache_score_max
            + self.topology_score_max
    }
}

impl ScoreMax for StorageTierScoring {
    fn max(&self) -> i64 {
        self.io_pattern_score_max
            + self.pipeline_stage_score_max
            + self.iops_score_max
            + self.capacity_score_max
    }
}

impl ScoreMax for IoPatternScoring {
    fn max(&self) -> i64 {
        self.apollo_preference_score_max
            + self.resource_match_score_max
            + self.io_optimization_score_max
            + self.expansion_score_max
            + self.csd_score_max
    }
}

/// `preprocessingTypes.<name>`: how a preprocessing step uses the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreprocessingTraits {
    pub read_intensive: bool,
    pub write_intensive: bool,
    pub cpu_intensive: bool,
    pub memory_intensive: bool,
    /// Output size over input size (1 = the same).
    pub data_expansion: f64,
    pub sequential_access: bool,
    pub requires_csd: bool,
}

/// `storageTiers.{nvme,ssd,hdd}`: StorageTierAware's I/O-pattern points per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierScores {
    pub read_heavy_score: i64,
    pub write_heavy_score: i64,
    pub random_score: i64,
    pub sequential_score: i64,
}

/// `storageTiers.csd`: carried for the resource's shape; the original never reads
/// these bonuses, and neither does aistor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsdBonuses {
    pub filtering_bonus: i64,
    pub aggregation_bonus: i64,
    pub transformation_bonus: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageTiers {
    pub nvme: TierScores,
    pub ssd: TierScores,
    pub hdd: TierScores,
    pub csd: CsdBonuses,
}

/// One value per resource the headroom score reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerResource<T> {
    pub cpu: T,
    pub memory: T,
    pub gpu: T,
    pub disk: T,
}

/// Live headroom (`spec.plugins.liveHeadroom`), Koordinator LoadAware's rules over
/// the agents' figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Headroom {
    pub enabled: bool,
    /// 0–10, the scale of the seed plugins' weights.
    pub weight: i64,
    /// Weights of the per-resource headroom in the node's score (≥ 0).
    pub resource_weights: PerResource<i64>,
    /// Percent of allocatable (GPU and disk: of busy time) that the estimated usage
    /// after placing the pod may not exceed; `None` filters nothing.
    pub usage_thresholds: PerResource<Option<f64>>,
    /// Percent of the pod's request it is estimated to use (1–100; a limit above
    /// the request is taken whole). Disk has none: a pod's I/O is unknown before it
    /// runs.
    pub estimated_scaling_factors: ScalingFactors,
    /// Figures older than this are not used (Koordinator's
    /// `nodeMetricExpirationSeconds`).
    pub max_measurement_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingFactors {
    pub cpu: i64,
    pub memory: i64,
    pub gpu: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub data_locality: Plugin<DataLocalityScoring>,
    pub storage_tier: Plugin<StorageTierScoring>,
    pub io_pattern: Plugin<IoPatternScoring>,
    /// `preprocessingTypes`, by the config key (`featureExtraction`, ...).
    pub preprocessing_types: BTreeMap<String, PreprocessingTraits>,
    pub storage_tiers: StorageTiers,
    pub headroom: Headroom,
}

/// The seed's `preprocessingTypes` (`DefaultAIStorageConfigSpec`).
pub fn default_preprocessing_types() -> BTreeMap<String, PreprocessingTraits> {
    PREPROCESSING_TYPES
        .iter()
        .filter_map(|&k| Some((k.to_owned(), builtin_traits(k)?)))
        .collect()
}

const PREPROCESSING_TYPES: [&str; 7] = [
    "augmentation",
    "transformation",
    "filtering",
    "aggregation",
    "sharding",
    "normalization",
    "featureExtraction",
];

/// keti.md §5.2 IOPatternBased: each type's traits (read, write, CPU, memory,
/// expansion, sequential, CSD). The same values are the original's fallback when
/// the resource lacks the type.
pub(crate) fn builtin_traits(key: &str) -> Option<PreprocessingTraits> {
    let t = |r, w, c, m, e, s, csd| PreprocessingTraits {
        read_intensive: r,
        write_intensive: w,
        cpu_intensive: c,
        memory_intensive: m,
        data_expansion: e,
        sequential_access: s,
        requires_csd: csd,
    };
    Some(match key {
        "augmentation" => t(true, true, true, true, 5.0, true, false),
        "transformation" => t(true, true, true, false, 1.0, true, true),
        "filtering" => t(true, false, false, false, 0.3, true, true),
        "aggregation" => t(true, false, true, true, 0.01, true, true),
        "sharding" => t(true, true, false, false, 1.0, true, false),
        "normalization" => t(true, true, true, false, 1.0, true, true),
        "featureExtraction" => t(true, false, true, true, 0.1, true, true),
        _ => return None,
    })
}

impl Default for Config {
    fn default() -> Self {
        let tier =
            |read_heavy_score, write_heavy_score, random_score, sequential_score| TierScores {
                read_heavy_score,
                write_heavy_score,
                random_score,
                sequential_score,
            };
        Self {
            // keti.md §5.1/§5.3: every KETI plugin enabled, weight 3; maxima 30/30/20/20,
            // 40/30/20/10, 15/25/20/20/20.
            data_locality: Plugin {
                enabled: true,
                weight: 3,
                scoring: DataLocalityScoring {
                    apollo_score_max: 30,
                    pvc_locality_score_max: 30,
                    cache_score_max: 20,
                    topology_score_max: 20,
                },
            },
            storage_tier: Plugin {
                enabled: true,
                weight: 3,
                scoring: StorageTierScoring {
                    io_pattern_score_max: 40,
                    pipeline_stage_score_max: 30,
                    iops_score_max: 20,
                    capacity_score_max: 10,
                },
            },
            io_pattern: Plugin {
                enabled: true,
                weight: 3,
                scoring: IoPatternScoring {
                    apollo_preference_score_max: 15,
                    resource_match_score_max: 25,
                    io_optimization_score_max: 20,
                    expansion_score_max: 20,
                    csd_score_max: 20,
                },
            },
            preprocessing_types: default_preprocessing_types(),
            // keti.md §5.2 StorageTierAware I: NVMe read/write/random/sequential
            // 40/40/40/35, SSD 30/25/30/30, HDD 20/15/10/25; CSD bonuses 20/20/15.
            storage_tiers: StorageTiers {
                nvme: tier(40, 40, 40, 35),
                ssd: tier(30, 25, 30, 30),
                hdd: tier(20, 15, 10, 25),
                csd: CsdBonuses {
                    filtering_bonus: 20,
                    aggregation_bonus: 20,
                    transformation_bonus: 15,
                },
            },
            // coordinator-anchors.md §3.7: Koordinator's thresholds cpu 65 %, memory
            // 95 %, scaling 85 %/70 %, metrics expire after 180 s. GPUs are counted
            // whole by the fit filter and disks have no anchor: no threshold there
            // unless configured. A requested GPU is estimated fully busy (100 %).
            // Headroom weighs like one seed plugin (3).
            headroom: Headroom {
                enabled: true,
                weight: 3,
                resource_weights: PerResource {
                    cpu: 1,
                    memory: 1,
                    gpu: 1,
                    disk: 1,
                },
                usage_thresholds: PerResource {
                    cpu: Some(65.0),
                    memory: Some(95.0),
                    gpu: None,
                    disk: None,
                },
                estimated_scaling_factors: ScalingFactors {
                    cpu: 85,
                    memory: 70,
                    gpu: 100,
                },
                max_measurement_age: Duration::from_secs(180),
            },
        }
    }
}

/// An invalid value, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn error(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The highest plugin weight (the CRD's `maximum: 10`).
pub const MAX_WEIGHT: i64 = 10;

fn check_weight(field: &str, weight: i64) -> Result<(), ConfigError> {
    if (0..=MAX_WEIGHT).contains(&weight) {
        Ok(())
    } else {
        Err(error(field, format!("{weight} is outside 0–{MAX_WEIGHT}")))
    }
}

/// Each part maximum is ≥ 0 and they add up to more than 0 (the normalisation
/// divides by the sum).
fn check_maxima(scoring: &str, parts: &[(&str, i64)]) -> Result<(), ConfigError> {
    for &(name, max) in parts {
        if max < 0 {
            return Err(error(
                format!("{scoring}.{name}"),
                format!("{max} is negative"),
            ));
        }
    }
    if parts.iter().map(|&(_, m)| m).sum::<i64>() == 0 {
        return Err(error(scoring, "the maxima add up to 0"));
    }
    Ok(())
}

impl Config {
    /// The first invalid value, named as the resource spells it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        const P: &str = "spec.plugins";
        check_weight(
            &format!("{P}.dataLocalityAware.weight"),
            self.data_locality.weight,
        )?;
        let s = self.data_locality.scoring;
        check_maxima(
            &format!("{P}.dataLocalityAware.scoring"),
            &[
                ("apolloScoreMax", s.apollo_score_max),
                ("pvcLocalityScoreMax", s.pvc_locality_score_max),
                ("cacheScoreMax", s.cache_score_max),
                ("topologyScoreMax", s.topology_score_max),
            ],
        )?;
        check_weight(
            &format!("{P}.storageTierAware.weight"),
            self.storage_tier.weight,
        )?;
        let s = self.storage_tier.scoring;
        check_maxima(
            &format!("{P}.storageTierAware.scoring"),
            &[
                ("ioPatternScoreMax", s.io_pattern_score_max),
                ("pipelineStageScoreMax", s.pipeline_stage_score_max),
                ("iopsScoreMax", s.iops_score_max),
                ("capacityScoreMax", s.capacity_score_max),
            ],
        )?;
        check_weight(
            &format!("{P}.ioPatternBased.weight"),
            self.io_pattern.weight,
        )?;
        let s = self.io_pattern.scoring;
        check_maxima(
            &format!("{P}.ioPatternBased.scoring"),
            &[
                ("apolloPreferenceScoreMax", s.apollo_preference_score_max),
                ("resourceMatchScoreMax", s.resource_match_score_max),
                ("ioOptimizationScoreMax", s.io_optimization_score_max),
                ("expansionScoreMax", s.expansion_score_max),
                ("csdScoreMax", s.csd_score_max),
            ],
        )?;
        for (name, t) in &self.preprocessing_types {
            if name.is_empty() {
                return Err(error("spec.preprocessingTypes", "an empty type name"));
            }
            let e = t.data_expansion;
            if !(e.is_finite() && e >= 0.0) {
                return Err(error(
                    format!("spec.preprocessingTypes.{name}.dataExpansion"),
                    format!("{e} is not a finite number ≥ 0"),
                ));
            }
        }
        // A tier's points are part of the I/O-pattern part: at most its maximum.
        let io_max = self.storage_tier.scoring.io_pattern_score_max;
        let tiers = &self.storage_tiers;
        for (tier, s) in [("nvme", tiers.nvme), ("ssd", tiers.ssd), ("hdd", tiers.hdd)] {
            for (name, v) in [
                ("readHeavyScore", s.read_heavy_score),
                ("writeHeavyScore", s.write_heavy_score),
                ("randomScore", s.random_score),
                ("sequentialScore", s.sequential_score),
            ] {
                if !(0..=io_max).contains(&v) {
                    return Err(error(
                        format!("spec.storageTiers.{tier}.{name}"),
                        format!(
                            "{v} is outside 0–{io_max} ({P}.storageTierAware.scoring.ioPatternScoreMax)"
                        ),
                    ));
                }
            }
        }
        let csd = tiers.csd;
        for (name, v) in [
            ("filteringBonus", csd.filtering_bonus),
            ("aggregationBonus", csd.aggregation_bonus),
            ("transformationBonus", csd.transformation_bonus),
        ] {
            if v < 0 {
                return Err(error(
                    format!("spec.storageTiers.csd.{name}"),
                    format!("{v} is negative"),
                ));
            }
        }
        self.headroom.validate()
    }
}

impl Headroom {
    fn validate(&self) -> Result<(), ConfigError> {
        const H: &str = "spec.plugins.liveHeadroom";
        check_weight(&format!("{H}.weight"), self.weight)?;
        let w = self.resource_weights;
        let weights = [
            ("cpu", w.cpu),
            ("memory", w.memory),
            ("gpu", w.gpu),
            ("disk", w.disk),
        ];
        for (name, v) in weights {
            if v < 0 {
                return Err(error(
                    format!("{H}.resourceWeights.{name}"),
                    format!("{v} is negative"),
                ));
            }
        }
        if weights.iter().map(|&(_, v)| v).sum::<i64>() == 0 {
            return Err(error(
                format!("{H}.resourceWeights"),
                "the weights add up to 0",
            ));
        }
        let t = self.usage_thresholds;
        for (name, v) in [
            ("cpu", t.cpu),
            ("memory", t.memory),
            ("gpu", t.gpu),
            ("disk", t.disk),
        ] {
            if let Some(v) = v.filter(|v| !(0.0..=100.0).contains(v)) {
                return Err(error(
                    format!("{H}.usageThresholds.{name}"),
                    format!("{v} is outside 0–100"),
                ));
            }
        }
        let f = self.estimated_scaling_factors;
        for (name, v) in [("cpu", f.cpu), ("memory", f.memory), ("gpu", f.gpu)] {
            if !(1..=100).contains(&v) {
                return Err(error(
                    format!("{H}.estimatedScalingFactors.{name}"),
                    format!("{v} is outside 1–100"),
                ));
            }
        }
        if self.max_measurement_age.is_zero() {
            return Err(error(
                format!("{H}.maxMeasurementAgeSeconds"),
                "must be more than 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_and_koordinators_and_valid() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        // Each seed plugin's parts add up to 100 (keti.md §5.2).
        assert_eq!(c.data_locality.scoring.max(), 100);
        assert_eq!(c.storage_tier.scoring.max(), 100);
        assert_eq!(c.io_pattern.scoring.max(), 100);
        assert_eq!(c.preprocessing_types.len(), 7);
        assert_eq!(
            c.preprocessing_types["augmentation"].data_expansion, 5.0,
            "keti.md §5.2 IOPatternBased: augmentation expansion 5.0"
        );
        assert!(c.preprocessing_types["featureExtraction"].requires_csd);
        assert!(!c.preprocessing_types["sharding"].requires_csd);
        assert_eq!(c.headroom.usage_thresholds.cpu, Some(65.0));
        assert_eq!(c.headroom.usage_thresholds.memory, Some(95.0));
    }

    /// Every rule, with the field it names.
    #[test]
    fn invalid_values_name_their_field() {
        type Edit = fn(&mut Config);
        let cases: [(Edit, &str, &str); 22] = [
            (
                |c| c.data_locality.weight = -1,
                "spec.plugins.dataLocalityAware.weight",
                "-1 is outside 0–10",
            ),
            (
                |c| c.storage_tier.weight = 11,
                "spec.plugins.storageTierAware.weight",
                "11 is outside 0–10",
            ),
            (
                |c| c.io_pattern.weight = -3,
                "spec.plugins.ioPatternBased.weight",
                "-3 is outside 0–10",
            ),
            (
                |c| c.data_locality.scoring.cache_score_max = -5,
                "spec.plugins.dataLocalityAware.scoring.cacheScoreMax",
                "-5 is negative",
            ),
            (
                |c| {
                    c.data_locality.scoring = DataLocalityScoring {
                        apollo_score_max: 0,
                        pvc_locality_score_max: 0,
                        cache_score_max: 0,
                        topology_score_max: 0,
                    }
                },
                "spec.plugins.dataLocalityAware.scoring",
                "the maxima add up to 0",
            ),
            (
                |c| c.storage_tier.scoring.capacity_score_max = -1,
                "spec.plugins.storageTierAware.scoring.capacityScoreMax",
                "-1 is negative",
            ),
            (
                |c| c.io_pattern.scoring.csd_score_max = -1,
                "spec.plugins.ioPatternBased.scoring.csdScoreMax",
                "-1 is negative",
            ),
            (
                |c| {
                    c.preprocessing_types
                        .get_mut("filtering")
                        .unwrap()
                        .data_expansion = f64::NAN
                },
                "spec.preprocessingTypes.filtering.dataExpansion",
                "NaN is not a finite number ≥ 0",
            ),
            (
                |c| {
                    c.preprocessing_types
                        .get_mut("sharding")
                        .unwrap()
                        .data_expansion = -0.5
                },
                "spec.preprocessingTypes.sharding.dataExpansion",
                "-0.5 is not a finite number ≥ 0",
            ),
            (
                |c| {
                    let t = c.preprocessing_types["sharding"];
                    c.preprocessing_types.insert(String::new(), t);
                },
                "spec.preprocessingTypes",
                "an empty type name",
            ),
            (
                |c| c.storage_tiers.ssd.random_score = 41,
                "spec.storageTiers.ssd.randomScore",
                "41 is outside 0–40 (spec.plugins.storageTierAware.scoring.ioPatternScoreMax)",
            ),
            (
                |c| c.storage_tiers.hdd.write_heavy_score = -1,
                "spec.storageTiers.hdd.writeHeavyScore",
                "-1 is outside 0–40 (spec.plugins.storageTierAware.scoring.ioPatternScoreMax)",
            ),
            (
                |c| c.storage_tiers.csd.aggregation_bonus = -2,
                "spec.storageTiers.csd.aggregationBonus",
                "-2 is negative",
            ),
            (
                |c| c.headroom.weight = 12,
                "spec.plugins.liveHeadroom.weight",
                "12 is outside 0–10",
            ),
            (
                |c| c.headroom.resource_weights.gpu = -1,
                "spec.plugins.liveHeadroom.resourceWeights.gpu",
                "-1 is negative",
            ),
            (
                |c| {
                    c.headroom.resource_weights = PerResource {
                        cpu: 0,
                        memory: 0,
                        gpu: 0,
                        disk: 0,
                    }
                },
                "spec.plugins.liveHeadroom.resourceWeights",
                "the weights add up to 0",
            ),
            (
                |c| c.headroom.usage_thresholds.cpu = Some(101.0),
                "spec.plugins.liveHeadroom.usageThresholds.cpu",
                "101 is outside 0–100",
            ),
            (
                |c| c.headroom.usage_thresholds.disk = Some(-1.0),
                "spec.plugins.liveHeadroom.usageThresholds.disk",
                "-1 is outside 0–100",
            ),
            (
                |c| c.headroom.usage_thresholds.gpu = Some(f64::NAN),
                "spec.plugins.liveHeadroom.usageThresholds.gpu",
                "NaN is outside 0–100",
            ),
            (
                |c| c.headroom.estimated_scaling_factors.memory = 0,
                "spec.plugins.liveHeadroom.estimatedScalingFactors.memory",
                "0 is outside 1–100",
            ),
            (
                |c| c.headroom.estimated_scaling_factors.gpu = 101,
                "spec.plugins.liveHeadroom.estimatedScalingFactors.gpu",
                "101 is outside 1–100",
            ),
            (
                |c| c.headroom.max_measurement_age = Duration::ZERO,
                "spec.plugins.liveHeadroom.maxMeasurementAgeSeconds",
                "must be more than 0",
            ),
        ];
        for (edit, field, problem) in cases {
            let mut c = Config::default();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!((e.field.as_str(), e.problem.as_str()), (field, problem));
            assert_eq!(e.to_string(), format!("{field}: {problem}"));
        }
    }

    #[test]
    fn the_edges_of_each_range_are_valid() {
        let mut c = Config::default();
        c.data_locality.weight = 0;
        c.storage_tier.weight = 10;
        c.io_pattern.weight = 10;
        c.headroom.weight = 0;
        c.data_locality.scoring.cache_score_max = 0;
        c.storage_tiers.nvme.random_score = 40;
        c.storage_tiers.hdd.random_score = 0;
        c.storage_tiers.csd.filtering_bonus = 0;
        c.preprocessing_types
            .get_mut("filtering")
            .unwrap()
            .data_expansion = 0.0;
        c.headroom.resource_weights = PerResource {
            cpu: 0,
            memory: 0,
            gpu: 0,
            disk: 1,
        };
        c.headroom.usage_thresholds = PerResource {
            cpu: Some(0.0),
            memory: Some(100.0),
            gpu: None,
            disk: Some(100.0),
        };
        c.headroom.estimated_scaling_factors = ScalingFactors {
            cpu: 1,
            memory: 100,
            gpu: 100,
        };
        c.headroom.max_measurement_age = Duration::from_nanos(1);
        assert_eq!(c.validate(), Ok(()));
    }
}
