#!/usr/bin/env bash
# tests/engine.sh ensure|stop|status — a Docker engine for the e2e tests.
#
# ensure  if an engine answers on the socket, do nothing. Otherwise install Debian docker.io
#         and busybox-static if missing and start dockerd in the background with networking
#         flags that leave the host firewall and ip forwarding untouched,
#         then record in a state file that this script started it.
# stop    stop dockerd only if the state file says this script started it (identity checked
#         by pid + start time), bounded, then clean up leftovers.
# status  print what is running and who started it; exit 0 if an engine answers.
#
# Overridable, to run a second, private daemon next to a shared one while developing:
#   RUNNER_DOCKER_HOST_SOCK   default /var/run/docker.sock
#   RUNNER_DOCKER_DATA_ROOT   default /var/lib/docker
#   RUNNER_DOCKER_EXEC_ROOT   default /run/dkr (short: unix socket paths are <= 108 bytes)
#   RUNNER_DOCKER_PIDFILE     default $RUNNER_DOCKER_EXEC_ROOT/dockerd.pid
#   RUNNER_DOCKER_STATE_FILE  default /run/runner-e2e/engine-<socket-hash>.state
#   RUNNER_DOCKER_LOG         default /var/log/runner-dockerd-<socket-hash>.log
#   RUNNER_DOCKER_BRIDGE      default docker0; any other name is created by this script
#                             (RUNNER_DOCKER_BRIDGE_CIDR, default 172.31.254.1/24) and
#                             removed again by `stop`
#   RUNNER_DOCKERD_EXTRA_ARGS extra dockerd flags (word-split)
# A second daemon MUST use its own RUNNER_DOCKER_BRIDGE: dockerd started with
# --bridge=none deletes docker0 at start-up (moby removeDefaultBridgeInterface), which
# cuts the first daemon's containers off. This script refuses --bridge/-b in the extra args.
set -euo pipefail

SOCK=${RUNNER_DOCKER_HOST_SOCK:-/var/run/docker.sock}
DATA_ROOT=${RUNNER_DOCKER_DATA_ROOT:-/var/lib/docker}
EXEC_ROOT=${RUNNER_DOCKER_EXEC_ROOT:-/run/dkr}
PIDFILE=${RUNNER_DOCKER_PIDFILE:-$EXEC_ROOT/dockerd.pid}
sock_id=$(printf '%s' "$SOCK" | sha256sum | cut -c1-12)
STATE_FILE=${RUNNER_DOCKER_STATE_FILE:-/run/runner-e2e/engine-$sock_id.state}
LOG=${RUNNER_DOCKER_LOG:-/var/log/runner-dockerd-$sock_id.log}
EXTRA_ARGS=${RUNNER_DOCKERD_EXTRA_ARGS:-}
BRIDGE=${RUNNER_DOCKER_BRIDGE:-docker0}
BRIDGE_CIDR=${RUNNER_DOCKER_BRIDGE_CIDR:-172.31.254.1/24}
DOCKERD=${RUNNER_DOCKERD:-/usr/sbin/dockerd}

START_TIMEOUT=30 # seconds to wait for /_ping
STOP_TIMEOUT=30  # seconds to wait for dockerd to exit after SIGTERM

say() { echo "engine: $*" >&2; }
die() { say "$*"; exit 1; }

# Debian's CLI first: a newer CLI elsewhere in PATH may lack BuildKit (a static /usr/local/bin/docker has none).
docker_cli() {
    if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker || true; fi
}

ping_engine() {
    if command -v curl >/dev/null; then
        [ "$(curl -s --max-time 2 --unix-socket "$SOCK" http://localhost/_ping 2>/dev/null)" = OK ]
    else
        local cli
        cli=$(docker_cli)
        [ -n "$cli" ] && timeout 5 "$cli" -H "unix://$SOCK" version >/dev/null 2>&1
    fi
}

# Field 22 of /proc/PID/stat: with the pid, the identity of a process (pids are recycled).
start_time_of() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "${20}"
}

pid_alive() { [ -n "$1" ] && [ -d "/proc/$1" ] && [ "$(start_time_of "$1" || true)" != "" ]; }

