//! An `AIStorageConfig` document (from the cluster, or a file through `aistorctl apply
//! -f`) into the placement core's [`Config`]: what is absent takes the seed's default,
//! then the whole is validated, each error naming the field as the resource spells it.

use std::time::Duration;

use aistor_core::placement::{Config, ConfigError, PreprocessingTraits};

use crate::k8s::crd::{AIStorageConfig, AIStorageConfigSpec, aistorage as spec};

/// Why a document is not a configuration.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("not an AIStorageConfig: {0}")]
    Parse(String),
    #[error("kind {found:?} is not AIStorageConfig (apiVersion ai-storage.keti/v1)")]
    Kind { found: String },
    #[error("invalid AIStorageConfig: {0}")]
    Invalid(#[from] ConfigError),
}

fn set<T: Copy>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

/// The configuration `spec` describes over the defaults, validated.
pub fn from_spec(s: &AIStorageConfigSpec) -> Result<Config, ConfigError> {
    from_spec_over(Config::default(), s)
}

/// The configuration `spec` describes over `base` (the defaults of the mode the
/// coordinator runs in), validated.
pub fn from_spec_over(base: Config, s: &AIStorageConfigSpec) -> Result<Config, ConfigError> {
    let mut c = base;
    if let Some(p) = &s.plugins {
        if let Some(d) = &p.data_locality_aware {
            set(&mut c.data_locality.enabled, d.enabled);
            set(&mut c.data_locality.weight, d.weight);
            if let Some(m) = &d.scoring {
                let t = &mut c.data_locality.scoring;
                set(&mut t.apollo_score_max, m.apollo_score_max);
                set(&mut t.pvc_locality_score_max, m.pvc_locality_score_max);
                set(&mut t.cache_score_max, m.cache_score_max);
                set(&mut t.topology_score_max, m.topology_score_max);
            }
        }
        if let Some(d) = &p.storage_tier_aware {
            set(&mut c.storage_tier.enabled, d.enabled);
            set(&mut c.storage_tier.weight, d.weight);
            if let Some(m) = &d.scoring {
                let t = &mut c.storage_tier.scoring;
                set(&mut t.io_pattern_score_max, m.io_pattern_score_max);
                set(&mut t.pipeline_stage_score_max, m.pipeline_stage_score_max);
                set(&mut t.iops_score_max, m.iops_score_max);
                set(&mut t.capacity_score_max, m.capacity_score_max);
            }
        }
        if let Some(d) = &p.io_pattern_based {
            set(&mut c.io_pattern.enabled, d.enabled);
            set(&mut c.io_pattern.weight, d.weight);
            if let Some(m) = &d.scoring {
                let t = &mut c.io_pattern.scoring;
                set(
                    &mut t.apollo_preference_score_max,
                    m.apollo_preference_score_max,
                );
                set(&mut t.resource_match_score_max, m.resource_match_score_max);
                set(
                    &mut t.io_optimization_score_max,
                    m.io_optimization_score_max,
                );
                set(&mut t.expansion_score_max, m.expansion_score_max);
                set(&mut t.csd_score_max, m.csd_score_max);
            }
        }
        if let Some(h) = &p.live_headroom {
            headroom(&mut c, h)?;
        }
    }
    if let Some(types) = &s.preprocessing_types {
        for (name, t) in types {
            c.preprocessing_types.insert(
                name.clone(),
                PreprocessingTraits {
                    read_intensive: t.read_intensive,
                    write_intensive: t.write_intensive,
                    cpu_intensive: t.cpu_intensive,
                    memory_intensive: t.memory_intensive,
                    data_expansion: t.data_expansion,
                    sequential_access: t.sequential_access,
                    requires_csd: t.requires_csd,
                },
            );
        }
    }
    if let Some(tiers) = &s.storage_tiers {
        for (given, target) in [
            (&tiers.nvme, &mut c.storage_tiers.nvme),
            (&tiers.ssd, &mut c.storage_tiers.ssd),
            (&tiers.hdd, &mut c.storage_tiers.hdd),
        ] {
            if let Some(g) = given {
                set(&mut target.read_heavy_score, g.read_heavy_score);
                set(&mut target.write_heavy_score, g.write_heavy_score);
                set(&mut target.random_score, g.random_score);
                set(&mut target.sequential_score, g.sequential_score);
            }
        }
        if let Some(g) = &tiers.csd {
            let t = &mut c.storage_tiers.csd;
            set(&mut t.filtering_bonus, g.filtering_bonus);
            set(&mut t.aggregation_bonus, g.aggregation_bonus);
            set(&mut t.transformation_bonus, g.transformation_bonus);
        }
    }
    c.validate()?;
    Ok(c)
}

