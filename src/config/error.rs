//! [`ConfigError`]: what was wrong, in which file, on which line, under which key.

use std::fmt;

/// A config that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column, when the problem is at a place in the file.
    pub line: Option<(usize, usize)>,
    /// `section.key`, when known.
    pub key: Option<String>,
    pub message: String,
    /// The offending line, shown under the message.
    pub source_line: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, col)) = self.line {
            write!(f, ":{line}:{col}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let (Some((line, _)), Some(text)) = (self.line, &self.source_line) {
            write!(f, "\n {line:>4} | {text}")?;
        }
        Ok(())
    }
}

/// 1-based line and column of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// The `[section]` in force at `line` (1-based), and the key written on it.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let section = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if here.starts_with('[') {
        return Some(
            here.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let key = here.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() {
        return section;
    }
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

pub(super) fn from_toml(e: &toml::de::Error, text: &str, file: &str) -> ConfigError {
    let (line, key, source_line) = match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            let source_line = text.lines().nth(line - 1).map(str::to_string);
            (Some((line, col)), key_at(text, line), source_line)
        }
        None => (None, None, None),
    };
    ConfigError {
        file: file.to_string(),
        line,
        key,
        message: e.message().trim().to_string(),
        source_line,
    }
}

/// An error about `section.key`, placed at its line when the file sets it.
pub(super) fn at_key(
    text: &str,
    file: &str,
    section: &str,
    key: &str,
    message: String,
) -> ConfigError {
    let mut current = String::new();
    let mut found = None;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        } else if current == section
            && t.split('=').next().map(str::trim) == Some(key)
            && t.contains('=')
        {
            found = Some((i + 1, l.to_string()));
        }
    }
    let (line, source_line) = match found {
        Some((n, l)) => (Some((n, 1)), Some(l)),
        None => (None, None),
    };
    ConfigError {
        file: file.to_string(),
        line,
        key: Some(format!("{section}.{key}")),
        message,
        source_line,
    }
}
