//! The Docker backend against the real engine and the harness's fixture
//! image (busybox + a static gateway). Without an engine these tests fail
//! with the fix in the message; they never skip.

use std::time::{Duration, Instant};

use runner::backend::docker::DockerBackend;
use runner::backend::{
    Backend, BackendError, ExecSpec, FileKind, ProcessId, ProcessInfo, SandboxState, Signal,
    SpawnSpec, WriteSpec,
};
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, images};

struct Fixture {
    sb: Sandbox,
    backend: DockerBackend,
}

impl Fixture {
    async fn new() -> Self {
        let engine = Engine::connect()
            .await
            .expect("a Docker engine is required for these tests");
        let image = images::ensure("fixture").await.expect("fixture image");
        let sb = Sandbox::create(
            &engine,
            SandboxSpec::new(image)
                .mode(Mode::Keepalive)
                .name_prefix("backend"),
        )
        .await
        .expect("create sandbox");
        let backend = DockerBackend::connect()
            .await
            .expect("DockerBackend::connect");
        Self { sb, backend }
    }

    fn name(&self) -> &str {
        self.sb.name()
    }

    async fn exec(&self, spec: ExecSpec) -> Result<runner::backend::ExecResult, BackendError> {
        self.backend.exec(self.name(), spec).await
    }

    /// Test set-up inside the container, as root.
    async fn sh(&self, script: &str) -> String {
        let r = self.exec(exec(&["sh", "-c", script])).await.unwrap();
        assert_eq!(
            r.exit_code,
            0,
            "{script}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8(r.stdout).unwrap()
    }

    async fn processes(&self) -> Vec<ProcessInfo> {
        self.backend.processes(self.name()).await.unwrap()
    }

    async fn wait_for(
        &self,
        what: &str,
        want: impl Fn(&[ProcessInfo]) -> bool,
    ) -> Vec<ProcessInfo> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let procs = self.processes().await;
            if want(&procs) {
                return procs;
            }
            assert!(Instant::now() < until, "{what}; last seen: {procs:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn exec(argv: &[&str]) -> ExecSpec {
    ExecSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(20),
        max_output: 64 * 1024,
        ..ExecSpec::default()
    }
}

fn alive(procs: &[ProcessInfo], id: ProcessId) -> bool {
    procs.iter().any(|p| p.id == id && p.state != "Z")
}

#[tokio::test]
async fn inspect_reports_state_and_missing_sandbox() {
    let f = Fixture::new().await;
    let info = f.backend.inspect(f.name()).await.unwrap();
    assert_eq!(info.state, SandboxState::Running);
    assert_eq!(info.id, f.sb.id());
    assert_eq!(info.name, f.name());
    assert!(
        info.labels.iter().any(|(k, _)| k == "runner.e2e"),
        "{:?}",
        info.labels
    );
    assert!(info.started_at.is_some());
    let e = f
        .backend
        .inspect("rt-runner-no-such-sandbox")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        BackendError::SandboxMissing("rt-runner-no-such-sandbox".into())
    );
    let e = f.exec(exec(&["true"])).await;
    assert!(e.is_ok());
    let e = f
        .backend
        .exec("rt-runner-no-such-sandbox", exec(&["true"]))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        BackendError::SandboxMissing("rt-runner-no-such-sandbox".into())
    );
}

#[tokio::test]
async fn exec_exit_codes_streams_stdin_env_user() {
    let f = Fixture::new().await;
    let r = f
        .exec(exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]))
        .await
        .unwrap();
    assert_eq!(
        (r.exit_code, r.stdout.as_slice(), r.stderr.as_slice()),
        (3, &b"out\n"[..], &b"err\n"[..])
    );
    assert!(!r.truncated);

    let mut spec = exec(&["sh", "-c", "cat; echo \" $RUNNER_T $(pwd) $(id -u)\""]);
    spec.stdin = Some(b"from stdin".to_vec());
    spec.env = vec![("RUNNER_T".into(), "v1".into())];
    spec.workdir = Some("/tmp".into());
    spec.user = Some("sandbox".into());
    let r = f.exec(spec).await.unwrap();
    assert_eq!(
        String::from_utf8(r.stdout).unwrap(),
        "from stdin v1 /tmp 1000\n"
    );

    let mut spec = exec(&["id", "-u"]);
    spec.user = Some("998:998".into());
    assert_eq!(f.exec(spec).await.unwrap().stdout, b"998\n");
}

