//! `fixture-gateway`: a stand-in for an OpenClaw gateway with fast, fully controlled
//! failure modes, for the e2e tests of `runner`. Std only, so its static build is quick.
//! See `fixture-gateway --help` and tests/images/fixture/.

mod args;
mod config;
mod gateway;
mod guards;
mod http;
mod json;
mod lock;
mod origin;
mod procfs;
mod sys;
mod timefmt;
mod user;

use args::Command;
use std::process::ExitCode;

fn main() -> ExitCode {
    sys::install_termination_handlers();
    let argv0 = std::env::args().next();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let env = |k: &str| std::env::var(k).ok();
    let code = match args::parse(&argv, &env) {
        Err(e) => {
            eprintln!("fixture-gateway: {e}\n\n{}", args::USAGE);
            2
        }
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            0
        }
        Ok(Command::AsUser { user, rest }) => {
            let err = user::become_user_and_exec(&user, argv0.as_deref(), &rest);
            eprintln!("fixture-gateway: --as-user {user}: {err}");
            1
        }
        Ok(Command::Run(opts)) => gateway::run(&opts),
    };
    ExitCode::from(code as u8)
}
