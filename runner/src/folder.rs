//! The daemon's runbooks folder, watched: a changed runbook file reloads like SIGHUP.
//!
//! The kernel says when something under the folder changed (inotify, through the `notify`
//! crate), so an idle daemon does no work for it; the old way, a `stat` of every runbook file
//! every 2 s, was most of an idle daemon's CPU at 1,000 runbooks. An event is only a hint: what
//! decides a reload is the same comparison as before (names, sizes and modification times of
//! the runbook files), made once the events have settled. Where the kernel cannot tell (the
//! folder is missing, it was replaced, the inotify watch limit is reached), the folder is looked
//! at every 2 s until a watch can be set again; with a watch it is still looked at every 30 s,
//! for what inotify never reports (a network file system changed by another host).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ::notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// How often the folder is looked at without a watch, and with one.
const POLL: Duration = Duration::from_secs(2);
const SAFETY_POLL: Duration = Duration::from_secs(30);
/// Events of one edit (an editor's write, rename and chmod) are taken together.
const SETTLE: Duration = Duration::from_millis(100);

/// Names, sizes and modification times of the runbook files: a change means a reload.
type State = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub struct FolderWatch {
    root: PathBuf,
    /// The watch and the folder (device, inode) it was set on; `None` while polling.
    watch: Option<(::notify::RecommendedWatcher, (u64, u64))>,
    hints: mpsc::UnboundedReceiver<()>,
    hint_tx: mpsc::UnboundedSender<()>,
    poll: tokio::time::Interval,
    seen: State,
}

impl FolderWatch {
    /// Watches `root` from now on; its current runbooks count as seen.
    pub fn new(root: &Path) -> Self {
        let (hint_tx, hints) = mpsc::unbounded_channel();
        let mut w =
            FolderWatch { root: root.to_path_buf(), watch: None, hints, hint_tx, poll: every(POLL), seen: state(root) };
        w.arm();
        w
    }

    /// Whether the kernel tells this watch about changes (false: it polls every 2 s).
    #[cfg(test)]
    pub fn is_watching(&self) -> bool {
        self.watch.is_some()
    }

    /// Waits for a hint that the folder may have changed: an event, or the poll's time.
    /// Cancel-safe, so it can be one branch of the daemon's `select!`.
    pub async fn hint(&mut self) {
        tokio::select! {
            Some(()) = self.hints.recv() => {}
            _ = self.poll.tick() => {}
        }
    }

    /// After a hint: whether the runbook files differ from what was seen last (then they count
    /// as seen). A watch lost with its folder is set again here once the folder is back.
    pub async fn changed(&mut self) -> bool {
        tokio::time::sleep(SETTLE).await;
        while self.hints.try_recv().is_ok() {}
        let root = self.root.clone();
        let (now, id) = tokio::task::spawn_blocking(move || (state(&root), folder_id(&root))).await.unwrap_or_default();
        if self.watch.as_ref().map(|(_, at)| Some(*at)) != Some(id) {
            self.arm();
        }
        if now == self.seen {
            return false;
        }
        self.seen = now;
        true
    }

    /// What is on disk now was loaded by other means (SIGHUP): it counts as seen.
    pub async fn rescan(&mut self) {
        let root = self.root.clone();
        self.seen = tokio::task::spawn_blocking(move || state(&root)).await.unwrap_or_default();
    }

    /// Sets the watch on the folder as it is now, or falls back to polling.
    fn arm(&mut self) {
        self.watch = folder_id(&self.root).and_then(|id| {
            let tx = self.hint_tx.clone();
            let mut watcher = ::notify::recommended_watcher(move |event: ::notify::Result<::notify::Event>| {
                // Reads (the daemon's own reload opens every file) are not changes.
                if !matches!(event, Ok(ref e) if matches!(e.kind, EventKind::Access(_))) {
                    let _ = tx.send(());
                }
            })
            .ok()?;
            match watcher.watch(&self.root, RecursiveMode::Recursive) {
                Ok(()) => Some((watcher, id)),
                Err(e) => {
                    tracing::warn!(folder = %self.root.display(), error = %e, "cannot watch the runbooks folder; looking at it every 2 s");
                    None
                }
            }
        });
        let period = if self.watch.is_some() { SAFETY_POLL } else { POLL };
        if self.poll.period() != period {
            self.poll = every(period);
        }
    }
}

/// Ticks every `period`, the first one a period from now.
fn every(period: Duration) -> tokio::time::Interval {
    let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll
}

/// The folder's device and inode: a folder replaced by another (a rename over it, a
/// Kubernetes volume swapped) is a different folder, and the watch on the old one is stale.
fn folder_id(root: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(root).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

fn state(root: &Path) -> State {
    let mut out: State = crate::plan::expand(&[], root)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let (len, modified) = (m.as_ref().map(|m| m.len()).unwrap_or(0), m.and_then(|m| m.modified().ok()));
            (p, len, modified)
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within a bound, so a broken watch fails the test instead of hanging it.
    async fn changed_within(w: &mut FolderWatch, bound: Duration) -> bool {
        tokio::time::timeout(bound, async {
            loop {
                w.hint().await;
                if w.changed().await {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn an_edit_is_seen_by_its_event_long_before_the_safety_poll() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "version: 1\n").unwrap();
        let mut w = FolderWatch::new(dir.path());
        assert!(w.is_watching());
        std::fs::create_dir(dir.path().join("team")).unwrap();
        // A runbook in a folder made after the watch was set is seen too (the watch is recursive).
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(dir.path().join("team/b.yaml"), "version: 1\n").unwrap();
        assert!(changed_within(&mut w, Duration::from_secs(5)).await, "a new runbook was not seen");
        std::fs::write(dir.path().join("a.yaml"), "version: 1\nname: a\n").unwrap();
        assert!(changed_within(&mut w, Duration::from_secs(5)).await, "an edited runbook was not seen");
        // A file that is not a runbook changes nothing.
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert!(!changed_within(&mut w, Duration::from_secs(1)).await, "a non-runbook file counted as a change");
    }

    #[tokio::test]
    async fn a_missing_folder_is_polled_and_watched_once_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("runbooks");
        let mut w = FolderWatch::new(&root);
        assert!(!w.is_watching());
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.yaml"), "version: 1\n").unwrap();
        assert!(changed_within(&mut w, Duration::from_secs(5)).await, "the new folder's runbook was not seen");
        assert!(w.is_watching(), "the watch was not set once the folder existed");
        // The folder replaced by another (renamed over it): the watch moves to the new one.
        let next = dir.path().join("next");
        std::fs::create_dir(&next).unwrap();
        std::fs::write(next.join("b.yaml"), "version: 1\n").unwrap();
        std::fs::remove_file(root.join("a.yaml")).unwrap();
        std::fs::remove_dir(&root).unwrap();
        std::fs::rename(&next, &root).unwrap();
        assert!(changed_within(&mut w, Duration::from_secs(5)).await, "the replaced folder was not seen");
        std::fs::write(root.join("c.yaml"), "version: 1\n").unwrap();
        assert!(changed_within(&mut w, Duration::from_secs(5)).await, "a runbook in the replaced folder was not seen");
        assert!(w.is_watching());
    }
}
