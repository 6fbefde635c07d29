//! cgroup layout from `/proc/<pid>/mountinfo`: which cgroup filesystems are mounted, and where.

use super::{ParseError, excerpt};
use aistor_proto::v1::CgroupMode;
use std::collections::BTreeMap;

const WHAT: &str = "mountinfo";

/// The cgroup v1 controllers the kernel has (`/proc/cgroups`); a v1 mount's super options name
/// the ones attached to it among other options (`rw`, `xattr`, `release_agent=...`).
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "debug",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Where the host's cgroup hierarchies are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLayout {
    pub mode: CgroupMode,
    /// Host path (e.g. "/sys/fs/cgroup" or "/sys/fs/cgroup/unified") of the cgroup2 mount, if any.
    pub unified: Option<String>,
    /// v1 controller name ("cpu", "cpuacct", "memory", "blkio", "pids", ...) → host path of the
    /// hierarchy mounted with it (co-mounted controllers like "cpu,cpuacct" map both names to the
    /// same path). Named hierarchies without a controller appear as "name=<name>" (e.g.
    /// "name=systemd").
    pub v1: BTreeMap<String, String>,
}

/// One cgroup mount: its mount point and whether it shows the hierarchy from its root ("/").
#[derive(Debug)]
struct Mount {
    point: String,
    whole: bool,
}

impl Mount {
    /// A whole-hierarchy mount beats a mount of a subtree (a bind mount or a cgroup namespace);
    /// among equals the conventional place under /sys/fs/cgroup wins, then the first one.
    fn better_than(&self, other: &Mount) -> bool {
        let conventional = |m: &Mount| m.point.starts_with("/sys/fs/cgroup");
        (self.whole, conventional(self)) > (other.whole, conventional(other))
    }
}

/// v2 when only `cgroup2` is mounted (or cgroup2 plus v1 hierarchies with no controller, such as a
/// compatibility `name=systemd` one), v1 when only `cgroup` (v1) hierarchies are, hybrid when v1
/// controllers and cgroup2 are both mounted (systemd's "unified" layout).
pub fn cgroup_mode(mountinfo: &str) -> Result<CgroupMode, ParseError> {
    cgroup_layout(mountinfo).map(|layout| layout.mode)
}

/// Reads every cgroup and cgroup2 mount in a mountinfo file (`proc(5)`): the mode and the mount
/// point of each hierarchy. Lines that are not cgroup mounts are skipped without being checked;
/// a cgroup line without the fields the format requires is an error. Octal escapes in mount
/// points (`\040` for a space) are decoded.
pub fn cgroup_layout(mountinfo: &str) -> Result<CgroupLayout, ParseError> {
    let mut unified: Option<Mount> = None;
    let mut v1: BTreeMap<String, Mount> = BTreeMap::new();
    let mut any_v1 = false;
    for (index, line) in mountinfo.lines().enumerate() {
        let line_no = index.saturating_add(1);
        // Optional fields end at " - "; the filesystem type, source and super options follow.
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut after_fields = after.split_whitespace();
        let fstype = after_fields.next();
        if !matches!(fstype, Some("cgroup" | "cgroup2")) {
            continue;
        }
        let err = |message: String| ParseError::new(WHAT, line_no, message);
        // mount ID, parent ID, major:minor, root, mount point, mount options, optional fields.
        let fields: Vec<&str> = before.split_whitespace().collect();
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
            let got = excerpt(line);
            return Err(err(format!(
                "a cgroup mount line needs a root and a mount point, got {got:?}"
            )));
        };
        let mount = Mount {
            point: unescape(point).map_err(err)?,
            whole: *root == "/",
        };
        if fstype == Some("cgroup2") {
            if unified.as_ref().is_none_or(|u| mount.better_than(u)) {
                unified = Some(mount);
            }
            continue;
        }
        any_v1 = true;
        // Source, then the super options, e.g. "rw,cpu,cpuacct" or "rw,xattr,name=systemd".
        let options = after_fields.nth(1).unwrap_or("");
        for option in options.split(',') {
            let key = if V1_CONTROLLERS.contains(&option) || option.starts_with("name=") {
                option
            } else {
                continue;
            };
            let replace = v1.get(key).is_none_or(|m| mount.better_than(m));
            if replace {
                v1.insert(
                    key.to_owned(),
                    Mount {
                        point: mount.point.clone(),
                        whole: mount.whole,
                    },
                );
            }
        }
    }
    let has_v1_controller = v1.keys().any(|k| !k.starts_with("name="));
    let mode = match (any_v1, unified.is_some()) {
        (true, true) if has_v1_controller => CgroupMode::Hybrid,
        (_, true) => CgroupMode::V2,
        (true, false) => CgroupMode::V1,
        (false, false) => {
            return Err(ParseError::new(
                WHAT,
                0,
                "no cgroup or cgroup2 filesystem is mounted",
            ));
        }
    };
    Ok(CgroupLayout {
        mode,
        unified: unified.map(|m| m.point),
        v1: v1.into_iter().map(|(k, m)| (k, m.point)).collect(),
    })
}

