//! Child processes of a drill: each in its own process group, so that a timeout or a
//! cancelled drill kills the whole tree, not just the direct child.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// How much of a child's output is kept (the end of it).
const TAIL_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// The last lines of stdout and stderr, interleaved as they arrived.
    pub output: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` did not finish within {}s and was killed with its process group", limit.as_secs())]
    TimedOut { program: String, limit: Duration, output: String },
    #[error("cancelled")]
    Cancelled,
    #[error("waiting for `{program}`: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `cmd` to completion, killing its process group on timeout or cancellation.
pub async fn run(mut cmd: Command, limit: Duration, cancel: &CancellationToken) -> Result<Finished, RunError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn { program: program.clone(), source })?;
    let pgid = child.id();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, tx.clone()));
    }
    drop(tx);
    let mut tail: Vec<u8> = Vec::new();
    let collect = async {
        while let Some(chunk) = rx.recv().await {
            tail.extend_from_slice(&chunk);
            if tail.len() > 2 * TAIL_BYTES {
                tail.drain(..tail.len() - TAIL_BYTES);
            }
        }
    };
    let waited = async {
        let (status, ()) = tokio::join!(child.wait(), collect);
        status
    };
    let outcome = tokio::select! {
        status = waited => Ok(status),
        _ = tokio::time::sleep(limit) => Err(true),
        _ = cancel.cancelled() => Err(false),
    };
    match outcome {
        Ok(status) => {
            let status = status.map_err(|source| RunError::Wait { program: program.clone(), source })?;
            Ok(Finished { status, output: tail_text(&tail) })
        }
        Err(timed_out) => {
            kill_group(pgid);
            if timed_out {
                Err(RunError::TimedOut { program, limit, output: tail_text(&tail) })
            } else {
                Err(RunError::Cancelled)
            }
        }
    }
}

/// SIGKILL to the whole process group of a child started by [`run`].
pub fn kill_group(pgid: Option<u32>) {
    if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: killpg has no memory effects; a stale pgid yields ESRCH, which we ignore.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

async fn pump(mut r: impl AsyncRead + Unpin, tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>) {
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        }
    }
}

fn tail_text(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The last `n` non-empty lines of `text`, joined with ` | ` for a one-line detail.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
