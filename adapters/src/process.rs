//! Child processes of a drill, all started by [`command`]: the one place that answers "what
//! can a backup make us run, with what, as whom?".
//!
//! - **Environment**: cleared; only `PATH`, `LANG`, `LC_*` and `TZ` are copied from drillbook's
//!   own, `HOME` is the account's, and the caller adds the few variables the child needs. A
//!   secret in drillbook's environment (S3 keys, the SMTP password, the HTTP token) never
//!   reaches a child unless a runbook names it for that child.
//! - **Privileges**: when drillbook is root, a child that reads backup content runs as an
//!   unprivileged [`Account`] (supplementary groups dropped), never as root.
//! - **Process group**: each child leads its own, so a timeout or a cancelled drill kills the
//!   whole tree, not just the direct child; dropping the child kills it.

use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{ChildStdin, Command};
use tokio_util::sync::CancellationToken;

/// An unprivileged account a child runs as when drillbook is root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl Account {
    /// The account `name` when drillbook is root (`None` otherwise: children then run as
    /// drillbook's own user, which is not root). `why` says what runs as it, for the error.
    pub fn for_root(name: &str, why: &str) -> Result<Option<Account>, AccountError> {
        if !is_root() {
            return Ok(None);
        }
        let account = Account::lookup(name)?
            .ok_or_else(|| AccountError::Missing { name: name.to_string(), why: why.to_string() })?;
        if account.uid == 0 {
            return Err(AccountError::Root { name: name.to_string(), why: why.to_string() });
        }
        Ok(Some(account))
    }

    /// drillbook's own user (to take back a tree a child wrote as another).
    pub fn current() -> Account {
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Account { name: String::new(), uid, gid, home: PathBuf::new() }
    }

    /// The passwd entry of `name`, if there is one.
    pub fn lookup(name: &str) -> Result<Option<Account>, AccountError> {
        let c = std::ffi::CString::new(name).map_err(|_| AccountError::BadName(name.to_string()))?;
        let mut buf = vec![0u8; 16 * 1024];
        // SAFETY: a zeroed passwd is a valid out-parameter for getpwnam_r.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; the strings are copied out before
        // `buf` goes away.
        let rc = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
        if rc != 0 || found.is_null() {
            return Ok(None);
        }
        // SAFETY: pw_dir points into `buf`, NUL-terminated, set by a successful getpwnam_r.
        let home = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) }.to_string_lossy().into_owned();
        Ok(Some(Account { name: name.to_string(), uid: pwd.pw_uid, gid: pwd.pw_gid, home: PathBuf::from(home) }))
    }

    /// Gives `path` (a file or folder the drill created) to this account, not following links.
    pub fn give(&self, path: &Path) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
    }

    /// Gives a whole tree the drill unpacked to this account (links themselves, never their
    /// targets), so the unprivileged child that reads it can.
    pub fn give_tree(&self, root: &Path) -> std::io::Result<()> {
        self.give(root)?;
        if std::fs::symlink_metadata(root)?.is_dir() {
            for entry in std::fs::read_dir(root)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    self.give_tree(&entry.path())?;
                } else {
                    self.give(&entry.path())?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "drillbook runs as root and {why} must not; it runs as `{name}`, which does not exist \
         (create it, e.g. `useradd --system --no-create-home {name}`, or name another with `run_as:`)"
    )]
    Missing { name: String, why: String },
    #[error("run_as: `{name}` is root; {why} must run as an unprivileged user")]
    Root { name: String, why: String },
    #[error("bad user name {0:?}")]
    BadName(String),
}

/// Whether drillbook runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// What a child inherits from drillbook's own environment: nothing else.
const INHERITED: [&str; 3] = ["PATH", "LANG", "TZ"];

