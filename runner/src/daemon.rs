//! `drillbook daemon`: fires every runbook of the folder on its schedule through the same
//! `run::drill` path as `drillbook run`, at most `concurrency` at once.
//!
//! - SIGTERM/SIGINT: stop firing, cancel running drills (their teardown runs, they are
//!   recorded as `aborted`), exit 0.
//! - SIGHUP: reload the folder; a runbook that became invalid keeps its previous version.
//! - On start: runs left `running` by a process that is gone become `interrupted`, and what
//!   they left in `$TMPDIR` (`drillbook-<run-id>-*`, processes started there) is removed.
//! - A failed drill's kept scratch (`keep_on_failure`) is removed when its time is up, also
//!   when that time passed while no daemon ran.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Invalid;
use crate::config::Config;
use crate::execute::{Ending, Hooks};
use crate::history::{DaemonLife, History, KeptRow};
use crate::plan::{self, Loaded};
use crate::run::{DrillSetup, drill};
use crate::schedule::Timetable;

/// How often the daemon looks for kept scratch whose time is up.
const KEPT_TICK: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a daemon records that it is alive; `audit coverage` counts a daemon up until
/// `ALIVE_TICK` + a margin after its last sign.
pub const ALIVE_TICK: std::time::Duration = std::time::Duration::from_secs(60);

/// One runbook file as the daemon knows it.
struct Entry {
    version: Version,
    /// The latest fire time handled (fired or passed over).
    last: DateTime<Utc>,
    busy: bool,
    /// Why the file on disk is not the version in use (it became invalid).
    error: Option<String>,
    /// Why its last drill could not be built.
    failing: Option<String>,
}

/// The version of a runbook in use, as the daemon keeps it between drills: its text, parsed
/// again when a drill of it starts (its parsed form takes ~5 KiB, which at 1,000 runbooks was
/// most of the daemon's heap), and what the loop and the status need of it.
struct Version {
    sha256: String,
    text: Box<str>,
    timetable: Option<Timetable>,
    /// Its status's fixed fields.
    shown: crate::http::RunbookStatus,
}

impl Version {
    fn new(loaded: &Loaded, text: String) -> Version {
        let rb = &loaded.runbook;
        Version {
            sha256: loaded.sha256.clone(),
            text: text.into_boxed_str(),
            timetable: Timetable::for_runbook(rb),
            shown: crate::http::RunbookStatus {
                name: rb.name().to_string(),
                path: loaded.path.display().to_string(),
                owner: rb.owner.clone(),
                asset: serde_json::to_value(&rb.asset).unwrap_or_default(),
                schedule: rb.schedule.as_ref().map(|s| s.raw().to_string()),
                timezone: rb.timezone().to_string(),
                next_fire: None,
                interval_s: None,
                running: false,
                rpo_s: rb.objectives.rpo.as_ref().map(|d| d.get().0.as_secs()),
                rto_s: rb.objectives.rto.as_ref().map(|d| d.get().0.as_secs()),
                error: None,
                failing: None,
            },
        }
    }

    fn name(&self) -> &str {
        &self.shown.name
    }
}

