//! Verifying a staged checkpoint against its manifest, and restoring it into a new pod's
//! checkpoint volume. Both refuse, naming the file, a checkpoint with a missing,
//! extra, truncated, longer or corrupt file, a changed mode, link or type, or a missing or
//! bad manifest (which is also what a half-written staging directory looks like).
//!
//! A restore copies into a temporary directory, checking each file's size and sha256
//! as it copies, makes it durable and only then moves it into place; on failure the
//! temporary directory is removed, so nothing half-restored is left behind.
//! - destination absent: the temporary directory is `<parent>/.aistor-restore_<name>_…`
//!   and one rename makes it the destination;
//! - destination an empty directory (a volume's mount point cannot be renamed over): the
//!   temporary directory is inside it and its top-level entries are renamed into the
//!   destination one by one. A restore killed during those renames leaves a partial
//!   destination, which the next restore refuses as not empty; leftover temporary
//!   directories of killed restores inside it are removed first.
//!
//! Owners (uid, gid) are restored when the agent runs as root, as it does in the
//! DaemonSet; modes always. Modification times are not kept.

use super::copy::{self, BUFFER, io};
use super::manifest::{self, Kind, Manifest};
use super::stage::Progress;
use super::{Error, MANIFEST, RESTORE_PREFIX};
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A checkpoint that matches its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub manifest: Manifest,
}

/// A completed restore.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    pub manifest: Manifest,
    pub destination: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub duration: Duration,
    pub bytes_per_second: f64,
}

/// Checks the container directory `dir` (`…/<id>/<container>`) against its manifest
/// without copying: every entry present with its type, mode, size, sha256 or link target,
/// and nothing else under `data/`.
pub async fn verify(dir: PathBuf) -> Result<Verified, Error> {
    tokio::task::spawn_blocking(move || verify_blocking(&dir))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

/// Restores the container directory `dir` into `destination` (absent, or an empty
/// directory), verifying every file while copying. `progress` is as for a stage.
pub async fn restore(
    dir: PathBuf,
    destination: PathBuf,
    progress: impl FnMut(Progress) + Send + 'static,
) -> Result<Restored, Error> {
    tokio::task::spawn_blocking(move || restore_blocking(&dir, &destination, progress))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

/// Reads and checks `<dir>/manifest.json`, reading at most the size limit.
fn read_manifest(dir: &Path) -> Result<Manifest, Error> {
    let path = dir.join(MANIFEST);
    let file = fs::File::open(&path).map_err(io("reading the manifest", &path))?;
    let mut bytes = Vec::new();
    file.take(manifest::MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io("reading the manifest", &path))?;
    manifest::parse(&bytes).map_err(|source| Error::Manifest { path, source })
}

fn mismatch(path: PathBuf, problem: impl Into<String>) -> Error {
    Error::Entry {
        path,
        problem: problem.into(),
    }
}

fn kind_of(t: fs::FileType) -> &'static str {
    if t.is_file() {
        "a file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        copy::kind_name(t)
    }
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "a file",
        Kind::Dir => "a directory",
        Kind::Symlink => "a symlink",
    }
}

/// Refuses anything under `data/` the manifest does not list (walks real directories
/// only, never links).
fn refuse_extras(data: &Path, m: &Manifest) -> Result<(), Error> {
    let listed: HashSet<&str> = m.entries.iter().map(|e| e.path.as_str()).collect();
    let mut pending = vec![String::new()];
    while let Some(rel) = pending.pop() {
        let dir = data.join(&rel);
        let items = match fs::read_dir(&dir) {
            Ok(items) => items,
            // a listed directory that is missing or not a directory is reported by the
            // entry checks, with the manifest's view of it
            Err(_) if !rel.is_empty() => continue,
            Err(e) => return Err(io("listing", &dir)(e)),
        };
        for item in items {
            let item = item.map_err(io("listing", &dir))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                return Err(mismatch(item.path(), "not in the manifest"));
            };
            let child = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            if !listed.contains(child.as_str()) {
                return Err(mismatch(item.path(), "not in the manifest"));
            }
            if item
                .file_type()
                .map_err(io("reading the type of", &item.path()))?
                .is_dir()
            {
                pending.push(child);
            }
        }
    }
    Ok(())
}

