//! What a `pg_dump` backup is, read from its content: custom (`-Fc`), directory (as a tar),
//! tar (`-Ft`) or a plain SQL script; which versions made it and which extensions it needs.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::script::{Line, Scanner};
use crate::{AdapterError, Unpacked};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Custom,
    Directory,
    Tar,
    Plain,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Custom => "custom",
            Format::Directory => "directory",
            Format::Tar => "tar",
            Format::Plain => "plain SQL",
        }
    }

    /// Whether `pg_restore -j` can restore it in parallel.
    pub fn parallel(self) -> bool {
        matches!(self, Format::Custom | Format::Directory)
    }
}

#[derive(Debug, Clone)]
pub struct Dump {
    pub format: Format,
    /// What `pg_restore` or `psql` reads: a file, or the folder of a directory dump.
    pub path: PathBuf,
    /// `pg_dump`'s own version, from the archive header or the script's header comment.
    pub dumped_by: Option<String>,
    /// The source server's version.
    pub dumped_from: Option<String>,
    /// When `pg_dump` started, as it wrote it: the archive header's wall-clock time of the
    /// dumping host (its zone is not recorded), or a verbose script's `-- Started on` line
    /// when that is in UTC.
    pub created: Option<chrono::NaiveDateTime>,
}

/// Where a plain script's sections start, and what it needs.
#[derive(Debug, Clone, Default)]
pub struct PlainLayout {
    /// End of the header (`SET ...`, `\restrict`): replayed before the post-data part.
    pub prelude_end: u64,
    /// Start of the first post-data object (index, constraint, trigger), if any.
    pub post_data_start: Option<u64>,
    pub len: u64,
    pub extensions: Vec<String>,
    /// Extensions the script puts in a schema other than `public`, with that schema.
    pub extension_schemas: Vec<(String, String)>,
}

/// Finds the dump in what was unpacked and reads its header.
pub fn detect(backup: &Unpacked, file: Option<&str>) -> Result<Dump, AdapterError> {
    let path = match (file, &backup.single_file) {
        (Some(name), _) => crate::inside(&backup.root, name)
            .filter(|p| p.exists())
            .ok_or_else(|| AdapterError::Restore(format!("`{name}` is not in the backup ({} files)", backup.files)))?,
        (None, Some(single)) => single.clone(),
        (None, None) => find_toc(&backup.root).ok_or_else(|| {
            AdapterError::Restore(format!(
                "the backup is an archive of {} files with no pg_dump `toc.dat`; name the dump with `file:` beside `adapter`",
                backup.files
            ))
        })?,
    };
    let toc = if path.is_dir() { path.join("toc.dat") } else { path.clone() };
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(&toc)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|e| AdapterError::io(format!("cannot read {}", toc.display()), e))?;
    if head.starts_with(b"PGDMP") {
        let h = read_header(&head);
        // A tree is a directory dump or an unpacked `-Ft` archive (whose members end with the
        // `restore.sql` script); their `toc.dat` headers do not tell them apart.
        let format = if path.is_dir() {
            if path.join("restore.sql").is_file() { Format::Tar } else { Format::Directory }
        } else {
            match h.as_ref().map(|h| h.format) {
                Ok(1) | Err(_) => Format::Custom,
                Ok(other) => {
                    return Err(AdapterError::Restore(format!("pg_dump archive of unexpected format {other}")));
                }
            }
        };
        let (dumped_by, dumped_from, created) = h.map(|h| (h.dumped_by, h.dumped_from, h.created)).unwrap_or_default();
        return Ok(Dump { format, path, dumped_by, dumped_from, created });
    }
    if path.is_dir() {
        return Err(AdapterError::Restore(format!("{} has no pg_dump toc.dat", path.display())));
    }
    let text = String::from_utf8_lossy(&head);
    if head.contains(&0) || !(text.contains("PostgreSQL database dump") || looks_like_sql(&text)) {
        return Err(AdapterError::Restore(format!(
            "`{}` is neither a pg_dump archive (no PGDMP header) nor a SQL script",
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        )));
    }
    let comment = |key: &str| {
        text.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.split_whitespace().next().unwrap_or("").to_string())
    };
    Ok(Dump {
        format: Format::Plain,
        dumped_by: comment("-- Dumped by pg_dump version "),
        dumped_from: comment("-- Dumped from database version "),
        created: text.lines().find_map(|l| l.strip_prefix("-- Started on ")).and_then(|t| {
            let t = t.trim().strip_suffix(" UTC").or_else(|| t.trim().strip_suffix(" GMT"))?;
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").ok()
        }),
        path,
    })
}

