//! `run`, `history` and `manifest`: one drill by hand, recorded like a scheduled one.

use std::io::IsTerminal;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use drillbook_reports::{Report, Verdict};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::execute::{Ending, Hooks, execute};
use crate::history::{Figures, History};
use crate::{Invalid, plan};

pub async fn run_command(
    config: &Config,
    runbook: &Path,
    report_dir: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let loaded = plan::load(runbook)?;
    let plan = plan::build(config, loaded)?;
    let reports_root = report_dir.unwrap_or_else(|| config.reports.clone());
    let signer = crate::evidence::signer(config)?;
    let history = History::open(&config.state).await?;

    let cancel = cancel_on_signals();

    let live = !json && std::io::stderr().is_terminal();
    let hooks = Hooks {
        cancel_reason: Default::default(),
        after_restore: None,
        progress: crate::progress::for_terminal(),
        on_step: Box::new(move |s| {
            if live {
                eprintln!(
                    "  {:<18} {:<7} {:>7} ms  {}",
                    s.name,
                    format!("{:?}", s.status).to_lowercase(),
                    s.duration_ms,
                    s.detail
                );
            }
        }),
    };
    let setup = DrillSetup { config, reports_root: &reports_root, signer: &signer, history: &history };
    let done = drill(&setup, plan, None, None, cancel, hooks).await?;
    let Some(report) = done.report else {
        eprintln!("error: {}", done.reasons.join("; "));
        return Ok(ExitCode::from(1));
    };
    if let Some(outcome) = &done.notification
        && !json
    {
        // What followed the report: email, webhook, trusted timestamp.
        eprintln!("after the report: {outcome}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report, done.folder.as_deref());
    }
    if let Some(e) = &done.write_error {
        eprintln!("error: the report could not be written: {e}");
        return Ok(ExitCode::from(1));
    }
    Ok(if done.status == Ending::Passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A token cancelled by Ctrl-C or SIGTERM: a drill started by hand is aborted, and its
/// teardown still runs.
pub fn cancel_on_signals() -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        on_signal.cancel();
    });
    cancel
}

/// What a drill needs from its surroundings, the same for `drillbook run` and the daemon.
pub struct DrillSetup<'a> {
    pub config: &'a Config,
    pub reports_root: &'a Path,
    pub signer: &'a crate::evidence::Signer,
    pub history: &'a History,
}

/// How one drill ended, once its history row has its outcome.
pub struct Drilled {
    pub run_id: String,
    pub status: Ending,
    /// `None` only when the drill task itself died (a bug); `reasons` says so.
    pub report: Option<Report>,
    pub folder: Option<String>,
    pub write_error: Option<String>,
    pub reasons: Vec<String>,
    pub notification: Option<String>,
}

