//! Parse → validate → build: everything that can be known before a drill runs. Nothing
//! here connects to anything; `drillbook validate` runs exactly this.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use drillbook_adapters::source::{Restic, Storage};
use drillbook_adapters::unpack::Decryption;
use drillbook_adapters::{ScratchTarget, Secrets, ServerScratch, can_run};
use drillbook_runbooks::{Restore, Runbook, ScratchSpec, Source};
use sha2::{Digest, Sha256};

use crate::Invalid;
use crate::config::Config;
use crate::execute::{DrillPlan, Origin, RestorePlan, SourcePlan};

/// A parsed runbook with its file facts.
#[derive(Clone)]
pub struct Loaded {
    pub runbook: Runbook,
    pub path: PathBuf,
    pub sha256: String,
}

/// Reads and parses one runbook; every issue at once.
pub fn load(path: &Path) -> Result<Loaded, Invalid> {
    load_with_text(path).map(|(loaded, _)| loaded)
}

/// The same, with the text it was parsed from (the daemon records each version it ran).
pub fn load_with_text(path: &Path) -> Result<(Loaded, String), Invalid> {
    let text = std::fs::read_to_string(path).map_err(|e| Invalid(format!("{}: cannot read: {e}", path.display())))?;
    parse(path, &text).map(|loaded| (loaded, text))
}

/// Parses the text of the runbook at `path` (the daemon keeps the text of the version in use
/// and parses it again when a drill of it starts).
pub fn parse(path: &Path, text: &str) -> Result<Loaded, Invalid> {
    let shown = path.display().to_string();
    let runbook = Runbook::parse(&shown, text).map_err(|issues| Invalid(issues.to_string()))?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let loaded = Loaded { runbook, path: abs, sha256: hex::encode(Sha256::digest(text.as_bytes())) };
    let problems = check_against_registry(&loaded, &shown);
    if !problems.is_empty() {
        return Err(Invalid(problems.join("\n")));
    }
    Ok(loaded)
}

/// Rules that need the adapter registry: every check kind must be one its restore's adapter runs.
fn check_against_registry(l: &Loaded, shown: &str) -> Vec<String> {
    let rb = &l.runbook;
    let adapters: Vec<_> = rb.restores().iter().map(|r| drillbook_adapters::build(&r.adapter)).collect();
    let mut out = Vec::new();
    for (i, c) in rb.verify.iter().enumerate() {
        for (side, set) in c.check.value_sets() {
            let at = rb.restore_named(set.on.as_deref());
            if let Some(query) = set.store_query()
                && !adapters[at].answers().contains(&query.key())
            {
                out.push(format!(
                    "{shown}: verify[{i}].{}.{side}.{key}: adapter `{}` (restore `{}`) answers no `{key}` sets; {hint}",
                    c.check.name(),
                    adapters[at].kind(),
                    rb.restores()[at].name(),
                    key = query.key(),
                    hint = match adapters[at].answers() {
                        [] => "use `files:` or a restore that does".to_string(),
                        some => format!("it answers {}", some.join(", ")),
                    }
                ));
            }
        }
        if let drillbook_runbooks::CheckKind::SameResults(r) = &c.check {
            for name in &r.restores {
                let at = rb.restore_named(Some(name));
                if !adapters[at].answers().contains(&"sql") {
                    out.push(format!(
                        "{shown}: verify[{i}].same_results: adapter `{}` (restore `{name}`) answers no SQL",
                        adapters[at].kind()
                    ));
                }
            }
        }
        if c.check.is_coherence() {
            continue;
        }
        let adapter = &adapters[rb.restore_of(c)];
        if !can_run(adapter.as_ref(), &c.check) {
            let on = if rb.is_stack() {
                format!(" (restore `{}`)", rb.restores()[rb.restore_of(c)].name())
            } else {
                String::new()
            };
            out.push(format!(
                "{shown}: verify[{i}]: adapter `{}`{on} cannot run `{}` checks",
                adapter.kind(),
                c.check.name()
            ));
        }
    }
    for (i, (r, adapter)) in rb.restores().iter().zip(&adapters).enumerate() {
        if let ScratchSpec::Server(name) = r.scratch.get()
            && adapter.server_kinds().is_empty()
        {
            out.push(format!(
                "{shown}: {}.scratch: adapter `{}` has no server scratch providers (`server:{name}`); use `local`",
                restore_path(rb, i),
                adapter.kind()
            ));
        }
    }
    out
}

