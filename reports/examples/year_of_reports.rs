//! Writes a year of signed report folders for the audit bench (`benches/audit.sh`): one per
//! runbook and day, each made from a template report the way a drill makes its own (the report
//! with its runbook, run id, times and chain link changed; `report.html` rendered, `report.md`
//! written, all three covered by a DSSE envelope signed with the given key), and prints the
//! history rows as CSV in the columns of `benches/history.sh`.
//!
//! ```text
//! cargo run --release -p drillbook-reports --example year_of_reports -- \
//!     TEMPLATE_REPORT.json SIGNING_KEY.pem OUT_DIR RUNBOOKS DAYS LAST_DAY(YYYY-MM-DD) > runs.csv
//! ```
//! Runbook `rb-<i>` fires daily at `<i % 24>:<i % 60>` UTC (the bench's runbooks say so); 5 % of
//! the drills failed.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use drillbook_reports::sign::{self, Artifact};
use drillbook_reports::{Previous, Report, Verdict, render};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [template, key, out, runbooks, days, last] = args.as_slice() else {
        eprintln!("usage: year_of_reports TEMPLATE_REPORT.json SIGNING_KEY.pem OUT_DIR RUNBOOKS DAYS LAST_DAY");
        std::process::exit(2);
    };
    let template: Report = serde_json::from_str(&std::fs::read_to_string(template).expect("template")).expect("report");
    let key = sign::load_signing(Path::new(key)).expect("signing key");
    let keyid = sign::keyid(&key.verifying_key()).expect("keyid");
    let (runbooks, days): (usize, i64) = (runbooks.parse().expect("RUNBOOKS"), days.parse().expect("DAYS"));
    let last = NaiveDate::parse_from_str(last, "%Y-%m-%d").expect("LAST_DAY").and_hms_opt(0, 0, 0).unwrap().and_utc();
    let out = PathBuf::from(out);

    // Two threads, each a share of the runbooks (a runbook's chain is written in order).
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rows: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (template, key, keyid, out) = (&template, &key, &keyid, &out);
                s.spawn(move || {
                    let mut rows = Vec::new();
                    for rb in (t..runbooks).step_by(threads) {
                        let mut previous: Option<Previous> = None;
                        for day in (0..days).rev() {
                            let fire = last - Duration::days(day)
                                + Duration::hours((rb % 24) as i64)
                                + Duration::minutes((rb % 60) as i64);
                            let seq = (days - day) as u64;
                            let (row, link) = write_one(template, key, keyid, out, rb, seq, fire, previous.take());
                            previous = Some(link);
                            rows.push(row);
                        }
                    }
                    rows
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a writer thread")).collect()
    });
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for row in rows.into_iter().flatten() {
        stdout.write_all(row.as_bytes()).expect("stdout");
    }
}

#[allow(clippy::too_many_arguments)]
fn write_one(
    template: &Report,
    key: &ed25519_dalek::SigningKey,
    keyid: &str,
    out: &Path,
    rb: usize,
    seq: u64,
    fire: DateTime<Utc>,
    previous: Option<Previous>,
) -> (String, Previous) {
    let mut r = template.clone();
    let name = format!("rb-{rb}");
    let run_id = format!("{:08x}-0000-7000-8000-{:012x}", rb, seq);
    let failed = (rb as u64 * 7919 + seq * 104_729).is_multiple_of(20);
    r.run_id = run_id.clone();
    r.runbook.name = name.clone();
    r.runbook.path = format!("runbooks/{name}.yaml");
    r.scheduled_for = Some(fire);
    r.started_at = fire + Duration::milliseconds(40);
    r.finished_at = r.started_at + Duration::milliseconds(300 + (seq as i64 * 37) % 900);
    r.previous = previous;
    r.seq = Some(seq);
    r.verdict = if failed { Verdict::Failed } else { Verdict::Passed };
    r.failure_reasons = if failed { vec!["check `files restored` failed: expected 1, got 0".into()] } else { vec![] };

    let folder = out.join(&name).join(&run_id);
    std::fs::create_dir_all(&folder).expect("report folder");
    let json = serde_json::to_string_pretty(&r).expect("json") + "\n";
    let html = render::render_html(&r, keyid, None).expect("html");
    let md = r.to_markdown();
    let files = [("report.json", json.as_bytes()), ("report.html", html.as_bytes()), ("report.md", md.as_bytes())];
    let artifacts: Vec<Artifact> = files.iter().map(|(n, b)| Artifact::of(n, b)).collect();
    let envelope = sign::sign(&r, &artifacts, key).expect("sign");
    std::fs::write(folder.join("report.dsse.json"), serde_json::to_string_pretty(&envelope).expect("envelope") + "\n")
        .expect("write");
    for (n, b) in files {
        std::fs::write(folder.join(n), b).expect("write");
    }
    let digest = r.digest().expect("digest");
    let ts = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let took = (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0;
    let reasons = serde_json::to_string(&r.failure_reasons).expect("reasons");
    let row = format!(
        "{run_id},{name},{},{},{},{},{},{digest},\"{}\",bench-host,1,,,{took:.3},3600,{}\n",
        if failed { "failed" } else { "passed" },
        ts(r.started_at),
        ts(r.finished_at),
        ts(fire),
        folder.display(),
        reasons.replace('"', "\"\""),
        u8::from(failed)
    );
    (row, Previous { run_id, sha256: digest })
}
