//! DynamoDB items in the JSON wire format (`{"S": "…"}`, `{"N": "…"}`).

use serde_json::{json, Map, Value};

pub type Item = Map<String, Value>;

pub fn s(value: impl Into<String>) -> Value {
    json!({ "S": value.into() })
}

pub fn n(value: i64) -> Value {
    json!({ "N": value.to_string() })
}

pub fn b(value: bool) -> Value {
    json!({ "BOOL": value })
}

/// Typed reads of attributes; a missing or mistyped attribute reads as `None`.
pub trait ItemExt {
    fn s(&self, name: &str) -> Option<&str>;
    fn n(&self, name: &str) -> Option<i64>;
    fn bool(&self, name: &str) -> Option<bool>;
}

impl ItemExt for Item {
    fn s(&self, name: &str) -> Option<&str> {
        self.get(name)?.get("S")?.as_str()
    }

    fn n(&self, name: &str) -> Option<i64> {
        self.get(name)?.get("N")?.as_str()?.parse().ok()
    }

    fn bool(&self, name: &str) -> Option<bool> {
        self.get(name)?.get("BOOL")?.as_bool()
    }
}

pub use self::{b as bool_attr, n as num_attr, s as str_attr};
