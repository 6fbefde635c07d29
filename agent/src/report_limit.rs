//! Keeps every report under the coordinator's message limit
//! ([`aistor_proto::MAX_REPORT_BYTES`]) without losing a measurement result to size.
//!
//! Finished measurement results wait in a queue and ride with the next reports, as
//! many as fit, oldest first; the rest wait for the following report. A result too
//! large to fit even alone is shortened until it fits, and its `truncated` field says
//! what was cut (long strings first, then per-sample lists, which the summaries
//! describe, then whole targets). Its id, node, times and error always arrive, so the
//! run is completed on the coordinator rather than left `running`.

use aistor_proto::v1 as pb;
use prost::Message;
use std::collections::{BTreeMap, VecDeque};

/// `NodeReport.measurements`' field number (its tag is one byte).
const MEASUREMENTS_FIELD: u32 = 12;
/// Strings longer than this are cut to it first (PATH_MAX: no real cgroup path is longer).
pub const MAX_STRING_BYTES: usize = 4096;

/// Bytes `result` adds to a report as one `measurements` entry.
fn entry_len(result: &pb::MeasurementResult) -> usize {
    prost::encoding::message::encoded_len(MEASUREMENTS_FIELD, result)
}

/// Moves results from `pending` into `report.measurements`, oldest first, while the
/// report's encoded size stays within `limit`. The first result goes in whenever the
/// rest of the report leaves room for it, shortened if it must be; the others wait.
/// Returns how many results were shortened.
pub fn fit_measurements(
    report: &mut pb::NodeReport,
    pending: &mut VecDeque<pb::MeasurementResult>,
    limit: usize,
) -> usize {
    // Most ticks carry no result: then the report's size (a walk over every pod) is
    // not needed on the agent's tick.
    if pending.is_empty() {
        return 0;
    }
    let mut used = report.encoded_len();
    let mut shortened = 0;
    while let Some(next) = pending.front() {
        let room = limit.saturating_sub(used);
        let len = entry_len(next);
        if len <= room {
            used += len;
            report.measurements.extend(pending.pop_front());
            continue;
        }
        if !report.measurements.is_empty() {
            // It may fit whole in the next report, which takes it first.
            break;
        }
        let mut result = next.clone();
        if shorten(&mut result, room, limit) {
            pending.pop_front();
            used += entry_len(&result);
            report.measurements.push(result);
            shortened += 1;
        } else {
            // Not even its id fits beside the rest of this report: it waits, whole.
            break;
        }
    }
    shortened
}

/// Shortens `result` (bound for a report limited to `limit` bytes) until it takes at most `room` bytes as a report entry, saying
/// in `truncated` what was cut. False (and `result` partly shortened) when even its
/// bare identity does not fit.
pub fn shorten(result: &mut pb::MeasurementResult, room: usize, limit: usize) -> bool {
    let original = entry_len(result);
    let mut cuts: Vec<String> = Vec::new();
    let fits = |r: &pb::MeasurementResult, cuts: &[String]| {
        let mut probe = r.clone();
        probe.truncated = describe(limit, original, room, cuts);
        entry_len(&probe) <= room
    };

    cut_strings(result, MAX_STRING_BYTES, &mut cuts);
    if !fits(result, &cuts) {
        let mut dropped = 0;
        for_each_cgroup(&mut result.targets, &mut |c| {
            dropped += std::mem::take(&mut c.samples).len();
        });
        if dropped > 0 {
            cuts.push(format!(
                "{dropped} per-sample readings dropped (summaries, samples_taken and samples_failed are as measured)"
            ));
        }
    }
    if !fits(result, &cuts) {
        let mut dropped = 0;
        for_each_cgroup(&mut result.targets, &mut |c| {
            dropped += std::mem::take(&mut c.failures).len();
        });
        if dropped > 0 {
            cuts.push(format!(
                "{dropped} sample failure reasons dropped (samples_failed is as measured)"
            ));
        }
    }
    if !fits(result, &cuts) {
        cut_strings(result, 256, &mut cuts);
    }
    if !fits(result, &cuts) && !result.targets.is_empty() {
        let dropped = std::mem::take(&mut result.targets).len();
        cuts.push(format!("{dropped} measured targets dropped"));
    }
    if !fits(result, &cuts) && result.run.is_some() {
        result.run = None;
        cuts.push("the run's request dropped".to_owned());
    }
    if !fits(result, &cuts) {
        cut_strings(result, 64, &mut cuts);
    }
    result.truncated = describe(limit, original, room, &cuts);
    entry_len(result) <= room
}

