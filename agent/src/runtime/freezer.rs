//! Freezing and thawing a pod through its cgroup freezer (FreezePod, for make-before-break
//! migration). cgroup v2: `1`/`0` to `<pod cgroup>/cgroup.freeze`, done when
//! `cgroup.events` says `frozen 1`/`frozen 0`. cgroup v1 and hybrid hosts (runc puts the
//! containers in the v1 hierarchies there): `FROZEN`/`THAWED` to
//! `<freezer mount>/<pod cgroup>/freezer.state`, done when it reads back `FROZEN` (it
//! passes through `FREEZING`) or `THAWED`. Freezing the pod cgroup freezes every container
//! cgroup below it.
//!
//! Every wait is bounded; a freeze that does not complete is undone (thawed) so nothing
//! stays half-frozen. The state reported is read from the kernel each time, never
//! remembered, so a pod frozen before an agent restart is still seen frozen.

use super::cgroup::{CgroupError, PodCgroups};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a freeze or thaw waits for the kernel to finish it.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause between two looks at the state file.
const POLL_MAX: Duration = Duration::from_millis(50);

/// The freezer interface of the host's pod cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerKind {
    /// cgroup v2: `cgroup.freeze` and `cgroup.events`.
    V2,
    /// cgroup v1 (and hybrid): the freezer controller's `freezer.state`.
    V1,
}

/// What a freezer state file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    /// v1 only: freezing has started but not every task is frozen yet.
    Freezing,
    Frozen,
}

impl FreezerKind {
    /// v2 when the cgroup root is the unified hierarchy (`cgroup.controllers` at its top).
    pub fn of(unified: bool) -> Self {
        if unified { Self::V2 } else { Self::V1 }
    }

    /// The file written to freeze or thaw, in the pod cgroup's directory.
    pub fn control_file(self) -> &'static str {
        match self {
            Self::V2 => "cgroup.freeze",
            Self::V1 => "freezer.state",
        }
    }

    /// The file the kernel reports the state in.
    pub fn state_file(self) -> &'static str {
        match self {
            Self::V2 => "cgroup.events",
            Self::V1 => "freezer.state",
        }
    }

    /// What is written to `control_file` to freeze (`true`) or thaw.
    pub fn value(self, frozen: bool) -> &'static str {
        match (self, frozen) {
            (Self::V2, true) => "1",
            (Self::V2, false) => "0",
            (Self::V1, true) => "FROZEN",
            (Self::V1, false) => "THAWED",
        }
    }

    /// Where the hierarchy holding the freezer is: the root on v2, the freezer
    /// controller's mount on v1.
    pub fn hierarchy(self, root: &Path) -> PathBuf {
        match self {
            Self::V2 => root.to_owned(),
            Self::V1 => root.join("freezer"),
        }
    }

    /// The state in `text`, the content of `state_file`; `None` when it does not say.
    pub fn parse(self, text: &str) -> Option<FreezerState> {
        match self {
            Self::V2 => parse_events(text).map(|frozen| {
                if frozen {
                    FreezerState::Frozen
                } else {
                    FreezerState::Thawed
                }
            }),
            Self::V1 => parse_v1_state(text),
        }
    }
}

/// The `frozen` key of a v2 `cgroup.events` (`populated 1\nfrozen 0\n`); `None` when the
/// key is missing or not 0/1 (a kernel before 5.2 has no freezer).
pub fn parse_events(text: &str) -> Option<bool> {
    text.lines()
        .find_map(|line| line.strip_prefix("frozen "))
        .and_then(|v| match v.trim() {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        })
}

/// A v1 `freezer.state`.
pub fn parse_v1_state(text: &str) -> Option<FreezerState> {
    match text.trim() {
        "THAWED" => Some(FreezerState::Thawed),
        "FREEZING" => Some(FreezerState::Freezing),
        "FROZEN" => Some(FreezerState::Frozen),
        _ => None,
    }
}

/// Why a pod could not be frozen or thawed.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error(transparent)]
    Io(#[from] CgroupError),
    #[error("no freezer controller at {0} (cgroup v1 needs the freezer hierarchy mounted)")]
    NoFreezer(PathBuf),
    #[error("pod cgroup {0} does not exist")]
    NoCgroup(PathBuf),
    #[error("{path}: unexpected content {content:?}")]
    Unreadable { path: PathBuf, content: String },
    #[error("{path} still says {state:?} after {waited:?} waiting for the pod to be {want}{undo}")]
    Stuck {
        path: PathBuf,
        want: &'static str,
        state: String,
        waited: Duration,
        /// What was done about it (a failed freeze is thawed again).
        undo: String,
    },
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError {
        path: path.to_owned(),
        action: "read",
        source,
    })
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError {
        path: path.to_owned(),
        action: "write",
        source,
    })
}

