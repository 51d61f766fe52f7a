#!/usr/bin/env bash
# tests/images/openclaw/update-lock.sh — regenerate package-lock.json after changing package.json.
# Resolves with the same pinned npm on the same Node 24 as the image build (npm picks dependency versions by the
# running Node's engines: a lock written under another Node could differ, under Node 20 `openclaw` even resolves
# to an empty 0.0.1 placeholder).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
shopt -s inherit_errexit

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
export RUNNER_IMAGE_CACHE=${RUNNER_IMAGE_CACHE:-/var/cache/runner-images}
if [[ -z ${DOCKER:-} ]]; then
    if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER
ca_bundle=${RUNNER_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$RUNNER_IMAGE_CACHE"

# shellcheck source=../shared/debian-base.sh
. "$here/../shared/debian-base.sh"
script=/usr/share/debootstrap/scripts/forky
[[ -e $script ]] || script=/usr/share/debootstrap/scripts/sid
base=$(ensure_base_image runner-base/forky-nodejs forky "$script" nodejs,procps)
# Only the `npm` stage is built, so the context needs nothing from ../shared.
DOCKER_BUILDKIT=1 "$DOCKER" build --network host --target npm --secret "id=cacert,src=$ca_bundle" \
    --build-arg "BASE_IMAGE=$base" -t runner-base/openclaw-npm:lock "$here" >&2
"$DOCKER" run --rm --network host -v "$here:/recipe" -v "$ca_bundle:/run/secrets/cacert:ro" \
    -e NODE_EXTRA_CA_CERTS=/run/secrets/cacert -w /recipe runner-base/openclaw-npm:lock \
    npm install --package-lock-only --ignore-scripts --no-audit --no-fund --no-update-notifier
"$DOCKER" image rm runner-base/openclaw-npm:lock >/dev/null
echo "updated $here/package-lock.json" >&2
