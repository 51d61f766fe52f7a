#!/bin/bash
# Final-stage setup of runner-test/hermes, run once inside the image by the Dockerfile (bind-mounted, so it
# leaves no file behind). Fails the build if the result is not what the tests rely on.
set -euo pipefail

# Users as in a NemoClaw sandbox: the agent user `sandbox` (1000) owns /sandbox; the gateway runs as `gateway`
# (998). Both have HOME /sandbox.
groupadd --gid 1000 sandbox
useradd --uid 1000 --gid 1000 --home-dir /sandbox --no-create-home --shell /bin/bash sandbox
groupadd --system --gid 998 gateway
useradd --system --uid 998 --gid 998 --home-dir /sandbox --no-create-home --shell /usr/sbin/nologin gateway
# Docker copies this directory (owner and mode) into an empty named volume on its first mount.
install -d -o sandbox -g sandbox -m 0755 /sandbox

ln -s /opt/hermes/bin/hermes /usr/local/bin/hermes

chown -R root:root /usr/local
chmod 0755 /usr/local/bin/sandbox-entry
chmod 0644 /usr/local/lib/sandbox/*.sh /usr/local/share/sandbox/*

# --- checks -------------------------------------------------------------------------------------------------
want=$(sed -n 's/^hermes-agent==//p' /opt/hermes/requirements.lock)
have=$(/opt/hermes/bin/python -c 'import importlib.metadata as m; print(m.version("hermes-agent"))')
aiohttp=$(/opt/hermes/bin/python -c 'import aiohttp; print(aiohttp.__version__)')
python=$(/opt/hermes/bin/python -c 'import platform; print(platform.python_version())')
[[ -n $want && $have == "$want" ]] || {
    echo "setup.sh: want hermes-agent $want, installed $have" >&2
    exit 1
}
HOME=/tmp/setup-home HERMES_HOME=/tmp/setup-home/.hermes hermes --help >/dev/null || {
    echo "setup.sh: 'hermes --help' failed" >&2
    exit 1
}
echo "setup.sh: python $python, hermes-agent $have, aiohttp $aiohttp"
rm -rf /tmp/setup-home /tmp/* /root/.cache
