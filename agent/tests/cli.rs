//! The agent binary as a person runs it.

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aistor-agent"))
}

#[test]
fn a_bad_flag_value_exits_non_zero_naming_the_flag() {
    for (args, flag) in [
        (&["run", "--interval", "often"][..], "--interval"),
        (&["run", "--coordinator", "not a url"][..], "--coordinator"),
        (&["snapshot", "--host-root"][..], "--host-root"),
    ] {
        let out = agent().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn an_environment_variable_is_validated_like_its_flag() {
    let out = agent()
        .args(["snapshot", "--json"])
        .env("AISTOR_AGENT_INTERVAL", "0s")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interval"));
}

#[test]
fn snapshot_prints_this_nodes_report_with_measured_rates() {
    let out = agent()
        .args([
            "snapshot",
            "--json",
            "--interval",
            "300ms",
            "--node-name",
            "snap",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is JSON only");
    assert_eq!(report["node"]["name"], "snap");
    assert_eq!(report["seq"], 2, "the second of two readings");
    let interval = report["interval_nanos"].as_u64().unwrap();
    assert!(
        (300_000_000..2_000_000_000).contains(&interval),
        "measured interval {interval}"
    );
    let cpu = report["usage"]["cpu"]["usage_millicores"]
        .as_f64()
        .expect("a CPU rate");
    let capacity = report["node"]["cpu_capacity_millicores"].as_f64().unwrap();
    assert!((0.0..=capacity * 1.05).contains(&cpu));
    assert!(
        report["usage"]["memory"]["working_set_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let mode = report["node"]["cgroup_mode"].as_str().unwrap();
    assert!(["v1", "v2", "hybrid"].contains(&mode), "{mode}");
    let disks = report["disks"].as_array().unwrap();
    assert!(
        disks
            .iter()
            .any(|d| d["kind"] == "whole" && d["rates"].is_object()),
        "{disks:?}"
    );
}