state_get() { sed -n "s/^$1=//p" "$STATE_FILE" 2>/dev/null | head -n 1; }

# The package postinst starts dockerd with default flags (iptables on) unless
# policy-rc.d denies service starts. Keep a denying one in place; never trust an
# existing one that allows starts.
ensure_policy_rc_d() {
    local p=/usr/sbin/policy-rc.d rc=0
    if [ -x "$p" ]; then
        "$p" docker start >/dev/null 2>&1 || rc=$?
        [ "$rc" -eq 101 ] && return 0
        say "$p allows service starts (exit $rc); replacing it for the install, original kept as $p.runner-orig"
        mv -f "$p" "$p.runner-orig"
        RESTORE_POLICY=1
    fi
    printf '#!/bin/sh\n# Installed by runner tests/engine.sh: never start services from package scripts.\nexit 101\n' >"$p"
    chmod 0755 "$p"
}

restore_policy_rc_d() {
    if [ "${RESTORE_POLICY:-0}" = 1 ]; then
        mv -f /usr/sbin/policy-rc.d.runner-orig /usr/sbin/policy-rc.d
    fi
}

install_packages() {
    local missing=()
    [ -x "$DOCKERD" ] || missing+=(docker.io)
    # The static build specifically: images copy it into an empty rootfs.
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' ||
        missing+=(busybox-static)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "need root to install ${missing[*]}"
    command -v apt-get >/dev/null || die "${missing[*]} missing and no apt-get; install them by hand"
    say "installing ${missing[*]} with apt"
    RESTORE_POLICY=0
    ensure_policy_rc_d
    trap restore_policy_rc_d EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    restore_policy_rc_d
    trap - EXIT
    [ -x "$DOCKERD" ] || die "apt finished but $DOCKERD is missing"
}

cmd_ensure() {
    # Two test runs starting at once must not start two daemons on one socket.
    mkdir -p "$(dirname "$STATE_FILE")"
    exec 8>>"$STATE_FILE.lock"
    flock -w $((START_TIMEOUT * 2)) 8 || die "another tests/engine.sh holds $STATE_FILE.lock"
    if ping_engine; then
        echo "engine: already running"
        return 0
    fi
    # A dockerd from an earlier ensure that is still starting up: wait for it, not a second one.
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
        say "dockerd pid $pid exists but does not answer yet; waiting"
    else
        install_packages
        [ "$(id -u)" -eq 0 ] || die "need root to start dockerd"
        case " $EXTRA_ARGS " in
            *" --bridge"* | *" -b "* | *" -b="*)
                die "pass the bridge as RUNNER_DOCKER_BRIDGE, not in RUNNER_DOCKERD_EXTRA_ARGS (--bridge=none deletes docker0)"
                ;;
        esac
        mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$(dirname "$PIDFILE")" "$(dirname "$STATE_FILE")" \
            "$(dirname "$LOG")" "$(dirname "$SOCK")"
        local bridge_args=() created_bridge=0
        if [ "$BRIDGE" != docker0 ]; then
            if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
                ip link add name "$BRIDGE" type bridge
                ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
                ip link set "$BRIDGE" up
                created_bridge=1
            fi
            bridge_args=(--bridge "$BRIDGE")
        fi
        rm -f "$PIDFILE"
        # setsid: the daemon must outlive this script and the test run's process group.
        # 8>&-: it must not inherit (and so hold forever) the ensure lock.
        # shellcheck disable=SC2086
        setsid "$DOCKERD" \
            --host "unix://$SOCK" \
            --data-root "$DATA_ROOT" \
            --exec-root "$EXEC_ROOT" \
            --pidfile "$PIDFILE" \
            --iptables=false --ip6tables=false --ip-forward=false \
            "${bridge_args[@]}" $EXTRA_ARGS \
            </dev/null >>"$LOG" 2>&1 8>&- &
        pid=$!
        {
            echo "pid=$pid"
            echo "start_time=$(start_time_of "$pid" || echo unknown)"
            echo "socket=$SOCK"
            echo "exec_root=$EXEC_ROOT"
            echo "data_root=$DATA_ROOT"
            echo "bridge=$BRIDGE"
            echo "created_bridge=$created_bridge"
            echo "log=$LOG"
            echo "started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        } >"$STATE_FILE.tmp"
        mv -f "$STATE_FILE.tmp" "$STATE_FILE"
        say "started dockerd pid $pid (log $LOG)"
    fi

    local t0=$SECONDS
    while [ $((SECONDS - t0)) -lt "$START_TIMEOUT" ]; do
        if ping_engine; then
            say "ready on unix://$SOCK after $((SECONDS - t0))s"
            [ "$SOCK" = /var/run/docker.sock ] || say "use it with: export DOCKER_HOST=unix://$SOCK"
            echo "engine: started"
            return 0
        fi
        if ! pid_alive "$pid"; then
            tail -n 20 "$LOG" >&2 || true
            rm -f "$STATE_FILE"
            die "dockerd exited during start-up (log above, full log $LOG)"
        fi
        sleep 0.2
    done
    tail -n 20 "$LOG" >&2 || true
    die "dockerd pid $pid did not answer /_ping on $SOCK within ${START_TIMEOUT}s (log $LOG)"
}