#[tokio::test]
async fn exec_output_is_capped_per_stream() {
    let f = Fixture::new().await;
    let mut spec = exec(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do echo 0123456789; i=$((i+1)); done; echo done >&2",
    ]);
    spec.max_output = 1000;
    let r = f.exec(spec).await.unwrap();
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.stdout.len(), 1000);
    assert_eq!(r.stderr, b"done\n");
    assert!(r.truncated);
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_process_tree() {
    let f = Fixture::new().await;
    let mut spec = exec(&["sh", "-c", "sleep 300 & sleep 300"]);
    spec.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let e = f.exec(spec).await.unwrap_err();
    assert!(
        matches!(&e, BackendError::Timeout(t) if t.contains("killed")),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let left: Vec<ProcessInfo> = f
        .processes()
        .await
        .into_iter()
        .filter(|p| p.cmdline.iter().any(|a| a == "300") && p.state != "Z")
        .collect();
    assert!(left.is_empty(), "left running: {left:#?}");
    // The container's own view agrees (no host-side shortcut).
    let ps = f.sh("ps -o pid,args | grep -c '[s]leep 300' || true").await;
    assert_eq!(ps.trim(), "0");
}

#[tokio::test]
async fn exec_typed_start_errors_and_stopped_sandbox() {
    let f = Fixture::new().await;
    let e = f.exec(exec(&["runner-no-such-binary"])).await.unwrap_err();
    assert!(matches!(e, BackendError::NoSuchBinary(_)), "{e:?}");
    let mut spec = exec(&["true"]);
    spec.user = Some("runner-no-such-user".into());
    let e = f.exec(spec).await.unwrap_err();
    assert!(matches!(e, BackendError::NoSuchUser(_)), "{e:?}");
    // A program's own 126 is an exit code, not a start failure.
    let r = f.exec(exec(&["sh", "-c", "exit 126"])).await.unwrap();
    assert_eq!(r.exit_code, 126);

    f.sb.pause().await.unwrap();
    let e = f.exec(exec(&["true"])).await.unwrap_err();
    assert!(
        matches!(&e, BackendError::NotRunning { state, .. } if state == "paused"),
        "{e:?}"
    );
    f.sb.unpause().await.unwrap();

    f.sb.stop().await.unwrap();
    let e = f.exec(exec(&["true"])).await.unwrap_err();
    assert!(matches!(e, BackendError::NotRunning { .. }), "{e:?}");
    let e = f.backend.processes(f.name()).await.unwrap_err();
    assert!(matches!(e, BackendError::NotRunning { .. }), "{e:?}");
    assert!(matches!(
        f.backend.inspect(f.name()).await.unwrap().state,
        SandboxState::Exited { .. }
    ));
    f.backend.start(f.name()).await.unwrap();
    assert_eq!(
        f.backend.inspect(f.name()).await.unwrap().state,
        SandboxState::Running
    );
    assert_eq!(f.exec(exec(&["true"])).await.unwrap().exit_code, 0);
}

#[tokio::test]
async fn atomic_write_sets_mode_and_owner_and_leaves_no_temp_files() {
    let f = Fixture::new().await;
    f.sh("mkdir -p /sandbox/cfg && echo old > /sandbox/cfg/app.json")
        .await;
    f.backend
        .write_file(
            f.name(),
            WriteSpec {
                path: "/sandbox/cfg/app.json".into(),
                data: b"{\"v\":2}".to_vec(),
                mode: 0o640,
                uid: 1000,
                gid: 998,
            },
        )
        .await
        .unwrap();
    // Seen from inside the container.
    assert_eq!(
        f.sh("stat -c '%u:%g:%a' /sandbox/cfg/app.json; cat /sandbox/cfg/app.json")
            .await,
        "1000:998:640\n{\"v\":2}"
    );
    let st = f
        .backend
        .stat(f.name(), "/sandbox/cfg/app.json")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (st.kind, st.mode, st.uid, st.gid, st.size),
        (FileKind::Regular, 0o640, 1000, 998, 7)
    );
    let names = f
        .backend
        .list_dir(f.name(), "/sandbox/cfg", 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names, vec!["app.json".to_string()]);
    // A failed write leaves nothing either.
    let e = f
        .backend
        .write_file(
            f.name(),
            WriteSpec {
                path: "/sandbox/cfg/missing/x".into(),
                data: b"x".to_vec(),
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Failed(_)), "{e:?}");
    assert_eq!(f.sh("ls -A /sandbox/cfg").await, "app.json\n");
}

