use super::*;
use crate::placement::apollo::{StorageRequirements, WorkloadSignature};
use crate::placement::fixtures::{node, pod, signed, storage};

/// Labels or annotations.
type Pairs<'a> = &'a [(&'a str, &'a str)];

fn points(pod: &PodInput, policy: Option<&Policy>, node: &NodeInput) -> Vec<i64> {
    let s = score(&TierFacts::of(pod, policy), node, &Config::default());
    s.parts.iter().map(|p| p.points).collect()
}

/// One part of the score: 0 = I, 1 = S, 2 = F, 3 = Cap.
fn part(i: usize, pod: &PodInput, policy: Option<&Policy>, node: &NodeInput) -> i64 {
    points(pod, policy, node)[i]
}

#[test]
fn node_tiers_come_from_both_label_schemes_and_the_highest_is_numeric() {
    use StorageTier::*;
    for (labels, highest) in [
        (vec![], None),
        (vec![("storage-tier/hdd", "true")], Some(Hdd)),
        (vec![("storage-tier/ssd", "")], Some(Ssd)),
        (
            vec![("storage-tier/ssd", "true"), ("storage-tier/nvme", "true")],
            Some(Nvme),
        ),
        // keti.md §5.2: HDD < SSD < NVMe < CSD < Memory, numerically.
        (
            vec![("storage-tier/nvme", "true"), ("storage-tier/csd", "true")],
            Some(Csd),
        ),
        (vec![("storage-tier/memory", "true")], Some(Memory)),
        (vec![("storage-tier", "ultra-fast")], Some(Nvme)),
        (vec![("storage-tier", "FAST")], Some(Ssd)),
        (vec![("storage-tier", "standard")], Some(Hdd)),
        (vec![("storage-tier", "computational")], Some(Csd)),
        (vec![("storage-tier", "ram")], Some(Memory)),
        (vec![("storage-tier", "tape")], None),
        (
            vec![("storage-tier", "hdd"), ("storage-tier/ssd", "true")],
            Some(Ssd),
        ),
    ] {
        let n = node("n", &labels, &[]);
        assert_eq!(TierSet::of(&n.labels).highest(), highest, "{labels:?}");
    }
    for (text, tier) in [
        ("nvme", Nvme),
        ("ssd", Ssd),
        ("hdd", Hdd),
        ("csd", Csd),
        ("memory", Memory),
    ] {
        assert_eq!(StorageTier::parse(text), Some(tier));
        assert_eq!(StorageTier::parse(tier.as_str()), Some(tier));
    }
}

