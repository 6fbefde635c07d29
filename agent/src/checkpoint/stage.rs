//! Staging a container's checkpoint directory onto the checkpoint volume, and sweeping
//! what a killed stage left behind. See the module above for the layout and guarantees.

use super::copy::{self, BUFFER, io};
use super::hook::{DONE_MARKER, Hook};
use super::manifest::{self, Entry, HookRecord, Kind, Manifest};
use super::trigger::{self, HookTarget};
use super::{Error, MANIFEST, RESTORED_MARKER, STAGING_PREFIX, names};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to stage. The caller resolves the pod's checkpoint path (annotation
/// `aistor.io/checkpoint-path`, default `/checkpoint`) to the host directory of the volume
/// mounted there, and parses the hook annotation with [`super::hook::from_annotation`].
#[derive(Debug, Clone)]
pub struct StageRequest {
    /// The checkpoint volume (`--checkpoint-dir`).
    pub checkpoint_dir: PathBuf,
    /// This node's name (in staging directory names; see [`sweep`]).
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub checkpoint_id: String,
    pub container: String,
    /// The container's checkpoint directory on the host.
    pub source: PathBuf,
    pub hook: Option<Hook>,
    /// Bound on the hook, waiting for "finished" included.
    pub hook_timeout: Duration,
    /// What `source` holds; decides the directory it is staged into.
    pub content: manifest::Content,
}

/// How far a copy has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub files: u64,
    pub bytes: u64,
}

/// A completed stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Staged {
    /// `<checkpoint-dir>/<ns>/<pod>/<id>/<container>`.
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub files: u64,
    pub bytes: u64,
    /// The copy, from its start to the rename (the hook's time is in `hook`).
    pub duration: Duration,
    pub bytes_per_second: f64,
    pub hook: HookRecord,
}

/// Stages `req.source` as `<checkpoint-dir>/<ns>/<pod>/<id>/<container>/`: checks the
/// names, refuses an existing checkpoint, runs the hook (if any) against `target`, copies
/// and hashes every entry into a staging directory, makes it durable, writes the
/// manifest and renames it into place. `progress` hears the totals after every chunk
/// (at most 1 MiB) and file; it runs on the copying thread, so it should be quick (a
/// `watch::Sender::send_replace` is). The copy runs on Tokio's blocking pool.
pub async fn stage(
    req: StageRequest,
    target: HookTarget<'_>,
    progress: impl FnMut(Progress) + Send + 'static,
) -> Result<Staged, Error> {
    names::dns_subdomain("node", &req.node)?;
    let dir = names::container_dir(
        &req.checkpoint_dir,
        &req.namespace,
        &req.pod,
        &req.checkpoint_id,
        &req.container,
    )?;
    // Never created here: an absent volume must not become a directory on the node's disk.
    let root = fs::metadata(&req.checkpoint_dir).map_err(io(
        "reading the checkpoint directory (is the volume mounted?)",
        &req.checkpoint_dir,
    ))?;
    if !root.is_dir() {
        return Err(Error::NotADirectory(req.checkpoint_dir));
    }
    if fs::symlink_metadata(&dir).is_ok() {
        return Err(Error::Exists(dir));
    }
    let source_meta = fs::symlink_metadata(&req.source).map_err(io("reading", &req.source))?;
    if !source_meta.is_dir() {
        return Err(Error::NotADirectory(req.source));
    }
    let started = crate::clock::wall_unix_nanos();
    let hook = match &req.hook {
        Some(hook) => trigger::run(hook, target, &req.source, req.hook_timeout).await?,
        None => HookRecord::none(),
    };
    tokio::task::spawn_blocking(move || copy_in(&req, dir, started, hook, progress))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

fn copy_in(
    req: &StageRequest,
    dir: PathBuf,
    started_unix_nanos: u64,
    hook: HookRecord,
    progress: impl FnMut(Progress),
) -> Result<Staged, Error> {
    let clock = Instant::now();
    let parent = dir.parent().unwrap_or(&req.checkpoint_dir).to_path_buf();
    create_parents(&req.checkpoint_dir, &parent)?;
    let staging = tempfile::Builder::new()
        .prefix(&format!("{STAGING_PREFIX}{}_{}_", req.node, req.container))
        .rand_bytes(8)
        .tempdir_in(&parent)
        .map_err(io("creating a staging directory in", &parent))?;
    let root = staging.path().to_path_buf();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
        .map_err(io("setting the mode of", &root))?;
    let data = root.join(req.content.dir());
    fs::create_dir(&data).map_err(io("creating", &data))?;

    let mut walk = Walk {
        src_root: &req.source,
        dst_root: &data,
        entries: Vec::new(),
        dirs: vec![data.clone()],
        dir_modes: Vec::new(),
        buf: vec![0; BUFFER],
        done: Progress::default(),
        progress,
    };
    walk.run()?;
    for (path, mode) in walk.dir_modes.iter().rev() {
        fs::set_permissions(path, fs::Permissions::from_mode(*mode))
            .map_err(io("setting the mode of", path))?;
    }
    copy::sync_tree(&root, &mut walk.dirs, walk.done.files > copy::FSYNC_EACH)?;

    let Walk {
        mut entries, done, ..
    } = walk;
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest {
        format: manifest::FORMAT.into(),
        node: req.node.clone(),
        namespace: req.namespace.clone(),
        pod: req.pod.clone(),
        checkpoint_id: req.checkpoint_id.clone(),
        container: req.container.clone(),
        source: req.source.display().to_string(),
        started_unix_nanos,
        finished_unix_nanos: crate::clock::wall_unix_nanos().max(started_unix_nanos),
        hook: hook.clone(),
        files: done.files,
        total_bytes: done.bytes,
        entries,
        content: req.content,
    };
    write_synced(&root.join(MANIFEST), &manifest::encode(&manifest))?;
    copy::sync_dir(&root)?;
    copy::rename_new(&root, &dir)?;
    // Renamed away: nothing left for the guard to remove.
    let _ = staging.keep();
    copy::sync_dir(&parent)?;

    let duration = clock.elapsed();
    Ok(Staged {
        manifest: dir.join(MANIFEST),
        dir,
        files: done.files,
        bytes: done.bytes,
        duration,
        bytes_per_second: done.bytes as f64 / duration.as_secs_f64().max(1e-9),
        hook,
    })
}

/// Creates `<root>/<ns>/<pod>/<id>` below the existing `root` as needed and fsyncs each directory that got a new
/// entry, so the staged checkpoint's path survives a crash too.
fn create_parents(root: &Path, parent: &Path) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut at = parent;
    while at != root && fs::symlink_metadata(at).is_err() {
        missing.push(at);
        at = match at.parent() {
            Some(p) => p,
            None => break,
        };
    }
    for dir in missing.iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => {}
            // another stage of the same pod got there first
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("creating", dir)(e)),
        }
        if let Some(up) = dir.parent() {
            copy::sync_dir(up)?;
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io("creating", path))?;
    file.write_all(bytes).map_err(io("writing", path))?;
    file.sync_all().map_err(io("syncing", path))
}

