//! Issue 4 acceptance against the REAL OpenClaw 2026.9.6 gateway (image
//! `runner-test/openclaw`, DGX Spark emulation: a gateway launched without
//! its guard preloads crash-loops with "uv_interface_addresses returned
//! Unknown system error 1"). Each test shares one keepalive sandbox across
//! its steps (a gateway start costs 10–40 s); the harness keeps at most two
//! OpenClaw containers alive across all test processes. Every step checks
//! the exit code, the JSON report and the sandbox from outside. Without an
//! engine the tests fail (never skip).

#[path = "support/e2e.rs"]
mod e2e;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::{Runner, Target};
use runner_e2e::agents::openclaw;
use runner_e2e::layout::{self, OPENCLAW_CONFIG, OPENCLAW_PORT};
use runner_e2e::wait::{poll_until, poll_value};
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, free_port, images};
use serde_json::Value;

/// First boot of a fresh volume: ~20 s idle, over 40 s while other builds
/// and gateways compete for the two cores.
const FIRST_START: Duration = Duration::from_secs(180);

/// `hostname`: kept across `recreate_same_volume` (a pod recreated under its
/// name); `None` gives every container Docker's default, a new hostname.
async fn healthy_keepalive(prefix: &str, hostname: Option<&str>) -> Result<Sandbox> {
    let engine = Engine::connect().await?;
    let image = images::ensure("openclaw").await?;
    let mut spec = SandboxSpec::new(image)
        .mode(Mode::Keepalive)
        .name_prefix(format!("e2e-{prefix}"));
    if let Some(h) = hostname {
        spec = spec.hostname(h);
    }
    let sb = Sandbox::create(&engine, spec).await?;
    let took = sb
        .wait_http_ok(OPENCLAW_PORT, "/health", FIRST_START)
        .await?;
    eprintln!("{}: /health 200 after {took:.1?} (first boot)", sb.name());
    Ok(sb)
}

/// Both JSON locks of OpenClaw 2026.9: the state lock and
/// `gateway.<first 8 hex of sha256(config path)>.lock`.
async fn lock_paths(sb: &Sandbox) -> Result<[String; 2]> {
    let out = sb
        .exec(
            &[
                "sh",
                "-c",
                r#"printf %s "$1" | sha256sum"#,
                "hash",
                OPENCLAW_CONFIG,
            ],
            Some("0"),
        )
        .await?
        .check("sha256 of the config path")?;
    let hash = out.stdout.get(..8).context("sha256sum printed nothing")?;
    Ok([
        layout::gateway_state_lock(),
        format!("{}/gateway.{hash}.lock", openclaw::LOCK_DIR),
    ])
}

/// The staged guard chain, for snapshots.
async fn chain_snapshot(sb: &Sandbox) -> Result<String> {
    let mut paths = layout::staged_guard_paths();
    paths.push(layout::PROXY_ENV_FILE.to_string());
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    e2e::snapshot(sb, &refs).await
}

async fn assert_no_crash(sb: &Sandbox) -> Result<()> {
    let crashes = e2e::crash_lines(&sb.gateway_log().await?);
    ensure!(
        crashes.is_empty(),
        "a naked gateway crashed (NemoClaw#2701): {crashes:#?}"
    );
    Ok(())
}

/// After a recover that launched a gateway: a new identity that serves, was
/// launched with every guard, holds both locks, and nothing crashed.
async fn assert_relaunched(sb: &Sandbox, run: &e2e::Run, old: (u32, u64)) -> Result<(u32, u64)> {
    run.expect(0, "recovered");
    // Right after a kill -9 the first probe once saw the gateway link
    // `unknown` (starting, with retry-after) instead of `broken`; the engine
    // waited, repaired and ended healthy. Unexplained so far: accepted, but
    // logged with the gateway log for the next look.
    let (before, action, after) = run.transition("gateway");
    assert_eq!(
        (action.as_str(), after.as_str()),
        ("repaired", "healthy"),
        "{}",
        run.context()
    );
    assert!(
        before == "broken" || before == "unknown",
        "gateway before: {before}\n{}",
        run.context()
    );
    if before == "unknown" {
        eprintln!(
            "NOTE: gateway link was first probed unknown\n{}\ngateway log:\n{}",
            run.context(),
            sb.gateway_log().await?
        );
    }
    run.assert_all_healthy_after();
    let new = sb.sole_gateway().await?;
    ensure!(new != old, "no new gateway: still {old:?}");
    assert_eq!(
        run.evidence("gateway", "pid"),
        Some(new.0.to_string()),
        "{}",
        run.context()
    );
    let health = sb.http_get(OPENCLAW_PORT, "/health", &[]).await?;
    ensure!(health.status == 200, "/health: {health:?}");
    e2e::assert_launched_guarded(sb, new.0).await?;
    e2e::assert_guards_staged(sb).await?;
    assert_no_crash(sb).await?;
    for lock in lock_paths(sb).await? {
        // OpenClaw writes its locks a moment after it starts listening.
        poll_value(
            &format!("{lock} to name the new gateway"),
            Duration::from_secs(20),
            Duration::from_millis(250),
            || sb.lock_owner(&lock),
            |owner| *owner == Some(new),
        )
        .await?;
    }
    Ok(new)
}

