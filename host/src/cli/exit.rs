//! Exit codes of the CLI contract (docs/cli.md). Tests outside this repo rely
//! on them.

/// Healthy at the end.
pub const HEALTHY: u8 = 0;
/// Broken at the end: a repair failed or was refused.
pub const BROKEN: u8 = 1;
/// Usage or configuration error; nothing was touched.
pub const USAGE: u8 = 2;
/// Unknown: engine unreachable, sandbox missing, probe inconclusive.
pub const UNKNOWN: u8 = 3;
/// Plugin fault: trap, deadline, memory limit, contract violation.
pub const PLUGIN_FAULT: u8 = 4;
