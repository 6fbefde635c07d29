//! The kubeconfig that points a real client at the fake.

/// Cluster, user and context are all named `aistor-fake`; plain HTTP, no credentials.
pub(crate) fn yaml(server_url: &str, namespace: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars: no value can break the document.
    let server_url = serde_json::Value::from(server_url);
    let namespace = serde_json::Value::from(namespace);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: aistor-fake
  cluster:
    server: {server_url}
users:
- name: aistor-fake
  user: {{}}
contexts:
- name: aistor-fake
  context:
    cluster: aistor-fake
    user: aistor-fake
    namespace: {namespace}
current-context: aistor-fake
preferences: {{}}
"
    )
}
