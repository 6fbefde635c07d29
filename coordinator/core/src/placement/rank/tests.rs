use super::*;
use crate::placement::apollo::PluginWeights;
use crate::placement::fixtures::{node, pod};
use crate::placement::headroom::LoadResource;
use crate::placement::input::{
    AccessMode, BoundVolume, Claim, LiveLoad, NodeSelectorRequirement, NodeSelectorTerm, Resources,
    SelectorOperator, Taint, TaintEffect,
};
use std::time::Duration;

fn now() -> Now {
    Now {
        monotonic: Duration::from_secs(100),
        wall_unix_nanos: 0,
    }
}

/// A node whose agent measured `cpu` millicores of 8000 in use, and nothing else
/// of note (1 GiB of 32 in use, disks idle).
fn measured(name: &str, cpu: f64) -> NodeInput {
    let mut n = node(name, &[], &[]);
    n.load = Some(LiveLoad {
        received_at: Duration::from_secs(99),
        cpu_millicores: Some(cpu),
        memory_bytes: Some(1 << 30),
        disk_utilization_percent: Some(0.0),
        ..LiveLoad::default()
    });
    n
}

fn names(d: &Decision) -> Vec<&str> {
    d.nodes.iter().map(|v| v.name.as_str()).collect()
}

#[test]
fn the_highest_total_wins_and_ties_go_to_the_first_name() {
    let nodes = [
        measured("c", 4000.0),
        measured("b", 0.0),
        measured("a", 0.0),
    ];
    let d = rank(&pod(&[], &[]), &nodes, None, &Config::default(), now());
    assert_eq!(d.chosen.as_deref(), Some("a"));
    assert_eq!(names(&d), ["a", "b", "c"]);
    assert_eq!(d.feasible, 3);
    assert_eq!(d.unschedulable, None);
    assert_eq!(d.nodes[0].total, d.nodes[1].total);
    assert!(d.nodes[1].total > d.nodes[2].total);
    // The input order does not matter.
    let reversed = [
        measured("a", 0.0),
        measured("b", 0.0),
        measured("c", 4000.0),
    ];
    let again = rank(&pod(&[], &[]), &reversed, None, &Config::default(), now());
    assert_eq!(again, d);
}

/// The total is Σ weight × normalised over the enabled plugins.
#[test]
fn the_total_adds_each_plugins_normalised_score_times_its_weight() {
    let n = measured("n", 2000.0);
    let d = rank(&pod(&[], &[]), &[n], None, &Config::default(), now());
    let v = &d.nodes[0];
    assert_eq!(
        v.scores.iter().map(|s| s.plugin).collect::<Vec<_>>(),
        [
            PluginName::DataLocalityAware,
            PluginName::StorageTierAware,
            PluginName::IoPatternBased,
            PluginName::LiveHeadroom
        ]
    );
    // A plain pod: DLA and IOPB neutral 50; STA 20 + 15 + 14 + 5 = 54;
    // headroom: CPU (2000 + 250) / 8000 → 71.875, memory (1 GiB + 200 MiB) / 32
    // GiB, disk 100.
    let normalised: Vec<f64> = v.scores.iter().map(|s| s.normalised).collect();
    assert_eq!(&normalised[..3], [50.0, 54.0, 50.0]);
    let memory = 100.0 - ((1u64 << 30) + (200 << 20)) as f64 * 100.0 / (32u64 << 30) as f64;
    let headroom = (71.875 + memory + 100.0) / 3.0;
    assert!((normalised[3] - headroom).abs() < 1e-9);
    let expected = 3.0 * 50.0 + 3.0 * 54.0 + 3.0 * 50.0 + 3.0 * headroom;
    assert!(
        (v.total - expected).abs() < 1e-9,
        "{} vs {expected}",
        v.total
    );
    assert_eq!(v.score(PluginName::StorageTierAware).unwrap().raw, 54.0);
    assert_eq!(v.score(PluginName::StorageTierAware).unwrap().max, 100.0);
    assert_eq!(v.score(PluginName::LiveHeadroom).unwrap().max, 100.0);
    assert_eq!(v.score(PluginName::LiveHeadroom).unwrap().parts.len(), 0);
    assert_eq!(
        v.score(PluginName::StorageTierAware).unwrap().parts.len(),
        4
    );
    assert!(v.headroom.is_some());
    assert_eq!(
        d.weights
            .iter()
            .map(|w| (w.weight, w.from))
            .collect::<Vec<_>>(),
        [(3, WeightFrom::Config); 4]
    );
    // Other weights; a disabled plugin is neither scored nor weighed.
    let mut c = Config::default();
    c.data_locality.weight = 1;
    c.storage_tier.enabled = false;
    c.io_pattern.weight = 0;
    c.headroom.weight = 2;
    let d = rank(&pod(&[], &[]), &[measured("n", 2000.0)], None, &c, now());
    let v = &d.nodes[0];
    assert!(v.score(PluginName::StorageTierAware).is_none());
    assert_eq!(v.scores.len(), 3);
    assert!((v.total - (50.0 + 2.0 * headroom)).abs() < 1e-9);
    assert_eq!(
        d.weights
            .iter()
            .map(|w| (w.plugin, w.weight))
            .collect::<Vec<_>>(),
        [
            (PluginName::DataLocalityAware, 1),
            (PluginName::IoPatternBased, 0),
            (PluginName::LiveHeadroom, 2)
        ]
    );
    // Everything disabled: all totals 0, the first name wins.
    c.data_locality.enabled = false;
    c.io_pattern.enabled = false;
    c.headroom.enabled = false;
    let d = rank(
        &pod(&[], &[]),
        &[measured("z", 0.0), measured("y", 8000.0)],
        None,
        &c,
        now(),
    );
    assert_eq!(d.chosen.as_deref(), Some("y"));
    assert!(
        d.nodes
            .iter()
            .all(|v| v.total == 0.0 && v.scores.is_empty())
    );
    assert!(d.nodes.iter().all(|v| v.headroom.is_none()));
    assert!(d.weights.is_empty());
}

