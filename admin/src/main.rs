//! `kefu-bridge-admin`: parse the command line, run it, and exit 0 — or
//! print one line saying why not and exit 1 (clap's usage errors exit 2).
use std::process::ExitCode;

use clap::Parser;
use kefu_bridge_admin::{cli::Cli, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match run(&cli, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kefu-bridge-admin: {error}");
            ExitCode::FAILURE
        }
    }
}
