//! One sync of one autoscaler: the HPA's `reconcileAutoscaler`, from the scale read
//! to the rescale, as a function of the spec, the observations, the history and
//! `now`. The [`Decision`] keeps every value on the way, so a person can see why.

use super::behavior::{Behavior, Rules, scale_down_limit, scale_up_limit};
use super::condition::{self, Condition, ConditionStatus, ConditionType, Reason};
use super::history::{History, ScaleEvent};
use super::metric::{MetricSpec, Observations, Target};
use super::pods::{PodFacts, Readiness};
use super::replicas::{Current, MetricError, MetricResult, Tolerances, replicas_for_metric};
use crate::clock::Now;
use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

/// Controller-wide settings (the HPA's flags); defaults are upstream's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Used in a direction whose behavior sets no tolerance of its own.
    pub tolerance: f64,
    /// The downscale window without `behavior`, and its default with it.
    pub downscale_stabilization: Duration,
    pub readiness: Readiness,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tolerance: 0.1,
            downscale_stabilization: Duration::from_secs(300),
            readiness: Readiness::default(),
        }
    }
}

/// What the autoscaler was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Defaults to 1.
    pub min_replicas: Option<u32>,
    pub max_replicas: u32,
    pub metrics: Vec<MetricSpec>,
    /// Without it: the fixed 5-minute downscale window and the 2×/4 scale-up cap.
    pub behavior: Option<Behavior>,
}

impl Spec {
    pub fn min(&self) -> u32 {
        self.min_replicas.unwrap_or(1)
    }
}

/// What the shell saw this sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncInput<'a> {
    /// The target's `spec.replicas`.
    pub current_replicas: u32,
    /// The pods the target's selector matches.
    pub pods: &'a [PodFacts],
    /// One entry per [`Spec::metrics`], in the same order.
    pub observations: &'a [Observations],
}

/// A rule that moved (or held) the count on its way to the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The target has 0 replicas and the minimum is above 0: autoscaling is off.
    ScalingDisabled,
    /// The spec's minimum is above its maximum; nothing is decided.
    InvalidSpec,
    /// The target had more replicas than the maximum: set to it, no metric read.
    AboveMaxReplicas,
    /// The target had fewer replicas than the minimum: set to it, no metric read.
    BelowMinReplicas,
    /// No metric could be computed: the count is kept.
    NoValidMetric,
    /// A metric could not be computed and the others would scale down: the count
    /// is kept, since the blind metric might be the one under load.
    InvalidMetricBlocksScaleDown,
    ScaleUpStabilized,
    ScaleDownStabilized,
    ScaleUpLimit,
    ScaleDownLimit,
    TooManyReplicas,
    TooFewReplicas,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScalingDisabled => "ScalingDisabled",
            Self::InvalidSpec => "InvalidSpec",
            Self::AboveMaxReplicas => "AboveMaxReplicas",
            Self::BelowMinReplicas => "BelowMinReplicas",
            Self::NoValidMetric => "NoValidMetric",
            Self::InvalidMetricBlocksScaleDown => "InvalidMetricBlocksScaleDown",
            Self::ScaleUpStabilized => "ScaleUpStabilized",
            Self::ScaleDownStabilized => "ScaleDownStabilized",
            Self::ScaleUpLimit => "ScaleUpLimit",
            Self::ScaleDownLimit => "ScaleDownLimit",
            Self::TooManyReplicas => "TooManyReplicas",
            Self::TooFewReplicas => "TooFewReplicas",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub rule: Rule,
    pub from: u32,
    pub to: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricDecision {
    pub spec: MetricSpec,
    pub tolerances: Tolerances,
    pub outcome: Result<MetricResult, MetricError>,
}

/// The largest metric proposal, and which metric made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub replicas: u32,
    /// Index into [`Decision::metrics`].
    pub metric: usize,
}

