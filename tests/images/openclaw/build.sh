#!/usr/bin/env bash
# tests/images/openclaw/build.sh TAG — build the runner-test OpenClaw sandbox image as exactly TAG.
# Normally called by `tests/images/build.sh openclaw`, which hashes this directory plus `inputs` and skips the
# build when runner-test/openclaw:<hash> exists.
#
# 1. Base image: debootstrap --variant=minbase of Debian forky + Debian's nodejs 24 (+ procps for humans),
#    trimmed, `docker import`ed as runner-base/forky-nodejs:<key> (../shared/debian-base.sh; reused while its
#    definition is unchanged).
# 2. Dockerfile with BuildKit and --network host (../shared/agent-image.sh): pinned npm, `npm ci` of
#    package-lock.json (openclaw 2026.9.6) under Node 24, the sandbox layout (rootfs/ + ../shared scripts) and
#    setup.sh, which fails the build on a wrong Node or OpenClaw version.
# Needs root, a docker engine, debootstrap, a docker client with BuildKit built in (Debian's /usr/bin/docker),
# and access to deb.debian.org and registry.npmjs.org. Caches, all outside the repository and safe to delete:
# $RUNNER_IMAGE_CACHE (default /var/cache/runner-images: .debs, build logs), the engine's image store (base
# images) and BuildKit's cache (layers, the npm cache mount).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
shopt -s inherit_errexit

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
tag=${1:?usage: build.sh TAG}
# shellcheck source=../shared/agent-image.sh
. "$here/../shared/agent-image.sh"
# shellcheck source=../shared/debian-base.sh
. "$here/../shared/debian-base.sh"

agent_image_prepare openclaw
started=$SECONDS
script=/usr/share/debootstrap/scripts/forky
[[ -e $script ]] || script=/usr/share/debootstrap/scripts/sid # debootstrap < 1.0.134 has no forky script
base=$(ensure_base_image runner-base/forky-nodejs forky "$script" nodejs,procps)
say "base image $base ($((SECONDS - started)) s)"
agent_image_build openclaw "$here" "$tag" "$base"
say "built $tag in $((SECONDS - started)) s"