/// keti.md §5.1: with APOLLO weights w ∈ [0,1] a seed plugin weighs max(1, ⌊10·w⌋).
#[test]
fn apollos_weights_replace_the_seed_plugins_weights() {
    let policy = Policy {
        plugin_weights: Some(PluginWeights {
            data_locality_aware: 0.0,
            storage_tier_aware: 0.35,
            io_pattern_based: 1.0,
            ..PluginWeights::default()
        }),
        ..Policy::default()
    };
    let d = rank(
        &pod(&[], &[]),
        &[measured("n", 0.0)],
        Some(&policy),
        &Config::default(),
        now(),
    );
    assert_eq!(
        d.weights
            .iter()
            .map(|w| (w.plugin, w.weight, w.from))
            .collect::<Vec<_>>(),
        [
            (PluginName::DataLocalityAware, 1, WeightFrom::Apollo),
            (PluginName::StorageTierAware, 3, WeightFrom::Apollo),
            (PluginName::IoPatternBased, 10, WeightFrom::Apollo),
            (PluginName::LiveHeadroom, 3, WeightFrom::Config),
        ]
    );
    assert!(d.pod.policy_used);
    for (w, expected) in [
        (0.0, 1),
        (0.09, 1),
        (0.2, 2),
        (0.5, 5),
        (1.0, 10),
        (2.5, 10),
        (-1.0, 1),
        (f32::NAN, 1),
    ] {
        assert_eq!(apollo_weight(w), expected, "{w}");
    }
    // A policy without weights leaves the configured ones.
    let d = rank(
        &pod(&[], &[]),
        &[measured("n", 0.0)],
        Some(&Policy::default()),
        &Config::default(),
        now(),
    );
    assert!(d.weights.iter().all(|w| w.from == WeightFrom::Config));
}

#[test]
fn rejected_nodes_come_last_by_name_and_are_still_scored() {
    let mut tainted = measured("a-tainted", 0.0);
    tainted.taints = vec![Taint {
        key: "dedicated".into(),
        value: "infra".into(),
        effect: TaintEffect::NoSchedule,
    }];
    let mut cordoned = measured("b-cordoned", 0.0);
    cordoned.unschedulable = true;
    let busy = measured("z-busy", 6000.0);
    let idle = measured("y-idle", 100.0);
    let d = rank(
        &pod(&[], &[]),
        &[tainted, busy, cordoned, idle],
        None,
        &Config::default(),
        now(),
    );
    // z-busy is over the 65 % CPU threshold.
    assert_eq!(names(&d), ["y-idle", "a-tainted", "b-cordoned", "z-busy"]);
    assert_eq!(d.chosen.as_deref(), Some("y-idle"));
    // If exactly one node passes, it is chosen (and still scored).
    assert_eq!(d.feasible, 1);
    assert_eq!(d.nodes[0].scores.len(), 4);
    for v in &d.nodes[1..] {
        assert!(!v.feasible());
        assert_eq!(v.scores.len(), 4);
        assert!(v.total > 0.0);
    }
    assert_eq!(
        d.nodes[3].rejections,
        [Rejection::UsageAboveThreshold {
            resource: LoadResource::Cpu,
            estimated_percent: (6000.0 + 250.0) * 100.0 / 8000.0,
            threshold_percent: 65.0
        }]
    );
    // The rejected nodes may score higher than the chosen one: they still lose.
    let mut better_but_cordoned = measured("a", 0.0);
    better_but_cordoned.unschedulable = true;
    let d = rank(
        &pod(&[], &[]),
        &[better_but_cordoned, measured("b", 3000.0)],
        None,
        &Config::default(),
        now(),
    );
    assert!(d.nodes[1].total > d.nodes[0].total);
    assert_eq!(d.chosen.as_deref(), Some("b"));
}

