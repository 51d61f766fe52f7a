use super::read::within;
use super::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Instant;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("runner-safefs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// Every odd thing that can sit at a path runner reads.
fn odd_things(d: &Dir) -> Vec<(PathBuf, &'static str)> {
    let target = d.join("target");
    std::fs::write(&target, b"secret").unwrap();
    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let link = d.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let dangling = d.join("dangling");
    std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
    let dir = d.join("dir");
    std::fs::create_dir(&dir).unwrap();
    let sock = d.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    vec![
        (fifo, "is a FIFO, not a regular file"),
        (link, "is a symbolic link, not a regular file"),
        (dangling, "is a symbolic link, not a regular file"),
        (dir, "is a directory, not a regular file"),
        (sock, "is a socket, not a regular file"),
        (PathBuf::from("/dev/null"), "is a character device"),
    ]
}

#[test]
fn reads_refuse_everything_but_a_regular_file_at_once() {
    let d = Dir::new("odd");
    for (path, problem) in odd_things(&d) {
        let started = Instant::now();
        let err = read_regular(&path, 1024).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path:?} took long"
        );
        let text = err.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert!(text.contains(problem), "{path:?}: {text}");
        assert!(err.problem().starts_with("is a"), "{}", err.problem());
    }
    assert!(
        read_regular(&d.join("missing"), 10)
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn a_file_the_user_named_may_be_a_link_to_a_regular_file_only() {
    let d = Dir::new("user");
    let things = odd_things(&d);
    let real = d.join("plugin.wasm");
    std::fs::write(&real, b"\0asm").unwrap();
    let link = d.join("current.wasm");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_eq!(read_user_file(&link, 10).unwrap(), b"\0asm");
    assert!(
        read_regular(&link, 10).is_err(),
        "runner's own files: no links"
    );
    let to_fifo = d.join("to-fifo.wasm");
    std::os::unix::fs::symlink(&things[0].0, &to_fifo).unwrap();
    let started = Instant::now();
    let err = read_user_file(&to_fifo, 10).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        err.to_string().contains("is a FIFO, not a regular file"),
        "{err}"
    );
    assert!(
        read_user_file(&d.join("dangling"), 10)
            .unwrap_err()
            .is_not_found()
    );
    for (path, _) in &things[3..] {
        assert!(read_user_file(path, 10).is_err(), "{path:?}");
    }
}

#[test]
fn reads_are_capped_by_the_size_before_any_byte_is_read() {
    let d = Dir::new("cap");
    let small = d.join("small");
    std::fs::write(&small, b"0123456789").unwrap();
    assert_eq!(read_regular(&small, 10).unwrap(), b"0123456789");
    let err = read_regular(&small, 9).unwrap_err();
    assert!(
        matches!(
            err,
            SafeFsError::TooLarge {
                size: 10,
                cap: 9,
                ..
            }
        ),
        "{err:?}"
    );

    let huge = d.join("huge");
    sparse(&huge, 5 << 30);
    let started = Instant::now();
    let err = read_regular(&huge, 256 << 20).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        err.to_string(),
        format!(
            "{} is 5368709120 bytes, larger than the 256 MiB limit",
            huge.display()
        )
    );
}

#[test]
fn a_read_that_does_not_finish_is_given_up_at_its_deadline() {
    let d = Dir::new("deadline");
    let started = Instant::now();
    let err = within(&d.join("stalled"), Duration::from_millis(100), || {
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    })
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, SafeFsError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("within 100 ms"), "{err}");
}

