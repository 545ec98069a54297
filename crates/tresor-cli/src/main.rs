//! The `tresor` binary: parses arguments, runs the command, prints errors as one line.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tresor_cli::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tresor: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = runtime
        .block_on(tresor_cli::commands::run(cli, &mut out))
        .and_then(|()| out.flush().map_err(tresor_cli::CliError::Output));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            drop(out);
            eprintln!("tresor: error: {e}");
            ExitCode::FAILURE
        }
    }
}
