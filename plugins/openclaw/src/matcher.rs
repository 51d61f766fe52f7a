//! Which processes are the OpenClaw gateway.

use runner_plugin_sdk::ProcessInfo;
use runner_plugin_sdk::process::{args, invocation, program_is};

/// `openclaw gateway`, `openclaw gateway run …` and `openclaw gateway --flag …`
/// start a gateway (also as `node …/openclaw.mjs gateway …`); `openclaw
/// gateway status|health|probe|…` are short CLI calls that are not one.
pub fn is_cli_gateway(p: &ProcessInfo) -> bool {
    let Some(next) = invocation(p, &["openclaw"], &["gateway"]) else {
        return false;
    };
    match args(p).get(next) {
        None => true,
        Some(a) => *a == "run" || a.starts_with('-'),
    }
}

/// While it boots, the gateway's process title is a bare `openclaw` (no
/// arguments); it becomes `openclaw-gateway` once it serves. NemoClaw's
/// recovery matches the same (`[o]penclaw([ -]gateway| gateway run|$)`).
pub fn is_booting_gateway(p: &ProcessInfo) -> bool {
    args(p) == ["openclaw"]
}

/// The gateway: its process title (`openclaw-gateway`, or the configured
/// names), its boot-time title, or the CLI invocation that becomes it.
pub fn gateway_matcher(names: &[String]) -> impl Fn(&ProcessInfo) -> bool + use<> {
    let names: Vec<String> = names.to_vec();
    move |p: &ProcessInfo| {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        program_is(p, &refs) || is_cli_gateway(p) || is_booting_gateway(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner_plugin_sdk::ProcessId;

    fn p(cmd: &[&str], comm: &str) -> ProcessInfo {
        ProcessInfo {
            id: ProcessId {
                pid: 10,
                start_time: 1,
            },
            ppid: 1,
            uid: 998,
            state: "S".into(),
            comm: comm.into(),
            cmdline: cmd.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn process_title_and_cli_forms_are_the_gateway() {
        let m = gateway_matcher(&["openclaw-gateway".into()]);
        assert!(m(&p(&["openclaw-gateway"], "openclaw-gatewa")));
        assert!(m(&p(
            &[
                "/usr/local/lib/dgx-spark-emu/bin/node",
                "/usr/local/bin/openclaw",
                "gateway",
                "run",
                "--port",
                "18789"
            ],
            "node"
        )));
        assert!(m(&p(&["openclaw", "gateway"], "openclaw")));
        assert!(m(&p(
            &["openclaw", "gateway", "--port", "18789"],
            "openclaw"
        )));
    }

    #[test]
    fn cli_subcommands_and_workers_are_not_the_gateway() {
        let m = gateway_matcher(&["openclaw-gateway".into()]);
        assert!(!m(&p(
            &["openclaw", "gateway", "status", "--json"],
            "openclaw"
        )));
        assert!(!m(&p(
            &[
                "node",
                "/opt/openclaw/node_modules/openclaw/dist/spawn-broker/worker.js"
            ],
            "node"
        )));
        assert!(!m(&p(
            &[
                "/bin/bash",
                "-c",
                "set -e; . \"$0\"; exec \"$@\"",
                "/tmp/env.sh",
                "openclaw",
                "gateway",
                "run"
            ],
            "bash"
        )));
        assert!(!m(&p(
            &["/bin/bash", "/usr/local/bin/some-launcher"],
            "some-launcher"
        )));
    }

    #[test]
    fn fixture_gateway_matches_when_configured() {
        let fixture = p(&["fixture-gateway"], "fixture-gateway");
        assert!(!gateway_matcher(&["openclaw-gateway".into()])(&fixture));
        assert!(gateway_matcher(&["fixture-gateway".into()])(&fixture));
        let root_launch = p(
            &["/usr/local/bin/fixture-gateway", "--as-user", "gateway"],
            "fixture-gateway",
        );
        assert!(gateway_matcher(&["fixture-gateway".into()])(&root_launch));
    }
}
