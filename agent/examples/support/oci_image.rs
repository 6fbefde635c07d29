//! A small OCI image built on the spot from the static busybox: one uncompressed layer
//! (`/bin/busybox` and applet links), a config, a manifest and an index, packed as an OCI
//! archive that `ctr images import` takes. No registry is needed. Shared by live tests
//! through `#[path]`.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) const APPLETS: &[&str] = &[
    "sh", "sleep", "cat", "echo", "true", "false", "ls", "touch", "rm", "mkdir", "kill", "wc",
    "head", "nc", "httpd", "seq", "yes", "dd",
];

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Writes `<dir>/image.tar`, an OCI archive named `name` whose entrypoint is empty and
/// whose cmd is `cmd`, and returns its path.
pub(crate) fn build(
    dir: &Path,
    busybox: &Path,
    name: &str,
    cmd: &[&str],
) -> Result<PathBuf, String> {
    let rootfs = dir.join("layer-root");
    std::fs::create_dir_all(rootfs.join("bin")).map_err(|e| e.to_string())?;
    for d in ["tmp", "proc", "dev", "sys", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).map_err(|e| e.to_string())?;
    for applet in APPLETS {
        let link = rootfs.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).map_err(|e| e.to_string())?;
        }
    }
    let oci = dir.join("oci");
    let blobs = oci.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    let layer = dir.join("layer.tar");
    run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg("."))?;
    let layer_bytes = std::fs::read(&layer).map_err(|e| e.to_string())?;
    let layer_digest = sha256_hex(&layer_bytes);
    std::fs::write(blobs.join(&layer_digest), &layer_bytes).map_err(|e| e.to_string())?;
    let config = serde_json::json!({
        "architecture": aistor_agent::runtime::image::this_arch(),
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let config_digest = sha256_hex(&config_bytes);
    std::fs::write(blobs.join(&config_digest), &config_bytes).map_err(|e| e.to_string())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{config_digest}"), "size": config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": format!("sha256:{layer_digest}"), "size": layer_bytes.len()}],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let manifest_digest = sha256_hex(&manifest_bytes);
    std::fs::write(blobs.join(&manifest_digest), &manifest_bytes).map_err(|e| e.to_string())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{manifest_digest}"), "size": manifest_bytes.len(),
                       "annotations": {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name": name}}],
    });
    std::fs::write(
        oci.join("index.json"),
        serde_json::to_vec(&index).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(oci.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| e.to_string())?;
    let archive = dir.join("image.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&oci)
        .arg("-cf")
        .arg(&archive)
        .arg("."))?;
    Ok(archive)
}
