//! Reading files under the host root, with the path in every error.

use crate::model::ReadError;
use std::path::{Path, PathBuf};

/// The host's filesystem as seen from the agent: `/` on a plain host, `/host` in a pod.
#[derive(Debug, Clone)]
pub struct HostFs {
    root: PathBuf,
}

impl HostFs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `relative` is an absolute host path such as `/proc/stat`.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative.trim_start_matches('/'))
    }

    pub fn read(&self, relative: &str) -> Result<String, ReadError> {
        let path = self.path(relative);
        std::fs::read_to_string(&path).map_err(|e| ReadError::new(&path, &e))
    }

    /// Reads into `buf` (cleared first), reusing its allocation on the hot path.
    pub fn read_into(&self, relative: &str, buf: &mut String) -> Result<(), ReadError> {
        use std::io::Read;
        buf.clear();
        let path = self.path(relative);
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_string(buf))
            .map(drop)
            .map_err(|e| ReadError::new(&path, &e))
    }

    /// A one-line file, trimmed.
    pub fn read_trimmed(&self, relative: &str) -> Result<String, ReadError> {
        self.read(relative).map(|s| s.trim().to_owned())
    }

    pub fn exists(&self, relative: &str) -> bool {
        self.path(relative).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_under_the_root_and_names_the_path_on_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(dir.path().join("proc/stat"), "cpu  1 2 3 4\n").unwrap();
        let fs = HostFs::new(dir.path());
        assert_eq!(fs.read("/proc/stat").unwrap(), "cpu  1 2 3 4\n");
        let err = fs.read("/proc/meminfo").unwrap_err();
        assert!(err.not_found);
        assert!(err.to_string().contains("proc/meminfo"), "{err}");
        let mut buf = String::from("old");
        fs.read_into("/proc/stat", &mut buf).unwrap();
        assert_eq!(buf, "cpu  1 2 3 4\n");
    }
}
