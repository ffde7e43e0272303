//! `kefu-bridge-admin`: parse the command line, run it, and exit 0 — or
//! print one line saying why not and exit 1 (a command line it cannot
//! read: one line too, exit 2; `--help` and `--version` print and exit 0).
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use kefu_bridge_admin::{cli::Cli, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let rendered = error.to_string();
            let reason = rendered
                .lines()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .unwrap_or("cannot read the command line");
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            eprintln!("kefu-bridge-admin: {reason} (see --help)");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    match run(&cli, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kefu-bridge-admin: {error}");
            ExitCode::FAILURE
        }
    }
}
