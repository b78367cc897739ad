//! The drill executor: locate → fetch (+ integrity, unpack, in one pass) → provision →
//! restore → verify → teardown, every step timed, every failure a reason in the report.
//!
//! **Invariant:** teardown runs on every path out of a drill that provisioned anything,
//! including failures, timeouts and cancellation; the drill's folder is always removed.
//! **Invariant:** a failed drill is not an `Err`: `execute` always returns a report.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drillbook_adapters::source::{Located, Restic, Storage};
use drillbook_adapters::{
    Adapter, DrillCx, Progress, Scratch, ScratchTarget, Secrets, Taken, Teardown, Unpacked, unpack,
};
use drillbook_reports::{self as reports, CheckStatus, Report, Step, StepStatus, Verdict};
use drillbook_runbooks::Runbook;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

/// Everything a drill needs, built (and validated) before it starts.
pub struct DrillPlan {
    pub runbook: Runbook,
    pub path: PathBuf,
    pub sha256: String,
    /// Where the backup comes from.
    pub origin: Origin,
    pub secrets: Secrets,
    pub scratch: ScratchTarget,
    /// `source.decrypt`, its identities resolved (never printed).
    pub decryption: Option<unpack::Decryption>,
    /// `keep_min_free` of the config: a failed drill's scratch is kept only above it.
    pub keep_min_free: u64,
    /// Why the runbook could not be built when it fired (a `${env:}` secret gone after a
    /// rotation, a storage profile removed): the drill fails at `locate` with it, and is
    /// recorded, reported and notified like any failed drill.
    pub broken: Option<String>,
}

/// Where a drill's backup comes from, built: an object of a storage profile (hashed and unpacked
/// in one pass as it streams), or a snapshot of a restic repository (restored by restic, its
/// tree then checked with the same unpack rules).
pub enum Origin {
    Storage {
        storage: Storage,
        /// `source.path` resolved inside the storage.
        path: String,
    },
    Restic(Box<Restic>),
}

/// How a drill ended, for history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Passed,
    Failed,
    /// Cancelled from outside (Ctrl-C, SIGTERM).
    Aborted,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Passed => "passed",
            Ending::Failed => "failed",
            Ending::Aborted => "aborted",
        }
    }
}

/// Observers of a running drill (the CLI prints steps as they finish).
pub struct Hooks {
    pub progress: Arc<dyn Progress>,
    pub on_step: Box<dyn Fn(&Step) + Send + Sync>,
    /// Why the drill's cancellation token was cancelled, when whoever cancelled it said so
    /// (the daemon losing its claim); else an interruption (SIGTERM, Ctrl-C).
    pub cancel_reason: Arc<std::sync::OnceLock<String>>,
    /// Work on the freshly restored scratch before its checks (`drillbook init` captures the
    /// ground truth here), timed as step `capture`; its error fails the drill.
    pub after_restore: Option<Arc<dyn AfterRestore>>,
}

/// See [`Hooks::after_restore`].
#[async_trait::async_trait]
pub trait AfterRestore: Send + Sync {
    /// A one-line detail for the step, or why it failed.
    async fn run(&self, cx: &DrillCx, scratch: &Scratch, unpacked: &Unpacked) -> Result<String, String>;
}

const STEPS: [&str; 8] = ["locate", "fetch", "integrity", "unpack", "provision", "restore", "verify", "teardown"];
const TEARDOWN_LIMIT: Duration = Duration::from_secs(120);

struct Recorder<'a> {
    steps: Vec<Step>,
    reasons: Vec<String>,
    started: Instant,
    deadline: Instant,
    drill_limit: Duration,
    step_limit: Duration,
    cancel: CancellationToken,
    aborted: bool,
    hooks: &'a Hooks,
    /// Every detail and reason is scrubbed here, before a hook (the terminal), the report or
    /// the history sees it.
    secrets: drillbook_adapters::Secrets,
}

/// What a step reports when it succeeds.
struct Done<T> {
    value: T,
    bytes: Option<u64>,
    detail: String,
}

