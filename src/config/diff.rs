//! Which keys differ between two configs, by name only: the SIGHUP warning lists the
//! changes that wait for a restart, and must never print a value (a password hash is
//! one).

use serde_json::Value;

use super::Config;

impl Config {
    /// The keys set differently in `other`, as the file names them (`broker.bind`,
    /// `auth.user[1].password_hash`); a table or entry added or removed as a whole is
    /// named once (`maze`, `topic[2]`).
    pub fn changed_keys(&self, other: &Config) -> Vec<String> {
        let (a, b) = match (serde_json::to_value(self), serde_json::to_value(other)) {
            (Ok(a), Ok(b)) => (a, b),
            // Not expected (every field serializes); the change is still worth a word.
            _ => return vec!["(the config)".to_string()],
        };
        let mut out = Vec::new();
        diff(&a, &b, "", &mut out);
        out
    }
}

fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    let join = |k: &str| match path {
        "" => k.to_string(),
        p => format!("{p}.{k}"),
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let none = Value::Null;
                diff(
                    x.get(k).unwrap_or(&none),
                    y.get(k).unwrap_or(&none),
                    &join(k),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if is_tables(x) && is_tables(y) => {
            for i in 0..x.len().max(y.len()) {
                let at = format!("{path}[{i}]");
                match (x.get(i), y.get(i)) {
                    (Some(p), Some(q)) => diff(p, q, &at, out),
                    _ => out.push(at),
                }
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

/// An array of tables (`[[topic]]`), whose entries are told apart by index, rather
/// than a value (`args = […]`), which changes as a whole.
fn is_tables(v: &[Value]) -> bool {
    v.iter().all(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_changed_keys_without_values() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let user =
            |n: &str, h: &str| format!("[[auth.user]]\nname = \"{n}\"\npassword_hash = \"{h}\"\n");
        let before = format!(
            "[broker]\nbind = \"127.0.0.1:7400\"\n[[topic]]\nname = \"a\"\n[auth]\n{}{}",
            user("a", hash),
            user("b", hash)
        );
        let other = hash.replace("aGFza", "bGFza");
        let after = format!(
            "[broker]\nbind = \"127.0.0.1:7401\"\n[maze]\n[[topic]]\nname = \"a\"\n[[topic]]\nname = \"b\"\n[auth]\n{}{}",
            user("a", hash),
            user("b", &other)
        );
        let a = Config::parse(&before, "a").unwrap();
        let b = Config::parse(&after, "b").unwrap();
        assert_eq!(
            a.changed_keys(&b),
            [
                "auth.user[1].password_hash",
                "broker.bind",
                "maze",
                "topic[1]"
            ]
        );
        assert!(a.changed_keys(&a).is_empty());
    }
}
