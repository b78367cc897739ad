//! `drillbook audit coverage --from --to`: every scheduled fire time of a period, and what
//! served it.
//!
//! The fire times come from each runbook's schedule as the daemon had it then: every load
//! records a runbook's text when it changed (`runbook_versions`), so a schedule changed in the
//! middle of the period counts with each version for its part. A runbook with no recorded
//! version (a history from before the recording) is taken from its file in the runbooks folder,
//! and its rows say so. A runbook's first recorded version also stands for the time before it
//! was recorded, so fire times while no daemon ran are listed as missed, not left out. A fire time is served by the run started for it — its verdict, and its
//! report checked on disk against the digest history recorded — or it is `missed`, with the
//! reason the history supports (no daemon was up; a daemon claimed it and recorded no run; a
//! daemon was up and passed it over).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use drillbook_runbooks::Runbook;
use serde::Serialize;

use crate::config::Config;
use crate::history::{History, ts};
use crate::schedule::Timetable;

/// At most this many fire times per runbook version are listed (a schedule every second over a
/// year would be 31 million).
const MAX_FIRES: usize = 100_000;

/// One scheduled fire time and what served it.
#[derive(Debug, Serialize)]
pub struct Row {
    pub runbook: String,
    pub fire: String,
    /// The run's status (`passed`, `failed`, `interrupted`, `aborted`, `running`) or `missed`.
    pub outcome: String,
    pub run_id: Option<String>,
    pub report: Option<String>,
    /// `intact`, or what is wrong with the evidence; empty for a missed fire time.
    pub evidence: String,
    pub why: String,
    /// `recorded` (the schedule the daemon had) or `runbook file` (none recorded).
    pub schedule_from: &'static str,
}

impl Row {
    pub fn is_gap(&self) -> bool {
        self.outcome == "missed" || !(self.evidence.is_empty() || self.evidence == "intact")
    }
}

