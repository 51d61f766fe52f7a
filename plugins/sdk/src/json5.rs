//! A small JSON5 reader that keeps byte spans, and a text patcher that adds a
//! string to an array while keeping every other byte of the document.
//!
//! JSON is a subset of JSON5, so the same reader parses lock files and
//! WebSocket frames. Supported: `//` and `/* */` comments, trailing commas,
//! unquoted (identifier) keys, single-quoted strings, all JSON5 escapes and
//! line continuations, hex numbers, leading/trailing decimal points, explicit
//! `+`, `Infinity` and `NaN`, and the JSON5 whitespace set.
//!
//! The patcher never re-serialises a document: it inserts text at one place
//! and then proves, by parsing the result, that exactly the intended change
//! happened ([`ensure_string_in_array`]).

use std::fmt;
use std::ops::Range;

/// Deepest nesting accepted (keeps the recursive reader's stack bounded).
const MAX_DEPTH: usize = 128;

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

/// Parse a complete JSON5 document (comments and whitespace may surround the
/// value).
pub fn parse(text: &str) -> Result<Node, ParseError> {
    let mut p = Parser { text, pos: 0 };
    p.skip_trivia()?;
    let node = p.value(0)?;
    p.skip_trivia()?;
    if p.pos < text.len() {
        return Err(p.error("unexpected content after the document"));
    }
    Ok(node)
}

