//! Running a checkpoint hook and knowing when the checkpoint is finished. The whole hook,
//! waiting included, is bounded by the caller's timeout; a hook that fails or runs past
//! it fails the stage with the reason.
//!
//! How "finished" is known:
//! - **signal**: before sending, the agent notes the marker file [`DONE_MARKER`] in the
//!   container's checkpoint directory (inode, mtime, ctime; or that there is none). After
//!   sending, it checks every [`POLL`]; the checkpoint is finished when the marker exists
//!   and is not the file noted before (a new file, or the same file touched again).
//!   Comparing with the noted file instead of the clock avoids coarse file timestamps
//!   (a jiffy) and clock steps. If the process is gone before the marker appears, the
//!   hook fails at once. The marker is never staged.
//! - **exec**: the command exits with status 0 (it is expected to return once the
//!   checkpoint is written); another status fails with the status and output tail.
//! - **http**: the GET answers 2xx (the endpoint is expected to answer once the
//!   checkpoint is written); anything else fails with the status and the start of the body.

use super::hook::{DONE_MARKER, Hook};
use super::manifest::HookRecord;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// How often the signal hook looks for the marker.
pub const POLL: Duration = Duration::from_millis(20);
/// Most bytes of an exec's output or an HTTP body quoted in a failure.
pub const MAX_QUOTE: usize = 512;

/// How an exec'd command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when it did not exit normally (killed).
    pub exit_code: Option<i32>,
    /// Its output (stdout then stderr), or the tail of it.
    pub output: String,
}

/// Runs a command in the container; the agent implements it with containerd's task exec,
/// tests with a process on the host. The future is dropped when the hook times out, so an
/// implementation should stop the process on drop where it can.
pub trait ContainerExec: Send + Sync {
    fn exec<'a>(
        &'a self,
        argv: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<ExecOutput, String>> + Send + 'a>>;
}

/// What a hook needs from the container.
#[derive(Clone, Copy, Default)]
pub struct HookTarget<'a> {
    /// The main process (host pid namespace), for signal hooks.
    pub pid: Option<u32>,
    /// How to run a command in the container, for exec hooks.
    pub exec: Option<&'a dyn ContainerExec>,
}

/// A hook that did not finish; goes into the stage's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint hook {hook} failed after {elapsed:.2?}: {reason}")]
pub struct HookFailure {
    pub hook: String,
    pub reason: String,
    pub elapsed: Duration,
}

/// Runs `hook` against the container whose checkpoint directory (host path) is `dir`,
/// waiting at most `timeout` for it to finish.
pub async fn run(
    hook: &Hook,
    target: HookTarget<'_>,
    dir: &Path,
    timeout: Duration,
) -> Result<HookRecord, HookFailure> {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, fire(hook, target, dir)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "not finished within {}",
            humantime::format_duration(timeout)
        )),
    };
    let elapsed = started.elapsed();
    match outcome {
        Ok(detail) => Ok(HookRecord {
            spec: Some(hook.to_string()),
            outcome: "done".into(),
            detail,
            elapsed_nanos: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        }),
        Err(reason) => Err(HookFailure {
            hook: hook.to_string(),
            reason,
            elapsed,
        }),
    }
}

/// Runs the hook to completion; `Ok` says how "finished" was known.
async fn fire(hook: &Hook, target: HookTarget<'_>, dir: &Path) -> Result<String, String> {
    match hook {
        Hook::Signal { name, signal } => {
            let pid = target
                .pid
                .ok_or("the container has no running main process to signal")?;
            let pid_t = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
                .ok_or_else(|| format!("pid {pid} is not a process id"))?;
            let marker = dir.join(DONE_MARKER);
            let before = stamp(&marker);
            rustix::process::kill_process(pid_t, *signal)
                .map_err(|e| format!("sending {name} to pid {pid}: {e}"))?;
            loop {
                let now = stamp(&marker);
                if now.is_some() && now != before {
                    return Ok(format!("{DONE_MARKER} written after {name}"));
                }
                if rustix::process::test_kill_process(pid_t) == Err(rustix::io::Errno::SRCH) {
                    return Err(format!(
                        "pid {pid} exited after {name} without writing {}",
                        marker.display()
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Hook::Exec { argv, .. } => {
            let exec = target
                .exec
                .ok_or("no way to run a command in the container")?;
            let out = exec.exec(argv).await?;
            match out.exit_code {
                Some(0) => Ok("exit status 0".into()),
                Some(code) => Err(format!("exit status {code}: {}", tail(&out.output))),
                None => Err(format!("killed by a signal: {}", tail(&out.output))),
            }
        }
        Hook::Http { port, path } => get(*port, path).await,
    }
}

/// What identifies one version of the marker file.
type Stamp = (u64, u64, i64, i64, i64, i64);

fn stamp(marker: &Path) -> Option<Stamp> {
    std::fs::symlink_metadata(marker).ok().map(|m| {
        (
            m.dev(),
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        )
    })
}

/// The last [`MAX_QUOTE`] bytes of `text` (at a character boundary), trimmed.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(MAX_QUOTE);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim()
}

async fn get(port: u16, path: &str) -> Result<String, String> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let fail = |why: String| format!("GET {url}: {why}");
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, format!("127.0.0.1:{port}"))
        .header(hyper::header::USER_AGENT, "aistor-agent")
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let call = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_QUOTE)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        if status.is_success() {
            Ok(format!("HTTP {status}"))
        } else {
            Err(format!("HTTP {status}: {}", body.trim()))
        }
    };
    // The connection is driven alongside the call; its errors reach the call too.
    let drive = async {
        let _ = connection.await;
        std::future::pending::<()>().await;
    };
    tokio::select! {
        result = call => result.map_err(fail),
        () = drive => Err(fail("connection ended".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(tail("  short \n"), "short");
        let long = format!("{}{}", "a".repeat(10), "b".repeat(MAX_QUOTE));
        assert_eq!(tail(&long), "b".repeat(MAX_QUOTE));
        let wide = format!("x{}", "é".repeat(MAX_QUOTE));
        let t = tail(&wide);
        assert!(t.len() <= MAX_QUOTE && t.chars().all(|c| c == 'é'));
    }
}
