//! `runner conformance PLUGIN [--set k=v]... [--json]`.
//!
//! Exit 0: every check passed. Exit 1: the plugin is not conformant (the
//! failing checks are named). Exit 2: nothing to certify (no such file or
//! built-in, a malformed or unknown `--set`).

use std::process::ExitCode;

use crate::conformance::{self, SuiteError};
use crate::plugins::PluginSource;
use crate::settings;

use super::output;
use super::plugin_cmd::{fail, new_runtime};
use super::{ConformanceArgs, exit};

pub async fn run(args: ConformanceArgs) -> ExitCode {
    let overrides = match settings::parse_assignments(&args.set) {
        Ok(s) => s,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let source = match PluginSource::parse(&args.plugin) {
        Ok(s) => s,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let runtime = match new_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = match conformance::run(&runtime, &source, &overrides).await {
        Ok(report) => report,
        Err(e @ (SuiteError::Input(_) | SuiteError::Settings(_))) => {
            return fail(exit::USAGE, &e.to_string());
        }
    };
    let code = if report.conformant {
        exit::HEALTHY
    } else {
        exit::BROKEN
    };
    if args.json {
        output::print_json(&serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        // The rendering quotes what the plugin said: no raw control
        // characters reach the terminal.
        output::print(&output::escape_lines(&report.render()));
    }
    ExitCode::from(code)
}