/// The dashboard's WebSocket conversation, run inside the sandbox with the
/// `ws` client OpenClaw ships (independent of runner): challenge, `connect`
/// as the Control UI with `Origin`, answer. Prints one JSON verdict.
const WS_CHECK: &str = r#"
const WebSocket = require('/opt/openclaw/node_modules/ws');
const [url, origin, token] = process.argv.slice(1);
const frames = [];
const done = (verdict, detail) => { console.log(JSON.stringify({ verdict, detail, frames })); process.exit(0); };
setTimeout(() => done('timeout', 'no answer within 10 s'), 10000);
const ws = new WebSocket(url, { origin });
ws.on('message', (data) => {
  let f; try { f = JSON.parse(String(data)); } catch { return; }
  frames.push(f);
  if (f.type === 'event' && f.event === 'connect.challenge') {
    ws.send(JSON.stringify({ type: 'req', id: 'e2e', method: 'connect', params: {
      minProtocol: 3, maxProtocol: 4,
      client: { id: 'openclaw-control-ui', version: 'e2e', platform: 'linux', mode: 'webchat' },
      role: 'operator', scopes: ['operator.read'], auth: { token } } }));
  } else if (f.type === 'res') {
    const e = f.error || {};
    const code = (e.details && e.details.code) || (e.data && e.data.code) || e.code || '';
    if (f.ok) done('accepted', (f.payload && f.payload.type) || 'ok');
    else if (code === 'CONTROL_UI_ORIGIN_NOT_ALLOWED' || /origin not allowed/i.test(e.message || '')) done('rejected', code);
    // The origin check runs first: failing a later one (device identity, auth, pairing) means it passed.
    else if (/^(AUTH_|CONTROL_UI_DEVICE_)|PAIRING/.test(code)) done('accepted', code);
    else done('other', code + ' ' + (e.message || ''));
  }
});
ws.on('close', (code, reason) => {
  const r = String(reason);
  done(/origin not allowed/i.test(r) ? 'rejected' : 'other', 'closed ' + code + ' ' + r);
});
ws.on('error', (e) => done('error', String(e)));
"#;

/// `accepted` / `rejected` / … for a Control UI connect with `origin`,
/// straight to the gateway on 127.0.0.1:18789 inside the sandbox.
/// A gateway that just started answers `UNAVAILABLE` for a few seconds: asked
/// again (bounded) until it gives a verdict.
async fn ws_origin_verdict(sb: &Sandbox, origin: &str) -> Result<String> {
    let url = format!("ws://127.0.0.1:{OPENCLAW_PORT}/");
    poll_value(
        &format!("a WebSocket verdict on Origin {origin}"),
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let out = sb
                .exec(
                    &["node", "-e", WS_CHECK, &url, origin, openclaw::TOKEN],
                    Some("0"),
                )
                .await?
                .check("WebSocket origin check")?;
            let line = out
                .stdout
                .lines()
                .last()
                .context("WS check printed nothing")?;
            let v: Value =
                serde_json::from_str(line).with_context(|| format!("WS check: {line}"))?;
            let verdict = v["verdict"].as_str().unwrap_or_default().to_string();
            eprintln!(
                "WS connect with Origin {origin}: {verdict} ({})",
                v["detail"]
            );
            Ok((verdict, v["detail"].to_string()))
        },
        |(_, detail)| !detail.contains("UNAVAILABLE"),
    )
    .await
    .map(|(verdict, _)| verdict)
}