/// PATH when drillbook itself has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The one way a drill starts a child: `program` with a cleared environment (see the module
/// docs), as `account` when given, in its own process group, killed if dropped. Callers add
/// arguments and the variables the child needs, then hand it to [`run`]/[`run_fed`] or spawn it.
#[allow(clippy::disallowed_methods)] // the one place allowed to create a Command
pub fn command(program: impl AsRef<OsStr>, account: Option<&Account>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if INHERITED.contains(&name.as_ref()) || name.starts_with("LC_") {
            cmd.env(&k, v);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    match account {
        Some(a) => {
            // std drops the supplementary groups (setgroups(0)) when it changes the uid as root.
            cmd.uid(a.uid).gid(a.gid).env("HOME", &a.home).env("USER", &a.name).env("LOGNAME", &a.name);
        }
        None => {
            if let Some(home) = std::env::var_os("HOME") {
                cmd.env("HOME", home);
            }
        }
    }
    cmd.stdin(Stdio::null()).process_group(0).kill_on_drop(true);
    cmd
}

/// Where a store's programs are: `bin_dir:` when the runbook names one, else the first of PATH
/// and `fallback` folders (`/usr/sbin` holds `mariadbd`) that has the program; and how to
/// install them, for the error when one is missing.
pub struct Programs {
    bin_dir: Option<PathBuf>,
    fallback: &'static [&'static str],
    install: &'static str,
}

impl Programs {
    pub fn new(bin_dir: Option<&str>, fallback: &'static [&'static str], install: &'static str) -> Programs {
        Programs { bin_dir: bin_dir.map(PathBuf::from), fallback, install }
    }

    pub fn path(&self, program: &str) -> PathBuf {
        if let Some(dir) = &self.bin_dir {
            return dir.join(program);
        }
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into());
        path.split(':')
            .chain(self.fallback.iter().copied())
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(program))
    }

    /// `program` through [`command`], as `account`, in `dir` (a working directory it can enter).
    pub fn command(&self, program: &str, dir: &Path, account: Option<&Account>) -> Command {
        let mut cmd = command(self.path(program), account);
        cmd.current_dir(dir).env("LC_ALL", "C");
        cmd
    }

    /// What went wrong running `program`, with how to install it when it is missing.
    pub fn error(&self, program: &str, e: RunError) -> crate::AdapterError {
        match e {
            RunError::Cancelled => crate::AdapterError::Cancelled,
            RunError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                crate::AdapterError::Provision(format!(
                    "cannot start `{}`: not found; {} or set `bin_dir:`",
                    self.path(program).display(),
                    self.install
                ))
            }
            other => crate::AdapterError::Provision(other.to_string()),
        }
    }
}

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
    /// The whole of stdout, for [`run_captured`] (then `output` is stderr's tail alone).
    pub stdout: Vec<u8>,
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

/// [`run`], keeping the whole of stdout apart (a program's JSON answer) up to `max` bytes
/// (more is an error); `output` is then stderr's tail.
pub async fn run_captured(
    cmd: Command,
    limit: Duration,
    cancel: &CancellationToken,
    max: usize,
) -> Result<Finished, RunError> {
    run_inner(cmd, limit, cancel, None::<fn(ChildStdin) -> std::future::Ready<std::io::Result<()>>>, Some(max)).await
}

/// [`run`], with `feed` writing the child's stdin (and closing it when it returns).
pub async fn run_fed<F, Fut>(
    cmd: Command,
    limit: Duration,
    cancel: &CancellationToken,
    feed: Option<F>,
) -> Result<Finished, RunError>
where
    F: FnOnce(ChildStdin) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    run_inner(cmd, limit, cancel, feed, None).await
}

