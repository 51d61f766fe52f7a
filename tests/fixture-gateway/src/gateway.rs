//! The gateway lifecycle: guard check → config → state lock → listen → serve, with the
//! failure modes wired in at the point where the real gateway would fail.

use crate::args::{Mode, Options};
use crate::config::{self, Origins};
use crate::http::{self, Shared};
use crate::lock::{self, AcquireError, LockRecord};
use crate::{guards, json, procfs, sys, timefmt};
use std::fs;
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

/// OpenClaw's exit code for any configuration problem.
const EXIT_CONFIG: i32 = 78;

const TICK: Duration = Duration::from_millis(50);

/// Bind attempts before giving up on a busy port (OpenClaw: 20 × 500 ms; shorter here
/// so tests of a foreign listener stay fast).
const BIND_ATTEMPTS: u32 = 10;
const BIND_RETRY: Duration = Duration::from_millis(200);

pub fn log(msg: &str) {
    eprintln!("{} [gateway] {msg}", timefmt::now_iso());
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    buf
}

fn uuid_like() -> String {
    let b: [u8; 16] = random_bytes();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Sleeps up to `d`, waking early on SIGTERM. Returns false if interrupted.
fn sleep_unless_terminated(d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if sys::termination_requested() {
            return false;
        }
        thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
    }
    !sys::termination_requested()
}

fn bind(port: u16) -> Result<Vec<TcpListener>, std::io::Error> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut attempt = 0;
    let first = loop {
        match TcpListener::bind(v4) {
            Ok(l) => break l,
            Err(e) if e.kind() == ErrorKind::AddrInUse && attempt + 1 < BIND_ATTEMPTS => {
                attempt += 1;
                thread::sleep(BIND_RETRY);
            }
            Err(e) => return Err(e),
        }
    };
    let mut listeners = vec![first];
    // Like OpenClaw's loopback bind, also take [::1]; containers without IPv6 lack it.
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))) {
        Ok(l) => listeners.push(l),
        Err(e) => log(&format!("[::1]:{port} not bound ({e}); serving IPv4 only")),
    }
    Ok(listeners)
}

fn plant_garbled_lock(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    // A writer that died half-way: valid start, no end.
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => {
            use std::io::Write;
            let _ = f.write_all(b"{\n  \"pid\": ");
            log(&format!(
                "stale-lock-blocks: planted a garbled lock at {}",
                path.display()
            ));
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => log(&format!("stale-lock-blocks: could not plant lock: {e}")),
    }
}

