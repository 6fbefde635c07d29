//! The manifest of a staged checkpoint (`manifest.json`): what was copied, with every
//! file's size, mode, owner and sha256, the hook's outcome and the times. Encoding and
//! parsing are pure; [`parse`] never panics, bounds the input (size and entry count)
//! and refuses entries that could name a path outside `data/`.
//!
//! ```json
//! {
//!   "format": "aistor.io/checkpoint/v1",
//!   "node": "node-1", "namespace": "default", "pod": "trainer-0",
//!   "checkpoint_id": "ckpt-42", "container": "main",
//!   "source": "/var/lib/kubelet/pods/…/volumes/…/checkpoint",
//!   "started_unix_nanos": 1764460800000000000, "finished_unix_nanos": 1764460801000000000,
//!   "hook": { "spec": "signal:SIGUSR1", "outcome": "done",
//!             "detail": "marker .aistor-checkpoint-done written", "elapsed_nanos": 120000000 },
//!   "files": 2, "total_bytes": 10,
//!   "entries": [
//!     { "path": "state", "type": "dir", "mode": 493, "uid": 0, "gid": 0 },
//!     { "path": "state/a.bin", "type": "file", "mode": 420, "uid": 0, "gid": 0,
//!       "size": 10, "sha256": "…64 lower-case hex digits…" },
//!     { "path": "state/latest", "type": "symlink", "mode": 511, "uid": 0, "gid": 0,
//!       "target": "a.bin" }
//!   ]
//! }
//! ```
//!
//! Entries are sorted by path (byte order, so a directory precedes what it holds), paths
//! are relative to `data/` with `/` separators, and every parent of a nested entry is
//! itself a `dir` entry. `mode` holds the permission bits (`0o7777`).

use super::names;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The `format` this code writes and reads.
pub const FORMAT: &str = "aistor.io/checkpoint/v1";
/// Largest manifest read (64 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Most entries in one checkpoint.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Longest entry path or symlink target, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub checkpoint_id: String,
    pub container: String,
    /// The host directory that was staged (for people; never read back).
    pub source: String,
    pub started_unix_nanos: u64,
    pub finished_unix_nanos: u64,
    pub hook: HookRecord,
    pub files: u64,
    pub total_bytes: u64,
    pub entries: Vec<Entry>,
    /// What was staged: the application's directory (`data/`, absent in the file) or
    /// containerd's CRIU image (`criu/`).
    #[serde(default, skip_serializing_if = "Content::is_data")]
    pub content: Content,
}

/// What a checkpoint holds, and the directory it is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    /// The application's checkpoint directory, in `data/`.
    #[default]
    Data,
    /// containerd's task checkpoint (CRIU image blobs), in `criu/`.
    Criu,
}

impl Content {
    pub fn is_data(&self) -> bool {
        *self == Self::Data
    }

    /// The directory next to the manifest that holds the entries.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Data => super::DATA,
            Self::Criu => super::CRIU,
        }
    }
}

/// What the checkpoint hook did before the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRecord {
    /// The annotation's value; `None` when the pod has no hook.
    pub spec: Option<String>,
    /// `none` (no hook) or `done` (a failed hook fails the stage, so it is never written).
    pub outcome: String,
    /// How "done" was known, e.g. "exit status 0".
    pub detail: String,
    pub elapsed_nanos: u64,
}

