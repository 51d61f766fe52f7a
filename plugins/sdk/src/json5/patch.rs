//! Adding a string to an array with one text insertion, then proving it.

use super::layout::{Style, insert_last};
use super::verify::verify_one_string_added;
use super::{Node, ParseError, Value, parse, quote_with};
use std::fmt;

/// Does the string array at `path` contain `value`?
/// `Ok(None)` when some key on the path is missing.
pub fn array_contains(root: &Node, path: &[&str], value: &str) -> Result<Option<bool>, PatchError> {
    let mut node = root;
    for (i, key) in path.iter().enumerate() {
        if !matches!(node.value, Value::Object(_)) {
            return Err(PatchError::WrongType {
                path: path[..i].join("."),
                expected: "object",
                found: node.value.type_name(),
            });
        }
        match node.get(key) {
            Some(next) => node = next,
            None => return Ok(None),
        }
    }
    match node.as_array() {
        Some(items) => Ok(Some(items.iter().any(|n| n.as_str() == Some(value)))),
        None => Err(PatchError::WrongType {
            path: path.join("."),
            expected: "array",
            found: node.value.type_name(),
        }),
    }
}

/// Why a patch was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The original document does not parse.
    Parse(ParseError),
    /// A value on the path has the wrong type (the config is schema-invalid;
    /// fixing that is not a minimal edit).
    WrongType {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    /// The patched text failed verification (a bug; nothing is written).
    Verify(String),
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchError::Parse(e) => write!(f, "does not parse as JSON5: {e}"),
            PatchError::WrongType {
                path,
                expected,
                found,
            } => {
                let path = if path.is_empty() {
                    "the document root"
                } else {
                    path
                };
                write!(f, "{path} is a {found}, expected an {expected}")
            }
            PatchError::Verify(why) => write!(f, "patch verification failed: {why}"),
        }
    }
}

impl std::error::Error for PatchError {}

/// The result of [`ensure_string_in_array`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    pub text: String,
    /// False when `value` was already present (`text` is the input).
    pub changed: bool,
}

/// Make the string array at `path` (object keys from the root) contain
/// `value`, by inserting text at one place: into the existing array, or as a
/// new member (with any missing intermediate objects) at the end of the
/// deepest existing object. Every other byte stays as it was. The result is
/// re-parsed and must equal the original document plus exactly that one
/// string, or the patch is refused with [`PatchError::Verify`].
pub fn ensure_string_in_array(
    text: &str,
    path: &[&str],
    value: &str,
) -> Result<Patched, PatchError> {
    assert!(
        !path.is_empty(),
        "ensure_string_in_array needs a non-empty path"
    );
    let root = parse(text).map_err(PatchError::Parse)?;
    let style = Style::detect(text, &root);

    let mut node = &root;
    let mut depth = 0;
    let new_text = loop {
        let Value::Object(members) = &node.value else {
            return Err(PatchError::WrongType {
                path: path[..depth].join("."),
                expected: "object",
                found: node.value.type_name(),
            });
        };
        match node.get(path[depth]) {
            Some(child) if depth + 1 < path.len() => {
                node = child;
                depth += 1;
            }
            Some(array) => {
                let Value::Array(items) = &array.value else {
                    return Err(PatchError::WrongType {
                        path: path.join("."),
                        expected: "array",
                        found: array.value.type_name(),
                    });
                };
                if items.iter().any(|n| n.as_str() == Some(value)) {
                    return Ok(Patched {
                        text: text.to_string(),
                        changed: false,
                    });
                }
                let quote = items
                    .iter()
                    .rev()
                    .find(|n| n.as_str().is_some())
                    .and_then(|n| text[n.span.clone()].chars().next())
                    .unwrap_or(style.quote);
                let spans: Vec<_> = items.iter().map(|n| n.span.clone()).collect();
                break insert_last(
                    text,
                    &array.span,
                    &spans,
                    &quote_with(value, quote),
                    false,
                    style.sep,
                );
            }
            None => {
                let rest = &path[depth..];
                let mut rendered = format!("[{}]", quote_with(value, style.quote));
                for key in rest[1..].iter().rev() {
                    rendered = format!("{{{}{}{rendered}}}", style.key(key), style.colon);
                }
                let member = format!("{}{}{rendered}", style.key(rest[0]), style.colon);
                let spans: Vec<_> = members
                    .iter()
                    .map(|m| m.key_span.start..m.value.span.end)
                    .collect();
                break insert_last(text, &node.span, &spans, &member, true, style.sep);
            }
        }
    };

    let patched = parse(&new_text)
        .map_err(|e| PatchError::Verify(format!("patched text does not parse: {e}")))?;
    verify_one_string_added(&root, &patched, path, value).map_err(PatchError::Verify)?;
    Ok(Patched {
        text: new_text,
        changed: true,
    })
}
