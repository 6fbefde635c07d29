//! The admin listener is bounded (issue 12, finding 6): a connection that sends
//! nothing or half a request is closed after the header-read timeout, the HTTP/2
//! preface is refused, connections over the cap are closed on accept and counted,
//! and a stop waits for open connections.

use aistor_agent::listener::{Limits, refused_counter, serve};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(1);
const WITHIN: Duration = Duration::from_secs(3);

struct Admin {
    addr: SocketAddr,
    refused: prometheus_client::metrics::counter::Counter,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn admin(max_connections: usize) -> Admin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let refused = refused_counter(&mut registry);
    let (_publish, latest) = tokio::sync::watch::channel(None);
    let router = aistor_agent::admin::router(Arc::new(registry), latest);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = Limits {
        max_connections,
        header_read_timeout: TIMEOUT,
    };
    let task = tokio::spawn(serve(listener, router, limits, refused.clone(), async {
        drop(stopped.await)
    }));
    Admin {
        addr,
        refused,
        stop,
        task,
    }
}

/// How long until the server closed a connection that sent `bytes`; `None` when
/// it was still open after [`WITHIN`].
async fn closed_after(addr: SocketAddr, bytes: &[u8]) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(bytes).await.unwrap();
    let mut sink = Vec::new();
    tokio::time::timeout(WITHIN, s.read_to_end(&mut sink))
        .await
        .ok()
        .map(|_| started.elapsed())
}

/// `GET /live` on a kept-alive connection, which is returned open; `None` when
/// the server closed it instead.
async fn try_live(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0; 1024];
    let n = s.read(&mut buf).await.ok()?;
    buf[..n].starts_with(b"HTTP/1.1 200").then_some(s)
}

async fn live(addr: SocketAddr) -> TcpStream {
    try_live(addr).await.expect("GET /live answered 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_after_the_header_read_timeout() {
    let a = admin(64).await;
    for (what, bytes) in [
        ("nothing sent", &b""[..]),
        ("half a request", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
        ("half a request line", b"GET /me"),
    ] {
        let took = closed_after(a.addr, bytes)
            .await
            .unwrap_or_else(|| panic!("{what}: still open after {WITHIN:?}"));
        // Timers never fire early: a close before the timeout was not the timeout's.
        assert!(
            took >= TIMEOUT * 9 / 10,
            "{what}: closed after only {took:?}"
        );
    }
    // HTTP/2 is not spoken here: the preface alone is refused, at once.
    let took = closed_after(a.addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("the HTTP/2 preface is refused");
    assert!(took < TIMEOUT, "{took:?}");
    // A kept-alive connection idle after a request is closed the same way.
    let mut s = live(a.addr).await;
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(WITHIN, s.read_to_end(&mut rest))
        .await
        .expect("an idle kept-alive connection is closed")
        .ok();
    assert!(started.elapsed() >= TIMEOUT * 9 / 10);
    let _ = a.stop.send(());
    a.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_on_accept_and_counted() {
    let a = admin(1).await;
    let held = live(a.addr).await;
    let took = closed_after(a.addr, b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("the second connection is closed");
    assert!(took < TIMEOUT, "closed at once, not by a timeout: {took:?}");
    assert_eq!(a.refused.get(), 1);
    // A place frees up when the held connection goes.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let _open = loop {
        if let Some(s) = try_live(a.addr).await {
            break s;
        }
        assert!(Instant::now() < deadline, "no place freed within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A stop with a kept-alive connection open still ends: idle ones close.
    let _ = a.stop.send(());
    tokio::time::timeout(Duration::from_secs(10), a.task)
        .await
        .expect("the listener stops")
        .unwrap()
        .unwrap();
}
