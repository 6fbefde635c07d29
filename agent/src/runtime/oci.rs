//! What the agent reads from a kubelet container's OCI runtime spec (as containerd keeps
//! it): the host directory mounted at the pod's checkpoint path, and the process an exec
//! hook runs as. Pure: the spec is JSON bytes in, values or a reason out.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why no checkpoint directory could be found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("the container's OCI spec is not JSON: {0}")]
    Spec(String),
    #[error("checkpoint path {0:?} is not an absolute path without '..'")]
    BadPath(String),
    #[error("nothing is mounted at {0}")]
    NotMounted(String),
    #[error(
        "the mount at {path} is a {kind} mount of {from:?}, not a bind mount of a host directory"
    )]
    NotBind {
        path: String,
        kind: String,
        from: String,
    },
    #[error("the mount at {path} has source {from:?}, not an absolute host path without '..'")]
    BadSource { path: String, from: String },
}

/// `path` without trailing slashes; `None` unless absolute and free of `..` and `.`.
pub fn clean_path(path: &str) -> Option<String> {
    let trimmed = path.trim_end_matches('/');
    // Segments, not `Path::components`, which drops `.` silently.
    let ok = path.starts_with('/') && !path.split('/').any(|s| s == "." || s == "..");
    ok.then(|| {
        if trimmed.is_empty() {
            "/".to_owned()
        } else {
            trimmed.to_owned()
        }
    })
}

/// The checkpoint path to use: the directive's, `default` when it is empty.
pub fn checkpoint_path(requested: &str, default: &str) -> Result<String, MountError> {
    let path = if requested.is_empty() {
        default
    } else {
        requested
    };
    clean_path(path)
        .filter(|p| p != "/")
        .ok_or_else(|| MountError::BadPath(path.to_owned()))
}

/// The host directory bound at `destination` in the container whose OCI spec is `spec`,
/// as a path under `host_root` (where the host's `/` is seen by the agent). The last
/// mount with that destination wins, as it does in the container. Only bind mounts count
/// (the CRI plugin writes volumes as `type: bind` with `rbind`); a tmpfs or anything
/// else there is refused, naming it.
pub fn checkpoint_source(
    spec: &[u8],
    destination: &str,
    host_root: &Path,
) -> Result<PathBuf, MountError> {
    let destination =
        clean_path(destination).ok_or_else(|| MountError::BadPath(destination.to_owned()))?;
    let spec: Value = serde_json::from_slice(spec).map_err(|e| MountError::Spec(e.to_string()))?;
    let mount = spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .rfind(|m| {
            m["destination"]
                .as_str()
                .and_then(clean_path)
                .is_some_and(|d| d == destination)
        })
        .ok_or_else(|| MountError::NotMounted(destination.clone()))?;
    let kind = mount["type"].as_str().unwrap_or_default();
    let source = mount["source"].as_str().unwrap_or_default();
    let bind = kind == "bind"
        || mount["options"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| matches!(o.as_str(), Some("bind" | "rbind")));
    if !bind {
        return Err(MountError::NotBind {
            path: destination,
            kind: if kind.is_empty() { "typeless" } else { kind }.to_owned(),
            from: source.to_owned(),
        });
    }
    let source = clean_path(source).ok_or_else(|| MountError::BadSource {
        path: destination.clone(),
        from: source.to_owned(),
    })?;
    Ok(host_root.join(source.trim_start_matches('/')))
}

