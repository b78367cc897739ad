//! Evidence on disk: keys, the signed envelope, and `report verify` with the hash chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use drillbook_reports::Report;
use drillbook_reports::keyring::Keyring;
use drillbook_reports::sign::{self, Envelope};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::Invalid;
use crate::config::Config;
use crate::history::History;

/// The public half of a key stored as `DIR/signing.pem`.
pub fn public_path(signing: &Path) -> PathBuf {
    signing.with_file_name("signing.pub.pem")
}

/// What signs the reports: one key, or a keyring folder whose key of the moment signs.
pub enum Signer {
    Key(SigningKey),
    Ring(PathBuf),
}

impl Signer {
    /// The key that signs a report finished at `at`: the keyring's key valid then (read at
    /// each use, so a `keygen --rotate` takes effect for a running daemon's next report).
    pub fn key_at(&self, at: DateTime<Utc>) -> Result<SigningKey, String> {
        match self {
            Signer::Key(key) => Ok(key.clone()),
            Signer::Ring(dir) => {
                let ring = Keyring::open(dir).map_err(|e| e.to_string())?;
                ring.signing_key_at(at).map_err(|e| e.to_string())
            }
        }
    }
}

/// The signer of the config; a development key is created on first use when none was
/// configured (and the user is told once, when it is created).
pub fn signer(config: &Config) -> Result<Signer, Invalid> {
    let path = &config.signing_key;
    if path.is_dir() {
        // A keyring: checked whole at start, so a broken one is a config error, not a failed drill.
        let ring = Keyring::open(path).map_err(|e| {
            Invalid(format!(
                "signing_key {} is a folder but not a keyring: {e} (make one with `drillbook keygen --rotate --out {}`)",
                path.display(),
                path.display()
            ))
        })?;
        ring.signing_key().map_err(|e| Invalid(format!("signing_key {}: {e}", path.display())))?;
        return Ok(Signer::Ring(path.clone()));
    }
    if !path.exists() && config.signing_key_is_default {
        let key = sign::generate().map_err(|e| Invalid(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        match sign::write_pair(dir, &key) {
            // Another process (a second daemon starting with this one) made it first: use theirs.
            Err(sign::SignError::Exists { .. }) => {
                return sign::load_signing(path).map(Signer::Key).map_err(|e| Invalid(e.to_string()));
            }
            other => other.map_err(|e| Invalid(e.to_string()))?,
        }
        eprintln!(
            "warning: generated a development signing key at {} (public key {}); configure `signing_key` with a key from `drillbook keygen` for real evidence",
            path.display(),
            public_path(path).display()
        );
        return Ok(Signer::Key(key));
    }
    if !path.exists() {
        return Err(Invalid(format!(
            "signing key {} does not exist; create one with `drillbook keygen --out {}`",
            path.display(),
            path.parent().map(|p| p.display().to_string()).unwrap_or_else(|| ".".into())
        )));
    }
    sign::load_signing(path).map(Signer::Key).map_err(|e| Invalid(e.to_string()))
}

/// `keygen --out DIR`: one key pair. `keygen --rotate --out DIR`: a keyring; adds a key and
/// retires the active one (a folder holding a `signing.pem` pair becomes a keyring whose
/// retired key is that one).
pub fn keygen_command(out: &Path, rotate: bool) -> anyhow::Result<ExitCode> {
    let key = sign::generate()?;
    let keyid = sign::keyid(&key.verifying_key())?;
    if rotate {
        let now = Utc::now();
        let ring = if Keyring::is_keyring(out) {
            let mut ring = Keyring::open(out)?;
            let retired = ring.active().ok().map(|k| k.keyid.clone());
            ring.rotate(&key, now)?;
            if let Some(old) = retired {
                println!("retired keyid {old} as of {now}");
            }
            ring
        } else {
            let single = out.join("signing.pem");
            let mut ring = Keyring::create(out, &key, now)?;
            if single.exists() {
                let old = sign::load_signing(&single)?;
                // The old key signed from its file's creation (the best this host knows) until now.
                let since = std::fs::metadata(&single)
                    .and_then(|m| m.modified())
                    .map(DateTime::<Utc>::from)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                ring.import_retired(&old, since.min(now - chrono::Duration::seconds(1)), now)?;
                println!(
                    "took {} into the keyring as retired keyid {}; signing.pem is no longer used",
                    single.display(),
                    sign::keyid(&old.verifying_key())?
                );
            }
            ring
        };
        println!(
            "keyring {}: active keyid {keyid} (private {keyid}.pem, 0600); {} key(s) in keys.yaml; set `signing_key: {}`",
            ring.dir().display(),
            ring.keys().len(),
            ring.dir().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if out.join("signing.pem").exists() {
        return Err(Invalid(format!(
            "{} already exists; refusing to overwrite a key (rotate with `drillbook keygen --rotate --out {}`)",
            out.join("signing.pem").display(),
            out.display()
        ))
        .into());
    }
    sign::write_pair(out, &key)?;
    println!(
        "wrote {} (private, 0600) and {} (public); keyid {keyid}",
        out.join("signing.pem").display(),
        out.join("signing.pub.pem").display(),
    );
    Ok(ExitCode::SUCCESS)
}

pub fn read_envelope(path: &Path) -> Result<Envelope, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a DSSE envelope: {e}", path.display()))
}

/// Who may have signed: one public key, or a keyring's keys, each for its own period.
pub enum Signers {
    Key(VerifyingKey),
    Ring(Keyring),
}

impl Signers {
    /// The keys given on the command line (`--pubkey FILE` or `--keyring DIR`), if any.
    pub fn given(pubkey: Option<&Path>, keyring: Option<&Path>) -> Result<Option<Signers>, Invalid> {
        Ok(match (pubkey, keyring) {
            (Some(p), _) => Some(Signers::Key(
                sign::load_public(p)
                    .map_err(|e| Invalid(format!("{e} (pass the signer's public key with --pubkey)")))?,
            )),
            (None, Some(dir)) => {
                Some(Signers::Ring(Keyring::open(dir).map_err(|e| Invalid(format!("--keyring: {e}")))?))
            }
            (None, None) => None,
        })
    }

    /// The keys of a folder: a keyring when it holds `keys.yaml`, else its `signing.pub.pem`.
    pub fn of_folder(dir: &Path) -> Result<Signers, String> {
        if Keyring::is_keyring(dir) {
            Ok(Signers::Ring(Keyring::open(dir).map_err(|e| e.to_string())?))
        } else {
            Ok(Signers::Key(sign::load_public(&dir.join("signing.pub.pem")).map_err(|e| e.to_string())?))
        }
    }

    /// The public key of the envelope's signer (a keyring's by the keyid it names).
    pub fn key_of(&self, env: &Envelope) -> Result<VerifyingKey, String> {
        match self {
            Signers::Key(key) => Ok(*key),
            Signers::Ring(ring) => {
                let keyid = sign::signer(env).ok_or("the envelope has no signature")?;
                ring.public(keyid).map_err(|e| e.to_string())
            }
        }
    }

    /// The signature, and with a keyring that the key was valid when the report was signed
    /// (its `finished_at`). Returns what was signed and the keyid that signed it.
    fn verify(&self, env: &Envelope) -> Result<(sign::Signed, String), String> {
        let key = self.key_of(env)?;
        let signed = sign::verify(env, &key).map_err(|e| e.to_string())?;
        let keyid = sign::keyid(&key).map_err(|e| e.to_string())?;
        if let Signers::Ring(ring) = self {
            ring.public_at(&keyid, signed.report.finished_at).map_err(|e| e.to_string())?;
        }
        Ok((signed, keyid))
    }
}

/// Verifies a report folder: the envelope's signature, then every file the signature covers
/// (present, and byte for byte what was signed). An envelope from before files were covered
/// has its `report.json` compared with the signed report instead.
pub fn verify_folder(envelope: &Path, signers: &Signers) -> Result<(Report, String, usize), String> {
    let env = read_envelope(envelope)?;
    let folder = envelope.parent().unwrap_or(Path::new("."));
    let files = ReportFiles {
        shown: folder.display().to_string(),
        sha256: &|name| drillbook_adapters::checks::files::sha256_file(&folder.join(name)).map(|(d, _)| d),
        report_json: &|| match std::fs::read_to_string(folder.join("report.json")) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            read => Some(read),
        },
    };
    verify_files(&env, signers, &files)
}

/// The files of a report folder, however they are read (from disk, or as an audit bundle
/// streams past): the SHA-256 of a file by name, and `report.json`'s text (`None`: absent).
pub struct ReportFiles<'a> {
    /// The folder as error messages name it.
    pub shown: String,
    pub sha256: &'a dyn Fn(&str) -> std::io::Result<String>,
    pub report_json: &'a dyn Fn() -> Option<std::io::Result<String>>,
}

/// [`verify_folder`] on files however they are read.
pub fn verify_files(env: &Envelope, signers: &Signers, files: &ReportFiles) -> Result<(Report, String, usize), String> {
    let (signed, keyid) = signers.verify(env).map_err(|e| format!("{}/report.dsse.json: {e}", files.shown))?;
    for a in &signed.artifacts {
        let path = format!("{}/{}", files.shown, a.name);
        let found = (files.sha256)(&a.name)
            .map_err(|e| format!("{path} is covered by the signature but cannot be read: {e}"))?;
        if found != a.sha256 {
            return Err(format!("{path} was altered: sha256 {found}, signed {}", a.sha256));
        }
    }
    if signed.artifacts.is_empty() {
        // The human-readable copy beside the envelope must be the signed report, to the byte
        // of its canonical form.
        let beside = format!("{}/report.json", files.shown);
        if let Some(text) = (files.report_json)() {
            let on_disk: Result<Report, String> =
                text.map_err(|e| e.to_string()).and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
            let digest = |r: &Report| r.digest().map_err(|e| e.to_string());
            match on_disk {
                Ok(r) if digest(&r)? == digest(&signed.report)? => {}
                Ok(_) => return Err(format!("{beside} differs from the signed payload")),
                Err(e) => return Err(format!("{beside} is not a report: {e}")),
            }
        }
    }
    Ok((signed.report, keyid, signed.artifacts.len()))
}

/// Which keys `report verify` trusts: a public key, a keyring, and the TSA's CA.
pub struct KeyArgs<'a> {
    pub pubkey: Option<&'a Path>,
    pub keyring: Option<&'a Path>,
    pub tsa_ca: Option<&'a Path>,
}