/// Is `c` whitespace for JSON5 (ECMAScript WhiteSpace + LineTerminator)?
fn is_ws(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{0B}'
            | '\u{0C}'
            | '\r'
            | ' '
            | '\u{A0}'
            | '\u{FEFF}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// ECMAScript IdentifierStart, approximated without Unicode tables (they
/// would add kilobytes to every plugin): ASCII letters, `$`, `_`, and any
/// non-ASCII character that is not whitespace.
fn is_ident_start(c: char) -> bool {
    c == '$' || c == '_' || c.is_ascii_alphabetic() || (!c.is_ascii() && !is_ws(c))
}

fn is_ident_part(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> ParseError {
        error_at(self.text, self.pos, message)
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Skip whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                Some(c) if is_ws(c) => {
                    self.bump();
                }
                Some('/') if self.text[self.pos..].starts_with("//") => {
                    while let Some(c) = self.peek() {
                        if is_line_terminator(c) {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.text[self.pos..].starts_with("/*") => {
                    let start = self.pos;
                    match self.text[self.pos + 2..].find("*/") {
                        Some(end) => self.pos += 2 + end + 2,
                        None => {
                            return Err(error_at(self.text, start, "unterminated block comment"));
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("document nested too deeply"));
        }
        let start = self.pos;
        let value = match self.peek() {
            None => return Err(self.error("unexpected end of document")),
            Some('{') => self.object(depth)?,
            Some('[') => self.array(depth)?,
            Some(q @ ('"' | '\'')) => Value::String(self.string(q)?),
            Some(c) if c == '-' || c == '+' || c == '.' || c.is_ascii_digit() => self.number()?,
            Some(c) if is_ident_start(c) => {
                let word = self.identifier()?;
                match word.as_str() {
                    "null" => Value::Null,
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "Infinity" | "NaN" => Value::Number(word),
                    _ => {
                        return Err(error_at(
                            self.text,
                            start,
                            format!("unexpected word '{word}'"),
                        ));
                    }
                }
            }
            Some(c) => {
                return Err(self.error(format!("unexpected character '{}'", c.escape_debug())));
            }
        };
        Ok(Node {
            value,
            span: start..self.pos,
        })
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.bump(); // {
        let mut members = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.eat("}") {
                return Ok(Value::Object(members));
            }
            let key_start = self.pos;
            let key = match self.peek() {
                Some(q @ ('"' | '\'')) => self.string(q)?,
                Some(c) if is_ident_start(c) || c == '\\' => self.identifier()?,
                Some(c) => {
                    return Err(self.error(format!("expected a key, found '{}'", c.escape_debug())));
                }
                None => return Err(self.error("unterminated object")),
            };
            let key_span = key_start..self.pos;
            self.skip_trivia()?;
            if !self.eat(":") {
                return Err(self.error("expected ':' after key"));
            }
            self.skip_trivia()?;
            let value = self.value(depth + 1)?;
            members.push(Member {
                key,
                key_span,
                value,
            });
            self.skip_trivia()?;
            if self.eat(",") {
                continue;
            }
            if self.eat("}") {
                return Ok(Value::Object(members));
            }
            return Err(self.error("expected ',' or '}' in object"));
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.bump(); // [
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.eat("]") {
                return Ok(Value::Array(items));
            }
            items.push(self.value(depth + 1)?);
            self.skip_trivia()?;
            if self.eat(",") {
                continue;
            }
            if self.eat("]") {
                return Ok(Value::Array(items));
            }
            return Err(self.error("expected ',' or ']' in array"));
        }
    }

    fn hex_digits(&mut self, n: usize) -> Result<u32, ParseError> {
        let digits = self
            .text
            .get(self.pos..self.pos + n)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(digits) = digits else {
            return Err(self.error(format!("expected {n} hex digits")));
        };
        self.pos += n;
        Ok(u32::from_str_radix(digits, 16).expect("checked hex digits"))
    }

    /// `\uXXXX`, combining a surrogate pair when one follows.
    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let hi = self.hex_digits(4)?;
        if (0xD800..0xDC00).contains(&hi) && self.text[self.pos..].starts_with("\\u") {
            let save = self.pos;
            self.pos += 2;
            let lo = self.hex_digits(4)?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.pos = save;
        }
        // A lone surrogate cannot live in a Rust string.
        Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }

    fn string(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(error_at(self.text, start, "unterminated string"));
            };
            match c {
                c if c == quote => return Ok(out),
                '\n' | '\r' => {
                    return Err(error_at(
                        self.text,
                        self.pos - 1,
                        "line break inside a string",
                    ));
                }
                '\\' => {
                    let Some(e) = self.bump() else {
                        return Err(error_at(self.text, start, "unterminated string"));
                    };
                    match e {
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{C}'),
                        'n' => out.push('\n'),
                        'r' => {
                            out.push('\r');
                        }
                        't' => out.push('\t'),
                        'v' => out.push('\u{B}'),
                        '0' if !self.peek().is_some_and(|d| d.is_ascii_digit()) => out.push('\0'),
                        'x' => {
                            let v = self.hex_digits(2)?;
                            out.push(char::from_u32(v).expect("two hex digits are a char"));
                        }
                        'u' => out.push(self.unicode_escape()?),
                        // Line continuation: the escaped terminator vanishes.
                        '\r' => {
                            self.eat("\n");
                        }
                        '\n' | '\u{2028}' | '\u{2029}' => {}
                        d if d.is_ascii_digit() => {
                            return Err(error_at(
                                self.text,
                                self.pos - 1,
                                "digit escapes are not allowed",
                            ));
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn identifier(&mut self) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            match self.peek() {
                Some('\\') => {
                    self.bump();
                    if !self.eat("u") {
                        return Err(self.error("expected \\u escape in identifier"));
                    }
                    let c = self.unicode_escape()?;
                    let ok = if out.is_empty() {
                        is_ident_start(c)
                    } else {
                        is_ident_part(c)
                    };
                    if !ok {
                        return Err(self.error("escape is not an identifier character"));
                    }
                    out.push(c);
                }
                Some(c)
                    if (out.is_empty() && is_ident_start(c))
                        || (!out.is_empty() && is_ident_part(c)) =>
                {
                    self.bump();
                    out.push(c);
                }
                _ => break,
            }
        }
        if out.is_empty() {
            return Err(self.error("expected an identifier"));
        }
        Ok(out)
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if matches!(self.peek(), Some('+' | '-')) {
            self.bump();
        }
        if self.eat("Infinity") || self.eat("NaN") {
            return Ok(Value::Number(self.text[start..self.pos].to_string()));
        }
        if self.eat("0x") || self.eat("0X") {
            let digits = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.bump();
            }
            if self.pos == digits {
                return Err(self.error("expected hex digits"));
            }
        } else {
            let int_start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
            let mut digits = self.pos - int_start;
            if self.eat(".") {
                let frac = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
                digits += self.pos - frac;
            }
            if digits == 0 {
                return Err(error_at(self.text, start, "malformed number"));
            }
            if matches!(self.peek(), Some('e' | 'E')) {
                self.bump();
                if matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
                let exp = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
                if self.pos == exp {
                    return Err(self.error("malformed exponent"));
                }
            }
        }
        if self.peek().is_some_and(is_ident_part) {
            return Err(self.error("unexpected character after number"));
        }
        Ok(Value::Number(self.text[start..self.pos].to_string()))
    }
}

fn error_at(text: &str, offset: usize, message: impl Into<String>) -> ParseError {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    ParseError {
        offset,
        line,
        column,
        message: message.into(),
    }
}

/// `s` as a double-quoted JSON string (valid JSON5 too).
pub fn quote(s: &str) -> String {
    quote_with(s, '"')
}

fn quote_with(s: &str, q: char) -> String {
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

/// How the document writes keys and strings, so inserted text blends in.
struct Style {
    /// `"`, `'`, or `\0` for unquoted identifier keys.
    key_quote: char,
    quote: char,
    colon: &'static str,
    /// Between entries written on one line: `" "` or `""`.
    sep: &'static str,
}

impl Style {
    fn detect(text: &str, root: &Node) -> Self {
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

    fn key(&self, key: &str) -> String {
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
fn first_inline_separator<'t>(text: &'t str, node: &Node) -> Option<&'t str> {
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

fn first_member(node: &Node) -> Option<&Member> {
    match &node.value {
        Value::Object(members) => members.first(),
        _ => None,
    }
}

fn first_string(node: &Node) -> Option<&Node> {
    match &node.value {
        Value::String(_) => Some(node),
        Value::Array(items) => items.iter().find_map(first_string),
        Value::Object(members) => members.iter().find_map(|m| first_string(&m.value)),
        _ => None,
    }
}

/// Insert `item` as the last entry of the container whose span is `container`
/// (`[...]` or `{...}`) and whose entries cover `items`.
fn insert_last(
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
fn end_of_line_after_comments(text: &str, from: usize, to: usize) -> Option<usize> {
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
fn trailing_comma(text: &str, from: usize, to: usize) -> Option<usize> {
    let mut p = Parser { text, pos: from };
    p.skip_trivia().ok()?;
    (p.pos < to && text[p.pos..].starts_with(',')).then_some(p.pos)
}

/// `new` must equal `old` except that the array at `path` gained `value` at
/// its end (or the members on the path were appended, holding just it).
fn verify_one_string_added(
    old: &Node,
    new: &Node,
    path: &[&str],
    value: &str,
) -> Result<(), String> {
    let (Value::Object(om), Value::Object(nm)) = (&old.value, &new.value) else {
        return Err("expected objects on the path".into());
    };
    let key = path[0];
    let old_idx = om.iter().rposition(|m| m.key == key);
    match old_idx {
        Some(i) => {
            if om.len() != nm.len() {
                return Err(format!("member count changed next to '{key}'"));
            }
            for (j, (a, b)) in om.iter().zip(nm).enumerate() {
                if a.key != b.key {
                    return Err(format!("key '{}' became '{}'", a.key, b.key));
                }
                if j != i && !a.value.same_as(&b.value) {
                    return Err(format!("member '{}' changed", a.key));
                }
            }
            let (a, b) = (&om[i].value, &nm[i].value);
            if path.len() > 1 {
                return verify_one_string_added(a, b, &path[1..], value);
            }
            match (&a.value, &b.value) {
                (Value::Array(x), Value::Array(y)) => {
                    let ok = y.len() == x.len() + 1
                        && x.iter().zip(y).all(|(p, q)| p.same_as(q))
                        && y.last().and_then(Node::as_str) == Some(value);
                    if ok {
                        Ok(())
                    } else {
                        Err(format!("array '{key}' did not gain exactly the new string"))
                    }
                }
                _ => Err(format!("'{key}' is not an array on both sides")),
            }
        }
        None => {
            if nm.len() != om.len() + 1 {
                return Err(format!("expected exactly one new member '{key}'"));
            }
            if !om
                .iter()
                .zip(nm)
                .all(|(a, b)| a.key == b.key && a.value.same_as(&b.value))
            {
                return Err("existing members changed".into());
            }
            let added = nm.last().expect("one more member");
            if added.key != key {
                return Err(format!("new member is '{}', expected '{key}'", added.key));
            }
            let mut node = &added.value;
            for k in &path[1..] {
                match &node.value {
                    Value::Object(m) if m.len() == 1 && m[0].key == *k => node = &m[0].value,
                    _ => return Err(format!("new member '{key}' has the wrong shape")),
                }
            }
            match node.as_array() {
                Some([only]) if only.as_str() == Some(value) => Ok(()),
                _ => Err(format!(
                    "new member '{key}' does not hold exactly the new string"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &[&str] = &["gateway", "controlUi", "allowedOrigins"];
    const ORIGIN: &str = "http://127.0.0.1:18789";

    fn add(text: &str) -> String {
        let p = ensure_string_in_array(text, PATH, ORIGIN).unwrap();
        assert!(p.changed);
        // Idempotent: a second pass changes nothing.
        let again = ensure_string_in_array(&p.text, PATH, ORIGIN).unwrap();
        assert!(!again.changed);
        assert_eq!(again.text, p.text);
        p.text
    }

    #[test]
    fn parses_json5_features() {
        let doc = parse(
            "// lead\n{unquoted: 1, 'single': 'it\\'s', \"dq\": \"a\\u0041\\x42\", hex: 0xFF, lead: .5, trail: 5., \
             plus: +1, inf: -Infinity, nan: NaN, arr: [1, 2,], nested: {a: null, b: true,}, /* block */ }\n",
        )
        .unwrap();
        assert_eq!(doc.get("unquoted").unwrap().as_u64(), Some(1));
        assert_eq!(doc.get("single").unwrap().as_str(), Some("it's"));
        assert_eq!(doc.get("dq").unwrap().as_str(), Some("aAB"));
        assert_eq!(doc.get("hex").unwrap().value, Value::Number("0xFF".into()));
        assert_eq!(doc.get("arr").unwrap().as_array().unwrap().len(), 2);
        assert_eq!(
            doc.get_path(&["nested", "b"]).unwrap().value,
            Value::Bool(true)
        );
    }

    #[test]
    fn line_continuation_and_surrogate_pairs_decode() {
        let doc = parse("{s: 'a\\\nb', e: '\\uD83D\\uDE00', u: '\u{2028}'}").unwrap();
        assert_eq!(doc.get("s").unwrap().as_str(), Some("ab"));
        assert_eq!(doc.get("e").unwrap().as_str(), Some("😀"));
        assert_eq!(doc.get("u").unwrap().as_str(), Some("\u{2028}"));
    }

    #[test]
    fn invalid_documents_are_rejected_with_position() {
        for bad in [
            "{a: 1",
            "{a 1}",
            "[1 2]",
            "{a: 'x\ny'}",
            "{a: 1} x",
            "/* open",
            "{a: 01x}",
            "",
            "{a: .}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        let e = parse("{\n  a: 1,\n  b: ?\n}").unwrap_err();
        assert_eq!((e.line, e.column), (3, 6));
    }

    #[test]
    fn duplicate_keys_last_one_wins() {
        let doc = parse("{a: 1, a: 2}").unwrap();
        assert_eq!(doc.get("a").unwrap().as_u64(), Some(2));
    }

    #[test]
    fn lock_json_with_ownership_token_trailer_parses() {
        let text = "{\n  \"pid\": 42,\n  \"startTime\": 123456\n}\n\t\t\t\t\t\t\t\t \t  \t\t \n";
        let doc = parse(text).unwrap();
        assert_eq!(doc.get("pid").unwrap().as_u64(), Some(42));
    }

    #[test]
    fn origin_added_keeps_comments_and_other_keys() {
        let text = r#"// managed by NemoClaw
{
  gateway: {
    mode: "local", // keep me
    /* the dashboard */
    controlUi: {
      allowedOrigins: [
        "http://localhost:3000", // dev
      ],
      allowInsecureAuth: true,
    },
  },
  telemetry: { enabled: false },
}
"#;
        let out = add(text);
        assert_eq!(
            out,
            r#"// managed by NemoClaw
{
  gateway: {
    mode: "local", // keep me
    /* the dashboard */
    controlUi: {
      allowedOrigins: [
        "http://localhost:3000", // dev
        "http://127.0.0.1:18789",
      ],
      allowInsecureAuth: true,
    },
  },
  telemetry: { enabled: false },
}
"#
        );
    }

    #[test]
    fn origin_appended_to_pretty_json_array_without_trailing_comma() {
        let text = "{\n  \"gateway\": {\n    \"controlUi\": {\n      \"allowedOrigins\": [\n        \"http://a\"\n      ]\n    }\n  }\n}\n";
        assert_eq!(
            add(text),
            "{\n  \"gateway\": {\n    \"controlUi\": {\n      \"allowedOrigins\": [\n        \"http://a\",\n        \"http://127.0.0.1:18789\"\n      ]\n    }\n  }\n}\n"
        );
    }

    #[test]
    fn origin_appended_to_compact_and_spaced_arrays() {
        assert_eq!(
            add(r#"{"gateway":{"controlUi":{"allowedOrigins":["http://a","http://b"]}}}"#),
            r#"{"gateway":{"controlUi":{"allowedOrigins":["http://a","http://b","http://127.0.0.1:18789"]}}}"#
        );
        assert_eq!(
            add(r#"{gateway: {controlUi: {allowedOrigins: [ 'http://a' ]}}}"#),
            r#"{gateway: {controlUi: {allowedOrigins: [ 'http://a', 'http://127.0.0.1:18789' ]}}}"#
        );
    }

    #[test]
    fn origin_added_to_empty_array() {
        assert_eq!(
            add(r#"{"gateway": {"controlUi": {"allowedOrigins": []}}}"#),
            r#"{"gateway": {"controlUi": {"allowedOrigins": ["http://127.0.0.1:18789"]}}}"#
        );
        // A comment inside the empty array survives.
        let out = add("{gateway: {controlUi: {allowedOrigins: [ /* none */ ]}}}");
        assert!(out.contains("/* none */"), "{out}");
    }

    #[test]
    fn missing_allowed_origins_member_is_created_in_existing_control_ui() {
        let text = "{\n  \"gateway\": {\n    \"controlUi\": {\n      \"allowInsecureAuth\": true\n    }\n  }\n}";
        assert_eq!(
            add(text),
            "{\n  \"gateway\": {\n    \"controlUi\": {\n      \"allowInsecureAuth\": true,\n      \"allowedOrigins\": [\"http://127.0.0.1:18789\"]\n    }\n  }\n}"
        );
    }

    #[test]
    fn missing_control_ui_is_created_with_the_documents_key_style() {
        let text = "{\n  gateway: {\n    mode: 'local',\n  },\n}\n";
        assert_eq!(
            add(text),
            "{\n  gateway: {\n    mode: 'local',\n    controlUi: {allowedOrigins: ['http://127.0.0.1:18789']},\n  },\n}\n"
        );
    }

    #[test]
    fn missing_gateway_is_created_at_the_root() {
        assert_eq!(
            add("{\"update\": {\"checkOnStart\": false}}"),
            "{\"update\": {\"checkOnStart\": false}, \"gateway\": {\"controlUi\": {\"allowedOrigins\": [\"http://127.0.0.1:18789\"]}}}"
        );
        assert_eq!(
            add("{}"),
            "{ \"gateway\": {\"controlUi\": {\"allowedOrigins\": [\"http://127.0.0.1:18789\"]}} }"
        );
    }

    #[test]
    fn strings_containing_brackets_and_quotes_do_not_confuse_the_patcher() {
        let text = r#"{"note": "a ] } [ { \" ' // not a comment", "gateway": {"controlUi": {"allowedOrigins": ["http://x/]\"", 'it\'s ]']}}, "tail": "/* no */"}"#;
        let out = add(text);
        let doc = parse(&out).unwrap();
        let arr = doc.get_path(PATH).unwrap().as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert_eq!(arr[0].as_str(), Some("http://x/]\""));
        assert_eq!(arr[1].as_str(), Some("it's ]"));
        assert_eq!(arr[2].as_str(), Some(ORIGIN));
        assert_eq!(
            doc.get("note").unwrap().as_str(),
            Some("a ] } [ { \" ' // not a comment")
        );
        assert!(out.ends_with(r#", "tail": "/* no */"}"#));
    }

    #[test]
    fn line_comment_after_last_origin_stays_on_its_line() {
        let text = "{gateway: {controlUi: {allowedOrigins: [\n  'http://a' // the dev box\n]}}}";
        assert_eq!(
            add(text),
            "{gateway: {controlUi: {allowedOrigins: [\n  'http://a', // the dev box\n  'http://127.0.0.1:18789'\n]}}}"
        );
    }

    #[test]
    fn nested_objects_elsewhere_are_untouched() {
        let text = r#"{"plugins": {"controlUi": {"allowedOrigins": []}}, "gateway": {"controlUi": {"allowedOrigins": ["x"], "nested": {"allowedOrigins": []}}}}"#;
        let out = add(text);
        let doc = parse(&out).unwrap();
        assert_eq!(
            doc.get_path(&["plugins", "controlUi", "allowedOrigins"])
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            doc.get_path(&["gateway", "controlUi", "nested", "allowedOrigins"])
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert_eq!(doc.get_path(PATH).unwrap().as_array().unwrap().len(), 2);
    }

    #[test]
    fn only_the_insertion_differs_from_the_original() {
        for text in [
            "{gateway: {controlUi: {allowedOrigins: ['a', 'b']}}}",
            "// c\n{\n  gateway: { /* x */ controlUi: {}, },\n}\n",
            "{\"gateway\": {}}",
        ] {
            let out = add(text);
            // Removing the inserted bytes gives the original back.
            let prefix = text
                .bytes()
                .zip(out.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            let suffix = text
                .bytes()
                .rev()
                .zip(out.bytes().rev())
                .take_while(|(a, b)| a == b)
                .count();
            assert!(prefix + suffix >= text.len(), "{text:?} -> {out:?}");
        }
    }

    #[test]
    fn origin_already_present_is_not_needed() {
        let text = "{gateway: {controlUi: {allowedOrigins: ['http://127.0.0.1:18789']}}} // x";
        let p = ensure_string_in_array(text, PATH, ORIGIN).unwrap();
        assert!(!p.changed);
        assert_eq!(p.text, text);
    }

    #[test]
    fn duplicate_control_ui_patches_the_effective_last_one() {
        let text =
            "{gateway: {controlUi: {allowedOrigins: []}, controlUi: {allowedOrigins: ['a']}}}";
        let out = add(text);
        assert_eq!(
            out,
            "{gateway: {controlUi: {allowedOrigins: []}, controlUi: {allowedOrigins: ['a', 'http://127.0.0.1:18789']}}}"
        );
    }

    #[test]
    fn allowed_origins_as_string_is_refused_as_schema_invalid() {
        let err = ensure_string_in_array(
            r#"{"gateway": {"controlUi": {"allowedOrigins": "x"}}}"#,
            PATH,
            ORIGIN,
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::WrongType {
                path: "gateway.controlUi.allowedOrigins".into(),
                expected: "array",
                found: "string"
            }
        );
        let err = ensure_string_in_array(r#"{"gateway": null}"#, PATH, ORIGIN).unwrap_err();
        assert!(err.to_string().contains("gateway is a null"), "{err}");
        assert!(matches!(
            ensure_string_in_array("[1]", PATH, ORIGIN),
            Err(PatchError::WrongType { .. })
        ));
    }

    #[test]
    fn unparseable_config_is_refused() {
        assert!(matches!(
            ensure_string_in_array("{gateway: ", PATH, ORIGIN),
            Err(PatchError::Parse(_))
        ));
    }

    #[test]
    fn value_with_special_characters_is_escaped() {
        let p = ensure_string_in_array("{a: []}", &["a"], "q\"uo\\te\n").unwrap();
        assert_eq!(p.text, "{a: [\"q\\\"uo\\\\te\\n\"]}");
        assert_eq!(
            parse(&p.text)
                .unwrap()
                .get("a")
                .unwrap()
                .as_array()
                .unwrap()[0]
                .as_str(),
            Some("q\"uo\\te\n")
        );
    }

    #[test]
    fn crlf_documents_keep_their_line_endings() {
        let text = "{\r\n  \"a\": [\r\n    \"x\"\r\n  ]\r\n}\r\n";
        let p = ensure_string_in_array(text, &["a"], "y").unwrap();
        assert_eq!(
            p.text,
            "{\r\n  \"a\": [\r\n    \"x\",\r\n    \"y\"\r\n  ]\r\n}\r\n"
        );
    }

    #[test]
    fn array_contains_reports_missing_and_wrong_types() {
        let doc = parse("{gateway: {controlUi: {allowedOrigins: ['x']}}}").unwrap();
        assert_eq!(array_contains(&doc, PATH, "x"), Ok(Some(true)));
        assert_eq!(array_contains(&doc, PATH, "y"), Ok(Some(false)));
        let doc = parse("{gateway: {}}").unwrap();
        assert_eq!(array_contains(&doc, PATH, "x"), Ok(None));
        let doc = parse("{gateway: {controlUi: {allowedOrigins: 'x'}}}").unwrap();
        assert!(array_contains(&doc, PATH, "x").is_err());
    }

    #[test]
    fn quote_escapes_json_specials() {
        assert_eq!(quote("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
        assert_eq!(
            parse(&quote("x\u{2028}y")).unwrap().as_str(),
            Some("x\u{2028}y")
        );
    }
}
