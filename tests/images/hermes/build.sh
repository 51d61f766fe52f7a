#!/usr/bin/env bash
# tests/images/hermes/build.sh TAG — build the runner-test Hermes sandbox image as exactly TAG.
# Normally called by `tests/images/build.sh hermes`, which hashes this directory plus `inputs` and skips the
# build when runner-test/hermes:<hash> exists.
#
# 1. Base image: debootstrap --variant=minbase of Debian bookworm + python3 (3.11; hermes-agent needs <3.14) +
#    python3-venv + socat (the relay of SANDBOX_LAYOUT=relay, NemoClaw's managed Hermes) (+ procps for humans), trimmed, `docker import`ed as runner-base/bookworm-python3:<key>
#    (../shared/debian-base.sh; reused while its definition is unchanged).
# 2. Dockerfile with BuildKit and --network host (../shared/agent-image.sh): venv /opt/hermes from
#    requirements.lock (hermes-agent 0.19.0 + aiohttp 3.14.1 and every dependency pinned), the sandbox layout
#    (rootfs/ + ../shared scripts) and setup.sh, which fails the build on a wrong version.
# Needs root, a docker engine, debootstrap, a docker client with BuildKit built in (Debian's /usr/bin/docker),
# and access to deb.debian.org and pypi.org. Caches as for the openclaw image (pip cache mount instead of npm).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
shopt -s inherit_errexit

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
tag=${1:?usage: build.sh TAG}
# shellcheck source=../shared/agent-image.sh
. "$here/../shared/agent-image.sh"
# shellcheck source=../shared/debian-base.sh
. "$here/../shared/debian-base.sh"

agent_image_prepare hermes
started=$SECONDS
base=$(ensure_base_image runner-base/bookworm-python3 bookworm /usr/share/debootstrap/scripts/bookworm \
    python3,python3-venv,procps,socat)
say "base image $base ($((SECONDS - started)) s)"
agent_image_build hermes "$here" "$tag" "$base"
say "built $tag in $((SECONDS - started)) s"
