//! A restore's scratch lifecycle: its backup (its own source, or its part of the drill's) →
//! provision → restore, in its lane; teardown at the end, in reverse order, on every path.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drillbook_adapters::{Adapter, DrillCx, Scratch, Teardown, Unpacked};
use drillbook_reports::{self as reports, StepStatus};
use drillbook_runbooks::Runbook;

use super::record::{Recorder, Stop, done};
use super::{DrillPlan, fetch};

/// Teardown is not cancellable and not bound by the drill's deadline, but by this.
const TEARDOWN_LIMIT: Duration = Duration::from_secs(120);

/// One restore of the drill and what it has made so far.
pub(super) struct Lane {
    pub index: usize,
    /// Its name in a drill of several restores (the report's lane); none in a drill of one.
    pub name: Option<String>,
    pub adapter: Box<dyn Adapter>,
    pub cx: DrillCx,
    /// Its own backup's record (a restore with its own `source`).
    pub backup: Option<reports::Backup>,
    pub scratch: Option<Scratch>,
    /// Whether its backup was unpacked (a failed drill keeps it only then).
    pub unpacked: bool,
    /// The shared backup's time as this restore read it from its content.
    pub taken: Option<drillbook_adapters::Taken>,
    pub status: StepStatus,
}

impl Lane {
    /// `restore \`docs\``, for reasons that name it.
    pub fn label(&self) -> String {
        format!("restore `{}`", self.name.as_deref().unwrap_or("restore"))
    }
}

/// The lane's backup, provision and restore. `shared` is the drill's unpacked `source`, for a
/// restore without one of its own. The first failure of a stack stops the others (`stop`).
pub(super) async fn run(
    lane: &mut Lane,
    plan: &DrillPlan,
    shared: Option<&Unpacked>,
    rec: &mut Recorder<'_>,
    stop: &Stop,
) {
    let rb = &plan.runbook;
    let restore = &rb.restores()[lane.index];
    let source = plan.sources.get(plan.restores[lane.index].source);
    let own = source.filter(|s| s.owner.is_some());
    if let Some(why) = stop.why.get() {
        // A restore reading the drill's backup has only its scratch steps.
        let after = if own.is_some() { "" } else { "unpack" };
        rec.skip_after(after, &format!("skipped: never started ({why})"));
        lane.status = StepStatus::Skipped;
        return;
    }
    let unpacked = if let (Some(own), Some(spec)) = (own, restore.source.as_ref()) {
        let dest = lane.cx.work_dir.join("restore");
        fetch::fetch(own, spec, &lane.cx, &dest, rec, &mut lane.backup).await
    } else {
        match (shared, &restore.from) {
            (None, _) => None,
            (Some(u), None) => Some(u.clone()),
            // Counting the part's files walks it: off the async workers.
            (Some(u), Some(from)) => match blocking_within(u.clone(), from.clone()).await {
                Ok(part) => Some(part),
                Err(e) => {
                    rec.failed("provision", e);
                    None
                }
            },
        }
    };
    let Some(unpacked) = unpacked else {
        rec.skip_rest("provision");
        return fail(lane, stop);
    };
    lane.unpacked = true;
    let adapter = lane.adapter.as_ref();
    let cx = &lane.cx;
    let scratch = rec
        .step("provision", async {
            let s = adapter.provision(cx, &unpacked).await.map_err(|e| e.to_string())?;
            let detail = format!("{} scratch at {}", restore.scratch.raw(), s.url);
            Ok(done(s, None, detail))
        })
        .await;
    let Some(mut scratch) = scratch else {
        rec.skip_rest("provision");
        return fail(lane, stop);
    };
    let restored = rec
        .step("restore", async {
            let out = adapter.restore(cx, &mut scratch, &unpacked).await.map_err(|e| e.to_string())?;
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
        if let Some(reason) = rec.reasons.last_mut().filter(|r| r.contains("restore:")) {
            reason.push_str(&during);
        }
        let detail = format!("{}; stopped after {} ms when the restore failed", p.detail, p.duration_ms);
        rec.push(&p.name, p.started_at, Duration::from_millis(p.duration_ms), StepStatus::Failed, None, detail);
    }
    lane.scratch = Some(scratch);
    let Some(taken) = restored else {
        return fail(lane, stop);
    };
    if let Some(taken) = taken {
        lane.backup_taken(taken, own.is_none(), rec);
    }
    if let Some(hook) = rec.hooks.after_restore.clone() {
        let scratch = lane.scratch.as_ref().expect("set above");
        let captured = rec
            .step("capture", async { hook.run(&lane.cx, scratch, &unpacked).await.map(|d| done((), None, d)) })
            .await;
        if captured.is_none() {
            return fail(lane, stop);
        }
    }
    lane.status = StepStatus::Passed;
}

impl Lane {
    /// The backup's time as its content says, on its own backup's record; a shared backup's
    /// is the drill's (see `execute`), so it is kept for the drill to apply.
    fn backup_taken(&mut self, taken: drillbook_adapters::Taken, shared: bool, rec: &mut Recorder<'_>) {
        if shared {
            self.taken = Some(taken);
        } else if let Some(b) = self.backup.as_mut() {
            fetch::taken_from_content(b, taken, rec);
        }
    }
}

fn fail(lane: &mut Lane, stop: &Stop) {
    lane.status = StepStatus::Failed;
    let _ = stop.first.set(lane.index);
    stop.fail(format!("{} failed", lane.label()));
}

async fn blocking_within(shared: Unpacked, from: String) -> Result<Unpacked, String> {
    match tokio::task::spawn_blocking(move || shared.within(&from)).await {
        Ok(part) => part.map_err(|e| e.to_string()),
        Err(e) => Err(format!("reading `from:` failed: {e}")),
    }
}

/// Tears a lane's scratch down (`how`); returns what was kept beside the drill's folder (a
/// scratch database on a server) when it was kept.
pub(super) async fn teardown(lane: &mut Lane, how: Teardown, rec: &mut Recorder<'_>) -> Vec<String> {
    let Some(scratch) = lane.scratch.take() else {
        return Vec::new();
    };
    rec.lane = lane.name.clone();
    let at = Utc::now();
    let t = Instant::now();
    let made = scratch.created.clone();
    let created = made.join(", ");
    // Not cancellable and not bound by the drill's deadline: cleaning up must happen.
    let result = tokio::time::timeout(TEARDOWN_LIMIT, lane.adapter.teardown(&lane.cx, scratch, how)).await;
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
    rec.lane = None;
    // What lives outside the drill's folder (the folder itself is the runner's to keep).
    let folder = lane.cx.work_dir.display().to_string();
    if how == Teardown::Keep { made.into_iter().filter(|m| !m.contains(&folder)).collect() } else { Vec::new() }
}

/// Whether a drill's scratch stays for investigation: `None` when `keep_on_failure` does not
/// apply (not asked, the drill has not failed, it was interrupted, nothing was unpacked),
/// else until when, or why not (the disk below `keep_min_free`).
pub(super) fn keep_or_not(
    plan: &DrillPlan,
    rec: &Recorder<'_>,
    folder: &Path,
    unpacked: bool,
) -> Option<Result<DateTime<Utc>, String>> {
    let keep = plan.runbook.keep_on_failure.as_ref()?;
    if rec.reasons.is_empty() || rec.aborted || !unpacked {
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

/// The adapters of a runbook's restores, one per lane.
pub(super) fn adapters(rb: &Runbook) -> Vec<Box<dyn Adapter>> {
    rb.restores().iter().map(|r| drillbook_adapters::build(&r.adapter)).collect()
}