fn looks_like_sql(text: &str) -> bool {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("--")).take(1).any(|l| {
        let up = l.to_ascii_uppercase();
        ["SET ", "CREATE ", "BEGIN", "INSERT ", "COPY ", "SELECT ", "\\"].iter().any(|k| up.starts_with(k))
    })
}

/// `toc.dat` at the root of the tree or in its only folder.
fn find_toc(root: &Path) -> Option<PathBuf> {
    if root.join("toc.dat").is_file() {
        return Some(root.to_path_buf());
    }
    let dirs: Vec<PathBuf> =
        std::fs::read_dir(root).ok()?.flatten().map(|e| e.path()).filter(|p| p.join("toc.dat").is_file()).collect();
    if dirs.len() == 1 { dirs.into_iter().next() } else { None }
}

struct Header {
    format: u8,
    dumped_from: Option<String>,
    dumped_by: Option<String>,
    created: Option<chrono::NaiveDateTime>,
}

/// The archive header written by `pg_dump` (`WriteHead` in pg_backup_archiver.c):
/// magic, version, int and offset sizes, format, compression (an int before archive 1.15,
/// a byte since), the dump time as seven ints, then the database name, the server's and
/// `pg_dump`'s versions as length-prefixed strings.
fn read_header(b: &[u8]) -> Result<Header, &'static str> {
    let byte = |i: usize| b.get(i).copied().ok_or("short header");
    let (vmaj, vmin) = (byte(5)?, byte(6)?);
    let int_size = byte(8)? as usize;
    let format = byte(10)?;
    if int_size == 0 || int_size > 8 {
        return Err("bad int size");
    }
    let mut at = 11;
    let read_int = |at: &mut usize| -> Result<i64, &'static str> {
        let sign = byte(*at)?;
        let mut v: i64 = 0;
        for i in 0..int_size {
            v |= (byte(*at + 1 + i)? as i64) << (8 * i);
        }
        *at += 1 + int_size;
        Ok(if sign != 0 { -v } else { v })
    };
    if (vmaj, vmin) >= (1, 15) {
        at += 1;
    } else {
        read_int(&mut at)?;
    }
    // `struct tm`: seconds, minutes, hours, day of month, month from 0, years since 1900, DST.
    let mut tm = [0i64; 7];
    for v in &mut tm {
        *v = read_int(&mut at)?;
    }
    let created = chrono::NaiveDate::from_ymd_opt((tm[5] + 1900) as i32, (tm[4] + 1) as u32, tm[3] as u32)
        .and_then(|d| d.and_hms_opt(tm[2] as u32, tm[1] as u32, tm[0] as u32));
    let read_str = |at: &mut usize| -> Result<Option<String>, &'static str> {
        let len = read_int(at)?;
        if len < 0 {
            return Ok(None);
        }
        let end = *at + len as usize;
        let s = b.get(*at..end).ok_or("short header")?;
        *at = end;
        Ok(Some(String::from_utf8_lossy(s).into_owned()))
    };
    let _dbname = read_str(&mut at)?;
    let dumped_from = read_str(&mut at)?;
    let dumped_by = read_str(&mut at)?;
    let first = |v: Option<String>| v.map(|s| s.split_whitespace().next().unwrap_or("").to_string());
    Ok(Header { format, dumped_from: first(dumped_from), dumped_by: first(dumped_by), created })
}

/// Extensions named in `pg_restore -l` output (`3; 3079 16385 EXTENSION - vector`).
pub fn extensions_in_listing(listing: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in listing.lines().filter(|l| !l.starts_with(';')) {
        let Some((_, rest)) = line.split_once(';') else { continue };
        let t: Vec<&str> = rest.split_whitespace().collect();
        if t.get(2) == Some(&"EXTENSION")
            && let Some(name) = t.get(4)
            && !out.iter().any(|n| n == name)
        {
            out.push(name.to_string());
        }
    }
    out
}

