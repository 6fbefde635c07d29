//! The migrations' loop: every second (and whenever a migration is started or
//! cancelled, or a report changes what a pod does) each unfinished migration steps.
//! Only the leader acts; a coordinator that takes the lead reads the records first.

use super::Migrations;
use std::time::Duration;

/// Reports arrive every second or so; a quarter of that keeps downtime figures close.
pub const TICK: Duration = Duration::from_millis(250);

/// Runs until the process drains.
pub async fn run(m: Migrations, mut drain: crate::process::Drain) {
    let mut leader = m.leader.clone();
    let mut election_over = false;
    let mut was_leader = false;
    loop {
        let leads = *leader.borrow_and_update();
        if leads {
            if !was_leader && let Err(e) = m.reload().await {
                tracing::warn!(error = %e, "cannot read the migrations; retrying");
            } else {
                was_leader = true;
                m.sync().await;
            }
        } else {
            was_leader = false;
        }
        tokio::select! {
            () = m.changed().notified() => {}
            changed = leader.changed(), if !election_over => election_over = changed.is_err(),
            () = tokio::time::sleep(TICK) => {}
            () = drain.signaled() => return,
        }
    }
}