pub async fn daemon_command(config: &Config) -> anyhow::Result<ExitCode> {
    let history = Arc::new(History::open(&config.state).await?);
    let signer = Arc::new(crate::evidence::signer(config)?);
    recover(config, &history).await?;
    expire_kept(config, &history).await;

    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1) as usize));
    let mut book: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    let mut folder_error = reload(config, &history, &mut book).await;
    // Several daemons may share the history store: a fire time runs where its claim won.
    let owner =
        format!("{}:{}:{}", crate::host(), std::process::id(), &uuid::Uuid::now_v7().simple().to_string()[20..]);
    // Recorded before the HTTP side's first read of the whole history, which a write would wait for.
    if let Err(e) = history.note_daemon(&owner, Utc::now(), DaemonLife::Started).await {
        eprintln!("drillbook daemon: cannot record its start for audit coverage: {e:#}");
    }
    tracing::info!(runbooks = book.len(), concurrency = config.concurrency, "daemon started");
    eprintln!("drillbook daemon: {} runbooks from {}", book.len(), config.runbooks.display());

    // The HTTP side reads what the loop publishes and sends triggers back to it.
    // Published once before the HTTP side starts, so the first scrape already lists every
    // runbook (the loop's first look comes after the listener is up and may take a moment).
    let (status_tx, status_rx) =
        watch::channel(crate::http::DaemonStatus { runbooks: statuses(&book), folder_error: folder_error.clone() });
    let (trigger_tx, mut trigger_rx) = mpsc::channel::<crate::http::Trigger>(64);
    let token = match &config.http.token {
        Some(t) => {
            let token =
                drillbook_adapters::Secrets::default().expand(t).map_err(|e| Invalid(format!("http.token: {e}")))?;
            if token.chars().count() < crate::http::MIN_TOKEN_CHARS {
                return Err(Invalid(format!(
                    "http.token: a token of {} characters is too short to guard the daemon (at least {}); \
                     make one with `openssl rand -hex 32`",
                    token.chars().count(),
                    crate::http::MIN_TOKEN_CHARS
                ))
                .into());
            }
            Some(token)
        }
        None => None,
    };
    let acceptor = match &config.http.tls {
        Some((cert, key)) => Some(crate::http::tls_acceptor(cert, key).map_err(Invalid)?),
        None => None,
    };
    let loopback = config.http.listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
    if !loopback && acceptor.is_none() {
        tracing::warn!(listen = %config.http.listen, "HTTP without TLS on a non-loopback address");
        eprintln!(
            "warning: http.listen {} is not a loopback address and http.tls is not set: \
             the token and the reports cross the network unencrypted",
            config.http.listen
        );
    }
    let shared = Arc::new(crate::http::Shared {
        history: history.clone(),
        ledger: crate::ledger::Ledger::new(history.clone()),
        reports: config.reports.clone(),
        auth: config.http.auth,
        token,
        status: status_rx,
        trigger: trigger_tx,
        started_at: Utc::now(),
    });
    // The ledger's first look folds the whole history once, before the first scrape asks.
    tokio::spawn({
        let shared = shared.clone();
        async move {
            if let Err(e) = shared.ledger.view().await {
                tracing::warn!("cannot read the history for the dashboard: {e:#}");
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.http.listen))?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    eprintln!("drillbook daemon: http on {scheme}://{}", listener.local_addr()?);
    let server = {
        let stop = shutdown.clone();
        let router = crate::http::router(shared);
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    crate::http::serve_tls(listener, acceptor, router, stop).await;
                    Ok(())
                }
                None => axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await,
            }
        })
    };

    let lease = chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::seconds(60));
    let ctx =
        JobContext { config, history: &history, signer: &signer, slots: &slots, shutdown: &shutdown, owner: &owner };
    let mut drills: JoinSet<(PathBuf, String, Option<String>)> = JoinSet::new();
    // A changed runbook file reloads like SIGHUP (the kernel tells when the folder changed).
    let mut folder = crate::folder::FolderWatch::new(&config.runbooks);
    // The runbooks are looked at (due fire times, the status published, the next wake) when one
    // of them changed (a reload, a drill started or ended) or the earliest start has come, not
    // on every wake: a wake for the folder or the kept scratch touches none of them (1,000
    // runbooks of a few KiB each, touched on every wake, were most of an idle daemon's work).
    let mut dirty = true;
    let mut next_wake: Option<DateTime<Utc>> = None;
    // Kept scratch (`keep_on_failure`) is looked at every few seconds, removed when its time is up.
    let mut kept_tick = tokio::time::interval(KEPT_TICK);
    kept_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A sign of life in history, so `audit coverage` can tell a fire time missed while no
    // daemon ran from one a running daemon passed over.
    let mut alive_tick = tokio::time::interval(ALIVE_TICK);
    alive_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = Utc::now();
        let mut look = dirty || next_wake.is_some_and(|w| w <= now);
        if look {
            for (path, e) in book.iter_mut() {
                let Some(t) = &e.version.timetable else { continue };
                if e.busy {
                    continue;
                }
                let due = t.due(e.last, now);
                if let Some(handled) = due.handled {
                    e.last = handled;
                }
                if due.missed > 0 {
                    tracing::warn!(runbook = e.version.name(), missed = due.missed, "fire times missed");
                }
                if let Some(fire) = due.fire {
                    match history.claim(e.version.name(), fire, &owner, lease).await {
                        Ok(true) => {
                            e.busy = true;
                            ctx.spawn(&mut drills, path, &e.version, Some(fire), None);
                        }
                        Ok(false) => {
                            tracing::debug!(runbook = e.version.name(), %fire, "claimed by another daemon")
                        }
                        Err(err) => {
                            eprintln!("drillbook daemon: {}: cannot claim {fire}: {err:#}", e.version.name())
                        }
                    }
                }
            }
        }
        // Fire times whose daemon died mid-drill (its lease ran out) are taken over here.
        let idle = |name: &str| book.values().any(|e| !e.busy && e.version.name() == name);
        let why = |fire: &str| {
            format!(
                "interrupted: the daemon holding fire time {fire} stopped renewing its claim; taken over by {owner}"
            )
        };
        if let Ok(taken) = history.take_over_expired(&idle, &owner, lease, &why).await {
            for (name, fire) in taken {
                if let Some((path, e)) = book.iter_mut().find(|(_, e)| e.version.name() == name) {
                    eprintln!("drillbook daemon: {name}: taking over fire time {fire}");
                    e.busy = true;
                    look = true;
                    ctx.spawn(&mut drills, path, &e.version, Some(fire), None);
                }
            }
        }
        if look {
            status_tx.send_replace(crate::http::DaemonStatus {
                runbooks: statuses(&book),
                folder_error: folder_error.clone(),
            });
            next_wake = book
                .values()
                .filter(|e| !e.busy)
                .filter_map(|e| e.version.timetable.as_ref().and_then(|t| t.next_after(e.last).map(|f| t.start_at(f))))
                .min();
            dirty = false;
        }
        let sleep = next_wake
            .map(|w| (w - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            Some(done) = drills.join_next(), if !drills.is_empty() => {
                if let Ok((path, line, failing)) = done {
                    eprintln!("{line}");
                    if let Some(e) = book.get_mut(&path) {
                        e.busy = false;
                        e.failing = failing;
                    }
                    dirty = true;
                }
            }
            Some(t) = trigger_rx.recv() => {
                use crate::http::TriggerReply;
                let answer = match book.iter_mut().find(|(_, e)| e.version.name() == t.runbook) {
                    Some((path, e)) if !e.busy => {
                        // Recorded before the answer: the caller can follow the run id at once.
                        let run_id = uuid::Uuid::now_v7().to_string();
                        match history.queue(&run_id, &t.runbook, None).await {
                            Ok(()) => {
                                e.busy = true;
                                ctx.spawn(&mut drills, path, &e.version, None, Some(run_id.clone()));
                                TriggerReply::Accepted(run_id)
                            }
                            Err(err) => TriggerReply::Failed(format!("{err:#}")),
                        }
                    }
                    Some(_) => TriggerReply::Running(history.active_run(&t.runbook).await.ok().flatten()),
                    None => TriggerReply::NotFound,
                };
                let _ = t.reply.send(answer);
                dirty = true;
            }
            _ = hup.recv() => {
                folder_error = reload(config, &history, &mut book).await;
                folder.rescan().await;
                eprintln!("drillbook daemon: reloaded, {} runbooks", book.len());
                dirty = true;
            }
            _ = folder.hint() => {
                if folder.changed().await {
                    folder_error = reload(config, &history, &mut book).await;
                    eprintln!("drillbook daemon: runbooks changed on disk; reloaded, {} runbooks", book.len());
                    dirty = true;
                }
            }
            _ = kept_tick.tick() => {
                expire_kept(config, &history).await;
                // What the requests and drills since the last tick freed goes back to the system.
                crate::memory::release_freed();
            }
            _ = alive_tick.tick() => {
                // Off the loop: a write may wait behind a long read of the history store.
                let (history, owner) = (history.clone(), owner.clone());
                tokio::spawn(async move { history.note_daemon(&owner, Utc::now(), DaemonLife::Alive).await });
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    eprintln!("drillbook daemon: stopping; {} drills to abort", drills.len());
    shutdown.cancel();
    while let Some(done) = drills.join_next().await {
        if let Ok((_, line, _)) = done {
            eprintln!("{line}");
        }
    }
    let _ = server.await;
    let _ = history.note_daemon(&owner, Utc::now(), DaemonLife::Stopped).await;
    Ok(ExitCode::SUCCESS)
}

/// What every drill the daemon starts shares.
struct JobContext<'a> {
    config: &'a Config,
    history: &'a Arc<History>,
    signer: &'a Arc<crate::evidence::Signer>,
    slots: &'a Arc<Semaphore>,
    shutdown: &'a CancellationToken,
    owner: &'a str,
}

impl JobContext<'_> {
    /// Starts a drill of `version` (scheduled for `fire`, or by hand) in `drills`.
    fn spawn(
        &self,
        drills: &mut JoinSet<(PathBuf, String, Option<String>)>,
        path: &Path,
        version: &Version,
        fire: Option<DateTime<Utc>>,
        queued: Option<String>,
    ) {
        let job = Job {
            config: self.config.clone(),
            history: self.history.clone(),
            signer: self.signer.clone(),
            slots: self.slots.clone(),
            cancel: self.shutdown.child_token(),
            name: version.name().to_string(),
            path: path.to_path_buf(),
            text: version.text.clone(),
            owner: self.owner.to_string(),
        };
        let path = path.to_path_buf();
        drills.spawn(async move {
            let name = job.name.clone();
            match job.run(fire, queued).await {
                Ok((line, failing)) => (path, line, failing),
                Err(e) => (path, format!("{name}: {e:#}"), None),
            }
        });
    }
}

