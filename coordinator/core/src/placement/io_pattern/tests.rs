use super::*;
use crate::placement::apollo::{
    NodePreference, PipelineStage, StorageRequirements, WorkloadSignature,
};
use crate::placement::fixtures::{node, pod, signed, storage};

/// Labels or annotations.
type Pairs<'a> = &'a [(&'a str, &'a str)];

const PREPROCESSING: (&str, &str) = ("ai-storage.keti/workload-stage", "preprocessing");

fn traits(r: bool, w: bool, c: bool, m: bool, e: f64, s: bool) -> PreprocessingTraits {
    PreprocessingTraits {
        read_intensive: r,
        write_intensive: w,
        cpu_intensive: c,
        memory_intensive: m,
        data_expansion: e,
        sequential_access: s,
        requires_csd: false,
    }
}

fn facts<'a>(pod: &'a PodInput, policy: Option<&'a Policy>) -> PatternFacts<'a> {
    PatternFacts::of(pod, policy, &Config::default())
}

/// keti.md §5.2 IOPatternBased: which pods it judges (DataLocalityAware's test,
/// case-insensitive, plus the preprocessing-type annotation).
#[test]
fn preprocessing_pods_are_recognised_as_the_original_does() {
    for (labels, annotations, expected) in [
        (vec![("pipeline-step", "Preprocess")], vec![], true),
        (vec![("pipeline-step", "data-loading")], vec![], true),
        (vec![("pipeline-step", "PREPROCESSING")], vec![], true),
        (vec![("pipeline-step", "training")], vec![], false),
        (vec![("stage", "Data-Loading")], vec![], true),
        (vec![("stage", "preprocess")], vec![], true),
        (vec![("stage", "preprocessing")], vec![], true),
        (vec![("stage", "serving")], vec![], false),
        (
            vec![],
            vec![("ai-storage.keti/workload-stage", "text-preprocess")],
            true,
        ),
        (
            vec![],
            vec![("ai-storage.keti/workload-stage", "inference")],
            false,
        ),
        (
            vec![],
            vec![("ai-storage.keti/preprocessing-type", "anything")],
            true,
        ),
        (vec![("preprocessing-type", "filtering")], vec![], false),
        (vec![], vec![], false),
    ] {
        let p = pod(&labels, &annotations);
        assert_eq!(
            facts(&p, None).preprocessing,
            expected,
            "{labels:?} {annotations:?}"
        );
    }
    let apollo = signed(WorkloadSignature {
        current_stage: PipelineStage::Preprocessing,
        ..WorkloadSignature::default()
    });
    let plain = pod(&[], &[]);
    assert!(facts(&plain, Some(&apollo)).preprocessing);
}

#[test]
fn other_pods_get_the_neutral_50_and_no_filter() {
    let p = pod(&[], &[("ai-storage.keti/require-csd", "true")]);
    let f = facts(&p, None);
    let n = node("n", &[], &[]);
    let s = score(&f, &n, &Config::default());
    assert_eq!((s.raw, s.max, s.normalised()), (50, 100, 50.0));
    assert_eq!(filter(&f, &n), None);
}

