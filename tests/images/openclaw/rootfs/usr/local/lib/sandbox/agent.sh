# shellcheck shell=bash
# shellcheck disable=SC2034 # every name here is read by lib.sh
# OpenClaw specifics for lib.sh (runner-test/openclaw image).

readonly AGENT=openclaw
readonly GATEWAY_PORT=18789
readonly GATEWAY_ARGV=(openclaw gateway run --port 18789)
readonly CONFIG_TEMPLATE=/usr/local/share/sandbox/openclaw.json
readonly CONFIG_PATH=/sandbox/.openclaw/openclaw.json
readonly ENV_FILE=/tmp/nemoclaw-proxy-env.sh
# Packaged source : staged path (root:root 0444). The env file wires both guards into NODE_OPTIONS.
readonly STAGED_FILES=(
    /usr/local/lib/nemoclaw/preloads/nemoclaw-sandbox-safety-net.js:/tmp/nemoclaw-sandbox-safety-net.js
    /usr/local/lib/nemoclaw/preloads/nemoclaw-ciao-network-guard.js:/tmp/nemoclaw-ciao-network-guard.js
    /usr/local/lib/nemoclaw/nemoclaw-proxy-env.sh:/tmp/nemoclaw-proxy-env.sh
)
# Environment of every launch before the env file is sourced; all of it for an unguarded launch. HOME=/sandbox
# makes OpenClaw's defaults (~/.openclaw/openclaw.json, ~/.openclaw state) the very paths the env file names, so
# a naked gateway uses the same config, state dir and locks as a guarded one. TMPDIR stays unset (= /tmp, the
# tmpfs): OpenClaw 2026.9 keeps its gateway locks under <state>/tmp/openclaw-<uid>/ regardless.
readonly GATEWAY_ENV=(PATH="$LAUNCH_PATH" HOME=/sandbox USER=gateway LOGNAME=gateway LANG=C.UTF-8)
# OpenClaw has one layout here: no in-sandbox relay.
readonly RELAY_ARGV=()
readonly RELAY_LOG=
# Programs the layout relies on besides the gateway (checked by the build's smoke test).
readonly IMAGE_PROGRAMS=(setpriv setsid)

# agent_init_state — first-boot layout of the /sandbox volume; idempotent, runs on every boot.
agent_init_state() {
    [[ $LAYOUT == legacy ]] || fail 2 "SANDBOX_LAYOUT must be 'legacy' for openclaw, not '$LAYOUT'"
    ensure_dir /sandbox sandbox:sandbox 0755
    ensure_dir /sandbox/.openclaw gateway:gateway 0700
    # OpenClaw 2026.9 exits 78 ("Unable to create fallback OpenClaw temp dir … EACCES") unless
    # $HOME/.cache/openclaw is writable by the gateway user.
    ensure_dir /sandbox/.cache sandbox:sandbox 0755
    ensure_dir /sandbox/.cache/openclaw gateway:gateway 0700
    install_if_absent "$CONFIG_TEMPLATE" "$CONFIG_PATH" gateway:gateway 0600
}
