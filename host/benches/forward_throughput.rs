//! Throughput and latency through a detached `runner forward serve` versus a
//! direct connection and versus socat, all on 127.0.0.1 (local backend, so
//! the relay itself is measured, not a container's network namespace).
//!
//! ```sh
//! cargo bench -p runner --bench forward_throughput
//! FORWARD_BENCH_MIB=256 FORWARD_BENCH_ROUNDS=5000 cargo bench -p runner --bench forward_throughput
//! ```
//!
//! Targets (issue 5): forward ≥ 90 % of direct and ≥ socat; p50 round-trip
//! overhead ≤ 100 µs. Results are recorded in docs/benchmarks.md.
//!
//! Apples to apples: the same client writes the same payload to the same
//! sink (and the same echo server) in every row; the rows differ only in
//! the relay put between them. The forward is the `runner` binary of this
//! build profile (`cargo bench` builds it optimized).

#[path = "support/stats.rs"]
mod stats;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHUNK: usize = 256 * 1024;
const MSG: usize = 64;

/// Reads everything until EOF, then answers with the byte count.
fn sink_server() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; CHUNK];
                let mut total = 0u64;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                }
                let _ = s.write_all(&total.to_le_bytes());
            });
        }
    });
    port
}

/// Echoes fixed-size messages back.
fn echo_server() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let _ = s.set_nodelay(true);
                let mut buf = [0u8; MSG];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(&buf).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let started = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Relays {
    children: Vec<Child>,
    state: PathBuf,
}

impl Relays {
    /// The pid of the relay listening for `runner(…)`/`socat(…)` last.
    fn last_pid(&self) -> Option<u32> {
        self.children.last().map(Child::id)
    }