/// The status the HTTP side shows.
fn statuses(book: &BTreeMap<PathBuf, Entry>) -> Vec<crate::http::RunbookStatus> {
    book.values()
        .map(|e| {
            let timetable = e.version.timetable.as_ref();
            crate::http::RunbookStatus {
                next_fire: timetable.and_then(|t| t.next_after(e.last)),
                interval_s: timetable.and_then(Timetable::interval).map(|d| d.as_secs()),
                running: e.busy,
                error: e.error.clone(),
                failing: e.failing.clone(),
                ..e.version.shown.clone()
            }
        })
        .collect()
}

/// One scheduled drill, run when a concurrency slot is free.
struct Job {
    config: Config,
    history: Arc<History>,
    signer: Arc<crate::evidence::Signer>,
    slots: Arc<Semaphore>,
    cancel: CancellationToken,
    name: String,
    path: PathBuf,
    /// The text of the version in use when the drill was started.
    text: Box<str>,
    /// Whose claim a scheduled drill runs under (renewed while it runs).
    owner: String,
}

impl Job {
    /// Runs the drill (`queued`: the run id a trigger already recorded as `queued`); returns
    /// the daemon's line about it, and why its runbook could not be built, if so.
    async fn run(
        self,
        fire: Option<DateTime<Utc>>,
        queued: Option<String>,
    ) -> anyhow::Result<(String, Option<String>)> {
        let name = self.name.clone();
        let when = fire.map(|f| format!("fire time {f}")).unwrap_or_else(|| "triggered run".into());
        // The claim is kept alive from the moment it was won, while the drill waits for a slot
        // too; a daemon that cannot renew it within a lease cancels the drill rather than
        // finish a fire time another daemon may have taken over.
        let lost = Arc::new(std::sync::OnceLock::<String>::new());
        let renewal = fire.map(|f| self.keep_claim(&name, f, lost.clone()));
        let outcome = self.wait_and_drill(fire, queued, &name, &when, lost.clone()).await;
        if let Some(r) = renewal {
            r.abort();
        }
        match (fire, lost.get()) {
            // Not ours any more: whoever holds it now decides what becomes of it.
            (Some(_), Some(why)) => outcome.map(|(line, broken)| (format!("{line} [{why}]"), broken)),
            (Some(f), None) => {
                self.history.claim_done(&name, f, &self.owner).await?;
                outcome
            }
            (None, _) => outcome,
        }
    }

