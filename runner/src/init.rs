//! `drillbook init`: from a real backup to a working runbook.
//!
//! It finds the newest backup, unpacks it with the drill's own unpack rules to see what it
//! is, then runs one drill of a draft runbook through [`execute`] (so the backup is
//! restored into scratch exactly as a drill does) whose [`AfterRestore`] hook captures the
//! ground truth from the restored copy with the `manifest` machinery. The runbook it writes
//! names the checks that truth supports; every choice is a comment in the YAML, objectives
//! are left as TODOs. Nothing is written unless the restore and the capture both worked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::Utc;
use drillbook_adapters::source::Storage;
use drillbook_adapters::sql::ident;
use drillbook_adapters::{DrillCx, Scratch, Unpacked, unpack, vectors};
use drillbook_reports::Verdict;
use drillbook_runbooks::{ChecksumMode, Metric, Runbook, VectorEncoding};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use crate::Invalid;
use crate::config::Config;
use crate::execute::{AfterRestore, Ending, Hooks, Origin, execute};

/// `drillbook init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The backups: a file or a folder on this machine, or `PROFILE:PATH` in a storage
    /// profile of the config (`backups:pg/rag/`).
    #[arg(long)]
    source: String,
    /// Which objects of the folder are backups (default: all of them, or those shaped like the
    /// file given to --source).
    #[arg(long = "match", value_name = "GLOB")]
    pattern: Option<String>,
    /// The runbook's name, `[a-z0-9-]` (default: from the source's name).
    #[arg(long)]
    name: Option<String>,
    /// Where `<name>.yaml` and `truth/<name>/` go (default: the config's runbooks folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing `<name>.yaml` and its truth folder.
    #[arg(long)]
    force: bool,
    /// Allow the backup to unpack to this many times its size (the runbook's
    /// `source.max_expansion`; default 50, a guard against decompression bombs). Qdrant
    /// snapshots of small collections need far more: their files are preallocated.
    #[arg(long, value_name = "RATIO")]
    max_expansion: Option<u64>,
}

/// Golden queries sampled from the data, answered by an exact search.
const GOLDEN_QUERIES: usize = 10;
/// Neighbours per golden query.
const GOLDEN_K: usize = 10;
/// Keys of each Redis database sampled for the `sample` check.
const REDIS_SAMPLE: usize = 20;
/// Tables beyond this many get no `table_checksum` of their own (`row_counts` still covers them).
const MAX_TABLE_CHECKSUMS: usize = 20;

