//! The form of an engine address (`DOCKER_HOST`, a context's `Host`),
//! checked before connecting so a typo is a configuration error (exit 2,
//! nothing touched) instead of an unreachable engine (exit 3). The accepted
//! forms are the ones `DockerBackend` can connect to; extend [`ACCEPTED`]
//! and [`well_formed`] together with it.

/// The forms, as named in error messages.
pub const ACCEPTED: &str =
    "unix:///absolute/path/to/docker.sock, tcp://HOST[:PORT] or http://HOST[:PORT]";

/// Whether `value` is an address runner can connect to.
pub fn well_formed(value: &str) -> bool {
    if value.chars().any(char::is_control) || value.len() > 4096 {
        return false;
    }
    if let Some(path) = value.strip_prefix("unix://") {
        return path.len() > 1 && path.starts_with('/');
    }
    let Some(authority) = value
        .strip_prefix("tcp://")
        .or_else(|| value.strip_prefix("http://"))
    else {
        return false;
    };
    // Nothing after the authority but an optional trailing slash.
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains(['/', '?', '#', '@']) || authority.chars().any(char::is_whitespace) {
        return false;
    }
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if addr.parse::<std::net::Ipv6Addr>().is_ok() => {
                match rest.strip_prefix(':') {
                    Some(port) => (true, Some(port)),
                    None => (rest.is_empty(), None),
                }
            }
            _ => return false,
        },
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            (!host.is_empty(), port)
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|p| p != 0)
    });
    host_ok && port_ok
}

/// A `tcp://` or `http://` address (the ones TLS applies to).
pub fn is_network(value: &str) -> bool {
    value.starts_with("tcp://") || value.starts_with("http://")
}

/// The address can only be an engine on this machine: a unix socket, or TCP
/// to a loopback address (an engine behind TLS on 127.0.0.1 is as local as
/// its socket). Whether a container's init is really visible here is still
/// proven per container before the host's `/proc` is used.
pub fn is_this_machine(value: &str) -> bool {
    if value.starts_with("unix://") {
        return true;
    }
    let Some(authority) = value
        .strip_prefix("tcp://")
        .or_else(|| value.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(addr, _)| addr),
        None => authority.split(':').next().unwrap_or(authority),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_the_backend_can_use_pass() {
        for ok in [
            "unix:///var/run/docker.sock",
            "unix:///run/user/1000/podman/podman.sock",
            "tcp://127.0.0.1:2375",
            "tcp://docker.example.com:2376/",
            "http://localhost:2375",
            "tcp://[::1]:2375",
            "tcp://engine",
        ] {
            assert!(well_formed(ok), "{ok}");
        }
    }

    #[test]
    fn sockets_and_loopback_tcp_are_this_machine() {
        for local in [
            "unix:///var/run/docker.sock",
            "tcp://127.0.0.1:2376",
            "tcp://127.0.0.2:2376/",
            "tcp://localhost:2376",
            "http://[::1]:2375",
        ] {
            assert!(is_this_machine(local), "{local}");
        }
        for remote in [
            "tcp://10.0.0.5:2376",
            "tcp://engine.example.com:2376",
            "tcp://[2001:db8::1]:2376",
        ] {
            assert!(!is_this_machine(remote), "{remote}");
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "bogus",
            "tcp://",
            "unix://",
            "unix:///",
            "unix://relative.sock",
            "tcp://host:",
            "tcp://host:0",
            "tcp://host:70000",
            "tcp://host:port",
            "tcp://host/path",
            "tcp://user@host:2375",
            "ssh://me@host",
            "npipe:////./pipe/docker_engine",
            "/var/run/docker.sock",
            "tcp://[::1",
            "tcp://ho st:1",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