fn done<T>(value: T, bytes: Option<u64>, detail: impl Into<String>) -> Done<T> {
    Done { value, bytes, detail: detail.into() }
}

impl Recorder<'_> {
    fn push(
        &mut self,
        name: &str,
        at: DateTime<Utc>,
        took: Duration,
        status: StepStatus,
        bytes: Option<u64>,
        detail: String,
    ) {
        let detail = self.secrets.redact(&detail);
        let step =
            Step { name: name.into(), started_at: at, duration_ms: took.as_millis() as u64, status, bytes, detail };
        (self.hooks.on_step)(&step);
        self.steps.push(step);
    }

    /// Adds `text` to step `name`'s detail, or records the step with it when it has not run
    /// (a drill that failed before provisioning keeps its folder at teardown all the same).
    fn note(&mut self, name: &str, text: String) {
        match self.steps.iter_mut().rfind(|s| s.name == name) {
            Some(step) => step.detail = self.secrets.redact(&format!("{}; {text}", step.detail)),
            None => self.push(name, Utc::now(), Duration::ZERO, StepStatus::Passed, None, text),
        }
    }

    fn fail(&mut self, step: &str, reason: String) {
        self.reasons.push(self.secrets.redact(&format!("{step}: {reason}")));
    }

    /// `aborted: …` with why the drill was cancelled.
    fn abort_reason(&self) -> String {
        format!(
            "aborted: {}",
            self.hooks.cancel_reason.get().map(String::as_str).unwrap_or("the drill was interrupted")
        )
    }

    /// The time this step may take: the step limit, or what is left of the drill's.
    fn budget(&self) -> (Duration, &'static str) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < self.step_limit { (left, "drill") } else { (self.step_limit, "step") }
    }

    /// The reason for a step or check that ran out of time.
    fn timed_out(&self, started: Instant, which: &str) -> String {
        let limit = if which == "drill" { self.drill_limit } else { self.step_limit };
        format!("timed out after {}s ({which} timeout {})", started.elapsed().as_secs(), human(limit))
    }

    async fn step<T>(&mut self, name: &str, fut: impl Future<Output = Result<Done<T>, String>>) -> Option<T> {
        let at = Utc::now();
        let t = Instant::now();
        let (limit, which) = self.budget();
        let outcome = tokio::select! {
            r = tokio::time::timeout(limit, fut) => match r {
                Ok(r) => r,
                Err(_) => Err(self.timed_out(t, which)),
            },
            _ = self.cancel.cancelled() => {
                self.aborted = true;
                Err(self.abort_reason())
            }
        };
        let outcome = self.settle(outcome);
        match outcome {
            Ok(d) => {
                self.push(name, at, t.elapsed(), StepStatus::Passed, d.bytes, d.detail);
                Some(d.value)
            }
            Err(reason) => {
                self.push(name, at, t.elapsed(), StepStatus::Failed, None, reason.clone());
                self.fail(name, reason);
                None
            }
        }
    }

    /// An error while the drill is being cancelled is the interruption, whatever it says: the
    /// step or check may have seen the cancellation first (a child process it killed).
    fn settle<T>(&mut self, outcome: Result<T, String>) -> Result<T, String> {
        match outcome {
            Err(_) if self.cancel.is_cancelled() => {
                self.aborted = true;
                Err(self.abort_reason())
            }
            other => other,
        }
    }

    fn skip_rest(&mut self, after: &str) {
        let Some(i) = STEPS.iter().position(|s| *s == after) else {
            return;
        };
        for s in &STEPS[i + 1..] {
            if *s != "teardown" && !self.steps.iter().any(|x| x.name == *s) {
                self.push(
                    s,
                    Utc::now(),
                    Duration::ZERO,
                    StepStatus::Skipped,
                    None,
                    "skipped: an earlier step failed".into(),
                );
            }
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) && s >= 3600 {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) && s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Runs one drill to the end and returns its report. Never panics on bad input; every
/// failure is a reason in the report.
pub async fn execute(
    plan: &DrillPlan,
    run_id: &str,
    started_at: DateTime<Utc>,
    scheduled_for: Option<DateTime<Utc>>,
    cancel: CancellationToken,
    hooks: &Hooks,
) -> (Report, Ending) {
    let rb = &plan.runbook;
    let drill_limit = rb.timeouts.drill();
    let mut rec = Recorder {
        steps: Vec::new(),
        reasons: Vec::new(),
        started: Instant::now(),
        deadline: Instant::now() + drill_limit,
        drill_limit,
        step_limit: rb.timeouts.step(),
        cancel: cancel.clone(),
        aborted: false,
        hooks,
        secrets: plan.secrets.clone(),
    };
    let mut checks = Vec::new();
    let mut backup: Option<reports::Backup> = None;
    let mut proven_at: Option<Duration> = None;
    let mut keeping: Option<Result<DateTime<Utc>, String>> = None;
    let mut also_kept = Vec::new();

    // The drill's private folder: everything unpacked or created lives here.
    let work = tempfile::Builder::new().prefix(&format!("drillbook-{run_id}-")).tempdir();
    let mut work = match work {
        Ok(w) => Some(w),
        Err(e) => {
            rec.fail("locate", format!("cannot create the drill's scratch folder: {e}"));
            None
        }
    };
    let adapter = drillbook_adapters::build(&rb.restore.adapter);
    let runbook_dir = plan.path.parent().map(PathBuf::from).unwrap_or_default();

    if let Some(work) = &work {
        let cx = DrillCx {
            run_id: run_id.to_string(),
            runbook_dir,
            work_dir: work.path().to_path_buf(),
            cancel: cancel.clone(),
            secrets: plan.secrets.clone(),
            progress: hooks.progress.clone(),
            scratch: plan.scratch.clone(),
            parts: Default::default(),
        };
        let unpacked = match &plan.broken {
            Some(why) => {
                let why = why.clone();
                rec.step::<()>("locate", async move { Err(why) }).await;
                rec.skip_rest("locate");
                None
            }
            None => fetch_phase(plan, &cx, &mut rec, &mut backup).await,
        };
        if let Some(unpacked) = unpacked {
            let scratch = rec
                .step("provision", async {
                    let s = adapter.provision(&cx, &unpacked).await.map_err(|e| e.to_string())?;
                    let detail = format!("{} scratch at {}", rb.restore.scratch.raw(), s.url);
                    Ok(done(s, None, detail))
                })
                .await;
            match scratch {
                None => rec.skip_rest("provision"),
                Some(mut scratch) => {
                    let mut verified = Verified { checks: &mut checks, backup: &mut backup };
                    restore_and_verify(adapter.as_ref(), &cx, &mut scratch, &unpacked, &mut rec, &mut verified, rb)
                        .await;
                    if rec.reasons.is_empty() {
                        proven_at = Some(rec.started.elapsed());
                    }
                    keeping = keep_or_not(plan, &rec, work.path());
                    let how = if matches!(keeping, Some(Ok(_))) { Teardown::Keep } else { Teardown::Remove };
                    also_kept = teardown(adapter.as_ref(), &cx, scratch, how, &mut rec).await;
                }
            }
        }
        if keeping.is_none() {
            keeping = keep_or_not(plan, &rec, work.path());
        }
    }
    // What a failed drill keeps for investigation (`keep_on_failure`), or why it could not.
    let mut kept = None;
    match keeping {
        Some(Ok(until)) => {
            if let Some(work) = work.take() {
                let folder = work.keep().display().to_string();
                rec.note("teardown", format!("kept {folder} for investigation until {}", until.to_rfc3339()));
                kept = Some(reports::Kept { folder, also: also_kept, until });
            }
        }
        Some(Err(why)) => rec.note("teardown", format!("keep_on_failure: not kept: {why}")),
        None => {}
    }
    // The folder goes on every other path, whatever the adapter did.
    if let Some(work) = work {
        let path = work.path().display().to_string();
        // Removing a restored tree (gigabytes, many files) is blocking work: off the async
        // workers, which serve the daemon's other drills and its HTTP side.
        let closed = tokio::task::spawn_blocking(move || work.close()).await;
        match closed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => rec.fail("teardown", format!("cannot remove the drill folder {path}: {e}")),
            Err(e) => rec.fail("teardown", format!("removing the drill folder {path} failed: {e}")),
        }
    }

    // Objectives.
    let mut objectives = reports::Objectives::default();
    if let Some(rto) = &rb.objectives.rto {
        let target = rto.get().0.as_secs();
        let measured = proven_at.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0);
        let met = measured.is_some_and(|m| m <= target as f64);
        if let Some(m) = measured
            && !met
        {
            rec.fail("objective", format!("RTO breached: restore and verify took {m:.1}s, objective {}", rto.raw()));
        }
        objectives.rto = Some(reports::Objective { target_s: target, measured_s: measured, met });
    }
    if let Some(rpo) = &rb.objectives.rpo {
        let target = rpo.get().0.as_secs();
        let age = backup.as_ref().and_then(|b| b.rpo_age_seconds());
        let met = age.is_some_and(|a| a <= target as i64);
        if let Some(a) = age
            && !met
        {
            rec.fail(
                "objective",
                format!(
                    "RPO breached: the newest backup is {} old, objective {}",
                    human(Duration::from_secs(a.max(0) as u64)),
                    rpo.raw()
                ),
            );
        }
        objectives.rpo = Some(reports::Objective { target_s: target, measured_s: age.map(|a| a as f64), met });
    }

    let failed = !rec.reasons.is_empty();
    let ending = if rec.aborted {
        Ending::Aborted
    } else if failed {
        Ending::Failed
    } else {
        Ending::Passed
    };
    // Steps and reasons were scrubbed of secrets as they were recorded (`Recorder`).
    let steps = rec.steps;
    let report = Report {
        schema: reports::SCHEMA.into(),
        run_id: run_id.into(),
        runbook: reports::RunbookRef {
            name: rb.name().into(),
            path: plan.path.display().to_string(),
            sha256: plan.sha256.clone(),
        },
        asset: serde_json::to_value(&rb.asset).unwrap_or_default(),
        backup,
        started_at,
        finished_at: Utc::now(),
        scheduled_for,
        steps,
        checks,
        objectives,
        verdict: if failed { Verdict::Failed } else { Verdict::Passed },
        failure_reasons: rec.reasons,
        // Chosen when the report is committed (`run::drill`), under the chain's lock.
        previous: None,
        seq: None,
        runner: reports::Runner { version: env!("CARGO_PKG_VERSION").into(), host: crate::host() },
        controls: reports::standard_controls(),
        kept,
    };
    (report, ending)
}

