//! `aistorctl top pods`: a live pod table. There is no pod watch stream, so
//! `ClusterService.ListPods` is polled (every page, `--chunk-size` pods each): once per `--interval` (measured from the
//! start of one call to the start of the next), and every answer is drawn. When a
//! call fails, the last table stays on screen under an error line and the call is
//! retried after a backoff (0.5s doubling to 5s) instead of the interval; the
//! connection is dialled afresh. Ctrl-C exits 0; `--frames N` exits 0 after N
//! frames.

use std::io::Write;

use aistor_proto::v1::PodStatus;
use aistor_proto::v1::cluster_service_client::ClusterServiceClient;
use tokio::time::Instant;

use super::{Backoff, Screen, interrupted};
use crate::cli::args::{PodFilter, PodSort, TopPodsArgs};
use crate::cli::client::{self, Conn, Server};
use crate::cli::error::CliError;
use crate::cli::render;

/// What `top pods` shows: the pods of the latest answer and the current error, if any.
#[derive(Debug, Default)]
pub(crate) struct PodView {
    pods: Vec<PodStatus>,
    error: Option<String>,
    /// Whether any call succeeded (before that there is no table to show).
    listed: bool,
}

impl PodView {
    /// A successful answer replaces everything known so far.
    fn listed(&mut self, pods: Vec<PodStatus>) {
        self.pods = pods;
        self.error = None;
        self.listed = true;
    }

    /// One frame: the error line, if any, above the table.
    pub(crate) fn frame(&self, sort: Option<PodSort>, filter: &PodFilter) -> String {
        let mut text = String::new();
        if let Some(error) = &self.error {
            text.push_str(error);
            text.push('\n');
        }
        if self.listed {
            let rows: Vec<_> = render::sort_pods(&self.pods, sort)
                .into_iter()
                .map(|(_, summary)| summary)
                .collect();
            text.push_str(&render::pod_table(&rows, false, filter));
        }
        text
    }
}

/// Waits until `at`, then asks for the pods, dialling first when not connected.
/// Returns when the call started, for spacing the next one.
async fn poll_at(
    at: Instant,
    url: &Server,
    connection: &mut Option<ClusterServiceClient<Conn>>,
    filter: &PodFilter,
    chunk_size: u32,
) -> (Instant, Result<Vec<PodStatus>, CliError>) {
    tokio::time::sleep_until(at).await;
    let started = Instant::now();
    let result = async {
        let c = match connection {
            Some(c) => c,
            None => connection.insert(client::connect(url).await?),
        };
        client::list_pods(c, url, filter, chunk_size).await
    }
    .await;
    (started, result)
}

pub(crate) async fn run(
    url: &Server,
    args: &TopPodsArgs,
    terminal: bool,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut view = PodView::default();
    let mut screen = Screen::new(terminal, args.frames);
    let mut backoff = Backoff::new();
    let mut connection = None;
    let mut next_poll = Instant::now();

    let interrupted = interrupted();
    tokio::pin!(interrupted);

    loop {
        let (started, result) = tokio::select! {
            biased;
            () = &mut interrupted => return Ok(()),
            polled = poll_at(next_poll, url, &mut connection, &args.filter, args.paging.chunk_size) => polled,
        };
        match result {
            Ok(pods) => {
                backoff.reset();
                view.listed(pods);
                next_poll = started + args.interval;
            }
            // Retrying with the same token cannot help: stop, as kubectl does.
            Err(err) if err.is_about_the_token() => return Err(err),
            Err(err) => {
                // Dial afresh next time: the old connection may be the problem.
                connection = None;
                let delay = backoff.next();
                view.error = Some(format!(
                    "error: {err} (retrying in {})",
                    humantime::format_duration(delay)
                ));
                next_poll = Instant::now() + delay;
            }
        }
        if screen.draw(out, &view.frame(args.sort, &args.filter))? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aistor_proto::v1::{CgroupCpu, CgroupUsage, NodeState, Pod};

    fn pod(namespace: &str, name: &str, cpu: Option<f64>) -> PodStatus {
        PodStatus {
            node: "n1".to_owned(),
            node_state: NodeState::Ready as i32,
            pod: Some(Pod {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                usage: Some(CgroupUsage {
                    cpu: Some(CgroupCpu {
                        usage_millicores: cpu,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn answers_replace_the_table_and_the_error_sits_above_it() {
        let filter = PodFilter {
            namespace: Some("ml".to_owned()),
            ..Default::default()
        };
        let mut view = PodView::default();
        assert_eq!(
            view.frame(None, &filter),
            "",
            "nothing before the first answer"
        );
        view.error = Some("error: gone (retrying in 500ms)".to_owned());
        assert_eq!(
            view.frame(None, &filter),
            "error: gone (retrying in 500ms)\n"
        );

        view.listed(vec![]);
        assert_eq!(
            view.frame(None, &filter),
            "No pods found in namespace ml.\n"
        );

        view.listed(vec![
            pod("ml", "b", Some(900.0)),
            pod("ml", "a", Some(40.0)),
        ]);
        view.error = Some("error: gone".to_owned());
        let frame = view.frame(Some(PodSort::Cpu), &filter);
        let lines: Vec<&str> = frame.lines().collect();
        assert_eq!(lines.len(), 4, "{frame}");
        assert_eq!(lines[0], "error: gone");
        assert!(
            lines[1].starts_with("NAMESPACE   NAME   NODE   CPU "),
            "{frame}"
        );
        assert!(
            lines[2].starts_with("ml          b      n1     900m "),
            "{frame}"
        );
        assert!(
            lines[3].starts_with("ml          a      n1     40m "),
            "{frame}"
        );

        let by_name = view.frame(None, &filter);
        assert!(
            by_name
                .lines()
                .nth(2)
                .unwrap()
                .starts_with("ml          a ")
        );

        view.listed(vec![pod("ml", "c", None)]);
        let frame = view.frame(None, &filter);
        assert!(!frame.contains("error:"), "a good answer clears the error");
        assert_eq!(frame.lines().count(), 2, "{frame}");
    }
}