pub fn run(o: &Options) -> i32 {
    let pid = std::process::id();
    let uid = sys::uid();
    let Some(start_time) = procfs::self_start_time() else {
        log("cannot read /proc/self/stat; refusing to run without an identity");
        return 1;
    };
    log(&format!(
        "starting fixture gateway (mode={}, pid={pid}, uid={uid}, port={})",
        o.mode.name(),
        o.port
    ));

    if o.require_guards {
        let node_options = std::env::var("NODE_OPTIONS").ok();
        if let Err(why) = guards::check(node_options.as_deref(), |p| p.exists()) {
            log(&format!("guard preload check failed: {why}"));
            // The real crash happens about a second in, during plugin start.
            thread::sleep(Duration::from_millis(100));
            eprintln!("{}", guards::crash_report());
            return 1;
        }
    }

    let origins: Origins = match config::load(&o.config_path) {
        Ok(Some(list)) => Arc::new(RwLock::new(list)),
        Ok(None) => {
            log(&format!(
                "no config at {}; control UI allows no extra origins",
                o.config_path.display()
            ));
            Arc::new(RwLock::new(Vec::new()))
        }
        Err(e) => {
            log(&format!(
                "Invalid config at {}: {e}",
                o.config_path.display()
            ));
            return EXIT_CONFIG;
        }
    };

    let lock_path = lock::lock_path(&o.state_dir, uid);
    if o.mode == Mode::StaleLockBlocks {
        plant_garbled_lock(&lock_path);
    }
    let record = LockRecord {
        pid,
        start_time,
        owner_id: &uuid_like(),
        created_at: &timefmt::now_iso(),
        config_path: &o.config_path.to_string_lossy(),
        state_dir: &o.state_dir.to_string_lossy(),
        port: o.port,
    };
    let content = lock::render(&record, random_bytes());
    match lock::acquire(
        &lock_path,
        &content,
        o.lock_timeout,
        &procfs::view,
        &sys::termination_requested,
    ) {
        Ok(_reclaimed) => {} // OpenClaw reclaims stale locks without a log line.
        Err(AcquireError::Timeout { waited, last }) => {
            log(&format!(
                "gateway already running; lock timeout after {}ms ({:?})",
                waited.as_millis(),
                last
            ));
            return 1;
        }
        Err(AcquireError::NotRegular(p)) => {
            log(&format!(
                "refusing lock {}: not a regular file",
                p.display()
            ));
            return 1;
        }
        Err(AcquireError::Io(e)) => {
            log(&format!("cannot create lock {}: {e}", lock_path.display()));
            return 1;
        }
        Err(AcquireError::Interrupted) => return 0,
    }

    if o.mode == Mode::AlwaysCrash {
        thread::sleep(Duration::from_millis(200));
        // A crash: the lock stays behind with our (soon dead) pid.
        log("fatal: always-crash mode; exiting 1 without cleanup");
        return 1;
    }

    if o.mode == Mode::SlowStart {
        log(&format!(
            "slow start: waiting {:?} before listening",
            o.slow_start
        ));
        if !sleep_unless_terminated(o.slow_start) {
            return shutdown(&lock_path, pid, start_time, None);
        }
    }

    let listeners = match bind(o.port) {
        Ok(l) => l,
        Err(e) => {
            log(&format!(
                "another gateway instance is already listening on ws://127.0.0.1:{} ({e}; EADDRINUSE?)",
                o.port
            ));
            lock::release(&lock_path, pid, start_time);
            return 1;
        }
    };
    let info_json = format!(
        "{{\"pid\":{pid},\"startTime\":{start_time},\"uid\":{uid},\"mode\":{},\"port\":{},\"lock\":{}}}",
        json::quote(o.mode.name()),
        o.port,
        json::quote(&lock_path.to_string_lossy())
    );
    let shared = Arc::new(Shared {
        health_status: o.health_status,
        origins: origins.clone(),
        serving: std::sync::atomic::AtomicBool::new(true),
        info_json,
        log,
    });
    let addrs: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok().map(|a| a.to_string()))
        .collect();
    let accept_threads = http::spawn_accept_loops(listeners, shared.clone());
    log(&format!("http server listening on {}", addrs.join(", ")));
    log("ready");
    config::watch(o.config_path.clone(), origins, log);

    let serving_since = Instant::now();
    let mut wedged = false;
    let mut accept_threads = Some(accept_threads);
    while !sys::termination_requested() {
        if o.mode == Mode::ServeThenWedge && !wedged && serving_since.elapsed() >= o.wedge_after {
            stop_serving(&shared, accept_threads.take());
            wedged = true;
            // The lines NemoClaw's wedge diagnostics grep for.
            log("config change requires gateway restart; attempting in-process restart");
            log("gateway startup failed: listener closed during restart. Process will stay alive");
        }
        thread::sleep(TICK);
    }
    shutdown(&lock_path, pid, start_time, Some((&shared, accept_threads)))
}

fn stop_serving(shared: &Shared, loops: Option<http::AcceptLoops>) {
    match loops {
        Some(loops) => loops.stop(shared),
        None => shared.serving.store(false, Ordering::SeqCst),
    }
}

type Serving<'a> = (&'a Arc<Shared>, Option<http::AcceptLoops>);

fn shutdown(lock_path: &Path, pid: u32, start_time: u64, serving: Option<Serving<'_>>) -> i32 {
    log("received SIGTERM; shutting down");
    if let Some((shared, threads)) = serving {
        stop_serving(shared, threads);
    }
    lock::release(lock_path, pid, start_time);
    log("gateway stopped");
    0
}
