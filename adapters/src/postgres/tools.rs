//! The PostgreSQL installation a drill restores with: `bin_dir`, or the newest one found.

use std::path::{Path, PathBuf};

use crate::AdapterError;

/// A PostgreSQL installation's `bin` folder and its version.
#[derive(Debug, Clone)]
pub struct Tools {
    pub bin_dir: PathBuf,
    /// As printed by `pg_restore --version`, e.g. `18.3` or `15.19`.
    pub version: String,
    pub major: u32,
}

/// Client tools a restore needs; a `local` scratch also needs the server binaries.
const CLIENT: &[&str] = &["pg_restore", "psql"];
const SERVER: &[&str] = &["initdb", "postgres"];

impl Tools {
    pub fn path(&self, program: &str) -> PathBuf {
        self.bin_dir.join(program)
    }

    /// Whether this psql has `\restrict` (the August 2025 releases: 17.6, 16.10, 15.14,
    /// 14.19, 13.22, and 18 on).
    pub fn psql_restricts(&self) -> bool {
        let minor = |v: &str| v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
        match self.major {
            18.. => true,
            17 => minor(&self.version) >= 6,
            16 => minor(&self.version) >= 10,
            15 => minor(&self.version) >= 14,
            14 => minor(&self.version) >= 19,
            13 => minor(&self.version) >= 22,
            _ => false,
        }
    }

    /// `bin_dir` when given, else the newest installation on PATH or under
    /// `/usr/lib/postgresql/*/bin` that has every program needed.
    pub async fn find(bin_dir: Option<&str>, need_server: bool) -> Result<Tools, AdapterError> {
        let needed: Vec<&str> = CLIENT.iter().chain(if need_server { SERVER } else { &[] }).copied().collect();
        if let Some(dir) = bin_dir {
            let dir = PathBuf::from(dir);
            if let Some(missing) = needed.iter().find(|p| !dir.join(p).is_file()) {
                return Err(AdapterError::Provision(format!(
                    "bin_dir {}: no `{missing}` there (a PostgreSQL installation's bin folder has {})",
                    dir.display(),
                    needed.join(", ")
                )));
            }
            return Tools::probe(&dir).await;
        }
        let mut best: Option<Tools> = None;
        for dir in candidates() {
            if !needed.iter().all(|p| dir.join(p).is_file()) {
                continue;
            }
            if let Ok(t) = Tools::probe(&dir).await
                && best.as_ref().is_none_or(|b| version_key(&t.version) > version_key(&b.version))
            {
                best = Some(t);
            }
        }
        best.ok_or_else(|| {
            AdapterError::Provision(format!(
                "no PostgreSQL installation with {} on PATH or under /usr/lib/postgresql/*/bin; \
                 install one (Debian: apt-get install postgresql) or set `bin_dir:` beside `adapter: postgres`",
                needed.join(", ")
            ))
        })
    }

    async fn probe(dir: &Path) -> Result<Tools, AdapterError> {
        // Through symlinks to the real folder: the binaries find their libraries and
        // extensions relative to where they really are.
        let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let out = crate::process::command(dir.join("pg_restore"), None)
            .arg("--version")
            .output()
            .await
            .map_err(|e| AdapterError::io(format!("cannot run {}", dir.join("pg_restore").display()), e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = parse_version(&text).ok_or_else(|| {
            AdapterError::Provision(format!(
                "{}: cannot read a version from `pg_restore --version`: {}",
                dir.display(),
                text.trim()
            ))
        })?;
        Ok(Tools { bin_dir: dir.to_path_buf(), major: major(&version), version })
    }
}

fn candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        out.extend(entries.flatten().map(|e| e.path().join("bin")));
    }
    out
}

/// `pg_restore (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)` → `15.19`.
pub fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_digit()).to_string())
}

/// `18.3` → 18; `9.6.24` → 9 (old majors are compared by their first number only).
pub fn major(version: &str) -> u32 {
    version.split(['.', ' ']).next().and_then(|m| m.parse().ok()).unwrap_or(0)
}

fn version_key(version: &str) -> Vec<u32> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("pg_restore (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)\n").as_deref(), Some("15.19"));
        assert_eq!(parse_version("pg_restore (PostgreSQL) 18.3\n").as_deref(), Some("18.3"));
        assert_eq!(major("18.3"), 18);
        assert!(version_key("15.19") > version_key("15.9"));
        assert!(version_key("18.0") > version_key("15.19"));
    }
}
