//! Images from containerd's image store, as the kubelet uses them: the image's index or
//! manifest and config are read from the content store, the platform's manifest picked,
//! and the unpacked layers found in the snapshotter under their chain id. Nothing is
//! pulled (no registry is reachable from the local runtime's machines); an image that is
//! not in the store, or not unpacked, is an error that says how to import it.
//!
//! The parsing is pure; [`resolve`] is the I/O.

use crate::source::containerd::{Connection, RuntimeError};
use containerd_client::services::v1::snapshots::StatSnapshotRequest;
use containerd_client::services::v1::{GetImageRequest, ReadContentRequest};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a container takes from its image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub uid: u32,
    pub gid: u32,
    /// The snapshot the container's root filesystem is prepared from (the chain id of the
    /// layers); `None` for an image without layers.
    pub chain_id: Option<String>,
}

/// The image could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "image {image} is not in containerd's image store (namespace {namespace}); import it \
         with: ctr -n {namespace} images import <archive.tar>"
    )]
    NotFound { image: String, namespace: String },
    #[error("image {image}: {problem}")]
    Invalid { image: String, problem: String },
    #[error(
        "image {image} is not unpacked for snapshotter {snapshotter} (snapshot {chain_id} is \
         missing); re-import it with: ctr -n {namespace} images import <archive.tar>"
    )]
    NotUnpacked {
        image: String,
        snapshotter: String,
        chain_id: String,
        namespace: String,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Largest index, manifest or config read from the content store.
const MAX_BLOB: i64 = 4 * 1024 * 1024;

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Deserialize, Default)]
struct RunConfig {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
    #[serde(rename = "User", default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// The GOARCH name of this machine's architecture, as image platforms name it.
pub fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The manifest for `arch`/linux in an index (digest, size, media type); `Err` names
/// what the index offers.
fn pick_manifest(index: &[u8], arch: &str) -> Result<(String, i64, String), String> {
    let index: Index = serde_json::from_slice(index).map_err(|e| format!("bad index: {e}"))?;
    let offered: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|m| m.platform.as_ref())
        .map(|p| format!("{}/{}", p.os, p.architecture))
        .collect();
    index
        .manifests
        .into_iter()
        .find(|m| {
            // A single-manifest index often has no platform: take it.
            m.platform
                .as_ref()
                .is_none_or(|p| p.os == "linux" && p.architecture == arch)
        })
        .map(|m| (m.digest, m.size, m.media_type))
        .ok_or_else(|| {
            format!(
                "no linux/{arch} manifest (the index offers: {})",
                offered.join(", ")
            )
        })
}

fn config_descriptor(manifest: &[u8]) -> Result<(String, i64), String> {
    let m: Manifest = serde_json::from_slice(manifest).map_err(|e| format!("bad manifest: {e}"))?;
    Ok((m.config.digest, m.config.size))
}

/// The run configuration and chain id from an image config blob.
pub fn parse_config(config: &[u8]) -> Result<ImageConfig, String> {
    let file: ConfigFile =
        serde_json::from_slice(config).map_err(|e| format!("bad image config: {e}"))?;
    let run = file.config.unwrap_or_default();
    let (uid, gid) = parse_user(run.user.as_deref().unwrap_or(""))?;
    let diff_ids = file.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    Ok(ImageConfig {
        entrypoint: run.entrypoint.unwrap_or_default(),
        cmd: run.cmd.unwrap_or_default(),
        env: run.env.unwrap_or_default(),
        working_dir: run.working_dir.filter(|w| !w.is_empty()),
        uid,
        gid,
        chain_id: chain_id(&diff_ids),
    })
}

/// `User` as numbers; names would need the image's /etc/passwd, which the local runtime
/// does not read, so they are refused rather than run as root.
fn parse_user(user: &str) -> Result<(u32, u32), String> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid: u32 = u.parse().map_err(|_| {
        format!("user \"{user}\" is not numeric (uid[:gid]); names are not supported")
    })?;
    let gid: u32 = if g.is_empty() {
        uid
    } else {
        g.parse().map_err(|_| {
            format!("user \"{user}\" is not numeric (uid[:gid]); names are not supported")
        })?
    };
    Ok((uid, gid))
}

