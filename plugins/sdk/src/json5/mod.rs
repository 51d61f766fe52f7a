//! A small JSON5 reader that keeps byte spans, and a text patcher that adds a
//! string to an array while keeping every other byte of the document.
//!
//! It reads what is JSON5 or whose bytes matter: OpenClaw's config
//! (`openclaw.json` is JSON5), the gateway's WebSocket frames, and the lease
//! script's rows (a lease is released by compare-and-delete of the row's
//! exact text, so its span is needed). Plain JSON files (lock and pid files)
//! go through `serde_json` instead (see `locks`). Supported: `//` and `/* */`
//! comments, trailing commas, unquoted (identifier) keys, single-quoted
//! strings, all JSON5 escapes and line continuations, hex numbers,
//! leading/trailing decimal points, explicit `+`, `Infinity` and `NaN`, and
//! the JSON5 whitespace set.
//!
//! The patcher never re-serialises a document: it inserts text at one place
//! and then proves, by parsing the result, that exactly the intended change
//! happened ([`ensure_string_in_array`]).
//!
//! Why not `jsonc-parser` (its CST) underneath: measured on the release
//! `openclaw.wasm` (opt-level z, LTO), calling its CST for the insertion
//! takes the component from 333,230 to 443,190 bytes (+110 KB, +33 %), where
//! this module's functions are about 15-19 KB of code in total (from the
//! component's name section). The CST chooses the inserted text's formatting
//! itself, so the patch-then-reparse proof would still be needed on top of
//! it. Decision: keep this reader. `serde_json` for the lock files adds
//! 25.5 KB (+7.7 %) to `openclaw.wasm` and 24.6 KB (+9.9 %) to `hermes.wasm`.

mod layout;
mod patch;
mod read;
#[cfg(test)]
mod tests;
mod verify;

use std::fmt;
use std::ops::Range;

pub use patch::{PatchError, Patched, array_contains, ensure_string_in_array};
pub use read::parse;

/// A parsed value and the byte range it covers in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Range<usize>,
}

/// One `key: value` member of an object, in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key: String,
    /// The key as written (with its quotes, if any).
    pub key_span: Range<usize>,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number exactly as written (`0x1F`, `-.5`, `+Infinity`, ...).
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// Members in source order; duplicates are kept (the last one wins, as in
    /// `JSON.parse`).
    Object(Vec<Member>),
}

impl Value {
    /// `object`, `array`, `string`, ... for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

impl Node {
    /// The member `key` of an object (the last one when duplicated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Object(members) => members
                .iter()
                .rev()
                .find(|m| m.key == key)
                .map(|m| &m.value),
            _ => None,
        }
    }

    /// Follow object keys from this node.
    pub fn get_path(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// A non-negative integer written in decimal (or as a decimal string,
    /// which some writers use for large numbers).
    pub fn as_u64(&self) -> Option<u64> {
        let raw = match &self.value {
            Value::Number(raw) => raw.as_str(),
            Value::String(s) => s.as_str(),
            _ => return None,
        };
        let raw = raw.strip_prefix('+').unwrap_or(raw);
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        raw.parse().ok()
    }

    /// Same value, ignoring spans and how it was written (quotes, comments,
    /// whitespace). Numbers compare by their text.
    pub fn same_as(&self, other: &Node) -> bool {
        match (&self.value, &other.value) {
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
            }
            (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| x.key == y.key && x.value.same_as(&y.value))
            }
            (a, b) => a == b,
        }
    }
}

/// Where and why a document failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// `s` as a double-quoted JSON string (valid JSON5 too).
pub fn quote(s: &str) -> String {
    quote_with(s, '"')
}

pub(crate) fn quote_with(s: &str, q: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(q);
    out
}