    fn runner(&mut self, target: u16) -> u16 {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args([
                "forward",
                "serve",
                "--backend",
                "local",
                "--sandbox",
                "localhost",
            ])
            .args([
                "--host-port",
                &port.to_string(),
                "--sandbox-port",
                &target.to_string(),
            ])
            .env("RUNNER_STATE_DIR", &self.state)
            .env("RUNNER_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("runner forward serve");
        self.children.push(child);
        wait_listening(port);
        port
    }

    fn socat(&mut self, target: u16) -> Option<u16> {
        let port = free_port();
        let child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("TCP:127.0.0.1:{target},nodelay"))
            .stdin(Stdio::null())
            .spawn()
            .ok()?;
        self.children.push(child);
        wait_listening(port);
        Some(port)
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        // Our own unreaped children: their pids cannot have been reused.
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// MiB/s for sending `bytes` to the sink through `port`, best of `runs`.
fn throughput(port: u16, bytes: u64, runs: usize) -> f64 {
    let chunk = vec![0x5au8; CHUNK];
    let mut best: f64 = 0.0;
    for _ in 0..runs {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < bytes {
            let n = (bytes - sent).min(CHUNK as u64) as usize;
            s.write_all(&chunk[..n]).unwrap();
            sent += n as u64;
        }
        s.shutdown(Shutdown::Write).unwrap();
        let mut ack = [0u8; 8];
        s.read_exact(&mut ack).unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(
            u64::from_le_bytes(ack),
            bytes,
            "the sink must receive every byte"
        );
        best = best.max(bytes as f64 / (1024.0 * 1024.0) / secs);
    }
    best
}

/// p50 and p99 of 64-byte request/response round trips, in microseconds.
fn latency(port: u16, rounds: usize) -> (f64, f64) {
    let mut s = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).unwrap();
    s.set_nodelay(true).unwrap();
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    for _ in 0..rounds / 10 {
        s.write_all(&msg).unwrap();
        s.read_exact(&mut back).unwrap();
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            s.write_all(&msg).unwrap();
            s.read_exact(&mut back).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

fn main() {
    let mib = stats::env_or("FORWARD_BENCH_MIB", 1024u64);
    let rounds = stats::env_or("FORWARD_BENCH_ROUNDS", 20_000usize);
    let runs = stats::env_or("FORWARD_BENCH_RUNS", 3usize);
    let bytes = mib * 1024 * 1024;
    let mut relays = Relays {
        children: Vec::new(),
        state: std::env::temp_dir().join(format!("runner-bench-fwd-{}", std::process::id())),
    };
    let sink = sink_server();
    let echo = echo_server();
    // (name, sink port, echo port, pid of the relay in front of the sink)
    let mut targets = vec![("direct".to_string(), sink, echo, None)];
    let fwd_sink = relays.runner(sink);
    let fwd_pid = relays.last_pid();
    targets.push((
        "runner forward".into(),
        fwd_sink,
        relays.runner(echo),
        fwd_pid,
    ));
    match relays.socat(sink) {
        Some(a) => {
            let pid = relays.last_pid();
            if let Some(b) = relays.socat(echo) {
                targets.push(("socat".into(), a, b, pid));
            }
        }
        None => eprintln!("socat not found; install it (apt-get install socat) to compare"),
    }

    println!(
        "forward_throughput: {mib} MiB per run, best of {runs} (paths interleaved per run); {rounds} round trips of {MSG} B; {} CPUs; load average {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        stats::load_average()
    );
    // Interleaved: every run measures each path once, so a burst of load
    // from elsewhere hits all paths alike instead of one of them.
    let mut best = vec![0.0f64; targets.len()];
    // CPU seconds the relay process spent, over all runs: unlike MiB/s this
    // hardly depends on what else the machine is doing.
    let mut cpu = vec![0.0f64; targets.len()];
    // CPU time of every process on the path (this one: client and sink; the
    // relay) and wall time per path: what it cost to move the bytes, kernel
    // work in their context included, whatever else runs on the machine.
    // With the number of cores this bounds what a path can reach here.
    let me = std::process::id();
    let mut spent = vec![(0.0f64, 0.0f64); targets.len()];
    for run in 0..runs {
        let mut line = format!("run {}:", run + 1);
        for (i, (name, sink_port, _, pid)) in targets.iter().enumerate() {
            let before = pid.map(cpu_seconds);
            let own_before = cpu_seconds(me);
            let wall = Instant::now();
            let mbps = throughput(*sink_port, bytes, 1);
            spent[i].0 += cpu_seconds(me) - own_before;
            spent[i].1 += wall.elapsed().as_secs_f64();
            if let (Some(pid), Some(before)) = (pid, before) {
                // socat forks per connection: wait (bounded) until the
                // child is reaped and its time lands in the parent's.
                let mut after = cpu_seconds(*pid);
                for _ in 0..100 {
                    if !has_children(*pid) {
                        after = cpu_seconds(*pid);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                cpu[i] += after - before;
                spent[i].0 += after - before;
            }
            best[i] = best[i].max(mbps);
            line += &format!(" {name} {mbps:.0}");
        }
        println!("{line} MiB/s");
    }
    let gib = (bytes * runs as u64) as f64 / (1024.0 * 1024.0 * 1024.0);
    for (i, (name, _, _, pid)) in targets.iter().enumerate() {
        if pid.is_some() {
            println!(
                "{name}: relay CPU {:.2} s per GiB (user + system)",
                cpu[i] / gib
            );
        }
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    // MiB/s that `cores` fully busy cores could carry at each path's
    // measured cost: a ceiling no amount of parallelism can lift.
    let mut ceiling = vec![0.0f64; targets.len()];
    for (i, (name, ..)) in targets.iter().enumerate() {
        let (busy, wall) = spent[i];
        let per_gib = busy / gib;
        ceiling[i] = cores * 1024.0 / per_gib;
        println!(
            "{name}: path CPU {per_gib:.2} s per GiB (client + sink + relay), {:.2} of {cores} cores busy on average, CPU-bound ceiling {:.0} MiB/s",
            busy / wall,
            ceiling[i]
        );
    }
    if let Some(fwd) = targets.iter().position(|t| t.0 == "runner forward") {
        println!(
            "forward ceiling on {cores} cores vs direct measured: {:.1} % (forward costs {:.2}x direct's CPU per byte)",
            100.0 * ceiling[fwd] / best[0],
            ceiling[0] / ceiling[fwd]
        );
    }
    println!(
        "{:<16} {:>12} {:>10} {:>10} {:>10}",
        "path", "MiB/s", "% direct", "p50 µs", "p99 µs"
    );
    let mut results = Vec::new();
    for (i, (name, _, echo_port, _)) in targets.iter().enumerate() {
        let (p50, p99) = latency(*echo_port, rounds);
        results.push((name.clone(), best[i], p50, p99));
    }
    let direct = results[0].clone();
    for (name, mbps, p50, p99) in &results {
        println!(
            "{name:<16} {mbps:>12.0} {:>9.1}% {p50:>10.1} {p99:>10.1}",
            100.0 * mbps / direct.1
        );
    }
    if let Some(fwd) = results.iter().find(|r| r.0 == "runner forward") {
        println!(
            "forward vs direct: {:.1} % throughput, p50 overhead {:.1} µs",
            100.0 * fwd.1 / direct.1,
            fwd.2 - direct.2
        );
        if let Some(socat) = results.iter().find(|r| r.0 == "socat") {
            println!(
                "forward vs socat: {:.2}x throughput, p50 {:+.1} µs",
                fwd.1 / socat.1,
                fwd.2 - socat.2
            );
        }
    }
    println!("load average at the end: {}", stats::load_average());
}

/// User + system CPU time of `pid` and its reaped children, in seconds
/// (/proc/PID/stat fields 14–17, in USER_HZ = 100 ticks per second).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// Whether `pid` has a child process right now (socat's per-connection fork).
fn has_children(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|c| !c.trim().is_empty())
        .unwrap_or(false)
}
