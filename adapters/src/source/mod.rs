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
use drillbook_runbooks::{ChecksumMode, Source};
use futures_util::StreamExt;
use opendal::{EntryMode, Operator};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::Progress;
use crate::unpack::{self, Limits, UnpackError};

/// Bytes per read from the storage: large enough for object stores' ranged GETs to stay
/// efficient, small enough that `READ_CHUNK × QUEUE_CHUNKS` keeps memory flat.
const READ_CHUNK: usize = 2 << 20;
const QUEUE_CHUNKS: usize = 4;

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

    /// Finds the object: `pick: latest` (newest matching `match`, ties: greatest name) or a name.
    pub async fn locate(&self, source: &Source, path: &str) -> Result<Located, SourceError> {
        if source.pick != "latest" {
            let dir = if path.ends_with('/') || path.is_empty() { path.to_string() } else { format!("{path}/") };
            let object = format!("{dir}{}", source.pick);
            return self.stat(&object).await;
        }
        if !path.ends_with('/') && !path.is_empty() {
            // A path to one object: `latest` of one.
            if let Ok(found) = self.stat(path).await {
                return Ok(found);
            }
        }
        let dir = if path.ends_with('/') || path.is_empty() { path.to_string() } else { format!("{path}/") };
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
        let mut best: Option<Located> = None;
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
            let newer = match &best {
                None => true,
                Some(b) => (found.modified, found.name()) > (b.modified, b.name()),
            };
            if newer {
                best = Some(found);
            }
        }
        if best.is_none()
            && listed == 0
            && let Err(e) = self.op.stat(&dir).await
            && e.kind() == opendal::ErrorKind::NotFound
        {
            return Err(SourceError::NotFound(format!("backup folder {} does not exist", self.location(&dir))));
        }
        best.ok_or_else(|| {
            let pattern = source.pattern.as_ref().map(|g| format!(" matching `{}`", g.raw())).unwrap_or_default();
            SourceError::NotFound(format!("no backup under {}{pattern} ({listed} objects listed)", self.location(&dir)))
        })
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
        Ok(Located { path: path.to_string(), size: meta.content_length(), modified, location: self.location(path) })
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
        match self.op.reader_with(&object.path).chunk(READ_CHUNK).await {
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
