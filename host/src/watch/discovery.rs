//! Which sandboxes are watched: those the `[[sandbox]]` list of the config
//! names, and (unless the config turns labels off) those labelled
//! `runner.plugin=<name>` and matching `require-label`.

use std::collections::HashMap;

use crate::backend::events::Discovery;

use super::config::WatchConfig;
use super::{PLUGIN_LABEL, Target};

/// The target for a sandbox, if it is selected.
pub(super) fn select(
    cfg: &WatchConfig,
    name: &str,
    labels: &HashMap<String, String>,
) -> Option<Target> {
    if let Some(entry) = cfg.sandbox.iter().find(|s| s.name == name) {
        return Some(Target {
            name: name.to_string(),
            plugin: entry.plugin.clone(),
            settings: entry
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    }
    if !cfg.labels || !cfg.required_label_matches(labels) {
        return None;
    }
    let plugin = labels.get(PLUGIN_LABEL).filter(|p| !p.trim().is_empty())?;
    Some(Target {
        name: name.to_string(),
        plugin: plugin.clone(),
        settings: Vec::new(),
    })
}

/// The selected sandboxes the engine lists (None when it cannot list).
pub(super) async fn list_targets(cfg: &WatchConfig, engine: &dyn Discovery) -> Option<Vec<Target>> {
    // Config-listed sandboxes need not carry the label: list them all then.
    let label = cfg.sandbox.is_empty().then_some(PLUGIN_LABEL);
    match engine.list(label).await {
        Ok(listed) => Some(
            listed
                .into_iter()
                .filter_map(|s| select(cfg, &s.name, &s.labels))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list containers");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_label_and_config() {
        let cfg = WatchConfig::parse(
            "[[sandbox]]\nname = \"listed\"\nplugin = \"hermes\"\nsettings = { port = \"1\" }\n",
        )
        .unwrap();
        let none = HashMap::new();
        let labelled = HashMap::from([(PLUGIN_LABEL.to_string(), "openclaw".to_string())]);
        assert_eq!(select(&cfg, "other", &none), None);
        assert_eq!(
            select(&cfg, "other", &labelled).map(|t| t.plugin),
            Some("openclaw".into())
        );
        let listed = select(&cfg, "listed", &labelled).unwrap();
        assert_eq!(listed.plugin, "hermes");
        assert_eq!(listed.settings, vec![("port".into(), "1".into())]);
        let only_listed = WatchConfig::parse(
            "labels = false\n[[sandbox]]\nname = \"listed\"\nplugin = \"hermes\"\n",
        )
        .unwrap();
        assert_eq!(select(&only_listed, "other", &labelled), None);
        let scoped = WatchConfig::parse("require-label = \"team=a\"\n").unwrap();
        assert_eq!(select(&scoped, "x", &labelled), None);
        let mut team = labelled.clone();
        team.insert("team".into(), "a".into());
        assert!(select(&scoped, "x", &team).is_some());
        team.insert("team".into(), "b".into());
        assert_eq!(select(&scoped, "x", &team), None);
    }
}