#[test]
fn a_stale_node_is_never_chosen() {
    let mut best = measured("a", 0.0);
    best.stale = true;
    let d = rank(
        &pod(&[], &[]),
        &[best, measured("b", 4000.0)],
        None,
        &Config::default(),
        now(),
    );
    assert_eq!(d.chosen.as_deref(), Some("b"));
    assert_eq!(d.nodes[1].rejections, [Rejection::Stale]);
}

#[test]
fn a_node_without_figures_is_not_rejected_but_ranks_below_a_measured_one() {
    let mut unseen = measured("a-unseen", 0.0);
    unseen.load = None;
    let d = rank(
        &pod(&[], &[]),
        &[unseen, measured("b-seen", 4000.0)],
        None,
        &Config::default(),
        now(),
    );
    assert_eq!(names(&d), ["b-seen", "a-unseen"]);
    assert_eq!(d.feasible, 2);
    let h = d.nodes[1].headroom.unwrap();
    assert_eq!(h.score, 0.0);
    assert!(
        h.resources
            .iter()
            .all(|r| r.absent == Some(crate::placement::headroom::Absent::NoFigures))
    );
}

#[test]
fn nothing_feasible_aggregates_the_reasons_like_kube_scheduler() {
    let small = |name: &str| {
        let mut n = measured(name, 0.0);
        n.allocatable.cpu_millicores = 1000;
        n
    };
    let tainted = |name: &str| {
        let mut n = measured(name, 0.0);
        n.taints = vec![Taint {
            key: "gpu".into(),
            value: "true".into(),
            effect: TaintEffect::NoExecute,
        }];
        n
    };
    let mut both = tainted("n5");
    both.allocatable.cpu_millicores = 1000;
    let mut p = pod(&[], &[]);
    p.requests = Resources {
        cpu_millicores: 2000,
        ..Resources::default()
    };
    let d = rank(
        &p,
        &[small("n1"), small("n2"), tainted("n3"), tainted("n4"), both],
        None,
        &Config::default(),
        now(),
    );
    assert_eq!(d.chosen, None);
    assert_eq!(d.feasible, 0);
    assert_eq!(
        d.unschedulable.as_deref(),
        Some(
            "0/5 nodes are available: 3 Insufficient cpu, 3 node(s) cpu usage exceed threshold, 3 node(s) had untolerated taint {gpu: true}."
        )
    );
    assert_eq!(names(&d), ["n1", "n2", "n3", "n4", "n5"]);
    // One reason per node per kind, however many instances; counts sort as strings.
    let mut two_volumes = p.clone();
    two_volumes.requests = Resources::default();
    let pinned = |claim: &str| Claim {
        name: claim.into(),
        access_modes: vec![AccessMode::ReadWriteMany],
        bound: true,
        volume: Some(BoundVolume {
            name: claim.into(),
            node_affinity: vec![NodeSelectorTerm {
                match_expressions: vec![NodeSelectorRequirement {
                    key: "kubernetes.io/hostname".into(),
                    operator: SelectorOperator::In,
                    values: vec!["elsewhere".into()],
                }],
                match_fields: Vec::new(),
            }],
        }),
    };
    two_volumes.claims = vec![pinned("a"), pinned("b")];
    let mut nodes: Vec<NodeInput> = (0..10).map(|i| measured(&format!("v{i}"), 0.0)).collect();
    nodes.push(small("w"));
    nodes[10].unschedulable = true;
    nodes[10].stale = true;
    let d = rank(&two_volumes, &nodes, None, &Config::default(), now());
    assert_eq!(
        d.unschedulable.as_deref(),
        Some(
            "0/11 nodes are available: 1 node(s) had a stale aistor agent, 1 node(s) were unschedulable, 11 node(s) had volume node affinity conflict."
        )
    );
    let none = rank(&p, &[], None, &Config::default(), now());
    assert_eq!(
        none.unschedulable.as_deref(),
        Some("no nodes available to schedule pods")
    );
    assert_eq!(none.chosen, None);
}

