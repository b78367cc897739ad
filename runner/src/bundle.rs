//! The audit bundle: `drillbook audit export` writes one tar an auditor can take away and check
//! with `openssl`, `sha256sum` and `tar` alone; `drillbook audit verify` checks it the same way.
//!
//! ```text
//! drillbook-audit/index.html              what is inside, to browse offline
//! drillbook-audit/VERIFY.md, verify.sh    how to check it, and the check itself
//! drillbook-audit/coverage.csv|.html      every fire time of the period and what served it
//! drillbook-audit/assets.json             the asset map with coverage at export time
//! drillbook-audit/keys/                   the public key(s), a keyring with its validity periods
//! drillbook-audit/reports/<runbook>/<run-id>/report.{json,dsse.json,html,md[,tsr]}
//! drillbook-audit/SHA256SUMS              every file above with its SHA-256
//! drillbook-audit/SHA256SUMS.dsse.json    a DSSE envelope over SHA256SUMS, signed by drillbook's key
//! ```
//! Each report keeps its own envelope from the day of its drill, so the bundle proves both that
//! the reports were signed when their drills ran and that nothing was added, removed or changed
//! since the export.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use drillbook_reports::keyring::Keyring;
use drillbook_reports::sign;
use serde_json::json;
use sha2::{Digest, Sha256};

use drillbook_adapters::checks::files::sha256_file;

use crate::Invalid;
use crate::audit::Row;
use crate::config::Config;
use crate::evidence::{Signer, Signers};
use crate::history::{History, ts};

const ROOT: &str = "drillbook-audit";
pub const BUNDLE_PREDICATE: &str = "https://drillbook.dev/audit-bundle/v1";
const REPORT_FILES: [&str; 4] = ["report.json", "report.dsse.json", "report.html", "report.md"];

/// Writes `out` as it goes. What is known only at the end (`SHA256SUMS`, the coverage files,
/// the index) is spooled to files in a temporary folder beside `out`, so memory stays flat
/// however many reports the period holds.
struct Bundle {
    tar: tar::Builder<BufWriter<File>>,
    sums: BufWriter<File>,
    files: usize,
}

impl Bundle {
    fn add(&mut self, rel: &str, bytes: &[u8]) -> anyhow::Result<String> {
        self.add_reader(rel, bytes.len() as u64, bytes)
    }

