//! The CLI contract (commands, flags, exit codes, JSON shapes), exercised
//! through the real binary: bad input exits 2 with a one-line cause and
//! touches nothing; exit codes and the JSON report follow the outcome.

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

#[test]
fn plugin_inspect_names_the_plugins_wit_version_and_the_range_the_host_accepts() {
    let run = Run::new("inspect-wit");
    let human = run.runner(&["plugin", "inspect", "openclaw"]);
    assert_eq!(human.status.code(), Some(0));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("wit:          runner:plugin@0.1.0"), "{text}");
    assert!(
        text.contains("host accepts: runner:plugin >=0.1.0, <0.2.0"),
        "{text}"
    );
    let out = run.runner(&["plugin", "inspect", "openclaw", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(value["wit"], "runner:plugin@0.1.0", "{value}");
    assert_eq!(value["wit_accepted"], ">=0.1.0, <0.2.0", "{value}");
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
        &["--json", "--set", "beta=broken", "--timeout", "6s"],
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

// ---- issue 10: settings validated, output per the contract ---------------

/// `status --plugin openclaw` on the local backend: read-only whatever the
/// settings, so a check that is missing shows as a run, never a mutation.
fn openclaw_status<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    status_args("openclaw", extra)
}

#[test]
fn wildcard_dashboard_origin_is_a_usage_error_and_touches_nothing() {
    let run = Run::new("origin");
    for bad in [
        "dashboard-origin=*",
        "dashboard-origin=null",
        "dashboard-origin=http://127.0.0.1:18789/path",
        "dashboard-origin=http://user@127.0.0.1:18789",
        "dashboard-origin=javascript:alert(1)",
    ] {
        assert_usage_error(
            &run.runner(&openclaw_status(&["--set", bad])),
            "setting 'dashboard-origin'",
        );
    }
    // A recover is refused before it connects to anything or takes a lock
    // (the sandbox does not exist: without the check this is exit 3).
    let out = run.runner(&[
        "recover",
        "--plugin",
        "openclaw",
        "--sandbox",
        "runner-cli-no-such-sandbox",
        "--set",
        "dashboard-origin=*",
    ]);
    assert_usage_error(&out, "scheme://host[:port]");
    assert!(!run.audit_exists());
    assert!(!run.home.state.join("locks").exists(), "a lock was taken");
    // A real origin is fine (the run goes on and ends however it ends).
    let out = run.runner(&openclaw_status(&[
        "--set",
        "dashboard-origin=https://dash.example.com:8443",
    ]));
    assert_ne!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn host_port_that_is_not_a_port_is_a_usage_error() {
    let run = Run::new("port");
    for bad in ["abc", "0", "70000", "-1", ""] {
        let set = format!("host-port={bad}");
        assert_usage_error(
            &run.runner(&openclaw_status(&["--set", &set])),
            "setting 'host-port'",
        );
    }
    // Durations by the same convention.
    assert_usage_error(
        &run.runner(&openclaw_status(&["--set", "health-timeout-ms=soon"])),
        "non-negative integer",
    );
    assert!(!run.audit_exists());
}

#[test]
fn a_setting_the_plugin_refuses_in_probe_is_a_usage_error() {
    // 99999999999 passes the host's `*-ms` check (an integer) but not the
    // plugin's u32: its probe answers "setting 'sleep-ms' ... is not a
    // number", which is a configuration error, not an unknown state.
    let run = Run::new("probe-setting");
    let out = run.runner(&status_args(
        &testkit(),
        &[
            "--json",
            "--set",
            "behaviour=sleep",
            "--set",
            "sleep-ms=99999999999",
        ],
    ));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let report = json(&out);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("setting 'sleep-ms'"),
        "{report}"
    );
    assert!(report["mutations"].as_array().unwrap().is_empty());
}

#[test]
fn empty_sandbox_name_is_a_usage_error() {
    let run = Run::new("empty-sandbox");
    let plugin = testkit();
    for backend in ["local", "docker"] {
        for name in ["", "  "] {
            let out = run.runner(&[
                "status",
                "--plugin",
                &plugin,
                "--sandbox",
                name,
                "--backend",
                backend,
            ]);
            assert_usage_error(&out, "--sandbox is empty");
        }
    }
    let mut args = status_args(&plugin, &[]);
    args[0] = "recover";
    args[4] = "";
    assert_usage_error(&run.runner(&args), "--sandbox is empty");
    assert_usage_error(
        &run.runner(&["forward", "stop", "--sandbox", ""]),
        "--sandbox is empty",
    );
    assert!(!run.audit_exists());
}

#[test]
fn malformed_docker_host_is_a_usage_error() {
    let run = Run::new("docker-host");
    let plugin = testkit();
    for bad in [
        "bogus",
        "tcp://",
        "unix://",
        "unix://relative.sock",
        "tcp://host:port",
    ] {
        let out = run
            .home
            .command()
            .env("DOCKER_HOST", bad)
            .args(["status", "--plugin", &plugin, "--sandbox", "x"])
            .output()
            .unwrap();
        assert_usage_error(&out, "DOCKER_HOST");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("unix:///") && stderr.contains("tcp://HOST"),
            "the accepted forms are not named: {stderr}"
        );
    }
    // The local backend never reads it.
    let out = run
        .home
        .command()
        .env("DOCKER_HOST", "bogus")
        .args(status_args(&plugin, &[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `runner ARGS > /dev/full`.
fn to_full_stdout(run: &Run, args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    run.home
        .command()
        .args(args)
        .stdout(full)
        .output()
        .expect("runner runs")
}

#[test]
fn full_stdout_does_not_panic() {
    let run = Run::new("full");
    let plugin = testkit();
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (status_args(&plugin, &[]), 0),
        (status_args(&plugin, &["--json"]), 0),
        (status_args(&plugin, &["--set", "beta=broken"]), 1),
        (status_args(&plugin, &["--json", "--set", "host-port=x"]), 2),
        (vec!["plugin", "list"], 0),
        (vec!["plugin", "inspect", "openclaw", "--json"], 0),
        (vec!["forward", "list"], 0),
    ];
    for (args, code) in cases {
        let out = to_full_stdout(&run, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains("could not write the output to stdout"),
            "{args:?}: no cause on stderr: {stderr}"
        );
    }
}

/// Exactly one JSON object on stdout.
fn one_object(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let first = stream
        .next()
        .unwrap_or_else(|| panic!("no JSON on stdout; stderr: {out:?}"))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"));
    assert!(stream.next().is_none(), "more than one object: {text}");
    assert!(first.is_object(), "{first}");
    assert_eq!(first["schema"], "runner.report/v1", "{first}");
    first
}

#[test]
fn json_is_one_object_on_a_usage_error() {
    let run = Run::new("json-usage");
    let plugin = testkit();
    let cases: Vec<Vec<&str>> = vec![
        openclaw_status(&["--json", "--set", "host-port=abc"]),
        status_args(&plugin, &["--json", "--set", "nonsense"]),
        status_args(&plugin, &["--json", "--set", "behaviuor=ok"]),
        status_args(&plugin, &["--json", "--dry-run"]),
        status_args("/nonexistent/plugin.wasm", &["--json"]),
        // Refused by the argument parser itself.
        status_args(&plugin, &["--json", "--timeout", "0s"]),
        vec![
            "recover",
            "--plugin",
            "openclaw",
            "--sandbox",
            "x",
            "--backend",
            "kubernetes",
            "--json",
        ],
    ];
    for args in cases {
        let out = run.runner(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let report = one_object(&out);
        assert_eq!(report["outcome"], "unknown", "{report}");
        assert!(report["mutations"].as_array().unwrap().is_empty());
        assert!(!report["message"].as_str().unwrap().is_empty(), "{report}");
    }
    let report = one_object(&run.runner(&openclaw_status(&["--json", "--set", "host-port=abc"])));
    assert_eq!(report["mode"], "status");
    assert_eq!(report["sandbox"], "localhost");
    assert_eq!(report["plugin"]["name"], "openclaw");
    assert!(!run.audit_exists());
}

#[test]
fn json_is_one_object_when_the_engine_is_unreachable() {
    let run = Run::new("json-engine");
    let out = run
        .home
        .command()
        .env("DOCKER_HOST", "unix:///nonexistent/runner-test.sock")
        .args(["status", "--plugin", &testkit(), "--sandbox", "x", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(one_object(&out)["outcome"], "unknown");
}

#[test]
fn json_is_one_object_on_a_lock_timeout() {
    let run = Run::new("json-lock");
    let plugin = testkit();
    // One recover holds the sandbox's lock while its probe sleeps...
    let mut holder_args = status_args(
        &plugin,
        &[
            "--set",
            "behaviour=sleep",
            "--set",
            "sleep-ms=6000",
            "--timeout",
            "30s",
        ],
    );
    holder_args[0] = "recover";
    let mut holder = run
        .home
        .command()
        .args(&holder_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let locks = run.home.state.join("locks");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&locks).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder took no lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // ...so a second one gives up at its deadline, and still answers once.
    let mut args = status_args(&plugin, &["--json", "--timeout", "1s"]);
    args[0] = "recover";
    let out = run.runner(&args);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let report = one_object(&out);
    assert_eq!(report["outcome"], "unknown");
    assert_eq!(report["mode"], "recover");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("another runner holds"),
        "{report}"
    );
}

#[test]
fn control_characters_are_escaped_in_human_output() {
    let run = Run::new("control");
    let plugin = testkit();
    // A sandbox name (local backend: any label) and a plugin message
    // (testkit echoes an unknown behaviour in its probe error) that try to
    // clear the screen, set the title and forge a line.
    let name = "evil\u{1b}[2J\u{1b}]0;owned\u{7}";
    let behaviour = "behaviour=x\u{1b}[31m\n  ✓ forged     healthy\t";
    let args = [
        "status",
        "--plugin",
        &plugin,
        "--sandbox",
        name,
        "--backend",
        "local",
        "--set",
        behaviour,
    ];
    let out = run.runner(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.is_empty(), "{out:?}");
    for raw in ['\u{1b}', '\u{7}', '\t'] {
        assert!(!text.contains(raw), "raw {raw:?} in: {text:?}");
    }
    assert!(
        text.contains("evil\\u{1b}[2J\\u{1b}]0;owned\\u{7}"),
        "{text}"
    );
    assert!(text.contains("x\\u{1b}[31m\\n  ✓ forged"), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("  ✓ forged")),
        "a forged line: {text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains('\u{1b}'), "raw ESC on stderr: {stderr:?}");

    // JSON stays exact.
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let report = json(&run.runner(&json_args));
    assert_eq!(report["sandbox"], name);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("x\u{1b}[31m\n  ✓ forged     healthy\t"),
        "{report}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn forward_stop_is_audited() {
    let run = Run::new("fwd-audit");
    // A forward as `recover` starts it (detached `runner forward serve`),
    // to a port of the local backend's "sandbox" (this host).
    let port = free_port();
    let target = free_port().to_string();
    let mut serve = run
        .home
        .command()
        .args([
            "forward",
            "serve",
            "--backend",
            "local",
            "--sandbox",
            "localhost",
            "--host-port",
            &port.to_string(),
            "--sandbox-port",
            &target,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let records = run.home.state.join("forwards");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&records).map_or(true, |mut d| d.next().is_none())
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    {
        if std::time::Instant::now() > deadline {
            let _ = serve.kill();
            panic!("the forward never served");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!run.audit_exists());

    let out = run.runner(&["forward", "stop", "--port", &port.to_string(), "--json"]);
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stopped = json(&out);
    assert_eq!(stopped[0]["result"], "terminated", "{stopped}");

    let audit = std::fs::read_to_string(run.home.state.join("audit.jsonl"))
        .expect("forward stop wrote no audit line");
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{audit}");
    let line = &lines[0];
    assert_eq!(line["action"], "forward.stop", "{line}");
    assert_eq!(line["sandbox"], "localhost", "{line}");
    assert_eq!(line["link"], "forward", "{line}");
    assert_eq!(line["result"], "terminated", "{line}");
    assert!(
        line["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{line}"
    );
    assert!(line["time"].is_string());
}
