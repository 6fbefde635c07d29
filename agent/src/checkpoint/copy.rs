//! File-level pieces shared by staging and restoring: the streaming copy that hashes
//! what it writes, opening without following links, and making a tree durable.

use super::Error;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The one buffer a copy streams through.
pub(super) const BUFFER: usize = 1 << 20;

/// Maps an I/O error to [`Error::Io`] naming `path`.
pub(super) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// What kind of thing an unsupported entry is, for the error.
pub(super) fn kind_name(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a fifo"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else {
        "an unknown file type"
    }
}

/// Opens `path` for reading only if it is a regular file: a link is not followed and a
/// fifo swapped in after the directory was read does not block the open.
pub(super) fn open_regular(path: &Path) -> Result<File, Error> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(io("opening", path))?;
    let kind = file
        .metadata()
        .map_err(io("reading metadata of", path))?
        .file_type();
    if !kind.is_file() {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            kind: kind_name(kind),
        });
    }
    Ok(file)
}

/// What a streamed copy wrote.
pub(super) struct Copied {
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// How a copied file is finished.
pub(super) struct Finish {
    /// Permission bits, set after writing (so a read-only mode does not get in the way,
    /// and the umask does not apply) and after the owner (chown clears setuid).
    pub mode: u32,
    /// `(uid, gid)` to set, if any.
    pub owner: Option<(u32, u32)>,
    /// fsync the file before closing it; otherwise `sync_tree`'s `syncfs` covers it.
    pub fsync: bool,
}

/// Copies `src` to the new file `dst` through `buf`, hashing the bytes written, then
/// finishes it per `finish`. Reads at most `limit` bytes when given: a longer source
/// shows as `limit + 1` bytes copied. `chunk` hears every chunk's size.
pub(super) fn copy_file(
    mut src: File,
    src_path: &Path,
    dst: &Path,
    finish: &Finish,
    limit: Option<u64>,
    buf: &mut [u8],
    chunk: &mut dyn FnMut(u64),
) -> Result<Copied, Error> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(io("creating", dst))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    loop {
        let want = match limit {
            Some(limit) => {
                let left = limit.saturating_add(1).saturating_sub(bytes);
                buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
            }
            None => buf.len(),
        };
        if want == 0 {
            break;
        }
        let n = match src.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("reading", src_path)(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io("writing", dst))?;
        bytes += n as u64;
        chunk(n as u64);
    }
    if let Some((uid, gid)) = finish.owner {
        std::os::unix::fs::fchown(&out, Some(uid), Some(gid))
            .map_err(io("setting the owner of", dst))?;
    }
    out.set_permissions(std::fs::Permissions::from_mode(finish.mode))
        .map_err(io("setting the mode of", dst))?;
    if finish.fsync {
        out.sync_all().map_err(io("syncing", dst))?;
    }
    Ok(Copied {
        bytes,
        sha256: hasher.finalize().into(),
    })
}

/// sha256 of a regular file (not following links) and its length, streamed through `buf`.
pub(super) fn hash_file(path: &Path, buf: &mut [u8]) -> Result<Copied, Error> {
    let mut file = open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("reading", path)(e)),
        };
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(Copied {
        bytes,
        sha256: hasher.finalize().into(),
    })
}

/// fsyncs a directory (its entries: names created or renamed in it).
pub(super) fn sync_dir(path: &Path) -> Result<(), Error> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", path))
}

/// Files up to this many in one tree are fsynced one by one as they are written; a tree
/// with more gets one `syncfs` instead (see `sync_tree`).
pub(super) const FSYNC_EACH: u64 = 64;

/// Makes a freshly written tree durable. With `syncfs`, one `syncfs` of the filesystem
/// holding `root` first: every file written since, in one journal commit instead of one
/// per file (10,000 small files cost one flush, not 10,000), at the price of also
/// flushing whatever else is dirty on that filesystem, which is why small trees fsync
/// their files instead. Then every directory in `dirs` and `root` itself, deepest first.
pub(super) fn sync_tree(root: &Path, dirs: &mut [PathBuf], syncfs: bool) -> Result<(), Error> {
    let fd = File::open(root).map_err(io("opening", root))?;
    if syncfs {
        rustix::fs::syncfs(&fd)
            .map_err(|e| io("syncing the filesystem of", root)(std::io::Error::from(e)))?;
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs.iter() {
        sync_dir(dir)?;
    }
    fd.sync_all().map_err(io("syncing directory", root))
}

/// Renames the directory `from` to `to`, never replacing what is at `to` (then
/// [`Error::Exists`]). Uses `RENAME_NOREPLACE`; where the filesystem does not support it
/// (NFS), checks and renames: `rename` cannot replace a non-empty directory, and a
/// container directory is never empty.
pub(super) fn rename_new(from: &Path, to: &Path) -> Result<(), Error> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(()),
        Err(Errno::EXIST | Errno::NOTEMPTY) => return Err(Error::Exists(to.to_path_buf())),
        Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
        Err(e) => return Err(io("renaming into place", to)(e.into())),
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(Error::Exists(to.to_path_buf()));
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(c) if c == Errno::EXIST.raw_os_error() || c == Errno::NOTEMPTY.raw_os_error()) => {
            Err(Error::Exists(to.to_path_buf()))
        }
        Err(e) => Err(io("renaming into place", to)(e)),
    }
}
