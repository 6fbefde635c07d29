//! Autoscaling decisions: the Kubernetes HPA v2 controller's arithmetic, exactly,
//! over the figures aistor's agents measure (CPU, memory, GPU, storage I/O).
//!
//! - [`replicas_for_metric`]: one metric's proposal (`replica_calculator.go`): tolerance band,
//!   unready and missing pods, CPU start-up rules, rounding.
//! - [`decide()`]: one sync (`reconcileAutoscaler`): the largest proposal, no
//!   scale-down while a metric is blind, stabilisation, rate policies, bounds and
//!   conditions, recorded in a [`Decision`].
//!
//! The shell turns agent windows into [`Observation`]s and keeps the [`History`]
//! and conditions between syncs; nothing here reads a clock.

mod behavior;
mod condition;
mod decide;
mod facts;
#[cfg(test)]
mod fixtures;
mod history;
mod metric;
mod observe;
mod pods;
#[cfg(test)]
mod properties;
mod replicas;

pub use behavior::{Behavior, Policy, PolicyKind, Rules, ScalingRules, SelectPolicy};
pub use condition::{
    Condition, ConditionStatus, ConditionType, Reason, failed_get_scale, set as set_condition,
};
pub use decide::{Config, Decision, MetricDecision, Proposal, Rule, Spec, Step, SyncInput, decide};
pub use facts::pod_facts;
pub use history::{History, Recommendation, ScaleEvent};
pub use metric::{
    MetricKind, MetricSpec, Observation, Observations, Observed, Sample, Target, milli,
};
pub use observe::{Feed, NO_GPU, PodInView, observe, observe_fed};
pub use pods::{Group, PodFacts, PodPhase, Readiness, ReadyCondition, group};
pub use replicas::{
    Basis, Current, MAX_REPLICAS, MetricError, MetricResult, PodCounts, Tolerances,
    replicas_for_metric,
};
