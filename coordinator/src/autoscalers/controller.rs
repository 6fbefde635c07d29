//! The autoscalers' loop: every second (or when one is created) it syncs each
//! autoscaler whose period has come, one after another.

use super::Autoscalers;
use std::time::Duration;

/// The longest the loop sleeps; periods are whole seconds.
pub const TICK: Duration = Duration::from_secs(1);
/// How often the held autoscalers are compared with the store (objects made or
/// changed with `kubectl`, or by another coordinator).
pub const RELOAD: Duration = Duration::from_secs(10);

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
    let mut last_reload: Option<Duration> = None;
    loop {
        if *leader.borrow_and_update() {
            // On taking over (and now and then) the store is the truth.
            let now = a.view.now().monotonic;
            if last_reload.is_none_or(|at| now.saturating_sub(at) >= RELOAD) {
                match a.reload().await {
                    Ok(()) => last_reload = Some(now),
                    Err(e) => tracing::warn!(error = %e, "cannot reload the autoscalers"),
                }
            }
            sync_due(&a).await;
        } else {
            last_reload = None;
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