#[tokio::test]
async fn paths_never_escape_the_sandbox_root() {
    let f = Fixture::new().await;
    let inside_passwd = f.sh("cat /etc/passwd").await;
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert_ne!(
        inside_passwd, host_passwd,
        "the test needs distinct passwd files"
    );
    f.sh(
        "ln -sfn /etc /tmp/link && ln -sfn /etc/passwd /tmp/pw && ln -sfn ../../../../etc /tmp/rel",
    )
    .await;

    // `..` and absolute/relative symlinks resolve inside the container root.
    for path in [
        "/../../../etc/passwd",
        "/tmp/link/passwd",
        "/tmp/rel/passwd",
    ] {
        let c = f.backend.read_file(f.name(), path, 1 << 20).await.unwrap();
        assert_eq!(String::from_utf8(c.data).unwrap(), inside_passwd, "{path}");
    }
    // A symlink as the last component is denied for reads, reported by stat.
    let e = f
        .backend
        .read_file(f.name(), "/tmp/pw", 100)
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
    assert_eq!(
        f.backend
            .stat(f.name(), "/tmp/pw")
            .await
            .unwrap()
            .unwrap()
            .kind,
        FileKind::Symlink
    );
    assert_eq!(f.backend.stat(f.name(), "/tmp/absent").await.unwrap(), None);

    // Writes through any symlink are denied and change nothing.
    for path in ["/tmp/link/passwd", "/tmp/link/new-file", "/tmp/pw"] {
        let e = f
            .backend
            .write_file(
                f.name(),
                WriteSpec {
                    path: path.into(),
                    data: b"evil\n".to_vec(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, BackendError::Denied(_)), "{path}: {e:?}");
    }
    assert_eq!(f.sh("cat /etc/passwd").await, inside_passwd);
    assert_eq!(
        f.sh("ls /etc/new-file 2>/dev/null || echo none").await,
        "none\n"
    );
    assert_eq!(std::fs::read_to_string("/etc/passwd").unwrap(), host_passwd);
}

#[tokio::test]
async fn remove_if_refuses_symlinks_and_directories_and_compares_content() {
    let f = Fixture::new().await;
    f.sh("mkdir -p /tmp/locks/dir && printf old > /tmp/locks/gw.lock && ln -s /tmp/locks/gw.lock /tmp/locks/link")
        .await;
    let name = f.name();
    let e = f
        .backend
        .remove_file_if(name, "/tmp/locks/link", None)
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
    let e = f
        .backend
        .remove_file_if(name, "/tmp/locks/dir", None)
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
    assert!(
        !f.backend
            .remove_file_if(name, "/tmp/locks/gw.lock", Some(b"new".to_vec()))
            .await
            .unwrap()
    );
    assert!(
        f.backend
            .remove_file_if(name, "/tmp/locks/gw.lock", Some(b"old".to_vec()))
            .await
            .unwrap()
    );
    assert!(
        !f.backend
            .remove_file_if(name, "/tmp/locks/gw.lock", None)
            .await
            .unwrap()
    );
    assert_eq!(f.sh("ls -A /tmp/locks").await, "dir\nlink\n");
}

#[tokio::test]
async fn spawn_detached_identity_matches_processes_and_signal_checks_it() {
    let f = Fixture::new().await;
    let id = f
        .backend
        .spawn_detached(
            f.name(),
            SpawnSpec {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo hello from $RUNNER_T; exec sleep 1000".into(),
                ],
                user: Some("sandbox".into()),
                env: vec![("RUNNER_T".into(), "spawn".into())],
                workdir: Some("/sandbox".into()),
                log_file: "/tmp/spawned.log".into(),
            },
        )
        .await
        .unwrap();
    let procs = f
        // busybox runs applets by re-executing /proc/self/exe and renames
        // itself afterwards, so under load a snapshot can catch the new
        // cmdline while comm still reads "exe": wait for both to settle.
        .wait_for("spawned sleep", |ps| {
            ps.iter()
                .any(|p| p.id == id && p.cmdline == ["sleep", "1000"] && p.comm == "sleep")
        })
        .await;
    let p = procs.iter().find(|p| p.id == id).unwrap();
    assert_eq!(p.uid, 1000);
    // Own session, as seen from inside: field 6 (session) == its pid.
    let stat = f.sh(&format!("cat /proc/{}/stat", id.pid)).await;
    let after: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    assert_eq!(after[3], id.pid.to_string(), "{stat}");
    assert_eq!(after[19], id.start_time.to_string(), "{stat}");
    assert_eq!(
        f.sh("cat /tmp/spawned.log; stat -c %u /tmp/spawned.log")
            .await,
        "hello from spawn\n1000\n"
    );

    let stale = ProcessId {
        pid: id.pid,
        start_time: id.start_time - 1,
    };
    assert!(
        !f.backend
            .signal(f.name(), stale, Signal::Kill)
            .await
            .unwrap()
    );
    assert!(alive(&f.processes().await, id));
    assert!(f.backend.signal(f.name(), id, Signal::Term).await.unwrap());
    f.wait_for("spawned sleep to exit", |ps| !alive(ps, id))
        .await;
    assert!(!f.backend.signal(f.name(), id, Signal::Term).await.unwrap());

    let e = f
        .backend
        .spawn_detached(
            f.name(),
            SpawnSpec {
                argv: vec!["runner-no-such-binary".into()],
                log_file: "/tmp/spawned.log".into(),
                ..SpawnSpec::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::NoSuchBinary(_)), "{e:?}");
    let e = f
        .backend
        .spawn_detached(
            f.name(),
            SpawnSpec {
                argv: vec!["sleep".into(), "1".into()],
                user: Some("runner-no-such-user".into()),
                log_file: "/tmp/spawned.log".into(),
                ..SpawnSpec::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::NoSuchUser(_)), "{e:?}");
}

