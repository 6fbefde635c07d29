//! Shared by the migration tests: seed 003's pod in busybox form on the local runtime
//! (a trainer that counts steps, checkpoints them on SIGUSR1 and starts from its
//! checkpoint; a processor that completes at once; a monitor), and seed 002's request.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "localhost/aistor/busybox:migration";

/// The pod `tf` in namespace `ns`; the trainer appends `start <step>` to `<out>/starts`
/// each time it starts.
pub fn pod(ns: &str, out: &Path) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: tf
  namespace: {ns}
  annotations:
    aistor.io/checkpoint-hook: signal:SIGUSR1
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  volumes:
    - name: ckpt
      emptyDir: {{}}
    - name: out
      hostPath: {{path: {out}}}
  containers:
    - name: trainer
      image: {IMAGE}
      command: ["sh", "-c", "n=0; [ -f /checkpoint/step ] && n=$(cat /checkpoint/step); echo \"start $n\" >> /out/starts; trap 'exit 0' TERM; trap 'echo $n > /checkpoint/step; touch /checkpoint/.aistor-checkpoint-done' USR1; while :; do n=$((n+1)); sleep 0.1; done"]
      volumeMounts: [{{name: ckpt, mountPath: /checkpoint}}, {{name: out, mountPath: /out}}]
      readinessProbe:
        exec: {{command: ["true"]}}
        periodSeconds: 1
    - name: processor
      image: {IMAGE}
      command: ["sh", "-c", "exit 0"]
    - name: monitor
      image: {IMAGE}
      command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
"#,
        out = out.display()
    )
}

/// The same pod named `name`, on a read-only view of the host's root (no image needed,
/// so it runs in any containerd namespace).
pub fn host_pod(name: &str, ns: &str, out: &Path) -> String {
    pod(ns, out)
        .replace("name: tf\n", &format!("name: {name}\n"))
        .replace(
            "  annotations:\n",
            "  annotations:\n    aistor.io/rootfs: host\n",
        )
        .replace(&format!("image: {IMAGE}"), "image: host")
        .replace("[\"sh\", \"-c\"", "[\"/bin/sh\", \"-c\"")
}

/// Seed 002's request body, naming this pod and node.
pub fn request(ns: &str, node: &str) -> String {
    format!(
        r#"{{
    "pod_name": "tf",
    "pod_namespace": "{ns}",
    "source_node": "{node}",
    "target_node": "{node}",
    "preserve_pv": true,
    "timeout": 600
  }}"#
    )
}

/// The steps the trainer started from, in order.
pub fn starts(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("starts"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("start ")?.parse().ok())
        .collect()
}

/// Polls `GET /api/v1/migrations/{id}` until its status is final; on a timeout it
/// panics with the migration and what `aistorctl` says of the pods and checkpoints
/// (through `grpc`).
pub async fn until_ended(
    http: SocketAddr,
    grpc: SocketAddr,
    id: &str,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        if let Ok((200, body)) =
            super::process::try_http_json(http, "GET", &format!("/api/v1/migrations/{id}"), None)
                .await
        {
            let status = body["status"].as_str().unwrap_or("").to_owned();
            if ["completed", "failed", "cancelled"].contains(&status.as_str()) {
                return body;
            }
            if Instant::now() >= deadline {
                let server = grpc.to_string();
                let mut seen = String::new();
                for kind in ["pods", "checkpoints"] {
                    let out =
                        super::aistorctl(&["--server", &server, "get", kind, "-A", "-o", "yaml"])
                            .await
                            .unwrap_or_else(|e| e);
                    seen.push_str(&format!("--- {kind}:\n{out}\n"));
                }
                panic!("migration {id} still {status} after {within:?}: {body:#}\n{seen}");
            }
        } else {
            assert!(Instant::now() < deadline, "migration {id}: no answer");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