/// locate, fetch, integrity, unpack. Fetch and unpack overlap: one read of the object.
async fn fetch_phase(
    plan: &DrillPlan,
    cx: &DrillCx,
    rec: &mut Recorder<'_>,
    backup: &mut Option<reports::Backup>,
) -> Option<Unpacked> {
    let rb = &plan.runbook;
    let located = rec
        .step("locate", async {
            // `pick: random` is seeded by the run id: the same drill picks the same point again.
            let seed =
                u64::from_be_bytes(sha2::Sha256::digest(cx.run_id.as_bytes())[..8].try_into().unwrap_or_default());
            let (found, expected) = match &plan.origin {
                Origin::Storage { storage, path } => {
                    let found =
                        storage.locate(&rb.source, path, chrono::Utc::now(), seed).await.map_err(|e| e.to_string())?;
                    let expected =
                        storage.expected_sha256(&found, rb.source.checksum).await.map_err(|e| e.to_string())?;
                    (found, expected)
                }
                Origin::Restic(restic) => {
                    let found = restic
                        .locate(&rb.source, chrono::Utc::now(), seed, &cx.work_dir, &cx.cancel)
                        .await
                        .map_err(|e| e.to_string())?;
                    (found, None)
                }
            };
            let when = found.modified.map(|m| m.to_rfc3339()).unwrap_or_else(|| "unknown".into());
            let what = match plan.origin {
                // A snapshot's size is known once restic has restored it.
                Origin::Restic(_) => format!("taken {when}; restic is restoring it"),
                Origin::Storage { .. } => format!(
                    "{} bytes, modified {when}{}",
                    found.size,
                    found.named_time.map(|t| format!(", taken {} by its name", t.to_rfc3339())).unwrap_or_default()
                ),
            };
            let detail = format!(
                "{} ({what}){}{}",
                found.location,
                found.picked.as_ref().map(|p| format!("; picked {p}")).unwrap_or_default(),
                expected.as_ref().map(|e| format!("; expected sha256 {e}")).unwrap_or_default()
            );
            Ok(done((found, expected), None, detail))
        })
        .await;
    let Some((mut found, expected)) = located else {
        rec.skip_rest("locate");
        return None;
    };
    *backup = Some(backup_record(&found, None, expected.clone(), &plan.origin));
    let dest = cx.work_dir.join("restore");
    if let Err(e) = std::fs::create_dir(&dest) {
        rec.fail("unpack", format!("cannot create {}: {e}", dest.display()));
        rec.skip_rest("locate");
        return None;
    }

    let fetch_at = Utc::now();
    let fetch_t = Instant::now();
    let (limit, which) = rec.budget();
    let ratio = rb.source.max_expansion.unwrap_or(unpack::DEFAULT_MAX_RATIO);
    let pipeline = async {
        match &plan.origin {
            Origin::Storage { storage, .. } => {
                storage
                    .fetch_and_unpack(&found, &dest, ratio, plan.decryption.clone(), cx.progress.clone(), &cx.cancel)
                    .await
            }
            Origin::Restic(restic) => {
                restic.fetch_and_unpack(&found, &dest, ratio, cx.progress.clone(), &cx.cancel).await
            }
        }
    };
    let fetched = tokio::select! {
        r = tokio::time::timeout(limit, pipeline) => r.ok(),
        _ = cx.cancel.cancelled() => None,
    };
    let Some(f) = fetched else {
        let reason = if cx.cancel.is_cancelled() {
            rec.aborted = true;
            rec.abort_reason()
        } else {
            rec.timed_out(fetch_t, which)
        };
        rec.push(
            "fetch",
            fetch_at,
            Utc::now().signed_duration_since(fetch_at).to_std().unwrap_or_default(),
            StepStatus::Failed,
            None,
            reason.clone(),
        );
        rec.fail("fetch", reason);
        rec.skip_rest("fetch");
        return None;
    };
    if let Origin::Restic(_) = plan.origin {
        // A snapshot's size is what restic restored.
        found.size = f.bytes_read;
    }
    *backup = Some(backup_record(&found, f.sha256.clone(), expected.clone(), &plan.origin));
    let fetch_took = Duration::from_millis(f.fetch_ms);
    if let Some(err) = &f.fetch_error {
        if cx.cancel.is_cancelled() {
            rec.aborted = true;
        }
        rec.push("fetch", fetch_at, fetch_took, StepStatus::Failed, Some(f.bytes_read), err.clone());
        rec.fail("fetch", err.clone());
        rec.skip_rest("fetch");
        return None;
    }
    rec.push(
        "fetch",
        fetch_at,
        fetch_took,
        StepStatus::Passed,
        Some(f.bytes_read),
        match plan.origin {
            Origin::Storage { .. } => format!("read {} once, hashed while streaming", found.location),
            Origin::Restic(_) => format!("`restic restore` of {}", found.location),
        },
    );

    let integrity_at = Utc::now();
    let sha = f.sha256.clone().unwrap_or_default();
    if let Origin::Restic(restic) = &plan.origin {
        let proof = rec
            .step("integrity", async {
                // restic authenticates every blob it restores (MAC, then its SHA-256 id).
                let file =
                    if sha.is_empty() { String::new() } else { format!("; the restored file hashes to sha256 {sha}") };
                match restic.check(&cx.cancel).await {
                    Some(Ok(said)) => Ok(done((), Some(f.bytes_read), format!("{said}{file}"))),
                    Some(Err(why)) => Err(why),
                    None => Ok(done(
                        (),
                        Some(f.bytes_read),
                        format!(
                            "restic authenticated every blob it restored{file} (add `verify_repository: 5%` to \
                             read back a share of the whole repository)"
                        ),
                    )),
                }
            })
            .await;
        if proof.is_none() {
            rec.skip_rest("integrity");
            return None;
        }
    } else {
        match &expected {
            Some(want) if *want != sha => {
                let reason =
                    format!("sha256 mismatch: the backup hashes to {sha}, the {} says {want}", checksum_source(rb));
                rec.push(
                    "integrity",
                    integrity_at,
                    Duration::ZERO,
                    StepStatus::Failed,
                    Some(f.bytes_read),
                    reason.clone(),
                );
                rec.fail("integrity", reason);
                rec.skip_rest("integrity");
                return None;
            }
            Some(_) => rec.push(
                "integrity",
                integrity_at,
                Duration::ZERO,
                StepStatus::Passed,
                Some(f.bytes_read),
                format!("sha256 {sha} matches the {}", checksum_source(rb)),
            ),
            None => rec.push(
                "integrity",
                integrity_at,
                Duration::ZERO,
                StepStatus::Passed,
                Some(f.bytes_read),
                format!("sha256 {sha} (no checksum required by the runbook)"),
            ),
        }
    }

    let unpack_took = Duration::from_millis(f.unpack_ms);
    match f.unpacked {
        Ok(u) => {
            rec.push(
                "unpack",
                fetch_at,
                unpack_took,
                StepStatus::Passed,
                Some(u.bytes),
                match plan.origin {
                    Origin::Storage { .. } => format!("{} (overlapped with fetch)", unpack::describe(&u)),
                    Origin::Restic(_) => {
                        format!("{} (the unpack rules checked on what restic wrote)", unpack::describe(&u))
                    }
                },
            );
            Some(u)
        }
        Err(e) => {
            let reason = e.to_string();
            rec.push("unpack", fetch_at, unpack_took, StepStatus::Failed, None, reason.clone());
            rec.fail("unpack", reason);
            rec.skip_rest("unpack");
            None
        }
    }
}