/// keti.md §5.2 StorageTierAware I (max 40): the storageTiers table, bursty and
/// balanced fractions, neutral 20.
#[test]
fn io_pattern_part_follows_the_tier_table() {
    let nvme = [("storage-tier/nvme", "true")];
    let mem = [("storage-tier/memory", "true")];
    let ssd = [("storage-tier/ssd", "true")];
    let hdd = [("storage-tier/hdd", "true")];
    let csd = [("storage-tier/csd", "true")];
    let cases: [(&str, Pairs<'_>, i64); 29] = [
        ("random", &nvme, 40),
        ("sequential", &nvme, 35),
        ("read-heavy", &nvme, 40),
        ("write-heavy", &nvme, 40),
        ("bursty", &nvme, 40),
        ("balanced", &nvme, 40),
        // Memory reads NVMe's row.
        ("sequential", &mem, 35),
        ("bursty", &mem, 40),
        ("balanced", &mem, 40),
        ("random", &ssd, 30),
        ("sequential", &ssd, 30),
        ("readheavy", &ssd, 30),
        ("writeheavy", &ssd, 25),
        // Bursty SSD: 40·5/8 = 25; balanced: 40·3/4 = 30.
        ("bursty", &ssd, 25),
        ("balanced", &ssd, 30),
        ("random", &hdd, 10),
        ("sequential", &hdd, 25),
        ("read-heavy", &hdd, 20),
        ("write-heavy", &hdd, 15),
        // Bursty HDD: 40/4 = 10; balanced: 40·3/8 = 15.
        ("bursty", &hdd, 10),
        ("balanced", &hdd, 15),
        // CSD: 40/2 whatever the pattern.
        ("random", &csd, 20),
        ("write-heavy", &csd, 20),
        ("bursty", &csd, 20),
        ("balanced", &csd, 20),
        // Unknown pattern, or no tier: neutral 40/2.
        ("scattered", &nvme, 20),
        ("random", &[], 20),
        ("RANDOM", &hdd, 10),
        ("Sequential", &ssd, 30),
    ];
    for (pattern, labels, expected) in cases {
        let p = pod(&[], &[("ai-storage.keti/io-pattern", pattern)]);
        assert_eq!(
            part(0, &p, None, &node("n", labels, &[])),
            expected,
            "{pattern} on {labels:?}"
        );
    }
    // No pattern at all: neutral.
    assert_eq!(part(0, &pod(&[], &[]), None, &node("n", &nvme, &[])), 20);
}

#[test]
fn apollos_io_pattern_wins_and_unknown_falls_back_to_the_annotation() {
    let p = pod(&[], &[("ai-storage.keti/io-pattern", "sequential")]);
    let hdd = node("n", &[("storage-tier/hdd", "true")], &[]);
    let random = storage(StorageRequirements {
        expected_io_pattern: IoPattern::Random,
        ..StorageRequirements::default()
    });
    assert_eq!(part(0, &p, Some(&random), &hdd), 10, "HDD random");
    assert_eq!(part(0, &p, None, &hdd), 25, "HDD sequential");
    let unknown = storage(StorageRequirements::default());
    assert_eq!(part(0, &p, Some(&unknown), &hdd), 25);
    let from_signature = signed(WorkloadSignature {
        io_pattern: IoPattern::ReadHeavy,
        ..WorkloadSignature::default()
    });
    assert_eq!(part(0, &p, Some(&from_signature), &hdd), 20, "HDD read");
}

/// keti.md §5.2 StorageTierAware S (max 30).
#[test]
fn pipeline_stage_part_follows_the_stage_table() {
    let nvme: &[(&str, &str)] = &[("storage-tier/nvme", "true")];
    let mem: &[(&str, &str)] = &[("storage-tier/memory", "true")];
    let ssd: &[(&str, &str)] = &[("storage-tier/ssd", "true")];
    let hdd: &[(&str, &str)] = &[("storage-tier/hdd", "true")];
    let csd: &[(&str, &str)] = &[("storage-tier/csd", "true")];
    let nvme_csd: &[(&str, &str)] = &[("storage-tier/nvme", "true"), ("storage-tier", "csd")];
    let none: &[(&str, &str)] = &[];
    for (stage, labels, expected) in [
        // Preprocessing: CSD anywhere 30, NVMe/SSD 30·5/6 = 25, HDD 30·2/3 = 20, else 15.
        ("preprocessing", csd, 30),
        ("preprocess", nvme_csd, 30),
        ("data-loading", nvme, 25),
        ("preprocessing", ssd, 25),
        ("preprocessing", hdd, 20),
        ("preprocessing", mem, 15),
        ("preprocessing", none, 15),
        // Training: NVMe/Memory 30, SSD 25, CSD 20, HDD 10, none 15.
        ("training", nvme, 30),
        ("train", mem, 30),
        ("training", ssd, 25),
        ("training", csd, 20),
        ("training", hdd, 10),
        ("training", none, 15),
        // Evaluation: 30, SSD 30·9/10 = 27, CSD 20, HDD 15, none 15.
        ("evaluation", nvme, 30),
        ("eval", mem, 30),
        ("validation", ssd, 27),
        ("validation", csd, 20),
        ("eval", hdd, 15),
        ("evaluation", none, 15),
        // Serving: NVMe/Memory 30, SSD 20, else 10.
        ("serving", nvme, 30),
        ("inference", mem, 30),
        ("inference", ssd, 20),
        ("serving", hdd, 10),
        ("serving", csd, 10),
        ("inference", none, 10),
        // Another stage: 15.
        ("checkpointing", nvme, 15),
    ] {
        let p = pod(&[], &[("ai-storage.keti/pipeline-stage", stage)]);
        assert_eq!(
            part(1, &p, None, &node("n", labels, &[])),
            expected,
            "{stage} on {labels:?}"
        );
    }
}

#[test]
fn the_stage_comes_from_apollo_then_the_annotation_then_labels() {
    let ssd = node("n", &[("storage-tier/ssd", "true")], &[]);
    let no_stage = pod(&[], &[]);
    assert_eq!(part(1, &no_stage, None, &ssd), 15, "no stage: 30/2");
    // Labels, lower-cased: pipeline-step before stage.
    let labelled = pod(
        &[("pipeline-step", "Inference"), ("stage", "training")],
        &[],
    );
    assert_eq!(part(1, &labelled, None, &ssd), 20);
    let staged = pod(&[("stage", "TRAINING")], &[]);
    assert_eq!(part(1, &staged, None, &ssd), 25);
    let annotated = pod(
        &[("pipeline-step", "inference")],
        &[("ai-storage.keti/pipeline-stage", "Training")],
    );
    assert_eq!(part(1, &annotated, None, &ssd), 25);
    // APOLLO's step is used as sent (not lower-cased).
    let training = signed(WorkloadSignature {
        pipeline_step: "inference".into(),
        ..WorkloadSignature::default()
    });
    assert_eq!(part(1, &annotated, Some(&training), &ssd), 20);
    let shouting = signed(WorkloadSignature {
        pipeline_step: "INFERENCE".into(),
        ..WorkloadSignature::default()
    });
    assert_eq!(part(1, &annotated, Some(&shouting), &ssd), 15);
    // An empty step from APOLLO falls back to the pod.
    let empty = signed(WorkloadSignature::default());
    assert_eq!(part(1, &annotated, Some(&empty), &ssd), 25);
}

/// keti.md §5.2 StorageTierAware F (max 20): 10, then +5 (≥2×), +3 (≥1×), +0
/// (less) or +2 (unknown) for IOPS and for throughput.
#[test]
fn performance_part_compares_requirements_with_the_node() {
    let req = |iops: &str, mbps: &str| {
        let mut a = Vec::new();
        if !iops.is_empty() {
            a.push(("ai-storage.keti/required-iops", iops));
        }
        if !mbps.is_empty() {
            a.push(("ai-storage.keti/required-throughput-mbps", mbps));
        }
        pod(&[], &a)
    };
    let offered = |iops: &str, mbps: &str| {
        node(
            "n",
            &[],
            &[
                ("ai-storage.keti/available-iops", iops),
                ("ai-storage.keti/available-throughput-mbps", mbps),
            ],
        )
    };
    for (pod, node, expected) in [
        // No requirement: 10 + 2 + 2.
        (req("", ""), offered("5000", "500"), 14),
        // ≥ 2×: +5 each → 20.
        (req("1000", "100"), offered("2000", "200"), 20),
        // ≥ 1× (but < 2×): +3 each → 16.
        (req("1000", "100"), offered("1999", "100"), 16),
        // Short: +0 each → 10.
        (req("1000", "100"), offered("999", "99"), 10),
        // Mixed: IOPS 2× (+5), throughput short (+0) → 15.
        (req("1000", "100"), offered("2000", "50"), 15),
        // Node says 0: unknown → +2 each.
        (req("1000", "100"), offered("0", "0"), 14),
        // Unparseable requirement counts as none; negative too.
        (req("lots", "-5"), offered("1", "1"), 14),
    ] {
        assert_eq!(part(2, &pod, None, &node), expected, "{pod:?} {node:?}");
    }
}

#[test]
fn without_annotations_the_node_is_estimated_from_its_highest_tier() {
    let p = |iops: &str, mbps: &str| {
        pod(
            &[],
            &[
                ("ai-storage.keti/required-iops", iops),
                ("ai-storage.keti/required-throughput-mbps", mbps),
            ],
        )
    };
    let tier = |t: &str| node("n", &[(t, "true")], &[]);
    // keti.md §5.2 F: NVMe 100000 IOPS / 3000 MB/s, SSD 10000/500, HDD 150/150.
    for (pod, node, expected) in [
        (p("50000", "1500"), tier("storage-tier/nvme"), 20),
        (p("50001", "1501"), tier("storage-tier/nvme"), 16),
        (p("100001", "3001"), tier("storage-tier/nvme"), 10),
        (p("5000", "250"), tier("storage-tier/ssd"), 20),
        (p("5001", "251"), tier("storage-tier/ssd"), 16),
        (p("75", "75"), tier("storage-tier/hdd"), 20),
        (p("76", "76"), tier("storage-tier/hdd"), 16),
        (p("151", "151"), tier("storage-tier/hdd"), 10),
        // CSD and Memory have no estimate: unknown, +2 each.
        (p("1", "1"), tier("storage-tier/csd"), 14),
        (p("1", "1"), tier("storage-tier/memory"), 14),
        (p("1", "1"), node("n", &[], &[]), 14),
    ] {
        assert_eq!(part(2, &pod, None, &node), expected, "{node:?}");
    }
    // An annotation that does not parse falls back to the estimate.
    let garbled = node(
        "n",
        &[("storage-tier/hdd", "true")],
        &[("ai-storage.keti/available-iops", "fast")],
    );
    assert_eq!(part(2, &p("151", "1"), None, &garbled), 10 + 5);
}

#[test]
fn apollos_minimums_win_over_the_annotations_unless_zero() {
    let p = pod(
        &[],
        &[
            ("ai-storage.keti/required-iops", "10"),
            ("ai-storage.keti/required-throughput-mbps", "10"),
        ],
    );
    let n = node(
        "n",
        &[],
        &[
            ("ai-storage.keti/available-iops", "1000"),
            ("ai-storage.keti/available-throughput-mbps", "1000"),
        ],
    );
    let demanding = storage(StorageRequirements {
        min_iops: 800,
        min_throughput_mbps: 0,
        ..StorageRequirements::default()
    });
    // IOPS 1000 vs 800: +3; throughput from the annotation (10): +5.
    assert_eq!(part(2, &p, Some(&demanding), &n), 18);
    // A negative minimum is not 0: the annotation is not read, and it counts as none.
    let negative = storage(StorageRequirements {
        min_iops: -1,
        min_throughput_mbps: 2000,
        ..StorageRequirements::default()
    });
    assert_eq!(part(2, &p, Some(&negative), &n), 12);
}

/// keti.md §5.2 StorageTierAware Cap (max 10).
#[test]
fn capacity_part_follows_the_capacity_table() {
    for (available, required, expected) in [
        ("", "", 5),
        ("0", "", 5),
        ("many", "", 5),
        ("2000", "1000", 10),
        ("1999", "1000", 7),
        ("1000", "1000", 7),
        ("999", "1000", 3),
        ("1000", "", 10),
        ("999", "", 8),
        ("500", "", 8),
        ("499", "", 6),
        ("100", "", 6),
        ("99", "", 5),
        ("-5", "", 5),
        // An unparseable requirement counts as none.
        ("600", "big", 8),
    ] {
        let mut n = node("n", &[], &[]);
        if !available.is_empty() {
            n.annotations.insert(
                "ai-storage.keti/available-capacity-gb".into(),
                available.into(),
            );
        }
        let mut p = pod(&[], &[]);
        if !required.is_empty() {
            p.annotations.insert(
                "ai-storage.keti/required-capacity-gb".into(),
                required.into(),
            );
        }
        assert_eq!(part(3, &p, None, &n), expected, "{available} vs {required}");
    }
}

#[test]
fn raw_is_the_sum_of_the_parts_and_normalised_uses_the_crd_maxima() {
    let p = pod(
        &[("stage", "training")],
        &[
            ("ai-storage.keti/io-pattern", "random"),
            ("ai-storage.keti/required-iops", "1000"),
            ("ai-storage.keti/required-capacity-gb", "100"),
        ],
    );
    let n = node(
        "n",
        &[("storage-tier/ssd", "true")],
        &[("ai-storage.keti/available-capacity-gb", "150")],
    );
    let facts = TierFacts::of(&p, None);
    let s = score(&facts, &n, &Config::default());
    // I 30 (SSD random) + S 25 (SSD training) + F 10+5+2 (10000 ≥ 2·1000; no
    // throughput need) + Cap 7 (150 ≥ 100) = 79 of 100.
    assert_eq!(
        s.parts.iter().map(|p| p.points).collect::<Vec<_>>(),
        [30, 25, 17, 7]
    );
    assert_eq!((s.raw, s.max, s.normalised()), (79, 100, 79.0));
    assert_eq!(
        s.parts.iter().map(|p| p.max).collect::<Vec<_>>(),
        [40, 30, 20, 10]
    );
    assert!(
        s.parts
            .iter()
            .all(|p| !p.why.is_empty() && !p.name.is_empty())
    );
    // Doubling every maximum: parts scale with them, normalised stays near.
    let mut c = Config::default();
    c.storage_tier.scoring = crate::placement::config::StorageTierScoring {
        io_pattern_score_max: 80,
        pipeline_stage_score_max: 60,
        iops_score_max: 40,
        capacity_score_max: 20,
    };
    c.storage_tiers.ssd.random_score = 60;
    let s = score(&facts, &n, &c);
    // I 60 + S 60·5/6 = 50 + F 20+10+4 = 34 + Cap 20·7/10 = 14 → 158 of 200.
    assert_eq!(
        s.parts.iter().map(|p| p.points).collect::<Vec<_>>(),
        [60, 50, 34, 14]
    );
    assert_eq!((s.raw, s.max, s.normalised()), (158, 200, 79.0));
}

#[test]
fn the_required_tier_comes_from_apollo_then_the_annotation_then_the_label() {
    use StorageTier::*;
    let class = |c| {
        storage(StorageRequirements {
            storage_class: c,
            ..StorageRequirements::default()
        })
    };
    let annotated = pod(
        &[("storage-tier", "hdd")],
        &[("ai-storage.keti/required-storage-tier", "ssd")],
    );
    for (policy, expected) in [
        (class(StorageClass::UltraFast), Some(Nvme)),
        (class(StorageClass::Fast), Some(Ssd)),
        (class(StorageClass::Standard), Some(Hdd)),
        (class(StorageClass::Csd), Some(Csd)),
        (class(StorageClass::Memory), Some(Memory)),
        (class(StorageClass::Unspecified), Some(Ssd)),
    ] {
        assert_eq!(TierFacts::of(&annotated, Some(&policy)).required, expected);
    }
    assert_eq!(TierFacts::of(&annotated, None).required, Some(Ssd));
    let labelled = pod(&[("storage-tier", "hdd")], &[]);
    assert_eq!(TierFacts::of(&labelled, None).required, Some(Hdd));
    // A present but unknown annotation stops there.
    let odd = pod(
        &[("storage-tier", "hdd")],
        &[("ai-storage.keti/required-storage-tier", "tape")],
    );
    assert_eq!(TierFacts::of(&odd, None).required, None);
    assert_eq!(TierFacts::of(&pod(&[], &[]), None).required, None);
}

/// keti.md §5.2 StorageTierAware filter: strict only; no labels, or no tier ≥ the
/// required one.
#[test]
fn only_a_strict_requirement_filters() {
    let strict = |tier: &str| {
        pod(
            &[],
            &[
                ("ai-storage.keti/required-storage-tier", tier),
                ("ai-storage.keti/strict-storage-tier", "true"),
            ],
        )
    };
    let reject = |p: &PodInput, policy: Option<&Policy>, labels: &[(&str, &str)]| {
        filter(&TierFacts::of(p, policy), &node("n", labels, &[]))
    };
    let ssd = [("storage-tier/ssd", "true")];
    let csd = [("storage-tier/csd", "true")];
    assert_eq!(reject(&strict("ssd"), None, &ssd), None);
    assert_eq!(reject(&strict("hdd"), None, &ssd), None);
    assert_eq!(
        reject(&strict("nvme"), None, &ssd),
        Some(Rejection::StorageTierTooLow {
            required: StorageTier::Nvme,
            highest: StorageTier::Ssd
        })
    );
    // CSD ranks above NVMe in the original's order.
    assert_eq!(reject(&strict("nvme"), None, &csd), None);
    assert_eq!(
        reject(&strict("nvme"), None, &[]),
        Some(Rejection::NoStorageTier {
            required: StorageTier::Nvme
        })
    );
    // Not strict: nothing filtered.
    let lax = pod(&[], &[("ai-storage.keti/required-storage-tier", "nvme")]);
    assert_eq!(reject(&lax, None, &[]), None);
    assert_eq!(reject(&lax, None, &ssd), None);
    let not_true = pod(
        &[],
        &[
            ("ai-storage.keti/required-storage-tier", "nvme"),
            ("ai-storage.keti/strict-storage-tier", "yes"),
        ],
    );
    assert_eq!(reject(&not_true, None, &ssd), None);
    // APOLLO's REQUIRE makes it strict.
    let require = Policy {
        decision: SchedulingDecision::Require,
        ..Policy::default()
    };
    assert!(reject(&lax, Some(&require), &ssd).is_some());
    let prefer = Policy {
        decision: SchedulingDecision::Prefer,
        ..Policy::default()
    };
    assert_eq!(reject(&lax, Some(&prefer), &ssd), None);
    assert!(reject(&strict("nvme"), Some(&prefer), &ssd).is_some());
    // No requirement: nothing filtered, however strict.
    let unrequired = pod(&[], &[("ai-storage.keti/strict-storage-tier", "true")]);
    assert_eq!(reject(&unrequired, None, &[]), None);
}
