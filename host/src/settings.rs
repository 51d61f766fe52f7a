//! Plugin settings: declared by the plugin with defaults, overridden by
//! container labels (`runner.<key>=<value>`), then a config file, then
//! `--set key=value` on the command line.

use crate::runtime::bindings::{Kv, SettingSpec};

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
/// does not declare are an error (a typo must not be silently ignored).
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
    fn unknown_key_is_an_error_naming_the_known_ones() {
        let declared = [spec("port", "1")];
        let err = resolve("openclaw", &declared, &[&pairs(&[("prot", "2")])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown setting 'prot' for plugin openclaw; known settings: port"
        );
    }
}
