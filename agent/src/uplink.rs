//! The gRPC stream to the coordinator. Every report goes into a bounded replay
//! buffer first and leaves it only when the coordinator acknowledges it, so a
//! coordinator restart or a network cut loses nothing younger than the buffer's age:
//! after reconnecting the agent replays the unacknowledged reports in order, then
//! goes on live. The coordinator drops the replays it had already stored.

use crate::backoff::Backoff;
use crate::report_delta::Picture;
use crate::shutdown::Shutdown;
use aistor_proto::v1::{
    Directive, NodeReport, agent_service_client::AgentServiceClient, directive,
};
use prost::Message;
use std::borrow::Borrow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// One buffered report: when it was collected and its encoded size.
#[derive(Debug)]
struct Buffered {
    monotonic: Duration,
    bytes: usize,
    report: Arc<NodeReport>,
}

/// Reports not yet acknowledged, oldest first, bounded by age and by size: minutes of
/// them during a coordinator outage must not outgrow the agent's memory limit.
///
/// Reports are kept as sent: each leaves out what the previous one carried unchanged
/// (see [`crate::report_delta`]). The first report of a stream goes out restored in full
/// ([`Self::first_of_stream`]), from `base`, what the reports before the oldest one
/// kept carried.
#[derive(Debug)]
pub struct ReplayBuffer {
    reports: VecDeque<Buffered>,
    max_age: Duration,
    /// Budget for the reports' encoded size; the newest report is always kept.
    max_bytes: usize,
    bytes: usize,
    dropped_total: u64,
    /// What the reports pushed so far carried: the next one leaves it out.
    sent: Picture,
    /// What the reports that left the buffer carried.
    base: Picture,
    /// Encoded size of the latest report as kept (sent); `None` before the first.
    last_sent_bytes: Option<usize>,
}

impl ReplayBuffer {
    pub fn new(max_age: Duration) -> Self {
        Self {
            reports: VecDeque::new(),
            max_age,
            max_bytes: usize::MAX,
            bytes: 0,
            dropped_total: 0,
            sent: Picture::default(),
            base: Picture::default(),
            last_sent_bytes: None,
        }
    }

    /// Also bounds the buffer by the reports' encoded size.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Adds a report collected at `monotonic`; drops (and counts) the oldest reports
    /// while any is older than the buffer's age or the buffer is over its size
    /// budget. The coordinator will never see those.
    pub fn push(&mut self, monotonic: Duration, report: impl Borrow<NodeReport>) {
        let full = report.borrow();
        let report = Arc::new(self.sent.compact(full));
        let bytes = report.encoded_len();
        self.last_sent_bytes = Some(bytes);
        self.bytes += bytes;
        self.reports.push_back(Buffered {
            monotonic,
            bytes,
            report,
        });
        while self.reports.len() > 1
            && self.reports.front().is_some_and(|b| {
                monotonic.saturating_sub(b.monotonic) > self.max_age || self.bytes > self.max_bytes
            })
        {
            self.pop_front();
            self.dropped_total += 1;
        }
    }

    fn pop_front(&mut self) {
        if let Some(b) = self.reports.pop_front() {
            self.bytes -= b.bytes;
            if let Err(e) = self.base.follow(&b.report) {
                // Cannot happen (each report is compacted against the one before it); if it
                // did, the next stream's first report would be refused, so send it all.
                tracing::error!(error = %e, "replay buffer: a report does not follow its predecessor; the next stream starts afresh");
                self.base.clear();
                self.sent.clear();
            }
        }
    }

    /// The report to open a stream with: the oldest buffered one with `seq >= from`, with
    /// everything it left out put back (the receiver of a new stream knows nothing).
    pub fn first_of_stream(&self, from: u64) -> Option<NodeReport> {
        let mut picture = self.base.clone();
        for b in &self.reports {
            let full = picture.restore(&b.report);
            if b.report.seq >= from {
                return full.ok();
            }
        }
        None
    }

