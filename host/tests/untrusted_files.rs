//! Every file runner reads or writes on the host, attacked through the real
//! binary: a FIFO, a symlink, a directory or a huge sparse file as the
//! plugin, the watch config, `audit.jsonl`, a lock file, a forward record
//! and a compile cache entry; and compile cache entries forged from another
//! plugin's valid artefact or with one byte flipped.
//!
//! Every command runs under a kill deadline: a hang fails the test (it is
//! killed and named) instead of hanging the suite. Refusals must also be
//! quick, well inside [`QUICK`]; a load that recompiles a forged or odd
//! cache entry only has to finish (Cranelift's time is the machine's).

mod support;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{CliHome, wasm};

/// A command still running after this is killed and the test fails.
const KILL_AFTER: Duration = Duration::from_secs(60);
/// What a refusal may take: process start, engine set-up, one check.
const QUICK: Duration = Duration::from_secs(10);
/// A sparse file bigger than any cap (and than a test machine's memory
/// would like to read whole).
const HUGE: u64 = 5 << 30;

struct Ran {
    out: Output,
    took: Duration,
}

impl Ran {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&self.out.stdout),
                self.stderr()
            )
        })
    }
}

/// Runs `runner args` in `home`, killed (and the test failed) after
/// [`KILL_AFTER`].
fn run(home: &CliHome, args: &[&str]) -> Ran {
    run_command(home.command(), args)
}

