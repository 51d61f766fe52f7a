# Packaged source of /tmp/nemoclaw-proxy-env.sh (staged root:root 0444 by sandbox-entry, PID 1).
# Sourced by the gateway launch as user `gateway`. Every guard is wired into NODE_OPTIONS, safety net first.
export HOME=/sandbox
export OPENCLAW_CONFIG_PATH=/sandbox/.openclaw/openclaw.json
export OPENCLAW_STATE_DIR=/sandbox/.openclaw
export OPENCLAW_NO_AUTO_UPDATE=1
export NODE_OPTIONS="--require /tmp/nemoclaw-sandbox-safety-net.js --require /tmp/nemoclaw-ciao-network-guard.js"
