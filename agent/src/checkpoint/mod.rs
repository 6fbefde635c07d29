//! Checkpoint staging: copying a container's application checkpoint directory to the
//! shared (NFS) checkpoint volume with a verified manifest, atomically; verifying and
//! restoring it; checkpoint hooks; and whether CRIU works on this node.
//!
//! ## Layout on the checkpoint volume (`--checkpoint-dir`)
//!
//! ```text
//! <checkpoint-dir>/<namespace>/<pod>/<checkpoint-id>/<container>/
//!     manifest.json     every entry's path, type, mode, owner, size and sha256; totals;
//!                       the hook's outcome; start and finish times (see `manifest`)
//!     data/             the container's checkpoint directory, as it was
//! <checkpoint-dir>/<namespace>/<pod>/<checkpoint-id>/.staging_<node>_<container>_<random>/
//!                       a copy in progress (never read; removed by `sweep` after a crash)
//! ```
//!
//! Every name is checked ([`names`]) before it becomes a path component, so nothing
//! lands outside the checkpoint directory. Regular files, directories and symlinks are
//! staged (symlinks as links, never followed); anything else is refused with its path.
//! The hook's marker file ([`hook::DONE_MARKER`]) and the restore marker
//! ([`RESTORED_MARKER`]) are not staged.
//!
//! ## Atomic and durable
//!
//! A stage copies into the `.staging_…` directory next to where the container directory
//! will be, so the final step is a rename inside one directory of one filesystem. Before
//! it, all file data reaches the disk: a tree of up to 64 files has each file fsynced as
//! it is written; a larger one gets one `syncfs` of the checkpoint filesystem at the end
//! instead of an `fsync` per file, which is what makes 10,000 small files affordable (on
//! NFS the client also flushes and commits every file when it is closed). Then every
//! directory is fsynced deepest first, then the manifest is written and fsynced. The
//! rename refuses to replace an existing container directory (`RENAME_NOREPLACE`; where
//! the filesystem lacks it, as NFS does, an existence check and `rename`, which cannot
//! replace a non-empty directory) and the parent is fsynced after it. A reader therefore sees either no container
//! directory or a complete one with its manifest. A failed stage removes its staging
//! directory; one killed mid-copy leaves it behind, invisible to readers, until
//! [`stage::sweep`] runs at agent start. Staging names carry the node name, so one
//! node's sweep never removes another node's copy in progress on the shared volume.
//!
//! ## Memory
//!
//! Files are streamed through one 1 MiB buffer and hashed while copied; the manifest
//! holds one entry per file (at most [`manifest::MAX_ENTRIES`]).

pub mod criu;
pub mod criu_image;
pub mod hook;
pub mod init;
pub mod manifest;
pub mod names;
pub mod restore;
pub mod stage;
pub mod trigger;

mod copy;

pub use criu::CriuCapability;
pub use hook::Hook;
pub use restore::{Restored, Verified, restore, verify};
pub use stage::{Progress, StageRequest, Staged, stage, sweep};
pub use trigger::{ContainerExec, ExecOutput, HookTarget};

use std::path::{Path, PathBuf};

/// The manifest's name in a container directory.
pub const MANIFEST: &str = "manifest.json";
/// The staged files' directory in a container directory.
pub const DATA: &str = "data";
/// A CRIU checkpoint's directory in a container directory (see [`criu_image`]).
pub const CRIU: &str = "criu";
/// Start of a staging directory's name: `.staging_<node>_<container>_<random>`. `_` is not
/// allowed in node or container names, so the prefix for a node is unambiguous.
pub const STAGING_PREFIX: &str = ".staging_";
/// Start of a restore's temporary directory name.
pub const RESTORE_PREFIX: &str = ".aistor-restore_";
/// The file `aistor-agent restore` leaves in the directory it restored into, naming the
/// checkpoint, so a restarted init container does not restore twice. Never staged.
pub const RESTORED_MARKER: &str = ".aistor-restored";

/// Where checkpoint `id` of a pod in `namespace` is: `<dir>/<namespace>/<pod>/<id>`.
/// Ids are unique, so the first pod directory that has it is the one (a migrated pod
/// has a new name, so its checkpoint is found by namespace and id, not by pod).
pub fn find(dir: &Path, namespace: &str, id: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir.join(namespace))
        .ok()?
        .flatten()
        .map(|pod| pod.path().join(id))
        .find(|p| p.is_dir())
}

/// Why a stage, verify or restore failed. Every variant names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Name(#[from] names::NameError),
    #[error(transparent)]
    Hook(#[from] trigger::HookFailure),
    #[error("{op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {} already exists; checkpoint ids are unique and never overwritten", .0.display())]
    Exists(PathBuf),
    #[error("{}: {kind} cannot be checkpointed (only regular files, directories and symlinks)", .path.display())]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("{}: the name or link target is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("{}: more than {} entries", .0.display(), manifest::MAX_ENTRIES)]
    TooManyEntries(PathBuf),
    #[error("{}: {source}", .path.display())]
    Manifest {
        path: PathBuf,
        source: manifest::ManifestError,
    },
    /// A file of a staged checkpoint that does not match its manifest.
    #[error("{}: {problem}", .path.display())]
    Entry { path: PathBuf, problem: String },
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("restore destination {} is not empty", .0.display())]
    NotEmpty(PathBuf),
    #[error("the copy task failed: {0}")]
    Task(String),
    #[error("{} is a CRIU checkpoint: containerd restores it into a new pod's task (aistor.io/restore-from); it is not copied into a directory", .0.display())]
    CriuImage(PathBuf),
}
