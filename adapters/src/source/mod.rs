//! Backup sources through opendal: any opendal service by configuration alone.
//!
//! The object is read once: it streams in, is hashed on the way, and is unpacked by a
//! second thread at the same time (like `zstd -d | tar x`), so integrity costs no extra pass.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use drillbook_runbooks::{ChecksumMode, PickRule, Source};
use futures_util::StreamExt;
use opendal::{EntryMode, Operator};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::Progress;
use crate::unpack::{self, Limits, UnpackError};

mod restic;
pub use restic::Restic;

/// Bytes per read from the storage: large enough for object stores' ranged GETs to stay
/// efficient, small enough that `READ_CHUNK × (QUEUE_CHUNKS + READ_AHEAD)` keeps memory flat.
const READ_CHUNK: usize = 2 << 20;
const QUEUE_CHUNKS: usize = 4;
/// Reads in flight: the next chunk is read while the last one is hashed (hashing and reading
/// one after the other was the slower half of fetch-and-unpack).
const READ_AHEAD: usize = 2;

/// A named storage profile, ready to read from.
#[derive(Clone)]
pub struct Storage {
    pub name: String,
    op: Operator,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("storage `{name}`: {message}")]
    Config { name: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{what}: {source}")]
    Read {
        what: String,
        #[source]
        source: opendal::Error,
    },
    #[error("{0}")]
    Checksum(String),
    /// A backup tool (restic) failed or could not be started.
    #[error("{0}")]
    Tool(String),
}

/// The backup object a drill restores.
#[derive(Debug, Clone)]
pub struct Located {
    /// Path inside the storage.
    pub path: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    /// `storage:path`, for reports.
    pub location: String,
    /// How it was chosen among several, when it was (`the oldest of 12 recovery points within 30d`).
    pub picked: Option<String>,
    /// The time written in its name (`time_format`), when read: the recovery point's time.
    pub named_time: Option<DateTime<Utc>>,
    /// When it was picked among several by a rule other than the newest: the newest point's time.
    pub newest_time: Option<DateTime<Utc>>,
}

impl Located {
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

impl Storage {
    /// A profile from the config: `type` is the opendal scheme, the other keys its config.
    pub fn from_profile(name: &str, profile: &BTreeMap<String, String>) -> Result<Storage, SourceError> {
        let scheme = profile.get("type").ok_or_else(|| SourceError::Config {
            name: name.into(),
            message: "missing `type` (an opendal scheme such as s3, fs, gcs, azblob)".into(),
        })?;
        let options = profile.iter().filter(|(k, _)| k.as_str() != "type").map(|(k, v)| (k.clone(), v.clone()));
        let op = Operator::via_iter(scheme, options)
            .map_err(|e| SourceError::Config { name: name.into(), message: e.to_string() })?;
        Ok(Storage { name: name.into(), op })
    }

    /// The default `local` profile: the file system, paths relative to the runbook's folder.
    pub fn local() -> Result<Storage, SourceError> {
        let profile = BTreeMap::from([("type".to_string(), "fs".to_string()), ("root".to_string(), "/".to_string())]);
        Storage::from_profile("local", &profile)
    }

