//! What an autoscaler remembers between syncs: its recent raw recommendations (for
//! stabilisation) and its recent scale changes (for rate policies). Plain data: the
//! shell keeps it and passes it back on the next sync.
//!
//! Times are wall-clock nanoseconds, so a history handed to a new leader still
//! means something; a clock stepped back only keeps entries a little longer.

use super::behavior::Rules;
use std::cmp::Ordering;
use std::time::Duration;

/// One sync's proposal before stabilisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    pub replicas: u32,
    pub at_unix_nanos: u64,
}

/// One rescale in one direction: how many replicas it added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    pub change: u32,
    pub at_unix_nanos: u64,
    /// Older than the longest policy period of its direction when last looked at;
    /// its slot is reused by the next event (it may still count for the other
    /// direction's longer periods until then, as upstream's does).
    pub outdated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// False until the first sync, which records the current count as a
    /// recommendation: after a restart nothing scales below today's count until a
    /// whole downscale window has been observed.
    pub seen: bool,
    pub recommendations: Vec<Recommendation>,
    pub scale_up_events: Vec<ScaleEvent>,
    pub scale_down_events: Vec<ScaleEvent>,
}

fn before(window: Duration, now_unix_nanos: u64) -> u64 {
    now_unix_nanos.saturating_sub(u64::try_from(window.as_nanos()).unwrap_or(u64::MAX))
}

impl History {
    pub(crate) fn seed(&mut self, current: u32, now_unix_nanos: u64) {
        if !self.seen {
            self.seen = true;
            self.recommendations.push(Recommendation {
                replicas: current,
                at_unix_nanos: now_unix_nanos,
            });
        }
    }

    /// Without `behavior`: the highest of `proposal` and every recommendation
    /// within `window`; `proposal` is then remembered. Recommendations older than
    /// the window can never count again and are dropped.
    pub(crate) fn stabilize_max(
        &mut self,
        proposal: u32,
        window: Duration,
        now_unix_nanos: u64,
    ) -> u32 {
        let cutoff = before(window, now_unix_nanos);
        self.recommendations.retain(|r| r.at_unix_nanos >= cutoff);
        let highest = self
            .recommendations
            .iter()
            .map(|r| r.replicas)
            .fold(proposal, u32::max);
        self.remember(proposal, now_unix_nanos);
        highest
    }

    /// With `behavior`: a scale-up goes only as far as the lowest recommendation in
    /// the up window, a scale-down only as far as the highest in the down window.
    pub(crate) fn stabilize_between(
        &mut self,
        current: u32,
        proposal: u32,
        up_window: Duration,
        down_window: Duration,
        now_unix_nanos: u64,
    ) -> u32 {
        let up_cutoff = before(up_window, now_unix_nanos);
        let down_cutoff = before(down_window, now_unix_nanos);
        let mut up = proposal;
        let mut down = proposal;
        for r in &self.recommendations {
            if r.at_unix_nanos > up_cutoff {
                up = up.min(r.replicas);
            }
            if r.at_unix_nanos > down_cutoff {
                down = down.max(r.replicas);
            }
        }
        self.recommendations
            .retain(|r| r.at_unix_nanos >= up_cutoff || r.at_unix_nanos >= down_cutoff);
        self.remember(proposal, now_unix_nanos);
        current.max(up).min(down)
    }

    fn remember(&mut self, replicas: u32, now_unix_nanos: u64) {
        self.recommendations.push(Recommendation {
            replicas,
            at_unix_nanos: now_unix_nanos,
        });
    }