/// One drill, start to end: the history row (before anything is touched), `execute`, the
/// evidence, the outcome in history, then the notification. Scheduled and manual drills
/// both come through here.
pub async fn drill(
    setup: &DrillSetup<'_>,
    plan: crate::execute::DrillPlan,
    scheduled_for: Option<chrono::DateTime<Utc>>,
    queued: Option<String>,
    cancel: CancellationToken,
    hooks: Hooks,
) -> anyhow::Result<Drilled> {
    let DrillSetup { config, reports_root, signer, history } = *setup;
    // A drill that waited for a slot keeps the run id it was queued under.
    let run_id = queued.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let started_at = Utc::now();
    history.start(&run_id, plan.runbook.name(), started_at, scheduled_for).await?;

    // The drill runs in its own task so that even a bug that panics inside an adapter ends
    // as a failed drill with a history row, not as a lost one.
    let (notify, secrets) = (plan.runbook.notify.clone(), plan.secrets.clone());
    let task = {
        let run_id = run_id.clone();
        tokio::spawn(async move { execute(&plan, &run_id, started_at, scheduled_for, cancel, &hooks).await })
    };
    let (mut report, ending) = match task.await {
        Ok(done) => done,
        Err(e) => {
            let reason = format!("internal error: the drill task ended abnormally ({e}); please report this");
            history.finish(&run_id, Ending::Failed.as_str(), Utc::now(), None, std::slice::from_ref(&reason)).await?;
            return Ok(Drilled {
                run_id,
                status: Ending::Failed,
                report: None,
                folder: None,
                write_error: None,
                reasons: vec![reason],
                notification: None,
            });
        }
    };

    // Whatever happens while writing evidence, the history row gets its outcome.
    // The report joins its runbook's chain when it is committed: the chain is locked, its head
    // becomes `previous`, the evidence is signed and written, then the head moves to this
    // report. Concurrent drills of one runbook thus link one after the other, never fork.
    let mut reasons = report.failure_reasons.clone();
    let chain = match history.lock_chain(&report.runbook.name).await {
        Ok(lock) => {
            report.previous = lock.head.clone().map(|(run_id, sha256)| drillbook_reports::Previous { run_id, sha256 });
            report.seq = Some(lock.seq + 1);
            Some(lock)
        }
        Err(e) => {
            reasons.push(format!("report: not linked into the chain: {e:#}"));
            None
        }
    };
    let folder = reports_root.join(&report.runbook.name).join(&report.run_id);
    // Nothing from here to `finish` returns early: every way out records the outcome.
    let digest = report.digest().map_err(|e| anyhow::anyhow!("cannot compute the report's digest: {e}"));
    // The key valid when the drill finished (a keyring may have rotated since the start).
    // Rendered once: the HTML goes into the report folder and into the email.
    let (html, written) = match signer.key_at(report.finished_at).map_err(anyhow::Error::msg).and_then(|key| {
        let keyid = drillbook_reports::sign::keyid(&key.verifying_key())?;
        Ok((key, keyid))
    }) {
        Ok((key, keyid)) => {
            let html = drillbook_reports::render::render_html(&report, &keyid, config.templates.as_deref());
            let written = digest
                .as_ref()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .and_then(|_| write_report(&folder, &report, &key, &html));
            (html.ok(), written)
        }
        Err(e) => (None, Err(e.context("cannot load the signing key"))),
    };
    if let Err(e) = &written {
        reasons.push(format!("report: {e:#}"));
    }
    // Committed even when a file could not be written: the chain then names a report whose
    // absence is explained by its history row, rather than skipping it silently.
    if let (Some(lock), Ok(digest)) = (chain, &digest)
        && let Err(e) = lock.commit(&run_id, digest).await
    {
        reasons.push(format!("report: not linked into the chain: {e:#}"));
    }
    let folder = folder.display().to_string();
    let written_folder = written.is_ok().then(|| folder.clone());
    let status =
        if reasons.len() > report.failure_reasons.len() && ending == Ending::Passed { Ending::Failed } else { ending };
    let previous_status = history.previous_status(&report.runbook.name, &run_id).await.ok().flatten();
    history
        .finish(
            &run_id,
            status.as_str(),
            report.finished_at,
            digest.as_ref().ok().map(|d| (folder.as_str(), d.as_str(), Figures::of(&report))),
            &reasons,
        )
        .await?;
    if let Some(kept) = &report.kept {
        history.keep(&run_id, &report.runbook, kept).await?;
    }

    // The outcome is recorded; now tell people, within the retry budget.
    let notification = crate::notify::email(
        config.smtp.as_ref(),
        notify.as_ref(),
        &report,
        previous_status.as_deref(),
        html.as_deref().unwrap_or_default(),
        &secrets,
    )
    .await;
    let hook = crate::notify::webhook(
        notify.as_ref(),
        &report,
        previous_status.as_deref(),
        written_folder.as_deref(),
        &secrets,
    )
    .await;
    // A trusted timestamp of the signature; a TSA that is down never changes the drill.
    let stamped = match &config.timestamp {
        Some(tsa) => Some(
            crate::timestamp::after_report(
                tsa,
                written_folder.as_deref().map(Path::new),
                &reports_root.join(&report.runbook.name),
            )
            .await,
        ),
        None => None,
    };
    let outcomes: Vec<String> = notification.into_iter().chain(hook).chain(stamped).collect();
    let notification = (!outcomes.is_empty()).then(|| outcomes.join("; "));
    if let Some(outcome) = &notification {
        history.set_notification(&run_id, outcome).await?;
    }
    Ok(Drilled {
        run_id,
        status,
        report: Some(report),
        folder: written_folder,
        write_error: written.err().map(|e| format!("{e:#}")),
        reasons,
        notification,
    })
}

