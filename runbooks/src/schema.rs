//! The JSON Schema of runbooks as users write them, generated from the Rust types.
//!
//! `Restore` and `Check` are stored reshaped (see `parse.rs`); their schemas undo that
//! reshaping generically, from the schemas of `AdapterOptions` and `CheckKind`, so a new
//! adapter or check kind shows up here without touching this file.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value};

use crate::model::{AdapterOptions, Check, CheckKind, FLAT_CHECK_KINDS, Restore, Runbook, ScratchSpec};

/// The JSON Schema of runbook files, as printed by `drillbook schema`.
pub fn runbook_schema() -> Value {
    let mut v = schemars::schema_for!(Runbook).to_value();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("$id".into(), "https://drillbook.dev/schema/runbook-v1.json".into());
    }
    v
}

/// `{tag: {options}}` variants of an externally tagged enum: (tag, options schema).
fn variants(g: &mut SchemaGenerator, enum_schema: Schema) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let one_of = enum_schema.get("oneOf").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    for variant in one_of {
        let Some(props) = variant.get("properties").and_then(|p| p.as_object()) else {
            continue;
        };
        for (tag, sub) in props {
            out.push((tag.clone(), resolve(g, sub)));
        }
    }
    out
}

/// Inlines a `$ref` to a definition.
fn resolve(g: &mut SchemaGenerator, schema: &Value) -> Value {
    if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
        let name = r.rsplit('/').next().unwrap_or_default();
        if let Some(def) = g.definitions().get(name) {
            return def.clone();
        }
    }
    schema.clone()
}

fn object(props: Map<String, Value>, required: Vec<String>, description: Option<&Value>) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), "object".into());
    o.insert("properties".into(), Value::Object(props));
    o.insert("required".into(), required.into());
    o.insert("additionalProperties".into(), false.into());
    if let Some(d) = description {
        o.insert("description".into(), d.clone());
    }
    Value::Object(o)
}

fn props_of(v: &Value) -> (Map<String, Value>, Vec<String>) {
    let props = v.get("properties").and_then(|p| p.as_object()).cloned().unwrap_or_default();
    let required = v
        .get("required")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default();
    (props, required)
}

impl JsonSchema for Restore {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Restore".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let enum_schema = AdapterOptions::json_schema(g);
        let scratch = g.subschema_for::<ScratchSpec>().to_value();
        let name = g.subschema_for::<crate::values::Name>().to_value();
        let source = g.subschema_for::<crate::model::Source>().to_value();
        let asset = g.subschema_for::<crate::model::Asset>().to_value();
        let from = json_schema!({
            "type": "string",
            "description": "A file or folder inside the unpacked backup that is this restore's."
        })
        .to_value();
        let one_of: Vec<Value> = variants(g, enum_schema)
            .into_iter()
            .map(|(tag, options)| {
                let (mut props, mut required) = props_of(&options);
                props.insert("adapter".into(), json_schema!({"const": tag}).to_value());
                props.insert("scratch".into(), scratch.clone());
                props.insert("name".into(), name.clone());
                props.insert("source".into(), source.clone());
                props.insert("from".into(), from.clone());
                props.insert("asset".into(), asset.clone());
                required.insert(0, "adapter".into());
                object(props, required, options.get("description"))
            })
            .collect();
        json_schema!({
            "description": "How the backup is restored: `adapter`, `scratch` and the adapter's options.",
            "oneOf": one_of
        })
    }
}

impl JsonSchema for Check {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Check".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let enum_schema = CheckKind::json_schema(g);
        let one_of: Vec<Value> = variants(g, enum_schema)
            .into_iter()
            .map(|(tag, options)| {
                let (mut props, mut required) = if FLAT_CHECK_KINDS.contains(&tag.as_str()) {
                    props_of(&options)
                } else {
                    let mut p = Map::new();
                    p.insert(tag.clone(), options.clone());
                    (p, vec![tag.clone()])
                };
                props.insert("name".into(), json_schema!({"type": "string"}).to_value());
                props.insert(
                    "on".into(),
                    json_schema!({"type": "string", "description": "The restore the check runs on (with `restores:`)."})
                        .to_value(),
                );
                required.insert(0, "name".into());
                object(props, required, options.get("description"))
            })
            .collect();
        json_schema!({
            "description": "One verification: a `name` and exactly one kind key.",
            "oneOf": one_of
        })
    }
}