pub async fn verify_command(
    config: &Config,
    envelope: &Path,
    keys: KeyArgs<'_>,
    chain: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let KeyArgs { pubkey, keyring, tsa_ca } = keys;
    let signers = match Signers::given(pubkey, keyring)? {
        Some(s) => s,
        None if Keyring::is_keyring(&config.signing_key) => {
            Signers::Ring(Keyring::open(&config.signing_key).map_err(|e| Invalid(format!("signing_key: {e}")))?)
        }
        None => {
            let p = public_path(&config.signing_key);
            Signers::Key(sign::load_public(&p).map_err(|e| {
                Invalid(format!("{e} (pass the signer's public key with --pubkey, or a keyring with --keyring)"))
            })?)
        }
    };
    let fail = |reason: String| -> anyhow::Result<ExitCode> {
        println!("INVALID: {reason}");
        Ok(ExitCode::from(1))
    };
    let (report, keyid, files) = match verify_folder(envelope, &signers) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    // A trusted timestamp beside the envelope: checked against the TSA's CA when one is known.
    let tsr = envelope.with_file_name(crate::timestamp::FILE);
    let ca = tsa_ca.map(Path::to_path_buf).or_else(|| config.timestamp.as_ref().map(|t| t.ca.clone()));
    let stamped = match (tsr.exists(), ca) {
        (false, _) => String::new(),
        (true, Some(ca)) => match crate::timestamp::verify(envelope, &ca).await {
            Ok(time) => format!("; timestamped at {time} (RFC 3161, checked against {})", ca.display()),
            Err(e) => return fail(e),
        },
        (true, None) => "; report.tsr present but not checked (pass --tsa-ca)".into(),
    };
    let mut links = 0;
    if let Some(root) = chain {
        let recorded = recorded_folders(config, &report.runbook.name).await;
        match walk_chain(root, &report, &signers, &recorded) {
            Ok(n) => links = n,
            Err(e) => return fail(e),
        }
    }
    println!(
        "OK: run {} of {} ({:?}) signed by keyid {keyid}; {}{}",
        report.run_id,
        report.runbook.name,
        report.verdict,
        if files > 0 {
            format!("{files} file(s) of the report folder match their signed digests")
        } else {
            "report.json matches the signed report".into()
        },
        if chain.is_some() { format!("; chain intact over {links} earlier report(s)") } else { String::new() }
    );
    if !stamped.is_empty() {
        println!("  {}", stamped.trim_start_matches("; "));
    }
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

/// Where history recorded each report folder of a runbook (run id → folder), so a chain walk
/// finds a report written elsewhere (`run --report-dir`). Empty when there is no history to ask:
/// an auditor's copy of the reports is walked on its own, and no store is created for it.
async fn recorded_folders(config: &Config, runbook: &str) -> BTreeMap<String, PathBuf> {
    if let Some(path) = crate::history::sqlite_file(&config.state)
        && !Path::new(path).exists()
    {
        return BTreeMap::new();
    }
    let since = DateTime::<Utc>::UNIX_EPOCH;
    let until = Utc::now() + chrono::Duration::days(1);
    match History::open(&config.state).await {
        Ok(h) => h.reports_between(runbook, since, until).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    }
    .into_iter()
    .map(|(run_id, folder)| (run_id, PathBuf::from(folder)))
    .collect()
}

/// Follows `previous` links back through `ROOT/<runbook>/*/`, checking that each linked report
/// exists, has the digest the later one recorded, is signed, and is older. A linked report not
/// there is looked for where history recorded it (`recorded`). Every report of the runbook in
/// `ROOT/<runbook>` must be on the chain: one that is not was cut out of it.
fn walk_chain(
    root: &Path,
    head: &Report,
    signers: &Signers,
    recorded: &BTreeMap<String, PathBuf>,
) -> Result<usize, String> {
    let dir = root.join(&head.runbook.name);
    let mut reports: BTreeMap<String, (Report, PathBuf)> =
        reports_under(&dir)?.into_iter().map(|(r, folder)| (r.run_id.clone(), (r, folder))).collect();
    let elsewhere = |run_id: &str| -> Option<(Report, PathBuf)> {
        let folder = recorded.get(run_id)?;
        let text = std::fs::read_to_string(folder.join("report.json")).ok()?;
        Some((serde_json::from_str(&text).ok()?, folder.clone()))
    };
    // A report of another runbook placed in this one's folder (to stand in for a removed one).
    if let Some((r, folder)) = reports.values().find(|(r, _)| r.runbook.name != head.runbook.name) {
        return Err(format!(
            "chain broken: {} holds a report of runbook {}, not {} (spliced in)",
            folder.display(),
            r.runbook.name,
            head.runbook.name
        ));
    }
    let mut seen = vec![head.run_id.clone()];
    let mut current = head.clone();
    while let Some(prev) = current.previous.clone() {
        if !reports.contains_key(&prev.run_id)
            && let Some(found) = elsewhere(&prev.run_id)
        {
            reports.insert(prev.run_id.clone(), found);
        }
        let Some((r, folder)) = reports.get(&prev.run_id) else {
            let recorded = match recorded.get(&prev.run_id) {
                Some(f) => format!(" (history records it in {}, not there either)", f.display()),
                None => String::new(),
            };
            return Err(format!(
                "chain broken at run {}: its previous report {} is missing from {}{recorded}",
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
        // Reports are chained when committed, so a drill that started earlier may come later
        // in the chain; what must hold is the numbering (or, for reports from before it, that
        // the earlier report had started before the later one finished).
        let in_order = match (r.seq, current.seq) {
            (Some(a), Some(b)) => a + 1 == b,
            _ => r.started_at < current.finished_at,
        };
        if !in_order {
            return Err(format!(
                "chain broken at run {}: report {} is not the one before it (reordered)",
                current.run_id, prev.run_id
            ));
        }
        match verify_folder(&folder.join("report.dsse.json"), signers) {
            Ok((signed, _, _)) if signed.digest().map_err(|e| e.to_string())? == digest => {}
            Ok(_) => {
                return Err(format!("chain broken at run {}: its report.json differs from its envelope", prev.run_id));
            }
            Err(e) => return Err(format!("chain broken at run {}: {e}", prev.run_id)),
        }
        seen.push(prev.run_id.clone());
        current = r.clone();
    }
    // Reports before the head that the chain never reached were cut out of it: by number,
    // or for reports from before the numbering, by start time.
    let before_head = |r: &Report| match (r.seq, head.seq) {
        (Some(a), Some(b)) => a < b,
        _ => r.started_at < head.started_at,
    };
    let mut orphans: Vec<&Report> =
        reports.values().map(|(r, _)| r).filter(|r| before_head(r) && !seen.contains(&r.run_id)).collect();
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
