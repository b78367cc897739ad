//! The drill executor: locate → fetch (+ integrity, unpack, in one pass) → provision →
//! restore → verify → teardown, every step timed, every failure a reason in the report.
//!
//! A drill restores one store or several (`restores:`). Read top to bottom: [`execute`] reads
//! the drill's shared backup (`fetch.rs`), runs each restore's lane at once up to `parallel:`
//! (its own backup, provision, restore: `scratch.rs`), runs the checks against the restores
//! they name (`verify.rs`), tears every scratch down in reverse order and writes the report;
//! `record.rs` times the steps and keeps the reasons.
//!
//! **Invariant:** teardown runs on every path out of a drill that provisioned anything,
//! including failures, timeouts and cancellation; the drill's folder is always removed.
//! **Invariant:** a failed drill is not an `Err`: `execute` always returns a report.

mod coherence;
mod fetch;
mod record;
mod scratch;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drillbook_adapters::source::{Restic, Storage};
use drillbook_adapters::{DrillCx, Progress, Scratch, ScratchTarget, Secrets, Teardown, Unpacked, unpack};
use drillbook_reports::{self as reports, Report, Step, StepStatus, Verdict};
use drillbook_runbooks::Runbook;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use record::{Recorder, SHARED_STEPS, STEPS, Stop, human};
use scratch::Lane;

/// Everything a drill needs, built (and validated) before it starts.
pub struct DrillPlan {
    pub runbook: Runbook,
    pub path: PathBuf,
    pub sha256: String,
    /// The backups the drill reads: the drill's `source` (when a restore reads it), then each
    /// restore's own.
    pub sources: Vec<SourcePlan>,
    /// One per restore, in the order of `Runbook::restores`.
    pub restores: Vec<RestorePlan>,
    pub secrets: Secrets,
    /// `keep_min_free` of the config: a failed drill's scratch is kept only above it.
    pub keep_min_free: u64,
    /// Why the runbook could not be built when it fired (a `${env:}` secret gone after a
    /// rotation, a storage profile removed): the drill fails at `locate` with it, and is
    /// recorded, reported and notified like any failed drill.
    pub broken: Option<String>,
}

/// One backup of the drill, built.
pub struct SourcePlan {
    pub origin: Origin,
    /// `source.decrypt`, its identities resolved (never printed).
    pub decryption: Option<unpack::Decryption>,
    /// The restore whose own `source` this is; none for the drill's `source`.
    pub owner: Option<usize>,
}

/// One restore of the drill, built.
pub struct RestorePlan {
    /// Its backup, in [`DrillPlan::sources`].
    pub source: usize,
    /// Where its scratch comes from (`scratch:` resolved in the config).
    pub scratch: ScratchTarget,
}

