use super::*;
use crate::placement::apollo::{NodePreference, PipelineStage, WorkloadSignature};
use crate::placement::fixtures::{node, pod, signed};
use crate::placement::input::{
    AccessMode, BoundVolume, NodeSelectorRequirement, NodeSelectorTerm, SelectorOperator,
};

const PREPROCESSING: (&str, &str) = ("ai-storage.keti/workload-stage", "preprocessing");

fn points(pod: &PodInput, policy: Option<&Policy>, node: &NodeInput) -> Vec<i64> {
    let s = score(&LocalityFacts::of(pod, policy), node, &Config::default());
    s.parts.iter().map(|p| p.points).collect()
}

fn part(i: usize, pod: &PodInput, policy: Option<&Policy>, node: &NodeInput) -> i64 {
    points(pod, policy, node)[i]
}

fn host_terms(hosts: &[&str]) -> Vec<NodeSelectorTerm> {
    vec![NodeSelectorTerm {
        match_expressions: vec![NodeSelectorRequirement {
            key: HOSTNAME.into(),
            operator: SelectorOperator::In,
            values: hosts.iter().map(|h| (*h).into()).collect(),
        }],
        match_fields: Vec::new(),
    }]
}

const HOSTNAME: &str = "kubernetes.io/hostname";

fn claim(name: &str, mode: AccessMode, bound_to: Option<&[&str]>) -> Claim {
    Claim {
        name: name.into(),
        access_modes: vec![mode],
        bound: bound_to.is_some(),
        volume: bound_to.map(|hosts| BoundVolume {
            name: format!("pv-{name}"),
            node_affinity: host_terms(hosts),
        }),
    }
}

fn preprocessing_pod(claims: Vec<Claim>) -> PodInput {
    PodInput {
        claims,
        ..pod(&[], &[PREPROCESSING])
    }
}

/// keti.md §5.2 DataLocalityAware: which pods it judges (its own test).
#[test]
fn preprocessing_pods_are_recognised_as_the_original_does() {
    for (labels, annotations, expected) in [
        (vec![("pipeline-step", "preprocess")], vec![], true),
        (vec![("pipeline-step", "preprocessing")], vec![], true),
        // Exact: no data-loading, no other case for pipeline-step here.
        (vec![("pipeline-step", "data-loading")], vec![], false),
        (vec![("pipeline-step", "Preprocessing")], vec![], false),
        (vec![("stage", "preprocess")], vec![], true),
        (vec![("stage", "preprocessing")], vec![], true),
        (vec![("stage", "data-loading")], vec![], true),
        (vec![("stage", "training")], vec![], false),
        (
            vec![],
            vec![("ai-storage.keti/workload-stage", "Image-PREPROCESSING")],
            true,
        ),
        (
            vec![],
            vec![("ai-storage.keti/workload-stage", "training")],
            false,
        ),
        // IOPatternBased's extra test does not apply here.
        (
            vec![],
            vec![("ai-storage.keti/preprocessing-type", "augmentation")],
            false,
        ),
        (vec![], vec![], false),
    ] {
        let p = pod(&labels, &annotations);
        assert_eq!(
            LocalityFacts::of(&p, None).preprocessing,
            expected,
            "{labels:?} {annotations:?}"
        );
    }
    let apollo = signed(WorkloadSignature {
        current_stage: PipelineStage::DataLoading,
        ..WorkloadSignature::default()
    });
    assert!(LocalityFacts::of(&pod(&[], &[]), Some(&apollo)).preprocessing);
}

#[test]
fn other_pods_get_the_neutral_50_and_no_filter() {
    let p = PodInput {
        claims: vec![claim(
            "data",
            AccessMode::ReadWriteOnce,
            Some(&["elsewhere"]),
        )],
        ..pod(&[], &[])
    };
    let facts = LocalityFacts::of(&p, None);
    let n = node("n", &[], &[]);
    let s = score(&facts, &n, &Config::default());
    assert_eq!((s.raw, s.max, s.normalised()), (50, 100, 50.0));
    assert_eq!(filter(&facts, &n), None);
}

