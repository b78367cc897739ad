//! Streaming unpack: gzip, zstd, tar and their combinations, detected by magic bytes.
//!
//! The archive is hostile input. Refused, each with the exact reason: entries escaping the
//! destination (`..`, absolute paths), anything written through a link, symlinks that resolve
//! out of the destination against what is on disk (links in their parents followed, and
//! checked again once the whole tree is there), hard links to anything but a regular file of
//! the backup, device files and FIFOs, and expansion beyond a limit (default 50× the
//! compressed size; sparse files count at their declared size). Files are written owner-only
//! (0600, 0700 when executable), folders 0700: no setuid, setgid or sticky bit survives.

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
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

/// The age identities (X25519, `AGE-SECRET-KEY-1…`) that decrypt a backup in the same pass as
/// hash and unpack. Never printed: `Debug` says how many there are, nothing else.
#[derive(Clone)]
pub struct Decryption {
    identities: Arc<Vec<age::x25519::Identity>>,
}

impl std::fmt::Debug for Decryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decryption({} identities)", self.identities.len())
    }
}

impl Decryption {
    /// An identity file's text: one identity per line, `#` comments (as `age-keygen` writes).
    /// The error never repeats the text.
    pub fn parse(text: &str) -> Result<Decryption, String> {
        let mut identities = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = line.parse::<age::x25519::Identity>().map_err(|_| {
                format!("line {} is not an age X25519 identity (`AGE-SECRET-KEY-1…`, as age-keygen writes)", n + 1)
            })?;
            identities.push(id);
        }
        if identities.is_empty() {
            return Err("holds no age identity (`AGE-SECRET-KEY-1…`)".into());
        }
        Ok(Decryption { identities: Arc::new(identities) })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("age: {0}")]
    Decrypt(String),
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
    #[error("`{entry}` as restored {why}; refused")]
    Restored { entry: String, why: String },
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
    decryption: Option<&Decryption>,
    cancel: Arc<AtomicBool>,
) -> Result<Unpacked, UnpackError> {
    let mut layers: Vec<&'static str> = Vec::new();
    let mut name = name.rsplit('/').next().unwrap_or(name).to_string();
    let mut reader: Box<dyn Read + Send> = Box::new(Counting::new(input, cancel.clone(), None, "raw"));
    if let Some(d) = decryption {
        // Binary or ASCII-armored (`age -a`); the armor reader tells them apart.
        let armored = age::armor::ArmoredReader::new(io::BufReader::with_capacity(1 << 16, reader));
        let decryptor = age::Decryptor::new_buffered(armored).map_err(|e| {
            UnpackError::Decrypt(format!("the backup is not an age-encrypted file, or its header is damaged: {e}"))
        })?;
        if decryptor.is_scrypt() {
            return Err(UnpackError::Decrypt(
                "the backup is encrypted with a passphrase; drills decrypt with X25519 identities only".into(),
            ));
        }
        let stream = decryptor.decrypt(d.identities.iter().map(|i| i as &dyn age::Identity)).map_err(|e| {
            UnpackError::Decrypt(match e {
                age::DecryptError::NoMatchingKeys => {
                    "none of the identities of `source.decrypt.age_identity` can decrypt this backup (it was encrypted to other recipients)"
                        .to_string()
                }
                other => format!("cannot decrypt the backup: {other}"),
            })
        })?;
        layers.push("age");
        if let Some(stem) = name.strip_suffix(".age") {
            name = stem.to_string();
        }
        reader = Box::new(Counting::new(stream, cancel.clone(), Some(limits.max_bytes()), "age"));
    }
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
        Ok(Unpacked { root: dest.to_path_buf(), single_file: None, format, name, files, bytes })
    } else {
        if format.is_empty() {
            format.push_str("raw");
        }
        let safe = if name.is_empty() || name == "." || name == ".." { "backup".to_string() } else { name.clone() };
        let path = dest.join(&safe);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| UnpackError::Write { path: path.display().to_string(), source })?;
        let mut rest = rest;
        let bytes = copy_in_large_writes(&mut rest, &mut out, &mut vec![0; COPY_BUFFER]).map_err(|e| match e {
            Copy::Read(e) => classify(e, outer, 0, limits),
            Copy::Write(source) => UnpackError::Write { path: path.display().to_string(), source },
        })?;
        Ok(Unpacked { root: dest.to_path_buf(), single_file: Some(path), format, name, files: 1, bytes })
    }
}

