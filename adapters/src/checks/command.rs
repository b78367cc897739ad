//! `command`: an escape hatch, a script against the scratch copy; exit 0 passes.

use std::time::Duration;

use drillbook_runbooks::CommandCheck;
use serde_json::json;

use crate::process::{self, RunError};
use crate::{AdapterError, CheckOutcome, DrillCx, Scratch};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(cx: &DrillCx, scratch: &Scratch, check: &CommandCheck) -> Result<CheckOutcome, AdapterError> {
    let Some((program, args)) = check.run.split_first() else {
        return Err(AdapterError::Check("`run` is empty".into()));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&scratch.dir)
        .env("DRILL_SCRATCH_URL", &scratch.url)
        .env("DRILL_SCRATCH_DIR", &scratch.dir)
        .env("DRILL_RUN_ID", &cx.run_id);
    for (name, value) in &check.env {
        let value = cx.secrets.expand(value).map_err(|e| AdapterError::Check(e.to_string()))?;
        cmd.env(name, value);
    }
    let limit = check.timeout.as_ref().map(|t| t.get().0).unwrap_or(DEFAULT_TIMEOUT);
    let expected = json!("exit 0");
    match process::run(cmd, limit, &cx.cancel).await {
        Ok(done) => {
            let code = done.status.code();
            let tail = cx.secrets.redact(&process::last_lines(&done.output, 5));
            Ok(CheckOutcome {
                passed: done.status.success(),
                observed: match code {
                    Some(c) => json!(format!("exit {c}")),
                    None => json!("killed by a signal"),
                },
                expected,
                detail: tail,
            })
        }
        Err(RunError::Cancelled) => Err(AdapterError::Cancelled),
        Err(RunError::TimedOut { program, limit, output }) => {
            let tail = cx.secrets.redact(&process::last_lines(&output, 5));
            Ok(CheckOutcome {
                passed: false,
                observed: json!("timed out"),
                expected,
                detail: format!("`{program}` was killed after {}s; {tail}", limit.as_secs()),
            })
        }
        Err(e) => Err(AdapterError::Check(cx.secrets.redact(&e.to_string()))),
    }
}
