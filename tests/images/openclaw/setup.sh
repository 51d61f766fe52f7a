#!/bin/bash
# Final-stage setup of runner-test/openclaw, run once inside the image by the Dockerfile (bind-mounted, so it
# leaves no file behind). Fails the build if the result is not what the tests rely on.
set -euo pipefail

# Users as in a NemoClaw sandbox: the agent user `sandbox` (1000) owns /sandbox; the gateway runs as `gateway`
# (998, the uid of the /tmp/openclaw-998 locks in NemoClaw#2478 logs). Both have HOME /sandbox.
groupadd --gid 1000 sandbox
useradd --uid 1000 --gid 1000 --home-dir /sandbox --no-create-home --shell /bin/bash sandbox
groupadd --system --gid 998 gateway
useradd --system --uid 998 --gid 998 --home-dir /sandbox --no-create-home --shell /usr/sbin/nologin gateway
# Docker copies this directory (owner and mode) into an empty named volume on its first mount.
install -d -o sandbox -g sandbox -m 0755 /sandbox

# DGX Spark emulation (platform-shim.js): move the real node aside and put the wrapper in its place, so every
# `node` (PATH lookups, `#!/usr/bin/env node`, /usr/bin/node, /usr/bin/nodejs) loads the shim first.
install -d -m 0755 /usr/local/lib/dgx-spark-emu/bin
dpkg-divert --local --rename --divert /usr/local/lib/dgx-spark-emu/bin/node --add /usr/bin/node
mv /usr/local/lib/dgx-spark-emu/node-wrapper.sh /usr/bin/node

ln -s /opt/openclaw/node_modules/openclaw/openclaw.mjs /usr/local/bin/openclaw

# Ownership and modes do not depend on the checkout's umask.
chown -R root:root /usr/local /usr/bin/node
chmod 0755 /usr/bin/node /usr/local/bin/sandbox-entry
chmod 0644 /usr/local/lib/sandbox/*.sh /usr/local/share/sandbox/* /usr/local/lib/dgx-spark-emu/platform-shim.js \
    /usr/local/lib/nemoclaw/nemoclaw-proxy-env.sh /usr/local/lib/nemoclaw/preloads/*.js

# --- checks -------------------------------------------------------------------------------------------------
node_version=$(/usr/local/lib/dgx-spark-emu/bin/node -p 'process.versions.node')
IFS=. read -r major minor _ <<<"$node_version"
# openclaw 2026.9.6 engines: ">=24.16.0 <25 || >=26.1.0"
if ! { ((major == 24 && minor >= 16)) || ((major == 26 && minor >= 1)) || ((major > 26)); }; then
    echo "setup.sh: node $node_version does not satisfy openclaw's engines (>=24.16 <25 || >=26.1)" >&2
    exit 1
fi
want=$(/usr/local/lib/dgx-spark-emu/bin/node -p 'require("/opt/openclaw/package.json").dependencies.openclaw')
have=$(/usr/local/lib/dgx-spark-emu/bin/node -p 'require("/opt/openclaw/node_modules/openclaw/package.json").version')
cli=$(HOME=/tmp/setup-home openclaw --version 2>&1) || {
    echo "setup.sh: 'openclaw --version' failed: $cli" >&2
    exit 1
}
if [[ $have != "$want" || $cli != *"$want"* ]]; then
    echo "setup.sh: want openclaw $want, package.json says $have, 'openclaw --version' says: $cli" >&2
    exit 1
fi
# The wrapper must put the shim first even when NODE_OPTIONS is already set.
order=$(NODE_OPTIONS='--require /usr/local/lib/nemoclaw/preloads/nemoclaw-ciao-network-guard.js' \
    node -p 'process.env.NODE_OPTIONS')
[[ $order == "--require /usr/local/lib/dgx-spark-emu/platform-shim.js --require "* ]] || {
    echo "setup.sh: node wrapper did not put the platform shim first: $order" >&2
    exit 1
}
# The DGX Spark emulation: interface enumeration fails in every node; the packaged ciao guard turns it into {}.
node -e 'try { require("os").networkInterfaces(); } catch (e) { if (/uv_interface_addresses/.test(e.message)) process.exit(0); throw e; } process.exit(1);' || {
    echo "setup.sh: os.networkInterfaces() does not fail under the platform shim" >&2
    exit 1
}
NODE_OPTIONS='--require /usr/local/lib/nemoclaw/preloads/nemoclaw-ciao-network-guard.js' node -e '
    const seen = JSON.stringify(require("os").networkInterfaces());
    if (seen !== "{}" || !globalThis.__nemoclawCiaoGuard) { console.error(seen); process.exit(1); }' 2>/dev/null || {
    echo "setup.sh: the ciao guard does not neutralize the emulated failure" >&2
    exit 1
}
echo "setup.sh: node $node_version, openclaw $have ($cli)"
rm -rf /tmp/setup-home /tmp/* /root/.npm /root/.cache
