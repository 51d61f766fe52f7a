'use strict';
// Sandbox safety net (the role of NemoClaw's last-resort handler), written for the runner test images.
//
// Logs every uncaught exception or unhandled rejection that is about to kill the gateway, with a timestamp and
// the pid, so /tmp/gateway.log keeps the cause even when the crash output is interleaved with other lines.
// It uses 'uncaughtExceptionMonitor', which observes without changing Node's behaviour: the process still dies
// exactly as it would without this file (an 'uncaughtException' listener would silently keep a broken gateway
// alive).

if (!globalThis.__nemoclawSafetyNet) {
  process.on('uncaughtExceptionMonitor', (err, origin) => {
    const detail = err && err.stack ? err.stack : String(err);
    try {
      process.stderr.write(
        `[nemoclaw-safety-net] ${new Date().toISOString()} pid=${process.pid} fatal ${origin}: ${detail}\n`,
      );
    } catch {
      // stderr is gone: nothing left to report to.
    }
  });
  Object.defineProperty(globalThis, '__nemoclawSafetyNet', { value: true });
}
