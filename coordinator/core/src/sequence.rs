//! Which sequence numbers of one agent process have been applied, so a replayed
//! report is recognised and never applied twice, while gaps can still be filled.

use std::collections::BTreeSet;

/// Seqs above `contiguous` that arrived out of order are kept individually; past
/// this many the oldest gap is declared lost, so memory stays bounded when an agent
/// never replays a report (its buffer overflowed).
const MAX_OUT_OF_ORDER: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqTracker {
    /// Every seq up to and including this one is accounted for (applied, or from
    /// before this coordinator first heard of the agent process).
    contiguous: u64,
    /// Applied seqs above `contiguous`.
    above: BTreeSet<u64>,
    started: bool,
}

impl SeqTracker {
    /// Records `seq`; false when it was already applied (a duplicate).
    pub fn admit(&mut self, seq: u64) -> bool {
        if !self.started {
            // The first report this coordinator sees from the process: earlier seqs
            // were handled by a previous coordinator (or are lost), not pending.
            self.started = true;
            self.contiguous = seq;
            return true;
        }
        if seq <= self.contiguous || !self.above.insert(seq) {
            return false;
        }
        while self.above.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
        if self.above.len() > MAX_OUT_OF_ORDER
            && let Some(first) = self.above.pop_first()
        {
            self.contiguous = first;
            while self.above.remove(&(self.contiguous + 1)) {
                self.contiguous += 1;
            }
        }
        true
    }

    /// The highest seq applied so far.
    pub fn highest(&self) -> u64 {
        self.above.last().copied().unwrap_or(self.contiguous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_reports_are_each_admitted_once() {
        let mut t = SeqTracker::default();
        for seq in 1..=10 {
            assert!(t.admit(seq));
        }
        for seq in 1..=10 {
            assert!(!t.admit(seq), "seq {seq} admitted twice");
        }
        assert_eq!(t.highest(), 10);
    }

    #[test]
    fn a_gap_can_be_filled_later_but_not_twice() {
        let mut t = SeqTracker::default();
        assert!(t.admit(1));
        assert!(t.admit(4));
        assert!(t.admit(2));
        assert!(t.admit(3));
        assert!(!t.admit(3));
        assert_eq!(t.contiguous, 4);
        assert!(t.above.is_empty());
    }

    #[test]
    fn first_seen_seq_need_not_be_one() {
        let mut t = SeqTracker::default();
        assert!(t.admit(57));
        assert!(
            !t.admit(12),
            "seqs before the first seen belong to an earlier coordinator"
        );
        assert!(t.admit(58));
    }

    #[test]
    fn out_of_order_memory_is_bounded() {
        let mut t = SeqTracker::default();
        assert!(t.admit(1));
        for seq in (3..).step_by(2).take(MAX_OUT_OF_ORDER + 10) {
            assert!(t.admit(seq));
        }
        assert!(t.above.len() <= MAX_OUT_OF_ORDER);
        assert!(
            !t.admit(3),
            "an applied seq stays a duplicate after compaction"
        );
    }

    proptest! {
        #[test]
        fn each_seq_is_admitted_at_most_once(seqs in proptest::collection::vec(1u64..300, 1..600)) {
            let mut t = SeqTracker::default();
            let mut applied = BTreeSet::new();
            let first = seqs[0];
            for seq in seqs {
                if t.admit(seq) {
                    prop_assert!(applied.insert(seq), "seq {} applied twice", seq);
                    prop_assert!(seq >= first);
                }
            }
        }
    }
}
