//! Logging setup shared by the agent's commands.

/// `plain` for people, `json` for log pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// Installs the global subscriber; `RUST_LOG` overrides the default `info` level.
/// Logs go to stderr so stdout stays clean for `snapshot --json`.
pub fn init(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // Already installed (tests run several agents in one process): keep the first.
    drop(result);
}
