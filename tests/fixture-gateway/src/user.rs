//! `--as-user`: the fixture image has no gosu, so the binary drops privileges itself and
//! re-executes as argv[0] `fixture-gateway`, which makes a process scan find it by name.

use crate::sys;
use std::os::unix::process::CommandExt;
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

/// Never returns on success.
pub fn become_user_and_exec(user: &str, rest: &[String]) -> std::io::Error {
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
    // Exec the real path, not /proc/self/exe: the kernel names the process (comm, what
    // pgrep/pidof match) after the executed file's basename.
    let exe = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => p,
        Err(e) => return e,
    };
    Command::new(exe)
        .arg0("fixture-gateway")
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
    fn unknown_or_malformed_users_are_not_found() {
        assert_eq!(lookup(PASSWD, "nobody"), None);
        assert_eq!(lookup(PASSWD, "broken"), None);
        assert_eq!(lookup(PASSWD, "#"), None);
    }
}