#[tokio::test]
async fn kill_9_then_env_file_then_group_writable_source() -> Result<()> {
    let sb = healthy_keepalive("oc-kill", None).await?;
    let port = free_port()?;
    let t = Target::openclaw(&sb, port);
    let runner = Runner::new("oc-kill");

    // Healthy: the first recover only brings up the forward; then the steady state.
    let first = runner.recover(&t).await;
    first.expect(0, "recovered");
    assert_eq!(
        first.mutation_kinds(),
        ["forward.ensure"],
        "{}",
        first.context()
    );
    assert!(
        first.evidence("dashboard", "origin-check").is_some(),
        "{}",
        first.context()
    );
    e2e::expect_steady_status(&runner.status(&t).await);
    let steady = runner.recover(&t).await;
    e2e::expect_steady_recover(&steady);
    e2e::assert_forward_after_run(&steady, port, "/health").await;

    // 1. kill -9: stale locks, no gateway (keepalive relaunches nothing).
    let old = sb.sole_gateway().await?;
    let guards = chain_snapshot(&sb).await?;
    let locks = lock_paths(&sb).await?;
    sb.kill_gateway_9().await?;
    for lock in &locks {
        assert_eq!(
            sb.lock_owner(lock).await?,
            Some(old),
            "{lock} names the dead gateway"
        );
    }
    let run = runner.recover(&t).await;
    run.assert_link("guards", "healthy", "none", "healthy");
    run.assert_link("locks", "broken", "repaired", "healthy");
    let spawned = run.launch_index(e2e::OPENCLAW_LAUNCH).context("launch")?;
    for lock in &locks {
        let removed = run
            .mutation_index("files.remove-if", lock)
            .with_context(|| format!("{lock} removed"))?;
        assert!(
            removed < spawned,
            "{lock} removed after the launch\n{}",
            run.context()
        );
    }
    let new = assert_relaunched(&sb, &run, old).await?;
    assert_eq!(
        sb.proc_start_time(old.0).await?.filter(|s| *s == old.1),
        None
    );
    assert_eq!(
        chain_snapshot(&sb).await?,
        guards,
        "guards intact: not rewritten"
    );
    e2e::assert_forward_after_run(&run, port, "/health").await;

    // 2. env file deleted + gateway killed: restored before the launch, never naked.
    sb.delete_env_file().await?;
    sb.kill_gateway_9().await?;
    let run = runner.recover(&t).await;
    run.assert_link("guards", "broken", "repaired", "healthy");
    let env_written = run
        .mutation_index("files.write", layout::PROXY_ENV_FILE)
        .context("env file restored")?;
    let spawned = run.launch_index(e2e::OPENCLAW_LAUNCH).context("launch")?;
    assert!(
        env_written < spawned,
        "env file restored after the launch\n{}",
        run.context()
    );
    let env = sb
        .exec(
            &[
                "cmp",
                "-s",
                openclaw::PROXY_ENV_SOURCE,
                layout::PROXY_ENV_FILE,
            ],
            Some("0"),
        )
        .await?;
    assert!(env.success(), "the env file is the packaged one");
    assert_relaunched(&sb, &run, new).await?;

    // 3. A packaged guard source made group-writable: refuse, launch nothing.
    let source = format!("{}/{}", layout::PACKAGED_PRELOADS, layout::GUARD_NAMES[1]);
    sb.exec(&["chmod", "g+w", &source], Some("0"))
        .await?
        .check("chmod g+w")?;
    sb.delete_guards().await?;
    sb.kill_gateway_9().await?;
    // A kill -9'd OpenClaw leaves its workers (process title `openclaw`)
    // alive for 1–2 s (measured on 2026.9); until they are gone the plugin
    // rightly reads the gateway as "starting". This step is about the
    // refusal, so start from a gateway that is entirely dead.
    poll_until(
        "the killed gateway's processes to exit",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            Ok(sb
                .pids_matching(openclaw::ANY_PROCESS)
                .await?
                .is_empty()
                .then_some(()))
        },
    )
    .await?;
    let audit_before = runner.audit().len();
    let run = runner.recover(&t).await;
    run.expect(1, "broken");
    run.expect_failing_layer("guards");
    run.assert_link("guards", "broken", "refused", "broken");
    run.assert_link("gateway", "broken", "skipped", "broken");
    assert!(
        run.message().contains("group-writable"),
        "{}",
        run.context()
    );
    assert!(run.mutations().is_empty(), "{}", run.context());
    assert_eq!(runner.audit().len(), audit_before);
    sb.assert_no_gateway_for(openclaw::ANY_PROCESS, OPENCLAW_PORT, Duration::from_secs(3))
        .await?;
    for staged in layout::staged_guard_paths() {
        assert_eq!(
            sb.file_meta(&staged).await?,
            None,
            "{staged} staged from an untrusted source"
        );
    }
    assert_eq!(
        sb.file_meta(&source).await?.as_deref(),
        Some("regular file 0:0 664"),
        "source left as found"
    );
    assert_no_crash(&sb).await?;
    Ok(())
}

