//! IOPatternBased (keti.md §5.2, `S: internal/framework/plugin/iopatternbased.go`):
//! match a preprocessing step's traits (CPU-, memory-, read-, write-intensive,
//! expansion, CSD offload) to the node's capabilities. Raw = Ap + Res + IO + Exp +
//! CSD out of the CRD maxima (default 15 + 25 + 20 + 20 + 20); any other pod gets the
//! original's neutral 50. Integer arithmetic as the original's.

use super::apollo::{IoPattern, Policy, PolicyView, PreprocessingType};
use super::config::{Config, PreprocessingTraits, builtin_traits};
use super::filter::Rejection;
use super::input::{NodeInput, PodInput};
use super::score::{Part, Scored};
use std::collections::BTreeMap;

/// Where the traits came from, for the explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraitsFrom {
    /// APOLLO's preprocessing type, looked up in `preprocessingTypes`.
    ApolloType,
    /// The pod's `ai-storage.keti/preprocessing-type` annotation (or
    /// `preprocessing-type` label), looked up in `preprocessingTypes`.
    PodType,
    /// Inferred from APOLLO's I/O pattern.
    ApolloIoPattern,
    /// Nothing known: read-intensive, sequential, no expansion.
    Default,
}

/// What IOPatternBased reads from the pod and its policy, once per placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PatternFacts<'a> {
    pub(crate) preprocessing: bool,
    policy: Option<&'a Policy>,
    pub(crate) traits: PreprocessingTraits,
    pub(crate) traits_from: TraitsFrom,
    /// APOLLO's storage requirement or the traits ask for a CSD.
    requires_csd: bool,
    /// Annotation `ai-storage.keti/require-csd=true`: only then does a CSD-less node
    /// get filtered out.
    csd_mandatory: bool,
}

fn is_stage(value: Option<&String>) -> bool {
    value.is_some_and(|s| {
        matches!(
            s.to_lowercase().as_str(),
            "preprocess" | "preprocessing" | "data-loading"
        )
    })
}

/// This plugin's own test (DataLocalityAware's differs): APOLLO says so, or label
/// `pipeline-step` or `stage` is `preprocess`/`preprocessing`/`data-loading` in any
/// case, or annotation `ai-storage.keti/workload-stage` contains "preprocess", or
/// the pod has a `ai-storage.keti/preprocessing-type` annotation.
fn is_preprocessing(pod: &PodInput, policy: Option<&Policy>) -> bool {
    let a = &pod.annotations;
    policy.is_preprocessing()
        || is_stage(pod.labels.get("pipeline-step"))
        || is_stage(pod.labels.get("stage"))
        || a.get("ai-storage.keti/workload-stage")
            .is_some_and(|s| s.to_lowercase().contains("preprocess"))
        || a.contains_key("ai-storage.keti/preprocessing-type")
}

