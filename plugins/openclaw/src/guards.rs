//! The `guards` link: the NemoClaw guard chain (NemoClaw#2478/#2701).
//!
//! Healthy when every guard preload is staged as a regular root:root 0444
//! file identical to its packaged source, and the env file the launch
//! sources is a regular root:root 0444 file that wires every staged guard
//! into NODE_OPTIONS as an exact `--require <path>` token (and, when a
//! packaged env file exists, is identical to it).
//!
//! Repair re-stages from the packaged sources only after checking they are
//! trusted (regular, not a symlink, root-owned, not group/world-writable),
//! and rebuilds an unsafe, missing or incomplete env file without ever
//! trusting (let alone sourcing) its old content.

use crate::config::Config;
use runner_plugin_sdk::checks::{root_owned_readonly, trusted_source};
use runner_plugin_sdk::shell_env::{self, ShellValue};
use runner_plugin_sdk::{FileKind, FileStat, RepairOutcome, Report, Sandbox};

pub const LINK: &str = "guards";

/// Largest guard or env file read.
const MAX_FILE: u32 = 1024 * 1024;

/// A file as observed.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub path: String,
    pub stat: Option<FileStat>,
    /// Content, for regular files.
    pub data: Option<Vec<u8>>,
}

impl FileFacts {
    fn is_regular(&self) -> bool {
        self.stat
            .as_ref()
            .is_some_and(|s| s.kind == FileKind::Regular)
    }
}

#[derive(Debug, Clone)]
pub struct GuardFacts {
    pub staged: FileFacts,
    pub source: FileFacts,
}

/// Everything the link looks at.
#[derive(Debug, Clone)]
pub struct Facts {
    pub guards: Vec<GuardFacts>,
    pub env: FileFacts,
    /// The packaged env file, when configured.
    pub env_source: Option<FileFacts>,
}

impl Facts {
    fn staged_paths(&self) -> Vec<String> {
        self.guards.iter().map(|g| g.staged.path.clone()).collect()
    }
}

fn observe_file(sandbox: &Sandbox, path: &str) -> Result<FileFacts, String> {
    let stat = sandbox
        .stat(path)
        .map_err(|e| format!("cannot stat {path}: {e}"))?;
    let data = match &stat {
        Some(st) if st.kind == FileKind::Regular => Some(
            sandbox
                .read(path, MAX_FILE)
                .map_err(|e| format!("cannot read {path}: {e}"))?,
        ),
        _ => None,
    };
    Ok(FileFacts {
        path: path.to_string(),
        stat,
        data,
    })
}

pub fn observe(sandbox: &Sandbox, cfg: &Config) -> Result<Facts, String> {
    let mut guards = Vec::new();
    for (name, staged) in cfg.guards.iter().zip(cfg.staged_paths()) {
        guards.push(GuardFacts {
            staged: observe_file(sandbox, &staged)?,
            source: observe_file(sandbox, &cfg.source_path(name))?,
        });
    }
    let env = observe_file(sandbox, &cfg.env_file)?;
    let env_source = match &cfg.env_file_source {
        Some(p) => Some(observe_file(sandbox, p)?),
        None => None,
    };
    Ok(Facts {
        guards,
        env,
        env_source,
    })
}

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

