//! `CompareAll`: the dipper condition language for event matches (spec §7.2).
//!
//! Criteria are compiled once: `:regex:` strings inside a map or list become RE2-style
//! regexes (an invalid pattern stays a literal string, as in the reference library).
//! Where the library panics (an empty criteria list, `[":all:"]` with nothing after it,
//! an empty key) [`compare_all`] returns [`Quirk`]; callers treat it as no match and
//! log a warning.

use regex::Regex;
use serde_json::Value;

/// Compiled criteria.
#[derive(Debug, Clone)]
pub enum Criteria {
    /// `null`: matches anything.
    Any,
    Str(String),
    Regex(Regex),
    List(Vec<Criteria>),
    Map(Vec<(String, Criteria)>),
    /// Numbers and bools: they never match anything.
    Never,
}

/// Where the reference library would panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Quirk {
    #[error("empty criteria list")]
    EmptyList,
    #[error("`:all:` with no criteria after it")]
    AllWithoutCriteria,
    #[error("empty key in criteria")]
    EmptyKey,
}

impl Criteria {
    /// Compiles JSON criteria; `:regex:` leaves are compiled only inside a map or list.
    pub fn compile(v: &Value) -> Criteria {
        compile(v, false)
    }
}

fn compile(v: &Value, inside: bool) -> Criteria {
    match v {
        Value::Null => Criteria::Any,
        Value::String(s) => match s.strip_prefix(":regex:") {
            Some(p) if inside => Regex::new(p)
                .map(Criteria::Regex)
                .unwrap_or_else(|_| Criteria::Str(s.clone())),
            _ => Criteria::Str(s.clone()),
        },
        Value::Array(a) => Criteria::List(a.iter().map(|x| compile(x, true)).collect()),
        Value::Object(m) => Criteria::Map(
            m.iter()
                .map(|(k, x)| (k.clone(), compile(x, true)))
                .collect(),
        ),
        Value::Bool(_) | Value::Number(_) => Criteria::Never,
    }
}

/// The `:regex:` patterns in `v` that do not compile, for config validation.
pub fn invalid_patterns(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk_patterns(v, &mut out);
    out
}

fn walk_patterns(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => {
            if let Some(p) = s.strip_prefix(":regex:") {
                if let Err(e) = Regex::new(p) {
                    out.push((p.to_string(), e.to_string()));
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk_patterns(x, out)),
        Value::Object(m) => m.values().for_each(|x| walk_patterns(x, out)),
        _ => {}
    }
}

/// Does `actual` satisfy `criteria`?
pub fn compare_all(actual: &Value, criteria: &Criteria) -> Result<bool, Quirk> {
    if matches!(criteria, Criteria::Any) {
        return Ok(true);
    }
    match actual {
        Value::String(s) => compare_str(s, criteria),
        Value::Array(items) => compare_list(items, criteria),
        Value::Object(map) => compare_map(map, criteria),
        _ => Ok(false),
    }
}

fn compare_str(s: &str, criteria: &Criteria) -> Result<bool, Quirk> {
    Ok(match criteria {
        Criteria::Any => true,
        Criteria::Str(c) => s == c,
        Criteria::Regex(r) => r.is_match(s),
        Criteria::List(alts) => {
            for c in alts {
                if compare_str(s, c)? {
                    return Ok(true);
                }
            }
            false
        }
        Criteria::Map(_) | Criteria::Never => false,
    })
}

fn compare_list(items: &[Value], criteria: &Criteria) -> Result<bool, Quirk> {
    if let Criteria::List(c) = criteria {
        match c.first() {
            None => return Err(Quirk::EmptyList),
            Some(Criteria::Str(all)) if all == ":all:" => {
                for item in items {
                    let sub = c.get(1).ok_or(Quirk::AllWithoutCriteria)?;
                    if !compare_all(item, sub)? {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            Some(_) => {}
        }
    }
    for item in items {
        if compare_all(item, criteria)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn compare_map(map: &serde_json::Map<String, Value>, criteria: &Criteria) -> Result<bool, Quirk> {
    match criteria {
        Criteria::List(alts) => {
            if alts.is_empty() {
                return Ok(true);
            }
            for c in alts {
                if compare_map(map, c)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Criteria::Map(keys) => {
            for (key, sub) in keys {
                let pass = match key.as_str() {
                    "" => return Err(Quirk::EmptyKey),
                    ":present:" => compare_all(&key_list(map), sub)?,
                    ":absent:" => !compare_all(&key_list(map), sub)?,
                    ":except:" => !compare_map(map, sub)?,
                    ":auth:" => true,
                    k => match k.strip_suffix('!') {
                        Some(name) => match map.get(name) {
                            None => true,
                            Some(v) => !compare_all(v, sub)?,
                        },
                        None => match map.get(k) {
                            None => false,
                            Some(v) => compare_all(v, sub)?,
                        },
                    },
                };
                if !pass {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Criteria::Any => Ok(true),
        _ => Ok(false),
    }
}

fn key_list(map: &serde_json::Map<String, Value>) -> Value {
    Value::Array(map.keys().map(|k| Value::String(k.clone())).collect())
}

#[cfg(test)]
mod tests;