/// keti.md §5.2 DataLocalityAware A (max 30): no APOLLO 15; preference p > 0
/// p·30/100; in data_locations 30; else 10.
#[test]
fn apollo_part_reads_preferences_then_data_locations() {
    let p = pod(&[], &[PREPROCESSING]);
    let n = node("n1", &[], &[]);
    let policy = |score: i32, locations: &[&str]| Policy {
        node_preferences: vec![NodePreference {
            node_name: "n1".into(),
            score,
            reason: String::new(),
        }],
        ..signed(WorkloadSignature {
            data_locations: locations.iter().map(|l| (*l).into()).collect(),
            ..WorkloadSignature::default()
        })
    };
    assert_eq!(part(0, &p, None, &n), 15);
    for (score, locations, expected) in [
        (100, &[][..], 30),
        (80, &[], 24),
        // 33·30/100 = 9.9 → 9 (integer division).
        (33, &[], 9),
        (1, &[], 0),
        // A preference wins over data_locations.
        (50, &["n1"], 15),
        (0, &["n0", "n1"], 30),
        (0, &["n0"], 10),
        (-20, &[], 10),
        (0, &[], 10),
    ] {
        assert_eq!(
            part(0, &p, Some(&policy(score, locations)), &n),
            expected,
            "preference {score}, locations {locations:?}"
        );
    }
}

/// keti.md §5.2 DataLocalityAware P (max 30): no claims 15; mean of 30 (bound to
/// a volume on this node), 15 (shared or unbound), 0 (bound elsewhere).
#[test]
fn pvc_part_is_the_mean_over_claims() {
    use AccessMode::*;
    let n = node("n1", &[], &[]);
    for (claims, expected) in [
        (vec![], 15),
        (vec![claim("a", ReadWriteOnce, Some(&["n1"]))], 30),
        (vec![claim("a", ReadWriteOnce, Some(&["n2", "n1"]))], 30),
        (vec![claim("a", ReadWriteOnce, Some(&["n2"]))], 0),
        (vec![claim("a", ReadWriteMany, Some(&["n2"]))], 15),
        (vec![claim("a", ReadOnlyMany, None)], 15),
        (vec![claim("a", ReadWriteOnce, None)], 15),
        // A shared claim bound to a volume on this node counts as local.
        (vec![claim("a", ReadWriteMany, Some(&["n1"]))], 30),
        // (30 + 0 + 15) / 3 = 15; (30 + 15) / 2 = 22 (integer division).
        (
            vec![
                claim("a", ReadWriteOnce, Some(&["n1"])),
                claim("b", ReadWriteOncePod, Some(&["n2"])),
                claim("c", ReadWriteOnce, None),
            ],
            15,
        ),
        (
            vec![
                claim("a", ReadWriteOnce, Some(&["n1"])),
                claim("b", ReadWriteMany, None),
            ],
            22,
        ),
        // A bound claim whose volume has no hostname: not local, not reachable.
        (
            vec![Claim {
                volume: Some(BoundVolume::default()),
                ..claim("net", ReadWriteOnce, Some(&[]))
            }],
            0,
        ),
    ] {
        let p = preprocessing_pod(claims.clone());
        assert_eq!(part(1, &p, None, &n), expected, "{claims:?}");
    }
}

/// keti.md §5.2 DataLocalityAware C (max 20): APOLLO cached_on_nodes 20;
/// cached-datasets 15, hot or warm data +5 (cap 20); nothing 5.
#[test]
fn cache_part_reads_apollo_then_the_nodes_annotations() {
    let p = pod(&[], &[PREPROCESSING]);
    for (annotations, expected) in [
        (vec![], 5),
        (vec![("ai-storage.keti/cached-datasets", "imagenet")], 15),
        (
            vec![
                ("ai-storage.keti/cached-datasets", ""),
                ("ai-storage.keti/data-temperature", "hot"),
            ],
            20,
        ),
        (
            vec![
                ("ai-storage.keti/cached-datasets", "x"),
                ("ai-storage.keti/data-temperature", "cold"),
            ],
            15,
        ),
        (vec![("ai-storage.keti/data-temperature", "warm")], 5),
        (vec![("ai-storage.keti/data-temperature", "HOT")], 5),
        (vec![("other", "x")], 5),
    ] {
        let n = node("n1", &[], &annotations);
        assert_eq!(part(2, &p, None, &n), expected, "{annotations:?}");
    }
    let cached = signed(WorkloadSignature {
        cached_on_nodes: vec!["n0".into(), "n1".into()],
        ..WorkloadSignature::default()
    });
    assert_eq!(part(2, &p, Some(&cached), &node("n1", &[], &[])), 20);
    assert_eq!(part(2, &p, Some(&cached), &node("n2", &[], &[])), 5);
    // With a larger maximum the fractions scale: 40·3/4 + 40/4 = 40, capped.
    let mut c = Config::default();
    c.data_locality.scoring.cache_score_max = 42;
    let n = node(
        "n1",
        &[],
        &[
            ("ai-storage.keti/cached-datasets", "x"),
            ("ai-storage.keti/data-temperature", "warm"),
        ],
    );
    let s = score(&LocalityFacts::of(&p, None), &n, &c);
    // 42·3/4 = 31, + 42/4 = 10 → 41.
    assert_eq!(s.parts[2].points, 41);
}