pub async fn init_command(config: &Config, args: &InitArgs) -> anyhow::Result<ExitCode> {
    let mut source = SourceArg::parse(config, &args.source, args.pattern.as_deref())?;
    source.max_expansion = args.max_expansion;
    // Ctrl-C or SIGTERM: the fetch stops, a restore is torn down, nothing is written.
    let cancel = crate::run::cancel_on_signals();
    let name = match &args.name {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') => {
            n.clone()
        }
        Some(n) => return Err(Invalid(format!("--name: `{n}` is not a runbook name (use a-z, 0-9 and -)")).into()),
        None => derive_name(&source.label),
    };
    let out = args.out.clone().unwrap_or_else(|| config.runbooks.clone());
    let file = out.join(format!("{name}.yaml"));
    let truth_rel = format!("truth/{name}");
    let truth = out.join(&truth_rel);
    for existing in [&file, &truth] {
        if existing.exists() && !args.force {
            return Err(Invalid(format!(
                "{} already exists; choose another --name or --out, or replace it with --force",
                existing.display()
            ))
            .into());
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = std::fs::canonicalize(&out).unwrap_or(out);
    let file = out.join(format!("{name}.yaml"));
    let say = |line: String| eprintln!("init: {}", one_line(&line));

    // 1. Locate the newest backup and see what it is, through a draft runbook (the same
    //    source rules as a drill).
    let draft = Draft { name: &name, source: source.yaml(&out), restore: "  adapter: files\n".into() };
    let plan = crate::plan::build(config, draft.load(&file)?)?;
    let Some(Origin::Storage { storage, path }) = plan.sources.first().map(|s| &s.origin) else {
        unreachable!("init builds one storage source")
    };
    let spec = plan.runbook.source.as_ref().expect("the draft has a source");
    let found = storage.locate(spec, path, Utc::now(), 0).await.map_err(|e| {
        let glob = source.pattern.as_ref().map(|(g, _)| format!(" matching `{g}`")).unwrap_or_default();
        Invalid(format!("no backup found in {}{glob}: {e}", source.folder))
    })?;
    source.settle(found.name());
    let sidecar = matches!(storage.expected_sha256(&found, ChecksumMode::Sidecar).await, Ok(Some(_)));
    say(format!(
        "newest backup: {} ({} bytes, modified {})",
        found.location,
        found.size,
        found.modified.map(|m| m.to_rfc3339()).unwrap_or_else(|| "at an unknown time".into())
    ));
    let probe =
        tempfile::Builder::new().prefix("drillbook-init-").tempdir().context("cannot create a temporary folder")?;
    let ratio = args.max_expansion.unwrap_or(unpack::DEFAULT_MAX_RATIO);
    let unpacked = match unpack_for_detection(storage, &found, probe.path(), ratio, &cancel).await {
        Ok(u) => u,
        Err(e) => {
            let hint = if e.contains("expansion beyond the limit") {
                " (a Qdrant snapshot or other very compressible backup: --max-expansion 1000)"
            } else {
                ""
            };
            eprintln!("init: {}{hint}; no runbook was written", one_line(&e));
            return Ok(ExitCode::from(1));
        }
    };
    let mut detected = detect(&unpacked).map_err(|e| Invalid(one_line(&format!("{}: {e}", found.location))))?;
    detected.what = one_line(&detected.what);
    drop(probe);
    say(format!("detected {} → adapter `{}`", detected.what, detected.adapter));

    // 2. Restore it once exactly as a drill does, capturing the truth before teardown.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}-truth-"))
        .tempdir_in(&out)
        .with_context(|| format!("cannot write in {}", out.display()))?;
    let draft = Draft { source: source.yaml(&out), restore: detected.restore_yaml(), ..draft };
    let mut plan = crate::plan::build(config, draft.load(&file)?)?;
    if sidecar && let Some(source) = plan.runbook.source.as_mut() {
        source.checksum = ChecksumMode::Sidecar;
    }
    let capture = Arc::new(Capture {
        adapter: detected.adapter,
        tree: detected.tree,
        dir: staging.path().to_path_buf(),
        truth_rel: truth_rel.clone(),
        checks: Mutex::new(Vec::new()),
    });
    let hooks = Hooks {
        progress: crate::progress::for_terminal(),
        on_step: Box::new(|s| {
            let status = format!("{:?}", s.status).to_lowercase();
            eprintln!("init:   {:<18} {status:<7} {:>7} ms  {}", s.name, s.duration_ms, s.detail);
        }),
        cancel_reason: Default::default(),
        after_restore: Some(capture.clone()),
    };
    say("restoring it into scratch as a drill does, then capturing the ground truth".into());
    let started = std::time::Instant::now();
    let run_id = uuid::Uuid::now_v7().to_string();
    let (report, ending) = execute(&plan, &run_id, Utc::now(), None, cancel.clone(), &hooks).await;
    if ending == Ending::Aborted {
        eprintln!("init: interrupted (the scratch was torn down); no runbook was written");
        return Ok(ExitCode::from(1));
    }
    if report.verdict == Verdict::Failed {
        eprintln!("init: the backup did not restore, so no runbook was written:");
        for r in &report.failure_reasons {
            eprintln!("  - {r}");
        }
        return Ok(ExitCode::from(1));
    }
    let took = started.elapsed();
    let checks = std::mem::take(&mut *capture.checks.lock().unwrap_or_else(|p| p.into_inner()));

    // 3. Write the runbook beside its truth, and prove it parses as every runbook must.
    let age = found.modified.map(|m| Utc::now().signed_duration_since(m));
    let text = compose(&name, &source, &out, &detected, sidecar, &checks, took, age, &found.location);
    if args.force {
        let _ = std::fs::remove_dir_all(&truth);
    }
    std::fs::create_dir_all(truth.parent().unwrap_or(&out))?;
    let staged = staging.keep();
    std::fs::rename(&staged, &truth).with_context(|| format!("cannot move the truth files to {}", truth.display()))?;
    std::fs::write(&file, &text).with_context(|| format!("cannot write {}", file.display()))?;
    if let Err(e) = crate::plan::load(&file) {
        return Err(anyhow::anyhow!("init wrote a runbook that does not validate (a bug; please report it):\n{}", e.0));
    }
    println!("{}", file.display());
    say(format!(
        "wrote {} with {} checks and {} truth files in {}; restore + capture took {}",
        file.display(),
        checks.len(),
        relative_files(&truth).len(),
        truth.display(),
        human_time(took)
    ));
    say(format!("next: set the TODOs, then `drillbook run {}`", file.display()));
    Ok(ExitCode::SUCCESS)
}

/// Where `--source` points.
struct SourceArg {
    /// `None`: the file system (`local`).
    profile: Option<String>,
    /// The folder, absolute for `local`.
    folder: String,
    /// Which objects are backups, and why (a comment in the YAML); `None` until the newest
    /// backup of a folder is known (checksum files are left out until then).
    pattern: Option<(String, String)>,
    /// What the name is derived from.
    label: String,
    /// `--max-expansion`.
    max_expansion: Option<u64>,
}

impl SourceArg {
    fn parse(config: &Config, arg: &str, pattern: Option<&str>) -> Result<SourceArg, Invalid> {
        let given = pattern.map(|p| (p.to_string(), "given to `drillbook init --match`".to_string()));
        if let Some((profile, path)) = arg.split_once(':')
            && config.storage.contains_key(profile)
        {
            let label = path.trim_end_matches('/').rsplit('/').next().unwrap_or(profile).to_string();
            return Ok(SourceArg {
                profile: Some(profile.into()),
                folder: path.into(),
                pattern: given,
                label,
                max_expansion: None,
            });
        }
        let path = Path::new(arg);
        let abs = std::fs::canonicalize(path).map_err(|e| {
            Invalid(format!("--source: {arg}: {e} (a file, a folder, or PROFILE:PATH of a storage profile)"))
        })?;
        if abs.is_dir() {
            let label = abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            return Ok(SourceArg {
                profile: None,
                folder: abs.display().to_string(),
                pattern: given,
                label,
                max_expansion: None,
            });
        }
        let file_name = abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let folder = abs.parent().unwrap_or(Path::new("/")).display().to_string();
        let pattern = given.or_else(|| {
            Some((
                shape_of(&file_name),
                one_line(&format!("files shaped like {file_name}, so the next backup is picked too")),
            ))
        });
        Ok(SourceArg { profile: None, folder, pattern, label: file_name, max_expansion: None })
    }

    /// Without `--match`, the newest backup of a folder decides what its backups look like.
    fn settle(&mut self, newest: &str) {
        if self.pattern.is_none() {
            let why = one_line(&format!("files shaped like the newest backup, {newest}"));
            self.pattern = Some((shape_of(newest), why));
        }
    }

    /// The `source:` block of the runbook in `out`.
    fn yaml(&self, out: &Path) -> String {
        let mut s = String::new();
        match &self.profile {
            Some(p) => {
                let _ = writeln!(s, "  storage: {p}");
                let _ = writeln!(s, "  path: {}", yaml_str(&self.folder));
            }
            None => {
                // Relative to the runbook's folder, so the pair can move together.
                let _ = writeln!(s, "  path: {}", yaml_str(&relative_to(Path::new(&self.folder), out)));
            }
        }
        let _ = writeln!(s, "  pick: latest");
        if let Some((glob, _)) = &self.pattern {
            let _ = writeln!(s, "  match: {}", yaml_str(glob));
        }
        if let Some(ratio) = self.max_expansion {
            let _ = writeln!(s, "  max_expansion: {ratio}  # given to `drillbook init --max-expansion`");
        }
        s
    }
}

/// `folder` as seen from `base` (both canonical), with a trailing `/`: `../backups/`.
fn relative_to(folder: &Path, base: &Path) -> String {
    let (f, b): (Vec<_>, Vec<_>) = (folder.components().collect(), base.components().collect());
    let common = f.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..b.len() {
        rel.push("..");
    }
    for c in &f[common..] {
        rel.push(c);
    }
    if rel.as_os_str().is_empty() { "./".into() } else { format!("{}/", rel.display()) }
}

/// `docs-2026-11-29.tar.zst` → `*.tar.zst`: the compound extension, so the next backup matches.
fn shape_of(file_name: &str) -> String {
    const KNOWN: [&str; 14] = [
        "tar", "dump", "sql", "sqlite", "sqlite3", "db", "rdb", "aof", "snapshot", "gz", "zst", "age", "json", "backup",
    ];
    let parts: Vec<&str> = file_name.split('.').collect();
    let mut ext = Vec::new();
    for p in parts.iter().skip(1).rev() {
        if KNOWN.contains(&p.to_ascii_lowercase().as_str()) || ext.is_empty() {
            ext.insert(0, *p);
        } else {
            break;
        }
    }
    if ext.is_empty() { file_name.to_string() } else { format!("*.{}", ext.join(".")) }
}

/// `[a-z0-9-]` from a file or folder name, without its extensions and dates.
fn derive_name(label: &str) -> String {
    let stem = label.split('.').next().unwrap_or(label).to_ascii_lowercase();
    let mut out = String::new();
    for c in stem.chars() {
        if c.is_ascii_lowercase() || (c.is_ascii_digit() && !out.is_empty()) {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    // Trailing dates and numbers (`docs-2026-11-29`) name one backup, not the asset.
    let trimmed = out.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
    let name = if trimmed.is_empty() { out.trim_matches('-') } else { trimmed };
    if name.is_empty() { "backup".into() } else { name.into() }
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The runbook being built, before its checks are known.
struct Draft<'a> {
    name: &'a str,
    source: String,
    restore: String,
}

impl Draft<'_> {
    fn text(&self) -> String {
        format!(
            "version: 1\nname: {}\nowner: drillbook-init\nasset: {{ name: {}, kind: files }}\nsource:\n{}restore:\n{}",
            self.name, self.name, self.source, self.restore
        )
    }

    fn load(&self, file: &Path) -> Result<crate::plan::Loaded, Invalid> {
        let text = self.text();
        let shown = file.display().to_string();
        let runbook = Runbook::parse(&shown, &text).map_err(|issues| Invalid(issues.to_string()))?;
        Ok(crate::plan::Loaded {
            runbook,
            path: file.to_path_buf(),
            sha256: hex::encode(sha2::Sha256::digest(text.as_bytes())),
        })
    }
}

/// Fetches and unpacks the object with the drill's own rules (limits, links, modes) so that
/// detection looks at what a drill would restore, never at raw hostile bytes in place.
async fn unpack_for_detection(
    storage: &Storage,
    found: &drillbook_adapters::source::Located,
    dir: &Path,
    max_ratio: u64,
    cancel: &CancellationToken,
) -> Result<Unpacked, String> {
    let progress: Arc<dyn drillbook_adapters::Progress> = Arc::new(drillbook_adapters::NoProgress);
    let fetched = storage.fetch_and_unpack(found, dir, max_ratio, None, progress, cancel).await;
    if let Some(e) = fetched.fetch_error {
        return Err(format!("cannot read the backup: {e}"));
    }
    fetched.unpacked.map_err(|e| format!("cannot unpack {}: {e}", found.location))
}

/// What the backup is, and how the runbook restores it.
#[derive(Debug)]
struct Detected {
    adapter: &'static str,
    /// `pg_dump custom archive (format 1.15)`.
    what: String,
    /// `restore:` keys beside `adapter`, each with the reason it was chosen.
    options: Vec<(String, String)>,
    /// The backup is a tree whose files are themselves worth a manifest (documents, configs).
    tree: bool,
    kind: &'static str,
}

impl Detected {
    fn restore_yaml(&self) -> String {
        let mut s = format!("  adapter: {}\n", self.adapter);
        for (line, _) in &self.options {
            let _ = writeln!(s, "  {line}");
        }
        s
    }
}

fn head(path: &Path, n: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(n);
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(n as u64).read_to_end(&mut buf);
    }
    buf
}

/// Recognises a backup by its content (magic bytes, the files of an archive), never by name.
fn detect(u: &Unpacked) -> Result<Detected, String> {
    let single = |adapter, kind, what: String| Detected { adapter, what, options: Vec::new(), tree: false, kind };
    if let Some(file) = &u.single_file {
        let h = head(file, 4096);
        if let Some(what) = single_file_kind(&h) {
            return Ok(match what {
                Kind::PgCustom(v) => single("postgres", "relational", format!("a pg_dump custom archive (format {v})")),
                Kind::Sqlite => single("sqlite", "relational", "a SQLite database".into()),
                Kind::PgPlain => single("postgres", "relational", "a pg_dump plain SQL script".into()),
                Kind::MariaDbDump => single("mariadb", "relational", "a mariadb-dump/mysqldump SQL file".into()),
                Kind::Rdb(v) => single("redis", "cache", format!("a Redis RDB file (format version {v})")),
            });
        }
        return Err(unknown(&h, &u.format));
    }
    let files = relative_files(&u.root);
    let has = |name: &str| files.iter().find(|f| f.rsplit('/').next() == Some(name));
    if has("toc.dat").is_some() {
        // The adapter finds toc.dat at the root or in the only folder.
        return Ok(single("postgres", "relational", "a pg_dump directory archive (as a tar)".into()));
    }
    if has("chroma.sqlite3").is_some() {
        // The adapter finds the folder holding chroma.sqlite3 by itself.
        return Ok(single("chroma", "vector-store", "a Chroma persist folder".into()));
    }
    if has("version.info").is_some() || has("shard_config.json").is_some() {
        // The adapter lays out the shards (collection, shard or full storage snapshot) itself.
        return Ok(single("qdrant", "vector-store", "a Qdrant snapshot".into()));
    }
    if has("xtrabackup_checkpoints").is_some() || has("mariadb_backup_checkpoints").is_some() {
        return Ok(single("mariadb", "relational", "a mariadb-backup physical backup".into()));
    }
    if files.iter().any(|f| f.ends_with(".manifest") && f.contains("appendonlydir")) {
        // The adapter finds the one AOF folder (or RDB file) of a tree by itself.
        return Ok(single("redis", "cache", "a Redis multi-part AOF folder".into()));
    }
    // One database file inside a tree of documents and configs: restore it, keep the tree's
    // own checks (files, configs) beside.
    let databases: Vec<(&String, Kind)> =
        files.iter().filter_map(|f| single_file_kind(&head(&u.root.join(f), 4096)).map(|k| (f, k))).collect();
    if let [(db, kind)] = databases.as_slice() {
        let (adapter, what) = match kind {
            Kind::Sqlite => ("sqlite", "a SQLite database"),
            Kind::PgCustom(_) => ("postgres", "a pg_dump custom archive"),
            Kind::PgPlain => ("postgres", "a pg_dump plain SQL script"),
            Kind::MariaDbDump => ("mariadb", "a mariadb-dump SQL file"),
            Kind::Rdb(_) => ("redis", "a Redis RDB file"),
        };
        return Ok(Detected {
            adapter,
            what: format!("an archive of {} files holding {what} ({db})", files.len()),
            options: vec![(
                format!("file: {}", yaml_str(db)),
                format!("the one database of the {} files", files.len()),
            )],
            tree: true,
            kind: "relational",
        });
    }
    // Several databases: drilled as files here; one runbook per database (`file:`) proves each.
    let several = match databases.len() {
        0 | 1 => String::new(),
        n => format!(
            "; {n} databases inside ({}), drilled as files: give each its own runbook with `file:`",
            databases.iter().map(|(f, _)| f.as_str()).take(5).collect::<Vec<_>>().join(", ")
        ),
    };
    if files.is_empty() {
        return Err("the archive holds no file".into());
    }
    let configs = files.iter().filter(|f| config_format(f).is_some()).count();
    Ok(Detected {
        adapter: "files",
        what: format!("an archive of {} files ({configs} of them configuration){several}", files.len()),
        options: Vec::new(),
        tree: true,
        kind: if configs * 2 > files.len() { "config" } else { "files" },
    })
}

enum Kind {
    PgCustom(String),
    Sqlite,
    PgPlain,
    MariaDbDump,
    Rdb(String),
}

fn single_file_kind(h: &[u8]) -> Option<Kind> {
    if h.starts_with(b"PGDMP") && h.len() >= 8 {
        return Some(Kind::PgCustom(format!("{}.{}", h[5], h[6])));
    }
    if h.starts_with(b"SQLite format 3\0") {
        return Some(Kind::Sqlite);
    }
    if h.starts_with(b"REDIS") && h.len() >= 9 {
        return Some(Kind::Rdb(String::from_utf8_lossy(&h[5..9]).into_owned()));
    }
    let text = String::from_utf8_lossy(h);
    if text.contains("-- PostgreSQL database dump") {
        return Some(Kind::PgPlain);
    }
    if text.contains("-- MariaDB dump") || text.contains("-- MySQL dump") {
        return Some(Kind::MariaDbDump);
    }
    None
}

/// What was seen, for an object no adapter recognises.
fn unknown(h: &[u8], format: &str) -> String {
    let magic: Vec<String> = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let printable: String =
        h.iter().take(16).map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect();
    format!(
        "cannot tell what this backup is (unpacked as `{format}`; its first bytes: {} `{printable}`). \
         drillbook restores: postgres (pg_dump custom, directory, tar or plain), sqlite, mariadb (mariadb-dump, \
         mariadb-backup), redis (RDB, AOF), chroma (persist folder), qdrant (snapshot), files (any tar of files)",
        magic.join(" ")
    )
}

/// Every regular file under `root`, as `/`-separated relative paths, sorted.
fn relative_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let p = e.path();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file()
                && let Ok(rel) = p.strip_prefix(root)
            {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn config_format(path: &str) -> Option<&'static str> {
    match path.rsplit_once('.')?.1.to_ascii_lowercase().as_str() {
        "yaml" | "yml" => Some("YAML"),
        "json" => Some("JSON"),
        "toml" => Some("TOML"),
        _ => None,
    }
}

/// One check of the written runbook.
#[derive(Debug, Clone)]
struct Suggested {
    /// Why it is there (a YAML comment above it).
    why: String,
    name: String,
    /// The kind key and its options, one line: `row_counts: { manifest: truth/x/manifest.json }`.
    body: String,
}

fn suggest(why: impl AsRef<str>, name: impl Into<String>, body: impl Into<String>) -> Suggested {
    Suggested { why: one_line(why.as_ref()), name: name.into(), body: body.into() }
}

/// Text from the backup (names of files, tables, objects) made safe for a YAML comment or a
/// terminal line: a newline in a hostile file name must not start a line of the runbook.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// A name from the backup as part of a file name: letters, digits, `-` and `_` only.
fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// The ground truth of the restored copy, written into `dir` (moved to `truth/<name>/` later).
struct Capture {
    adapter: &'static str,
    tree: bool,
    dir: PathBuf,
    /// `truth/<name>`, as the runbook names it.
    truth_rel: String,
    checks: Mutex<Vec<Suggested>>,
}

#[async_trait::async_trait]
impl AfterRestore for Capture {
    async fn run(&self, cx: &DrillCx, scratch: &Scratch, unpacked: &Unpacked) -> Result<String, String> {
        let mut checks = Vec::new();
        match self.adapter {
            "sqlite" => self.sqlite(scratch, &mut checks).await?,
            "postgres" => self.postgres(scratch, &mut checks).await?,
            "mariadb" => self.mariadb(scratch, &mut checks).await?,
            "redis" => self.redis(scratch, &mut checks).await?,
            "chroma" => self.chroma(scratch, &mut checks).await?,
            "qdrant" => self.qdrant(cx, scratch, &mut checks).await?,
            _ => {}
        }
        if self.tree {
            self.tree(&unpacked.root, &mut checks)?;
        }
        let n = checks.len();
        *self.checks.lock().unwrap_or_else(|p| p.into_inner()) = checks;
        Ok(format!("{n} checks from the restored copy's ground truth"))
    }
}

impl Capture {
    /// A manifest as `drillbook manifest` writes it (pretty JSON); its path as the runbook names it.
    fn write_json(&self, file: &str, value: &impl serde::Serialize) -> Result<String, String> {
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())? + "\n";
        self.write(file, &text)
    }

    fn write(&self, file: &str, text: &str) -> Result<String, String> {
        std::fs::write(self.dir.join(file), text).map_err(|e| format!("cannot write {file}: {e}"))?;
        Ok(format!("{}/{file}", self.truth_rel))
    }

    /// Counts, digests and schema of a SQL store, as `drillbook manifest` writes them.
    fn sql_checks(
        &self,
        m: &drillbook_adapters::manifest::Manifest,
        checks: &mut Vec<Suggested>,
    ) -> Result<(), String> {
        let manifest = self.write_json("manifest.json", m)?;
        let rows: u64 = m.tables.values().map(|t| t.rows).sum();
        checks.push(suggest(
            format!(
                "{} table{}, {rows} rows at init; every count must come back exactly",
                m.tables.len(),
                plural(m.tables.len())
            ),
            "row counts as at init",
            format!("row_counts: {{ manifest: {manifest} }}"),
        ));
        checks.push(suggest(
            format!("{} schema objects at init: tables, columns, types, indexes", m.schema.len()),
            "schema unchanged",
            format!("schema: {{ expected: {manifest} }}"),
        ));
        let mut by_rows: Vec<_> = m.tables.iter().collect();
        by_rows.sort_by(|a, b| b.1.rows.cmp(&a.1.rows).then(a.0.cmp(b.0)));
        for (table, t) in by_rows.iter().take(MAX_TABLE_CHECKSUMS) {
            checks.push(suggest(
                format!("an order-independent digest of all {} rows", t.rows),
                format!("{table} identical to init"),
                format!("table_checksum: {{ table: {}, manifest: {manifest} }}", yaml_str(table)),
            ));
        }
        if by_rows.len() > MAX_TABLE_CHECKSUMS {
            checks.last_mut().expect("pushed above").why.push_str(&format!(
                "; the {} smaller tables have row counts only",
                by_rows.len() - MAX_TABLE_CHECKSUMS
            ));
        }
        Ok(())
    }

    async fn sqlite(&self, scratch: &Scratch, checks: &mut Vec<Suggested>) -> Result<(), String> {
        let file = scratch.url.strip_prefix("sqlite://").unwrap_or(&scratch.url);
        let pool = drillbook_adapters::sqlite::open(Path::new(file), true)
            .await
            .map_err(|e| format!("cannot open the restored database: {e}"))?;
        let m = drillbook_adapters::sqlite::capture(&pool).await.map_err(|e| format!("cannot read it: {e}"))?;
        self.sql_checks(&m, checks)?;
        for table in m.tables.keys() {
            for (column, encoding, dim) in sqlite_vector_columns(&pool, table).await? {
                let id = sqlite_id_column(&pool, table).await?;
                let metric = Metric::Cosine;
                let truth = VectorTruth::of_sqlite(&pool, table, &column, &id, encoding, metric)
                    .await
                    .map_err(|e| format!("{table}.{column}: {e}"))?;
                let v = VectorColumn { table: table.clone(), column, id, dim, encoding: Some(encoding), metric };
                self.vector_checks(&v, &truth, checks)?;
            }
        }
        pool.close().await;
        Ok(())
    }

    /// `vector_integrity` with the dimension (and the norm range, when the vectors are unit
    /// length) and `vector_recall` over golden queries sampled from the data.
    fn vector_checks(&self, v: &VectorColumn, truth: &VectorTruth, checks: &mut Vec<Suggested>) -> Result<(), String> {
        let VectorColumn { table, column, id, dim, encoding, metric } = v;
        let (table, column, id) = (table.as_str(), column.as_str(), id.as_str());
        let VectorTruth { vectors, norms: (lo, hi), golden } = truth;
        let (lo, hi) = (*lo, *hi);
        if *vectors == 0 {
            return Ok(());
        }
        let unit = lo > 0.99 && hi < 1.01;
        let encoding_opt = match encoding {
            Some(VectorEncoding::F32le) => ", encoding: f32le",
            Some(VectorEncoding::Json) => ", encoding: json",
            None => "",
        };
        let norm_opt = if unit { ", min_norm: 0.99, max_norm: 1.01" } else { "" };
        checks.push(suggest(
            format!(
                "{vectors} vectors of dimension {dim} at init, norms {lo:.3}–{hi:.3}{}",
                if unit { " (unit length, so the range is checked)" } else { "" }
            ),
            format!("{table}.{column} vectors well-formed"),
            format!(
                "vector_integrity: {{ table: {}, column: {}, dim: {dim}{encoding_opt}{norm_opt} }}",
                yaml_str(table),
                yaml_str(column)
            ),
        ));
        let k = GOLDEN_K.min(*vectors as usize);
        let lines: String = golden.iter().map(|l| l.to_string() + "\n").collect();
        // Table and column names come from the backup: only safe characters reach a file name.
        let golden = self.write(&format!("{}.{}.golden.jsonl", file_safe(table), file_safe(column)), &lines)?;
        checks.push(suggest(
            format!(
                "{} golden queries sampled from the rows, answered at init by an exact {} search (top {k}){}",
                golden.len(),
                metric_name(*metric),
                if encoding.is_none() { " (the metric of the column's index; cosine without one)" } else { "" }
            ),
            format!("semantic search over {table}.{column} intact"),
            format!(
                "vector_recall: {{ table: {}, column: {}, id: {}, queries: {}, k: {k}, min_recall: 0.95{encoding_opt}{} }}",
                yaml_str(table),
                yaml_str(column),
                yaml_str(id),
                yaml_str(&golden),
                if *metric == Metric::Cosine { String::new() } else { format!(", metric: {}", metric_name(*metric)) }
            ),
        ));
        Ok(())
    }

    async fn postgres(&self, scratch: &Scratch, checks: &mut Vec<Suggested>) -> Result<(), String> {
        let opts: sqlx::postgres::PgConnectOptions =
            scratch.url.parse().map_err(|e| format!("the scratch URL does not parse: {e}"))?;
        let opts = opts.options([("default_transaction_read_only", "on")]).application_name("drillbook-init");
        let pool = drillbook_adapters::sql::no_maintenance(sqlx::postgres::PgPoolOptions::new())
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| format!("cannot connect to the scratch database: {e}"))?;
        let m = drillbook_adapters::postgres::capture(&pool).await.map_err(|e| format!("cannot read it: {e}"))?;
        self.sql_checks(&m, checks)?;
        // pgvector columns with a declared dimension, and their table's one-column key.
        // (table, column, dimension, the table's one-column key, the vector index's operator class)
        type Found = (String, String, i32, Option<String>, Option<String>);
        let columns: Vec<Found> = sqlx::query_as(
            "select a.attrelid::regclass::text, a.attname::text, a.atttypmod, \
               (select k.attname::text from pg_index i join pg_attribute k \
                  on k.attrelid = i.indrelid and k.attnum = i.indkey[0] \
                where i.indrelid = a.attrelid and i.indisprimary and i.indnatts = 1), \
               (select o.opcname::text from pg_index i join pg_opclass o on o.oid = i.indclass[0] \
                where i.indrelid = a.attrelid and i.indkey[0] = a.attnum \
                  and o.opcname::text like 'vector\\_%\\_ops' limit 1) \
             from pg_attribute a join pg_class c on c.oid = a.attrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where a.atttypid = to_regtype('vector') and a.attnum > 0 and not a.attisdropped \
               and c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') \
             order by 1, 2",
        )
        .fetch_all(&pool)
        .await
        .map_err(|e| format!("cannot list vector columns: {e}"))?;
        for (table, column, dim, id, opclass) in columns {
            let Some(id) = id.filter(|_| dim > 0) else { continue };
            // The index's operator class says how the application searches.
            let metric = match opclass.as_deref() {
                Some("vector_l2_ops") => Metric::L2,
                Some("vector_ip_ops") => Metric::Dot,
                _ => Metric::Cosine,
            };
            // Counted, measured and sampled by the server; the answers are the exact search
            // `drillbook manifest --queries` runs (no table is read into memory).
            let (c, t) = (ident(&column), table.as_str());
            let stats =
                format!("select count(*), min(vector_norm({c})), max(vector_norm({c})) from {t} where {c} is not null");
            let (n, lo, hi): (i64, Option<f64>, Option<f64>) = sqlx::query_as(sqlx::AssertSqlSafe(stats))
                .fetch_one(&pool)
                .await
                .map_err(|e| format!("cannot measure {table}.{column}: {e}"))?;
            let every = (n / GOLDEN_QUERIES as i64).max(1);
            let sample = format!(
                "select v from (select {c}::text as v, row_number() over (order by {}) as rn from {t} where {c} is not null) s \
                 where (rn - 1) % $1 = 0 order by rn limit $2",
                ident(&id)
            );
            let sampled: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sample))
                .bind(every)
                .bind(GOLDEN_QUERIES as i64)
                .fetch_all(&pool)
                .await
                .map_err(|e| format!("cannot sample {table}.{column}: {e}"))?;
            let queries: Vec<vectors::GoldenQuery> = sampled
                .iter()
                .enumerate()
                .filter_map(|(i, (text,))| {
                    let vector = serde_json::from_str(text).ok()?;
                    Some(vectors::GoldenQuery { id: format!("q{}", i + 1), vector, expected: Vec::new() })
                })
                .collect();
            let k = GOLDEN_K.min(n.max(0) as usize) as u32;
            let golden = drillbook_adapters::postgres::golden_answers(&pool, &table, &column, &id, metric, k, &queries)
                .await
                .map_err(|e| format!("cannot answer the golden queries of {table}.{column}: {e}"))?;
            let truth = VectorTruth { vectors: n.max(0) as u64, norms: (lo.unwrap_or(0.0), hi.unwrap_or(0.0)), golden };
            let v = VectorColumn { table, column, id, dim: dim as usize, encoding: None, metric };
            self.vector_checks(&v, &truth, checks)?;
        }
        pool.close().await;
        Ok(())
    }

    async fn mariadb(&self, scratch: &Scratch, checks: &mut Vec<Suggested>) -> Result<(), String> {
        use drillbook_adapters::mariadb;
        let opts: sqlx::mysql::MySqlConnectOptions =
            scratch.url.parse().map_err(|e| format!("the scratch URL does not parse: {e}"))?;
        let database = opts.get_database().map(String::from);
        let pool = drillbook_adapters::sql::no_maintenance(sqlx::mysql::MySqlPoolOptions::new())
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| format!("cannot connect to the scratch server: {e}"))?;
        let databases = match database {
            Some(db) => vec![db],
            None => mariadb::user_databases(&pool).await.map_err(|e| format!("cannot list the databases: {e}"))?,
        };
        let m =
            mariadb::capture(&pool, &mariadb::Scope { databases }).await.map_err(|e| format!("cannot read it: {e}"))?;
        self.sql_checks(&m, checks)?;
        checks.push(suggest(
            "CHECK TABLE on every table: the engine itself reads them",
            "tables check clean",
            "check_tables: {}",
        ));
        pool.close().await;
        Ok(())
    }

    /// Key counts per database, the dataset's digest and sampled keys, as `drillbook manifest
    /// --adapter redis` writes them.
    async fn redis(&self, scratch: &Scratch, checks: &mut Vec<Suggested>) -> Result<(), String> {
        use drillbook_adapters::redis;
        let info = redis::connection_info(&scratch.url, None).map_err(|e| format!("the scratch URL: {e}"))?;
        let mut conn = redis::connect(info).await.map_err(|e| format!("cannot connect to the scratch server: {e}"))?;
        let options = redis::CaptureOptions { patterns: Vec::new(), sample: REDIS_SAMPLE };
        let m = redis::capture(&mut conn, &options).await.map_err(|e| format!("cannot read the dataset: {e}"))?;
        let manifest = self.write_json("redis.json", &m)?;
        let keys: u64 = m.databases.values().sum();
        checks.push(suggest(
            format!("{keys} keys in {} database{} at init", m.databases.len(), plural(m.databases.len())),
            "key counts as at init",
            format!("keys: {{ manifest: {manifest} }}"),
        ));
        checks.push(suggest(
            "the whole dataset's digest at init: any changed key, value or expiry shows",
            "the dataset is the one backed up",
            format!("dataset_digest: {{ manifest: {manifest} }}"),
        ));
        if !m.samples.is_empty() {
            checks.push(suggest(
                format!("{} keys sampled at init keep their type, expiry and value", m.samples.len()),
                "sampled keys as at init",
                format!("sample: {{ manifest: {manifest} }}"),
            ));
        }
        Ok(())
    }

    /// Every collection's dimension, space, metadata, count and record digest, as `drillbook
    /// manifest --adapter chroma` writes them, and golden queries sampled from each collection's
    /// own embeddings, answered by an exact search in its space.
    async fn chroma(&self, scratch: &Scratch, checks: &mut Vec<Suggested>) -> Result<(), String> {
        use drillbook_adapters::chroma;
        let api = chroma::Api::new(&scratch.url, "default_tenant", "default_database")?;
        let m = chroma::capture(&api).await.map_err(|e| format!("cannot read the collections: {e}"))?;
        let manifest = self.write_json("chroma.json", &m)?;
        checks.push(suggest(
            format!(
                "{} collection{} at init: dimension, space, metadata, count",
                m.collections.len(),
                plural(m.collections.len())
            ),
            "the collections as at init",
            format!("collections: {{ manifest: {manifest} }}"),
        ));
        for (name, truth) in m.collections.iter().take(MAX_TABLE_CHECKSUMS) {
            let c = yaml_str(name);
            checks.push(suggest(
                format!("ids, documents and metadata of all {} records", truth.records),
                format!("{name} as at init"),
                format!("documents_checksum: {{ collection: {c}, manifest: {manifest} }}"),
            ));
            let (Some(dim), true) = (truth.dimension, truth.records > 0) else { continue };
            checks.push(suggest(
                format!("{} embeddings of dimension {dim} at init", truth.records),
                format!("{name} embeddings well-formed"),
                format!("vector_integrity: {{ collection: {c}, dim: {dim} }}"),
            ));
            let collection = api.collection(name).await?;
            let n = truth.records as usize;
            let mut queries = Vec::new();
            for i in 0..GOLDEN_QUERIES.min(n) {
                let page = api.get(&collection, None, &["embeddings"], i * n / GOLDEN_QUERIES.min(n), 1).await?;
                if let Some(vector) = page.vectors().1.pop().filter(|v| !v.is_empty()) {
                    queries.push(vectors::GoldenQuery { id: format!("q{}", i + 1), vector, expected: Vec::new() });
                }
            }
            let k = GOLDEN_K.min(n);
            let answers = chroma::golden_answers(&api, name, k as u32, &queries).await?;
            let lines: String = answers.iter().map(|a| a.to_string() + "\n").collect();
            let golden = self.write(&format!("{}.golden.jsonl", file_safe(name)), &lines)?;
            checks.push(suggest(
                format!(
                    "{} golden queries sampled from the collection, answered at init by an exact {} search (top {k})",
                    answers.len(),
                    collection.space()
                ),
                format!("semantic search over {name} intact"),
                format!(
                    "vector_recall: {{ collection: {c}, queries: {}, k: {k}, min_recall: 0.95 }}",
                    yaml_str(&golden)
                ),
            ));
        }
        Ok(())
    }

    /// Points, payload schema, vectors and the points digest as `drillbook manifest --adapter
    /// qdrant` writes them, read by the engine that loaded the snapshot; golden queries spread
    /// over the points, answered by Qdrant's own exact search.
    async fn qdrant(&self, cx: &DrillCx, scratch: &Scratch, checks: &mut Vec<Suggested>) -> Result<(), String> {
        let (m, golden) = drillbook_adapters::qdrant::capture_loaded(scratch, GOLDEN_QUERIES, GOLDEN_K, &cx.cancel)
            .await
            .map_err(|e| e.to_string())?;
        let manifest = self.write_json("qdrant.json", &m)?;
        for (name, truth) in &m.collections {
            let c = yaml_str(name);
            checks.push(suggest(
                format!(
                    "{} points at init{}",
                    truth.points,
                    truth.version.as_ref().map(|v| format!(", written by Qdrant {v}")).unwrap_or_default()
                ),
                format!("every point of {name} came back"),
                format!("points: {{ collection: {c}, manifest: {manifest} }}"),
            ));
            checks.push(suggest(
                format!("{} payload fields and the types of their values", truth.payload_schema.len()),
                "payload fields as at init",
                format!("payload_schema: {{ collection: {c}, manifest: {manifest} }}"),
            ));
            for (vector, params) in &truth.vectors {
                let named = if vector.is_empty() { String::new() } else { format!(", vector: {}", yaml_str(vector)) };
                let shown = if vector.is_empty() { "vectors".to_string() } else { format!("`{vector}` vectors") };
                checks.push(suggest(
                    format!("{shown} of dimension {} ({}) at init", params.size, params.distance),
                    format!("{name} {shown} well-formed"),
                    format!("vector_integrity: {{ collection: {c}{named}, dim: {} }}", params.size),
                ));
            }
            for (vector, lines) in &golden {
                let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
                let file = if vector.is_empty() {
                    file_safe(name)
                } else {
                    format!("{}.{}", file_safe(name), file_safe(vector))
                };
                let golden = self.write(&format!("{file}.golden.jsonl"), &text)?;
                let named = if vector.is_empty() { String::new() } else { format!(", vector: {}", yaml_str(vector)) };
                let shown = if vector.is_empty() { name.clone() } else { format!("{name} `{vector}`") };
                checks.push(suggest(
                    format!(
                        "{} golden queries spread over the points, answered at init by Qdrant's exact search (top {GOLDEN_K})",
                        lines.len()
                    ),
                    format!("semantic search over {shown} intact"),
                    format!(
                        "vector_recall: {{ collection: {c}{named}, queries: {}, k: {GOLDEN_K}, min_recall: 0.95 }}",
                        yaml_str(&golden)
                    ),
                ));
            }
            checks.push(suggest(
                "an order-independent digest of every point's id, vectors and payload",
                format!("{name} points as at init"),
                format!("points_checksum: {{ collection: {c}, manifest: {manifest} }}"),
            ));
        }
        Ok(())
    }

    /// A `files` manifest of the restored tree and a `config_parse` per kind of config file.
    fn tree(&self, root: &Path, checks: &mut Vec<Suggested>) -> Result<(), String> {
        let files = relative_files(root);
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        for f in &files {
            let path = root.join(f);
            let mut file = std::fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", one_line(f)))?;
            let mut hasher = sha2::Sha256::new();
            let size =
                std::io::copy(&mut file, &mut hasher).map_err(|e| format!("cannot read {}: {e}", one_line(f)))?;
            bytes += size;
            entries.push((f, size, hex::encode(hasher.finalize())));
        }
        // `sha256sum` format, which people read and `sha256sum -c` checks; JSON when a name
        // would break a line of it (a newline or a backslash in a file name).
        let manifest = if files.iter().all(|f| !f.contains(['\\', '\n', '\r'])) {
            let mut lines = String::new();
            for (f, _, sha) in &entries {
                let _ = writeln!(lines, "{sha}  {f}");
            }
            self.write("files.sha256", &lines)?
        } else {
            let json: Vec<_> = entries
                .iter()
                .map(|(f, size, sha)| serde_json::json!({"path": f, "size": size, "sha256": sha}))
                .collect();
            self.write("files.json", &(serde_json::Value::from(json).to_string() + "\n"))?
        };
        checks.push(suggest(
            format!("{} files, {bytes} bytes at init: each must come back identical, nothing unexpected", files.len()),
            "every file identical to init",
            format!("files: {{ manifest: {manifest} }}"),
        ));
        // One glob per folder and format: `config/*.yaml`.
        let mut globs: BTreeMap<String, (&str, usize)> = BTreeMap::new();
        for f in &files {
            let Some(format) = config_format(f) else { continue };
            // A folder whose name holds glob syntax would not name itself in a glob.
            if f.contains(['*', '?', '[', ']', '{', '}', '\\']) || f.chars().any(char::is_control) {
                continue;
            }
            let ext = f.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
            let glob = match f.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/*.{ext}"),
                None => format!("*.{ext}"),
            };
            globs.entry(glob).or_insert((format, 0)).1 += 1;
        }
        let shown: BTreeSet<_> = globs.keys().take(10).cloned().collect();
        for (glob, (format, n)) in globs.into_iter().filter(|(g, _)| shown.contains(g)) {
            checks.push(suggest(
                format!("{n} {format} file{}; add `require: [dotted.keys]` for the keys your services need", plural(n)),
                format!("{glob} parses"),
                format!("config_parse: {{ path: {} }}", yaml_str(&glob)),
            ));
        }
        Ok(())
    }
}

/// What init learnt of one vector column: how many vectors, the range of their norms, and
/// golden queries spread over the rows with their exact answers.
struct VectorTruth {
    vectors: u64,
    norms: (f64, f64),
    golden: Vec<serde_json::Value>,
}

impl VectorTruth {
    /// From a SQLite table read a page at a time, as the checks read it (a store without a
    /// vector index): the count, the norms and query vectors spread evenly over the table in
    /// one read, then their exact answers in a second (`sqlite::exact_top_k`, the search of
    /// `vector_recall`). Memory holds a page and the queries, never the table.
    async fn of_sqlite(
        pool: &sqlx::SqlitePool,
        table: &str,
        column: &str,
        id: &str,
        encoding: VectorEncoding,
        metric: Metric,
    ) -> Result<VectorTruth, String> {
        use drillbook_adapters::sqlite::{VectorPages, exact_top_k};
        let count = format!("select count(*) from {} where {} is not null", ident(table), ident(column));
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
            .fetch_one(pool)
            .await
            .map_err(|e| format!("cannot count the vectors: {e}"))?;
        let rows = rows.max(0) as usize;
        let wanted = GOLDEN_QUERIES.min(rows);
        let mut pages = VectorPages::new(pool, table, column, id, encoding);
        let (mut seen, mut norms, mut queries) = (0usize, (f64::MAX, f64::MIN), Vec::new());
        loop {
            let (_, page) = pages.next().await.map_err(|e| e.to_string())?;
            if page.is_empty() {
                break;
            }
            for v in page {
                let n = vectors::norm(&v);
                norms = (norms.0.min(n), norms.1.max(n));
                if queries.len() < wanted && seen == queries.len() * rows / wanted {
                    queries.push(v);
                }
                seen += 1;
            }
        }
        let k = GOLDEN_K.min(seen);
        let pages = VectorPages::new(pool, table, column, id, encoding);
        let (_, answers) = exact_top_k(pages, metric, k, queries.clone()).await.map_err(|e| e.to_string())?;
        let golden = queries
            .iter()
            .zip(answers)
            .enumerate()
            .map(|(i, (q, expected))| serde_json::json!({"id": format!("q{}", i + 1), "vector": q, "expected": expected}))
            .collect();
        Ok(VectorTruth { vectors: seen as u64, norms, golden })
    }
}

/// A vector column init found, and how it is searched.
struct VectorColumn {
    table: String,
    column: String,
    /// The column golden answers name rows by.
    id: String,
    dim: usize,
    /// How a store without a vector type holds them; `None` for pgvector.
    encoding: Option<VectorEncoding>,
    metric: Metric,
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Cosine => "cosine",
        Metric::L2 => "l2",
        Metric::Dot => "dot",
    }
}

/// Columns of `table` holding vectors: every sampled value an f32le BLOB of one length, or a
/// JSON array of numbers of one length.
async fn sqlite_vector_columns(
    pool: &sqlx::SqlitePool,
    table: &str,
) -> Result<Vec<(String, VectorEncoding, usize)>, String> {
    let columns: Vec<(String,)> = sqlx::query_as("select name from pragma_table_info(?)")
        .bind(table)
        .fetch_all(pool)
        .await
        .map_err(|e| format!("cannot list the columns of {table}: {e}"))?;
    let mut out = Vec::new();
    for (column,) in columns {
        let sql = format!(
            "select typeof({c}), cast({c} as blob) from {t} where {c} is not null limit 50",
            c = ident(&column),
            t = ident(table)
        );
        let sample: Vec<(String, Vec<u8>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await.unwrap_or_default();
        if sample.is_empty() {
            continue;
        }
        let shapes: Vec<Option<(VectorEncoding, usize)>> = sample
            .iter()
            .map(|(kind, bytes)| {
                let encoding = match kind.as_str() {
                    "blob" if bytes.len() >= 8 && bytes.len() % 4 == 0 => VectorEncoding::F32le,
                    "text" if bytes.first() == Some(&b'[') => VectorEncoding::Json,
                    _ => return None,
                };
                let v = vectors::decode(bytes, encoding).ok()?;
                (v.len() >= 2 && v.iter().all(|x| x.is_finite())).then_some((encoding, v.len()))
            })
            .collect();
        if let Some(Some((encoding, dim))) = shapes.first().copied()
            && shapes.iter().all(|s| *s == Some((encoding, dim)))
        {
            out.push((column, encoding, dim));
        }
    }
    Ok(out)
}

/// The table's one-column primary key, else `rowid`.
async fn sqlite_id_column(pool: &sqlx::SqlitePool, table: &str) -> Result<String, String> {
    let pk: Vec<(String,)> = sqlx::query_as("select name from pragma_table_info(?) where pk > 0")
        .bind(table)
        .fetch_all(pool)
        .await
        .map_err(|e| format!("cannot read the key of {table}: {e}"))?;
    Ok(match pk.as_slice() {
        [(one,)] => one.clone(),
        _ => "rowid".into(),
    })
}

/// The runbook's text: header, choices as comments, TODOs, checks.
#[allow(clippy::too_many_arguments)]
fn compose(
    name: &str,
    source: &SourceArg,
    out: &Path,
    d: &Detected,
    sidecar: bool,
    checks: &[Suggested],
    took: std::time::Duration,
    age: Option<chrono::Duration>,
    location: &str,
) -> String {
    let mut s = String::new();
    let now = Utc::now().format("%Y-%m-%d %H:%M UTC");
    let _ = writeln!(s, "# Written by `drillbook init` on {now} from {}:", one_line(location));
    let _ = writeln!(s, "# {}. It restored that backup once into scratch, as a drill does, and", capitalise(&d.what));
    let _ = writeln!(s, "# captured the ground truth below (truth/{name}/) from the restored copy.");
    let _ = writeln!(s, "# Review every TODO, then: drillbook validate {name}.yaml && drillbook run {name}.yaml");
    let _ = writeln!(s, "version: 1");
    let _ = writeln!(s, "name: {name}");
    let _ = writeln!(
        s,
        "description: {}  # TODO: what this asset is, in a sentence",
        yaml_str(&format!("Restore {name} and prove it"))
    );
    let _ = writeln!(s, "owner: TODO-team  # TODO: who answers for this asset (alerts are labelled with it)");
    let _ = writeln!(s, "# A suggestion: daily at 04:30, after a nightly backup; `drillbook plan {name}.yaml` shows");
    let _ = writeln!(s, "# the next fire times. Schedule it as often as the backup is made.");
    let _ = writeln!(s, "schedule: \"30 4 * * *\"");
    let _ = writeln!(s, "timezone: UTC");
    let _ = writeln!(s, "asset:");
    let _ = writeln!(s, "  name: {name}");
    let kind = if checks.iter().any(|c| c.body.starts_with("vector_recall")) { "vector-store" } else { d.kind };
    let _ = writeln!(s, "  kind: {kind}  # from what was restored: {}", d.what);
    let _ = writeln!(s, "  system: {}", d.adapter);
    let _ = writeln!(s, "objectives:");
    let _ = writeln!(
        s,
        "  # TODO: the objectives you promise. Here restore + capture took {} (RTO measures restore + verify).",
        human_time(took)
    );
    let _ = writeln!(s, "  # rto: 20m");
    match age {
        Some(a) => {
            let _ = writeln!(
                s,
                "  # TODO: the newest backup was {} old at init; RPO is the oldest you accept.",
                human_age(a)
            );
        }
        None => {
            let _ = writeln!(s, "  # TODO: RPO is the oldest backup you accept.");
        }
    }
    let _ = writeln!(s, "  # rpo: 26h");
    let _ = writeln!(s, "source:");
    if let Some((_, why)) = &source.pattern {
        let _ = writeln!(s, "  # the newest object matching `match`: {why}");
    }
    s.push_str(&source.yaml(out));
    if sidecar {
        let _ = writeln!(
            s,
            "  checksum: sidecar  # a .sha256/.checksum file lies beside the backup: verified before restoring"
        );
    }
    let _ = writeln!(s, "restore:");
    let _ = writeln!(s, "  adapter: {}  # {}", d.adapter, d.what);
    for (line, why) in &d.options {
        let _ = writeln!(s, "  {line}  # {why}");
    }
    let _ = writeln!(s, "verify:");
    if checks.is_empty() {
        let _ = writeln!(s, "  []  # TODO: nothing to capture was found; add checks (see `drillbook explain`)");
    }
    for c in checks {
        let _ = writeln!(s, "  # {}", c.why);
        let _ = writeln!(s, "  - name: {}", yaml_str(&c.name));
        let _ = writeln!(s, "    {}", c.body);
    }
    let step = (took.as_secs() * 10).max(300);
    let _ = writeln!(s, "# Ten times what init needed, at least 5 minutes per step.");
    let _ = writeln!(s, "timeouts: {{ step: {}m, drill: {}m }}", step.div_ceil(60), (step * 3).div_ceil(60));
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `40 ms`, `2.3 s`.
fn human_time(d: std::time::Duration) -> String {
    if d.as_secs() == 0 { format!("{} ms", d.as_millis()) } else { format!("{:.1} s", d.as_secs_f64()) }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

fn human_age(a: chrono::Duration) -> String {
    let s = a.num_seconds().max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_match_glob_keeps_the_compound_extension() {
        assert_eq!(shape_of("rag-2026-11-29.tar.zst"), "*.tar.zst");
        assert_eq!(shape_of("pg.2026-11-29.dump.zst"), "*.dump.zst");
        assert_eq!(shape_of("docs.sqlite"), "*.sqlite");
        assert_eq!(shape_of("README"), "README");
    }

    #[test]
    fn the_source_folder_is_written_relative_to_the_runbook() {
        assert_eq!(relative_to(Path::new("/srv/x/backups"), Path::new("/srv/x/runbooks")), "../backups/");
        assert_eq!(relative_to(Path::new("/srv/x/runbooks/b"), Path::new("/srv/x/runbooks")), "b/");
        assert_eq!(relative_to(Path::new("/srv/x"), Path::new("/srv/x")), "./");
    }

    #[test]
    fn names_drop_extensions_dates_and_odd_characters() {
        assert_eq!(derive_name("rag-2026-11-29.tar.zst"), "rag");
        assert_eq!(derive_name("Customer_DB"), "customer-db");
        assert_eq!(derive_name("backups"), "backups");
        assert_eq!(derive_name("2026-11-29.tar"), "backup");
    }
}
