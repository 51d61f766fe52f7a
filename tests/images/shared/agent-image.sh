# shellcheck shell=bash
# Shared driver of the agent image recipes (openclaw/build.sh, hermes/build.sh); both list tests/images/shared
# in their `inputs`, so the generic builder rebuilds them when anything here changes.
#
#   agent_image_prepare NAME         checks, DOCKER, RUNNER_IMAGE_CACHE, per-recipe lock (direct calls of a
#                                    recipe bypass the generic builder's lock)
#   agent_image_build NAME DIR TAG BASE
#                                    context = DIR + the shared in-image scripts; BuildKit build with
#                                    --network host and the host CA bundle as secret `cacert`

: "${RUNNER_IMAGE_CACHE:=/var/cache/runner-images}"
export RUNNER_IMAGE_CACHE
AGENT_IMAGE_SHARED=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly AGENT_IMAGE_SHARED

say() { printf '[%s image] %s\n' "${AGENT_IMAGE_NAME:-agent}" "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

agent_image_prepare() {
    AGENT_IMAGE_NAME=$1
    [[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap)"
    # Debian's 20.10 client first: its BuildKit is built in; a newer CLI without buildx cannot do BuildKit builds.
    if [[ -z ${DOCKER:-} ]]; then
        if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
    fi
    export DOCKER
    "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
        die "no docker engine reachable with $DOCKER; run tests/engine.sh ensure"
    # Build stages reach npm/PyPI over TLS: they get the host's trust store (which may include a TLS-inspecting
    # proxy's CA) as a BuildKit secret, so it never lands in a layer.
    AGENT_IMAGE_CA_BUNDLE=${RUNNER_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
    [[ -r $AGENT_IMAGE_CA_BUNDLE ]] || die "CA bundle $AGENT_IMAGE_CA_BUNDLE not readable (set RUNNER_BUILD_CA_BUNDLE)"
    mkdir -p "$RUNNER_IMAGE_CACHE/logs"
    # fd 8: fd 9 may carry the generic builder's own lock, inherited.
    exec 8>"$RUNNER_IMAGE_CACHE/$AGENT_IMAGE_NAME.lock"
    flock -w 900 8 || die "timed out after 900 s waiting for another $AGENT_IMAGE_NAME image build"
}

agent_image_build() {
    local name=$1 dir=$2 tag=$3 base=$4 ctx log started=$SECONDS
    ctx=$(mktemp -d "$RUNNER_IMAGE_CACHE/ctx-$name.XXXXXX")
    # shellcheck disable=SC2064 # expand now: $ctx is local
    trap "rm -rf -- '$ctx'" EXIT
    cp -a -- "$dir/." "$ctx/"
    install -D -m 0755 -- "$AGENT_IMAGE_SHARED/sandbox-entry" "$ctx/rootfs/usr/local/bin/sandbox-entry"
    ln -sf sandbox-entry "$ctx/rootfs/usr/local/bin/nemoclaw-start"
    install -D -m 0644 -- "$AGENT_IMAGE_SHARED/sandbox-lib.sh" "$ctx/rootfs/usr/local/lib/sandbox/lib.sh"

    log="$RUNNER_IMAGE_CACHE/logs/$name-build.log"
    say "docker build -t $tag from $base (log: $log)"
    if ! DOCKER_BUILDKIT=1 "$DOCKER" build --network host --progress plain \
        --secret "id=cacert,src=$AGENT_IMAGE_CA_BUNDLE" --build-arg "BASE_IMAGE=$base" -t "$tag" "$ctx" \
        >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        if grep -q 'buildx component is missing\|unknown flag: --secret' "$log"; then
            say "hint: $DOCKER has no built-in BuildKit; use Debian's docker.io client (DOCKER=/usr/bin/docker)"
        fi
        die "docker build failed (last 40 lines above, full log $log)"
    fi
    # setup.sh prints one summary line ("setup.sh: …versions…"); surface it.
    grep -h ' setup.sh: ' "$log" | tail -n 1 | sed 's/^#[0-9]* [0-9.]* /  /' >&2 || true
    "$DOCKER" image inspect "$tag" >/dev/null || die "build finished but $tag does not exist"
    say "docker build done in $((SECONDS - started)) s"
    agent_image_smoke "$tag"
}

# agent_image_smoke TAG — cheap checks of the finished image as a container sees it (< 1 s), so a broken
# layout fails the build rather than a scenario: PID 1 parses, the launch library loads, users and /sandbox
# are as documented, every packaged guard exists, and the programs the layout runs are on PATH.
agent_image_smoke() {
    local tag=$1 out
    # shellcheck disable=SC2016 # runs inside the container
    if ! out=$("$DOCKER" run --rm --network none --entrypoint /bin/bash "$tag" -euo pipefail -c '
        bash -n /usr/local/bin/sandbox-entry
        . /usr/local/lib/sandbox/lib.sh
        [[ $(id -u gateway):$(id -g gateway) == 998:998 ]] || { echo "user gateway is not 998:998"; exit 1; }
        [[ $(id -u sandbox):$(id -g sandbox) == 1000:1000 ]] || { echo "user sandbox is not 1000:1000"; exit 1; }
        [[ $(stat -c %u:%g:%a /sandbox) == 1000:1000:755 ]] || { echo "/sandbox is not sandbox:sandbox 0755"; exit 1; }
        for pair in "${STAGED_FILES[@]}"; do
            [[ $(stat -c %u:%g:%a "${pair%%:*}") == 0:0:644 ]] || { echo "${pair%%:*} is not root:root 0644"; exit 1; }
        done
        [[ -f $CONFIG_TEMPLATE ]] || { echo "no $CONFIG_TEMPLATE"; exit 1; }
        command -v "${GATEWAY_ARGV[0]}" >/dev/null || { echo "${GATEWAY_ARGV[0]} not on PATH"; exit 1; }
        for prog in "${IMAGE_PROGRAMS[@]}"; do
            command -v "$prog" >/dev/null || { echo "$prog not on PATH"; exit 1; }
        done
        echo "smoke ok: $AGENT, ${#STAGED_FILES[@]} packaged guard file(s), launch: ${GATEWAY_ARGV[*]}${IMAGE_PROGRAMS[*]:+, also }${IMAGE_PROGRAMS[*]}"
    ' 2>&1); then
        printf '%s\n' "$out" >&2
        die "smoke test of $tag failed"
    fi
    say "$out"
}
