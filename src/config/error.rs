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

/// The table a header line opens, as a dotted name, and whether it is an array of
/// tables: `[a.b]` gives `("a.b", false)`, `[[a]] # note` gives `("a", true)`.
fn header(line: &str) -> Option<(String, bool)> {
    let t = line.trim();
    let (inner, array) = if let Some(rest) = t.strip_prefix("[[") {
        (rest.split("]]").next()?, true)
    } else {
        (t.strip_prefix('[')?.split(']').next()?, false)
    };
    let name = inner
        .split('.')
        .map(|p| p.trim().trim_matches('"'))
        .collect::<Vec<_>>()
        .join(".");
    Some((name, array))
}

/// The table in force on every line, with the index of each array-of-tables entry in
/// it (`rule[1]`, `driver[0].options`, `auth.user[2]`), as the README promises errors
/// name them. `None` before the first header.
fn tables(text: &str) -> Vec<Option<String>> {
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    // The array entries open now, innermost last: (name, its indexed path).
    let mut open: Vec<(String, String)> = Vec::new();
    let mut current = None;
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some((name, array)) = header(l) {
            // Keep the entries this header is inside of; a header elsewhere closes them.
            open.retain(|(a, _)| name.starts_with(&format!("{a}.")));
            let within = |name: &str| match open.last() {
                Some((a, path)) => format!("{path}{}", &name[a.len()..]),
                None => name.to_string(),
            };
            let path = within(&name);
            current = Some(if array {
                // Entries count per parent entry: `[[a.b]]` restarts in each `[[a]]`.
                let n = counts.entry(path.clone()).or_insert(0);
                let indexed = format!("{path}[{n}]");
                *n += 1;
                open.push((name, indexed.clone()));
                indexed
            } else {
                path
            });
        }
        out.push(current.clone());
    }
    out
}

/// The key written on a `key = value` line.
fn key_on(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[') && !key.starts_with('#')).then_some(key)
}

/// The table in force at `line` (1-based), and the key written on it.
fn key_at(text: &str, line: usize) -> Option<String> {
    let table = tables(text).get(line.checked_sub(1)?)?.clone();
    let here = text.lines().nth(line - 1)?;
    if header(here).is_some() {
        return table;
    }
    Some(match (table, key_on(here)) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (None, Some(k)) => k.to_string(),
        (t, None) => t?,
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
    at_table(text, file, section, key, message)
}

/// An error about `key` of the table `path` (`broker`, `rule[0]`), placed at the line
/// that sets it, or else at the table's header.
pub(super) fn at_table(
    text: &str,
    file: &str,
    path: &str,
    key: &str,
    message: String,
) -> ConfigError {
    let mut found = None;
    for ((i, l), table) in text.lines().enumerate().zip(tables(text)) {
        if table.as_deref() != Some(path) {
            continue;
        }
        if header(l).is_some() {
            found = found.or(Some((i + 1, l.to_string())));
        } else if key_on(l) == Some(key) {
            found = Some((i + 1, l.to_string()));
        }
    }
    // A table's header alone names the table, not the key: only an array entry, whose
    // header is the one place that says which entry it is, is pointed at by it.
    if !path.ends_with(']') {
        found = found.filter(|(_, l)| header(l).is_none());
    }
    let (line, source_line) = match found {
        Some((n, l)) => (Some((n, 1)), Some(l)),
        None => (None, None),
    };
    ConfigError {
        file: file.to_string(),
        line,
        key: Some(format!("{path}.{key}")),
        message,
        source_line,
    }
}