/// Object types `pg_dump` puts in the post-data section.
const POST_DATA: &[&str] = &[
    "INDEX",
    "CONSTRAINT",
    "FK CONSTRAINT",
    "TRIGGER",
    "RULE",
    "POLICY",
    "INDEX ATTACH",
    "EVENT TRIGGER",
    "STATISTICS",
    "MATERIALIZED VIEW DATA",
];

/// One pass over a plain script, before any of it runs: every line read as psql would read
/// it ([`super::script::Scanner`]), refusing what pg_dump would not write; where its header
/// ends, where post-data starts, which extensions it creates. COPY data and literals are not
/// looked into, so a row that looks like a comment is a row.
pub fn plain_layout(path: &Path) -> Result<PlainLayout, AdapterError> {
    let f = std::fs::File::open(path).map_err(|e| AdapterError::io(format!("cannot read {}", path.display()), e))?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut layout = PlainLayout::default();
    let mut scanner = Scanner::default();
    let refused = |e: super::script::Refused| {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        AdapterError::Restore(format!(
            "plain SQL dump: {} at line {} refused ({name}:{}); nothing of the script was run",
            e.what, e.line, e.line
        ))
    };
    let mut line = Vec::new();
    let mut at: u64 = 0;
    let mut seen_object = false;
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| AdapterError::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        let start = at;
        at += n as u64;
        if scanner.line(trim_newline(&line)).map_err(refused)? != Line::TopLevel {
            continue;
        }
        let text = String::from_utf8_lossy(trim_newline(&line));
        if let Some(rest) = text.strip_prefix("-- Name: ").or_else(|| text.strip_prefix("-- Data for Name: ")) {
            if !seen_object {
                seen_object = true;
                layout.prelude_end = start;
            }
            let ty = rest.split("; Type: ").nth(1).and_then(|t| t.split(';').next()).unwrap_or("");
            if layout.post_data_start.is_none() && POST_DATA.contains(&ty) {
                layout.post_data_start = Some(start);
            }
        }
        if let Some((name, schema)) = create_extension(&text) {
            if let Some(schema) = schema.filter(|s| s != "public") {
                layout.extension_schemas.push((name.clone(), schema));
            }
            if !layout.extensions.contains(&name) {
                layout.extensions.push(name);
            }
        }
    }
    scanner.finish().map_err(refused)?;
    layout.len = at;
    if !seen_object {
        layout.prelude_end = 0;
    }
    Ok(layout)
}

/// `CREATE EXTENSION [IF NOT EXISTS] name [WITH SCHEMA schema] …;` as pg_dump writes it: the
/// extension's name and its schema when named.
pub fn create_extension(line: &str) -> Option<(String, Option<String>)> {
    let rest = line.strip_prefix("CREATE EXTENSION ")?;
    let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
    let words: Vec<&str> = rest.trim_end_matches(';').split_whitespace().collect();
    let unquote = |w: &str| w.trim_matches('"').to_string();
    let name = unquote(words.first()?);
    let schema = words.windows(3).find(|w| w[0] == "WITH" && w[1] == "SCHEMA").map(|w| unquote(w[2]));
    (!name.is_empty()).then_some((name, schema))
}

/// Whether a top-level line of a script creates or comments on an extension (what a restore
/// without superuser leaves to drillbook, which created the extensions first).
pub fn extension_statement(line: &str) -> bool {
    line.starts_with("CREATE EXTENSION ") || line.starts_with("COMMENT ON EXTENSION ")
}

/// A `pg_restore --list` without its extension entries (and their comments), for a restore
/// without superuser.
pub fn listing_without_extensions(listing: &str) -> String {
    listing
        .lines()
        .filter(|l| !(l.contains(" EXTENSION - ") || l.contains(" COMMENT - EXTENSION ")))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Only the extension entries of a listing.
pub fn listing_of_extensions(listing: &str) -> String {
    listing.lines().filter(|l| l.contains(" EXTENSION - ")).map(|l| format!("{l}\n")).collect()
}

pub(crate) fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Statements of a plain script that a scratch copy must not run: ownership and grants name
/// roles that exist only on the source server, and publications/subscriptions reach other
/// servers. Archive formats get the same effect from `pg_restore --no-owner --no-privileges
/// --no-publications --no-subscriptions`.
pub fn skipped_statement(line: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "GRANT ",
        "REVOKE ",
        "ALTER DEFAULT PRIVILEGES ",
        "CREATE SUBSCRIPTION ",
        "ALTER SUBSCRIPTION ",
        "CREATE PUBLICATION ",
        "ALTER PUBLICATION ",
    ];
    (line.starts_with("ALTER ") && line.contains(" OWNER TO ")) || PREFIXES.iter().any(|p| line.starts_with(p))
}

