//! Shared by the vector tests: loading `crates/proto/testdata/vectors/*.json` (every file must
//! name its source, section and license) and reading hex fields of a case.

#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use serde_json::Value;

pub(crate) fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/../proto/testdata/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap();
    for field in ["source", "section", "license"] {
        assert!(file.get(field).and_then(Value::as_str).is_some(), "{name}: no {field}");
    }
    let cases = file.get("cases").and_then(Value::as_array).unwrap().clone();
    assert!(!cases.is_empty(), "{name}: no cases");
    cases
}

pub(crate) fn hex(case: &Value, field: &str) -> Vec<u8> {
    let s = case.get(field).and_then(Value::as_str).unwrap_or_else(|| panic!("no {field}"));
    hex::decode(s).unwrap_or_else(|e| panic!("{field}: {e}"))
}

pub(crate) fn name(case: &Value) -> &str {
    case.get("name").and_then(Value::as_str).unwrap_or("?")
}

/// An optional hex field.
pub(crate) fn opt_hex(case: &Value, field: &str) -> Option<Vec<u8>> {
    case.get(field).map(|_| hex(case, field))
}
