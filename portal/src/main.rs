//! The `slipway` binary: parses the command line, reads the environment once, and hands both to
//! `portal::cli::run`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    portal::install_tls_provider();
    let cli = portal::cli::Cli::parse();
    let env = portal::cli::Env { vars: std::env::vars().collect() };
    match portal::cli::run(cli, env).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