    /// Adds the file at `path` as `rel`. The outer error is the file's (it cannot be opened: the
    /// caller says whether it is missing); the inner one the bundle's (it cannot be written).
    fn add_file(&mut self, rel: &str, path: &Path) -> std::io::Result<anyhow::Result<String>> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(self.add_reader(rel, len, file))
    }

    /// Adds `len` bytes of `data` as `rel`, hashing them on the way; returns their SHA-256.
    fn add_reader(&mut self, rel: &str, len: u64, data: impl Read) -> anyhow::Result<String> {
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(if rel.ends_with(".sh") { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_cksum();
        let mut hashing = Hashing { inner: data.take(len), sha: Sha256::new(), read: 0 };
        self.tar
            .append_data(&mut header, format!("{ROOT}/{rel}"), &mut hashing)
            .with_context(|| format!("cannot add {rel}"))?;
        // The tar header promised `len` bytes: a file that shrank while it was read would leave
        // a bundle whose every later entry is misplaced.
        if hashing.read != len {
            anyhow::bail!(
                "{rel} changed while it was added to the bundle ({} bytes read, {len} expected)",
                hashing.read
            );
        }
        let digest = hex::encode(hashing.sha.finalize());
        if !is_manifest(rel) {
            writeln!(self.sums, "{digest}  {rel}").context("cannot spool SHA256SUMS")?;
            self.files += 1;
        }
        Ok(digest)
    }
}

/// Packs report folders into the bundle (on its own thread), and lists them for the index.
struct Packer {
    bundle: Bundle,
    index_rows: BufWriter<File>,
    missing_list: BufWriter<File>,
    reports: usize,
    /// The first `MISSING_NAMED` report files missing on disk, and how many were.
    missing: Vec<String>,
    missing_total: usize,
}

impl Packer {
    fn add_report(&mut self, runbook: &str, run_id: &str, folder: &str) -> anyhow::Result<()> {
        self.reports += 1;
        let mut any = false;
        for name in REPORT_FILES.iter().chain([&crate::timestamp::FILE]) {
            match self.bundle.add_file(&format!("reports/{runbook}/{run_id}/{name}"), &Path::new(folder).join(name)) {
                Ok(added) => {
                    added?;
                    any = true;
                }
                // A trusted timestamp is there only where a TSA is configured.
                Err(_) if *name == crate::timestamp::FILE => {}
                Err(_) => {
                    let path = format!("{folder}/{name}");
                    writeln!(self.missing_list, "<li>{}</li>", esc(&path))?;
                    if self.missing.len() < MISSING_NAMED {
                        self.missing.push(path);
                    }
                    self.missing_total += 1;
                }
            }
        }
        if any {
            writeln!(
                self.index_rows,
                "<tr><td>{}</td><td><a href=\"reports/{0}/{1}/report.html\">{1}</a></td></tr>",
                esc(runbook),
                esc(run_id)
            )?;
        }
        Ok(())
    }
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// The report files missing on disk at export: all of them in the index, the first
/// `MISSING_NAMED` in the signed manifest with the total.
const MISSING_NAMED: usize = 100;

pub async fn export_command(
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let signer = crate::evidence::signer(config)?;
    let key = signer.key_at(Utc::now()).map_err(Invalid)?;
    let history = History::open(&config.state).await?;
    let period = crate::audit::Period::load(config, &history, from, to).await?;
    let beside = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let spool = tempfile::Builder::new()
        .prefix(".drillbook-audit-")
        .tempdir_in(beside)
        .with_context(|| format!("cannot create a spool folder in {}", beside.display()))?;
    let spooled = |name: &str| -> anyhow::Result<BufWriter<File>> {
        let path = spool.path().join(name);
        Ok(BufWriter::new(File::create(&path).with_context(|| format!("cannot create {}", path.display()))?))
    };
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let b = Bundle { tar: tar::Builder::new(BufWriter::new(file)), sums: spooled("SHA256SUMS")?, files: 0 };
    let mut csv = spooled("coverage.csv")?;
    csv.write_all(crate::audit::CSV_HEADER.as_bytes())?;
    let mut coverage = spooled("coverage.html")?;
    coverage.write_all(coverage_head(from, to).as_bytes())?;
    let (mut fires, mut gaps) = (0usize, 0usize);

    // Reading history and checking each report against it (this thread) overlaps with packing
    // the report files (the packer's): one runbook at a time, its coverage rows, then every
    // report of a run started in the period or serving one of its fire times.
    let mut packer = Packer {
        bundle: b,
        index_rows: spooled("index-rows.html")?,
        missing_list: spooled("missing.html")?,
        reports: 0,
        missing: Vec::new(),
        missing_total: 0,
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<(String, String, String)>(256);
    let packing = std::thread::spawn(move || -> anyhow::Result<Packer> {
        for (runbook, run_id, folder) in rx {
            packer.add_report(&runbook, &run_id, &folder)?;
        }
        Ok(packer)
    });
    let collected: anyhow::Result<()> = async {
        for runbook in period.runbooks(&history).await? {
            let rows = period.rows_of(&history, &runbook).await?;
            let mut listed = history.reports_between(&runbook, from, to).await?;
            for r in &rows {
                fires += 1;
                gaps += usize::from(r.is_gap());
                csv.write_all(crate::audit::csv_line(r).as_bytes())?;
                coverage.write_all(coverage_row(r).as_bytes())?;
                if let (Some(run_id), Some(folder)) = (&r.run_id, &r.report) {
                    listed.push((run_id.clone(), folder.clone()));
                }
            }
            listed.sort();
            listed.dedup();
            for (run_id, folder) in listed {
                // The packer stopped: its error is the one to tell.
                if tx.send((runbook.clone(), run_id, folder)).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let packer = packing.join().map_err(|_| anyhow::anyhow!("the bundle's packer panicked"))??;
    collected?;
    let Packer { bundle: mut b, index_rows, missing_list, reports, missing, missing_total } = packer;
    coverage.write_all(COVERAGE_TAIL.as_bytes())?;
    // Flushed and closed: each is read back into the bundle below.
    let done = |w: BufWriter<File>| w.into_inner().map(drop).map_err(|e| e.into_error());
    for spooled in [csv, coverage, index_rows, missing_list] {
        done(spooled)?;
    }

    let add_spooled = |b: &mut Bundle, rel: &str, name: &str| -> anyhow::Result<String> {
        b.add_file(rel, &spool.path().join(name)).with_context(|| format!("cannot read the spooled {name}"))?
    };
    add_spooled(&mut b, "coverage.csv", "coverage.csv")?;
    add_spooled(&mut b, "coverage.html", "coverage.html")?;
    // The asset map of the runbooks folder; without one (runbooks run from elsewhere) the
    // bundle says why it has none rather than failing the export.
    let assets = match crate::inventory::asset_rows(config, &[], &history, Utc::now()).await {
        Ok(rows) => serde_json::to_value(rows)?,
        Err(e) => json!({"error": format!("no asset map: {e:#}")}),
    };
    b.add("assets.json", (serde_json::to_string_pretty(&assets)? + "\n").as_bytes())?;
    let key_files = public_keys(&signer, &key)?;
    for (name, bytes) in &key_files {
        b.add(&format!("keys/{name}"), bytes)?;
    }
    b.add("VERIFY.md", VERIFY_MD.as_bytes())?;
    b.add("verify.sh", VERIFY_SH.as_bytes())?;
    {
        let mut index = spooled("index.html")?;
        index.write_all(index_head(from, to, fires, gaps).as_bytes())?;
        if missing_total > 0 {
            index.write_all(b"<h2>Report files missing on disk at export</h2><ul>\n")?;
            std::io::copy(&mut File::open(spool.path().join("missing.html"))?, &mut index)?;
            index.write_all(b"</ul>\n")?;
        }
        write!(index, "<h2>{reports} reports</h2>\n<table><tr><th>runbook</th><th>run</th></tr>\n")?;
        std::io::copy(&mut File::open(spool.path().join("index-rows.html"))?, &mut index)?;
        index.write_all(b"</table>\n")?;
        done(index)?;
    }
    add_spooled(&mut b, "index.html", "index.html")?;

    // The manifest over every file, then its signature.
    let files = b.files;
    b.sums.flush().context("cannot spool SHA256SUMS")?;
    let sums_digest = add_spooled(&mut b, "SHA256SUMS", "SHA256SUMS")?;
    let statement = json!({
        "_type": sign::STATEMENT_TYPE,
        "subject": [{"name": "SHA256SUMS", "digest": {"sha256": sums_digest}}],
        "predicateType": BUNDLE_PREDICATE,
        "predicate": {"from": ts(from), "to": ts(to), "files": files, "reports": reports,
                      "fire_times": fires, "gaps": gaps, "missing": missing, "missing_total": missing_total,
                      "exported_at": ts(Utc::now())},
    });
    let envelope = sign::sign_statement(&statement, &key)?;
    b.add("SHA256SUMS.dsse.json", (serde_json::to_string_pretty(&envelope)? + "\n").as_bytes())?;
    b.tar.into_inner().context("cannot finish the bundle")?.flush()?;
    println!(
        "wrote {}: {reports} reports, {fires} fire times ({gaps} gaps), {files} files in SHA256SUMS{}",
        out.display(),
        if missing_total == 0 { String::new() } else { format!("; {missing_total} report files missing on disk") }
    );
    Ok(ExitCode::SUCCESS)
}

/// The public half the bundle carries: the keyring's (`keys.yaml` and every `.pub.pem`), or
/// the one key's `signing.pub.pem`.
fn public_keys(signer: &Signer, key: &ed25519_dalek::SigningKey) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    use ed25519_dalek::pkcs8::{EncodePublicKey, spki::der::pem::LineEnding};
    match signer {
        Signer::Ring(dir) => {
            let ring = Keyring::open(dir)?;
            let read = |name: String| -> anyhow::Result<(String, Vec<u8>)> {
                let bytes = std::fs::read(dir.join(&name)).with_context(|| format!("cannot read {name}"))?;
                Ok((name, bytes))
            };
            ring.public_files().into_iter().map(read).collect()
        }
        Signer::Key(_) => {
            let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(vec![("signing.pub.pem".into(), pem.into_bytes())])
        }
    }
}

/// `drillbook audit verify FILE.tar`: what verify.sh checks, without a shell.
///
/// The bundle is read twice and never unpacked: a first pass checks that it holds only files
/// and folders inside `drillbook-audit/` and takes out `SHA256SUMS`, its envelope and `keys/`;
/// the second hashes every file as it streams past and compares it with the next line of
/// `SHA256SUMS` (the order `audit export` writes), holding a report folder's digests, envelope
/// and `report.json` until it is complete, then verifying it on a second thread. A bundle
/// packed again by another tool (another order) is checked the same way against the rest of
/// `SHA256SUMS` held in memory.
pub fn verify_command(bundle: &Path, pubkey: Option<&Path>, keyring: Option<&Path>) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    let fail = |reason: String| -> anyhow::Result<ExitCode> {
        println!("INVALID: {reason}");
        Ok(ExitCode::from(1))
    };
    let root = tmp.path().join(ROOT);
    if let Err(e) = survey(bundle, &root) {
        return fail(e);
    }
    let signers = match Signers::given(pubkey, keyring)? {
        Some(s) => s,
        None => {
            println!(
                "note: using the public key(s) shipped in the bundle; pass --pubkey or --keyring with the ones you trust"
            );
            Signers::of_folder(&root.join("keys")).map_err(|e| Invalid(format!("the bundle's keys: {e}")))?
        }
    };
    match check(bundle, &root, &signers) {
        Ok((files, reports)) => {
            println!(
                "OK: {} — SHA256SUMS signed, {files} files match it, nothing extra; {reports} reports verified",
                bundle.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => fail(e),
    }
}

/// The bundle's files one by one: the path inside `drillbook-audit/` of each regular file
/// (folders skipped), refusing links, special files and paths that leave the folder (a bundle
/// is input, like a backup).
fn for_each_file(
    bundle: &Path,
    seek: bool,
    mut each: impl FnMut(&str, &mut dyn Read) -> Result<(), String>,
) -> Result<(), String> {
    let file = File::open(bundle).map_err(|e| format!("cannot read {}: {e}", bundle.display()))?;
    let not_tar = |e: std::io::Error| format!("{}: not a tar: {e}", bundle.display());
    let mut archive = tar::Archive::new(file);
    let entries =
        if seek { archive.entries_with_seek().map_err(not_tar)? } else { archive.entries().map_err(not_tar)? };
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{}: {e}", bundle.display()))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(format!("{}: holds a link or special file; a bundle holds files only", bundle.display()));
        }
        let path = entry.path().map_err(|e| format!("{}: {e}", bundle.display()))?.into_owned();
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                std::path::Component::Normal(p) => parts.push(p.to_str().ok_or_else(|| {
                    format!("{}: an entry's name is not UTF-8: {}", bundle.display(), path.display())
                })?),
                std::path::Component::CurDir => {}
                _ => {
                    return Err(format!(
                        "{}: an entry points outside the bundle: {}",
                        bundle.display(),
                        path.display()
                    ));
                }
            }
        }
        match parts.split_first() {
            Some((&first, rest)) if first == ROOT && kind.is_file() => each(&rest.join("/"), &mut entry)?,
            Some((&first, _)) if first == ROOT => {}
            None => {}
            Some(_) => {
                return Err(format!("{}: outside {ROOT}/, which SHA256SUMS does not cover (added)", path.display()));
            }
        }
    }
    Ok(())
}

/// The first pass: the bundle's shape, and `SHA256SUMS`, its envelope and `keys/` taken out.
fn survey(bundle: &Path, root: &Path) -> Result<(), String> {
    for_each_file(bundle, true, |rel, data| {
        if is_manifest(rel) || rel.starts_with("keys/") {
            take_out(root, rel, data)?;
        }
        Ok(())
    })
}

/// Writes one file of the bundle under `root`.
fn take_out(root: &Path, rel: &str, data: &mut dyn Read) -> Result<(), String> {
    let path = root.join(rel);
    let io = |e: std::io::Error| format!("cannot unpack {rel}: {e}");
    std::fs::create_dir_all(path.parent().unwrap_or(root)).map_err(io)?;
    std::io::copy(data, &mut File::create(&path).map_err(io)?).map_err(io)?;
    Ok(())
}

/// `SHA256SUMS` and its envelope: the two files the manifest does not list.
fn is_manifest(rel: &str) -> bool {
    rel == "SHA256SUMS" || rel == "SHA256SUMS.dsse.json"
}

fn check(bundle: &Path, root: &Path, signers: &Signers) -> Result<(usize, usize), String> {
    let env = crate::evidence::read_envelope(&root.join("SHA256SUMS.dsse.json"))?;
    let key = signers.key_of(&env)?;
    let statement = sign::verify_statement(&env, &key).map_err(|e| format!("SHA256SUMS.dsse.json: {e}"))?;
    if statement["predicateType"] != BUNDLE_PREDICATE {
        return Err("SHA256SUMS.dsse.json: not a drillbook audit bundle".into());
    }
    let sums_path = root.join("SHA256SUMS");
    let (digest, _) = sha256_file(&sums_path).map_err(|e| format!("SHA256SUMS: {e}"))?;
    if statement["subject"][0]["digest"]["sha256"] != digest {
        return Err("SHA256SUMS was altered: its digest is not the signed one".into());
    }
    let sums = File::open(&sums_path).map_err(|e| format!("SHA256SUMS: {e}"))?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(sums)).map(|line| {
        let line = line.map_err(|e| format!("SHA256SUMS: {e}"))?;
        let (digest, rel) = line.split_once("  ").ok_or_else(|| format!("SHA256SUMS: bad line `{line}`"))?;
        Ok::<_, String>((rel.to_string(), digest.to_string()))
    });
    // In SHA256SUMS order: the next line, not yet matched. Once the bundle's order differs
    // (packed again by another tool): every line not yet matched.
    let mut ahead = lines.next().transpose()?;
    let mut rest: Option<BTreeMap<String, String>> = None;
    // Report folders with files still to come.
    let mut open: HashMap<String, Streamed> = HashMap::new();
    let (mut files, mut reports) = (0usize, 0usize);
    std::thread::scope(|scope| {
        // A complete report folder is verified on a second thread while the tar streams on.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Streamed>(64);
        let verifier = scope.spawn(move || -> Result<usize, String> {
            let mut verified = 0;
            for folder in rx {
                verified += folder.verify(signers)?;
            }
            Ok(verified)
        });
        let streamed = for_each_file(bundle, false, |rel, data| {
            if is_manifest(rel) {
                return Ok(());
            }
            // Every file is hashed as it streams past; of a report, the two files its
            // verification reads are kept until its folder is complete.
            let of = report_folder(rel);
            let name = of.map(|of| &rel[of.len() + 1..]);
            let (found, kept) = if matches!(name, Some("report.dsse.json" | "report.json")) {
                let mut bytes = Vec::new();
                data.take(MAX_KEPT + 1).read_to_end(&mut bytes).map_err(|e| format!("{rel}: {e}"))?;
                if bytes.len() as u64 > MAX_KEPT {
                    return Err(format!("{rel}: larger than {MAX_KEPT} bytes, which no report file is"));
                }
                (hex::encode(Sha256::digest(&bytes)), Some(bytes))
            } else {
                let mut hashing = Hashing { inner: data, sha: Sha256::new(), read: 0 };
                std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| format!("{rel}: {e}"))?;
                (hex::encode(hashing.sha.finalize()), None)
            };
            let listed = match &mut rest {
                None => match ahead.take() {
                    Some((listed, digest)) if listed == rel => {
                        ahead = lines.next().transpose()?;
                        Some(digest)
                    }
                    other => {
                        let mut all = BTreeMap::new();
                        for line in other.into_iter().map(Ok).chain(lines.by_ref()) {
                            let (listed, digest) = line?;
                            all.insert(listed, digest);
                        }
                        rest.insert(all).remove(rel)
                    }
                },
                Some(all) => all.remove(rel),
            };
            match listed {
                Some(digest) if digest == found => files += 1,
                Some(_) => return Err(format!("{rel}: altered (its SHA-256 is not the one in SHA256SUMS)")),
                None => return Err(format!("{rel}: in the bundle but not in SHA256SUMS (added)")),
            }
            let (Some(of), Some(name)) = (of, name) else { return Ok(()) };
            let folder =
                open.entry(of.to_string()).or_insert_with(|| Streamed { folder: of.to_string(), ..Default::default() });
            folder.digests.insert(name.to_string(), found);
            match name {
                "report.dsse.json" => folder.envelope = kept,
                "report.json" => folder.report_json = kept,
                _ => {}
            }
            // Complete once SHA256SUMS lists no other file of it still to come. A verifier
            // that stopped has the error to tell.
            let prefix = format!("{of}/");
            let more = match &rest {
                None => ahead.as_ref().is_some_and(|(listed, _)| listed.starts_with(&prefix)),
                Some(all) => all.range(prefix.clone()..).next().is_some_and(|(listed, _)| listed.starts_with(&prefix)),
            };
            if !more
                && let Some(done) = open.remove(of)
                && tx.send(done).is_err()
            {
                return Err(String::new());
            }
            Ok(())
        });
        drop(tx);
        // The verifier's error first: its folder comes before where the stream stopped.
        reports += verifier.join().map_err(|_| "the report verifier panicked".to_string())??;
        streamed
    })?;
    let missing = match &rest {
        None => ahead.map(|(listed, _)| listed),
        Some(all) => all.keys().next().cloned(),
    };
    if let Some(listed) = missing {
        return Err(format!("{listed}: listed in SHA256SUMS but missing"));
    }
    Ok((files, reports))
}

