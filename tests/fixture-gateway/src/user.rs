//! `--as-user`: the fixture image has no gosu, so the binary drops privileges itself and
//! re-executes under the name it was started as: `fixture-gateway` (its own name), or
//! `openclaw` when started through the /usr/local/bin/openclaw symlink, so the process
//! looks like OpenClaw's (`openclaw gateway run --port N`) to a process scan.

use crate::sys;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Finds `user` (a name or a numeric uid) in /etc/passwd text.
pub fn lookup(passwd: &str, user: &str) -> Option<Account> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || line.starts_with('#') {
            return None;
        }
        let uid: u32 = f[2].parse().ok()?;
        let gid: u32 = f[3].parse().ok()?;
        (f[0] == user || f[2] == user).then(|| Account {
            name: f[0].to_string(),
            uid,
            gid,
            home: f[5].to_string(),
        })
    })
}

/// What to exec for the re-exec, and as which argv[0]: the file the process was started
/// from under its invoked name (so the kernel's comm stays `openclaw` for the symlink), or
/// the real binary as `fixture-gateway`.
pub fn reexec_target(argv0: Option<&str>, path_var: Option<&str>) -> (Option<PathBuf>, String) {
    let Some(argv0) = argv0.filter(|a| !a.is_empty()) else {
        return (None, "fixture-gateway".into());
    };
    let name = argv0.rsplit('/').next().unwrap_or(argv0);
    if name == "fixture-gateway" {
        return (None, "fixture-gateway".into());
    }
    let path = if argv0.contains('/') {
        Some(PathBuf::from(argv0))
    } else {
        path_var.and_then(|p| {
            p.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| Path::new(d).join(argv0))
                .find(|c| c.is_file())
        })
    };
    match path {
        Some(p) => (Some(p), argv0.to_string()),
        None => (None, "fixture-gateway".into()),
    }
}

/// Never returns on success.
pub fn become_user_and_exec(user: &str, argv0: Option<&str>, rest: &[String]) -> std::io::Error {
    let passwd = match std::fs::read_to_string("/etc/passwd") {
        Ok(p) => p,
        Err(e) => return e,
    };
    let Some(account) = lookup(&passwd, user) else {
        return std::io::Error::other(format!("no such user {user:?} in /etc/passwd"));
    };
    let me = sys::uid();
    if me != account.uid {
        if me != 0 {
            return std::io::Error::other(format!(
                "--as-user {user}: running as uid {me}, only root can switch users"
            ));
        }
        if let Err(e) = sys::drop_privileges(account.uid, account.gid) {
            return e;
        }
    }
    // Exec a real path, not /proc/self/exe: the kernel names the process (comm, what
    // pgrep/pidof match) after the executed file's basename.
    let path_var = std::env::var("PATH").ok();
    let (target, arg0) = reexec_target(argv0, path_var.as_deref());
    let exe = match target {
        Some(p) => p,
        None => match std::fs::read_link("/proc/self/exe") {
            Ok(p) => p,
            Err(e) => return e,
        },
    };
    Command::new(exe)
        .arg0(arg0)
        .args(rest)
        .env("HOME", &account.home)
        .env("USER", &account.name)
        .env("LOGNAME", &account.name)
        .exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # comment\n\
                          sandbox:x:1000:1000:sandbox:/sandbox:/bin/sh\n\
                          gateway:x:998:998:gateway:/home/gateway:/bin/false\n\
                          broken:x:notanumber:1::/:/bin/sh\n";

    #[test]
    fn finds_users_by_name_and_uid() {
        let gw = lookup(PASSWD, "gateway").unwrap();
        assert_eq!(
            (gw.uid, gw.gid, gw.home.as_str()),
            (998, 998, "/home/gateway")
        );
        assert_eq!(lookup(PASSWD, "1000").unwrap().name, "sandbox");
    }

    #[test]
    fn re_exec_keeps_the_invoked_name() {
        assert_eq!(
            reexec_target(Some("/usr/local/bin/fixture-gateway"), None),
            (None, "fixture-gateway".into())
        );
        assert_eq!(reexec_target(None, None), (None, "fixture-gateway".into()));
        assert_eq!(
            reexec_target(Some("/usr/local/bin/openclaw"), None),
            (
                Some(PathBuf::from("/usr/local/bin/openclaw")),
                "/usr/local/bin/openclaw".into()
            )
        );
        // A bare name is looked up on PATH; not found there = the binary itself.
        let dir = std::env::temp_dir().join(format!("fgw-user-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("openclaw"), "").unwrap();
        let path = format!("/nonexistent:{}", dir.display());
        assert_eq!(
            reexec_target(Some("openclaw"), Some(&path)),
            (Some(dir.join("openclaw")), "openclaw".into())
        );
        assert_eq!(
            reexec_target(Some("openclaw"), Some("/nonexistent")),
            (None, "fixture-gateway".into())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_or_malformed_users_are_not_found() {
        assert_eq!(lookup(PASSWD, "nobody"), None);
        assert_eq!(lookup(PASSWD, "broken"), None);
        assert_eq!(lookup(PASSWD, "#"), None);
    }
}
