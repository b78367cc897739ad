//! What `/metrics` and the dashboard show of the history, kept by the daemon: one `Summary`
//! per runbook, folded once from the whole history at start and then brought up to date by
//! reading only the runs that started or finished since the last look (an indexed read of a
//! few rows). A request reads the kept summaries: no request reads the whole history, and
//! none reads a report file (the figures are in the history row; only runs recorded before
//! those columns have their report read, once, off the async workers).
//!
//! The look happens on a request when this process wrote to the history since the last one
//! (its own drill just ended) or the last one is older than `FRESH`; another daemon's or a
//! `drillbook run`'s drill therefore shows within a second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::DateTime;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};
use tokio::sync::{Mutex, MutexGuard};

use crate::history::{Figures, History, LedgerRow, ts};

/// How old the kept view may be when a request comes.
const FRESH: Duration = Duration::from_secs(1);
/// Runs are read again if they started or finished this long before the newest time seen:
/// rows written by hosts whose clocks differ, or committed late, are not missed.
const OVERLAP: chrono::Duration = chrono::Duration::minutes(10);
/// How many counted runs may be remembered before those outside the overlap are forgotten.
const COUNTED_PRUNE: usize = 4096;
/// RTO values kept per runbook for the dashboard's trend.
const TREND: usize = 20;
/// Upper bounds of `drillbook_drill_duration_seconds`.
const DURATION_BUCKETS: [f64; 12] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0];

/// The history of one runbook as the dashboard and the metrics need it.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The newest run by start, whatever its status.
    pub last: Option<Last>,
    /// When its newest passing drill ended.
    pub last_success: Option<String>,
    /// Whether the newest drill with a verdict passed, keyed by (start, run id).
    last_verdict: Option<(Key, bool)>,
    /// The newest run that left a report: its figures (`None` until its report is read).
    latest_report: Option<Reported>,
    /// The newest passing run that left a report (the backup age it proved).
    passing_report: Option<Reported>,
    /// The newest runs that left a report, oldest first, at most `TREND`.
    trend: Vec<Reported>,
    pub durations: Durations,
}

#[derive(Debug, Clone)]
pub struct Last {
    pub run_id: String,
    pub started_at: String,
    pub status: String,
    pub has_report: bool,
}

/// A run's place in its runbook's history: its start and run id as one text, `start\0id`,
/// which sorts as the pair does. One allocation, shared by the places that keep the same run
/// (the newest report, the newest passing one, the trend): a daemon keeps ~20 per runbook.
type Key = std::sync::Arc<str>;

fn key((start, id): (&str, &str)) -> Key {
    format!("{start}\0{id}").into()
}

/// (start, run id) of a key.
fn parts(key: &Key) -> (&str, &str) {
    key.split_once('\0').unwrap_or((key, ""))
}

#[derive(Debug, Clone)]
struct Reported {
    key: Key,
    /// Its report's folder, kept only while its figures are unknown (to read them once).
    folder: Option<Box<str>>,
    figures: Option<Figures>,
}

impl Summary {
    pub fn last_passed(&self) -> Option<bool> {
        self.last_verdict.as_ref().map(|v| v.1)
    }

    /// The figures of the newest report (absent when that report could not be read).
    pub fn latest(&self) -> Option<Figures> {
        self.latest_report.as_ref().and_then(|r| r.figures)
    }

    /// How old the backup was that the newest passing drill restored (seconds).
    pub fn passing_backup_age(&self) -> Option<f64> {
        self.passing_report.as_ref().and_then(|r| r.figures).and_then(|f| f.rpo_s)
    }

    /// The measured RTOs of the newest reports, oldest first.
    pub fn rto_trend(&self) -> Vec<f64> {
        self.trend.iter().filter_map(|r| r.figures.and_then(|f| f.rto_s)).collect()
    }