    /// The coordinator stored everything up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        while self.reports.front().is_some_and(|b| b.report.seq <= seq) {
            self.pop_front();
        }
    }

    /// The oldest buffered report with `seq >= from`.
    pub fn next_from(&self, from: u64) -> Option<&NodeReport> {
        let at = self.reports.partition_point(|b| b.report.seq < from);
        self.reports.get(at).map(|b| &*b.report)
    }

    pub fn oldest_seq(&self) -> Option<u64> {
        self.reports.front().map(|b| b.report.seq)
    }

    /// Encoded size of the buffered reports.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.reports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Encoded size of the latest report pushed as sent on the stream (what the previous
    /// one carried left out); `None` before the first. (Its size in full is the published
    /// report's, read at scrape time rather than on the tick.)
    pub fn last_sent_bytes(&self) -> Option<usize> {
        self.last_sent_bytes
    }

    /// The buffer's limits: the oldest report kept, and the encoded size budget.
    pub fn limits(&self) -> (Duration, usize) {
        (self.max_age, self.max_bytes)
    }

    /// Collection time between the oldest and the newest report held (zero when fewer
    /// than two): how much of an outage the buffer holds now.
    pub fn span(&self) -> Duration {
        match (self.reports.front(), self.reports.back()) {
            (Some(a), Some(b)) => b.monotonic.saturating_sub(a.monotonic),
            _ => Duration::ZERO,
        }
    }
}

/// The buffer shared by the collector (writer) and the uplink (reader).
#[derive(Debug, Clone)]
pub struct Outbox {
    buffer: Arc<Mutex<ReplayBuffer>>,
    added: Arc<Notify>,
}

impl Outbox {
    pub fn new(max_age: Duration, max_bytes: usize) -> Self {
        Self {
            buffer: Arc::new(Mutex::new(
                ReplayBuffer::new(max_age).with_max_bytes(max_bytes),
            )),
            added: Arc::new(Notify::new()),
        }
    }

    pub fn push(&self, monotonic: Duration, report: impl Borrow<NodeReport>) {
        self.push_then(monotonic, report, || {});
    }

