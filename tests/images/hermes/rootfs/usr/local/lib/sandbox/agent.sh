# shellcheck shell=bash
# shellcheck disable=SC2034 # every name here is read by lib.sh
# Hermes specifics for lib.sh (runner-test/hermes image).
#
# Two layouts, as NemoClaw's Hermes start script has shipped them, chosen by the
# container env SANDBOX_LAYOUT (read in lib.sh):
#   legacy (default)  the gateway's API server listens on 127.0.0.1:8642 itself.
#   relay             the managed topology: the API server on the internal 127.0.0.1:18642, and an in-sandbox
#                     socat relay 127.0.0.1:8642 → 127.0.0.1:18642 (user gateway, log /tmp/hermes-relay.log).

readonly AGENT=hermes
readonly GATEWAY_PORT=8642
readonly INTERNAL_API_PORT=18642
# No --port: Hermes takes the API server port from config.yaml (NemoClaw's launch passes none either, #2894).
readonly GATEWAY_ARGV=(hermes gateway run)
readonly CONFIG_TEMPLATE=/usr/local/share/sandbox/hermes-config.yaml
readonly CONFIG_PATH=/sandbox/.hermes/config.yaml
# Hermes is Python: no Node preload guards, no env file to source.
readonly ENV_FILE=
readonly STAGED_FILES=()
# The whole environment of a launch (env -i). HERMES_GATEWAY_MAX_STARTS (Hermes' own respawn-storm breaker:
# >5 starts in 120 s → sleep 10–300 s before binding) is passed on only when the container env sets it; the
# tests set it to 0 from outside (docker run -e) so repeated restarts are not slowed down.
gateway_env=(PATH="$LAUNCH_PATH" HOME=/sandbox USER=gateway LOGNAME=gateway LANG=C.UTF-8
    HERMES_HOME=/sandbox/.hermes)
[[ -z ${HERMES_GATEWAY_MAX_STARTS+set} ]] || gateway_env+=("HERMES_GATEWAY_MAX_STARTS=$HERMES_GATEWAY_MAX_STARTS")
readonly GATEWAY_ENV=("${gateway_env[@]}")
unset gateway_env
if [[ $LAYOUT == relay ]]; then
    readonly API_PORT=$INTERNAL_API_PORT
    readonly RELAY_ARGV=(socat "TCP-LISTEN:$GATEWAY_PORT,bind=127.0.0.1,reuseaddr,fork"
        "TCP:127.0.0.1:$INTERNAL_API_PORT")
else
    readonly API_PORT=$GATEWAY_PORT
    readonly RELAY_ARGV=()
fi
readonly RELAY_LOG=/tmp/hermes-relay.log
# Programs the layout relies on besides the gateway (checked by the build's smoke test).
readonly IMAGE_PROGRAMS=(setpriv setsid socat)

# agent_init_state — first-boot layout of the /sandbox volume; idempotent, runs on every boot. The first-boot
# config carries the API server port of the layout (8642, or 18642 behind the relay).
agent_init_state() {
    local rendered
    case $LAYOUT in
    legacy | relay) ;;
    *) fail 2 "SANDBOX_LAYOUT must be 'legacy' or 'relay' for hermes, not '$LAYOUT'" ;;
    esac
    ensure_dir /sandbox sandbox:sandbox 0755
    ensure_dir /sandbox/.hermes gateway:gateway 0700
    rendered=$(mktemp /tmp/.hermes-config.XXXXXX)
    sed "s/^      port: $GATEWAY_PORT\$/      port: $API_PORT/" "$CONFIG_TEMPLATE" >"$rendered"
    grep -q "^      port: $API_PORT\$" "$rendered" || fail 1 "could not set the API port $API_PORT in $CONFIG_TEMPLATE"
    install_if_absent "$rendered" "$CONFIG_PATH" gateway:gateway 0600
    rm -f -- "$rendered"
}
