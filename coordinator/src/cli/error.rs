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

    /// The coordinator wants a (valid) bearer token: gRPC `UNAUTHENTICATED`.
    #[error(
        "You must be logged in to the server (Unauthorized): {call} on coordinator at {url}: \
         {message}; give a token with --token or --token-file (AISTOR_TOKEN, AISTOR_TOKEN_FILE)"
    )]
    Unauthenticated {
        url: String,
        call: &'static str,
        message: String,
    },

    /// The token may not do this (a read-only token acting): gRPC `PERMISSION_DENIED`.
    #[error(
        "Forbidden: {call} on coordinator at {url}: {message} (acting needs a token with the act role)"
    )]
    Forbidden {
        url: String,
        call: &'static str,
        message: String,
    },

    /// `--token` or `--token-file` cannot be used. Names where the token came from,
    /// never the token.
    #[error("{from}: {cause}")]
    Token { from: String, cause: String },

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

    /// What the command waited for ended badly (a migration that failed).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// Maps a failed call's status: `Unavailable` means the coordinator went away
    /// (or was never there), which is the same thing to the person as a failed connect;
    /// `Unauthenticated` and `PermissionDenied` are about the token, said as kubectl
    /// says them.
    pub(crate) fn from_status(url: &str, call: &'static str, status: &tonic::Status) -> Self {
        if status.code() == tonic::Code::Unavailable {
            return Self::Unreachable {
                url: url.to_owned(),
                cause: status.message().to_owned(),
            };
        }
        match status.code() {
            tonic::Code::Unauthenticated => {
                return Self::Unauthenticated {
                    url: url.to_owned(),
                    call,
                    message: status.message().to_owned(),
                };
            }
            tonic::Code::PermissionDenied => {
                return Self::Forbidden {
                    url: url.to_owned(),
                    call,
                    message: status.message().to_owned(),
                };
            }
            _ => {}
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

impl CliError {
    /// Whether the coordinator refused the token (or its absence): retrying with the
    /// same one cannot help, so the live views stop instead.
    pub fn is_about_the_token(&self) -> bool {
        matches!(
            self,
            Self::Unauthenticated { .. } | Self::Forbidden { .. } | Self::Token { .. }
        )
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
        let status = tonic::Status::not_found("no");
        let err = CliError::from_status("http://h:1", "Delete", &status);
        assert_eq!(
            err.to_string(),
            "Delete on coordinator at http://h:1 failed: NotFound: no"
        );
    }

    #[test]
    fn refusals_about_the_token_read_as_kubectl_says_them() {
        let status = tonic::Status::unauthenticated("the bearer token is not valid");
        let err = CliError::from_status("http://h:1", "ListNodes", &status);
        assert!(err.is_about_the_token());
        assert_eq!(
            err.to_string(),
            "You must be logged in to the server (Unauthorized): ListNodes on coordinator at \
             http://h:1: the bearer token is not valid; give a token with --token or \
             --token-file (AISTOR_TOKEN, AISTOR_TOKEN_FILE)"
        );
        let status = tonic::Status::permission_denied("user \"ana\" may read but not act");
        let err = CliError::from_status("http://h:1", "Delete", &status);
        assert!(err.is_about_the_token());
        assert_eq!(
            err.to_string(),
            "Forbidden: Delete on coordinator at http://h:1: user \"ana\" may read but not act \
             (acting needs a token with the act role)"
        );
        let unreachable =
            CliError::from_status("http://h:1", "ListNodes", &tonic::Status::unavailable("x"));
        assert!(!unreachable.is_about_the_token());
    }
}