    /// Pushes and runs `also` while still holding the buffer, so a reader that takes the
    /// buffer first (`/metrics`) sees both or neither.
    pub fn push_then(
        &self,
        monotonic: Duration,
        report: impl Borrow<NodeReport>,
        also: impl FnOnce(),
    ) {
        {
            let mut buffer = self.lock();
            buffer.push(monotonic, report);
            also();
        }
        self.added.notify_one();
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, ReplayBuffer> {
        // A poisoned lock only means another thread panicked mid-update of a queue
        // that is valid after every single operation; keep going.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counters the admin endpoint exposes about the stream.
#[derive(Debug, Default)]
pub struct UplinkStats {
    pub connected: std::sync::atomic::AtomicBool,
    pub reports_sent_total: std::sync::atomic::AtomicU64,
    pub connects_total: std::sync::atomic::AtomicU64,
}

pub struct Uplink {
    endpoint: Endpoint,
    outbox: Outbox,
    stats: Arc<UplinkStats>,
    backoff: Backoff,
    /// Where the coordinator's directives (other than acks) go.
    directives: mpsc::Sender<Directive>,
    /// A projected ServiceAccount token proving this node (Kubernetes), read afresh
    /// for every stream because the kubelet rotates it.
    token_file: Option<std::path::PathBuf>,
}

/// Why one connection ended.
#[derive(Debug, thiserror::Error)]
enum StreamEnd {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("coordinator refused the stream: {0}")]
    Refused(tonic::Status),
    #[error("stream failed: {0}")]
    Failed(tonic::Status),
    #[error("coordinator closed the stream")]
    Closed,
    #[error("the token file {path}: {error}")]
    Token {
        path: std::path::PathBuf,
        error: String,
    },
    #[error("shutting down")]
    Shutdown,
}

impl Uplink {
    pub fn new(
        endpoint: Endpoint,
        outbox: Outbox,
        stats: Arc<UplinkStats>,
        directives: mpsc::Sender<Directive>,
    ) -> Self {
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(15));
        Self {
            endpoint,
            outbox,
            stats,
            backoff,
            directives,
            token_file: None,
        }
    }

    /// Proves the node with the bearer token in `path` on every stream.
    pub fn with_token_file(mut self, path: Option<std::path::PathBuf>) -> Self {
        self.token_file = path;
        self
    }

    /// The stream's request, with the node's token when one is configured.
    fn request(
        &self,
        reports: ReceiverStream<NodeReport>,
    ) -> Result<tonic::Request<ReceiverStream<NodeReport>>, StreamEnd> {
        let mut request = tonic::Request::new(reports);
        if let Some(path) = &self.token_file {
            let failed = |error: String| StreamEnd::Token {
                path: path.clone(),
                error,
            };
            let token = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
            let mut value: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
                format!("Bearer {}", token.trim())
                    .parse()
                    .map_err(|_| failed("not a token (characters outside ASCII)".into()))?;
            value.set_sensitive(true);
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    /// Streams until shutdown, reconnecting with backoff. On shutdown it sends what
    /// is still buffered for at most `grace`, then returns.
    pub async fn run(mut self, mut shutdown: Shutdown, grace: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        loop {
            self.stats.connects_total.fetch_add(1, Relaxed);
            let result = self.session(&mut shutdown, grace).await;
            self.stats.connected.store(false, Relaxed);
            match result {
                StreamEnd::Shutdown => return,
                end => {
                    let delay = self.backoff.delay();
                    tracing::warn!(error = %end, retry_in = ?delay, "coordinator stream ended");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.wait() => return,
                    }
                }
            }
        }
    }

    async fn session(&mut self, shutdown: &mut Shutdown, grace: Duration) -> StreamEnd {
        use std::sync::atomic::Ordering::Relaxed;
        let channel = tokio::select! {
            c = self.endpoint.connect() => match c {
                Ok(c) => c,
                Err(e) => return StreamEnd::Connect(e),
            },
            () = shutdown.wait() => return StreamEnd::Shutdown,
        };
        let (tx, rx) = mpsc::channel::<NodeReport>(16);
        let mut client = AgentServiceClient::new(channel);
        // Nothing is sent until the call is answered, so prime the first report
        // before awaiting the response headers.
        let mut next = self.outbox.lock().oldest_seq().unwrap_or(1);
        let request = match self.request(ReceiverStream::new(rx)) {
            Ok(request) => request,
            Err(end) => return end,
        };
        let call = client.connect(request);
        tokio::pin!(call);
        let mut first = true;
        let mut inbound = loop {
            let pending = {
                let buffer = self.outbox.lock();
                if first {
                    buffer.first_of_stream(next)
                } else {
                    buffer.next_from(next).cloned()
                }
            };
            if let Some(report) = pending {
                let seq = report.seq;
                tokio::select! {
                    sent = tx.send(report) => if sent.is_err() { return StreamEnd::Closed },
                    r = &mut call => match r {
                        Ok(r) => break r.into_inner(),
                        Err(s) => return StreamEnd::Refused(s),
                    },
                }
                next = seq + 1;
                first = false;
                continue;
            }
            tokio::select! {
                r = &mut call => match r {
                    Ok(r) => break r.into_inner(),
                    Err(s) => return StreamEnd::Refused(s),
                },
                () = self.outbox.added.notified() => {}
                () = shutdown.wait() => return StreamEnd::Shutdown,
            }
        };
        self.stats.connected.store(true, Relaxed);
        tracing::info!(endpoint = %self.endpoint.uri(), "streaming to coordinator");
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            // Send everything buffered that this connection has not sent yet.
            let pending = {
                let buffer = self.outbox.lock();
                if first {
                    buffer.first_of_stream(next)
                } else {
                    buffer.next_from(next).cloned()
                }
            };
            if let Some(report) = pending {
                let seq = report.seq;
                tokio::select! {
                    sent = tx.send(report) => {
                        if sent.is_err() {
                            return StreamEnd::Closed;
                        }
                        self.stats.reports_sent_total.fetch_add(1, Relaxed);
                        next = seq + 1;
                        first = false;
                    }
                    msg = inbound.message() => if let Some(end) = self.handle(msg) { return end },
                }
                continue;
            }
            if draining.is_some() && self.outbox.lock().is_empty() {
                return StreamEnd::Shutdown;
            }
            let deadline = draining
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                msg = inbound.message() => if let Some(end) = self.handle(msg) { return end },
                () = self.outbox.added.notified() => {}
                () = shutdown.wait(), if draining.is_none() => {
                    draining = Some(tokio::time::Instant::now() + grace);
                }
                () = tokio::time::sleep_until(deadline), if draining.is_some() => return StreamEnd::Shutdown,
            }
        }
    }