#[tokio::test]
async fn listener_owner_and_http_without_tools_in_the_image() {
    let f = Fixture::new().await;
    // No HTTP client left in the container: only the listener binary's applet.
    f.sh("mkdir -p /tmp/www && echo hi-from-httpd > /tmp/www/index.html && for d in $(echo $PATH | tr : ' '); do rm -f $d/wget $d/nc $d/curl; done")
        .await;
    assert_eq!(f.sh("which wget curl nc || echo none").await, "none\n");
    let id = f
        .backend
        .spawn_detached(
            f.name(),
            SpawnSpec {
                argv: ["httpd", "-f", "-p", "127.0.0.1:28347", "-h", "/tmp/www"]
                    .map(String::from)
                    .to_vec(),
                log_file: "/tmp/httpd.log".into(),
                ..SpawnSpec::default()
            },
        )
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        let ls = f.backend.listeners(f.name()).await.unwrap();
        if let Some(l) = ls.iter().find(|l| l.port == 28347) {
            break l.clone();
        }
        assert!(Instant::now() < until, "no listener on 28347: {ls:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listener.address, "127.0.0.1");
    assert_eq!(listener.owner, Some(id));

    let stream = f
        .backend
        .connect_loopback(f.name(), 28347, Duration::from_secs(3))
        .await
        .unwrap();
    let req = runner::net::HttpRequest {
        method: "GET".into(),
        path: "/index.html".into(),
        host: "127.0.0.1:28347".into(),
        max_body: 1024,
        ..Default::default()
    };
    let r = runner::net::http::send(stream, &req, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hi-from-httpd\n");
    // The port exists only in the container's namespace.
    assert!(std::net::TcpStream::connect(("127.0.0.1", 28347)).is_err());
    let e = f
        .backend
        .connect_loopback(f.name(), 28348, Duration::from_secs(3))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, BackendError::Failed(_)), "{e:?}");
}

