//! Names that become path components under the checkpoint directory. Each is checked
//! against the Kubernetes rule for its kind, so none can be empty, `.`, `..`, or hold a
//! `/`: a checked name never leaves the directory it is joined to.

use std::path::{Path, PathBuf};

/// A name that failed its rule; says which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {reason}")]
pub struct NameError {
    pub field: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Longest DNS label (RFC 1123), and so longest namespace, container name and id.
pub const MAX_LABEL: usize = 63;
/// Longest DNS subdomain (RFC 1123), and so longest pod and node name.
pub const MAX_SUBDOMAIN: usize = 253;

fn fail(field: &'static str, value: &str, reason: &'static str) -> NameError {
    NameError {
        field,
        value: value.to_owned(),
        reason,
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Why `label` is not an RFC 1123 label, if it is not.
fn label_problem(label: &str) -> Option<&'static str> {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (None, _) | (_, None) => Some("must not be empty"),
        _ if bytes.len() > MAX_LABEL => Some("must be at most 63 characters"),
        _ if !bytes.iter().all(|&b| is_alnum(b) || b == b'-') => {
            Some("must consist of lower-case letters, digits and '-'")
        }
        (Some(&first), Some(&last)) if !is_alnum(first) || !is_alnum(last) => {
            Some("must start and end with a lower-case letter or digit")
        }
        _ => None,
    }
}

/// A DNS label (RFC 1123): namespaces and container names.
pub fn dns_label(field: &'static str, value: &str) -> Result<(), NameError> {
    match label_problem(value) {
        Some(reason) => Err(fail(field, value, reason)),
        None => Ok(()),
    }
}

/// A DNS subdomain (RFC 1123): pod and node names. Dot-separated labels, so never
/// `.` or `..`.
pub fn dns_subdomain(field: &'static str, value: &str) -> Result<(), NameError> {
    if value.len() > MAX_SUBDOMAIN {
        return Err(fail(field, value, "must be at most 253 characters"));
    }
    match value.split('.').find_map(label_problem) {
        Some(reason) => Err(fail(field, value, reason)),
        None => Ok(()),
    }
}

/// A checkpoint id: 1 to 63 of `[a-z0-9-]`.
pub fn checkpoint_id(value: &str) -> Result<(), NameError> {
    const FIELD: &str = "checkpoint id";
    if value.is_empty() {
        return Err(fail(FIELD, value, "must not be empty"));
    }
    if value.len() > MAX_LABEL {
        return Err(fail(FIELD, value, "must be at most 63 characters"));
    }
    if !value.bytes().all(|b| is_alnum(b) || b == b'-') {
        return Err(fail(
            FIELD,
            value,
            "must consist of lower-case letters, digits and '-'",
        ));
    }
    Ok(())
}

/// `<root>/<namespace>/<pod>/<checkpoint id>/<container>`, every name checked.
pub fn container_dir(
    root: &Path,
    namespace: &str,
    pod: &str,
    id: &str,
    container: &str,
) -> Result<PathBuf, NameError> {
    dns_label("namespace", namespace)?;
    dns_subdomain("pod", pod)?;
    checkpoint_id(id)?;
    dns_label("container", container)?;
    Ok(root.join(namespace).join(pod).join(id).join(container))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "0", "a-b", "a--b", "default", &"x".repeat(63)] {
            assert_eq!(dns_label("namespace", ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "must not be empty"),
            (&"x".repeat(64), "must be at most 63 characters"),
            ("A", "must consist of lower-case letters, digits and '-'"),
            ("a.b", "must consist of lower-case letters, digits and '-'"),
            ("..", "must consist of lower-case letters, digits and '-'"),
            ("a/b", "must consist of lower-case letters, digits and '-'"),
            ("-a", "must start and end with a lower-case letter or digit"),
            ("a-", "must start and end with a lower-case letter or digit"),
            ("-", "must start and end with a lower-case letter or digit"),
        ];
        for (bad, reason) in cases {
            let e = dns_label("container", bad).unwrap_err();
            assert_eq!(e.reason, reason, "{bad:?}");
            assert_eq!(e.field, "container");
            assert_eq!(e.value, bad);
        }
        assert_eq!(
            dns_label("container", "A").unwrap_err().to_string(),
            "invalid container \"A\": must consist of lower-case letters, digits and '-'"
        );
    }

    #[test]
    fn subdomains() {
        let long = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(long.len(), 253);
        for ok in ["a", "web-0", "a.b", "node-1.example.com", long.as_str()] {
            assert_eq!(dns_subdomain("pod", ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "must not be empty"),
            (".", "must not be empty"),
            ("..", "must not be empty"),
            ("a..b", "must not be empty"),
            ("a.", "must not be empty"),
            ("a/b", "must consist of lower-case letters, digits and '-'"),
            (
                "a.-b",
                "must start and end with a lower-case letter or digit",
            ),
            ("Web", "must consist of lower-case letters, digits and '-'"),
        ];
        for (bad, reason) in cases {
            let e = dns_subdomain("pod", bad).unwrap_err();
            assert_eq!(e.reason, reason, "{bad:?}");
        }
        let e = dns_subdomain("pod", &format!("{long}a")).unwrap_err();
        assert_eq!(e.reason, "must be at most 253 characters");
        let label64 = format!("{}.b", "a".repeat(64));
        let e = dns_subdomain("pod", &label64).unwrap_err();
        assert_eq!(e.reason, "must be at most 63 characters");
    }

    #[test]
    fn layout() {
        let root = Path::new("/ckpt");
        assert_eq!(
            container_dir(root, "default", "web-0.x", "c-1", "main"),
            Ok(PathBuf::from("/ckpt/default/web-0.x/c-1/main"))
        );
        let field = |ns, pod, id, c| container_dir(root, ns, pod, id, c).unwrap_err().field;
        assert_eq!(field("..", "p", "i", "c"), "namespace");
        assert_eq!(field("n", "..", "i", "c"), "pod");
        assert_eq!(field("n", "p", "../i", "c"), "checkpoint id");
        assert_eq!(field("n", "p", "i", "a/b"), "container");
    }

    #[test]
    fn ids() {
        for ok in ["a", "-", "ckpt-1", "0-", &"9".repeat(63)] {
            assert_eq!(checkpoint_id(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "must not be empty"),
            (&"a".repeat(64), "must be at most 63 characters"),
            ("..", "must consist of lower-case letters, digits and '-'"),
            ("a/b", "must consist of lower-case letters, digits and '-'"),
            ("A", "must consist of lower-case letters, digits and '-'"),
            ("a_b", "must consist of lower-case letters, digits and '-'"),
        ];
        for (bad, reason) in cases {
            let e = checkpoint_id(bad).unwrap_err();
            assert_eq!((e.field, e.reason), ("checkpoint id", reason), "{bad:?}");
        }
    }
}