fn headroom(c: &mut Config, h: &spec::LiveHeadroom) -> Result<(), ConfigError> {
    const F: &str = "spec.plugins.liveHeadroom";
    let t = &mut c.headroom;
    set(&mut t.enabled, h.enabled);
    set(&mut t.weight, h.weight);
    if let Some(w) = &h.resource_weights {
        set(&mut t.resource_weights.cpu, w.cpu);
        set(&mut t.resource_weights.memory, w.memory);
        set(&mut t.resource_weights.gpu, w.gpu);
        set(&mut t.resource_weights.disk, w.disk);
    }
    if let Some(u) = &h.usage_thresholds {
        for (name, given, target) in [
            ("cpu", u.cpu, &mut t.usage_thresholds.cpu),
            ("memory", u.memory, &mut t.usage_thresholds.memory),
            ("gpu", u.gpu, &mut t.usage_thresholds.gpu),
            ("disk", u.disk, &mut t.usage_thresholds.disk),
        ] {
            let Some(v) = given else { continue };
            if !v.is_finite() || v < 0.0 {
                return Err(ConfigError {
                    field: format!("{F}.usageThresholds.{name}"),
                    problem: format!("{v} is not a percentage ≥ 0"),
                });
            }
            // 0 turns the resource's threshold off (Koordinator's convention).
            *target = (v > 0.0).then_some(v);
        }
    }
    if let Some(f) = &h.estimated_scaling_factors {
        let s = &mut t.estimated_scaling_factors;
        set(&mut s.cpu, f.cpu);
        set(&mut s.memory, f.memory);
        set(&mut s.gpu, f.gpu);
        if f.disk.is_some() {
            return Err(ConfigError {
                field: format!("{F}.estimatedScalingFactors.disk"),
                problem: "a pod's disk I/O is unknown before it runs: there is no scaling factor for disk".into(),
            });
        }
    }
    if let Some(age) = h.max_measurement_age_seconds {
        if age == 0 {
            return Err(ConfigError {
                field: format!("{F}.maxMeasurementAgeSeconds"),
                problem: "0 would never use a figure".into(),
            });
        }
        t.max_measurement_age = Duration::from_secs(age);
    }
    Ok(())
}

