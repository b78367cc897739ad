//! `drillbook plan` (next fire times) and `drillbook assets` (the asset map with the last
//! proof of each asset and the assets not proven restorable within their RPO).

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::history::History;
use crate::plan;

#[derive(Serialize)]
struct Planned {
    runbook: String,
    schedule: Option<String>,
    timezone: String,
    next: Vec<String>,
}

/// Next fire times of every runbook, in its own time zone (RFC 3339 with offset).
pub fn plan_command(config: &Config, paths: &[PathBuf], count: usize, json: bool) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let mut out = Vec::new();
    for f in plan::expand(paths, &config.runbooks)? {
        let rb = plan::load(&f)?.runbook;
        let tz = rb.timezone();
        let next = match &rb.schedule {
            Some(s) => s.get().0.after(&now.with_timezone(&tz)).take(count).map(|t| t.to_rfc3339()).collect(),
            None => Vec::new(),
        };
        out.push(Planned {
            runbook: rb.name().to_string(),
            schedule: rb.schedule.as_ref().map(|s| s.raw().to_string()),
            timezone: tz.name().to_string(),
            next,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for p in &out {
            match &p.schedule {
                Some(s) => println!("{}  \"{s}\" ({})  next: {}", p.runbook, p.timezone, p.next.join(", ")),
                None => println!("{}  no schedule (runs by hand only)", p.runbook),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
pub struct AssetRow {
    asset: String,
    /// The restore of a stack that brings this asset back (`restores[].asset`); `null` for
    /// the runbook's own asset. A stack's drills prove all of its assets together.
    restore: Option<String>,
    kind: serde_json::Value,
    system: Option<String>,
    environment: Option<String>,
    vendor: Option<String>,
    owner: String,
    runbook: String,
    last_drill: Option<String>,
    last_status: Option<String>,
    last_pass: Option<String>,
    rpo_s: Option<u64>,
    /// `proven` (a pass within the RPO, or any pass without one), `stale`, or `never`.
    coverage: &'static str,
    /// (a) Is the asset drilled as often as its schedule says: `on_schedule` (the last pass
    /// is within one schedule interval plus a quarter of it, at least a minute), `late`,
    /// `never`, or `unscheduled` (runs only by hand).
    drilled: &'static str,
    /// (b) How old the backup was at the last passing drill (from its report), and whether
    /// that was within the RPO (`null` without an RPO or a known age).
    backup_age_s: Option<i64>,
    /// What the backup's time was read from (`its pg_dump archive header`, `the object's
    /// modification time`).
    backup_time_from: Option<String>,
    backup_fresh: Option<bool>,
}

/// `drilled` for a runbook: its schedule's interval (the longest gap between fire times,
/// `Timetable::interval`) plus a quarter of it as grace, at least a minute; the alert rule
/// `DrillbookAssetNotProven` (deploy/prometheus) applies the same window to the metrics.
fn drilled(rb: &drillbook_runbooks::Runbook, last_pass: Option<&str>, now: DateTime<Utc>) -> &'static str {
    let interval = crate::schedule::Timetable::for_runbook(rb).and_then(|t| t.interval());
    drilled_within(interval, rb.schedule.is_some(), last_pass, now)
}

/// The same from a schedule's interval (`scheduled`: the runbook has a schedule at all);
/// the dashboard calls it with what the daemon published.
pub fn drilled_within(
    interval: Option<std::time::Duration>,
    scheduled: bool,
    last_pass: Option<&str>,
    now: DateTime<Utc>,
) -> &'static str {
    if !scheduled {
        return "unscheduled";
    }
    let Some(pass) = last_pass.and_then(|p| DateTime::parse_from_rfc3339(p).ok()) else { return "never" };
    let Some(interval) = interval.and_then(|i| chrono::Duration::from_std(i).ok()) else { return "unscheduled" };
    let grace = (interval / 4).max(chrono::Duration::minutes(1));
    if now - pass.with_timezone(&Utc) <= interval + grace { "on_schedule" } else { "late" }
}

/// The backup's age at the drill whose report folder is `folder` (from its `report.json`): the
/// newest recovery point's when an older one was drilled on purpose; and what its time was
/// read from (its content, its name, the object's modification time).
fn backup_age(folder: Option<&str>) -> (Option<i64>, Option<String>) {
    let Some(report) = folder.and_then(crate::evidence::report_json) else { return (None, None) };
    // The age the RPO is measured on, as the history row's figures hold it.
    let age = crate::history::Figures::of_json(&report).rpo_s.map(|a| a as i64);
    (age, report["backup"]["taken_from"].as_str().map(String::from))
}

pub async fn assets_command(config: &Config, paths: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let history = History::open(&config.state).await?;
    let rows = asset_rows(config, paths, &history, Utc::now()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<24} {:<15} {:<18} {:<16} {:<26} {:<8} {:<11} {:<6} last pass",
            "asset", "kind", "system", "owner", "runbook", "coverage", "drilled", "fresh"
        );
        for r in &rows {
            println!(
                "{:<24} {:<15} {:<18} {:<16} {:<26} {:<8} {:<11} {:<6} {}",
                r.asset,
                r.kind.as_str().unwrap_or_default(),
                r.system.as_deref().unwrap_or("-"),
                r.owner,
                match &r.restore {
                    Some(on) => format!("{} ({on})", r.runbook),
                    None => r.runbook.clone(),
                },
                r.coverage,
                r.drilled,
                match r.backup_fresh {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                },
                r.last_pass.as_deref().unwrap_or("never")
            );
        }
        let unproven = rows.iter().filter(|r| r.coverage != "proven").count();
        println!("{} asset(s), {unproven} without a passing drill within their RPO", rows.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Every runbook's asset with its last drill and coverage at `now` (the asset map).
pub async fn asset_rows(
    config: &Config,
    paths: &[PathBuf],
    history: &History,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<AssetRow>> {
    let mut rows = Vec::new();
    for f in plan::expand(paths, &config.runbooks)? {
        let rb = plan::load(&f)?.runbook;
        let runs = history.list(Some(rb.name())).await?;
        let last = runs.first();
        let passed = runs.iter().find(|r| r.status == "passed");
        let last_pass = passed.and_then(|r| r.finished_at.clone());
        let (backup_age_s, backup_time_from) = backup_age(passed.and_then(|r| r.report.as_deref()));
        let rpo = rb.objectives.rpo.as_ref().map(|d| d.get().0.as_secs());
        let coverage = match (&last_pass, rpo) {
            (None, _) => "never",
            (Some(_), None) => "proven",
            (Some(t), Some(rpo)) => {
                let age = DateTime::parse_from_rfc3339(t)
                    .map(|t| (now - t.with_timezone(&Utc)).num_seconds())
                    .unwrap_or(i64::MAX);
                if age <= rpo as i64 { "proven" } else { "stale" }
            }
        };
        let own = rb.restores().iter().filter_map(|r| r.asset.as_ref().map(|a| (Some(r.name().to_string()), a)));
        for (restore, asset) in std::iter::once((None, &rb.asset)).chain(own) {
            rows.push(AssetRow {
                asset: asset.name.clone(),
                restore,
                kind: serde_json::to_value(asset.kind)?,
                system: asset.system.clone(),
                environment: asset.environment.clone(),
                vendor: asset.vendor.clone(),
                owner: rb.owner.clone(),
                runbook: rb.name().to_string(),
                last_drill: last.map(|r| r.started_at.clone()),
                last_status: last.map(|r| r.status.clone()),
                drilled: drilled(&rb, last_pass.as_deref(), now),
                backup_fresh: match (backup_age_s, rpo) {
                    (Some(age), Some(rpo)) => Some(age <= rpo as i64),
                    _ => None,
                },
                backup_age_s,
                backup_time_from: backup_time_from.clone(),
                last_pass: last_pass.clone(),
                rpo_s: rpo,
                coverage,
            });
        }
    }
    rows.sort_by(|a, b| (a.coverage == "proven", &a.asset).cmp(&(b.coverage == "proven", &b.asset)));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drilled_on_schedule_means_within_one_interval_and_its_grace() {
        let text = "version: 1\nname: t\nowner: o\nschedule: \"0 * * * *\"\nasset: { name: a, kind: files }\n\
                    source: { path: x/ }\nrestore: { adapter: files }\n";
        let rb = drillbook_runbooks::Runbook::parse("t.yaml", text).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-29T12:10:00Z").unwrap().with_timezone(&Utc);
        // Hourly: one interval (60 min) plus a quarter of it (15 min).
        assert_eq!(drilled(&rb, Some("2026-11-29T11:00:00Z"), now), "on_schedule");
        assert_eq!(drilled(&rb, Some("2026-11-29T10:56:00Z"), now), "on_schedule", "74 minutes");
        assert_eq!(drilled(&rb, Some("2026-11-29T10:54:00Z"), now), "late", "76 minutes");
        assert_eq!(drilled(&rb, None, now), "never");
        let manual = text.replace("schedule: \"0 * * * *\"\n", "");
        let rb = drillbook_runbooks::Runbook::parse("t.yaml", &manual).unwrap();
        assert_eq!(drilled(&rb, Some("2026-11-29T11:00:00Z"), now), "unscheduled");
    }
}