    /// The path of `source.path` inside this storage; `local` resolves it against `base`.
    pub fn resolve(&self, source_path: &str, base: &Path) -> String {
        if self.name == "local" {
            // `..` is resolved here, lexically: the storage layer does not follow it.
            let mut abs = std::path::PathBuf::new();
            for c in base.join(source_path).components() {
                match c {
                    std::path::Component::ParentDir => {
                        abs.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => abs.push(other),
                }
            }
            let mut s = abs.to_string_lossy().trim_start_matches('/').to_string();
            if source_path.ends_with('/') && !s.ends_with('/') {
                s.push('/');
            }
            s
        } else {
            source_path.trim_start_matches('/').to_string()
        }
    }

    fn location(&self, path: &str) -> String {
        if self.name == "local" { format!("local:/{path}") } else { format!("{}:{path}", self.name) }
    }

    /// Finds the recovery point `source.pick` names under `path`: one object by name, or one of
    /// the objects matching `match` (checksum files left out), by the time in its name
    /// (`time_format`) or its modification time. `now` bounds `within`; `seed` makes `random`
    /// repeatable (the runner derives it from the run id). `Located::picked` says how it was chosen.
    pub async fn locate(
        &self,
        source: &Source,
        path: &str,
        now: DateTime<Utc>,
        seed: u64,
    ) -> Result<Located, SourceError> {
        let rule = source.pick.rule();
        let dir = if path.ends_with('/') || path.is_empty() { path.to_string() } else { format!("{path}/") };
        if let PickRule::Exact(name) = rule {
            return self.stat(&format!("{dir}{name}")).await;
        }
        if rule == PickRule::Latest && !path.ends_with('/') && !path.is_empty() {
            // A path to one object: `latest` of one.
            if let Ok(found) = self.stat(path).await {
                return Ok(found);
            }
        }
        let glob = match &source.pattern {
            Some(g) => Some(
                globset::Glob::new(&g.get().0)
                    .map_err(|e| SourceError::NotFound(format!("bad `match` glob: {e}")))?
                    .compile_matcher(),
            ),
            None => None,
        };
        let entries = self.op.list(&dir).await.map_err(|e| match e.kind() {
            opendal::ErrorKind::NotFound => {
                SourceError::NotFound(format!("backup folder {} does not exist", self.location(&dir)))
            }
            _ => SourceError::Read { what: format!("cannot list {}", self.location(&dir)), source: e },
        })?;
        let mut listed = 0usize;
        let mut untimed = 0usize;
        let mut points = Vec::new();
        for entry in entries {
            if entry.metadata().mode() != EntryMode::FILE {
                continue;
            }
            let name = entry.name().to_string();
            listed += 1;
            let wanted = match &glob {
                Some(g) => g.is_match(&name),
                None => !is_checksum_file(&name),
            };
            if !wanted {
                continue;
            }
            let found = self.stat(entry.path()).await?;
            let time = match &source.time_format {
                Some(f) => time_in_name(&name, f),
                // A store that gives no modification time: the oldest possible, as before.
                None => Some(found.modified.unwrap_or(DateTime::<Utc>::MIN_UTC)),
            };
            match time {
                Some(t) => points.push((t, found)),
                None => untimed += 1,
            }
        }
        if points.is_empty()
            && listed == 0
            && let Err(e) = self.op.stat(&dir).await
            && e.kind() == opendal::ErrorKind::NotFound
        {
            return Err(SourceError::NotFound(format!("backup folder {} does not exist", self.location(&dir))));
        }
        let within = source.within.as_ref().map(|w| (w.raw().to_string(), w.get().0));
        let choice = choose(points.iter().map(|(t, f)| (*t, f.name())).collect(), rule, within, now, seed);
        match choice {
            Ok((i, picked)) => {
                let newest = points.iter().map(|(t, _)| *t).max();
                let (time, mut found) = points.swap_remove(i);
                if rule != PickRule::Latest {
                    found.newest_time = newest;
                }
                found.picked = picked;
                found.named_time = source.time_format.as_ref().map(|_| time);
                Ok(found)
            }
            Err(why) => {
                let pattern = source.pattern.as_ref().map(|g| format!(" matching `{}`", g.raw())).unwrap_or_default();
                let untimed = match (&source.time_format, untimed) {
                    (Some(f), n) if n > 0 => format!(", {n} without a `{f}` time in their name"),
                    _ => String::new(),
                };
                Err(SourceError::NotFound(format!(
                    "{why} under {}{pattern} ({listed} objects listed{untimed})",
                    self.location(&dir)
                )))
            }
        }
    }

    async fn stat(&self, path: &str) -> Result<Located, SourceError> {
        let meta = self.op.stat(path).await.map_err(|e| match e.kind() {
            opendal::ErrorKind::NotFound => {
                SourceError::NotFound(format!("backup {} does not exist", self.location(path)))
            }
            _ => SourceError::Read { what: format!("cannot stat {}", self.location(path)), source: e },
        })?;
        if !meta.is_file() {
            return Err(SourceError::NotFound(format!("{} is not an object", self.location(path))));
        }
        let modified = meta.last_modified().and_then(|t| {
            let t = t.into_inner();
            DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
        });
        Ok(Located {
            path: path.to_string(),
            size: meta.content_length(),
            modified,
            location: self.location(path),
            picked: None,
            named_time: None,
            newest_time: None,
        })
    }

    /// The digest the source claims for the object, by `checksum` mode.
    pub async fn expected_sha256(&self, object: &Located, mode: ChecksumMode) -> Result<Option<String>, SourceError> {
        // A sidecar is `<object>.sha256` (sha256sum's format), or `<object>.checksum` (the hex
        // SHA-256 alone, as Qdrant writes beside a snapshot) when there is no `.sha256`.
        let (candidates, wanted_name) = match mode {
            ChecksumMode::None => return Ok(None),
            ChecksumMode::Sidecar => {
                (vec![format!("{}.sha256", object.path), format!("{}.checksum", object.path)], None)
            }
            ChecksumMode::Manifest => {
                let dir = object.path.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default();
                (vec![format!("{dir}SHA256SUMS")], Some(object.name().to_string()))
            }
        };
        let mut found = None;
        for file in &candidates {
            match self.op.read(file).await {
                Ok(bytes) => {
                    found = Some((file.clone(), bytes));
                    break;
                }
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(SourceError::Read { what: format!("cannot read {}", self.location(file)), source: e });
                }
            }
        }
        let Some((file, bytes)) = found else {
            let also = match candidates.get(1) {
                Some(other) => format!(" (nor {})", self.location(other)),
                None => String::new(),
            };
            return Err(SourceError::Checksum(format!(
                "checksum file {} is missing{also}",
                self.location(&candidates[0])
            )));
        };
        let text = String::from_utf8_lossy(&bytes.to_vec()).into_owned();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(hash), name) = (parts.next(), parts.next()) else {
                continue;
            };
            let name = name.map(|n| n.trim_start_matches('*'));
            let name_ok = match &wanted_name {
                None => true,
                Some(w) => name.is_some_and(|n| n == w || n.rsplit('/').next() == Some(w.as_str())),
            };
            if name_ok {
                if hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Ok(Some(hash.to_lowercase()));
                }
                return Err(SourceError::Checksum(format!(
                    "{} does not hold a SHA-256 (`{hash}`)",
                    self.location(&file)
                )));
            }
        }
        Err(SourceError::Checksum(match wanted_name {
            Some(n) => format!("{} has no line for `{n}`", self.location(&file)),
            None => format!("{} is empty", self.location(&file)),
        }))
    }

    /// Streams the object in, hashing it, while a second thread unpacks it into `dest`.
    pub async fn fetch_and_unpack(
        &self,
        object: &Located,
        dest: &Path,
        max_ratio: u64,
        decryption: Option<unpack::Decryption>,
        progress: Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Fetched {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        // A small bounded queue keeps memory flat whatever the backup's size.
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes_chunk::Chunk>(QUEUE_CHUNKS);
        let limits = Limits { compressed_size: object.size, max_ratio };
        let (name, dest_owned, stop_unpack) = (object.name().to_string(), dest.to_path_buf(), stop.clone());
        let unpacker = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let r = unpack::unpack(
                bytes_chunk::ChannelReader::new(rx),
                &name,
                &dest_owned,
                &limits,
                decryption.as_ref(),
                stop_unpack,
            );
            (r, t.elapsed())
        });

        progress.start("fetch", Some(object.size));
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        let mut error = None;
        let mut tx = Some(tx);
        let mut complete = false;
        // Explicit chunks bound what is in flight (chunk × queue) whatever the service's default.
        match self.op.reader_with(&object.path).chunk(READ_CHUNK).concurrent(READ_AHEAD).await {
            Err(e) => error = Some(format!("cannot open {}: {e}", object.location)),
            Ok(reader) => match reader.into_bytes_stream(..).await {
                Err(e) => error = Some(format!("cannot read {}: {e}", object.location)),
                Ok(mut stream) => loop {
                    let next = tokio::select! {
                        n = stream.next() => n,
                        _ = cancel.cancelled() => { error = Some("cancelled".into()); break; }
                    };
                    match next {
                        None => {
                            complete = true;
                            break;
                        }
                        Some(Err(e)) => {
                            error = Some(format!("reading {} failed after {read} bytes: {e}", object.location));
                            break;
                        }
                        Some(Ok(chunk)) => {
                            hasher.update(&chunk);
                            read += chunk.len() as u64;
                            progress.advance(chunk.len() as u64);
                            // When the unpacker has stopped (an error), keep reading so the
                            // digest is complete: a checksum mismatch is the better reason.
                            if let Some(sender) = &tx
                                && sender.send(chunk).await.is_err()
                            {
                                tx = None;
                            }
                        }
                    }
                },
            },
        }
        drop(tx);
        let fetch_ms = started.elapsed().as_millis() as u64;
        progress.finish();
        if !complete {
            stop.store(true, Ordering::Relaxed);
        }
        let (unpacked, unpack_elapsed) = match unpacker.await {
            Ok((r, d)) => (r, d),
            Err(e) => (
                Err(UnpackError::Write {
                    path: dest.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                }),
                started.elapsed(),
            ),
        };
        Fetched {
            sha256: complete.then(|| hex::encode(hasher.finalize())),
            bytes_read: read,
            fetch_ms,
            fetch_error: error,
            unpacked,
            unpack_ms: unpack_elapsed.as_millis() as u64,
        }
    }
}

