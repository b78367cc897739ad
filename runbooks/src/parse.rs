//! YAML → [`Runbook`] with positions.
//!
//! The YAML is loaded into a tree of marked nodes, then reshaped so that plain serde
//! types can read it without buffering (which would lose positions): `restore.adapter: X`
//! with its options beside it becomes `restore.adapter: {X: {options}}`, and a check
//! `{name, sql, expect}` becomes `{name, check: {sql: {sql, expect}}}`. Moved nodes keep
//! their spans, and every issue's path is computed on the original tree, so messages speak
//! of the file as the user wrote it.

use std::cell::RefCell;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::{LoaderOptions, Node, Span};
use serde::de::DeserializeOwned;

use crate::issue::{Issue, Issues, Pos, hint};
use crate::model::{FLAT_CHECK_KINDS, Runbook};

/// Every check kind, as written in YAML (a test keeps it equal to [`CheckKind`]).
pub const CHECK_KINDS: &[&str] = &[
    "sql",
    "row_counts",
    "schema",
    "table_checksum",
    "vector_integrity",
    "vector_recall",
    "files",
    "config_parse",
    "command",
    "keys",
    "dataset_digest",
    "sample",
    "memory",
    "check_tables",
    "collections",
    "points",
    "documents_checksum",
    "payload_schema",
    "points_checksum",
    "references",
    "same_set",
    "same_count",
    "max_skew",
    "config_matches",
    "same_results",
];

thread_local! {
    /// Bad scalar values found while deserializing (see [`crate::values::Parsed`]).
    static BAD_VALUES: RefCell<Vec<(Pos, String)>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn report_bad_value(pos: Pos, message: &str) {
    BAD_VALUES.with(|b| b.borrow_mut().push((pos, message.to_string())));
}

impl Runbook {
    /// Parses and validates a runbook. `file` is only used in messages.
    /// Returns every issue of the file at once.
    pub fn parse(file: &str, text: &str) -> Result<Runbook, Issues> {
        let mut cx = Cx { file, issues: Vec::new(), original: None };
        let runbook = cx.deserialize::<Runbook>(text, reshape_runbook);
        match runbook {
            Some(rb) if cx.issues.is_empty() => {
                crate::validate::validate(&rb, &mut |path, msg| {
                    let pos = cx.pos_of_path(path);
                    cx.issues.push(Issue { file: file.into(), pos, path: path.into(), message: msg });
                });
                if cx.issues.is_empty() {
                    return Ok(rb);
                }
                Err(cx.finish())
            }
            _ => Err(cx.finish()),
        }
    }
}

/// Parses any YAML document into `T` with the same positioned errors (used for the
/// config file and manifests). No reshaping.
pub fn parse_yaml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, Issues> {
    let mut cx = Cx { file, issues: Vec::new(), original: None };
    match cx.deserialize::<T>(text, |_, _| {}) {
        Some(v) if cx.issues.is_empty() => Ok(v),
        _ => Err(cx.finish()),
    }
}

struct Cx<'a> {
    file: &'a str,
    issues: Vec<Issue>,
    original: Option<Node>,
}