/// The largest report.json or envelope `audit verify` keeps in memory until its folder is
/// complete (a drill's are tens of KiB).
const MAX_KEPT: u64 = 64 << 20;

/// A report folder of the bundle as it streamed past: each file's SHA-256, and the two files
/// its verification reads.
#[derive(Default)]
struct Streamed {
    /// `reports/<runbook>/<run id>`
    folder: String,
    digests: HashMap<String, String>,
    envelope: Option<Vec<u8>>,
    report_json: Option<Vec<u8>>,
}

impl Streamed {
    /// 1 when the folder holds an envelope, which verified with every file it covers.
    fn verify(&self, signers: &Signers) -> Result<usize, String> {
        let Some(envelope) = &self.envelope else { return Ok(0) };
        let fail = |e: String| format!("report {}/report.dsse.json: {e}", self.folder);
        let env = serde_json::from_slice(envelope).map_err(|e| fail(format!("not a DSSE envelope: {e}")))?;
        let not_there = || std::io::Error::new(std::io::ErrorKind::NotFound, "not in the bundle");
        let files = crate::evidence::ReportFiles {
            shown: self.folder.clone(),
            sha256: &|name| self.digests.get(name).cloned().ok_or_else(not_there),
            report_json: &|| {
                let bytes = self.report_json.as_ref()?;
                Some(
                    String::from_utf8(bytes.clone())
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
                )
            },
        };
        crate::evidence::verify_files(&env, signers, &files).map_err(fail)?;
        Ok(1)
    }
}