    /// Renews the claim on `fire` every third of a lease. Lost when another daemon owns it, or
    /// when no renewal succeeded for a whole lease (the history store unreachable): then the
    /// reason is set and the drill cancelled.
    fn keep_claim(
        &self,
        name: &str,
        fire: DateTime<Utc>,
        lost: Arc<std::sync::OnceLock<String>>,
    ) -> tokio::task::JoinHandle<()> {
        let (history, owner, runbook, lease, cancel) =
            (self.history.clone(), self.owner.clone(), name.to_string(), self.config.lease, self.cancel.clone());
        tokio::spawn(async move {
            let every = lease / 3;
            let lease_c = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
            let mut renewed = std::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let why = match tokio::time::timeout(every, history.renew(&runbook, fire, &owner, lease_c)).await {
                    Ok(Ok(true)) => {
                        renewed = std::time::Instant::now();
                        continue;
                    }
                    Ok(Ok(false)) => format!("lost its claim on fire time {fire}: another daemon holds it now"),
                    _ if renewed.elapsed() < lease => continue,
                    Ok(Err(e)) => format!(
                        "lost its claim on fire time {fire}: not renewed for {}s (history store: {e:#})",
                        lease.as_secs()
                    ),
                    Err(_) => format!(
                        "lost its claim on fire time {fire}: not renewed for {}s (history store not answering)",
                        lease.as_secs()
                    ),
                };
                tracing::warn!(runbook = %runbook, %fire, reason = %why, "cancelling the drill");
                let _ = lost.set(why);
                cancel.cancel();
                return;
            }
        })
    }

    async fn wait_and_drill(
        &self,
        fire: Option<DateTime<Utc>>,
        queued: Option<String>,
        name: &str,
        when: &str,
        cancel_reason: Arc<std::sync::OnceLock<String>>,
    ) -> anyhow::Result<(String, Option<String>)> {
        // No free slot: the drill is recorded as `queued` until one frees up.
        let queued = if queued.is_some() {
            queued
        } else if self.slots.available_permits() == 0 {
            let id = uuid::Uuid::now_v7().to_string();
            self.history.queue(&id, name, fire).await?;
            Some(id)
        } else {
            None
        };
        let _slot = tokio::select! {
            s = self.slots.clone().acquire_owned() => s?,
            _ = self.cancel.cancelled() => {
                if let Some(id) = &queued {
                    let reason = format!(
                        "aborted: {}",
                        cancel_reason.get().map(String::as_str).unwrap_or("the daemon stopped before a slot was free")
                    );
                    self.history.finish(id, Ending::Aborted.as_str(), Utc::now(), None, &[reason]).await?;
                }
                return Ok((format!("{name}: {when} not started (cancelled while waiting for a slot)"), None));
            }
        };
        self.drill(fire, queued, name, when, cancel_reason).await
    }

    async fn drill(
        &self,
        fire: Option<DateTime<Utc>>,
        queued: Option<String>,
        name: &str,
        when: &str,
        cancel_reason: Arc<std::sync::OnceLock<String>>,
    ) -> anyhow::Result<(String, Option<String>)> {
        let plan = plan::build_or_broken(&self.config, plan::parse(&self.path, &self.text)?)?;
        let broken = plan.broken.clone();
        let setup = DrillSetup {
            config: &self.config,
            reports_root: &self.config.reports,
            signer: &self.signer,
            history: &self.history,
        };
        let hooks = Hooks {
            progress: Arc::new(drillbook_adapters::NoProgress),
            on_step: Box::new(|_| {}),
            cancel_reason,
            after_restore: None,
        };
        let done = drill(&setup, plan, fire, queued, self.cancel.clone(), hooks).await?;
        let verdict = match done.status {
            Ending::Passed => "passed".to_string(),
            other => format!("{} ({})", other.as_str(), done.reasons.join("; ")),
        };
        Ok((format!("{name}: run {} ({when}): {verdict}", done.run_id), broken))
    }
}

