//! A measurement run as its `Measurement` resource (`aistor.io/v1alpha1`), the form runs
//! take in the store on a cluster, so `kubectl get measurements` shows them:
//! - `spec` is the run's request (target, node, samples, interval, trim), written once;
//! - `status` is its state: phase, node, times, the summary of the measured target
//!   (the printer columns read it), `Complete` and `SamplesKept` conditions, and
//!   `record`, the whole run as protobuf in base64, which is what is read back;
//! - the annotation [`RECORD_ANNOTATION`] holds the run as it was created (no result),
//!   written with the main resource. The API takes the status in a second write, so a
//!   coordinator that stops between the two leaves a resource that still reads back as
//!   the running run it was, and the agent's result completes it.
//!
//! Pure: no I/O, no clock (every time comes from the run).

use crate::k8s::crd::{
    FigureSummary, MeasurementPhase, MeasurementResult, MeasurementSpec, MeasurementStatus,
    MeasurementTarget, PodName,
};
use crate::store::custom_resources::is_resource_name;
use aistor_proto::v1 as pb;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use prost::Message;
use serde_json::{Value, json};
use sha2::Digest;

/// The annotation holding the run as created, protobuf in base64.
pub const RECORD_ANNOTATION: &str = "aistor.io/measurement";
/// How `result.truncated` begins its part when the store, not the agent, cut the run;
/// `SamplesKept`'s reason says which of the two did.
pub const STORE_LIMIT_NOTE: &str = "stored shortened to fit the coordinator's store limit";
/// Prefix of the names given to runs whose id cannot be a resource name.
const HASHED_PREFIX: &str = "m-sha256-";

/// The resource name of a run: its id when the id is a valid name (every id the
/// coordinator hands out is), otherwise a name made from the id's SHA-256 (an id from an
/// agent may be anything); the record inside says which id it holds.
pub fn name_of(id: &str) -> String {
    if is_resource_name(id) && !id.starts_with(HASHED_PREFIX) {
        return id.to_owned();
    }
    let digest = sha2::Sha256::digest(id.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{HASHED_PREFIX}{hex}")
}

fn time(unix_nanos: u64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(unix_nanos)).unwrap_or_default())
}

fn phase(state: i32) -> MeasurementPhase {
    match pb::MeasurementState::try_from(state) {
        Ok(pb::MeasurementState::Running) => MeasurementPhase::Running,
        Ok(pb::MeasurementState::Succeeded) => MeasurementPhase::Succeeded,
        Ok(pb::MeasurementState::Failed) => MeasurementPhase::Failed,
        _ => MeasurementPhase::Pending,
    }
}

/// The run as created: what the annotation keeps (it never changes afterwards, so
/// later writes of the run touch the status only).
fn as_created(m: &pb::Measurement) -> pb::Measurement {
    pb::Measurement {
        id: m.id.clone(),
        node: m.node.clone(),
        state: pb::MeasurementState::Running as i32,
        run: m.run.clone(),
        created_unix_nanos: m.created_unix_nanos,
        result: None,
        error: String::new(),
    }
}

/// The request as the spec, each number only when the CRD's schema accepts it (the API
/// server would refuse the whole object otherwise; the record keeps it exactly).
fn spec(m: &pb::Measurement) -> MeasurementSpec {
    use pb::measure_target::Target;
    let Some(run) = m.run.clone() else {
        return MeasurementSpec {
            target: MeasurementTarget::default(),
            node: (!m.node.is_empty()).then(|| m.node.clone()),
            samples: None,
            interval_milliseconds: None,
            trim: None,
        };
    };
    let mut target = MeasurementTarget::default();
    match run.target.and_then(|t| t.target) {
        Some(Target::Pod(p)) => {
            target.pod = Some(PodName {
                namespace: p.namespace,
                name: p.name,
            })
        }
        Some(Target::PodUid(uid)) => target.pod_uid = Some(uid),
        Some(Target::ContainerId(id)) => target.container_id = Some(id),
        Some(Target::CgroupPath(path)) => target.cgroup_path = Some(path),
        None => {}
    }
    let millis = run.interval_nanos / 1_000_000;
    MeasurementSpec {
        target,
        node: (!m.node.is_empty()).then(|| m.node.clone()),
        samples: Some(run.samples).filter(|s| (1..=100_000).contains(s)),
        interval_milliseconds: Some(millis).filter(|ms| (10..=3_600_000).contains(ms)),
        trim: Some(run.trim).filter(|t| (0.0..0.5).contains(t)),
    }
}