fn checksum_source(rb: &Runbook) -> &'static str {
    match rb.source.checksum {
        drillbook_runbooks::ChecksumMode::Manifest => "SHA256SUMS manifest",
        _ => "sidecar",
    }
}

fn backup_record(
    found: &Located,
    sha256: Option<String>,
    expected: Option<String>,
    origin: &Origin,
) -> reports::Backup {
    // The recovery point's own time: the one in its name when `time_format` read it (the
    // restore replaces it with the one its content holds, `taken_from_content`).
    let (taken_at, taken_from) = match (found.named_time, origin) {
        (Some(t), _) => (Some(t), "its name (`time_format`)"),
        (None, Origin::Restic(_)) => (found.modified, "the restic snapshot's time"),
        (None, Origin::Storage { .. }) => (found.modified, "the object's modification time"),
    };
    reports::Backup {
        location: found.location.clone(),
        size_bytes: found.size,
        modified_at: found.modified,
        sha256,
        expected_sha256: expected,
        taken_from: taken_at.map(|_| taken_from.to_string()),
        taken_at,
        age_seconds: taken_at.map(|m| Utc::now().signed_duration_since(m).num_seconds()),
        newest_age_seconds: found.newest_time.map(|m| Utc::now().signed_duration_since(m).num_seconds()),
    }
}

