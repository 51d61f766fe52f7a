//! `runner demo`: the whole product in under a minute. Starts a fixture
//! sandbox on the local engine, breaks it the way a container restart does
//! (tmpfs `/tmp` wiped: no guards, no env file, no gateway; no forward) and
//! with a dashboard origin the gateway does not allow yet, then runs
//! `status`, `recover`, `status` and shows the three reports.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::AuditLog;
use crate::backend::docker::DockerBackend;
use crate::backend::provision::{Provision, SandboxSpec};
use crate::backend::{Backend, SandboxState};
use crate::forward::ForwardRegistry;
use crate::recovery::report::{Mode, Outcome};
use crate::recovery::{Engine, Quiet, RunRequest};

use super::output::{self, outln};
use super::plugin_cmd::{fail, load_or_exit, new_runtime};
use super::{DemoArgs, exit};

/// Removes the demo container and volume however the demo ends.
struct Cleanup {
    engine: Arc<dyn Provision>,
    name: String,
    keep: bool,
}

impl Cleanup {
    async fn run(&self) {
        if self.keep {
            outln!(
                "\nkept sandbox {} (remove with: docker rm -f {0} && docker volume rm {0})",
                self.name
            );
            return;
        }
        // The sandbox's volume is named after it.
        if let Err(e) = self
            .engine
            .remove(&self.name, std::slice::from_ref(&self.name))
            .await
        {
            tracing::warn!(sandbox = %self.name, "cannot remove the demo sandbox: {e}");
        }
    }
}

fn banner(text: &str) {
    outln!("\n━━ {text}");
}

pub async fn run(args: DemoArgs) -> ExitCode {
    let endpoint = match super::docker_host::resolve_env() {
        Ok(e) => e,
        Err(e) => return fail(exit::USAGE, &e),
    };
    // The demo's recover mutates: no demo without a usable audit log.
    if let Err(e) = AuditLog::open_default() {
        return fail(exit::USAGE, &e.to_string());
    }
    let backend = match DockerBackend::connect_endpoint(&endpoint).await {
        Ok(b) => b,
        Err(e) => {
            return fail(
                exit::UNKNOWN,
                &format!(
                    "{e}. The demo needs a Docker engine: examples/demo.sh starts one and builds the fixture image"
                ),
            );
        }
    };
    let backend = Arc::new(backend);
    if !backend.image_exists(&args.image).await.unwrap_or(false) {
        return fail(
            exit::USAGE,
            &format!(
                "image {} not found; build it with `tests/images/build.sh fixture` (examples/demo.sh does)",
                args.image
            ),
        );
    }
    let runtime = match new_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let plugin = match load_or_exit(&runtime, "openclaw").await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let host_port = match free_port() {
        Ok(p) => p,
        Err(e) => return fail(exit::UNKNOWN, &format!("no free host port: {e}")),
    };
    let name = format!("runner-demo-{}", std::process::id());
    let cleanup = Cleanup {
        engine: backend.clone(),
        name: name.clone(),
        keep: args.keep,
    };
    let sandbox = DemoSandbox {
        engine: backend.clone(),
        backend,
        name: name.clone(),
        host_port,
    };
    let code = demo(&args, &sandbox, &runtime, &plugin).await;
    cleanup.run().await;
    code
}

/// The demo's sandbox and the engine it lives in.
struct DemoSandbox {
    engine: Arc<dyn Provision>,
    backend: Arc<dyn Backend>,
    name: String,
    /// Where its dashboard is forwarded to.
    host_port: u16,
}

