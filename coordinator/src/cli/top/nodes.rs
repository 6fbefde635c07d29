//! `aistorctl top nodes`: a live table fed by `ClusterService.WatchNodes`.
//!
//! The coordinator sends every node once (`KIND_EXISTING`), then each change
//! (`KIND_UPDATED`). The table is redrawn at most once per `--interval`; the first
//! frame after (re)subscribing waits until the initial listing has settled, so it
//! does not flash a partial table. When the stream ends or fails, the last table
//! stays on screen under an error line while the watch is re-established with a
//! short backoff. Ctrl-C exits 0; `--frames N` exits 0 after N frames.
//!
//! [`watch`] is that loop with the drawing left to its caller: `top gpus` (see
//! `gpus`) draws the same stream as a GPU table.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::time::Duration;

use aistor_proto::v1::{NodeEvent, NodeStatus, WatchNodesRequest, node_event};
use futures::StreamExt;
use tokio::time::Instant;
use tonic::Streaming;

use super::{Backoff, Screen, interrupted};
use crate::cli::args::TopNodesArgs;
use crate::cli::client::{self, Server};
use crate::cli::error::CliError;
use crate::cli::render;

/// Quiet time after a `KIND_EXISTING` event before the first frame is drawn.
const SETTLE: Duration = Duration::from_millis(50);
/// The first frame is drawn at the latest this long after subscribing, however
/// long the initial listing takes.
const MAX_SETTLE: Duration = Duration::from_secs(1);
/// On a terminal the table is redrawn at least this often (AGE keeps counting).
const TERMINAL_REFRESH: Duration = Duration::from_secs(1);

/// What `top` shows: the latest status of every node and the current error, if any.
#[derive(Debug, Default)]
pub(crate) struct TopView {
    nodes: BTreeMap<String, NodeStatus>,
    error: Option<String>,
    /// Whether a watch was ever established (before that there is no table to show).
    listed: bool,
}

impl TopView {
    /// A fresh subscription: its listing replaces everything known so far.
    fn subscribed(&mut self) {
        self.nodes.clear();
        self.error = None;
        self.listed = true;
    }

    fn apply(&mut self, event: NodeEvent) {
        let Some(node) = event.node else { return };
        if event.kind == node_event::Kind::Deleted as i32 {
            self.nodes.remove(&node.name);
        } else {
            self.nodes.insert(node.name.clone(), node);
        }
    }

    /// One frame: the error line, if any, above what `draw` makes of the nodes
    /// (sorted by name).
    pub(crate) fn frame(&self, draw: impl Fn(&[&NodeStatus]) -> String) -> String {
        let mut text = String::new();
        if let Some(error) = &self.error {
            text.push_str(error);
            text.push('\n');
        }
        if self.listed {
            let nodes: Vec<&NodeStatus> = self.nodes.values().collect();
            text.push_str(&draw(&nodes));
        }
        text
    }
}

type Subscribing = Pin<Box<dyn Future<Output = Result<Streaming<NodeEvent>, CliError>> + Send>>;

/// The connection to the coordinator: on its way up (after a delay), or watching.
enum Link {
    Subscribing(Subscribing),
    Watching(Box<Streaming<NodeEvent>>),
}

enum Step {
    Subscribed(Box<Streaming<NodeEvent>>),
    SubscribeFailed(CliError),
    Event(Box<NodeEvent>),
    Ended,
    Failed(tonic::Status),
}

fn subscribe(url: Server, delay: Duration) -> Link {
    Link::Subscribing(Box::pin(async move {
        tokio::time::sleep(delay).await;
        let mut client = client::connect(&url).await?;
        let response = client
            .watch_nodes(WatchNodesRequest {})
            .await
            .map_err(|s| CliError::from_status(&url, "WatchNodes", &s))?;
        Ok(response.into_inner())
    }))
}

