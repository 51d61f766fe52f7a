'use strict';
// DGX Spark platform emulation for the runner-test/openclaw image (NemoClaw#2701, #2478, #2340).
//
// Loaded FIRST in every node process: /usr/bin/node is a wrapper (node-wrapper.sh) that puts
// `--require <this file>` at the front of NODE_OPTIONS, so it runs before any guard preload and every child
// process inherits it.
//
// On DGX Spark (aarch64) sandboxes libuv's uv_interface_addresses() fails with EPERM, so os.networkInterfaces()
// throws "uv_interface_addresses returned Unknown system error 1". @homebridge/ciao enumerates interfaces from a
// timer, outside any try/catch: an unguarded gateway dies shortly after start with that uncaught error, and when
// respawned dies again — the crash loop NemoClaw's ciao guard preload exists for. This shim reproduces it:
//   * os.networkInterfaces() throws that SystemError in every node process;
//   * in a gateway process a ciao-like timer calls os.networkInterfaces() with no try/catch. If the ciao guard
//     has wrapped the function the call returns {} and nothing happens; otherwise the error escapes to the event
//     loop and the process dies.
// A throwing os.networkInterfaces() alone would not do: OpenClaw calls it once, inside try/catch.

const os = require('node:os');

const CRASH_DELAY_MS = 1500;

function interfaceEnumerationFailure() {
  const message =
    'A system error occurred: uv_interface_addresses returned Unknown system error 1 (Unknown system error 1)';
  const err = new Error(message);
  const frames = String(err.stack).split('\n').slice(1).join('\n');
  // Same shape and first line as the SystemError a libuv failure produces in Node.
  Object.defineProperty(err, 'name', { value: 'SystemError', writable: true, configurable: true });
  err.stack = `SystemError [ERR_SYSTEM_ERROR]: ${message}\n${frames}`;
  err.code = 'ERR_SYSTEM_ERROR';
  err.errno = 1;
  err.syscall = 'uv_interface_addresses';
  err.info = {
    errno: 1,
    code: 'Unknown system error 1',
    message: 'Unknown system error 1',
    syscall: 'uv_interface_addresses',
  };
  return err;
}

// `openclaw gateway`, `openclaw gateway run …` and `openclaw gateway --port …` start a gateway;
// `openclaw gateway status|health|probe|…` are short CLI calls that never open ciao.
function isGatewayProcess(argv) {
  const args = argv.slice(2);
  const at = args.indexOf('gateway');
  if (at < 0) return false;
  const next = args[at + 1];
  return next === undefined || next === 'run' || next.startsWith('-');
}

if (!globalThis.__dgxSparkPlatformShim) {
  Object.defineProperty(globalThis, '__dgxSparkPlatformShim', { value: true });

  os.networkInterfaces = function networkInterfaces() {
    throw interfaceEnumerationFailure();
  };

  if (isGatewayProcess(process.argv)) {
    // Like ciao's NetworkManager: look the function up at call time (a guard loaded after this shim replaces
    // it) and call it from a timer callback, where nothing catches.
    const timer = setTimeout(function ciaoNetworkManagerPoll() {
      os.networkInterfaces();
    }, CRASH_DELAY_MS);
    timer.unref();
  }
}