pub async fn coverage_command(
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    output: &str,
) -> anyhow::Result<ExitCode> {
    let history = History::open(&config.state).await?;
    let rows = coverage(config, &history, from, to).await?;
    match output {
        "json" => println!("{}", serde_json::to_string_pretty(&rows)?),
        "csv" => print!("{}", csv(&rows)),
        _ => print_table(&rows, from, to),
    }
    Ok(if rows.iter().any(Row::is_gap) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Each runbook's schedule versions: (since, text or `None` once it left the folder, source).
type Versions = BTreeMap<String, Vec<(DateTime<Utc>, Option<String>, &'static str)>>;

/// Every fire time of `[from, to)`, sorted by time then runbook.
pub async fn coverage(
    config: &Config,
    history: &History,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<Row>> {
    let period = Period::load(config, history, from, to).await?;
    let mut rows = Vec::new();
    for runbook in period.runbooks(history).await? {
        rows.extend(period.rows_of(history, &runbook).await?);
    }
    rows.sort_by(|a, b| (&a.fire, &a.runbook).cmp(&(&b.fire, &b.runbook)));
    Ok(rows)
}

/// What coverage needs of the whole period (the schedules, when daemons were up); the rows are
/// then read one runbook at a time, so a year of 1,000 runbooks is never held at once
/// (`audit export` writes each runbook's rows before it reads the next).
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    versions: Versions,
    spans: Vec<(DateTime<Utc>, DateTime<Utc>, bool)>,
}

impl Period {
    pub async fn load(
        config: &Config,
        history: &History,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Period> {
        let mut versions: Versions = BTreeMap::new();
        for (runbook, since, text) in history.runbook_versions().await? {
            versions.entry(runbook).or_default().push((since, text, "recorded"));
        }
        // Runbooks in the folder that no daemon recorded: their file's schedule, for the whole period.
        let root = config.runbooks.clone();
        let files = tokio::task::spawn_blocking(move || {
            crate::plan::expand(&[], &root)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| crate::plan::load_with_text(&p).ok())
                .map(|(l, text)| (l.runbook.name().to_string(), text))
                .collect::<Vec<_>>()
        })
        .await?;
        for (name, text) in files {
            versions.entry(name).or_insert_with(|| vec![(DateTime::<Utc>::MIN_UTC, Some(text), "runbook file")]);
        }
        Ok(Period { from, to, versions, spans: history.daemon_spans().await? })
    }

    /// The runbooks to cover, sorted: those with a schedule, and those with runs in the period.
    pub async fn runbooks(&self, history: &History) -> anyhow::Result<Vec<String>> {
        let mut all: Vec<String> = self.versions.keys().cloned().collect();
        all.extend(history.runbooks_between(self.from, self.to).await?);
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// One runbook's fire times of the period and what served each, sorted by time.
    pub async fn rows_of(&self, history: &History, runbook: &str) -> anyhow::Result<Vec<Row>> {
        let (from, to) = (self.from, self.to);
        let mut runs: HashMap<String, _> = history
            .scheduled_between(runbook, from, to)
            .await?
            .into_iter()
            .filter_map(|(r, digest)| Some((r.scheduled_for.clone()?, (r, digest))))
            .collect();
        let claims: HashMap<String, String> = history
            .claims_between(runbook, from, to)
            .await?
            .into_iter()
            .map(|(fire, owner)| (ts(fire), owner))
            .collect();
        let margin = chrono::Duration::from_std(crate::daemon::ALIVE_TICK * 2).unwrap_or_default();
        // A daemon that stopped cleanly was up until it stopped; one that did not (killed, host
        // down) until a little after its last sign of life.
        let daemon_up = |t: DateTime<Utc>| {
            self.spans
                .iter()
                .any(|(start, seen, stopped)| *start <= t && t <= if *stopped { *seen } else { *seen + margin })
        };

        let mut rows = Vec::new();
        let list = self.versions.get(runbook).map(Vec::as_slice).unwrap_or_default();
        for (i, (since, text, source)) in list.iter().enumerate() {
            let until = list.get(i + 1).map(|v| v.0).unwrap_or(DateTime::<Utc>::MAX_UTC);
            // The first version also stands for the time before it was first recorded (a
            // runbook in the folder while no daemon ran): a gap is listed rather than hidden.
            let since = if i == 0 { DateTime::<Utc>::MIN_UTC } else { *since };
            let (start, end) = (since.max(from), until.min(to));
            let Some(text) = text else { continue };
            if start >= end {
                continue;
            }
            let Some(table) = Runbook::parse(runbook, text).ok().as_ref().and_then(Timetable::for_runbook) else {
                continue;
            };
            let mut at = start - chrono::Duration::milliseconds(1);
            for _ in 0..MAX_FIRES {
                let Some(fire) = table.next_after(at).filter(|f| *f < end) else { break };
                at = fire;
                let fire = ts(fire);
                let row = match runs.remove(&fire) {
                    Some((run, digest)) => {
                        let evidence = evidence_of(run.report.as_deref(), digest.as_deref());
                        Row {
                            runbook: runbook.to_string(),
                            fire,
                            outcome: run.status,
                            run_id: Some(run.run_id),
                            report: run.report,
                            evidence,
                            why: run.failure_reasons.first().cloned().unwrap_or_default(),
                            schedule_from: source,
                        }
                    }
                    None => {
                        let why = match claims.get(&fire) {
                            Some(owner) => format!("claimed by daemon {owner}, which recorded no run"),
                            None if !daemon_up(at) => "no daemon was running".to_string(),
                            None => {
                                "a daemon was running and did not start it (misfire: skip while the runbook's drill \
                                     ran or the daemon was catching up, or the runbook was invalid then)"
                                    .to_string()
                            }
                        };
                        Row {
                            runbook: runbook.to_string(),
                            fire,
                            outcome: "missed".into(),
                            run_id: None,
                            report: None,
                            evidence: String::new(),
                            why,
                            schedule_from: source,
                        }
                    }
                };
                rows.push(row);
            }
        }
        // Runs for fire times the recorded schedules do not produce: listed, not lost.
        for (fire, (run, digest)) in runs {
            rows.push(Row {
                runbook: runbook.to_string(),
                fire,
                outcome: run.status,
                run_id: Some(run.run_id),
                evidence: evidence_of(run.report.as_deref(), digest.as_deref()),
                report: run.report,
                why: "a run for a fire time the recorded schedule does not have".into(),
                schedule_from: "recorded",
            });
        }
        rows.sort_by(|a, b| a.fire.cmp(&b.fire));
        Ok(rows)
    }
}

/// Whether a run's report is on disk and is the report history recorded.
fn evidence_of(folder: Option<&str>, digest: Option<&str>) -> String {
    let (Some(folder), Some(digest)) = (folder, digest) else {
        return "no report recorded in history".into();
    };
    let file = Path::new(folder).join("report.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return format!("report missing from disk ({})", file.display());
        }
        Err(e) => return format!("report unreadable ({}: {e})", file.display()),
    };
    match serde_json::from_str::<drillbook_reports::Report>(&text).map(|r| r.digest()) {
        Ok(Ok(found)) if found == digest => "intact".into(),
        Ok(Ok(found)) => format!("report differs from history (sha256 {found}, recorded {digest})"),
        _ => format!("report is not a report ({})", file.display()),
    }
}

fn print_table(rows: &[Row], from: DateTime<Utc>, to: DateTime<Utc>) {
    println!("coverage {} .. {}", ts(from), ts(to));
    println!("{:<28} {:<25} {:<12} {:<38} {:<24} why", "runbook", "fire time", "outcome", "run", "evidence");
    for r in rows {
        let evidence = if r.outcome == "missed" { "-" } else { &r.evidence };
        let why = if r.schedule_from == "runbook file" && !r.why.is_empty() {
            format!("{} (schedule from the runbook file: none recorded)", r.why)
        } else if r.schedule_from == "runbook file" {
            "schedule from the runbook file: none recorded".into()
        } else {
            r.why.clone()
        };
        println!(
            "{:<28} {:<25} {:<12} {:<38} {:<24} {}",
            r.runbook,
            r.fire,
            r.outcome,
            r.run_id.as_deref().unwrap_or("-"),
            evidence,
            why
        );
    }
    let missed = rows.iter().filter(|r| r.outcome == "missed").count();
    let passed = rows.iter().filter(|r| r.outcome == "passed").count();
    let flagged = rows.iter().filter(|r| r.outcome != "missed" && r.evidence != "intact").count();
    println!(
        "{} fire times: {passed} passed, {} ran and did not pass, {missed} missed; {flagged} with evidence problems",
        rows.len(),
        rows.len() - passed - missed
    );
}

/// The coverage CSV's first line.
pub const CSV_HEADER: &str = "runbook,fire,outcome,run_id,report,evidence,why,schedule_from\n";

/// RFC 4180 CSV.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(CSV_HEADER);
    for r in rows {
        out.push_str(&csv_line(r));
    }
    out
}

/// One row as a CSV line (RFC 4180), its line end included.
pub fn csv_line(r: &Row) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
    };
    let cells = [
        r.runbook.as_str(),
        r.fire.as_str(),
        r.outcome.as_str(),
        r.run_id.as_deref().unwrap_or(""),
        r.report.as_deref().unwrap_or(""),
        r.evidence.as_str(),
        r.why.as_str(),
        r.schedule_from,
    ];
    cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",") + "\n"
}
