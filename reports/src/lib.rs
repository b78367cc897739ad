//! The drill evidence record (`drillbook.report/v1`) and its canonical digest.
//!
//! **Invariant:** a report is plain data; this crate knows nothing of adapters or runbooks
//! beyond the strings it is given, and never reads the clock (times are passed in).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod email;
pub mod keyring;
pub mod render;
pub mod sign;

pub const SCHEMA: &str = "drillbook.report/v1";

/// One drill's evidence: what ran, what it proved, and whether the objectives held.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema: String,
    pub run_id: String,
    pub runbook: RunbookRef,
    pub asset: serde_json::Value,
    /// The backup restored; in a drill of several restores, the oldest of theirs (the stack is
    /// only as recent as its stalest part, and the RPO is measured on it).
    pub backup: Option<Backup>,
    /// A drill of several restores (`restores:`): each one's adapter and backup. Empty for a
    /// drill of one restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<RestoreRecord>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The cron fire time; null for a drill started by hand.
    pub scheduled_for: Option<DateTime<Utc>>,
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    pub objectives: Objectives,
    pub verdict: Verdict,
    pub failure_reasons: Vec<String>,
    pub previous: Option<Previous>,
    /// The report's place in its runbook's chain: 1 for the first, `previous` holds `seq - 1`
    /// (absent in reports from before the chain was numbered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub runner: Runner,
    pub controls: Vec<Control>,
    /// What a failed drill left for investigation (`keep_on_failure`), and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
}

/// One restore of a drill of several.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RestoreRecord {
    pub name: String,
    pub adapter: String,
    /// Its backup: its own source's, or (with `from:`) the drill's shared one.
    pub backup: Option<Backup>,
    /// `passed`, `failed` (where its reason says), or `skipped` (it never started).
    pub status: StepStatus,
    /// The asset it brings back, when the runbook names one for it (as the runbook's `asset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<serde_json::Value>,
}

