#!/usr/bin/env bash
# tests/images/openclaw/build.sh TAG — build the runner-test OpenClaw sandbox image as exactly TAG.
#
# 1. Base image: debootstrap --variant=minbase of Debian forky with Debian's nodejs 24, trimmed, `docker import`ed
#    as runner-base/forky-nodejs:<key> (base.sh; reused while its definition is unchanged).
# 2. Dockerfile with BuildKit and --network host: pinned npm, `npm ci` of package-lock.json (openclaw 2026.9.6)
#    under Node 24, then the sandbox layout from rootfs/ and setup.sh (which fails the build on a wrong version).
# Needs: root, a docker engine, debootstrap, Debian's /usr/bin/docker client (its BuildKit is built in; a docker
# CLI without buildx cannot do BuildKit builds), network access to deb.debian.org and registry.npmjs.org.
# Caches (outside the repository, safe to delete): $RUNNER_IMAGE_CACHE (default /var/cache/runner-images) for
# .debs, the engine's image store for base images, BuildKit's cache for layers and the npm cache.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
tag=${1:?usage: build.sh TAG}
export RUNNER_IMAGE_CACHE=${RUNNER_IMAGE_CACHE:-/var/cache/runner-images}
buildkit_cli=${RUNNER_BUILDKIT_DOCKER:-/usr/bin/docker}
# The build stages reach npm over TLS; pass the host's trust store (which may include a TLS-inspecting proxy's
# CA) as a BuildKit secret so it never lands in a layer.
ca_bundle=${RUNNER_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

say() { printf '[openclaw image] %s\n' "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no docker engine reachable"
[[ -x $buildkit_cli ]] || die "$buildkit_cli not found: install Debian's docker.io client (or set RUNNER_BUILDKIT_DOCKER)"
[[ -r $ca_bundle ]] || die "CA bundle $ca_bundle not readable (set RUNNER_BUILD_CA_BUNDLE)"
mkdir -p "$RUNNER_IMAGE_CACHE/logs"

# Two concurrent builds of this recipe would debootstrap twice and race on the tag: serialize them.
exec 9>"$RUNNER_IMAGE_CACHE/openclaw.lock"
flock -w 900 9 || die "timed out after 900 s waiting for another openclaw image build"

# shellcheck source=base.sh
. "$here/base.sh"
script=/usr/share/debootstrap/scripts/forky
[[ -e $script ]] || script=/usr/share/debootstrap/scripts/sid # debootstrap < 1.0.134 has no forky script
started=$SECONDS
base=$(ensure_base_image runner-base/forky-nodejs forky "$script" nodejs,procps)
say "base image $base ($((SECONDS - started)) s)"

log="$RUNNER_IMAGE_CACHE/logs/openclaw-build.log"
say "docker build -t $tag (log: $log)"
if ! DOCKER_BUILDKIT=1 "$buildkit_cli" build --network host --progress plain \
    --secret "id=cacert,src=$ca_bundle" --build-arg "BASE_IMAGE=$base" -t "$tag" "$here" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "docker build failed (last 40 lines above, full log $log)"
fi
grep -h '^#[0-9]* [0-9.]* setup.sh:' "$log" | tail -n 1 | sed 's/^#[0-9]* [0-9.]* /[openclaw image] /' >&2 || true
docker image inspect "$tag" >/dev/null || die "build finished but $tag does not exist"
say "built $tag in $((SECONDS - started)) s"
