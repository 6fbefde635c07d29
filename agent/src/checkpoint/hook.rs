//! The checkpoint hook a pod asks for (annotation [`HOOK_ANNOTATION`]), parsed from the
//! annotation's value. Pure; running a hook is [`super::trigger`].
//!
//! | value | what the agent does | finished when |
//! |---|---|---|
//! | `signal:SIGUSR1` (any name, `SIG` optional, any case; not KILL or STOP) | sends the signal to the container's main pid | the application writes the marker [`DONE_MARKER`] in its checkpoint directory |
//! | `exec:<command>` (split like a POSIX shell, no shell runs) | runs the command in the container | the command exits with status 0 |
//! | `http:<port><path>` e.g. `http:8080/checkpoint` | `GET http://127.0.0.1:<port><path>` (host network) | the answer is 2xx |
//!
//! The details of "finished" are in [`super::trigger`].

use rustix::process::Signal;

/// The annotation naming the hook.
pub const HOOK_ANNOTATION: &str = "aistor.io/checkpoint-hook";
/// The annotation naming the checkpoint directory inside the container.
pub const PATH_ANNOTATION: &str = "aistor.io/checkpoint-path";
/// The checkpoint directory inside the container when [`PATH_ANNOTATION`] is absent.
pub const DEFAULT_CHECKPOINT_PATH: &str = "/checkpoint";
/// The file a signalled application writes (or touches) in its checkpoint directory when
/// its checkpoint is complete. Never staged.
pub const DONE_MARKER: &str = ".aistor-checkpoint-done";
/// Longest hook value accepted.
pub const MAX_HOOK_LEN: usize = 4096;

/// Signals a hook may name. KILL and STOP are left out: the application cannot catch
/// them, so it could never write its checkpoint.
const SIGNALS: [(&str, Signal); 29] = [
    ("SIGHUP", Signal::HUP),
    ("SIGINT", Signal::INT),
    ("SIGQUIT", Signal::QUIT),
    ("SIGILL", Signal::ILL),
    ("SIGTRAP", Signal::TRAP),
    ("SIGABRT", Signal::ABORT),
    ("SIGIOT", Signal::ABORT),
    ("SIGBUS", Signal::BUS),
    ("SIGFPE", Signal::FPE),
    ("SIGUSR1", Signal::USR1),
    ("SIGSEGV", Signal::SEGV),
    ("SIGUSR2", Signal::USR2),
    ("SIGPIPE", Signal::PIPE),
    ("SIGALRM", Signal::ALARM),
    ("SIGTERM", Signal::TERM),
    ("SIGCHLD", Signal::CHILD),
    ("SIGCONT", Signal::CONT),
    ("SIGTSTP", Signal::TSTP),
    ("SIGTTIN", Signal::TTIN),
    ("SIGTTOU", Signal::TTOU),
    ("SIGURG", Signal::URG),
    ("SIGXCPU", Signal::XCPU),
    ("SIGXFSZ", Signal::XFSZ),
    ("SIGVTALRM", Signal::VTALARM),
    ("SIGPROF", Signal::PROF),
    ("SIGWINCH", Signal::WINCH),
    ("SIGIO", Signal::IO),
    ("SIGPWR", Signal::POWER),
    ("SIGSYS", Signal::SYS),
];

/// A parsed hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// `name` is the canonical `SIG…` name.
    Signal { name: &'static str, signal: Signal },
    /// `command` is the text after `exec:`; `argv` its words.
    Exec { command: String, argv: Vec<String> },
    /// `path` starts with `/` and may carry a query.
    Http { port: u16, path: String },
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Signal { name, .. } => write!(f, "signal:{name}"),
            Self::Exec { command, .. } => write!(f, "exec:{command}"),
            Self::Http { port, path } => write!(f, "http:{port}{path}"),
        }
    }
}

/// A hook value that cannot be used; names the annotation and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {HOOK_ANNOTATION}={value:?}: {reason}")]
pub struct HookError {
    pub value: String,
    pub reason: String,
}

/// The hook from the annotation's value, if the pod has the annotation.
pub fn from_annotation(value: Option<&str>) -> Result<Option<Hook>, HookError> {
    value.map(parse).transpose()
}

/// Parses one hook value.
pub fn parse(value: &str) -> Result<Hook, HookError> {
    let bad = |reason: &str| HookError {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if value.len() > MAX_HOOK_LEN {
        return Err(bad("longer than 4096 bytes"));
    }
    let (kind, rest) = value
        .trim()
        .split_once(':')
        .ok_or_else(|| bad("expected signal:<NAME>, exec:<command> or http:<port><path>"))?;
    match kind {
        "signal" => signal(rest)
            .map(|(name, signal)| Hook::Signal { name, signal })
            .ok_or_else(|| bad(&format!("unknown signal {rest:?}"))),
        "exec" => {
            let argv =
                shlex::split(rest).ok_or_else(|| bad("unbalanced quotes or a trailing '\\'"))?;
            if argv.is_empty() {
                return Err(bad("no command after exec:"));
            }
            Ok(Hook::Exec {
                command: rest.to_owned(),
                argv,
            })
        }
        "http" => {
            let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0 && !port.starts_with('+'))
                .ok_or_else(|| bad(&format!("port {port:?} is not 1 to 65535")))?;
            if path.is_empty() {
                return Err(bad("no path after the port, e.g. http:8080/checkpoint"));
            }
            path.parse::<hyper::http::uri::PathAndQuery>()
                .map_err(|e| bad(&format!("path {path:?}: {e}")))?;
            if path.contains('#') {
                return Err(bad("a fragment is not sent to the server"));
            }
            Ok(Hook::Http {
                port,
                path: path.to_owned(),
            })
        }
        other => Err(bad(&format!(
            "unknown hook kind {other:?}; expected signal, exec or http"
        ))),
    }
}

