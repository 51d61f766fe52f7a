//! The CLI contract of DESIGN §8, exercised through the real binary: bad
//! input exits 2 with a one-line cause and touches nothing; exit codes and
//! the JSON report follow the outcome.

mod support;

use std::process::Output;

use support::{CliHome, wasm};

/// A private state dir, so the audit log can be checked per test.
struct Run {
    home: CliHome,
}

impl Run {
    fn new(tag: &str) -> Self {
        Self {
            home: CliHome::new(tag),
        }
    }

    fn runner(&self, args: &[&str]) -> Output {
        self.home.run(args)
    }

    fn audit_exists(&self) -> bool {
        self.home.state.join("audit.jsonl").exists()
    }
}

fn testkit() -> String {
    wasm("testkit").display().to_string()
}

/// Exit 2, exactly one line on stderr naming `needle`, nothing on stdout.
fn assert_usage_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one-line cause expected, got:\n{stderr}"
    );
    assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn status_args<'a>(plugin: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "status",
        "--plugin",
        plugin,
        "--sandbox",
        "localhost",
        "--backend",
        "local",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn nonexistent_plugin_path_is_a_usage_error() {
    let run = Run::new("missing");
    assert_usage_error(
        &run.runner(&status_args("/nonexistent/plugin.wasm", &[])),
        "does not exist",
    );
    assert!(!run.audit_exists());
}

#[test]
fn a_file_that_is_not_wasm_is_a_usage_error() {
    let run = Run::new("notwasm");
    std::fs::create_dir_all(&run.home.state).unwrap();
    let file = run.home.state.join("notes.wasm");
    std::fs::write(&file, "just text").unwrap();
    assert_usage_error(
        &run.runner(&status_args(file.to_str().unwrap(), &[])),
        "not a WebAssembly file",
    );
}

#[test]
fn a_core_module_instead_of_a_component_is_a_usage_error() {
    let run = Run::new("core");
    std::fs::create_dir_all(&run.home.state).unwrap();
    let file = run.home.state.join("core.wasm");
    std::fs::write(&file, b"\0asm\x01\0\0\0").unwrap();
    assert_usage_error(
        &run.runner(&status_args(file.to_str().unwrap(), &[])),
        "core WebAssembly module",
    );
}

#[test]
fn malformed_and_unknown_settings_are_usage_errors() {
    let run = Run::new("set");
    let plugin = testkit();
    assert_usage_error(
        &run.runner(&status_args(&plugin, &["--set", "behaviour"])),
        "key=value",
    );
    assert_usage_error(
        &run.runner(&status_args(&plugin, &["--set", "behaviuor=ok"])),
        "unknown setting 'behaviuor'",
    );
    // The same typo on recover mutates nothing either.
    let mut args = status_args(&plugin, &["--set", "behaviuor=ok"]);
    args[0] = "recover";
    assert_usage_error(&run.runner(&args), "unknown setting");
    assert!(!run.audit_exists());
}

#[test]
fn unknown_backend_and_unknown_builtin_are_usage_errors() {
    let run = Run::new("backend");
    let out = run.runner(&[
        "status",
        "--plugin",
        "openclaw",
        "--sandbox",
        "x",
        "--backend",
        "kubernetes",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kubernetes"));
    assert_usage_error(
        &run.runner(&status_args("no-such-plugin", &[])),
        "unknown plugin 'no-such-plugin'",
    );
}

#[test]
fn an_unsupported_wit_major_is_a_usage_error_naming_both_versions() {
    let run = Run::new("future");
    let out = run.runner(&["plugin", "inspect", wasm("future_wit").to_str().unwrap()]);
    assert_usage_error(&out, "runner:plugin@9.0.0");
    assert!(String::from_utf8_lossy(&out.stderr).contains("runner:plugin@0.1.x"));
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn healthy_status_exits_0_with_a_v1_report() {
    let run = Run::new("healthy");
    let plugin = testkit();
    let out = run.runner(&status_args(&plugin, &["--json"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["schema"], "runner.report/v1");
    assert_eq!(report["mode"], "status");
    assert_eq!(report["outcome"], "healthy");
    assert_eq!(report["backend"], "local");
    assert_eq!(report["plugin"]["name"], "testkit");
    assert_eq!(report["plugin"]["sha256"].as_str().unwrap().len(), 64);
    let ids: Vec<&str> = report["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sandbox", "alpha", "beta"]);
    assert!(report["mutations"].as_array().unwrap().is_empty());
}

#[test]
fn broken_unknown_and_faulting_plugins_map_to_exit_1_3_4() {
    let run = Run::new("codes");
    let plugin = testkit();
    let broken = run.runner(&status_args(&plugin, &["--json", "--set", "beta=broken"]));
    assert_eq!(broken.status.code(), Some(1));
    assert_eq!(json(&broken)["failing_layer"], "beta");

    let unknown = run.runner(&status_args(&plugin, &["--json", "--set", "beta=unknown"]));
    assert_eq!(unknown.status.code(), Some(3));
    assert_eq!(json(&unknown)["outcome"], "unknown");

    let fault = run.runner(&status_args(
        &plugin,
        &["--json", "--set", "behaviour=panic"],
    ));
    assert_eq!(fault.status.code(), Some(4));
    let report = json(&fault);
    assert_eq!(report["outcome"], "plugin-fault");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("probe exploded on purpose")
    );
}

#[test]
fn recover_that_cannot_fix_a_link_exits_1_and_names_the_layer() {
    let run = Run::new("recover");
    let plugin = testkit();
    let mut args = status_args(
        &plugin,
        &["--json", "--set", "beta=broken", "--timeout", "3s"],
    );
    args[0] = "recover";
    let out = run.runner(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["mode"], "recover");
    assert_eq!(report["outcome"], "broken");
    assert_eq!(report["failing_layer"], "beta");
    let beta = &report["links"][2];
    assert_eq!(beta["before"], "broken");
    assert_eq!(beta["action"], "failed");
    assert_eq!(beta["after"], "broken");
}

#[test]
fn dry_run_prints_the_plan_and_status_refuses_dry_run() {
    let run = Run::new("dry");
    let plugin = testkit();
    let mut args = status_args(&plugin, &["--json", "--set", "beta=broken", "--dry-run"]);
    args[0] = "recover";
    let out = run.runner(&args);
    let report = json(&out);
    assert_eq!(report["mode"], "dry-run");
    assert_eq!(report["plan"], serde_json::json!(["beta"]));
    assert!(report["mutations"].as_array().unwrap().is_empty());
    assert!(!run.audit_exists(), "dry-run wrote the audit log");
    assert_usage_error(
        &run.runner(&status_args(&plugin, &["--dry-run"])),
        "--dry-run",
    );
}
