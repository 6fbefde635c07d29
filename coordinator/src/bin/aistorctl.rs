//! `aistorctl`: the command line for people. Everything but argument parsing and
//! the exit status lives in `aistor_coordinator::cli`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use aistor_coordinator::cli::{self, Cli, CliError};
use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Bad flags: clap prints its message naming the flag and exits 2.
    let mut cli = Cli::parse();
    cli.terminal = std::io::stdout().is_terminal();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let result = cli::run(cli, &mut out).await;
    let result = result.and_then(|()| out.flush().map_err(CliError::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`aistorctl nodes | head -1`): nothing left to say.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
