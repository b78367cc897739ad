//! `config_parse`: every matching file parses as YAML/JSON/TOML, has the required keys,
//! and validates against a JSON Schema.

use std::path::Path;

use drillbook_runbooks::{ConfigFormat, ConfigParseCheck};
use serde_json::{Value, json};

use crate::checks::files::walk;
use crate::{AdapterError, CheckOutcome, DrillCx, read_input};

pub async fn run(cx: &DrillCx, root: &Path, check: &ConfigParseCheck) -> Result<CheckOutcome, AdapterError> {
    let glob = globset::Glob::new(&check.path.get().0)
        .map_err(|e| AdapterError::Check(format!("bad glob `{}`: {e}", check.path.raw())))?
        .compile_matcher();
    let schema = match &check.schema {
        Some(p) => {
            let text = read_input(cx, p)?;
            let v: Value =
                serde_json::from_str(&text).map_err(|e| AdapterError::Check(format!("schema {p} is not JSON: {e}")))?;
            Some(
                jsonschema::validator_for(&v)
                    .map_err(|e| AdapterError::Check(format!("schema {p} is not a valid JSON Schema: {e}")))?,
            )
        }
        None => None,
    };
    let files: Vec<_> = walk(root)
        .map_err(|e| AdapterError::io(format!("cannot list {}", root.display()), e))?
        .into_iter()
        .filter(|(rel, _)| glob.is_match(rel))
        .collect();
    let mut problems = Vec::new();
    for (rel, path) in &files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{rel}: cannot read: {e}"));
                continue;
            }
        };
        let value = match parse(rel, &text, check.format) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{rel}: {e}"));
                continue;
            }
        };
        for key in &check.require {
            if lookup(&value, key).is_none() {
                problems.push(format!("{rel}: missing required key `{key}`"));
            }
        }
        if let Some(v) = &schema
            && let Some(err) = v.iter_errors(&value).next()
        {
            problems.push(format!("{rel}: does not match the schema at `{}`: {err}", err.instance_path));
        }
    }
    let passed = !files.is_empty() && problems.is_empty();
    let detail = if files.is_empty() {
        format!("no file matches `{}`", check.path.raw())
    } else if passed {
        format!("{} files parse and have the required keys", files.len())
    } else {
        problems.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
    };
    Ok(CheckOutcome {
        passed,
        observed: json!({"files": files.len(), "invalid": problems.len()}),
        expected: json!({"files": ">= 1", "invalid": 0}),
        detail,
    })
}

fn parse(rel: &str, text: &str, format: ConfigFormat) -> Result<Value, String> {
    let format = match format {
        ConfigFormat::Auto => match rel.rsplit('.').next() {
            Some("json") => ConfigFormat::Json,
            Some("toml") => ConfigFormat::Toml,
            Some("yaml" | "yml") => ConfigFormat::Yaml,
            _ => return Err("cannot tell the format from the file name; set `format:`".into()),
        },
        f => f,
    };
    match format {
        ConfigFormat::Json => serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}")),
        ConfigFormat::Toml => toml::from_str::<Value>(text).map_err(|e| format!("invalid TOML: {}", e.message())),
        _ => serde_yaml_ng::from_str::<Value>(text).map_err(|e| format!("invalid YAML: {e}")),
    }
}

/// The value at dotted `key` of the restored config file `file` (relative to `root`, read by
/// its extension), for `config_matches`.
pub fn value_at(root: &Path, file: &str, key: &str) -> Result<Value, AdapterError> {
    let path = crate::inside(root, file)
        .ok_or_else(|| AdapterError::Check(format!("`{file}` is not a path inside the restored tree")))?;
    let meta = std::fs::symlink_metadata(&path)
        .map_err(|e| AdapterError::io(format!("cannot read `{file}` in the restored tree"), e))?;
    if !meta.is_file() {
        return Err(AdapterError::Check(format!("`{file}` in the restored tree is not a regular file")));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| AdapterError::io(format!("cannot read `{file}` in the restored tree"), e))?;
    let value = parse(file, &text, ConfigFormat::Auto).map_err(|e| AdapterError::Check(format!("{file}: {e}")))?;
    lookup(&value, key).cloned().ok_or_else(|| AdapterError::Check(format!("{file} has no key `{key}`")))
}

fn lookup<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}
