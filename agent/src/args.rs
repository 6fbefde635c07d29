//! Command-line flags (every one also an `AISTOR_AGENT_*` environment variable),
//! validated into a [`crate::config`] value. A bad value fails here, naming the flag.

use crate::config::{DEFAULT_DISK_EXCLUDE, HostConfig, RunConfig};
use crate::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand};
use regex::Regex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "aistor-agent",
    version,
    about = "aistor node agent: measures this node and streams it to the coordinator"
)]
pub struct Cli {
    /// Log format: plain for people, json for log pipelines.
    #[arg(long, env = "AISTOR_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collect every interval and stream to the coordinator until SIGTERM/SIGINT.
    Run(RunArgs),
    /// Collect once (two readings an interval apart, so rates are real) and print.
    Snapshot(SnapshotArgs),
}

#[derive(Debug, Args)]
pub struct HostArgs {
    /// Where the host's root filesystem is mounted.
    #[arg(long, env = "AISTOR_AGENT_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
    /// This node's name (Kubernetes: spec.nodeName). Default: the host name.
    #[arg(long, env = "AISTOR_AGENT_NODE_NAME")]
    pub node_name: Option<String>,
    /// Regular expression of block device names to leave out.
    #[arg(long, env = "AISTOR_AGENT_DISK_EXCLUDE", default_value = DEFAULT_DISK_EXCLUDE, value_parser = parse_regex)]
    pub disk_exclude: Regex,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Coordinator gRPC URL.
    #[arg(long, env = "AISTOR_AGENT_COORDINATOR", default_value = "http://127.0.0.1:50051", value_parser = parse_url)]
    pub coordinator: String,
    /// Collection interval (e.g. 1s, 500ms).
    #[arg(long, env = "AISTOR_AGENT_INTERVAL", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Address of /live, /ready and /metrics.
    #[arg(long, env = "AISTOR_AGENT_ADMIN_ADDR", default_value = "0.0.0.0:9101")]
    pub admin_addr: SocketAddr,
    /// How long unacknowledged reports are kept for replay after a coordinator outage.
    #[arg(long, env = "AISTOR_AGENT_REPLAY_BUFFER", default_value = "5m", value_parser = parse_duration)]
    pub replay_buffer: Duration,
    /// Longest drain after SIGTERM.
    #[arg(long, env = "AISTOR_AGENT_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Print the report as JSON (the only format for now; kept explicit for scripts).
    #[arg(long)]
    pub json: bool,
    /// Time between the two readings.
    #[arg(long, env = "AISTOR_AGENT_INTERVAL", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 1s, 500ms or 5m)"))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(d)
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| e.to_string())
}

fn parse_url(s: &str) -> Result<String, String> {
    let uri: tonic::transport::Uri = s.parse().map_err(|e| format!("not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(s.to_owned()),
        _ => Err("expected http://HOST:PORT or https://HOST:PORT".into()),
    }
}

impl HostArgs {
    pub fn into_config(self) -> HostConfig {
        let node_name = self.node_name.filter(|n| !n.is_empty()).unwrap_or_else(|| {
            let fs = crate::source::HostFs::new(&self.host_root);
            fs.read_trimmed("/proc/sys/kernel/hostname")
                .unwrap_or_else(|_| "unknown".into())
        });
        HostConfig {
            host_root: self.host_root,
            node_name,
            disk_exclude: self.disk_exclude,
        }
    }
}

impl RunArgs {
    pub fn into_config(self) -> RunConfig {
        RunConfig {
            host: self.host.into_config(),
            coordinator: self.coordinator,
            interval: self.interval,
            admin_addr: self.admin_addr,
            replay_buffer: self.replay_buffer,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("aistor-agent").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let Command::Run(run) = parse(&["run", "--node-name", "n1"]).unwrap().command else {
            panic!("run")
        };
        let c = run.into_config();
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.replay_buffer, Duration::from_secs(300));
        assert_eq!(c.host.node_name, "n1");
        assert_eq!(c.admin_addr, "0.0.0.0:9101".parse().unwrap());
        assert!(c.host.disk_exclude.is_match("loop3") && !c.host.disk_exclude.is_match("nvme0n1"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (&["run", "--interval", "abc"][..], "--interval"),
            (&["run", "--interval", "1ms"][..], "--interval"),
            (&["run", "--coordinator", "localhost"][..], "--coordinator"),
            (&["run", "--admin-addr", "nope"][..], "--admin-addr"),
            (&["run", "--disk-exclude", "(["][..], "--disk-exclude"),
            (&["run", "--log-format", "xml"][..], "--log-format"),
            (
                &["snapshot", "--replay-buffer", "1s"][..],
                "--replay-buffer",
            ),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}