fn figure(f: Option<&pb::FigureSummary>) -> Option<FigureSummary> {
    let f = f?;
    let numbers = [f.trimmed_mean, f.median, f.min, f.max, f.stddev];
    // JSON has no NaN: a figure that is not a number is left to the record.
    if !numbers.iter().all(|n| n.is_finite()) {
        return None;
    }
    Some(FigureSummary {
        count: f.count,
        trimmed_mean: f.trimmed_mean,
        trimmed_each_end: f.trimmed_each_end,
        median: f.median,
        min: f.min,
        max: f.max,
        stddev: f.stddev,
    })
}

/// The measured target's summary (the first target: a run measures one).
fn summary(result: &pb::MeasurementResult) -> Option<MeasurementResult> {
    let target = result.targets.first()?;
    let s = target.summary.unwrap_or_default();
    Some(MeasurementResult {
        samples: target.samples_taken,
        cpu_millicores: figure(s.cpu_millicores.as_ref()),
        memory_working_set_bytes: figure(s.memory_working_set_bytes.as_ref()),
        memory_rss_bytes: figure(s.memory_rss_bytes.as_ref()),
        io_read_bytes_per_second: figure(s.io_read_bytes_per_second.as_ref()),
        io_write_bytes_per_second: figure(s.io_write_bytes_per_second.as_ref()),
        io_reads_per_second: figure(s.io_reads_per_second.as_ref()),
        io_writes_per_second: figure(s.io_writes_per_second.as_ref()),
    })
}

fn condition(type_: &str, status: bool, reason: &str, message: String, at: u64) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: time(at),
        observed_generation: None,
    }
}

fn status(m: &pb::Measurement, record: String) -> MeasurementStatus {
    let phase = phase(m.state);
    let finished = matches!(
        phase,
        MeasurementPhase::Succeeded | MeasurementPhase::Failed
    );
    let result = m.result.as_ref();
    let started = result
        .map(|r| r.started_unix_nanos)
        .filter(|t| *t > 0)
        .unwrap_or(m.created_unix_nanos);
    let ended = result
        .map(|r| r.finished_unix_nanos)
        .filter(|t| *t > 0)
        .unwrap_or(started);
    let mut conditions = vec![match phase {
        MeasurementPhase::Succeeded => {
            condition("Complete", true, "Succeeded", String::new(), ended)
        }
        MeasurementPhase::Failed => condition("Complete", true, "Failed", m.error.clone(), ended),
        MeasurementPhase::Running => {
            condition("Complete", false, "Running", String::new(), started)
        }
        MeasurementPhase::Pending => {
            condition("Complete", false, "Pending", String::new(), started)
        }
    }];
    if let Some(r) = result {
        conditions.push(if r.truncated.is_empty() {
            condition("SamplesKept", true, "AllKept", String::new(), ended)
        } else if r.truncated.contains(STORE_LIMIT_NOTE) {
            condition(
                "SamplesKept",
                false,
                "ObjectSizeLimit",
                r.truncated.clone(),
                ended,
            )
        } else {
            condition(
                "SamplesKept",
                false,
                "ShortenedByAgent",
                r.truncated.clone(),
                ended,
            )
        });
    }
    MeasurementStatus {
        phase: Some(phase),
        node: (!m.node.is_empty()).then(|| m.node.clone()),
        start_time: Some(time(started)),
        completion_time: finished.then(|| time(ended)),
        result: result.and_then(summary),
        message: (!m.error.is_empty()).then(|| m.error.clone()),
        observed_generation: None,
        conditions,
        record: Some(record),
    }
}

