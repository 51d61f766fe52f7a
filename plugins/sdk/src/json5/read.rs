//! The reader: a recursive-descent JSON5 parser that records every value's
//! byte span.

use super::{Member, Node, ParseError, Value};

/// Deepest nesting accepted (keeps the recursive reader's stack bounded).
const MAX_DEPTH: usize = 128;

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
pub(super) fn is_ws(c: char) -> bool {
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

pub(super) fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// ECMAScript IdentifierStart, approximated without Unicode tables (they
/// would add kilobytes to every plugin): ASCII letters, `$`, `_`, and any
/// non-ASCII character that is not whitespace.
pub(super) fn is_ident_start(c: char) -> bool {
    c == '$' || c == '_' || c.is_ascii_alphabetic() || (!c.is_ascii() && !is_ws(c))
}

pub(super) fn is_ident_part(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

pub(super) struct Parser<'a> {
    pub(super) text: &'a str,
    pub(super) pos: usize,
}

impl Parser<'_> {
    pub(super) fn error(&self, message: impl Into<String>) -> ParseError {
        error_at(self.text, self.pos, message)
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub(super) fn eat(&mut self, s: &str) -> bool {
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Skip whitespace and comments.
    pub(super) fn skip_trivia(&mut self) -> Result<(), ParseError> {
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

    pub(super) fn value(&mut self, depth: usize) -> Result<Node, ParseError> {
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

    pub(super) fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
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

    pub(super) fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
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

    pub(super) fn hex_digits(&mut self, n: usize) -> Result<u32, ParseError> {
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
    pub(super) fn unicode_escape(&mut self) -> Result<char, ParseError> {
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

    pub(super) fn string(&mut self, quote: char) -> Result<String, ParseError> {
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

    pub(super) fn identifier(&mut self) -> Result<String, ParseError> {
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

    pub(super) fn number(&mut self) -> Result<Value, ParseError> {
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

pub(super) fn error_at(text: &str, offset: usize, message: impl Into<String>) -> ParseError {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