/// The OCI chain id of a layer stack: the first diff id, then
/// `sha256(parent + " " + diff_id)` for each next layer.
pub fn chain_id(diff_ids: &[String]) -> Option<String> {
    let mut ids = diff_ids.iter();
    let mut chain = ids.next()?.clone();
    for diff in ids {
        let digest = Sha256::digest(format!("{chain} {diff}").as_bytes());
        chain = format!("sha256:{}", hex(&digest));
    }
    Some(chain)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Docker's short names: `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize(image: &str) -> String {
    let (name, tagged) = match image.rsplit_once('/') {
        Some((_, last)) => (image.to_owned(), last.contains(':') || last.contains('@')),
        None => (
            format!("library/{image}"),
            image.contains(':') || image.contains('@'),
        ),
    };
    let first = name.split('/').next().unwrap_or("");
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let name = if has_domain {
        name
    } else {
        format!("docker.io/{name}")
    };
    if tagged {
        name
    } else {
        format!("{name}:latest")
    }
}

/// Resolves `image` in containerd `namespace`: its run configuration and the unpacked
/// snapshot in `snapshotter`.
pub async fn resolve(
    conn: &Connection,
    namespace: &str,
    snapshotter: &str,
    image: &str,
) -> Result<ImageConfig, ImageError> {
    let channel = conn.channel().await?;
    let client = containerd_client::Client::from(channel);
    let mut found = None;
    for name in [image.to_owned(), normalize(image)] {
        let got = conn
            .call(
                "Images.Get",
                namespace,
                client
                    .images()
                    .get(conn.request(GetImageRequest { name: name.clone() }, namespace)?),
            )
            .await;
        match got {
            Ok(response) => {
                found = response.image;
                break;
            }
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let invalid = |problem: String| ImageError::Invalid {
        image: image.to_owned(),
        problem,
    };
    let target = found
        .and_then(|i| i.target)
        .ok_or_else(|| ImageError::NotFound {
            image: image.to_owned(),
            namespace: namespace.to_owned(),
        })?;
    let (mut digest, mut size, mut media_type) = (target.digest, target.size, target.media_type);
    // An index points at a manifest per platform; follow it once.
    if INDEX_TYPES.contains(&media_type.as_str()) {
        let index = read_blob(conn, &client, namespace, &digest, size)
            .await?
            .map_err(invalid)?;
        (digest, size, media_type) = pick_manifest(&index, this_arch()).map_err(invalid)?;
    }
    if !MANIFEST_TYPES.contains(&media_type.as_str()) {
        return Err(invalid(format!("unsupported media type {media_type}")));
    }
    let manifest = read_blob(conn, &client, namespace, &digest, size)
        .await?
        .map_err(invalid)?;
    let (config_digest, config_size) = config_descriptor(&manifest).map_err(invalid)?;
    let config = read_blob(conn, &client, namespace, &config_digest, config_size)
        .await?
        .map_err(invalid)?;
    let parsed = parse_config(&config).map_err(invalid)?;
    if let Some(chain_id) = &parsed.chain_id {
        let stat = conn
            .call(
                "Snapshots.Stat",
                namespace,
                client.snapshots().stat(conn.request(
                    StatSnapshotRequest {
                        snapshotter: snapshotter.to_owned(),
                        key: chain_id.clone(),
                    },
                    namespace,
                )?),
            )
            .await;
        match stat {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                return Err(ImageError::NotUnpacked {
                    image: image.to_owned(),
                    snapshotter: snapshotter.to_owned(),
                    chain_id: chain_id.clone(),
                    namespace: namespace.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(parsed)
}

/// One blob from the content store, bounded; the inner `Err` is a problem with the image.
async fn read_blob(
    conn: &Connection,
    client: &containerd_client::Client,
    namespace: &str,
    digest: &str,
    size: i64,
) -> Result<Result<Vec<u8>, String>, RuntimeError> {
    if size > MAX_BLOB {
        return Ok(Err(format!(
            "{digest} is {size} bytes, more than the {MAX_BLOB} read for metadata"
        )));
    }
    let mut stream = conn
        .call(
            "Content.Read",
            namespace,
            client.content().read(conn.request(
                ReadContentRequest {
                    digest: digest.to_owned(),
                    offset: 0,
                    size: 0,
                },
                namespace,
            )?),
        )
        .await?;
    let mut out = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                out.extend_from_slice(&chunk.data);
                if out.len() as i64 > MAX_BLOB {
                    return Ok(Err(format!("{digest} is larger than {MAX_BLOB} bytes")));
                }
            }
            Ok(None) => break,
            Err(status) => {
                return Ok(Err(format!("reading {digest}: {}", status.message())));
            }
        }
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_follows_the_oci_rule() {
        assert_eq!(chain_id(&[]), None);
        assert_eq!(
            chain_id(&["sha256:aa".into()]).as_deref(),
            Some("sha256:aa")
        );
        // sha256("sha256:aa sha256:bb"), computed independently with sha256sum.
        assert_eq!(
            chain_id(&["sha256:aa".into(), "sha256:bb".into()]).as_deref(),
            Some("sha256:b68ad689d6d1ec110ea1c13617437ad6f3766d4b3b309f6a603a222e07a0164f")
        );
    }

    #[test]
    fn names_are_normalized_as_docker_does() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(normalize("me/app"), "docker.io/me/app:latest");
        assert_eq!(normalize("localhost/app:v1"), "localhost/app:v1");
        assert_eq!(normalize("ghcr.io/x/y"), "ghcr.io/x/y:latest");
        assert_eq!(normalize("reg:5000/y"), "reg:5000/y:latest");
        assert_eq!(normalize("a/b@sha256:00"), "docker.io/a/b@sha256:00");
    }

    #[test]
    fn config_gives_the_run_settings() {
        let c = parse_config(
            br#"{"config":{"Entrypoint":["/bin/sh"],"Cmd":["-c","true"],"Env":["PATH=/bin"],
                "WorkingDir":"/w","User":"1000:5"},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#,
        )
        .unwrap();
        assert_eq!(c.entrypoint, ["/bin/sh"]);
        assert_eq!(c.cmd, ["-c", "true"]);
        assert_eq!(c.env, ["PATH=/bin"]);
        assert_eq!(c.working_dir.as_deref(), Some("/w"));
        assert_eq!((c.uid, c.gid), (1000, 5));
        assert_eq!(c.chain_id.as_deref(), Some("sha256:aa"));
        let bare = parse_config(b"{}").unwrap();
        assert_eq!(bare, ImageConfig::default());
        assert_eq!(parse_user("7").unwrap(), (7, 7));
        assert!(
            parse_config(br#"{"config":{"User":"nobody"}}"#)
                .unwrap_err()
                .contains("not numeric")
        );
        assert!(parse_config(br#"{"config":{"User":"1:x"}}"#).is_err());
        assert!(parse_config(b"[").unwrap_err().contains("bad image config"));
    }

    #[test]
    fn index_picks_this_platform() {
        let index = br#"{"manifests":[
            {"mediaType":"m","digest":"sha256:arm","size":1,"platform":{"architecture":"arm64","os":"linux"}},
            {"mediaType":"m","digest":"sha256:amd","size":2,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        assert_eq!(
            pick_manifest(index, "amd64").unwrap(),
            ("sha256:amd".into(), 2, "m".into())
        );
        assert_eq!(
            pick_manifest(index, "arm64").unwrap(),
            ("sha256:arm".into(), 1, "m".into())
        );
        let e = pick_manifest(index, "s390x").unwrap_err();
        assert!(e.contains("linux/arm64, linux/amd64"), "{e}");
        let single = br#"{"manifests":[{"mediaType":"m","digest":"sha256:one","size":3}]}"#;
        assert_eq!(pick_manifest(single, "amd64").unwrap().0, "sha256:one");
        assert_eq!(
            config_descriptor(br#"{"config":{"digest":"sha256:c","size":9}}"#).unwrap(),
            ("sha256:c".into(), 9)
        );
        assert!(config_descriptor(b"{}").is_err());
    }
}