/// A preprocessing pod goes to its data (keti.md §5.2 DataLocalityAware), and the
/// seed plugins' filters take part in the decision.
#[test]
fn a_preprocessing_pod_follows_its_volume_and_its_tier() {
    let mut p = pod(
        &[("pipeline-step", "preprocessing")],
        &[
            ("ai-storage.keti/required-storage-tier", "nvme"),
            ("ai-storage.keti/strict-storage-tier", "true"),
        ],
    );
    p.claims = vec![Claim {
        name: "shards".into(),
        access_modes: vec![AccessMode::ReadWriteOnce],
        bound: true,
        volume: Some(BoundVolume {
            name: "pv-shards".into(),
            node_affinity: vec![NodeSelectorTerm {
                match_expressions: vec![NodeSelectorRequirement {
                    key: "kubernetes.io/hostname".into(),
                    operator: SelectorOperator::In,
                    values: vec!["n2".into(), "n3".into()],
                }],
                match_fields: Vec::new(),
            }],
        }),
    }];
    let nvme = |name: &str| {
        let mut n = measured(name, 0.0);
        n.labels.insert("storage-tier/nvme".into(), "true".into());
        n
    };
    let d = rank(
        &p,
        &[nvme("n1"), measured("n2", 0.0), nvme("n3")],
        None,
        &Config::default(),
        now(),
    );
    assert_eq!(d.chosen.as_deref(), Some("n3"), "{:#?}", d.nodes);
    assert!(d.pod.data_locality_judges);
    assert!(d.pod.io_pattern_judges);
    assert_eq!(d.pod.traits_from, TraitsFrom::Default);
    assert!(!d.pod.policy_used);
    let by_name = |name: &str| d.nodes.iter().find(|v| v.name == name).unwrap();
    assert_eq!(
        by_name("n1").rejections,
        [
            Rejection::VolumeNodeAffinity {
                claim: "shards".into()
            },
            Rejection::ClaimNotLocal {
                claim: "shards".into()
            }
        ]
    );
    assert_eq!(
        by_name("n2").rejections,
        [Rejection::NoStorageTier {
            required: crate::placement::storage_tier::StorageTier::Nvme
        }]
    );
    let n3 = by_name("n3");
    let dla = n3.score(PluginName::DataLocalityAware).unwrap();
    // A 15 + P 30 (its volume is here) + C 5 + T 10 = 60.
    assert_eq!((dla.raw, dla.normalised), (60.0, 60.0));
    assert_eq!(
        dla.parts.iter().map(|p| p.points).collect::<Vec<_>>(),
        [15, 30, 5, 10]
    );
    assert_eq!(
        d.pod.estimate,
        Estimate {
            cpu_millicores: 250.0,
            memory_bytes: (200u64 << 20) as f64,
            gpus: 0.0
        }
    );
}

#[test]
fn the_figures_are_dated_by_now() {
    let n = measured("n", 7000.0);
    let fresh = rank(
        &pod(&[], &[]),
        std::slice::from_ref(&n),
        None,
        &Config::default(),
        now(),
    );
    assert_eq!(fresh.chosen, None, "87.5 % CPU is over the threshold");
    let later = Now {
        monotonic: Duration::from_secs(99 + 181),
        wall_unix_nanos: 0,
    };
    let stale_figures = rank(&pod(&[], &[]), &[n], None, &Config::default(), later);
    assert_eq!(stale_figures.chosen.as_deref(), Some("n"));
    assert_eq!(stale_figures.nodes[0].headroom.unwrap().score, 0.0);
}

#[test]
fn weight_defaults_are_inert() {
    assert_eq!(Weight::default().weight, 0);
    assert_eq!(PluginScore::default().normalised, 0.0);
}

