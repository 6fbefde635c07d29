//! `aistorctl top`: live views until Ctrl-C (or `--frames N`).
//!
//! - `nodes`: fed by the `WatchNodes` stream, redrawn on changes.
//! - `gpus`: the same stream as `nodes`, drawn as the `gpus` table.
//! - `pods`: there is no pod watch, so `ListPods` is polled every `--interval`.
//!
//! Both draw frames the same way ([`Screen`]): on a terminal the screen is cleared
//! before each frame; otherwise frames are appended, separated by a blank line, so
//! the output of `--frames N` can be read back. When the coordinator cannot be
//! reached the last table stays under an error line while [`Backoff`] spaces the
//! retries. A refused token (`UNAUTHENTICATED`, `PERMISSION_DENIED`) is not retried:
//! the view ends with that error, as `kubectl get -w` does.

pub(crate) mod autoscalers;
pub(crate) mod gpus;
pub(crate) mod nodes;
pub(crate) mod pods;

use std::io::Write;
use std::time::Duration;

use super::error::CliError;

const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

/// Reconnection delays: 0.5s, 1s, 2s, 4s, then 5s; back to 0.5s once data flows.
#[derive(Debug)]
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(5);

    pub(super) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    pub(super) fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub(super) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Where frames go, and how many have gone there.
pub(super) struct Screen {
    terminal: bool,
    frames: Option<u64>,
    drawn: u64,
}

impl Screen {
    pub(super) fn new(terminal: bool, frames: Option<u64>) -> Self {
        Self {
            terminal,
            frames,
            drawn: 0,
        }
    }

    /// Whether frames go to a terminal (cleared between frames).
    pub(super) fn terminal(&self) -> bool {
        self.terminal
    }

    /// Writes one frame; `true` when it was the last one `--frames` asked for.
    pub(super) fn draw(
        &mut self,
        out: &mut (impl Write + Send),
        frame: &str,
    ) -> Result<bool, CliError> {
        let mut text = String::new();
        if self.terminal {
            text.push_str(CLEAR_SCREEN);
        } else if self.drawn > 0 {
            text.push('\n');
        }
        text.push_str(frame);
        out.write_all(text.as_bytes())?;
        out.flush()?;
        self.drawn += 1;
        Ok(self.frames.is_some_and(|n| self.drawn >= n))
    }
}

/// Completes on Ctrl-C. Where no signal handler can be installed it never
/// completes: the view runs on until `--frames` or a kill.
pub(super) async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..6).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(500));
    }

    #[test]
    fn frames_are_separated_off_a_terminal_and_cleared_on_one() {
        let mut out = Vec::new();
        let mut screen = Screen::new(false, Some(2));
        assert!(!screen.draw(&mut out, "a\n").unwrap());
        assert!(
            screen.draw(&mut out, "b\n").unwrap(),
            "the second of 2 frames"
        );
        assert_eq!(String::from_utf8(out).unwrap(), "a\n\nb\n");

        let mut out = Vec::new();
        let mut screen = Screen::new(true, None);
        assert!(!screen.draw(&mut out, "a\n").unwrap());
        assert!(
            !screen.draw(&mut out, "b\n").unwrap(),
            "no --frames: never done"
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{CLEAR_SCREEN}a\n{CLEAR_SCREEN}b\n")
        );
    }
}