async fn run_inner<F, Fut>(
    mut cmd: Command,
    limit: Duration,
    cancel: &CancellationToken,
    feed: Option<F>,
    capture: Option<usize>,
) -> Result<Finished, RunError>
where
    F: FnOnce(ChildStdin) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let stdin = if feed.is_some() { Stdio::piped() } else { Stdio::null() };
    // `command` set the process group already; set again so a group is certain here.
    cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn { program: program.clone(), source })?;
    let pgid = child.id();
    let mut guard = GroupGuard(pgid);
    let fed = match (feed, child.stdin.take()) {
        (Some(f), Some(stdin)) => Some(tokio::spawn(f(stdin))),
        _ => None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let mut captured = None;
    if let Some(out) = child.stdout.take() {
        match capture {
            None => drop(tokio::spawn(pump(out, tx.clone()))),
            Some(max) => captured = Some(tokio::spawn(read_at_most(out, max))),
        }
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, tx.clone()));
    }
    drop(tx);
    let mut tail: Vec<u8> = Vec::new();
    let collect = async {
        while let Some(chunk) = rx.recv().await {
            keep_tail(&mut tail, &chunk);
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
            let stdout = match captured {
                None => Vec::new(),
                Some(task) => match task.await {
                    Ok(Ok(bytes)) => bytes,
                    Ok(Err(e)) => return Err(RunError::Wait { program, source: e }),
                    Err(e) => return Err(RunError::Wait { program, source: std::io::Error::other(e) }),
                },
            };
            Ok(Finished { status, output: tail_text(&tail), feed_error, stdout })
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

/// Sends `sig` to one process (a server asked to stop); a stale pid is ignored.
pub fn signal(pid: Option<u32>, sig: i32) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill has no memory effects; a stale pid yields ESRCH, which we ignore.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Whether a server process is gone: no such pid, or a zombie (either way it answers nothing).
pub fn gone(pid: Option<u32>) -> bool {
    pid.is_none_or(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
            .unwrap_or(true)
    })
}

/// Stops a scratch server: when it has already exited, only its process group is killed (what
/// it started goes with it); else `ask` (a SIGTERM, a `SHUTDOWN` command), then up to `limit`
/// to exit before SIGKILL to the group. Says which happened. Safe on a server never started.
pub async fn stop_server(
    child: Option<tokio::process::Child>,
    pid: Option<u32>,
    limit: Duration,
    ask: impl Future<Output = ()>,
) -> String {
    let Some(mut child) = child else {
        return "no server process".into();
    };
    if let Ok(Some(status)) = child.try_wait() {
        kill_group(pid);
        return format!("the server had already exited ({status})");
    }
    ask.await;
    wait_or_kill(&mut child, pid, limit).await
}

/// Waits up to `limit` for a server that was asked to stop, then SIGKILLs its process group
/// (after a clean exit too: what it started goes with it). Says which happened.
pub async fn wait_or_kill(child: &mut tokio::process::Child, pgid: Option<u32>, limit: Duration) -> String {
    let stopped = tokio::time::timeout(limit, child.wait()).await.is_ok();
    kill_group(pgid);
    if stopped {
        "server stopped".into()
    } else {
        let _ = child.wait().await;
        format!("server killed after not stopping within {}s", limit.as_secs())
    }
}

/// All of `r`, or an error once it passes `max` bytes.
async fn read_at_most(r: impl AsyncRead + Unpin, max: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.take(max as u64 + 1).read_to_end(&mut bytes).await?;
    if bytes.len() > max {
        return Err(std::io::Error::other(format!("its output passed {max} bytes")));
    }
    Ok(bytes)
}

/// A child whose stdout the caller reads as it runs (restic's restore, named by its first
/// line); the tail of its stderr is kept for the reason. Dropping it kills its process group.
pub struct Streaming {
    child: tokio::process::Child,
    pub stdout: Option<tokio::process::ChildStdout>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
    guard: GroupGuard,
}

impl Streaming {
    /// Starts `cmd` (from [`command`]) with stdout and stderr piped.
    pub fn spawn(mut cmd: Command) -> Result<Streaming, RunError> {
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn { program: program.clone(), source })?;
        let guard = GroupGuard(child.id());
        let (Some(stdout), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(RunError::Spawn { program, source: std::io::Error::other("no stdout/stderr pipe") });
        };
        let stderr = tokio::spawn(async move {
            let mut tail = Vec::new();
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                keep_tail(&mut tail, &buf[..n]);
            }
            tail
        });
        Ok(Streaming { child, stdout: Some(stdout), stderr, guard })
    }

    /// Waits for the child (its stdout read to the end, or dropped), up to `limit`; then its
    /// exit status and the tail of its stderr. Kills the group when the time is up.
    pub async fn finish(mut self, limit: Duration) -> (Option<ExitStatus>, String) {
        drop(self.stdout);
        let status = tokio::time::timeout(limit, self.child.wait()).await.ok().and_then(Result::ok);
        kill_group(self.guard.0.take());
        let tail = self.stderr.await.unwrap_or_default();
        (status, tail_text(&tail))
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

/// Appends `chunk` to `tail`, keeping about the last [`TAIL_BYTES`] of it.
fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    tail.extend_from_slice(chunk);
    if tail.len() > 2 * TAIL_BYTES {
        tail.drain(..tail.len() - TAIL_BYTES);
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
