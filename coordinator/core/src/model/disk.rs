//! The node's disk throughput rule.

/// One block device as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskRates {
    /// A whole device (not a partition, device-mapper or md volume).
    pub whole: bool,
    /// Read and write bytes per second; absent on a first reading or after a reset.
    pub rates: Option<(f64, f64)>,
}

/// Node disk throughput: the sum over *whole* disks only (partitions, dm and md
/// volumes would count the same bytes again). Absent when no whole disk has rates
/// yet, never zero in its place.
pub fn whole_disk_throughput(
    disks: impl IntoIterator<Item = DiskRates>,
) -> (Option<f64>, Option<f64>) {
    let mut total: Option<(f64, f64)> = None;
    for (r, w) in disks
        .into_iter()
        .filter(|d| d.whole)
        .filter_map(|d| d.rates)
    {
        let (tr, tw) = total.unwrap_or((0.0, 0.0));
        total = Some((tr + r, tw + w));
    }
    (total.map(|t| t.0), total.map(|t| t.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_disks_with_rates_count() {
        let d = |whole, rates| DiskRates { whole, rates };
        assert_eq!(
            whole_disk_throughput([
                d(true, Some((100.0, 10.0))),
                d(false, Some((100.0, 10.0))),
                d(true, None),
                d(true, Some((1.0, 2.0))),
            ]),
            (Some(101.0), Some(12.0))
        );
        assert_eq!(
            whole_disk_throughput([d(true, None), d(false, Some((1.0, 1.0)))]),
            (None, None)
        );
        assert_eq!(whole_disk_throughput([]), (None, None));
        assert_eq!(
            whole_disk_throughput([d(true, Some((0.0, 0.0)))]),
            (Some(0.0), Some(0.0)),
            "an idle disk is measured zero"
        );
    }
}
