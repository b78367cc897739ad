//! `drillbook explain`: the runbook as a numbered checklist an on-call engineer can follow
//! by hand, with the same facts the drill uses.

use std::path::Path;
use std::process::ExitCode;

use drillbook_runbooks::{CheckKind, ChecksumMode, PickRule};

use crate::config::Config;
use crate::plan;

pub fn explain_command(_config: &Config, path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = plan::load(path)?;
    let rb = &loaded.runbook;
    let mut steps: Vec<String> = Vec::new();
    let age = rb.objectives.rpo.as_ref().map(|rpo| {
        format!("Check its age: it must be younger than {} (RPO). If it is older, escalate to {}.", rpo.raw(), rb.owner)
    });
    // Locating a backup, then its age, then reading it.
    let source_steps = |src: &drillbook_runbooks::Source| {
        let mut steps = match &src.restic {
            None => object_steps(src),
            Some(restic) => restic_steps(restic, src),
        };
        if let Some(age) = &age {
            steps.insert(1, age.clone());
        }
        steps
    };
    let shared = rb.restores().iter().any(|r| r.source.is_none());
    if let (true, Some(src)) = (shared, &rb.source) {
        steps.extend(source_steps(src));
    }
    // A stack's restores, one after the other here (the drill runs them at once), each with
    // the checks that name it.
    for (i, restore) in rb.restores().iter().enumerate() {
        let adapter = drillbook_adapters::build(&restore.adapter);
        let lane = if rb.is_stack() { format!("[{}] ", restore.name()) } else { String::new() };
        let mut own = Vec::new();
        if let Some(src) = &restore.source {
            own.extend(source_steps(src));
        }
        if let Some(from) = &restore.from {
            own.push(format!("Take `{from}` from the unpacked backup; it is what this restore restores."));
        }
        own.extend(adapter.explain_restore("backup"));
        for c in rb.verify.iter().filter(|c| !c.check.is_coherence() && rb.restore_of(c) == i) {
            let how = match &c.check {
                CheckKind::Command(cmd) => {
                    format!("run `{}` in the restored folder; it must exit 0", cmd.run.join(" "))
                }
                CheckKind::Files(f) => format!(
                    "`sha256sum -c {}` in the restored folder must print OK for every file{}",
                    f.manifest,
                    if f.allow_extra { "" } else { ", and no other file may exist" }
                ),
                CheckKind::ConfigParse(p) => format!(
                    "every file matching `{}` must parse{}",
                    p.path.raw(),
                    if p.require.is_empty() { String::new() } else { format!(" and contain {}", p.require.join(", ")) }
                ),
                _ => adapter.explain_check(c),
            };
            own.push(format!("Check \"{}\": {}.", c.name, how.trim_end_matches('.')));
        }
        steps.extend(own.into_iter().map(|s| format!("{lane}{s}")));
    }
    for c in rb.verify.iter().filter(|c| c.check.is_coherence()) {
        steps.push(format!("Check \"{}\" across the restores: {}.", c.name, coherence_step(rb, &c.check)));
    }
    steps.push(if rb.is_stack() {
        "Tear every scratch copy down, the last restored first: delete the folders and anything started for them."
            .into()
    } else {
        "Tear the scratch copy down: delete the folder and anything started for it.".into()
    });
    if let Some(rto) = &rb.objectives.rto {
        steps.push(format!("All of the above must be done within {} (RTO).", rto.raw()));
    }
    println!("# {} — recovery checklist", rb.name());
    if let Some(d) = &rb.description {
        println!("{d}");
    }
    let kind = |a: &drillbook_runbooks::Asset| {
        serde_json::to_value(a.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    };
    println!("Asset: {} ({}), owner: {}", rb.asset.name, kind(&rb.asset), rb.owner);
    for r in rb.restores() {
        if let Some(a) = &r.asset {
            println!("  restore `{}` brings back: {} ({})", r.name(), a.name, kind(a));
        }
    }
    println!();
    for (i, s) in steps.iter().enumerate() {
        println!("{:>2}. [ ] {s}", i + 1);
    }
    Ok(ExitCode::SUCCESS)
}

/// A check across restores as a manual step.
fn coherence_step(rb: &drillbook_runbooks::Runbook, check: &CheckKind) -> String {
    let set = |s: &drillbook_runbooks::ValueSet| s.describe(rb);
    match check {
        CheckKind::References(r) => format!(
            "every value of {} must be among {}{}",
            set(&r.from),
            set(&r.to),
            if r.max_missing > 0 { format!(" (at most {} missing)", r.max_missing) } else { String::new() }
        ),
        CheckKind::SameSet(c) => format!("{} and {} must hold the same values", set(&c.a), set(&c.b)),
        CheckKind::SameCount(c) => format!("{} and {} must be as many", set(&c.a), set(&c.b)),
        CheckKind::MaxSkew(m) => format!(
            "the backups of {} must have been taken within {} of each other",
            if m.restores.is_empty() { "every restore".to_string() } else { m.restores.join(", ") },
            m.max.raw()
        ),
        CheckKind::ConfigMatches(c) => format!(
            "`{}` in `{}` of {} must equal the first of {}",
            c.config.key,
            c.config.file,
            rb.restores()[rb.restore_named(c.config.on.as_deref())].name(),
            set(&c.equals)
        ),
        CheckKind::SameResults(r) => format!(
            "run each of {} on {}; every restore must answer the same rows",
            r.queries.iter().map(|q| format!("`{}`", q.trim())).collect::<Vec<_>>().join(", "),
            r.restores.join(" and ")
        ),
        other => other.name().to_string(),
    }
}

/// Locating, copying, verifying and unpacking an object of a storage profile.
fn object_steps(src: &drillbook_runbooks::Source) -> Vec<String> {
    let mut steps = Vec::new();
    let pattern = src.pattern.as_ref().map(|g| format!(" matching `{}`", g.raw())).unwrap_or_default();
    let by = match &src.time_format {
        Some(f) => format!(" by the times in their names (`{f}`)"),
        None => " by modification time".to_string(),
    };
    let within = src.within.as_ref().map(|w| format!(" within {}", w.raw())).unwrap_or_default();
    let under = format!("under `{}` in storage `{}`{pattern}", src.path, src.storage);
    steps.push(match src.pick.rule() {
        PickRule::Latest => format!("Locate the newest backup {under}{by}."),
        PickRule::Oldest => format!("Locate the oldest backup{within} {under}{by}."),
        PickRule::Random => format!(
            "List the backups{within} {under}{by} and take one at random (the drill's report names the one it took)."
        ),
        PickRule::At(at) => format!("Locate the newest backup at or before {at}{within} {under}{by}."),
        PickRule::Exact(name) => {
            format!("Locate the backup `{name}` under `{}` in storage `{}`.", src.path, src.storage)
        }
    });
    steps.push("Copy it to a private scratch folder on this machine.".into());
    steps.push(match src.checksum {
        ChecksumMode::Sidecar => "Verify it: `sha256sum -c <object>.sha256` must print OK (or, with a Qdrant-style \
                                  `<object>.checksum`, `sha256sum <object>` must print the hash it holds)."
            .into(),
        ChecksumMode::Manifest => "Verify it: `sha256sum -c --ignore-missing SHA256SUMS` must print OK for it.".into(),
        ChecksumMode::None => {
            "Record its SHA-256 (`sha256sum <object>`); the runbook names no checksum to compare with.".into()
        }
    });
    steps.push("Unpack it into an empty folder: `zstd -d < B | tar x` (or `gzip -d`), refusing paths with `..` or absolute paths.".into());
    steps
}

/// Choosing a restic snapshot and dumping what the drill restores from it.
fn restic_steps(restic: &drillbook_runbooks::ResticSource, src: &drillbook_runbooks::Source) -> Vec<String> {
    let repo = format!("restic -r {} --no-lock", restic.repository);
    let mut filters = String::new();
    if !restic.tags.is_empty() {
        filters.push_str(&format!(" --tag {}", restic.tags.join(",")));
    }
    if let Some(host) = &restic.host {
        filters.push_str(&format!(" --host {host}"));
    }
    let within = src.within.as_ref().map(|w| format!(" within {}", w.raw())).unwrap_or_default();
    let choose = if restic.snapshot != "latest" {
        format!("Find snapshot {}: `{repo} snapshots {}`.", restic.snapshot, restic.snapshot)
    } else {
        match src.pick.rule() {
            PickRule::Oldest => format!("List the snapshots: `{repo} snapshots{filters}`; take the oldest{within}."),
            PickRule::Random => format!(
                "List the snapshots: `{repo} snapshots{filters}`; take one{within} at random (the drill's report names the one it took)."
            ),
            PickRule::At(at) => {
                format!("List the snapshots: `{repo} snapshots{filters}`; take the newest at or before {at}{within}.")
            }
            _ => format!("List the snapshots: `{repo} snapshots{filters}`; take the newest."),
        }
    };
    let mut steps = vec![choose];
    if let Some(share) = &restic.verify_repository {
        steps.push(format!(
            "Read back {} of the repository's data: `{repo} check --read-data-subset {}` must report no errors.",
            share.raw(),
            share.raw()
        ));
    }
    let include = if restic.path == "/" { String::new() } else { format!(" --include {}", restic.path) };
    steps.push(format!(
        "Restore it into an empty private folder, as an unprivileged user: `{repo} restore <snapshot> --target <folder>{include}`; \
         refuse links that leave the folder, devices and FIFOs."
    ));
    steps
}
