//! `aistor-agent restore`: restoring a staged checkpoint inside a new pod, for pods the
//! kubelet starts (an init container running the agent image, with the checkpoint volume
//! and the pod's checkpoint volume mounted). The checkpoint is found by namespace and id
//! on the checkpoint volume (the new pod's name differs from the old one's), verified
//! file by file while it is copied ([`super::restore`]), and a marker
//! ([`super::RESTORED_MARKER`]) is left in the destination so a restarted init container
//! does not restore twice: with the marker of the same checkpoint and container it
//! succeeds without copying; with another's it fails.
//!
//! Known gap: a restore killed after its last rename and before the marker is written
//! leaves a complete but unmarked destination, which the next run refuses as not empty.

use super::{Error, RESTORED_MARKER, Restored, find, names};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to restore, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInto {
    /// The checkpoint volume.
    pub checkpoint_dir: PathBuf,
    pub namespace: String,
    pub checkpoint_id: String,
    pub container: String,
    /// The directory to fill: absent, or empty (a volume's mount point).
    pub into: PathBuf,
}

/// How a restore ended well.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Restored(Box<Restored>),
    /// The marker says this checkpoint was restored here already.
    AlreadyRestored {
        marker: PathBuf,
    },
}

/// What the marker holds: which checkpoint and container were restored.
fn marker_text(req: &RestoreInto) -> String {
    format!(
        "checkpoint_id={}\ncontainer={}\n",
        req.checkpoint_id, req.container
    )
}

/// Restores the container's checkpoint into `req.into`; `Err` says what went wrong,
/// naming the file for a mismatch with the manifest.
pub async fn restore_into(req: &RestoreInto) -> Result<Outcome, String> {
    names::dns_label("namespace", &req.namespace).map_err(|e| e.to_string())?;
    names::checkpoint_id(&req.checkpoint_id).map_err(|e| e.to_string())?;
    names::dns_label("container", &req.container).map_err(|e| e.to_string())?;
    let marker = req.into.join(RESTORED_MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(text) if text == marker_text(req) => {
            return Ok(Outcome::AlreadyRestored { marker });
        }
        Ok(text) => {
            return Err(format!(
                "{} says it holds another restore ({}), not checkpoint {} of container {}",
                marker.display(),
                text.trim().replace('\n', ", "),
                req.checkpoint_id,
                req.container
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", marker.display())),
    }
    let source =
        find(&req.checkpoint_dir, &req.namespace, &req.checkpoint_id).ok_or_else(|| {
            format!(
                "no checkpoint {} of namespace {} on the checkpoint volume {}",
                req.checkpoint_id,
                req.namespace,
                req.checkpoint_dir.display()
            )
        })?;
    let from = source.join(&req.container);
    if !from.is_dir() {
        return Err(format!(
            "checkpoint {} has no container {} ({})",
            req.checkpoint_id,
            req.container,
            from.display()
        ));
    }
    let restored = super::restore(from, req.into.clone(), |_| {})
        .await
        .map_err(|e| {
            format!(
                "restoring checkpoint {} of container {} into {}: {e}",
                req.checkpoint_id,
                req.container,
                req.into.display()
            )
        })?;
    write_marker(&req.into, &marker_text(req))
        .map_err(|e| format!("restored, but writing the marker failed: {e}"))?;
    Ok(Outcome::Restored(Box::new(restored)))
}

/// Writes the marker aside, makes it durable and renames it into place.
fn write_marker(dir: &Path, text: &str) -> Result<(), Error> {
    let io = super::copy::io;
    let temp = dir.join(format!("{RESTORED_MARKER}.tmp"));
    let mut file = std::fs::File::create(&temp).map_err(io("creating", &temp))?;
    file.write_all(text.as_bytes())
        .map_err(io("writing", &temp))?;
    file.sync_all().map_err(io("syncing", &temp))?;
    let marker = dir.join(RESTORED_MARKER);
    std::fs::rename(&temp, &marker).map_err(io("renaming into place", &marker))?;
    super::copy::sync_dir(dir)
}