/// The backup's time as its content says (the restore read it), in place of its object's:
/// unless it is later than the object was stored or than now, which a backup's own time
/// cannot be (a dump host's wall clock in a zone east of UTC, say); then the report says so.
fn taken_from_content(backup: &mut reports::Backup, taken: Taken, rec: &mut Recorder<'_>) {
    let stored = backup.modified_at.unwrap_or(DateTime::<Utc>::MAX_UTC).min(Utc::now());
    // A minute for clocks that differ between the backup host and the storage.
    if taken.at > stored + chrono::Duration::minutes(1) {
        rec.note(
            "restore",
            format!(
                "{} says the backup was taken at {}, after it was stored ({}): its time stays {}",
                taken.from,
                taken.at.to_rfc3339(),
                stored.to_rfc3339(),
                backup.taken_from.as_deref().unwrap_or("unknown")
            ),
        );
        return;
    }
    let age = |t: DateTime<Utc>| Utc::now().signed_duration_since(t).num_seconds();
    // When an older point was drilled on purpose, the newest one's age stays what the RPO is
    // measured on; otherwise this backup is the newest.
    backup.age_seconds = Some(age(taken.at));
    backup.taken_at = Some(taken.at);
    backup.taken_from = Some(taken.from);
}

/// What restoring and verifying fill in of the report.
struct Verified<'a> {
    checks: &'a mut Vec<reports::Check>,
    /// Its time, when the restore read it from the backup's content.
    backup: &'a mut Option<reports::Backup>,
}

