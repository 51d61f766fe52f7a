//! The emulated DGX Spark crash (NemoClaw#2701): OpenClaw's mDNS library calls
//! `os.networkInterfaces()`, which fails with EPERM inside the sandbox and takes the
//! gateway down unless the ciao guard preload is wired in through NODE_OPTIONS.

use std::path::Path;

pub const CIAO_GUARD: &str = "/tmp/nemoclaw-ciao-network-guard.js";

pub const CRASH_TEXT: &str = "uv_interface_addresses returned Unknown system error 1";

/// Ok when NODE_OPTIONS requires the ciao guard and the file is present. Accepts both
/// `--require X` and `--require=X`; a substring elsewhere does not count.
pub fn check(node_options: Option<&str>, exists: impl Fn(&Path) -> bool) -> Result<(), String> {
    let opts = node_options.unwrap_or("");
    let words: Vec<&str> = opts.split_whitespace().collect();
    let required = words.iter().enumerate().any(|(i, w)| {
        ((*w == "--require" || *w == "-r") && words.get(i + 1) == Some(&CIAO_GUARD))
            || w.strip_prefix("--require=") == Some(CIAO_GUARD)
    });
    if !required {
        return Err(format!("NODE_OPTIONS does not require {CIAO_GUARD}"));
    }
    if !exists(Path::new(CIAO_GUARD)) {
        return Err(format!("{CIAO_GUARD} is missing"));
    }
    Ok(())
}

/// What Node prints when the unguarded call blows up.
pub fn crash_report() -> String {
    format!(
        "Error: {CRASH_TEXT} (Unknown system error 1)\n    at Object.networkInterfaces (node:os:217:16)\n    \
         at NetworkManager.getCurrentNetworkInterfaces (/usr/lib/node_modules/openclaw/node_modules/\
         @homebridge/ciao/lib/NetworkManager.js:461:28)\n{{\n  code: 'ERR_SYSTEM_ERROR',\n  \
         syscall: 'uv_interface_addresses'\n}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIRED: &str = "--require /tmp/nemoclaw-sandbox-safety-net.js \
                         --require /tmp/nemoclaw-ciao-network-guard.js";

    #[test]
    fn wired_and_present_passes() {
        assert!(check(Some(WIRED), |_| true).is_ok());
        let eq = "--require=/tmp/nemoclaw-ciao-network-guard.js";
        assert!(check(Some(eq), |_| true).is_ok());
    }

    #[test]
    fn missing_env_wiring_or_file_fails() {
        assert!(check(None, |_| true).is_err());
        assert!(
            check(
                Some("--require /tmp/nemoclaw-sandbox-safety-net.js"),
                |_| true
            )
            .is_err()
        );
        assert!(check(Some(WIRED), |_| false).is_err());
    }

    #[test]
    fn substring_matches_do_not_count() {
        let sneaky = "--title=/tmp/nemoclaw-ciao-network-guard.js";
        assert!(check(Some(sneaky), |_| true).is_err());
        let other = "--require /tmp/nemoclaw-ciao-network-guard.js.bak";
        assert!(check(Some(other), |_| true).is_err());
    }

    #[test]
    fn crash_report_carries_the_platform_text() {
        assert!(crash_report().contains(CRASH_TEXT));
    }
}
