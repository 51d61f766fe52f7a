//! Paths of the NemoClaw sandbox layout that the fixture and OpenClaw images share
//! (docs/images.md). Tests and fault helpers use these instead of string literals.

/// Packaged (trusted) guard sources baked into the image, root:root 0644.
pub const PACKAGED_PRELOADS: &str = "/usr/local/lib/nemoclaw/preloads";

/// Guard file names; staged copies live in /tmp under the same names, root:root 0444.
pub const GUARD_NAMES: [&str; 2] = [
    "nemoclaw-sandbox-safety-net.js",
    "nemoclaw-ciao-network-guard.js",
];

/// Sourced before launch; wires every guard into NODE_OPTIONS.
pub const PROXY_ENV_FILE: &str = "/tmp/nemoclaw-proxy-env.sh";

pub const GATEWAY_LOG: &str = "/tmp/gateway.log";

pub const OPENCLAW_CONFIG: &str = "/sandbox/.openclaw/openclaw.json";
pub const OPENCLAW_STATE_DIR: &str = "/sandbox/.openclaw";
pub const OPENCLAW_PORT: u16 = 18789;

/// uid of user `gateway` in the images (998 in NemoClaw's logs).
pub const GATEWAY_UID: u32 = 998;

/// The text of the emulated DGX Spark crash (NemoClaw#2701).
pub const CIAO_CRASH_TEXT: &str = "uv_interface_addresses returned Unknown system error 1";

pub fn staged_guard_paths() -> Vec<String> {
    GUARD_NAMES.iter().map(|g| format!("/tmp/{g}")).collect()
}

/// OpenClaw 2026.9's state lock for the gateway user.
pub fn gateway_state_lock() -> String {
    format!("{OPENCLAW_STATE_DIR}/tmp/openclaw-{GATEWAY_UID}/gateway.state.lock")
}