/// keti.md §5.2 IOPatternBased: each preprocessing type's traits from the
/// `preprocessingTypes` table.
#[test]
fn traits_come_from_apollos_type_then_the_pods() {
    let by_type = |t: PreprocessingType| {
        let p = signed(WorkloadSignature {
            preprocessing_type: t,
            ..WorkloadSignature::default()
        });
        facts(&pod(&[], &[]), Some(&p)).traits
    };
    let defaults = Config::default().preprocessing_types;
    for (t, key) in [
        (PreprocessingType::Augmentation, "augmentation"),
        (PreprocessingType::Transformation, "transformation"),
        (PreprocessingType::Filtering, "filtering"),
        (PreprocessingType::Aggregation, "aggregation"),
        (PreprocessingType::Sharding, "sharding"),
        (PreprocessingType::Normalization, "normalization"),
        (PreprocessingType::FeatureExtract, "featureExtraction"),
    ] {
        assert_eq!(by_type(t), defaults[key], "{key}");
    }
    // APOLLO's type wins over the pod's.
    let apollo = signed(WorkloadSignature {
        preprocessing_type: PreprocessingType::Filtering,
        ..WorkloadSignature::default()
    });
    let p = pod(
        &[],
        &[("ai-storage.keti/preprocessing-type", "augmentation")],
    );
    let f = facts(&p, Some(&apollo));
    assert_eq!(
        (f.traits, f.traits_from),
        (defaults["filtering"], TraitsFrom::ApolloType)
    );
    // Without one, the pod's annotation, then its label (aistor's change).
    let f = facts(&p, None);
    assert_eq!(
        (f.traits, f.traits_from),
        (defaults["augmentation"], TraitsFrom::PodType)
    );
    let labelled = pod(&[("preprocessing-type", "shard")], &[]);
    assert_eq!(facts(&labelled, None).traits, defaults["sharding"]);
    // A present annotation that names no type stops there.
    let odd = pod(
        &[("preprocessing-type", "shard")],
        &[("ai-storage.keti/preprocessing-type", "magic")],
    );
    assert_eq!(facts(&odd, None).traits_from, TraitsFrom::Default);
}

#[test]
fn the_configured_table_is_used_and_missing_types_fall_back_to_the_seeds() {
    let p = pod(&[], &[("ai-storage.keti/preprocessing-type", "filtering")]);
    let mut c = Config::default();
    let custom = traits(false, true, true, true, 9.0, false);
    c.preprocessing_types.insert("filtering".into(), custom);
    assert_eq!(PatternFacts::of(&p, None, &c).traits, custom);
    c.preprocessing_types.clear();
    assert_eq!(
        PatternFacts::of(&p, None, &c).traits,
        Config::default().preprocessing_types["filtering"]
    );
}

/// `inferCharacteristicsFromIOPattern` when APOLLO gives a pattern but no type.
#[test]
fn traits_are_inferred_from_apollos_io_pattern() {
    for (pattern, expected) in [
        (
            IoPattern::ReadHeavy,
            traits(true, false, false, false, 0.5, true),
        ),
        (
            IoPattern::WriteHeavy,
            traits(false, true, false, false, 2.0, true),
        ),
        (
            IoPattern::Sequential,
            traits(true, true, false, false, 1.0, true),
        ),
        (
            IoPattern::Random,
            traits(true, true, false, true, 1.0, false),
        ),
        (
            IoPattern::Balanced,
            traits(true, true, true, true, 1.0, true),
        ),
        (
            IoPattern::Bursty,
            traits(true, true, false, true, 1.0, false),
        ),
    ] {
        let p = storage(StorageRequirements {
            expected_io_pattern: pattern,
            ..StorageRequirements::default()
        });
        let plain = pod(&[], &[]);
        let f = facts(&plain, Some(&p));
        assert_eq!(
            (f.traits, f.traits_from),
            (expected, TraitsFrom::ApolloIoPattern),
            "{pattern:?}"
        );
    }
    // The pod's io-pattern annotation is not read here (as in the original).
    let p = pod(&[], &[("ai-storage.keti/io-pattern", "random")]);
    let f = facts(&p, None);
    assert_eq!(
        (f.traits, f.traits_from),
        (
            traits(true, false, false, false, 1.0, true),
            TraitsFrom::Default
        )
    );
    // APOLLO's CSD requirement is added to any traits.
    let csd = storage(StorageRequirements {
        requires_csd: true,
        ..StorageRequirements::default()
    });
    let f = facts(&p, Some(&csd));
    assert!(f.traits.requires_csd && f.requires_csd);
    let augment = pod(&[], &[("ai-storage.keti/preprocessing-type", "aug")]);
    assert!(facts(&augment, Some(&csd)).requires_csd);
    assert!(!facts(&augment, None).requires_csd);
}

