//! cgroup mode from `/proc/<pid>/mountinfo`: which cgroup filesystems are mounted.

use super::ParseError;
use aistor_proto::v1::CgroupMode;

/// v2 when only `cgroup2` is mounted, v1 when only `cgroup` (v1) controllers are,
/// hybrid when both are (systemd's "unified" layout with v1 controllers).
pub fn cgroup_mode(mountinfo: &str) -> Result<CgroupMode, ParseError> {
    let (mut v1, mut v2) = (false, false);
    for line in mountinfo.lines() {
        // Optional fields end at " - "; the filesystem type follows it.
        let Some((_, after)) = line.split_once(" - ") else {
            continue;
        };
        match after.split_whitespace().next() {
            Some("cgroup") => v1 = true,
            Some("cgroup2") => v2 = true,
            _ => {}
        }
    }
    match (v1, v2) {
        (true, true) => Ok(CgroupMode::Hybrid),
        (true, false) => Ok(CgroupMode::V1),
        (false, true) => Ok(CgroupMode::V2),
        (false, false) => Err(ParseError::new(
            "mountinfo",
            0,
            "no cgroup or cgroup2 filesystem is mounted",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
