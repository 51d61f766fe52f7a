//! What a sealed exec runs as and with: pure decisions, unit-tested.

use crate::backend::procfs::{IdMap, ResolvedUser};

/// The unprivileged identity a sealed exec falls back to when asked to run
/// as root: root in a read-only view could still signal or ptrace, so a
/// probe never gets it.
pub(crate) const NOBODY: u32 = 65534;

/// The credentials the sealed process switches to, as host ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The in-sandbox identity, for messages and `$HOME`.
    pub name: Option<String>,
    pub home: Option<String>,
    /// True when root was asked for and `nobody` is used instead.
    pub demoted: bool,
}

/// Decides the credentials for `user` (already resolved against the
/// sandbox's passwd) with its supplementary groups from `group_text`, mapped
/// to host ids through the sandbox's id maps. An id that has no host
/// mapping cannot be run as and is refused.
pub(crate) fn credentials(
    user: &ResolvedUser,
    group_text: &str,
    uid_map: &IdMap,
    gid_map: &IdMap,
) -> Result<Credentials, String> {
    let demoted = user.uid == 0;
    let (uid, gid, name, home, groups) = if demoted {
        (NOBODY, NOBODY, Some("nobody".to_string()), None, Vec::new())
    } else {
        let groups = user
            .name
            .as_deref()
            .map(|n| supplementary_groups(n, group_text))
            .unwrap_or_default();
        (
            user.uid,
            user.gid,
            user.name.clone(),
            user.home.clone(),
            groups,
        )
    };
    let host_uid = uid_map
        .to_outside(uid)
        .ok_or_else(|| format!("uid {uid} of the sandbox has no host mapping"))?;
    let host_gid = gid_map
        .to_outside(gid)
        .ok_or_else(|| format!("gid {gid} of the sandbox has no host mapping"))?;
    let mut host_groups: Vec<u32> = groups
        .iter()
        .filter_map(|g| gid_map.to_outside(*g))
        // Group 0 would give back what demotion took away.
        .filter(|g| *g != 0)
        .collect();
    host_groups.push(host_gid);
    host_groups.sort_unstable();
    host_groups.dedup();
    Ok(Credentials {
        uid: host_uid,
        gid: host_gid,
        groups: host_groups,
        name,
        home,
        demoted,
    })
}

/// The gids of every `/etc/group` entry that lists `name` as a member.
pub(crate) fn supplementary_groups(name: &str, group_text: &str) -> Vec<u32> {
    group_text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let members = f.get(3)?;
            members
                .split(',')
                .any(|m| m.trim() == name)
                .then(|| f.get(2)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// The environment of the sealed process: the sandbox's own (its init's, as
/// an engine exec would give), then the user's identity, then what the
/// caller asked for. Later entries win.
pub(crate) fn environment(
    init_environ: &[u8],
    creds: &Credentials,
    requested: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: &str, v: &str| {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    };
    for entry in init_environ.split(|b| *b == 0) {
        let entry = String::from_utf8_lossy(entry);
        if let Some((k, v)) = entry.split_once('=')
            && !k.is_empty()
        {
            set(&mut env, k, v);
        }
    }
    set(&mut env, "HOME", creds.home.as_deref().unwrap_or("/"));
    if let Some(name) = &creds.name {
        set(&mut env, "USER", name);
        set(&mut env, "LOGNAME", name);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        set(
            &mut env,
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    for (k, v) in requested {
        set(&mut env, k, v);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, gid: u32, name: &str) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            home: Some(format!("/home/{name}")),
            name: Some(name.into()),
        }
    }

    const GROUPS: &str =
        "root:x:0:gateway\nsandbox:x:998:\ngateway:x:999:\nshared:x:1500:sandbox,gateway\n";

    #[test]
    fn root_is_demoted_to_nobody_without_groups() {
        let c = credentials(
            &user(0, 0, "root"),
            GROUPS,
            &IdMap::identity(),
            &IdMap::identity(),
        )
        .unwrap();
        assert!(c.demoted);
        assert_eq!(
            (c.uid, c.gid, c.groups.clone()),
            (NOBODY, NOBODY, vec![NOBODY])
        );
        assert_eq!(c.name.as_deref(), Some("nobody"));
    }

    #[test]
    fn a_user_keeps_its_groups_but_never_group_root() {
        let c = credentials(
            &user(999, 999, "gateway"),
            GROUPS,
            &IdMap::identity(),
            &IdMap::identity(),
        )
        .unwrap();
        assert!(!c.demoted);
        assert_eq!((c.uid, c.gid), (999, 999));
        assert_eq!(c.groups, vec![999, 1500]);
    }

    #[test]
    fn ids_are_mapped_to_the_host_and_unmapped_ones_refused() {
        let map = IdMap::parse("0 100000 65536\n").unwrap();
        let c = credentials(&user(998, 998, "sandbox"), GROUPS, &map, &map).unwrap();
        assert_eq!((c.uid, c.gid), (100998, 100998));
        assert_eq!(c.groups, vec![100998, 101500]);
        let narrow = IdMap::parse("0 100000 10\n").unwrap();
        let e = credentials(&user(998, 998, "sandbox"), GROUPS, &narrow, &narrow).unwrap_err();
        assert!(e.contains("uid 998"), "{e}");
    }

    #[test]
    fn environment_is_the_sandboxs_then_the_user_then_the_request() {
        let creds = credentials(
            &user(998, 998, "sandbox"),
            GROUPS,
            &IdMap::identity(),
            &IdMap::identity(),
        )
        .unwrap();
        let init = b"PATH=/opt/bin:/usr/bin\0HOME=/root\0LANG=C.UTF-8\0broken\0=x\0";
        let env = environment(init, &creds, &[("LANG".into(), "en".into())]);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PATH"), Some("/opt/bin:/usr/bin"));
        assert_eq!(get("HOME"), Some("/home/sandbox"));
        assert_eq!(get("USER"), Some("sandbox"));
        assert_eq!(get("LANG"), Some("en"));
        assert_eq!(env.iter().filter(|(k, _)| k == "LANG").count(), 1);
        assert_eq!(get("broken"), None);
    }

    #[test]
    fn a_sandbox_without_path_gets_the_usual_one() {
        let creds = credentials(
            &user(0, 0, "root"),
            "",
            &IdMap::identity(),
            &IdMap::identity(),
        )
        .unwrap();
        let env = environment(b"", &creds, &[]);
        assert!(
            env.iter()
                .any(|(k, v)| k == "PATH" && v.contains("/usr/bin"))
        );
        assert!(env.iter().any(|(k, v)| k == "HOME" && v == "/"));
    }
}
