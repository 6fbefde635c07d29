//! Leader election with kube-lease-manager against the fake: server-side apply conflicts keep
//! a second manager out while the holder renews; it takes over once renewals stop.

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use support::{start, within};
use tokio::sync::watch;

const LEASE: &str = "aistor-leader";
/// Seconds: long enough that a loaded machine renews in time, short enough for a test.
const DURATION: u64 = 6;
const GRACE: u64 = 2;

async fn manager(client: kube::Client, identity: &str) -> LeaseManager {
    LeaseManagerBuilder::new(client, LEASE)
        .with_namespace("team")
        .with_identity(identity)
        .with_duration(DURATION)
        .with_grace(GRACE)
        .build()
        .await
        .expect("the lease manager starts")
}

async fn until_leader(rx: &mut watch::Receiver<bool>, who: &str) {
    within(&format!("{who} to lead"), rx.wait_for(|leader| *leader))
        .await
        .expect("the manager task is running");
}

fn spec(lease: &Lease) -> (Option<String>, Option<i32>) {
    let spec = lease.spec.clone().unwrap_or_default();
    (spec.holder_identity, spec.lease_transitions)
}

#[tokio::test]
async fn one_leader_at_a_time_and_takeover_after_the_holder_stops() {
    let (server, client) = start("team").await;
    let leases: Api<Lease> = Api::default_namespaced(client.clone());

    let (mut first_rx, first_task) = manager(client.clone(), "first").await.watch().await;
    until_leader(&mut first_rx, "first").await;
    assert_eq!(
        spec(&leases.get(LEASE).await.unwrap()).0.as_deref(),
        Some("first")
    );

    let (second_rx, second_task) = manager(client.clone(), "second").await.watch().await;
    // While the holder renews, the lease stays its own: watch two renewals go by.
    let renew_time = |lease: &Lease| lease.spec.as_ref().and_then(|s| s.renew_time.clone());
    let mut seen = renew_time(&leases.get(LEASE).await.unwrap());
    for _ in 0..2 {
        let lease = within("a renewal", async {
            loop {
                let lease = leases.get(LEASE).await.unwrap();
                if renew_time(&lease) != seen {
                    return lease;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
        .await;
        seen = renew_time(&lease);
        assert_eq!(spec(&lease).0.as_deref(), Some("first"));
        assert!(*first_rx.borrow());
        assert!(
            !*second_rx.borrow(),
            "the second manager must not lead while the first renews"
        );
    }
    let transitions_before = spec(&leases.get(LEASE).await.unwrap()).1.unwrap_or(0);

    // The holder dies without releasing: the second takes over once the lease expires.
    first_task.abort();
    let mut second_rx = second_rx;
    until_leader(&mut second_rx, "second").await;
    let (holder, transitions) = spec(&leases.get(LEASE).await.unwrap());
    assert_eq!(holder.as_deref(), Some("second"));
    assert!(
        transitions.unwrap_or(0) > transitions_before,
        "a takeover counts as a transition"
    );

    // A graceful stop releases the lease at once, and a newcomer acquires it.
    drop(second_rx);
    within("the second manager to stop", second_task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spec(&leases.get(LEASE).await.unwrap()).0, None, "released");
    let (mut third_rx, _third_task) = manager(client.clone(), "third").await.watch().await;
    until_leader(&mut third_rx, "third").await;

    // The managers used server-side apply to take the lease, with their own field managers.
    let applies = server
        .requests()
        .iter()
        .filter(|r| r.resource == "leases" && r.verb == aistor_kube_fake::Verb::Patch)
        .filter(|r| r.query.contains("fieldManager="))
        .count();
    assert!(applies >= 3, "{applies} patches with a field manager");
}

#[tokio::test]
async fn racing_managers_elect_exactly_one() {
    let (_server, client) = start("team").await;
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    let mut receivers = Vec::new();
    let mut tasks = Vec::new();
    for identity in ["a", "b", "c"] {
        let (rx, task) = manager(client.clone(), identity).await.watch().await;
        receivers.push((identity, rx));
        tasks.push(task);
    }
    let holder = within("a leader", async {
        loop {
            if let Some(holder) = spec(&leases.get(LEASE).await.unwrap()).0 {
                return holder;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    let (_, rx) = receivers
        .iter_mut()
        .find(|(id, _)| *id == holder)
        .expect("the holder is one of ours");
    until_leader(rx, &holder).await;
    for (identity, rx) in &receivers {
        assert_eq!(
            *rx.borrow(),
            *identity == holder,
            "{identity}: only {holder} leads"
        );
    }
    for task in tasks {
        task.abort();
    }
}