fn untar(
    input: Box<dyn Read + Send>,
    dest: &Path,
    layer: &'static str,
    limits: &Limits,
) -> Result<(u64, u64), UnpackError> {
    let mut archive = tar::Archive::new(input);
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut links: Vec<PathBuf> = Vec::new();
    let mut buffer = vec![0; COPY_BUFFER];
    let entries = archive.entries().map_err(|e| classify(e, layer, bytes, limits))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| classify(e, layer, bytes, limits))?;
        let path = entry.path().map_err(|e| classify(e, layer, bytes, limits))?.into_owned();
        let shown = path.display().to_string();
        let unsafe_ = |why: &str| UnpackError::Unsafe { entry: shown.clone(), why: why.to_string() };
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        if matches!(kind, T::XHeader | T::XGlobalHeader | T::GNULongName | T::GNULongLink) {
            // Metadata entries (pax headers, GNU long names) are applied by the tar crate.
            continue;
        }
        if !is_relative_inside(&path) {
            return Err(unsafe_("escapes the scratch dir (absolute path or `..`)"));
        }
        let rel = normal_parts(&path);
        if rel.as_os_str().is_empty() {
            // `./`, the root itself: it exists already.
            continue;
        }
        // Sparse entries count at their declared size: that is what a reader sees.
        let size = entry.size();
        if kind != T::Directory {
            bytes = bytes.saturating_add(size);
            if bytes > limits.max_bytes() {
                return Err(UnpackError::TooLarge {
                    limit: limits.max_bytes(),
                    compressed: limits.compressed_size,
                    ratio: limits.max_ratio,
                });
            }
        }
        // Nothing is written through a link: every folder above the entry is a real folder
        // made by this unpack (created here when missing).
        let target = real_parents(dest, &rel).map_err(|why| unsafe_(&why))?;
        let existing = std::fs::symlink_metadata(&target).ok();
        if let Some(m) = &existing {
            if m.file_type().is_symlink() {
                return Err(unsafe_("replaces a link of an earlier entry"));
            }
            if m.is_dir() && kind != T::Directory {
                return Err(unsafe_("replaces a folder of an earlier entry"));
            }
        }
        let write = |e: io::Error| UnpackError::Write { path: target.display().to_string(), source: e };
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                if existing.is_some() {
                    // A later entry of the same name wins, as with tar itself.
                    std::fs::remove_file(&target).map_err(write)?;
                }
                // Owner-only, never setuid/setgid/sticky; executable only if it was.
                let mode = if entry.header().mode().unwrap_or(0) & 0o111 != 0 { 0o700 } else { 0o600 };
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(write)?;
                copy_in_large_writes(&mut entry, &mut out, &mut buffer).map_err(|e| match e {
                    Copy::Read(e) => classify(e, layer, bytes, limits),
                    Copy::Write(e) => write(e),
                })?;
                files += 1;
            }
            T::Directory => {
                if existing.is_none() {
                    std::fs::DirBuilder::new().mode(0o700).create(&target).map_err(write)?;
                }
            }
            T::Symlink => {
                let to = entry.link_name().map_err(|e| classify(e, layer, bytes, limits))?.unwrap_or_default();
                let parent = rel.parent().unwrap_or(Path::new(""));
                if to.is_absolute() || !resolves_inside(dest, &parent.join(&to)) {
                    return Err(unsafe_(&format!(
                        "is a symlink pointing out of the scratch dir (to `{}`)",
                        to.display()
                    )));
                }
                std::os::unix::fs::symlink(&to, &target).map_err(write)?;
                links.push(rel.clone());
                files += 1;
            }
            T::Link => {
                let to = entry.link_name().map_err(|e| classify(e, layer, bytes, limits))?.unwrap_or_default();
                let out = |why: &str| {
                    unsafe_(&format!("is a hard link pointing out of the scratch dir (to `{}`){why}", to.display()))
                };
                if to.is_absolute() || !is_relative_inside(&to) {
                    return Err(out(""));
                }
                // The target must be a regular file an earlier entry wrote, reached through
                // real folders only: never a link (a hard link to a symlink would move it).
                let source = real_path(dest, &normal_parts(&to)).ok_or_else(|| out(": not a file of this backup"))?;
                if existing.is_some() {
                    std::fs::remove_file(&target).map_err(write)?;
                }
                std::fs::hard_link(&source, &target).map_err(write)?;
                files += 1;
            }
            T::Char | T::Block => return Err(unsafe_("is a device file")),
            T::Fifo => return Err(unsafe_("is a FIFO")),
            other => return Err(unsafe_(&format!("has an unsupported type {other:?}"))),
        }
    }
    // Read to the end: the decoders verify their trailers (gzip CRC, zstd checksum) only
    // there, and the tar reader stops at the end-of-archive marker before them.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| classify(e, layer, bytes, limits))?;
    // A link checked when it was made can be turned outwards by a later one (`y -> z/..`,
    // then `z -> .`): every link is checked again against the finished tree. The outward
    // ones are removed before the refusal, so none is left for whatever reads the tree next;
    // removing one can change what another resolves to, so this repeats until none is left.
    let mut refused: Option<UnpackError> = None;
    loop {
        let outward: Vec<(PathBuf, PathBuf)> = links
            .iter()
            .filter_map(|link| {
                let to = std::fs::read_link(dest.join(link)).ok()?;
                let parent = link.parent().unwrap_or(Path::new(""));
                (!resolves_inside(dest, &parent.join(&to))).then(|| (link.clone(), to))
            })
            .collect();
        let Some((first, to)) = outward.first() else { break };
        refused.get_or_insert_with(|| UnpackError::Unsafe {
            entry: first.display().to_string(),
            why: format!(
                "is a symlink pointing out of the scratch dir (to `{}`) through links made after it",
                to.display()
            ),
        });
        for (link, _) in &outward {
            std::fs::remove_file(dest.join(link))
                .map_err(|e| UnpackError::Write { path: dest.join(link).display().to_string(), source: e })?;
        }
        links.retain(|l| !outward.iter().any(|(o, _)| o == l));
    }
    if let Some(e) = refused {
        return Err(e);
    }
    Ok((files, bytes))
}

