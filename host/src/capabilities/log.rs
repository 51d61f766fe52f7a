//! `log.write`: plugin messages into the host log, tagged.

use crate::runtime::bindings::runner::plugin::log::{Host, Level};
use crate::runtime::state::PluginState;

/// Longest message kept; a plugin cannot flood the log with one call.
const MAX_MESSAGE: usize = 4096;

impl Host for PluginState {
    async fn write(&mut self, level: Level, message: String) {
        let mut message = message;
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = self.caps.plugin.as_str();
        let sandbox = self.caps.sandbox.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, sandbox, "{message}"),
            Level::Debug => tracing::debug!(plugin, sandbox, "{message}"),
            Level::Info => tracing::info!(plugin, sandbox, "{message}"),
            Level::Warn => tracing::warn!(plugin, sandbox, "{message}"),
            Level::Error => tracing::error!(plugin, sandbox, "{message}"),
        }
    }
}