impl PodCgroups {
    fn freezer(&self) -> FreezerKind {
        FreezerKind::of(self.unified())
    }

    /// Freezes (`frozen`) or thaws the pod cgroup `relative` and waits, at most `timeout`,
    /// until the kernel reports it done. Idempotent. A freeze that does not complete is
    /// thawed again before the error returns. Blocking (short sleeps between looks).
    pub fn set_frozen(
        &self,
        relative: &str,
        frozen: bool,
        timeout: Duration,
    ) -> Result<(), FreezeError> {
        let kind = self.freezer();
        let hierarchy = kind.hierarchy(self.root());
        if kind == FreezerKind::V1 && !hierarchy.is_dir() {
            return Err(FreezeError::NoFreezer(hierarchy));
        }
        let dir = hierarchy.join(relative);
        if !dir.is_dir() {
            if !frozen {
                // Nothing there, so nothing is frozen.
                return Ok(());
            }
            match kind {
                // runc makes the pod's freezer cgroup with its first container; one made
                // now keeps containers started later frozen too, and goes with the pod.
                FreezerKind::V1 => std::fs::create_dir_all(&dir).map_err(|source| CgroupError {
                    path: dir.clone(),
                    action: "create",
                    source,
                })?,
                FreezerKind::V2 => return Err(FreezeError::NoCgroup(dir)),
            }
        }
        match wait_for(kind, &dir, frozen, timeout) {
            Err(FreezeError::Stuck {
                path,
                want,
                state,
                waited,
                ..
            }) if frozen => {
                let undo = match wait_for(kind, &dir, false, timeout) {
                    Ok(()) => "; thawed again".to_owned(),
                    Err(e) => format!("; thawing it again failed too: {e}"),
                };
                Err(FreezeError::Stuck {
                    path,
                    want,
                    state,
                    waited,
                    undo,
                })
            }
            done => done,
        }
    }

    /// Whether the cgroup `relative` exists in the hierarchy that holds the freezer.
    pub fn in_freezer(&self, relative: &str) -> bool {
        self.freezer()
            .hierarchy(self.root())
            .join(relative)
            .is_dir()
    }

    /// Whether the pod cgroup `relative` is frozen now, as the kernel says (`false` when
    /// it does not exist, or while a v1 freeze is still under way).
    pub fn frozen(&self, relative: &str) -> Result<bool, FreezeError> {
        let kind = self.freezer();
        let path = kind
            .hierarchy(self.root())
            .join(relative)
            .join(kind.state_file());
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(CgroupError {
                    path,
                    action: "read",
                    source,
                }
                .into());
            }
        };
        match kind.parse(&text) {
            Some(state) => Ok(state == FreezerState::Frozen),
            None => Err(FreezeError::Unreadable {
                path,
                content: text,
            }),
        }
    }

    /// Whether the pod cgroup `relative` is certainly thawed: no freezer or no cgroup, or
    /// the kernel says thawed and (v2) no freeze is asked for. A freeze under way
    /// (`FREEZING`, or a `cgroup.freeze` of 1 not yet reported) or a state that cannot be
    /// read is not: a pod about to be stopped is thawed unless this says so.
    pub fn thawed(&self, relative: &str) -> bool {
        let kind = self.freezer();
        let dir = kind.hierarchy(self.root()).join(relative);
        let read = |file: &str| std::fs::read_to_string(dir.join(file));
        match kind {
            FreezerKind::V1 => match read("freezer.state") {
                Ok(text) => parse_v1_state(&text) == Some(FreezerState::Thawed),
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            },
            FreezerKind::V2 => {
                let asked = match read("cgroup.freeze") {
                    Ok(text) => text.trim() != "0",
                    Err(e) => e.kind() != std::io::ErrorKind::NotFound,
                };
                let reported = match read("cgroup.events") {
                    Ok(text) => parse_events(&text) != Some(false),
                    Err(e) => e.kind() != std::io::ErrorKind::NotFound,
                };
                !asked && !reported
            }
        }
    }
}

