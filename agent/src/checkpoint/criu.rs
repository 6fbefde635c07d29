//! Whether CRIU works on this node: `criu --version` and `criu check`, run once at agent
//! start. The reason is what criu itself said (its first error lines), because the causes
//! are specific: a kernel whose vDSO layout the installed CRIU does not know ("Unexpected
//! rt vDSO area bounds", criu#2532), missing kernel options, no root. Reading the output
//! is pure ([`parse_version`], [`assess`]); [`probe`] only runs the processes.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// What the agent reports about CRIU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriuCapability {
    pub available: bool,
    /// From `criu --version`, e.g. "3.17.1"; `None` when it could not be read.
    pub version: Option<String>,
    /// Why it is (not) available, in criu's words where it said something.
    pub reason: String,
}

/// How `criu check` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckRun {
    /// It exited: its status (`None` if killed by a signal) and its output.
    Exited {
        code: Option<i32>,
        stdout: String,
        stderr: String,
    },
    /// It could not be started (absent binary, no permission).
    NotStarted(String),
    /// It ran past the timeout and was killed.
    TimedOut(Duration),
}

/// Most lines of criu's output quoted in a reason.
pub const MAX_LINES: usize = 5;
/// Longest line quoted (longer ones are cut).
pub const MAX_LINE: usize = 200;

/// The version from `criu --version` output (`Version: 3.17.1`, then maybe `GitID: …`).
pub fn parse_version(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(|v| cut(v.trim()).to_owned())
        .filter(|v| !v.is_empty())
}

/// The capability from how `criu check` ended.
pub fn assess(version: Option<String>, check: &CheckRun) -> CriuCapability {
    let (available, reason) = match check {
        CheckRun::NotStarted(why) => (false, format!("criu cannot be run: {why}")),
        CheckRun::TimedOut(after) => (
            false,
            format!(
                "criu check did not finish within {}",
                humantime::format_duration(*after)
            ),
        ),
        CheckRun::Exited {
            code,
            stdout,
            stderr,
        } => {
            let said = quote(stdout, stderr);
            let status = match code {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".to_owned(),
            };
            match (*code == Some(0), said.is_empty()) {
                (true, true) => (true, "criu check: exit status 0".to_owned()),
                (true, false) => (true, format!("criu check: {said}")),
                (false, true) => (
                    false,
                    format!("criu check failed ({status}) and said nothing"),
                ),
                (false, false) => (false, format!("criu check failed ({status}): {said}")),
            }
        }
    };
    CriuCapability {
        available,
        version,
        reason,
    }
}

/// criu's first error lines (`Error (file:line): …`), or when there are none its first
/// lines, de-duplicated, at most [`MAX_LINES`], joined with "; ".
pub(crate) fn quote(stdout: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .map(|l| untimed(l.trim()))
        .filter(|l| !l.is_empty())
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("Error"))
        .collect();
    let chosen = if errors.is_empty() { lines } else { errors };
    let mut quoted: Vec<&str> = Vec::new();
    for line in chosen.into_iter().map(cut) {
        if quoted.len() == MAX_LINES {
            break;
        }
        if !quoted.contains(&line) {
            quoted.push(line);
        }
    }
    quoted.join("; ")
}

/// A line of a CRIU log without its leading `(seconds)` stamp.
fn untimed(line: &str) -> &str {
    match line.strip_prefix('(').and_then(|l| l.split_once(") ")) {
        Some((stamp, rest)) if stamp.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            rest.trim_start()
        }
        _ => line,
    }
}

