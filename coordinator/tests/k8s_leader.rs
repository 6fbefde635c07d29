//! Leader election: coordinators with their own clients against one API server fake. Exactly one
//! leads; a leader that stops releases the Lease and another takes over; a leader that dies
//! without releasing is replaced once its Lease expires.

mod k8s_support;

use std::time::{Duration, Instant};

use aistor_coordinator::k8s::{Leadership, LeaseConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use k8s_support::{Fake, NAMESPACE, eventually, start, within};

/// Short, so the test does not wait long for an expiry; kube-lease-manager counts whole seconds.
fn lease() -> LeaseConfig {
    LeaseConfig {
        name: "aistor-coordinator".into(),
        duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
    }
}

struct Candidate {
    leadership: Leadership,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

async fn candidate(fake: &Fake, identity: &str) -> Candidate {
    let cluster = fake.connect(identity).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let (leadership, task) = Leadership::new(
        cluster.client,
        &cluster.namespace,
        identity,
        &lease(),
        async move {
            let _ = stopped.await;
        },
    )
    .expect("valid lease timing");
    assert!(
        !leadership.is_leader(),
        "nobody leads before the election ran"
    );
    Candidate {
        leadership,
        stop: Some(stop),
        task: tokio::spawn(task),
    }
}

fn holder(fake: &Fake) -> Option<String> {
    fake.server
        .object(
            "coordination.k8s.io/v1",
            "Lease",
            Some(NAMESPACE),
            "aistor-coordinator",
        )
        .and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn one_leader_and_a_takeover_after_a_stop_and_after_a_crash() {
    let fake = start().await;
    let a = candidate(&fake, "coordinator-a").await;
    let b = candidate(&fake, "coordinator-b").await;

    eventually("a leader", || {
        a.leadership.is_leader() || b.leadership.is_leader()
    })
    .await;
    // Let both run a few renewal rounds; the Lease has one holder and only it says it leads.
    for _ in 0..3 {
        let (leader, other) = if a.leadership.is_leader() {
            (&a, &b)
        } else {
            (&b, &a)
        };
        assert!(!other.leadership.is_leader(), "two leaders at once");
        assert_eq!(holder(&fake).as_deref(), Some(leader.leadership.identity()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(a.leadership.is_leader() != b.leadership.is_leader());

    // The leader stops: it steps down, releases the Lease, and the other takes over.
    let (mut leader, follower) = if a.leadership.is_leader() {
        (a, b)
    } else {
        (b, a)
    };
    let mut follower_watch = follower.leadership.watch();
    let stopped_at = Instant::now();
    leader
        .stop
        .take()
        .expect("not stopped yet")
        .send(())
        .expect("the task listens");
    within("the stopped leader's task to end", &mut leader.task)
        .await
        .expect("the election task does not panic");
    assert!(
        !leader.leadership.is_leader(),
        "a stopped coordinator does not lead"
    );
    within(
        "the follower to take over",
        follower_watch.wait_for(|leading| *leading),
    )
    .await
    .expect("the follower's election runs");
    let takeover = stopped_at.elapsed();
    assert_eq!(
        holder(&fake).as_deref(),
        Some(follower.leadership.identity())
    );
    // Reported, not asserted (a loaded machine may be slow): the release should make this
    // well under the 3 s lease duration.
    println!("takeover after a stop: {takeover:?}");

    // A third candidate waits; the leader then dies without releasing (task aborted): the
    // Lease expires and the waiting candidate takes it.
    let c = candidate(&fake, "coordinator-c").await;
    assert!(!c.leadership.is_leader());
    follower.task.abort();
    let died_at = Instant::now();
    let mut watch_c = c.leadership.watch();
    within(
        "the waiting candidate to take over",
        watch_c.wait_for(|l| *l),
    )
    .await
    .expect("c's election runs");
    println!("takeover after a crash: {:?}", died_at.elapsed());
    assert_eq!(holder(&fake).as_deref(), Some("coordinator-c"));

    c.task.abort();
    fake.assert_every_call_is_listed();
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down() {
    let fake = start().await;
    let a = candidate(&fake, "coordinator-a").await;
    let mut watch = a.leadership.watch();
    within("a to lead", watch.wait_for(|l| *l)).await.unwrap();

    // The API server refuses every renewal from now on: the leader must stop claiming to lead.
    let refuse = || {
        fake.server.fail_next(
            aistor_kube_fake::RequestMatcher {
                resource: Some("leases".into()),
                ..Default::default()
            },
            500,
        )
    };
    for _ in 0..50 {
        refuse();
    }
    within("a to step down", watch.wait_for(|l| !*l))
        .await
        .unwrap();
    a.task.abort();
}
