//! CRIU checkpoints through containerd, where the node's CRIU works.
//!
//! A pod chooses with the annotation [`MODE_ANNOTATION`] (`aistor.io/checkpoint-mode`):
//! `application` (the default: the application writes its checkpoint directory, which
//! is staged), `criu` (containerd's `Tasks.Checkpoint` freezes each container's processes
//! into a CRIU image) or `auto` (CRIU where the node's probe says it works, else the
//! application checkpoint, saying so). [`plan`] decides, purely, from the probe.
//!
//! A CRIU stage asks containerd to checkpoint the task; containerd answers with the
//! descriptors of what it wrote to its content store (the CRIU image as a tar, the
//! container's spec, the runtime options). [`export`] reads each blob into a directory as
//! `<algorithm>-<hex>` files, checking size and digest, with `descriptors.json` listing
//! them; that directory is then staged like any other (manifest with every file's
//! sha256, fsync, rename into place), into `<container>/criu/` instead of `data/`.
//! [`import`] does the reverse on restore: every verified blob back into the content
//! store (containerd checks the digest again), returning the checkpoint image's
//! descriptor, which `Tasks.Create` takes as `checkpoint`.
//!
//! The containerd calls are behind [`TaskImages`] (containerd-client has no server
//! traits to fake containerd with); `runtime::criu` is the real, thin implementation.

use aistor_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::pin::Pin;

/// The pod annotation that chooses the checkpoint kind.
pub const MODE_ANNOTATION: &str = "aistor.io/checkpoint-mode";
/// The blob list in an exported image directory.
pub const DESCRIPTORS: &str = "descriptors.json";
/// containerd's media type of the CRIU image tar (`images.MediaTypeContainerd1Checkpoint`).
pub const MEDIA_CHECKPOINT: &str = "application/vnd.containerd.container.criu.checkpoint.criu.tar";
/// Most blobs one checkpoint may have (containerd writes three).
pub const MAX_BLOBS: usize = 64;

/// What the pod asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Application,
    Criu,
    Auto,
}

/// The annotation's value; absent is `application`.
pub fn parse_mode(value: Option<&str>) -> Result<Mode, String> {
    match value.map(str::trim) {
        None | Some("application") => Ok(Mode::Application),
        Some("criu") => Ok(Mode::Criu),
        Some("auto") => Ok(Mode::Auto),
        Some(other) => Err(format!(
            "annotation {MODE_ANNOTATION}: {other:?} is not one of application, criu, auto"
        )),
    }
}

/// What a stage does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Stage the application's checkpoint directory; `fallback` says why CRIU was not
    /// used when `auto` asked for it where possible.
    Application { fallback: Option<String> },
    /// containerd's task checkpoint.
    Criu,
}

/// Decides from the mode and the node's CRIU probe (`None`: not probed). `criu` where
/// CRIU does not work is refused with the probe's reason.
pub fn plan(mode: Mode, criu: Option<&pb::CriuStatus>) -> Result<Plan, String> {
    let works = criu.is_some_and(|c| c.available);
    let why = || match criu {
        Some(c) => format!("CRIU does not work on this node: {}", c.reason),
        None => "CRIU was not probed on this node".to_owned(),
    };
    match (mode, works) {
        (Mode::Application, _) => Ok(Plan::Application { fallback: None }),
        (Mode::Criu | Mode::Auto, true) => Ok(Plan::Criu),
        (Mode::Criu, false) => Err(format!("{MODE_ANNOTATION}=criu refused: {}", why())),
        (Mode::Auto, false) => Ok(Plan::Application {
            fallback: Some(format!(
                "{MODE_ANNOTATION}=auto: {}; the application checkpoint was staged",
                why()
            )),
        }),
    }
}

/// One blob of a checkpoint, as containerd describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    pub media_type: String,
    /// `sha256:<64 hex>`.
    pub digest: String,
    pub size: u64,
}

/// The file name of a blob: `sha256-<hex>`. Only sha256 digests of 64 lowercase hex
/// digits are accepted, so a digest never becomes a path with a separator in it.
pub fn blob_file(digest: &str) -> Result<String, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| format!("{digest:?} is not a sha256 digest"))?;
    Ok(format!("sha256-{hex}"))
}

