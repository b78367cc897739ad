//! The daemon's HTTP side (127.0.0.1:9477 by default): `/healthz`, `/metrics` (OpenMetrics
//! text), the dashboard, `/api/runs`, `/api/runbooks`, the reports, and the token-protected
//! trigger `POST /api/runbooks/{name}/run`. Everything is read from the ledger (`/metrics`,
//! the dashboard), history's pages (`/api/runs`) and the status the scheduler publishes;
//! nothing here runs a drill itself.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::history::History;
use crate::ledger::{Durations, Ledger, Summary, epoch};

/// What the scheduler knows about one runbook, published after every change.
#[derive(Debug, Clone, Serialize)]
pub struct RunbookStatus {
    pub name: String,
    pub path: String,
    pub owner: String,
    pub asset: serde_json::Value,
    pub schedule: Option<String>,
    pub timezone: String,
    pub next_fire: Option<DateTime<Utc>>,
    /// The longest gap between its fire times: a passing drill proves the asset for
    /// this long (`schedule::Timetable::interval`).
    pub interval_s: Option<u64>,
    pub running: bool,
    pub rpo_s: Option<u64>,
    pub rto_s: Option<u64>,
    /// Why the file on disk is not the version in use.
    pub error: Option<String>,
    /// Why its last drill could not be built (a secret or profile gone since it was loaded).
    pub failing: Option<String>,
}

/// What the daemon's loop publishes for the HTTP side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DaemonStatus {
    pub runbooks: Vec<RunbookStatus>,
    /// Why the runbooks folder could not be read at the last look (the runbooks of the look
    /// before are kept).
    pub folder_error: Option<String>,
}

/// A bearer token shorter than this is refused at start.
pub const MIN_TOKEN_CHARS: usize = 32;

pub struct Shared {
    pub history: Arc<History>,
    /// What the dashboard and `/metrics` show of the history, kept up to date.
    pub ledger: Ledger,
    pub reports: std::path::PathBuf,
    /// Which endpoints need the token (`http.auth`).
    pub auth: crate::config::HttpAuth,
    /// The resolved bearer token; `None` refuses every trigger.
    pub token: Option<String>,
    pub status: watch::Receiver<DaemonStatus>,
    pub trigger: mpsc::Sender<Trigger>,
    /// When this daemon started (a runbook that never passed is overdue one interval after).
    pub started_at: DateTime<Utc>,
}

/// A request to run a runbook now, answered by the daemon's loop.
pub struct Trigger {
    pub runbook: String,
    pub reply: tokio::sync::oneshot::Sender<TriggerReply>,
}

pub enum TriggerReply {
    /// Recorded as `queued` under this run id before the answer.
    Accepted(String),
    /// A drill of the runbook is already queued or running (its run id when known).
    Running(Option<String>),
    NotFound,
    Failed(String),
}

pub fn router(shared: Arc<Shared>) -> Router {
    let guarded = Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/api/runs", get(runs))
        .route("/api/runbooks", get(runbooks))
        .route("/api/runbooks/{name}/run", post(trigger))
        .route("/reports/{runbook}/{run_id}/{file}", get(report_file))
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), require_token));
    // Probes read /healthz without a secret, whatever `http.auth` says.
    Router::new().route("/healthz", get(healthz)).merge(guarded).with_state(shared)
}

/// `http.auth: all`: every guarded endpoint needs the bearer token (the trigger checks it
/// itself in either mode).
async fn require_token(
    State(s): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if s.auth == crate::config::HttpAuth::All
        && let Some(refused) = refusal(&s, request.headers())
    {
        return refused;
    }
    next.run(request).await
}

/// The 401 answer when the request does not carry the configured bearer token.
fn refusal(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match (&s.token, given) {
        (Some(want), Some(got)) if constant_time_eq(want.as_bytes(), got.as_bytes()) => None,
        _ => {
            let why = if s.token.is_none() {
                "no token is configured (http.token)"
            } else {
                "a valid bearer token is required"
            };
            Some((StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], why).into_response())
        }
    }
}