/// `restore` or `restores[i]`, as messages name a restore.
fn restore_path(rb: &Runbook, i: usize) -> String {
    if rb.restore.is_some() { "restore".into() } else { format!("restores[{i}]") }
}

/// The drill's backups: its `source` when a restore reads it (owner `None`), then each
/// restore's own, with the path messages name them by.
fn sources(rb: &Runbook) -> Vec<(Option<usize>, &Source, String)> {
    let mut out = Vec::new();
    if let Some(src) = &rb.source
        && rb.restores().iter().any(|r| r.source.is_none())
    {
        out.push((None, src, "source".to_string()));
    }
    for (i, r) in rb.restores().iter().enumerate() {
        if let Some(src) = &r.source {
            out.push((Some(i), src, format!("{}.source", restore_path(rb, i))));
        }
    }
    out
}

/// The storage profile a source names (`None`: the built-in `local`), or why there is none.
fn storage_profile<'c>(
    config: &'c Config,
    loaded: &Loaded,
    src: &Source,
    at: &str,
) -> Result<Option<&'c std::collections::BTreeMap<String, String>>, Invalid> {
    if src.storage == "local" && !config.storage.contains_key("local") {
        return Ok(None);
    }
    config.storage.get(&src.storage).map(Some).ok_or_else(|| {
        let known: Vec<&str> = std::iter::once("local").chain(config.storage.keys().map(String::as_str)).collect();
        let hint = drillbook_runbooks::nearest(&src.storage, known.iter().copied())
            .map(|n| format!(", did you mean `{n}`?"))
            .unwrap_or_default();
        Invalid(format!(
            "{}: {at}.storage: no storage profile `{}` in the config{hint} (known: {})",
            loaded.path.display(),
            src.storage,
            known.join(", ")
        ))
    })
}

/// A config `scratch:` entry a runbook names, its references not resolved.
struct ScratchEntry<'c> {
    name: &'c str,
    values: &'c std::collections::BTreeMap<String, String>,
    kind: String,
}

/// The config's `scratch:` entry a restore's `server:<name>` names, if it names one: it must
/// exist and serve this adapter.
fn scratch_entry<'c>(
    config: &'c Config,
    loaded: &Loaded,
    restore: &Restore,
    at: &str,
) -> Result<Option<ScratchEntry<'c>>, Invalid> {
    let ScratchSpec::Server(name) = restore.scratch.get() else {
        return Ok(None);
    };
    let shown = loaded.path.display();
    let (name, entry) = config.scratch.get_key_value(name).ok_or_else(|| {
        let hint = drillbook_runbooks::nearest(name, config.scratch.keys().map(String::as_str))
            .map(|n| format!(", did you mean `server:{n}`?"))
            .unwrap_or_default();
        Invalid(format!("{shown}: {at}.scratch: no scratch server `{name}` in the config{hint}"))
    })?;
    let kind = entry.get("type").cloned().unwrap_or_default();
    let adapter = drillbook_adapters::build(&restore.adapter);
    if !adapter.server_kinds().contains(&kind.as_str()) {
        return Err(Invalid(format!(
            "{shown}: {at}.scratch: scratch server `{name}` is of type `{kind}`, which adapter `{}` cannot use",
            adapter.kind()
        )));
    }
    Ok(Some(ScratchEntry { name: name.as_str(), values: entry, kind }))
}