/// The blobs of an export, checked: at most [`MAX_BLOBS`], each digest valid, none
/// twice, exactly one CRIU image.
pub fn check_blobs(blobs: &[Blob]) -> Result<(), String> {
    if blobs.len() > MAX_BLOBS {
        return Err(format!("{} blobs, at most {MAX_BLOBS}", blobs.len()));
    }
    let mut seen = std::collections::HashSet::new();
    for b in blobs {
        blob_file(&b.digest)?;
        if !seen.insert(b.digest.as_str()) {
            return Err(format!("blob {} is listed twice", b.digest));
        }
    }
    match blobs
        .iter()
        .filter(|b| b.media_type == MEDIA_CHECKPOINT)
        .count()
    {
        1 => Ok(()),
        n => Err(format!(
            "{n} blobs of media type {MEDIA_CHECKPOINT}, expected exactly one"
        )),
    }
}

/// A boxed future (the trait is used as `dyn`).
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// containerd's task and content calls a CRIU checkpoint needs. Errors are containerd's
/// (and CRIU's, which containerd passes on) words.
pub trait TaskImages: Send + Sync {
    /// `Tasks.Checkpoint` of the container's task: the blobs containerd wrote.
    fn checkpoint<'a>(&'a self, container_id: &'a str) -> Call<'a, Vec<Blob>>;
    /// `Content.Read` of a blob, appended to `out` (a file; chunks of at most a few MiB);
    /// the bytes written.
    fn read<'a>(&'a self, blob: &'a Blob, out: &'a mut std::fs::File) -> Call<'a, u64>;
    /// `Content.Write` of `file` as `blob` (containerd checks size and digest); a blob
    /// already there is fine.
    fn write<'a>(&'a self, blob: &'a Blob, file: &'a Path) -> Call<'a, ()>;
}

/// Checkpoints the task of `container_id` and reads its blobs into the empty
/// directory `into`, each checked against its size and digest, plus [`DESCRIPTORS`].
pub async fn export(
    images: &dyn TaskImages,
    container_id: &str,
    into: &Path,
) -> Result<Vec<Blob>, String> {
    let blobs = images.checkpoint(container_id).await.map_err(|e| {
        // runc names CRIU's log; CRIU's own words are in it.
        let said = criu_log(&e)
            .and_then(|log| read_tail(Path::new(log)).map(|text| (log, text)))
            .map(|(log, text)| (log, super::criu::quote("", &text)))
            .filter(|(_, quoted)| !quoted.is_empty())
            .map(|(log, quoted)| format!("; {log} says: {quoted}"))
            .unwrap_or_default();
        format!("containerd task checkpoint of {container_id}: {e}{said}")
    })?;
    check_blobs(&blobs).map_err(|e| format!("containerd's checkpoint of {container_id}: {e}"))?;
    for blob in &blobs {
        let path = into.join(blob_file(&blob.digest)?);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        let read = images
            .read(blob, &mut file)
            .await
            .map_err(|e| format!("reading blob {} from containerd: {e}", blob.digest))?;
        file.flush()
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        drop(file);
        check_file(&path, blob).await?;
        if read != blob.size {
            return Err(format!(
                "blob {}: containerd sent {read} bytes, its descriptor says {}",
                blob.digest, blob.size
            ));
        }
    }
    let list = serde_json::to_vec_pretty(&blobs).unwrap_or_default();
    let path = into.join(DESCRIPTORS);
    std::fs::write(&path, list).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(blobs)
}

/// Reads [`DESCRIPTORS`] of a (verified) staged image directory and writes every blob
/// back into containerd's content store; the CRIU image's blob, for `Tasks.Create`.
pub async fn import(images: &dyn TaskImages, dir: &Path) -> Result<Blob, String> {
    let path = dir.join(DESCRIPTORS);
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let blobs: Vec<Blob> =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    check_blobs(&blobs).map_err(|e| format!("{}: {e}", path.display()))?;
    for blob in &blobs {
        let file = dir.join(blob_file(&blob.digest)?);
        check_file(&file, blob).await?;
        images
            .write(blob, &file)
            .await
            .map_err(|e| format!("writing blob {} to containerd: {e}", blob.digest))?;
    }
    blobs
        .into_iter()
        .find(|b| b.media_type == MEDIA_CHECKPOINT)
        .ok_or_else(|| format!("{}: no CRIU image", path.display()))
}

/// Start of the name of an export's temporary directory (removed when the stage ends,
/// failed or not).
pub const EXPORT_PREFIX: &str = ".aistor-criu-export_";

