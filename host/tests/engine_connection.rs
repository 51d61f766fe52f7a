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

/// Everything the run printed, for message checks.
fn said(run: &Run) -> String {
    format!("{}\n{}", run.stdout, run.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_a_tls_verification_failure_and_plain_http_is_told_to_use_tls() -> Result<()>
{
    let (private, _) = tls_engine().await?;
    let config = temp_dir("wrong-ca-config");
    let host = private.tcp_host().unwrap();
    let r = Runner::new("engine-wrong-ca");
    let wrong = private.certs().unwrap().wrong_ca_dir();

    let run = runner(
        &r,
        "status",
        "any",
        free_port()?,
        &tls_env(&host, &wrong, &config),
    )
    .await;
    assert_eq!(run.code, Some(3), "{}", run.context());
    let text = said(&run);
    assert!(text.contains("TLS verification"), "{}", run.context());
    assert!(
        text.contains(&format!("DOCKER_CERT_PATH={}", wrong.display())),
        "{}",
        run.context()
    );
    assert!(text.contains("UnknownIssuer"), "{}", run.context());

    // No TLS variables: plain HTTP, which the TLS port refuses; the
    // message points at the variables.
    let plain = [
        ("DOCKER_HOST", host.as_str()),
        ("DOCKER_CONFIG", config.to_str().unwrap()),
    ];
    let run = runner(&r, "status", "any", free_port()?, &plain).await;
    assert_eq!(run.code, Some(3), "{}", run.context());
    assert!(
        said(&run).contains("speaks TLS") && said(&run).contains("DOCKER_TLS_VERIFY=1"),
        "{}",
        run.context()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_with_a_missing_key_is_a_usage_error_naming_the_file() -> Result<()> {
    let dir = temp_dir("missing-key");
    let certs = runner_e2e::test_certs::TestCerts::make(&dir.join("made"))?;
    let client = certs.client_dir();
    std::fs::remove_file(client.join("key.pem"))?;
    let r = Runner::new("engine-missing-key");
    // Nothing listens there: exit 2 comes before any connection.
    let host = format!("tcp://127.0.0.1:{}", free_port()?);
    let run = runner(
        &r,
        "status",
        "any",
        free_port()?,
        &tls_env(&host, &client, &dir),
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.context());
    let key = client.join("key.pem");
    assert!(
        said(&run).contains(key.to_str().unwrap()) && said(&run).contains("does not exist"),
        "{}",
        run.context()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `docker context create NAME --docker host=…,ca=…,cert=…,key=…` under
/// `config` (DOCKER_CONFIG), by the Docker CLI itself: runner must read the
/// store the CLI writes.
fn create_context(config: &Path, name: &str, host: &str, certs: &Path) -> Result<()> {
    let docker = format!(
        "host={host},ca={},cert={},key={}",
        certs.join("ca.pem").display(),
        certs.join("cert.pem").display(),
        certs.join("key.pem").display()
    );
    let out = std::process::Command::new("/usr/bin/docker")
        .args(["context", "create", name, "--docker", &docker])
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "docker context create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_context_for_the_private_engine_is_followed_and_docker_host_wins() -> Result<()> {
    let (private, image) = tls_engine().await?;
    let engine = private.engine().await?;
    let sb = Sandbox::create(
        &engine,
        SandboxSpec::new(&image)
            .mode(Mode::Keepalive)
            .network("none"),
    )
    .await?;
    let config = temp_dir("context-config");
    let client = private.certs().unwrap().client_dir();
    create_context(
        &config,
        "private-tls",
        &private.tcp_host().unwrap(),
        &client,
    )?;
    let cfg = config.to_str().unwrap();
    let r = Runner::new("engine-context");
    let port = free_port()?;

    let by_env = [("DOCKER_CONTEXT", "private-tls"), ("DOCKER_CONFIG", cfg)];
    runner(&r, "recover", sb.name(), port, &by_env)
        .await
        .expect(0, "recovered");

    // `docker context use` writes currentContext into config.json.
    let used = std::process::Command::new("/usr/bin/docker")
        .args(["context", "use", "private-tls"])
        .env("DOCKER_CONFIG", &config)
        .output()?;
    assert!(
        used.status.success(),
        "{}",
        String::from_utf8_lossy(&used.stderr)
    );
    runner(&r, "status", sb.name(), port, &[("DOCKER_CONFIG", cfg)])
        .await
        .expect(0, "healthy");

    // DOCKER_HOST set wins over the context, as in the CLI.
    let elsewhere = format!("unix://{}/no-engine.sock", config.display());
    let run = runner(
        &r,
        "status",
        sb.name(),
        port,
        &[
            ("DOCKER_CONFIG", cfg),
            ("DOCKER_CONTEXT", "private-tls"),
            ("DOCKER_HOST", &elsewhere),
        ],
    )
    .await;
    assert_eq!(run.code, Some(3), "{}", run.context());
    assert!(said(&run).contains("no engine socket"), "{}", run.context());
    sb.remove().await?;
    std::fs::remove_dir_all(&config)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_context_is_a_usage_error_naming_it() -> Result<()> {
    let config = temp_dir("unknown-context");
    let r = Runner::new("engine-unknown-context");
    let run = runner(
        &r,
        "status",
        "any",
        free_port()?,
        &[
            ("DOCKER_CONTEXT", "no-such-ctx"),
            ("DOCKER_CONFIG", config.to_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(
        said(&run).contains("'no-such-ctx'") && said(&run).contains("docker context ls"),
        "{}",
        run.context()
    );
    std::fs::remove_dir_all(&config)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_engine_that_accepts_and_never_answers_ends_the_run_by_its_deadline() -> Result<()> {
    let dir = temp_dir("tls-hang");
    let certs = runner_e2e::test_certs::TestCerts::make(&dir.join("made"))?;
    // Accepts the connection and then says nothing: the TLS handshake
    // itself must be cut by `--timeout`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let host = format!("tcp://{}", listener.local_addr()?);
    let held = std::thread::spawn(move || {
        let conns: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(std::time::Duration::from_secs(20));
        drop(conns);
    });
    let r = Runner::new("engine-tls-hang");
    let args: Vec<String> = [
        "status",
        "--plugin",
        "openclaw",
        "--sandbox",
        "any",
        "--json",
        "--timeout",
        "500ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = r
        .run(&args, &tls_env(&host, &certs.client_dir(), &dir))
        .await;
    assert_eq!(run.code, Some(3), "{}", run.context());
    assert!(
        run.elapsed < std::time::Duration::from_secs(4),
        "took {:?} with --timeout 500ms\n{}",
        run.elapsed,
        run.context()
    );
    assert!(said(&run).contains("did not answer"), "{}", run.context());
    drop(held);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A unix socket that answers every connection with `reply` (and reads
/// nothing), like a service that is not an engine.
fn impostor_socket(dir: &Path, reply: &'static [u8]) -> Result<PathBuf> {
    use std::io::Write;
    let path = dir.join("impostor.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten().take(8) {
            let _ = conn.write_all(reply);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_is_not_the_docker_api_is_named_as_such_with_the_podman_socket() -> Result<()>
{
    // What containerd's gRPC socket sends first (an HTTP/2 SETTINGS frame),
    // and an SSH banner.
    for (tag, reply) in [
        ("h2", &b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"[..]),
        ("ssh", &b"SSH-2.0-OpenSSH_9.2\r\n"[..]),
    ] {
        let dir = temp_dir(&format!("impostor-{tag}"));
        let sock = impostor_socket(&dir, reply)?;
        let r = Runner::new(&format!("engine-impostor-{tag}"));
        let host = format!("unix://{}", sock.display());
        let run = runner(
            &r,
            "status",
            "any",
            free_port()?,
            &[
                ("DOCKER_HOST", &host),
                ("DOCKER_CONFIG", dir.to_str().unwrap()),
            ],
        )
        .await;
        assert_eq!(run.code, Some(3), "{}", run.context());
        let text = said(&run);
        assert!(
            text.contains("not with the Docker Engine API") && text.contains("podman.sock"),
            "{tag}: {}",
            run.context()
        );
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