/// What `/healthz` holds against the daemon: runbooks that do not parse or cannot be built,
/// an unreadable runbooks folder. Empty when healthy.
fn problems(daemon: &DaemonStatus) -> Vec<serde_json::Value> {
    let status = &daemon.runbooks;
    let mut invalid: Vec<_> = status
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| serde_json::json!({"runbook": r.name, "path": r.path, "error": e})))
        .collect();
    invalid.extend(status.iter().filter_map(|r| {
        r.failing.as_ref().map(|e| serde_json::json!({"runbook": r.name, "path": r.path, "error": e}))
    }));
    if let Some(e) = &daemon.folder_error {
        invalid.push(serde_json::json!({"runbooks_folder": e}));
    }
    invalid
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let daemon = s.status.borrow().clone();
    let invalid = problems(&daemon);
    let status = daemon.runbooks;
    let degraded = !invalid.is_empty();
    let body = serde_json::json!({
        "status": if degraded { "degraded" } else { "ok" },
        "runbooks": status.len(),
        "running": status.iter().filter(|r| r.running).count(),
        "invalid": invalid,
    });
    // Probes (Kubernetes, load balancers) read the status code, not the body.
    let code = if degraded { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, axum::Json(body)).into_response()
}

#[derive(serde::Deserialize)]
struct RunsQuery {
    runbook: Option<String>,
    limit: Option<u32>,
    /// The last run id of the previous page.
    before: Option<String>,
}

/// `/api/runs?runbook=&limit=&before=`: newest first, paged in SQL (`limit` 100 by default,
/// 1,000 at most; `before` = the last `run_id` of the previous page).
async fn runs(State(s): State<Arc<Shared>>, Query(q): Query<RunsQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match s.history.page(q.runbook.as_deref(), Some(limit), q.before.as_deref()).await {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(e) if e.to_string().starts_with("no run `") => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("history: {e:#}")).into_response(),
    }
}

async fn runbooks(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(s.status.borrow().runbooks.clone()).into_response()
}

