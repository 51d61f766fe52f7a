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