impl Cx<'_> {
    fn issue(&mut self, pos: Pos, message: impl Into<String>) {
        // The first message at a position is the precise one; later ones are its echoes
        // (e.g. serde's "missing field" after reshaping already explained the problem).
        if self.issues.iter().any(|i| i.pos == pos) {
            return;
        }
        let path = self.original.as_ref().map(|n| path_at(n, pos)).unwrap_or_default();
        self.issues.push(Issue { file: self.file.into(), pos, path, message: message.into() });
    }

    fn finish(mut self) -> Issues {
        self.issues.sort_by_key(|i| i.pos);
        self.issues.dedup();
        Issues(self.issues)
    }

    fn pos_of_path(&self, path: &str) -> Pos {
        self.original.as_ref().map(|n| pos_of_path(n, path)).unwrap_or_default()
    }

    fn deserialize<T: DeserializeOwned>(
        &mut self,
        text: &str,
        reshape: impl Fn(&mut Node, &mut dyn FnMut(Pos, String)),
    ) -> Option<T> {
        let options = LoaderOptions::default().error_on_duplicate_keys(true);
        let node = match marked_yaml::parse_yaml_with_options(0, text, options) {
            Ok(n) => n,
            Err(e) => {
                let (pos, msg) = load_error(&e);
                self.issues.push(Issue { file: self.file.into(), pos, path: String::new(), message: msg });
                return None;
            }
        };
        self.original = Some(node.clone());
        let mut shaped = node;
        let mut found = Vec::new();
        reshape(&mut shaped, &mut |pos, msg| found.push((pos, msg)));
        for (pos, msg) in found {
            self.issue(pos, msg);
        }
        // Unknown fields are removed and the parse retried, so one run reports them all.
        for _ in 0..64 {
            BAD_VALUES.with(|b| b.borrow_mut().clear());
            let result = marked_yaml::from_node::<T>(&shaped);
            let bad = BAD_VALUES.with(|b| std::mem::take(&mut *b.borrow_mut()));
            match result {
                Ok(v) => {
                    for (pos, msg) in bad {
                        self.issue(pos, msg);
                    }
                    return Some(v);
                }
                Err(e) => {
                    let pos = e.start_mark().map(|m| Pos::from_marker(&m)).unwrap_or_default();
                    match &*e {
                        marked_yaml::Error::UnknownFieldError(field, expected, _) => {
                            // The reported span is the enclosing entry; point at the key itself.
                            let pos = find_key_below(&shaped, pos, field).unwrap_or(pos);
                            let mut expected: Vec<&str> = expected.iter().copied().filter(|f| *f != "check").collect();
                            let path = self.original.as_ref().map(|n| path_at(n, pos)).unwrap_or_default();
                            let in_restore = (path.starts_with("restore.") || path.starts_with("restores["))
                                && path.matches('.').count() == 1;
                            if in_restore {
                                // Adapter options sit beside the fields every restore has.
                                for common in RESTORE_FIELDS {
                                    if !expected.contains(&common) {
                                        expected.push(common);
                                    }
                                }
                            }
                            let msg = format!(
                                "unknown field{}{}",
                                hint(field, expected.iter().copied()),
                                if expected.is_empty() {
                                    String::new()
                                } else {
                                    format!(" (expected one of: {})", expected.join(", "))
                                }
                            );
                            // Report it, drop it, and look for more.
                            self.issue(pos, msg);
                            if !remove_key_at(&mut shaped, pos) {
                                return None;
                            }
                        }
                        other => {
                            let msg = describe(other);
                            self.issue(pos, msg);
                            return None;
                        }
                    }
                }
            }
        }
        None
    }
}

fn load_error(e: &marked_yaml::LoadError) -> (Pos, String) {
    use marked_yaml::LoadError::*;
    let at = |m: &marked_yaml::Marker| Pos::from_marker(m);
    match e {
        TopLevelMustBeMapping(m) => (at(m), "the top level must be a mapping of fields".into()),
        TopLevelMustBeSequence(m) => (at(m), "the top level must be a list".into()),
        UnexpectedAnchor(m) => (at(m), "YAML anchors and aliases are not supported".into()),
        MappingKeyMustBeScalar(m) => (at(m), "keys must be plain words".into()),
        UnexpectedTag(m) => (at(m), "YAML tags are not supported".into()),
        ScanError(m, err) => (at(m), format!("invalid YAML: {err}")),
        DuplicateKey(inner) => {
            let pos = inner.key.span().start().map(at).unwrap_or_default();
            let prev = inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            (pos, format!("duplicate key `{}` (first defined on line {prev})", inner.key.as_str()))
        }
    }
}

/// Turns serde's messages into ours, with hints for unknown enum words.
fn describe(e: &marked_yaml::Error) -> String {
    let text = match e {
        marked_yaml::Error::NotBoolean(_) => "expected true or false".to_string(),
        marked_yaml::Error::IntegerParseFailure(err, _) => {
            format!("expected a whole number ({err})")
        }
        marked_yaml::Error::FloatParseFailure(err, _) => format!("expected a number ({err})"),
        marked_yaml::Error::UnknownFieldError(f, _, _) => format!("unknown field `{f}`"),
        marked_yaml::Error::Other(msg, _) => msg.clone(),
    };
    // serde: "unknown variant `sqlit`, expected one of `sqlite`, `files`"
    if let Some(rest) = text.strip_prefix("unknown variant `")
        && let Some((word, tail)) = rest.split_once('`')
    {
        let options: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return format!(
            "unknown value `{word}`{} (expected one of: {})",
            hint(word, options.iter().copied()),
            options.join(", ")
        );
    }
    text
}

fn pos_of(span: &Span) -> Pos {
    span.start().map(Pos::from_marker).unwrap_or_default()
}

