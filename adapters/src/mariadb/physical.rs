//! A `mariadb-backup` physical backup (a tar of its target folder): found by its checkpoints
//! file, prepared with `mariadb-backup --prepare` when it was not, then served by `mariadbd`.

use std::path::{Path, PathBuf};

use crate::Unpacked;

/// What the checkpoints and info files of a backup say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Physical {
    /// The backup's folder (the server's data folder once prepared).
    pub dir: PathBuf,
    /// `backup_type`: `full-backuped` (not prepared yet), `full-prepared`, `incremental`, ...
    pub backup_type: String,
    /// `server_version` of `xtrabackup_info` / `mariadb_backup_info`.
    pub server_version: Option<String>,
}

impl Physical {
    pub fn prepared(&self) -> bool {
        self.backup_type.ends_with("-prepared")
    }
}

const CHECKPOINTS: [&str; 2] = ["mariadb_backup_checkpoints", "xtrabackup_checkpoints"];
const INFO: [&str; 2] = ["mariadb_backup_info", "xtrabackup_info"];

/// The backup's folder: `file:` (a folder) or the unpacked root or one folder below it, where a
/// checkpoints file lies.
pub fn find(backup: &Unpacked, file: Option<&str>) -> Option<PathBuf> {
    if backup.single_file.is_some() {
        return None;
    }
    let has = |d: &Path| CHECKPOINTS.iter().any(|c| d.join(c).is_file());
    if let Some(name) = file {
        return crate::inside(&backup.root, name).filter(|d| d.is_dir() && has(d));
    }
    if has(&backup.root) {
        return Some(backup.root.clone());
    }
    let entries = std::fs::read_dir(&backup.root).ok()?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|d| has(d))
        .collect();
    found.sort();
    (found.len() == 1).then(|| found.remove(0))
}

/// The backup as one `mbstream`/`xbstream` file (`mariadb-backup --stream=xbstream`), by the
/// magic of its first chunk.
pub fn stream(backup: &Unpacked) -> Option<PathBuf> {
    use std::io::Read;
    let file = backup.single_file.as_ref()?;
    let mut magic = [0u8; 8];
    std::fs::File::open(file).and_then(|mut f| f.read_exact(&mut magic)).ok()?;
    (&magic == b"XBSTCK01").then(|| file.clone())
}

/// Reads the checkpoints and info files of the backup in `dir`.
pub fn read(dir: &Path) -> Result<Physical, String> {
    let text = |names: [&str; 2]| names.iter().find_map(|n| std::fs::read_to_string(dir.join(n)).ok());
    let checkpoints = text(CHECKPOINTS).ok_or("the backup has no readable checkpoints file")?;
    let value = |text: &str, key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let backup_type = value(&checkpoints, "backup_type").ok_or("the checkpoints file has no `backup_type`")?;
    if backup_type.starts_with("incremental") {
        return Err(format!(
            "an incremental backup (`backup_type = {backup_type}`) needs its full backup to be restored; drill the full backup \
             with the incrementals applied"
        ));
    }
    let server_version = text(INFO).and_then(|i| value(&i, "server_version"));
    Ok(Physical { dir: dir.to_path_buf(), backup_type, server_version })
}

/// `mariadbd --version` → `10.11.19-MariaDB-0+deb12u1`.
pub fn server_version(output: &str) -> Option<String> {
    let after = output.split(" Ver ").nth(1)?;
    after.split_whitespace().next().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("xtrabackup_checkpoints"), "backup_type = full-backuped\nfrom_lsn = 0\n")
            .unwrap();
        std::fs::write(
            dir.path().join("xtrabackup_info"),
            "tool_name = mariadb-backup\nserver_version = 10.11.19-MariaDB-0+deb12u1\n",
        )
        .unwrap();
        let p = read(dir.path()).unwrap();
        assert!(!p.prepared());
        assert_eq!(p.server_version.as_deref(), Some("10.11.19-MariaDB-0+deb12u1"));
        std::fs::write(dir.path().join("xtrabackup_checkpoints"), "backup_type = incremental\n").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("incremental"));
        assert_eq!(
            server_version(
                "/usr/sbin/mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)"
            )
            .as_deref(),
            Some("10.11.19-MariaDB-0+deb12u1")
        );
    }
}