async fn trigger(State(s): State<Arc<Shared>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&s, &headers) {
        return refused;
    }
    if !s.status.borrow().runbooks.iter().any(|r| r.name == name) {
        return (StatusCode::NOT_FOUND, format!("no runbook `{name}`")).into_response();
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    if s.trigger.send(Trigger { runbook: name.clone(), reply }).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping").into_response();
    }
    match answer.await {
        Ok(TriggerReply::Accepted(run_id)) => {
            (StatusCode::ACCEPTED, axum::Json(serde_json::json!({"run_id": run_id, "runbook": name}))).into_response()
        }
        Ok(TriggerReply::Running(run_id)) => (
            StatusCode::CONFLICT,
            axum::Json(serde_json::json!({"error": format!("{name} is already queued or running"), "run_id": run_id})),
        )
            .into_response(),
        Ok(TriggerReply::NotFound) => (StatusCode::NOT_FOUND, format!("no runbook `{name}`")).into_response(),
        Ok(TriggerReply::Failed(why)) => (StatusCode::INTERNAL_SERVER_ERROR, why).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping").into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn report_file(
    State(s): State<Arc<Shared>>,
    Path((runbook, run_id, file)): Path<(String, String, String)>,
) -> Response {
    let kind = match file.as_str() {
        "report.html" => "text/html; charset=utf-8",
        "report.json" | "report.dsse.json" => "application/json",
        "report.md" => "text/markdown; charset=utf-8",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let plain = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !plain(&runbook) || !plain(&run_id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(s.reports.join(&runbook).join(&run_id).join(&file)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    runbook: String,
    asset: String,
    owner: String,
}

/// `drillbook_drill_duration_seconds`: one histogram per runbook, from the ledger's counts.
#[derive(Debug, Default)]
struct DurationFamily(Vec<(Labels, Durations)>);

impl EncodeMetric for DurationFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, histogram) in &self.0 {
            histogram.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let (status, healthy) = {
        let daemon = s.status.borrow();
        (daemon.runbooks.clone(), problems(&daemon).is_empty())
    };
    let view = match s.ledger.view().await {
        Ok(v) => v,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("history: {e:#}")).into_response(),
    };
    let mut registry = Registry::default();
    let gauge = || Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let (last_run, last_success, rto, rpo, failed, running, rto_target, rpo_target) =
        (gauge(), gauge(), gauge(), gauge(), gauge(), gauge(), gauge(), gauge());
    let (interval, last_passed) = (gauge(), gauge());
    let mut duration = DurationFamily::default();
    let invalid = Family::<Vec<(String, String)>, Gauge>::default();
    let none = Summary::default();
    for st in &status {
        let labels = Labels {
            runbook: st.name.clone(),
            asset: st.asset["name"].as_str().unwrap_or_default().to_string(),
            owner: st.owner.clone(),
        };
        running.get_or_create(&labels).set(if st.running { 1.0 } else { 0.0 });
        if let Some(t) = st.rto_s {
            rto_target.get_or_create(&labels).set(t as f64);
        }
        if let Some(t) = st.rpo_s {
            rpo_target.get_or_create(&labels).set(t as f64);
        }
        if let Some(t) = st.interval_s {
            interval.get_or_create(&labels).set(t as f64);
        }
        if st.error.is_some() || st.failing.is_some() {
            invalid.get_or_create(&vec![("runbook".to_string(), st.name.clone())]).set(1);
        }
        let runs = view.runbooks.get(&st.name).unwrap_or(&none);
        if let Some(t) = runs.last.as_ref().and_then(|r| epoch(&r.started_at)) {
            last_run.get_or_create(&labels).set(t);
        }
        if let Some(t) = runs.last_success.as_deref().and_then(epoch) {
            last_success.get_or_create(&labels).set(t);
        }
        // The verdict of the latest drill that reached one (aborted and interrupted drills
        // have none; a runbook left without a passing drill shows in its last success time).
        if let Some(passed) = runs.last_passed() {
            last_passed.get_or_create(&labels).set(if passed { 1.0 } else { 0.0 });
        }
        if runs.durations.count() > 0 {
            duration.0.push((labels.clone(), runs.durations.clone()));
        }
        if let Some(last) = runs.latest() {
            if let Some(v) = last.rto_s {
                rto.get_or_create(&labels).set(v);
            }
            if let Some(v) = last.rpo_s {
                rpo.get_or_create(&labels).set(v);
            }
            if let Some(n) = last.failed_checks {
                failed.get_or_create(&labels).set(n as f64);
            }
        }
    }
    drop(view);
    let reg = &mut registry;
    reg.register("drillbook_last_run_timestamp_seconds", "Start of the runbook's latest drill (Unix time)", last_run);
    reg.register(
        "drillbook_last_success_timestamp_seconds",
        "End of the runbook's latest passing drill (Unix time)",
        last_success,
    );
    reg.register(
        "drillbook_last_drill_passed",
        "1 when the latest drill with a verdict passed, 0 when it failed",
        last_passed,
    );
    reg.register(
        "drillbook_schedule_interval_seconds",
        "Longest gap between the runbook's fire times: a passing drill proves the asset for this long and a quarter more",
        interval,
    );
    reg.register("drillbook_drill_duration_seconds", "Wall time of finished drills", duration);
    reg.register("drillbook_rto_measured_seconds", "Restore and verify time of the latest drill", rto);
    reg.register("drillbook_rpo_measured_seconds", "Age of the backup restored by the latest drill", rpo);
    reg.register("drillbook_rto_objective_seconds", "The runbook's RTO objective", rto_target);
    reg.register("drillbook_rpo_objective_seconds", "The runbook's RPO objective", rpo_target);
    reg.register("drillbook_failed_checks", "Checks that did not pass in the latest report", failed);
    reg.register("drillbook_running_drills", "Drills of the runbook running now", running);
    reg.register(
        "drillbook_runbook_invalid",
        "1 when the runbook file no longer parses (its previous version runs) or cannot be built",
        invalid,
    );
    let up: Gauge = Gauge::default();
    up.set(i64::from(healthy));
    reg.register("drillbook_healthy", "1 when /healthz answers ok, 0 when degraded", up);
    let start: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    start.set(s.started_at.timestamp_millis() as f64 / 1000.0);
    reg.register("drillbook_start_time_seconds", "When this daemon started (Unix time)", start);
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}")).into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn ago(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The RTO trend of a runbook as an inline SVG polyline (oldest left).
fn sparkline(values: &[f64]) -> String {
    if values.len() < 2 {
        return values.first().map(|v| format!("{v:.1}s")).unwrap_or_else(|| "—".into());
    }
    let max = values.iter().cloned().fold(f64::MIN, f64::max).max(0.001);
    let step = 100.0 / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, 20.0 - 18.0 * v / max))
        .collect();
    format!(
        "<svg class=\"trend\" viewBox=\"0 0 100 20\" width=\"100\" height=\"20\" role=\"img\" aria-label=\"RTO trend, last {:.1}s\">\
         <polyline fill=\"none\" stroke=\"#36c\" stroke-width=\"1.5\" points=\"{}\"/></svg> {:.1}s",
        values[values.len() - 1],
        points.join(" "),
        values[values.len() - 1]
    )
}