/// The dotted path of the node (or key) that starts at `pos`.
pub(crate) fn path_at(root: &Node, pos: Pos) -> String {
    fn walk(node: &Node, pos: Pos, path: &mut String) -> bool {
        match node {
            Node::Mapping(m) => {
                for (k, v) in m.iter() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k.as_str());
                    if pos_of(k.span()) == pos || walk(v, pos, path) {
                        return true;
                    }
                    path.truncate(len);
                }
                false
            }
            Node::Sequence(s) => {
                for (i, v) in s.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    if walk(v, pos, path) {
                        return true;
                    }
                    path.truncate(len);
                }
                // An item whose own span matches (e.g. a missing field in an item).
                false
            }
            Node::Scalar(s) => pos_of(s.span()) == pos,
        }
    }
    let mut path = String::new();
    if walk(root, pos, &mut path) {
        return path;
    }
    // A container starting at `pos` (errors about a whole mapping, like a missing field).
    fn walk_containers(node: &Node, pos: Pos, path: &mut String) -> bool {
        if pos_of(node.span()) == pos {
            return true;
        }
        match node {
            Node::Mapping(m) => m.iter().any(|(k, v)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k.as_str());
                let found = walk_containers(v, pos, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Node::Sequence(s) => s.iter().enumerate().any(|(i, v)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk_containers(v, pos, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Node::Scalar(_) => false,
        }
    }
    let mut path = String::new();
    if walk_containers(root, pos, &mut path) { path } else { String::new() }
}

/// The position of a dotted path such as `verify[1].vector_recall.k` in the original tree:
/// the deepest node that exists along it.
pub(crate) fn pos_of_path(root: &Node, path: &str) -> Pos {
    let mut node = root;
    let mut pos = pos_of(root.span());
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            let Some(m) = node.as_mapping() else {
                return pos;
            };
            let Some((k, v)) = m.iter().find(|(k, _)| k.as_str() == key) else {
                return pos;
            };
            pos = pos_of(k.span());
            node = v;
        }
        for idx in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            let Ok(i) = idx.parse::<usize>() else {
                return pos;
            };
            let Some(v) = node.as_sequence().and_then(|s| s.get(i)) else {
                return pos;
            };
            pos = pos_of(v.span());
            node = v;
        }
    }
    pos
}

/// The position of the first key named `field` at or below the node (or entry) at `pos`.
fn find_key_below(root: &Node, pos: Pos, field: &str) -> Option<Pos> {
    fn search(node: &Node, field: &str) -> Option<Pos> {
        match node {
            Node::Mapping(m) => m
                .iter()
                .find(|(k, _)| k.as_str() == field)
                .map(|(k, _)| pos_of(k.span()))
                .or_else(|| m.values().find_map(|v| search(v, field))),
            Node::Sequence(s) => s.iter().find_map(|v| search(v, field)),
            Node::Scalar(_) => None,
        }
    }
    fn anchor(node: &Node, pos: Pos) -> Option<&Node> {
        if pos_of(node.span()) == pos {
            return Some(node);
        }
        match node {
            Node::Mapping(m) => {
                m.iter().find_map(|(k, v)| if pos_of(k.span()) == pos { Some(v) } else { anchor(v, pos) })
            }
            Node::Sequence(s) => s.iter().find_map(|v| anchor(v, pos)),
            Node::Scalar(_) => None,
        }
    }
    anchor(root, pos).and_then(|n| search(n, field))
}

/// Removes the mapping entry whose key starts at `pos`; false when there is none.
fn remove_key_at(node: &mut Node, pos: Pos) -> bool {
    match node {
        Node::Mapping(m) => {
            let hit = m.keys().find(|k| pos_of(k.span()) == pos).cloned();
            if let Some(k) = hit {
                m.remove(&k);
                return true;
            }
            m.values_mut().any(|v| remove_key_at(v, pos))
        }
        Node::Sequence(s) => s.iter_mut().any(|v| remove_key_at(v, pos)),
        Node::Scalar(_) => false,
    }
}

fn key(span: Span, name: &str) -> MarkedScalarNode {
    MarkedScalarNode::new(span, name.to_string())
}

fn reshape_runbook(root: &mut Node, issue: &mut dyn FnMut(Pos, String)) {
    let Some(top) = root.as_mapping_mut() else {
        return;
    };
    if let Some(restore) = top.get_mut("restore") {
        reshape_restore(restore, issue);
    }
    if let Some(Node::Sequence(restores)) = top.get_mut("restores") {
        for restore in restores.iter_mut() {
            reshape_restore(restore, issue);
        }
    }
    if let Some(Node::Sequence(checks)) = top.get_mut("verify") {
        reshape_checks(checks, issue);
    }
}

/// The fields of a restore that are not the adapter's options.
const RESTORE_FIELDS: [&str; 6] = ["adapter", "name", "source", "from", "scratch", "asset"];

/// `{adapter: X, scratch: S, opt: V}` → `{scratch: S, adapter: {X: {opt: V}}}`.
fn reshape_restore(node: &mut Node, issue: &mut dyn FnMut(Pos, String)) {
    let span = *node.span();
    let Some(m) = node.as_mapping_mut() else {
        return;
    };
    let Some(adapter_key) = m.keys().find(|k| k.as_str() == "adapter").cloned() else {
        let adapters = adapter_kinds();
        issue(pos_of(&span), format!("missing field `adapter` (one of: {})", adapters.join(", ")));
        return;
    };
    let Some(Node::Scalar(kind)) = m.remove(&adapter_key) else {
        issue(pos_of(adapter_key.span()), "`adapter` must be a word such as `sqlite`".into());
        return;
    };
    let mut options = MarkedMappingNode::new_empty(span);
    let mut shaped = MarkedMappingNode::new_empty(span);
    for (k, v) in std::mem::take(&mut **m) {
        if RESTORE_FIELDS.contains(&k.as_str()) {
            shaped.insert(k, v);
        } else {
            options.insert(k, v);
        }
    }
    let mut by_kind = MarkedMappingNode::new_empty(*kind.span());
    by_kind.insert(key(*kind.span(), kind.as_str()), Node::Mapping(options));
    shaped.insert(adapter_key, Node::Mapping(by_kind));
    *m = shaped;
}

