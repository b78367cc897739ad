//! The checks, each against the scratch of the restore it names (`on:`), in the runbook's order,
//! each bounded by the step and drill deadlines.

use std::time::Instant;

use chrono::Utc;
use drillbook_reports::{self as reports, CheckStatus, StepStatus};
use drillbook_runbooks::Runbook;

use super::record::{Recorder, human};
use super::scratch::Lane;

pub(super) async fn verify(
    lanes: &[Lane],
    rb: &Runbook,
    backups: &[Option<&reports::Backup>],
    rec: &mut Recorder<'_>,
) -> Vec<reports::Check> {
    let mut checks = Vec::new();
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
        let lane = &lanes[rb.restore_of(check)];
        let cx = &lane.cx;
        let cancel = rec.cancel.clone();
        let run = async {
            if check.check.is_coherence() {
                return super::coherence::check(&check.check, lanes, rb, backups).await;
            }
            let scratch = lane.scratch.as_ref().ok_or_else(|| format!("{} has no scratch to check", lane.label()))?;
            drillbook_adapters::run_check(lane.adapter.as_ref(), cx, scratch, &check.check)
                .await
                .map_err(|e| e.to_string())
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(limit, run) => match r {
                Ok(r) => r,
                Err(_) => Err(rec.timed_out(at, which)),
            },
            _ = cancel.cancelled() => Err(rec.interrupted()),
        };
        // A check across restores names them itself.
        let on = if check.check.is_coherence() { None } else { lane.name.clone() };
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
                    restore: on.clone(),
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
                    restore: on.clone(),
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
    checks
}
