//! StorageTierAware (keti.md §5.2, `S: internal/framework/plugin/storagetieraware.go`):
//! does the node's storage tier suit the pod's I/O pattern, pipeline stage, IOPS and
//! throughput needs and capacity. Raw = I + S + F + Cap, out of the CRD maxima
//! (default 40 + 30 + 20 + 10). Integer arithmetic as the original's (`max * 5 / 8`
//! rounds down), so its scores are reproduced exactly.

use super::apollo::{IoPattern, Policy, PolicyView, SchedulingDecision, StorageClass};
use super::config::{Config, TierScores};
use super::filter::Rejection;
use super::input::{NodeInput, PodInput};
use super::score::{Part, Scored};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Tiers in the original's order: a higher tier satisfies a lower requirement
/// (HDD < SSD < NVMe < CSD < Memory; so a CSD node satisfies "NVMe required").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageTier {
    Hdd = 1,
    Ssd,
    Nvme,
    Csd,
    Memory,
}

impl StorageTier {
    /// A tier's name or the original's synonyms, any case.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_lowercase().as_str() {
            "nvme" | "ultra-fast" => Self::Nvme,
            "ssd" | "fast" => Self::Ssd,
            "hdd" | "standard" => Self::Hdd,
            "csd" | "computational" => Self::Csd,
            "memory" | "ram" => Self::Memory,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hdd => "HDD",
            Self::Ssd => "SSD",
            Self::Nvme => "NVMe",
            Self::Csd => "CSD",
            Self::Memory => "Memory",
        }
    }

    const ALL: [Self; 5] = [Self::Hdd, Self::Ssd, Self::Nvme, Self::Csd, Self::Memory];
}

/// The tiers a node's labels declare: `storage-tier/<tier>` present (any value) for
/// nvme, ssd, hdd, csd, memory, and `storage-tier=<tier or synonym>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TierSet(u8);

impl TierSet {
    pub(crate) fn of(labels: &BTreeMap<String, String>) -> Self {
        let mut set = Self::default();
        for (label, tier) in [
            ("storage-tier/nvme", StorageTier::Nvme),
            ("storage-tier/ssd", StorageTier::Ssd),
            ("storage-tier/hdd", StorageTier::Hdd),
            ("storage-tier/csd", StorageTier::Csd),
            ("storage-tier/memory", StorageTier::Memory),
        ] {
            if labels.contains_key(label) {
                set.0 |= 1 << tier as u8;
            }
        }
        if let Some(t) = labels
            .get("storage-tier")
            .and_then(|t| StorageTier::parse(t))
        {
            set.0 |= 1 << t as u8;
        }
        set
    }

    fn contains(self, tier: StorageTier) -> bool {
        self.0 & (1 << tier as u8) != 0
    }

    /// The numerically highest tier (`getHighestStorageTier`).
    pub(crate) fn highest(self) -> Option<StorageTier> {
        StorageTier::ALL
            .into_iter()
            .rev()
            .find(|t| self.contains(*t))
    }
}

fn int(map: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    map.get(key).and_then(|v| v.parse().ok())
}

/// What StorageTierAware reads from the pod and its policy, once per placement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TierFacts<'a> {
    required: Option<StorageTier>,
    strict: bool,
    io_pattern: IoPattern,
    stage: Option<Cow<'a, str>>,
    required_iops: i64,
    required_throughput_mbps: i64,
    required_capacity_gb: i64,
}

