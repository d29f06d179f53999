//! Command detection: a prefix (`!bacon nelsk`) or addressing by name
//! (`switchyard: bacon nelsk`); any whitespace after the command word; a bare prefix is
//! not a command. Also the shell-style split of the arguments.

/// A detected command: its word (lower-cased) and the rest of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub command: String,
    pub rest: String,
}

/// Finds a command in `text`, or `None` when the line is not one.
pub fn detect(text: &str, prefix: &str, bot_name: &str) -> Option<Detected> {
    let t = text.trim();
    let body = match t.strip_prefix(prefix).filter(|_| !prefix.is_empty()) {
        // The command word follows the prefix directly: `! bacon` and `!` are not commands.
        Some(b) if b.starts_with(|c: char| !c.is_whitespace()) => b,
        Some(_) => return None,
        None => addressed(t, bot_name)?,
    };
    let mut parts = body.splitn(2, char::is_whitespace);
    let word = parts.next()?.trim();
    if word.is_empty() {
        return None;
    }
    Some(Detected {
        command: word.to_lowercase(),
        rest: parts.next().unwrap_or("").trim().to_string(),
    })
}

/// `name: cmd`, `name, cmd` or `@name cmd` (case-insensitive name).
fn addressed<'a>(t: &'a str, name: &str) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    let t2 = t.strip_prefix('@').unwrap_or(t);
    let head = t2.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let after = &t2[name.len()..];
    let after = if t2.len() != t.len() {
        // `@name cmd`: whitespace (or `:`/`,`) must follow.
        after.strip_prefix([':', ',']).unwrap_or(after)
    } else {
        after.strip_prefix([':', ','])?
    };
    if !after.starts_with(char::is_whitespace) {
        return None;
    }
    let body = after.trim_start();
    (!body.is_empty()).then_some(body)
}

/// Splits like a shell: whitespace separates words, single and double quotes group,
/// a backslash escapes the next character (outside single quotes).
pub fn shell_split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(t: &str) -> Option<(String, String)> {
        detect(t, "!", "switchyard").map(|d| (d.command, d.rest))
    }

    #[test]
    fn prefix_and_addressing() {
        assert_eq!(d("!bacon"), Some(("bacon".into(), "".into())));
        assert_eq!(d("!bacon\tnelsk"), Some(("bacon".into(), "nelsk".into())));
        assert_eq!(
            d("  !BACON   nelsk  now "),
            Some(("bacon".into(), "nelsk  now".into()))
        );
        assert_eq!(
            d("switchyard: bacon nelsk"),
            Some(("bacon".into(), "nelsk".into()))
        );
        assert_eq!(d("Switchyard, help"), Some(("help".into(), "".into())));
        assert_eq!(d("@switchyard bacon"), Some(("bacon".into(), "".into())));
        // The seed's false positives: the word is the command, and it is `notbacon` / `foo`.
        assert_eq!(d("!notbacon").unwrap().0, "notbacon");
        assert_eq!(d("!foo bacon bar").unwrap().0, "foo");
        for not in [
            "!",
            "! bacon",
            "bacon",
            "hello !bacon",
            "switchyard:",
            "switchyardx: bacon",
            "switchyard bacon",
            "",
        ] {
            assert_eq!(d(not), None, "{not:?}");
        }
        assert_eq!(detect("?bacon", "?", "").unwrap().command, "bacon");
        assert_eq!(detect("!bacon", "?", ""), None);
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_split(r#"a "b c" 'd e' f\ g"#),
            ["a", "b c", "d e", "f g"]
        );
        assert_eq!(shell_split("  "), Vec::<String>::new());
        assert_eq!(shell_split(r#""""#), [""]);
        assert_eq!(shell_split(r#"it's"#), ["its"]);
    }
}