#[tokio::test]
async fn cors_hot_reload_then_docker_restart_then_recreate_under_the_same_hostname() -> Result<()> {
    let mut sb = healthy_keepalive("oc-cors", Some("oc-cors-e2e")).await?;
    let port = free_port()?;
    // OpenClaw accepts every loopback origin (any port) without a list entry
    // (its origin check treats loopback as trusted), so a dashboard opened from another machine is the
    // case allowedOrigins exists for: a non-loopback origin.
    let origin = format!("http://spark-{port}.runner.test:{port}");
    let t = Target::openclaw(&sb, port).set("dashboard-origin", &origin);
    let runner = Runner::new("oc-cors");

    // 1. The dashboard origin is missing from allowedOrigins.
    let gateway = sb.sole_gateway().await?;
    let before = sb.read_file(OPENCLAW_CONFIG).await?.context("config")?;
    let meta = sb.file_meta(OPENCLAW_CONFIG).await?;
    assert_eq!(
        ws_origin_verdict(&sb, &origin).await?,
        "rejected",
        "the origin starts out rejected"
    );
    let status = runner.status(&t).await;
    status.expect(1, "broken");
    status.expect_failing_layer("cors");

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_link("cors", "broken", "repaired", "healthy");
    run.assert_link("gateway", "healthy", "none", "healthy");
    run.assert_all_healthy_after();
    assert!(
        !run.mutation_kinds()
            .iter()
            .any(|k| k.starts_with("spawn.") || k.starts_with("processes.")),
        "a hot reload needs no restart\n{}",
        run.context()
    );
    let after = sb.read_file(OPENCLAW_CONFIG).await?.context("config")?;
    e2e::assert_only_origin_inserted(&before, &after, &origin)?;
    assert!(
        after.contains("// /sandbox/.openclaw/openclaw.json"),
        "comments kept"
    );
    assert_eq!(
        sb.file_meta(OPENCLAW_CONFIG).await?,
        meta,
        "owner and mode kept"
    );
    let backups = e2e::backups_of(&sb, OPENCLAW_CONFIG).await?;
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(
        sb.read_file(&backups[0]).await?.as_deref(),
        Some(before.as_str()),
        "backup is the original"
    );
    assert_eq!(
        sb.file_meta(&backups[0]).await?,
        meta,
        "backup keeps owner and mode"
    );
    assert_eq!(
        sb.sole_gateway().await?,
        gateway,
        "hot reload: same gateway process"
    );
    poll_value(
        "the gateway to accept the dashboard origin",
        Duration::from_secs(10),
        Duration::from_millis(500),
        || ws_origin_verdict(&sb, &origin),
        |v| v == "accepted",
    )
    .await?;
    assert_eq!(
        sb.sole_gateway().await?,
        gateway,
        "still the same gateway process"
    );
    e2e::assert_forward_after_run(&run, port, "/health").await;

    // 2. docker restart: tmpfs wiped, no gateway; guards re-staged before the launch.
    sb.docker_restart().await?;
    let tmp = sb.tmp_entries().await?;
    assert!(
        tmp.is_empty(),
        "keepalive: empty /tmp after a restart: {tmp:?}"
    );
    let run = runner.recover(&t).await;
    run.assert_link("guards", "broken", "repaired", "healthy");
    let spawned = run.launch_index(e2e::OPENCLAW_LAUNCH).context("launch")?;
    let mut staged = layout::staged_guard_paths();
    staged.push(layout::PROXY_ENV_FILE.into());
    for path in &staged {
        let written = run
            .mutation_index("files.write", path)
            .with_context(|| format!("{path} staged"))?;
        assert!(
            written < spawned,
            "{path} staged after the launch\n{}",
            run.context()
        );
    }
    run.assert_link("cors", "healthy", "none", "healthy");
    assert_relaunched(&sb, &run, gateway).await?;
    e2e::assert_forward_after_run(&run, port, "/health").await;
    assert_eq!(ws_origin_verdict(&sb, &origin).await?, "accepted");

    // 3. docker rm -f + recreate on the same volume under the same hostname
    // (a pod recreated under its name): a new container id.
    let old = sb.sole_gateway().await?;
    let old_id = sb.id().to_string();
    sb.recreate_same_volume().await?;
    assert_ne!(sb.id(), old_id);
    let run = runner.recover(&t).await;
    assert_eq!(
        run.evidence("sandbox", "container").as_deref(),
        sb.id().get(..12),
        "{}",
        run.context()
    );
    assert_relaunched(&sb, &run, old).await?;
    assert_eq!(
        run.transition("dashboard").2,
        "healthy",
        "served end to end through the forward\n{}",
        run.context()
    );
    e2e::assert_forward_after_run(&run, port, "/health").await;
    assert_eq!(
        sb.read_file(OPENCLAW_CONFIG).await?.as_deref(),
        Some(after.as_str()),
        "the volume kept the patch"
    );
    Ok(())
}

