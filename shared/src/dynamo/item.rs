//! Items as the SDK carries them (`HashMap<String, AttributeValue>`): the
//! few constructors and typed reads the store's record mappings are made of.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub type Item = HashMap<String, AttributeValue>;

pub fn str_attr(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn num_attr(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn bool_attr(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

/// A list of strings (`L` of `S`: order kept, duplicates allowed).
pub fn str_list_attr(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| str_attr(v.as_str())).collect())
}

/// Typed reads of attributes; a missing or mistyped attribute reads as `None`.
pub trait ItemExt {
    fn s(&self, name: &str) -> Option<&str>;
    fn n(&self, name: &str) -> Option<i64>;
    fn bool(&self, name: &str) -> Option<bool>;
    /// The strings of an `L` attribute (other members skipped).
    fn str_list(&self, name: &str) -> Option<Vec<String>>;
}

impl ItemExt for Item {
    fn s(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_s().ok().map(String::as_str)
    }

    fn n(&self, name: &str) -> Option<i64> {
        self.get(name)?.as_n().ok()?.parse().ok()
    }

    fn bool(&self, name: &str) -> Option<bool> {
        self.get(name)?.as_bool().ok().copied()
    }

    fn str_list(&self, name: &str) -> Option<Vec<String>> {
        let list = self.get(name)?.as_l().ok()?;
        Some(list.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_read_back_typed_and_mistyped_ones_read_as_none() {
        let item: Item = [
            ("name".to_string(), str_attr("x")),
            ("count".to_string(), num_attr(-42)),
            ("flag".to_string(), bool_attr(true)),
            (
                "parts".to_string(),
                str_list_attr(&["a".into(), "b".into()]),
            ),
        ]
        .into();
        assert_eq!(item.s("name"), Some("x"));
        assert_eq!(item.n("count"), Some(-42));
        assert_eq!(item.bool("flag"), Some(true));
        assert_eq!(item.str_list("parts"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(item.s("count"), None);
        assert_eq!(item.n("name"), None);
        assert_eq!(item.bool("missing"), None);
        assert_eq!(item.str_list("name"), None);
    }
}
