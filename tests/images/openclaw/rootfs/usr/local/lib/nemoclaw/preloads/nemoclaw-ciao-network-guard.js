'use strict';
// Ciao network guard (the role NemoClaw's guard plays for #2340/#2478/#2701), written for the runner test images.
//
// Inside a sandbox, enumerating network interfaces can fail with EPERM ("uv_interface_addresses returned
// Unknown system error 1"). mDNS code calls os.networkInterfaces() from timers without try/catch, so that error
// kills the gateway. This preload wraps os.networkInterfaces(): an interface-enumeration failure yields {} (no
// interfaces: mDNS has nothing to announce on, the gateway keeps serving on loopback); any other error is
// re-thrown unchanged. It must be loaded through NODE_OPTIONS (--require) so child processes get it too.

const os = require('node:os');

function isInterfaceEnumerationDenied(err) {
  if (!err || typeof err !== 'object') return false;
  if (err.syscall === 'uv_interface_addresses') return true;
  if (err.code === 'EPERM' || err.errno === 1 || err.errno === -1) return true;
  return /uv_interface_addresses/.test(String(err.message));
}

if (!globalThis.__nemoclawCiaoGuard) {
  const unguarded = os.networkInterfaces;
  let warned = false;

  os.networkInterfaces = function guardedNetworkInterfaces(...args) {
    try {
      return unguarded.apply(this, args);
    } catch (err) {
      if (!isInterfaceEnumerationDenied(err)) throw err;
      if (!warned) {
        warned = true;
        try {
          process.stderr.write(
            `[nemoclaw-ciao-network-guard] pid=${process.pid} os.networkInterfaces() failed ` +
              `(${err.message}); returning no interfaces\n`,
          );
        } catch {
          // stderr is gone: the guard still does its job.
        }
      }
      return {};
    }
  };

  // Marker for probes and for the platform emulation: the guard is active in this process.
  Object.defineProperty(globalThis, '__nemoclawCiaoGuard', { value: true });
}