/// A path already known to stay inside ([`is_relative_inside`]) resolved lexically: `.`
/// dropped, `..` taking back the part before it (`a/../b` is `b`).
fn normal_parts(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `dest/rel`, after making sure every folder above it is a real folder (not a link),
/// creating the missing ones owner-only.
fn real_parents(dest: &Path, rel: &Path) -> Result<PathBuf, String> {
    let mut at = dest.to_path_buf();
    let parents: Vec<_> = rel.parent().map(|p| p.components().collect()).unwrap_or_default();
    for c in parents {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "would be written through the link `{}`",
                    at.strip_prefix(dest).unwrap_or(&at).display()
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "needs `{}` to be a folder, but it is a file",
                    at.strip_prefix(dest).unwrap_or(&at).display()
                ));
            }
            Err(_) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&at)
                .map_err(|e| format!("cannot create its folder: {e}"))?,
        }
    }
    Ok(dest.join(rel))
}

/// `dest/rel` when it is a regular file reached through real folders only.
fn real_path(dest: &Path, rel: &Path) -> Option<PathBuf> {
    let mut at = dest.to_path_buf();
    for c in rel.components() {
        at.push(c);
        let m = std::fs::symlink_metadata(&at).ok()?;
        if m.file_type().is_symlink() {
            return None;
        }
    }
    std::fs::symlink_metadata(&at).ok().filter(|m| m.is_file()).map(|_| at)
}

/// The unpack rules applied to a tree another program wrote (`restic restore`): every link
/// must resolve inside `root` (else it is removed and refused), no device, FIFO or socket, and
/// owner-only modes (folders 0700, files 0600 or 0700, no setuid), links never followed. Returns the files (links
/// included) and their bytes.
pub fn settle_tree(root: &Path) -> Result<(u64, u64), UnpackError> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut todo = vec![PathBuf::new()];
    let refuse = |rel: &Path, why: String| UnpackError::Restored { entry: rel.display().to_string(), why };
    let write = |path: &Path, source: io::Error| UnpackError::Write { path: path.display().to_string(), source };
    while let Some(dir) = todo.pop() {
        let here = root.join(&dir);
        std::fs::set_permissions(&here, std::fs::Permissions::from_mode(0o700)).map_err(|e| write(&here, e))?;
        for entry in std::fs::read_dir(&here).map_err(|e| write(&here, e))? {
            let entry = entry.map_err(|e| write(&here, e))?;
            let rel = dir.join(entry.file_name());
            let path = root.join(&rel);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| write(&path, e))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                todo.push(rel);
            } else if kind.is_symlink() {
                let to = std::fs::read_link(&path).map_err(|e| write(&path, e))?;
                if to.is_absolute() || !resolves_inside(root, &dir.join(&to)) {
                    // Not left behind for a kept scratch or anyone else to follow.
                    let _ = std::fs::remove_file(&path);
                    return Err(refuse(
                        &rel,
                        format!("is a symlink pointing out of the scratch dir (to `{}`)", to.display()),
                    ));
                }
                files += 1;
            } else if kind.is_file() {
                // As unpacking writes them: 0700 when the owner could run it, else 0600.
                let mode = if meta.permissions().mode() & 0o100 != 0 { 0o700 } else { 0o600 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(|e| write(&path, e))?;
                files += 1;
                bytes += meta.len();
            } else {
                let _ = std::fs::remove_file(&path);
                return Err(refuse(&rel, "is a device, FIFO or socket".into()));
            }
        }
    }
    Ok((files, bytes))
}

