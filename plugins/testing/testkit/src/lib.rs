//! A plugin whose behaviour is chosen by the `behaviour` setting, so the host
//! tests can make one component loop, exhaust memory, panic, break the
//! contract or try to escape its sandbox, then prove the next call is clean.
//! `repair-argv` + `repair-fault` make the repair of `beta` mutate the sandbox
//! first and then fault, for the chaos suite (host/tests/chaos.rs).

use runner_plugin_sdk::bindings::runner::plugin::types::LinkReport;
use runner_plugin_sdk::{
    Plugin, PluginInfo, RepairOutcome, Report, Sandbox, Settings, Target, link, setting,
};

struct Testkit;

impl Plugin for Testkit {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "testkit".into(),
            version: "0.1.0".into(),
            agent_kinds: vec!["test".into()],
            links: vec![
                link("alpha", "always healthy unless told otherwise", &[]),
                link("beta", "health chosen by the `beta` setting", &["alpha"]),
            ],
            settings: vec![
                setting(
                    "behaviour",
                    "ok",
                    "ok|loop|membomb|panic|escape-exec|symlink-write|undeclared-link|undeclared-capability|exec|sleep",
                ),
                setting("beta", "healthy", "healthy|broken|unknown"),
                setting("argv", "true", "comma-separated argv for behaviour=exec"),
                setting(
                    "user",
                    "",
                    "user for behaviour=exec (empty: the sandbox's default)",
                ),
                setting(
                    "path",
                    "/tmp/testkit-out",
                    "target path for behaviour=symlink-write",
                ),
                setting("sleep-ms", "0", "milliseconds to sleep for behaviour=sleep"),
                setting(
                    "repair-fault",
                    "none",
                    "none|loop|membomb|panic: what the repair of beta does after `repair-argv`",
                ),
                setting(
                    "repair-argv",
                    "",
                    "argv the repair of beta runs in the sandbox before `repair-fault` (empty: none)",
                ),
            ],
            capabilities: vec!["exec".into(), "files".into(), "log".into()],
        }
    }

    fn probe(target: Target) -> Result<Vec<LinkReport>, String> {
        let settings = Settings::new(&target);
        let sandbox = Sandbox::new(&target.sandbox);
        let alpha = match settings.get("behaviour")? {
            "ok" => Report::healthy("alpha", "fine"),
            "loop" => spin_forever(),
            "membomb" => exhaust_memory(),
            "panic" => panic!("testkit: probe exploded on purpose"),
            "escape-exec" => {
                let other = Sandbox::new(format!("{}-other", target.sandbox));
                match other.command(["true"]).run() {
                    Ok(out) => Report::healthy("alpha", "exec in another sandbox ran")
                        .evidence("exit", out.exit_code),
                    Err(e) => Report::broken("alpha", "exec in another sandbox failed")
                        .evidence("error", e.kind())
                        .evidence("message", e),
                }
            }
            "symlink-write" => {
                let path = settings.get("path")?;
                match sandbox.write(path, b"escaped\n", 0o644, 0, 0) {
                    Ok(()) => Report::healthy("alpha", "write succeeded"),
                    Err(e) => Report::broken("alpha", "write failed")
                        .evidence("error", e.kind())
                        .evidence("message", e),
                }
            }
            "undeclared-link" => Report::healthy("gamma", "a link describe never declared"),
            // `processes` is not among the declared capabilities.
            "undeclared-capability" => match sandbox.processes() {
                Ok(list) => Report::healthy("alpha", "listed processes without declaring it")
                    .evidence("count", list.len()),
                Err(e) => Report::unknown("alpha", "listing processes failed")
                    .evidence("error", e.kind())
                    .evidence("message", e),
            },
            "exec" => {
                let argv = settings.list("argv")?;
                let mut command = sandbox.command(argv).timeout_ms(5_000);
                if let Some(user) = settings.get("user").ok().filter(|u| !u.is_empty()) {
                    command = command.user(user);
                }
                match command.run() {
                    Ok(out) => Report::healthy("alpha", "exec ran")
                        .evidence("exit", out.exit_code)
                        .evidence("stdout", String::from_utf8_lossy(&out.stdout))
                        .evidence("stderr", String::from_utf8_lossy(&out.stderr)),
                    Err(e) => Report::broken("alpha", "exec failed")
                        .evidence("error", e.kind())
                        .evidence("message", e),
                }
            }
            "sleep" => {
                let ms = settings.u32("sleep-ms")?;
                std::thread::sleep(std::time::Duration::from_millis(ms.into()));
                Report::healthy("alpha", format!("slept {ms} ms"))
            }
            other => return Err(format!("unknown behaviour '{other}'")),
        };
        let beta = match settings.get("beta")? {
            "broken" => Report::broken("beta", "told to be broken").repairable(),
            "unknown" => Report::unknown("beta", "told to be unknown"),
            _ => Report::healthy("beta", "fine"),
        };
        Ok(vec![alpha.build(), beta.build()])
    }

    fn repair(target: Target, link: String) -> RepairOutcome {
        let settings = Settings::new(&target);
        let sandbox = Sandbox::new(&target.sandbox);
        if link == "beta" {
            // A repair that mutates the sandbox, then faults: what is left
            // behind must not block the next run.
            let argv = settings.argv("repair-argv").unwrap_or_default();
            if !argv.is_empty()
                && let Err(e) = sandbox.command(argv).timeout_ms(5_000).run()
            {
                return RepairOutcome::Failed(format!("repair-argv: {}: {e:?}", e.kind()));
            }
            match settings.get("repair-fault") {
                Ok("loop") => spin_forever(),
                Ok("membomb") => exhaust_memory(),
                Ok("panic") => panic!("testkit: repair exploded on purpose"),
                _ => {}
            }
        }
        match (settings.get("behaviour"), link.as_str()) {
            (Ok("loop"), _) => spin_forever(),
            // The same escape attempts as in probe, but in repair, where
            // mutations are allowed: the host must still refuse them.
            (Ok("symlink-write"), _) => {
                let path = settings.get("path").unwrap_or("/tmp/testkit-out");
                match sandbox.write(path, b"escaped\n", 0o644, 0, 0) {
                    Ok(()) => RepairOutcome::Repaired(format!("wrote {path}")),
                    Err(e) => RepairOutcome::Failed(format!("{}: {e:?}", e.kind())),
                }
            }
            (Ok("escape-exec"), _) => {
                let other = Sandbox::new(format!("{}-other", target.sandbox));
                match other.command(["true"]).run() {
                    Ok(_) => RepairOutcome::Repaired("exec in another sandbox ran".into()),
                    Err(e) => RepairOutcome::Failed(format!("{}: {e:?}", e.kind())),
                }
            }
            (_, "beta") => RepairOutcome::Repaired("beta repaired (nothing real to do)".into()),
            (_, other) => RepairOutcome::Refused(format!("testkit cannot repair '{other}'")),
        }
    }
}

fn spin_forever() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the allocation is real, not just reserved.
        hoard.push(vec![0xA5; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

runner_plugin_sdk::export_plugin!(Testkit);
