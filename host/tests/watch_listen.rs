//! The listen check of `runner watch`'s liveness tick.
//!
//! Most tests need no engine: the sock_diag probe against the real kernel,
//! with listeners of this test process's own network namespace (entering a
//! namespace needs root, as the watcher has) and of a fresh one, to show a
//! probe answers for the namespace it was made in. The last one runs a
//! watcher against the fixture image: a gateway that stays alive but closes
//! its listener is found by the tick, not by the (hour away) full pass.

#[path = "support/watch.rs"]
mod watch;

use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use runner::watch::liveness::ListenProbe;
use runner_e2e::{Sandbox, free_port};
use watch::{Watch, labelled, setup, token, wait_dashboard};

fn own_probe() -> ListenProbe {
    ListenProbe::open(Path::new("/proc/self/ns/net")).expect("probe of our own netns (root?)")
}

#[test]
fn a_loopback_listener_is_seen_until_it_is_dropped() {
    let mut probe = own_probe();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert!(probe.listening(port).unwrap());
    drop(listener);
    assert!(!probe.listening(port).unwrap());
}

#[test]
fn connected_sockets_without_a_listener_are_not_listening() {
    let mut probe = own_probe();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let client_port = client.local_addr().unwrap().port();
    drop(listener);
    // Both ends stay ESTABLISHED: one on the old listener's port, one on an
    // ephemeral port. Neither is a listener.
    assert_eq!(accepted.local_addr().unwrap().port(), server_port);
    assert!(!probe.listening(server_port).unwrap());
    assert!(!probe.listening(client_port).unwrap());
    drop((client, accepted));
}

#[test]
fn ipv6_and_wildcard_listeners_are_seen() {
    let mut probe = own_probe();
    // [::1] only (the second lookup), [::] dual-stack and 0.0.0.0 (both
    // reachable on 127.0.0.1, where the forward connects).
    for addr in [
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        SocketAddr::from(([0, 0, 0, 0], 0)),
    ] {
        let listener = TcpListener::bind(addr).expect("bind (IPv6 loopback is up here)");
        let port = listener.local_addr().unwrap().port();
        assert!(probe.listening(port).unwrap(), "{addr} not seen");
        drop(listener);
        assert!(!probe.listening(port).unwrap(), "{addr} still seen");
    }
}

#[test]
fn the_probe_answers_for_the_namespace_it_was_made_in() {
    // A thread in a fresh network namespace holds a listener there.
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        // SAFETY: only this thread moves, and it opens nothing but the
        // listener below before it ends.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
            .expect("unshare(CLONE_NEWNET) (root?)");
        // A new namespace's loopback is down; the wildcard needs no address.
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tid = rustix::thread::gettid().as_raw_nonzero();
        ready_tx.send((tid, port)).unwrap();
        let _ = stop_rx.recv();
        drop(listener);
    });
    let (tid, port) = ready_rx.recv().unwrap();
    let mut theirs = ListenProbe::open(Path::new(&format!("/proc/self/task/{tid}/ns/net")))
        .expect("probe of the thread's netns");
    let mut ours = own_probe();
    assert!(theirs.listening(port).unwrap());
    assert!(
        !ours.listening(port).unwrap(),
        "the other namespace's listener leaked into ours (or port {port} is taken here too)"
    );
    stop_tx.send(()).unwrap();
    holder.join().unwrap();
    // The namespace is gone with its last thread, and the probe's socket
    // alone keeps it answering: nothing listens there any more.
    assert!(!theirs.listening(port).unwrap());
}

#[test]
fn a_namespace_that_does_not_exist_is_a_typed_error() {
    let err = ListenProbe::for_process(u32::MAX).unwrap_err();
    assert!(
        matches!(
            err,
            runner::watch::liveness::ListenDiagError::NamespaceGone(_)
        ),
        "{err:?}"
    );
}

/// The fixture's `serve-then-wedge` mode is OpenClaw's "listener closed
/// during restart. Process will stay alive": same pid, same start time, no
/// listener. Only the listen check tells that from a healthy gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_that_stops_listening_is_noticed_by_the_liveness_tick() -> Result<()> {
    const WEDGE_AFTER_S: u64 = 8;
    let (engine, image) = setup().await?;
    let scope = token("listen");
    let port = free_port()?;
    // Every gateway of this sandbox (the first boot's and any relaunch)
    // serves for a while, then closes its listener and lives on.
    let spec = labelled(&image, &scope, port)
        .env("FIXTURE_MODE", "serve-then-wedge")
        .env("FIXTURE_WEDGE_AFTER", WEDGE_AFTER_S.to_string());
    let sb = Sandbox::create(&engine, spec).await?;
    // Full passes an hour apart: anything within the test is the liveness
    // tick (1 s) or an event.
    let w = Watch::start("listen", &scope, "full-interval = 3600\n", "1s").await?;
    wait_dashboard(port, Duration::from_secs(60), &w).await?;
    w.wait_log(
        &["recover finished", "liveness=\"armed\""],
        1,
        Duration::from_secs(30),
    )
    .await?;
    let armed_at = Instant::now();
    w.wait_log(
        &["liveness check failed", "no longer listens on port 18789"],
        1,
        Duration::from_secs(WEDGE_AFTER_S + 15),
    )
    .await?;
    let noticed = armed_at.elapsed();
    let log = w.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("no longer listens"))
        .unwrap_or_default();
    eprintln!("MEASURED wedge noticed {noticed:.2?} after arming: {line}");
    // The wedged gateway was alive when the tick failed: it is the listener
    // that was missing, not the process.
    assert!(!line.contains(" gone"), "{line}");
    assert!(
        sb.gateway_log().await?.contains("Process will stay alive"),
        "the gateway never wedged"
    );
    w.wait_log(
        &["recover finished", "trigger=\"liveness\""],
        1,
        Duration::from_secs(30),
    )
    .await?;
    let log = w.log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains("engine event") && l.contains(sb.name())),
        "the pass came from an engine event, not the tick:\n{log}"
    );
    sb.remove().await?;
    Ok(())
}