fn run_command(mut cmd: Command, args: &[&str]) -> Ran {
    cmd.args(args)
        .env_remove("RUNNER_LOG")
        .env_remove("DOCKER_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("runner starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut data = Vec::new();
            let _ = pipe.read_to_end(&mut data);
            data
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > KILL_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`runner {}` hung: killed after {KILL_AFTER:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    Ran {
        out: Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        },
        took,
    }
}

/// Exit 2, quickly, with stderr naming `path` and `problem`.
fn assert_refused(ran: &Ran, path: &Path, problem: &str) {
    let stderr = ran.stderr();
    assert_eq!(ran.code(), Some(2), "stderr: {stderr}");
    assert!(ran.took < QUICK, "took {:?}: {stderr}", ran.took);
    assert!(
        stderr.contains(&path.display().to_string()),
        "expected the path {} in: {stderr}",
        path.display()
    );
    assert!(
        stderr.contains(problem),
        "expected '{problem}' in: {stderr}"
    );
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
}

fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

fn home(tag: &str) -> CliHome {
    let home = CliHome::new(&format!("untrusted-{tag}"));
    std::fs::create_dir_all(&home.state).unwrap();
    home
}

fn local_status(plugin: &str) -> Vec<&str> {
    vec![
        "status",
        "--plugin",
        plugin,
        "--sandbox",
        "localhost",
        "--backend",
        "local",
    ]
}

fn testkit() -> String {
    wasm("testkit").display().to_string()
}

// ---- the plugin file -------------------------------------------------------

#[test]
fn a_fifo_as_the_plugin_is_refused_at_once_by_every_command() {
    let home = home("plugin-fifo");
    let fifo = home.state.join("agent.wasm");
    mkfifo(&fifo);
    let path = fifo.to_str().unwrap();
    for args in [
        local_status(path),
        vec!["plugin", "inspect", path],
        vec!["conformance", path],
    ] {
        assert_refused(&run(&home, &args), &fifo, "is a FIFO, not a regular file");
    }
    // Through a link the user named, too.
    let link = home.state.join("current.wasm");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    assert_refused(
        &run(&home, &local_status(link.to_str().unwrap())),
        &link,
        "is a FIFO, not a regular file",
    );
}

#[test]
fn a_directory_or_a_huge_sparse_file_as_the_plugin_is_refused_at_once() {
    let home = home("plugin-odd");
    let dir = home.state.join("agent.wasm");
    std::fs::create_dir(&dir).unwrap();
    assert_refused(
        &run(&home, &local_status(dir.to_str().unwrap())),
        &dir,
        "is a directory, not a regular file",
    );
    let huge = home.state.join("huge.wasm");
    sparse(&huge, HUGE);
    let ran = run(&home, &local_status(huge.to_str().unwrap()));
    assert_refused(&ran, &huge, "larger than the 256 MiB limit");
    assert!(ran.took < Duration::from_secs(5), "{:?}", ran.took);
}

#[test]
fn a_plugin_named_through_a_symlink_to_a_real_component_loads() {
    let home = home("plugin-link");
    let link = home.state.join("current.wasm");
    std::os::unix::fs::symlink(wasm("testkit"), &link).unwrap();
    let ran = run(
        &home,
        &["plugin", "inspect", link.to_str().unwrap(), "--json"],
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr());
    assert_eq!(ran.json()["name"], "testkit");
}

// ---- the watch config ------------------------------------------------------

#[test]
fn a_watch_config_that_is_not_a_small_regular_file_is_refused_at_once() {
    let home = home("config");
    let fifo = home.state.join("fifo.toml");
    mkfifo(&fifo);
    let to_fifo = home.state.join("link.toml");
    std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
    let dir = home.state.join("dir.toml");
    std::fs::create_dir(&dir).unwrap();
    let huge = home.state.join("huge.toml");
    sparse(&huge, HUGE);
    for (path, problem) in [
        (&fifo, "is a FIFO, not a regular file"),
        (&to_fifo, "is a FIFO, not a regular file"),
        (&dir, "is a directory, not a regular file"),
        (&huge, "larger than the 1 MiB limit"),
    ] {
        let ran = run(&home, &["watch", "--config", path.to_str().unwrap()]);
        assert_refused(&ran, path, problem);
        assert!(ran.stderr().contains("watch config"), "{}", ran.stderr());
    }
}

// ---- the audit log ---------------------------------------------------------

fn local_recover(plugin: &str) -> Vec<&str> {
    let mut args = local_status(plugin);
    args[0] = "recover";
    args
}

#[test]
fn an_unusable_audit_log_stops_a_recover_before_it_locks_or_mutates() {
    let plugin = testkit();
    let home = home("audit");
    let audit = home.state.join("audit.jsonl");
    let target = home.state.join("elsewhere.jsonl");
    std::fs::write(&target, b"").unwrap();
    let locks = home.state.join("locks");

    std::os::unix::fs::symlink(&target, &audit).unwrap();
    let ran = run(&home, &local_recover(&plugin));
    assert_refused(&ran, &audit, "is a symbolic link, not a regular file");
    assert!(
        ran.stderr()
            .contains("does not mutate a sandbox it cannot audit"),
        "{}",
        ran.stderr()
    );
    assert_eq!(
        ran.stderr().trim_end().lines().count(),
        1,
        "{}",
        ran.stderr()
    );
    assert!(!locks.exists(), "a lock was taken before the audit check");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"",
        "the link was followed"
    );
    // With --json the one report object says so too.
    let mut json_args = local_recover(&plugin);
    json_args.push("--json");
    let ran = run(&home, &json_args);
    assert_eq!(ran.code(), Some(2));
    assert!(
        ran.json()["message"]
            .as_str()
            .unwrap()
            .contains("is a symbolic link"),
        "{}",
        ran.json()
    );
    // A status never mutates, so it needs no audit log.
    assert_eq!(run(&home, &local_status(&plugin)).code(), Some(0));
    // `forward stop` is a mutation too.
    assert_refused(
        &run(&home, &["forward", "stop", "--all"]),
        &audit,
        "is a symbolic link",
    );
    std::fs::remove_file(&audit).unwrap();

    mkfifo(&audit);
    assert_refused(
        &run(&home, &local_recover(&plugin)),
        &audit,
        "is a FIFO, not a regular file",
    );
    assert_refused(
        &run(&home, &["watch"]),
        &audit,
        "is a FIFO, not a regular file",
    );
    std::fs::remove_file(&audit).unwrap();

    std::fs::create_dir(&audit).unwrap();
    assert_refused(
        &run(&home, &local_recover(&plugin)),
        &audit,
        "is a directory, not a regular file",
    );
    assert!(!locks.exists(), "a lock was taken before the audit check");
    std::fs::remove_dir(&audit).unwrap();

    // A huge (sparse) log is only appended to, never read: no cost.
    sparse(&audit, HUGE);
    let ran = run(&home, &local_recover(&plugin));
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr());
    assert!(ran.took < QUICK * 3, "{:?}", ran.took);
}

