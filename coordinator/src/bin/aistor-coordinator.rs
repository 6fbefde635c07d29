use aistor_coordinator::config::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    aistor_coordinator::process::init_logs(cli.log_format);
    let args = match cli.command {
        Command::Run(args) => args,
        Command::Pki(args) => {
            return match aistor_coordinator::pki::issue(&args.dir, &args.hosts, &args.nodes) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let config = match args.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match aistor_coordinator::run(config, aistor_coordinator::process::termination(), None).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