/// keti.md §5.2 IOPatternBased Ap (max 15): no APOLLO 7; p > 0 p·15/100; else 5.
#[test]
fn apollo_part_reads_the_preference() {
    let n = node("n1", &[], &[]);
    assert_eq!(apollo_points(None, "n1", 15).0, 7);
    for (score, expected) in [(100, 15), (50, 7), (33, 4), (1, 0), (0, 5), (-1, 5)] {
        let p = Policy {
            node_preferences: vec![NodePreference {
                node_name: "n1".into(),
                score,
                reason: String::new(),
            }],
            ..Policy::default()
        };
        assert_eq!(apollo_points(Some(&p), &n.name, 15).0, expected, "{score}");
    }
    // Data locations do not count here (they do in DataLocalityAware).
    let located = signed(WorkloadSignature {
        data_locations: vec!["n1".into()],
        ..WorkloadSignature::default()
    });
    assert_eq!(apollo_points(Some(&located), "n1", 15).0, 5);
}

/// keti.md §5.2 IOPatternBased Res (max 25).
#[test]
fn resource_part_matches_cpu_memory_and_read_speed() {
    let cpu = traits(false, false, true, false, 1.0, false);
    let mem = traits(false, false, false, true, 1.0, false);
    let read = traits(true, false, false, false, 1.0, false);
    let none = traits(false, false, false, false, 1.0, false);
    let all = traits(true, true, true, true, 1.0, false);
    let cases: [(PreprocessingTraits, Pairs<'_>, Pairs<'_>, i64); 14] = [
        // Neither CPU- nor memory-intensive: 4 + 4.
        (none, &[], &[], 8),
        // CPU: high-cpu 8, ≥ 16 cores 4; memory not intensive 4.
        (cpu, &[("node-capability/high-cpu", "true")], &[], 12),
        (cpu, &[("cpu-cores", "16")], &[], 8),
        (cpu, &[("cpu-cores", "15")], &[], 4),
        (cpu, &[("cpu-cores", "many")], &[], 4),
        (
            cpu,
            &[("node-capability/high-cpu", ""), ("cpu-cores", "64")],
            &[],
            16,
        ),
        // Memory: high-memory 8, ≥ 64 GB (annotation) 4; CPU not intensive 4.
        (mem, &[("node-capability/high-memory", "true")], &[], 12),
        (
            mem,
            &[],
            &[("ai-storage.keti/available-memory-gb", "64")],
            8,
        ),
        (
            mem,
            &[],
            &[("ai-storage.keti/available-memory-gb", "63")],
            4,
        ),
        (mem, &[("available-memory-gb", "128")], &[], 4),
        // Read: NVMe 5, else SSD 3.
        (read, &[("storage-tier/nvme", "true")], &[], 13),
        (read, &[("storage-tier/ssd", "true")], &[], 11),
        (
            read,
            &[("storage-tier/ssd", "true"), ("storage-tier/nvme", "true")],
            &[],
            13,
        ),
        // Everything: 8 + 4 + 8 + 4 + 5 = 29, capped at 25.
        (
            all,
            &[
                ("node-capability/high-cpu", "true"),
                ("cpu-cores", "32"),
                ("node-capability/high-memory", "true"),
                ("storage-tier/nvme", "true"),
            ],
            &[("ai-storage.keti/available-memory-gb", "512")],
            25,
        ),
    ];
    for (t, labels, annotations, expected) in cases {
        let n = node("n", labels, annotations);
        assert_eq!(resource_points(t, &n, 25), expected, "{t:?} {labels:?}");
    }
}