/// Everything one sync decided, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub now: Now,
    pub current_replicas: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// One per spec metric, in order (empty when no metric was read).
    pub metrics: Vec<MetricDecision>,
    pub proposal: Option<Proposal>,
    /// The rules that moved or held the count, in the order applied.
    pub steps: Vec<Step>,
    /// The count to set; equal to the current count when nothing changes.
    pub desired_replicas: u32,
    /// The shell should write `desired_replicas` to the target's scale.
    pub rescale: bool,
    pub conditions: Vec<Condition>,
    /// To pass to the next sync.
    pub history: History,
    /// The scale events before this rescale was recorded, for [`Decision::scale_failed`].
    events_before: Option<(Vec<ScaleEvent>, Vec<ScaleEvent>)>,
}

impl Decision {
    /// The rule that last changed or held the count, if any did.
    pub fn limited_by(&self) -> Option<Rule> {
        self.steps.last().map(|s| s.rule)
    }

    /// The shell could not write the new scale: the rescale did not happen, so it
    /// must not count against the rate policies, and `AbleToScale` says why.
    pub fn scale_failed(&mut self, error: &str) {
        if let Some((up, down)) = self.events_before.take() {
            self.history.scale_up_events = up;
            self.history.scale_down_events = down;
        }
        self.rescale = false;
        self.set(
            ConditionType::AbleToScale,
            ConditionStatus::False,
            Reason::FailedUpdateScale,
            format!("could not update the target's scale: {error}"),
        );
    }

    fn set(
        &mut self,
        kind: ConditionType,
        status: ConditionStatus,
        reason: Reason,
        message: String,
    ) {
        condition::set(
            &mut self.conditions,
            kind,
            status,
            reason,
            message,
            self.now.wall_unix_nanos,
        );
    }

    fn step(&mut self, rule: Rule, from: u32, to: u32) {
        self.steps.push(Step { rule, from, to });
    }

    /// The largest metric proposal, or `None` (conditions set) when the metrics
    /// do not allow a decision.
    fn propose(&mut self, spec: &Spec, config: &Config, input: &SyncInput<'_>) -> Option<u32> {
        let current = self.current_replicas;
        if spec.metrics.is_empty() {
            self.set(
                ConditionType::ScalingActive,
                ConditionStatus::False,
                Reason::InvalidMetricSourceType,
                "the autoscaler has no metric to scale on".into(),
            );
            self.step(Rule::NoValidMetric, current, current);
            return None;
        }
        let tolerances = tolerances(spec, config);
        for (i, m) in spec.metrics.iter().enumerate() {
            let outcome = match input.observations.get(i) {
                None => Err(MetricError::Unavailable(
                    "the shell passed no observations for it".into(),
                )),
                Some(Err(why)) => Err(MetricError::Unavailable(why.clone())),
                Some(Ok(seen)) => replicas_for_metric(
                    current,
                    m,
                    input.pods,
                    seen,
                    tolerances,
                    config.readiness,
                    self.now.wall_unix_nanos,
                ),
            };
            self.metrics.push(MetricDecision {
                spec: *m,
                tolerances,
                outcome,
            });
        }

        // The largest proposal; the first invalid metric speaks for all of them.
        let mut replicas = 0;
        let mut invalid = 0;
        let mut first_invalid = None;
        for (i, m) in self.metrics.iter().enumerate() {
            match &m.outcome {
                Err(_) => {
                    invalid += 1;
                    first_invalid.get_or_insert(i);
                }
                Ok(r) => {
                    if replicas == 0 || r.proposal > replicas {
                        replicas = r.proposal;
                        self.proposal = Some(Proposal {
                            replicas,
                            metric: i,
                        });
                    }
                }
            }
        }
        if let Some(first) = first_invalid
            && (invalid == self.metrics.len() || replicas < current)
        {
            let m = &self.metrics[first];
            let reason = m.spec.kind.failure_reason();
            let message = match &m.outcome {
                Err(e) => format!(
                    "cannot compute a replica count from {}: {e}",
                    m.spec.kind.name()
                ),
                Ok(_) => String::new(),
            };
            self.set(
                ConditionType::ScalingActive,
                ConditionStatus::False,
                reason,
                message,
            );
            match self.proposal {
                Some(p) => self.step(Rule::InvalidMetricBlocksScaleDown, p.replicas, current),
                None => self.step(Rule::NoValidMetric, current, current),
            }
            return None;
        }
        let name = self
            .proposal
            .map_or("", |p| self.metrics[p.metric].spec.kind.name());
        self.set(
            ConditionType::ScalingActive,
            ConditionStatus::True,
            Reason::ValidMetricFound,
            format!("the replica count is computed from {name}"),
        );
        Some(replicas)
    }