#[test]
fn appends_never_follow_a_symlink_nor_open_a_fifo() {
    let d = Dir::new("append");
    for (path, problem) in odd_things(&d) {
        let started = Instant::now();
        let err = open_append(&path, 0o600).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(err.to_string().contains(problem), "{path:?}: {err}");
    }
    assert_eq!(std::fs::read(d.join("target")).unwrap(), b"secret");
    assert!(!d.join("nowhere").exists(), "a dangling link was followed");

    let log = d.join("log");
    open_append(&log, 0o600).unwrap().write_all(b"a\n").unwrap();
    open_append(&log, 0o600).unwrap().write_all(b"b\n").unwrap();
    assert_eq!(std::fs::read(&log).unwrap(), b"a\nb\n");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

#[test]
fn lock_files_are_regular_small_and_not_followed() {
    let d = Dir::new("lock");
    for (path, problem) in odd_things(&d) {
        let err = open_lock(&path, 0o600, 4096).unwrap_err();
        assert!(err.to_string().contains(problem), "{path:?}: {err}");
    }
    let big = d.join("big.lock");
    sparse(&big, 1 << 30);
    assert!(matches!(
        open_lock(&big, 0o600, 4096).unwrap_err(),
        SafeFsError::TooLarge { .. }
    ));
    open_lock(&d.join("ok.lock"), 0o600, 4096).unwrap();
}

#[test]
fn atomic_writes_replace_a_symlink_instead_of_writing_through_it() {
    let d = Dir::new("atomic");
    let target = d.join("target");
    std::fs::write(&target, b"keep").unwrap();
    let path = d.join("record");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    write_atomic(&path, b"new", 0o644).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    assert_eq!(read_regular(&path, 10).unwrap(), b"new");

    let fifo = d.join("fifo");
    mkfifo(&fifo);
    write_atomic(&fifo, b"x", 0o644).unwrap();
    assert_eq!(read_regular(&fifo, 10).unwrap(), b"x");

    let dir = d.join("dir");
    std::fs::create_dir(&dir).unwrap();
    let err = write_atomic(&dir, b"x", 0o644).unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
    // No temp files are left behind.
    let names: Vec<String> = std::fs::read_dir(&d.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn create_new_publishes_once_and_whole() {
    let d = Dir::new("create");
    let path = d.join("key");
    assert!(create_new(&path, b"first", 0o600).unwrap());
    assert!(!create_new(&path, b"second", 0o600).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), b"first");
    let link = d.join("link");
    std::os::unix::fs::symlink(d.join("elsewhere"), &link).unwrap();
    assert!(!create_new(&link, b"x", 0o600).unwrap());
    assert!(!d.join("elsewhere").exists());
    assert_eq!(std::fs::read_dir(&d.0).unwrap().count(), 2);
}

#[test]
fn private_files_must_be_ours_exact_and_0600() {
    let d = Dir::new("private");
    let path = d.join("key");
    std::fs::write(&path, [7u8; 32]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_private(&path, 32).unwrap(), [7u8; 32]);
    assert!(matches!(
        read_private(&path, 16).unwrap_err(),
        SafeFsError::WrongSize { .. }
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = read_private(&path, 32).unwrap_err();
    assert!(err.to_string().contains("mode 640"), "{err}");
    let link = d.join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(matches!(
        read_private(&link, 32).unwrap_err(),
        SafeFsError::NotRegular {
            kind: FileKind::Symlink,
            ..
        }
    ));
}

#[test]
fn ensure_dir_refuses_a_symlink_or_a_file_where_a_directory_belongs() {
    let d = Dir::new("dirs");
    let fresh = d.join("a/b/locks");
    ensure_dir(&fresh, 0o700).unwrap();
    ensure_dir(&fresh, 0o700).unwrap();
    let link = d.join("linked");
    std::os::unix::fs::symlink(&fresh, &link).unwrap();
    let err = ensure_dir(&link, 0o700).unwrap_err();
    assert!(
        err.to_string()
            .contains("is a symbolic link, not a directory"),
        "{err}"
    );
    let file = d.join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(matches!(
        ensure_dir(&file, 0o700).unwrap_err(),
        SafeFsError::NotDirectory { .. }
    ));
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(human_size(256 << 20), "256 MiB");
    assert_eq!(human_size(1 << 20), "1 MiB");
    assert_eq!(human_size(64 << 10), "64 KiB");
    assert_eq!(human_size(32), "32 bytes");
    assert_eq!(human_size(1000), "1000 bytes");
}
