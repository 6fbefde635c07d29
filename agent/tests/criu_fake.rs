//! The CRIU checkpoint path's success side against a fake of containerd's task and
//! content services (`TaskImages`). No real CRIU checkpoint or restore runs here: this
//! host's CRIU cannot checkpoint (its probe says why), and containerd-client has no server
//! traits to serve a fake containerd over gRPC, so the containerd calls sit behind
//! `TaskImages` and the real implementation (`runtime::criu`) stays thin. The fake
//! behaves as containerd does where it matters: `Tasks.Checkpoint` writes the CRIU image
//! tar, the runtime options and the container spec into the content store and returns
//! their descriptors (containerd's media types); `Content.Read` streams a blob in chunks;
//! `Content.Write` commits only a blob whose size and digest match what was expected, and
//! a blob already present is AlreadyExists.

use aistor_agent::checkpoint::criu_image::{
    self, Blob, Call, DESCRIPTORS, MEDIA_CHECKPOINT, TaskImages, digest_of,
};
use aistor_agent::checkpoint::{self, StageRequest};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const NODE: &str = "node-1";
const OPTIONS: &str = "application/vnd.containerd.container.checkpoint.runtime.options+proto";
const CONFIG: &str = "application/vnd.containerd.container.checkpoint.config.v1+proto";

/// What the fake does on `Tasks.Checkpoint`.
enum Behaviour {
    /// Writes and describes the three blobs.
    Works,
    /// Fails as containerd does when CRIU fails.
    CriuFails(String),
    /// Describes a blob whose content is not what the descriptor says.
    LiesAboutDigest,
    /// Streams more bytes than the descriptor says.
    SendsTooMuch,
}

struct FakeContainerd {
    behaviour: Behaviour,
    store: Mutex<HashMap<String, Vec<u8>>>,
    /// Container ids whose tasks exist.
    tasks: Vec<String>,
}

impl FakeContainerd {
    fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            store: Mutex::new(HashMap::new()),
            tasks: vec!["c-1".to_owned()],
        }
    }

    fn put(&self, media_type: &str, data: Vec<u8>) -> Blob {
        let blob = Blob {
            media_type: media_type.to_owned(),
            digest: digest_of(&data),
            size: data.len() as u64,
        };
        self.store.lock().unwrap().insert(blob.digest.clone(), data);
        blob
    }
}

/// A CRIU image tar's stand-in: 3 MiB, so reads and writes take several chunks.
fn image_bytes() -> Vec<u8> {
    (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect()
}

impl TaskImages for FakeContainerd {
    fn checkpoint<'a>(&'a self, container_id: &'a str) -> Call<'a, Vec<Blob>> {
        Box::pin(async move {
            if !self.tasks.iter().any(|t| t == container_id) {
                return Err(format!("NotFound: task {container_id} not found"));
            }
            match &self.behaviour {
                Behaviour::CriuFails(said) => Err(said.clone()),
                Behaviour::Works | Behaviour::SendsTooMuch => Ok(vec![
                    self.put(MEDIA_CHECKPOINT, image_bytes()),
                    self.put(OPTIONS, b"\x0a\x04runc".to_vec()),
                    self.put(CONFIG, br#"{"ociVersion":"1.0.2"}"#.to_vec()),
                ]),
                Behaviour::LiesAboutDigest => {
                    let mut blob = self.put(MEDIA_CHECKPOINT, image_bytes());
                    blob.digest = digest_of(b"something else");
                    self.store
                        .lock()
                        .unwrap()
                        .insert(blob.digest.clone(), image_bytes());
                    Ok(vec![blob])
                }
            }
        })
    }

    fn read<'a>(&'a self, blob: &'a Blob, out: &'a mut std::fs::File) -> Call<'a, u64> {
        Box::pin(async move {
            let mut data = self
                .store
                .lock()
                .unwrap()
                .get(&blob.digest)
                .cloned()
                .ok_or_else(|| format!("NotFound: content digest {}", blob.digest))?;
            if matches!(self.behaviour, Behaviour::SendsTooMuch) {
                data.extend_from_slice(b"extra");
            }
            let mut sent = 0u64;
            for chunk in data.chunks(1 << 20) {
                out.write_all(chunk).map_err(|e| e.to_string())?;
                sent += chunk.len() as u64;
            }
            Ok(sent)
        })
    }

    fn write<'a>(&'a self, blob: &'a Blob, file: &'a Path) -> Call<'a, ()> {
        Box::pin(async move {
            let data = std::fs::read(file).map_err(|e| e.to_string())?;
            let mut store = self.store.lock().unwrap();
            if store.contains_key(&blob.digest) {
                return Ok(()); // AlreadyExists
            }
            if data.len() as u64 != blob.size || digest_of(&data) != blob.digest {
                return Err(format!(
                    "FailedPrecondition: unexpected commit digest {}, expected {}",
                    digest_of(&data),
                    blob.digest
                ));
            }
            store.insert(blob.digest.clone(), data);
            Ok(())
        })
    }
}

