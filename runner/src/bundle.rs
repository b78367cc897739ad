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

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use drillbook_reports::keyring::Keyring;
use drillbook_reports::sign;
use serde_json::json;
use sha2::{Digest, Sha256};

use drillbook_adapters::checks::files::{sha256_file, walk};

use crate::Invalid;
use crate::audit::Row;
use crate::config::Config;
use crate::evidence::{Signer, Signers};
use crate::history::{History, ts};

const ROOT: &str = "drillbook-audit";
pub const BUNDLE_PREDICATE: &str = "https://drillbook.dev/audit-bundle/v1";
const REPORT_FILES: [&str; 4] = ["report.json", "report.dsse.json", "report.html", "report.md"];

/// Writes `out` and its `SHA256SUMS` as it goes (each file hashed while it is added).
struct Bundle {
    tar: tar::Builder<std::io::BufWriter<std::fs::File>>,
    sums: String,
    files: usize,
}

impl Bundle {
    fn add(&mut self, rel: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(if rel.ends_with(".sh") { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_cksum();
        self.tar
            .append_data(&mut header, format!("{ROOT}/{rel}"), bytes)
            .with_context(|| format!("cannot add {rel}"))?;
        if rel != "SHA256SUMS" && rel != "SHA256SUMS.dsse.json" {
            self.sums.push_str(&format!("{}  {rel}\n", hex::encode(Sha256::digest(bytes))));
            self.files += 1;
        }
        Ok(())
    }
}

pub async fn export_command(
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let signer = crate::evidence::signer(config)?;
    let key = signer.key_at(Utc::now()).map_err(Invalid)?;
    let history = History::open(&config.state).await?;
    let rows = crate::audit::coverage(config, &history, from, to).await?;
    let file = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut b = Bundle { tar: tar::Builder::new(std::io::BufWriter::new(file)), sums: String::new(), files: 0 };

    // Every report of a run started in the period, and of every fire time the coverage lists.
    let mut listed: Vec<(String, String, String)> = history.reports_between(from, to).await?;
    for r in &rows {
        if let (Some(run_id), Some(folder)) = (&r.run_id, &r.report) {
            listed.push((r.runbook.clone(), run_id.clone(), folder.clone()));
        }
    }
    listed.sort();
    listed.dedup();
    let mut missing = Vec::new();
    let mut index_rows = String::new();
    for (runbook, run_id, folder) in &listed {
        let mut any = false;
        for name in REPORT_FILES.iter().chain([&crate::timestamp::FILE]) {
            match std::fs::read(Path::new(folder).join(name)) {
                Ok(bytes) => {
                    b.add(&format!("reports/{runbook}/{run_id}/{name}"), &bytes)?;
                    any = true;
                }
                // A trusted timestamp is there only where a TSA is configured.
                Err(_) if *name == crate::timestamp::FILE => {}
                Err(_) => missing.push(format!("{folder}/{name}")),
            }
        }
        if any {
            index_rows.push_str(&format!(
                "<tr><td>{}</td><td><a href=\"reports/{0}/{1}/report.html\">{1}</a></td></tr>\n",
                esc(runbook),
                esc(run_id)
            ));
        }
    }

    b.add("coverage.csv", crate::audit::csv(&rows).as_bytes())?;
    b.add("coverage.html", coverage_html(&rows, from, to).as_bytes())?;
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
    let gaps = rows.iter().filter(|r| r.is_gap()).count();
    b.add("index.html", index_html(from, to, &index_rows, listed.len(), rows.len(), gaps, &missing).as_bytes())?;

    // The manifest over every file, then its signature.
    let sums = std::mem::take(&mut b.sums);
    b.add("SHA256SUMS", sums.as_bytes())?;
    let statement = json!({
        "_type": sign::STATEMENT_TYPE,
        "subject": [{"name": "SHA256SUMS", "digest": {"sha256": hex::encode(Sha256::digest(sums.as_bytes()))}}],
        "predicateType": BUNDLE_PREDICATE,
        "predicate": {"from": ts(from), "to": ts(to), "files": b.files, "reports": listed.len(),
                      "fire_times": rows.len(), "gaps": gaps, "missing": missing, "exported_at": ts(Utc::now())},
    });
    let envelope = sign::sign_statement(&statement, &key)?;
    b.add("SHA256SUMS.dsse.json", (serde_json::to_string_pretty(&envelope)? + "\n").as_bytes())?;
    b.tar.into_inner().context("cannot finish the bundle")?.flush()?;
    println!(
        "wrote {}: {} reports, {} fire times ({gaps} gaps), {} files in SHA256SUMS{}",
        out.display(),
        listed.len(),
        rows.len(),
        b.files,
        if missing.is_empty() { String::new() } else { format!("; {} report files missing on disk", missing.len()) }
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
pub fn verify_command(bundle: &Path, pubkey: Option<&Path>, keyring: Option<&Path>) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    let fail = |reason: String| -> anyhow::Result<ExitCode> {
        println!("INVALID: {reason}");
        Ok(ExitCode::from(1))
    };
    if let Err(e) = unpack(bundle, tmp.path()) {
        return fail(e);
    }
    let root = tmp.path().join(ROOT);
    let signers = match Signers::given(pubkey, keyring)? {
        Some(s) => s,
        None => {
            println!(
                "note: using the public key(s) shipped in the bundle; pass --pubkey or --keyring with the ones you trust"
            );
            Signers::of_folder(&root.join("keys")).map_err(|e| Invalid(format!("the bundle's keys: {e}")))?
        }
    };
    match check(&root, &signers) {
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

fn check(root: &Path, signers: &Signers) -> Result<(usize, usize), String> {
    let env = crate::evidence::read_envelope(&root.join("SHA256SUMS.dsse.json"))?;
    let key = signers.key_of(&env)?;
    let statement = sign::verify_statement(&env, &key).map_err(|e| format!("SHA256SUMS.dsse.json: {e}"))?;
    if statement["predicateType"] != BUNDLE_PREDICATE {
        return Err("SHA256SUMS.dsse.json: not a drillbook audit bundle".into());
    }
    let sums = std::fs::read(root.join("SHA256SUMS")).map_err(|e| format!("SHA256SUMS: {e}"))?;
    if statement["subject"][0]["digest"]["sha256"] != hex::encode(Sha256::digest(&sums)) {
        return Err("SHA256SUMS was altered: its digest is not the signed one".into());
    }
    let mut listed = std::collections::BTreeSet::new();
    for line in String::from_utf8_lossy(&sums).lines() {
        let (digest, rel) = line.split_once("  ").ok_or_else(|| format!("SHA256SUMS: bad line `{line}`"))?;
        let (found, _) =
            sha256_file(&root.join(rel)).map_err(|_| format!("{rel}: listed in SHA256SUMS but missing"))?;
        if found != digest {
            return Err(format!("{rel}: altered (its SHA-256 is not the one in SHA256SUMS)"));
        }
        listed.insert(rel.to_string());
    }
    let present = walk(root).map_err(|e| format!("cannot read the unpacked bundle: {e}"))?;
    for (rel, _) in present {
        if rel != "SHA256SUMS" && rel != "SHA256SUMS.dsse.json" && !listed.contains(&rel) {
            return Err(format!("{rel}: in the bundle but not in SHA256SUMS (added)"));
        }
    }
    let mut reports = 0;
    for rel in listed.iter().filter(|r| r.starts_with("reports/") && r.ends_with("/report.dsse.json")) {
        crate::evidence::verify_folder(&root.join(rel), signers).map_err(|e| format!("report {rel}: {e}"))?;
        reports += 1;
    }
    Ok((listed.len(), reports))
}

/// Unpacks the bundle's regular files and folders only (it is input, like a backup: no link,
/// no path outside the folder).
fn unpack(bundle: &Path, into: &Path) -> Result<(), String> {
    let file = std::fs::File::open(bundle).map_err(|e| format!("cannot read {}: {e}", bundle.display()))?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(|e| format!("{}: not a tar: {e}", bundle.display()))? {
        let mut entry = entry.map_err(|e| format!("{}: {e}", bundle.display()))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(format!("{}: holds a link or special file; a bundle holds files only", bundle.display()));
        }
        let ok = entry.unpack_in(into).map_err(|e| format!("{}: {e}", bundle.display()))?;
        if !ok {
            return Err(format!("{}: an entry points outside the bundle", bundle.display()));
        }
    }
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn coverage_html(rows: &[Row], from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let mut body = String::new();
    for r in rows {
        let run = match (&r.run_id, &r.report) {
            (Some(id), Some(_)) => {
                format!("<a href=\"reports/{}/{}/report.html\">{}</a>", esc(&r.runbook), esc(id), esc(id))
            }
            (Some(id), None) => esc(id),
            _ => "-".into(),
        };
        body.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{run}</td><td>{}</td><td>{}</td></tr>\n",
            if r.is_gap() { "gap" } else { "ok" },
            esc(&r.runbook),
            esc(&r.fire),
            esc(&r.outcome),
            esc(&r.evidence),
            esc(&r.why)
        ));
    }
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Drill coverage {from} .. {to}</title>\n\
         <style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}tr.gap{{background:#fdd}}</style>\n\
         <h1>Drill coverage {} .. {}</h1>\n<table><tr><th>runbook</th><th>fire time</th><th>outcome</th>\
         <th>run</th><th>evidence</th><th>why</th></tr>\n{body}</table>\n",
        ts(from),
        ts(to)
    )
}

fn index_html(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rows: &str,
    reports: usize,
    fires: usize,
    gaps: usize,
    missing: &[String],
) -> String {
    let missing = if missing.is_empty() {
        String::new()
    } else {
        format!(
            "<h2>Report files missing on disk at export</h2><ul>{}</ul>\n",
            missing.iter().map(|m| format!("<li>{}</li>", esc(m))).collect::<String>()
        )
    };
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>drillbook audit bundle {0} .. {1}</title>\n\
         <style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style>\n\
         <h1>Recovery drill evidence, {0} .. {1}</h1>\n\
         <p>{fires} scheduled fire times, {gaps} of them gaps: <a href=\"coverage.html\">coverage</a> \
         (<a href=\"coverage.csv\">CSV</a>). Asset map: <a href=\"assets.json\">assets.json</a>. \
         Public keys: <a href=\"keys/\">keys/</a>. How to check this bundle: <a href=\"VERIFY.md\">VERIFY.md</a>.</p>\n\
         {missing}<h2>{reports} reports</h2>\n<table><tr><th>runbook</th><th>run</th></tr>\n{rows}</table>\n",
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
   verifies with the key it names in `keys/`, and the report files it covers are unchanged.

`drillbook audit verify bundle.tar [--pubkey FILE | --keyring DIR]` does the same in one step.
`coverage.html` lists every scheduled fire time of the period and what served it; a missed one
says why. `keys/keys.yaml`, when present, gives each key's validity period.
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
