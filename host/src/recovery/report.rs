//! The report of one `status`/`recover` run (schema `runner.report/v1`),
//! printed as JSON with `--json` or as one line per link.

use std::borrow::Cow;

use serde::Serialize;

use crate::capabilities::Mutation;
use crate::model::Health;

pub const SCHEMA: &str = "runner.report/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Status,
    Recover,
    DryRun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Healthy,
    Recovered,
    Broken,
    Unknown,
    PluginFault,
}

impl Outcome {
    /// Exit code of the CLI contract.
    pub fn exit_code(self) -> u8 {
        use crate::cli::exit;
        match self {
            Outcome::Healthy | Outcome::Recovered => exit::HEALTHY,
            Outcome::Broken => exit::BROKEN,
            Outcome::Unknown => exit::UNKNOWN,
            Outcome::PluginFault => exit::PLUGIN_FAULT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Healthy,
    Broken,
    Unknown,
}

impl From<Health> for State {
    fn from(h: Health) -> Self {
        match h {
            Health::Healthy => State::Healthy,
            Health::Broken => State::Broken,
            Health::Unknown => State::Unknown,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    None,
    Repaired,
    Failed,
    Refused,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkEntry {
    pub id: String,
    pub before: State,
    pub action: Action,
    pub after: State,
    pub summary: String,
    pub evidence: serde_json::Map<String, serde_json::Value>,
    pub ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub sandbox: String,
    pub backend: String,
    pub plugin: PluginRef,
    pub mode: Mode,
    pub outcome: Outcome,
    pub links: Vec<LinkEntry>,
    pub mutations: Vec<Mutation>,
    pub duration_ms: u64,
    /// The link that stopped the run, when it did not end healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_layer: Option<String>,
    /// One line: why the run ended where it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The repair that stopped the run cannot succeed until the sandbox or
    /// the settings change (a missing program or user): what was missing.
    /// `runner watch` quarantines such a sandbox after one attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deterministic: Option<String>,
    /// For `dry-run`: links a recover would repair, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<String>>,
}

impl Report {
    /// The report of a run that could not reach its backend at all: the
    /// built-in sandbox link is unknown and nothing else was probed.
    pub fn unreachable(
        sandbox: &str,
        backend: &str,
        plugin: PluginRef,
        mode: Mode,
        message: String,
    ) -> Self {
        let mut report = Self::not_run(
            sandbox,
            backend,
            plugin,
            mode,
            Outcome::Unknown,
            message.clone(),
        );
        report.links = vec![LinkEntry {
            id: "sandbox".into(),
            before: State::Unknown,
            action: Action::None,
            after: State::Unknown,
            summary: message,
            evidence: serde_json::Map::new(),
            ms: 0,
        }];
        report.failing_layer = Some("sandbox".into());
        report
    }

    /// The report of a run that ended before anything was probed: a usage
    /// or configuration error (the CLI exits 2), a plugin that faulted while
    /// loading (4), a per-sandbox lock held past the deadline (3). No links;
    /// `message` says why. `--json` prints this, so it always prints one
    /// object.
    pub fn not_run(
        sandbox: &str,
        backend: &str,
        plugin: PluginRef,
        mode: Mode,
        outcome: Outcome,
        message: String,
    ) -> Self {
        Report {
            schema: SCHEMA,
            sandbox: sandbox.to_string(),
            backend: backend.to_string(),
            plugin,
            mode,
            outcome,
            links: Vec::new(),
            mutations: Vec::new(),
            duration_ms: 0,
            failing_layer: None,
            message: Some(message),
            deterministic: None,
            plan: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// One line per link with state and timing, then the verdict. Every
    /// string that came from a sandbox or a plugin is passed through
    /// [`escape_control`], so it cannot move the cursor, clear the screen or
    /// forge a line.
    pub fn to_human(&self) -> String {
        let e = escape_control;
        let mut out = format!(
            "{} {} on {} ({}) — plugin {} {}\n",
            match self.mode {
                Mode::Status => "status",
                Mode::Recover => "recover",
                Mode::DryRun => "dry-run",
            },
            e(&self.sandbox),
            e(&self.backend),
            e(self.plugin.sha256.get(..12).unwrap_or("")),
            e(&self.plugin.name),
            e(&self.plugin.version),
        );
        for link in &self.links {
            let transition = if link.before == link.after && link.action == Action::None {
                format!("{:?}", link.after).to_lowercase()
            } else {
                format!("{:?} -> {:?}", link.before, link.after).to_lowercase()
            };
            let action = match link.action {
                Action::None => String::new(),
                other => format!(" [{}]", format!("{other:?}").to_lowercase()),
            };
            out.push_str(&format!(
                "  {mark} {:<10} {:<19} {:>6} ms{action}  {}\n",
                e(&link.id),
                transition,
                link.ms,
                e(&link.summary),
                mark = match link.after {
                    State::Healthy => "✓",
                    State::Broken => "✗",
                    State::Unknown => "?",
                }
            ));
        }
        if let Some(plan) = &self.plan {
            if plan.is_empty() {
                out.push_str("  plan: nothing to repair\n");
            } else {
                let steps: Vec<Cow<'_, str>> = plan.iter().map(|s| e(s)).collect();
                out.push_str(&format!("  plan: repair {}\n", steps.join(" → ")));
            }
        }
        out.push_str(&format!(
            "{} in {} ms, {} mutation(s)",
            format!("{:?}", self.outcome)
                .to_lowercase()
                .replace("pluginfault", "plugin fault"),
            self.duration_ms,
            self.mutations.len()
        ));
        if let Some(layer) = &self.failing_layer {
            out.push_str(&format!("; failing layer: {}", e(layer)));
        }
        // Skip a message that only repeats the failing link's summary.
        let repeated = self
            .links
            .iter()
            .any(|l| Some(&l.summary) == self.message.as_ref());
        if let Some(message) = self.message.as_ref().filter(|_| !repeated) {
            out.push_str(&format!("\n  {}", e(message)));
        }
        out.push('\n');
        out
    }
}

/// `text` fit for a terminal: control characters (C0 including tab and
/// newline, DEL, C1) and the bidirectional-override characters are shown
/// as escapes (`\t`, `\n`, `\r`, `\u{1b}`, `\u{202e}`), everything else as
/// is. JSON output is never passed through this; serde escapes exactly.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    }
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Evidence pairs as a JSON object (later duplicates win).
pub fn evidence_map(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            schema: SCHEMA,
            sandbox: "s1".into(),
            backend: "docker".into(),
            plugin: PluginRef {
                name: "openclaw".into(),
                version: "0.1.0".into(),
                sha256: "ab".repeat(32),
            },
            mode: Mode::Recover,
            outcome: Outcome::Recovered,
            links: vec![LinkEntry {
                id: "gateway".into(),
                before: State::Broken,
                action: Action::Repaired,
                after: State::Healthy,
                summary: "pid 42 serving".into(),
                evidence: evidence_map([("pid".to_string(), "42".to_string())]),
                ms: 812,
            }],
            mutations: vec![],
            duration_ms: 900,
            failing_layer: None,
            message: None,
            deterministic: None,
            plan: None,
        }
    }

    #[test]
    fn json_follows_the_v1_schema() {
        let v: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        assert_eq!(v["schema"], "runner.report/v1");
        assert_eq!(v["mode"], "recover");
        assert_eq!(v["outcome"], "recovered");
        assert_eq!(v["plugin"]["name"], "openclaw");
        assert_eq!(v["links"][0]["before"], "broken");
        assert_eq!(v["links"][0]["action"], "repaired");
        assert_eq!(v["links"][0]["after"], "healthy");
        assert_eq!(v["links"][0]["evidence"]["pid"], "42");
        assert!(v["mutations"].as_array().unwrap().is_empty());
        assert!(v.get("failing_layer").is_none());
        let mut dry = report();
        dry.mode = Mode::DryRun;
        dry.outcome = Outcome::PluginFault;
        let v: serde_json::Value = serde_json::from_str(&dry.to_json()).unwrap();
        assert_eq!(v["mode"], "dry-run");
        assert_eq!(v["outcome"], "plugin-fault");
    }

    #[test]
    fn human_output_has_one_line_per_link_and_a_verdict() {
        let text = report().to_human();
        assert!(text.contains("gateway"), "{text}");
        assert!(text.contains("broken -> healthy"), "{text}");
        assert!(text.contains("[repaired]"), "{text}");
        assert!(
            text.trim_end()
                .ends_with("recovered in 900 ms, 0 mutation(s)"),
            "{text}"
        );
    }

    #[test]
    fn control_characters_from_sandboxes_and_plugins_are_escaped_for_humans() {
        assert_eq!(escape_control("plain — ✓"), "plain — ✓");
        assert_eq!(
            escape_control("a\u{1b}[2Jb\tc\nd\re\u{7f}\u{9b}\u{202e}"),
            "a\\u{1b}[2Jb\\tc\\nd\\re\\u{7f}\\u{9b}\\u{202e}"
        );
        let mut r = report();
        r.sandbox = "evil\u{1b}]0;owned\u{7}".into();
        r.links[0].summary = "fine\n  ✓ forged     healthy".into();
        r.message = Some("\u{1b}[31mred".into());
        let text = r.to_human();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(text.contains("evil\\u{1b}]0;owned\\u{7}"), "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
        // JSON keeps the exact bytes.
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["sandbox"], "evil\u{1b}]0;owned\u{7}");
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Outcome::Healthy.exit_code(), 0);
        assert_eq!(Outcome::Recovered.exit_code(), 0);
        assert_eq!(Outcome::Broken.exit_code(), 1);
        assert_eq!(Outcome::Unknown.exit_code(), 3);
        assert_eq!(Outcome::PluginFault.exit_code(), 4);
    }
}