# dockerd runs its own containerd under the exec root; after a SIGKILL it is orphaned.
kill_own_containerd() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = containerd ] || continue
        if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$EXEC_ROOT/containerd/"; then
            kill -KILL "${p#/proc/}" 2>/dev/null || true
        fi
    done
}

other_dockerd_running() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = dockerd ] && return 0
    done
    return 1
}

cleanup_leftovers() {
    local bridge
    bridge=$(state_get bridge)
    if [ "$bridge" = docker0 ]; then
        # docker0 is shared by every daemon on the default bridge: remove it only when no
        # dockerd at all is left.
        if ! other_dockerd_running; then
            if ip link show docker0 >/dev/null 2>&1; then
                ip link delete docker0 && say "removed leftover docker0"
            fi
            rmdir /var/run/docker/plugins /var/run/docker 2>/dev/null || true
        fi
    elif [ -n "$bridge" ] && [ "$(state_get created_bridge)" = 1 ]; then
        if ip link show "$bridge" >/dev/null 2>&1; then
            ip link delete "$bridge" && say "removed bridge $bridge"
        fi
    fi
}

cmd_stop() {
    if [ ! -f "$STATE_FILE" ]; then
        echo "engine: not started by tests/engine.sh for $SOCK; leaving it alone"
        return 0
    fi
    local pid recorded
    pid=$(state_get pid)
    recorded=$(state_get start_time)
    if ! pid_alive "$pid"; then
        say "dockerd pid $pid already gone"
    elif [ "$(start_time_of "$pid")" != "$recorded" ] || [ "$(cat "/proc/$pid/comm")" != dockerd ]; then
        say "pid $pid is no longer the dockerd this script started; not signalling it"
    else
        say "stopping dockerd pid $pid"
        kill -TERM "$pid"
        local t0=$SECONDS
        while pid_alive "$pid" && [ "$(start_time_of "$pid" || true)" = "$recorded" ]; do
            if [ $((SECONDS - t0)) -ge "$STOP_TIMEOUT" ]; then
                say "dockerd pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                kill_own_containerd
                sleep 1
                break
            fi
            sleep 0.2
        done
    fi
    cleanup_leftovers
    rm -f "$STATE_FILE"
    echo "engine: stopped"
}

cmd_status() {
    local pid
    if [ -f "$STATE_FILE" ]; then
        pid=$(state_get pid)
        echo "engine: started by tests/engine.sh (pid $pid, since $(state_get started_at), log $(state_get log))"
    fi
    if ping_engine; then
        local version=unknown cli
        cli=$(docker_cli)
        [ -n "$cli" ] && version=$(timeout 5 "$cli" -H "unix://$SOCK" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo unknown)
        echo "engine: running on unix://$SOCK, version $version"
        [ -f "$STATE_FILE" ] || echo "engine: not started by this script (stop will leave it alone)"
        return 0
    fi
    echo "engine: not running on unix://$SOCK"
    return 1
}

case ${1:-} in
    ensure) cmd_ensure ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: tests/engine.sh ensure|stop|status" >&2
        exit 2
        ;;
esac