/// Every `adapter:` word this build knows, from the schema of `AdapterOptions`.
pub fn adapter_kinds() -> Vec<String> {
    // The variant names of `AdapterOptions`, from its schema, so the list cannot drift.
    let schema = schemars::schema_for!(crate::model::AdapterOptions);
    let mut kinds = Vec::new();
    if let Some(one_of) = schema.get("oneOf").and_then(|v| v.as_array()) {
        for v in one_of {
            if let Some(req) = v.get("required").and_then(|r| r.as_array()) {
                for r in req {
                    if let Some(s) = r.as_str() {
                        kinds.push(s.to_string());
                    }
                }
            }
        }
    }
    kinds
}

/// `{name, sql, expect}` → `{name, check: {sql: {sql, expect}}}`;
/// `{name, vector_recall: {...}}` → `{name, check: {vector_recall: {...}}}`.
fn reshape_checks(seq: &mut MarkedSequenceNode, issue: &mut dyn FnMut(Pos, String)) {
    // Items that cannot be reshaped are reported here and dropped, so that serde does not
    // report them again in its own words while the rest of the file is still checked.
    let mut broken = Vec::new();
    for (index, item) in seq.iter_mut().enumerate() {
        let mut issue = |pos, msg| {
            broken.push(index);
            issue(pos, msg)
        };
        let span = *item.span();
        let Some(m) = item.as_mapping_mut() else {
            issue(pos_of(&span), "a check is a mapping with `name` and one kind key".into());
            continue;
        };
        let kinds: Vec<MarkedScalarNode> = m.keys().filter(|k| CHECK_KINDS.contains(&k.as_str())).cloned().collect();
        let kind = match kinds.as_slice() {
            [one] => one.clone(),
            [] => {
                let others: Vec<&MarkedScalarNode> =
                    m.keys().filter(|k| k.as_str() != "name" && k.as_str() != "on").collect();
                match others.first() {
                    Some(k) => issue(
                        pos_of(k.span()),
                        format!(
                            "unknown check kind{} (expected one of: {})",
                            hint(k.as_str(), CHECK_KINDS.iter().copied()),
                            CHECK_KINDS.join(", ")
                        ),
                    ),
                    None => issue(pos_of(&span), format!("missing check kind (one of: {})", CHECK_KINDS.join(", "))),
                }
                continue;
            }
            [_, second, ..] => {
                issue(
                    pos_of(second.span()),
                    format!(
                        "a check has exactly one kind; found {}",
                        kinds.iter().map(|k| format!("`{}`", k.as_str())).collect::<Vec<_>>().join(" and ")
                    ),
                );
                continue;
            }
        };
        let flat = FLAT_CHECK_KINDS.contains(&kind.as_str());
        let mut shaped = MarkedMappingNode::new_empty(span);
        let mut body = MarkedMappingNode::new_empty(*kind.span());
        let mut nested = None;
        for (k, v) in std::mem::take(&mut **m) {
            if k.as_str() == "name" || k.as_str() == "on" {
                shaped.insert(k, v);
            } else if flat {
                body.insert(k, v);
            } else if k == kind {
                nested = Some(v);
            } else {
                issue(
                    pos_of(k.span()),
                    format!("unknown field beside `{}`; its options go under `{}:`", kind.as_str(), kind.as_str()),
                );
            }
        }
        let value = if flat { Node::Mapping(body) } else { nested.unwrap_or(Node::Mapping(body)) };
        let mut check = MarkedMappingNode::new_empty(*kind.span());
        check.insert(key(*kind.span(), kind.as_str()), value);
        shaped.insert(key(*kind.span(), "check"), Node::Mapping(check));
        *m = shaped;
    }
    for index in broken.into_iter().rev() {
        if index < seq.len() {
            seq.remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CheckKind;

    #[test]
    fn check_kinds_match_the_enum() {
        let schema = schemars::schema_for!(CheckKind).to_value();
        let mut from_enum: Vec<String> = schema["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["required"][0].as_str().unwrap().to_string())
            .collect();
        from_enum.sort();
        let mut listed: Vec<String> = CHECK_KINDS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(from_enum, listed);
    }
}