/// Whether `rel` (relative to `root`) stays inside `root` when resolved as the kernel would
/// against what is on disk now: each existing link is followed (relative targets only, at
/// most 40), `..` may not climb above the root. Missing parts are taken as written.
pub fn resolves_inside(root: &Path, rel: &Path) -> bool {
    let mut stack: Vec<std::ffi::OsString> = Vec::new();
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = std::collections::VecDeque::new();
    let push_front = |todo: &mut std::collections::VecDeque<std::ffi::OsString>, p: &Path| -> bool {
        for c in p.components().rev() {
            match c {
                Component::Normal(n) => todo.push_front(n.to_os_string()),
                Component::ParentDir => todo.push_front("..".into()),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return false,
            }
        }
        true
    };
    if !push_front(&mut todo, rel) {
        return false;
    }
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if stack.pop().is_none() {
                return false;
            }
            continue;
        }
        let here: PathBuf = root.join(stack.iter().collect::<PathBuf>()).join(&c);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                let Ok(to) = std::fs::read_link(&here) else { return false };
                if hops > 40 || !push_front(&mut todo, &to) {
                    return false;
                }
            }
            _ => stack.push(c),
        }
    }
    true
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

/// Bytes a file of the backup is written in at a time, at most.
const COPY_BUFFER: usize = 1 << 20;