/// Reads the runbooks folder. A file that no longer parses keeps its previous version and
/// its error; a new runbook starts from its last recorded fire time, or from now.
/// Returns why the folder could not be read, if it could not: then the runbooks already
/// loaded are kept as they are (a transient error never means "0 runbooks, ok").
async fn reload(config: &Config, history: &History, book: &mut BTreeMap<PathBuf, Entry>) -> Option<String> {
    // Walking the folder and reading and parsing every file is blocking work: off the async
    // workers, which serve drills and the HTTP side meanwhile.
    let root = config.runbooks.clone();
    let read = tokio::task::spawn_blocking(move || {
        plan::expand(&[], &root).map(|paths| {
            paths
                .into_iter()
                .map(|p| std::path::absolute(&p).unwrap_or(p))
                .map(|p| {
                    let version = plan::load_with_text(&p).map(|(l, text)| Version::new(&l, text));
                    (p, version)
                })
                .collect::<Vec<_>>()
        })
    })
    .await;
    let files = match read {
        Ok(Ok(files)) => files,
        Ok(Err(e)) => {
            let why = format!("the runbooks folder cannot be read: {}", e.0);
            tracing::warn!(folder = %config.runbooks.display(), error = %why, "keeping the runbooks loaded before");
            eprintln!("drillbook daemon: {why}; keeping the {} runbooks loaded before", book.len());
            return Some(why);
        }
        Err(e) => return Some(format!("the runbooks folder could not be read: {e}")),
    };
    // A runbook whose drill is running stays until the drill ends, even if its file went
    // away, so a reload can never start a second drill of it.
    {
        let present: std::collections::HashSet<&PathBuf> = files.iter().map(|(p, _)| p).collect();
        book.retain(|p, e| present.contains(p) || e.busy);
    }
    // What was loaded, as `audit coverage` will read it: each runbook's text from now on.
    let versions: Vec<(&str, &str, &str)> =
        files.iter().filter_map(|(_, v)| v.as_ref().ok()).map(|v| (v.name(), v.sha256.as_str(), &*v.text)).collect();
    if let Err(e) = history.note_runbooks(&versions, Utc::now()).await {
        eprintln!("drillbook daemon: cannot record the runbooks' versions for audit coverage: {e:#}");
    }
    drop(versions);
    for (path, version) in files {
        match version {
            Ok(version) => {
                if let Some(e) = book.get_mut(&path) {
                    if e.version.sha256 != version.sha256 {
                        e.version = version;
                    }
                    e.error = None;
                    continue;
                }
                let last = history.last_scheduled(version.name()).await.ok().flatten().unwrap_or_else(Utc::now);
                book.insert(path, Entry { version, last, busy: false, error: None, failing: None });
            }
            Err(invalid) => {
                tracing::warn!(path = %path.display(), error = %invalid, "runbook invalid; keeping its previous version");
                eprintln!("drillbook daemon: {invalid}");
                if let Some(e) = book.get_mut(&path) {
                    e.error = Some(invalid.to_string());
                }
            }
        }
    }
    None
}

