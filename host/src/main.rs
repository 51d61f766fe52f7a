use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`runner plugin inspect x | head`) like
    // other Unix tools. Other write failures (a full disk, `> /dev/full`)
    // are errors the CLI reports on stderr (cli/output.rs), never panics.
    // SAFETY: resetting a signal disposition to its default at start-up,
    // before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match runner::cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return runner::cli::parse_error(e, &args),
    };
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in log files (a detached forward's stderr is one).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            runner::cli::output::error_line(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(runner::cli::exit::UNKNOWN);
        }
    };
    runtime.block_on(runner::cli::main(cli))
}