/// Which side of a copy failed: the archive (corrupt, refused) or the file being written.
enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `from` to `to` in writes of `buf`'s size, filling it first: `io::copy` writes 8 KiB at
/// a time, 43,000 writes for a 340 MiB snapshot.
fn copy_in_large_writes(from: &mut impl Read, to: &mut impl Write, buf: &mut [u8]) -> Result<u64, Copy> {
    let mut total = 0;
    loop {
        let mut filled = 0;
        let mut end = false;
        while filled < buf.len() && !end {
            match from.read(&mut buf[filled..]) {
                Ok(0) => end = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Copy::Read(e)),
            }
        }
        to.write_all(&buf[..filled]).map_err(Copy::Write)?;
        total += filled as u64;
        if end {
            return Ok(total);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, link: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        let target = &mut h.as_old_mut().linkname;
        target[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    /// Hands out at most 7,000 bytes a read, as a network stream does.
    struct Trickle<R>(R);
    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7000);
            self.0.read(&mut buf[..n])
        }
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
    }

    #[test]
    fn files_around_the_copy_buffer_size_come_out_byte_for_byte() {
        let sizes = [0, 1, COPY_BUFFER - 1, COPY_BUFFER, COPY_BUFFER + 1, COPY_BUFFER * 5 / 2];
        let mut b = tar::Builder::new(Vec::new());
        for n in sizes {
            entry(&mut b, tar::EntryType::Regular, &format!("f{n}"), "", &bytes(n));
        }
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits { compressed_size: tar.len() as u64, max_ratio: 50 };
        let stop = Arc::new(AtomicBool::new(false));
        let u = unpack(Trickle(std::io::Cursor::new(tar)), "t.tar", dir.path(), &limits, None, stop).unwrap();
        assert_eq!(u.files, sizes.len() as u64);
        for n in sizes {
            assert!(std::fs::read(dir.path().join(format!("f{n}"))).unwrap() == bytes(n), "f{n} differs");
        }
        // A single file that is not a tar takes the same copy.
        let raw = bytes(COPY_BUFFER * 3 + 5);
        let dir = tempfile::tempdir().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let u = unpack(Trickle(std::io::Cursor::new(raw.clone())), "dump", dir.path(), &limits, None, stop).unwrap();
        assert_eq!(u.bytes, raw.len() as u64);
        assert!(std::fs::read(dir.path().join("dump")).unwrap() == raw);
    }

    #[test]
    fn a_copy_says_which_side_failed() {
        struct Fails;
        impl Read for Fails {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("archive side"))
            }
        }
        impl Write for Fails {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("file side"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut buf = vec![0; 16];
        assert!(matches!(copy_in_large_writes(&mut Fails, &mut Vec::new(), &mut buf), Err(Copy::Read(_))));
        let mut from = &b"some bytes"[..];
        assert!(matches!(copy_in_large_writes(&mut from, &mut Fails, &mut buf), Err(Copy::Write(_))));
    }

    #[test]
    fn dot_dot_inside_the_archive_lands_where_it_points() {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, tar::EntryType::Regular, "a/../b.txt", "", b"bee");
        entry(&mut b, tar::EntryType::Regular, "x/f.txt", "", b"eff");
        entry(&mut b, tar::EntryType::Link, "h.txt", "x/../x/./f.txt", b"");
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits { compressed_size: tar.len() as u64, max_ratio: 50 };
        unpack(std::io::Cursor::new(tar), "t.tar", dir.path(), &limits, None, Arc::new(AtomicBool::new(false)))
            .unwrap();
        assert_eq!(std::fs::read(dir.path().join("b.txt")).unwrap(), b"bee");
        assert!(!dir.path().join("a/b.txt").exists());
        assert_eq!(std::fs::read(dir.path().join("h.txt")).unwrap(), b"eff");
    }

    #[test]
    fn a_link_turned_outwards_by_a_later_one_is_refused_and_removed() {
        // `b/a -> ../a/..` stays inside when made; `a -> .` then makes it the root's parent.
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, tar::EntryType::Symlink, "b/a", "../a/..", b"");
        entry(&mut b, tar::EntryType::Symlink, "a", ".", b"");
        let tar = b.into_inner().unwrap();
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("root");
        std::fs::create_dir(&dir).unwrap();
        let limits = Limits { compressed_size: tar.len() as u64, max_ratio: 50 };
        let e = unpack(std::io::Cursor::new(tar), "t.tar", &dir, &limits, None, Arc::new(AtomicBool::new(false)))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "tar entry `b/a` is a symlink pointing out of the scratch dir (to `../a/..`) through links made after it; refused"
        );
        assert!(std::fs::symlink_metadata(dir.join("b/a")).is_err(), "the outward link is left on disk");
        assert_eq!(std::fs::read_link(dir.join("a")).unwrap(), Path::new("."));
    }

    #[test]
    fn age_identities_parse_and_never_print() {
        let key = age::x25519::Identity::generate();
        let secret = age::secrecy::ExposeSecret::expose_secret(&key.to_string()).to_string();
        let text = format!("# created: 2026-11-29\n# public key: {}\n{secret}\n", key.to_public());
        let d = Decryption::parse(&text).unwrap();
        assert_eq!(format!("{d:?}"), "Decryption(1 identities)");
        let e = Decryption::parse("# only a comment\n").unwrap_err();
        assert!(e.contains("holds no age identity"), "{e}");
        let e = Decryption::parse(&format!("{secret}x\n")).unwrap_err();
        assert!(e.starts_with("line 1 is not an age X25519 identity") && !e.contains(&secret), "{e}");
    }

    #[test]
    fn a_tree_another_program_wrote_gets_the_unpack_rules() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/data"), b"12345").unwrap();
        std::fs::write(root.join("run.sh"), b"#!/bin/sh").unwrap();
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::set_permissions(root.join("sub"), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::symlink("sub/data", root.join("inside")).unwrap();
        assert_eq!(settle_tree(root).unwrap(), (3, 14));
        assert_eq!(mode(&root.join("sub")), 0o700);
        assert_eq!(mode(&root.join("sub/data")), 0o600);
        assert_eq!(mode(&root.join("run.sh")), 0o700, "executable kept, setuid gone");

        std::os::unix::fs::symlink("../../etc", root.join("sub/out")).unwrap();
        let e = settle_tree(root).unwrap_err().to_string();
        assert_eq!(e, "`sub/out` as restored is a symlink pointing out of the scratch dir (to `../../etc`); refused");
        assert!(std::fs::symlink_metadata(root.join("sub/out")).is_err(), "the link is removed");

        let fifo = std::ffi::CString::new(root.join("pipe").to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path inside the test's own folder.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let e = settle_tree(root).unwrap_err().to_string();
        assert_eq!(e, "`pipe` as restored is a device, FIFO or socket; refused");
        assert!(!root.join("pipe").exists());
    }
}