/// keti.md §5.2 IOPatternBased IO (max 20).
#[test]
fn io_part_rewards_buffers_caches_and_nvme() {
    let seq = traits(false, false, false, false, 1.0, true);
    let read = traits(true, false, false, false, 1.0, false);
    let read_write = traits(true, true, false, false, 1.0, false);
    let write = traits(false, true, false, false, 1.0, false);
    let all = traits(false, true, false, false, 1.0, true);
    let buffer = [("ai-storage.keti/large-io-buffer", "true")];
    let cases: [(PreprocessingTraits, Pairs<'_>, Pairs<'_>, i64); 10] = [
        (seq, &[], &[], 8),
        (seq, &[], &buffer, 12),
        // The buffer only counts for sequential access.
        (read, &[], &buffer, 0),
        (read, &[("storage-capability/read-cache", "true")], &[], 4),
        // Read-cache only for read- but not write-intensive steps.
        (
            read_write,
            &[("storage-capability/read-cache", "true")],
            &[],
            0,
        ),
        (
            write,
            &[("storage-capability/write-buffer", "true")],
            &[],
            4,
        ),
        (write, &[("storage-tier/nvme", "true")], &[], 4),
        (
            write,
            &[
                ("storage-capability/write-buffer", "true"),
                ("storage-tier/nvme", "true"),
            ],
            &[],
            8,
        ),
        (
            all,
            &[
                ("storage-capability/write-buffer", "true"),
                ("storage-tier/nvme", "true"),
            ],
            &buffer,
            20,
        ),
        (seq, &[("storage-tier/nvme", "true")], &[], 8),
    ];
    for (t, labels, annotations, expected) in cases {
        let n = node("n", labels, annotations);
        assert_eq!(io_points(t, &n, 20), expected, "{t:?} {labels:?}");
    }
    // Other maxima: with 10 points, 4 + 2 + 2 + 2 = 10.
    let n = node(
        "n",
        &[
            ("storage-capability/write-buffer", "true"),
            ("storage-tier/nvme", "true"),
        ],
        &buffer,
    );
    assert_eq!(io_points(all, &n, 10), 10);
    assert_eq!(io_points(all, &n, 7), 2 + 1 + 1 + 1);
}

/// keti.md §5.2 IOPatternBased Exp (max 20).
#[test]
fn expansion_part_weighs_capacity_against_growth() {
    for (expansion, capacity, expected) in [
        // ×5: m = 6 → 3000 / 1200 / 600 GB.
        (5.0, Some("3000"), 20),
        (5.0, Some("2999"), 15),
        (5.0, Some("1200"), 15),
        (5.0, Some("1199"), 10),
        (5.0, Some("600"), 10),
        (5.0, Some("599"), 5),
        (5.0, None, 10),
        (5.0, Some("lots"), 10),
        // ×1.5: m = 2 → 1000 / 400 / 200.
        (1.5, Some("1000"), 20),
        (1.5, Some("999"), 15),
        (1.5, Some("399"), 10),
        (1.5, Some("199"), 5),
        // Same size: 10; shrinking: 15.
        (1.0, Some("5000"), 10),
        (0.3, None, 15),
    ] {
        let annotations: Vec<(&str, &str)> = capacity
            .map(|c| ("ai-storage.keti/available-capacity-gb", c))
            .into_iter()
            .collect();
        let n = node("n", &[], &annotations);
        let t = traits(true, false, false, false, expansion, true);
        assert_eq!(
            expansion_points(t, &n, 20).0,
            expected,
            "{expansion} {capacity:?}"
        );
    }
}

/// keti.md §5.2 IOPatternBased CSD (max 20).
#[test]
fn csd_part_prefers_csd_nodes_when_the_step_wants_one() {
    let ops = "ai-storage.keti/csd-compute-ops";
    let cases: [(bool, Pairs<'_>, Pairs<'_>, i64); 8] = [
        (false, &[("storage-tier/csd", "true")], &[], 10),
        (true, &[("storage-tier/csd", "true")], &[(ops, "4")], 20),
        (true, &[("storage-tier/csd", "true")], &[(ops, "0")], 18),
        (true, &[("storage-tier/csd", "true")], &[(ops, "x")], 18),
        (true, &[("storage-tier/csd", "true")], &[], 18),
        (true, &[("layer", "storage")], &[], 12),
        (true, &[("layer", "compute")], &[], 5),
        // `storage-tier=csd` passes the filter but is not a CSD here (as in the
        // original).
        (true, &[("storage-tier", "csd")], &[], 5),
    ];
    for (required, labels, annotations, expected) in cases {
        let n = node("n", labels, annotations);
        assert_eq!(csd_points(required, &n, 20).0, expected, "{labels:?}");
    }
}