/// `inferCharacteristicsFromIOPattern`: read, write, CPU, memory, expansion,
/// sequential for each APOLLO pattern (CSD only if APOLLO asks, added by the caller).
fn inferred(pattern: IoPattern) -> PreprocessingTraits {
    let (r, w, c, m, e, s) = match pattern {
        IoPattern::ReadHeavy => (true, false, false, false, 0.5, true),
        IoPattern::WriteHeavy => (false, true, false, false, 2.0, true),
        IoPattern::Sequential => (true, true, false, false, 1.0, true),
        IoPattern::Random => (true, true, false, true, 1.0, false),
        IoPattern::Balanced => (true, true, true, true, 1.0, true),
        IoPattern::Bursty => (true, true, false, true, 1.0, false),
        IoPattern::Unknown => (true, false, false, false, 1.0, true),
    };
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

impl<'a> PatternFacts<'a> {
    pub(crate) fn of(pod: &'a PodInput, policy: Option<&'a Policy>, config: &Config) -> Self {
        let apollo_csd = policy.requires_csd();
        // Deliberate change from the original (keti.md §1.4): without a type from
        // APOLLO the pod's own preprocessing type feeds the traits. The original
        // read it only for its logs and scored such pods with the default traits,
        // though the seed's guide labels its example pod this way.
        let (kind, from) = match policy.preprocessing_type() {
            PreprocessingType::Unknown => (pod_type(pod), TraitsFrom::PodType),
            t => (t, TraitsFrom::ApolloType),
        };
        let looked_up = kind.config_key().and_then(|key| {
            config
                .preprocessing_types
                .get(key)
                .copied()
                .or_else(|| builtin_traits(key))
        });
        let (mut traits, traits_from) = match looked_up {
            Some(t) => (t, from),
            None => match policy.io_pattern() {
                IoPattern::Unknown => (inferred(IoPattern::Unknown), TraitsFrom::Default),
                p => (inferred(p), TraitsFrom::ApolloIoPattern),
            },
        };
        traits.requires_csd |= apollo_csd;
        Self {
            preprocessing: is_preprocessing(pod, policy),
            policy,
            traits,
            traits_from,
            requires_csd: traits.requires_csd,
            csd_mandatory: pod
                .annotations
                .get("ai-storage.keti/require-csd")
                .is_some_and(|v| v == "true"),
        }
    }
}

/// The annotation when present (even unparseable), else the label.
fn pod_type(pod: &PodInput) -> PreprocessingType {
    pod.annotations
        .get("ai-storage.keti/preprocessing-type")
        .or_else(|| pod.labels.get("preprocessing-type"))
        .map_or(PreprocessingType::Unknown, |t| PreprocessingType::parse(t))
}

/// Label `storage-tier/csd` (any value) or `storage-tier=csd` (any case).
fn has_csd(labels: &BTreeMap<String, String>) -> bool {
    labels.contains_key("storage-tier/csd")
        || labels
            .get("storage-tier")
            .is_some_and(|t| t.eq_ignore_ascii_case("csd"))
}

/// keti.md §5.2 IOPatternBased filter: a preprocessing pod that needs a CSD and
/// says `require-csd=true` only on a node with one.
pub(crate) fn filter(facts: &PatternFacts<'_>, node: &NodeInput) -> Option<Rejection> {
    (facts.preprocessing && facts.requires_csd && facts.csd_mandatory && !has_csd(&node.labels))
        .then_some(Rejection::NoCsd)
}

pub(crate) fn score(facts: &PatternFacts<'_>, node: &NodeInput, config: &Config) -> Scored {
    if !facts.preprocessing {
        return Scored::neutral("not a preprocessing pod: the original's neutral 50");
    }
    let s = config.io_pattern.scoring;
    let t = facts.traits;
    let (ap, ap_why) = apollo_points(facts.policy, &node.name, s.apollo_preference_score_max);
    let res = resource_points(t, node, s.resource_match_score_max);
    let io = io_points(t, node, s.io_optimization_score_max);
    let (exp, exp_why) = expansion_points(t, node, s.expansion_score_max);
    let (csd, csd_why) = csd_points(facts.requires_csd, node, s.csd_score_max);
    Scored::of(
        s.apollo_preference_score_max
            + s.resource_match_score_max
            + s.io_optimization_score_max
            + s.expansion_score_max
            + s.csd_score_max,
        &[
            Part {
                name: "APOLLO",
                points: ap,
                max: s.apollo_preference_score_max,
                why: ap_why,
            },
            Part {
                name: "resource match",
                points: res,
                max: s.resource_match_score_max,
                why: "CPU, memory and read speed of the node against the step's needs",
            },
            Part {
                name: "I/O optimisation",
                points: io,
                max: s.io_optimization_score_max,
                why: "sequential buffers, read cache, write buffer, NVMe",
            },
            Part {
                name: "expansion",
                points: exp,
                max: s.expansion_score_max,
                why: exp_why,
            },
            Part {
                name: "CSD",
                points: csd,
                max: s.csd_score_max,
                why: csd_why,
            },
        ],
    )
}

/// keti.md §5.2 IOPatternBased Ap: no APOLLO max/2; preference p > 0 p·max/100;
/// else max/3.
fn apollo_points(policy: Option<&Policy>, node: &str, max: i64) -> (i64, &'static str) {
    if policy.is_none() {
        return (max / 2, "no APOLLO policy: neutral");
    }
    match policy.preference(node) {
        p if p > 0 => (i64::from(p) * max / 100, "APOLLO's preference for the node"),
        _ => (max / 3, "APOLLO names no preference for the node"),
    }
}

fn int(map: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    map.get(key).and_then(|v| v.parse().ok())
}

/// keti.md §5.2 IOPatternBased Res (in 25ths of max): CPU-intensive: label
/// `node-capability/high-cpu` +8, label `cpu-cores` ≥ 16 +4; not CPU-intensive +4.
/// Memory-intensive: label `node-capability/high-memory` +8, annotation
/// `available-memory-gb` ≥ 64 +4; not memory-intensive +4. Read-intensive: label
/// `storage-tier/nvme` +5, else `storage-tier/ssd` +3. Capped at max.
fn resource_points(t: PreprocessingTraits, node: &NodeInput, max: i64) -> i64 {
    let (l, a) = (&node.labels, &node.annotations);
    let mut points = 0;
    if t.cpu_intensive {
        if l.contains_key("node-capability/high-cpu") {
            points += max * 8 / 25;
        }
        if int(l, "cpu-cores").is_some_and(|c| c >= 16) {
            points += max * 4 / 25;
        }
    } else {
        points += max * 4 / 25;
    }
    if t.memory_intensive {
        if l.contains_key("node-capability/high-memory") {
            points += max * 8 / 25;
        }
        if int(a, "ai-storage.keti/available-memory-gb").is_some_and(|m| m >= 64) {
            points += max * 4 / 25;
        }
    } else {
        points += max * 4 / 25;
    }
    if t.read_intensive {
        if l.contains_key("storage-tier/nvme") {
            points += max * 5 / 25;
        } else if l.contains_key("storage-tier/ssd") {
            points += max * 3 / 25;
        }
    }
    points.min(max)
}

/// keti.md §5.2 IOPatternBased IO (in 20ths of max): sequential +8, annotation
/// `large-io-buffer` +4; read- but not write-intensive with label
/// `storage-capability/read-cache` +4; write-intensive: label
/// `storage-capability/write-buffer` +4, label `storage-tier/nvme` +4.
fn io_points(t: PreprocessingTraits, node: &NodeInput, max: i64) -> i64 {
    let (l, a) = (&node.labels, &node.annotations);
    let mut points = 0;
    if t.sequential_access {
        points += max * 8 / 20;
        if a.contains_key("ai-storage.keti/large-io-buffer") {
            points += max * 4 / 20;
        }
    }
    if t.read_intensive && !t.write_intensive && l.contains_key("storage-capability/read-cache") {
        points += max * 4 / 20;
    }
    if t.write_intensive {
        if l.contains_key("storage-capability/write-buffer") {
            points += max * 4 / 20;
        }
        if l.contains_key("storage-tier/nvme") {
            points += max * 4 / 20;
        }
    }
    // The original caps at max; 8 + 4 + 4 + 4 twentieths, each rounded down,
    // cannot pass it.
    points
}

/// keti.md §5.2 IOPatternBased Exp: max/2; data growing (expansion > 1) with the
/// node's `available-capacity-gb`: with m = ⌊expansion⌋ + 1, ≥ 500·m GB max,
/// ≥ 200·m max·3/4, ≥ 100·m max/2, else max/4; data shrinking (< 1) max·3/4.
fn expansion_points(t: PreprocessingTraits, node: &NodeInput, max: i64) -> (i64, &'static str) {
    let e = t.data_expansion;
    if e > 1.0 {
        let Some(capacity) = int(&node.annotations, "ai-storage.keti/available-capacity-gb") else {
            return (max / 2, "the data grows; node capacity unknown: neutral");
        };
        // Go's int64(float) truncates toward zero, as `as` does.
        let m = (e as i64).saturating_add(1);
        let points = if capacity >= m.saturating_mul(500) {
            max
        } else if capacity >= m.saturating_mul(200) {
            max * 3 / 4
        } else if capacity >= m.saturating_mul(100) {
            max / 2
        } else {
            max / 4
        };
        return (
            points,
            "the data grows: the node's free capacity against it",
        );
    }
    if e < 1.0 {
        return (max * 3 / 4, "the data shrinks: most nodes suit");
    }
    (max / 2, "the data keeps its size: neutral")
}

/// keti.md §5.2 IOPatternBased CSD: not required max/2; label `storage-tier/csd`
/// max·9/10, or max with annotation `csd-compute-ops` > 0; label `layer=storage`
/// max·6/10; else max/4.
fn csd_points(required: bool, node: &NodeInput, max: i64) -> (i64, &'static str) {
    if !required {
        return (max / 2, "no CSD needed: neutral");
    }
    let l = &node.labels;
    if l.contains_key("storage-tier/csd") {
        if int(&node.annotations, "ai-storage.keti/csd-compute-ops").is_some_and(|o| o > 0) {
            return (max, "the node has a CSD with compute to spare");
        }
        return (max * 9 / 10, "the node has a CSD");
    }
    if l.get("layer").is_some_and(|v| v == "storage") {
        return (max * 6 / 10, "a storage-layer node: near the data");
    }
    (max / 4, "the step wants a CSD and the node has none")
}

#[cfg(test)]
mod tests;