/// What `validate` checks without production secrets: the profiles and servers a runbook
/// names exist, and every secret reference they hold is well-formed (not resolved).
pub fn check_references(config: &Config, loaded: &Loaded) -> Result<(), Invalid> {
    let well_formed = |section: String, values: &std::collections::BTreeMap<String, String>| {
        values.iter().try_for_each(|(k, v)| {
            drillbook_runbooks::SecretRef::find(v).map(|_| ()).map_err(|e| Invalid(format!("{section}.{k}: {e}")))
        })
    };
    let rb = &loaded.runbook;
    for (_, src, at) in sources(rb) {
        if let Some(profile) = storage_profile(config, loaded, src, &at)? {
            well_formed(format!("storage.{}", src.storage), profile)?;
        }
    }
    for (i, r) in rb.restores().iter().enumerate() {
        if let Some(entry) = scratch_entry(config, loaded, r, &restore_path(rb, i))? {
            well_formed(format!("scratch.{}", entry.name), entry.values)?;
        }
    }
    Ok(())
}

/// Builds what a drill needs from a loaded runbook and the config, resolving secrets.
pub fn build(config: &Config, loaded: Loaded) -> Result<DrillPlan, Invalid> {
    let secrets = Secrets::default();
    let rb = &loaded.runbook;
    let mut built = Vec::new();
    for (owner, src, at) in sources(rb) {
        built.push(build_source(config, &loaded, &secrets, owner, src, &at)?);
    }
    let mut restores = Vec::new();
    for (i, r) in rb.restores().iter().enumerate() {
        let source = built
            .iter()
            .position(|s: &SourcePlan| s.owner == Some(i))
            .or_else(|| built.iter().position(|s| s.owner.is_none()))
            .ok_or_else(|| {
                Invalid(format!("{}: {}: no backup to restore", loaded.path.display(), restore_path(rb, i)))
            })?;
        let scratch = match scratch_entry(config, &loaded, r, &restore_path(rb, i))? {
            None => ScratchTarget::Local,
            Some(ScratchEntry { name, values, kind }) => {
                let resolve = |key: &str| -> Result<Option<String>, Invalid> {
                    values
                        .get(key)
                        .map(|v| secrets.expand(v).map_err(|e| Invalid(format!("scratch.{name}.{key}: {e}"))))
                        .transpose()
                };
                ScratchTarget::Server(ServerScratch {
                    name: name.to_string(),
                    kind,
                    url: resolve("url")?.unwrap_or_default(),
                    password: resolve("password")?,
                })
            }
        };
        restores.push(RestorePlan { source, scratch });
    }
    Ok(DrillPlan {
        runbook: loaded.runbook,
        path: loaded.path,
        sha256: loaded.sha256,
        sources: built,
        restores,
        secrets,
        keep_min_free: config.keep_min_free,
        broken: None,
    })
}

/// One backup of the drill: its storage (or restic repository) and decryption, secrets resolved.
fn build_source(
    config: &Config,
    loaded: &Loaded,
    secrets: &Secrets,
    owner: Option<usize>,
    src: &Source,
    at: &str,
) -> Result<SourcePlan, Invalid> {
    let storage = match storage_profile(config, loaded, src, at)? {
        None => Storage::local().map_err(|e| Invalid(e.to_string()))?,
        Some(profile) => {
            let mut resolved = std::collections::BTreeMap::new();
            for (k, v) in profile {
                let value = secrets.expand(v).map_err(|e| Invalid(format!("storage.{}.{k}: {e}", src.storage)))?;
                resolved.insert(k.clone(), value);
            }
            Storage::from_profile(&src.storage, &resolved).map_err(|e| Invalid(e.to_string()))?
        }
    };
    let base = loaded.path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let origin = match &src.restic {
        None => Origin::Storage { path: storage.resolve(&src.path, &base), storage },
        Some(restic) => {
            let password =
                secrets.resolve(restic.password.get()).map_err(|e| Invalid(format!("{at}.restic.password: {e}")))?;
            let mut env = Vec::new();
            for (k, v) in &restic.env {
                env.push((k.clone(), secrets.expand(v).map_err(|e| Invalid(format!("{at}.restic.env.{k}: {e}")))?));
            }
            let built = Restic::new(restic, &base, password, env).map_err(|e| Invalid(e.to_string()))?;
            Origin::Restic(Box::new(built))
        }
    };
    let decryption = match &src.decrypt {
        None => None,
        Some(d) => {
            let text = secrets
                .resolve(d.age_identity.get())
                .map_err(|e| Invalid(format!("{at}.decrypt.age_identity: {e}")))?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                secrets.remember(line);
            }
            Some(Decryption::parse(&text).map_err(|e| Invalid(format!("{at}.decrypt.age_identity: {e}")))?)
        }
    };
    Ok(SourcePlan { origin, decryption, owner })
}