/// An `AIStorageConfig` document, YAML or JSON (what `aistorctl apply -f` sends).
pub fn parse_document(text: &str) -> Result<(AIStorageConfig, Config), DocumentError> {
    let value: serde_json::Value =
        serde_yaml_ng::from_str(text).map_err(|e| DocumentError::Parse(e.to_string()))?;
    let kind = value["kind"].as_str().unwrap_or_default();
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    if kind != "AIStorageConfig" || api_version != "ai-storage.keti/v1" {
        return Err(DocumentError::Kind {
            found: format!("{api_version} {kind}"),
        });
    }
    let object: AIStorageConfig =
        serde_json::from_value(value).map_err(|e| DocumentError::Parse(e.to_string()))?;
    let config = from_spec(&object.spec)?;
    Ok((object, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> AIStorageConfigSpec {
        serde_yaml_ng::from_str(yaml).expect("a spec")
    }

    #[test]
    fn a_spec_lays_its_values_over_the_base_it_is_given() {
        let mut base = Config::default();
        base.headroom.usage_thresholds.cpu = None;
        let c =
            from_spec_over(base.clone(), &spec("plugins: {liveHeadroom: {weight: 2}}")).unwrap();
        assert_eq!(
            c.headroom.usage_thresholds.cpu, None,
            "the base's value stays"
        );
        assert_eq!(c.headroom.weight, 2);
        let c = from_spec_over(
            base,
            &spec("plugins: {liveHeadroom: {usageThresholds: {cpu: 70}}}"),
        )
        .unwrap();
        assert_eq!(c.headroom.usage_thresholds.cpu, Some(70.0));
    }

    #[test]
    fn an_empty_spec_is_the_seeds_defaults() {
        assert_eq!(
            from_spec(&AIStorageConfigSpec::default()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn given_values_replace_the_defaults_and_the_rest_stay() {
        let c = from_spec(&spec(
            r#"
plugins:
  dataLocalityAware: {enabled: false, weight: 5, scoring: {apolloScoreMax: 10, topologyScoreMax: 0}}
  storageTierAware: {weight: 7, scoring: {capacityScoreMax: 30}}
  ioPatternBased: {scoring: {csdScoreMax: 5, apolloPreferenceScoreMax: 1, resourceMatchScoreMax: 2, ioOptimizationScoreMax: 3, expansionScoreMax: 4}}
  liveHeadroom:
    weight: 1
    resourceWeights: {gpu: 4, disk: 0}
    usageThresholds: {cpu: 80, gpu: 90, memory: 0}
    estimatedScalingFactors: {memory: 100}
    maxMeasurementAgeSeconds: 30
preprocessingTypes:
  tokenize: {readIntensive: true, cpuIntensive: true, dataExpansion: 0.5, requiresCSD: true}
storageTiers:
  ssd: {randomScore: 35}
  csd: {filteringBonus: 1}
"#,
        ))
        .unwrap();
        let d = Config::default();
        assert!(!c.data_locality.enabled);
        assert_eq!(c.data_locality.weight, 5);
        assert_eq!(c.data_locality.scoring.apollo_score_max, 10);
        assert_eq!(c.data_locality.scoring.topology_score_max, 0);
        assert_eq!(
            c.data_locality.scoring.cache_score_max,
            d.data_locality.scoring.cache_score_max
        );
        assert!(c.storage_tier.enabled);
        assert_eq!(c.storage_tier.weight, 7);
        assert_eq!(c.storage_tier.scoring.capacity_score_max, 30);
        assert_eq!(c.io_pattern.weight, d.io_pattern.weight);
        let s = c.io_pattern.scoring;
        assert_eq!(
            (
                s.apollo_preference_score_max,
                s.resource_match_score_max,
                s.io_optimization_score_max,
                s.expansion_score_max,
                s.csd_score_max
            ),
            (1, 2, 3, 4, 5)
        );
        let h = c.headroom;
        assert_eq!(h.weight, 1);
        assert_eq!(
            (
                h.resource_weights.cpu,
                h.resource_weights.gpu,
                h.resource_weights.disk
            ),
            (1, 4, 0)
        );
        assert_eq!(h.usage_thresholds.cpu, Some(80.0));
        assert_eq!(h.usage_thresholds.memory, None, "0 turns it off");
        assert_eq!(h.usage_thresholds.gpu, Some(90.0));
        assert_eq!(h.usage_thresholds.disk, d.headroom.usage_thresholds.disk);
        assert_eq!(h.estimated_scaling_factors.memory, 100);
        assert_eq!(h.estimated_scaling_factors.cpu, 85);
        assert_eq!(h.max_measurement_age, Duration::from_secs(30));
        let t = c.preprocessing_types["tokenize"];
        assert!(t.read_intensive && t.cpu_intensive && t.requires_csd && !t.write_intensive);
        assert_eq!(t.data_expansion, 0.5);
        assert_eq!(
            c.preprocessing_types["augmentation"],
            d.preprocessing_types["augmentation"]
        );
        assert_eq!(c.storage_tiers.ssd.random_score, 35);
        assert_eq!(c.storage_tiers.ssd.read_heavy_score, 30);
        assert_eq!(c.storage_tiers.csd.filtering_bonus, 1);
    }

    #[test]
    fn invalid_values_are_refused_naming_the_field() {
        for (yaml, field) in [
            (
                "plugins: {dataLocalityAware: {weight: 11}}",
                "spec.plugins.dataLocalityAware.weight",
            ),
            (
                "plugins: {storageTierAware: {scoring: {iopsScoreMax: -1}}}",
                "spec.plugins.storageTierAware.scoring.iopsScoreMax",
            ),
            (
                "plugins: {liveHeadroom: {usageThresholds: {cpu: -5}}}",
                "spec.plugins.liveHeadroom.usageThresholds.cpu",
            ),
            (
                "plugins: {liveHeadroom: {estimatedScalingFactors: {disk: 50}}}",
                "spec.plugins.liveHeadroom.estimatedScalingFactors.disk",
            ),
            (
                "plugins: {liveHeadroom: {maxMeasurementAgeSeconds: 0}}",
                "spec.plugins.liveHeadroom.maxMeasurementAgeSeconds",
            ),
            (
                "preprocessingTypes: {x: {dataExpansion: -1}}",
                "spec.preprocessingTypes.x.dataExpansion",
            ),
        ] {
            let e = from_spec(&spec(yaml)).expect_err(yaml);
            assert_eq!(e.field, field, "{yaml}: {e}");
        }
    }

    #[test]
    fn documents_are_checked_for_kind_fields_and_values() {
        let good = "apiVersion: ai-storage.keti/v1\nkind: AIStorageConfig\nmetadata: {name: default, namespace: keti}\nspec:\n  plugins:\n    dataLocalityAware: {weight: 4}\n";
        let (object, config) = parse_document(good).unwrap();
        assert_eq!(object.metadata.name.as_deref(), Some("default"));
        assert_eq!(config.data_locality.weight, 4);
        assert!(matches!(
            parse_document("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"),
            Err(DocumentError::Kind { .. })
        ));
        let unknown = parse_document(
            "apiVersion: ai-storage.keti/v1\nkind: AIStorageConfig\nmetadata: {name: d}\nspec: {plugins: {dataLocality: {}}}\n",
        )
        .expect_err("an unknown field");
        assert!(unknown.to_string().contains("dataLocality"), "{unknown}");
        assert!(matches!(
            parse_document(
                "apiVersion: ai-storage.keti/v1\nkind: AIStorageConfig\nmetadata: {name: d}\nspec: {plugins: {ioPatternBased: {weight: -1}}}\n"
            ),
            Err(DocumentError::Invalid(_))
        ));
        assert!(matches!(
            parse_document("{not yaml"),
            Err(DocumentError::Parse(_))
        ));
    }
}