/// A `-Ft` archive that unpacking turned into a tree, written back as one tar file:
/// `toc.dat` first, then the data files in the order `restore.sql` reads them (the order
/// `pg_dump` wrote them, which `pg_restore` requires), then `restore.sql`.
pub fn rebuild_tar(tree: &Path, out: &Path) -> Result<PathBuf, AdapterError> {
    let io = |what: &str, e: std::io::Error| AdapterError::io(format!("{what} {}", tree.display()), e);
    let script = std::fs::read_to_string(tree.join("restore.sql")).unwrap_or_default();
    let mut order: Vec<String> = Vec::new();
    for part in script.split("$$PATH$$/").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        if !name.is_empty() && !order.contains(&name) {
            order.push(name);
        }
    }
    let mut rest: Vec<String> = std::fs::read_dir(tree)
        .map_err(|e| io("cannot list", e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "toc.dat" && n != "restore.sql" && !order.contains(n))
        .collect();
    rest.sort_by_key(|n| (n.split('.').next().and_then(|d| d.parse::<u64>().ok()).unwrap_or(u64::MAX), n.clone()));
    let file =
        std::fs::File::create(out).map_err(|e| AdapterError::io(format!("cannot create {}", out.display()), e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let names = std::iter::once("toc.dat".to_string()).chain(order).chain(rest).chain(["restore.sql".to_string()]);
    for name in names {
        let p = tree.join(&name);
        if p.is_file() {
            tar.append_path_with_name(&p, &name).map_err(|e| io("cannot repack", e))?;
        }
    }
    tar.into_inner().and_then(|mut w| std::io::Write::flush(&mut w)).map_err(|e| io("cannot repack", e))?;
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_of_pg18_and_pg15_archives() {
        // The first bytes of real `pg_dump -Fc` files (18.3: archive 1.16; 15.20: archive 1.14).
        let mut v18 = b"PGDMP\x01\x10\x00\x04\x08\x01\x01".to_vec();
        let mut v15 = b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x01\x00\x00\x00".to_vec();
        for h in [&mut v18, &mut v15] {
            for n in [12u8, 47, 11, 29, 10, 126, 0] {
                h.extend([0, n, 0, 0, 0]);
            }
        }
        let s = |h: &mut Vec<u8>, text: &str| {
            h.extend([0, text.len() as u8, 0, 0, 0]);
            h.extend(text.as_bytes());
        };
        s(&mut v18, "postgres");
        s(&mut v18, "18.3");
        s(&mut v18, "18.3");
        s(&mut v15, "test");
        s(&mut v15, "15.20 (Debian 15.20-0+deb12u1)");
        s(&mut v15, "15.20 (Debian 15.20-0+deb12u1)");
        let h = read_header(&v18).unwrap();
        assert_eq!((h.format, h.dumped_by.as_deref(), h.dumped_from.as_deref()), (1, Some("18.3"), Some("18.3")));
        let h = read_header(&v15).unwrap();
        assert_eq!(h.dumped_by.as_deref(), Some("15.20"));
        // Seconds 12, minutes 47, hours 11, 29 November (month 10 from 0) of 2026 (126 after 1900).
        assert_eq!(h.created.map(|t| t.to_string()).as_deref(), Some("2026-11-29 11:47:12"));
        assert!(read_header(&v15[..40]).is_err());
    }

    #[test]
    fn listing_extensions() {
        let l = ";\n; Archive created at 2026-11-29\n2; 3079 16385 EXTENSION - vector \n4004; 0 0 COMMENT - EXTENSION vector \n217; 1259 16386 TABLE public docs postgres\n";
        assert_eq!(extensions_in_listing(l), ["vector"]);
    }

    #[test]
    fn skipped_statements() {
        assert!(skipped_statement("ALTER TABLE public.docs OWNER TO app;"));
        assert!(skipped_statement("GRANT SELECT ON TABLE public.docs TO reader;"));
        assert!(!skipped_statement("ALTER TABLE ONLY public.docs ADD CONSTRAINT docs_pkey PRIMARY KEY (id);"));
    }
}
