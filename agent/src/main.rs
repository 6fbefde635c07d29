use aistor_agent::args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    aistor_agent::telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Run(args) => {
            aistor_agent::run(args.into_config(), aistor_agent::shutdown::signal(), None).await
        }
        Command::Measure(args) => {
            let run = args.run();
            aistor_agent::measure_once(args.host.into_config(), run, &mut std::io::stdout().lock())
                .await
        }
        Command::Restore(args) => {
            aistor_agent::restore(args.request(), &mut std::io::stdout().lock()).await
        }
        Command::Snapshot(args) => {
            let host = args.host.into_config();
            aistor_agent::snapshot(host, args.interval, &mut std::io::stdout().lock()).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
