//! Reading variables out of a POSIX `sh` env file (the kind a launcher
//! sources, e.g. NemoClaw's `/tmp/nemoclaw-proxy-env.sh`) without running it,
//! and checking `NODE_OPTIONS` preloads token by token.
//!
//! Only straight-line assignments are understood: `NAME=value`,
//! `export NAME=value`, `NAME=...; export NAME`, `unset NAME`, with single and
//! double quotes, backslashes, and `$NAME` / `${NAME}` / `${NAME:-}` /
//! `${NAME:+word}` references to the variable itself (appending). Anything
//! else that touches the variable (conditionals, command substitution, other
//! variables) makes the result [`ShellValue::Uncertain`]: a caller that needs
//! a guarantee must then treat the file as not providing it.
//!
//! Why hand-written rather than a shell parser or `shlex`: the answer is a
//! security judgement, not a parse. The guards link must never claim that an
//! env file wires a guard when sourcing it might not, so anything this
//! reader cannot follow with certainty has to come out as "uncertain" (and
//! the link unhealthy). A general parser accepts far more of `sh` than can
//! be judged statically and would have to be second-guessed construct by
//! construct; a word splitter such as `shlex` has no notion of "this line
//! may or may not run".

/// What the file leaves in a variable, as far as a static reading can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellValue {
    /// Never assigned (or unset at the end).
    Unset,
    /// The final value.
    Value(String),
    /// The file does something this reader does not follow; the line is
    /// given for evidence.
    Uncertain(String),
}

/// The value `name` has after sourcing `script` with `name` initially unset.
pub fn variable(script: &str, name: &str) -> ShellValue {
    let mut value: Option<String> = None;
    // Inside if/case/loops/braces an assignment may or may not run.
    let mut depth = 0usize;
    // A line this reader could not split (functions, subshells, ...): what
    // follows may depend on it.
    let mut opaque = false;
    for line in logical_lines(script) {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mentioned = mentions(trimmed, name);
        let Some(commands) = split_commands(trimmed) else {
            if mentioned {
                return ShellValue::Uncertain(trimmed.to_string());
            }
            opaque = true;
            continue;
        };
        for mut words in commands {
            while matches!(
                words.first().map(String::as_str),
                Some("then" | "else" | "do" | "elif" | "!")
            ) {
                words.remove(0);
            }
            let Some(first) = words.first() else { continue };
            match first.as_str() {
                // Another file or string run from here can change anything.
                "." | "source" | "eval" => return ShellValue::Uncertain(trimmed.to_string()),
                "if" | "case" | "for" | "while" | "until" | "{" => {
                    depth += 1;
                    if mentions_any(&words, name) {
                        return ShellValue::Uncertain(trimmed.to_string());
                    }
                    continue;
                }
                "fi" | "esac" | "done" | "}" => {
                    depth = depth.saturating_sub(1);
                    continue;
                }
                _ => {}
            }
            if !mentions_any(&words, name) {
                continue;
            }
            if depth > 0 || opaque {
                return ShellValue::Uncertain(trimmed.to_string());
            }
            match apply(&words, name, value.as_deref()) {
                Step::Ignore => {}
                Step::Set(v) => value = v,
                Step::Uncertain => return ShellValue::Uncertain(trimmed.to_string()),
            }
        }
    }
    match value {
        Some(v) => ShellValue::Value(v),
        None => ShellValue::Unset,
    }
}

fn mentions_any(words: &[RawWord], name: &str) -> bool {
    words.iter().any(|w| mentions(w, name))
}

/// Does `word` occur in `line` as a whole identifier?
fn mentions(line: &str, word: &str) -> bool {
    let bytes = line.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    line.match_indices(word).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + word.len()).copied();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Lines with backslash-newline continuations joined.
