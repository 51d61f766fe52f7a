//! The local backend against this very host: real processes, real files,
//! real sockets. Runs as root in CI (user switching and chown need it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use runner::backend::local::LocalBackend;
use runner::backend::{
    Backend, BackendError, ExecSpec, FileKind, ProcessId, SandboxState, Signal, SpawnSpec,
    WriteSpec,
};

const NAME: &str = "localhost";

fn backend() -> LocalBackend {
    LocalBackend::new(NAME)
}

fn exec(argv: &[&str]) -> ExecSpec {
    ExecSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(10),
        max_output: 64 * 1024,
        ..ExecSpec::default()
    }
}

fn is_root() -> bool {
    rustix_euid() == 0
}

fn rustix_euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// A fresh directory under /tmp, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("runner-local-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn inspect_and_name_check() {
    let b = backend();
    let info = b.inspect(NAME).await.unwrap();
    assert_eq!(info.state, SandboxState::Running);
    assert_eq!(info.name, NAME);
    assert!(info.id.starts_with("local:"));
    b.start(NAME).await.unwrap();
    assert_eq!(
        b.inspect("other").await.unwrap_err(),
        BackendError::SandboxMissing("other".into())
    );
}

#[tokio::test]
async fn exec_exit_codes_and_separate_streams() {
    let b = backend();
    let r = b
        .exec(NAME, exec(&["sh", "-c", "echo out; echo err >&2; exit 7"]))
        .await
        .unwrap();
    assert_eq!(r.exit_code, 7);
    assert_eq!(r.stdout, b"out\n");
    assert_eq!(r.stderr, b"err\n");
    assert!(!r.truncated);
    let r = b.exec(NAME, exec(&["true"])).await.unwrap();
    assert_eq!(r.exit_code, 0);
    // Killed by a signal: 128 + signo, like a shell reports it.
    let r = b
        .exec(NAME, exec(&["sh", "-c", "kill -TERM $$"]))
        .await
        .unwrap();
    assert_eq!(r.exit_code, 143);
}

#[tokio::test]
async fn exec_stdin_env_workdir() {
    let b = backend();
    let scratch = Scratch::new("exec");
    let mut spec = exec(&["sh", "-c", "cat; echo \" $RUNNER_T\"; pwd"]);
    spec.stdin = Some(b"from stdin".to_vec());
    spec.env = vec![("RUNNER_T".into(), "v1".into())];
    spec.workdir = Some(scratch.0.to_string_lossy().into_owned());
    let r = b.exec(NAME, spec).await.unwrap();
    let out = String::from_utf8(r.stdout).unwrap();
    assert_eq!(out, format!("from stdin v1\n{}\n", scratch.0.display()));
}

#[tokio::test]
async fn exec_output_is_capped() {
    let b = backend();
    let mut spec = exec(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 5000 ]; do echo 0123456789; i=$((i+1)); done; echo e >&2",
    ]);
    spec.max_output = 1000;
    let r = b.exec(NAME, spec).await.unwrap();
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.stdout.len(), 1000);
    assert_eq!(r.stderr, b"e\n");
    assert!(r.truncated);
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_tree() {
    let b = backend();
    // Unique durations so concurrent tests never see each other's sleeps.
    let mut spec = exec(&["sh", "-c", "sleep 3011 & sleep 3012"]);
    spec.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let e = b.exec(NAME, spec).await.unwrap_err();
    assert!(matches!(e, BackendError::Timeout(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let left: Vec<_> = b
        .processes(NAME)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.cmdline.iter().any(|a| a == "3011" || a == "3012") && p.state != "Z")
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

#[tokio::test]
async fn exec_typed_start_errors() {
    let b = backend();
    let e = b
        .exec(NAME, exec(&["runner-no-such-binary-x"]))
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::NoSuchBinary(_)), "{e:?}");
    let mut spec = exec(&["true"]);
    spec.user = Some("runner-no-such-user".into());
    let e = b.exec(NAME, spec).await.unwrap_err();
    assert!(matches!(e, BackendError::NoSuchUser(_)), "{e:?}");
    let mut spec = exec(&["true"]);
    spec.workdir = Some("/runner/no/such/dir".into());
    let e = b.exec(NAME, spec).await.unwrap_err();
    assert!(matches!(e, BackendError::Failed(_)), "{e:?}");
}

#[tokio::test]
async fn exec_as_another_user() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    let b = backend();
    let mut spec = exec(&["id", "-u"]);
    spec.user = Some("65534:65534".into());
    let r = b.exec(NAME, spec).await.unwrap();
    assert_eq!(String::from_utf8(r.stdout).unwrap().trim(), "65534");
}

