//! Data-driven parser tests: each fixture is a runbook and the exact messages it must produce.

use drillbook_runbooks::{CheckKind, Runbook};

const VALID: &str = r#"version: 1
name: rag-embeddings-nightly
description: Restore the RAG embeddings DB and prove semantic search still works.
owner: search-platform
schedule: "30 3 * * *"
timezone: Europe/Berlin
asset:
  name: rag-embeddings
  kind: vector-store
  system: sqlite
  environment: production
  vendor: self-hosted
objectives:
  rto: 20m
  rpo: 26h
source:
  storage: backups
  path: pg/rag/
  pick: latest
  match: "*.tar.zst"
  checksum: sidecar
restore:
  adapter: sqlite
  scratch: local
  file: docs.sqlite
verify:
  - name: documents restored
    sql: select count(*) from documents
    expect: ">= 10000"
  - name: semantic search intact
    vector_recall: { table: chunks, column: embedding, id: id, queries: golden/rag.jsonl, k: 10, min_recall: 0.95 }
  - name: script
    command: { run: [sh, -c, "true"], env: { TOKEN: "${env:TOKEN}" }, timeout: 2m }
timeouts: { step: 15m, drill: 45m }
notify:
  email: { to: [sre@example.com], on: [failure, recovery] }
"#;

/// Replaces `from` (which must occur) in the valid runbook and returns the issues, one per line.
fn issues_after(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "fixture does not contain {from:?}");
    let text = VALID.replacen(from, to, 1);
    match Runbook::parse("rb.yaml", &text) {
        Ok(_) => "ok".into(),
        Err(issues) => issues.to_string(),
    }
}