    /// Applies one inbound message; `Some` ends the session.
    fn handle(&mut self, msg: Result<Option<Directive>, tonic::Status>) -> Option<StreamEnd> {
        match msg {
            Ok(Some(Directive {
                kind: Some(directive::Kind::Ack(ack)),
                ..
            })) => {
                self.outbox.lock().ack(ack.seq);
                self.backoff.reset();
                None
            }
            Ok(Some(Directive { kind: None, .. })) => {
                tracing::debug!("ignoring a directive of a kind this agent does not know");
                None
            }
            Ok(Some(directive)) => {
                // The dispatcher only routes, so a full queue means it is stuck; the
                // coordinator sends its desired pods again on the next connect.
                if let Err(e) = self.directives.try_send(directive) {
                    tracing::warn!(id = %e.into_inner().id, "directive refused: too many queued");
                }
                None
            }
            Ok(None) => Some(StreamEnd::Closed),
            Err(status) => Some(StreamEnd::Failed(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seq: u64) -> NodeReport {
        NodeReport {
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn acknowledged_reports_leave_the_buffer() {
        let mut b = ReplayBuffer::new(Duration::from_secs(300));
        for seq in 1..=5 {
            b.push(Duration::from_secs(seq), report(seq));
        }
        b.ack(3);
        assert_eq!(b.oldest_seq(), Some(4));
        assert_eq!(b.next_from(1).map(|r| r.seq), Some(4));
        assert_eq!(b.next_from(5).map(|r| r.seq), Some(5));
        assert!(b.next_from(6).is_none());
    }

    #[test]
    fn reports_older_than_the_buffer_age_are_dropped_and_counted() {
        let mut b = ReplayBuffer::new(Duration::from_secs(10));
        for seq in 1..=20 {
            b.push(Duration::from_secs(seq), report(seq));
        }
        assert_eq!(b.oldest_seq(), Some(10));
        assert_eq!(b.len(), 11);
        assert_eq!(b.dropped_total(), 9);
    }

    #[test]
    fn the_size_budget_drops_the_oldest_but_keeps_the_newest() {
        let big = |seq| NodeReport {
            seq,
            agent_instance: "x".repeat(1000),
            ..Default::default()
        };
        let size = big(1).encoded_len();
        let mut b = ReplayBuffer::new(Duration::from_secs(300)).with_max_bytes(3 * size);
        for seq in 1..=5 {
            b.push(Duration::from_secs(seq), big(seq));
        }
        assert_eq!(b.oldest_seq(), Some(3));
        assert_eq!((b.len(), b.bytes(), b.dropped_total()), (3, 3 * size, 2));
        b.ack(4);
        assert_eq!((b.len(), b.bytes()), (1, size));
        let mut tiny = ReplayBuffer::new(Duration::from_secs(300)).with_max_bytes(1);
        tiny.push(Duration::ZERO, big(9));
        assert_eq!(
            tiny.oldest_seq(),
            Some(9),
            "the newest report is kept even over budget"
        );
    }
}