    /// Records a rescale from `from` to `to` against the rules of its direction:
    /// events older than that direction's longest period are marked outdated and
    /// the last of them is overwritten, else the event is appended. This is the
    /// HPA's own bookkeeping, which also bounds the list: it only grows while
    /// every event in it is recent. No change, no event.
    pub(crate) fn record_scale(
        &mut self,
        up_rules: &Rules,
        down_rules: &Rules,
        from: u32,
        to: u32,
        now_unix_nanos: u64,
    ) {
        let (events, rules, change) = match to.cmp(&from) {
            Ordering::Greater => (&mut self.scale_up_events, up_rules, to - from),
            Ordering::Less => (&mut self.scale_down_events, down_rules, from - to),
            Ordering::Equal => return,
        };
        let cutoff = before(rules.longest_period(), now_unix_nanos);
        for e in events.iter_mut() {
            if e.at_unix_nanos < cutoff {
                e.outdated = true;
            }
        }
        let event = ScaleEvent {
            change,
            at_unix_nanos: now_unix_nanos,
            outdated: false,
        };
        match events.iter().rposition(|e| e.outdated) {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::behavior::{Policy, PolicyKind, SelectPolicy, change_within};

    const SEC: u64 = 1_000_000_000;
    const NOW: u64 = 1_000_000 * SEC;

    fn rec(replicas: u32, ago_secs: u64) -> Recommendation {
        Recommendation {
            replicas,
            at_unix_nanos: NOW - ago_secs * SEC,
        }
    }

    fn history(recs: &[Recommendation]) -> History {
        History {
            seen: true,
            recommendations: recs.to_vec(),
            ..History::default()
        }
    }

    fn replicas(h: &History) -> Vec<u32> {
        h.recommendations.iter().map(|r| r.replicas).collect()
    }

    const FIVE_MIN: Duration = Duration::from_secs(300);

    // TestNormalizeDesiredReplicas (horizontal_test.go): the stabilised value is
    // upstream's; the log drops every expired entry where upstream overwrites one.
    #[test]
    fn without_behavior_the_highest_recent_recommendation_wins() {
        type Case = (&'static str, Vec<Recommendation>, u32, u32, Vec<u32>);
        let cases: [Case; 5] = [
            ("empty log", vec![], 5, 5, vec![5]),
            (
                "stabilize",
                vec![rec(4, 120), rec(5, 60)],
                3,
                5,
                vec![4, 5, 3],
            ),
            (
                "no stabilize",
                vec![rec(1, 120), rec(2, 60)],
                3,
                3,
                vec![1, 2, 3],
            ),
            (
                "no stabilize - old recommendations",
                vec![rec(10, 600), rec(9, 540)],
                3,
                3,
                vec![3],
            ),
            (
                "stabilize - old recommendations",
                vec![rec(10, 600), rec(4, 60), rec(5, 120), rec(9, 540)],
                3,
                5,
                vec![4, 5, 3],
            ),
        ];
        for (name, recs, proposal, want, log) in cases {
            let mut h = history(&recs);
            assert_eq!(h.stabilize_max(proposal, FIVE_MIN, NOW), want, "{name}");
            assert_eq!(replicas(&h), log, "{name}");
        }
        // A recommendation exactly a window old still counts (upstream: not Before).
        let mut h = history(&[rec(9, 300)]);
        assert_eq!(h.stabilize_max(1, FIVE_MIN, NOW), 9);
    }

    // TestNormalizeDesiredReplicasWithBehavior (horizontal_test.go).
    #[test]
    fn with_behavior_both_windows_bound_the_recommendation() {
        type Case = (
            &'static str,
            Vec<Recommendation>,
            u32,
            u32,
            u64,
            u64,
            u32,
            Vec<u32>,
        );
        let cases: [Case; 9] = [
            (
                "empty recommendations for scaling down",
                vec![],
                100,
                5,
                0,
                0,
                5,
                vec![5],
            ),
            (
                "simple scale down stabilization",
                vec![rec(4, 120), rec(5, 60)],
                100,
                3,
                0,
                180,
                5,
                vec![4, 5, 3],
            ),
            (
                "simple scale up stabilization",
                vec![rec(4, 120), rec(5, 60)],
                1,
                7,
                300,
                0,
                4,
                vec![4, 5, 7],
            ),
            (
                "no scale down stabilization",
                vec![rec(1, 120), rec(2, 60)],
                100,
                3,
                300,
                0,
                3,
                vec![1, 2, 3],
            ),
            (
                "no scale up stabilization",
                vec![rec(4, 120), rec(5, 60)],
                1,
                3,
                0,
                300,
                3,
                vec![4, 5, 3],
            ),
            (
                "no scale down stabilization, reuse recommendation element",
                vec![rec(10, 600), rec(9, 540)],
                100,
                3,
                0,
                0,
                3,
                vec![3],
            ),
            (
                "no scale up stabilization, reuse recommendation element",
                vec![rec(10, 600), rec(9, 540)],
                1,
                100,
                0,
                0,
                100,
                vec![100],
            ),
            (
                "scale down stabilization, reuse one of obsolete recommendation element",
                vec![rec(10, 600), rec(4, 60), rec(5, 120), rec(9, 540)],
                100,
                3,
                0,
                180,
                5,
                vec![4, 5, 3],
            ),
            (
                "scale up stabilization, reuse one of obsolete recommendation element",
                vec![rec(10, 6000), rec(6, 60), rec(5, 120), rec(9, 180)],
                1,
                100,
                300,
                0,
                5,
                vec![6, 5, 9, 100],
            ),
        ];
        for (name, recs, current, proposal, up, down, want, log) in cases {
            let mut h = history(&recs);
            let got = h.stabilize_between(
                current,
                proposal,
                Duration::from_secs(up),
                Duration::from_secs(down),
                NOW,
            );
            assert_eq!(got, want, "{name}");
            assert_eq!(replicas(&h), log, "{name}");
        }
    }

    #[test]
    fn window_edges_follow_upstream() {
        // Exactly at the cutoff: neither inside the window (After is strict) nor
        // expired (Before is strict), so it is kept but does not bound anything.
        let mut h = history(&[rec(50, 60)]);
        assert_eq!(
            h.stabilize_between(10, 1, Duration::from_secs(60), Duration::from_secs(60), NOW),
            1
        );
        assert_eq!(replicas(&h), [50, 1]);
        // Inside only the down window: it holds a scale-down, not a scale-up.
        let mut h = history(&[rec(50, 30)]);
        assert_eq!(
            h.stabilize_between(10, 1, Duration::from_secs(10), Duration::from_secs(60), NOW),
            10
        );
        let mut h = history(&[rec(5, 30)]);
        assert_eq!(
            h.stabilize_between(
                10,
                40,
                Duration::from_secs(60),
                Duration::from_secs(10),
                NOW
            ),
            10
        );
        let mut h = history(&[rec(5, 30)]);
        assert_eq!(
            h.stabilize_between(
                10,
                40,
                Duration::from_secs(10),
                Duration::from_secs(60),
                NOW
            ),
            40
        );
    }

    #[test]
    fn the_first_sync_seeds_the_current_count_once() {
        let mut h = History::default();
        h.seed(7, NOW);
        h.seed(9, NOW + SEC);
        assert!(h.seen);
        assert_eq!(
            h.recommendations,
            [Recommendation {
                replicas: 7,
                at_unix_nanos: NOW
            }]
        );
        // An empty but seen history is not seeded again.
        let mut h = history(&[]);
        h.seed(7, NOW);
        assert!(h.recommendations.is_empty());
    }

    fn ev(change: u32, ago_secs: u64, outdated: bool) -> ScaleEvent {
        ScaleEvent {
            change,
            at_unix_nanos: NOW - ago_secs * SEC,
            outdated,
        }
    }

    fn rules(policies: &[(u32, u64)]) -> Rules {
        Rules {
            stabilization_window: Duration::ZERO,
            select_policy: SelectPolicy::Max,
            policies: policies
                .iter()
                .map(|&(value, period)| Policy {
                    kind: PolicyKind::Pods,
                    value,
                    period: Duration::from_secs(period),
                })
                .collect(),
            tolerance: None,
        }
    }

    // TestStoreScaleEvents (horizontal_test.go), both directions.
    #[test]
    fn scale_events_reuse_the_last_outdated_slot() {
        type Case = (
            &'static str,
            Vec<ScaleEvent>,
            Vec<(u32, u64)>,
            i64,
            Vec<(u32, bool)>,
        );
        let cases: Vec<Case> = vec![
            (
                "empty entries with two-policy-behavior",
                vec![],
                vec![(10, 60), (100, 60)],
                0,
                vec![(5, false)],
            ),
            (
                "one outdated entry to be replaced with behavior",
                vec![ev(7, 61, false)],
                vec![(10, 60), (100, 60)],
                0,
                vec![(5, false)],
            ),
            (
                "one actual entry to be not touched with behavior",
                vec![ev(7, 58, false)],
                vec![(10, 60), (100, 60)],
                7,
                vec![(7, false), (5, false)],
            ),
            (
                "two entries, one of them to be replaced",
                vec![ev(7, 61, false), ev(6, 59, false)],
                vec![(10, 60)],
                6,
                vec![(5, false), (6, false)],
            ),
            (
                "replace one entry, use policies with different periods",
                vec![
                    ev(8, 29, false),
                    ev(6, 59, false),
                    ev(7, 61, false),
                    ev(9, 61, false),
                ],
                vec![(10, 60), (100, 30)],
                14,
                vec![(8, false), (6, false), (7, true), (5, false)],
            ),
            (
                "two entries, both actual",
                vec![ev(7, 58, false), ev(6, 59, false)],
                vec![(10, 120), (100, 30)],
                13,
                vec![(7, false), (6, false), (5, false)],
            ),
        ];
        for (name, before, policies, change, after) in cases {
            let r = rules(&policies);
            assert_eq!(
                change_within(Duration::from_secs(60), &before, NOW),
                change,
                "{name}"
            );
            let mut up = History {
                scale_up_events: before.clone(),
                ..History::default()
            };
            up.record_scale(&r, &rules(&[]), 10, 15, NOW);
            let got: Vec<(u32, bool)> = up
                .scale_up_events
                .iter()
                .map(|e| (e.change, e.outdated))
                .collect();
            assert_eq!(got, after, "up: {name}");
            assert!(up.scale_down_events.is_empty(), "up: {name}");
            let mut down = History {
                scale_down_events: before.clone(),
                ..History::default()
            };
            down.record_scale(&rules(&[]), &r, 10, 5, NOW);
            let got: Vec<(u32, bool)> = down
                .scale_down_events
                .iter()
                .map(|e| (e.change, e.outdated))
                .collect();
            assert_eq!(got, after, "down: {name}");
            assert!(down.scale_up_events.is_empty(), "down: {name}");
        }
        // An event exactly one longest period old is not outdated yet (upstream: Before).
        let mut h = History {
            scale_up_events: vec![ev(3, 60, false)],
            ..History::default()
        };
        h.record_scale(&rules(&[(1, 60)]), &rules(&[]), 1, 2, NOW);
        assert_eq!(h.scale_up_events.len(), 2);
        assert!(!h.scale_up_events[0].outdated);
        // No change is no event.
        let mut h = History::default();
        h.record_scale(&rules(&[(1, 60)]), &rules(&[(1, 60)]), 4, 4, NOW);
        assert_eq!(h, History::default());
        // The new event carries the time it was recorded.
        let mut h = History::default();
        h.record_scale(&rules(&[(1, 60)]), &rules(&[]), 1, 2, NOW);
        assert_eq!(
            h.scale_up_events,
            [ScaleEvent {
                change: 1,
                at_unix_nanos: NOW,
                outdated: false
            }]
        );
    }

    #[test]
    fn events_count_only_strictly_inside_their_period() {
        let events = [ev(1, 60, false), ev(2, 59, true), ev(4, 0, false)];
        // Outdated events still count while inside the period (upstream ignores the flag here).
        assert_eq!(change_within(Duration::from_secs(60), &events, NOW), 6);
        assert_eq!(change_within(Duration::from_secs(61), &events, NOW), 7);
        assert_eq!(change_within(Duration::ZERO, &events, NOW), 0);
    }
}