async fn dashboard(State(s): State<Arc<Shared>>) -> Response {
    let status = s.status.borrow().runbooks.clone();
    let view = match s.ledger.view().await {
        Ok(v) => v,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("history: {e:#}")).into_response(),
    };
    let none = Summary::default();
    let now = Utc::now();
    let mut body = String::new();
    for st in &status {
        let runs = view.runbooks.get(&st.name).unwrap_or(&none);
        let last = runs.last.as_ref();
        let verdict = last.map(|r| r.status.as_str()).unwrap_or("never run");
        // (a) Is the asset drilled as often as its schedule says, and (b) how old was the
        // backup its last passing drill restored, against the RPO (`drillbook assets` too).
        let drilled = crate::inventory::drilled_within(
            st.interval_s.map(std::time::Duration::from_secs),
            st.schedule.is_some(),
            runs.last_success.as_deref(),
            now,
        );
        let pass_text = match runs.last_success.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
            Some(t) => {
                format!("{} ago ({})", ago((now - t.with_timezone(&Utc)).num_seconds()), drilled.replace('_', " "))
            }
            None => "no passing drill".into(),
        };
        let backup_age = runs.passing_backup_age().map(|a| a as i64);
        let fresh = match (backup_age, st.rpo_s) {
            (Some(a), Some(rpo)) => Some(a <= rpo as i64),
            _ => None,
        };
        let backup_text = match (backup_age, st.rpo_s) {
            (Some(a), Some(rpo)) => format!("{} old (RPO {})", ago(a), ago(rpo as i64)),
            (Some(a), None) => format!("{} old", ago(a)),
            (None, _) => "—".into(),
        };
        let on_time = drilled == "on_schedule" || (drilled == "unscheduled" && runs.last_success.is_some());
        let link = last
            .filter(|r| r.has_report)
            .map(|r| format!("<a href=\"/reports/{0}/{1}/report.html\">{1}</a>", esc(&st.name), esc(&r.run_id)))
            .unwrap_or_default();
        body.push_str(&format!(
            "<tr class=\"{cls}\"><td>{asset}<br><small>{kind}</small></td><td>{name}{err}</td><td>{owner}</td>\
             <td class=\"verdict {verdict}\">{verdict}{running}</td><td class=\"{drilled_cls}\">{pass_text}</td>\
             <td class=\"{fresh_cls}\">{backup_text}</td><td>{next}</td><td>{trend}</td><td>{link}</td></tr>\n",
            cls = if on_time && fresh != Some(false) { "ok" } else { "stale" },
            asset = esc(st.asset["name"].as_str().unwrap_or_default()),
            kind = esc(st.asset["kind"].as_str().unwrap_or_default()),
            name = esc(&st.name),
            err = st
                .error
                .as_ref()
                .map(|e| format!("<br><small class=\"invalid\">invalid: {}</small>", esc(e)))
                .unwrap_or_default(),
            owner = esc(&st.owner),
            verdict = esc(verdict),
            running = if st.running { " <small>(running)</small>" } else { "" },
            drilled_cls = if on_time { "within" } else { "breached" },
            fresh_cls = if fresh == Some(false) { "breached" } else { "within" },
            next = st
                .next_fire
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "by hand".into()),
            trend = sparkline(&runs.rto_trend()),
        ));
    }
    let uncovered =
        status.iter().filter(|st| view.runbooks.get(&st.name).is_none_or(|r| r.last_success.is_none())).count();
    drop(view);
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>drillbook</title>\
         <meta http-equiv=\"refresh\" content=\"30\"><style>\
         body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}\
         td,th{{border-bottom:1px solid #ddd;padding:.4em .6em;text-align:left;vertical-align:top}}\
         .passed{{color:#176f2c;font-weight:600}}.failed,.aborted,.interrupted{{color:#b3261e;font-weight:600}}\
         .breached{{color:#b3261e}}.invalid{{color:#b3261e}}small{{color:#666}}</style></head><body>\
         <h1>drillbook</h1><p id=\"summary\">{n} runbooks, {uncovered} without a passing drill; \
         <a href=\"/metrics\">metrics</a> · <a href=\"/api/runs\">runs</a> · <a href=\"/api/runbooks\">runbooks</a></p>\
         <table id=\"assets\"><thead><tr><th>asset</th><th>runbook</th><th>owner</th><th>last verdict</th>\
         <th>last pass</th><th>backup at last pass</th><th>next fire</th><th>RTO trend</th><th>last report</th></tr></thead><tbody>\n{body}</tbody></table>\
         </body></html>",
        n = status.len(),
    ))
    .into_response()
}

/// The rustls server settings of `http.tls` (PEM certificate chain and private key).
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("http.tls.cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("http.tls.cert {}: no certificate in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("http.tls.key {}: {e}", key.display()))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("http.tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("http.tls: the key does not fit the certificate: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` over TLS until `stop`: each accepted connection does its handshake and is
/// served on its own task; a failed handshake (a plain-HTTP client) ends only that connection.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let (acceptor, router, stop) = (acceptor.clone(), router.clone(), stop.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(%peer, error = %e, "connection ended"); },
                _ = stop.cancelled() => {}
            }
        });
    }
}