/// `reports/<runbook>/<run id>` of a report file's path in the bundle.
fn report_folder(rel: &str) -> Option<&str> {
    let rest = rel.strip_prefix("reports/")?;
    let mut slashes = rest.match_indices('/').map(|(i, _)| i);
    let (_, end) = (slashes.next()?, slashes.next()?);
    Some(&rel[.."reports/".len() + end])
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn coverage_head(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Drill coverage {0} .. {1}</title>\n\
         <style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}tr.gap{{background:#fdd}}</style>\n\
         <h1>Drill coverage {0} .. {1}</h1>\n<table><tr><th>runbook</th><th>fire time</th><th>outcome</th>\
         <th>run</th><th>evidence</th><th>why</th></tr>\n",
        ts(from),
        ts(to)
    )
}

const COVERAGE_TAIL: &str = "</table>\n";

fn coverage_row(r: &Row) -> String {
    let run = match (&r.run_id, &r.report) {
        (Some(id), Some(_)) => {
            format!("<a href=\"reports/{}/{}/report.html\">{}</a>", esc(&r.runbook), esc(id), esc(id))
        }
        (Some(id), None) => esc(id),
        _ => "-".into(),
    };
    format!(
        "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{run}</td><td>{}</td><td>{}</td></tr>\n",
        if r.is_gap() { "gap" } else { "ok" },
        esc(&r.runbook),
        esc(&r.fire),
        esc(&r.outcome),
        esc(&r.evidence),
        esc(&r.why)
    )
}

/// `index.html` up to its lists (the missing files and the reports follow).
fn index_head(from: DateTime<Utc>, to: DateTime<Utc>, fires: usize, gaps: usize) -> String {
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>drillbook audit bundle {0} .. {1}</title>\n\
         <style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style>\n\
         <h1>Recovery drill evidence, {0} .. {1}</h1>\n\
         <p>{fires} scheduled fire times, {gaps} of them gaps: <a href=\"coverage.html\">coverage</a> \
         (<a href=\"coverage.csv\">CSV</a>). Asset map: <a href=\"assets.json\">assets.json</a>. \
         Public keys: <a href=\"keys/\">keys/</a>. How to check this bundle: <a href=\"VERIFY.md\">VERIFY.md</a>.</p>\n",
        ts(from),
        ts(to)
    )
}