// ---- lock files ------------------------------------------------------------

#[test]
fn a_lock_path_that_is_not_a_lock_is_refused_never_followed_never_waited_on() {
    let plugin = testkit();
    let home = home("lock");
    let locks = home.state.join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    let lock = locks.join("local-localhost.lock");
    let target = home.state.join("elsewhere.lock");

    std::os::unix::fs::symlink(&target, &lock).unwrap();
    assert_refused(
        &run(&home, &local_recover(&plugin)),
        &lock,
        "is a symbolic link, not a regular file",
    );
    assert!(!target.exists(), "the link was followed");
    std::fs::remove_file(&lock).unwrap();

    mkfifo(&lock);
    assert_refused(
        &run(&home, &local_recover(&plugin)),
        &lock,
        "is a FIFO, not a regular file",
    );
    std::fs::remove_file(&lock).unwrap();

    std::fs::create_dir(&lock).unwrap();
    assert_refused(
        &run(&home, &local_recover(&plugin)),
        &lock,
        "is a directory, not a regular file",
    );
    std::fs::remove_dir(&lock).unwrap();

    sparse(&lock, HUGE);
    assert_refused(
        &run(&home, &local_recover(&plugin)),
        &lock,
        "larger than the 4 KiB limit",
    );
    std::fs::remove_file(&lock).unwrap();

    // `locks/` itself must not lead elsewhere.
    std::fs::remove_dir(&locks).unwrap();
    let other = home.state.join("other-locks");
    std::fs::create_dir(&other).unwrap();
    std::os::unix::fs::symlink(&other, &locks).unwrap();
    assert_refused(
        &run(&home, &local_recover(&plugin)),
        &locks,
        "is a symbolic link, not a directory",
    );
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);
    std::fs::remove_file(&locks).unwrap();

    // Nothing odd: the recover runs and leaves a plain lock file.
    let ran = run(&home, &local_recover(&plugin));
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr());
    assert!(std::fs::symlink_metadata(&lock).unwrap().is_file());
}

// ---- forward records -------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn odd_forward_records_are_reported_unreadable_at_once() {
    let home = home("records");
    let forwards = home.state.join("forwards");
    std::fs::create_dir_all(&forwards).unwrap();
    let fifo = forwards.join("127.0.0.1-40001.json");
    mkfifo(&fifo);
    let dir = forwards.join("127.0.0.1-40002.json");
    std::fs::create_dir(&dir).unwrap();
    let huge = forwards.join("127.0.0.1-40003.json");
    sparse(&huge, HUGE);
    let outside = home.state.join("outside.json");
    std::fs::write(&outside, b"{}").unwrap();
    let link = forwards.join("127.0.0.1-40004.json");
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    let ran = run(&home, &["forward", "list", "--json"]);
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr());
    assert!(ran.took < QUICK, "{:?}", ran.took);
    assert_eq!(ran.json(), serde_json::json!([]));
    let stderr = ran.stderr();
    for (path, problem) in [
        (&fifo, "is a FIFO, not a regular file"),
        (&dir, "is a directory, not a regular file"),
        (&huge, "larger than the 64 KiB limit"),
        (&link, "is a symbolic link, not a regular file"),
    ] {
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(problem),
            "expected {} {problem} in: {stderr}",
            path.display()
        );
    }
    // Stopping reads them too, and still never hangs.
    let ran = run(&home, &["forward", "stop", "--all", "--json"]);
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr());
    assert!(ran.took < QUICK, "{:?}", ran.took);
    assert_eq!(std::fs::read(&outside).unwrap(), b"{}");
}