/// Writes the value, then looks at the state until it is reached or `timeout` passes.
/// The value is written again at each look: on v1 that takes in tasks forked into the
/// cgroup while it was freezing (what runc does too); for a reached state it is a no-op.
fn wait_for(
    kind: FreezerKind,
    dir: &Path,
    frozen: bool,
    timeout: Duration,
) -> Result<(), FreezeError> {
    let control = dir.join(kind.control_file());
    let state_path = dir.join(kind.state_file());
    let want = if frozen {
        FreezerState::Frozen
    } else {
        FreezerState::Thawed
    };
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        write(&control, kind.value(frozen))?;
        let text = read(&state_path)?;
        let state = kind.parse(&text).ok_or_else(|| FreezeError::Unreadable {
            path: state_path.clone(),
            content: text.clone(),
        })?;
        if state == want {
            return Ok(());
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(FreezeError::Stuck {
                path: state_path,
                want: if frozen { "frozen" } else { "thawed" },
                state: match kind {
                    FreezerKind::V2 => text
                        .lines()
                        .find(|l| l.starts_with("frozen "))
                        .unwrap_or_default()
                        .to_owned(),
                    FreezerKind::V1 => text.trim().to_owned(),
                },
                waited,
                undo: String::new(),
            });
        }
        std::thread::sleep(pause.min(timeout.saturating_sub(waited)));
        pause = (pause * 2).min(POLL_MAX);
    }
}

#[cfg(test)]
mod tests {
    //! cgroup v2 here is a fake cgroupfs: plain files where the kernel's part (updating
    //! `cgroup.events`) is played by the test. It checks which files are written with what
    //! and how the state is parsed, not the kernel; v1 and v2 are exercised against the
    //! real kernel in `tests/freezer_live.rs`.
    use super::*;