impl<'a> TierFacts<'a> {
    pub(crate) fn of(pod: &'a PodInput, policy: Option<&'a Policy>) -> Self {
        let a = &pod.annotations;
        // Required tier: APOLLO's storage class, else the annotation (when present,
        // even unparseable), else the pod's `storage-tier` label.
        let required = match policy.storage().map(|s| s.storage_class) {
            Some(StorageClass::UltraFast) => Some(StorageTier::Nvme),
            Some(StorageClass::Fast) => Some(StorageTier::Ssd),
            Some(StorageClass::Standard) => Some(StorageTier::Hdd),
            Some(StorageClass::Csd) => Some(StorageTier::Csd),
            Some(StorageClass::Memory) => Some(StorageTier::Memory),
            Some(StorageClass::Unspecified) | None => {
                match a.get("ai-storage.keti/required-storage-tier") {
                    Some(t) => StorageTier::parse(t),
                    None => pod
                        .labels
                        .get("storage-tier")
                        .and_then(|t| StorageTier::parse(t)),
                }
            }
        };
        // Strict: APOLLO decided REQUIRE, or the annotation says exactly "true".
        let strict = policy.get().map(|p| p.decision) == Some(SchedulingDecision::Require)
            || a.get("ai-storage.keti/strict-storage-tier")
                .is_some_and(|v| v == "true");
        let mut io_pattern = policy.io_pattern();
        if io_pattern == IoPattern::Unknown {
            io_pattern = match a
                .get("ai-storage.keti/io-pattern")
                .map(|p| p.to_lowercase())
            {
                Some(p) => match p.as_str() {
                    "random" => IoPattern::Random,
                    "sequential" => IoPattern::Sequential,
                    "bursty" => IoPattern::Bursty,
                    "read-heavy" | "readheavy" => IoPattern::ReadHeavy,
                    "write-heavy" | "writeheavy" => IoPattern::WriteHeavy,
                    "balanced" => IoPattern::Balanced,
                    _ => IoPattern::Unknown,
                },
                None => IoPattern::Unknown,
            };
        }
        // Stage: APOLLO's step as sent, else the pod's (lower-cased).
        let stage = match policy.pipeline_step() {
            "" => [
                a.get("ai-storage.keti/pipeline-stage"),
                pod.labels.get("pipeline-step"),
                pod.labels.get("stage"),
            ]
            .into_iter()
            .flatten()
            .next()
            .map(|s| Cow::Owned(s.to_lowercase())),
            step => Some(Cow::Borrowed(step)),
        };
        // APOLLO's minimum when it is not 0, else the annotation.
        let (mut required_iops, mut required_throughput_mbps) = policy
            .storage()
            .map_or((0, 0), |s| (s.min_iops, s.min_throughput_mbps));
        if required_iops == 0 {
            required_iops = int(a, "ai-storage.keti/required-iops").unwrap_or(0);
        }
        if required_throughput_mbps == 0 {
            required_throughput_mbps =
                int(a, "ai-storage.keti/required-throughput-mbps").unwrap_or(0);
        }
        Self {
            required,
            strict,
            io_pattern,
            stage,
            required_iops,
            required_throughput_mbps,
            required_capacity_gb: int(a, "ai-storage.keti/required-capacity-gb").unwrap_or(0),
        }
    }
}

/// Only a strict requirement filters: no tier labels, or no tier at least the
/// required one.
pub(crate) fn filter(facts: &TierFacts<'_>, node: &NodeInput) -> Option<Rejection> {
    let required = facts.required?;
    if !facts.strict {
        return None;
    }
    let tiers = TierSet::of(&node.labels);
    match tiers.highest() {
        None => Some(Rejection::NoStorageTier { required }),
        Some(highest) if highest < required => {
            Some(Rejection::StorageTierTooLow { required, highest })
        }
        Some(_) => None,
    }
}

pub(crate) fn score(facts: &TierFacts<'_>, node: &NodeInput, config: &Config) -> Scored {
    let s = config.storage_tier.scoring;
    let tiers = TierSet::of(&node.labels);
    let highest = tiers.highest();
    let (i, i_why) = io_pattern_points(facts.io_pattern, highest, s.io_pattern_score_max, config);
    let (st, st_why) = stage_points(
        facts.stage.as_deref(),
        tiers,
        highest,
        s.pipeline_stage_score_max,
    );
    let (f, f_why) = performance_points(facts, node, highest, s.iops_score_max);
    let (cap, cap_why) = capacity_points(facts, node, s.capacity_score_max);
    Scored::of(
        s.io_pattern_score_max
            + s.pipeline_stage_score_max
            + s.iops_score_max
            + s.capacity_score_max,
        &[
            Part {
                name: "I/O pattern",
                points: i,
                max: s.io_pattern_score_max,
                why: i_why,
            },
            Part {
                name: "pipeline stage",
                points: st,
                max: s.pipeline_stage_score_max,
                why: st_why,
            },
            Part {
                name: "IOPS/throughput",
                points: f,
                max: s.iops_score_max,
                why: f_why,
            },
            Part {
                name: "capacity",
                points: cap,
                max: s.capacity_score_max,
                why: cap_why,
            },
        ],
    )
}

