//! Evidence on disk: keys, the signed envelope, and `report verify` with the hash chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use drillbook_reports::Report;
use drillbook_reports::sign::{self, Envelope};
use ed25519_dalek::SigningKey;

use crate::Invalid;
use crate::config::Config;

/// The public half of a key stored as `DIR/signing.pem`.
pub fn public_path(signing: &Path) -> PathBuf {
    signing.with_file_name("signing.pub.pem")
}

/// The signing key of the config; a development key is created on first use when none was
/// configured (and the user is told once, when it is created).
pub fn signing_key(config: &Config) -> Result<SigningKey, Invalid> {
    let path = &config.signing_key;
    if !path.exists() && config.signing_key_is_default {
        let key = sign::generate().map_err(|e| Invalid(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        match sign::write_pair(dir, &key) {
            // Another process (a second daemon starting with this one) made it first: use theirs.
            Err(sign::SignError::Exists { .. }) => {
                return sign::load_signing(path).map_err(|e| Invalid(e.to_string()));
            }
            other => other.map_err(|e| Invalid(e.to_string()))?,
        }
        eprintln!(
            "warning: generated a development signing key at {} (public key {}); configure `signing_key` with a key from `drillbook keygen` for real evidence",
            path.display(),
            public_path(path).display()
        );
        return Ok(key);
    }
    if !path.exists() {
        return Err(Invalid(format!(
            "signing key {} does not exist; create one with `drillbook keygen --out {}`",
            path.display(),
            path.parent().map(|p| p.display().to_string()).unwrap_or_else(|| ".".into())
        )));
    }
    sign::load_signing(path).map_err(|e| Invalid(e.to_string()))
}

pub fn keygen_command(out: &Path) -> anyhow::Result<ExitCode> {
    if out.join("signing.pem").exists() {
        return Err(Invalid(format!(
            "{} already exists; refusing to overwrite a key",
            out.join("signing.pem").display()
        ))
        .into());
    }
    let key = sign::generate()?;
    sign::write_pair(out, &key)?;
    println!(
        "wrote {} (private, 0600) and {} (public); keyid {}",
        out.join("signing.pem").display(),
        out.join("signing.pub.pem").display(),
        sign::keyid(&key.verifying_key())?
    );
    Ok(ExitCode::SUCCESS)
}

fn read_envelope(path: &Path) -> Result<Envelope, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a DSSE envelope: {e}", path.display()))
}

pub fn verify_command(
    config: &Config,
    envelope: &Path,
    pubkey: Option<&Path>,
    chain: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let key_path = pubkey.map(Path::to_path_buf).unwrap_or_else(|| public_path(&config.signing_key));
    let key = sign::load_public(&key_path)
        .map_err(|e| Invalid(format!("{e} (pass the signer's public key with --pubkey)")))?;
    let fail = |reason: String| -> anyhow::Result<ExitCode> {
        println!("INVALID: {reason}");
        Ok(ExitCode::from(1))
    };
    let env = match read_envelope(envelope) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let report = match sign::verify(&env, &key) {
        Ok(r) => r,
        Err(e) => return fail(format!("{}: {e}", envelope.display())),
    };
    // The human-readable copy beside the envelope must be the signed report, to the byte
    // of its canonical form.
    let beside = envelope.with_file_name("report.json");
    if beside.exists() {
        let on_disk: Result<Report, _> =
            std::fs::read_to_string(&beside).context("read").and_then(|t| serde_json::from_str(&t).context("parse"));
        match on_disk {
            Ok(r) if r.digest()? == report.digest()? => {}
            Ok(_) => return fail(format!("{} differs from the signed payload", beside.display())),
            Err(e) => return fail(format!("{} is not a report: {e:#}", beside.display())),
        }
    }
    let mut links = 0;
    if let Some(root) = chain {
        match walk_chain(root, &report, &key) {
            Ok(n) => links = n,
            Err(e) => return fail(e),
        }
    }
    println!(
        "OK: run {} of {} ({:?}) signed by keyid {}{}",
        report.run_id,
        report.runbook.name,
        report.verdict,
        sign::keyid(&key)?,
        if chain.is_some() { format!("; chain intact over {links} earlier report(s)") } else { String::new() }
    );
    Ok(ExitCode::SUCCESS)
}

/// The `report.json` of a run's folder (the history row's `report`) as JSON; `None` when it
/// is missing or unreadable.
pub fn report_json(folder: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(Path::new(folder).join("report.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Every report in `DIR/*/report.json` (one runbook's folder) with its run folder. Folders
/// without a report are skipped; a report.json that does not parse is an error.
fn reports_under(dir: &Path) -> Result<Vec<(Report, PathBuf)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read the report folder {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let folder = e.path();
        let file = folder.join("report.json");
        if let Ok(text) = std::fs::read_to_string(&file) {
            let r: Report =
                serde_json::from_str(&text).map_err(|err| format!("{}: not a report: {err}", file.display()))?;
            out.push((r, folder));
        }
    }
    Ok(out)
}

/// Follows `previous` links back through `ROOT/<runbook>/*/`, checking that each linked report
/// exists, has the digest the later one recorded, is signed, and is older. Every report of
/// the runbook must be on the chain: one that is not was cut out of it.
fn walk_chain(root: &Path, head: &Report, key: &ed25519_dalek::VerifyingKey) -> Result<usize, String> {
    let dir = root.join(&head.runbook.name);
    let reports: BTreeMap<String, (Report, PathBuf)> =
        reports_under(&dir)?.into_iter().map(|(r, folder)| (r.run_id.clone(), (r, folder))).collect();
    let mut seen = vec![head.run_id.clone()];
    let mut current = head.clone();
    while let Some(prev) = current.previous.clone() {
        let Some((r, folder)) = reports.get(&prev.run_id) else {
            return Err(format!(
                "chain broken at run {}: its previous report {} is missing from {}",
                current.run_id,
                prev.run_id,
                dir.display()
            ));
        };
        let digest = r.digest().map_err(|e| e.to_string())?;
        if digest != prev.sha256 {
            return Err(format!(
                "chain broken at run {}: report {} was altered (sha256 {digest}, recorded {})",
                current.run_id, prev.run_id, prev.sha256
            ));
        }
        if r.started_at >= current.started_at {
            return Err(format!(
                "chain broken at run {}: report {} is not older (reordered)",
                current.run_id, prev.run_id
            ));
        }
        match read_envelope(&folder.join("report.dsse.json"))
            .and_then(|env| sign::verify(&env, key).map_err(|e| e.to_string()))
        {
            Ok(signed) if signed.digest().map_err(|e| e.to_string())? == digest => {}
            Ok(_) => {
                return Err(format!("chain broken at run {}: its report.json differs from its envelope", prev.run_id));
            }
            Err(e) => return Err(format!("chain broken at run {}: {e}", prev.run_id)),
        }
        seen.push(prev.run_id.clone());
        current = r.clone();
    }
    // Reports older than the head that the chain never reached were cut out of it.
    let mut orphans: Vec<&Report> = reports
        .values()
        .map(|(r, _)| r)
        .filter(|r| r.started_at < head.started_at && !seen.contains(&r.run_id))
        .collect();
    orphans.sort_by_key(|r| r.started_at);
    if let Some(o) = orphans.first() {
        return Err(format!(
            "chain broken: report {} is not linked from any later report (a report after it was removed or rewritten)",
            o.run_id
        ));
    }
    Ok(seen.len() - 1)
}

pub fn index_command(config: &Config, report_dir: Option<&Path>, out: &Path) -> anyhow::Result<ExitCode> {
    let root = report_dir.map(Path::to_path_buf).unwrap_or_else(|| config.reports.clone());
    let mut runbooks: BTreeMap<String, Vec<Report>> = BTreeMap::new();
    let mut folders: BTreeMap<String, PathBuf> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(&root) {
        for rb in entries.flatten().filter(|e| e.path().is_dir()) {
            for (report, folder) in reports_under(&rb.path()).map_err(anyhow::Error::msg)? {
                folders.insert(report.run_id.clone(), folder);
                runbooks.entry(report.runbook.name.clone()).or_default().push(report);
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let out_abs = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    let link = |r: &Report| -> String {
        let folder = folders.get(&r.run_id).cloned().unwrap_or_default();
        let abs = std::path::absolute(&folder).unwrap_or(folder);
        match abs.strip_prefix(&out_abs) {
            Ok(rel) => format!("{}/report.html", rel.display()),
            Err(_) => format!("file://{}/report.html", abs.display()),
        }
    };
    let count: usize = runbooks.values().map(Vec::len).sum();
    let html =
        drillbook_reports::render::render_index(runbooks.into_iter().collect(), &link, config.templates.as_deref())?;
    let path = out.join("index.html");
    std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {} ({count} drill reports)", path.display());
    Ok(ExitCode::SUCCESS)
}
