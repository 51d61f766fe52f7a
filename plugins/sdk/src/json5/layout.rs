//! Where inserted text goes and how it is written, so it blends into the
//! document's own style (quotes, spacing, line breaks, comments).

use super::read::{Parser, is_ident_part, is_ident_start, is_line_terminator, is_ws};
use super::{Member, Node, Value, quote_with};
use std::ops::Range;

/// How the document writes keys and strings, so inserted text blends in.
pub(super) struct Style {
    /// `"`, `'`, or `\0` for unquoted identifier keys.
    key_quote: char,
    pub(super) quote: char,
    pub(super) colon: &'static str,
    /// Between entries written on one line: `" "` or `""`.
    pub(super) sep: &'static str,
}

impl Style {
    pub(super) fn detect(text: &str, root: &Node) -> Self {
        let mut style = Style {
            key_quote: '"',
            quote: '"',
            colon: ": ",
            sep: " ",
        };
        if let Some(lead) = first_inline_separator(text, root) {
            style.sep = if lead.is_empty() { "" } else { " " };
        }
        if let Some(m) = first_member(root) {
            style.key_quote = text[m.key_span.clone()]
                .chars()
                .next()
                .filter(|c| matches!(c, '"' | '\''))
                .unwrap_or('\0');
            let between = &text[m.key_span.end..m.value.span.start];
            style.colon = if between.trim_start().starts_with(':') && between.ends_with(':') {
                ":"
            } else {
                ": "
            };
        }
        if let Some(q) = first_string(root).and_then(|n| text[n.span.clone()].chars().next()) {
            style.quote = q;
        }
        style
    }

    pub(super) fn key(&self, key: &str) -> String {
        let ident =
            key.chars().next().is_some_and(is_ident_start) && key.chars().all(is_ident_part);
        match self.key_quote {
            '\0' if ident => key.to_string(),
            '\0' => quote_with(key, '"'),
            q => quote_with(key, q),
        }
    }
}

/// The whitespace before the second entry of the first one-line container
/// with at least two entries.
pub(super) fn first_inline_separator<'t>(text: &'t str, node: &Node) -> Option<&'t str> {
    let (second, children): (Option<usize>, Vec<&Node>) = match &node.value {
        Value::Array(items) => (items.get(1).map(|n| n.span.start), items.iter().collect()),
        Value::Object(members) => (
            members.get(1).map(|m| m.key_span.start),
            members.iter().map(|m| &m.value).collect(),
        ),
        _ => return None,
    };
    if let Some(start) = second {
        let before = &text[..start];
        let lead = &before[before.trim_end_matches(is_ws).len()..];
        if !lead.contains(is_line_terminator) {
            return Some(lead);
        }
    }
    children
        .into_iter()
        .find_map(|c| first_inline_separator(text, c))
}

pub(super) fn first_member(node: &Node) -> Option<&Member> {
    match &node.value {
        Value::Object(members) => members.first(),
        _ => None,
    }
}

pub(super) fn first_string(node: &Node) -> Option<&Node> {
    match &node.value {
        Value::String(_) => Some(node),
        Value::Array(items) => items.iter().find_map(first_string),
        Value::Object(members) => members.iter().find_map(|m| first_string(&m.value)),
        _ => None,
    }
}

/// Insert `item` as the last entry of the container whose span is `container`
/// (`[...]` or `{...}`) and whose entries cover `items`.
pub(super) fn insert_last(
    text: &str,
    container: &Range<usize>,
    items: &[Range<usize>],
    item: &str,
    object: bool,
    inline_sep: &str,
) -> String {
    let open = container.start;
    let close = container.end - 1;
    let mut out = String::with_capacity(text.len() + item.len() + 8);
    let Some(last) = items.last() else {
        let inner = &text[open + 1..close];
        out.push_str(&text[..=open]);
        let pad = if object { " " } else { "" };
        if inner.chars().all(is_ws) {
            // Only whitespace inside: the whole inside becomes the item.
            out.push_str(pad);
            out.push_str(item);
            out.push_str(pad);
            out.push_str(&text[close..]);
        } else {
            // Comments inside: keep them after the item.
            out.push_str(pad);
            out.push_str(item);
            out.push_str(&text[open + 1..]);
        }
        return out;
    };

    // Separator: the whitespace that precedes the last entry.
    let lead: &str = {
        let before = &text[..last.start];
        let trimmed = before.trim_end_matches(is_ws);
        &before[trimmed.len()..]
    };
    let sep = match lead.rfind('\n') {
        Some(nl) if nl > 0 && lead.as_bytes()[nl - 1] == b'\r' => lead[nl - 1..].to_string(),
        Some(nl) => lead[nl..].to_string(),
        // A lone entry's lead is padding after the bracket, not a separator.
        None if items.len() == 1 => inline_sep.to_string(),
        None if lead.is_empty() => String::new(),
        None => " ".to_string(),
    };
    let multiline = sep.contains('\n');

    // Keep the trailing-comma style of the container.
    let comma = trailing_comma(text, last.end, close);
    let anchor = comma.map_or(last.end, |c| c + 1);
    // In a one-entry-per-line layout, a comment on the last entry's line
    // stays with that entry: insert at the end of the line.
    let at = if multiline {
        end_of_line_after_comments(text, anchor, close).unwrap_or(anchor)
    } else {
        anchor
    };

    if comma.is_none() {
        out.push_str(&text[..last.end]);
        out.push(',');
        out.push_str(&text[last.end..at]);
    } else {
        out.push_str(&text[..at]);
    }
    out.push_str(&sep);
    out.push_str(item);
    if comma.is_some() {
        out.push(',');
    }
    out.push_str(&text[at..]);
    out
}

/// From `from`, skip spaces, tabs and comments on the same line; the offset of
/// the line break that ends it (before `to`), or `None` when something else
/// follows on that line.
pub(super) fn end_of_line_after_comments(text: &str, from: usize, to: usize) -> Option<usize> {
    let mut p = Parser { text, pos: from };
    loop {
        match p.peek() {
            Some('\r' | '\n') if p.pos < to => return Some(p.pos),
            Some(c) if is_ws(c) && !is_line_terminator(c) => {
                p.bump();
            }
            Some('/') if text[p.pos..].starts_with("//") => {
                while p.peek().is_some_and(|c| !is_line_terminator(c)) {
                    p.bump();
                }
            }
            Some('/') if text[p.pos..].starts_with("/*") => {
                let end = text[p.pos + 2..].find("*/")? + p.pos + 4;
                if text[p.pos..end].contains(is_line_terminator) {
                    return None;
                }
                p.pos = end;
            }
            _ => return None,
        }
    }
}

/// Offset of a comma between `from` and `to` that is not inside a comment.
pub(super) fn trailing_comma(text: &str, from: usize, to: usize) -> Option<usize> {
    let mut p = Parser { text, pos: from };
    p.skip_trivia().ok()?;
    (p.pos < to && text[p.pos..].starts_with(',')).then_some(p.pos)
}
