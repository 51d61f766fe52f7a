//! Users of the sandbox, read from its own `/etc/passwd` and `/etc/group`
//! (never the host's): who exists, and the uid/gid a name stands for.

use crate::{Error, Sandbox};

/// Both files are small; a bigger one is not a sandbox's account database.
const MAX_DB: u32 = 1024 * 1024;

/// One account as the sandbox defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The accounts of `/etc/passwd` text (`name:pw:uid:gid:gecos:home:shell`);
/// malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<Account> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(Account {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect()
}

/// The gid of group `name` in `/etc/group` text.
pub fn group_gid(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name)
            .then(|| f[2].parse().ok())
            .flatten()
    })
}

/// The account database of one sandbox, read once.
#[derive(Debug, Clone, Default)]
pub struct Users {
    accounts: Vec<Account>,
    groups: String,
}

impl Users {
    /// Reads `/etc/passwd` (required) and `/etc/group` (optional).
    pub fn read(sandbox: &Sandbox) -> Result<Users, Error> {
        let passwd = sandbox.read("/etc/passwd", MAX_DB)?;
        let groups = match sandbox.stat("/etc/group")? {
            Some(_) => String::from_utf8_lossy(&sandbox.read("/etc/group", MAX_DB)?).into_owned(),
            None => String::new(),
        };
        Ok(Users {
            accounts: parse_passwd(&String::from_utf8_lossy(&passwd)),
            groups,
        })
    }

    /// From text, for tests and callers that already hold the files.
    pub fn from_text(passwd: &str, group: &str) -> Users {
        Users {
            accounts: parse_passwd(passwd),
            groups: group.to_string(),
        }
    }

    pub fn by_name(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name)
    }

    pub fn by_uid(&self, uid: u32) -> Option<&Account> {
        self.accounts.iter().find(|a| a.uid == uid)
    }

    /// uid and gid of an exec/spawn `user` spec: `name`, `uid`, `name:group`
    /// or `uid:gid` (the forms Docker accepts). `None` when a name does not
    /// exist. A bare numeric uid without an account gets gid = uid.
    pub fn ids_of(&self, spec: &str) -> Option<(u32, u32)> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let (uid, primary) = match user.parse::<u32>() {
            Ok(uid) => (uid, self.by_uid(uid).map_or(uid, |a| a.gid)),
            Err(_) => {
                let a = self.by_name(user)?;
                (a.uid, a.gid)
            }
        };
        let gid = match group {
            None => primary,
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => group_gid(&self.groups, g)?,
            },
        };
        Some((uid, gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # comment\n\
        sandbox:x:1000:1000::/sandbox:/bin/bash\n\
        gateway:x:998:998::/sandbox:/usr/sbin/nologin\n\
        broken-line\n";
    const GROUP: &str = "root:x:0:\nsandbox:x:1000:\ngateway:x:998:\nlogs:x:4:\n";

    #[test]
    fn names_and_numbers_resolve_like_docker_does() {
        let u = Users::from_text(PASSWD, GROUP);
        assert_eq!(u.ids_of("gateway"), Some((998, 998)));
        assert_eq!(u.ids_of("1000"), Some((1000, 1000)));
        assert_eq!(u.ids_of("gateway:logs"), Some((998, 4)));
        assert_eq!(u.ids_of("998:7"), Some((998, 7)));
        assert_eq!(u.ids_of("4242"), Some((4242, 4242)));
        assert_eq!(u.ids_of("nobody-here"), None);
        assert_eq!(u.ids_of("gateway:nogroup"), None);
        assert_eq!(u.by_uid(998).map(|a| a.name.as_str()), Some("gateway"));
    }
}