    /// Without `behavior`: the downscale window, then the bounds.
    fn normalize(&mut self, proposal: u32, window: Duration) -> u32 {
        let (current, min, max) = (self.current_replicas, self.min_replicas, self.max_replicas);
        let stabilized = self
            .history
            .stabilize_max(proposal, window, self.now.wall_unix_nanos);
        self.stabilized(proposal, stabilized, Rule::ScaleDownStabilized);
        let limit = bounds(current, stabilized, min, max);
        self.limited(stabilized, limit)
    }

    /// With `behavior`: both stabilisation windows, then the rate policies and bounds.
    fn normalize_with(&mut self, proposal: u32, up: &Rules, down: &Rules) -> u32 {
        let (current, min, max) = (self.current_replicas, self.min_replicas, self.max_replicas);
        let now = self.now.wall_unix_nanos;
        let stabilized = self.history.stabilize_between(
            current,
            proposal,
            up.stabilization_window,
            down.stabilization_window,
            now,
        );
        let rule = if proposal >= current {
            Rule::ScaleUpStabilized
        } else {
            Rule::ScaleDownStabilized
        };
        self.stabilized(proposal, stabilized, rule);
        let limit = rate_bounds(current, stabilized, min, max, up, down, &self.history, now);
        self.limited(stabilized, limit)
    }

    fn stabilized(&mut self, proposal: u32, stabilized: u32, rule: Rule) {
        if stabilized == proposal {
            self.set(
                ConditionType::AbleToScale,
                ConditionStatus::True,
                Reason::ReadyForNewScale,
                "no recent recommendation holds this one back".into(),
            );
            return;
        }
        let (reason, message) = match rule {
            Rule::ScaleUpStabilized => (
                Reason::ScaleUpStabilized,
                "a lower recommendation is still inside the scale-up window; holding to it",
            ),
            _ => (
                Reason::ScaleDownStabilized,
                "a higher recommendation is still inside the scale-down window; holding to it",
            ),
        };
        self.set(
            ConditionType::AbleToScale,
            ConditionStatus::True,
            reason,
            message.into(),
        );
        self.step(rule, proposal, stabilized);
    }

    fn limited(&mut self, stabilized: u32, limit: Option<(u32, Rule)>) -> u32 {
        let Some((to, rule)) = limit else {
            self.set(
                ConditionType::ScalingLimited,
                ConditionStatus::False,
                Reason::DesiredWithinRange,
                "the desired count is within the bounds and rate limits".into(),
            );
            return stabilized;
        };
        let (reason, message) = match rule {
            Rule::TooFewReplicas => (
                Reason::TooFewReplicas,
                "the desired count is below minReplicas",
            ),
            Rule::TooManyReplicas => (
                Reason::TooManyReplicas,
                "the desired count is above maxReplicas",
            ),
            Rule::ScaleUpLimit => (
                Reason::ScaleUpLimit,
                "the desired count grows faster than the scale-up rate allows",
            ),
            _ => (
                Reason::ScaleDownLimit,
                "the desired count shrinks faster than the scale-down rate allows",
            ),
        };
        self.set(
            ConditionType::ScalingLimited,
            ConditionStatus::True,
            reason,
            message.into(),
        );
        self.step(rule, stabilized, to);
        to
    }
}