/// keti.md §5.2 DataLocalityAware T (max 20): 10, or 20 in the preferred zone or
/// rack.
#[test]
fn topology_part_prefers_the_pods_zone_or_rack() {
    let zone = "topology.kubernetes.io/zone";
    let rack = "topology.kubernetes.io/rack";
    let n = node("n1", &[(zone, "z1"), (rack, "r1")], &[]);
    let with = |annotations: &[(&str, &str)]| {
        let mut a = vec![PREPROCESSING];
        a.extend_from_slice(annotations);
        pod(&[], &a)
    };
    for (annotations, expected) in [
        (vec![], 10),
        (vec![("ai-storage.keti/preferred-zone", "z1")], 20),
        (vec![("ai-storage.keti/preferred-zone", "z2")], 10),
        (vec![("ai-storage.keti/preferred-rack", "r1")], 20),
        (
            vec![
                ("ai-storage.keti/preferred-zone", "z2"),
                ("ai-storage.keti/preferred-rack", "r1"),
            ],
            20,
        ),
        (vec![("ai-storage.keti/preferred-rack", "")], 10),
    ] {
        assert_eq!(
            part(3, &with(&annotations), None, &n),
            expected,
            "{annotations:?}"
        );
    }
    // A node without topology labels: 10.
    let bare = node("n1", &[], &[]);
    assert_eq!(
        part(
            3,
            &with(&[("ai-storage.keti/preferred-zone", "z1")]),
            None,
            &bare
        ),
        10
    );
    // An empty preference does not match an empty zone label.
    let empty_zone = node("n1", &[(zone, "")], &[]);
    assert_eq!(
        part(
            3,
            &with(&[("ai-storage.keti/preferred-zone", "")]),
            None,
            &empty_zone
        ),
        10
    );
}

#[test]
fn the_preferred_zone_may_come_from_preferred_node_affinity() {
    let zone = "topology.kubernetes.io/zone";
    let expr = |key: &str, values: &[&str]| NodeSelectorRequirement {
        key: key.into(),
        operator: SelectorOperator::In,
        values: values.iter().map(|v| (*v).into()).collect(),
    };
    let mut p = pod(&[], &[PREPROCESSING]);
    p.preferred_affinity = vec![
        NodeSelectorTerm {
            match_expressions: vec![expr("gpu", &["a100"]), expr(zone, &[])],
            match_fields: Vec::new(),
        },
        NodeSelectorTerm {
            match_expressions: vec![expr(zone, &["z2", "z1"])],
            match_fields: Vec::new(),
        },
    ];
    // The first expression on the zone with values: z2.
    assert_eq!(part(3, &p, None, &node("n", &[(zone, "z2")], &[])), 20);
    assert_eq!(part(3, &p, None, &node("n", &[(zone, "z1")], &[])), 10);
    // The annotation, when present, wins even when empty.
    p.annotations
        .insert("ai-storage.keti/preferred-zone".into(), String::new());
    assert_eq!(part(3, &p, None, &node("n", &[(zone, "z2")], &[])), 10);
}