async fn restore_and_verify(
    adapter: &dyn Adapter,
    cx: &DrillCx,
    scratch: &mut Scratch,
    unpacked: &Unpacked,
    rec: &mut Recorder<'_>,
    out: &mut Verified<'_>,
    rb: &Runbook,
) {
    let checks = &mut *out.checks;
    let restored = rec
        .step("restore", async {
            let out = adapter.restore(cx, scratch, unpacked).await.map_err(|e| e.to_string())?;
            Ok(done(out.taken, None, out.detail))
        })
        .await;
    let (parts, running) = cx.parts.take();
    for p in parts {
        rec.push(&p.name, p.started_at, Duration::from_millis(p.duration_ms), StepStatus::Passed, p.bytes, p.detail);
    }
    if let Some(p) = running {
        // The part the restore was in when it failed: name it in the reason.
        let during = rec.secrets.redact(&format!(" (during {}: {})", p.name, p.detail));
        if let Some(reason) = rec.reasons.last_mut().filter(|r| r.starts_with("restore:")) {
            reason.push_str(&during);
        }
        let detail = format!("{}; stopped after {} ms when the restore failed", p.detail, p.duration_ms);
        rec.push(&p.name, p.started_at, Duration::from_millis(p.duration_ms), StepStatus::Failed, None, detail);
    }
    let Some(taken) = restored else {
        rec.skip_rest("restore");
        return;
    };
    if let (Some(taken), Some(backup)) = (taken, out.backup.as_mut()) {
        taken_from_content(backup, taken, rec);
    }
    if let Some(hook) = rec.hooks.after_restore.clone() {
        let scratch = &*scratch;
        if rec
            .step("capture", async { hook.run(cx, scratch, unpacked).await.map(|d| done((), None, d)) })
            .await
            .is_none()
        {
            return;
        }
    }

    let verify_at = Utc::now();
    let verify_t = Instant::now();
    for (i, check) in rb.verify.iter().enumerate() {
        let at = Instant::now();
        let (limit, which) = rec.budget();
        if limit.is_zero() {
            let left = rb.verify.len() - i;
            rec.fail(
                "verify",
                format!("the drill timeout {} was reached; {left} checks not run", human(rec.drill_limit)),
            );
            break;
        }
        let outcome = tokio::select! {
            r = tokio::time::timeout(limit, drillbook_adapters::run_check(adapter, cx, scratch, &check.check)) => match r {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(rec.timed_out(at, which)),
            },
            _ = cx.cancel.cancelled() => {
                rec.aborted = true;
                Err(rec.abort_reason())
            }
        };
        let outcome = rec.settle(outcome);
        let took = at.elapsed().as_millis() as u64;
        let record = match outcome {
            Ok(o) => {
                if !o.passed {
                    rec.fail(
                        "verify",
                        format!(
                            "check `{}` failed: observed {}, expected {}{}",
                            check.name,
                            o.observed,
                            o.expected,
                            if o.detail.is_empty() { String::new() } else { format!(" ({})", o.detail) }
                        ),
                    );
                }
                reports::Check {
                    name: check.name.clone(),
                    kind: check.check.name().into(),
                    status: if o.passed { CheckStatus::Passed } else { CheckStatus::Failed },
                    observed: cx.secrets.redact_json(o.observed),
                    expected: cx.secrets.redact_json(o.expected),
                    duration_ms: took,
                    detail: cx.secrets.redact(&o.detail),
                }
            }
            Err(e) => {
                let e = cx.secrets.redact(&e);
                rec.fail("verify", format!("check `{}` could not be evaluated: {e}", check.name));
                reports::Check {
                    name: check.name.clone(),
                    kind: check.check.name().into(),
                    status: CheckStatus::Error,
                    observed: serde_json::Value::Null,
                    expected: serde_json::Value::Null,
                    duration_ms: took,
                    detail: e,
                }
            }
        };
        checks.push(record);
        if rec.aborted {
            break;
        }
    }
    let failed = checks.iter().filter(|c| c.status != CheckStatus::Passed).count();
    let status = if failed == 0 { StepStatus::Passed } else { StepStatus::Failed };
    let detail = format!("{} of {} checks passed", checks.len() - failed, rb.verify.len());
    rec.push("verify", verify_at, verify_t.elapsed(), status, None, detail);
}