#[test]
fn a_forward_replaces_a_symlink_at_its_record_path_instead_of_writing_through_it() {
    let home = home("record-link");
    let forwards = home.state.join("forwards");
    std::fs::create_dir_all(&forwards).unwrap();
    let port = free_port();
    let record = forwards.join(format!("127.0.0.1-{port}.json"));
    let outside = home.state.join("outside");
    std::fs::write(&outside, b"keep").unwrap();
    std::os::unix::fs::symlink(&outside, &record).unwrap();
    let mut serve = home
        .command()
        .args([
            "forward",
            "serve",
            "--backend",
            "local",
            "--sandbox",
            "localhost",
            "--host-port",
            &port.to_string(),
            "--sandbox-port",
            &free_port().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let replaced = loop {
        let is_file = std::fs::symlink_metadata(&record).is_ok_and(|m| m.is_file());
        if is_file || Instant::now() > deadline {
            break is_file;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(replaced, "the record never became a regular file");
    assert_eq!(
        std::fs::read(&outside).unwrap(),
        b"keep",
        "written through the link"
    );
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.contains("runner.forward/v1"), "{text}");
}

// ---- the compile cache -----------------------------------------------------

/// `plugin inspect SPEC --json` in `home`: (name the plugin describes, its sha256).
fn inspect(home: &CliHome, spec: &str) -> (String, String, Ran) {
    let ran = run(home, &["plugin", "inspect", spec, "--json"]);
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr());
    let json = ran.json();
    (
        json["name"].as_str().unwrap().to_string(),
        json["sha256"].as_str().unwrap().to_string(),
        ran,
    )
}

fn components(home: &CliHome) -> PathBuf {
    home.state.join("cache").join("components")
}

/// The one cache entry of the component with this sha256.
fn entry(home: &CliHome, sha256: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(components(home))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(sha256) && name.ends_with(".cwasm")
        })
        .collect();
    assert_eq!(found.len(), 1, "entries of {sha256}: {found:?}");
    found.into_iter().next().unwrap()
}

/// Both plugins loaded once, so both have a genuine entry.
fn warm(tag: &str) -> (CliHome, PathBuf, PathBuf, String) {
    let home = home(tag);
    let (name, builtin_sha, _) = inspect(&home, "openclaw");
    assert_eq!(name, "openclaw");
    let (name, testkit_sha, _) = inspect(&home, &testkit());
    assert_eq!(name, "testkit");
    let builtin = entry(&home, &builtin_sha);
    let other = entry(&home, &testkit_sha);
    (home, builtin, other, builtin_sha)
}

/// The built-in loads as itself (by what it describes, not by a log line)
/// with its own hash, and a genuine entry stands at its name afterwards.
fn assert_builtin_loads_as_itself(home: &CliHome, sha256: &str, forged: &[u8]) {
    let (name, sha, ran) = inspect(home, "openclaw");
    assert_eq!(
        name,
        "openclaw",
        "a forged cache entry was executed: stderr {}",
        ran.stderr()
    );
    assert_eq!(sha, sha256);
    let now = std::fs::read(entry(home, sha256)).unwrap();
    assert_ne!(now, forged, "the forged entry was left in place");
}

#[test]
fn another_plugins_valid_artefact_under_the_builtins_name_is_never_executed() {
    let (home, builtin, other, sha) = warm("cache-swap");
    let forged = std::fs::read(&other).unwrap();
    std::fs::write(&builtin, &forged).unwrap();
    assert_builtin_loads_as_itself(&home, &sha, &forged);
}