impl DrillPlan {
    /// The drill's own backup (`source`), when a restore reads it.
    fn shared(&self) -> Option<&SourcePlan> {
        self.sources.iter().find(|s| s.owner.is_none())
    }
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
        started: std::time::Instant::now(),
        deadline: std::time::Instant::now() + drill_limit,
        drill_limit,
        step_limit: rb.timeouts.step(),
        drill: cancel.clone(),
        cancel: cancel.clone(),
        stop: None,
        aborted: false,
        hooks,
        secrets: plan.secrets.clone(),
        lane: None,
        vocabulary: &STEPS,
    };
    let mut checks = Vec::new();
    let mut shared_backup: Option<reports::Backup> = None;
    let mut proven_at: Option<Duration> = None;
    let mut keeping: Option<Result<DateTime<Utc>, String>> = None;
    let mut also_kept = Vec::new();
    let mut lanes: Vec<Lane> = Vec::new();
    let stack = rb.is_stack();

    // The drill's private folder: everything unpacked or created lives here.
    let work = tempfile::Builder::new().prefix(&format!("drillbook-{run_id}-")).tempdir();
    let mut work = match work {
        Ok(w) => Some(w),
        Err(e) => {
            rec.fail("locate", format!("cannot create the drill's scratch folder: {e}"));
            None
        }
    };
    let runbook_dir = plan.path.parent().map(PathBuf::from).unwrap_or_default();

    if let Some(work) = &work {
        let cx_in = |work_dir: PathBuf, scratch: ScratchTarget, cancel: CancellationToken| DrillCx {
            run_id: run_id.to_string(),
            runbook_dir: runbook_dir.clone(),
            work_dir,
            cancel,
            secrets: plan.secrets.clone(),
            progress: hooks.progress.clone(),
            scratch,
            parts: Default::default(),
        };
        // A stack's first failure stops the rest; in a drill of one it stops nothing else.
        let stop = Arc::new(Stop::new(&cancel, stack));
        for ((index, restore), adapter) in rb.restores().iter().enumerate().zip(scratch::adapters(rb)) {
            // A stack's restores work apart (two of the same store must not meet in one folder).
            let dir = if stack {
                work.path().join(drillbook_adapters::LANES).join(restore.name())
            } else {
                work.path().to_path_buf()
            };
            lanes.push(Lane {
                index,
                name: stack.then(|| restore.name().to_string()),
                adapter,
                cx: cx_in(dir, plan.restores[index].scratch.clone(), stop.token.clone()),
                backup: None,
                scratch: None,
                unpacked: false,
                taken: None,
                status: StepStatus::Skipped,
            });
        }
        if stack && let Err(e) = lanes.iter().try_for_each(|l| std::fs::create_dir_all(&l.cx.work_dir)) {
            rec.failed("locate", format!("cannot create the restores' folders in {}: {e}", work.path().display()));
            stop.fail("the drill's folder could not be made".into());
        }

        // 1. The drill's own backup, read once, shared by the restores without their own. In a
        //    stack, what follows its steps is each lane's.
        if stack {
            rec.vocabulary = &SHARED_STEPS;
        }
        let shared = match (&plan.broken, plan.shared()) {
            (Some(why), _) => {
                rec.failed("locate", why.clone());
                rec.skip_rest("locate");
                stop.fail("the runbook could not be built".into());
                None
            }
            (None, Some(source)) if stop.why.get().is_none() => {
                let cx = cx_in(work.path().to_path_buf(), ScratchTarget::Local, cancel.clone());
                let spec = rb.source.as_ref().expect("a shared source plan comes from `source`");
                let dest = work.path().join("restore");
                let unpacked = fetch::fetch(source, spec, &cx, &dest, &mut rec, &mut shared_backup).await;
                if unpacked.is_none() {
                    stop.fail("the drill's backup could not be read".into());
                }
                unpacked
            }
            _ => None,
        };
        rec.vocabulary = &STEPS;

        // 2. The restores' lanes, at once up to `parallel:`. A drill of one whose shared backup
        //    failed has recorded all its skipped steps already.
        if stack || stop.why.get().is_none() {
            let parallel = rb.parallel.map(|p| p as usize).unwrap_or_else(cores).max(1);
            let mut recs: Vec<Recorder<'_>> = lanes.iter().map(|l| rec.lane(l.name.clone(), stop.clone())).collect();
            let shared = shared.as_ref();
            let stop = &*stop;
            // Boxed before awaiting: a spawned drill must be `Send`, which a lazily mapped
            // stream of borrowing futures cannot prove (rust-lang/rust#102211).
            let runs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> = lanes
                .iter_mut()
                .zip(recs.iter_mut())
                .map(|(lane, r)| Box::pin(scratch::run(lane, plan, shared, r, stop)) as _)
                .collect();
            // Unordered: a finished lane frees its slot at once (an ordered buffer holds it
            // until every lane before it has finished, so a slow first restore held back the
            // third of a `parallel: 2` stack).
            futures_util::stream::iter(runs).buffer_unordered(parallel).collect::<Vec<()>>().await;
            // The cause first: the lanes it stopped say so in their own reasons.
            if let Some(cause) = stop.first.get().and_then(|&i| recs.get_mut(i)) {
                rec.reasons.append(&mut cause.reasons);
            }
            for r in recs {
                rec.absorb(r);
            }
        }
        // The shared backup's time as the first restore that read it found in its content.
        if let (Some(b), Some(taken)) = (shared_backup.as_mut(), lanes.iter_mut().find_map(|l| l.taken.take())) {
            fetch::taken_from_content(b, taken, &mut rec);
        }

        // 3. The checks, once every restore is up.
        if rec.reasons.is_empty() && lanes.iter().all(|l| l.status == StepStatus::Passed) {
            checks = verify::verify(&lanes, rb, &backups_of(&lanes, &shared_backup), &mut rec).await;
        } else {
            rec.skip_rest("restore");
        }
        if rec.reasons.is_empty() {
            proven_at = Some(rec.started.elapsed());
        }

        // 4. Teardown of everything provisioned, in reverse order.
        let unpacked = shared.is_some() || lanes.iter().any(|l| l.unpacked);
        keeping = scratch::keep_or_not(plan, &rec, work.path(), unpacked);
        let how = if matches!(keeping, Some(Ok(_))) { Teardown::Keep } else { Teardown::Remove };
        for lane in lanes.iter_mut().rev() {
            also_kept.extend(scratch::teardown(lane, how, &mut rec).await);
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

    let backups = backups_of(&lanes, &shared_backup);
    // The stack is as recent as its oldest backup: the report's `backup` and the RPO's.
    let oldest = backups
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.map(|b| (i, b)))
        .max_by_key(|(_, b)| b.rpo_age_seconds().unwrap_or(i64::MAX));
    let backup = oldest.map(|(_, b)| b.clone());
    let known_ages = backups.iter().all(|b| b.and_then(|b| b.rpo_age_seconds()).is_some());

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
        let age = if known_ages { backup.as_ref().and_then(|b| b.rpo_age_seconds()) } else { None };
        let met = age.is_some_and(|a| a <= target as i64);
        if let Some(a) = age
            && !met
        {
            let whose = match oldest {
                Some((i, _)) if stack => format!("the backup of {}", lanes[i].label()),
                _ => "the newest backup".into(),
            };
            rec.fail(
                "objective",
                format!(
                    "RPO breached: {whose} is {} old, objective {}",
                    human(Duration::from_secs(a.max(0) as u64)),
                    rpo.raw()
                ),
            );
        }
        objectives.rpo = Some(reports::Objective { target_s: target, measured_s: age.map(|a| a as f64), met });
    }
    let restores = if stack {
        lanes
            .iter()
            .zip(&backups)
            .zip(rb.restores())
            .map(|((l, b), r)| reports::RestoreRecord {
                name: l.name.clone().unwrap_or_default(),
                adapter: l.adapter.kind().into(),
                backup: b.cloned(),
                status: l.status,
                asset: r.asset.as_ref().and_then(|a| serde_json::to_value(a).ok()),
            })
            .collect()
    } else {
        Vec::new()
    };

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
        restores,
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

/// Each restore's backup: its own, or the drill's.
fn backups_of<'a>(lanes: &'a [Lane], shared: &'a Option<reports::Backup>) -> Vec<Option<&'a reports::Backup>> {
    lanes.iter().map(|l| l.backup.as_ref().or(shared.as_ref())).collect()
}

/// Restores at once by default: the machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
