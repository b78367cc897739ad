//! What drillbook reads of a Redis backup itself: the RDB header (its format version, which
//! decides whether this `redis-server` can load it), the AOF manifest (which files make up a
//! multi-part AOF, refusing names that leave its folder) and the verdict of Redis's own
//! checkers. The data itself is only ever read by Redis's own code.

use std::io::Read;
use std::path::Path;

/// The first Redis release that writes each RDB format version (`RDB_VERSION` in Redis's
/// `src/rdb.h` over the releases). A server reads every version up to its own.
const RDB_VERSIONS: &[(u32, &str)] =
    &[(6, "2.6"), (7, "3.2"), (8, "4.0"), (9, "5.0"), (10, "7.0"), (11, "7.2"), (12, "7.4")];

/// The RDB format version in a file's header (`REDIS0010`), or why there is none.
pub fn rdb_version(path: &Path) -> Result<u32, String> {
    let mut head = [0u8; 9];
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("cannot read the header of `{name}`: {e}"))?;
    parse_header(&head).ok_or_else(|| {
        format!(
            "`{name}` is not an RDB file: it starts with {:?}, not `REDIS` and a 4-digit version",
            String::from_utf8_lossy(&head)
        )
    })
}

fn parse_header(head: &[u8]) -> Option<u32> {
    let digits = head.strip_prefix(b"REDIS")?;
    if digits.len() != 4 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The newest RDB version a server of `version` (`7.0.15`) reads.
pub fn readable_by(version: &str) -> Option<u32> {
    let key = release_key(version)?;
    RDB_VERSIONS.iter().filter(|(_, first)| release_key(first).is_some_and(|k| k <= key)).map(|(v, _)| *v).max()
}

/// The release that introduced RDB `version`, in words.
pub fn written_by(version: u32) -> String {
    match RDB_VERSIONS.iter().find(|(v, _)| *v == version) {
        Some((_, first)) => format!("Redis {first} or newer"),
        None if version > RDB_VERSIONS[RDB_VERSIONS.len() - 1].0 => "a Redis newer than any drillbook knows".into(),
        None => "an old Redis".into(),
    }
}

fn release_key(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `redis-server --version` → `7.0.15`.
pub fn server_version(output: &str) -> Option<String> {
    let v = output.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
    Some(v.to_string())
}

/// One file of a multi-part AOF, from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFile {
    pub name: String,
    /// `b` (base), `h` (history), `i` (incremental).
    pub kind: char,
}

/// The files a Redis 7 AOF manifest names (`file <name> seq <n> type <b|h|i>` per line).
/// A name that is not a plain file name in the manifest's folder is refused: the manifest is
/// backup content, and Redis would open whatever it names.
pub fn aof_manifest(text: &str) -> Result<Vec<AofFile>, String> {
    let mut files = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut name = None;
        let mut kind = None;
        for pair in words.chunks(2) {
            match pair {
                ["file", v] => name = Some(v.trim_matches('"').to_string()),
                ["type", v] => kind = v.chars().next(),
                [_, _] => {}
                _ => return Err(format!("AOF manifest line {}: `{line}` is not key/value pairs", n + 1)),
            }
        }
        let (Some(name), Some(kind)) = (name, kind) else {
            return Err(format!("AOF manifest line {}: `{line}` lacks `file` or `type`", n + 1));
        };
        if name.is_empty() || name.contains('/') || name.contains('\\') || name == "." || name == ".." {
            return Err(format!(
                "AOF manifest line {}: file name {name:?} is not a plain name in the AOF folder",
                n + 1
            ));
        }
        if !matches!(kind, 'b' | 'h' | 'i') {
            return Err(format!("AOF manifest line {}: unknown file type `{kind}`", n + 1));
        }
        files.push(AofFile { name, kind });
    }
    if !files.iter().any(|f| f.kind == 'b' || f.kind == 'i') {
        return Err("the AOF manifest names no base or incremental file".into());
    }
    Ok(files)
}

/// What `redis-check-rdb` / `redis-check-aof` said.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    pub ok: bool,
    /// `[info] N keys read`, summed over the RDB parts it checked.
    pub keys: Option<u64>,
    pub expires: Option<u64>,
    /// `AUX FIELD redis-ver`: the Redis that wrote the backup.
    pub written_by: Option<String>,
    /// `AUX FIELD ctime`: when the RDB was written (Unix seconds).
    pub ctime: Option<i64>,
    /// The error, in the checker's words, when not ok.
    pub error: Option<String>,
}

