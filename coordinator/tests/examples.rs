//! Every manifest shipped in `deploy/examples/` is accepted as the coordinator would
//! accept it from `aistorctl apply`: read as YAML documents, each a Pod the local
//! runtime can run, a Deployment whose template is one, or an Autoscaler.

use aistor_coordinator::autoscalers::object;
use aistor_coordinator::cli::workloads::documents;
use aistor_core::{manifest, workload};
use std::path::Path;

#[test]
fn shipped_examples_are_accepted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/examples exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        // The resumed pod names its checkpoint with ${CHECKPOINT_ID} (envsubst).
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("${CHECKPOINT_ID}", "ckpt-00000000");
        for doc in documents(&path.display().to_string(), &text).unwrap() {
            match doc["kind"].as_str() {
                Some("Pod") => {
                    manifest::from_value(doc.clone())
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
                Some("Deployment") => {
                    workload::parse_deployment(&doc)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
                Some("Autoscaler") => {
                    object::parse(&doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
                Some("AIStorageConfig") => {
                    let (_, config) =
                        aistor_coordinator::placement::config::parse_document(&doc.to_string())
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    // The example shows the defaults: applying it changes nothing.
                    assert_eq!(
                        config,
                        aistor_core::placement::Config::default(),
                        "{}",
                        path.display()
                    );
                }
                Some("KubeSchedulerConfiguration") => {
                    // Its verbs are the extender's routes: urlPrefix + "/" + verb.
                    let e = &doc["extenders"][0];
                    assert!(
                        e["urlPrefix"]
                            .as_str()
                            .is_some_and(|u| u.ends_with("/scheduler")),
                        "{e}"
                    );
                    assert_eq!(e["filterVerb"], "filter");
                    assert_eq!(e["prioritizeVerb"], "prioritize");
                    assert!(
                        e.get("bindVerb").is_none(),
                        "aistor's extender does not bind"
                    );
                }
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "the seed 003 pod, its resumed twin, the burner Deployment and its Autoscaler"
    );
    // The seed's shape: three containers with its names.
    let seed = std::fs::read_to_string(dir.join("seed-003-training-pod.yaml")).unwrap();
    let pod = manifest::from_value(documents("seed", &seed).unwrap().remove(0)).unwrap();
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["tensorflow-trainer", "data-processor", "model-monitor"]
    );
    // The burner's autoscaler scales the burner Deployment, in its namespace.
    let burner = std::fs::read_to_string(dir.join("cpu-burner-deployment.yaml")).unwrap();
    let deployment = documents("burner", &burner).unwrap().remove(0);
    let text = std::fs::read_to_string(dir.join("cpu-burner-autoscaler.yaml")).unwrap();
    let a = object::parse(&documents("autoscaler", &text).unwrap().remove(0)).unwrap();
    assert_eq!(a.namespace, deployment["metadata"]["namespace"]);
    assert_eq!(a.spec.workload_ref.kind, "Deployment");
    assert_eq!(a.spec.workload_ref.name, deployment["metadata"]["name"]);
    assert_eq!((a.spec.min_replicas, a.spec.max_replicas), (1, 4));
    assert_eq!(a.spec.metrics.cpu_percent, Some(50));
    assert_eq!(
        a.spec
            .scale_down
            .and_then(|r| r.stabilization_window_seconds),
        Some(60)
    );
}
