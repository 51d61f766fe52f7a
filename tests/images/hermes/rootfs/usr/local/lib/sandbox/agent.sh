# shellcheck shell=bash
# shellcheck disable=SC2034 # every name here is read by lib.sh
# Hermes specifics for lib.sh (runner-test/hermes image).

readonly AGENT=hermes
readonly GATEWAY_PORT=8642
# No --port: Hermes takes the API server port from config.yaml (NemoClaw's launch passes none either, #2894).
readonly GATEWAY_ARGV=(hermes gateway run)
readonly CONFIG_TEMPLATE=/usr/local/share/sandbox/hermes-config.yaml
readonly CONFIG_PATH=/sandbox/.hermes/config.yaml
# Hermes is Python: no Node preload guards, no env file to source.
readonly ENV_FILE=
readonly STAGED_FILES=()
# The whole environment of a launch (env -i). HERMES_GATEWAY_MAX_STARTS=0 turns off Hermes' own respawn-storm
# breaker (>5 starts in 120 s → sleep 10–300 s before binding), which would otherwise stretch every later start
# of a test that restarts the gateway repeatedly; runner's crash-loop handling is what the tests exercise.
readonly GATEWAY_ENV=(PATH="$LAUNCH_PATH" HOME=/sandbox USER=gateway LOGNAME=gateway LANG=C.UTF-8
    HERMES_HOME=/sandbox/.hermes HERMES_GATEWAY_MAX_STARTS=0)

# agent_init_state — first-boot layout of the /sandbox volume; idempotent, runs on every boot.
agent_init_state() {
    ensure_dir /sandbox sandbox:sandbox 0755
    ensure_dir /sandbox/.hermes gateway:gateway 0700
    install_if_absent "$CONFIG_TEMPLATE" "$CONFIG_PATH" gateway:gateway 0600
}