fn describe(limit: usize, original: usize, room: usize, cuts: &[String]) -> String {
    format!(
        "shortened to fit the coordinator's report limit of {limit} bytes (this result was \
         {original} bytes; {room} were left beside the rest of its report): {}",
        cuts.join("; ")
    )
}

/// Calls `f` on every measured cgroup of `list`, containers included.
fn for_each_cgroup(list: &mut [pb::MeasuredCgroup], f: &mut dyn FnMut(&mut pb::MeasuredCgroup)) {
    for c in list {
        f(c);
        for_each_cgroup(&mut c.containers, f);
    }
}

/// Cuts every string of `result` longer than `limit` bytes. Adds one line per field
/// (without indexes, so the description stays short however many targets there are).
fn cut_strings(result: &mut pb::MeasurementResult, limit: usize, cuts: &mut Vec<String>) {
    // field -> (how many were cut, the longest before)
    let mut seen: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    let mut cut = |field: &'static str, s: &mut String| {
        if s.len() > limit {
            let entry = seen.entry(field).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(s.len());
            truncate_at_char(s, limit);
        }
    };
    // `id` and `node` are never cut: the coordinator completes the run by them.
    cut("error", &mut result.error);
    if let Some(run) = result.run.as_mut() {
        use pb::measure_target::Target;
        match run.target.as_mut().and_then(|t| t.target.as_mut()) {
            Some(Target::Pod(p)) => {
                cut("run.target.pod.namespace", &mut p.namespace);
                cut("run.target.pod.name", &mut p.name);
            }
            Some(Target::PodUid(s)) => cut("run.target.pod_uid", s),
            Some(Target::ContainerId(s)) => cut("run.target.container_id", s),
            Some(Target::CgroupPath(s)) => cut("run.target.cgroup_path", s),
            None => {}
        }
    }
    for_each_cgroup(&mut result.targets, &mut |c| {
        cut("targets.kind", &mut c.kind);
        cut("targets.name", &mut c.name);
        cut("targets.namespace", &mut c.namespace);
        cut("targets.pod_uid", &mut c.pod_uid);
        cut("targets.container_id", &mut c.container_id);
        cut("targets.cgroup_path", &mut c.cgroup_path);
        for f in &mut c.failures {
            cut("targets.failures.reason", &mut f.reason);
        }
    });
    for (field, (count, longest)) in seen {
        cuts.push(if count == 1 {
            format!("{field} cut from {longest} to at most {limit} bytes")
        } else {
            format!("{count} × {field} cut to at most {limit} bytes (the longest was {longest})")
        });
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;
    use aistor_proto::MAX_REPORT_BYTES;

    const MIB: usize = 1 << 20;

    fn report() -> pb::NodeReport {
        pb::NodeReport {
            node: Some(pb::NodeIdentity {
                name: "n1".into(),
                ..Default::default()
            }),
            agent_instance: "1-1".into(),
            seq: 7,
            ..Default::default()
        }
    }

    fn cgroup_run(id: &str, path: String) -> pb::MeasureRun {
        pb::MeasureRun {
            id: id.into(),
            target: Some(pb::MeasureTarget {
                target: Some(pb::measure_target::Target::CgroupPath(path)),
            }),
            samples: 3,
            interval_nanos: 1_000_000_000,
            trim: 0.1,
        }
    }

    /// A finished result with `samples` readings of one cgroup.
    fn measured(id: &str, samples: usize) -> pb::MeasurementResult {
        let sample = pb::MeasureSample {
            wall_time_unix_nanos: 1_795_393_676_000_000_000,
            elapsed_nanos: 1_000_000_000,
            cpu_millicores: Some(123.5),
            memory_working_set_bytes: Some(1 << 30),
            memory_rss_bytes: Some(1 << 29),
            io_read_bytes_per_second: Some(1.5),
            io_write_bytes_per_second: Some(2.5),
            io_reads_per_second: Some(3.5),
            io_writes_per_second: Some(4.5),
        };
        pb::MeasurementResult {
            id: id.into(),
            node: "n1".into(),
            run: Some(cgroup_run(id, "system.slice/x.service".into())),
            started_unix_nanos: 1,
            finished_unix_nanos: 2,
            targets: vec![pb::MeasuredCgroup {
                kind: "cgroup".into(),
                cgroup_path: "system.slice/x.service".into(),
                samples: vec![sample; samples],
                summary: Some(pb::MeasureSummary {
                    cpu_millicores: Some(pb::FigureSummary {
                        count: u32::try_from(samples).unwrap(),
                        median: 123.5,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                samples_taken: u32::try_from(samples).unwrap(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn results_that_fit_ride_along_untouched() {
        let mut r = report();
        let mut pending = VecDeque::from([measured("m-1", 10), measured("m-2", 10)]);
        let expected: Vec<_> = pending.iter().cloned().collect();
        assert_eq!(fit_measurements(&mut r, &mut pending, MAX_REPORT_BYTES), 0);
        assert!(pending.is_empty());
        assert_eq!(r.measurements, expected);
    }

    #[test]
    fn results_too_many_for_one_report_are_split_across_reports_and_none_is_lost() {
        // Each about 1.4 MiB: two fit under 4 MiB, the third waits.
        let each = measured("m-0", 20_000).encoded_len();
        assert!(
            each > MAX_REPORT_BYTES / 3 && each < MAX_REPORT_BYTES / 2,
            "{each}"
        );
        let mut pending: VecDeque<_> = (1..=5)
            .map(|i| measured(&format!("m-{i}"), 20_000))
            .collect();
        let mut ids = Vec::new();
        let mut reports = 0;
        while !pending.is_empty() {
            let mut r = report();
            assert_eq!(fit_measurements(&mut r, &mut pending, MAX_REPORT_BYTES), 0);
            assert!(r.encoded_len() <= MAX_REPORT_BYTES, "{}", r.encoded_len());
            assert!(!r.measurements.is_empty(), "every report makes progress");
            for m in &r.measurements {
                assert_eq!(m.truncated, "", "nothing was cut");
                assert_eq!(m.targets[0].samples.len(), 20_000);
            }
            ids.extend(r.measurements.into_iter().map(|m| m.id));
            reports += 1;
        }
        assert_eq!(
            ids,
            ["m-1", "m-2", "m-3", "m-4", "m-5"],
            "in order, none lost"
        );
        assert_eq!(reports, 3);
    }

    #[test]
    fn a_three_mib_cgroup_path_is_cut_and_the_result_still_arrives() {
        // Issue 12, finding 3: the run's target and the agent's error both repeat the
        // path, so the result alone is over 6 MiB.
        let path = "a/".repeat(3 * MIB / 2);
        let mut result = pb::MeasurementResult {
            id: "m-9".into(),
            node: "n1".into(),
            run: Some(cgroup_run("m-9", path.clone())),
            started_unix_nanos: 10,
            finished_unix_nanos: 11,
            error: format!("not found: cgroup {path}"),
            ..Default::default()
        };
        assert!(result.encoded_len() > MAX_REPORT_BYTES);
        let mut r = report();
        let mut pending = VecDeque::from([result.clone()]);
        assert_eq!(fit_measurements(&mut r, &mut pending, MAX_REPORT_BYTES), 1);
        assert!(pending.is_empty());
        assert!(r.encoded_len() <= MAX_REPORT_BYTES);
        let got = &r.measurements[0];
        assert_eq!((got.id.as_str(), got.node.as_str()), ("m-9", "n1"));
        assert_eq!((got.started_unix_nanos, got.finished_unix_nanos), (10, 11));
        assert!(
            got.error.starts_with("not found: cgroup a/a/"),
            "{}",
            got.error
        );
        assert_eq!(got.error.len(), MAX_STRING_BYTES);
        let Some(pb::measure_target::Target::CgroupPath(kept)) = got
            .run
            .as_ref()
            .unwrap()
            .target
            .as_ref()
            .unwrap()
            .target
            .as_ref()
        else {
            panic!("the run's target is kept");
        };
        assert_eq!(kept.len(), MAX_STRING_BYTES);
        assert!(path.starts_with(kept.as_str()));
        assert!(
            got.truncated.contains(&format!(
                "run.target.cgroup_path cut from {} to at most 4096 bytes",
                path.len()
            )),
            "{}",
            got.truncated
        );
        assert!(
            got.truncated.contains("error cut from"),
            "{}",
            got.truncated
        );
        assert!(got.truncated.contains("4194304 bytes"), "{}", got.truncated);
        // Nothing else needed cutting.
        result.error.truncate(MAX_STRING_BYTES);
        assert_eq!(got.targets, result.targets);
    }

    #[test]
    fn an_oversized_result_loses_samples_before_its_summaries() {
        // ~5.6 MiB of samples: too large alone; the summaries and counts survive.
        let big = measured("m-1", 80_000);
        assert!(big.encoded_len() > MAX_REPORT_BYTES);
        let small = measured("m-2", 3);
        let mut r = report();
        let mut pending = VecDeque::from([big.clone(), small.clone()]);
        assert_eq!(fit_measurements(&mut r, &mut pending, MAX_REPORT_BYTES), 1);
        assert!(r.encoded_len() <= MAX_REPORT_BYTES);
        let got = &r.measurements[0];
        let target = &got.targets[0];
        assert!(target.samples.is_empty());
        assert_eq!(target.samples_taken, 80_000);
        assert_eq!(target.summary, big.targets[0].summary);
        assert!(
            got.truncated.contains("80000 per-sample readings dropped"),
            "{}",
            got.truncated
        );
        // The small one fits beside it, untouched.
        assert_eq!(r.measurements.get(1), Some(&small));
        assert!(pending.is_empty());
    }

    #[test]
    fn a_result_waits_when_the_rest_of_the_report_leaves_no_room_for_its_identity() {
        let mut r = report();
        let limit = r.encoded_len() + 10;
        let mut pending = VecDeque::from([measured("m-1", 100)]);
        assert!(entry_len(&pending[0]) > 600);
        assert_eq!(fit_measurements(&mut r, &mut pending, limit), 0);
        assert!(r.measurements.is_empty());
        assert_eq!(pending.len(), 1, "kept for a later report, not dropped");
        assert_eq!(pending[0], measured("m-1", 100), "and kept whole");
        // Room for it without its samples: it goes, shortened.
        let mut r = report();
        let limit = r.encoded_len() + 600;
        let n = fit_measurements(&mut r, &mut pending, limit);
        assert_eq!(n, 1, "{pending:?}");
        assert!(r.encoded_len() <= limit, "{} > {limit}", r.encoded_len());
        assert_eq!(r.measurements[0].id, "m-1");
        assert!(r.measurements[0].targets[0].samples.is_empty());
        assert_eq!(r.measurements[0].targets[0].samples_taken, 100);
        assert!(
            r.measurements[0]
                .truncated
                .contains("100 per-sample readings dropped"),
            "{}",
            r.measurements[0].truncated
        );
        assert!(pending.is_empty());
    }
}
