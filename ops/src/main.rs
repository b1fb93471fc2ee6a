//! The `tandem` command. Parses flags and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    shared::tls::install_crypto_provider();
    let cli = ops::cli::Cli::parse();
    shared::logging::init(cli.log_format, "warn");
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