/// What one pass over the object produced.
pub struct Fetched {
    /// SHA-256 of the object as read; `None` when the read did not complete.
    pub sha256: Option<String>,
    pub bytes_read: u64,
    pub fetch_ms: u64,
    pub fetch_error: Option<String>,
    pub unpacked: Result<crate::Unpacked, UnpackError>,
    pub unpack_ms: u64,
}

/// The time written in an object's name in chrono format `format` (UTC unless the format has
/// an offset), wherever it stands: `rag-2026-11-29.tar.zst` with `%Y-%m-%d`.
pub fn time_in_name(name: &str, format: &str) -> Option<DateTime<Utc>> {
    use chrono::{NaiveDate, NaiveDateTime};
    // Starting on a letter or digit: `%Y` would read `-2026` (the dash before it) as a year.
    name.char_indices()
        .map(|(i, _)| &name[i..])
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_alphanumeric()))
        .find_map(|rest| {
            DateTime::parse_and_remainder(rest, format)
                .map(|(t, _)| t.with_timezone(&Utc))
                .ok()
                .or_else(|| NaiveDateTime::parse_and_remainder(rest, format).ok().map(|(t, _)| t.and_utc()))
                .or_else(|| {
                    NaiveDate::parse_and_remainder(rest, format)
                        .ok()
                        .and_then(|(d, _)| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc())
                })
        })
}

