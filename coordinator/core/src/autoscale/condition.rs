//! The three conditions an autoscaler reports, with the HPA's reason words, so
//! people and tools that know `kubectl describe hpa` read ours the same way.

/// Which question a condition answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// Can the target be scaled at all (its scale read and written)?
    AbleToScale,
    /// Is a replica count being computed from metrics?
    ScalingActive,
    /// Was the computed count held back by a bound or a rate limit?
    ScalingLimited,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AbleToScale => "AbleToScale",
            Self::ScalingActive => "ScalingActive",
            Self::ScalingLimited => "ScalingLimited",
        }
    }
}

/// Kubernetes' three-valued condition status (also a pod's `Ready` condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// The HPA controller's reason words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    SucceededGetScale,
    FailedGetScale,
    SucceededRescale,
    FailedUpdateScale,
    ReadyForNewScale,
    ScaleUpStabilized,
    ScaleDownStabilized,
    ValidMetricFound,
    ScalingDisabled,
    FailedGetResourceMetric,
    FailedGetPodsMetric,
    InvalidMetricSourceType,
    /// aistor's own: a spec the API server would have refused (min above max).
    InvalidSpec,
    DesiredWithinRange,
    TooFewReplicas,
    TooManyReplicas,
    ScaleUpLimit,
    ScaleDownLimit,
}

impl Reason {
    /// Every reason, for reading one back from its word ([`Reason::parse`]).
    pub const ALL: [Reason; 18] = [
        Self::SucceededGetScale,
        Self::FailedGetScale,
        Self::SucceededRescale,
        Self::FailedUpdateScale,
        Self::ReadyForNewScale,
        Self::ScaleUpStabilized,
        Self::ScaleDownStabilized,
        Self::ValidMetricFound,
        Self::ScalingDisabled,
        Self::FailedGetResourceMetric,
        Self::FailedGetPodsMetric,
        Self::InvalidMetricSourceType,
        Self::InvalidSpec,
        Self::DesiredWithinRange,
        Self::TooFewReplicas,
        Self::TooManyReplicas,
        Self::ScaleUpLimit,
        Self::ScaleDownLimit,
    ];

    /// The reason a word names (as [`Reason::as_str`] writes it).
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == word)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SucceededGetScale => "SucceededGetScale",
            Self::FailedGetScale => "FailedGetScale",
            Self::SucceededRescale => "SucceededRescale",
            Self::FailedUpdateScale => "FailedUpdateScale",
            Self::ReadyForNewScale => "ReadyForNewScale",
            Self::ScaleUpStabilized => "ScaleUpStabilized",
            Self::ScaleDownStabilized => "ScaleDownStabilized",
            Self::ValidMetricFound => "ValidMetricFound",
            Self::ScalingDisabled => "ScalingDisabled",
            Self::FailedGetResourceMetric => "FailedGetResourceMetric",
            Self::FailedGetPodsMetric => "FailedGetPodsMetric",
            Self::InvalidMetricSourceType => "InvalidMetricSourceType",
            Self::InvalidSpec => "InvalidSpec",
            Self::DesiredWithinRange => "DesiredWithinRange",
            Self::TooFewReplicas => "TooFewReplicas",
            Self::TooManyReplicas => "TooManyReplicas",
            Self::ScaleUpLimit => "ScaleUpLimit",
            Self::ScaleDownLimit => "ScaleDownLimit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: ConditionType,
    pub status: ConditionStatus,
    pub reason: Reason,
    pub message: String,
    /// When the status last changed (not the reason or message), wall time.
    pub last_transition_unix_nanos: u64,
}

/// Sets `kind` in `list`, appending it if absent. The transition time moves only
/// when the status changes, as the HPA does, so "since when" stays meaningful.
pub fn set(
    list: &mut Vec<Condition>,
    kind: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: String,
    now_unix_nanos: u64,
) {
    match list.iter_mut().find(|c| c.kind == kind) {
        Some(c) => {
            if c.status != status {
                c.last_transition_unix_nanos = now_unix_nanos;
            }
            c.status = status;
            c.reason = reason;
            c.message = message;
        }
        None => list.push(Condition {
            kind,
            status,
            reason,
            message,
            last_transition_unix_nanos: now_unix_nanos,
        }),
    }
}

