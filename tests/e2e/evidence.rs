//! Signed evidence: keys, DSSE envelopes, `report verify`, the hash chain, and openssl alone.

use std::process::Command;

use crate::support::{Sandbox, copy_dir};

fn run_ids(sb: &Sandbox) -> Vec<String> {
    // History is newest first; the chain is easier to read oldest first.
    let mut ids: Vec<String> = sb.history().iter().map(|h| h["run_id"].as_str().unwrap().to_string()).collect();
    ids.reverse();
    ids
}

fn envelope(run_id: &str) -> String {
    format!("drill-reports/quickstart-rag/{run_id}/report.dsse.json")
}

#[test]
fn keygen_writes_a_private_and_a_public_key_and_never_overwrites() {
    let sb = Sandbox::new();
    let r = sb.run(&["keygen", "--out", "keys"]);
    assert_eq!(r.code, 0, "{r}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sb.path("keys/signing.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(sb.read("keys/signing.pem").starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(sb.read("keys/signing.pub.pem").starts_with("-----BEGIN PUBLIC KEY-----"));
    // PKCS#8 v1, which OpenSSL 3.0 reads (it refuses v2 Ed25519 keys as "unsupported"): the
    // public key it derives is the one written beside.
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in", "keys/signing.pem"])
        .current_dir(&sb.root)
        .output()
        .expect("openssl is needed (apt-get install openssl)");
    assert!(out.status.success(), "openssl pkey: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), sb.read("keys/signing.pub.pem"));
    let again = sb.run(&["keygen", "--out", "keys"]);
    assert_eq!(again.code, 2, "{again}");
    assert!(again.stderr.contains("refusing to overwrite"), "{again}");
}

#[test]
fn every_drill_is_signed_and_verifies() {
    let sb = Sandbox::quickstart();
    let (first, report) = sb.drill("quickstart.yaml");
    assert_eq!(first.code, 0, "{first}");
    assert!(first.stderr.contains("warning: generated a development signing key"), "{first}");
    let (second, _) = sb.drill("quickstart.yaml");
    assert!(!second.stderr.contains("development signing key"), "the warning is said once: {second}");
    let env_path = envelope(report["run_id"].as_str().unwrap());
    let env: serde_json::Value = serde_json::from_str(&sb.read(&env_path)).unwrap();
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    let r = sb.run(&["report", "verify", &env_path]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.starts_with("OK: run "), "{r}");
}

#[test]
fn tampering_wrong_keys_and_broken_files_are_named() {
    let sb = Sandbox::quickstart();
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    let id = report["run_id"].as_str().unwrap();
    let env_path = envelope(id);
    let original = sb.read(&env_path);

    // A payload turned from passed to failed (or anything else): the signature breaks.
    let env: serde_json::Value = serde_json::from_str(&original).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = String::from_utf8(b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    let forged = b64.encode(body.replacen("\"verdict\":\"passed\"", "\"verdict\":\"failed\"", 1));
    sb.write(&env_path, original.replace(env["payload"].as_str().unwrap(), &forged));
    let r = sb.run(&["report", "verify", &env_path]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("bad signature"), "{r}");

    // Truncated.
    sb.write(&env_path, &original[..original.len() / 2]);
    let r = sb.run(&["report", "verify", &env_path]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("not a DSSE envelope"), "{r}");
    sb.write(&env_path, &original);

    // Another key.
    assert_eq!(sb.run(&["keygen", "--out", "other"]).code, 0);
    let r = sb.run(&["report", "verify", &env_path, "--pubkey", "other/signing.pub.pem"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("signed by an unknown key"), "{r}");

    // A missing key file is an input error.
    let r = sb.run(&["report", "verify", &env_path, "--pubkey", "nope.pem"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("cannot read key nope.pem"), "{r}");

    // Every file people read is covered: report.json, report.html, report.md edited after
    // signing, each named; one removed, named too.
    let r = sb.run(&["report", "verify", &env_path]);
    assert!(r.stdout.contains("3 file(s) of the report folder match their signed digests"), "{r}");
    for (file, from, to) in [
        ("report.json", "\"verdict\": \"passed\"", "\"verdict\": \"failed\""),
        ("report.html", "PASSED", "FAILED"),
        ("report.md", "PASSED", "FAILED"),
    ] {
        let path = env_path.replace("report.dsse.json", file);
        let saved = sb.read(&path);
        sb.edit(&path, from, to);
        let r = sb.run(&["report", "verify", &env_path]);
        assert_eq!(r.code, 1, "{file}: {r}");
        assert!(r.stdout.contains(&format!("{file} was altered: sha256")), "{file}: {r}");
        sb.write(&path, saved);
    }
    let md = env_path.replace("report.dsse.json", "report.md");
    std::fs::remove_file(sb.path(&md)).unwrap();
    let r = sb.run(&["report", "verify", &env_path]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("report.md is covered by the signature but cannot be read"), "{r}");
}

#[test]
fn the_chain_names_the_run_where_it_breaks() {
    let sb = Sandbox::quickstart();
    for _ in 0..3 {
        assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    }
    // One failed drill in the middle: exactly what someone would like to delete.
    sb.edit("quickstart.yaml", "expect: \">= 200\"", "expect: \"> 200\"");
    assert_eq!(sb.drill("quickstart.yaml").0.code, 1);
    sb.edit("quickstart.yaml", "expect: \"> 200\"", "expect: \">= 200\"");
    assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    let ids = run_ids(&sb);
    assert_eq!(ids.len(), 5);
    let head = envelope(&ids[4]);
    let r = sb.run(&["report", "verify", &head, "--chain", "drill-reports"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("chain intact over 4 earlier report(s)"), "{r}");

    // Altered: the first report's JSON (the envelope is left alone).
    let first_json = format!("drill-reports/quickstart-rag/{}/report.json", ids[0]);
    let saved = sb.read(&first_json);
    sb.edit(&first_json, "\"verdict\": \"passed\"", "\"verdict\": \"failed\"");
    let r = sb.run(&["report", "verify", &head, "--chain", "drill-reports"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains(&format!("chain broken at run {}: report {} was altered", ids[1], ids[0])), "{r}");
    sb.write(&first_json, saved);

    // Altered: the HTML of a middle report, what people actually read.
    let html = format!("drill-reports/quickstart-rag/{}/report.html", ids[2]);
    let saved = sb.read(&html);
    sb.write(&html, saved.replacen("<body", "<body data-x=\"1\"", 1));
    let r = sb.run(&["report", "verify", &head, "--chain", "drill-reports"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains(&format!("chain broken at run {}:", ids[2])), "{r}");
    assert!(r.stdout.contains("report.html was altered"), "{r}");
    sb.write(&html, saved);

    // Spliced: another runbook's report put into this runbook's folder.
    let other = sb.read("quickstart.yaml").replace("name: quickstart-rag", "name: other-rag");
    sb.write("other.yaml", other);
    let (run, spliced) = sb.drill("other.yaml");
    assert_eq!(run.code, 0, "{run}");
    let spliced_id = spliced["run_id"].as_str().unwrap();
    copy_dir(
        &sb.path(&format!("drill-reports/other-rag/{spliced_id}")),
        &sb.path(&format!("drill-reports/quickstart-rag/{spliced_id}")),
    );
    let r = sb.run(&["report", "verify", &head, "--chain", "drill-reports"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("holds a report of runbook other-rag, not quickstart-rag (spliced in)"), "{r}");
    std::fs::remove_dir_all(sb.path(&format!("drill-reports/quickstart-rag/{spliced_id}"))).unwrap();

    // Deleted: the failed drill's evidence.
    std::fs::remove_dir_all(sb.path(&format!("drill-reports/quickstart-rag/{}", ids[3]))).unwrap();
    let r = sb.run(&["report", "verify", &head, "--chain", "drill-reports"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stdout.contains(&format!("chain broken at run {}: its previous report {} is missing", ids[4], ids[3])),
        "{r}"
    );
}

/// Two drills of one runbook started 1 s apart, overlapping: their reports chain one after
/// the other (the one committed second links to the first), and the chain verifies.
#[test]
fn two_drills_of_one_runbook_at_once_chain_one_after_the_other() {
    let sb = Sandbox::quickstart();
    sb.edit("quickstart.yaml", "verify:\n", "verify:\n  - name: slow\n    command: { run: [sleep, \"3\"] }\n");
    let first = sb
        .command(&["run", "quickstart.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("drillbook run");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let second = sb.run(&["run", "quickstart.yaml"]);
    let first = first.wait_with_output().expect("first drill");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(second.code, 0, "{second}");
    let ids = run_ids(&sb);
    assert_eq!(ids.len(), 2);
    let report =
        |id: &str| -> serde_json::Value { serde_json::from_str(&sb.read(&envelope(id).replace(".dsse", ""))).unwrap() };
    // Exactly one of them is first in the chain; the other links to it as number 2.
    let (a, b) = (report(&ids[0]), report(&ids[1]));
    assert!(a["previous"].is_null() != b["previous"].is_null(), "one chain, not two: {a} {b}");
    let (head, tail, first_id) = if a["previous"].is_null() { (&ids[1], &b, &ids[0]) } else { (&ids[0], &a, &ids[1]) };
    assert_eq!(tail["previous"]["run_id"].as_str(), Some(first_id.as_str()), "{tail}");
    assert_eq!(tail["seq"], 2);
    let r = sb.run(&["report", "verify", &envelope(head), "--chain", "drill-reports"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("chain intact over 1 earlier report(s)"), "{r}");
}

/// A keyring: rotation keeps every earlier report verifiable (chain intact across it), and a
/// report that claims a time after its key's retirement is refused.
#[test]
fn rotated_keys_verify_old_reports_and_refuse_a_retired_key_after_retirement() {
    let sb = Sandbox::quickstart();
    // A single key pair first, as most installations start.
    assert_eq!(sb.run(&["keygen", "--out", "keys"]).code, 0);
    sb.write("drillbook.yaml", "signing_key: keys/signing.pem\n");
    assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    // Rotation turns the folder into a keyring whose retired key is that pair.
    let r = sb.run(&["keygen", "--rotate", "--out", "keys"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("into the keyring as retired keyid"), "{r}");
    sb.write("drillbook.yaml", "signing_key: keys\n");
    assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    // A second rotation: the next report is signed by the newest key, read at each report.
    let r = sb.run(&["keygen", "--rotate", "--out", "keys"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("retired keyid"), "{r}");
    assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    let ids = run_ids(&sb);
    let signer = |id: &str| -> String {
        let env: serde_json::Value = serde_json::from_str(&sb.read(&envelope(id))).unwrap();
        env["signatures"][0]["keyid"].as_str().unwrap().to_string()
    };
    let (old, middle, new) = (signer(&ids[0]), signer(&ids[1]), signer(&ids[2]));
    assert!(old != middle && middle != new && old != new, "each drill signed by the key of its time");

    // An auditor's copy holds only the public half.
    std::fs::create_dir(sb.path("public")).unwrap();
    for name in
        ["keys.yaml".to_string(), format!("{old}.pub.pem"), format!("{middle}.pub.pem"), format!("{new}.pub.pem")]
    {
        std::fs::copy(sb.path(&format!("keys/{name}")), sb.path(&format!("public/{name}"))).unwrap();
    }
    let r = sb.run(&["report", "verify", &envelope(&ids[2]), "--keyring", "public", "--chain", "drill-reports"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(&format!("signed by keyid {new}")), "{r}");
    assert!(r.stdout.contains("chain intact over 2 earlier report(s)"), "{r}");

    // The audit bundle carries the keyring's public half: verify.sh checks each report with
    // the key it names, `audit verify --keyring` each with its validity period.
    let day = |d: i64| (chrono::Utc::now() + chrono::Duration::days(d)).format("%Y-%m-%d").to_string();
    let r = sb.run(&["audit", "export", "--from", &day(-1), "--to", &day(1), "--out", "bundle.tar"]);
    assert_eq!(r.code, 0, "{r}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mkdir clean && tar -xf bundle.tar -C clean && ls clean/drillbook-audit/keys && \
             sh clean/drillbook-audit/verify.sh {}",
            sb.path(&format!("public/{new}.pub.pem")).display()
        ))
        .current_dir(&sb.root)
        .output()
        .expect("sh");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("keys.yaml") && said.contains(&format!("{old}.pub.pem")), "{said}");
    assert!(said.contains("3 reports verified"), "{said}");
    let r = sb.run(&["audit", "verify", "bundle.tar", "--keyring", "public"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("3 reports verified"), "{r}");

    // The old key retired before its report's time: the report is refused, naming both.
    let report: serde_json::Value = serde_json::from_str(&sb.read(&envelope(&ids[0]).replace(".dsse", ""))).unwrap();
    let started = report["started_at"].as_str().unwrap();
    let keys = sb.read("public/keys.yaml");
    let retired_at = keys
        .lines()
        .find(|l| l.trim_start().starts_with("not_after:"))
        .unwrap()
        .split_once(": ")
        .unwrap()
        .1
        .to_string();
    sb.write("public/keys.yaml", keys.replace(&retired_at, started));
    let r = sb.run(&["report", "verify", &envelope(&ids[0]), "--keyring", "public"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains(&format!("by keyid {old}, which was retired at")), "{r}");
    // A bundle whose keyring says the same: verify.sh, with openssl and awk alone, and `audit
    // verify` with the bundle's own keys refuse that report too.
    let keys = sb.read("keys/keys.yaml");
    sb.write("keys/keys.yaml", keys.replace(&retired_at, started));
    let r = sb.run(&["audit", "export", "--from", &day(-1), "--to", &day(1), "--out", "retired.tar"]);
    assert_eq!(r.code, 0, "{r}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mkdir retired && tar -xf retired.tar -C retired && sh retired/drillbook-audit/verify.sh {}",
            sb.path(&format!("public/{new}.pub.pem")).display()
        ))
        .current_dir(&sb.root)
        .output()
        .expect("sh");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{said}");
    assert!(said.contains(&format!("{}/report.dsse.json: signed at", ids[0])), "{said}");
    assert!(said.contains(&format!("by keyid {old}, outside that key's validity")), "{said}");
    let r = sb.run(&["audit", "verify", "retired.tar"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains(&format!("by keyid {old}, which was retired at")), "{r}");
}

/// The README's recipe, run exactly: base64, the DSSE PAE with printf, openssl pkeyutl.
#[test]
fn an_auditor_verifies_with_openssl_alone() {
    let sb = Sandbox::quickstart();
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    let env = envelope(report["run_id"].as_str().unwrap());
    let script = format!(
        r#"set -eu
ENV={env}
PUB=.drillbook/signing.pub.pem
grep -o '"payload": *"[^"]*"' "$ENV" | cut -d'"' -f4 | base64 -d > payload.json
grep -o '"sig": *"[^"]*"' "$ENV" | cut -d'"' -f4 | base64 -d > sig.bin
T=application/vnd.in-toto+json
printf 'DSSEv1 %d %s %d ' ${{#T}} "$T" "$(stat -c %s payload.json)" > pae.bin
cat payload.json >> pae.bin
openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in pae.bin -sigfile sig.bin
openssl pkey -pubin -in "$PUB" -outform DER | sha256sum | cut -d' ' -f1
grep -o '"report-file"}},"digest":{{"sha256":"[0-9a-f]*"}},"name":"[^"/]*"' payload.json |
  sed -E 's/.*"sha256":"([0-9a-f]+)"}},"name":"([^"]+)"/\1  \2/' > files.sha256
(cd "$(dirname "$ENV")" && sha256sum -c) < files.sha256
"#
    );
    let out = Command::new("bash").arg("-c").arg(&script).current_dir(&sb.root).output().expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Signature Verified Successfully"), "{stdout}");
    for file in ["report.json", "report.html", "report.md"] {
        assert!(stdout.contains(&format!("{file}: OK")), "sha256sum checked {file}: {stdout}");
    }
    let keyid = serde_json::from_str::<serde_json::Value>(&sb.read(&env)).unwrap()["signatures"][0]["keyid"].clone();
    assert!(stdout.contains(keyid.as_str().unwrap()), "keyid is the SHA-256 of the SPKI DER: {stdout}");
    // The payload an auditor decoded is the report, in canonical form.
    let payload: serde_json::Value = serde_json::from_str(&sb.read("payload.json")).unwrap();
    // Canonical JSON (RFC 8785) writes 1.0 as 1: compare numbers as numbers.
    assert_eq!(numbers_as_f64(&payload["predicate"]), numbers_as_f64(&report));
    assert_eq!(payload["subject"][0]["digest"]["sha256"], report["backup"]["sha256"]);
}

#[test]
fn a_configured_key_that_is_missing_stops_the_drill_before_it_runs() {
    let sb = Sandbox::quickstart();
    sb.write("drillbook.yaml", "signing_key: keys/signing.pem\n");
    let r = sb.run(&["run", "quickstart.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("drillbook keygen --out"), "{r}");
    assert!(!sb.path("drillbook.db").exists());
}

fn numbers_as_f64(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) => serde_json::json!(n.as_f64()),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(numbers_as_f64).collect()),
        serde_json::Value::Object(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), numbers_as_f64(v))).collect())
        }
        other => other.clone(),
    }
}

/// report.html opened in real headless Chromium: it renders (not blank) and shows the verdict.
#[test]
fn report_html_renders_in_headless_chromium() {
    let sb = Sandbox::quickstart();
    sb.edit("quickstart.yaml", "expect: \">= 200\"", "expect: \">= 201\"");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 1, "{run}");
    let html = sb.path(&format!("drill-reports/quickstart-rag/{}/report.html", report["run_id"].as_str().unwrap()));
    let url = format!("file://{}", html.display());
    let chromium = |extra: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(&url)
        .current_dir(&sb.root);
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("cannot start chromium ({e}); install it: apt-get install chromium (scripts/test-deps.sh)")
        });
        assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(dom.contains("FAILED — quickstart-rag"), "verdict banner missing from the rendered DOM");
    assert!(dom.contains("check `documents restored` failed"), "failure reason missing");
    chromium(&["--screenshot=shot.png"]);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(sb.path("shot.png")).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let (mut red_banner, mut non_white) = (0usize, 0usize);
    for px in bytes.chunks(channels) {
        let (r, g, b) = (px[0], px[1], px[2]);
        if (r, g, b) == (0xb3, 0x26, 0x1e) {
            red_banner += 1;
        }
        if r < 240 || g < 240 || b < 240 {
            non_white += 1;
        }
    }
    let total = bytes.len() / channels;
    assert!(non_white * 20 > total, "the page looks blank: {non_white} of {total} pixels are not white");
    assert!(red_banner > 20_000, "the red FAILED banner is not visible ({red_banner} pixels)");
}

#[test]
fn report_index_lists_every_drill_with_an_rto_trend() {
    let sb = Sandbox::quickstart();
    for _ in 0..2 {
        assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    }
    sb.edit("quickstart.yaml", "expect: \">= 200\"", "expect: \"> 200\"");
    assert_eq!(sb.drill("quickstart.yaml").0.code, 1);
    sb.write("other.yaml", crate::support::files_runbook("other", ""));
    sb.write("backups/tree.tar.zst", crate::support::zstd(&crate::support::TarBuilder::new().file("a", b"a").finish()));
    assert_eq!(sb.drill("other.yaml").0.code, 0);

    let r = sb.run(&["report", "index", "--out", "drill-reports"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("(4 drill reports)"), "{r}");
    // Tera escapes `/` in text as `&#x2F;`, which browsers read as `/`.
    let html = sb.read("drill-reports/index.html").replace("&#x2F;", "/");
    assert!(html.contains("<h2>quickstart-rag</h2>") && html.contains("<h2>other</h2>"));
    assert!(html.contains("3 drill(s); last verdict <span class=\"failed\">failed</span>"), "{html}");
    // Only proven restores have an RTO: two points; the failed drill's row shows none.
    let polyline =
        html.split("class=\"rto-trend\"").nth(1).unwrap().split("points=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(polyline.split_whitespace().count(), 2, "{polyline}");
    assert!(html.contains("<td class=\"failed\">failed</td><td>—</td>"), "{html}");
    for id in run_ids(&sb).iter().filter(|id| !id.is_empty()) {
        let folder =
            sb.history().iter().find(|h| h["run_id"] == id.as_str()).unwrap()["runbook"].as_str().unwrap().to_string();
        assert!(html.contains(&format!("href=\"{folder}/{id}/report.html\"")), "no link to {id}");
    }
    // The index in a browser: it renders and nothing in it runs.
    assert!(!html.contains("<script"));
}

// fault: the report folder cannot be created | failed (exit 1) | `report: cannot create …` | history row with the report's place and digest; the next report links to it, so its absence shows in `--chain`
#[test]
fn an_unwritable_report_dir_fails_the_drill_but_keeps_its_history_row() {
    let sb = Sandbox::quickstart();
    // Even root cannot create a folder below a regular file.
    sb.write("not-a-dir", "x");
    let r = sb.run(&["run", "quickstart.yaml", "--report-dir", "not-a-dir/reports"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("the report could not be written: cannot create"), "{r}");
    let h = sb.history();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["status"], "failed");
    assert!(h[0]["failure_reasons"][0].as_str().unwrap().starts_with("report: cannot create"), "{h:#?}");
    // History keeps where the report belongs; the report is still committed to the chain, so
    // the next report links to it and its absence shows (and is explained by this row).
    let id = h[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(h[0]["report"], format!("not-a-dir/reports/quickstart-rag/{id}"));
    let (next, report) = sb.drill("quickstart.yaml");
    assert_eq!(next.code, 0, "{next}");
    assert_eq!(report["previous"]["run_id"], id.as_str(), "{report}");
    let r = sb.run(&["report", "verify", &envelope(report["run_id"].as_str().unwrap()), "--chain", "drill-reports"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains(&format!("its previous report {id} is missing")), "{r}");
    sb.assert_no_leftovers();
}

/// A report written elsewhere (`run --report-dir`) stays on its runbook's chain: the walk finds
/// it where history recorded it, and still checks it there.
#[test]
fn a_report_written_elsewhere_is_found_on_the_chain_where_history_recorded_it() {
    let sb = Sandbox::quickstart();
    let r = sb.run(&["run", "quickstart.yaml", "--report-dir", "elsewhere"]);
    assert_eq!(r.code, 0, "{r}");
    let first = sb.history()[0]["run_id"].as_str().unwrap().to_string();
    let (next, report) = sb.drill("quickstart.yaml");
    assert_eq!(next.code, 0, "{next}");
    assert_eq!(report["previous"]["run_id"], first.as_str(), "{report}");
    let head = envelope(report["run_id"].as_str().unwrap());
    let r = sb.run(&["report", "verify", &head, "--chain", "drill-reports"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("chain intact over 1 earlier report(s)"), "{r}");
    // Altered where it lives: named.
    let moved = sb.path(&format!("elsewhere/quickstart-rag/{first}/report.json"));
    let text = std::fs::read_to_string(&moved).unwrap();
    std::fs::write(&moved, text.replacen("\"passed\"", "\"failed\"", 1)).unwrap();
    let r = sb.run(&["report", "verify", &head, "--chain", "drill-reports"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains(&format!("report {first} was altered")), "{r}");
    // Gone from there too: missing, and where history said it was.
    std::fs::remove_dir_all(sb.path("elsewhere")).unwrap();
    let r = sb.run(&["report", "verify", &head, "--chain", "drill-reports"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains(&format!("its previous report {first} is missing")), "{r}");
    assert!(r.stdout.contains("history records it in elsewhere/quickstart-rag/"), "{r}");
}

/// The audit bundle: an auditor unpacks it in a clean folder and checks it with openssl,
/// sha256sum and tar alone; one altered byte, an added file or another key is caught and named.
#[test]
fn an_audit_bundle_verifies_with_openssl_alone_and_names_what_was_altered() {
    let sb = Sandbox::quickstart();
    for _ in 0..2 {
        assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    }
    let day = |d: i64| (chrono::Utc::now() + chrono::Duration::days(d)).format("%Y-%m-%d").to_string();
    let r = sb.run(&["audit", "export", "--from", &day(-1), "--to", &day(1), "--out", "bundle.tar"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(": 2 reports,"), "{r}");
    let trusted = sb.path(".drillbook/signing.pub.pem");
    let sh = |script: &str| {
        let out = Command::new("sh").arg("-c").arg(script).current_dir(&sb.root).output().expect("sh");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let verify = format!("sh clean/drillbook-audit/verify.sh {}", trusted.display());
    let (ok, out) = sh("mkdir clean && tar -xf bundle.tar -C clean");
    assert!(ok, "{out}");
    let (ok, out) = sh(&verify);
    assert!(ok, "{out}");
    assert!(out.contains("OK: SHA256SUMS signed") && out.contains("2 reports verified"), "{out}");
    for file in ["index.html", "VERIFY.md", "coverage.csv", "coverage.html", "assets.json", "keys/signing.pub.pem"] {
        assert!(sb.path(&format!("clean/drillbook-audit/{file}")).exists(), "{file} in the bundle");
    }
    let r = sb.run(&["audit", "verify", "bundle.tar", "--pubkey", ".drillbook/signing.pub.pem"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("2 reports verified"), "{r}");

    // One byte of one report's HTML changed: named by verify.sh and by `audit verify`.
    let html = std::fs::read_dir(sb.path("clean/drillbook-audit/reports/quickstart-rag"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("report.html");
    let saved = std::fs::read(&html).unwrap();
    let mut altered = saved.clone();
    altered[100] ^= 1;
    std::fs::write(&html, &altered).unwrap();
    let (ok, out) = sh(&verify);
    assert!(!ok, "{out}");
    assert!(out.contains("report.html: FAILED"), "{out}");
    let (ok, out) = sh("tar -cf bad.tar -C clean drillbook-audit");
    assert!(ok, "{out}");
    let r = sb.run(&["audit", "verify", "bad.tar", "--pubkey", ".drillbook/signing.pub.pem"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("report.html: altered"), "{r}");
    std::fs::write(&html, &saved).unwrap();

    // A file slipped in.
    sb.write("clean/drillbook-audit/reports/extra.html", "<p>all good</p>");
    let (ok, out) = sh(&verify);
    assert!(!ok && out.contains("reports/extra.html"), "{out}");
    let (ok, out) = sh("tar -cf added.tar -C clean drillbook-audit");
    assert!(ok, "{out}");
    let r = sb.run(&["audit", "verify", "added.tar", "--pubkey", ".drillbook/signing.pub.pem"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("reports/extra.html: in the bundle but not in SHA256SUMS (added)"), "{r}");
    std::fs::remove_file(sb.path("clean/drillbook-audit/reports/extra.html")).unwrap();

    // The bundle as exported is checked as it streams (in SHA256SUMS order): one byte flipped
    // inside the tar, in the first report's HTML, is named.
    let mut tar = std::fs::read(sb.path("bundle.tar")).unwrap();
    let html_at = tar.windows(15).position(|w| w == b"<!doctype html>").expect("a report.html in the bundle");
    tar[html_at + 200] ^= 1;
    std::fs::write(sb.path("flipped.tar"), &tar).unwrap();
    let r = sb.run(&["audit", "verify", "flipped.tar", "--pubkey", ".drillbook/signing.pub.pem"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("/report.html: altered"), "{r}");
    // A report's file left out of a copy that keeps the export's order.
    let (ok, out) = sh(r#"python3 - <<'PY'
import tarfile
src, dst = tarfile.open("bundle.tar"), tarfile.open("removed.tar", "w")
left_out = None
for m in src.getmembers():
    if left_out is None and m.name.endswith("/report.md"):
        left_out = m.name
        continue
    dst.addfile(m, src.extractfile(m))
dst.close()
print(left_out)
PY"#);
    assert!(ok, "{out}");
    let r = sb.run(&["audit", "verify", "removed.tar", "--pubkey", ".drillbook/signing.pub.pem"]);
    assert_eq!(r.code, 1, "{r}");
    let first_md = out.trim().trim_start_matches("drillbook-audit/");
    assert!(r.stdout.contains(&format!("{first_md}: listed in SHA256SUMS but missing")), "{r}");

    // A report altered on disk before the export: SHA256SUMS covers what was exported, so the
    // report's own envelope is what names it (the first in the bundle: checked while the tar
    // streams on, not at the end).
    let mut ids = run_ids(&sb);
    ids.sort();
    let on_disk = sb.path(&format!("drill-reports/quickstart-rag/{}/report.html", ids[0]));
    let mut html = std::fs::read(&on_disk).unwrap();
    html[100] ^= 1;
    std::fs::write(&on_disk, &html).unwrap();
    let r = sb.run(&["audit", "export", "--from", &day(-1), "--to", &day(1), "--out", "tampered.tar"]);
    assert_eq!(r.code, 0, "{r}");
    let r = sb.run(&["audit", "verify", "tampered.tar", "--pubkey", ".drillbook/signing.pub.pem"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains(&format!("report reports/quickstart-rag/{}/report.dsse.json", ids[0])), "{r}");
    assert!(r.stdout.contains("report.html was altered"), "{r}");

    // Another key than the one that signed.
    assert_eq!(sb.run(&["keygen", "--out", "other"]).code, 0);
    let (ok, out) = sh(&format!("sh clean/drillbook-audit/verify.sh {}", sb.path("other/signing.pub.pem").display()));
    assert!(!ok && out.contains("bad signature"), "{out}");
}
