//! `template.yaml` read as data, so tests can hold the deployment to what the
//! code relies on (each function's environment, its queue, the alarms and the
//! dashboard naming the metrics the code writes). One reader for every test
//! that looks at the template.
//!
//! CloudFormation's short tags (`!Ref X`, `!GetAtt X.Arn`, `!Sub …`, `!If …`)
//! stay tagged values; [`ref_target`], [`get_att`] and [`sub_text`] read them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// The parsed template.
pub struct Template {
    root: Value,
}

/// Where the template is: the repository root.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

impl Template {
    pub fn load() -> Self {
        let path = template_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        Self { root }
    }

    /// A top-level section (`Parameters`, `Globals`, `Resources`, `Outputs`…).
    pub fn section(&self, name: &str) -> &Value {
        self.root
            .get(name)
            .unwrap_or_else(|| panic!("template.yaml has no {name} section"))
    }

    /// One resource by logical id.
    pub fn resource(&self, logical_id: &str) -> &Value {
        self.section("Resources")
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml has no resource {logical_id}"))
    }

    /// Every resource of one `Type`, with its logical id, in template order.
    pub fn resources_of_type(&self, resource_type: &str) -> Vec<(String, &Value)> {
        self.section("Resources")
            .as_mapping()
            .expect("Resources is a mapping")
            .iter()
            .filter(|(_, resource)| resource["Type"].as_str() == Some(resource_type))
            .map(|(id, resource)| (id.as_str().unwrap_or_default().to_string(), resource))
            .collect()
    }

    /// The environment one function gets: `Globals` then its own
    /// `Environment` (its own names win, as in SAM).
    pub fn environment(&self, function_id: &str) -> BTreeMap<String, Value> {
        let mut env = BTreeMap::new();
        let global = &self.section("Globals")["Function"]["Environment"]["Variables"];
        let own = &self.resource(function_id)["Properties"]["Environment"]["Variables"];
        assert!(
            own.is_mapping(),
            "{function_id} has no Environment of its own"
        );
        for variables in [global, own] {
            for (name, value) in variables.as_mapping().into_iter().flatten() {
                env.insert(name.as_str().unwrap_or_default().to_string(), value.clone());
            }
        }
        env
    }
}

fn tagged<'a>(value: &'a Value, tag: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag == tag => Some(&tagged.value),
        _ => None,
    }
}

/// `!Ref X` → `X`.
pub fn ref_target(value: &Value) -> Option<&str> {
    tagged(value, "Ref")?.as_str()
}

/// `!GetAtt X.Attr` → `(X, Attr)`.
pub fn get_att(value: &Value) -> Option<(&str, &str)> {
    tagged(value, "GetAtt")?.as_str()?.split_once('.')
}

/// The text of `!Sub text`.
pub fn sub_text(value: &Value) -> Option<&str> {
    tagged(value, "Sub")?.as_str()
}

/// `!If [condition, then, else]` → its three parts.
pub fn if_parts(value: &Value) -> Option<(&str, &Value, &Value)> {
    let parts = tagged(value, "If")?.as_sequence()?;
    match parts.as_slice() {
        [condition, then, otherwise] => Some((condition.as_str()?, then, otherwise)),
        _ => None,
    }
}