/// The conditions after the shell failed to read the target's scale: nothing else
/// can be decided, the other conditions keep what they said.
pub fn failed_get_scale(
    previous: &[Condition],
    error: &str,
    now_unix_nanos: u64,
) -> Vec<Condition> {
    let mut list = previous.to_vec();
    set(
        &mut list,
        ConditionType::AbleToScale,
        ConditionStatus::False,
        Reason::FailedGetScale,
        format!("could not read the target's scale: {error}"),
        now_unix_nanos,
    );
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_word() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        let words: std::collections::HashSet<&str> = Reason::ALL.map(Reason::as_str).into();
        assert_eq!(words.len(), Reason::ALL.len(), "distinct words");
        assert_eq!(Reason::parse("Sometimes"), None);
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_changes() {
        let mut list = Vec::new();
        let kind = ConditionType::ScalingLimited;
        set(
            &mut list,
            kind,
            ConditionStatus::False,
            Reason::DesiredWithinRange,
            "a".into(),
            10,
        );
        set(
            &mut list,
            kind,
            ConditionStatus::False,
            Reason::DesiredWithinRange,
            "b".into(),
            20,
        );
        assert_eq!(list.len(), 1);
        assert_eq!(
            (list[0].last_transition_unix_nanos, &*list[0].message),
            (10, "b")
        );
        set(
            &mut list,
            kind,
            ConditionStatus::True,
            Reason::TooManyReplicas,
            "c".into(),
            30,
        );
        assert_eq!(list[0].last_transition_unix_nanos, 30);
        assert_eq!(list[0].reason, Reason::TooManyReplicas);
        set(
            &mut list,
            ConditionType::AbleToScale,
            ConditionStatus::True,
            Reason::SucceededGetScale,
            String::new(),
            40,
        );
        assert_eq!(list.len(), 2, "a new kind is appended");
        assert_eq!(list[1].last_transition_unix_nanos, 40);
    }

    #[test]
    fn a_failed_scale_read_only_touches_able_to_scale() {
        let mut previous = Vec::new();
        set(
            &mut previous,
            ConditionType::ScalingActive,
            ConditionStatus::True,
            Reason::ValidMetricFound,
            "m".into(),
            1,
        );
        let list = failed_get_scale(&previous, "boom", 5);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], previous[0]);
        assert_eq!(
            (list[1].kind, list[1].status, list[1].reason),
            (
                ConditionType::AbleToScale,
                ConditionStatus::False,
                Reason::FailedGetScale
            )
        );
        assert!(list[1].message.contains("boom"));
    }

    #[test]
    fn words_are_the_hpa_spelling() {
        assert_eq!(ConditionType::AbleToScale.as_str(), "AbleToScale");
        assert_eq!(ConditionType::ScalingActive.as_str(), "ScalingActive");
        assert_eq!(ConditionType::ScalingLimited.as_str(), "ScalingLimited");
        assert_eq!(ConditionStatus::True.as_str(), "True");
        assert_eq!(ConditionStatus::False.as_str(), "False");
        assert_eq!(ConditionStatus::Unknown.as_str(), "Unknown");
        let all = [
            Reason::SucceededGetScale,
            Reason::FailedGetScale,
            Reason::SucceededRescale,
            Reason::FailedUpdateScale,
            Reason::ReadyForNewScale,
            Reason::ScaleUpStabilized,
            Reason::ScaleDownStabilized,
            Reason::ValidMetricFound,
            Reason::ScalingDisabled,
            Reason::FailedGetResourceMetric,
            Reason::FailedGetPodsMetric,
            Reason::InvalidMetricSourceType,
            Reason::InvalidSpec,
            Reason::DesiredWithinRange,
            Reason::TooFewReplicas,
            Reason::TooManyReplicas,
            Reason::ScaleUpLimit,
            Reason::ScaleDownLimit,
        ];
        // Each word is the variant's own name.
        for r in all {
            assert_eq!(format!("{r:?}"), r.as_str());
        }
    }
}