/// Runs `issues` on each case's input; every case's issues must contain its `want` (`ok` when
/// the runbook must parse). All failing cases are reported at once.
fn expect_cases(cases: &[(&str, &str)], issues: impl Fn(&str) -> String) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(input, want)| {
            let got = issues(input);
            (!got.contains(want)).then(|| format!("{input}\n  want: {want}\n  got:  {got}"))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The issues of a runbook restoring with `adapter`, whose `verify:` is `checks`.
fn checks_issues(adapter: &str, kind: &str, checks: &str) -> String {
    let text = format!(
        "version: 1\nname: r\nowner: o\nasset: {{ name: a, kind: {kind} }}\nsource: {{ path: b/ }}\nrestore: {{ adapter: {adapter} }}\nverify:\n{checks}"
    );
    match Runbook::parse("r.yaml", &text) {
        Ok(_) => "ok".to_string(),
        Err(issues) => issues.to_string(),
    }
}

#[test]
fn the_design_example_parses() {
    let rb = Runbook::parse("rb.yaml", VALID).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.name(), "rag-embeddings-nightly");
    assert_eq!(rb.restores()[0].adapter.kind(), "sqlite");
    assert_eq!(rb.objectives.rto.as_ref().unwrap().get().0.as_secs(), 1200);
    assert_eq!(rb.verify.len(), 3);
    assert!(matches!(rb.verify[0].check, CheckKind::Sql(_)));
    match &rb.verify[1].check {
        CheckKind::VectorRecall(v) => {
            assert_eq!(v.k, 10);
            assert_eq!(v.table.as_deref(), Some("chunks"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rb.timezone().name(), "Europe/Berlin");
}

#[test]
fn errors_name_file_line_column_field_and_hint() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "  scratch: local\n",
            "  scratch: local\n  jbos: 2\n",
            "rb.yaml:25:3: restore.jbos: unknown field (expected one of: file, adapter, name, source, from, scratch, asset)",
        ),
        (
            "  file: docs.sqlite\n",
            "  fiel: docs.sqlite\n",
            "rb.yaml:25:3: restore.fiel: unknown field, did you mean `file`? (expected one of: file, adapter, name, source, from, scratch, asset)",
        ),
        (
            "    expect: \">= 10000\"",
            "    expect: \">== 0\"",
            "rb.yaml:29:13: verify[0].expect: cannot parse \">== 0\": expected one of ==, !=, <, <=, >, >= followed by a value, or `between A and B`",
        ),
        (
            "  rto: 20m",
            "  rto: 20 minutes",
            "rb.yaml:14:8: objectives.rto: cannot parse duration \"20 minutes\": unknown unit \" minutes\", expected one of s, m, h, d",
        ),
        (
            "schedule: \"30 3 * * *\"",
            "schedule: \"30 25 * * *\"",
            "rb.yaml:5:11: schedule: cannot parse schedule \"30 25 * * *\": ",
        ),
        (
            "timezone: Europe/Berlin",
            "timezone: Europe/Berln",
            "rb.yaml:6:11: timezone: unknown time zone \"Europe/Berln\" (expected an IANA name such as Europe/Berlin), did you mean `Europe/Berlin`?",
        ),
        ("owner: search-platform", "ownr: search-platform", "rb.yaml:4:1: ownr: unknown field, did you mean `owner`?"),
        (
            "  adapter: sqlite",
            "  adapter: sqlit",
            "rb.yaml:23:12: restore.adapter: unknown value `sqlit`, did you mean `sqlite`? (expected one of: postgres, sqlite, files, redis, mariadb, chroma, qdrant)",
        ),
        (
            "    sql: select count(*) from documents",
            "    sqll: select count(*) from documents",
            "rb.yaml:28:5: verify[0].sqll: unknown check kind, did you mean `sql`?",
        ),
        (
            "  kind: vector-store",
            "  kind: vector-stor",
            "rb.yaml:9:9: asset.kind: unknown value `vector-stor`, did you mean `vector-store`?",
        ),
        (
            "min_recall: 0.95",
            "min_recall: 1.5",
            "rb.yaml:31:98: verify[1].vector_recall.min_recall: 1.5 is not between 0 and 1",
        ),
        (
            "\"${env:TOKEN}\"",
            "\"${vault:TOKEN}\"",
            "verify[2].command.env.TOKEN: cannot parse secret reference \"${vault:TOKEN}\"",
        ),
        ("version: 1", "version: 2", "rb.yaml:1:1: version: unsupported version 2; this drillbook reads version 1"),
        ("name: rag-embeddings-nightly", "name: Rag_Nightly", "rb.yaml:2:7: name: invalid name \"Rag_Nightly\""),
    ];
    let mut failures = Vec::new();
    for (from, to, want) in cases {
        let got = issues_after(from, to);
        if !got.contains(want) {
            failures.push(format!("replacing {from:?} with {to:?}\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn all_issues_of_a_file_are_reported_at_once() {
    let text = VALID
        .replace("owner: search-platform", "ownr: search-platform\nowner: x")
        .replace("  file: docs.sqlite", "  fiel: docs.sqlite")
        .replace("  rto: 20m", "  rto: 20x")
        .replace("\">= 10000\"", "\">== 1\"");
    let issues = Runbook::parse("rb.yaml", &text).unwrap_err();
    let lines: Vec<String> = issues.0.iter().map(|i| format!("{}:{} {}", i.pos.line, i.pos.col, i.path)).collect();
    assert_eq!(lines, ["4:1 ownr", "15:8 objectives.rto", "26:3 restore.fiel", "30:13 verify[0].expect"], "{issues}");
}

#[test]
fn syntax_errors_and_duplicates_have_positions() {
    let e = Runbook::parse("rb.yaml", "version: 1\nname: [unclosed\n").unwrap_err().to_string();
    assert!(e.starts_with("rb.yaml:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
    let e = Runbook::parse("rb.yaml", &VALID.replace("owner: search-platform", "owner: a\nowner: b"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rb.yaml:5:1: duplicate key `owner` (first defined on line 4)"), "{e}");
}

#[test]
fn missing_required_fields_are_named() {
    let e = issues_after("owner: search-platform\n", "");
    assert!(e.contains("missing field `owner`"), "{e}");
    let e = issues_after("  adapter: sqlite\n", "");
    assert!(
        e.contains(
            "restore: missing field `adapter` (one of: postgres, sqlite, files, redis, mariadb, chroma, qdrant)"
        ),
        "{e}"
    );
}

#[test]
fn committed_schema_is_current() {
    let generated = serde_json::to_string_pretty(&drillbook_runbooks::runbook_schema()).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != generated {
        if std::env::var_os("DRILLBOOK_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        } else {
            panic!(
                "runbooks/schema.json is stale: run `DRILLBOOK_BLESS=1 cargo test -p drillbook-runbooks` or `drillbook schema > runbooks/schema.json`"
            );
        }
    }
}

/// The redis check kinds: one source of truth each, known types, sizes with units.
#[test]
fn redis_checks_are_validated() {
    let cases: &[(&str, &str)] = &[
        ("  - name: k\n    keys: { pattern: \"s:*\", expect: \">= 1\" }\n", "ok"),
        ("  - name: k\n    keys: { manifest: m.json, tolerance: 2 }\n", "ok"),
        (
            "  - name: k\n    keys: { db: 2 }\n",
            "r.yaml:9:5: verify[0].keys: needs `expect` (one database or pattern) or `manifest`",
        ),
        (
            "  - name: k\n    keys: { manifest: m.json, expect: \"== 1\" }\n",
            "verify[0].keys: name either `expect` or `manifest`, not both",
        ),
        (
            "  - name: k\n    keys: { manifest: m.json, pattern: \"a*\" }\n",
            "verify[0].keys: `db` and `pattern` go with `expect`",
        ),
        (
            "  - name: s\n    sample: { keys: [{ key: a, type: strng }] }\n",
            "verify[0].sample.keys[0].type: unknown type `strng` (one of: string, list, set, zset, hash, stream)",
        ),
        ("  - name: s\n    sample: {}\n", "verify[0].sample: needs `keys` (a list of keys to look at) or `manifest`"),
        ("  - name: m\n    memory: { min: 1MB, max: 2GiB }\n", "ok"),
        ("  - name: m\n    memory: { min: 2GB, max: 1GB }\n", "verify[0].memory.min: 2GB is above max 1GB"),
        ("  - name: m\n    memory: { max: 2 gigs }\n", "cannot parse size \"2 gigs\""),
        ("  - name: m\n    memory: {}\n", "verify[0].memory: needs `min`, `max` or both"),
        ("  - name: d\n    dataset_digest: { manifest: m.json }\n", "ok"),
    ];
    expect_cases(cases, |checks| checks_issues("redis", "cache", checks));
}

/// The vector-store check kinds: collections and points take one source of truth; a collection
/// target takes no SQL columns, a table target needs them.
#[test]
fn vector_store_checks_are_validated() {
    let cases: &[(&str, &str)] = &[
        ("  - name: c\n    collections: { names: [docs, faq] }\n", "ok"),
        ("  - name: c\n    collections: { manifest: m.json, allow_extra: true }\n", "ok"),
        ("  - name: c\n    collections: {}\n", "verify[0].collections: needs `names`"),
        ("  - name: c\n    collections: { names: [a], manifest: m.json }\n", "name either `names` or `manifest`"),
        ("  - name: p\n    points: { collection: docs, where: { lang: en }, expect: \">= 1\" }\n", "ok"),
        ("  - name: p\n    points: { collection: docs, manifest: m.json, tolerance: 3 }\n", "ok"),
        ("  - name: p\n    points: { collection: docs }\n", "verify[0].points: needs `expect` (a count) or `manifest`"),
        (
            "  - name: p\n    points: { collection: docs, filter: { lang: en }, manifest: m.json }\n",
            "verify[0].points.filter: a manifest holds whole-collection counts",
        ),
        ("  - name: v\n    vector_integrity: { collection: docs, dim: 384 }\n", "ok"),
        (
            "  - name: v\n    vector_integrity: { collection: docs, column: e, dim: 384 }\n",
            "verify[0].vector_integrity.column: only with `table`",
        ),
        (
            "  - name: v\n    vector_integrity: { table: chunks, dim: 384 }\n",
            "verify[0].vector_integrity.column: needed with `table`",
        ),
        (
            "  - name: r\n    vector_recall: { table: chunks, column: e, queries: q.jsonl, k: 10, min_recall: 0.9 }\n",
            "verify[0].vector_recall.id: needed with `table`",
        ),
        (
            "  - name: r\n    vector_recall: { collection: docs, queries: q.jsonl, k: 10, min_recall: 0.9, metric: l2 }\n",
            "ok",
        ),
        ("  - name: d\n    documents_checksum: { collection: docs, manifest: m.json }\n", "ok"),
    ];
    expect_cases(cases, |checks| checks_issues("chroma", "vector-store", checks));
    // Qdrant: named vectors, its filter syntax, payload schema and point digests.
    let cases: &[(&str, &str)] = &[
        ("  - name: v\n    vector_integrity: { collection: docs, vector: text, dim: 384 }\n", "ok"),
        (
            "  - name: v\n    vector_integrity: { table: chunks, column: e, vector: text, dim: 384 }\n",
            "verify[0].vector_integrity.vector: only with `collection`; a table's vector is its `column`",
        ),
        (
            "  - name: r\n    vector_recall: { collection: docs, vector: text, queries: q.jsonl, k: 10, min_recall: 0.9 }\n",
            "ok",
        ),
        (
            "  - name: p\n    points: { collection: docs, filter: { must: [{ key: lang, match: { value: en } }] }, expect: \"> 0\" }\n",
            "ok",
        ),
        ("  - name: s\n    payload_schema: { collection: docs, manifest: m.json, allow_extra: true }\n", "ok"),
        (
            "  - name: s\n    payload_schema: { collection: docs }\n",
            "verify[0].payload_schema: missing field `manifest`",
        ),
        ("  - name: d\n    points_checksum: { collection: docs, manifest: m.json }\n", "ok"),
        ("  - name: d\n    points_checksum: { colection: docs, manifest: m.json }\n", "did you mean `collection`?"),
    ];
    expect_cases(cases, |checks| checks_issues("qdrant", "vector-store", checks));
}

/// `pick`: a word, an object's name or `{at: TIME}`; `within`, `time_format` and `match` only
/// where a recovery point is chosen among several.
#[test]
fn pick_rules_are_validated() {
    let cases: &[(&str, &str)] = &[
        ("  pick: oldest\n  within: 30d\n  time_format: \"%Y-%m-%d\"", "ok"),
        ("  pick: random\n  within: 30d", "ok"),
        ("  pick: { at: \"2026-11-20T03:00:00Z\" }\n  within: 7d", "ok"),
        ("  pick: { at: \"Nov 20\" }", "source.pick.at: `Nov 20` is not an RFC 3339 time"),
        ("  pick: latest\n  within: 30d", "source.within: not with `pick: latest`"),
        (
            "  pick: rag-2026-11-29.tar.zst\n  within: 30d",
            "source.within: `pick: rag-2026-11-29.tar.zst` names one object",
        ),
        ("  pick: oldest\n  time_format: \"Y-m-d\"", "source.time_format: `Y-m-d` has no chrono specifier"),
        ("  pick: lastest", "source.pick: `lastest` is read as the name of one object, did you mean `latest`?"),
        ("  pick: rag-2026-11-29.tar.zst", "source.match: `pick: rag-2026-11-29.tar.zst` names one object"),
    ];
    expect_cases(cases, |pick| issues_after("  pick: latest", pick));
    let rb =
        Runbook::parse("rb.yaml", &VALID.replacen("  pick: latest", "  pick: { at: \"2026-11-20T03:00:00Z\" }", 1))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.source.as_ref().unwrap().pick.rule(), drillbook_runbooks::PickRule::At("2026-11-20T03:00:00Z"));
}

/// `source.restic`: the repository names its recovery points; what only an object of a storage
/// profile has (a path, a sidecar, age, a name pattern) is refused beside it, with the reason.
#[test]
fn restic_sources_are_validated() {
    const OBJECT: &str =
        "  storage: backups\n  path: pg/rag/\n  pick: latest\n  match: \"*.tar.zst\"\n  checksum: sidecar\n";
    let restic = "  restic:\n    repository: /srv/restic\n    password: \"${env:RESTIC_PW}\"\n";
    let cases: &[(&str, &str)] = &[
        ("", "ok"),
        (
            "    snapshot: 519f92e7\n    path: /data\n    tags: [nightly, rag]\n    host: db1\n    verify_repository: 5%\n    env: { AWS_ACCESS_KEY_ID: \"${env:KEY}\" }\n",
            "ok",
        ),
        ("  pick: { at: \"2026-11-20T03:00:00Z\" }\n  within: 7d\n", "ok"),
        ("  pick: random\n  within: 30d\n", "ok"),
        ("  path: pg/rag/\n", "source.path: not with `restic:`; the path inside the snapshot is `source.restic.path`"),
        ("  storage: backups\n", "source.storage: not with `restic:`"),
        ("  checksum: sidecar\n", "source.checksum: not with `restic:`; restic verifies its own data"),
        ("  match: \"*.tar\"\n", "source.match: not with `restic:`"),
        ("  time_format: \"%Y\"\n", "source.time_format: not with `restic:`"),
        (
            "  pick: rag.tar\n",
            "source.pick: `rag.tar`: with `restic:` one snapshot is named by `source.restic.snapshot: <id>`",
        ),
        ("    snapshot: newest\n", "source.restic.snapshot: `newest` is neither `latest` nor a snapshot id"),
        ("    snapshot: 519f92e7\n  pick: oldest\n", "source.pick: `source.restic.snapshot` names one snapshot"),
        ("    path: data\n", "source.restic.path: `data` must be absolute inside the snapshot"),
        ("    verify_repository: 5\n", "cannot parse \"5\" as a percentage"),
        ("    verify_repository: 150%\n", "\"150%\" is not between 0% (excluded) and 100%"),
        ("    env: { AWS_SECRET_ACCESS_KEY: \"${env:}\" }\n", "source.restic.env.AWS_SECRET_ACCESS_KEY"),
        ("    pasword: x\n", "did you mean `password`?"),
    ];
    expect_cases(cases, |extra| {
        let (restic_extra, source_extra): (String, String) =
            extra.lines().map(|l| format!("{l}\n")).partition(|l| l.starts_with("    "));
        issues_after(OBJECT, &format!("{restic}{restic_extra}{source_extra}"))
    });
    let missing = issues_after(OBJECT, "  pick: latest\n");
    assert!(
        missing.contains("source.path: must not be empty (or name a restic repository with `restic:`)"),
        "{missing}"
    );
}

const STACK: &str = r#"version: 1
name: rag-stack
owner: search-platform
asset: { name: rag, kind: vector-store }
source: { path: stack/, match: "*.tar.zst" }
parallel: 2
restores:
  - name: docs
    adapter: sqlite
    from: documents/
    file: docs.sqlite
  - name: corpus
    adapter: files
    from: corpus
  - name: vectors
    adapter: sqlite
    source: { path: vectors/, checksum: sidecar }
verify:
  - name: documents restored
    on: docs
    sql: select count(*) from documents
    expect: ">= 1"
  - name: corpus intact
    on: corpus
    files: { manifest: corpus.sha256 }
"#;

#[test]
fn a_stack_of_restores_parses_and_checks_name_their_restore() {
    let rb = Runbook::parse("stack.yaml", STACK).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = rb.restores().iter().map(|r| r.name()).collect();
    assert_eq!(names, ["docs", "corpus", "vectors"]);
    assert!(rb.is_stack());
    assert_eq!(rb.restore_of(&rb.verify[1]), 1);
    assert_eq!(rb.source_of(&rb.restores()[0]).unwrap().path, "stack/");
    assert_eq!(rb.source_of(&rb.restores()[2]).unwrap().path, "vectors/");
    assert_eq!(rb.restores()[0].from.as_deref(), Some("documents/"));
    // A single `restore:` is the list of one, named `restore`.
    let one = Runbook::parse("rb.yaml", VALID).unwrap();
    assert_eq!(one.restores().len(), 1);
    assert_eq!(one.restores()[0].name(), "restore");
    assert!(!one.is_stack());
    // An asset of its own is for a stack's restores: a single restore's is the runbook's.
    let own = VALID.replace("  scratch: local\n", "  scratch: local\n  asset: { name: x, kind: files }\n");
    assert!(own.contains("asset: { name: x"));
    let got = Runbook::parse("rb.yaml", &own).unwrap_err().to_string();
    assert!(
        got.contains(
            "restore.asset: the runbook's `asset:` is its only restore's; an asset per restore is for `restores:`"
        ),
        "{got}"
    );
}

#[test]
fn stacks_are_validated() {
    let issues = |(from, to): (&str, &str)| {
        assert!(STACK.contains(from), "fixture does not contain {from:?}");
        match Runbook::parse("stack.yaml", &STACK.replacen(from, to, 1)) {
            Ok(_) => "ok".to_string(),
            Err(issues) => issues.to_string(),
        }
    };
    let cases: &[((&str, &str), &str)] = &[
        (
            ("    on: corpus\n", "    on: corpsu\n"),
            "stack.yaml:24:5: verify[1].on: no restore named `corpsu`, did you mean `corpus`? (restores: docs, corpus, vectors)",
        ),
        (
            ("    on: docs\n", ""),
            "stack.yaml:19:5: verify[0].name: with several restores, say which one the check runs on: `on:` one of docs, corpus, vectors",
        ),
        (
            ("  - name: corpus\n", "  - name: docs\n"),
            "stack.yaml:12:5: restores[1].name: duplicate restore name `docs`",
        ),
        (
            ("  - name: corpus\n    adapter: files\n", "  - adapter: files\n"),
            "restores[1]: needs a `name` (what checks give in `on:`)",
        ),
        (
            ("    from: corpus\n", "    from: ../corpus\n"),
            "restores[1].from: `../corpus` must be a relative path inside",
        ),
        (("    from: corpus\n", "    form: corpus\n"), "restores[1].form: unknown field, did you mean `from`?"),
        (("parallel: 2\n", "parallel: 0\n"), "stack.yaml:6:1: parallel: must be at least 1"),
        (
            ("source: { path: stack/, match: \"*.tar.zst\" }\n", ""),
            "restores[0].adapter: no backup to restore: give this restore a `source:`, or the drill one `source:` for all",
        ),
        (
            ("    source: { path: vectors/, checksum: sidecar }\n", "    source: { path: vectors/, pick: lastest }\n"),
            "restores[2].source.pick: `lastest` is read as the name of one object, did you mean `latest`?",
        ),
        (
            ("restores:\n", "restore: { adapter: files }\nrestores:\n"),
            "restores: name either `restore` (one store) or `restores` (several), not both",
        ),
        (("verify:\n", "verify: []\nx:\n"), "x: unknown field"),
        (
            ("  - name: corpus\n", "  - name: corpus\n    asset: { name: corpus, kind: documents }\n"),
            "stack.yaml:13:34: restores[1].asset.kind: unknown value `documents`, did you mean `document-store`?",
        ),
        (("  - name: corpus\n", "  - name: corpus\n    asset: { name: corpus, kind: files }\n"), "ok"),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(edit, want)| {
            let got = issues(*edit);
            (!got.contains(want)).then(|| format!("{edit:?}\n  want: {want}\n  got:  {got}"))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // A source nobody reads is an error, not a silent leftover.
    let every_own = STACK
        .replace("    from: documents/\n", "    source: { path: d/ }\n")
        .replace("    from: corpus\n", "    source: { path: c/ }\n");
    let got = Runbook::parse("stack.yaml", &every_own).unwrap_err().to_string();
    assert!(got.contains("stack.yaml:5:1: source: no restore reads it"), "{got}");
}

#[test]
fn checks_across_restores_name_their_sides() {
    let with = |check: &str| {
        let text = format!("{STACK}{check}");
        match Runbook::parse("stack.yaml", &text) {
            Ok(rb) => {
                assert!(rb.verify.last().unwrap().check.is_coherence());
                "ok".to_string()
            }
            Err(issues) => issues.to_string(),
        }
    };
    let cases: &[(&str, &str)] = &[
        (
            "  - name: refs\n    references: { from: { on: vectors, sql: select document_id from chunks }, to: { on: docs, sql: select id from documents } }\n",
            "ok",
        ),
        (
            "  - name: refs\n    references: { from: { sql: select document_id from chunks }, to: { on: docs, sql: select id from documents } }\n",
            "verify[2].references.from: say which restore these values come from: `on:` one of docs, corpus, vectors",
        ),
        (
            "  - name: refs\n    on: docs\n    references: { from: { on: vectors, sql: select 1 }, to: { on: docs, sql: select 1 } }\n",
            "verify[2].on: `references` names the restores it reads itself",
        ),
        (
            "  - name: same\n    same_set: { a: { on: corpus, files: \"*.md\", sql: select 1 }, b: { on: docs, sql: select 1 } }\n",
            "verify[2].same_set.a: name only one of `sql`, `files`",
        ),
        (
            "  - name: same\n    same_count: { a: { on: corpus }, b: { on: docs, sql: select 1, strip_extension: .md } }\n",
            "verify[2].same_count.a: needs `sql` (a query, one value per row), `files` (a glob), `points`",
        ),
        (
            "  - name: refs\n    references: { from: { on: vectors, points: { collection: chunks, field: doc_id } }, to: { on: docs, sql: select id from documents } }\n",
            "ok",
        ),
        (
            "  - name: refs\n    references: { from: { on: vectors, points: { collection: \"\", field: doc_id } }, to: { on: docs, sql: select 1 } }\n",
            "verify[2].references.from.points.collection: must name a collection",
        ),
        (
            "  - name: refs\n    references: { from: { on: vectors, points: { collection: chunks, feild: doc_id } }, to: { on: docs, sql: select 1 } }\n",
            "verify[2].references.from.points.feild: unknown field, did you mean `field`?",
        ),
        (
            "  - name: dim\n    config_matches: { config: { on: corpus, file: app.yaml, key: embedding.dim }, equals: { on: vectors, dimension: { collection: chunks } } }\n",
            "ok",
        ),
        (
            "  - name: skew\n    max_skew: { restores: [docs, vectros], max: 1h }\n",
            "verify[2].max_skew.restores[1]: no restore named `vectros`, did you mean `vectors`?",
        ),
        ("  - name: skew\n    max_skew: { max: 1 hour }\n", "verify[2].max_skew.max: cannot parse duration"),
        (
            "  - name: upgrade\n    same_results: { restores: [docs], queries: [select 1] }\n",
            "verify[2].same_results.restores: names at least two restores to compare",
        ),
        (
            "  - name: dim\n    config_matches: { config: { on: corpsu, file: app.yaml, key: embedding.dim }, equals: { on: docs, sql: select 16 } }\n",
            "verify[2].config_matches.config.on: no restore named `corpsu`, did you mean `corpus`?",
        ),
        (
            "  - name: dim\n    config_matches: { config: { on: corpus, file: ../app.yaml, key: embedding.dim }, equals: { on: docs, sql: select 16 } }\n",
            "verify[2].config_matches.config.file: `../app.yaml` must be a relative path inside the restored tree",
        ),
    ];
    expect_cases(cases, with);
}
