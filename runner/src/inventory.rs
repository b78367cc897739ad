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
struct AssetRow {
    asset: String,
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
}

pub async fn assets_command(config: &Config, paths: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let history = History::open(&config.state).await?;
    let now = Utc::now();
    let mut rows = Vec::new();
    for f in plan::expand(paths, &config.runbooks)? {
        let rb = plan::load(&f)?.runbook;
        let runs = history.list(Some(rb.name())).await?;
        let last = runs.first();
        let last_pass = runs.iter().find(|r| r.status == "passed").and_then(|r| r.finished_at.clone());
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
        rows.push(AssetRow {
            asset: rb.asset.name.clone(),
            kind: serde_json::to_value(rb.asset.kind)?,
            system: rb.asset.system.clone(),
            environment: rb.asset.environment.clone(),
            vendor: rb.asset.vendor.clone(),
            owner: rb.owner.clone(),
            runbook: rb.name().to_string(),
            last_drill: last.map(|r| r.started_at.clone()),
            last_status: last.map(|r| r.status.clone()),
            last_pass,
            rpo_s: rpo,
            coverage,
        });
    }
    rows.sort_by(|a, b| (a.coverage == "proven", &a.asset).cmp(&(b.coverage == "proven", &b.asset)));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<24} {:<15} {:<18} {:<16} {:<26} {:<8} last pass",
            "asset", "kind", "system", "owner", "runbook", "coverage"
        );
        for r in &rows {
            println!(
                "{:<24} {:<15} {:<18} {:<16} {:<26} {:<8} {}",
                r.asset,
                r.kind.as_str().unwrap_or_default(),
                r.system.as_deref().unwrap_or("-"),
                r.owner,
                r.runbook,
                r.coverage,
                r.last_pass.as_deref().unwrap_or("never")
            );
        }
        let unproven = rows.iter().filter(|r| r.coverage != "proven").count();
        println!("{} asset(s), {unproven} without a passing drill within their RPO", rows.len());
    }
    Ok(ExitCode::SUCCESS)
}
