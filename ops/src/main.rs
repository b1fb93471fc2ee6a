//! The `tandem` command. Parses flags and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    shared::tls::install_crypto_provider();
    let cli = ops::cli::Cli::parse();
    // Daemons log their sessions; commands only what went wrong.
    let level = if cli.command.is_daemon() {
        "info"
    } else {
        "warn"
    };
    shared::logging::init(cli.log_format, level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tandem: cannot start the runtime: {e}");
            return ExitCode::from(71);
        }
    };
    match runtime.block_on(ops::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("tandem: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}
