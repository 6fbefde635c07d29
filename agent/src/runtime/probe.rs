//! Readiness probes as the kubelet runs them: exec in the container, HTTP GET or a TCP
//! connect on the host network, each bounded by its timeout; thresholds of consecutive
//! results flip readiness.

use super::manifest::{Probe, ProbeAction};
use super::tasks::Tasks;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// One probe's outcome; `Err` says why it failed (kept for the container's status).
pub type Outcome = Result<(), String>;

/// Runs the probe once.
pub async fn run_once(probe: &Probe, tasks: &Tasks, container_id: &str, seq: u64) -> Outcome {
    match &probe.action {
        ProbeAction::Exec(command) => {
            let exec_id = format!("probe-{seq}");
            match tasks
                .exec(container_id, &exec_id, command, probe.timeout)
                .await
            {
                Ok(0) => Ok(()),
                Ok(code) => Err(format!("exec probe exited {code}")),
                Err(e) => Err(format!("exec probe: {e}")),
            }
        }
        ProbeAction::Http { port, path } => {
            match tokio::time::timeout(probe.timeout, http_get(*port, path)).await {
                Ok(result) => result,
                Err(_) => Err(format!("HTTP probe timed out after {:?}", probe.timeout)),
            }
        }
        ProbeAction::Tcp { port } => {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", *port));
            match tokio::time::timeout(probe.timeout, connect).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("TCP probe to port {port}: {e}")),
                Err(_) => Err(format!("TCP probe timed out after {:?}", probe.timeout)),
            }
        }
    }
}

/// GET `http://127.0.0.1:<port><path>`; 200–399 is success, as the kubelet counts it.
async fn http_get(port: u16, path: &str) -> Outcome {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("HTTP probe to port {port}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP probe to port {port}: {e}"))?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, format!("127.0.0.1:{port}"))
        .header(hyper::header::USER_AGENT, "aistor-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("HTTP probe request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP probe to port {port}: {e}"))?;
    let code = response.status().as_u16();
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe to port {port}{path} answered {code}"))
    }
}

/// Consecutive results → readiness, with the kubelet's thresholds.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    ready: bool,
    successes: u32,
    failures: u32,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Records one outcome; returns the new readiness.
    pub fn record(&mut self, probe: &Probe, ok: bool) -> bool {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= probe.success_threshold {
                self.ready = true;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= probe.failure_threshold {
                self.ready = false;
            }
        }
        self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn probe(success: u32, failure: u32) -> Probe {
        Probe {
            action: ProbeAction::Tcp { port: 1 },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn thresholds_count_consecutive_results() {
        let p = probe(2, 3);
        let mut r = Readiness::default();
        assert!(!r.record(&p, true));
        assert!(r.record(&p, true));
        assert!(r.record(&p, false));
        assert!(r.record(&p, false));
        assert!(r.record(&p, true), "a success resets the failure count");
        assert!(r.record(&p, false));
        assert!(r.record(&p, false));
        assert!(!r.record(&p, false));
        assert!(
            !r.record(&p, true),
            "one success is below the threshold of two"
        );
        assert!(r.record(&p, true));
        assert!(r.ready());
    }

    #[tokio::test]
    async fn tcp_and_http_probes_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if text.starts_with("GET /ok ") {
                    "200 OK"
                } else {
                    "503 No"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        assert_eq!(http_get(port, "/ok").await, Ok(()));
        let e = http_get(port, "/bad").await.unwrap_err();
        assert!(e.contains("answered 503"), "{e}");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert!(
            http_get(closed, "/")
                .await
                .unwrap_err()
                .contains(&closed.to_string())
        );
        let tasks = Tasks {
            conn: crate::source::containerd::Connection::new("/nonexistent".into()),
            namespace: "k8s.io".into(),
            snapshotter: "overlayfs".into(),
        };
        let mut p = probe(1, 1);
        p.action = ProbeAction::Tcp { port };
        assert_eq!(run_once(&p, &tasks, "c", 1).await, Ok(()));
        p.action = ProbeAction::Tcp { port: closed };
        assert!(run_once(&p, &tasks, "c", 1).await.is_err());
        p.action = ProbeAction::Http {
            port,
            path: "/ok".into(),
        };
        assert_eq!(run_once(&p, &tasks, "c", 1).await, Ok(()));
    }
}
