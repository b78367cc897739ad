//! The Qdrant engine child: `drillbook-qdrant-engine` (installed beside drillbook), started
//! through the one process helper (cleared environment, unprivileged when root, its own process
//! group), spoken to one JSON line at a time ([`super::protocol`]). Its stderr goes to
//! `engine.log` in its folder; a child that dies (a panic, an abort, SIGBUS on a damaged
//! segment) is named with its signal or status and the log's last lines, and the drill fails —
//! drillbook itself goes on.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::sync::CancellationToken;

use super::protocol::{Answer, Request};
use crate::AdapterError;
use crate::process::{self, Account};

const STOP_LIMIT: Duration = Duration::from_secs(10);

pub struct Engine {
    child: Option<Child>,
    pub pid: Option<u32>,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    log: PathBuf,
    program: PathBuf,
}

/// Why a request got no answer.
pub enum Failure {
    /// The engine answered with an error; it goes on.
    Said(String),
    /// The engine is gone (or could not be spoken to): why, with its last words.
    Died(String),
    Cancelled,
}

impl Failure {
    /// As the error of the restore step.
    pub fn restore_error(self) -> AdapterError {
        match self {
            Failure::Cancelled => AdapterError::Cancelled,
            Failure::Said(m) | Failure::Died(m) => AdapterError::Restore(m),
        }
    }

    /// As the error of a check (it could not be evaluated).
    pub fn check_error(self) -> AdapterError {
        match self {
            Failure::Cancelled => AdapterError::Cancelled,
            Failure::Said(m) | Failure::Died(m) => AdapterError::Check(m),
        }
    }
}

impl Engine {
    /// Starts the engine in `dir` (its log) as `account`.
    pub fn start(program: &Path, dir: &Path, account: Option<&Account>) -> Result<Engine, AdapterError> {
        let log = dir.join("engine.log");
        let file =
            std::fs::File::create(&log).map_err(|e| AdapterError::io(format!("cannot create {}", log.display()), e))?;
        if let Some(a) = account {
            a.give(&log).map_err(|e| AdapterError::io(format!("cannot give {} to {}", log.display(), a.name), e))?;
        }
        let mut cmd = process::command(program, account);
        cmd.current_dir(dir).env("RUST_BACKTRACE", "0");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(file);
        let mut child = cmd.spawn().map_err(|e| {
            AdapterError::Provision(format!(
                "cannot start the Qdrant engine `{}`: {e}; it is installed beside drillbook (the package and \
                 `cargo install --path runner` install both), or set `engine:` to where it is",
                program.display(),
            ))
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| AdapterError::Provision("the engine has no stdout".into()))?;
        Ok(Engine {
            pid: child.id(),
            child: Some(child),
            stdin,
            stdout: BufReader::new(stdout).lines(),
            log,
            program: program.to_path_buf(),
        })
    }

    /// Sends one request and reads its answer.
    pub async fn ask(&mut self, request: &Request, cancel: &CancellationToken) -> Result<Answer, Failure> {
        self.send(request, cancel).await?;
        self.answer(cancel).await
    }

    /// Sends a request answered in batches ([`Request::Values`]) and hands each value to
    /// `each`; returns how many there were.
    pub async fn ask_values(
        &mut self,
        request: &Request,
        cancel: &CancellationToken,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<u64, Failure> {
        self.send(request, cancel).await?;
        let mut n = 0;
        loop {
            match self.answer(cancel).await? {
                Answer::Values { values, done } => {
                    n += values.len() as u64;
                    values.into_iter().for_each(&mut *each);
                    if done {
                        return Ok(n);
                    }
                }
                other => return Err(Failure::Said(format!("unexpected answer {other:?}"))),
            }
        }
    }

    async fn send(&mut self, request: &Request, cancel: &CancellationToken) -> Result<(), Failure> {
        let mut line = serde_json::to_string(request).map_err(|e| Failure::Said(e.to_string()))?;
        line.push('\n');
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(Failure::Died("the Qdrant engine was stopped".into()));
        };
        let sent = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        };
        let sent = tokio::select! {
            sent = sent => sent,
            _ = cancel.cancelled() => return Err(Failure::Cancelled),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(_) => Err(Failure::Died(self.death().await)),
        }
    }

    /// The next answer line.
    async fn answer(&mut self, cancel: &CancellationToken) -> Result<Answer, Failure> {
        let got = tokio::select! {
            got = self.stdout.next_line() => got,
            _ = cancel.cancelled() => return Err(Failure::Cancelled),
        };
        match got {
            Ok(Some(text)) => match serde_json::from_str::<Answer>(&text) {
                Ok(Answer::Error { message }) => Err(Failure::Said(message)),
                Ok(answer) => Ok(answer),
                Err(e) => Err(Failure::Died(format!(
                    "the Qdrant engine `{}` answered what drillbook cannot read ({e}): is it the same drillbook version?",
                    self.program.display()
                ))),
            },
            Ok(None) | Err(_) => Err(Failure::Died(self.death().await)),
        }
    }

    /// Why the engine is gone: its exit (signal or status) and its log's last lines.
    async fn death(&mut self) -> String {
        self.stdin = None;
        let status = match self.child.as_mut() {
            Some(child) => tokio::time::timeout(STOP_LIMIT, child.wait()).await.ok().and_then(Result::ok),
            None => None,
        };
        let how = match status {
            Some(s) => match s.signal() {
                Some(sig) => format!("killed by signal {sig} ({})", signal_name(sig)),
                None => format!("exited with status {}", s.code().unwrap_or(-1)),
            },
            None => "stopped answering".to_string(),
        };
        let log = crate::crash::read_log(&self.log);
        let said: Vec<&str> =
            log.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("note: run with")).collect();
        // A panic is told from its `panicked at` line on (the message follows it); anything
        // else by its last lines.
        let (what, words) = match said.iter().rposition(|l| l.contains("panicked at")) {
            Some(i) => ("the Qdrant engine panicked", &said[i..(i + 4).min(said.len())]),
            None => ("the Qdrant engine died", &said[said.len().saturating_sub(3)..]),
        };
        let tail = words.join(" | ");
        if tail.is_empty() { format!("{what}: {how}") } else { format!("{what}: {how}; its last output: {tail}") }
    }

    /// Closes its stdin (it exits when its input ends), then SIGKILL to its group if it lingers.
    pub async fn stop(&mut self) -> String {
        self.stdin = None;
        match self.child.as_mut() {
            Some(child) => process::wait_or_kill(child, self.pid, STOP_LIMIT).await,
            None => "not running".into(),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGBUS => "SIGBUS: a memory-mapped segment file is shorter than Qdrant expects",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT: the engine aborted",
        libc::SIGKILL => "SIGKILL: killed, e.g. by the kernel's out-of-memory killer",
        libc::SIGILL => "SIGILL",
        _ => "a signal",
    }
}
