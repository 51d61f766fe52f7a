#!/usr/bin/env bash
# tests/images/openclaw/update-lock.sh — regenerate package-lock.json after changing package.json.
# Resolves with the same pinned npm on the same Node 24 as the image build (npm picks dependency versions by the
# running Node's engines, so a lock written under the host's Node could differ).
set -euo pipefail
shopt -s inherit_errexit

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
export RUNNER_IMAGE_CACHE=${RUNNER_IMAGE_CACHE:-/var/cache/runner-images}
buildkit_cli=${RUNNER_BUILDKIT_DOCKER:-/usr/bin/docker}
ca_bundle=${RUNNER_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$RUNNER_IMAGE_CACHE"

# shellcheck source=base.sh
. "$here/base.sh"
script=/usr/share/debootstrap/scripts/forky
[[ -e $script ]] || script=/usr/share/debootstrap/scripts/sid
base=$(ensure_base_image runner-base/forky-nodejs forky "$script" nodejs,procps)
DOCKER_BUILDKIT=1 "$buildkit_cli" build --network host --target npm --secret "id=cacert,src=$ca_bundle" \
    --build-arg "BASE_IMAGE=$base" -t runner-base/openclaw-npm:lock "$here" >&2
docker run --rm --network host -v "$here:/recipe" -v "$ca_bundle:/run/secrets/cacert:ro" \
    -e NODE_EXTRA_CA_CERTS=/run/secrets/cacert -w /recipe runner-base/openclaw-npm:lock \
    npm install --package-lock-only --ignore-scripts --no-audit --no-fund --no-update-notifier
docker image rm runner-base/openclaw-npm:lock >/dev/null
echo "updated $here/package-lock.json" >&2