#[test]
fn raw_is_the_sum_and_normalised_uses_the_crd_maxima() {
    let mut p = preprocessing_pod(vec![claim(
        "data",
        AccessMode::ReadWriteOnce,
        Some(&["n1"]),
    )]);
    p.annotations
        .insert("ai-storage.keti/preferred-zone".into(), "z1".into());
    let n = node(
        "n1",
        &[("topology.kubernetes.io/zone", "z1")],
        &[("ai-storage.keti/cached-datasets", "coco")],
    );
    let facts = LocalityFacts::of(&p, None);
    let s = score(&facts, &n, &Config::default());
    // A 15 (no APOLLO) + P 30 + C 15 + T 20 = 80.
    assert_eq!(
        s.parts.iter().map(|p| p.points).collect::<Vec<_>>(),
        [15, 30, 15, 20]
    );
    assert_eq!((s.raw, s.max, s.normalised()), (80, 100, 80.0));
    assert_eq!(
        s.parts.iter().map(|p| p.max).collect::<Vec<_>>(),
        [30, 30, 20, 20]
    );
    assert!(s.parts.iter().all(|p| !p.why.is_empty()));
    let mut c = Config::default();
    c.data_locality.scoring.topology_score_max = 120;
    let s = score(&facts, &n, &c);
    // T now 120: raw 15 + 30 + 15 + 120 = 180 of 200 → 90.
    assert_eq!((s.raw, s.max, s.normalised()), (180, 200, 90.0));
}

/// keti.md §5.2 DataLocalityAware filter: a preprocessing pod's bound
/// ReadWriteOnce claim keeps it on the volume's node.
#[test]
fn the_filter_keeps_a_preprocessing_pod_with_its_single_node_volume() {
    use AccessMode::*;
    let reject = |claims: Vec<Claim>, node_name: &str| {
        let p = preprocessing_pod(claims);
        filter(&LocalityFacts::of(&p, None), &node(node_name, &[], &[]))
    };
    let here = || claim("data", ReadWriteOnce, Some(&["n1"]));
    assert_eq!(reject(vec![here()], "n1"), None);
    assert_eq!(
        reject(vec![claim("ok", ReadWriteMany, None), here()], "n2"),
        Some(Rejection::ClaimNotLocal {
            claim: "data".into()
        })
    );
    assert_eq!(
        reject(vec![claim("once", ReadWriteOncePod, Some(&["n1"]))], "n2"),
        Some(Rejection::ClaimNotLocal {
            claim: "once".into()
        })
    );
    assert_eq!(
        reject(vec![claim("rwx", ReadWriteMany, Some(&["n1"]))], "n2"),
        None
    );
    assert_eq!(
        reject(vec![claim("rox", ReadOnlyMany, Some(&["n1"]))], "n2"),
        None
    );
    assert_eq!(reject(vec![claim("new", ReadWriteOnce, None)], "n2"), None);
    // A bound claim whose volume was not found does not pin the pod either.
    let missing = Claim {
        volume: None,
        ..claim("gone", ReadWriteOnce, Some(&["n1"]))
    };
    assert_eq!(reject(vec![missing], "n2"), None);
}

/// keti.md §1.4: the original rejected such a pod on every node.
#[test]
fn a_bound_network_volume_does_not_pin_the_pod() {
    let net = Claim {
        name: "nfs".into(),
        access_modes: vec![AccessMode::ReadWriteOnce],
        bound: true,
        volume: Some(BoundVolume {
            name: "pv-nfs".into(),
            node_affinity: Vec::new(),
        }),
    };
    let p = preprocessing_pod(vec![net]);
    assert_eq!(
        filter(&LocalityFacts::of(&p, None), &node("any", &[], &[])),
        None
    );
    // A node affinity on other keys names no hostname either.
    let zoned = Claim {
        volume: Some(BoundVolume {
            name: "pv".into(),
            node_affinity: vec![NodeSelectorTerm {
                match_expressions: vec![NodeSelectorRequirement {
                    key: "topology.kubernetes.io/zone".into(),
                    operator: SelectorOperator::In,
                    values: vec!["z1".into()],
                }],
                match_fields: Vec::new(),
            }],
        }),
        ..claim("zoned", AccessMode::ReadWriteOnce, Some(&[]))
    };
    let p = preprocessing_pod(vec![zoned]);
    assert_eq!(
        filter(&LocalityFacts::of(&p, None), &node("any", &[], &[])),
        None
    );
}
