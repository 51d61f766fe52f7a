//! Plugin settings: declared by the plugin with defaults, overridden by
//! container labels (`runner.<key>=<value>`), then a config file, then
//! `--set key=value` on the command line.
//!
//! Settings are plain strings in WIT 0.1, so the host types them by a
//! key-name convention (documented in docs/plugin-guide.md) and checks every
//! resolved value before any plugin call sees it:
//!
//! | key | value |
//! |---|---|
//! | `port`, `*-port` | a TCP port, 1–65535 (decimal digits only) |
//! | `origin`, `*-origin` | `scheme://host[:port]`, scheme `http` or `https`, no path, query, fragment or userinfo, never `*` |
//! | `*-ms`, `*-s` | a non-negative integer (decimal digits only) |
//! | `*-dir` | an absolute path (starts with `/`) |
//!
//! Conventional values also carry no control characters and are at most
//! [`MAX_TYPED_LEN`] bytes. A value equal to the plugin's own declared default
//! is never checked: a plugin may declare, say, `internal-port = ""` meaning
//! "find it out", and that declaration stays valid.

use crate::model::{Kv, SettingSpec};

/// Label prefix that carries settings on a container.
pub const LABEL_PREFIX: &str = "runner.";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("--set '{0}' is not of the form key=value")]
    Malformed(String),
    #[error("unknown setting '{key}' for plugin {plugin}; known settings: {known}")]
    Unknown {
        key: String,
        plugin: String,
        known: String,
    },
    #[error("setting '{key}' = '{value}' is not {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: &'static str,
    },
}

/// Longest value a conventionally typed setting may have.
pub const MAX_TYPED_LEN: usize = 256;

/// The type the key-name convention gives `key`, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    Port,
    Origin,
    Count,
    AbsolutePath,
}

impl Convention {
    pub fn of(key: &str) -> Option<Self> {
        if key == "port" || key.ends_with("-port") {
            Some(Self::Port)
        } else if key == "origin" || key.ends_with("-origin") {
            Some(Self::Origin)
        } else if key.ends_with("-ms") || key.ends_with("-s") {
            Some(Self::Count)
        } else if key.ends_with("-dir") {
            Some(Self::AbsolutePath)
        } else {
            None
        }
    }

    /// What a valid value looks like, for the error message.
    pub fn expected(self) -> &'static str {
        match self {
            Self::Port => "a TCP port (1-65535)",
            Self::Origin => {
                "an origin scheme://host[:port] (scheme http or https; no path, query, fragment, userinfo or wildcard)"
            }
            Self::Count => "a non-negative integer",
            Self::AbsolutePath => "an absolute path",
        }
    }

    pub fn accepts(self, value: &str) -> bool {
        if value.len() > MAX_TYPED_LEN || value.chars().any(char::is_control) {
            return false;
        }
        match self {
            Self::Port => is_port(value),
            Self::Origin => is_origin(value),
            Self::Count => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
            Self::AbsolutePath => value.starts_with('/'),
        }
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p))
}

/// `scheme://host[:port]` as a browser serializes an origin: lower-case
/// `http` or `https`, a lower-case DNS name or IPv4 address, or a bracketed
/// IPv6 address, an optional port, nothing after it.
fn is_origin(text: &str) -> bool {
    let Some(authority) = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
    else {
        return false;
    };
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, after)) => (
                addr.parse::<std::net::Ipv6Addr>().is_ok()
                    && (after.is_empty() || after.starts_with(':')),
                after.strip_prefix(':'),
            ),
            None => (false, None),
        },
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let dns = !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            (dns, port)
        }
    };
    host_ok && port.is_none_or(is_port)
}

/// Check `value` against the convention for `key`; values of keys outside
/// the convention are the plugin's business.
pub fn check(key: &str, value: &str) -> Result<(), SettingsError> {
    match Convention::of(key) {
        Some(c) if !c.accepts(value) => Err(SettingsError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            expected: c.expected(),
        }),
        _ => Ok(()),
    }
}

/// Parse `key=value` assignments. Keys are non-empty and have no spaces;
/// values may be empty and may contain `=`.
pub fn parse_assignments(raw: &[String]) -> Result<Vec<(String, String)>, SettingsError> {
    raw.iter()
        .map(|item| {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| SettingsError::Malformed(item.clone()))?;
            let key = key.trim();
            if key.is_empty() || key.chars().any(char::is_whitespace) {
                return Err(SettingsError::Malformed(item.clone()));
            }
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// Settings carried by labels: `runner.<key>` for every declared key.
pub fn from_labels(declared: &[SettingSpec], labels: &[(String, String)]) -> Vec<(String, String)> {
    labels
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(LABEL_PREFIX)?;
            declared
                .iter()
                .any(|s| s.key == key)
                .then(|| (key.to_string(), v.clone()))
        })
        .collect()
}