/// Waits for the link's next happening. Cancel-safe: a pending subscription is
/// kept in the link and resumed, and a stream's `next` loses nothing when dropped.
async fn step(link: &mut Link) -> Step {
    match link {
        Link::Subscribing(subscribing) => match subscribing.as_mut().await {
            Ok(stream) => Step::Subscribed(Box::new(stream)),
            Err(e) => Step::SubscribeFailed(e),
        },
        Link::Watching(stream) => match stream.next().await {
            Some(Ok(event)) => Step::Event(Box::new(event)),
            Some(Err(status)) => Step::Failed(status),
            None => Step::Ended,
        },
    }
}

/// When the next frame is due: owed frames wait for `--interval` since the last
/// one; on a terminal an unchanged table is still refreshed now and then.
fn next_draw(
    owed: Option<Instant>,
    last_draw: Option<Instant>,
    terminal: bool,
    interval: Duration,
) -> Option<Instant> {
    match owed {
        Some(at) => Some(last_draw.map_or(at, |last| at.max(last + interval))),
        None if terminal => last_draw.map(|last| last + interval.max(TERMINAL_REFRESH)),
        None => None,
    }
}

/// Owes a frame no later than `at`.
fn owe_by(owed: &mut Option<Instant>, at: Instant) {
    *owed = Some(owed.map_or(at, |o| o.min(at)));
}

pub(crate) async fn run(
    url: &Server,
    args: &TopNodesArgs,
    terminal: bool,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    // `table` says so when there are no nodes.
    let draw = |nodes: &[&NodeStatus], now| render::table(nodes, false, now);
    let screen = Screen::new(terminal, args.frames);
    watch(url, args.interval, screen, out, draw).await
}