/// The signal named `name` (`USR1`, `SIGUSR1`, `sigusr1`).
fn signal(name: &str) -> Option<(&'static str, Signal)> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS
        .iter()
        .find(|(n, _)| *n == full)
        .map(|(n, s)| (*n, *s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(value: &str) -> String {
        let e = parse(value).unwrap_err();
        assert_eq!(e.value, value);
        e.reason
    }

    #[test]
    fn signals() {
        for (value, name, signal) in [
            ("signal:SIGUSR1", "SIGUSR1", Signal::USR1),
            ("signal:USR2", "SIGUSR2", Signal::USR2),
            ("signal:sigterm", "SIGTERM", Signal::TERM),
            ("  signal:hup ", "SIGHUP", Signal::HUP),
            ("signal:SIGIOT", "SIGIOT", Signal::ABORT),
            ("signal:SYS", "SIGSYS", Signal::SYS),
        ] {
            let hook = parse(value).unwrap();
            assert_eq!(hook, Hook::Signal { name, signal }, "{value}");
            assert_eq!(hook.to_string(), format!("signal:{name}"));
        }
        // every table entry is reachable by its name
        for (name, signal) in SIGNALS {
            assert_eq!(
                parse(&format!("signal:{name}")),
                Ok(Hook::Signal { name, signal })
            );
        }
        for bad in [
            "signal:KILL",
            "signal:SIGSTOP",
            "signal:",
            "signal:10",
            "signal:SIG",
            "signal:SIGSIGUSR1",
        ] {
            assert!(reason(bad).starts_with("unknown signal"), "{bad}");
        }
        assert_eq!(reason("signal:FOO"), "unknown signal \"FOO\"");
    }

    #[test]
    fn execs() {
        let hook = parse(r#"exec:sh -c "kill -USR1 1 && sleep 1""#).unwrap();
        assert_eq!(
            hook,
            Hook::Exec {
                command: r#"sh -c "kill -USR1 1 && sleep 1""#.into(),
                argv: vec!["sh".into(), "-c".into(), "kill -USR1 1 && sleep 1".into()],
            }
        );
        assert_eq!(hook.to_string(), r#"exec:sh -c "kill -USR1 1 && sleep 1""#);
        assert_eq!(
            parse("exec:/bin/save"),
            Ok(Hook::Exec {
                command: "/bin/save".into(),
                argv: vec!["/bin/save".into()]
            })
        );
        assert_eq!(reason("exec:"), "no command after exec:");
        assert_eq!(reason("exec:   "), "no command after exec:");
        assert_eq!(
            reason("exec:sh -c 'x"),
            "unbalanced quotes or a trailing '\\'"
        );
    }

    #[test]
    fn https() {
        let hook = parse("http:8080/checkpoint?wait=1").unwrap();
        assert_eq!(
            hook,
            Hook::Http {
                port: 8080,
                path: "/checkpoint?wait=1".into()
            }
        );
        assert_eq!(hook.to_string(), "http:8080/checkpoint?wait=1");
        assert_eq!(
            parse("http:1/"),
            Ok(Hook::Http {
                port: 1,
                path: "/".into()
            })
        );
        assert_eq!(
            parse("http:65535/x"),
            Ok(Hook::Http {
                port: 65535,
                path: "/x".into()
            })
        );
        assert_eq!(reason("http:0/x"), "port \"0\" is not 1 to 65535");
        assert_eq!(reason("http:65536/x"), "port \"65536\" is not 1 to 65535");
        assert_eq!(reason("http:+80/x"), "port \"+80\" is not 1 to 65535");
        assert_eq!(reason("http:/x"), "port \"\" is not 1 to 65535");
        assert_eq!(reason("http:x/x"), "port \"x\" is not 1 to 65535");
        assert_eq!(
            reason("http:8080"),
            "no path after the port, e.g. http:8080/checkpoint"
        );
        assert!(reason("http:8080/a b").starts_with("path \"/a b\": "));
        assert_eq!(
            reason("http:8080/a#b"),
            "a fragment is not sent to the server"
        );
    }

    #[test]
    fn bad_values() {
        assert_eq!(
            reason("SIGUSR1"),
            "expected signal:<NAME>, exec:<command> or http:<port><path>"
        );
        assert_eq!(
            reason(""),
            "expected signal:<NAME>, exec:<command> or http:<port><path>"
        );
        assert_eq!(
            reason("grpc:80"),
            "unknown hook kind \"grpc\"; expected signal, exec or http"
        );
        let long = format!("exec:{}", "x".repeat(MAX_HOOK_LEN));
        assert_eq!(reason(&long), "longer than 4096 bytes");
        assert!(parse(&format!("exec:{}", "x".repeat(MAX_HOOK_LEN - 5))).is_ok());
        assert_eq!(
            parse("signal:FOO").unwrap_err().to_string(),
            "annotation aistor.io/checkpoint-hook=\"signal:FOO\": unknown signal \"FOO\""
        );
    }

    #[test]
    fn annotations() {
        assert_eq!(from_annotation(None), Ok(None));
        assert_eq!(
            from_annotation(Some("signal:USR1")),
            Ok(Some(Hook::Signal {
                name: "SIGUSR1",
                signal: Signal::USR1
            }))
        );
        assert!(from_annotation(Some("nope")).is_err());
    }
}