impl HookRecord {
    pub fn none() -> Self {
        Self {
            spec: None,
            outcome: "none".into(),
            detail: "no hook".into(),
            elapsed_nanos: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Files only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Files only: lower-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlinks only: the link text, never followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {0} bytes, more than the limit of {MAX_MANIFEST_BYTES}")]
    TooLarge(u64),
    #[error("manifest is not valid: {0}")]
    Json(String),
    #[error("manifest format {0:?} is not {FORMAT:?}")]
    Format(String),
    #[error("manifest has {0} entries, more than the limit of {MAX_ENTRIES}")]
    TooManyEntries(usize),
    #[error("manifest entry {path:?}: {reason}")]
    Entry { path: String, reason: String },
    #[error("manifest {0}")]
    Name(#[from] names::NameError),
    #[error("manifest says {field} is {stated} but its entries add up to {actual}")]
    Totals {
        field: &'static str,
        stated: u64,
        actual: u64,
    },
    #[error("manifest finishes ({finished}) before it starts ({started})")]
    Times { started: u64, finished: u64 },
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Why `path` cannot be an entry path, if it cannot: it must be relative, `/`-separated,
/// with no empty, `.` or `..` component and no NUL.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("empty path")
    } else if path.len() > MAX_PATH {
        Some("path longer than 4096 bytes")
    } else if path.contains('\0') {
        Some("path contains NUL")
    } else if path.starts_with('/') {
        Some("absolute path")
    } else if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("path has an empty, '.' or '..' component")
    } else {
        None
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The manifest as pretty JSON. Entries are written in the order given; the stager sorts
/// them.
pub fn encode(manifest: &Manifest) -> Vec<u8> {
    // Only strings, integers and plain enums: serialising cannot fail.
    let mut out = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Parses and checks a manifest read from disk.
pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge(len));
    }
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    check(&manifest)?;
    Ok(manifest)
}

/// Checks everything [`parse`] promises about a manifest.
pub fn check(m: &Manifest) -> Result<(), ManifestError> {
    if m.format != FORMAT {
        return Err(ManifestError::Format(m.format.clone()));
    }
    names::dns_subdomain("node", &m.node)?;
    names::dns_label("namespace", &m.namespace)?;
    names::dns_subdomain("pod", &m.pod)?;
    names::checkpoint_id(&m.checkpoint_id)?;
    names::dns_label("container", &m.container)?;
    if m.finished_unix_nanos < m.started_unix_nanos {
        return Err(ManifestError::Times {
            started: m.started_unix_nanos,
            finished: m.finished_unix_nanos,
        });
    }
    if m.entries.len() > MAX_ENTRIES {
        return Err(ManifestError::TooManyEntries(m.entries.len()));
    }
    let mut dirs: HashSet<&str> = HashSet::new();
    let mut previous: Option<&str> = None;
    let (mut files, mut bytes) = (0u64, 0u64);
    for e in &m.entries {
        let bad = |reason: &str| ManifestError::Entry {
            path: e.path.clone(),
            reason: reason.to_owned(),
        };
        if let Some(reason) = path_problem(&e.path) {
            return Err(bad(reason));
        }
        if previous.is_some_and(|p| p >= e.path.as_str()) {
            return Err(bad("out of order or repeated (entries are sorted by path)"));
        }
        previous = Some(&e.path);
        if let Some((parent, _)) = e.path.rsplit_once('/')
            && !dirs.contains(parent)
        {
            return Err(bad("its parent directory is not in the manifest"));
        }
        if e.mode > 0o7777 {
            return Err(bad("mode has bits above 0o7777"));
        }
        match e.kind {
            Kind::File => {
                let (Some(size), Some(sha), None) = (e.size, &e.sha256, &e.target) else {
                    return Err(bad("a file needs size and sha256 and no target"));
                };
                if !is_sha256(sha) {
                    return Err(bad("sha256 is not 64 lower-case hex digits"));
                }
                files += 1;
                bytes = bytes
                    .checked_add(size)
                    .ok_or_else(|| bad("sizes add up to more than 2^64 bytes"))?;
            }
            Kind::Dir => {
                if e.size.is_some() || e.sha256.is_some() || e.target.is_some() {
                    return Err(bad("a directory has no size, sha256 or target"));
                }
                dirs.insert(&e.path);
            }
            Kind::Symlink => {
                let (None, None, Some(target)) = (e.size, &e.sha256, &e.target) else {
                    return Err(bad("a symlink needs a target and no size or sha256"));
                };
                if target.is_empty() || target.len() > MAX_PATH || target.contains('\0') {
                    return Err(bad("symlink target is empty, too long or holds NUL"));
                }
            }
        }
    }
    if files != m.files {
        return Err(ManifestError::Totals {
            field: "files",
            stated: m.files,
            actual: files,
        });
    }
    if bytes != m.total_bytes {
        return Err(ManifestError::Totals {
            field: "total_bytes",
            stated: m.total_bytes,
            actual: bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn entry(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            size: (kind == Kind::File).then_some(3),
            sha256: (kind == Kind::File).then(|| SHA.into()),
            target: (kind == Kind::Symlink).then(|| "../x".into()),
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            node: "node-1.example".into(),
            namespace: "default".into(),
            pod: "trainer-0".into(),
            checkpoint_id: "ckpt-1".into(),
            container: "main".into(),
            source: "/src".into(),
            started_unix_nanos: 5,
            finished_unix_nanos: 5,
            hook: HookRecord::none(),
            files: 2,
            total_bytes: 6,
            entries: vec![
                entry("a", Kind::Dir),
                entry("a/b", Kind::File),
                entry("a/c", Kind::Symlink),
                entry("b", Kind::File),
            ],
            content: Content::Data,
        }
    }

    #[test]
    fn content_is_data_unless_said_and_names_its_directory() {
        let m = manifest();
        let text = String::from_utf8(encode(&m)).unwrap();
        assert!(!text.contains("content"), "absent for data: {text}");
        assert_eq!(parse(&encode(&m)).unwrap().content, Content::Data);
        let criu = Manifest {
            content: Content::Criu,
            ..manifest()
        };
        let text = String::from_utf8(encode(&criu)).unwrap();
        assert!(text.contains("\"content\": \"criu\""), "{text}");
        assert_eq!(parse(text.as_bytes()).unwrap().content, Content::Criu);
        assert_eq!(Content::Data.dir(), "data");
        assert_eq!(Content::Criu.dir(), "criu");
        assert!(Content::Data.is_data() && !Content::Criu.is_data());
        let odd = text.replace("\"criu\"", "\"tar\"");
        assert!(parse(odd.as_bytes()).is_err());
    }

    fn refused(m: &Manifest) -> ManifestError {
        parse(&encode(m)).unwrap_err()
    }

    fn entry_reason(m: &Manifest) -> (String, String) {
        match refused(m) {
            ManifestError::Entry { path, reason } => (path, reason),
            other => panic!("expected an entry error, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let m = manifest();
        let bytes = encode(&m);
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(parse(&bytes), Ok(m.clone()));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"type\": \"symlink\""), "{text}");
        assert!(!text.contains("\"target\": null"), "{text}");
        let mut empty = m;
        empty.entries.clear();
        empty.files = 0;
        empty.total_bytes = 0;
        assert_eq!(parse(&encode(&empty)), Ok(empty));
    }

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
    }

    #[test]
    fn paths() {
        for ok in ["a", "a/b", "a.b/.c/..d", &"x".repeat(MAX_PATH)] {
            assert_eq!(path_problem(ok), None, "{ok}");
        }
        let cases = [
            ("", "empty path"),
            (&"x".repeat(MAX_PATH + 1), "path longer than 4096 bytes"),
            ("a\0b", "path contains NUL"),
            ("/etc/passwd", "absolute path"),
            ("..", "path has an empty, '.' or '..' component"),
            ("a/../../b", "path has an empty, '.' or '..' component"),
            ("./a", "path has an empty, '.' or '..' component"),
            ("a//b", "path has an empty, '.' or '..' component"),
            ("a/", "path has an empty, '.' or '..' component"),
        ];
        for (bad, reason) in cases {
            assert_eq!(path_problem(bad), Some(reason), "{bad:?}");
        }
    }

    #[test]
    fn bounds() {
        let big = vec![b' '; usize::try_from(MAX_MANIFEST_BYTES).unwrap() + 1];
        assert_eq!(
            parse(&big),
            Err(ManifestError::TooLarge(MAX_MANIFEST_BYTES + 1))
        );
        // exactly at the limit is read (and fails as JSON, not as too large)
        let at = vec![b' '; usize::try_from(MAX_MANIFEST_BYTES).unwrap()];
        assert!(matches!(parse(&at), Err(ManifestError::Json(_))));

        let mut m = manifest();
        m.entries = (0..=MAX_ENTRIES)
            .map(|i| {
                let mut e = entry(&format!("{i:07}"), Kind::Dir);
                e.mode = 0;
                e
            })
            .collect();
        assert_eq!(
            check(&m),
            Err(ManifestError::TooManyEntries(MAX_ENTRIES + 1))
        );
        m.entries.pop();
        m.files = 0;
        m.total_bytes = 0;
        assert_eq!(check(&m), Ok(()));
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [
            &b""[..],
            b"null",
            b"[]",
            b"{",
            b"{\"format\": 1}",
            b"\xff\xfe",
            &[b'['; 10_000],
        ] {
            assert!(
                matches!(parse(bytes), Err(ManifestError::Json(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn refuses_header_problems() {
        let mut m = manifest();
        m.format = "other/v2".into();
        assert_eq!(refused(&m), ManifestError::Format("other/v2".into()));
        let name_field = |m: &Manifest| match refused(m) {
            ManifestError::Name(e) => e.field,
            other => panic!("{other:?}"),
        };
        let mut m = manifest();
        m.node = "Node".into();
        assert_eq!(name_field(&m), "node");
        let mut m = manifest();
        m.namespace = "..".into();
        assert_eq!(name_field(&m), "namespace");
        let mut m = manifest();
        m.pod = "../x".into();
        assert_eq!(name_field(&m), "pod");
        let mut m = manifest();
        m.checkpoint_id = "a/b".into();
        assert_eq!(name_field(&m), "checkpoint id");
        let mut m = manifest();
        m.container = "".into();
        assert_eq!(name_field(&m), "container");
        let mut m = manifest();
        m.started_unix_nanos = 6;
        assert_eq!(
            refused(&m),
            ManifestError::Times {
                started: 6,
                finished: 5
            }
        );
    }

    #[test]
    fn refuses_bad_totals() {
        let mut m = manifest();
        m.files = 3;
        assert_eq!(
            refused(&m),
            ManifestError::Totals {
                field: "files",
                stated: 3,
                actual: 2
            }
        );
        let mut m = manifest();
        m.total_bytes = 7;
        assert_eq!(
            refused(&m),
            ManifestError::Totals {
                field: "total_bytes",
                stated: 7,
                actual: 6
            }
        );
        let mut m = manifest();
        m.entries[1].size = Some(u64::MAX);
        assert_eq!(
            entry_reason(&m),
            ("b".into(), "sizes add up to more than 2^64 bytes".into())
        );
    }

    #[test]
    fn refuses_bad_entries() {
        type Edit = fn(&mut Manifest);
        let cases: [(Edit, &str, &str); 14] = [
            (
                |m| m.entries[1].path = "/etc/passwd".into(),
                "/etc/passwd",
                "absolute path",
            ),
            (
                |m| m.entries[1].path = "a/../../x".into(),
                "a/../../x",
                "path has an empty, '.' or '..' component",
            ),
            (
                |m| m.entries.swap(1, 2),
                "a/b",
                "out of order or repeated (entries are sorted by path)",
            ),
            (
                |m| m.entries[2].path = "a/b".into(),
                "a/b",
                "out of order or repeated (entries are sorted by path)",
            ),
            (
                |m| m.entries.remove(0).path.clear(),
                "a/b",
                "its parent directory is not in the manifest",
            ),
            (
                |m| m.entries[0].kind = Kind::Symlink,
                "a",
                "a symlink needs a target and no size or sha256",
            ),
            (
                |m| m.entries[1].mode = 0o10000,
                "a/b",
                "mode has bits above 0o7777",
            ),
            (
                |m| m.entries[1].sha256 = None,
                "a/b",
                "a file needs size and sha256 and no target",
            ),
            (
                |m| m.entries[1].target = Some("x".into()),
                "a/b",
                "a file needs size and sha256 and no target",
            ),
            (
                |m| m.entries[1].sha256 = Some(SHA.to_uppercase()),
                "a/b",
                "sha256 is not 64 lower-case hex digits",
            ),
            (
                |m| m.entries[1].sha256 = Some(SHA[1..].into()),
                "a/b",
                "sha256 is not 64 lower-case hex digits",
            ),
            (
                |m| m.entries[0].size = Some(0),
                "a",
                "a directory has no size, sha256 or target",
            ),
            (
                |m| m.entries[2].size = Some(0),
                "a/c",
                "a symlink needs a target and no size or sha256",
            ),
            (
                |m| m.entries[2].target = Some(String::new()),
                "a/c",
                "symlink target is empty, too long or holds NUL",
            ),
        ];
        for (edit, path, reason) in cases {
            let mut m = manifest();
            edit(&mut m);
            assert_eq!(
                entry_reason(&m),
                (path.into(), reason.into()),
                "{path} {reason}"
            );
        }
        // each of a directory's three forbidden fields on its own
        for edit in [
            |e: &mut Entry| e.sha256 = Some(SHA.into()),
            |e: &mut Entry| e.target = Some("x".into()),
        ] {
            let mut m = manifest();
            edit(&mut m.entries[0]);
            assert_eq!(
                entry_reason(&m).1,
                "a directory has no size, sha256 or target"
            );
        }
        type EntryEdit = fn(&mut Entry);
        let symlink_cases: [(EntryEdit, &str); 3] = [
            (
                |e| e.sha256 = Some(SHA.into()),
                "a symlink needs a target and no size or sha256",
            ),
            (
                |e| e.target = Some("x".repeat(MAX_PATH + 1)),
                "symlink target is empty, too long or holds NUL",
            ),
            (
                |e| e.target = Some("a\0".into()),
                "symlink target is empty, too long or holds NUL",
            ),
        ];
        for (edit, reason) in symlink_cases {
            let mut m = manifest();
            edit(&mut m.entries[2]);
            assert_eq!(entry_reason(&m), ("a/c".into(), reason.into()));
        }
        let mut m = manifest();
        m.entries[2].target = Some("x".repeat(MAX_PATH));
        assert_eq!(parse(&encode(&m)), Ok(m.clone()));
        let mut m = manifest();
        m.entries[1].mode = 0o7777;
        assert_eq!(parse(&encode(&m)), Ok(m.clone()));
    }

    #[test]
    fn error_messages_name_the_entry() {
        let mut m = manifest();
        m.entries[1].path = "../../etc/shadow".into();
        assert_eq!(
            refused(&m).to_string(),
            "manifest entry \"../../etc/shadow\": path has an empty, '.' or '..' component"
        );
    }
}
