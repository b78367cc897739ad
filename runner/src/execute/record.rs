//! The record of a drill as it runs: its steps, in order, and why it failed. A drill of several
//! restores keeps one recorder per restore (its lane) and one for the drill's own steps, so the
//! restores can run at once; the lanes are folded into the drill's when they are done.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drillbook_reports::{Step, StepStatus};
use tokio_util::sync::CancellationToken;

use super::Hooks;

/// The steps of a drill, in order.
pub(super) const STEPS: [&str; 8] =
    ["locate", "fetch", "integrity", "unpack", "provision", "restore", "verify", "teardown"];
/// The steps of one restore's lane: its own backup's (when it has one), then its scratch.
pub(super) const LANE_STEPS: [&str; 6] = ["locate", "fetch", "integrity", "unpack", "provision", "restore"];
/// The drill's own steps in front of a stack's lanes: the shared backup's.
pub(super) const SHARED_STEPS: [&str; 4] = ["locate", "fetch", "integrity", "unpack"];

/// A stack's first failure: it stops the restores still running (their children killed
/// through `token`, a child of the drill's) and keeps the others from starting.
pub(super) struct Stop {
    pub token: CancellationToken,
    pub why: OnceLock<String>,
    /// The lane that failed first: its reasons lead the report's.
    pub first: OnceLock<usize>,
    /// Only a stack has others to stop: a drill of one tears its scratch down as it always did.
    stack: bool,
}

impl Stop {
    pub fn new(drill: &CancellationToken, stack: bool) -> Stop {
        Stop { token: drill.child_token(), why: OnceLock::new(), first: OnceLock::new(), stack }
    }

    pub fn fail(&self, why: String) {
        let _ = self.why.set(why);
        if self.stack {
            self.token.cancel();
        }
    }
}

pub(super) struct Recorder<'a> {
    pub steps: Vec<Step>,
    pub reasons: Vec<String>,
    pub started: Instant,
    pub deadline: Instant,
    pub drill_limit: Duration,
    pub step_limit: Duration,
    /// The drill's token: cancelled by SIGTERM, Ctrl-C, a lost claim.
    pub drill: CancellationToken,
    /// What this recorder's steps wait on: the drill's token, or a stack's [`Stop`].
    pub cancel: CancellationToken,
    pub stop: Option<Arc<Stop>>,
    pub aborted: bool,
    pub hooks: &'a Hooks,
    /// Every detail and reason is scrubbed here, before a hook (the terminal), the report or
    /// the history sees it.
    pub secrets: drillbook_adapters::Secrets,
    /// The restore whose lane this is, in a drill of several.
    pub lane: Option<String>,
    /// The steps `skip_rest` may mark skipped.
    pub vocabulary: &'static [&'static str],
}

/// What a step reports when it succeeds.
pub(super) struct Done<T> {
    pub value: T,
    pub bytes: Option<u64>,
    pub detail: String,
}

pub(super) fn done<T>(value: T, bytes: Option<u64>, detail: impl Into<String>) -> Done<T> {
    Done { value, bytes, detail: detail.into() }
}

