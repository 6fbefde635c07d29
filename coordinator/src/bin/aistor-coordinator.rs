use aistor_coordinator::config::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    aistor_coordinator::process::init_logs(cli.log_format);
    let Command::Run(args) = cli.command;
    match aistor_coordinator::run(
        args.into_config(),
        aistor_coordinator::process::termination(),
        None,
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
