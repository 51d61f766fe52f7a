//! Logging into the host's log (tagged with plugin and sandbox by the host).

use crate::bindings::runner::plugin::log::{Level, write};

pub fn debug(message: &str) {
    write(Level::Debug, message);
}

pub fn info(message: &str) {
    write(Level::Info, message);
}

pub fn warn(message: &str) {
    write(Level::Warn, message);
}

pub fn error(message: &str) {
    write(Level::Error, message);
}

/// One line for a repair's outcome, at the level it deserves.
pub fn outcome(link: &str, outcome: &crate::RepairOutcome) {
    use crate::RepairOutcome as O;
    match outcome {
        O::Repaired(m) => info(&format!("{link}: repaired: {m}")),
        O::NotNeeded(m) => info(&format!("{link}: not needed: {m}")),
        O::Refused(m) => warn(&format!("{link}: refused: {m}")),
        O::Failed(m) => error(&format!("{link}: failed: {m}")),
    }
}