/// Runs left `running` by a process that is gone become `interrupted`; their drill folders
/// and the processes started in them are removed.
async fn recover(config: &Config, history: &History) -> anyhow::Result<()> {
    let running = history.running_here().await?;
    if running.is_empty() {
        return Ok(());
    }
    // The runbooks, read once, to find what a dead drill may have created on a scratch server.
    let plans = runbooks_by_name(config);
    for (run_id, runbook, pid, process) in running {
        if alive(pid, process.as_deref()) {
            continue;
        }
        let id = run_id.clone();
        let folders =
            tokio::task::spawn_blocking(move || drill_folders(&std::env::temp_dir(), &id)).await.unwrap_or_default();
        let removed = clean_up(config, &run_id, plans.get(&runbook), folders).await;
        let reason = format!(
            "interrupted: the process that ran it (pid {}) is gone; cleaned up: {}",
            pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            if removed.is_empty() { "nothing was left".to_string() } else { removed.join(", ") }
        );
        if history.interrupt(&run_id, &reason).await? {
            eprintln!("drillbook daemon: {runbook} run {run_id} {reason}");
        }
    }
    Ok(())
}

/// Removes the kept scratch whose time is up (`keep_on_failure`); what could not be removed
/// stays listed, to be tried again.
async fn expire_kept(config: &Config, history: &History) {
    let now = crate::history::ts(Utc::now());
    let Ok(kept) = history.kept().await else { return };
    for k in kept.into_iter().filter(|k| k.expires_at <= now) {
        match remove_kept(config, history, &k).await {
            Ok(removed) => eprintln!(
                "drillbook daemon: {} run {}: kept scratch expired; removed {}",
                k.runbook,
                k.run_id,
                removed.join(", ")
            ),
            Err(e) => eprintln!("drillbook daemon: {} run {}: {e:#}", k.runbook, k.run_id),
        }
    }
}

