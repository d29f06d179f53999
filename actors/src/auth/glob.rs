//! Permission patterns: topic globs (`orders`, `events.*`, `logs.>`) and feature globs
//! (`driver:deploy`, `svc:*`).
//!
//! Topic globs split names at `.` into segments, as NATS subjects do:
//! - a literal segment matches itself;
//! - `*` matches exactly one segment (any text without a dot);
//! - `>` may only be the last segment and matches one or more segments: `logs.>`
//!   matches `logs.a` and `logs.a.b`, not `logs`; a bare `>` matches every topic.
//!
//! A segment may not mix a wildcard with other text (`ord*` is refused when the config
//! is read, since a topic name can never contain `*`).
//!
//! Feature globs are `kind:name` (`driver:deploy`, `client:7`, `chat:irc`): the kind
//! before the first `:` is a literal or `*`; the name after it is a literal or `*`,
//! which matches any non-empty name. A pattern without a colon matches that exact
//! feature; a bare `*` or `>` matches every feature.

/// One compiled topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicGlob {
    segments: Vec<Seg>,
    /// Ends in `>`: matches one or more further segments.
    tail: bool,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Any,
    Lit(String),
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GlobError(pub String);

impl TopicGlob {
    pub fn parse(pattern: &str) -> Result<TopicGlob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError("an empty topic pattern matches nothing".into()));
        }
        let parts: Vec<&str> = pattern.split('.').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut tail = false;
        for (i, part) in parts.iter().enumerate() {
            match *part {
                ">" if i + 1 == parts.len() => tail = true,
                ">" => {
                    return Err(GlobError(format!(
                        "`>` may only end a topic pattern, got `{pattern}`"
                    )))
                }
                "*" => segments.push(Seg::Any),
                p if p.contains(['*', '>']) => {
                    return Err(GlobError(format!(
                    "a wildcard must be a whole segment (`*` or `>` between dots), got `{pattern}`"
                )))
                }
                p => segments.push(Seg::Lit(p.to_string())),
            }
        }
        Ok(TopicGlob {
            segments,
            tail,
            text: pattern.to_string(),
        })
    }

    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        for seg in &self.segments {
            match (seg, parts.next()) {
                (_, None) => return false,
                (Seg::Any, Some(_)) => {}
                (Seg::Lit(l), Some(p)) if l == p => {}
                (Seg::Lit(_), Some(_)) => return false,
            }
        }
        if self.tail {
            parts.next().is_some()
        } else {
            parts.next().is_none()
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One compiled feature pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureGlob {
    /// `None`: any kind.
    kind: Option<String>,
    /// `None`: any non-empty name. Without a colon the whole feature is the kind.
    name: Option<String>,
    has_colon: bool,
    everything: bool,
    text: String,
}

impl FeatureGlob {
    pub fn parse(pattern: &str) -> Result<FeatureGlob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError("an empty feature pattern matches nothing".into()));
        }
        let text = pattern.to_string();
        if pattern == "*" || pattern == ">" {
            return Ok(FeatureGlob {
                kind: None,
                name: None,
                has_colon: false,
                everything: true,
                text,
            });
        }
        let whole = |s: &str| -> Result<Option<String>, GlobError> {
            match s {
                "*" => Ok(None),
                s if s.is_empty() || s.contains(['*', '>']) => Err(GlobError(format!(
                    "a feature pattern is `kind:name`, each a literal or `*`, got `{pattern}`"
                ))),
                s => Ok(Some(s.to_string())),
            }
        };
        match pattern.split_once(':') {
            Some((kind, name)) => Ok(FeatureGlob {
                kind: whole(kind)?,
                name: whole(name)?,
                has_colon: true,
                everything: false,
                text,
            }),
            None => Ok(FeatureGlob {
                kind: whole(pattern)?,
                name: None,
                has_colon: false,
                everything: false,
                text,
            }),
        }
    }

    pub fn matches(&self, feature: &str) -> bool {
        if self.everything {
            return true;
        }
        match (feature.split_once(':'), self.has_colon) {
            (Some((kind, name)), true) => {
                self.kind.as_deref().is_none_or(|k| k == kind)
                    && !name.is_empty()
                    && self.name.as_deref().is_none_or(|n| n == name)
            }
            (None, false) => self.kind.as_deref() == Some(feature),
            _ => false,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str, topic: &str) -> bool {
        TopicGlob::parse(p).unwrap().matches(topic)
    }

    fn f(p: &str, feature: &str) -> bool {
        FeatureGlob::parse(p).unwrap().matches(feature)
    }

    #[test]
    fn literal_topics_match_only_themselves() {
        assert!(t("orders", "orders"));
        assert!(!t("orders", "orders2"));
        assert!(!t("orders", "orders.eu"));
        assert!(!t("orders.eu", "orders"));
    }

    #[test]
    fn star_is_one_segment() {
        assert!(t("events.*", "events.click"));
        assert!(!t("events.*", "events"));
        assert!(!t("events.*", "events.click.left"));
        assert!(t("*.log", "app.log"));
        assert!(!t("*.log", "app.err"));
        assert!(t("*", "orders"));
        assert!(!t("*", "a.b"));
    }

    #[test]
    fn gt_is_the_rest_and_at_least_one_segment() {
        assert!(t("logs.>", "logs.a"));
        assert!(t("logs.>", "logs.a.b.c"));
        assert!(!t("logs.>", "logs"));
        assert!(!t("logs.>", "logsx.a"));
        assert!(t(">", "anything.at.all"));
        assert!(t(">", "x"));
        assert!(t("a.*.>", "a.b.c"));
        assert!(!t("a.*.>", "a.b"));
    }

    #[test]
    fn bad_topic_patterns_are_refused() {
        for p in ["", "a.>.b", "ord*", "a.b>", ">x"] {
            assert!(TopicGlob::parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn feature_patterns() {
        assert!(f("driver:deploy", "driver:deploy"));
        assert!(!f("driver:deploy", "driver:deployer"));
        assert!(f("svc:*", "svc:a"));
        assert!(!f("svc:*", "svc:"));
        assert!(!f("svc:*", "svcx:a"));
        assert!(!f("svc:*", "svc"));
        assert!(f("*:irc", "chat:irc"));
        assert!(f("*", "driver:x"));
        assert!(f(">", "broker"));
        assert!(f("broker", "broker"));
        assert!(!f("broker", "broker:x"));
        assert!(!f("driver", "driver:x"));
    }

    #[test]
    fn bad_feature_patterns_are_refused() {
        for p in ["", "svc:de*", "svc:", ":x", "a>b:c"] {
            assert!(FeatureGlob::parse(p).is_err(), "{p}");
        }
    }
}
