//! What can go wrong in `aistorctl`, each message written for the person at the terminal.

/// An `aistorctl` failure. The binary prints `error: <this>` on stderr and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--server` is not a URL tonic can dial.
    #[error("invalid coordinator address {url:?} (--server / AISTOR_SERVER): {cause}")]
    InvalidServer { url: String, cause: String },

    /// Connecting failed, or the connection broke before the call was answered.
    #[error("cannot reach coordinator at {url}: {cause}")]
    Unreachable { url: String, cause: String },

    /// The coordinator answered the call with an error status.
    #[error("{call} on coordinator at {url} failed: {code:?}: {message}")]
    Rpc {
        url: String,
        call: &'static str,
        code: tonic::Code,
        message: String,
    },

    /// Writing to stdout failed (e.g. the reading end of a pipe closed).
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),

    #[error("encoding output as JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("encoding output as YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),

    /// A file given on the command line could not be read or parsed.
    #[error("{path}: {cause}")]
    Input { path: String, cause: String },
}

impl CliError {
    /// Maps a failed call's status: `Unavailable` means the coordinator went away
    /// (or was never there), which is the same thing to the person as a failed connect.
    pub(crate) fn from_status(url: &str, call: &'static str, status: &tonic::Status) -> Self {
        if status.code() == tonic::Code::Unavailable {
            return Self::Unreachable {
                url: url.to_owned(),
                cause: status.message().to_owned(),
            };
        }
        let mut message = status.message().to_owned();
        if status.code() == tonic::Code::OutOfRange && message.contains("message length too large")
        {
            // tonic's own text names the limit but not what to do about it.
            message.push_str("; ask for smaller pages with --chunk-size");
        }
        Self::Rpc {
            url: url.to_owned(),
            call,
            code: status.code(),
            message,
        }
    }
}

/// The error and its sources joined with `: `, skipping a source whose text the
/// previous one already contains (hyper and tonic often repeat their cause).
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner: {0}")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn chain_joins_sources_and_skips_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Outer(Inner(io));
        // "inner: refused" already contains the io error's text, so it is not repeated.
        assert_eq!(chain(&err), "outer: inner: refused");
    }

    #[test]
    fn unavailable_status_reads_as_unreachable() {
        let status = tonic::Status::unavailable("connection reset");
        let err = CliError::from_status("http://h:1", "ListNodes", &status);
        assert_eq!(
            err.to_string(),
            "cannot reach coordinator at http://h:1: connection reset"
        );
        let status = tonic::Status::permission_denied("no");
        let err = CliError::from_status("http://h:1", "ListNodes", &status);
        assert_eq!(
            err.to_string(),
            "ListNodes on coordinator at http://h:1 failed: PermissionDenied: no"
        );
    }
}