/// Decodes mountinfo's `\ooo` octal escapes (space, tab, newline and backslash in paths).
fn unescape(field: &str) -> Result<String, String> {
    if !field.contains('\\') {
        return Ok(field.to_owned());
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            let code = bytes
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok());
            let Some(code) = code else {
                let got = excerpt(field);
                return Err(format!("bad octal escape in mount point {got:?}"));
            };
            out.push(code);
            i += 4;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        let got = excerpt(field);
        format!("mount point {got:?} is not UTF-8 once unescaped")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn modes() {
        assert_eq!(cgroup_mode(HYBRID).unwrap(), CgroupMode::Hybrid);
        let v2 = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup_mode(v2).unwrap(), CgroupMode::V2);
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu rw shared:12 - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup_mode(v1).unwrap(), CgroupMode::V1);
        assert!(cgroup_mode("garbage\n22 1 0:2 / / rw - ext4 /dev/vda rw\n").is_err());
    }

    #[test]
    fn this_host() {
        let text = std::fs::read_to_string("/proc/1/mountinfo").unwrap();
        assert!(cgroup_mode(&text).is_ok());
    }

    #[test]
    fn hybrid_layout_maps_each_controller_to_its_mount() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";
        let layout = cgroup_layout(text).unwrap();
        assert_eq!(layout.mode, CgroupMode::Hybrid);
        assert_eq!(layout.unified.as_deref(), Some("/sys/fs/cgroup/unified"));
        let v1: Vec<(&str, &str)> = layout
            .v1
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            v1,
            [
                ("cpu", "/sys/fs/cgroup/cpu,cpuacct"),
                ("cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
                ("memory", "/sys/fs/cgroup/memory"),
                ("name=systemd", "/sys/fs/cgroup/systemd"),
            ]
        );
    }

    #[test]
    fn v2_with_only_a_named_v1_hierarchy_is_v2() {
        let text = "\
35 24 0:30 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw,nsdelegate
50 35 0:44 / /run/compat/systemd rw - cgroup cgroup rw,name=systemd
";
        let layout = cgroup_layout(text).unwrap();
        assert_eq!(layout.mode, CgroupMode::V2);
        assert_eq!(layout.unified.as_deref(), Some("/sys/fs/cgroup"));
        assert_eq!(
            layout.v1.get("name=systemd").map(String::as_str),
            Some("/run/compat/systemd")
        );
    }

    #[test]
    fn whole_hierarchy_mount_wins_over_a_subtree_or_an_extra_mount() {
        let text = "\
60 24 0:30 /kubepods /var/lib/x rw - cgroup2 cgroup2 rw
35 24 0:30 / /tmp/other rw - cgroup2 cgroup2 rw
36 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
37 24 0:30 / /tmp/again rw - cgroup2 cgroup2 rw
";
        let layout = cgroup_layout(text).unwrap();
        assert_eq!(layout.unified.as_deref(), Some("/sys/fs/cgroup"));
    }

    #[test]
    fn octal_escapes_in_mount_points_are_decoded() {
        let text = "32 31 0:29 / /mnt/my\\040cgroups rw - cgroup cgroup rw,memory\n";
        let layout = cgroup_layout(text).unwrap();
        assert_eq!(
            layout.v1.get("memory").map(String::as_str),
            Some("/mnt/my cgroups")
        );
        let bad = "32 31 0:29 / /mnt/x\\09 rw - cgroup cgroup rw,memory\n";
        let e = cgroup_layout(bad).unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (1, "bad octal escape in mount point \"/mnt/x\\\\09\"")
        );
    }

    #[test]
    fn truncated_cgroup_line_is_an_error_with_its_line() {
        let text = "22 1 0:2 / / rw - ext4 /dev/vda rw\n32 31 0:29 - cgroup cgroup rw,cpu\n";
        let e = cgroup_layout(text).unwrap_err();
        assert_eq!(e.what, "mountinfo");
        assert_eq!(e.line, 2);
        assert!(
            e.message
                .starts_with("a cgroup mount line needs a root and a mount point"),
            "{e}"
        );
        let e = cgroup_layout("").unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (0, "no cgroup or cgroup2 filesystem is mounted")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = cgroup_layout(&text);
        }

        #[test]
        fn cgroup_lines_with_arbitrary_fields_never_panic(
            point in "[ -~]{0,20}",
            options in "[a-z=,_]{0,30}",
            root in prop_oneof![Just("/".to_owned()), "[ -~]{0,5}"],
            v2 in any::<bool>(),
        ) {
            let fs = if v2 { "cgroup2" } else { "cgroup" };
            let text = format!("1 2 0:3 {root} {point} rw - {fs} {fs} {options}\n");
            if let Ok(layout) = cgroup_layout(&text) {
                prop_assert!(layout.unified.is_some() || layout.mode == CgroupMode::V1);
            }
        }
    }
}