/// keti.md §5.2 StorageTierAware I: the `storageTiers` table for random,
/// sequential, read-heavy and write-heavy (Memory reads NVMe's row, CSD gets
/// max/2); bursty NVMe/Memory max, SSD max·5/8, HDD max/4, CSD max/2; balanced
/// NVMe/Memory max, SSD max·3/4, CSD max/2, HDD max·3/8; no tier or no pattern
/// max/2.
fn io_pattern_points(
    pattern: IoPattern,
    highest: Option<StorageTier>,
    max: i64,
    config: &Config,
) -> (i64, &'static str) {
    use StorageTier::*;
    let Some(tier) = highest else {
        return (max / 2, "no storage tier labels: neutral");
    };
    let row = |t: StorageTier| -> Option<TierScores> {
        let tiers = &config.storage_tiers;
        match t {
            Nvme | Memory => Some(tiers.nvme),
            Ssd => Some(tiers.ssd),
            Hdd => Some(tiers.hdd),
            Csd => None,
        }
    };
    let from_table = |pick: fn(&TierScores) -> i64| match row(tier) {
        Some(r) => (pick(&r), "the storageTiers table for the pattern"),
        None => (max / 2, "CSD: half, whatever the pattern"),
    };
    match pattern {
        IoPattern::Unknown => (max / 2, "no I/O pattern known: neutral"),
        IoPattern::Random => from_table(|r| r.random_score),
        IoPattern::Sequential => from_table(|r| r.sequential_score),
        IoPattern::ReadHeavy => from_table(|r| r.read_heavy_score),
        IoPattern::WriteHeavy => from_table(|r| r.write_heavy_score),
        IoPattern::Bursty => (
            match tier {
                Nvme | Memory => max,
                Ssd => max * 5 / 8,
                Hdd => max / 4,
                Csd => max / 2,
            },
            "bursty I/O on the node's highest tier",
        ),
        IoPattern::Balanced => (
            match tier {
                Nvme | Memory => max,
                Ssd => max * 3 / 4,
                Csd => max / 2,
                Hdd => max * 3 / 8,
            },
            "balanced I/O on the node's highest tier",
        ),
    }
}

/// keti.md §5.2 StorageTierAware S: preprocessing/data-loading CSD max, NVMe/SSD
/// max·5/6, HDD max·2/3, else max/2; training NVMe/Memory max, SSD max·5/6, CSD
/// max·2/3, HDD max/3, else max/2; evaluation/validation max, max·9/10, CSD
/// max·2/3, HDD max/2, else max/2; serving/inference NVMe/Memory max, SSD max·2/3,
/// else max/3; no stage or another stage max/2.
fn stage_points(
    stage: Option<&str>,
    tiers: TierSet,
    highest: Option<StorageTier>,
    max: i64,
) -> (i64, &'static str) {
    use StorageTier::*;
    let Some(stage) = stage else {
        return (max / 2, "no pipeline stage: neutral");
    };
    let points = match stage {
        "preprocessing" | "preprocess" | "data-loading" => {
            if tiers.contains(Csd) {
                max
            } else {
                match highest {
                    Some(Nvme | Ssd) => max * 5 / 6,
                    Some(Hdd) => max * 2 / 3,
                    _ => max / 2,
                }
            }
        }
        "training" | "train" => match highest {
            Some(Nvme | Memory) => max,
            Some(Ssd) => max * 5 / 6,
            Some(Csd) => max * 2 / 3,
            Some(Hdd) => max / 3,
            None => max / 2,
        },
        "evaluation" | "eval" | "validation" => match highest {
            Some(Nvme | Memory) => max,
            Some(Ssd) => max * 9 / 10,
            Some(Csd) => max * 2 / 3,
            Some(Hdd) | None => max / 2,
        },
        "serving" | "inference" => match highest {
            Some(Nvme | Memory) => max,
            Some(Ssd) => max * 2 / 3,
            _ => max / 3,
        },
        _ => return (max / 2, "a stage the table does not know: neutral"),
    };
    (points, "the stage's preferred tiers against the node's")
}