/// A CRIU stage of one container: containerd checkpoints its task `container_id`, the
/// blobs are exported to a temporary directory in `temp` (the agent's temp dir) and
/// staged from there into `<container>/criu/` with the manifest (`req.source`,
/// `req.hook` and `req.content` are set here). Nothing is left on the volume, nor in
/// `temp`, when containerd or CRIU fails.
pub async fn stage(
    images: &dyn TaskImages,
    container_id: &str,
    req: super::StageRequest,
    temp: &Path,
    progress: impl FnMut(super::Progress) + Send + 'static,
) -> Result<super::Staged, String> {
    let export = tempfile::Builder::new()
        .prefix(EXPORT_PREFIX)
        .tempdir_in(temp)
        .map_err(|e| {
            format!(
                "creating a temporary directory for the CRIU image in {}: {e}",
                temp.display()
            )
        })?;
    export_and_stage(images, container_id, req, export.path(), progress).await
}

async fn export_and_stage(
    images: &dyn TaskImages,
    container_id: &str,
    mut req: super::StageRequest,
    export_dir: &Path,
    progress: impl FnMut(super::Progress) + Send + 'static,
) -> Result<super::Staged, String> {
    // Refused before containerd is asked: an existing id, a bad name, no volume.
    let target = super::names::container_dir(
        &req.checkpoint_dir,
        &req.namespace,
        &req.pod,
        &req.checkpoint_id,
        &req.container,
    )
    .map_err(|e| e.to_string())?;
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(super::Error::Exists(target).to_string());
    }
    export(images, container_id, export_dir).await?;
    req.source = export_dir.to_path_buf();
    req.hook = None;
    req.content = super::manifest::Content::Criu;
    super::stage(req, super::HookTarget::default(), progress)
        .await
        .map_err(|e| e.to_string())
}

/// The CRIU log runc names in its error (`criu failed: type DUMP errno 0 path= <dir>/criu-dump.log`):
/// an absolute path whose file name starts with `criu` and ends in `.log`.
pub fn criu_log(message: &str) -> Option<&str> {
    let after = message.split_once("path=")?.1.trim_start();
    let end = after.find(".log")? + ".log".len();
    let path = &after[..end];
    let name = path.rsplit('/').next()?;
    (path.starts_with('/') && name.starts_with("criu") && !path.contains(char::is_whitespace))
        .then_some(path)
}

/// The last 64 KiB of a log, as text; `None` when it cannot be read.
fn read_tail(path: &Path) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    const TAIL: u64 = 64 * 1024;
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut bytes = Vec::new();
    file.take(TAIL).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether `path` holds exactly `blob` (size and sha256).
async fn check_file(path: &Path, blob: &Blob) -> Result<(), String> {
    let (path, blob) = (path.to_path_buf(), blob.clone());
    tokio::task::spawn_blocking(move || check_file_blocking(&path, &blob))
        .await
        .map_err(|e| format!("checking a blob: {e}"))?
}