const VERIFY_MD: &str = r#"# Checking this bundle

Everything here can be checked with `openssl`, `sha256sum` and `tar` alone:

```sh
tar -xf bundle.tar && cd drillbook-audit
sh verify.sh keys/signing.pub.pem     # or the public key you hold yourself; a keyring: keys/<keyid>.pub.pem
```

`verify.sh` checks, and stops at the first problem, naming it:
1. `SHA256SUMS.dsse.json` is a DSSE envelope over `SHA256SUMS`, signed by the key you give
   (Ed25519; the key's id is the SHA-256 of its DER encoding);
2. every file listed in `SHA256SUMS` is present and unchanged (`sha256sum -c`), and no file
   in the bundle is unlisted;
3. every report's own envelope (`reports/*/*/report.dsse.json`, signed when its drill ran)
   verifies with the key it names in `keys/`, and the report files it covers are unchanged;
4. with a keyring (`keys/keys.yaml`), each report was signed while its key was valid: a key
   signs in `[not_before, not_after)`, so a report claiming a time after its key was retired
   is refused.

`drillbook audit verify bundle.tar [--pubkey FILE | --keyring DIR]` does the same in one step.
`coverage.html` lists every scheduled fire time of the period and what served it; a missed one
says why.
"#;

const VERIFY_SH: &str = r#"#!/bin/sh
# Checks this drillbook audit bundle with openssl and sha256sum alone (see VERIFY.md).
# Usage: sh verify.sh PUBKEY.pem   (run inside the unpacked drillbook-audit folder)
set -eu
cd "$(dirname "$0")"
PUB="${1:?usage: sh verify.sh PUBKEY.pem (the public key you trust)}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
TYPE=application/vnd.in-toto+json

# valid_at KEYID TIME: whether keys/keys.yaml (a keyring's validity periods) lets KEYID sign at
# TIME, i.e. not_before <= TIME < not_after (RFC 3339 times, compared with their fractions padded)
valid_at() {
  awk -v id="$1" -v at="$2" '
    function norm(t,  n, f) {
      gsub(/["\047 ]/, "", t); sub(/Z$/, "", t); sub(/\+00:00$/, "", t)
      n = index(t, "."); f = ""
      if (n) { f = substr(t, n + 1); t = substr(t, 1, n - 1) }
      while (length(f) < 9) f = f "0"
      return t "." f
    }
    $1 == "-" { $0 = substr($0, index($0, "-") + 1) }
    $1 == "keyid:" { v = $2; gsub(/["\047]/, "", v); mine = (v == id); found = found || mine }
    mine && $1 == "not_before:" { nb = norm($2) }
    mine && $1 == "not_after:" { na = norm($2) }
    END { t = norm(at); exit !(found && t >= nb && (na == "" || t < na)) }' keys/keys.yaml
}

# verify_envelope ENVELOPE PUBKEY: the DSSE signature; leaves the payload in $T/payload.json
verify_envelope() {
  grep -o '"payload": *"[^"]*"' "$1" | cut -d'"' -f4 | base64 -d > "$T/payload.json"
  grep -o '"sig": *"[^"]*"' "$1" | cut -d'"' -f4 | base64 -d > "$T/sig.bin"
  printf 'DSSEv1 %d %s %d ' ${#TYPE} "$TYPE" "$(stat -c %s "$T/payload.json")" > "$T/pae.bin"
  cat "$T/payload.json" >> "$T/pae.bin"
  openssl pkeyutl -verify -pubin -inkey "$2" -rawin -in "$T/pae.bin" -sigfile "$T/sig.bin" > /dev/null 2>&1 \
    || { echo "FAILED: $1: bad signature for $2"; exit 1; }
}

verify_envelope SHA256SUMS.dsse.json "$PUB"
SIGNED=$(grep -o '"digest":{"sha256":"[0-9a-f]*"},"name":"SHA256SUMS"' "$T/payload.json" | cut -d'"' -f6)
ACTUAL=$(sha256sum SHA256SUMS | cut -d' ' -f1)
[ "$SIGNED" = "$ACTUAL" ] || { echo "FAILED: SHA256SUMS: its digest is not the signed one"; exit 1; }
sha256sum -c --quiet SHA256SUMS || { echo "FAILED: the files above differ from SHA256SUMS"; exit 1; }
find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.dsse.json | sed 's|^\./||' | sort > "$T/present"
cut -c67- SHA256SUMS | sort > "$T/listed"
if ! cmp -s "$T/present" "$T/listed"; then
  echo "FAILED: files in the bundle but not in SHA256SUMS:"; comm -23 "$T/present" "$T/listed"; exit 1
fi

REPORTS=0
for ENV in reports/*/*/report.dsse.json; do
  [ -e "$ENV" ] || continue
  KEYID=$(grep -o '"keyid": *"[0-9a-f]*"' "$ENV" | head -1 | cut -d'"' -f4)
  KEY=keys/$KEYID.pub.pem
  [ -e "$KEY" ] || KEY="$PUB"
  verify_envelope "$ENV" "$KEY"
  if [ -e keys/keys.yaml ]; then
    AT=$(grep -o '"finished_at":"[^"]*"' "$T/payload.json" | head -1 | cut -d'"' -f4)
    valid_at "$KEYID" "$AT" || {
      echo "FAILED: $ENV: signed at $AT by keyid $KEYID, outside that key's validity in keys/keys.yaml (retired, or not yet valid)"
      exit 1
    }
  fi
  DIR=$(dirname "$ENV")
  grep -o '"report-file"},"digest":{"sha256":"[0-9a-f]*"},"name":"[^"/]*"' "$T/payload.json" |
    sed -E 's/.*"sha256":"([0-9a-f]+)"},"name":"([^"]+)"/\1  \2/' > "$T/files.sha256"
  if [ -s "$T/files.sha256" ]; then
    (cd "$DIR" && sha256sum -c --quiet) < "$T/files.sha256" || { echo "FAILED: $DIR: a report file differs from its signed digest"; exit 1; }
  fi
  REPORTS=$((REPORTS + 1))
done
echo "OK: SHA256SUMS signed by $PUB, $(wc -l < SHA256SUMS) files match it, nothing extra; $REPORTS reports verified"
"#;