/// `docker rm -f` + `docker run` on the same volume with Docker's default
/// hostname. OpenClaw 2026.9 keeps a gateway owner lease (`state_leases` in
/// `<state>/state/openclaw.sqlite`, TTL 300 s, renewed every 30 s) and a new
/// gateway reclaims it from a dead owner only on the SAME hostname: a
/// relaunch in the new container exits with "Another Gateway owner lease is
/// still active" until it expires (docs/openclaw-lease.md). The `locks` link
/// releases it once its owner is provably dead — and never while a live
/// gateway owns it: not on a healthy sandbox, and not from a neighbour
/// container sharing the volume while the first one's gateway runs.
#[tokio::test]
async fn recreate_with_a_new_hostname_reclaims_the_stale_lease_and_recovers() -> Result<()> {
    let mut sb = healthy_keepalive("oc-lease", None).await?;
    let port = free_port()?;
    let t = Target::openclaw(&sb, port);
    let runner = Runner::new("oc-lease");
    let first = runner.recover(&t).await;
    first.expect(0, "recovered");
    e2e::assert_forward_after_run(&first, port, "/health").await;
    let old = sb.sole_gateway().await?;
    let old_host = e2e::hostname(&sb).await?;
    let lease = e2e::openclaw_owner_lease(&sb)
        .await?
        .context("the first gateway's owner lease")?;
    assert_eq!(
        (lease.pid, lease.started_at, lease.host.as_str()),
        (old.0, Some(old.1), old_host.as_str()),
        "the lease names the running gateway: {lease:?}"
    );

    // 1. A live owner's lease is never touched: status and recover of the
    // healthy sandbox leave the row as it was granted.
    e2e::expect_steady_status(&runner.status(&t).await);
    e2e::expect_steady_recover(&runner.recover(&t).await);
    let now = e2e::openclaw_owner_lease(&sb).await?.context("lease")?;
    ensure!(
        now.same_grant(&lease),
        "lease changed: {lease:?} -> {now:?}"
    );

    // 2. Nor from a neighbour on the same volume (new hostname, no gateway of
    // its own) while the first container's gateway lives: the lease's owner
    // pid means nothing in the neighbour's pid namespace, but the gateway's
    // coordinator lock on the shared volume proves it alive. Refused: the
    // lease and the JSON locks stay, the first gateway keeps serving.
    let locks = lock_paths(&sb).await?;
    let mut lock_text = Vec::new();
    for l in &locks {
        lock_text.push(sb.read_file(l).await?.context("lock")?);
    }
    {
        let spec = SandboxSpec::new(images::ensure("openclaw").await?)
            .mode(Mode::Keepalive)
            .volume(sb.volume())
            .name_prefix("e2e-oc-lease-neighbour");
        let nb = Sandbox::create(sb.engine(), spec).await?;
        ensure!(
            nb.gateway_pids().await?.is_empty(),
            "the neighbour runs no gateway"
        );
        let nport = free_port()?;
        let run = runner.recover(&Target::openclaw(&nb, nport)).await;
        run.expect(1, "broken");
        run.expect_failing_layer("locks");
        let summary = run.summary("locks");
        assert!(
            summary.contains("a live gateway elsewhere owns this state dir")
                && summary.contains("gateway.state.lock.sqlite"),
            "{}",
            run.context()
        );
        assert!(
            !run.mutations()
                .iter()
                .any(|m| m.kind == "files.remove-if" || m.detail.contains("reclaim")),
            "nothing of the live owner removed\n{}",
            run.context()
        );
        nb.remove().await?;
    }
    let now = e2e::openclaw_owner_lease(&sb).await?.context("lease")?;
    ensure!(
        now.same_grant(&lease),
        "lease changed: {lease:?} -> {now:?}"
    );
    for (l, text) in locks.iter().zip(&lock_text) {
        assert_eq!(sb.read_file(l).await?.as_ref(), Some(text), "{l} untouched");
    }
    assert_eq!(sb.sole_gateway().await?, old, "the first gateway lives on");
    let health = sb.http_get(OPENCLAW_PORT, "/health", &[]).await?;
    ensure!(health.status == 200, "/health: {health:?}");

    // 3. rm -f + recreate with a new hostname: the old lease survives on the
    // volume, naming the dead gateway on the old host.
    let old_id = sb.id().to_string();
    sb.recreate_same_volume().await?;
    assert_ne!(sb.id(), old_id);
    let new_host = e2e::hostname(&sb).await?;
    assert_ne!(new_host, old_host, "Docker's default hostname changed");
    let stale = e2e::openclaw_owner_lease(&sb)
        .await?
        .context("the old lease survives the recreate")?;
    ensure!(stale.same_grant(&lease), "{stale:?} vs {lease:?}");

    let run = runner.recover(&t).await;
    let log = sb.gateway_log().await?;
    assert!(
        !log.contains("Another Gateway owner lease is still active"),
        "the relaunch was blocked by the old container's owner lease\n{}\n{log}",
        run.context()
    );
    let (before, action, after) = run.transition("locks");
    eprintln!(
        "locks {before} -> {action} -> {after}; owner-lease evidence: {:?}",
        run.evidence("locks", "owner-lease")
    );
    assert!(
        matches!(before.as_str(), "broken" | "unknown")
            && (action.as_str(), after.as_str()) == ("repaired", "healthy"),
        "locks: {before} {action} {after}\n{}",
        run.context()
    );
    let released = run
        .mutation_index("exec.run", "reclaim")
        .context("the lease release")?;
    assert_eq!(
        run.mutations()[released].result,
        "exit 0",
        "{}",
        run.context()
    );
    let spawned = run.launch_index(e2e::OPENCLAW_LAUNCH).context("launch")?;
    assert!(
        released < spawned,
        "lease released after the launch\n{}",
        run.context()
    );
    assert_eq!(
        run.evidence("sandbox", "container").as_deref(),
        sb.id().get(..12),
        "{}",
        run.context()
    );
    let new = assert_relaunched(&sb, &run, old).await?;
    e2e::assert_forward_after_run(&run, port, "/health").await;
    assert_eq!(
        run.transition("dashboard").2,
        "healthy",
        "{}",
        run.context()
    );

    // The lease is now the new gateway's, granted on the new host.
    let granted = poll_value(
        "the owner lease to name the new gateway",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || e2e::openclaw_owner_lease(&sb),
        |l| l.as_ref().is_some_and(|l| l.pid == new.0),
    )
    .await?
    .context("lease")?;
    assert_eq!(
        (granted.started_at, granted.host.as_str()),
        (Some(new.1), new_host.as_str()),
        "{granted:?}"
    );
    assert_ne!(granted.owner, stale.owner, "a new grant");

    // A second recover makes no mutation and leaves the new lease alone.
    e2e::expect_steady_recover(&runner.recover(&t).await);
    let now = e2e::openclaw_owner_lease(&sb).await?.context("lease")?;
    ensure!(
        now.same_grant(&granted),
        "lease changed: {granted:?} -> {now:?}"
    );
    Ok(())
}