fn check_file_blocking(path: &Path, blob: &Blob) -> Result<(), String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let digest = format!("sha256:{}", hex(&hasher.finalize()));
    if size != blob.size || digest != blob.digest {
        return Err(format!(
            "{}: {size} bytes with digest {digest}, the descriptor says {} bytes with {}",
            path.display(),
            blob.size,
            blob.digest
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 digest of `bytes` as containerd writes it.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(available: bool, reason: &str) -> pb::CriuStatus {
        pb::CriuStatus {
            available,
            version: "3.17.1".into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn modes_parse_and_default_to_application() {
        assert_eq!(parse_mode(None), Ok(Mode::Application));
        assert_eq!(parse_mode(Some("application")), Ok(Mode::Application));
        assert_eq!(parse_mode(Some("criu")), Ok(Mode::Criu));
        assert_eq!(parse_mode(Some(" auto ")), Ok(Mode::Auto));
        let err = parse_mode(Some("CRIU")).unwrap_err();
        assert!(
            err.contains(MODE_ANNOTATION) && err.contains("\"CRIU\""),
            "{err}"
        );
    }

    #[test]
    fn plans_follow_the_probe() {
        let works = status(true, "criu check: Looks good.");
        let broken = status(
            false,
            "criu check failed (exit status 1): Unexpected rt vDSO area bounds",
        );
        assert_eq!(
            plan(Mode::Application, Some(&works)),
            Ok(Plan::Application { fallback: None })
        );
        assert_eq!(plan(Mode::Criu, Some(&works)), Ok(Plan::Criu));
        assert_eq!(plan(Mode::Auto, Some(&works)), Ok(Plan::Criu));
        let refused = plan(Mode::Criu, Some(&broken)).unwrap_err();
        assert!(
            refused.contains("criu refused") && refused.contains("Unexpected rt vDSO area bounds"),
            "{refused}"
        );
        let Ok(Plan::Application {
            fallback: Some(note),
        }) = plan(Mode::Auto, Some(&broken))
        else {
            panic!("auto falls back")
        };
        assert!(
            note.contains("vDSO") && note.contains("application checkpoint"),
            "{note}"
        );
        assert!(plan(Mode::Criu, None).unwrap_err().contains("not probed"));
        assert_eq!(
            plan(Mode::Application, None),
            Ok(Plan::Application { fallback: None })
        );
        assert!(matches!(
            plan(Mode::Auto, None),
            Ok(Plan::Application { fallback: Some(n) }) if n.contains("not probed")
        ));
    }

    fn blob(media: &str, data: &[u8]) -> Blob {
        Blob {
            media_type: media.into(),
            digest: digest_of(data),
            size: data.len() as u64,
        }
    }

    #[test]
    fn blob_names_and_lists_are_checked() {
        let d = digest_of(b"x");
        assert_eq!(blob_file(&d).unwrap(), format!("sha256-{}", &d[7..]));
        for bad in [
            "sha512:00",
            "sha256:../../etc/passwd",
            "sha256:",
            &format!("{d}0"),
            &d.to_uppercase(),
            &d.replace("sha256:", "sha256:/"),
        ] {
            assert!(blob_file(bad).is_err(), "{bad}");
        }
        let image = blob(MEDIA_CHECKPOINT, b"img");
        let spec = blob(
            "application/vnd.containerd.container.checkpoint.config.v1+proto",
            b"spec",
        );
        assert_eq!(check_blobs(&[image.clone(), spec.clone()]), Ok(()));
        assert!(
            check_blobs(std::slice::from_ref(&spec))
                .unwrap_err()
                .contains("0 blobs")
        );
        assert!(
            check_blobs(&[image.clone(), spec.clone(), spec.clone()])
                .unwrap_err()
                .contains("twice")
        );
        let second = blob(MEDIA_CHECKPOINT, b"img2");
        assert!(
            check_blobs(&[image.clone(), second])
                .unwrap_err()
                .contains("2 blobs")
        );
        let many: Vec<Blob> = (0..=MAX_BLOBS)
            .map(|i| blob("x", format!("{i}").as_bytes()))
            .collect();
        assert!(check_blobs(&many).unwrap_err().contains("at most"));
        let mut just_enough: Vec<Blob> = (0..MAX_BLOBS - 1)
            .map(|i| blob("x", format!("{i}").as_bytes()))
            .collect();
        just_enough.push(image);
        assert_eq!(check_blobs(&just_enough), Ok(()));
        let bad_digest = Blob {
            digest: "md5:1".into(),
            ..spec
        };
        assert!(check_blobs(&[bad_digest]).is_err());
    }

    #[test]
    fn runc_names_the_criu_log() {
        let said = "Unknown: runc did not terminate successfully: exit status 1: criu failed: type DUMP errno 0 path= /run/state/k8s.io/abc/criu-dump.log: unknown";
        assert_eq!(criu_log(said), Some("/run/state/k8s.io/abc/criu-dump.log"));
        assert_eq!(
            criu_log("criu failed: type RESTORE errno 0 path=/w/criu-restore.log"),
            Some("/w/criu-restore.log")
        );
        assert_eq!(criu_log("no path here"), None);
        assert_eq!(criu_log("path= relative/criu.log"), None);
        assert_eq!(criu_log("path= /etc/passwd.log"), None);
        assert_eq!(criu_log("path= /a b/criu.log"), None);
        assert_eq!(criu_log("path= /a/criu-dump"), None);
    }

    #[test]
    fn the_criu_logs_errors_are_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("criu-dump.log");
        let mut text = "(00.000001) Version: 3.17.1\n".repeat(5000);
        text.push_str("(00.010) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n");
        std::fs::write(&log, &text).unwrap();
        let tail = read_tail(&log).unwrap();
        assert_eq!(tail.len(), 64 * 1024, "the last 64 KiB");
        assert!(text.ends_with(&tail) && tail.contains("Unexpected rt vDSO"));
        let short = dir.path().join("criu-short.log");
        std::fs::write(&short, "(00.1) Error (a.c:1): b\n").unwrap();
        assert_eq!(read_tail(&short).unwrap(), "(00.1) Error (a.c:1): b\n");
        assert_eq!(read_tail(&dir.path().join("none.log")), None);
        assert_eq!(
            super::super::criu::quote("", &tail),
            "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"
        );
    }

    #[test]
    fn digests_are_containerds() {
        // sha256 of the empty string.
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