#[tokio::test]
async fn restart_is_followed_by_the_proc_view() {
    let f = Fixture::new().await;
    let init_before = f
        .processes()
        .await
        .into_iter()
        .find(|p| p.id.pid == 1)
        .unwrap();
    f.sb.docker_restart().await.unwrap();
    let init_after = f
        .processes()
        .await
        .into_iter()
        .find(|p| p.id.pid == 1)
        .unwrap();
    assert_ne!(init_before.id.start_time, init_after.id.start_time);
    // Files of the new run (tmpfs /tmp was wiped): the new root is used.
    assert_eq!(
        f.backend
            .stat(f.name(), "/tmp/runner-marker")
            .await
            .unwrap(),
        None
    );
    f.sh("touch /tmp/runner-marker").await;
    assert!(
        f.backend
            .stat(f.name(), "/tmp/runner-marker")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn exec_only_access_signals_kills_and_relays_through_execs() {
    let f = Fixture::new().await;
    let b = DockerBackend::connect().await.unwrap().exec_only();
    let name = f.name();
    for e in [
        b.processes(name).await.map(|_| ()).unwrap_err(),
        b.read_file(name, "/etc/passwd", 10)
            .await
            .map(|_| ())
            .unwrap_err(),
        b.listeners(name).await.map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(&e, BackendError::Unavailable(t) if t.contains("/proc")),
            "{e:?}"
        );
    }

    let id = b
        .spawn_detached(
            name,
            SpawnSpec {
                argv: vec!["sleep".into(), "1001".into()],
                log_file: "/tmp/spawned.log".into(),
                ..SpawnSpec::default()
            },
        )
        .await
        .unwrap();
    f.wait_for("spawned sleep", |ps| alive(ps, id)).await;
    let stale = ProcessId {
        pid: id.pid,
        start_time: id.start_time + 1,
    };
    assert!(!b.signal(name, stale, Signal::Kill).await.unwrap());
    assert!(alive(&f.processes().await, id));
    assert!(b.signal(name, id, Signal::Term).await.unwrap());
    f.wait_for("spawned sleep to exit", |ps| !alive(ps, id))
        .await;

    // Timeout kill without the host /proc view: a second exec kills the group.
    let mut spec = exec(&["sh", "-c", "sleep 301 & sleep 302"]);
    spec.timeout = Duration::from_secs(1);
    let e = b.exec(name, spec).await.unwrap_err();
    assert!(
        matches!(&e, BackendError::Timeout(t) if t.contains("killed")),
        "{e:?}"
    );
    f.wait_for("no sleep 301/302 left", |ps| {
        !ps.iter()
            .any(|p| p.cmdline.iter().any(|a| a == "301" || a == "302") && p.state != "Z")
    })
    .await;

    // Loopback HTTP through an `nc` relay in the container.
    f.sh("mkdir -p /tmp/www && echo relayed > /tmp/www/index.html")
        .await;
    b.spawn_detached(
        name,
        SpawnSpec {
            argv: ["httpd", "-f", "-p", "127.0.0.1:28349", "-h", "/tmp/www"]
                .map(String::from)
                .to_vec(),
            log_file: "/tmp/httpd.log".into(),
            ..SpawnSpec::default()
        },
    )
    .await
    .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !f
        .backend
        .listeners(name)
        .await
        .unwrap()
        .iter()
        .any(|l| l.port == 28349)
    {
        assert!(Instant::now() < until, "httpd did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = b
        .connect_loopback(name, 28349, Duration::from_secs(5))
        .await
        .unwrap();
    let req = runner::net::HttpRequest {
        method: "GET".into(),
        path: "/index.html".into(),
        host: "127.0.0.1:28349".into(),
        max_body: 1024,
        ..Default::default()
    };
    let r = runner::net::http::send(stream, &req, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"relayed\n"[..]));
}

#[tokio::test]
async fn unreachable_engine_names_the_cause_and_the_fix() {
    let dir = std::env::temp_dir().join(format!("runner-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let e = DockerBackend::connect_to("unix:///tmp/runner-no-such-engine.sock")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BackendError::EngineUnreachable { cause, fix } if cause.contains("no engine socket") && fix.contains("dockerd")),
        "{e:?}"
    );

    // A stopped engine leaves its socket file behind: connection refused.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let e = DockerBackend::connect_to(&format!("unix://{}", stale.display()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BackendError::EngineUnreachable { cause, fix } if cause.to_lowercase().contains("refused") && fix.contains("DOCKER_HOST")),
        "{e:?}"
    );

    // A hung engine accepts but never answers: bounded, not stuck.
    let hung = dir.join("hung.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&hung).unwrap();
    let started = Instant::now();
    let e = DockerBackend::connect_to(&format!("unix://{}", hung.display()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BackendError::EngineUnreachable { cause, .. } if cause.contains("did not answer")),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
}
