//! `log.write`: plugin messages into the host log, tagged.

use tracing::Level;

use super::interface_view;

interface_view!(
    /// The `log` interface.
    Log,
    LogView
);

/// Longest message kept; a plugin cannot flood the log with one call.
const MAX_MESSAGE: usize = 4096;

impl LogView<'_> {
    pub fn write(&mut self, level: Level, message: String) {
        let mut message = message;
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = self.cx.grant().plugin();
        let sandbox = self.cx.grant().sandbox();
        match level {
            Level::TRACE => tracing::trace!(plugin, sandbox, "{message}"),
            Level::DEBUG => tracing::debug!(plugin, sandbox, "{message}"),
            Level::INFO => tracing::info!(plugin, sandbox, "{message}"),
            Level::WARN => tracing::warn!(plugin, sandbox, "{message}"),
            Level::ERROR => tracing::error!(plugin, sandbox, "{message}"),
        }
    }
}
