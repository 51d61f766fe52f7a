//! Guard-chain scenarios: what the link reports and what its repair writes.

use super::plan::{plan, rewrite_env};
use super::*;
use runner_plugin_sdk::shell_env::{self, ShellValue};

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