#[test]
fn kube_schedulers_share_of_nodes_to_find() {
    for (nodes, find) in [
        (0, 0),
        (50, 50),
        (99, 99),
        // 50 % of 100 is under the floor of 100.
        (100, 100),
        (1000, 420),
        (5000, 500),
        (6000, 300),
        // Past 5,625 nodes the share stays at 5 %.
        (10_000, 500),
        (1000 * 125, 6250),
    ] {
        assert_eq!(nodes_to_find(nodes), find, "{nodes}");
    }
}

/// Looking at every node, `choose` picks what `rank` picks, with the same verdict.
#[test]
fn choose_over_every_node_agrees_with_rank() {
    let mut cases: Vec<(PodInput, Vec<NodeInput>)> = Vec::new();
    let nodes = vec![
        measured("c", 4000.0),
        measured("b", 0.0),
        measured("a", 0.0),
        measured("d", 7900.0),
    ];
    cases.push((pod(&[], &[]), nodes.clone()));
    let mut big = pod(&[], &[]);
    big.requests.cpu_millicores = 2000;
    let mut small = measured("small", 0.0);
    small.allocatable.cpu_millicores = 1000;
    cases.push((big.clone(), vec![small.clone(), measured("z", 3000.0)]));
    cases.push((big, vec![small]));
    for (p, nodes) in cases {
        let d = rank(&p, &nodes, None, &Config::default(), now());
        for start in 0..nodes.len() {
            let c = choose(
                &p,
                &nodes,
                None,
                &Config::default(),
                now(),
                start,
                usize::MAX,
            );
            assert_eq!(c.evaluated, nodes.len());
            assert_eq!(c.feasible, d.feasible);
            assert_eq!(c.weights, d.weights);
            assert_eq!(c.unschedulable, d.unschedulable);
            assert_eq!(c.chosen.as_ref().map(|v| v.name.clone()), d.chosen);
            if let Some(v) = &c.chosen {
                assert_eq!(Some(v), d.nodes.first(), "start {start}");
            }
        }
    }
}

/// Like kube-scheduler, `choose` stops once it found `find` feasible nodes, starting
/// where it is told (the caller rotates the start), and never past the last node.
#[test]
fn choose_stops_after_enough_feasible_nodes_from_its_start() {
    let nodes: Vec<NodeInput> = ["n0", "n1", "n2", "n3", "n4"]
        .iter()
        .enumerate()
        .map(|(i, n)| measured(n, 1000.0 * i as f64))
        .collect();
    let p = pod(&[], &[]);
    let c = choose(&p, &nodes, None, &Config::default(), now(), 0, 2);
    assert_eq!((c.evaluated, c.feasible), (2, 2));
    assert_eq!(c.chosen.unwrap().name, "n0");
    // From n3: n3 and n4 are looked at; n3 is less loaded.
    let c = choose(&p, &nodes, None, &Config::default(), now(), 3, 2);
    assert_eq!((c.evaluated, c.feasible), (2, 2));
    assert_eq!(c.chosen.unwrap().name, "n3");
    // Wrapping: from n4, then n0.
    let c = choose(&p, &nodes, None, &Config::default(), now(), 4, 2);
    assert_eq!(c.chosen.unwrap().name, "n0");
    // A start past the end wraps too (8 of 5 nodes: n3 first, as from 3).
    let c = choose(&p, &nodes, None, &Config::default(), now(), 8, 2);
    assert_eq!(c.chosen.unwrap().name, "n3");
    // Asking for more than there is looks at every node once.
    let c = choose(&p, &nodes, None, &Config::default(), now(), 12, 99);
    assert_eq!((c.evaluated, c.feasible), (5, 5));
    // Rejected nodes do not count toward `find`.
    let mut tainted = nodes.clone();
    for n in &mut tainted[..3] {
        n.taints = vec![Taint {
            key: "k".into(),
            value: "v".into(),
            effect: TaintEffect::NoSchedule,
        }];
    }
    let c = choose(&p, &tainted, None, &Config::default(), now(), 0, 1);
    assert_eq!((c.evaluated, c.feasible), (4, 1));
    assert_eq!(c.chosen.unwrap().name, "n3");
    // Equal totals: the name that sorts first, whatever the order seen.
    let equal = [measured("b", 0.0), measured("a", 0.0)];
    let c = choose(&p, &equal, None, &Config::default(), now(), 0, 9);
    assert_eq!(c.chosen.unwrap().name, "a");
    let none = choose(&p, &[], None, &Config::default(), now(), 0, 9);
    assert_eq!(none.evaluated, 0);
    assert_eq!(
        none.unschedulable.as_deref(),
        Some("no nodes available to schedule pods")
    );
}
