//! Two real coordinators against one API server fake: exactly one leads and is
//! ready (REST `/ready`, gRPC health); when it stops, the other takes over. Also what
//! a coordinator in a cluster says of itself (`/health`).

mod k8s_support;

use aistor_coordinator::config::Config;
use aistor_coordinator::k8s::{ClusterConfig, LeaseConfig};
use k8s_support::{PATIENCE, within};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

struct Coordinator {
    http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), aistor_coordinator::Error>>,
    _data: tempfile::TempDir,
}

impl Coordinator {
    async fn start(fake: &k8s_support::Fake, identity: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut k8s = fake.config(identity);
        // Short, so a takeover after a crash fits a test; whole seconds as the Lease counts.
        k8s.lease = LeaseConfig {
            duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(2),
            ..LeaseConfig::default()
        };
        let config = Config {
            refresh_every: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(5),
            cluster: ClusterConfig::Kubernetes(k8s),
            ..Config::new(
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
                data.path().to_owned(),
            )
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel();
        let task = tokio::spawn(aistor_coordinator::run(
            config,
            async { drop(stopped.await) },
            Some(bound_tx),
        ));
        let bound = within("the coordinator binds", bound_rx).await.unwrap();
        Self {
            http: bound.http,
            stop: Some(stop),
            task,
            _data: data,
        }
    }

    /// Graceful stop: the leader releases its Lease.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        within("the coordinator stops", self.task)
            .await
            .expect("no panic")
            .expect("a clean stop");
    }
}

/// `GET path` over HTTP/1.1: the status and the JSON body.
async fn get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).expect("a JSON body"))
}

async fn ready(c: &Coordinator) -> bool {
    get(c.http, "/ready").await.0 == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_coordinator_leads_and_the_other_takes_over_when_it_stops() {
    let fake = k8s_support::start().await;
    let a = Coordinator::start(&fake, "coordinator-a").await;
    let b = Coordinator::start(&fake, "coordinator-b").await;

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
    let data = tempfile::tempdir().unwrap();
    let config = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        data.path().to_owned(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound_rx) = oneshot::channel();
    let task = tokio::spawn(aistor_coordinator::run(
        config,
        async { drop(stopped.await) },
        Some(bound_tx),
    ));
    let bound = bound_rx.await.unwrap();
    let (_, health) = get(bound.http, "/health").await;
    assert_eq!(health["mode"], "standalone");
    assert_eq!(health["cluster"], "standalone (no Kubernetes)");
    assert_eq!(get(bound.http, "/ready").await.0, 200);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
