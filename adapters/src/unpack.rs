//! Streaming unpack: gzip, zstd, tar and their combinations, detected by magic bytes.
//!
//! Refused, each with the exact reason: entries escaping the destination (`..`, absolute
//! paths, symlinks or hard links pointing out), device files and FIFOs, and expansion beyond
//! a limit (default 50× the compressed size).

use std::io::{self, Read};
use std::path::{Component, Path};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Unpacked;

/// Default expansion limit, as a multiple of the compressed size.
pub const DEFAULT_MAX_RATIO: u64 = 50;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Size of the object as stored; the expansion limit is a multiple of it.
    pub compressed_size: u64,
    pub max_ratio: u64,
}

impl Limits {
    fn max_bytes(&self) -> u64 {
        // A floor, so that a tiny archive of a few empty files is not refused.
        self.compressed_size.saturating_mul(self.max_ratio).max(1 << 20)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("tar entry `{entry}` {why}; refused")]
    Unsafe { entry: String, why: String },
    #[error(
        "expansion beyond the limit: more than {limit} bytes from a {compressed}-byte backup ({ratio}× its size); refused"
    )]
    TooLarge { limit: u64, compressed: u64, ratio: u64 },
    #[error("corrupt or truncated {layer} data after {offset} bytes: {source}")]
    Corrupt {
        layer: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cancelled")]
    Cancelled,
}

/// Unpacks `input` (the raw object bytes) into `dest`, which must exist and be empty.
/// `name` is the object's name, used for a single-file backup.
pub fn unpack(
    input: impl Read + Send + 'static,
    name: &str,
    dest: &Path,
    limits: &Limits,
    cancel: Arc<AtomicBool>,
) -> Result<Unpacked, UnpackError> {
    let mut layers: Vec<&'static str> = Vec::new();
    let mut name = name.rsplit('/').next().unwrap_or(name).to_string();
    let mut reader: Box<dyn Read + Send> = Box::new(Counting::new(input, cancel.clone(), None, "raw"));
    // Up to three compression layers (tar.gz.zst would be odd, but harmless).
    for _ in 0..3 {
        let current = layers.last().copied().unwrap_or("raw");
        let (head, rest) = peek(reader, 4).map_err(|e| classify(e, current, 0, limits))?;
        reader = rest;
        let layer = match head.as_slice() {
            [0x1f, 0x8b, ..] => "gzip",
            [0x28, 0xb5, 0x2f, 0xfd] => "zstd",
            _ => break,
        };
        layers.push(layer);
        for ext in [".gz", ".tgz", ".zst", ".zstd"] {
            if let Some(stem) = name.strip_suffix(ext) {
                name = if ext == ".tgz" { format!("{stem}.tar") } else { stem.to_string() };
            }
        }
        let decoded: Box<dyn Read + Send> = match layer {
            "gzip" => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            _ => Box::new(zstd::stream::read::Decoder::new(reader).map_err(|source| UnpackError::Corrupt {
                layer: "zstd",
                offset: 0,
                source,
            })?),
        };
        let limit = Some(limits.max_bytes());
        reader = Box::new(Counting::new(decoded, cancel.clone(), limit, layer));
    }
    let outer = layers.last().copied().unwrap_or("raw");
    let (head, rest) = peek(reader, 512).map_err(|e| classify(e, outer, 0, limits))?;
    let is_tar = head.len() >= 262 && &head[257..262] == b"ustar";
    let mut format = layers.join("+");
    if is_tar {
        if !format.is_empty() {
            format.push('+');
        }
        format.push_str("tar");
        let (files, bytes) = untar(rest, dest, outer, limits)?;
        Ok(Unpacked { root: dest.to_path_buf(), single_file: None, format, files, bytes })
    } else {
        if format.is_empty() {
            format.push_str("raw");
        }
        let safe = if name.is_empty() || name == "." || name == ".." { "backup".to_string() } else { name };
        let path = dest.join(&safe);
        let mut out = std::fs::File::create(&path)
            .map_err(|source| UnpackError::Write { path: path.display().to_string(), source })?;
        let mut rest = rest;
        let bytes = io::copy(&mut rest, &mut out).map_err(|e| classify(e, outer, 0, limits))?;
        Ok(Unpacked { root: dest.to_path_buf(), single_file: Some(path), format, files: 1, bytes })
    }
}