/// The process an exec hook runs: the container's own process (user, environment,
/// working directory, capabilities, ...) with `argv` as its arguments and no terminal,
/// as the CRI plugin builds an exec; without a process in the spec, root with a plain
/// `PATH` in `/`.
pub fn exec_process(spec: &[u8], argv: &[String]) -> Value {
    let mut process = serde_json::from_slice::<Value>(spec)
        .ok()
        .and_then(|s| s.get("process").cloned())
        .filter(Value::is_object)
        .unwrap_or_else(|| {
            serde_json::json!({
                "user": {"uid": 0, "gid": 0},
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "cwd": "/",
            })
        });
    if let Some(p) = process.as_object_mut() {
        p.insert("args".into(), serde_json::json!(argv));
        p.insert("terminal".into(), Value::Bool(false));
        p.remove("consoleSize");
    }
    process
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape the CRI plugin writes for a pod with a volume at /checkpoint.
    fn cri_spec(mounts: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {
                "user": {"uid": 1000, "gid": 1000, "additionalGids": [1000]},
                "args": ["/app/train"],
                "env": ["PATH=/usr/bin:/bin", "HOSTNAME=trainer-0"],
                "cwd": "/work",
                "capabilities": {"bounding": ["CAP_CHOWN"]},
                "consoleSize": {"height": 0, "width": 0}
            },
            "root": {"path": "rootfs"},
            "mounts": mounts
        }))
        .unwrap()
    }

    fn bind(destination: &str, source: &str) -> Value {
        serde_json::json!({"destination": destination, "type": "bind", "source": source,
                           "options": ["rbind", "rprivate", "rw"]})
    }

    const VOLUME: &str = "/var/lib/kubelet/pods/6f1c3a52-8d1e-4c0a-9b7e-2f5d8a1b3c4d/volumes/kubernetes.io~nfs/state";

    #[test]
    fn the_bind_mount_at_the_checkpoint_path_is_found_under_the_host_root() {
        let spec = cri_spec(serde_json::json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            bind("/etc/hosts", "/var/lib/containerd/sandboxes/x/hosts"),
            bind("/checkpoint", VOLUME),
            bind("/checkpoint-other", "/elsewhere"),
        ]));
        assert_eq!(
            checkpoint_source(&spec, "/checkpoint", Path::new("/host")).unwrap(),
            Path::new("/host").join(VOLUME.trim_start_matches('/'))
        );
        assert_eq!(
            checkpoint_source(&spec, "/checkpoint/", Path::new("/")).unwrap(),
            Path::new(VOLUME)
        );
        // A bind written with only the option (no type), as some runtimes do.
        let spec = cri_spec(serde_json::json!([
            {"destination": "/ckpt/", "source": "/data/ckpt", "options": ["bind", "ro"]}
        ]));
        assert_eq!(
            checkpoint_source(&spec, "/ckpt", Path::new("/host")).unwrap(),
            Path::new("/host/data/ckpt")
        );
    }

    #[test]
    fn the_last_mount_at_a_destination_wins() {
        let spec = cri_spec(serde_json::json!([
            bind("/checkpoint", "/first"),
            bind("/checkpoint", "/second"),
        ]));
        assert_eq!(
            checkpoint_source(&spec, "/checkpoint", Path::new("/")).unwrap(),
            Path::new("/second")
        );
    }

    #[test]
    fn refusals_name_the_path_and_the_reason() {
        let spec = cri_spec(serde_json::json!([bind("/data", "/d")]));
        let e = checkpoint_source(&spec, "/checkpoint", Path::new("/")).unwrap_err();
        assert_eq!(e, MountError::NotMounted("/checkpoint".into()));
        assert_eq!(e.to_string(), "nothing is mounted at /checkpoint");
        let spec = cri_spec(serde_json::json!([
            {"destination": "/checkpoint", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}
        ]));
        let e = checkpoint_source(&spec, "/checkpoint", Path::new("/")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the mount at /checkpoint is a tmpfs mount of \"tmpfs\", not a bind mount of a host directory"
        );
        let spec = cri_spec(serde_json::json!([bind("/checkpoint", "relative/dir")]));
        assert!(matches!(
            checkpoint_source(&spec, "/checkpoint", Path::new("/")),
            Err(MountError::BadSource { .. })
        ));
        let spec = cri_spec(serde_json::json!([bind("/checkpoint", "/a/../etc")]));
        assert!(matches!(
            checkpoint_source(&spec, "/checkpoint", Path::new("/")),
            Err(MountError::BadSource { .. })
        ));
        assert!(matches!(
            checkpoint_source(b"{not json", "/checkpoint", Path::new("/")),
            Err(MountError::Spec(_))
        ));
        // No mounts at all.
        assert_eq!(
            checkpoint_source(b"{}", "/checkpoint", Path::new("/")),
            Err(MountError::NotMounted("/checkpoint".into()))
        );
        assert_eq!(
            checkpoint_source(&spec, "ckpt", Path::new("/")),
            Err(MountError::BadPath("ckpt".into()))
        );
    }

    #[test]
    fn checkpoint_paths_default_and_are_checked() {
        assert_eq!(checkpoint_path("", "/checkpoint").unwrap(), "/checkpoint");
        assert_eq!(checkpoint_path("/state/", "/checkpoint").unwrap(), "/state");
        for bad in ["state", "/a/../b", "/", "/./x"] {
            assert_eq!(
                checkpoint_path(bad, "/checkpoint"),
                Err(MountError::BadPath(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn exec_runs_as_the_container_process_with_the_hooks_arguments() {
        let spec = cri_spec(serde_json::json!([]));
        let argv = vec!["sh".to_owned(), "-c".to_owned(), "save".to_owned()];
        let p = exec_process(&spec, &argv);
        assert_eq!(p["args"], serde_json::json!(["sh", "-c", "save"]));
        assert_eq!(p["user"]["uid"], 1000);
        assert_eq!(p["cwd"], "/work");
        assert_eq!(p["env"][1], "HOSTNAME=trainer-0");
        assert_eq!(p["terminal"], false);
        assert!(p.get("consoleSize").is_none());
        assert_eq!(p["capabilities"]["bounding"][0], "CAP_CHOWN");
        // No process in the spec: root in /.
        let p = exec_process(b"{}", &argv);
        assert_eq!(
            (p["user"]["uid"].as_u64(), p["cwd"].as_str()),
            (Some(0), Some("/"))
        );
        assert_eq!(p["args"][2], "save");
    }
}