/// Tears the scratch down (`how`); returns what was kept beside the drill's folder (a scratch
/// database on a server) when it was kept.
async fn teardown(
    adapter: &dyn Adapter,
    cx: &DrillCx,
    scratch: Scratch,
    how: Teardown,
    rec: &mut Recorder<'_>,
) -> Vec<String> {
    let at = Utc::now();
    let t = Instant::now();
    let made = scratch.created.clone();
    let created = made.join(", ");
    // Not cancellable and not bound by the drill's deadline: cleaning up must happen.
    let result = tokio::time::timeout(TEARDOWN_LIMIT, adapter.teardown(cx, scratch, how)).await;
    let (status, detail) = match result {
        Ok(Ok(())) if how == Teardown::Keep => (
            StepStatus::Passed,
            if created.is_empty() {
                "stopped; nothing else to keep".into()
            } else {
                format!("stopped; kept {created}")
            },
        ),
        Ok(Ok(())) => (
            StepStatus::Passed,
            if created.is_empty() { "nothing to remove".to_string() } else { format!("removed {created}") },
        ),
        Ok(Err(e)) => (StepStatus::Failed, format!("teardown failed: {e}")),
        Err(_) => (StepStatus::Failed, format!("teardown did not finish within {}s", TEARDOWN_LIMIT.as_secs())),
    };
    if status == StepStatus::Failed {
        rec.fail("teardown", detail.clone());
    }
    rec.push("teardown", at, t.elapsed(), status, None, detail);
    // What lives outside the drill's folder (the folder itself is the runner's to keep).
    let folder = cx.work_dir.display().to_string();
    if how == Teardown::Keep { made.into_iter().filter(|m| !m.contains(&folder)).collect() } else { Vec::new() }
}