/// A failed drill's scratch kept for investigation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Kept {
    /// The drill's folder: the restored data, a local server's data (stopped).
    pub folder: String,
    /// What else was kept (a scratch database on a server), as the drill named it.
    pub also: Vec<String>,
    /// When the daemon removes it (`drillbook scratch rm RUN_ID` before).
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunbookRef {
    pub name: String,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Backup {
    /// `storage:path` of the object that was restored.
    pub location: String,
    pub size_bytes: u64,
    pub modified_at: Option<DateTime<Utc>>,
    /// Digest computed while the object streamed in.
    pub sha256: Option<String>,
    /// Digest the source claimed (sidecar or manifest), when one was required.
    pub expected_sha256: Option<String>,
    /// When the backup was taken, and what says so: its own content (a pg_dump archive
    /// header, an RDB's `ctime`, a Qdrant snapshot's name), its name (`time_format`), the
    /// restic snapshot, or the object's modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_from: Option<String>,
    /// Its age when the drill located it (from `taken_at`).
    pub age_seconds: Option<i64>,
    /// When an older recovery point was picked on purpose (`pick: oldest|random|{at}`), the age
    /// of the newest one there was: what the RPO is measured on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_age_seconds: Option<i64>,
}

impl Backup {
    /// The age the RPO is measured on: the newest recovery point's.
    pub fn rpo_age_seconds(&self) -> Option<i64> {
        self.newest_age_seconds.or(self.age_seconds)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// `locate`, `fetch`, ..., or an adapter's part such as `restore.data`.
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status: StepStatus,
    pub bytes: Option<u64>,
    pub detail: String,
    /// The restore whose lane the step is in, in a drill of several; none for the drill's own
    /// steps and in a drill of one restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// The check could not be evaluated.
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub kind: String,
    pub status: CheckStatus,
    pub observed: serde_json::Value,
    pub expected: serde_json::Value,
    pub duration_ms: u64,
    pub detail: String,
    /// The restore it ran on, in a drill of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Objectives {
    pub rto: Option<Objective>,
    pub rpo: Option<Objective>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Objective {
    pub target_s: u64,
    /// Null when the drill did not get far enough to measure it.
    pub measured_s: Option<f64>,
    pub met: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Previous {
    pub run_id: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Runner {
    pub version: String,
    pub host: String,
}

/// A control the drill produces evidence for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Control {
    pub id: String,
    pub title: String,
}

/// The controls every drill evidences: it tests that a backup restores and meets its objectives.
pub fn standard_controls() -> Vec<Control> {
    [
        ("ISO/IEC 27001:2022 A.5.29", "Information security during disruption"),
        ("ISO/IEC 27001:2022 A.5.30", "ICT readiness for business continuity"),
        ("ISO/IEC 27001:2022 A.8.13", "Information backup: backups are tested"),
        ("SOC 2 A1.3", "Recovery plan procedures are tested"),
    ]
    .into_iter()
    .map(|(id, title)| Control { id: id.into(), title: title.into() })
    .collect()
}

impl Step {
    /// `docs: restore.data` in a drill of several restores, `restore.data` otherwise.
    pub fn lane_name(&self) -> String {
        match &self.restore {
            Some(lane) => format!("{lane}: {}", self.name),
            None => self.name.clone(),
        }
    }
}

impl Report {
    /// Canonical JSON (RFC 8785). The digest of a report is taken over this form, so
    /// re-serializing never changes it.
    pub fn canonical_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        sign::canonical(self)
    }

    /// SHA-256 (hex) of the canonical JSON.
    pub fn digest(&self) -> Result<String, serde_json::Error> {
        Ok(hex::encode(Sha256::digest(self.canonical_json()?)))
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let verdict = match self.verdict {
            Verdict::Passed => "PASSED",
            Verdict::Failed => "FAILED",
        };
        md.push_str(&format!("# Drill `{}`: {verdict}\n\n", md_escape(&self.runbook.name)));
        md.push_str(&format!(
            "- run: `{}`\n- started: {}\n- finished: {}\n",
            self.run_id,
            self.started_at.to_rfc3339(),
            self.finished_at.to_rfc3339()
        ));
        if let Some(b) = &self.backup {
            md.push_str(&format!(
                "- backup: `{}` ({} bytes, sha256 `{}`)\n",
                md_escape(&b.location),
                b.size_bytes,
                b.sha256.as_deref().unwrap_or("-")
            ));
        }
        for (label, o) in [("RTO", &self.objectives.rto), ("RPO", &self.objectives.rpo)] {
            if let Some(o) = o {
                let measured = o.measured_s.map(|m| format!("{m:.1} s")).unwrap_or_else(|| "not measured".into());
                md.push_str(&format!(
                    "- {label}: {measured} against {} s ({})\n",
                    o.target_s,
                    if o.met { "met" } else { "BREACHED" }
                ));
            }
        }
        if !self.failure_reasons.is_empty() {
            md.push_str("\n## Why it failed\n\n");
            for r in &self.failure_reasons {
                md.push_str(&format!("- {}\n", md_escape(r)));
            }
        }
        if let Some(k) = &self.kept {
            md.push_str(&format!(
                "\n## Kept for investigation\n\n`{}`{} until {} (`drillbook scratch rm {}` removes it sooner).\n",
                k.folder,
                k.also.iter().map(|a| format!(", {a}")).collect::<String>(),
                k.until.to_rfc3339(),
                self.run_id
            ));
        }
        md.push_str("\n## Steps\n\n| step | status | ms | bytes | detail |\n| --- | --- | --- | --- | --- |\n");
        for s in &self.steps {
            md.push_str(&format!(
                "| {} | {:?} | {} | {} | {} |\n",
                s.lane_name(),
                s.status,
                s.duration_ms,
                s.bytes.map(|b| b.to_string()).unwrap_or_default(),
                md_escape(&s.detail)
            ));
        }
        md.push_str("\n## Checks\n\n| check | kind | status | observed | expected | detail |\n| --- | --- | --- | --- | --- | --- |\n");
        for c in &self.checks {
            md.push_str(&format!(
                "| {}{} | {} | {:?} | {} | {} | {} |\n",
                c.restore.as_ref().map(|r| format!("{r}: ")).unwrap_or_default(),
                md_escape(&c.name),
                c.kind,
                c.status,
                md_escape(&c.observed.to_string()),
                md_escape(&c.expected.to_string()),
                md_escape(&c.detail)
            ));
        }
        md
    }
}

/// Keeps runbook- and data-provided text from breaking the Markdown table or injecting markup.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '<' | '>' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Report {
        let t = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z").unwrap().with_timezone(&Utc);
        Report {
            schema: SCHEMA.into(),
            run_id: "r1".into(),
            runbook: RunbookRef { name: "a|b".into(), path: "x.yaml".into(), sha256: "00".into() },
            asset: serde_json::json!({"name": "a"}),
            backup: None,
            restores: vec![],
            started_at: t,
            finished_at: t,
            scheduled_for: None,
            steps: vec![],
            checks: vec![],
            objectives: Objectives::default(),
            verdict: Verdict::Failed,
            failure_reasons: vec!["fetch: no object".into()],
            previous: None,
            runner: Runner { version: "0".into(), host: "h".into() },
            controls: standard_controls(),
            kept: None,
            seq: None,
        }
    }

    #[test]
    fn canonical_json_sorts_keys_and_digest_is_stable() {
        let r = sample();
        let c = String::from_utf8(r.canonical_json().unwrap()).unwrap();
        assert!(c.starts_with("{\"asset\":"), "{c}");
        let back: Report = serde_json::from_str(&serde_json::to_string_pretty(&r).unwrap()).unwrap();
        assert_eq!(back.digest().unwrap(), r.digest().unwrap());
        let mut changed = r.clone();
        changed.verdict = Verdict::Passed;
        assert_ne!(changed.digest().unwrap(), r.digest().unwrap());
    }

    #[test]
    fn markdown_escapes_runbook_text() {
        let md = sample().to_markdown();
        assert!(md.contains("a\\|b"), "{md}");
    }
}