/// Which recovery point `rule` picks among `points` (time, name): its index and, when it chose
/// among several by a rule other than the newest, how (for the report). Ties go to the greater
/// name. `within` is the runbook's window (as written, and its length).
pub fn choose(
    points: Vec<(DateTime<Utc>, &str)>,
    rule: PickRule<'_>,
    within: Option<(String, std::time::Duration)>,
    now: DateTime<Utc>,
    seed: u64,
) -> Result<(usize, Option<String>), String> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|a, b| (points[*a].0, points[*a].1).cmp(&(points[*b].0, points[*b].1)));
    let end = match rule {
        PickRule::At(at) => {
            DateTime::parse_from_rfc3339(at).map_err(|e| format!("`pick: {{at: {at}}}`: {e}"))?.with_timezone(&Utc)
        }
        _ => now,
    };
    let start = within.as_ref().map(|(_, d)| end - chrono::Duration::from_std(*d).unwrap_or(chrono::TimeDelta::MAX));
    let window: Vec<usize> = order
        .into_iter()
        .filter(|i| match rule {
            PickRule::Latest => true,
            _ => points[*i].0 <= end && start.is_none_or(|s| points[*i].0 >= s),
        })
        .collect();
    let span = match (&within, rule) {
        (Some((w, _)), PickRule::At(at)) => format!(" in the {w} before {at}"),
        (None, PickRule::At(at)) => format!(" at or before {at}"),
        (Some((w, _)), _) => format!(" within {w}"),
        (None, _) => String::new(),
    };
    let n = window.len();
    let pick = match rule {
        PickRule::Latest | PickRule::At(_) => window.last().copied(),
        PickRule::Oldest => window.first().copied(),
        PickRule::Random => (n > 0).then(|| window[(seed % n as u64) as usize]),
        PickRule::Exact(_) => None,
    };
    let Some(i) = pick else {
        return Err(match rule {
            PickRule::Latest => "no backup".to_string(),
            _ => format!("no recovery point{span}"),
        });
    };
    let picked = match rule {
        PickRule::Latest => None,
        PickRule::Oldest => Some(format!("the oldest of {n} recovery points{span}")),
        PickRule::At(_) => Some(format!("the newest of {n} recovery points{span}")),
        PickRule::Random => {
            let rank = window.iter().position(|w| *w == i).unwrap_or(0) + 1;
            Some(format!(
                "at random (seed {seed:016x}, from the run id): number {rank} by time of {n} recovery points{span}"
            ))
        }
        PickRule::Exact(_) => None,
    };
    Ok((i, picked))
}