/// Removes one kept scratch (its folder, and what the adapter finds on a scratch server) and
/// forgets it. Only a folder the drill named itself (`drillbook-<run-id>-…`) is touched.
pub async fn remove_kept(config: &Config, history: &History, k: &KeptRow) -> anyhow::Result<Vec<String>> {
    let folder = PathBuf::from(&k.folder);
    let ours = folder.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("drillbook-{}-", k.run_id)));
    anyhow::ensure!(ours, "{} is not a drill folder of run {}; left alone", k.folder, k.run_id);
    let folders = if folder.exists() { vec![folder] } else { Vec::new() };
    // The runbook the drill ran (else the one of that name in the runbooks folder), to find
    // what it kept on a scratch server.
    let loaded = plan::load(Path::new(&k.runbook_path))
        .ok()
        .filter(|l| l.runbook.name() == k.runbook)
        .or_else(|| runbooks_by_name(config).remove(&k.runbook));
    let mut removed = clean_up(config, &k.run_id, loaded.as_ref(), folders).await;
    if loaded.is_none() {
        removed.push(format!("could not find runbook `{}` to sweep its scratch server", k.runbook));
    }
    if let Some(failed) = removed.iter().find(|r| r.contains("could not")) {
        anyhow::bail!("kept scratch of run {}: {failed}", k.run_id);
    }
    history.unkeep(&k.run_id).await?;
    Ok(if removed.is_empty() { vec!["nothing (it was gone)".into()] } else { removed })
}

/// Removes what drill `run_id` left: `folders` (processes started there killed first) and,
/// through the adapter of its runbook `loaded`, what it made on a scratch server. Says what went.
async fn clean_up(config: &Config, run_id: &str, loaded: Option<&Loaded>, folders: Vec<PathBuf>) -> Vec<String> {
    let mut removed =
        tokio::task::spawn_blocking(move || folders.iter().flat_map(|d| remove_folder(d)).collect::<Vec<_>>())
            .await
            .unwrap_or_default();
    if let Some(loaded) = loaded {
        match plan::build(config, loaded.clone()) {
            Ok(p) => {
                for (restore, built) in loaded.runbook.restores().iter().zip(&p.restores) {
                    let adapter = drillbook_adapters::build(&restore.adapter);
                    match adapter.sweep(run_id, &built.scratch).await {
                        Ok(more) => removed.extend(more),
                        Err(e) => removed.push(format!("could not sweep the scratch server: {e}")),
                    }
                }
            }
            Err(e) => removed.push(format!("could not sweep the scratch server: {e}")),
        }
    }
    removed
}

