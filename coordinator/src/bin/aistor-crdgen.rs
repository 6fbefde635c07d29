//! Writes the aistor CustomResourceDefinitions, generated from the Rust types in
//! `coordinator/src/k8s/crd/`, into `deploy/base/crds/` (or the directory given).
//!
//!   cargo run -p aistor-coordinator --bin aistor-crdgen            # regenerate
//!   cargo run -p aistor-coordinator --bin aistor-crdgen -- --check # exit 1 if the files differ
//!
//! `coordinator/tests/k8s_crds.rs` runs the same comparison in the test suite.

use std::path::PathBuf;
use std::process::ExitCode;

use aistor_coordinator::k8s::crd;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/base/crds"));
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!(
                    "usage: aistor-crdgen [--check] [DIR]  (default DIR: {})",
                    dir.display()
                );
                return ExitCode::SUCCESS;
            }
            other => dir = PathBuf::from(other),
        }
    }
    let mut stale = Vec::new();
    for (file, definition) in crd::definitions() {
        let path = dir.join(file);
        let yaml = match crd::to_yaml(&definition) {
            Ok(yaml) => yaml,
            Err(e) => {
                eprintln!("aistor-crdgen: cannot serialise {file}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
                stale.push(path);
            }
            continue;
        }
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, yaml)) {
            eprintln!("aistor-crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    if stale.is_empty() {
        ExitCode::SUCCESS
    } else {
        for path in stale {
            eprintln!(
                "aistor-crdgen: {} differs from the Rust types; regenerate",
                path.display()
            );
        }
        ExitCode::FAILURE
    }
}