/// At most [`MAX_LINE`] bytes, cut at a character boundary.
fn cut(line: &str) -> &str {
    let mut end = line.len().min(MAX_LINE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Runs `<criu> --version` and `<criu> check`, each bounded by `timeout`, and assesses
/// them. Never fails: an absent binary is an unavailable CRIU with the reason.
pub async fn probe(criu: &Path, timeout: Duration) -> CriuCapability {
    let version = match run(criu, "--version", timeout).await {
        CheckRun::Exited { stdout, stderr, .. } => {
            parse_version(&stdout).or_else(|| parse_version(&stderr))
        }
        _ => None,
    };
    let check = run(criu, "check", timeout).await;
    assess(version, &check)
}

async fn run(criu: &Path, arg: &str, timeout: Duration) -> CheckRun {
    let child = tokio::process::Command::new(criu)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return CheckRun::NotStarted(format!("{}: {e}", criu.display())),
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => CheckRun::Exited {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Ok(Err(e)) => CheckRun::NotStarted(format!("{}: {e}", criu.display())),
        Err(_) => CheckRun::TimedOut(timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_stamps_are_dropped_only_when_they_are_stamps() {
        assert_eq!(untimed("(00.010203) Error (x.c:1): y"), "Error (x.c:1): y");
        assert_eq!(untimed("(00.1)   Error"), "Error");
        assert_eq!(untimed("(abc) Error"), "(abc) Error");
        assert_eq!(untimed("Error (x.c:1): y"), "Error (x.c:1): y");
        assert_eq!(untimed("(00.1)Error"), "(00.1)Error");
        assert_eq!(
            quote("", "(00.1) Warn: a\n(00.2) Error (v.c:3): b\n"),
            "Error (v.c:3): b"
        );
    }

    /// `criu check` of CRIU 3.17.1 on a 6.18 kernel (this machine), stderr verbatim.
    const VDSO_FAILURE: &str = "\
Error (criu/util.c:642): exited, status=1
Error (criu/util.c:642): exited, status=1
Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds
Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable
Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.
Error (criu/crtools.c:260): Could not initialize kernel features detection.
";

    fn exited(code: Option<i32>, stdout: &str, stderr: &str) -> CheckRun {
        CheckRun::Exited {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("Version: 3.17.1\n"), Some("3.17.1".into()));
        assert_eq!(
            parse_version("Version: 4.1\nGitID: v4.1-12-gabc\n"),
            Some("4.1".into())
        );
        assert_eq!(parse_version("  Version:   3.19  \n"), Some("3.19".into()));
        assert_eq!(parse_version("Version:\n"), None);
        assert_eq!(parse_version("criu: command not found"), None);
        assert_eq!(parse_version(""), None);
        let long = format!("Version: {}", "9".repeat(500));
        assert_eq!(parse_version(&long).map(|v| v.len()), Some(MAX_LINE));
    }

    #[test]
    fn vdso_failure_is_quoted() {
        let c = assess(Some("3.17.1".into()), &exited(Some(1), "", VDSO_FAILURE));
        assert!(!c.available);
        assert_eq!(c.version.as_deref(), Some("3.17.1"));
        assert_eq!(
            c.reason,
            "criu check failed (exit status 1): \
             Error (criu/util.c:642): exited, status=1; \
             Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds; \
             Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable; \
             Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.; \
             Error (criu/crtools.c:260): Could not initialize kernel features detection."
        );
    }

    #[test]
    fn error_lines_win_over_others() {
        let stderr =
            "Warn (criu/kerndat.c:1): x\nError (a.c:1): first\nnoise\nError (b.c:2): second\n";
        let c = assess(None, &exited(Some(1), "Looks bad\n", stderr));
        assert_eq!(
            c.reason,
            "criu check failed (exit status 1): Error (a.c:1): first; Error (b.c:2): second"
        );
        // without error lines, the first lines (stderr first), de-duplicated and bounded
        let c = assess(
            None,
            &exited(Some(1), "out\n", "Must be run as root\n\n  \nx\nx\n"),
        );
        assert_eq!(
            c.reason,
            "criu check failed (exit status 1): Must be run as root; x; out"
        );
        let many: String = (0..10)
            .map(|i| format!("Error (e.c:{i}): e{i}\n"))
            .collect();
        let c = assess(None, &exited(Some(1), "", &many));
        assert_eq!(c.reason.matches("Error").count(), MAX_LINES);
        assert!(c.reason.ends_with("e4"), "{}", c.reason);
    }

    #[test]
    fn success_and_other_endings() {
        let c = assess(Some("4.0".into()), &exited(Some(0), "Looks good.\n", ""));
        assert_eq!(
            c,
            CriuCapability {
                available: true,
                version: Some("4.0".into()),
                reason: "criu check: Looks good.".into()
            }
        );
        let c = assess(None, &exited(Some(0), "", ""));
        assert!(c.available);
        assert_eq!(c.reason, "criu check: exit status 0");
        let c = assess(None, &exited(None, "", ""));
        assert!(!c.available);
        assert_eq!(
            c.reason,
            "criu check failed (killed by a signal) and said nothing"
        );
        let c = assess(None, &exited(Some(2), "", ""));
        assert_eq!(
            c.reason,
            "criu check failed (exit status 2) and said nothing"
        );
        let c = assess(
            None,
            &CheckRun::NotStarted("/usr/sbin/criu: No such file".into()),
        );
        assert!(!c.available);
        assert_eq!(c.reason, "criu cannot be run: /usr/sbin/criu: No such file");
        let c = assess(None, &CheckRun::TimedOut(Duration::from_secs(10)));
        assert!(!c.available);
        assert_eq!(c.reason, "criu check did not finish within 10s");
    }

    #[test]
    fn long_lines_are_cut_at_characters() {
        let line = format!("Error {}", "é".repeat(300));
        let c = assess(None, &exited(Some(1), "", &line));
        let quoted = c
            .reason
            .trim_start_matches("criu check failed (exit status 1): ");
        assert!(
            quoted.len() <= MAX_LINE && quoted.len() >= MAX_LINE - 1,
            "{}",
            quoted.len()
        );
        // "Error: " is 7 bytes, so the limit falls inside a 2-byte character
        let line = format!("Error: {}", "é".repeat(300));
        let c = assess(None, &exited(Some(1), "", &line));
        let quoted = c
            .reason
            .trim_start_matches("criu check failed (exit status 1): ");
        assert_eq!(quoted.len(), MAX_LINE - 1);
        assert_eq!(cut(&format!("x{}", "é".repeat(150))).len(), MAX_LINE - 1);
        assert_eq!(cut("abc"), "abc");
        assert_eq!(cut(&"a".repeat(MAX_LINE + 1)).len(), MAX_LINE);
    }

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("criu");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn probe_runs_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let fake = script(
            dir.path(),
            r#"case "$1" in
  --version) echo "Version: 3.17.1";;
  check) echo "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds" >&2; exit 1;;
esac"#,
        );
        let c = probe(&fake, Duration::from_secs(10)).await;
        assert_eq!(
            c,
            CriuCapability {
                available: false,
                version: Some("3.17.1".into()),
                reason: "criu check failed (exit status 1): \
                         Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"
                    .into()
            }
        );
        // version on stderr, check passes
        let fake = script(
            dir.path(),
            r#"case "$1" in --version) echo "Version: 4.1" >&2;; check) echo "Looks good.";; esac"#,
        );
        let c = probe(&fake, Duration::from_secs(10)).await;
        assert_eq!((c.available, c.version.as_deref()), (true, Some("4.1")));

        let c = probe(&dir.path().join("absent"), Duration::from_secs(10)).await;
        assert!(!c.available);
        assert!(c.reason.starts_with("criu cannot be run: "), "{}", c.reason);
        assert!(c.reason.contains("absent"), "{}", c.reason);
        assert_eq!(c.version, None);

        let fake = script(dir.path(), "exec sleep 30");
        let started = std::time::Instant::now();
        let c = probe(&fake, Duration::from_millis(300)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(c.reason, "criu check did not finish within 300ms");
        assert_eq!(c.version, None);
    }
}