/// keti.md §5.2 IOPatternBased filter: only a preprocessing pod that needs a CSD
/// and says `require-csd=true`.
#[test]
fn the_filter_needs_the_annotation_as_well_as_the_need() {
    let with = |annotations: &[(&str, &str)]| pod(&[], annotations);
    let filtering = ("ai-storage.keti/preprocessing-type", "filtering");
    let sharding = ("ai-storage.keti/preprocessing-type", "sharding");
    let required = ("ai-storage.keti/require-csd", "true");
    let plain = node("n", &[], &[]);
    for (p, n, expected) in [
        (with(&[filtering, required]), &plain, Some(Rejection::NoCsd)),
        (
            with(&[filtering, required]),
            &node("n", &[("storage-tier/csd", "")], &[]),
            None,
        ),
        (
            with(&[filtering, required]),
            &node("n", &[("storage-tier", "CSD")], &[]),
            None,
        ),
        (
            with(&[filtering, required]),
            &node("n", &[("storage-tier", "computational")], &[]),
            Some(Rejection::NoCsd),
        ),
        (with(&[filtering]), &plain, None),
        (
            with(&[filtering, ("ai-storage.keti/require-csd", "yes")]),
            &plain,
            None,
        ),
        // Sharding needs no CSD.
        (with(&[sharding, required]), &plain, None),
    ] {
        assert_eq!(filter(&facts(&p, None), n), expected, "{p:?} {n:?}");
    }
    // Not a preprocessing pod: never filtered, even if APOLLO wants a CSD.
    let csd = storage(StorageRequirements {
        requires_csd: true,
        ..StorageRequirements::default()
    });
    let p = with(&[required]);
    assert_eq!(filter(&facts(&p, Some(&csd)), &plain), None);
    let p = with(&[PREPROCESSING, required]);
    assert_eq!(
        filter(&facts(&p, Some(&csd)), &plain),
        Some(Rejection::NoCsd)
    );
}

/// The seed's guide's example pod (seed 001 §4.2) on a well-equipped node.
#[test]
fn the_seed_guides_example_pod_scores_with_its_type() {
    let guide = pod(
        &[("pipeline-step", "preprocessing")],
        &[
            PREPROCESSING,
            ("ai-storage.keti/preprocessing-type", "augmentation"),
            ("ai-storage.keti/io-pattern", "sequential"),
        ],
    );
    let n = node(
        "n",
        &[
            ("storage-tier/nvme", "true"),
            ("node-capability/high-cpu", "true"),
            ("cpu-cores", "32"),
            ("node-capability/high-memory", "true"),
        ],
        &[
            ("ai-storage.keti/available-memory-gb", "128"),
            ("ai-storage.keti/available-capacity-gb", "4000"),
            ("ai-storage.keti/large-io-buffer", "true"),
        ],
    );
    let s = score(&facts(&guide, None), &n, &Config::default());
    // Ap 7 (no APOLLO) + Res 25 (29 capped) + IO 8 + 4 + 4 (NVMe, writes) + Exp 20
    // (4000 ≥ 500·6) + CSD 10 (augmentation needs none) = 78.
    assert_eq!(
        s.parts.iter().map(|p| p.points).collect::<Vec<_>>(),
        [7, 25, 16, 20, 10]
    );
    assert_eq!((s.raw, s.max, s.normalised()), (78, 100, 78.0));
    assert!(s.parts.iter().all(|p| !p.why.is_empty()));
    // The original ignored the type without APOLLO: default traits (read,
    // sequential, ×1) give Ap 7 + Res 4 + 4 + 5 + IO 8 + 4 + Exp 10 + CSD 10 = 52.
    let untyped = pod(&[("pipeline-step", "preprocessing")], &[PREPROCESSING]);
    let s = score(&facts(&untyped, None), &n, &Config::default());
    assert_eq!(
        s.parts.iter().map(|p| p.points).collect::<Vec<_>>(),
        [7, 13, 12, 10, 10]
    );
    assert_eq!(s.raw, 52);
    // Other maxima: normalised against their sum.
    let mut c = Config::default();
    c.io_pattern.scoring.csd_score_max = 120;
    let s = score(&facts(&guide, None), &n, &c);
    assert_eq!((s.raw, s.max, s.normalised()), (128, 200, 64.0));
}
