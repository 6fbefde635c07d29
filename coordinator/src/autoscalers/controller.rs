//! The autoscalers' loop: every second (or when one is created) it syncs each
//! autoscaler whose period has come, one after another.

use super::Autoscalers;
use std::time::Duration;

/// The longest the loop sleeps; periods are whole seconds.
pub const TICK: Duration = Duration::from_secs(1);

/// Syncs every due autoscaler once.
pub async fn sync_due(a: &Autoscalers) {
    let (due, _) = a.due(a.view.now().monotonic);
    for name in due {
        if let Err(e) = a.sync(&name).await {
            tracing::warn!(autoscaler = name, error = %e, "autoscaler sync failed; retrying next period");
        }
    }
}

/// Runs until the process drains; decides only while this coordinator leads (a
/// standby must not act).
pub async fn run(a: Autoscalers, mut drain: crate::process::Drain) {
    let mut leader = a.leader.clone();
    let mut election_over = false;
    loop {
        if *leader.borrow_and_update() {
            sync_due(&a).await;
        }
        let now = a.view.now().monotonic;
        let sleep = match a.due(now).1 {
            Some(next) => next
                .saturating_sub(now)
                .clamp(Duration::from_millis(10), TICK),
            None => TICK,
        };
        tokio::select! {
            () = a.changed().notified() => {}
            changed = leader.changed(), if !election_over => election_over = changed.is_err(),
            () = tokio::time::sleep(sleep) => {}
            () = drain.signaled() => return,
        }
    }
}