/// Without `behavior`, `desired` is held to `[min, min(max, max(2×current, 4))]`
/// (the HPA's `convertDesiredReplicasWithRules`); the cap guards against bogus
/// metric spikes (kubernetes#32304). `None` when nothing holds it.
pub(crate) fn bounds(current: u32, desired: u32, min: u32, max: u32) -> Option<(u32, Rule)> {
    let up_cap = (2 * u64::from(current)).max(4);
    let (ceiling, ceiling_rule) = if u64::from(max) > up_cap {
        (up_cap as u32, Rule::ScaleUpLimit)
    } else {
        (max, Rule::TooManyReplicas)
    };
    if desired < min {
        Some((min, Rule::TooFewReplicas))
    } else if desired > ceiling {
        Some((ceiling, ceiling_rule))
    } else {
        None
    }
}

/// With `behavior`: a change is held to what the direction's policies allow over
/// their periods, and to `[min, max]` (`convertDesiredReplicasWithBehaviorRate`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rate_bounds(
    current: u32,
    desired: u32,
    min: u32,
    max: u32,
    up: &Rules,
    down: &Rules,
    history: &History,
    now_unix_nanos: u64,
) -> Option<(u32, Rule)> {
    let (ups, downs) = (&history.scale_up_events, &history.scale_down_events);
    match desired.cmp(&current) {
        Ordering::Greater => {
            // Never below the current count, even when recent events used the budget up.
            let allowed =
                scale_up_limit(current, ups, downs, up, now_unix_nanos).max(i64::from(current));
            let (ceiling, rule) = if i64::from(max) > allowed {
                (allowed, Rule::ScaleUpLimit)
            } else {
                (i64::from(max), Rule::TooManyReplicas)
            };
            (i64::from(desired) > ceiling).then_some((ceiling as u32, rule))
        }
        Ordering::Less => {
            let allowed =
                scale_down_limit(current, ups, downs, down, now_unix_nanos).min(i64::from(current));
            let (floor, rule) = if i64::from(min) < allowed {
                (allowed, Rule::ScaleDownLimit)
            } else {
                (i64::from(min), Rule::TooFewReplicas)
            };
            (i64::from(desired) < floor).then_some((floor as u32, rule))
        }
        Ordering::Equal => None,
    }
}

/// The usage-ratio band: per direction from `behavior` when it sets one.
fn tolerances(spec: &Spec, config: &Config) -> Tolerances {
    let mut t = Tolerances::both(config.tolerance);
    if let Some(b) = &spec.behavior {
        if let Some(up) = b.scale_up.as_ref().and_then(|r| r.tolerance) {
            t.scale_up = up;
        }
        if let Some(down) = b.scale_down.as_ref().and_then(|r| r.tolerance) {
            t.scale_down = down;
        }
    }
    t
}

