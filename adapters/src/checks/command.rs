//! `command`: an escape hatch, a script against the scratch copy; exit 0 passes.

use std::time::Duration;

use drillbook_runbooks::CommandCheck;
use serde_json::json;

use crate::process::{self, Account, RunError};
use crate::{AdapterError, CheckOutcome, DrillCx, Scratch};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Who runs a `command` check when drillbook is root and the check names nobody else.
pub const DEFAULT_ACCOUNT: &str = "nobody";

pub async fn run(cx: &DrillCx, scratch: &Scratch, check: &CommandCheck) -> Result<CheckOutcome, AdapterError> {
    let Some((program, args)) = check.run.split_first() else {
        return Err(AdapterError::Check("`run` is empty".into()));
    };
    let program = resolve(program, &cx.runbook_dir)?;
    let account = Account::for_root(check.run_as.as_deref().unwrap_or(DEFAULT_ACCOUNT), "a `command` check")
        .map_err(|e| AdapterError::Check(e.to_string()))?;
    if let Some(a) = &account {
        // The command reads the restored copy as its own user; the rest of the drill folder
        // stays closed to it.
        crate::open_path_to(&cx.work_dir, &scratch.dir, a, "the `command` check")
            .map_err(|e| AdapterError::Check(e.to_string()))?;
        let dir = scratch.dir.clone();
        let given = a.clone();
        tokio::task::spawn_blocking(move || given.give_tree(&dir))
            .await
            .map_err(|e| AdapterError::Check(format!("giving the restored copy to the command failed: {e}")))?
            .map_err(|e| AdapterError::Check(format!("cannot give the restored copy to `{}`: {e}", a.name)))?;
    }
    let mut cmd = process::command(&program, account.as_ref());
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

/// `run[0]`: a path with a `/` is taken as written when absolute and against the runbook's
/// folder when relative; a bare name is looked up in the absolute folders of PATH only, so
/// nothing in the restored copy (the child's working folder) can stand in for it.
fn resolve(program: &str, runbook_dir: &std::path::Path) -> Result<std::path::PathBuf, AdapterError> {
    let p = std::path::Path::new(program);
    if program.contains('/') {
        return Ok(if p.is_absolute() { p.to_path_buf() } else { runbook_dir.join(p) });
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| process::DEFAULT_PATH.into());
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(p))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| AdapterError::Check(format!("`{program}` is not an executable on PATH")))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
