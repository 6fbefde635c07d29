//! A fake APOLLO scheduling-policy service: a real tonic server on loopback, built
//! from our own `apollo.proto`, that answers a scripted policy, can be told to be slow
//! or to fail, and records the questions and reports it received.

use aistor_proto::apollo as pb;
use pb::scheduling_policy_service_server::{
    SchedulingPolicyService, SchedulingPolicyServiceServer,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// What the fake does with the next `GetSchedulingPolicy` (and, when slow, with
/// reports too).
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers this policy, with the asking pod's name and namespace filled in when
    /// the policy leaves them empty.
    Answer(pb::SchedulingPolicy),
    /// Sleeps this long before answering the scripted policy.
    Slow(Duration, pb::SchedulingPolicy),
    /// Answers this status.
    Fail(tonic::Code, String),
}

#[derive(Debug, Default)]
struct Recorded {
    requests: Vec<pb::SchedulingPolicyRequest>,
    reports: Vec<pb::SchedulingResult>,
}

#[derive(Debug, Clone)]
struct Fake {
    behaviour: Arc<Mutex<Behaviour>>,
    recorded: Arc<Mutex<Recorded>>,
}

#[tonic::async_trait]
impl SchedulingPolicyService for Fake {
    async fn get_scheduling_policy(
        &self,
        request: tonic::Request<pb::SchedulingPolicyRequest>,
    ) -> Result<tonic::Response<pb::SchedulingPolicy>, tonic::Status> {
        let request = request.into_inner();
        self.recorded.lock().unwrap().requests.push(request.clone());
        let behaviour = self.behaviour.lock().unwrap().clone();
        let mut policy = match behaviour {
            Behaviour::Answer(policy) => policy,
            Behaviour::Slow(delay, policy) => {
                tokio::time::sleep(delay).await;
                policy
            }
            Behaviour::Fail(code, message) => return Err(tonic::Status::new(code, message)),
        };
        if policy.pod_name.is_empty() && policy.pod_namespace.is_empty() {
            policy.pod_name = request.pod_name;
            policy.pod_namespace = request.pod_namespace;
        }
        Ok(tonic::Response::new(policy))
    }

    async fn report_scheduling_result(
        &self,
        request: tonic::Request<pb::SchedulingResult>,
    ) -> Result<tonic::Response<pb::ReportResponse>, tonic::Status> {
        let result = request.into_inner();
        let behaviour = self.behaviour.lock().unwrap().clone();
        if let Behaviour::Slow(delay, _) = behaviour {
            tokio::time::sleep(delay).await;
        }
        let request_id = result.request_id.clone();
        self.recorded.lock().unwrap().reports.push(result);
        Ok(tonic::Response::new(pb::ReportResponse {
            success: true,
            message: "recorded".into(),
            request_id,
        }))
    }
}

/// The fake, serving until dropped.
pub struct FakeApollo {
    pub addr: SocketAddr,
    fake: Fake,
    _stop: oneshot::Sender<()>,
}

impl FakeApollo {
    /// Serves on an ephemeral loopback port, answering `policy` to everyone.
    pub async fn start(policy: pb::SchedulingPolicy) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Fake {
            behaviour: Arc::new(Mutex::new(Behaviour::Answer(policy))),
            recorded: Arc::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let service = SchedulingPolicyServiceServer::new(fake.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async { drop(stopped.await) },
                )
                .await
                .unwrap();
        });
        Self {
            addr,
            fake,
            _stop: stop,
        }
    }

    /// `host:port`, seed 001's form of `APOLLO_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    pub fn behave(&self, behaviour: Behaviour) {
        *self.fake.behaviour.lock().unwrap() = behaviour;
    }

    pub fn requests(&self) -> Vec<pb::SchedulingPolicyRequest> {
        self.fake.recorded.lock().unwrap().requests.clone()
    }

    pub fn reports(&self) -> Vec<pb::SchedulingResult> {
        self.fake.recorded.lock().unwrap().reports.clone()
    }

    /// Polls until `n` reports have arrived (a minute at most); returns them.
    pub async fn until_reports(&self, n: usize) -> Vec<pb::SchedulingResult> {
        for _ in 0..1200 {
            let reports = self.reports();
            if reports.len() >= n {
                return reports;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{n} reports did not arrive: {:?}", self.reports());
    }
}

/// A loopback `host:port` where nothing listens (bound, then closed).
pub async fn nothing_listening() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}