/// Whether a drill's scratch stays for investigation: `None` when `keep_on_failure` does not
/// apply (not asked, the drill has not failed, it was interrupted, nothing was unpacked),
/// else until when, or why not (the disk below `keep_min_free`).
fn keep_or_not(plan: &DrillPlan, rec: &Recorder<'_>, folder: &Path) -> Option<Result<DateTime<Utc>, String>> {
    let keep = plan.runbook.keep_on_failure.as_ref()?;
    if rec.reasons.is_empty() || rec.aborted || !folder.join("restore").exists() {
        return None;
    }
    let free = match free_bytes(folder) {
        Ok(f) => f,
        Err(e) => return Some(Err(format!("cannot read the free space of {}: {e}", folder.display()))),
    };
    if free < plan.keep_min_free {
        return Some(Err(format!(
            "{} free on the file system of {}, below keep_min_free ({})",
            human_bytes(free),
            folder.display(),
            human_bytes(plan.keep_min_free)
        )));
    }
    let until = Utc::now() + chrono::Duration::from_std(keep.get().0).unwrap_or(chrono::Duration::MAX);
    Some(Ok(until))
}

/// Bytes an unprivileged user may still write on the file system holding `path`.
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

fn human_bytes(n: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    if n >= 1 << 30 { format!("{:.1} GiB", n as f64 / GIB) } else { format!("{} MiB", n >> 20) }
}