#[cfg(test)]
mod pick_tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn times_are_read_from_names_wherever_they_stand() {
        assert_eq!(time_in_name("rag-2026-11-29.tar.zst", "%Y-%m-%d"), Some(t("2026-11-29T00:00:00Z")));
        assert_eq!(time_in_name("db_20261120T030000Z.dump", "%Y%m%dT%H%M%SZ"), Some(t("2026-11-20T03:00:00Z")));
        assert_eq!(
            time_in_name("snap-2026-11-20T04:00:00+01:00.tar", "%Y-%m-%dT%H:%M:%S%:z"),
            Some(t("2026-11-20T03:00:00Z"))
        );
        assert_eq!(time_in_name("rag-latest.tar.zst", "%Y-%m-%d"), None);
    }

    #[test]
    fn each_rule_picks_its_point_and_says_how() {
        let now = t("2026-11-30T12:00:00Z");
        let points = || {
            vec![
                (t("2026-11-29T03:00:00Z"), "d"),
                (t("2026-10-01T03:00:00Z"), "a"),
                (t("2026-11-20T03:00:00Z"), "c"),
                (t("2026-11-10T03:00:00Z"), "b"),
            ]
        };
        let w = |s: &str, days: u64| Some((s.to_string(), std::time::Duration::from_secs(days * 86400)));
        let name = |r: Result<(usize, Option<String>), String>| r.map(|(i, _)| points()[i].1);
        assert_eq!(name(choose(points(), PickRule::Latest, None, now, 0)), Ok("d"));
        assert_eq!(name(choose(points(), PickRule::Oldest, None, now, 0)), Ok("a"));
        assert_eq!(name(choose(points(), PickRule::Oldest, w("30d", 30), now, 0)), Ok("b"));
        assert_eq!(name(choose(points(), PickRule::At("2026-11-21T00:00:00Z"), None, now, 0)), Ok("c"));
        assert_eq!(name(choose(points(), PickRule::At("2026-11-20T03:00:00Z"), None, now, 0)), Ok("c"), "at or before");
        let e = choose(points(), PickRule::At("2026-11-21T00:00:00Z"), w("12h", 0), now, 0).unwrap_err();
        assert_eq!(e, "no recovery point in the 12h before 2026-11-21T00:00:00Z");
        let e = choose(points(), PickRule::At("2026-09-01T00:00:00Z"), None, now, 0).unwrap_err();
        assert!(e.contains("at or before 2026-09-01"), "{e}");
        // Random: the same seed, the same point; every point reachable; within applies.
        let seen: std::collections::BTreeSet<_> =
            (0..8).map(|seed| name(choose(points(), PickRule::Random, w("30d", 30), now, seed)).unwrap()).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["b", "c", "d"]);
        assert_eq!(choose(points(), PickRule::Random, None, now, 7), choose(points(), PickRule::Random, None, now, 7));
        let (_, how) = choose(points(), PickRule::Random, w("30d", 30), now, 4).unwrap();
        assert!(
            how.unwrap()
                .contains("seed 0000000000000004, from the run id): number 2 by time of 3 recovery points within 30d")
        );
    }
}

fn is_checksum_file(name: &str) -> bool {
    name.ends_with(".sha256") || name.ends_with(".checksum") || name == "SHA256SUMS" || name.ends_with(".md5")
}

mod bytes_chunk {
    use std::io::{self, Read};

    pub type Chunk = bytes::Bytes;

    /// Blocking `Read` over the chunks the async side sends.
    pub struct ChannelReader {
        rx: tokio::sync::mpsc::Receiver<Chunk>,
        current: Chunk,
        offset: usize,
    }

    impl ChannelReader {
        pub fn new(rx: tokio::sync::mpsc::Receiver<Chunk>) -> Self {
            ChannelReader { rx, current: bytes::Bytes::new(), offset: 0 }
        }
    }

    impl Read for ChannelReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            while self.offset >= self.current.len() {
                match self.rx.blocking_recv() {
                    Some(c) => {
                        self.current = c;
                        self.offset = 0;
                    }
                    None => return Ok(0),
                }
            }
            let n = buf.len().min(self.current.len() - self.offset);
            buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
            self.offset += n;
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn local_paths_resolve_against_the_runbook_folder_including_parent_steps() {
        let s = super::Storage::local().expect("local storage");
        assert_eq!(s.resolve("../backups/", Path::new("/srv/drills/runbooks")), "srv/drills/backups/");
        assert_eq!(s.resolve("./b/x.tar", Path::new("/srv")), "srv/b/x.tar");
        assert_eq!(s.resolve("/abs/x.tar", Path::new("/srv")), "abs/x.tar");
    }
}
