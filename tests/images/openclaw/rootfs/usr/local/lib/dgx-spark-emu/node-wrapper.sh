#!/bin/sh
# Installed as /usr/bin/node by setup.sh; the real binary was moved to /usr/local/lib/dgx-spark-emu/bin/node with
# dpkg-divert. Part of the DGX Spark emulation (platform-shim.js): whatever NODE_OPTIONS a launcher sets, the
# platform shim is put at the FRONT of it. Node loads NODE_OPTIONS preloads before command-line --require ones and
# in order, and child processes inherit NODE_OPTIONS, so the shim runs before any guard in every node process.
shim=/usr/local/lib/dgx-spark-emu/platform-shim.js
case "${NODE_OPTIONS-}" in
"--require $shim" | "--require $shim "*) ;;
*)
    NODE_OPTIONS="--require $shim${NODE_OPTIONS:+ $NODE_OPTIONS}"
    export NODE_OPTIONS
    ;;
esac
exec /usr/local/lib/dgx-spark-emu/bin/node "$@"