/// The original's guess of a node's performance from its highest tier (keti.md
/// §5.2 StorageTierAware F): NVMe 100000 IOPS / 3000 MB/s, SSD 10000 / 500, HDD
/// 150 / 150, any other 0 (unknown).
fn tier_estimate(highest: Option<StorageTier>) -> (i64, i64) {
    match highest {
        Some(StorageTier::Nvme) => (100_000, 3000),
        Some(StorageTier::Ssd) => (10_000, 500),
        Some(StorageTier::Hdd) => (150, 150),
        _ => (0, 0),
    }
}

/// keti.md §5.2 StorageTierAware F: start at max/2; for IOPS and for throughput
/// separately, when both the requirement and the node's figure are known (> 0):
/// node ≥ 2× required +max/4, ≥ 1× +max/6, less +0; otherwise +max/10.
fn performance_points(
    facts: &TierFacts<'_>,
    node: &NodeInput,
    highest: Option<StorageTier>,
    max: i64,
) -> (i64, &'static str) {
    let (est_iops, est_throughput) = tier_estimate(highest);
    let a = &node.annotations;
    let node_iops = int(a, "ai-storage.keti/available-iops").unwrap_or(est_iops);
    let node_throughput =
        int(a, "ai-storage.keti/available-throughput-mbps").unwrap_or(est_throughput);
    let fit = |required: i64, offered: i64| {
        if required > 0 && offered > 0 {
            // The original compares a float ratio.
            let ratio = offered as f64 / required as f64;
            if ratio >= 2.0 {
                max / 4
            } else if ratio >= 1.0 {
                max / 6
            } else {
                0
            }
        } else {
            max / 10
        }
    };
    let points = max / 2
        + fit(facts.required_iops, node_iops)
        + fit(facts.required_throughput_mbps, node_throughput);
    // The original caps at max; max/2 + 2·max/4 cannot pass it.
    (
        points,
        "required IOPS and MB/s against the node's (annotation, else tier estimate)",
    )
}

/// keti.md §5.2 StorageTierAware Cap: node `available-capacity-gb` against the
/// pod's `required-capacity-gb`: ≥ 2× max, ≥ 1× max·7/10, less max·3/10; without
/// a requirement ≥ 1000 GB max, ≥ 500 max·8/10, ≥ 100 max·6/10, else max/2; no
/// (or 0) capacity max/2.
fn capacity_points(facts: &TierFacts<'_>, node: &NodeInput, max: i64) -> (i64, &'static str) {
    let available = int(&node.annotations, "ai-storage.keti/available-capacity-gb").unwrap_or(0);
    if available == 0 {
        return (max / 2, "node capacity unknown: neutral");
    }
    let required = facts.required_capacity_gb;
    if required > 0 {
        let points = if available >= required.saturating_mul(2) {
            max
        } else if available >= required {
            max * 7 / 10
        } else {
            max * 3 / 10
        };
        return (points, "the node's free capacity against the pod's need");
    }
    let points = if available >= 1000 {
        max
    } else if available >= 500 {
        max * 8 / 10
    } else if available >= 100 {
        max * 6 / 10
    } else {
        max / 2
    };
    (points, "the node's free capacity (the pod states no need)")
}

#[cfg(test)]
mod tests;
