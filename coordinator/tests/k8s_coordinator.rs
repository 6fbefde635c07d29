//! Two real coordinators against one API server fake: exactly one leads and is
//! ready (REST `/ready`, gRPC health); when it stops, the other takes over. Also what
//! a coordinator in a cluster says of itself (`/health`).

mod k8s_support;
mod support;

use aistor_coordinator::k8s::{ClusterConfig, LeaseConfig};
use k8s_support::{PATIENCE, within};
use std::time::{Duration, Instant};
use support::{Coordinator, http_get as get};

async fn start(fake: &k8s_support::Fake, identity: &str) -> Coordinator {
    let mut k8s = fake.config(identity);
    // Short, so a takeover fits a test; whole seconds as the Lease counts.
    k8s.lease = LeaseConfig {
        duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(2),
        ..LeaseConfig::default()
    };
    Coordinator::start(|c| c.cluster = ClusterConfig::Kubernetes(k8s)).await
}

async fn ready(c: &Coordinator) -> bool {
    get(c.http, "/ready").await.0 == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_coordinator_leads_and_the_other_takes_over_when_it_stops() {
    let fake = k8s_support::start().await;
    let a = start(&fake, "coordinator-a").await;
    let b = start(&fake, "coordinator-b").await;

    // Exactly one becomes ready.
    within("one coordinator to lead", async {
        loop {
            if ready(&a).await != ready(&b).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (leader, standby) = if ready(&a).await { (a, b) } else { (b, a) };
    let (status, health) = get(leader.http, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["mode"], "kubernetes");
    assert_eq!(health["leader"], true);
    assert!(
        health["cluster"]
            .as_str()
            .unwrap()
            .contains("aistor-system"),
        "{health}"
    );
    let (status, body) = get(standby.http, "/ready").await;
    assert_eq!((status, &body["leader"]), (503, &serde_json::json!(false)));
    // The Lease names the leader.
    let lease = fake
        .server
        .object(
            "coordination.k8s.io/v1",
            "Lease",
            Some(k8s_support::NAMESPACE),
            "aistor-coordinator",
        )
        .expect("the leader Lease");
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
    assert!(holder.starts_with("coordinator-"), "{lease}");

    // The leader stops (releasing its Lease): the standby takes over.
    let stopped_at = Instant::now();
    leader.stop().await;
    within("the standby to take over", async {
        while !ready(&standby).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    println!(
        "takeover {:?} after the leader stopped (lease 4 s; patience {PATIENCE:?})",
        stopped_at.elapsed()
    );
    let (_, health) = get(standby.http, "/health").await;
    assert_eq!(health["leader"], true);
    standby.stop().await;
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn a_coordinator_without_kubernetes_says_it_is_standalone_and_leads() {
    let c = Coordinator::start(|_| {}).await;
    let (_, health) = get(c.http, "/health").await;
    assert_eq!(health["mode"], "standalone");
    assert_eq!(health["cluster"], "standalone (no Kubernetes)");
    assert_eq!(get(c.http, "/ready").await.0, 200);
    c.stop().await;
}
