//! The tick loop: read the node, build the report, hand it to the uplink's outbox and
//! publish it for `/metrics`.

use crate::exposition::Published;
use crate::report::{NodeReading, ReportBuilder};
use crate::shutdown::Shutdown;
use crate::source::{DiskCatalog, NodeSource};
use crate::uplink::Outbox;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct Collector {
    source: Box<dyn NodeSource>,
    disks: Box<dyn DiskCatalog + Send>,
    builder: ReportBuilder,
    ticks_per_second: u64,
}

impl Collector {
    pub fn new(
        source: Box<dyn NodeSource>,
        disks: Box<dyn DiskCatalog + Send>,
        builder: ReportBuilder,
        ticks_per_second: u64,
    ) -> Self {
        Self {
            source,
            disks,
            builder,
            ticks_per_second,
        }
    }

    /// One collection. Reading procfs and sysfs does not block on storage, so this
    /// runs inline on the runtime.
    pub fn collect(&mut self) -> (Published, Duration) {
        let started = Instant::now();
        let reading: NodeReading = self.source.read();
        let monotonic = reading.monotonic;
        let (report, extras) = self.builder.build(&reading, self.disks.as_mut());
        let published = Published {
            report,
            extras,
            ticks_per_second: self.ticks_per_second,
            collect_seconds: started.elapsed().as_secs_f64(),
        };
        (published, monotonic)
    }
}

/// Collects every `interval` until shutdown. A tick that runs late is not made up
/// with a burst: the next one waits a full interval (rates use measured time anyway).
pub async fn run(
    mut collector: Collector,
    interval: Duration,
    outbox: Outbox,
    publish: watch::Sender<Option<Arc<Published>>>,
    mut shutdown: Shutdown,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.wait() => return,
        }
        let (published, monotonic) = collector.collect();
        outbox.push(monotonic, published.report.clone());
        publish.send_replace(Some(Arc::new(published)));
    }
}