struct Walk<'a, P> {
    src_root: &'a Path,
    dst_root: &'a Path,
    entries: Vec<Entry>,
    /// Every directory created, for the fsync.
    dirs: Vec<PathBuf>,
    /// Directory modes, set once everything is in them.
    dir_modes: Vec<(PathBuf, u32)>,
    buf: Vec<u8>,
    done: Progress,
    progress: P,
}

impl<P: FnMut(Progress)> Walk<'_, P> {
    /// Copies the tree depth first, each directory's entries in name order. An explicit
    /// stack, so depth is bounded by memory, not the thread's stack.
    fn run(&mut self) -> Result<(), Error> {
        let mut pending = vec![String::new()];
        while let Some(rel) = pending.pop() {
            let src_dir = self.src_root.join(&rel);
            let mut children: Vec<(String, fs::FileType)> = Vec::new();
            for item in fs::read_dir(&src_dir).map_err(io("listing", &src_dir))? {
                let item = item.map_err(io("listing", &src_dir))?;
                let name = item.file_name();
                let name = name
                    .to_str()
                    .ok_or_else(|| Error::NotUtf8(item.path()))?
                    .to_owned();
                if rel.is_empty() && (name == DONE_MARKER || name == RESTORED_MARKER) {
                    continue;
                }
                let kind = item
                    .file_type()
                    .map_err(io("reading the type of", &item.path()))?;
                children.push((name, kind));
            }
            children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut subdirs = Vec::new();
            for (name, kind) in children {
                let rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if self.entries.len() >= manifest::MAX_ENTRIES {
                    return Err(Error::TooManyEntries(self.src_root.to_path_buf()));
                }
                if kind.is_dir() {
                    self.dir(&rel)?;
                    subdirs.push(rel);
                } else {
                    self.entry(&rel, kind)?;
                }
            }
            // reversed so the stack pops them in name order
            pending.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    fn dir(&mut self, rel: &str) -> Result<(), Error> {
        let src = self.src_root.join(rel);
        let dst = self.dst_root.join(rel);
        let meta = fs::symlink_metadata(&src).map_err(io("reading", &src))?;
        fs::create_dir(&dst).map_err(io("creating", &dst))?;
        let mode = meta.mode() & 0o7777;
        self.entries.push(Entry {
            path: rel.to_owned(),
            kind: Kind::Dir,
            mode,
            uid: meta.uid(),
            gid: meta.gid(),
            size: None,
            sha256: None,
            target: None,
        });
        self.dirs.push(dst.clone());
        self.dir_modes.push((dst, mode));
        Ok(())
    }

    fn entry(&mut self, rel: &str, kind: fs::FileType) -> Result<(), Error> {
        let src = self.src_root.join(rel);
        let dst = self.dst_root.join(rel);
        if kind.is_symlink() {
            let meta = fs::symlink_metadata(&src).map_err(io("reading", &src))?;
            let target = fs::read_link(&src).map_err(io("reading the link", &src))?;
            let target = target
                .to_str()
                .ok_or_else(|| Error::NotUtf8(src.clone()))?
                .to_owned();
            std::os::unix::fs::symlink(&target, &dst).map_err(io("creating the link", &dst))?;
            self.entries.push(Entry {
                path: rel.to_owned(),
                kind: Kind::Symlink,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                size: None,
                sha256: None,
                target: Some(target),
            });
            return Ok(());
        }
        if !kind.is_file() {
            return Err(Error::Unsupported {
                path: src,
                kind: copy::kind_name(kind),
            });
        }
        let file = copy::open_regular(&src)?;
        let meta = file.metadata().map_err(io("reading metadata of", &src))?;
        let mode = meta.mode() & 0o7777;
        let finish = copy::Finish {
            mode,
            owner: None,
            fsync: self.done.files < copy::FSYNC_EACH,
        };
        let (done, progress) = (&mut self.done, &mut self.progress);
        let copied = copy::copy_file(file, &src, &dst, &finish, None, &mut self.buf, &mut |n| {
            done.bytes += n;
            progress(*done);
        })?;
        self.done.files += 1;
        (self.progress)(self.done);
        self.entries.push(Entry {
            path: rel.to_owned(),
            kind: Kind::File,
            mode,
            uid: meta.uid(),
            gid: meta.gid(),
            size: Some(copied.bytes),
            sha256: Some(manifest::hex(&copied.sha256)),
            target: None,
        });
        Ok(())
    }
}

/// Removes the staging directories this node left on the checkpoint volume (a stage
/// killed mid-copy), looking only at `<checkpoint-dir>/<ns>/<pod>/<id>/` and only at
/// names starting `.staging_<node>_`. Call it at agent start, before any stage. Returns
/// what it removed; an absent checkpoint directory is nothing to sweep.
pub async fn sweep(checkpoint_dir: PathBuf, node: String) -> Result<Vec<PathBuf>, Error> {
    names::dns_subdomain("node", &node)?;
    tokio::task::spawn_blocking(move || sweep_blocking(&checkpoint_dir, &node))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

fn sweep_blocking(root: &Path, node: &str) -> Result<Vec<PathBuf>, Error> {
    let prefix = format!("{STAGING_PREFIX}{node}_");
    let mut removed = Vec::new();
    if fs::symlink_metadata(root).is_err() {
        return Ok(removed);
    }
    for ns in subdirs(root)? {
        for pod in subdirs(&ns)? {
            for id in subdirs(&pod)? {
                let mut swept = false;
                for item in fs::read_dir(&id).map_err(io("listing", &id))? {
                    let item = item.map_err(io("listing", &id))?;
                    if item
                        .file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with(&prefix))
                    {
                        let path = item.path();
                        fs::remove_dir_all(&path).map_err(io("removing", &path))?;
                        removed.push(path);
                        swept = true;
                    }
                }
                if swept {
                    copy::sync_dir(&id)?;
                }
            }
        }
    }
    Ok(removed)
}

/// The real directories (not links) directly in `dir`.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for item in fs::read_dir(dir).map_err(io("listing", dir))? {
        let item = item.map_err(io("listing", dir))?;
        if item
            .file_type()
            .map_err(io("reading the type of", &item.path()))?
            .is_dir()
        {
            out.push(item.path());
        }
    }
    Ok(out)
}