pub fn probe(sandbox: &Sandbox, cfg: &Config) -> Report {
    match observe(sandbox, cfg) {
        Ok(f) => assess(&f),
        Err(e) => Report::unknown(LINK, format!("cannot inspect the guard chain: {e}")),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const SAFETY: &str = "/tmp/nemoclaw-sandbox-safety-net.js";
    const CIAO: &str = "/tmp/nemoclaw-ciao-network-guard.js";
    const PACKAGED_ENV: &str = "export HOME=/sandbox\nexport NODE_OPTIONS=\"--require /tmp/nemoclaw-sandbox-safety-net.js --require /tmp/nemoclaw-ciao-network-guard.js\"\n";

    fn stat(mode: u32, uid: u32, kind: FileKind) -> FileStat {
        FileStat {
            kind,
            mode,
            uid,
            gid: uid,
            size: 1,
            mtime: 0,
        }
    }

    fn file(path: &str, st: Option<FileStat>, data: Option<&str>) -> FileFacts {
        FileFacts {
            path: path.into(),
            stat: st,
            data: data.map(|d| d.as_bytes().to_vec()),
        }
    }

    fn staged(path: &str, data: &str) -> FileFacts {
        file(path, Some(stat(0o444, 0, FileKind::Regular)), Some(data))
    }

    fn source(path: &str, data: &str) -> FileFacts {
        file(path, Some(stat(0o644, 0, FileKind::Regular)), Some(data))
    }

    fn healthy() -> Facts {
        Facts {
            guards: vec![
                GuardFacts {
                    staged: staged(SAFETY, "safety"),
                    source: source("/src/nemoclaw-sandbox-safety-net.js", "safety"),
                },
                GuardFacts {
                    staged: staged(CIAO, "ciao"),
                    source: source("/src/nemoclaw-ciao-network-guard.js", "ciao"),
                },
            ],
            env: staged("/tmp/nemoclaw-proxy-env.sh", PACKAGED_ENV),
            env_source: Some(source("/src/nemoclaw-proxy-env.sh", PACKAGED_ENV)),
        }
    }

    #[test]
    fn intact_chain_is_healthy_and_needs_no_writes() {
        let f = healthy();
        assert!(problems(&f).is_empty(), "{:?}", problems(&f));
        assert_eq!(assess(&f).health(), runner_plugin_sdk::Health::Healthy);
        assert!(plan(&f).unwrap().is_empty());
    }

    #[test]
    fn missing_guard_is_broken_and_restaged_from_source() {
        let mut f = healthy();
        f.guards[1].staged = file(CIAO, None, None);
        let p = problems(&f);
        assert_eq!(p, vec![format!("guard {CIAO} is missing")]);
        let w = plan(&f).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].path.as_str(), w[0].data.as_slice()),
            (CIAO, b"ciao".as_slice())
        );
    }

    #[test]
    fn staged_guard_with_wrong_mode_or_content_is_restaged() {
        let mut f = healthy();
        f.guards[0].staged = file(
            SAFETY,
            Some(stat(0o644, 0, FileKind::Regular)),
            Some("safety"),
        );
        f.guards[1].staged = staged(CIAO, "tampered");
        let p = problems(&f);
        assert!(p[0].contains("mode 644"), "{p:?}");
        assert!(p[1].contains("differs from its packaged source"), "{p:?}");
        assert_eq!(plan(&f).unwrap().len(), 2);
    }

    #[test]
    fn group_writable_source_is_refused_naming_the_file() {
        let mut f = healthy();
        f.guards[1].staged = file(CIAO, None, None);
        f.guards[1].source = file(
            "/src/nemoclaw-ciao-network-guard.js",
            Some(stat(0o664, 0, FileKind::Regular)),
            Some("ciao"),
        );
        let refusal = plan(&f).unwrap_err();
        assert_eq!(
            refusal,
            "guard source /src/nemoclaw-ciao-network-guard.js is group-writable (mode 664); refusing to stage (NemoClaw#2701)"
        );
        assert!(assess(&f).build().summary.contains("repair will refuse"));
    }

    #[test]
    fn symlinked_or_missing_source_is_refused() {
        let mut f = healthy();
        f.guards[0].source = file(
            "/src/nemoclaw-sandbox-safety-net.js",
            Some(stat(0o777, 0, FileKind::Symlink)),
            None,
        );
        assert!(plan(&f).unwrap_err().contains("Symlink"));
        let mut f = healthy();
        f.guards[0].source = file("/src/nemoclaw-sandbox-safety-net.js", None, None);
        assert!(plan(&f).unwrap_err().contains("is missing"));
        let mut f = healthy();
        f.guards[0].source = file(
            "/src/nemoclaw-sandbox-safety-net.js",
            Some(stat(0o644, 1000, FileKind::Regular)),
            Some("x"),
        );
        assert!(plan(&f).unwrap_err().contains("not root"));
    }

    #[test]
    fn env_file_missing_is_restaged_from_packaged_source() {
        let mut f = healthy();
        f.env = file("/tmp/nemoclaw-proxy-env.sh", None, None);
        assert!(problems(&f)[0].contains("is missing"));
        let w = plan(&f).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].data, PACKAGED_ENV.as_bytes());
    }

    #[test]
    fn env_file_missing_one_guard_is_incomplete() {
        let mut f = healthy();
        f.env_source = None;
        f.env = staged(
            "/tmp/nemoclaw-proxy-env.sh",
            "export NODE_OPTIONS=\"--require /tmp/nemoclaw-sandbox-safety-net.js\"\n",
        );
        let p = problems(&f);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains(&format!("does not wire {CIAO}")) && p[0].contains("incomplete"),
            "{p:?}"
        );
    }

    #[test]
    fn env_file_substring_match_does_not_count() {
        let mut f = healthy();
        f.env_source = None;
        f.env = staged(
            "/tmp/nemoclaw-proxy-env.sh",
            "export NODE_OPTIONS=\"--require /tmp/nemoclaw-sandbox-safety-net.js --require /tmp/nemoclaw-ciao-network-guard.js.disabled\"\n",
        );
        assert!(problems(&f)[0].contains("does not wire"));
    }

    #[test]
    fn unsafe_env_file_is_rebuilt_without_trusting_its_content() {
        let mut f = healthy();
        f.env_source = None;
        // World-writable: whatever it says is ignored, including extra tokens.
        f.env = file(
            "/tmp/nemoclaw-proxy-env.sh",
            Some(stat(0o666, 0, FileKind::Regular)),
            Some("export NODE_OPTIONS=\"--require /tmp/evil.js\"\nexport HTTP_PROXY=http://evil\n"),
        );
        let w = plan(&f).unwrap();
        let text = String::from_utf8(w[0].data.clone()).unwrap();
        assert!(!text.contains("evil"), "{text}");
        assert_eq!(
            unwired(&text, &[SAFETY.into(), CIAO.into()]).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn safe_incomplete_env_file_keeps_its_other_lines_without_duplicates() {
        let old = "# proxy\nexport HTTP_PROXY=http://proxy:3128\nexport NODE_OPTIONS=\"--max-old-space-size=512 --require /tmp/nemoclaw-sandbox-safety-net.js\"\n";
        let guards = vec![SAFETY.to_string(), CIAO.to_string()];
        let text = rewrite_env(Some(old), &guards);
        assert!(
            text.starts_with("# proxy\nexport HTTP_PROXY=http://proxy:3128\n"),
            "{text}"
        );
        let ShellValue::Value(v) = shell_env::variable(&text, "NODE_OPTIONS") else {
            panic!("{text}")
        };
        assert_eq!(
            v,
            format!("--require {SAFETY} --require {CIAO} --max-old-space-size=512")
        );
        assert_eq!(
            shell_env::node_requires(&v)
                .iter()
                .filter(|r| *r == SAFETY)
                .count(),
            1
        );
        // Rewriting the result again changes nothing but the trailer.
        let again = rewrite_env(Some(&text), &guards);
        assert_eq!(
            shell_env::variable(&again, "NODE_OPTIONS"),
            ShellValue::Value(v)
        );
    }

    #[test]
    fn env_file_with_unfollowable_logic_is_regenerated() {
        let old = "if [ -n \"$X\" ]; then\n  export NODE_OPTIONS=\"--require /tmp/x.js\"\nfi\n";
        let guards = vec![SAFETY.to_string()];
        let text = rewrite_env(Some(old), &guards);
        assert!(!text.contains("if ["), "{text}");
        assert_eq!(unwired(&text, &guards).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn env_file_differing_from_its_packaged_source_is_broken() {
        let mut f = healthy();
        let extra = format!("{PACKAGED_ENV}export EXTRA=1\n");
        f.env = staged("/tmp/nemoclaw-proxy-env.sh", &extra);
        assert!(problems(&f)[0].contains("differs from its packaged source"));
        assert_eq!(plan(&f).unwrap()[0].data, PACKAGED_ENV.as_bytes());
    }

    #[test]
    fn packaged_env_source_that_misses_a_guard_is_refused() {
        let mut f = healthy();
        f.env = file("/tmp/nemoclaw-proxy-env.sh", None, None);
        f.env_source = Some(source(
            "/src/nemoclaw-proxy-env.sh",
            "export NODE_OPTIONS=\"--require /tmp/nemoclaw-sandbox-safety-net.js\"\n",
        ));
        let refusal = plan(&f).unwrap_err();
        assert!(
            refusal.contains("does not wire /tmp/nemoclaw-ciao-network-guard.js"),
            "{refusal}"
        );
    }

    #[test]
    fn configured_but_absent_env_source_falls_back_to_generation() {
        let mut f = healthy();
        f.env = file("/tmp/nemoclaw-proxy-env.sh", None, None);
        f.env_source = Some(file("/src/nemoclaw-proxy-env.sh", None, None));
        let w = plan(&f).unwrap();
        assert!(String::from_utf8_lossy(&w[0].data).contains("Written by runner"));
    }

    #[test]
    fn symlinked_env_file_is_replaced() {
        let mut f = healthy();
        f.env = file(
            "/tmp/nemoclaw-proxy-env.sh",
            Some(stat(0o777, 0, FileKind::Symlink)),
            None,
        );
        assert!(problems(&f)[0].contains("Symlink"));
        assert_eq!(plan(&f).unwrap()[0].path, "/tmp/nemoclaw-proxy-env.sh");
    }
}
