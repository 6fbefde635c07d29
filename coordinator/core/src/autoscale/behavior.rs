//! `spec.behavior`: per-direction stabilisation windows, tolerances and rate
//! policies, with the API's defaults for whatever is left unset.

use super::history::ScaleEvent;
use super::pods::later;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// At most `value` pods per period.
    Pods,
    /// At most `value` percent of the replicas at the period's start.
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: u32,
    /// The API allows 1 s to 30 min.
    pub period: Duration,
}

/// Which policy wins when several allow different changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectPolicy {
    /// The policy allowing the biggest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// One direction's rules as written; `None` takes the default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScalingRules {
    pub stabilization_window: Option<Duration>,
    pub select_policy: Option<SelectPolicy>,
    pub policies: Option<Vec<Policy>>,
    /// Overrides the controller-wide tolerance for this direction.
    pub tolerance: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Behavior {
    pub scale_up: Option<ScalingRules>,
    pub scale_down: Option<ScalingRules>,
}

/// One direction's rules with the defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization_window: Duration,
    pub select_policy: SelectPolicy,
    pub policies: Vec<Policy>,
    pub tolerance: Option<f64>,
}

const DEFAULT_PERIOD: Duration = Duration::from_secs(15);

impl Rules {
    fn resolve(written: Option<&ScalingRules>, defaults: Rules) -> Rules {
        let Some(w) = written else {
            return defaults;
        };
        Rules {
            stabilization_window: w
                .stabilization_window
                .unwrap_or(defaults.stabilization_window),
            select_policy: w.select_policy.unwrap_or(defaults.select_policy),
            policies: w.policies.clone().unwrap_or(defaults.policies),
            tolerance: w.tolerance,
        }
    }

    /// Events older than this can no longer count in this direction.
    pub(crate) fn longest_period(&self) -> Duration {
        self.policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

impl Behavior {
    /// Default: no stabilisation; 4 pods or 100 % per 15 s, whichever is more.
    pub fn scale_up_rules(&self) -> Rules {
        Rules::resolve(
            self.scale_up.as_ref(),
            Rules {
                stabilization_window: Duration::ZERO,
                select_policy: SelectPolicy::Max,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period: DEFAULT_PERIOD,
                    },
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period: DEFAULT_PERIOD,
                    },
                ],
                tolerance: None,
            },
        )
    }

    /// Default: the controller's downscale window; 100 % per 15 s.
    pub fn scale_down_rules(&self, default_window: Duration) -> Rules {
        Rules::resolve(
            self.scale_down.as_ref(),
            Rules {
                stabilization_window: default_window,
                select_policy: SelectPolicy::Max,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: DEFAULT_PERIOD,
                }],
                tolerance: None,
            },
        )
    }
}

/// Replicas added (or removed) by events strictly newer than `period` ago.
pub(crate) fn change_within(period: Duration, events: &[ScaleEvent], now_unix_nanos: u64) -> i64 {
    events
        .iter()
        .filter(|e| later(e.at_unix_nanos, period) > now_unix_nanos)
        .map(|e| i64::from(e.change))
        .sum()
}

/// The most replicas the scale-up policies allow now. Each policy measures from the
/// count at the start of its period (current, less what was added since, plus what
/// was removed).
pub(crate) fn scale_up_limit(
    current: u32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
    now_unix_nanos: u64,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Min => i64::min,
        SelectPolicy::Max => i64::max,
    };
    let mut limit = if rules.select_policy == SelectPolicy::Min {
        i64::MAX
    } else {
        i64::MIN
    };
    for p in &rules.policies {
        let start = i64::from(current) - change_within(p.period, up, now_unix_nanos)
            + change_within(p.period, down, now_unix_nanos);
        let proposed = match p.kind {
            PolicyKind::Pods => start + i64::from(p.value),
            // Rounded up, or a small percentage of a few pods would never add one.
            PolicyKind::Percent => {
                (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
            }
        };
        limit = pick(limit, proposed);
    }
    limit
}

/// The fewest replicas the scale-down policies allow now.
pub(crate) fn scale_down_limit(
    current: u32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
    now_unix_nanos: u64,
) -> i64 {
    // "Max" is the biggest change, which for a scale-down is the smallest count.
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Min => i64::max,
        SelectPolicy::Max => i64::min,
    };
    let mut limit = if rules.select_policy == SelectPolicy::Min {
        i64::MIN
    } else {
        i64::MAX
    };
    for p in &rules.policies {
        let start = i64::from(current) - change_within(p.period, up, now_unix_nanos)
            + change_within(p.period, down, now_unix_nanos);
        let proposed = match p.kind {
            PolicyKind::Pods => start - i64::from(p.value),
            // Truncated toward zero, as Go's conversion does.
            PolicyKind::Percent => (start as f64 * (1.0 - f64::from(p.value) / 100.0)) as i64,
        };
        limit = pick(limit, proposed);
    }
    limit
}