/// [`build`] for a scheduled drill: a runbook that cannot be built at fire time still
/// becomes a drill, one that fails at `locate` with the reason (never a silent skip).
pub fn build_or_broken(config: &Config, loaded: Loaded) -> Result<DrillPlan, Invalid> {
    match build(config, loaded.clone()) {
        Ok(plan) => Ok(plan),
        Err(why) => Ok(DrillPlan {
            sources: Vec::new(),
            restores: loaded
                .runbook
                .restores()
                .iter()
                .map(|_| RestorePlan { source: 0, scratch: ScratchTarget::Local })
                .collect(),
            runbook: loaded.runbook,
            path: loaded.path,
            sha256: loaded.sha256,
            secrets: Secrets::default(),
            keep_min_free: config.keep_min_free,
            broken: Some(format!("the runbook cannot be built with the current config and environment: {}", why.0)),
        }),
    }
}

/// Runbook files named by the arguments (folders: every `*.yaml`/`*.yml` inside, recursively).
pub fn expand(paths: &[PathBuf], default: &Path) -> Result<Vec<PathBuf>, Invalid> {
    let roots: Vec<PathBuf> = if paths.is_empty() { vec![default.to_path_buf()] } else { paths.to_vec() };
    let mut out = Vec::new();
    for root in roots {
        if root.is_dir() {
            let mut stack = vec![root];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|e| Invalid(format!("{}: {e}", dir.display())))?;
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                        out.push(p);
                    }
                }
            }
        } else if root.exists() {
            out.push(root);
        } else {
            return Err(Invalid(format!("{}: no such file or folder", root.display())));
        }
    }
    out.sort();
    Ok(out)
}

/// `drillbook validate [--resolve]`: without `--resolve` no secret is read (CI pipelines have
/// none), with it every reference is resolved as a drill would.
pub fn validate_command(config: &Config, paths: &[PathBuf], resolve: bool) -> anyhow::Result<ExitCode> {
    let files = expand(paths, &config.runbooks)?;
    let mut problems = Vec::new();
    let mut names: std::collections::BTreeMap<String, PathBuf> = Default::default();
    for f in &files {
        match load(f).and_then(|l| {
            let name = l.runbook.name().to_string();
            let pos = l.runbook.name.pos();
            if resolve { build(config, l).map(|_| ()) } else { check_references(config, &l) }.map(|()| (name, pos))
        }) {
            Ok((name, pos)) => {
                if let Some(first) = names.get(&name) {
                    problems.push(format!(
                        "{}:{}:{}: name: duplicate runbook name `{name}` (also in {})",
                        f.display(),
                        pos.line,
                        pos.col,
                        first.display()
                    ));
                } else {
                    names.insert(name, f.clone());
                }
            }
            Err(e) => problems.push(e.0),
        }
    }
    if problems.is_empty() {
        println!("{} runbook(s) valid", files.len());
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Invalid(problems.join("\n")).into())
    }
}