/// Follows `WatchNodes` at `url`, drawing each frame with `draw(nodes, now)`
/// (nodes sorted by name, `now` the wall clock in Unix nanoseconds) at most once
/// per `interval`, until Ctrl-C or the screen's last frame.
pub(super) async fn watch(
    url: &Server,
    interval: Duration,
    mut screen: Screen,
    out: &mut (impl Write + Send),
    draw: impl Fn(&[&NodeStatus], u64) -> String,
) -> Result<(), CliError> {
    let terminal = screen.terminal();
    let mut view = TopView::default();
    let mut link = subscribe(url.clone(), Duration::ZERO);
    let mut backoff = Backoff::new();
    let mut owed: Option<Instant> = None;
    let mut last_draw: Option<Instant> = None;
    // Set while the initial listing of a subscription is arriving.
    let mut listing_since: Option<Instant> = None;

    let interrupted = interrupted();
    tokio::pin!(interrupted);

    loop {
        let draw_at = next_draw(owed, last_draw, terminal, interval);
        let far = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            biased;
            () = &mut interrupted => return Ok(()),
            () = tokio::time::sleep_until(draw_at.unwrap_or(far)), if draw_at.is_some() => {
                let now = crate::cli::now_unix_nanos();
                let done = screen.draw(out, &view.frame(|nodes| draw(nodes, now)))?;
                last_draw = Some(Instant::now());
                owed = None;
                listing_since = None;
                if done {
                    return Ok(());
                }
            },
            step = step(&mut link) => {
                let now = Instant::now();
                match step {
                    Step::Subscribed(stream) => {
                        link = Link::Watching(stream);
                        view.subscribed();
                        listing_since = Some(now);
                        // Wait for the listing (it ends with KIND_SYNCED, or goes quiet):
                        // on a busy machine its first event can come later than SETTLE,
                        // and an empty table drawn before it would be a lie.
                        owe_by(&mut owed, now + MAX_SETTLE);
                    }
                    Step::Event(event) => {
                        backoff.reset();
                        let existing = event.kind == node_event::Kind::Existing as i32;
                        view.apply(*event);
                        match listing_since {
                            // Still listing: the frame waits until the listing goes quiet
                            // (never past MAX_SETTLE after subscribing).
                            Some(since) if existing => {
                                owed = Some((now + SETTLE).min(since + MAX_SETTLE));
                            }
                            // The listing is complete (KIND_SYNCED from a coordinator that
                            // marks it; an update from one that does not): draw now.
                            _ => {
                                listing_since = None;
                                owe_by(&mut owed, now);
                            }
                        }
                    }
                    // Retrying with the same token cannot help: stop, as kubectl does.
                    Step::SubscribeFailed(err) if err.is_about_the_token() => return Err(err),
                    Step::Failed(status)
                        if matches!(
                            status.code(),
                            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                        ) =>
                    {
                        return Err(CliError::from_status(url, "WatchNodes", &status));
                    }
                    Step::SubscribeFailed(err) => {
                        let delay = backoff.next();
                        view.error = Some(format!(
                            "error: {err} (retrying in {})",
                            humantime::format_duration(delay)
                        ));
                        link = subscribe(url.clone(), delay);
                        owe_by(&mut owed, now);
                    }
                    Step::Ended | Step::Failed(_) => {
                        let delay = backoff.next();
                        let why = match step {
                            Step::Failed(status) => {
                                format!("failed: {:?}: {}", status.code(), status.message())
                            }
                            _ => "was closed by the coordinator".to_owned(),
                        };
                        view.error = Some(format!(
                            "error: watch stream from {url} {why}; reconnecting in {}",
                            humantime::format_duration(delay)
                        ));
                        link = subscribe(url.clone(), delay);
                        owe_by(&mut owed, now);
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render::NO_NODES;
    use aistor_proto::v1::NodeState;

    fn table(view: &TopView) -> String {
        view.frame(|nodes| render::table(nodes, false, 0))
    }

    fn event(kind: node_event::Kind, name: &str, state: NodeState) -> NodeEvent {
        NodeEvent {
            kind: kind as i32,
            node: Some(NodeStatus {
                name: name.to_owned(),
                state: state as i32,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn events_replace_a_node_and_the_error_sits_above_the_table() {
        let mut view = TopView::default();
        assert_eq!(table(&view), "", "nothing to show before the first listing");
        view.subscribed();
        assert_eq!(table(&view), NO_NODES);
        view.apply(event(node_event::Kind::Existing, "b", NodeState::Ready));
        view.apply(event(node_event::Kind::Existing, "a", NodeState::Ready));
        view.apply(event(node_event::Kind::Updated, "b", NodeState::Stale));
        view.error = Some("error: gone".to_owned());
        let frame = table(&view);
        let lines: Vec<&str> = frame.lines().collect();
        assert_eq!(lines[0], "error: gone");
        assert!(lines[1].starts_with("NAME   STATUS   CPU"), "{frame}");
        assert!(lines[2].starts_with("a      Ready    <unknown>"), "{frame}");
        assert!(lines[3].starts_with("b      Stale    <unknown>"), "{frame}");
        assert_eq!(lines.len(), 4);

        view.apply(event(
            node_event::Kind::Deleted,
            "a",
            NodeState::Unspecified,
        ));
        assert_eq!(
            table(&view).lines().count(),
            3,
            "a forgotten node leaves the table"
        );
        assert!(!table(&view).contains("\na "));

        view.subscribed();
        assert_eq!(table(&view), NO_NODES, "a new subscription starts afresh");
    }

    #[test]
    fn frames_are_throttled_to_the_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        // Nothing owed and not a terminal: no frame.
        assert_eq!(next_draw(None, Some(t0), false, 2 * s), None);
        // Owed before the interval has passed: waits for it.
        assert_eq!(
            next_draw(Some(t0 + s), Some(t0), false, 2 * s),
            Some(t0 + 2 * s)
        );
        // Owed after: drawn when owed.
        assert_eq!(
            next_draw(Some(t0 + 3 * s), Some(t0), false, 2 * s),
            Some(t0 + 3 * s)
        );
        // First frame: when owed.
        assert_eq!(next_draw(Some(t0), None, false, 2 * s), Some(t0));
        // A terminal refreshes an unchanged table, at least a second apart.
        assert_eq!(next_draw(None, Some(t0), true, 2 * s), Some(t0 + 2 * s));
        assert_eq!(
            next_draw(None, Some(t0), true, Duration::ZERO),
            Some(t0 + s)
        );
    }
}