impl<'a> Recorder<'a> {
    /// A lane of a stack: the same clock, limits and hooks, its own steps and reasons.
    pub fn lane(&self, name: Option<String>, stop: Arc<Stop>) -> Recorder<'a> {
        Recorder {
            steps: Vec::new(),
            reasons: Vec::new(),
            started: self.started,
            deadline: self.deadline,
            drill_limit: self.drill_limit,
            step_limit: self.step_limit,
            drill: self.drill.clone(),
            cancel: stop.token.clone(),
            stop: Some(stop),
            aborted: false,
            hooks: self.hooks,
            secrets: self.secrets.clone(),
            lane: name,
            vocabulary: &LANE_STEPS,
        }
    }

    /// Folds a finished lane into the drill's record.
    pub fn absorb(&mut self, lane: Recorder<'_>) {
        self.steps.extend(lane.steps);
        self.reasons.extend(lane.reasons);
        self.aborted |= lane.aborted;
    }

    pub fn push(
        &mut self,
        name: &str,
        at: DateTime<Utc>,
        took: Duration,
        status: StepStatus,
        bytes: Option<u64>,
        detail: String,
    ) {
        let detail = self.secrets.redact(&detail);
        let step = Step {
            name: name.into(),
            started_at: at,
            duration_ms: took.as_millis() as u64,
            status,
            bytes,
            detail,
            restore: self.lane.clone(),
        };
        (self.hooks.on_step)(&step);
        self.steps.push(step);
    }

    /// Adds `text` to step `name`'s detail, or records the step with it when it has not run
    /// (a drill that failed before provisioning keeps its folder at teardown all the same).
    pub fn note(&mut self, name: &str, text: String) {
        let lane = self.lane.clone();
        match self.steps.iter_mut().rfind(|s| s.name == name && s.restore == lane) {
            Some(step) => step.detail = self.secrets.redact(&format!("{}; {text}", step.detail)),
            None => self.push(name, Utc::now(), Duration::ZERO, StepStatus::Passed, None, text),
        }
    }

    /// Step `name` failed before it could start: recorded now, taking no time, with `reason`.
    pub fn failed(&mut self, name: &str, reason: String) {
        self.push(name, Utc::now(), Duration::ZERO, StepStatus::Failed, None, reason.clone());
        self.fail(name, reason);
    }

    /// A reason the drill failed: `step: reason`, `[lane] step: reason` in a stack's lane.
    pub fn fail(&mut self, step: &str, reason: String) {
        let lane = self.lane.as_ref().map(|l| format!("[{l}] ")).unwrap_or_default();
        self.reasons.push(self.secrets.redact(&format!("{lane}{step}: {reason}")));
    }

    /// Why a step was cut short from outside: the drill was aborted (`aborted: …`, and the
    /// drill ends aborted), or another restore of the stack failed first (`stopped: …`).
    pub fn interrupted(&mut self) -> String {
        if !self.drill.is_cancelled()
            && let Some(why) = self.stop.as_ref().and_then(|s| s.why.get())
        {
            return format!("stopped: {why}");
        }
        self.aborted = true;
        format!(
            "aborted: {}",
            self.hooks.cancel_reason.get().map(String::as_str).unwrap_or("the drill was interrupted")
        )
    }

    /// The time this step may take: the step limit, or what is left of the drill's.
    pub fn budget(&self) -> (Duration, &'static str) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < self.step_limit { (left, "drill") } else { (self.step_limit, "step") }
    }

    /// The reason for a step or check that ran out of time.
    pub fn timed_out(&self, started: Instant, which: &str) -> String {
        let limit = if which == "drill" { self.drill_limit } else { self.step_limit };
        format!("timed out after {}s ({which} timeout {})", started.elapsed().as_secs(), human(limit))
    }

    pub async fn step<T>(&mut self, name: &str, fut: impl Future<Output = Result<Done<T>, String>>) -> Option<T> {
        let at = Utc::now();
        let t = Instant::now();
        let (limit, which) = self.budget();
        let cancel = self.cancel.clone();
        let outcome = tokio::select! {
            r = tokio::time::timeout(limit, fut) => match r {
                Ok(r) => r,
                Err(_) => Err(self.timed_out(t, which)),
            },
            _ = cancel.cancelled() => Err(self.interrupted()),
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
    pub fn settle<T>(&mut self, outcome: Result<T, String>) -> Result<T, String> {
        match outcome {
            Err(_) if self.cancel.is_cancelled() => Err(self.interrupted()),
            other => other,
        }
    }

    /// Marks the steps after `after` skipped, with the reason an earlier step failed.
    pub fn skip_rest(&mut self, after: &str) {
        self.skip_after(after, "skipped: an earlier step failed");
    }

    /// Marks the steps after `after` (all of the vocabulary for `""`) skipped with `detail`.
    pub fn skip_after(&mut self, after: &str, detail: &str) {
        let from = if after.is_empty() {
            0
        } else {
            match self.vocabulary.iter().position(|s| *s == after) {
                Some(i) => i + 1,
                None => return,
            }
        };
        let lane = self.lane.clone();
        for s in &self.vocabulary[from..] {
            if *s != "teardown" && !self.steps.iter().any(|x| x.name == *s && x.restore == lane) {
                self.push(s, Utc::now(), Duration::ZERO, StepStatus::Skipped, None, detail.into());
            }
        }
    }
}

pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) && s >= 3600 {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) && s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
