//! Every byte the CLI writes goes through here, and no write can panic.
//!
//! A full or otherwise unwritable stdout (`runner … > /dev/full`) is not a
//! crash: the command says so in one line on stderr and exits with the code
//! of what it did — for `status`/`recover` that is the sandbox's verdict,
//! which stays true (a repair that happened is not undone by a lost report).
//! A pipe whose reader went away still ends the process by SIGPIPE, like
//! other Unix tools (see main.rs).
//!
//! Text from sandboxes and plugins is escaped for humans with
//! [`escape_control`]; JSON is written exactly as serde produced it.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::recovery::report::escape_control;

/// Write `text` to stdout and flush it.
pub fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Write `text` to stdout; when that fails, say so on stderr (once per
/// process, however many writes fail). Returns whether it was written.
pub fn print(text: &str) -> bool {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    match write_stdout(text) {
        Ok(()) => true,
        Err(e) => {
            if !REPORTED.swap(true, Ordering::Relaxed) {
                error_line(&format!("could not write the output to stdout: {e}"));
            }
            false
        }
    }
}

/// `println!` that cannot panic: [`print`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::print(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// A JSON document and its newline.
pub fn print_json(json: &str) -> bool {
    print(&format!("{json}\n"))
}

/// Print `text`, then exit with `code` whether or not it was written.
pub fn print_then(text: &str, code: u8) -> ExitCode {
    print(text);
    ExitCode::from(code)
}

/// `runner: <message>` on stderr, control characters escaped; a failure to
/// write stderr is ignored (there is nowhere left to report it).
pub fn error_line(message: &str) {
    let line = format!("runner: {}\n", escape_control(message));
    let mut err = io::stderr().lock();
    let _ = err.write_all(line.as_bytes()).and_then(|()| err.flush());
}

/// Escape every line of a block rendered elsewhere (newlines stay newlines).
pub fn escape_lines(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(body) => format!("{}\n", escape_control(body)),
            None => escape_control(line).into_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_lines_keep_their_newlines() {
        assert_eq!(escape_lines("a\u{1b}\nb\tc\n"), "a\\u{1b}\nb\\tc\n");
        assert_eq!(escape_lines("x"), "x");
    }
}
