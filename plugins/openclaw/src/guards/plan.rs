//! The repair: the writes that restore the chain (pure), the env file
//! rewrite, and carrying them out.

use super::{Facts, observe, problems, source_refusal, unwired};
use crate::config::Config;
use runner_plugin_sdk::checks::root_owned_readonly;
use runner_plugin_sdk::shell_env::{self, ShellValue};
use runner_plugin_sdk::{FileKind, RepairOutcome, Sandbox};

/// One file to write as root:root 0444.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: String,
    pub data: Vec<u8>,
    pub why: String,
}

/// The writes that restore the chain, or why they must not happen (pure).
pub fn plan(facts: &Facts) -> Result<Vec<Write>, String> {
    if let Some(refusal) = source_refusal(facts) {
        return Err(refusal);
    }
    let mut writes = Vec::new();
    for g in &facts.guards {
        let Some(source) = g.source.data.clone() else {
            return Err(format!(
                "guard source {} could not be read; refusing to stage (NemoClaw#2701)",
                g.source.path
            ));
        };
        let ok = root_owned_readonly(&g.staged.path, g.staged.stat.as_ref()).is_none()
            && g.staged.data.as_ref() == Some(&source);
        if !ok {
            let why = root_owned_readonly(&g.staged.path, g.staged.stat.as_ref())
                .unwrap_or_else(|| format!("{} differs from {}", g.staged.path, g.source.path));
            writes.push(Write {
                path: g.staged.path.clone(),
                data: source,
                why,
            });
        }
    }

    let staged = facts.staged_paths();
    let env = &facts.env;
    let env_safe = root_owned_readonly(&env.path, env.stat.as_ref()).is_none();
    let desired: Vec<u8> = match facts.env_source.as_ref().filter(|s| s.is_regular()) {
        Some(src) => src.data.clone().unwrap_or_default(),
        None => {
            let old = env.data.as_deref().map(String::from_utf8_lossy);
            match old.as_deref() {
                // A safe file is kept, with NODE_OPTIONS completed.
                Some(text) if env_safe => rewrite_env(Some(text), &staged).into_bytes(),
                // An unsafe or missing one is never trusted: rebuilt from scratch.
                _ => rewrite_env(None, &staged).into_bytes(),
            }
        }
    };
    let env_ok = env_safe && env.data.as_ref() == Some(&desired);
    if !env_ok {
        let text = String::from_utf8_lossy(&desired);
        match unwired(&text, &staged) {
            Ok(missing) if missing.is_empty() => {}
            _ => return Err(
                "the env file runner would write does not wire every guard (bug); nothing written"
                    .into(),
            ),
        }
        let why = root_owned_readonly(&env.path, env.stat.as_ref())
            .unwrap_or_else(|| format!("{} is incomplete or differs from its source", env.path));
        writes.push(Write {
            path: env.path.clone(),
            data: desired,
            why,
        });
    }
    Ok(writes)
}

/// The env file with NODE_OPTIONS preloading every guard. With `existing`
/// (a safe file whose assignments runner can follow), every line that does
/// not touch NODE_OPTIONS is kept and one assignment is appended that keeps
/// the other NODE_OPTIONS tokens; otherwise a fresh file is generated.
pub fn rewrite_env(existing: Option<&str>, guards: &[String]) -> String {
    let header = "# Written by runner: wires every guard preload into the gateway's NODE_OPTIONS (NemoClaw#2478/#2701).\n";
    let fresh = || {
        format!(
            "{header}export NODE_OPTIONS={}\n",
            shell_env::sh_quote(&shell_env::node_options_for(guards))
        )
    };
    let Some(text) = existing else { return fresh() };
    let old_value = match shell_env::variable(text, "NODE_OPTIONS") {
        ShellValue::Value(v) => v,
        ShellValue::Unset => String::new(),
        ShellValue::Uncertain(_) => return fresh(),
    };
    // Tokens other than our guards' requires, in order.
    let tokens: Vec<&str> = old_value.split_whitespace().collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        if (t == "--require" || t == "-r")
            && tokens
                .get(i + 1)
                .is_some_and(|p| guards.iter().any(|g| g == p))
        {
            i += 2;
            continue;
        }
        if t.strip_prefix("--require=")
            .is_some_and(|p| guards.iter().any(|g| g == p))
        {
            i += 1;
            continue;
        }
        kept.push(t.to_string());
        i += 1;
    }
    let mut value = shell_env::node_options_for(guards);
    for t in kept {
        value.push(' ');
        value.push_str(&t);
    }
    let mut out = String::new();
    for line in text.lines() {
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mentions = line.match_indices("NODE_OPTIONS").any(|(i, _)| {
            let before = i.checked_sub(1).map(|j| line.as_bytes()[j]);
            let after = line.as_bytes().get(i + "NODE_OPTIONS".len()).copied();
            !before.is_some_and(ident) && !after.is_some_and(ident)
        });
        let comment = line.trim_start().starts_with('#');
        if !mentions || comment {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "# Completed by runner: every guard preload in NODE_OPTIONS (NemoClaw#2478/#2701).\nexport NODE_OPTIONS={}\n",
        shell_env::sh_quote(&value)
    ));
    out
}

pub fn repair(sandbox: &Sandbox, cfg: &Config) -> RepairOutcome {
    let facts = match observe(sandbox, cfg) {
        Ok(f) => f,
        Err(e) => return RepairOutcome::Failed(format!("cannot inspect the guard chain: {e}")),
    };
    if problems(&facts).is_empty() {
        return RepairOutcome::NotNeeded("guard chain is intact".into());
    }
    let writes = match plan(&facts) {
        Ok(w) => w,
        Err(refusal) => return RepairOutcome::Refused(refusal),
    };
    let mut done = Vec::new();
    for w in &writes {
        if let Err(e) = sandbox.write(&w.path, &w.data, 0o444, 0, 0) {
            let was_symlink = sandbox
                .stat(&w.path)
                .ok()
                .flatten()
                .is_some_and(|st| st.kind == FileKind::Symlink);
            if was_symlink {
                return RepairOutcome::Refused(format!(
                    "{} is a symlink and runner never writes through or replaces a symlink; remove it by hand,                      then re-run ({e})",
                    w.path
                ));
            }
            let partial = if done.is_empty() {
                String::new()
            } else {
                format!(" (already restored: {})", done.join(", "))
            };
            return RepairOutcome::Failed(format!(
                "staging {} failed ({}): {e}{partial}",
                w.path,
                e.kind()
            ));
        }
        done.push(format!("{} ({})", w.path, w.why));
    }
    RepairOutcome::Repaired(format!(
        "restored the guard chain from packaged sources as root:root 0444: {}",
        done.join("; ")
    ))
}
