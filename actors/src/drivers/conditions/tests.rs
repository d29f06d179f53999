//! Table 10.5, rows C1-C18, run against our re-implementation.

use super::*;
use serde_json::json;

fn cmp(actual: Value, criteria: Value) -> Result<bool, Quirk> {
    // Criteria arrive inside a rule's `match` map, so leaves count as "inside".
    match compile(&json!({ "x": criteria }), false) {
        Criteria::Map(mut m) => compare_all(&actual, &m.remove(0).1),
        _ => unreachable!(),
    }
}

#[test]
fn c1_to_c4_strings_and_lists() {
    assert_eq!(cmp(json!("test value1"), json!("test value1")), Ok(true));
    assert_eq!(cmp(json!("test value1"), json!("test value2")), Ok(false));
    assert_eq!(
        cmp(json!("1test value21"), json!(":regex:test value[1-3]")),
        Ok(true)
    );
    assert_eq!(
        cmp(
            json!("test value8"),
            json!(["wef", ":regex:test value[0-9]"])
        ),
        Ok(true)
    );
    assert_eq!(
        cmp(json!(["dsf", "test value1"]), json!("test value1")),
        Ok(true)
    );
}

#[test]
fn c5_all() {
    let actual = json!(["test 1", "test 2", "test 4"]);
    assert_eq!(
        cmp(actual.clone(), json!([":all:", ":regex:test [1-3]"])),
        Ok(false)
    );
    assert_eq!(
        cmp(actual, json!([":all:", [":regex:test [1-3]", "test 4"]])),
        Ok(true)
    );
}

#[test]
fn c6_to_c9_maps() {
    let a = json!({"key1": "val1", "key2": "val2"});
    assert_eq!(
        cmp(a.clone(), json!({"key1": "val1", "key2": "val0"})),
        Ok(false)
    );
    assert_eq!(
        cmp(a.clone(), json!({"key1": "val1", "key2": "val2"})),
        Ok(true)
    );
    assert_eq!(cmp(a.clone(), json!({":absent:": "key3"})), Ok(true));
    assert_eq!(cmp(a.clone(), json!({":present:": "key3"})), Ok(false));
    assert_eq!(
        cmp(a.clone(), json!({"key1": "val1", "key2!": "val2"})),
        Ok(false)
    );
    assert_eq!(cmp(a.clone(), json!({"key3!": "val3"})), Ok(true));
    assert_eq!(
        cmp(a, json!({"key1": "val1", ":except:": {"key2": "val2"}})),
        Ok(false)
    );
}

#[test]
fn c10_to_c13_types() {
    assert_eq!(cmp(json!({"n": 5}), json!({"n": "5"})), Ok(false));
    assert_eq!(cmp(json!({"n": 5}), json!({"n": 5})), Ok(false));
    assert_eq!(cmp(json!({"k": null}), json!({"k": "x"})), Ok(false));
    assert_eq!(cmp(json!({"k": null}), json!({"k": null})), Ok(true));
    assert_eq!(cmp(json!({"a": "x"}), json!("string")), Ok(false));
    let m = json!({"a": "x", "b": "z"});
    assert_eq!(cmp(m.clone(), json!([{"a": "x"}, {"b": "y"}])), Ok(true));
    assert_eq!(cmp(m.clone(), json!([{"a": "q"}, {"b": "y"}])), Ok(false));
    assert_eq!(cmp(m, json!([])), Ok(true));
}

#[test]
fn c14_c15_library_panics_are_quirks() {
    assert_eq!(cmp(json!([]), json!([])), Err(Quirk::EmptyList));
    assert_eq!(cmp(json!(["a"]), json!([])), Err(Quirk::EmptyList));
    assert_eq!(
        cmp(json!(["a"]), json!([":all:"])),
        Err(Quirk::AllWithoutCriteria)
    );
    assert_eq!(cmp(json!([]), json!([":all:"])), Ok(true));
    assert_eq!(
        cmp(json!({"a": "x"}), json!({"": "x"})),
        Err(Quirk::EmptyKey)
    );
}

#[test]
fn c16_to_c18() {
    assert_eq!(
        cmp(
            json!({"a": "x", "b": "y"}),
            json!({":present:": ["q", "b"]})
        ),
        Ok(true)
    );
    assert_eq!(
        cmp(json!({"a": "abc"}), json!({"a": ":regex:(("})),
        Ok(false)
    );
    assert_eq!(
        cmp(json!({"a": ":regex:(("}), json!({"a": ":regex:(("})),
        Ok(true)
    );
    assert_eq!(
        cmp(json!({"a": {"b": ["x", "y"]}}), json!({"a": {"b": "y"}})),
        Ok(true)
    );
}

#[test]
fn null_criteria_and_bare_regex() {
    assert_eq!(
        compare_all(&json!(5), &Criteria::compile(&Value::Null)),
        Ok(true)
    );
    // A bare top-level string is never compiled into a regex.
    assert_eq!(
        compare_all(&json!("abc"), &Criteria::compile(&json!(":regex:a"))),
        Ok(false)
    );
    assert_eq!(invalid_patterns(&json!({"a": [":regex:(("]})).len(), 1);
}