fn untar(
    input: Box<dyn Read + Send>,
    dest: &Path,
    layer: &'static str,
    limits: &Limits,
) -> Result<(u64, u64), UnpackError> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let (mut files, mut bytes) = (0u64, 0u64);
    let entries = archive.entries().map_err(|e| classify(e, layer, bytes, limits))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| classify(e, layer, bytes, limits))?;
        let path = entry.path().map_err(|e| classify(e, layer, bytes, limits))?.into_owned();
        let shown = path.display().to_string();
        let unsafe_ = |why: &str| UnpackError::Unsafe { entry: shown.clone(), why: why.to_string() };
        if !is_relative_inside(&path) {
            return Err(unsafe_("escapes the scratch dir (absolute path or `..`)"));
        }
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse | T::Directory => {}
            T::Symlink => {
                let target =
                    entry.link_name().map_err(|e| classify(e, layer, bytes, limits))?.unwrap_or_default().into_owned();
                let parent = path.parent().unwrap_or(Path::new(""));
                if target.is_absolute() || !is_relative_inside(&parent.join(&target)) {
                    return Err(unsafe_(&format!(
                        "is a symlink pointing out of the scratch dir (to `{}`)",
                        target.display()
                    )));
                }
            }
            T::Link => {
                let target =
                    entry.link_name().map_err(|e| classify(e, layer, bytes, limits))?.unwrap_or_default().into_owned();
                if !is_relative_inside(&target) {
                    return Err(unsafe_(&format!(
                        "is a hard link pointing out of the scratch dir (to `{}`)",
                        target.display()
                    )));
                }
            }
            T::Char | T::Block => return Err(unsafe_("is a device file")),
            T::Fifo => return Err(unsafe_("is a FIFO")),
            // Metadata entries (pax headers, GNU long names) are handled by the tar crate.
            T::XHeader | T::XGlobalHeader | T::GNULongName | T::GNULongLink => continue,
            other => return Err(unsafe_(&format!("has an unsupported type {other:?}"))),
        }
        let size = entry.header().size().unwrap_or(0);
        let written = entry.unpack_in(dest).map_err(|e| classify(e, layer, bytes, limits))?;
        if !written {
            return Err(unsafe_("would be written outside the scratch dir through a link"));
        }
        if kind != T::Directory {
            files += 1;
        }
        bytes += size;
    }
    // Read to the end: the decoders verify their trailers (gzip CRC, zstd checksum) only
    // there, and the tar reader stops at the end-of-archive marker before them.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| classify(e, layer, bytes, limits))?;
    Ok((files, bytes))
}

/// True for a relative path that stays inside its root when resolved lexically.
fn is_relative_inside(p: &Path) -> bool {
    let mut depth: i64 = 0;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Turns an I/O error from the decoding stack back into the precise reason.
fn classify(e: io::Error, layer: &'static str, offset: u64, limits: &Limits) -> UnpackError {
    if let Some(inner) = find_refusal(&e) {
        return match inner {
            Refusal::TooLarge => UnpackError::TooLarge {
                limit: limits.max_bytes(),
                compressed: limits.compressed_size,
                ratio: limits.max_ratio,
            },
            Refusal::Cancelled => UnpackError::Cancelled,
            Refusal::Corrupt { layer, at, cause } => {
                UnpackError::Corrupt { layer, offset: *at, source: io::Error::other(cause.clone()) }
            }
        };
    }
    UnpackError::Corrupt { layer, offset, source: e }
}

/// The tar crate wraps reader errors in its own; look through the whole chain.
fn find_refusal(e: &io::Error) -> Option<&Refusal> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|i| i as _);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refusal>() {
            return Some(r);
        }
        if let Some(io) = err.downcast_ref::<io::Error>()
            && let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<Refusal>())
        {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

/// Why a [`Counting`] reader stopped the stream.
#[derive(Debug)]
enum Refusal {
    TooLarge,
    Cancelled,
    Corrupt { layer: &'static str, at: u64, cause: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooLarge => f.write_str("expansion limit exceeded"),
            Refusal::Cancelled => f.write_str("cancelled"),
            Refusal::Corrupt { cause, .. } => f.write_str(cause),
        }
    }
}
impl std::error::Error for Refusal {}

/// Counts bytes, enforces the expansion limit, notices cancellation, and names the layer
/// whose decoder failed.
struct Counting<R> {
    inner: R,
    cancel: Arc<AtomicBool>,
    limit: Option<u64>,
    layer: &'static str,
    count: u64,
}

impl<R> Counting<R> {
    fn new(inner: R, cancel: Arc<AtomicBool>, limit: Option<u64>, layer: &'static str) -> Self {
        Counting { inner, cancel, limit, layer, count: 0 }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other(Refusal::Cancelled));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if find_refusal(&e).is_some() => return Err(e),
            Err(e) if self.layer != "raw" => {
                let cause = e.to_string();
                return Err(io::Error::other(Refusal::Corrupt { layer: self.layer, at: self.count, cause }));
            }
            Err(e) => return Err(e),
        };
        self.count += n as u64;
        if self.limit.is_some_and(|l| self.count > l) {
            return Err(io::Error::other(Refusal::TooLarge));
        }
        Ok(n)
    }
}

/// Reads up to `n` bytes and hands back a reader that replays them.
fn peek(mut r: Box<dyn Read + Send>, n: usize) -> io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        let k = r.read(&mut head[filled..])?;
        if k == 0 {
            break;
        }
        filled += k;
    }
    head.truncate(filled);
    let replay = io::Cursor::new(head.clone());
    Ok((head, Box::new(replay.chain(r))))
}

/// Where a single unpacked file lives, for messages.
pub fn describe(u: &Unpacked) -> String {
    match &u.single_file {
        Some(p) => format!(
            "{} → {} ({} bytes)",
            u.format,
            p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            u.bytes
        ),
        None => format!("{}: {} files, {} bytes", u.format, u.files, u.bytes),
    }
}