    fn fold(&mut self, r: &LedgerRow, count_duration: bool) {
        let at = (r.started_at.as_str(), r.run_id.as_str());
        // The run's key, made once and only if something keeps it.
        let mut made: Option<Key> = None;
        let mut own = || made.get_or_insert_with(|| key(at)).clone();
        if self.last.as_ref().is_none_or(|l| (l.started_at.as_str(), l.run_id.as_str()) <= at) {
            self.last = Some(Last {
                run_id: r.run_id.clone(),
                started_at: r.started_at.clone(),
                status: r.status.clone(),
                has_report: r.report.is_some(),
            });
        }
        if r.status == "passed"
            && let Some(f) = &r.finished_at
            && self.last_success.as_ref().is_none_or(|s| s < f)
        {
            self.last_success = Some(f.clone());
        }
        if (r.status == "passed" || r.status == "failed")
            && self.last_verdict.as_ref().is_none_or(|v| parts(&v.0) <= at)
        {
            self.last_verdict = Some((own(), r.status == "passed"));
        }
        if count_duration && let (Some(a), Some(b)) = (epoch(&r.started_at), r.finished_at.as_deref().and_then(epoch)) {
            self.durations.observe(b - a);
        }
        if let Some(folder) = &r.report {
            // A run read again keeps the figures its report gave the first time (a run recorded
            // before the figures' columns has none in its row).
            let known = self
                .trend
                .iter()
                .chain(&self.latest_report)
                .chain(&self.passing_report)
                .find(|t| parts(&t.key) == at)
                .and_then(|t| t.figures);
            let figures = r.figures.or(known);
            let mut reported =
                || Reported { key: own(), folder: figures.is_none().then(|| folder.as_str().into()), figures };
            if self.latest_report.as_ref().is_none_or(|l| parts(&l.key) <= at) {
                self.latest_report = Some(reported());
            }
            if r.status == "passed" && self.passing_report.as_ref().is_none_or(|l| parts(&l.key) <= at) {
                self.passing_report = Some(reported());
            }
            match self.trend.binary_search_by(|t| parts(&t.key).cmp(&at)) {
                Ok(i) => self.trend[i] = reported(),
                // Older than every run of a full trend: it would leave at once.
                Err(0) if self.trend.len() >= TREND => {}
                Err(i) => {
                    // At most one over `TREND` for a moment: no room kept beyond it.
                    self.trend.reserve_exact(TREND + 1 - self.trend.len().min(TREND + 1));
                    self.trend.insert(i, reported());
                    if self.trend.len() > TREND {
                        self.trend.remove(0);
                    }
                }
            }
        }
    }
}

/// A histogram built from counts the ledger keeps (`prometheus_client`'s own histogram
/// cannot be set, only observed into, per scrape).
#[derive(Debug, Clone)]
pub struct Durations {
    sum: f64,
    count: u64,
    /// Per bucket (not cumulative), the last one `+Inf`.
    buckets: Vec<(f64, u64)>,
}

impl Default for Durations {
    fn default() -> Durations {
        let buckets = DURATION_BUCKETS.iter().chain([f64::INFINITY].iter()).map(|&b| (b, 0)).collect();
        Durations { sum: 0.0, count: 0, buckets }
    }
}