fn request(root: &Path, id: &str) -> StageRequest {
    StageRequest {
        checkpoint_dir: root.to_path_buf(),
        node: NODE.into(),
        namespace: "ml".into(),
        pod: "trainer-0".into(),
        checkpoint_id: id.into(),
        container: "main".into(),
        // set by the CRIU stage
        source: Default::default(),
        hook: None,
        hook_timeout: Duration::from_secs(1),
        content: Default::default(),
    }
}

/// Everything under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                pending.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_criu_stage_lands_in_the_layout_verifies_and_imports_back() {
    let volume = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let fake = FakeContainerd::new(Behaviour::Works);
    let staged = criu_image::stage(
        &fake,
        "c-1",
        request(volume.path(), "ck-1"),
        temp.path(),
        |_| {},
    )
    .await
    .expect("staged");
    let dir = volume.path().join("ml/trainer-0/ck-1/main");
    assert_eq!(staged.dir, dir);
    let criu = dir.join("criu");
    let listed: Vec<Blob> =
        serde_json::from_slice(&std::fs::read(criu.join(DESCRIPTORS)).unwrap()).unwrap();
    assert_eq!(listed.len(), 3);
    for blob in &listed {
        let file = criu.join(criu_image::blob_file(&blob.digest).unwrap());
        let data = std::fs::read(&file).unwrap();
        assert_eq!(digest_of(&data), blob.digest, "{}", file.display());
        assert_eq!(
            Some(&data),
            fake.store.lock().unwrap().get(&blob.digest),
            "the blob as containerd has it"
        );
    }
    assert!(!dir.join("data").exists(), "a CRIU stage has no data/");
    assert_eq!(staged.files, 4, "three blobs and the list");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["content"], "criu");
    assert_eq!(manifest["hook"]["outcome"], "none");
    assert_eq!(manifest["files"], 4);
    assert!(tree(temp.path()).is_empty(), "the export directory is gone");
    assert!(
        !tree(volume.path()).iter().any(|p| p.contains(".staging_")),
        "no staging left"
    );

    // Verified as any checkpoint; an application restore refuses it, naming it.
    let verified = checkpoint::verify(dir.clone()).await.expect("verifies");
    assert_eq!(verified.manifest.files, 4);
    let into = volume.path().join("restore-here");
    let err = checkpoint::restore(dir.clone(), into.clone(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is a CRIU checkpoint") && err.contains("ck-1"),
        "{err}"
    );
    assert!(!into.exists());

    // Restore on another node: every blob into its (empty) content store, and the image's
    // descriptor for Tasks.Create.
    let other = FakeContainerd::new(Behaviour::Works);
    let image = aistor_agent::runtime::checkpoints::restore_criu(&other, dir.clone())
        .await
        .expect("imported");
    assert_eq!(image.media_type, MEDIA_CHECKPOINT);
    assert_eq!(image.digest, digest_of(&image_bytes()));
    assert_eq!(other.store.lock().unwrap().len(), 3);
    let d = aistor_agent::runtime::criu::checkpoint_descriptor(&image);
    assert_eq!(
        (d.media_type.as_str(), d.digest.as_str(), d.size),
        (MEDIA_CHECKPOINT, image.digest.as_str(), image.size as i64)
    );
    // Again: the blobs are there already, which is fine.
    aistor_agent::runtime::checkpoints::restore_criu(&other, dir.clone())
        .await
        .expect("idempotent");

    // An id that exists is refused before containerd is asked.
    let err = criu_image::stage(
        &fake,
        "c-1",
        request(volume.path(), "ck-1"),
        temp.path(),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(err.contains("already exists"), "{err}");
}

#[tokio::test]
async fn a_corrupted_criu_blob_is_refused_on_restore_naming_it() {
    let volume = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let fake = FakeContainerd::new(Behaviour::Works);
    criu_image::stage(
        &fake,
        "c-1",
        request(volume.path(), "ck-2"),
        temp.path(),
        |_| {},
    )
    .await
    .unwrap();
    let dir = volume.path().join("ml/trainer-0/ck-2/main");
    let file = dir
        .join("criu")
        .join(criu_image::blob_file(&digest_of(&image_bytes())).unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let other = FakeContainerd::new(Behaviour::Works);
    let err = aistor_agent::runtime::checkpoints::restore_criu(&other, dir)
        .await
        .unwrap_err();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("corrupt"),
        "{err}"
    );
    assert!(other.store.lock().unwrap().is_empty(), "nothing imported");
}

/// Whatever fails, nothing is visible on the volume and the export directory is gone.
async fn fails_cleanly(behaviour: Behaviour, container: &str) -> String {
    let volume = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let fake = FakeContainerd::new(behaviour);
    let err = criu_image::stage(
        &fake,
        container,
        request(volume.path(), "ck-x"),
        temp.path(),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(tree(volume.path()).is_empty(), "{:?}", tree(volume.path()));
    assert!(tree(temp.path()).is_empty(), "{:?}", tree(temp.path()));
    err
}

#[tokio::test]
async fn failures_leave_nothing_and_say_what_failed() {
    // As runc words it, naming CRIU's log, whose error lines are quoted.
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("criu-dump.log");
    std::fs::write(
        &log,
        "(00.000100) Version: 3.17.1\n(00.004) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n",
    )
    .unwrap();
    let said = format!(
        "Unknown: runc did not terminate successfully: exit status 1: criu failed: type DUMP errno 0 path= {}: unknown",
        log.display()
    );
    let err = fails_cleanly(Behaviour::CriuFails(said), "c-1").await;
    assert!(
        err.contains("containerd task checkpoint of c-1")
            && err.contains(&format!(
                "{} says: Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds",
                log.display()
            )),
        "{err}"
    );
    // A log that cannot be read: containerd's words alone.
    let gone = format!(
        "Unknown: criu failed: type DUMP errno 0 path= {}/criu-gone.log: unknown",
        logs.path().display()
    );
    let err = fails_cleanly(Behaviour::CriuFails(gone.clone()), "c-1").await;
    assert!(err.ends_with(&gone), "{err}");
    let err = fails_cleanly(Behaviour::Works, "no-task").await;
    assert!(err.contains("task no-task not found"), "{err}");
    let err = fails_cleanly(Behaviour::LiesAboutDigest, "c-1").await;
    assert!(err.contains("the descriptor says"), "{err}");
    let err = fails_cleanly(Behaviour::SendsTooMuch, "c-1").await;
    assert!(err.contains("the descriptor says"), "{err}");
}

#[tokio::test]
async fn an_import_refuses_a_list_without_one_image() {
    let dir = tempfile::tempdir().unwrap();
    let spec = br#"{"ociVersion":"1.0.2"}"#;
    let blob = Blob {
        media_type: CONFIG.into(),
        digest: digest_of(spec),
        size: spec.len() as u64,
    };
    std::fs::write(
        dir.path()
            .join(criu_image::blob_file(&blob.digest).unwrap()),
        spec,
    )
    .unwrap();
    std::fs::write(
        dir.path().join(DESCRIPTORS),
        serde_json::to_vec(&vec![blob]).unwrap(),
    )
    .unwrap();
    let fake = FakeContainerd::new(Behaviour::Works);
    let err = criu_image::import(&fake, dir.path()).await.unwrap_err();
    assert!(err.contains("0 blobs of media type"), "{err}");
    std::fs::write(dir.path().join(DESCRIPTORS), b"not json").unwrap();
    let err = criu_image::import(&fake, dir.path()).await.unwrap_err();
    assert!(err.contains(DESCRIPTORS), "{err}");
    assert!(fake.store.lock().unwrap().is_empty());
}
