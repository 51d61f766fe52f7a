//! A private dockerd for tests that stop, kill or reconfigure the engine: its
//! own socket, data root, exec root, pid file, config file and bridge, so the
//! shared engine (and every other test's sandboxes) never notice. Optionally
//! it also listens on `tcp://127.0.0.1:PORT` with `--tlsverify` and
//! certificates made by [`TestCerts`].
//!
//! Never `--bridge=none`: dockerd then deletes `docker0` at start-up (moby
//! `removeDefaultBridgeInterface`), which cuts the shared engine's containers
//! off. Each private engine gets a bridge of its own instead, and tests that
//! want no network at all create their sandboxes with `--network none`.
//!
//! Every call is bounded and blocking (plain processes and std I/O), so
//! `Drop` can use the same code: it removes the engine's containers, stops
//! the daemon, kills what it left behind, unmounts and deletes its
//! directories and the bridge.

use crate::engine::Engine;
use crate::slots::{self, Slot};
use crate::sys;
use crate::test_certs::TestCerts;
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's CLI (a newer one elsewhere in PATH may lack what the tests use).
const DOCKER_CLI: &str = "/usr/bin/docker";
/// Private engines at once, across test processes.
const MAX_ENGINES: usize = 4;
const SLOT_TIMEOUT: Duration = Duration::from_secs(600);
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const REAP_TIMEOUT: Duration = Duration::from_secs(10);
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

pub struct PrivateEngine {
    run_dir: PathBuf,
    data_root: PathBuf,
    bridge: String,
    bridge_cidr: String,
    tcp_port: Option<u16>,
    certs: Option<TestCerts>,
    child: Option<Child>,
    /// Held for the engine's whole life: the slot's names are ours.
    _slot: Slot,
}

impl std::fmt::Debug for PrivateEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateEngine")
            .field("socket", &self.socket())
            .field("tcp_port", &self.tcp_port)
            .field("pid", &self.pid())
            .finish()
    }
}

impl PrivateEngine {
    /// A plain private engine on its own unix socket, started and answering.
    pub async fn start() -> Result<PrivateEngine> {
        Self::start_with(false).await
    }

