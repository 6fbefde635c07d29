//! The CRDs checked in under `deploy/base/crds/` are exactly what the Rust types generate, and
//! the kustomization applies every one of them.

use std::path::PathBuf;

use aistor_coordinator::k8s::crd;

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/crds")
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    let mut stale = Vec::new();
    for (file, definition) in crd::definitions() {
        let want = crd::to_yaml(&definition).expect("a CRD serialises");
        let path = crds_dir().join(file);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from the CRDs the Rust types in coordinator/src/k8s/crd/ generate; \
         run `cargo run -p aistor-coordinator --bin aistor-crdgen` and commit the result"
    );
}

#[test]
fn no_stray_files_and_every_crd_is_in_the_kustomization() {
    let generated: Vec<&str> = crd::definitions().iter().map(|(file, _)| *file).collect();
    let mut present: Vec<String> = std::fs::read_dir(crds_dir())
        .expect("deploy/base/crds exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    present.sort();
    let mut want: Vec<String> = generated.iter().map(|f| (*f).to_owned()).collect();
    want.sort();
    assert_eq!(
        present, want,
        "deploy/base/crds holds exactly the generated CRDs"
    );

    let kustomization = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/kustomization.yaml"),
    )
    .expect("read deploy/base/kustomization.yaml");
    let parsed: serde_json::Value =
        serde_yaml_ng::from_str(&kustomization).expect("kustomization.yaml is YAML");
    let resources: Vec<&str> = parsed["resources"]
        .as_array()
        .expect("resources is a list")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    for file in generated {
        let entry = format!("crds/{file}");
        assert!(
            resources.contains(&entry.as_str()),
            "deploy/base/kustomization.yaml does not list {entry}"
        );
    }
}

#[test]
fn a_resource_round_trips_through_its_generated_type() {
    // What `kubectl apply` of a user's Autoscaler gives the store: the serde names are the CRD's.
    let yaml = r#"
apiVersion: aistor.io/v1alpha1
kind: Autoscaler
metadata: {name: trainer, namespace: ml}
spec:
  workloadRef: {kind: Deployment, name: trainer}
  minReplicas: 1
  maxReplicas: 8
  metrics: {gpuPercent: 70, ioReadMegabytesPerSecond: 500}
  scaleDown:
    stabilizationWindowSeconds: 300
    policies: [{type: Pods, value: 1, periodSeconds: 15}]
"#;
    let autoscaler: crd::Autoscaler = serde_yaml_ng::from_str(yaml).expect("parses");
    assert_eq!(autoscaler.spec.metrics.gpu_percent, Some(70));
    assert_eq!(
        autoscaler.spec.metrics.io_read_megabytes_per_second,
        Some(500.0)
    );
    let down = autoscaler.spec.scale_down.as_ref().expect("scaleDown");
    assert_eq!(down.policies[0].type_, crd::ScalingPolicyType::Pods);
    let back = serde_json::to_value(&autoscaler).expect("serialises");
    assert_eq!(back["spec"]["workloadRef"]["kind"], "Deployment");
    assert_eq!(
        back["spec"]["scaleDown"]["policies"][0]["periodSeconds"],
        15
    );
}