impl Durations {
    fn observe(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        if let Some(b) = self.buckets.iter_mut().find(|(bound, _)| v <= *bound) {
            b.1 += 1;
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

impl TypedMetric for Durations {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Durations {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

pub fn epoch(t: &str) -> Option<f64> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp_millis() as f64 / 1000.0)
}

/// The summaries and where the last look left off.
#[derive(Default)]
pub struct View {
    pub runbooks: HashMap<String, Summary>,
    /// The newest start and finish times seen (RFC 3339, UTC: they sort as text).
    newest_start: String,
    newest_finish: String,
    /// Runs whose duration was counted and that a later look may read again.
    counted: HashMap<String, String>,
    /// Finish time before which a run was certainly read by an earlier look.
    horizon: Option<String>,
    looked: Option<(Instant, u64)>,
}

impl View {
    fn fold(&mut self, r: LedgerRow) {
        if r.started_at > self.newest_start {
            self.newest_start = r.started_at.clone();
        }
        let count = match &r.finished_at {
            Some(f) => {
                if *f > self.newest_finish {
                    self.newest_finish = f.clone();
                }
                let seen = self.horizon.as_ref().is_some_and(|h| f < h) || self.counted.contains_key(&r.run_id);
                if !seen {
                    self.counted.insert(r.run_id.clone(), f.clone());
                    // Only runs a later look may read again need remembering: keep the map to
                    // the overlap (a year of history folded at start would otherwise hold
                    // every run id at once).
                    if self.counted.len() > COUNTED_PRUNE {
                        let horizon = minus_overlap(&self.newest_finish);
                        self.counted.retain(|_, f| *f >= horizon);
                    }
                }
                !seen
            }
            None => false,
        };
        self.runbooks.entry(r.runbook.clone()).or_default().fold(&r, count);
    }

    /// The reports whose figures are not known yet (runs recorded before the figures'
    /// columns): (runbook, folder).
    fn unread(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, s) in &self.runbooks {
            for r in s.latest_report.iter().chain(&s.passing_report).chain(&s.trend) {
                if let (None, Some(folder)) = (r.figures, &r.folder) {
                    out.push((name.clone(), folder.to_string()));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn set_figures(&mut self, runbook: &str, folder: &str, figures: Figures) {
        if let Some(s) = self.runbooks.get_mut(runbook) {
            for r in s.latest_report.iter_mut().chain(s.passing_report.iter_mut()).chain(s.trend.iter_mut()) {
                if r.folder.as_deref() == Some(folder) {
                    r.figures = Some(figures);
                    r.folder = None;
                }
            }
        }
    }
}

fn minus_overlap(t: &str) -> String {
    DateTime::parse_from_rfc3339(t).map(|t| ts(t.to_utc() - OVERLAP)).unwrap_or_default()
}

pub struct Ledger {
    history: std::sync::Arc<History>,
    view: Mutex<View>,
}

impl Ledger {
    pub fn new(history: std::sync::Arc<History>) -> Ledger {
        Ledger { history, view: Mutex::new(View::default()) }
    }

    /// The kept view, brought up to date first when it is behind (see the module's comment).
    pub async fn view(&self) -> anyhow::Result<MutexGuard<'_, View>> {
        let mut view = self.view.lock().await;
        let writes = self.history.writes();
        let behind = match view.looked {
            None => true,
            Some((at, seen)) => seen != writes || at.elapsed() >= FRESH,
        };
        if behind {
            let since = view.looked.map(|_| (minus_overlap(&view.newest_start), minus_overlap(&view.newest_finish)));
            let mut folded = View::default();
            let target: &mut View = if since.is_some() { &mut view } else { &mut folded };
            self.history.fold_runs(since.as_ref().map(|(s, f)| (s.as_str(), f.as_str())), |r| target.fold(r)).await?;
            if since.is_none() {
                *view = folded;
            }
            let horizon = minus_overlap(&view.newest_finish);
            view.counted.retain(|_, f| *f >= horizon);
            if since.is_none() {
                // Sized for the fold's prunes (thousands of runs); the overlap holds a few. The
                // year of rows was parsed and dropped: its memory goes back too.
                view.counted.shrink_to_fit();
                crate::memory::release_freed();
            }
            view.horizon = Some(horizon);
            view.looked = Some((Instant::now(), writes));
            let unread = view.unread();
            if !unread.is_empty() {
                let read = tokio::task::spawn_blocking(move || {
                    unread
                        .into_iter()
                        .map(|(runbook, folder)| {
                            let figures =
                                crate::evidence::report_json(&folder).map(|r| Figures::of_json(&r)).unwrap_or_default();
                            (runbook, folder, figures)
                        })
                        .collect::<Vec<_>>()
                })
                .await?;
                for (runbook, folder, figures) in read {
                    view.set_figures(&runbook, &folder, figures);
                }
            }
        }
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: &str, started: &str, finished: Option<&str>, rto: Option<f64>) -> LedgerRow {
        LedgerRow {
            run_id: id.into(),
            runbook: "rb".into(),
            status: status.into(),
            started_at: started.into(),
            finished_at: finished.map(Into::into),
            report: finished.map(|_| format!("/reports/rb/{id}")),
            figures: finished.map(|_| Figures { rto_s: rto, rpo_s: None, failed_checks: Some(0) }),
        }
    }

    #[test]
    fn a_run_read_again_by_a_later_look_is_counted_once_and_its_new_status_wins() {
        let mut v = View::default();
        v.fold(row("a", "passed", "2026-01-01T00:00:00.000Z", Some("2026-01-01T00:00:10.000Z"), Some(10.0)));
        v.fold(row("b", "running", "2026-01-02T00:00:00.000Z", None, None));
        v.horizon = Some(minus_overlap(&v.newest_finish));
        // The next look reads both again (within the overlap), `b` now failed.
        v.fold(row("a", "passed", "2026-01-01T00:00:00.000Z", Some("2026-01-01T00:00:10.000Z"), Some(10.0)));
        v.fold(row("b", "failed", "2026-01-02T00:00:00.000Z", Some("2026-01-02T00:01:00.000Z"), Some(60.0)));
        let s = &v.runbooks["rb"];
        assert_eq!(s.durations.count(), 2);
        assert_eq!(s.last.as_ref().map(|l| l.status.as_str()), Some("failed"));
        assert_eq!(s.last_passed(), Some(false));
        assert_eq!(s.last_success.as_deref(), Some("2026-01-01T00:00:10.000Z"));
        assert_eq!(s.rto_trend(), vec![10.0, 60.0]);
        assert_eq!(s.latest().and_then(|f| f.rto_s), Some(60.0));
    }

    #[tokio::test]
    async fn the_ledger_reads_old_reports_once_and_other_processes_runs_on_a_later_look() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let ours = std::sync::Arc::new(History::open(&url).await.unwrap());
        let folder = dir.path().join("r1");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(
            folder.join("report.json"),
            r#"{"objectives":{"rto":{"measured_s":4.5}},"backup":{"age_seconds":60},
                "checks":[{"status":"passed"},{"status":"failed"}]}"#,
        )
        .unwrap();
        let t = chrono::Utc::now() - chrono::Duration::hours(1);
        ours.start("r1", "rb", t, None).await.unwrap();
        let figures = Figures::default();
        ours.finish("r1", "failed", t, Some((folder.to_str().unwrap(), "00", figures)), &[]).await.unwrap();
        // As a drillbook from before the figures' columns left the row.
        let raw = sqlx::AnyPool::connect(&crate::history::normalize_url(&url)).await.unwrap();
        sqlx::query("UPDATE runs SET failed_checks = NULL").execute(&raw).await.unwrap();

        let ledger = Ledger::new(ours.clone());
        let latest = ledger.view().await.unwrap().runbooks["rb"].latest();
        let read = Figures { rto_s: Some(4.5), rpo_s: Some(60.0), failed_checks: Some(1) };
        assert_eq!(latest, Some(read), "the old report was read");
        std::fs::remove_file(folder.join("report.json")).unwrap();

        // A drill of another process (a second daemon, `drillbook run`) on the same store.
        let theirs = History::open(&url).await.unwrap();
        let now = chrono::Utc::now();
        theirs.start("r2", "rb", now, None).await.unwrap();
        let figures = Figures { rto_s: Some(2.0), rpo_s: Some(30.0), failed_checks: Some(0) };
        theirs.finish("r2", "passed", now, Some(("/nowhere/r2", "01", figures)), &[]).await.unwrap();
        let view = ledger.view().await.unwrap();
        assert_eq!(view.runbooks["rb"].durations.count(), 1, "within FRESH the kept view is served");
        drop(view);
        tokio::time::sleep(FRESH + Duration::from_millis(100)).await;
        let view = ledger.view().await.unwrap();
        let s = &view.runbooks["rb"];
        assert_eq!(s.durations.count(), 2);
        assert_eq!(s.latest(), Some(figures));
        assert_eq!(s.rto_trend(), vec![4.5, 2.0], "the old report's figures were kept, not read again");
        assert_eq!(s.last_passed(), Some(true));
        assert_eq!(s.passing_backup_age(), Some(30.0));
    }

    #[test]
    fn the_trend_keeps_the_newest_runs_whatever_order_they_are_read_in() {
        let mut v = View::default();
        for i in (0..30).rev() {
            let t = format!("2026-01-{:02}T00:00:00.000Z", i + 1);
            v.fold(row(&format!("r{i:02}"), "passed", &t, Some(&t), Some(f64::from(i))));
        }
        let trend = v.runbooks["rb"].rto_trend();
        assert_eq!(trend, (10..30).map(f64::from).collect::<Vec<_>>());
        assert_eq!(v.runbooks["rb"].durations.count(), 30);
    }
}
