//! `files`: every file of a manifest is present and identical; nothing unexpected.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use drillbook_runbooks::FilesCheck;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{AdapterError, CheckOutcome, DrillCx, read_input};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sha256: String,
    pub size: Option<u64>,
}

#[derive(Deserialize)]
struct JsonEntry {
    path: String,
    size: Option<u64>,
    sha256: String,
}

/// Reads a manifest: `sha256sum` output, or JSON `[{path, size, sha256}]`.
pub fn parse_manifest(text: &str) -> Result<BTreeMap<String, Entry>, String> {
    if text.trim_start().starts_with('[') {
        let entries: Vec<JsonEntry> =
            serde_json::from_str(text).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
        return Ok(entries
            .into_iter()
            .map(|e| (normalize(&e.path), Entry { sha256: e.sha256.to_lowercase(), size: e.size }))
            .collect());
    }
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (hash, rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("manifest line {}: expected `<sha256>  <path>`", i + 1))?;
        let path = rest.trim_start_matches([' ', '*']);
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("manifest line {}: `{hash}` is not a SHA-256", i + 1));
        }
        out.insert(normalize(path), Entry { sha256: hash.to_lowercase(), size: None });
    }
    Ok(out)
}

fn normalize(p: &str) -> String {
    p.trim_start_matches("./").to_string()
}

/// Every regular file below `root`, as `/`-separated relative paths.
pub fn walk(root: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            let path = entry.path();
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() || ty.is_symlink() {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf)?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

pub async fn run(cx: &DrillCx, root: &Path, check: &FilesCheck) -> Result<CheckOutcome, AdapterError> {
    let manifest = parse_manifest(&read_input(cx, &check.manifest)?).map_err(AdapterError::Check)?;
    let root = root.to_path_buf();
    let allow_extra = check.allow_extra;
    tokio::task::spawn_blocking(move || compare(&root, &manifest, allow_extra))
        .await
        .map_err(|e| AdapterError::Check(format!("files check panicked: {e}")))?
}

fn compare(root: &Path, manifest: &BTreeMap<String, Entry>, allow_extra: bool) -> Result<CheckOutcome, AdapterError> {
    let present: BTreeMap<String, PathBuf> =
        walk(root).map_err(|e| AdapterError::io(format!("cannot list {}", root.display()), e))?.into_iter().collect();
    let (mut missing, mut different, mut problems) = (0u64, 0u64, Vec::new());
    for (rel, want) in manifest {
        let Some(path) = present.get(rel) else {
            missing += 1;
            problems.push(format!("missing {rel}"));
            continue;
        };
        let (got, size) = sha256_file(path).map_err(|e| AdapterError::io(format!("cannot read {rel}"), e))?;
        if got != want.sha256 || want.size.is_some_and(|s| s != size) {
            different += 1;
            problems.push(format!(
                "{rel} differs (sha256 {}…, expected {}…)",
                &got[..12],
                &want.sha256[..want.sha256.len().min(12)]
            ));
        }
    }
    let extra: Vec<&String> = present.keys().filter(|k| !manifest.contains_key(*k)).collect();
    if !allow_extra {
        for e in extra.iter().take(5) {
            problems.push(format!("unexpected {e}"));
        }
    }
    let extra_fails = if allow_extra { 0 } else { extra.len() as u64 };
    let passed = missing == 0 && different == 0 && extra_fails == 0;
    let detail = if passed {
        format!("{} files identical to the manifest", manifest.len())
    } else {
        let mut d = problems.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
        if problems.len() > 5 {
            d.push_str(&format!("; and {} more", problems.len() - 5));
        }
        d
    };
    Ok(CheckOutcome {
        passed,
        observed: json!({"files": present.len(), "missing": missing, "different": different, "extra": extra.len()}),
        expected: json!({"files": manifest.len(), "missing": 0, "different": 0, "extra": if allow_extra { json!("allowed") } else { json!(0) }}),
        detail,
    })
}

/// The values of a `files:` set of a coherence check: the restored files under `root` matching
/// `glob`, as `/`-separated relative paths, or (with `strip_extension`) their names without
/// folders and that extension.
pub fn values(root: &Path, glob: &str, strip_extension: Option<&str>) -> Result<Vec<String>, crate::AdapterError> {
    let matcher = globset::Glob::new(glob)
        .map_err(|e| crate::AdapterError::Check(format!("bad glob `{glob}`: {e}")))?
        .compile_matcher();
    let files = walk(root).map_err(|e| crate::AdapterError::io(format!("cannot list {}", root.display()), e))?;
    Ok(files
        .into_iter()
        .filter(|(rel, _)| matcher.is_match(rel))
        .map(|(rel, _)| match strip_extension {
            None => rel,
            Some(ext) => {
                let name = rel.rsplit('/').next().unwrap_or(&rel);
                name.strip_suffix(ext).unwrap_or(name).to_string()
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_manifest_formats_parse() {
        let h = "a".repeat(64);
        let m = parse_manifest(&format!("{h}  ./docs/a.txt\n{h} *b.bin\n")).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["b.bin", "docs/a.txt"]);
        let m = parse_manifest(&format!("[{{\"path\":\"x\",\"size\":3,\"sha256\":\"{h}\"}}]")).unwrap();
        assert_eq!(m["x"].size, Some(3));
        assert!(parse_manifest("nothex  a\n").is_err());
    }

    #[test]
    fn compare_finds_missing_changed_and_extra_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "hello").unwrap();
        std::fs::write(dir.path().join("b"), "changed").unwrap();
        std::fs::write(dir.path().join("extra"), "x").unwrap();
        let (ha, _) = sha256_file(&dir.path().join("a")).unwrap();
        let text = format!("{ha}  a\n{}  b\n{}  gone\n", "0".repeat(64), "1".repeat(64));
        let m = parse_manifest(&text).unwrap();
        let out = compare(dir.path(), &m, false).unwrap();
        assert!(!out.passed);
        assert_eq!(out.observed["missing"], 1);
        assert_eq!(out.observed["different"], 1);
        assert_eq!(out.observed["extra"], 1);
        let only_a = parse_manifest(&format!("{ha}  a\n")).unwrap();
        assert!(compare(dir.path(), &only_a, true).unwrap().passed);
        assert!(!compare(dir.path(), &only_a, false).unwrap().passed);
    }
}