/// One sync. `history` and `previous` are what the last sync returned (the
/// default history and no conditions the first time).
pub fn decide(
    spec: &Spec,
    config: &Config,
    input: &SyncInput<'_>,
    history: History,
    previous: &[Condition],
    now: Now,
) -> Decision {
    let current = input.current_replicas;
    let (min, max) = (spec.min(), spec.max_replicas);
    let mut d = Decision {
        now,
        current_replicas: current,
        min_replicas: min,
        max_replicas: max,
        metrics: Vec::new(),
        proposal: None,
        steps: Vec::new(),
        desired_replicas: current,
        rescale: false,
        conditions: previous.to_vec(),
        history,
        events_before: None,
    };
    d.history.seed(current, now.wall_unix_nanos);
    d.set(
        ConditionType::AbleToScale,
        ConditionStatus::True,
        Reason::SucceededGetScale,
        "the target's scale was read".into(),
    );
    if min > max {
        d.set(
            ConditionType::ScalingActive,
            ConditionStatus::False,
            Reason::InvalidSpec,
            format!("minReplicas {min} is above maxReplicas {max}"),
        );
        d.step(Rule::InvalidSpec, current, current);
        return d;
    }
    let desired = if current == 0 && min != 0 {
        d.set(
            ConditionType::ScalingActive,
            ConditionStatus::False,
            Reason::ScalingDisabled,
            "scaling is off while the target has 0 replicas and minReplicas is above 0".into(),
        );
        d.step(Rule::ScalingDisabled, 0, 0);
        return d;
    } else if current > max {
        d.step(Rule::AboveMaxReplicas, current, max);
        max
    } else if current < min {
        d.step(Rule::BelowMinReplicas, current, min);
        min
    } else {
        let Some(proposal) = d.propose(spec, config, input) else {
            return d;
        };
        match &spec.behavior {
            None => d.normalize(proposal, config.downscale_stabilization),
            Some(b) => {
                let up = b.scale_up_rules();
                let down = b.scale_down_rules(config.downscale_stabilization);
                d.normalize_with(proposal, &up, &down)
            }
        }
    };
    d.desired_replicas = desired;
    d.rescale = desired != current;
    if d.rescale {
        d.set(
            ConditionType::AbleToScale,
            ConditionStatus::True,
            Reason::SucceededRescale,
            format!("scaling the target from {current} to {desired}"),
        );
        if let Some(b) = &spec.behavior {
            let h = &mut d.history;
            d.events_before = Some((h.scale_up_events.clone(), h.scale_down_events.clone()));
            let up = b.scale_up_rules();
            let down = b.scale_down_rules(config.downscale_stabilization);
            h.record_scale(&up, &down, current, desired, now.wall_unix_nanos);
        }
    }
    d
}

/// For `aistorctl describe autoscaler`: the inputs, each metric, each rule applied
/// and the conditions, one per line.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "replicas: {} (min {}, max {})",
            self.current_replicas, self.min_replicas, self.max_replicas
        )?;
        for m in &self.metrics {
            let target = match m.spec.target {
                Target::Utilization(p) => format!("{p}% of request"),
                Target::AverageValue(v) => format!("{v}m per pod"),
            };
            write!(f, "metric {} (target {target}): ", m.spec.kind.name())?;
            match &m.outcome {
                Err(e) => writeln!(f, "invalid: {e}")?,
                Ok(r) => {
                    match r.current {
                        Current::Utilization {
                            percent,
                            average_milli,
                        } => write!(f, "{percent}% ({average_milli}m per pod)")?,
                        Current::AverageValue { milli } => write!(f, "{milli}m per pod")?,
                    }
                    write!(
                        f,
                        " -> {} replicas ({:?}, ratio {:.3}",
                        r.proposal, r.basis, r.ratio
                    )?;
                    if let Some(n) = r.rebalanced_ratio {
                        write!(f, ", with assumed values {n:.3}")?;
                    }
                    writeln!(
                        f,
                        "; pods {} ready, {} unready, {} missing, {} ignored)",
                        r.pods.ready, r.pods.unready, r.pods.missing, r.pods.ignored
                    )?;
                    for (pod, why) in &r.pods.missing_reasons {
                        writeln!(f, "  missing {pod}: {why}")?;
                    }
                }
            }
        }
        if let Some(p) = self.proposal {
            writeln!(
                f,
                "proposal: {} (from {})",
                p.replicas,
                self.metrics[p.metric].spec.kind.name()
            )?;
        }
        for s in &self.steps {
            writeln!(f, "{}: {} -> {}", s.rule.as_str(), s.from, s.to)?;
        }
        writeln!(
            f,
            "desired: {}{}",
            self.desired_replicas,
            if self.rescale {
                " (rescale)"
            } else {
                " (no change)"
            }
        )?;
        for c in &self.conditions {
            writeln!(
                f,
                "{} {} {}: {}",
                c.kind.as_str(),
                c.status.as_str(),
                c.reason.as_str(),
                c.message
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
