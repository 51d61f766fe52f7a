//! The pure verdict on the guard chain: what is broken, and whether a repair
//! would have to refuse.

use super::{Facts, LINK};
use runner_plugin_sdk::Report;
use runner_plugin_sdk::checks::{root_owned_readonly, trusted_source};
use runner_plugin_sdk::shell_env::{self, ShellValue};

/// Which staged guards an env file fails to wire into NODE_OPTIONS; `Err`
/// when the file sets NODE_OPTIONS in a way a static reading cannot follow.
pub fn unwired(env_text: &str, staged: &[String]) -> Result<Vec<String>, String> {
    let requires = match shell_env::variable(env_text, "NODE_OPTIONS") {
        ShellValue::Value(v) => shell_env::node_requires(&v),
        ShellValue::Unset => Vec::new(),
        ShellValue::Uncertain(line) => {
            return Err(format!(
                "sets NODE_OPTIONS in a way runner cannot verify (`{line}`)"
            ));
        }
    };
    Ok(staged
        .iter()
        .filter(|g| !requires.contains(g))
        .cloned()
        .collect())
}

/// The problems that make the link broken (empty = healthy).
pub fn problems(facts: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    for g in &facts.guards {
        if let Some(v) = root_owned_readonly(&g.staged.path, g.staged.stat.as_ref()) {
            out.push(format!("guard {v}"));
            continue;
        }
        match (&g.staged.data, &g.source.data) {
            (Some(staged), Some(source)) if staged == source => {}
            (Some(_), Some(_)) => out.push(format!(
                "guard {} differs from its packaged source {}",
                g.staged.path, g.source.path
            )),
            _ => out.push(format!(
                "guard {} cannot be verified: packaged source {} is missing or not a regular file",
                g.staged.path, g.source.path
            )),
        }
    }
    let env = &facts.env;
    if let Some(v) = root_owned_readonly(&env.path, env.stat.as_ref()) {
        out.push(format!("env file {v}"));
        return out;
    }
    let text = String::from_utf8_lossy(env.data.as_deref().unwrap_or_default());
    match unwired(&text, &facts.staged_paths()) {
        Ok(missing) if missing.is_empty() => {}
        Ok(missing) => out.push(format!(
            "env file {} does not wire {} into NODE_OPTIONS (incomplete)",
            env.path,
            missing.join(", ")
        )),
        Err(e) => out.push(format!("env file {} {e}", env.path)),
    }
    if let Some(src) = facts
        .env_source
        .as_ref()
        .filter(|s| s.is_regular() && s.data != env.data)
    {
        out.push(format!(
            "env file {} differs from its packaged source {}",
            env.path, src.path
        ));
    }
    out
}

/// Why a repair would be refused (untrusted or missing sources), if it would.
pub fn source_refusal(facts: &Facts) -> Option<String> {
    for g in &facts.guards {
        if let Some(v) = trusted_source(&g.source.path, g.source.stat.as_ref()) {
            return Some(format!(
                "guard source {v}; refusing to stage (NemoClaw#2701)"
            ));
        }
    }
    if let Some(src) = facts.env_source.as_ref().filter(|s| s.stat.is_some()) {
        if let Some(v) = trusted_source(&src.path, src.stat.as_ref()) {
            return Some(format!(
                "env file source {v}; refusing to stage it (NemoClaw#2701)"
            ));
        }
        let text = String::from_utf8_lossy(src.data.as_deref().unwrap_or_default());
        match unwired(&text, &facts.staged_paths()) {
            Ok(missing) if missing.is_empty() => {}
            Ok(missing) => {
                return Some(format!(
                    "packaged env file {} does not wire {} into NODE_OPTIONS; refusing to stage an incomplete guard \
                     chain (NemoClaw#2701)",
                    src.path,
                    missing.join(", ")
                ));
            }
            Err(e) => {
                return Some(format!(
                    "packaged env file {} {e}; refusing to stage it (NemoClaw#2701)",
                    src.path
                ));
            }
        }
    }
    None
}

pub fn assess(facts: &Facts) -> Report {
    let problems = problems(facts);
    let mut r = if problems.is_empty() {
        Report::healthy(
            LINK,
            format!(
                "{} guard(s) staged root:root 0444 and identical to their sources; {} wires them into NODE_OPTIONS",
                facts.guards.len(),
                facts.env.path
            ),
        )
    } else {
        let mut summary = problems.join("; ");
        if let Some(refusal) = source_refusal(facts) {
            summary.push_str(&format!(" (repair will refuse: {refusal})"));
        }
        Report::broken(LINK, summary).repairable()
    };
    for g in &facts.guards {
        let state = match root_owned_readonly(&g.staged.path, g.staged.stat.as_ref()) {
            Some(v) => v,
            None if g.staged.data.is_some() && g.staged.data == g.source.data => "ok".into(),
            None => "content differs from source".into(),
        };
        r = r.evidence(&format!("guard {}", g.staged.path), state);
        if let Some(v) = trusted_source(&g.source.path, g.source.stat.as_ref()) {
            r = r.evidence(&format!("source {}", g.source.path), v);
        }
    }
    if let Some(st) = &facts.env.stat {
        r = r.evidence(
            "env-file-mode",
            format!("{:o} {}:{} {:?}", st.mode, st.uid, st.gid, st.kind),
        );
    } else {
        r = r.evidence("env-file-mode", "missing");
    }
    r
}
