//! Host pid → (pod uid, container id), for GPU attribution.
//!
//! The driver reports host pids (the DaemonSet runs with `hostPID`); the pid's
//! `/proc/<pid>/cgroup` under the host root names its cgroup, resolved to a path relative
//! to the cgroup root the same way container discovery resolves a task's cgroup
//! (`parse_proc_cgroup`, `CgroupResolver`: cgroup namespaces handled). The pid belongs
//! to the container whose cgroup is that path or an ancestor of it (processes in a
//! sub-cgroup of a container count as the container's). A pid that is gone, in no
//! container's cgroup, or not resolvable maps to nothing.

use crate::source::HostFs;
use crate::source::containerd::{CgroupResolver, parse_proc_cgroup};
use aistor_proto::v1 as pb;
use std::cell::RefCell;
use std::collections::HashMap;

/// Resolves host pids to containers; see the module docs.
#[derive(Debug)]
pub struct PidResolver {
    fs: HostFs,
    resolver: CgroupResolver,
    /// pid → cgroup path (None: not resolvable), for one tick.
    cache: RefCell<HashMap<u32, Option<String>>>,
    buf: RefCell<String>,
}

impl PidResolver {
    pub fn new(fs: HostFs) -> Self {
        Self {
            resolver: CgroupResolver::new(fs.clone()),
            fs,
            cache: RefCell::new(HashMap::new()),
            buf: RefCell::new(String::new()),
        }
    }

    /// The cgroup of a host pid relative to the cgroup root; `None` when the process is
    /// gone, its cgroup file has no usable line, or a namespaced path cannot be resolved.
    pub fn cgroup_of(&self, pid: u32) -> Option<String> {
        if let Some(cached) = self.cache.borrow().get(&pid) {
            return cached.clone();
        }
        let resolved = self.read_cgroup(pid);
        self.cache.borrow_mut().insert(pid, resolved.clone());
        resolved
    }

    fn read_cgroup(&self, pid: u32) -> Option<String> {
        let mut buf = self.buf.borrow_mut();
        if let Err(e) = self.fs.read_into(&format!("/proc/{pid}/cgroup"), &mut buf) {
            tracing::debug!(error = %e, pid, "cannot read a GPU process's cgroup");
            return None;
        }
        let membership = parse_proc_cgroup(&buf)?;
        let path = self.resolver.resolve(&membership)?;
        Some(path.trim_matches('/').to_owned())
    }

    /// container_of for this tick's pods: pid → (pod uid, container id) when the pid's
    /// cgroup is a container's cgroup or below it. Starts a new tick (forgets the pids
    /// cached by the previous one).
    pub fn container_of<'a>(
        &'a mut self,
        pods: &'a [pb::Pod],
    ) -> impl Fn(u32) -> Option<(String, String)> + 'a {
        self.cache.get_mut().clear();
        let mut containers: HashMap<&'a str, (&'a str, &'a str)> = HashMap::new();
        for pod in pods {
            for container in &pod.containers {
                let path = container.cgroup_path.trim_matches('/');
                if !path.is_empty() {
                    containers.insert(path, (pod.uid.as_str(), container.id.as_str()));
                }
            }
        }
        let this: &'a Self = self;
        move |pid| {
            if containers.is_empty() {
                return None;
            }
            let cgroup = this.cgroup_of(pid)?;
            let mut path = cgroup.as_str();
            loop {
                if let Some((pod, container)) = containers.get(path) {
                    return Some(((*pod).to_owned(), (*container).to_owned()));
                }
                path = path.rsplit_once('/')?.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> Vec<pb::Pod> {
        vec![pb::Pod {
            uid: "uid-1".into(),
            cgroup_path: "kubepods.slice/kubepods-pod1.slice".into(),
            containers: vec![pb::Container {
                id: "abc".into(),
                cgroup_path: "kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope".into(),
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn host(files: &[(u32, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (pid, text) in files {
            let proc_dir = dir.path().join(format!("proc/{pid}"));
            std::fs::create_dir_all(&proc_dir).unwrap();
            std::fs::write(proc_dir.join("cgroup"), text).unwrap();
        }
        dir
    }

    #[test]
    fn maps_container_and_sub_cgroup_pids_and_nothing_else() {
        let dir = host(&[
            (
                10,
                "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope\n",
            ),
            (
                11,
                "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope/worker\n",
            ),
            (12, "0::/kubepods.slice/kubepods-pod1.slice\n"),
            (13, "0::/system.slice/sshd.service\n"),
        ]);
        let mut resolver = PidResolver::new(HostFs::new(dir.path()));
        let pods = pods();
        let of = resolver.container_of(&pods);
        let expected = Some(("uid-1".to_owned(), "abc".to_owned()));
        assert_eq!(of(10), expected);
        assert_eq!(of(11), expected);
        assert_eq!(of(12), None, "the pod cgroup itself is no container");
        assert_eq!(of(13), None);
        assert_eq!(of(14), None, "gone");
        // cached within the tick
        assert_eq!(of(10), expected);
    }

    #[test]
    fn a_new_tick_forgets_old_pids() {
        let dir = host(&[(10, "0::/system.slice/a.service\n")]);
        let mut resolver = PidResolver::new(HostFs::new(dir.path()));
        let pods = pods();
        assert_eq!(resolver.container_of(&pods)(10), None);
        std::fs::write(
            dir.path().join("proc/10/cgroup"),
            "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope\n",
        )
        .unwrap();
        assert_eq!(
            resolver.container_of(&pods)(10),
            Some(("uid-1".to_owned(), "abc".to_owned()))
        );
    }
}
