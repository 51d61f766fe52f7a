# shellcheck shell=bash
# /usr/local/lib/sandbox/lib.sh — the launch logic of sandbox-entry (PID 1), the stand-in for NemoClaw's
# nemoclaw-start. Sourced by PID 1 only (the image has no other launcher: what a recovery tool or a test does
# inside a sandbox, it does from outside, e.g. with `docker exec`). agent.sh (next to this file) supplies the
# agent-specific paths, environment, argv, optional relay and first-boot state.
# Source: tests/images/shared/sandbox-lib.sh, copied into the openclaw and hermes images by their build.sh.

# shellcheck disable=SC2034 # constants used by agent.sh and by the scripts that source this file
readonly SANDBOX_LIB_DIR=/usr/local/lib/sandbox
readonly GATEWAY_USER=gateway
readonly GATEWAY_LOG=/tmp/gateway.log
# "<pid> <starttime>" of the last launched gateway (starttime = field 22 of /proc/<pid>/stat), root 0600.
readonly GATEWAY_PIDFILE=/tmp/nemoclaw-gateway.pid
# Present once the /sandbox volume has booted; keepalive mode launches only on the boot that creates it.
readonly BOOT_MARKER=/sandbox/.sandbox-entry-booted
readonly LAUNCH_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Container env SANDBOX_LAYOUT: `legacy` (default) or an agent-specific alternative (Hermes: `relay`).
readonly LAYOUT=${SANDBOX_LAYOUT:-legacy}

# shellcheck disable=SC1091 # agent.sh differs per image (tests/images/<agent>/rootfs/usr/local/lib/sandbox/)
. "$SANDBOX_LIB_DIR/agent.sh"

log() { printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${LOG_TAG:-sandbox}" "$*" >&2; }

# fail RC MESSAGE…
fail() {
    local rc=$1
    shift
    log "ERROR: $*"
    exit "$rc"
}

require_root() {
    [[ $(id -u) -eq 0 ]] || fail 2 "must run as root: it stages root-owned files and switches to user $GATEWAY_USER"
}

# proc_starttime PID — prints the start time (clock ticks since boot) of PID if it is alive and not a zombie.
proc_starttime() {
    local stat state
    local -a fields
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
    # comm (field 2) may contain spaces and parentheses: split after the last ") ".
    read -r -a fields <<<"${stat##*) }"
    state=${fields[0]}
    [[ $state != Z && $state != X ]] || return 1
    printf '%s\n' "${fields[19]}"
}

# proc_same PID START — true if PID is alive and is still the process that started at START (no pid reuse).
proc_same() {
    local now
    now=$(proc_starttime "$1") && [[ $now == "$2" ]]
}

# ensure_dir PATH OWNER MODE — create or fix one directory (not recursive); never through a symlink.
ensure_dir() {
    local path=$1 owner=$2 mode=$3
    [[ ! -L $path ]] || fail 1 "$path is a symlink; refusing to use it"
    [[ -d $path ]] || mkdir -- "$path"
    chown -- "$owner" "$path"
    chmod -- "$mode" "$path"
}

# install_if_absent SRC DST OWNER MODE — first-boot file: written atomically, never overwrites an existing one.
install_if_absent() {
    local src=$1 dst=$2 owner=$3 mode=$4 tmp
    if [[ -e $dst || -L $dst ]]; then
        return 0
    fi
    tmp=$(mktemp "$(dirname -- "$dst")/.first-boot.XXXXXX")
    cat -- "$src" >"$tmp"
    chown -- "$owner" "$tmp"
    chmod -- "$mode" "$tmp"
    mv -fT -- "$tmp" "$dst"
    log "first boot: wrote $dst"
}

# stage_file SRC DST — copy a packaged file to DST as root:root 0444, atomically: mktemp in DST's directory,
# chown, chmod, then rename(2). A reader never sees a partial file, and a symlink planted at DST is replaced
# rather than followed.
stage_file() {
    local src=$1 dst=$2 tmp
    if [[ ! -f $src || -L $src ]]; then
        log "packaged source $src is missing or not a regular file"
        return 1
    fi
    if [[ -d $dst && ! -L $dst ]]; then
        log "$dst is a directory"
        return 1
    fi
    tmp=$(mktemp "$(dirname -- "$dst")/.stage.XXXXXX") || return 1
    if cat -- "$src" >"$tmp" && chown root:root "$tmp" && chmod 0444 "$tmp" && mv -fT -- "$tmp" "$dst"; then
        return 0
    fi
    rm -f -- "$tmp"
    return 1
}

# stage_guards — (re)stage every packaged guard and the env file from STAGED_FILES ("SRC:DST" pairs).
stage_guards() {
    local pair
    for pair in "${STAGED_FILES[@]}"; do
        stage_file "${pair%%:*}" "${pair#*:}" || return 1
    done
    ((${#STAGED_FILES[@]} == 0)) || log "staged ${#STAGED_FILES[@]} guard file(s) into /tmp"
}

# verify_guards — every staged file is a regular root:root 0444 file identical to its packaged source.
# Prints one line per problem; returns non-zero if there is any.
verify_guards() {
    local pair src dst meta bad=0
    for pair in "${STAGED_FILES[@]}"; do
        src=${pair%%:*}
        dst=${pair#*:}
        if [[ -L $dst || ! -f $dst ]]; then
            echo "$dst is missing or not a regular file"
            bad=1
            continue
        fi
        meta=$(stat -c '%u:%g %a' -- "$dst")
        if [[ $meta != "0:0 444" ]]; then
            echo "$dst has owner/mode $meta, want 0:0 444"
            bad=1
        elif ! cmp -s -- "$src" "$dst"; then
            echo "$dst differs from its packaged source $src"
            bad=1
        fi
    done
    return "$bad"
}

# prepare_log [PATH] — the gateway log (default /tmp/gateway.log) is a regular file owned by the gateway user,
# mode 0644 (NemoClaw's rule: 600 or 644, never a symlink), appended to by every launch; content is kept.
prepare_log() {
    local path=${1:-$GATEWAY_LOG}
    if [[ -L $path || (-e $path && ! -f $path) ]]; then
        log "$path is not a regular file; replacing it"
        rm -rf -- "$path"
    fi
    if [[ ! -e $path ]]; then
        (set -C && : >"$path") 2>/dev/null || true
    fi
    chown "$GATEWAY_USER:$GATEWAY_USER" "$path"
    chmod 0644 "$path"
}

# write_pidfile PID START — atomic "<pid> <starttime>" record, root 0600.
write_pidfile() {
    local tmp
    tmp=$(mktemp /tmp/.gateway-pid.XXXXXX)
    printf '%s %s\n' "$1" "$2" >"$tmp"
    chmod 0600 "$tmp"
    mv -fT -- "$tmp" "$GATEWAY_PIDFILE"
}

# read_pidfile — prints "<pid> <starttime>" from the pid file if it is well formed.
read_pidfile() {
    local line
    [[ -f $GATEWAY_PIDFILE && ! -L $GATEWAY_PIDFILE ]] || return 1
    read -r line <"$GATEWAY_PIDFILE" || return 1
    [[ $line =~ ^[0-9]+\ [0-9]+$ ]] || return 1
    printf '%s\n' "$line"
}

# launch_gateway — start the gateway as user gateway in its own session (setsid: a SIGHUP to the caller's
# session must not reach it), stdout+stderr appended to /tmp/gateway.log. Sets GATEWAY_PID and GATEWAY_START.
# Refuses (rc 3) unless every guard is staged and intact, then sources the env file in the gateway's shell.
launch_gateway() {
    local script problems
    # shellcheck disable=SC2016 # these scripts run in the gateway's shell: $0, $@ and $HOME expand there
    if ! problems=$(verify_guards); then
        log "refusing unguarded gateway launch: $(tr '\n' ';' <<<"$problems")" \
            "re-stage the packaged guards first"
        return 3
    fi
    if ((${#STAGED_FILES[@]} > 0)); then
        script='set -e; . "$0"; cd "$HOME"; exec "$@"'
    else
        script='cd "$HOME"; exec "$@"'
    fi
    prepare_log
    local label=guarded
    ((${#STAGED_FILES[@]} > 0)) || label="no guards in this image"
    printf '%s [sandbox-entry] launching %s gateway (%s): %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$AGENT" "$label" "${GATEWAY_ARGV[*]}" >>"$GATEWAY_LOG"
    # env -i: nothing from PID 1's environment (SANDBOX_MODE, …) leaks into the gateway.
    setsid setpriv --reuid="$GATEWAY_USER" --regid="$GATEWAY_USER" --init-groups -- \
        env -i "${GATEWAY_ENV[@]}" /bin/bash -c "$script" "${ENV_FILE:-sandbox-entry}" "${GATEWAY_ARGV[@]}" \
        </dev/null >>"$GATEWAY_LOG" 2>&1 &
    GATEWAY_PID=$!
    # The start time is fixed at fork, so reading it before the execs finish is fine.
    GATEWAY_START=$(proc_starttime "$GATEWAY_PID") || GATEWAY_START=0
    write_pidfile "$GATEWAY_PID" "$GATEWAY_START"
}

# stop_gateway PID START — SIGTERM, up to 8 s to exit (docker stop allows 10 s), then SIGKILL to its process
# group (the gateway leads its own session, so its helpers go too). Identity-checked: never signals a reused pid.
stop_gateway() {
    local pid=$1 start=$2 i
    proc_same "$pid" "$start" || return 0
    log "stopping gateway pid $pid (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 80; i++)); do
        proc_same "$pid" "$start" || return 0
        sleep 0.1
    done
    log "gateway pid $pid still running 8 s after SIGTERM; sending SIGKILL to its process group"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

# launch_relay — the relay layout's in-sandbox forwarder (Hermes managed topology: socat 127.0.0.1:8642 →
# the gateway's internal port), as user gateway in its own session, log RELAY_LOG. Sets RELAY_PID and
# RELAY_START. Only called when agent.sh sets RELAY_ARGV.
launch_relay() {
    prepare_log "$RELAY_LOG"
    printf '%s [sandbox-entry] launching %s relay: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$AGENT" \
        "${RELAY_ARGV[*]}" >>"$RELAY_LOG"
    setsid setpriv --reuid="$GATEWAY_USER" --regid="$GATEWAY_USER" --init-groups -- \
        env -i "${GATEWAY_ENV[@]}" "${RELAY_ARGV[@]}" </dev/null >>"$RELAY_LOG" 2>&1 &
    RELAY_PID=$!
    RELAY_START=$(proc_starttime "$RELAY_PID") || RELAY_START=0
}

# find_relay — prints "<pid> <starttime>" of a live relay process (same argv) someone else started, if any.
find_relay() {
    local d pid cmd start want="${RELAY_ARGV[*]} "
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        { cmd=$(tr '\0' ' ' <"$d/cmdline"); } 2>/dev/null || continue
        [[ $cmd == "$want" ]] || continue
        start=$(proc_starttime "$pid") || continue
        printf '%s %s\n' "$pid" "$start"
        return 0
    done
    return 1
}