async fn demo(
    args: &DemoArgs,
    sandbox: &DemoSandbox,
    runtime: &crate::runtime::Runtime,
    plugin: &crate::runtime::Plugin,
) -> ExitCode {
    let (name, host_port) = (sandbox.name.as_str(), sandbox.host_port);
    // The fixture gateway imitates OpenClaw's layout; it proves origins over
    // plain HTTP instead of OpenClaw's WebSocket handshake. The dashboard is
    // served on a free host port whose origin the gateway does not allow yet.
    let labels = HashMap::from([
        ("runner.demo".to_string(), "1".to_string()),
        ("runner.plugin".to_string(), "openclaw".to_string()),
        ("runner.host-port".to_string(), host_port.to_string()),
        (
            "runner.dashboard-origin".to_string(),
            format!("http://127.0.0.1:{host_port}"),
        ),
        (
            "runner.origin-check".to_string(),
            "http:/origin-check".to_string(),
        ),
        // Its gateway is installed as `openclaw`, so NemoClaw's default
        // relaunch (`openclaw gateway run --port 18789` as `gateway`) works.
        // The fixture has no packaged env file: the plugin writes it.
        ("runner.env-file-source".to_string(), String::new()),
    ]);
    banner(&format!(
        "1/5 starting sandbox {name} from {} (keepalive mode)",
        args.image
    ));
    let spec = SandboxSpec {
        name: name.to_string(),
        image: args.image.clone(),
        labels,
        env: vec!["SANDBOX_MODE=keepalive".into()],
        tmpfs: HashMap::from([("/tmp".to_string(), "rw,mode=1777,size=16m".to_string())]),
        volumes: vec![(name.to_string(), "/sandbox".to_string())],
    };
    if let Err(e) = sandbox.engine.create_started(&spec).await {
        return fail(
            exit::UNKNOWN,
            &format!("cannot create and start the demo sandbox: {e}"),
        );
    }
    if let Err(e) = wait_gateway(sandbox.backend.as_ref(), name, Duration::from_secs(30)).await {
        return fail(exit::UNKNOWN, &e);
    }
    outln!("   gateway up inside the sandbox; the dashboard would be http://127.0.0.1:{host_port}");

    banner("2/5 breaking it the way a container restart does: `docker restart` wipes /tmp");
    if let Err(e) = sandbox.engine.restart(name, Duration::from_secs(2)).await {
        return fail(exit::UNKNOWN, &format!("docker restart failed: {e}"));
    }
    outln!(
        "   guards, env file and gateway are gone (keepalive mode never relaunches); no forward on :{host_port}"
    );

    let forwards = Arc::new(ForwardRegistry::new());
    let audit_path = AuditLog::default_path();
    let audit = match AuditLog::open(&audit_path) {
        Ok(log) => log,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let engine = Engine {
        runtime,
        backend: sandbox.backend.clone(),
        forwards,
        audit: Some(Arc::new(audit)),
        progress: &Quiet,
    };
    let mut last = Outcome::Unknown;
    for (step, mode, title) in [
        (
            3,
            Mode::Status,
            "runner status   (probe only, never mutates)",
        ),
        (
            4,
            Mode::Recover,
            "runner recover  (repair what is broken, in dependency order, verify)",
        ),
        (5, Mode::Status, "runner status   (prove it)"),
    ] {
        banner(&format!("{step}/5 {title}"));
        let started = Instant::now();
        let report = match engine
            .run(RunRequest {
                plugin,
                sandbox: name,
                mode,
                cli_settings: &[],
                timeout: Duration::from_secs(60),
                lock_wait: Duration::from_secs(60),
            })
            .await
        {
            Ok(r) => r,
            Err(e) => return fail(exit::USAGE, &e.to_string()),
        };
        output::print(&report.to_human());
        outln!(
            "   (exit code {}, {} ms)",
            report.outcome.exit_code(),
            started.elapsed().as_millis()
        );
        last = report.outcome;
    }
    outln!(
        "\nEvery mutation above is in the audit log: {}",
        audit_path.display()
    );
    ExitCode::from(last.exit_code())
}

/// Wait until the gateway answers `/health` inside the sandbox (busybox
/// wget in the fixture image), bounded.
async fn wait_gateway(backend: &dyn Backend, name: &str, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let probe = backend
            .connect_loopback(name, 18789, Duration::from_secs(1))
            .await;
        if probe.is_ok() {
            return Ok(());
        }
        let stopped = backend.inspect(name).await.is_ok_and(|i| {
            !matches!(
                i.state,
                SandboxState::Running | SandboxState::Restarting | SandboxState::Paused
            )
        });
        if stopped {
            return Err(format!(
                "demo sandbox {name} stopped while starting; see `docker logs {name}`"
            ));
        }
        if started.elapsed() >= limit {
            return Err(format!(
                "the gateway in {name} did not start listening within {} s",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