#[tokio::test]
async fn atomic_write_sets_mode_and_owner_and_leaves_no_temp() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    let b = backend();
    let scratch = Scratch::new("write");
    let path = scratch.path("config.json");
    std::fs::write(&path, b"old").unwrap();
    b.write_file(
        NAME,
        WriteSpec {
            path: path.clone(),
            data: b"{\"new\":true}".to_vec(),
            mode: 0o640,
            uid: 1000,
            gid: 1001,
        },
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"new\":true}");
    let st = b.stat(NAME, &path).await.unwrap().unwrap();
    assert_eq!(
        (st.kind, st.mode, st.uid, st.gid, st.size),
        (FileKind::Regular, 0o640, 1000, 1001, 12)
    );
    // set-id bits survive because chown happens before chmod.
    b.write_file(
        NAME,
        WriteSpec {
            path: path.clone(),
            data: b"x".to_vec(),
            mode: 0o4755,
            uid: 0,
            gid: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(b.stat(NAME, &path).await.unwrap().unwrap().mode, 0o4755);
    let names = b
        .list_dir(NAME, &scratch.path(""), 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names, vec!["config.json".to_string()]);
    // A failing write (missing parent) leaves nothing behind either.
    let e = b
        .write_file(
            NAME,
            WriteSpec {
                path: scratch.path("missing/x"),
                data: b"x".to_vec(),
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Failed(_)), "{e:?}");
    assert_eq!(
        b.list_dir(NAME, &scratch.path(""), 100)
            .await
            .unwrap()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn writes_through_symlinks_are_denied() {
    let b = backend();
    let scratch = Scratch::new("symlink");
    let target_dir = scratch.path("real");
    std::fs::create_dir(&target_dir).unwrap();
    std::os::unix::fs::symlink(&target_dir, scratch.path("link")).unwrap();
    std::fs::write(scratch.path("real/file"), b"keep").unwrap();
    std::os::unix::fs::symlink(scratch.path("real/file"), scratch.path("filelink")).unwrap();
    let write = |path: String| WriteSpec {
        path,
        data: b"evil".to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    // A symlinked directory on the path.
    let e = b
        .write_file(NAME, write(scratch.path("link/file")))
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
    let e = b
        .write_file(NAME, write(scratch.path("link/new")))
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
    // A symlink as the last component.
    let e = b
        .write_file(NAME, write(scratch.path("filelink")))
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
    assert_eq!(std::fs::read(scratch.path("real/file")).unwrap(), b"keep");
    assert!(!std::path::Path::new(&scratch.path("real/new")).exists());
    assert!(
        std::fs::symlink_metadata(scratch.path("filelink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Reads: a symlink as last component is denied, stat reports it as one.
    let e = b
        .read_file(NAME, &scratch.path("filelink"), 100)
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
    let st = b
        .stat(NAME, &scratch.path("filelink"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.kind, FileKind::Symlink);
    assert_eq!(b.stat(NAME, &scratch.path("nope")).await.unwrap(), None);
}

#[tokio::test]
async fn read_file_caps_and_lists() {
    let b = backend();
    let scratch = Scratch::new("read");
    std::fs::write(scratch.path("f"), b"0123456789").unwrap();
    let c = b.read_file(NAME, &scratch.path("f"), 4).await.unwrap();
    assert_eq!((c.data.as_slice(), c.truncated), (&b"0123"[..], true));
    let c = b.read_file(NAME, &scratch.path("f"), 10).await.unwrap();
    assert_eq!(
        (c.data.as_slice(), c.truncated),
        (&b"0123456789"[..], false)
    );
    assert_eq!(
        b.list_dir(NAME, &scratch.path("absent"), 10).await.unwrap(),
        None
    );
    for i in 0..5 {
        std::fs::write(scratch.path(&format!("n{i}")), b"").unwrap();
    }
    assert_eq!(
        b.list_dir(NAME, &scratch.path(""), 3)
            .await
            .unwrap()
            .unwrap()
            .len(),
        3
    );
    let e = b.read_file(NAME, "relative/path", 10).await.unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
}

#[tokio::test]
async fn remove_if_only_removes_matching_regular_files() {
    let b = backend();
    let scratch = Scratch::new("remove");
    let lock = scratch.path("gateway.lock");
    std::fs::write(&lock, b"{\"pid\":1}").unwrap();
    std::fs::create_dir(scratch.path("dir")).unwrap();
    std::os::unix::fs::symlink(&lock, scratch.path("link")).unwrap();

    let e = b
        .remove_file_if(NAME, &scratch.path("link"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
    let e = b
        .remove_file_if(NAME, &scratch.path("dir"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Denied(_)), "{e:?}");
    assert!(
        !b.remove_file_if(NAME, &lock, Some(b"{\"pid\":2}".to_vec()))
            .await
            .unwrap()
    );
    assert!(std::path::Path::new(&lock).exists());
    assert!(
        b.remove_file_if(NAME, &lock, Some(b"{\"pid\":1}".to_vec()))
            .await
            .unwrap()
    );
    assert!(!std::path::Path::new(&lock).exists());
    assert!(!b.remove_file_if(NAME, &lock, None).await.unwrap());
    std::fs::write(&lock, b"x").unwrap();
    assert!(b.remove_file_if(NAME, &lock, None).await.unwrap());
    assert!(std::fs::symlink_metadata(scratch.path("link")).is_ok());
}

#[tokio::test]
async fn spawn_detached_identity_and_identity_checked_signal() {
    let b = backend();
    let scratch = Scratch::new("spawn");
    let log = scratch.path("out.log");
    let id = b
        .spawn_detached(
            NAME,
            SpawnSpec {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo started; exec sleep 3021".into(),
                ],
                log_file: log.clone(),
                ..SpawnSpec::default()
            },
        )
        .await
        .unwrap();
    let found = wait_for_process(&b, |p| p.id == id && p.cmdline == ["sleep", "3021"]).await;
    // Its own session: the session id (field 6) is its own pid.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", id.pid)).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let session: u32 = after.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(session, id.pid, "{found:?}");

    let stale = ProcessId {
        pid: id.pid,
        start_time: id.start_time + 1,
    };
    assert!(!b.signal(NAME, stale, Signal::Kill).await.unwrap());
    assert!(b.processes(NAME).await.unwrap().iter().any(|p| p.id == id));
    assert!(b.signal(NAME, id, Signal::Kill).await.unwrap());
    wait_until_gone(&b, id).await;
    assert!(!b.signal(NAME, id, Signal::Kill).await.unwrap());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\n");

    let e = b
        .spawn_detached(
            NAME,
            SpawnSpec {
                argv: vec!["runner-no-such-binary-y".into()],
                log_file: log,
                ..SpawnSpec::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::NoSuchBinary(_)), "{e:?}");
}

#[tokio::test]
async fn listeners_and_loopback_connect() {
    let b = backend();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let found = b.listeners(NAME).await.unwrap();
    let mine = found
        .iter()
        .find(|l| l.port == port)
        .unwrap_or_else(|| panic!("port {port} not in {found:?}"));
    assert_eq!(mine.address, "127.0.0.1");
    assert_eq!(mine.owner.map(|o| o.pid), Some(std::process::id()));

    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
    });
    let stream = b
        .connect_loopback(NAME, port, Duration::from_secs(2))
        .await
        .unwrap();
    let req = runner::net::HttpRequest {
        method: "GET".into(),
        path: "/health".into(),
        host: format!("127.0.0.1:{port}"),
        max_body: 100,
        ..Default::default()
    };
    let r = runner::net::http::send(stream, &req, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    server.join().unwrap();

    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = b
        .connect_loopback(NAME, closed, Duration::from_secs(2))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, BackendError::Failed(_)), "{e:?}");
}

async fn wait_for_process(
    b: &LocalBackend,
    want: impl Fn(&runner::backend::ProcessInfo) -> bool,
) -> runner::backend::ProcessInfo {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(p) = b
            .processes(NAME)
            .await
            .unwrap()
            .into_iter()
            .find(|p| want(p))
        {
            return p;
        }
        assert!(Instant::now() < until, "process did not appear");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_until_gone(b: &LocalBackend, id: ProcessId) {
    let until = Instant::now() + Duration::from_secs(5);
    while b
        .processes(NAME)
        .await
        .unwrap()
        .iter()
        .any(|p| p.id == id && p.state != "Z")
    {
        assert!(Instant::now() < until, "{id:?} survived SIGKILL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn exec_output_survives_a_background_child_holding_the_pipe() {
    let b = backend();
    let started = Instant::now();
    let r = b
        .exec(
            NAME,
            exec(&["sh", "-c", "echo before; sleep 3031 & echo after"]),
        )
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.stdout, b"before\nafter\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Clean up the background child by identity.
    for p in b.processes(NAME).await.unwrap() {
        if p.cmdline == ["sleep", "3031"] {
            let _ = b.signal(NAME, p.id, Signal::Kill).await;
        }
    }
}