/// Resolve every declared key, later layers winning. Keys that the plugin
/// does not declare are an error (a typo must not be silently ignored), and
/// so is a value that breaks the key-name convention ([`check`]) unless it
/// is the plugin's own default.
pub fn resolve(
    plugin: &str,
    declared: &[SettingSpec],
    layers: &[&[(String, String)]],
) -> Result<Vec<Kv>, SettingsError> {
    let mut values: Vec<Kv> = declared
        .iter()
        .map(|s| Kv {
            key: s.key.clone(),
            value: s.default.clone(),
        })
        .collect();
    for layer in layers {
        for (key, value) in layer.iter() {
            match values.iter_mut().find(|kv| &kv.key == key) {
                Some(kv) => kv.value = value.clone(),
                None => {
                    return Err(SettingsError::Unknown {
                        key: key.clone(),
                        plugin: plugin.to_string(),
                        known: declared
                            .iter()
                            .map(|s| s.key.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
    }
    for (kv, spec) in values.iter().zip(declared) {
        if kv.value != spec.default {
            check(&kv.key, &kv.value)?;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &str, default: &str) -> SettingSpec {
        SettingSpec {
            key: key.into(),
            default: default.into(),
            description: String::new(),
        }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn assignments_need_a_key_and_keep_equals_in_values() {
        let parsed =
            parse_assignments(&["port=1".into(), "argv=a=b".into(), "empty=".into()]).unwrap();
        assert_eq!(
            parsed,
            pairs(&[("port", "1"), ("argv", "a=b"), ("empty", "")])
        );
        assert!(matches!(
            parse_assignments(&["port".into()]),
            Err(SettingsError::Malformed(_))
        ));
        assert!(matches!(
            parse_assignments(&["=1".into()]),
            Err(SettingsError::Malformed(_))
        ));
        assert!(matches!(
            parse_assignments(&["a b=1".into()]),
            Err(SettingsError::Malformed(_))
        ));
    }

    #[test]
    fn cli_beats_labels_beats_defaults() {
        let declared = [spec("port", "18789"), spec("user", "gateway")];
        let labels = from_labels(
            &declared,
            &pairs(&[
                ("runner.port", "18790"),
                ("runner.plugin", "openclaw"),
                ("other", "x"),
            ]),
        );
        assert_eq!(labels, pairs(&[("port", "18790")]));
        let cli = pairs(&[("user", "root")]);
        let resolved = resolve("p", &declared, &[&labels, &cli]).unwrap();
        assert_eq!(resolved[0].value, "18790");
        assert_eq!(resolved[1].value, "root");
    }

    #[test]
    fn ports_origins_and_counts_follow_the_key_name_convention() {
        for (key, good) in [
            ("port", "1"),
            ("host-port", "65535"),
            ("dashboard-origin", "http://127.0.0.1:18789"),
            ("dashboard-origin", "https://dash.example.com"),
            ("dashboard-origin", "http://[::1]:8080"),
            ("health-timeout-ms", "0"),
            ("start-grace-s", "90"),
            ("state-dir", "/sandbox/.openclaw"),
            ("user", "anything\tgoes"),
        ] {
            assert_eq!(check(key, good), Ok(()), "{key}={good}");
        }
        for (key, bad) in [
            ("port", "abc"),
            ("host-port", "0"),
            ("host-port", "70000"),
            ("host-port", "+80"),
            ("host-port", " 80"),
            ("host-port", ""),
            ("dashboard-origin", "*"),
            ("dashboard-origin", "null"),
            ("dashboard-origin", "ftp://host"),
            ("dashboard-origin", "http://"),
            ("dashboard-origin", "http://host/"),
            ("dashboard-origin", "http://host/path"),
            ("dashboard-origin", "http://host?q"),
            ("dashboard-origin", "http://host#f"),
            ("dashboard-origin", "http://user@host"),
            ("dashboard-origin", "http://host:0"),
            ("dashboard-origin", "http://*.example.com"),
            ("dashboard-origin", "http://Host"),
            ("dashboard-origin", "http://host\u{1b}[2J"),
            ("dashboard-origin", "http://[::1"),
            ("dashboard-origin", "http://[::1]x"),
            ("health-timeout-ms", "-1"),
            ("start-grace-s", "1.5"),
            ("start-grace-s", ""),
            ("state-dir", "relative"),
        ] {
            assert!(
                matches!(check(key, bad), Err(SettingsError::Invalid { .. })),
                "{key}={bad} accepted"
            );
        }
        let long = format!("http://{}.com", "a".repeat(MAX_TYPED_LEN));
        assert!(check("dashboard-origin", &long).is_err());
    }

    #[test]
    fn every_resolved_value_is_checked_except_the_plugins_own_default() {
        let declared = [
            spec("host-port", "18789"),
            spec("internal-port", ""),
            spec("dashboard-origin", "http://127.0.0.1:18789"),
        ];
        // The plugin's "" (find it out) default stays valid, also when set
        // explicitly.
        assert!(resolve("p", &declared, &[]).is_ok());
        assert!(resolve("p", &declared, &[&pairs(&[("internal-port", "")])]).is_ok());
        let err = resolve("p", &declared, &[&pairs(&[("dashboard-origin", "*")])]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("setting 'dashboard-origin' = '*' is not an origin"),
            "{err}"
        );
        // Labels are a layer like any other.
        let labels = from_labels(&declared, &pairs(&[("runner.host-port", "abc")]));
        assert!(resolve("p", &declared, &[&labels]).is_err());
    }

    #[test]
    fn unknown_key_is_an_error_naming_the_known_ones() {
        let declared = [spec("port", "1")];
        let err = resolve("openclaw", &declared, &[&pairs(&[("prot", "2")])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown setting 'prot' for plugin openclaw; known settings: port"
        );
    }
}
