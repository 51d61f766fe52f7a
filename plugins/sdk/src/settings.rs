//! Typed access to the settings the host resolved for this target.

use crate::Target;

/// The resolved settings of one call. The host guarantees that every key the
/// plugin declared in `describe` is present.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    target: &'a Target,
}

impl<'a> Settings<'a> {
    pub fn new(target: &'a Target) -> Self {
        Self { target }
    }

    /// Raw value; `Err` names the key when the host did not send it.
    pub fn get(&self, key: &str) -> Result<&'a str, String> {
        self.target
            .settings
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.as_str())
            .ok_or_else(|| format!("setting '{key}' missing from target"))
    }

    pub fn port(&self, key: &str) -> Result<u16, String> {
        let raw = self.get(key)?;
        raw.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("setting '{key}' = '{raw}' is not a TCP port"))
    }

    pub fn u32(&self, key: &str) -> Result<u32, String> {
        let raw = self.get(key)?;
        raw.trim()
            .parse::<u32>()
            .map_err(|_| format!("setting '{key}' = '{raw}' is not a number"))
    }

    /// A comma-separated list; empty items are dropped.
    pub fn list(&self, key: &str) -> Result<Vec<String>, String> {
        Ok(split_list(self.get(key)?))
    }

    /// An argv: a JSON array of strings, or words split like a shell does
    /// (whitespace, with '…' and "…" quoting and backslash escapes; no
    /// expansion).
    pub fn argv(&self, key: &str) -> Result<Vec<String>, String> {
        split_argv(self.get(key)?).map_err(|e| format!("setting '{key}': {e}"))
    }

    /// Environment assignments `K=V`, split like [`Settings::argv`].
    pub fn env(&self, key: &str) -> Result<Vec<(String, String)>, String> {
        split_argv(self.get(key)?)
            .and_then(|words| words.into_iter().map(|w| parse_assignment(&w)).collect())
            .map_err(|e| format!("setting '{key}': {e}"))
    }

    pub fn u64(&self, key: &str) -> Result<u64, String> {
        let raw = self.get(key)?;
        raw.trim()
            .parse::<u64>()
            .map_err(|_| format!("setting '{key}' = '{raw}' is not a number"))
    }

    /// A value that must not be empty.
    pub fn required(&self, key: &str) -> Result<&'a str, String> {
        let v = self.get(key)?.trim();
        if v.is_empty() {
            return Err(format!("setting '{key}' must not be empty"));
        }
        Ok(v)
    }

    /// An absolute path (never relative: it is resolved inside the sandbox).
    pub fn path(&self, key: &str) -> Result<&'a str, String> {
        let v = self.required(key)?;
        if !v.starts_with('/') {
            return Err(format!("setting '{key}' = '{v}' is not an absolute path"));
        }
        let trimmed = v.trim_end_matches('/');
        Ok(if trimmed.is_empty() { "/" } else { trimmed })
    }
}

fn parse_assignment(word: &str) -> Result<(String, String), String> {
    match word.split_once('=') {
        Some((k, v))
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("'{word}' is not NAME=VALUE")),
    }
}

/// Split an argv setting: a JSON array of strings, or shell-like words.
pub fn split_argv(raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.trim();
    if raw.starts_with('[') {
        let doc = crate::json5::parse(raw).map_err(|e| e.to_string())?;
        let items = doc.as_array().ok_or("expected an array")?;
        return items
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "array items must be strings".to_string())
            })
            .collect();
    }
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().ok_or("trailing backslash")?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Split a comma-separated setting value, trimming and dropping empties.
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_drops_empty_items_and_trims() {
        assert_eq!(split_list(" a, b ,,c,"), vec!["a", "b", "c"]);
        assert!(split_list("").is_empty());
    }

    #[test]
    fn argv_splits_words_quotes_and_json_arrays() {
        assert_eq!(
            split_argv("openclaw gateway run --port 18789").unwrap(),
            ["openclaw", "gateway", "run", "--port", "18789"]
        );
        assert_eq!(
            split_argv(r#"a 'b c' "d \"e\"" f\ g ''"#).unwrap(),
            ["a", "b c", "d \"e\"", "f g", ""]
        );
        assert_eq!(split_argv(r#"["x y", "z"]"#).unwrap(), ["x y", "z"]);
        assert!(split_argv("'open").is_err());
        assert!(split_argv("[1]").is_err());
        assert!(split_argv("  ").unwrap().is_empty());
    }

    #[test]
    fn env_assignments_parse() {
        let words = split_argv("HERMES_HOME=/sandbox/.hermes 'NO_PROXY=a,b c'").unwrap();
        let env: Result<Vec<_>, _> = words.iter().map(|w| parse_assignment(w)).collect();
        assert_eq!(
            env.unwrap(),
            vec![
                ("HERMES_HOME".into(), "/sandbox/.hermes".into()),
                ("NO_PROXY".into(), "a,b c".into())
            ]
        );
        assert!(parse_assignment("=x").is_err());
        assert!(parse_assignment("A-B=x").is_err());
    }
}