/// The runbooks of the folder that load, by name.
fn runbooks_by_name(config: &Config) -> BTreeMap<String, Loaded> {
    plan::expand(&[], &config.runbooks)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| plan::load(&p).ok())
        .map(|l| (l.runbook.name().to_string(), l))
        .collect()
}

/// Whether the process that recorded a run still runs (not merely one with its pid or name).
fn alive(pid: Option<i64>, process: Option<&str>) -> bool {
    let Some(pid) = pid.and_then(|p| u32::try_from(p).ok()) else { return false };
    match process {
        // The very process that recorded the run: same boot, pid and start time.
        Some(recorded) => crate::process_identity(pid).as_deref() == Some(recorded),
        // Rows from before the identity was recorded.
        None => std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("drillbook"))
            .unwrap_or(false),
    }
}

/// The folders of drill `run_id` under `tmp` (`drillbook-<run-id>-*`).
fn drill_folders(tmp: &Path, run_id: &str) -> Vec<PathBuf> {
    let prefix = format!("drillbook-{run_id}-");
    let Ok(entries) = std::fs::read_dir(tmp) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
        .collect()
}

/// Kills the processes a drill started in `dir` and removes it.
fn remove_folder(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let needle = dir.display().to_string();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else { continue };
        // Started there: named on its command line (a scratch server's data folder) or
        // working inside it (a `command` check).
        let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(p.path().join("cwd")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).replace('\0', " ").contains(&needle) || cwd.starts_with(dir) {
            // SAFETY: kill(2) on a pid read from /proc; a stale one yields ESRCH.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            out.push(format!("process {pid}"));
        }
    }
    // Give killed processes a moment to release their files.
    std::thread::sleep(std::time::Duration::from_millis(200));
    match std::fs::remove_dir_all(dir) {
        Ok(()) => out.push(format!("folder {needle}")),
        Err(e) => out.push(format!("folder {needle} could not be removed: {e}")),
    }
    out
}

/// `drillbook scratch list`: the kept scratch of failed drills, the soonest to go first.
pub async fn scratch_list_command(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let history = History::open(&config.state).await?;
    let kept = history.kept().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&kept)?);
    } else if kept.is_empty() {
        println!("no kept scratch in {}", crate::history::shown_url(&config.state));
    } else {
        println!("{:<38} {:<28} {:<22} folder", "run", "runbook", "until");
        for k in kept {
            let also = k.also.iter().map(|a| format!(" + {a}")).collect::<String>();
            println!("{:<38} {:<28} {:<22} {}{also}", k.run_id, k.runbook, k.expires_at, k.folder);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `drillbook scratch rm RUN_ID`: removes one kept scratch now.
pub async fn scratch_rm_command(config: &Config, run_id: &str) -> anyhow::Result<ExitCode> {
    let history = History::open(&config.state).await?;
    let kept = history.kept().await?;
    let Some(k) = kept.iter().find(|k| k.run_id == run_id) else {
        let known: Vec<&str> = kept.iter().map(|k| k.run_id.as_str()).collect();
        return Err(Invalid(format!(
            "no kept scratch of run {run_id} ({})",
            if known.is_empty() { "none is kept".to_string() } else { format!("kept: {}", known.join(", ")) }
        ))
        .into());
    };
    let removed = remove_kept(config, &history, k).await?;
    println!("removed the kept scratch of {} run {run_id}: {}", k.runbook, removed.join(", "));
    Ok(ExitCode::SUCCESS)
}
