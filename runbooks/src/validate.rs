//! Rules that span fields, run after every field parsed. Pure.

use std::collections::BTreeSet;

use crate::model::{CheckKind, Runbook};
use crate::values::SecretRef;

/// Calls `issue(path, message)` for every rule the runbook breaks.
pub(crate) fn validate(rb: &Runbook, issue: &mut dyn FnMut(&str, String)) {
    if rb.version != 1 {
        issue("version", format!("unsupported version {}; this drillbook reads version 1", rb.version));
    }
    if rb.owner.trim().is_empty() {
        issue("owner", "must name who answers for this asset".into());
    }
    validate_restores(rb, issue);
    if let (Some(step), Some(drill)) = (&rb.timeouts.step, &rb.timeouts.drill)
        && step.get().0 > drill.get().0
    {
        issue("timeouts.step", format!("{} is longer than the drill timeout {}", step.raw(), drill.raw()));
    }
    if let Some(email) = rb.notify.as_ref().and_then(|n| n.email.as_ref())
        && email.to.is_empty()
    {
        issue("notify.email.to", "needs at least one address".into());
    }
    if let Some(hook) = rb.notify.as_ref().and_then(|n| n.webhook.as_ref()) {
        if !(hook.url.starts_with("https://") || hook.url.starts_with("http://")) {
            issue("notify.webhook.url", format!("`{}` is not an http(s) URL", hook.url));
        }
        if let Some(secret) = &hook.secret {
            match crate::SecretRef::find(secret) {
                Ok(Some(_)) => {}
                Ok(None) => issue(
                    "notify.webhook.secret",
                    "must be a secret reference (${env:NAME} or ${file:PATH}), never the secret itself".into(),
                ),
                Err(e) => issue("notify.webhook.secret", e),
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, check) in rb.verify.iter().enumerate() {
        let at = |field: &str| format!("verify[{i}].{}{field}", check.check.name());
        if !names.insert(check.name.as_str()) {
            issue(&format!("verify[{i}].name"), format!("duplicate check name {:?}", check.name));
        }
        match &check.check {
            CheckKind::VectorIntegrity(v) => {
                target(v.table.is_some(), v.collection.is_some(), &at(""), issue);
                sql_columns(v.table.is_some(), &[("column", v.column.is_some())], &at(""), issue);
                named_vector(v.table.is_some(), v.vector.is_some(), &at(".vector"), issue);
                if v.dim == 0 {
                    issue(&at(".dim"), "must be at least 1".into());
                }
                if let (Some(lo), Some(hi)) = (v.min_norm, v.max_norm)
                    && lo > hi
                {
                    issue(&at(".min_norm"), format!("{lo} is above max_norm {hi}"));
                }
            }
            CheckKind::VectorRecall(v) => {
                target(v.table.is_some(), v.collection.is_some(), &at(""), issue);
                sql_columns(
                    v.table.is_some(),
                    &[("column", v.column.is_some()), ("id", v.id.is_some())],
                    &at(""),
                    issue,
                );
                named_vector(v.table.is_some(), v.vector.is_some(), &at(".vector"), issue);
                if v.k == 0 {
                    issue(&at(".k"), "must be at least 1".into());
                }
                if !(0.0..=1.0).contains(&v.min_recall) {
                    issue(&at(".min_recall"), format!("{} is not between 0 and 1", v.min_recall));
                }
            }
            CheckKind::Command(c) => {
                if c.run.is_empty() {
                    issue(&at(".run"), "needs a program and its arguments".into());
                }
                for (name, value) in &c.env {
                    if let Err(e) = SecretRef::find(value) {
                        issue(&at(&format!(".env.{name}")), e);
                    }
                }
            }
            CheckKind::Sql(s) => {
                if s.sql.trim().is_empty() {
                    issue(&format!("verify[{i}].sql"), "must not be empty".into());
                }
            }
            CheckKind::Keys(k) => match (&k.expect, &k.manifest) {
                (Some(_), Some(_)) => issue(&at(""), "name either `expect` or `manifest`, not both".into()),
                (None, None) => issue(&at(""), "needs `expect` (one database or pattern) or `manifest`".into()),
                (None, Some(_)) if k.db.is_some() || k.pattern.is_some() => issue(
                    &at(""),
                    "`db` and `pattern` go with `expect`; a manifest names its own databases and patterns".into(),
                ),
                _ => {}
            },
            CheckKind::Sample(s) => match (s.keys.is_empty(), &s.manifest) {
                (false, Some(_)) => issue(&at(""), "name either `keys` or `manifest`, not both".into()),
                (true, None) => issue(&at(""), "needs `keys` (a list of keys to look at) or `manifest`".into()),
                _ => {
                    for (j, key) in s.keys.iter().enumerate() {
                        if let Some(t) = &key.kind
                            && !REDIS_TYPES.contains(&t.as_str())
                        {
                            issue(
                                &at(&format!(".keys[{j}].type")),
                                format!("unknown type `{t}` (one of: {})", REDIS_TYPES.join(", ")),
                            );
                        }
                    }
                }
            },
            CheckKind::Memory(m) => match (&m.min, &m.max) {
                (None, None) => issue(&at(""), "needs `min`, `max` or both".into()),
                (Some(lo), Some(hi)) if lo.get().0 > hi.get().0 => {
                    issue(&at(".min"), format!("{} is above max {}", lo.raw(), hi.raw()))
                }
                _ => {}
            },
            CheckKind::Collections(c) => match (c.names.is_empty(), &c.manifest) {
                (false, Some(_)) => issue(&at(""), "name either `names` or `manifest`, not both".into()),
                (true, None) => issue(&at(""), "needs `names` (the collections that must exist) or `manifest`".into()),
                _ => {}
            },
            CheckKind::Points(p) => match (&p.expect, &p.manifest) {
                (Some(_), Some(_)) => issue(&at(""), "name either `expect` or `manifest`, not both".into()),
                (None, None) => issue(&at(""), "needs `expect` (a count) or `manifest`".into()),
                (None, Some(_)) if p.filter.is_some() => issue(
                    &at(".filter"),
                    "a manifest holds whole-collection counts; a filtered count needs `expect`".into(),
                ),
                _ => {}
            },
            CheckKind::References(_)
            | CheckKind::SameSet(_)
            | CheckKind::SameCount(_)
            | CheckKind::ConfigMatches(_) => {
                if let CheckKind::ConfigMatches(c) = &check.check {
                    if !relative_inside(&c.config.file) {
                        issue(
                            &at(".config.file"),
                            format!("`{}` must be a relative path inside the restored tree", c.config.file),
                        );
                    }
                    if c.config.key.trim().is_empty() {
                        issue(&at(".config.key"), "must name a dotted key (`embedding.dim`)".into());
                    }
                }
                for (side, set) in check.check.value_sets() {
                    let at = at(&format!(".{side}"));
                    match set.origins().as_slice() {
                        [] => issue(
                            &at,
                            "needs `sql` (a query, one value per row), `files` (a glob), `points` (a collection's \
                             payload field) or `dimension` (a collection's)"
                                .into(),
                        ),
                        [_] => {}
                        several => issue(&at, format!("name only one of `{}`", several.join("`, `"))),
                    }
                    if set.sql.as_ref().is_some_and(|q| q.trim().is_empty()) {
                        issue(&format!("{at}.sql"), "must not be empty".into());
                    }
                    let collection = set.points.as_ref().map(|p| ("points", &p.collection));
                    let collection = collection.or(set.dimension.as_ref().map(|d| ("dimension", &d.collection)));
                    if let Some((key, name)) = collection
                        && name.trim().is_empty()
                    {
                        issue(&format!("{at}.{key}.collection"), "must name a collection".into());
                    }
                    if set.strip_extension.is_some() && set.files.is_none() {
                        issue(&format!("{at}.strip_extension"), "only with `files`".into());
                    }
                }
            }
            CheckKind::MaxSkew(_)
            | CheckKind::SameResults(_)
            | CheckKind::DatasetDigest(_)
            | CheckKind::DocumentsChecksum(_)
            | CheckKind::PayloadSchema(_)
            | CheckKind::PointsChecksum(_)
            | CheckKind::CheckTables(_)
            | CheckKind::RowCounts(_)
            | CheckKind::Schema(_)
            | CheckKind::TableChecksum(_)
            | CheckKind::Files(_)
            | CheckKind::ConfigParse(_) => {}
        }
    }
}

/// `restore` or `restores`, their names and sources, and which restore each check runs on.
fn validate_restores(rb: &Runbook, issue: &mut dyn FnMut(&str, String)) {
    let list = match (&rb.restore, rb.restores.is_empty()) {
        (Some(_), false) => {
            issue("restores", "name either `restore` (one store) or `restores` (several), not both".into());
            return;
        }
        (None, true) => {
            let at = if rb.source.is_some() { "source" } else { "name" };
            issue(at, "missing `restore:` (how the backup is restored) or `restores:` (a list of them)".into());
            return;
        }
        (Some(_), true) => "restore".to_string(),
        (None, false) => "restores".to_string(),
    };
    let at = |i: usize, field: &str| {
        if rb.restore.is_some() { format!("{list}.{field}") } else { format!("{list}[{i}].{field}") }
    };
    let mut names = BTreeSet::new();
    for (i, r) in rb.restores().iter().enumerate() {
        if rb.restore.is_none() && r.name.is_none() {
            issue(&format!("restores[{i}]"), "needs a `name` (what checks give in `on:`)".into());
        }
        if r.name.is_some() && !names.insert(r.name()) {
            issue(&at(i, "name"), format!("duplicate restore name `{}`", r.name()));
        }
        match &r.source {
            Some(src) => validate_source(src, &at(i, "source"), issue),
            None if rb.source.is_none() => issue(
                &at(i, "adapter"),
                "no backup to restore: give this restore a `source:`, or the drill one `source:` for all".into(),
            ),
            None => {}
        }
        if r.asset.is_some() && rb.restore.is_some() {
            issue(
                &at(i, "asset"),
                "the runbook's `asset:` is its only restore's; an asset per restore is for `restores:`".into(),
            );
        }
        if let Some(from) = &r.from
            && (from.trim().is_empty() || !relative_inside(from))
        {
            issue(&at(i, "from"), format!("`{from}` must be a relative path inside the unpacked backup"));
        }
    }
    if let Some(src) = &rb.source {
        if rb.restores().iter().all(|r| r.source.is_some()) {
            issue("source", "no restore reads it: every restore names its own `source`".into());
        }
        validate_source(src, "source", issue);
    }
    if rb.parallel == Some(0) {
        issue("parallel", "must be at least 1 (how many restores run at once)".into());
    }
    let known: Vec<&str> = rb.restores().iter().map(|r| r.name()).collect();
    let unknown = |on: &str| {
        format!(
            "no restore named `{on}`{} (restores: {})",
            crate::issue::hint(on, known.iter().copied()),
            known.join(", ")
        )
    };
    for (i, check) in rb.verify.iter().enumerate() {
        if check.check.is_coherence() {
            let kind = check.check.name();
            if check.on.is_some() {
                issue(
                    &format!("verify[{i}].on"),
                    format!("`{kind}` names the restores it reads itself (`on:` inside each side)"),
                );
            }
            // Each side names its restore: `on:` inside it.
            let mut sides: Vec<(String, &Option<String>, &str)> = check
                .check
                .value_sets()
                .into_iter()
                .map(|(side, set)| (format!("verify[{i}].{kind}.{side}"), &set.on, "these values come from"))
                .collect();
            if let CheckKind::ConfigMatches(c) = &check.check {
                sides.push((format!("verify[{i}].{kind}.config"), &c.config.on, "holds the file"));
            }
            for (at, on, what) in sides {
                match on {
                    Some(on) if !known.contains(&on.as_str()) => issue(&format!("{at}.on"), unknown(on)),
                    None if rb.is_stack() => {
                        issue(&at, format!("say which restore {what}: `on:` one of {}", known.join(", ")))
                    }
                    _ => {}
                }
            }
            if let CheckKind::SameResults(r) = &check.check {
                for (j, on) in r.restores.iter().enumerate() {
                    if !known.contains(&on.as_str()) {
                        issue(&format!("verify[{i}].same_results.restores[{j}]"), unknown(on));
                    }
                }
                if r.restores.len() < 2 {
                    issue(
                        &format!("verify[{i}].same_results.restores"),
                        "names at least two restores to compare".into(),
                    );
                }
                if r.queries.is_empty() || r.queries.iter().any(|q| q.trim().is_empty()) {
                    issue(&format!("verify[{i}].same_results.queries"), "needs one or more non-empty queries".into());
                }
            }
            if let CheckKind::MaxSkew(m) = &check.check {
                for (j, on) in m.restores.iter().enumerate() {
                    if !known.contains(&on.as_str()) {
                        issue(&format!("verify[{i}].max_skew.restores[{j}]"), unknown(on));
                    }
                }
                if !rb.is_stack() {
                    issue(
                        &format!("verify[{i}].max_skew"),
                        "compares the backups of several restores (`restores:`)".into(),
                    );
                }
            }
            continue;
        }
        match &check.on {
            Some(on) if !known.contains(&on.as_str()) => issue(&format!("verify[{i}].on"), unknown(on)),
            None if rb.is_stack() => issue(
                &format!("verify[{i}].name"),
                format!("with several restores, say which one the check runs on: `on:` one of {}", known.join(", ")),
            ),
            _ => {}
        }
    }
}

/// The rules of one `source:` (the drill's or a restore's), `prefix` its path.
fn validate_source(src: &crate::model::Source, prefix: &str, issue: &mut dyn FnMut(&str, String)) {
    let at = |field: &str| format!("{prefix}.{field}");
    match &src.restic {
        None if src.path.trim().is_empty() => {
            issue(&at("path"), "must not be empty (or name a restic repository with `restic:`)".into())
        }
        None => {}
        Some(restic) => validate_restic(src, restic, prefix, issue),
    }
    if src.max_expansion == Some(0) {
        issue(&at("max_expansion"), "must be at least 1 (a multiple of the backup's stored size)".into());
    }
    let rule = src.pick.rule();
    // `pick: lastest` would otherwise be looked for as an object of that name.
    if let crate::model::PickRule::Exact(name) = rule
        && !name.contains('.')
        && let Some(word) = crate::nearest(name, ["latest", "oldest", "random"])
    {
        issue(
            &at("pick"),
            format!(
                "`{name}` is read as the name of one object, did you mean `{word}`? (write the name with its extension)"
            ),
        );
    }
    if let crate::model::PickRule::Exact(name) = rule {
        for (field, given) in [
            ("match", src.pattern.is_some()),
            ("within", src.within.is_some()),
            ("time_format", src.time_format.is_some()),
        ] {
            if given {
                issue(
                    &at(field),
                    format!(
                        "`pick: {name}` names one object; `{field}` is for choosing among several (latest, oldest, random, at)"
                    ),
                );
            }
        }
    }
    if let crate::model::PickRule::At(when) = rule
        && let Err(e) = chrono::DateTime::parse_from_rfc3339(when)
    {
        issue(&at("pick.at"), format!("`{when}` is not an RFC 3339 time such as 2026-11-20T03:00:00Z ({e})"));
    }
    if rule == crate::model::PickRule::Latest && src.within.is_some() {
        issue(
            &at("within"),
            "not with `pick: latest` (the RPO objective bounds its age); use it with oldest, random or at".into(),
        );
    }
    if let Some(f) = &src.time_format
        && !f.contains('%')
    {
        issue(&at("time_format"), format!("`{f}` has no chrono specifier (%Y, %m, %d, %H, ...)"));
    }
}

/// A path that stays inside the tree it is joined to: relative, without `..`.
fn relative_inside(path: &str) -> bool {
    let path = std::path::Path::new(path);
    !path.is_absolute() && !path.components().any(|c| matches!(c, std::path::Component::ParentDir))
}

/// What Redis `TYPE` answers for a key.
const REDIS_TYPES: &[&str] = &["string", "list", "set", "zset", "hash", "stream"];

/// The columns a `table` target needs, and that a `collection` target does not take.
fn sql_columns(table: bool, columns: &[(&str, bool)], at: &str, issue: &mut dyn FnMut(&str, String)) {
    for (name, given) in columns {
        match (table, given) {
            (true, false) => issue(&format!("{at}.{name}"), format!("needed with `table`: the {name} column to read")),
            (false, true) => {
                issue(&format!("{at}.{name}"), format!("only with `table`; a collection's {name} is the store's own"))
            }
            _ => {}
        }
    }
}

/// `vector:` names a vector of a collection; a table's vector is its `column`.
fn named_vector(table: bool, given: bool, at: &str, issue: &mut dyn FnMut(&str, String)) {
    if table && given {
        issue(at, "only with `collection`; a table's vector is its `column`".into());
    }
}

fn target(table: bool, collection: bool, at: &str, issue: &mut dyn FnMut(&str, String)) {
    match (table, collection) {
        (true, true) => issue(at, "name either `table` or `collection`, not both".into()),
        (false, false) => issue(at, "needs `table` (SQL stores) or `collection` (vector stores)".into()),
        _ => {}
    }
}

/// A restic source names its recovery points itself: what a storage profile's object needs
/// (a path, a sidecar, age, a name pattern) has no meaning there.
fn validate_restic(
    src: &crate::model::Source,
    restic: &crate::model::ResticSource,
    prefix: &str,
    issue: &mut dyn FnMut(&str, String),
) {
    let at = |field: &str| format!("{prefix}.{field}");
    if !src.path.is_empty() {
        issue(&at("path"), "not with `restic:`; the path inside the snapshot is `source.restic.path`".into());
    }
    if src.storage != "local" {
        issue(&at("storage"), "not with `restic:`; the repository (`source.restic.repository`) says where".into());
    }
    let not_for_restic = [
        (
            "checksum",
            src.checksum != crate::model::ChecksumMode::None,
            "restic verifies its own data: use `source.restic.verify_repository: 5%`",
        ),
        ("decrypt", src.decrypt.is_some(), "a restic repository is encrypted by restic with its password"),
        ("match", src.pattern.is_some(), "snapshots are chosen by `source.restic.tags`, `host` and `snapshot`"),
        ("time_format", src.time_format.is_some(), "a snapshot's time is restic's own"),
    ];
    for (field, given, why) in not_for_restic {
        if given {
            issue(&at(field), format!("not with `restic:`; {why}"));
        }
    }
    if let crate::model::PickRule::Exact(name) = src.pick.rule() {
        issue(&at("pick"), format!("`{name}`: with `restic:` one snapshot is named by `source.restic.snapshot: <id>`"));
    }
    if restic.snapshot != "latest" {
        if !restic.snapshot.chars().all(|c| c.is_ascii_hexdigit()) || restic.snapshot.len() < 8 {
            issue(
                &at("restic.snapshot"),
                format!("`{}` is neither `latest` nor a snapshot id (8 to 64 hex digits)", restic.snapshot),
            );
        }
        if src.pick.rule() != crate::model::PickRule::Latest || src.within.is_some() {
            issue(
                &at("pick"),
                "`source.restic.snapshot` names one snapshot; `pick`/`within` choose among several".into(),
            );
        }
    }
    if restic.repository.trim().is_empty() {
        issue(&at("restic.repository"), "must not be empty".into());
    }
    if !restic.path.starts_with('/') {
        issue(
            &at("restic.path"),
            format!(
                "`{}` must be absolute inside the snapshot, as `restic ls` shows it (e.g. `/`, `/data`)",
                restic.path
            ),
        );
    }
    for (name, value) in &restic.env {
        if name.is_empty() || name.contains('=') {
            issue(&at("restic.env"), format!("`{name}` is not a variable name"));
        }
        if let Err(e) = SecretRef::find(value) {
            issue(&at(&format!("restic.env.{name}")), e);
        }
    }
}
