//! `runner conformance` through the real binary: the built-in plugins are
//! certified without any engine, and each way the testkit plugin can break
//! the contract fails exactly the check that names it.

mod support;

use std::process::Output;

use serde_json::Value;
use support::{CliHome, wasm};

struct Suite {
    home: CliHome,
}

impl Suite {
    fn new(tag: &str) -> Self {
        Self {
            home: CliHome::new(&format!("conformance-{tag}")),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.home
            .command()
            .arg("conformance")
            .args(args)
            // No engine is needed: point at one that cannot exist.
            .env("DOCKER_HOST", "unix:///nonexistent/runner-conformance.sock")
            .output()
            .expect("runner runs")
    }

    /// `--json` run: exit code and the parsed report.
    fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().expect("exit code"), report)
    }
}

fn testkit() -> String {
    wasm("testkit").display().to_string()
}

/// Check ids with the given verdict, in report order.
fn with_verdict(report: &Value, verdict: &str) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["verdict"] == verdict)
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

fn detail<'a>(report: &'a Value, id: &str) -> &'a str {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_else(|| panic!("no check {id} in {report}"))
}

#[test]
fn built_in_plugins_are_conformant_without_an_engine() {
    let suite = Suite::new("builtins");
    for name in ["openclaw", "hermes"] {
        let (code, report) = suite.json(&[name]);
        assert_eq!(report["schema"], "runner.conformance/v1");
        assert_eq!(report["plugin"]["name"], name);
        assert_eq!(report["plugin"]["wit"], "0.1.0");
        assert_eq!(
            report["plugin"]["sha256"].as_str().map(str::len),
            Some(64),
            "{report}"
        );
        assert_eq!(
            with_verdict(&report, "fail"),
            Vec::<String>::new(),
            "{report}"
        );
        assert_eq!(report["checks"].as_array().unwrap().len(), 14);
        assert_eq!(report["conformant"], true);
        assert_eq!(code, 0);
        // The empty sandbox is reported as broken somewhere, and the
        // plan tried (and honestly failed or refused) a repair.
        assert!(
            detail(&report, "probe-empty").contains("broken"),
            "{report}"
        );
        assert!(
            detail(&report, "repair-plan").contains("after 0 mutation(s)")
                || detail(&report, "repair-plan").contains("plan stops"),
            "{report}"
        );
    }
}

#[test]
fn human_output_is_a_line_per_check_and_a_verdict() {
    let suite = Suite::new("human");
    let out = suite.run(&["openclaw"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("conformance of openclaw "), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  pass  ")).count(),
        14,
        "{text}"
    );
    assert!(text.contains("conformant: all 14 checks passed"), "{text}");
}

#[test]
fn claiming_health_in_an_empty_sandbox_is_not_conformant() {
    let suite = Suite::new("honest");
    let (code, report) = suite.json(&[&testkit()]);
    assert_eq!(code, 1);
    assert_eq!(report["conformant"], false);
    assert_eq!(
        with_verdict(&report, "fail"),
        ["probe-honest", "probe-unreachable"]
    );
    assert!(detail(&report, "probe-unreachable").contains("link 'alpha' reported healthy"));
}

#[test]
fn repaired_without_any_change_is_caught() {
    let suite = Suite::new("lying-repair");
    let (code, report) = suite.json(&[&testkit(), "--set", "beta=broken"]);
    assert_eq!(code, 1);
    let failed = with_verdict(&report, "fail");
    assert!(failed.contains(&"repair-plan".to_string()), "{failed:?}");
    assert!(
        failed.contains(&"repair-unreachable".to_string()),
        "{failed:?}"
    );
    assert!(
        detail(&report, "repair-plan").contains("without changing anything"),
        "{report}"
    );
}

#[test]
fn reaching_for_another_sandbox_fails_sandbox_bound() {
    let suite = Suite::new("escape");
    let (code, report) = suite.json(&[&testkit(), "--set", "behaviour=escape-exec"]);
    assert_eq!(code, 1);
    assert!(with_verdict(&report, "fail").contains(&"sandbox-bound".to_string()));
    assert!(
        detail(&report, "sandbox-bound").contains("another sandbox 'conformance-other' (in probe)"),
        "{report}"
    );
}

#[test]
fn a_write_during_probe_fails_probe_read_only() {
    let suite = Suite::new("probe-write");
    let (code, report) = suite.json(&[&testkit(), "--set", "behaviour=symlink-write"]);
    assert_eq!(code, 1);
    let failed = with_verdict(&report, "fail");
    assert!(
        failed.contains(&"probe-read-only".to_string()),
        "{failed:?}"
    );
    assert_eq!(
        detail(&report, "probe-read-only"),
        "mutating files call during probe (in probe)"
    );
    // The same plugin "repairs" a link it never declared by writing a file.
    assert!(
        failed.contains(&"repair-unknown-link".to_string()),
        "{failed:?}"
    );
}

#[test]
fn an_undeclared_capability_fails_capabilities_declared() {
    let suite = Suite::new("undeclared-cap");
    let (code, report) = suite.json(&[&testkit(), "--set", "behaviour=undeclared-capability"]);
    assert_eq!(code, 1);
    assert!(with_verdict(&report, "fail").contains(&"capabilities-declared".to_string()));
    assert_eq!(
        detail(&report, "capabilities-declared"),
        "processes call without declaring 'processes' (in probe)"
    );
}

#[test]
fn a_trap_is_named_and_what_depends_on_it_is_not_run() {
    let suite = Suite::new("panic");
    let (code, report) = suite.json(&[&testkit(), "--set", "behaviour=panic"]);
    assert_eq!(code, 1);
    assert!(
        detail(&report, "probe-empty").contains("probe exploded on purpose"),
        "{report}"
    );
    assert_eq!(
        with_verdict(&report, "not-run"),
        [
            "probe-honest",
            "probe-stable",
            "repair-plan",
            "repair-unknown-link",
            "repair-unreachable"
        ]
    );
}

#[test]
fn an_undeclared_link_in_a_probe_is_a_contract_failure() {
    let suite = Suite::new("undeclared-link");
    let (code, report) = suite.json(&[&testkit(), "--set", "behaviour=undeclared-link"]);
    assert_eq!(code, 1);
    assert!(
        detail(&report, "probe-empty").contains("link 'gamma', which describe never declared"),
        "{report}"
    );
}

#[test]
fn an_unsupported_wit_version_fails_loads_and_nothing_else_runs() {
    let suite = Suite::new("future-wit");
    let (code, report) = suite.json(&[&wasm("future_wit").display().to_string()]);
    assert_eq!(code, 1);
    assert_eq!(with_verdict(&report, "fail"), ["loads"]);
    assert_eq!(with_verdict(&report, "not-run").len(), 13);
    assert!(
        detail(&report, "loads").contains("runner:plugin@9.0.0"),
        "{report}"
    );
    assert_eq!(report["plugin"]["name"], Value::Null);
}

#[test]
fn nothing_to_certify_is_a_usage_error() {
    let suite = Suite::new("usage");
    for (args, needle) in [
        (vec!["/nonexistent/plugin.wasm"], "does not exist"),
        (vec!["no-such-builtin"], "unknown plugin"),
        (
            vec!["openclaw", "--set", "no-such-key=1"],
            "unknown setting 'no-such-key'",
        ),
        (
            vec!["openclaw", "--set", "novalue"],
            "not of the form key=value",
        ),
    ] {
        let out = suite.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