/// Checks the entry's type (and mode, for files and directories) on disk.
fn check_meta(path: &Path, e: &manifest::Entry) -> Result<fs::Metadata, Error> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(mismatch(path.to_path_buf(), "missing"));
        }
        Err(err) => return Err(io("reading", path)(err)),
    };
    let (have, want) = (kind_of(meta.file_type()), expected(e.kind));
    if have != want {
        return Err(mismatch(
            path.to_path_buf(),
            format!("is {have}, the manifest says {want}"),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if e.kind != Kind::Symlink && mode != e.mode {
        return Err(mismatch(
            path.to_path_buf(),
            format!("mode {mode:o}, the manifest says {:o}", e.mode),
        ));
    }
    Ok(meta)
}

fn check_link(path: &Path, e: &manifest::Entry) -> Result<String, Error> {
    let target = fs::read_link(path).map_err(io("reading the link", path))?;
    let want = e.target.as_deref().unwrap_or_default();
    if target.as_os_str() != want {
        return Err(mismatch(
            path.to_path_buf(),
            format!("links to {target:?}, the manifest says {want:?}"),
        ));
    }
    Ok(want.to_owned())
}

/// Compares what was read from `path` with the file's manifest entry.
fn check_content(path: &Path, e: &manifest::Entry, got: &copy::Copied) -> Result<(), Error> {
    let size = e.size.unwrap_or_default();
    if got.bytes != size {
        let what = if got.bytes < size {
            "truncated"
        } else {
            "longer"
        };
        let shown = if got.bytes > size {
            format!("more than {size}")
        } else {
            got.bytes.to_string()
        };
        return Err(mismatch(
            path.to_path_buf(),
            format!("{what}: {shown} bytes, the manifest says {size}"),
        ));
    }
    let sha = manifest::hex(&got.sha256);
    let want = e.sha256.as_deref().unwrap_or_default();
    if sha != want {
        return Err(mismatch(
            path.to_path_buf(),
            format!("corrupt: sha256 {sha}, the manifest says {want}"),
        ));
    }
    Ok(())
}

fn verify_blocking(dir: &Path) -> Result<Verified, Error> {
    let m = read_manifest(dir)?;
    let data = dir.join(m.content.dir());
    refuse_extras(&data, &m)?;
    let mut buf = vec![0; BUFFER];
    for e in &m.entries {
        let path = data.join(&e.path);
        let meta = check_meta(&path, e)?;
        match e.kind {
            Kind::Dir => {}
            Kind::Symlink => {
                check_link(&path, e)?;
            }
            Kind::File => {
                // size first: a truncated file is named without reading it
                if meta.len() != e.size.unwrap_or_default() {
                    let got = copy::Copied {
                        bytes: meta.len(),
                        sha256: [0; 32],
                    };
                    check_content(&path, e, &got)?;
                }
                check_content(&path, e, &copy::hash_file(&path, &mut buf)?)?;
            }
        }
    }
    Ok(Verified { manifest: m })
}

fn restore_blocking(
    dir: &Path,
    destination: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<Restored, Error> {
    let clock = Instant::now();
    let m = read_manifest(dir)?;
    if m.content != manifest::Content::Data {
        return Err(Error::CriuImage(dir.to_path_buf()));
    }
    let data = dir.join(m.content.dir());
    refuse_extras(&data, &m)?;

    // Where to build the copy, and whether the destination exists (then it is filled
    // entry by entry) or not (then the copy is renamed to it).
    let exists = match fs::symlink_metadata(destination) {
        Ok(meta) if meta.is_dir() => true,
        Ok(_) => return Err(Error::NotADirectory(destination.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io("reading", destination)(e)),
    };
    let temp = if exists {
        clear_leftovers(destination)?;
        tempfile::Builder::new()
            .prefix(RESTORE_PREFIX)
            .tempdir_in(destination)
            .map_err(io("creating a temporary directory in", destination))?
    } else {
        let parent = destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io("creating", parent))?;
        let name = destination
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("restore");
        tempfile::Builder::new()
            .prefix(&format!("{RESTORE_PREFIX}{name}_"))
            .tempdir_in(parent)
            .map_err(io("creating a temporary directory in", parent))?
    };
    let root = temp.path().to_path_buf();
    if !exists {
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
            .map_err(io("setting the mode of", &root))?;
    }

    let as_root = rustix::process::geteuid().is_root();
    let owner = |e: &manifest::Entry| as_root.then_some((e.uid, e.gid));
    let syncfs = m.files > copy::FSYNC_EACH;
    let mut buf = vec![0; BUFFER];
    let mut done = Progress::default();
    let mut dirs = Vec::new();
    for e in &m.entries {
        let src = data.join(&e.path);
        let dst = root.join(&e.path);
        check_meta(&src, e)?;
        match e.kind {
            Kind::Dir => {
                fs::create_dir(&dst).map_err(io("creating", &dst))?;
                dirs.push(dst.clone());
            }
            Kind::Symlink => {
                let target = check_link(&src, e)?;
                std::os::unix::fs::symlink(&target, &dst).map_err(io("creating the link", &dst))?;
                if let Some((uid, gid)) = owner(e) {
                    std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
                        .map_err(io("setting the owner of", &dst))?;
                }
            }
            Kind::File => {
                let file = copy::open_regular(&src)?;
                let finish = copy::Finish {
                    mode: e.mode,
                    owner: owner(e),
                    fsync: !syncfs,
                };
                let copied =
                    copy::copy_file(file, &src, &dst, &finish, e.size, &mut buf, &mut |n| {
                        done.bytes += n;
                        progress(done);
                    })?;
                check_content(&src, e, &copied)?;
                done.files += 1;
                progress(done);
            }
        }
    }
    // directories last, deepest first, so read-only ones are filled before they close
    for e in m.entries.iter().rev().filter(|e| e.kind == Kind::Dir) {
        let dst = root.join(&e.path);
        if let Some((uid, gid)) = owner(e) {
            std::os::unix::fs::chown(&dst, Some(uid), Some(gid))
                .map_err(io("setting the owner of", &dst))?;
        }
        fs::set_permissions(&dst, fs::Permissions::from_mode(e.mode))
            .map_err(io("setting the mode of", &dst))?;
    }
    copy::sync_tree(&root, &mut dirs, syncfs)?;

    if exists {
        for top in m.entries.iter().filter(|e| !e.path.contains('/')) {
            let (from, to) = (root.join(&top.path), destination.join(&top.path));
            copy::rename_new(&from, &to)?;
        }
        copy::sync_dir(destination)?;
        // now empty; the guard removes it
        drop(temp);
    } else {
        copy::rename_new(&root, destination)?;
        let _ = temp.keep();
        if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
            copy::sync_dir(parent)?;
        }
    }
    let duration = clock.elapsed();
    Ok(Restored {
        files: done.files,
        bytes: done.bytes,
        bytes_per_second: done.bytes as f64 / duration.as_secs_f64().max(1e-9),
        duration,
        destination: destination.to_path_buf(),
        manifest: m,
    })
}

/// Removes temporary directories of killed restores from `destination`, then refuses it
/// if anything else is there.
fn clear_leftovers(destination: &Path) -> Result<(), Error> {
    for item in fs::read_dir(destination).map_err(io("listing", destination))? {
        let item = item.map_err(io("listing", destination))?;
        let path = item.path();
        let ours = item
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(RESTORE_PREFIX))
            && item.file_type().is_ok_and(|t| t.is_dir());
        if !ours {
            return Err(Error::NotEmpty(destination.to_path_buf()));
        }
        fs::remove_dir_all(&path).map_err(io("removing", &path))?;
    }
    Ok(())
}