/// Reads a checker's output. `ok` comes from the exit status and is cross-checked with the
/// checker's own words (a CRC error is reported by a checker that still exits 0).
pub fn read_verdict(output: &str, exited_ok: bool) -> Verdict {
    let mut v = Verdict { ok: exited_ok, ..Verdict::default() };
    let mut error: Vec<String> = Vec::new();
    let mut in_error = false;
    for line in output.lines().map(str::trim) {
        if let Some(n) = info_count(line, " keys read") {
            v.keys = Some(v.keys.unwrap_or(0) + n);
        } else if let Some(n) = info_count(line, " expires") {
            v.expires = Some(v.expires.unwrap_or(0) + n);
        }
        if let Some(ver) = aux(line, "redis-ver") {
            v.written_by = Some(ver.to_string());
        }
        if let Some(t) = aux(line, "ctime").and_then(|t| t.parse().ok()) {
            v.ctime = Some(t);
        }
        if line == "--- RDB ERROR DETECTED ---" {
            in_error = true;
            v.ok = false;
            continue;
        }
        if in_error && !line.starts_with("[info]") {
            let text = match line.strip_prefix("[offset ").and_then(|rest| rest.split_once("] ")) {
                Some((offset, what)) => format!("{what} at offset {offset}"),
                None => line.strip_prefix("[additional info] ").unwrap_or(line).to_string(),
            };
            error.push(text);
        }
        if line.ends_with("is not valid. Use the --fix option to try fixing it.")
            || line.contains("format error")
            || line.starts_with("Invalid")
        {
            v.ok = false;
            error.push(line.trim_end_matches(" Use the --fix option to try fixing it.").to_string());
        }
        if line.starts_with("AOF analyzed:") && !line.ends_with("diff=0") {
            error.push(line.to_string());
        }
        if line.starts_with("0x") && line.contains("Expected") {
            error.push(line.split_whitespace().skip(1).collect::<Vec<_>>().join(" "));
        }
    }
    if !v.ok {
        error.dedup();
        v.error = Some(if error.is_empty() { "the checker reported an error".into() } else { error.join("; ") });
    }
    v
}

fn info_count(line: &str, what: &str) -> Option<u64> {
    line.strip_prefix("[info] ")?.strip_suffix(what)?.trim().parse().ok()
}

fn aux<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let rest = line.split("AUX FIELD ").nth(1)?;
    let value = rest.strip_prefix(field)?.trim_start().strip_prefix("= ")?;
    Some(value.trim().trim_matches('\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_versions_and_what_reads_them() {
        assert_eq!(parse_header(b"REDIS0010"), Some(10));
        assert_eq!(parse_header(b"REDIS0011"), Some(11));
        assert_eq!(parse_header(b"REDIS001x"), None);
        assert_eq!(parse_header(b"*2\r\n$6\r\nS"), None);
        assert_eq!(readable_by("7.0.15"), Some(10));
        assert_eq!(readable_by("7.2.4"), Some(11));
        assert_eq!(readable_by("8.0.1"), Some(12));
        assert_eq!(readable_by("6.2.14"), Some(9));
        assert_eq!(written_by(11), "Redis 7.2 or newer");
        assert_eq!(written_by(40), "a Redis newer than any drillbook knows");
        assert_eq!(
            server_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64").as_deref(),
            Some("7.0.15")
        );
    }

    #[test]
    fn manifest_names_stay_in_the_folder() {
        let files =
            aof_manifest("file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n")
                .unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0], AofFile { name: "appendonly.aof.1.base.rdb".into(), kind: 'b' });
        for bad in ["file ../../etc/passwd seq 1 type b", "file /etc/shadow seq 1 type b", "file .. seq 1 type i"] {
            let e = aof_manifest(bad).unwrap_err();
            assert!(e.contains("not a plain name"), "{e}");
        }
        assert!(aof_manifest("file a seq 1 type x").unwrap_err().contains("unknown file type"));
        assert!(aof_manifest("file a seq 1 type h").unwrap_err().contains("no base"));
    }

    /// Output of the real redis-check-rdb 7.0.15 on a good, a truncated and a CRC-damaged file.
    #[test]
    fn checker_verdicts() {
        let good = "[offset 0] Checking RDB file dump.rdb\n[offset 27] AUX FIELD redis-ver = '7.0.15'\n\
            [offset 53] AUX FIELD ctime = '1795991473'\n[offset 82] Selecting DB ID 0\n[offset 34992] Selecting DB ID 2\n\
            [offset 35025] Checksum OK\n[offset 35025] \\o/ RDB looks OK! \\o/\n[info] 1002 keys read\n[info] 1 expires\n\
            [info] 0 already expired\n";
        let v = read_verdict(good, true);
        assert!(v.ok);
        assert_eq!((v.keys, v.expires, v.ctime), (Some(1002), Some(1), Some(1795991473)));
        assert_eq!(v.written_by.as_deref(), Some("7.0.15"));

        let truncated = "[offset 82] Selecting DB ID 0\n--- RDB ERROR DETECTED ---\n\
            [offset 20000] Unexpected EOF reading RDB file\n[additional info] While doing: read-object-value\n\
            [additional info] Reading key 'session::886'\n[info] 572 keys read\n";
        let v = read_verdict(truncated, false);
        assert!(!v.ok);
        assert_eq!(v.keys, Some(572));
        assert_eq!(
            v.error.as_deref(),
            Some(
                "Unexpected EOF reading RDB file at offset 20000; While doing: read-object-value; Reading key 'session::886'"
            )
        );

        let crc = "--- RDB ERROR DETECTED ---\n[offset 35025] RDB CRC error\n[additional info] While doing: check-sum\n[info] 1002 keys read\n";
        let v = read_verdict(crc, true);
        assert!(!v.ok, "a CRC error is a failure whatever the exit status");
        assert!(v.error.unwrap().contains("RDB CRC error"));

        let aof = "Start to check INCR files.\n0x              3b: Expected \\r\\n, got: 0000\n\
            AOF analyzed: filename=appendonly.aof.1.incr.aof, size=60, ok_up_to=23, ok_up_to_line=15, diff=37\n\
            AOF appendonly.aof.1.incr.aof is not valid. Use the --fix option to try fixing it.\n";
        let v = read_verdict(aof, false);
        assert!(!v.ok);
        let e = v.error.unwrap();
        assert!(e.contains("ok_up_to=23") && e.contains("is not valid") && e.contains("Expected"), "{e}");
    }
}