/// The run as a `Measurement` resource in `namespace`.
pub fn to_resource(m: &pb::Measurement, namespace: &str) -> Value {
    let created = BASE64.encode(as_created(m).encode_to_vec());
    json!({
        "apiVersion": "aistor.io/v1alpha1",
        "kind": "Measurement",
        "metadata": {
            "name": name_of(&m.id),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "aistor-coordinator"},
            "annotations": {RECORD_ANNOTATION: created},
        },
        // Plain structs of strings and numbers (finite ones) always serialise.
        "spec": serde_json::to_value(spec(m)).unwrap_or_default(),
        "status": serde_json::to_value(status(m, BASE64.encode(m.encode_to_vec()))).unwrap_or_default(),
    })
}

fn decode_base64(what: &str, text: &str) -> Result<pb::Measurement, String> {
    let bytes = BASE64
        .decode(text.as_bytes())
        .map_err(|e| format!("{what}: {e}"))?;
    pb::Measurement::decode(bytes.as_slice()).map_err(|e| format!("{what}: {e}"))
}

/// The run a resource holds: its status' record, or (when the status was never
/// written) the run as created. An error names what is missing or broken; a resource
/// with neither was not made by aistor (a Measurement made with kubectl is not a run).
pub fn from_resource(body: &Value) -> Result<pb::Measurement, String> {
    if let Some(record) = body.pointer("/status/record").and_then(Value::as_str) {
        return decode_base64("status.record", record);
    }
    let annotation = body
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(RECORD_ANNOTATION))
        .and_then(Value::as_str);
    match annotation {
        Some(created) => decode_base64(&format!("annotation {RECORD_ANNOTATION}"), created),
        None => Err(format!(
            "it has no status.record and no annotation {RECORD_ANNOTATION}: not a run made by \
             aistor's API (a Measurement made with kubectl is not started)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> pb::Measurement {
        pb::Measurement {
            id: "m-1".into(),
            node: "n1".into(),
            state: pb::MeasurementState::Running as i32,
            run: Some(pb::MeasureRun {
                id: "m-1".into(),
                target: Some(pb::MeasureTarget {
                    target: Some(pb::measure_target::Target::Pod(pb::PodName {
                        namespace: "ml".into(),
                        name: "train".into(),
                    })),
                }),
                samples: 20,
                interval_nanos: 1_500_000_000,
                trim: 0.1,
            }),
            created_unix_nanos: 1_700_000_000_000_000_000,
            ..Default::default()
        }
    }

    fn finished(mut m: pb::Measurement, error: &str, truncated: &str) -> pb::Measurement {
        m.state = if error.is_empty() {
            pb::MeasurementState::Succeeded
        } else {
            pb::MeasurementState::Failed
        } as i32;
        m.error = error.into();
        let cpu = pb::FigureSummary {
            count: 20,
            trimmed_mean: 250.5,
            trimmed_each_end: 2,
            median: 250.0,
            min: 100.0,
            max: 400.0,
            stddev: 12.5,
        };
        m.result = Some(pb::MeasurementResult {
            id: m.id.clone(),
            node: m.node.clone(),
            started_unix_nanos: m.created_unix_nanos + 1_000_000_000,
            finished_unix_nanos: m.created_unix_nanos + 31_000_000_000,
            targets: vec![pb::MeasuredCgroup {
                kind: "pod".into(),
                samples_taken: 20,
                summary: Some(pb::MeasureSummary {
                    cpu_millicores: Some(cpu),
                    memory_working_set_bytes: Some(pb::FigureSummary {
                        median: f64::NAN,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                samples: vec![pb::MeasureSample::default(); 3],
                ..Default::default()
            }],
            error: error.into(),
            truncated: truncated.into(),
            ..Default::default()
        });
        m
    }

    fn conditions(body: &Value) -> Vec<(String, String, String)> {
        body["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                    c["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_running_run_is_its_spec_a_running_status_and_reads_back_whole() {
        let m = run();
        let body = to_resource(&m, "aistor");
        assert_eq!(body["metadata"]["name"], "m-1");
        assert_eq!(body["metadata"]["namespace"], "aistor");
        assert_eq!(
            body["spec"],
            json!({"target": {"pod": {"namespace": "ml", "name": "train"}}, "node": "n1",
                   "samples": 20, "intervalMilliseconds": 1500, "trim": 0.1})
        );
        assert_eq!(body["status"]["phase"], "Running");
        assert_eq!(body["status"]["node"], "n1");
        assert_eq!(body["status"]["startTime"], "2023-11-14T22:13:20Z");
        assert!(body["status"].get("completionTime").is_none());
        assert!(body["status"].get("result").is_none());
        assert_eq!(
            conditions(&body),
            [("Complete".into(), "False".into(), "Running".into())]
        );
        assert_eq!(from_resource(&body).unwrap(), m);
        // Without its status (a create the coordinator did not finish) it is the run as created.
        let mut bare = body.clone();
        bare.as_object_mut().unwrap().remove("status");
        assert_eq!(from_resource(&bare).unwrap(), m);
    }

    #[test]
    fn a_finished_run_shows_its_summary_and_conditions_and_keeps_its_annotation() {
        let m = finished(run(), "", "");
        let body = to_resource(&m, "aistor");
        assert_eq!(body["status"]["phase"], "Succeeded");
        assert_eq!(body["status"]["completionTime"], "2023-11-14T22:13:51Z");
        assert_eq!(body["status"]["startTime"], "2023-11-14T22:13:21Z");
        assert_eq!(body["status"]["result"]["samples"], 20);
        assert_eq!(
            body["status"]["result"]["cpuMillicores"]["trimmedMean"],
            250.5
        );
        assert_eq!(
            body["status"]["result"]["cpuMillicores"]["trimmedEachEnd"],
            2
        );
        // A NaN has no JSON form: that figure is left to the record.
        assert!(
            body["status"]["result"]
                .get("memoryWorkingSetBytes")
                .is_none()
        );
        assert_eq!(
            conditions(&body),
            [
                ("Complete".into(), "True".into(), "Succeeded".into()),
                ("SamplesKept".into(), "True".into(), "AllKept".into())
            ]
        );
        let back = from_resource(&body).unwrap();
        assert_eq!(back.result.as_ref().unwrap().targets[0].samples.len(), 3);
        assert!(
            back.result.unwrap().targets[0]
                .summary
                .as_ref()
                .unwrap()
                .memory_working_set_bytes
                .unwrap()
                .median
                .is_nan()
        );
        // Finishing changes the status only: the main resource is written once.
        let created = to_resource(&run(), "aistor");
        for part in ["metadata", "spec"] {
            assert_eq!(body[part], created[part], "{part}");
        }
    }

    #[test]
    fn a_result_without_times_is_dated_by_the_run_itself() {
        // A run that could not start: the agent's result may carry no times.
        let mut m = finished(run(), "target not found", "");
        let r = m.result.as_mut().unwrap();
        (r.started_unix_nanos, r.finished_unix_nanos) = (0, 0);
        let body = to_resource(&m, "aistor");
        assert_eq!(body["status"]["startTime"], "2023-11-14T22:13:20Z");
        assert_eq!(body["status"]["completionTime"], "2023-11-14T22:13:20Z");
        // Started but no end: it ends when it started.
        m.result.as_mut().unwrap().started_unix_nanos = m.created_unix_nanos + 5_000_000_000;
        let body = to_resource(&m, "aistor");
        assert_eq!(body["status"]["startTime"], "2023-11-14T22:13:25Z");
        assert_eq!(body["status"]["completionTime"], "2023-11-14T22:13:25Z");
        assert_eq!(
            body["status"]["conditions"][0]["lastTransitionTime"],
            "2023-11-14T22:13:25Z"
        );
    }

    #[test]
    fn a_failed_or_shortened_run_says_so_in_its_conditions() {
        let body = to_resource(&finished(run(), "target not found", ""), "aistor");
        assert_eq!(body["status"]["phase"], "Failed");
        assert_eq!(body["status"]["message"], "target not found");
        assert_eq!(
            body["status"]["conditions"][0]["message"],
            "target not found"
        );
        assert_eq!(
            conditions(&body)[0],
            ("Complete".into(), "True".into(), "Failed".into())
        );

        let by_agent = to_resource(&finished(run(), "", "shortened to fit the report"), "a");
        assert_eq!(
            conditions(&by_agent)[1],
            (
                "SamplesKept".into(),
                "False".into(),
                "ShortenedByAgent".into()
            )
        );
        let note = format!("{STORE_LIMIT_NOTE} of 1048576 bytes: 3 readings dropped");
        let by_store = to_resource(&finished(run(), "", &note), "a");
        assert_eq!(
            conditions(&by_store)[1],
            (
                "SamplesKept".into(),
                "False".into(),
                "ObjectSizeLimit".into()
            )
        );
        assert_eq!(
            by_store["status"]["conditions"][1]["message"],
            note.as_str()
        );
    }

    #[test]
    fn numbers_outside_the_schema_are_left_out_of_the_spec() {
        let mut m = run();
        let r = m.run.as_mut().unwrap();
        r.samples = 100_001;
        r.interval_nanos = 9_999_999;
        r.trim = 0.5;
        let body = to_resource(&m, "a");
        assert_eq!(
            body["spec"],
            json!({"target": {"pod": {"namespace": "ml", "name": "train"}}, "node": "n1"})
        );
        for (samples, interval, trim) in [(1, 10_000_000, 0.0), (100_000, 3_600_000_000_000, 0.49)]
        {
            let r = m.run.as_mut().unwrap();
            (r.samples, r.interval_nanos, r.trim) = (samples, interval, trim);
            let spec = to_resource(&m, "a")["spec"].clone();
            assert_eq!(spec["samples"], samples);
            assert_eq!(spec["intervalMilliseconds"], interval / 1_000_000);
            assert_eq!(spec["trim"], trim);
        }
        m.run = None;
        m.node.clear();
        assert_eq!(to_resource(&m, "a")["spec"], json!({"target": {}}));
        assert!(to_resource(&m, "a")["status"].get("node").is_none());
    }

    #[test]
    fn ids_that_cannot_be_names_get_a_stable_hashed_name() {
        assert_eq!(name_of("m-0000000001"), "m-0000000001");
        assert_eq!(name_of("cli-1700000000"), "cli-1700000000");
        let odd = name_of("CLI_Run/7");
        assert!(
            odd.starts_with(HASHED_PREFIX) && is_resource_name(&odd),
            "{odd}"
        );
        assert_eq!(odd, name_of("CLI_Run/7"));
        assert_ne!(odd, name_of("CLI_Run/8"));
        assert_eq!(odd.len(), HASHED_PREFIX.len() + 24);
        // A valid id that looks like a hashed name is hashed too, so the two never meet.
        assert_ne!(name_of(&odd), odd);
        assert!(name_of(&"a".repeat(254)).starts_with(HASHED_PREFIX));
    }

    #[test]
    fn a_resource_aistor_did_not_make_is_refused_naming_why() {
        let err = from_resource(&json!({"spec": {}})).unwrap_err();
        assert!(err.contains("not a run made by aistor's API"), "{err}");
        let err = from_resource(&json!({"status": {"record": "!!"}})).unwrap_err();
        assert!(err.starts_with("status.record: "), "{err}");
        let err = from_resource(&json!({"metadata": {"annotations": {RECORD_ANNOTATION: "AAEC"}}}))
            .unwrap_err();
        assert!(
            err.starts_with("annotation aistor.io/measurement: "),
            "{err}"
        );
    }
}