    /// Also listening on `tcp://127.0.0.1:PORT` with `--tlsverify`.
    pub async fn start_tls() -> Result<PrivateEngine> {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Result<PrivateEngine> {
        let slot = slots::acquire("private-engine", MAX_ENGINES, SLOT_TIMEOUT).await?;
        let n = slot.index();
        let mut engine = PrivateEngine {
            run_dir: PathBuf::from(format!("/run/runner-pe-{n}")),
            data_root: PathBuf::from(format!("/var/lib/runner-pe-{n}")),
            bridge: format!("rtpe{n}"),
            bridge_cidr: format!("172.31.{}.1/24", 232 + n),
            tcp_port: None,
            certs: None,
            child: None,
            _slot: slot,
        };
        // The slot's previous holder died without cleaning up (its flock
        // went with it): its daemon, mounts and bridge are leftovers.
        engine.clean_up();
        std::fs::create_dir_all(&engine.run_dir)?;
        std::fs::create_dir_all(&engine.data_root)?;
        // Not /etc/docker/daemon.json: the shared engine's settings (hosts,
        // data root) would clash with ours.
        std::fs::write(engine.run_dir.join("daemon.json"), "{}\n")?;
        if tls {
            engine.certs = Some(TestCerts::make(&engine.run_dir.join("certs"))?);
            engine.tcp_port = Some(crate::free_port()?);
        }
        run(
            "ip",
            &["link", "add", "name", &engine.bridge, "type", "bridge"],
        )?;
        run(
            "ip",
            &["addr", "add", &engine.bridge_cidr, "dev", &engine.bridge],
        )?;
        run("ip", &["link", "set", &engine.bridge, "up"])?;
        engine.launch()?;
        Ok(engine)
    }

    /// `unix:///run/runner-pe-N/docker.sock`.
    pub fn unix_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `tcp://127.0.0.1:PORT` of a TLS engine.
    pub fn tcp_host(&self) -> Option<String> {
        self.tcp_port.map(|p| format!("tcp://127.0.0.1:{p}"))
    }

    pub fn certs(&self) -> Option<&TestCerts> {
        self.certs.as_ref()
    }

    /// The dockerd process, while one runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A harness client over the unix socket.
    pub async fn engine(&self) -> Result<Engine> {
        Engine::connect_to(&self.unix_host()).await
    }

    fn socket(&self) -> PathBuf {
        self.run_dir.join("docker.sock")
    }

    fn exec_root(&self) -> PathBuf {
        self.run_dir.join("x")
    }

    fn log_path(&self) -> PathBuf {
        self.run_dir.join("dockerd.log")
    }

    /// The last lines of the daemon's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Starts dockerd (again: same flags, same data) and waits until it
    /// answers `/_ping` on its socket.
    pub fn launch(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!(
                "the private dockerd is already running (pid {:?})",
                self.pid()
            );
        }
        let mut args = vec![
            format!("--host=unix://{}", self.socket().display()),
            format!("--data-root={}", self.data_root.display()),
            format!("--exec-root={}", self.exec_root().display()),
            format!("--pidfile={}", self.run_dir.join("dockerd.pid").display()),
            format!(
                "--config-file={}",
                self.run_dir.join("daemon.json").display()
            ),
            format!("--bridge={}", self.bridge),
            // The machine's firewall and forwarding are not ours to change.
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--ip-forward=false".into(),
        ];
        if let (Some(certs), Some(port)) = (&self.certs, self.tcp_port) {
            args.push(format!("--host=tcp://127.0.0.1:{port}"));
            args.extend(certs.server_args());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(DOCKERD)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own group: a Ctrl-C to the test run is not a signal to it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {DOCKERD}"))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if ping(&self.socket()) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "the private dockerd exited during start-up ({status}):\n{}",
                    self.log_tail()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = self.kill_9();
                bail!(
                    "the private dockerd did not answer on {} within {START_TIMEOUT:?}:\n{}",
                    self.socket().display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL to dockerd, reaped: no shutdown path runs (its containerd
    /// and the containers' shims live on, as after a real crash).
    pub fn kill_9(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("the private dockerd is not running");
        };
        child.kill().context("kill -9 dockerd")?;
        wait_reaped(&mut child, REAP_TIMEOUT)
    }

    /// SIGTERM (dockerd stops its containers and exits), SIGKILL after
    /// [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        sys::signal(child.id(), sys::SIGTERM).context("kill -TERM dockerd")?;
        match wait_reaped(&mut child, STOP_TIMEOUT) {
            Ok(()) => Ok(()),
            Err(_) => {
                let _ = child.kill();
                wait_reaped(&mut child, REAP_TIMEOUT)
            }
        }
    }

    /// Copies `image` from the engine at `from` (`docker save | docker load`;
    /// there is no registry).
    pub fn load_image(&self, from: &str, image: &str) -> Result<()> {
        let script = format!(
            "set -o pipefail; {DOCKER_CLI} -H '{from}' save '{image}' | {DOCKER_CLI} -H '{}' load -q",
            self.unix_host()
        );
        let out = bounded_output(Command::new("bash").args(["-c", &script]), CLI_TIMEOUT)?;
        if !out.status.success() {
            bail!(
                "copying {image} to the private engine failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Every container of this engine, removed with its anonymous volumes.
    fn remove_containers(&self) -> Result<()> {
        let host = self.unix_host();
        let out = bounded_output(
            Command::new(DOCKER_CLI).args(["-H", &host, "ps", "-aq"]),
            CLI_TIMEOUT,
        )?;
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let out = bounded_output(
            Command::new(DOCKER_CLI)
                .args(["-H", &host, "rm", "-f", "-v"])
                .args(&ids),
            CLI_TIMEOUT,
        )?;
        if !out.status.success() {
            bail!("docker rm -f: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Everything this slot may have left on the machine, whoever left it.
    fn clean_up(&mut self) {
        // Containers go through a live daemon (killing shims alone would
        // leave the containers' processes running): the one answering, or
        // one started on the data root a test left behind.
        let alive = ping(&self.socket())
            || (self.child.is_none()
                && self.data_root.exists()
                && self.run_dir.exists()
                && self.launch().is_ok());
        if alive && let Err(e) = self.remove_containers() {
            eprintln!("runner-e2e: private engine: {e:#}");
        }
        let _ = self.stop();
        kill_processes_mentioning(&self.run_dir);
        unmount_under(&self.run_dir);
        unmount_under(&self.data_root);
        if Path::new(&format!("/sys/class/net/{}", self.bridge)).exists() {
            let _ = run("ip", &["link", "delete", &self.bridge]);
        }
        let _ = std::fs::remove_dir_all(&self.data_root);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// `GET /_ping` answered `OK`.
fn ping(socket: &Path) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut s = UnixStream::connect(socket)?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.set_write_timeout(Some(Duration::from_secs(1)))?;
        s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")?;
        let mut reply = Vec::new();
        s.take(4096).read_to_end(&mut reply)?;
        let text = String::from_utf8_lossy(&reply);
        Ok(text.starts_with("HTTP/1.") && text.contains(" 200 ") && text.ends_with("OK"))
    };
    attempt().unwrap_or(false)
}

fn wait_reaped(child: &mut Child, limit: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "pid {} still running {limit:?} after the signal",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = bounded_output(Command::new(program).args(args), CLI_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `cmd`'s output, killed after `limit`.
fn bounded_output(cmd: &mut Command, limit: Duration) -> Result<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {cmd:?}"))?;
    // Drained on threads so a chatty command cannot block on a full pipe.
    let mut out = child.stdout.take().context("stdout")?;
    let mut err = child.stderr.take().context("stderr")?;
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// SIGKILL to every process whose command line names `dir` (the daemon's
/// containerd and the containers' shims all take paths under the exec root).
fn kill_processes_mentioning(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && pid != std::process::id() {
            let _ = sys::signal(pid, 9);
        }
    }
}

/// Lazily unmounts every mount point under `dir`, deepest first (container
/// root filesystems, network namespace files).
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&prefix) || *p == dir.to_string_lossy())
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for p in points {
        let _ = run("umount", &["-l", p]);
    }
}