fn logical_lines(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in script.lines() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(head) = raw.strip_suffix('\\') {
            cur.push_str(head);
            continue;
        }
        cur.push_str(raw);
        out.push(std::mem::take(&mut cur));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A word as written (quotes kept), for later expansion.
type RawWord = String;

/// Split a line into simple commands (at unquoted `;` and `&&`) of raw
/// words. `None` for constructs this reader does not follow: pipes,
/// redirections, `||`, subshells, command substitution, backquotes.
fn split_commands(line: &str) -> Option<Vec<Vec<RawWord>>> {
    let mut commands = Vec::new();
    let mut words: Vec<RawWord> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                word.push(c);
                loop {
                    let c = chars.next()?;
                    word.push(c);
                    if c == '\'' {
                        break;
                    }
                }
            }
            '"' => {
                in_word = true;
                word.push(c);
                loop {
                    let c = chars.next()?;
                    word.push(c);
                    match c {
                        '\\' => word.push(chars.next()?),
                        '`' => return None,
                        '$' if chars.peek() == Some(&'(') => return None,
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(c);
                word.push(chars.next()?);
            }
            '$' if chars.peek() == Some(&'(') => return None,
            '$' if chars.peek() == Some(&'{') => {
                in_word = true;
                word.push(c);
                for c in chars.by_ref() {
                    word.push(c);
                    if c == '}' {
                        break;
                    }
                }
                if !word.ends_with('}') {
                    return None;
                }
            }
            '`' | '|' | '<' | '>' | '(' | ')' => return None,
            '#' if !in_word => break,
            ';' | '&' => {
                if c == '&' && chars.next() != Some('&') {
                    return None;
                }
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    Some(commands)
}

enum Step {
    Ignore,
    Set(Option<String>),
    Uncertain,
}

/// Effect of one simple command on `name`.
fn apply(words: &[RawWord], name: &str, current: Option<&str>) -> Step {
    let assigns_prefix = format!("{name}=");
    let (first, rest) = words.split_first().expect("commands are non-empty");
    match first.as_str() {
        "export" | "readonly" | "declare" | "typeset" | "local" => {
            let mut step = Step::Ignore;
            for w in rest {
                if w.starts_with('-') {
                    continue;
                }
                if let Some(raw) = w.strip_prefix(&assigns_prefix) {
                    step = match expand(raw, name, current) {
                        Some(v) => Step::Set(Some(v)),
                        None => Step::Uncertain,
                    };
                } else if w != name && mentions(w, name) {
                    return Step::Uncertain;
                }
            }
            step
        }
        "unset" => {
            if rest.iter().any(|w| w == name) {
                Step::Set(None)
            } else {
                Step::Ignore
            }
        }
        _ => {
            // Leading assignments; with a command after them they only apply
            // to that command.
            let mut new = None;
            let mut idx = 0;
            for w in words {
                let Some((var, raw)) = w.split_once('=') else {
                    break;
                };
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                if var == name {
                    new = Some(raw.to_string());
                }
                idx += 1;
            }
            if idx == 0 {
                // A command that mentions the variable (e.g. `[ -n "$NAME" ]`)
                // without assigning it: harmless only for reading commands.
                return match first.as_str() {
                    "echo" | "printf" | ":" | "true" | "[" | "test" => Step::Ignore,
                    _ => Step::Uncertain,
                };
            }
            if idx < words.len() {
                return Step::Ignore;
            }
            match new {
                Some(raw) => match expand(&raw, name, current) {
                    Some(v) => Step::Set(Some(v)),
                    None => Step::Uncertain,
                },
                None => Step::Ignore,
            }
        }
    }
}

/// Expand a raw assignment value. Only references to `name` itself are
/// followed; `None` for any other expansion.
fn expand(raw: &str, name: &str, current: Option<&str>) -> Option<String> {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    let mut in_double = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' if !in_double => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => in_double = !in_double,
            '\\' => {
                let n = chars.next()?;
                if in_double && !matches!(n, '$' | '`' | '"' | '\\') {
                    out.push('\\');
                }
                out.push(n);
            }
            '$' => {
                let reference = if chars.peek() == Some(&'{') {
                    chars.next();
                    let mut inner = String::new();
                    let mut depth = 1;
                    for c in chars.by_ref() {
                        match c {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        inner.push(c);
                    }
                    inner
                } else {
                    let mut ident = String::new();
                    while let Some(&c) = chars.peek() {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            ident.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    if ident.is_empty() {
                        out.push('$');
                        continue;
                    }
                    ident
                };
                out.push_str(&expand_reference(&reference, name, current)?);
            }
            c => out.push(c),
        }
    }
    (!in_double).then_some(out)
}

/// `NAME`, `NAME:-`, `NAME-`, `NAME:+word`, `NAME+word` for the tracked name.
fn expand_reference(reference: &str, name: &str, current: Option<&str>) -> Option<String> {
    let rest = reference.strip_prefix(name)?;
    let cur = current.unwrap_or("");
    match rest {
        "" | ":-" | "-" => Some(cur.to_string()),
        _ => {
            if let Some(word) = rest.strip_prefix(":+") {
                if cur.is_empty() {
                    Some(String::new())
                } else {
                    expand(word, name, current)
                }
            } else if let Some(word) = rest.strip_prefix('+') {
                if current.is_none() {
                    Some(String::new())
                } else {
                    expand(word, name, current)
                }
            } else {
                None
            }
        }
    }
}

/// Files preloaded by a `NODE_OPTIONS` value: the argument of every
/// `--require X`, `--require=X`, `-r X` token, exactly as written.
pub fn node_requires(node_options: &str) -> Vec<String> {
    let tokens: Vec<&str> = node_options.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        if (t == "--require" || t == "-r") && i + 1 < tokens.len() {
            out.push(unquote(tokens[i + 1]).to_string());
            i += 2;
            continue;
        }
        if let Some(path) = t.strip_prefix("--require=") {
            out.push(unquote(path).to_string());
        }
        i += 1;
    }
    out
}

/// Node accepts double-quoted values inside NODE_OPTIONS.
fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// A `NODE_OPTIONS` value that preloads exactly `preloads`, in order.
pub fn node_options_for(preloads: &[String]) -> String {
    preloads
        .iter()
        .map(|p| format!("--require {p}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quote `s` for a POSIX shell (single quotes).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGED: &str = "# Packaged source\nexport HOME=/sandbox\nexport OPENCLAW_CONFIG_PATH=/sandbox/.openclaw/openclaw.json\n\
export NODE_OPTIONS=\"--require /tmp/nemoclaw-sandbox-safety-net.js --require /tmp/nemoclaw-ciao-network-guard.js\"\n";

    fn value(script: &str) -> ShellValue {
        variable(script, "NODE_OPTIONS")
    }

    #[test]
    fn packaged_env_file_yields_both_guards() {
        let ShellValue::Value(v) = value(PACKAGED) else {
            panic!()
        };
        assert_eq!(
            node_requires(&v),
            vec![
                "/tmp/nemoclaw-sandbox-safety-net.js",
                "/tmp/nemoclaw-ciao-network-guard.js"
            ]
        );
        assert_eq!(
            variable(PACKAGED, "HOME"),
            ShellValue::Value("/sandbox".into())
        );
    }

    #[test]
    fn appending_assignments_accumulate() {
        let script = "NODE_OPTIONS='--require /a.js'\nexport NODE_OPTIONS=\"${NODE_OPTIONS:+$NODE_OPTIONS }--require /b.js\"\n\
NODE_OPTIONS=\"$NODE_OPTIONS -r /c.js\"; export NODE_OPTIONS\n";
        let ShellValue::Value(v) = value(script) else {
            panic!("{:?}", value(script))
        };
        assert_eq!(node_requires(&v), vec!["/a.js", "/b.js", "/c.js"]);
    }

    #[test]
    fn later_plain_assignment_replaces_earlier_value() {
        let script = "export NODE_OPTIONS=\"--require /a.js\"\nexport NODE_OPTIONS=\"--max-old-space-size=512\"\n";
        let ShellValue::Value(v) = value(script) else {
            panic!()
        };
        assert!(node_requires(&v).is_empty());
    }

    #[test]
    fn unset_clears_and_missing_is_unset() {
        assert_eq!(
            value("export NODE_OPTIONS='-r /a.js'\nunset NODE_OPTIONS\n"),
            ShellValue::Unset
        );
        assert_eq!(value("export HOME=/x\n"), ShellValue::Unset);
        assert_eq!(value(""), ShellValue::Unset);
    }

    #[test]
    fn conditional_or_foreign_expansion_is_uncertain() {
        assert!(matches!(
            value("if true; then export NODE_OPTIONS='-r /a.js'; fi\n"),
            ShellValue::Uncertain(_)
        ));
        assert!(matches!(
            value("if [ -n \"$X\" ]; then\n  export NODE_OPTIONS='-r /a.js'\nfi\n"),
            ShellValue::Uncertain(_)
        ));
        assert!(matches!(
            value("f() {\n  NODE_OPTIONS=x\n}\n"),
            ShellValue::Uncertain(_)
        ));
        // A finished block before the assignment is fine.
        assert_eq!(
            value("if true; then\n  X=1\nfi\nexport NODE_OPTIONS=y\n"),
            ShellValue::Value("y".into())
        );
        assert!(matches!(
            value("export NODE_OPTIONS=\"$EXTRA --require /a.js\"\n"),
            ShellValue::Uncertain(_)
        ));
        assert!(matches!(
            value("export NODE_OPTIONS=$(cat /x)\n"),
            ShellValue::Uncertain(_)
        ));
        assert!(matches!(
            value("export NODE_OPTIONS=\"unterminated\n"),
            ShellValue::Uncertain(_)
        ));
        assert!(matches!(
            value(". /other.sh; NODE_OPTIONS=x\n"),
            ShellValue::Uncertain(_)
        ));
        assert!(matches!(
            value("export NODE_OPTIONS=x\nsource /etc/other.sh\n"),
            ShellValue::Uncertain(_)
        ));
    }

    #[test]
    fn comments_and_other_variables_are_ignored() {
        let script = "# NODE_OPTIONS is set below\nexport HTTP_PROXY=http://proxy:3128 # NODE_OPTIONS here is a comment\n\
export NODE_OPTIONS_EXTRA=1\nexport NODE_OPTIONS=--require\\ /a.js\n";
        let ShellValue::Value(v) = value(script) else {
            panic!("{:?}", value(script))
        };
        assert_eq!(node_requires(&v), vec!["/a.js"]);
    }

    #[test]
    fn require_tokens_match_exactly_not_by_substring() {
        let reqs = node_requires(
            "--require /tmp/nemoclaw-ciao-network-guard.js.bak --require=/x.js -r \"/y.js\" --no-warnings",
        );
        assert_eq!(
            reqs,
            vec!["/tmp/nemoclaw-ciao-network-guard.js.bak", "/x.js", "/y.js"]
        );
        assert!(
            !reqs
                .iter()
                .any(|r| r == "/tmp/nemoclaw-ciao-network-guard.js")
        );
        assert!(node_requires("--require").is_empty());
    }

    #[test]
    fn node_options_for_round_trips() {
        let guards = vec!["/tmp/a.js".to_string(), "/tmp/b.js".to_string()];
        assert_eq!(node_requires(&node_options_for(&guards)), guards);
    }

    #[test]
    fn continuation_lines_and_crlf_are_joined() {
        let script = "export NODE_OPTIONS=\"--require /a.js \\\r\n--require /b.js\"\r\n";
        let ShellValue::Value(v) = value(script) else {
            panic!("{:?}", value(script))
        };
        assert_eq!(node_requires(&v), vec!["/a.js", "/b.js"]);
    }

    #[test]
    fn sh_quote_quotes_only_when_needed() {
        assert_eq!(sh_quote("/tmp/a.js"), "/tmp/a.js");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
