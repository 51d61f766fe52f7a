//! How `runner` reaches the engine, as the Docker CLI would: TLS from
//! `DOCKER_TLS_VERIFY` + `DOCKER_CERT_PATH`, a `DOCKER_CONTEXT`, and the
//! configuration errors around them (exit 2 naming what is wrong) versus a
//! TLS handshake that fails (exit 3, said to be TLS). The engine is a
//! private dockerd with `--tlsverify` on `tcp://127.0.0.1:PORT`
//! ([`PrivateEngine`]); the shared engine is only the source of the image.

#[path = "support/e2e.rs"]
mod e2e;

use std::path::{Path, PathBuf};

use anyhow::Result;
use e2e::{FIXTURE_SETTINGS, Run, Runner};
use runner_e2e::{Engine, Mode, PrivateEngine, Sandbox, SandboxSpec, free_port, images};

/// A TLS private engine with the fixture image loaded.
async fn tls_engine() -> Result<(PrivateEngine, String)> {
    let shared = Engine::connect().await?;
    let image = images::ensure("fixture").await?;
    let private = PrivateEngine::start_tls().await?;
    private.load_image(shared.host(), &image)?;
    Ok((private, image))
}

/// `runner COMMAND --plugin openclaw --sandbox NAME --json` with the
/// fixture's settings and the given environment.
async fn runner(r: &Runner, command: &str, sandbox: &str, port: u16, env: &[(&str, &str)]) -> Run {
    let mut args: Vec<String> = [
        command,
        "--plugin",
        "openclaw",
        "--sandbox",
        sandbox,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--timeout".into(), "30s".into()]);
    let port = port.to_string();
    for (k, v) in FIXTURE_SETTINGS
        .iter()
        .copied()
        .chain([("host-port", port.as_str())])
    {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    }
    r.run(&args, env).await
}

fn tls_env<'a>(host: &'a str, cert_path: &'a Path, config: &'a Path) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DOCKER_HOST", host),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", cert_path.to_str().unwrap()),
        ("DOCKER_CONFIG", config.to_str().unwrap()),
    ]
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("runner-engine-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_recover_over_tls_with_the_engines_ca() -> Result<()> {
    let (private, image) = tls_engine().await?;
    let engine = private.engine().await?;
    let sb = Sandbox::create(
        &engine,
        SandboxSpec::new(&image)
            .mode(Mode::Keepalive)
            .network("none"),
    )
    .await?;
    let certs = private.certs().unwrap().client_dir();
    let config = temp_dir("tls-config");
    let host = private.tcp_host().unwrap();
    let env = tls_env(&host, &certs, &config);
    let r = Runner::new("engine-tls");
    let port = free_port()?;

    let before = runner(&r, "status", sb.name(), port, &env).await;
    assert_eq!(before.code, Some(1), "{}", before.context());
    let recovered = runner(&r, "recover", sb.name(), port, &env).await;
    recovered.expect(0, "recovered");
    let after = runner(&r, "status", sb.name(), port, &env).await;
    after.expect(0, "healthy");
    sb.remove().await?;
    Ok(())
}