    #[test]
    fn events_parsing() {
        assert_eq!(parse_events("populated 1\nfrozen 1\n"), Some(true));
        assert_eq!(parse_events("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(parse_events("frozen 1"), Some(true));
        assert_eq!(
            parse_events("populated 1\n"),
            None,
            "no freezer (kernel < 5.2)"
        );
        assert_eq!(parse_events("frozen 2\n"), None);
        assert_eq!(parse_events("unfrozen 1\n"), None);
    }

    #[test]
    fn v1_state_parsing() {
        assert_eq!(parse_v1_state("THAWED\n"), Some(FreezerState::Thawed));
        assert_eq!(parse_v1_state("FREEZING\n"), Some(FreezerState::Freezing));
        assert_eq!(parse_v1_state("FROZEN\n"), Some(FreezerState::Frozen));
        assert_eq!(parse_v1_state("frozen"), None);
        assert_eq!(parse_v1_state(""), None);
    }

    #[test]
    fn files_and_values_per_version() {
        let v2 = FreezerKind::of(true);
        assert_eq!(v2, FreezerKind::V2);
        assert_eq!(
            (v2.control_file(), v2.state_file()),
            ("cgroup.freeze", "cgroup.events")
        );
        assert_eq!((v2.value(true), v2.value(false)), ("1", "0"));
        assert_eq!(
            v2.hierarchy(Path::new("/sys/fs/cgroup")),
            Path::new("/sys/fs/cgroup")
        );
        let v1 = FreezerKind::of(false);
        assert_eq!(v1, FreezerKind::V1);
        assert_eq!(
            (v1.control_file(), v1.state_file()),
            ("freezer.state", "freezer.state")
        );
        assert_eq!((v1.value(true), v1.value(false)), ("FROZEN", "THAWED"));
        assert_eq!(
            v1.hierarchy(Path::new("/sys/fs/cgroup")),
            Path::new("/sys/fs/cgroup/freezer")
        );
        assert_eq!(v1.parse("FREEZING"), Some(FreezerState::Freezing));
        assert_eq!(
            v2.parse("populated 1\nfrozen 1\n"),
            Some(FreezerState::Frozen)
        );
    }

    fn fake_v2() -> (tempfile::TempDir, PodCgroups, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        let pod = root.path().join("kubepods/burstable/podu1");
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::write(pod.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let cg = PodCgroups::new(root.path());
        (root, cg, pod)
    }

    #[test]
    fn v2_fake_freeze_waits_for_the_events_file() {
        let (_root, cg, pod) = fake_v2();
        assert!(!cg.frozen("kubepods/burstable/podu1").unwrap());
        // The "kernel": reports frozen once cgroup.freeze says 1, a little later.
        let events = pod.join("cgroup.events");
        let control = pod.join("cgroup.freeze");
        let kernel = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if std::fs::read_to_string(&control).is_ok_and(|v| v == "1") {
                    std::thread::sleep(Duration::from_millis(30));
                    std::fs::write(&events, "populated 1\nfrozen 1\n").unwrap();
                    return true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            false
        });
        let started = Instant::now();
        cg.set_frozen("kubepods/burstable/podu1", true, Duration::from_secs(5))
            .unwrap();
        assert!(kernel.join().unwrap());
        assert!(
            started.elapsed() >= Duration::from_millis(30),
            "returned before the events file said frozen"
        );
        assert!(cg.frozen("kubepods/burstable/podu1").unwrap());
        // Idempotent.
        cg.set_frozen("kubepods/burstable/podu1", true, Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(pod.join("cgroup.freeze")).unwrap(),
            "1"
        );
        std::fs::write(pod.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        cg.set_frozen("kubepods/burstable/podu1", false, Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(pod.join("cgroup.freeze")).unwrap(),
            "0"
        );
        assert!(!cg.frozen("kubepods/burstable/podu1").unwrap());
    }

    #[test]
    fn v2_fake_stuck_freeze_is_thawed_and_named() {
        let (_root, cg, pod) = fake_v2();
        let started = Instant::now();
        let err = cg
            .set_frozen("kubepods/burstable/podu1", true, Duration::from_millis(100))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        let text = err.to_string();
        assert!(
            text.contains(&pod.join("cgroup.events").display().to_string())
                && text.contains("\"frozen 0\"")
                && text.contains("waiting for the pod to be frozen")
                && text.contains("thawed again"),
            "{text}"
        );
        assert_eq!(
            std::fs::read_to_string(pod.join("cgroup.freeze")).unwrap(),
            "0",
            "a failed freeze is undone"
        );
        assert!(cg.thawed("kubepods/burstable/podu1"));
    }

    #[test]
    fn v2_fake_missing_cgroup_and_bad_content() {
        let (_root, cg, pod) = fake_v2();
        let err = cg
            .set_frozen("kubepods/burstable/podu9", true, Duration::from_millis(50))
            .unwrap_err();
        assert!(matches!(err, FreezeError::NoCgroup(_)), "{err}");
        // Thawing what is not there is done already.
        cg.set_frozen("kubepods/burstable/podu9", false, Duration::from_millis(50))
            .unwrap();
        assert!(!cg.frozen("kubepods/burstable/podu9").unwrap());
        std::fs::write(pod.join("cgroup.events"), "populated 1\n").unwrap();
        let err = cg
            .set_frozen("kubepods/burstable/podu1", true, Duration::from_millis(50))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("unexpected content \"populated 1\\n\""),
            "{err}"
        );
        assert!(cg.frozen("kubepods/burstable/podu1").is_err());
    }

    #[test]
    fn thawed_only_when_certain() {
        let (_root, cg, pod) = fake_v2();
        let rel = "kubepods/burstable/podu1";
        assert!(cg.thawed("kubepods/burstable/podu9"), "no cgroup");
        assert!(cg.thawed(rel), "no cgroup.freeze written, frozen 0");
        std::fs::write(pod.join("cgroup.freeze"), "1").unwrap();
        assert!(!cg.thawed(rel), "a freeze asked for, not reported yet");
        std::fs::write(pod.join("cgroup.freeze"), "0").unwrap();
        std::fs::write(pod.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        assert!(
            !cg.thawed(rel),
            "frozen (an ancestor, or a thaw not done yet)"
        );
        std::fs::write(pod.join("cgroup.events"), "populated 1\n").unwrap();
        assert!(!cg.thawed(rel), "unreadable");

        let root = tempfile::tempdir().unwrap();
        let cg = PodCgroups::new(root.path());
        assert!(cg.thawed("kubepods/podu1"), "no freezer hierarchy");
        let dir = root.path().join("freezer/kubepods/podu1");
        std::fs::create_dir_all(&dir).unwrap();
        for (state, thawed) in [
            ("THAWED\n", true),
            ("FREEZING\n", false),
            ("FROZEN\n", false),
            ("?", false),
        ] {
            std::fs::write(dir.join("freezer.state"), state).unwrap();
            assert_eq!(cg.thawed("kubepods/podu1"), thawed, "{state}");
        }
    }

    #[test]
    fn v1_fake_layout() {
        let root = tempfile::tempdir().unwrap();
        let cg = PodCgroups::new(root.path());
        let err = cg
            .set_frozen("kubepods/podu1", true, Duration::from_millis(50))
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "no freezer controller at {}/freezer",
                root.path().display()
            )),
            "{err}"
        );
        std::fs::create_dir(root.path().join("freezer")).unwrap();
        // A plain file reads back what was written: the v1 kernel's FROZEN at once.
        cg.set_frozen("kubepods/podu1", true, Duration::from_millis(50))
            .unwrap();
        let state = root.path().join("freezer/kubepods/podu1/freezer.state");
        assert_eq!(std::fs::read_to_string(&state).unwrap(), "FROZEN");
        assert!(cg.frozen("kubepods/podu1").unwrap());
        std::fs::write(&state, "FREEZING\n").unwrap();
        assert!(
            !cg.frozen("kubepods/podu1").unwrap(),
            "FREEZING is not frozen yet"
        );
        cg.set_frozen("kubepods/podu1", false, Duration::from_millis(50))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&state).unwrap(), "THAWED");
        assert!(!cg.frozen("kubepods/podu1").unwrap());
    }
}