/// Writes `folder/{report.json, report.dsse.json, report.html, report.md}` (the folder is
/// `DIR/<runbook>/<run-id>`).
fn write_report(
    folder: &Path,
    report: &Report,
    key: &ed25519_dalek::SigningKey,
    html: &Result<String, drillbook_reports::render::RenderError>,
) -> anyhow::Result<()> {
    // Evidence folders 0750 and files 0640, created so (not chmod-ed after): readable by the
    // group that serves or archives them, by nobody else.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = folder.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::io::Write::write_all(&mut f, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    // Every file people read is covered by the signature: the envelope's statement lists each
    // with its SHA-256. A template that failed to render leaves report.html out (and fails the
    // evidence) only after the signed report is safe.
    use drillbook_reports::sign::Artifact;
    let json = serde_json::to_string_pretty(report)? + "\n";
    let markdown = report.to_markdown();
    let mut files = vec![("report.json", json.as_bytes())];
    if let Ok(html) = html {
        files.push(("report.html", html.as_bytes()));
    }
    files.push(("report.md", markdown.as_bytes()));
    let artifacts: Vec<Artifact> = files.iter().map(|(name, bytes)| Artifact::of(name, bytes)).collect();
    let envelope = drillbook_reports::sign::sign(report, &artifacts, key)?;
    write("report.dsse.json", (serde_json::to_string_pretty(&envelope)? + "\n").as_bytes())?;
    for (name, bytes) in &files {
        write(name, bytes)?;
    }
    html.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn print_summary(report: &Report, folder: Option<&str>) {
    let verdict = match report.verdict {
        Verdict::Passed => "PASSED",
        Verdict::Failed => "FAILED",
    };
    println!("drill {} {verdict} (run {})", report.runbook.name, report.run_id);
    for c in &report.checks {
        println!(
            "  check {:<30} {:<6} observed {} expected {}",
            c.name,
            format!("{:?}", c.status).to_lowercase(),
            c.observed,
            c.expected
        );
    }
    if let Some(o) = &report.objectives.rto {
        println!(
            "  RTO {} against {}s: {}",
            o.measured_s.map(|m| format!("{m:.1}s")).unwrap_or_else(|| "not measured".into()),
            o.target_s,
            if o.met { "met" } else { "NOT met" }
        );
    }
    if let Some(o) = &report.objectives.rpo {
        println!(
            "  RPO {} against {}s: {}",
            o.measured_s.map(|m| format!("{m:.0}s")).unwrap_or_else(|| "not measured".into()),
            o.target_s,
            if o.met { "met" } else { "NOT met" }
        );
    }
    for r in &report.failure_reasons {
        println!("  reason: {r}");
    }
    if let Some(k) = &report.kept {
        let also: String = k.also.iter().map(|a| format!(" and {a}")).collect();
        println!(
            "  kept for investigation: {}{also} until {} (drillbook scratch rm {})",
            k.folder,
            k.until.to_rfc3339(),
            report.run_id
        );
    }
    if let Some(f) = folder {
        println!("  report: {f}/report.json");
    }
}

pub async fn history_command(config: &Config, runbook: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let history = History::open(&config.state).await?;
    let rows = history.list(runbook).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no drills recorded in {}", crate::history::shown_url(&config.state));
    } else {
        println!("{:<38} {:<28} {:<11} {:<26} report", "run", "runbook", "status", "started");
        for r in rows {
            println!(
                "{:<38} {:<28} {:<11} {:<26} {}",
                r.run_id,
                r.runbook,
                r.status,
                r.started_at,
                r.report.unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `drillbook manifest --adapter redis`: key counts, the dataset digest and sampled keys, read
/// from a live server with read commands only.
async fn redis_manifest(args: &ManifestArgs) -> anyhow::Result<ExitCode> {
    if args.queries.is_some() {
        return Err(Invalid("--queries: golden answers are captured from postgres and chroma only".into()).into());
    }
    let info = drillbook_adapters::redis::connection_info(
        args.url.as_deref().unwrap_or_default(),
        std::env::var("REDISCLI_AUTH").ok(),
    )
    .map_err(|e| Invalid(format!("--url: not a Redis URL: {e}")))?;
    let mut patterns = Vec::new();
    for p in &args.patterns {
        let (db, glob) = match p.split_once(':') {
            Some((db, glob)) if db.parse::<u32>().is_ok() => (db.parse::<u32>().unwrap_or(0), glob),
            _ => (0, p.as_str()),
        };
        patterns.push((db, glob.to_string()));
    }
    let options = drillbook_adapters::redis::CaptureOptions { patterns, sample: args.sample };
    let mut conn = drillbook_adapters::redis::connect(info).await.context("cannot connect to the source Redis")?;
    let m = drillbook_adapters::redis::capture(&mut conn, &options).await.context("cannot read the dataset")?;
    let out = args.out.as_path();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&m)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "manifest of {} keys in {} databases ({} digest, {} samples) written to {}",
        m.databases.values().sum::<u64>(),
        m.databases.len(),
        serde_json::to_value(m.digest.method)?.as_str().unwrap_or_default(),
        m.samples.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes golden answers beside the manifest (or to `--golden-out`).
fn write_golden(args: &ManifestArgs, answers: &[serde_json::Value]) -> anyhow::Result<()> {
    let out = args.out.as_path();
    let golden = args.golden_out.clone().unwrap_or_else(|| {
        let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("manifest".into());
        out.with_file_name(format!("{stem}.golden.jsonl"))
    });
    let lines: Vec<String> = answers.iter().map(|a| a.to_string()).collect();
    std::fs::write(&golden, lines.join("\n") + "\n").with_context(|| format!("cannot write {}", golden.display()))?;
    println!("{} golden queries answered (exact top-{}) in {}", answers.len(), args.k, golden.display());
    Ok(())
}

/// `drillbook manifest --adapter chroma`: every collection's dimension, space, metadata,
/// count and record digest, from a live server (`--url`, read-only API calls) or a stopped
/// persist folder (`--path`, served from a temporary copy); golden answers with `--queries`.
async fn chroma_manifest(args: &ManifestArgs) -> anyhow::Result<ExitCode> {
    use drillbook_adapters::chroma;
    if !args.patterns.is_empty() || args.sample > 0 || args.table.is_some() {
        return Err(Invalid("--pattern, --sample and --table are not for `--adapter chroma`".into()).into());
    }
    if args.queries.is_some() != args.collection.is_some() {
        return Err(Invalid("--queries and --collection go together (the collection the queries search)".into()).into());
    }
    let served = match &args.path {
        Some(path) => Some(
            chroma::Served::start(path, args.bin_dir.as_deref(), None, &args.tenant, &args.database)
                .await
                .with_context(|| format!("cannot serve {}", path.display()))?,
        ),
        None => None,
    };
    let api = match (&served, &args.url) {
        (Some(s), _) => s.api().clone(),
        (None, Some(url)) => chroma::Api::new(url, &args.tenant, &args.database).map_err(|e| anyhow::anyhow!(e))?,
        (None, None) => return Err(Invalid("--url or --path is needed".into()).into()),
    };
    let result = async {
        let m = chroma::capture(&api).await.map_err(|e| anyhow::anyhow!("cannot read {}: {e}", api.base()))?;
        let answers = match (&args.queries, &args.collection) {
            (Some(queries), Some(collection)) => {
                let text =
                    std::fs::read_to_string(queries).with_context(|| format!("cannot read {}", queries.display()))?;
                let parsed = drillbook_adapters::vectors::parse_queries(&text).map_err(Invalid)?;
                Some(
                    chroma::golden_answers(&api, collection, args.k, &parsed)
                        .await
                        .map_err(|e| anyhow::anyhow!("cannot answer the golden queries: {e}"))?,
                )
            }
            _ => None,
        };
        anyhow::Ok((m, answers))
    }
    .await;
    if let Some(s) = served {
        s.stop().await;
    }
    let (m, answers) = result?;
    let out = args.out.as_path();
    std::fs::write(out, serde_json::to_string_pretty(&m)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "manifest of {} collections ({} records) written to {}",
        m.collections.len(),
        m.collections.values().map(|c| c.records).sum::<u64>(),
        out.display()
    );
    if let Some(answers) = answers {
        write_golden(args, &answers)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `drillbook manifest --adapter qdrant --snapshot FILE`: the collection's points, vectors,
/// payload schema and point digest, read by Qdrant Edge (this program's engine, in a child)
/// from the snapshot; golden answers by Qdrant's exact search with `--queries`.
async fn qdrant_manifest(args: &ManifestArgs) -> anyhow::Result<ExitCode> {
    use drillbook_adapters::qdrant;
    if !args.patterns.is_empty() || args.sample > 0 || args.table.is_some() || args.url.is_some() || args.path.is_some()
    {
        return Err(Invalid(
            "`--adapter qdrant` reads a snapshot: --snapshot FILE (not --url, --path, --table)".into(),
        )
        .into());
    }
    let Some(snapshot) = &args.snapshot else {
        return Err(Invalid(
            "`--adapter qdrant` needs --snapshot FILE (a collection, shard or full storage snapshot)".into(),
        )
        .into());
    };
    let queries = match &args.queries {
        Some(q) => {
            let text = std::fs::read_to_string(q).with_context(|| format!("cannot read {}", q.display()))?;
            Some(drillbook_adapters::vectors::parse_queries(&text).map_err(Invalid)?)
        }
        None => None,
    };
    let golden = queries.as_deref().map(|queries| qdrant::manifest::Golden {
        queries,
        vector: args.vector.as_deref(),
        k: args.k,
    });
    let program = qdrant::engine_program(None)?;
    let (m, answers) = qdrant::capture(snapshot, args.collection.as_deref(), &program, golden)
        .await
        .with_context(|| format!("cannot read {}", snapshot.display()))?;
    let out = args.out.as_path();
    std::fs::write(out, serde_json::to_string_pretty(&m)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    for (name, c) in &m.collections {
        println!(
            "manifest of collection {name} ({} points, {} payload fields) written to {}",
            c.points,
            c.payload_schema.len(),
            out.display()
        );
    }
    if let Some(answers) = answers {
        write_golden(args, &answers)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `drillbook manifest`.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// `sqlite`, `postgres`, `mariadb`, `redis`, `chroma` or `qdrant`.
    #[arg(long)]
    adapter: String,
    /// `sqlite://PATH`, `postgres://USER@HOST:PORT/DB` (password from PGPASSWORD),
    /// `mysql://USER@HOST:PORT/DB` (one database; without DB every user database; password
    /// from MYSQL_PWD), or
    /// `redis://HOST:PORT` / `redis+unix:///PATH` (password from REDISCLI_AUTH), or
    /// `http://HOST:PORT` (a live Chroma server, read only).
    #[arg(long, required_unless_present_any = ["path", "snapshot"])]
    url: Option<String>,
    /// qdrant: a snapshot file (collection, shard or full storage snapshot; --collection picks
    /// one of a full snapshot, or names a snapshot whose file name does not).
    #[arg(long, conflicts_with_all = ["url", "path"])]
    snapshot: Option<PathBuf>,
    /// qdrant: the named vector the golden queries search (default: the collection's only one).
    #[arg(long)]
    vector: Option<String>,
    /// chroma: a stopped persist folder (served from a temporary copy; the folder is not touched).
    #[arg(long, conflicts_with = "url")]
    path: Option<PathBuf>,
    /// chroma: the folder of the `chroma` program (default: PATH).
    #[arg(long)]
    bin_dir: Option<String>,
    /// chroma: the tenant and database of the collections.
    #[arg(long, default_value = "default_tenant")]
    tenant: String,
    #[arg(long, default_value = "default_database")]
    database: String,
    /// redis: also count the keys matching a pattern, `GLOB` in db 0 or `DB:GLOB` (repeatable).
    #[arg(long = "pattern", value_name = "[DB:]GLOB")]
    patterns: Vec<String>,
    /// redis: sample this many keys of each database (type, TTL, value digest) for `sample` checks.
    #[arg(long, default_value_t = 0)]
    sample: usize,
    /// The manifest to write (JSON): row counts, table digests, schema snapshot.
    #[arg(long)]
    out: PathBuf,
    /// Golden queries (JSON Lines, `{"id", "vector"}`) to answer with an exact search of
    /// `--table` (postgres) or `--collection` (chroma); the answers are written to
    /// `--golden-out` for `vector_recall`.
    #[arg(long)]
    queries: Option<PathBuf>,
    #[arg(long)]
    table: Option<String>,
    #[arg(long)]
    collection: Option<String>,
    #[arg(long)]
    column: Option<String>,
    #[arg(long)]
    id: Option<String>,
    #[arg(long, default_value_t = 10)]
    k: u32,
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "l2", "dot"])]
    metric: String,
    /// Default: beside `--out`, named `<out stem>.golden.jsonl`.
    #[arg(long)]
    golden_out: Option<PathBuf>,
}

pub async fn manifest_command(args: &ManifestArgs) -> anyhow::Result<ExitCode> {
    let out = args.out.as_path();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if args.adapter == "chroma" {
        return chroma_manifest(args).await;
    }
    if args.adapter == "qdrant" {
        return qdrant_manifest(args).await;
    }
    if args.snapshot.is_some() || args.vector.is_some() {
        return Err(Invalid("--snapshot and --vector are for `--adapter qdrant`".into()).into());
    }
    if args.path.is_some() {
        return Err(Invalid("--path is for `--adapter chroma`; the other stores take --url".into()).into());
    }
    let url = args.url.as_deref().unwrap_or_default();
    if args.adapter == "redis" {
        return redis_manifest(args).await;
    }
    if !args.patterns.is_empty() || args.sample > 0 {
        return Err(Invalid("--pattern and --sample are for `--adapter redis`".into()).into());
    }
    let m = match args.adapter.as_str() {
        "sqlite" => {
            if args.queries.is_some() {
                return Err(
                    Invalid("--queries: golden answers are captured from postgres and chroma only".into()).into()
                );
            }
            let file = url.strip_prefix("sqlite://").unwrap_or(url);
            if !Path::new(file).is_file() {
                return Err(Invalid(format!("--url: no SQLite database at {file}")).into());
            }
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(file).read_only(true);
            let pool = drillbook_adapters::sql::no_maintenance(sqlx::sqlite::SqlitePoolOptions::new())
                .max_connections(1)
                .connect_with(opts)
                .await
                .with_context(|| format!("cannot open {file}"))?;
            let m = drillbook_adapters::sqlite::capture(&pool).await.context("cannot read the database")?;
            pool.close().await;
            m
        }
        "postgres" => {
            let opts: sqlx::postgres::PgConnectOptions =
                url.parse().map_err(|e| Invalid(format!("--url: not a PostgreSQL URL: {e}")))?;
            // Read-only by construction: every transaction of these sessions is.
            let opts = opts.options([("default_transaction_read_only", "on")]).application_name("drillbook-manifest");
            let pool = drillbook_adapters::sql::no_maintenance(sqlx::postgres::PgPoolOptions::new())
                .max_connections(2)
                .connect_with(opts)
                .await
                .context("cannot connect to the source database")?;
            let m = drillbook_adapters::postgres::capture(&pool).await.context("cannot read the database")?;
            if let Some(queries) = &args.queries {
                let text =
                    std::fs::read_to_string(queries).with_context(|| format!("cannot read {}", queries.display()))?;
                let parsed = drillbook_adapters::vectors::parse_queries(&text).map_err(Invalid)?;
                let metric = match args.metric.as_str() {
                    "l2" => drillbook_runbooks::Metric::L2,
                    "dot" => drillbook_runbooks::Metric::Dot,
                    _ => drillbook_runbooks::Metric::Cosine,
                };
                if args.table.is_none() || args.column.is_none() || args.id.is_none() {
                    return Err(Invalid("--queries on postgres needs --table, --column and --id".into()).into());
                }
                let (table, column, id) = (
                    args.table.as_deref().unwrap_or_default(),
                    args.column.as_deref().unwrap_or_default(),
                    args.id.as_deref().unwrap_or_default(),
                );
                let answers =
                    drillbook_adapters::postgres::golden_answers(&pool, table, column, id, metric, args.k, &parsed)
                        .await
                        .context("cannot answer the golden queries")?;
                write_golden(args, &answers)?;
            }
            pool.close().await;
            m
        }
        "mariadb" => {
            if args.queries.is_some() {
                return Err(
                    Invalid("--queries: golden answers are captured from postgres and chroma only".into()).into()
                );
            }
            let mut opts: sqlx::mysql::MySqlConnectOptions =
                url.parse().map_err(|e| Invalid(format!("--url: not a MySQL/MariaDB URL: {e}")))?;
            if let Ok(pw) = std::env::var("MYSQL_PWD") {
                opts = opts.password(&pw);
            }
            let database = opts.get_database().map(String::from);
            let pool = drillbook_adapters::sql::no_maintenance(sqlx::mysql::MySqlPoolOptions::new())
                .max_connections(1)
                // Read-only by construction: the session's transactions are.
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::raw_sql("set session transaction read only").execute(conn).await.map(|_| ())
                    })
                })
                .connect_with(opts)
                .await
                .context("cannot connect to the source database")?;
            let databases = match database {
                Some(db) => vec![db],
                None => {
                    drillbook_adapters::mariadb::user_databases(&pool).await.context("cannot list the databases")?
                }
            };
            let scope = drillbook_adapters::mariadb::Scope { databases };
            let m = drillbook_adapters::mariadb::capture(&pool, &scope).await.context("cannot read the database")?;
            pool.close().await;
            m
        }
        other => {
            return Err(Invalid(format!(
                "--adapter: `{other}` has no manifest capture yet (supported: postgres, sqlite, mariadb, redis, chroma)"
            ))
            .into());
        }
    };
    std::fs::write(out, serde_json::to_string_pretty(&m)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("manifest of {} tables written to {}", m.tables.len(), out.display());
    Ok(ExitCode::SUCCESS)
}
