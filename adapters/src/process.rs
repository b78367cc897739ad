//! Child processes of a drill: each in its own process group, so that a timeout or a
//! cancelled drill kills the whole tree, not just the direct child.

use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{ChildStdin, Command};
use tokio_util::sync::CancellationToken;

/// How much of a child's output is kept (the end of it).
const TAIL_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// The last lines of stdout and stderr, interleaved as they arrived.
    pub output: String,
    /// Why feeding stdin stopped early (not when the child closed it): the child saw a
    /// short input, so its success means nothing.
    pub feed_error: Option<String>,
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

/// Kills a child's process group when the future running it is dropped (an outer timeout).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0.take());
    }
}

/// Runs `cmd` to completion, killing its process group on timeout or cancellation.
pub async fn run(cmd: Command, limit: Duration, cancel: &CancellationToken) -> Result<Finished, RunError> {
    run_fed(cmd, limit, cancel, None::<fn(ChildStdin) -> std::future::Ready<std::io::Result<()>>>).await
}

/// [`run`], with `feed` writing the child's stdin (and closing it when it returns).
pub async fn run_fed<F, Fut>(
    mut cmd: Command,
    limit: Duration,
    cancel: &CancellationToken,
    feed: Option<F>,
) -> Result<Finished, RunError>
where
    F: FnOnce(ChildStdin) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let stdin = if feed.is_some() { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn { program: program.clone(), source })?;
    let pgid = child.id();
    let mut guard = GroupGuard(pgid);
    let fed = match (feed, child.stdin.take()) {
        (Some(f), Some(stdin)) => Some(tokio::spawn(f(stdin))),
        _ => None,
    };
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
            guard.0 = None;
            let status = status.map_err(|source| RunError::Wait { program: program.clone(), source })?;
            let feed_error = match fed {
                Some(task) => match task.await {
                    Ok(Ok(())) => None,
                    // The child closed its input: its own output says why.
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(e.to_string()),
                },
                None => None,
            };
            Ok(Finished { status, output: tail_text(&tail), feed_error })
        }
        Err(timed_out) => {
            if let Some(task) = fed {
                task.abort();
            }
            kill_group(guard.0.take());
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
