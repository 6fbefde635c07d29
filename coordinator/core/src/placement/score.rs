//! How a score explains itself: its parts, each with its points, its maximum and
//! the rule that gave them. Parts live in a small fixed array, not on the heap:
//! every node of every placement carries them.

use std::ops::Deref;

/// The scores placement adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PluginName {
    DataLocalityAware,
    StorageTierAware,
    IoPatternBased,
    LiveHeadroom,
}

impl PluginName {
    /// The original's plugin names (and aistor's for headroom).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DataLocalityAware => "DataLocalityAware",
            Self::StorageTierAware => "StorageTierAware",
            Self::IoPatternBased => "IOPatternBased",
            Self::LiveHeadroom => "LiveHeadroom",
        }
    }
}

/// Up to `N` values, in order, without an allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Few<T, const N: usize> {
    len: usize,
    items: [T; N],
}

impl<T: Copy + Default, const N: usize> Default for Few<T, N> {
    fn default() -> Self {
        Self {
            len: 0,
            items: [T::default(); N],
        }
    }
}

impl<T: Copy + Default, const N: usize> Few<T, N> {
    /// Adds `item`; callers never hold more than `N` (a plugin's parts are fixed).
    pub(crate) fn push(&mut self, item: T) {
        self.items[self.len] = item;
        self.len += 1;
    }
}

impl<T, const N: usize> Deref for Few<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items[..self.len]
    }
}

/// One part of a seed plugin's score (keti.md §5.2's letters: A, P, C, T, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Part {
    pub name: &'static str,
    pub points: i64,
    pub max: i64,
    /// The rule that gave the points.
    pub why: &'static str,
}

pub type Parts = Few<Part, 5>;

/// A seed plugin's raw score out of its maximum, with its parts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scored {
    pub raw: i64,
    pub max: i64,
    pub parts: Parts,
}

/// The original's answer for pods a plugin does not judge.
pub(crate) const NEUTRAL: i64 = 50;

impl Scored {
    /// From parts: raw is their sum, out of `max` (the sum of the part maxima).
    pub(crate) fn of(max: i64, parts: &[Part]) -> Self {
        let mut s = Self {
            max,
            ..Self::default()
        };
        for p in parts {
            s.raw += p.points;
            s.parts.push(*p);
        }
        s
    }

    /// The original's literal 50 for a pod the plugin does not judge, kept in the
    /// middle of the scale (50 of 100) whatever the configured maxima.
    pub(crate) fn neutral(why: &'static str) -> Self {
        Self::of(
            100,
            &[Part {
                name: "neutral",
                points: NEUTRAL,
                max: 100,
                why,
            }],
        )
    }

    /// `raw × 100 / max`, within 0–100.
    pub fn normalised(&self) -> f64 {
        normalise(self.raw as f64, self.max as f64)
    }
}

/// `raw × 100 / max`, within 0–100 (0 when there is no maximum).
pub(crate) fn normalise(raw: f64, max: f64) -> f64 {
    if max > 0.0 {
        (raw * 100.0 / max).clamp(0.0, 100.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_is_raw_over_max_in_percent_within_the_scale() {
        let part = |points, max| Part {
            name: "x",
            points,
            max,
            why: "",
        };
        let s = Scored::of(200, &[part(30, 100), part(20, 100)]);
        assert_eq!((s.raw, s.max, s.parts.len()), (50, 200, 2));
        assert_eq!(s.normalised(), 25.0);
        assert_eq!(Scored::of(100, &[part(150, 100)]).normalised(), 100.0);
        assert_eq!(Scored::of(100, &[part(-5, 100)]).normalised(), 0.0);
        assert_eq!(normalise(5.0, 0.0), 0.0);
        assert_eq!(normalise(3.0, 4.0), 75.0);
        let n = Scored::neutral("why");
        assert_eq!((n.raw, n.max, n.normalised()), (50, 100, 50.0));
        assert_eq!(n.parts[0].why, "why");
    }

    #[test]
    fn names_are_the_originals() {
        assert_eq!(PluginName::IoPatternBased.as_str(), "IOPatternBased");
        assert_eq!(PluginName::DataLocalityAware.as_str(), "DataLocalityAware");
        assert_eq!(PluginName::StorageTierAware.as_str(), "StorageTierAware");
        assert_eq!(PluginName::LiveHeadroom.as_str(), "LiveHeadroom");
    }
}
