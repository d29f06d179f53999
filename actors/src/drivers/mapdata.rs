//! `GetMapData` dot paths (spec §7.1): read options and event data by `a.b.0.c`.
//!
//! A path is split on `.` with no escaping; a map step is an exact key, a list step a
//! decimal index `0 <= i < len`; a JSON `null` anywhere counts as not found.

use serde_json::Value;

/// The value at `path`, or `None` when any step is missing or null.
pub fn get<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(step)?,
            Value::Array(a) => a.get(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
        if cur.is_null() {
            return None;
        }
    }
    Some(cur)
}

/// `GetMapDataStr`: ok only for a string.
pub fn get_str<'a>(obj: &'a Value, path: &str) -> Option<&'a str> {
    get(obj, path)?.as_str()
}

/// `GetMapDataInt`: integers, floats (truncated) and numeric strings.
pub fn get_int(obj: &Value, path: &str) -> Option<i64> {
    match get(obj, path)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `GetMapDataBool`: a bool, a number other than 0, or a string `strconv.ParseBool` takes.
pub fn get_bool(obj: &Value, path: &str) -> Option<bool> {
    match get(obj, path)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `CheckMapData`: found and truthy (the bool `true`, or the string `true` in any case).
pub fn check(obj: &Value, path: &str) -> bool {
    match get(obj, path) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn p1_to_p6() {
        let v = json!({"a": {"b": [{"c": "x"}]}});
        assert_eq!(get(&v, "a.b.0.c"), Some(&json!("x"))); // P1
        for p in ["a.b.1.c", "a.b.-1", "a.z"] {
            assert_eq!(get(&v, p), None, "{p}"); // P2
        }
        assert_eq!(get(&json!({"a": null}), "a"), None); // P3
        let v = json!({"t": "TRUE", "u": "yes", "v": 1});
        assert!(check(&v, "t")); // P4
        assert!(!check(&v, "u"));
        assert_eq!(get_bool(&v, "v"), Some(true));
        let v = json!({"f": 2.7, "s": "12", "v": 1});
        assert_eq!(get_int(&v, "f"), Some(2)); // P5
        assert_eq!(get_int(&v, "s"), Some(12));
        assert_eq!(get_str(&v, "v"), None);
        assert_eq!(get(&v, ""), None); // P6
        assert_eq!(get(&json!({"": 1}), ""), Some(&json!(1)));
    }
}
