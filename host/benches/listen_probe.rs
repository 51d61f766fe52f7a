//! What `runner watch`'s liveness tick pays to ask whether a gateway still
//! listens: one `ListenProbe::listening` (a sock_diag exact lookup in the
//! sandbox's network namespace) against reading `/proc/<pid>/net/tcp{,6}`,
//! the table the tick must not read (the kernel walks the host's whole TCP
//! hash for it).
//!
//! ```sh
//! cargo bench -p runner --bench listen_probe
//! LISTEN_BENCH_QUERIES=100000 LISTEN_BENCH_CONNECTIONS=2000 cargo bench -p runner --bench listen_probe
//! ```
//!
//! Runs in this process's own network namespace (entering one needs root,
//! as the watcher has), with established loopback connections open, as on a
//! host with forwards. Results are recorded in docs/benchmarks.md (Watch).

#[path = "support/stats.rs"]
mod stats;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Instant;

use runner::watch::liveness::ListenProbe;

/// Mean microseconds per call of `f` over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    let queries = stats::env_or("LISTEN_BENCH_QUERIES", 10_000u32);
    let connections = stats::env_or("LISTEN_BENCH_CONNECTIONS", 200usize);
    let reads = 100;
    let mut probe = ListenProbe::open(Path::new("/proc/self/ns/net"))
        .expect("a probe of our own network namespace (needs root)");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns: Vec<_> = (0..connections)
        .map(|_| {
            let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            (c, listener.accept().unwrap().0)
        })
        .collect();
    // Warm-up.
    for _ in 0..100 {
        assert!(probe.listening(port).unwrap());
    }
    let hit = per_call(queries, || assert!(probe.listening(port).unwrap()));
    let procfs = per_call(reads, || {
        for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
            let _ = std::fs::read(table);
        }
    });
    drop(listener);
    // The accepted ends still sit on the port: established, not listening.
    let miss = per_call(queries, || assert!(!probe.listening(port).unwrap()));
    drop(conns);

    println!(
        "listen_probe: {queries} queries each, {connections} established loopback connections open; load average {}",
        stats::load_average()
    );
    println!("| check | µs per check |");
    println!("|---|---:|");
    println!("| probe, port listening (one AF_INET lookup) | {hit:.2} |");
    println!("| probe, nothing listening (AF_INET + AF_INET6 lookups) | {miss:.2} |");
    println!("| read /proc/self/net/tcp + tcp6 ({reads} reads) | {procfs:.0} |");
}