#[test]
fn an_entry_with_one_flipped_byte_is_never_executed() {
    let (home, builtin, other, sha) = warm("cache-flip");
    // Another plugin's entry under the built-in's name, one byte flipped
    // (near its start, its middle, its end).
    let genuine_other = std::fs::read(&other).unwrap();
    for at in [10, genuine_other.len() / 2, genuine_other.len() - 1] {
        let mut forged = genuine_other.clone();
        forged[at] ^= 0x01;
        std::fs::write(&builtin, &forged).unwrap();
        assert_builtin_loads_as_itself(&home, &sha, &forged);
    }
    // The built-in's own entry with a byte flipped is recompiled too.
    let mut flipped = std::fs::read(&builtin).unwrap();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x80;
    std::fs::write(&builtin, &flipped).unwrap();
    assert_builtin_loads_as_itself(&home, &sha, &flipped);
}

#[test]
fn a_genuine_entry_is_used_as_it_is() {
    let (home, builtin, _, sha) = warm("cache-hit");
    let before = std::fs::metadata(&builtin).unwrap();
    let (name, _, ran) = inspect(&home, "openclaw");
    assert_eq!(name, "openclaw");
    assert!(!ran.stderr().contains("compile cache"), "{}", ran.stderr());
    let after = std::fs::metadata(entry(&home, &sha)).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec()),
        "a verified entry was recompiled and replaced"
    );
}

#[test]
fn odd_cache_entries_are_recompiled_and_replaced_never_followed_never_waited_on() {
    let (home, builtin, other, sha) = warm("cache-odd");
    let other_bytes = std::fs::read(&other).unwrap();

    // A symlink to another plugin's genuine entry.
    std::fs::remove_file(&builtin).unwrap();
    std::os::unix::fs::symlink(&other, &builtin).unwrap();
    assert_builtin_loads_as_itself(&home, &sha, &other_bytes);
    assert!(std::fs::symlink_metadata(&builtin).unwrap().is_file());
    assert_eq!(
        std::fs::read(&other).unwrap(),
        other_bytes,
        "written through the link"
    );

    std::fs::remove_file(&builtin).unwrap();
    mkfifo(&builtin);
    assert_builtin_loads_as_itself(&home, &sha, b"");
    assert!(std::fs::symlink_metadata(&builtin).unwrap().is_file());

    std::fs::remove_file(&builtin).unwrap();
    sparse(&builtin, HUGE);
    assert_builtin_loads_as_itself(&home, &sha, b"");
    assert!(std::fs::metadata(&builtin).unwrap().len() < HUGE);

    // A directory cannot be replaced by a file; the load still works.
    std::fs::remove_file(&builtin).unwrap();
    std::fs::create_dir(&builtin).unwrap();
    let (name, _, ran) = inspect(&home, "openclaw");
    assert_eq!(name, "openclaw");
    assert!(
        ran.stderr().contains("is a directory, not a regular file"),
        "{}",
        ran.stderr()
    );
}

#[test]
fn a_key_open_to_others_disables_the_cache_and_a_forged_entry_stays_unused() {
    use std::os::unix::fs::PermissionsExt;
    let (home, builtin, other, _) = warm("cache-key");
    let key = components(&home).join("mac.key");
    let meta = std::fs::symlink_metadata(&key).expect("the key lives in the cache dir");
    assert_eq!(meta.mode() & 0o777, 0o600, "{:o}", meta.mode());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::copy(&other, &builtin).unwrap();
    let (name, _, ran) = inspect(&home, "openclaw");
    assert_eq!(name, "openclaw");
    let stderr = ran.stderr();
    assert!(
        stderr.contains("compile cache disabled") && stderr.contains("mode 644"),
        "{stderr}"
    );
    // A key that is a symlink is refused the same way.
    std::fs::remove_file(&key).unwrap();
    let elsewhere = home.state.join("key");
    std::fs::write(&elsewhere, [0u8; 32]).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &key).unwrap();
    let (name, _, ran) = inspect(&home, "openclaw");
    assert_eq!(name, "openclaw");
    assert!(
        ran.stderr().contains("is a symbolic link"),
        "{}",
        ran.stderr()
    );
}
