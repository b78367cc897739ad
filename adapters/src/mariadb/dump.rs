//! What drillbook reads of a `mariadb-dump`/`mysqldump` file itself: its header (which tool
//! and server wrote it, which database) and, before the `mariadb` client sees any of it, every
//! client command it holds. The client runs `system`, `\!`, `source`, `tee`, `pager`, … from
//! its input; a dump is backup content, so any client command `mariadb-dump` would not write
//! is refused with its line (the client also runs with `--sandbox --binary-mode`).

/// The header of a dump.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DumpInfo {
    /// `MariaDB` or `MySQL`, from `-- MariaDB dump` / `-- MySQL dump`.
    pub product: String,
    /// `-- Server version`: the server the dump was taken from (`10.11.19-MariaDB-0+deb12u1`).
    pub server_version: Option<String>,
    /// `Database:` of the `-- Host:` line; `None` for `--all-databases` (or `--databases a b`).
    pub database: Option<String>,
}

/// Reads the header (the first 30 lines). `Err` when the file is not a dump at all.
pub fn header(text_start: &str) -> Result<DumpInfo, String> {
    let mut info = DumpInfo::default();
    for line in text_start.lines().take(30) {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("-- MariaDB dump") {
            let _ = rest;
            info.product = "MariaDB".into();
        } else if line.starts_with("-- MySQL dump") {
            info.product = "MySQL".into();
        } else if let Some(rest) = line.strip_prefix("-- Host:") {
            info.database = rest.split("Database:").nth(1).map(str::trim).filter(|d| !d.is_empty()).map(String::from);
        } else if let Some(rest) = line.strip_prefix("-- Server version") {
            info.server_version = Some(rest.trim().to_string());
        } else if line.starts_with("-- Current Database:") {
            // `--databases`/`--all-databases`: the dump creates and `USE`s its databases itself,
            // whatever the `Database:` of its header says.
            info.database = None;
            break;
        }
    }
    if info.product.is_empty() {
        return Err("not a mariadb-dump or mysqldump file (no `-- MariaDB dump` or `-- MySQL dump` header)".into());
    }
    Ok(info)
}

/// `10.11.19-MariaDB-0+deb12u1` → (10, 11).
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Client commands a dump may hold: `USE` and `DELIMITER` (for routines and triggers).
const ALLOWED: &[&str] = &["use", "delimiter"];

/// The client's named commands (mysql/mariadb `commands[]`), recognised as the first word of a
/// statement.
const NAMED: &[&str] = &[
    "?",
    "clear",
    "connect",
    "delimiter",
    "edit",
    "ego",
    "exit",
    "go",
    "help",
    "nopager",
    "notee",
    "pager",
    "print",
    "prompt",
    "quit",
    "rehash",
    "source",
    "status",
    "system",
    "tee",
    "use",
    "charset",
    "warnings",
    "nowarning",
    "resetconnection",
    "sandbox",
];

#[derive(Clone, Copy, PartialEq)]
enum State {
    Normal,
    Single,
    Double,
    Backtick,
    /// A plain `/* */` comment; `/*!…*/` and `/*M!…*/` are code to the client.
    Comment,
}

/// Reads a dump line by line as the client's lexer would and refuses any client command but
/// `USE`, `DELIMITER` and the sandbox marker `mariadb-dump` writes first
/// (`/*M!999999\- … */`). Fed while the dump streams to the client: a line reaches the client
/// only after it passed.
pub struct Scanner {
    name: String,
    state: State,
    delimiter: Vec<u8>,
    /// Whether the current statement has any text yet (a named command only starts one).
    statement_empty: bool,
    statements: u64,
    lines: usize,
    /// Restoring into one scratch database on a shared server: `USE` and statements that
    /// create, drop or alter a database are refused (they would reach beyond the scratch).
    confined: bool,
}

impl Scanner {
    pub fn new(name: &str) -> Scanner {
        Scanner {
            name: name.to_string(),
            state: State::Normal,
            delimiter: b";".to_vec(),
            statement_empty: true,
            statements: 0,
            lines: 0,
            confined: false,
        }
    }

    /// A scanner for a restore into one scratch database on a shared server.
    pub fn confined(name: &str) -> Scanner {
        Scanner { confined: true, ..Scanner::new(name) }
    }

    /// One line, without its `\n`.
    pub fn line(&mut self, line: &[u8]) -> Result<(), String> {
        self.lines += 1;
        let number = self.lines;
        let name = &self.name;
        let refuse = |what: &str| -> String {
            format!("SQL dump: client command {what} at line {number} refused ({name}:{number})")
        };
        if number == 1 && line.trim_ascii_end() == b"/*M!999999\\- enable the sandbox mode */" {
            return Ok(());
        }
        if self.state == State::Normal && self.statement_empty {
            let text = String::from_utf8_lossy(line);
            let first = text.trim_start().split(|c: char| c.is_whitespace() || c == ';').next().unwrap_or("");
            let word = first.to_ascii_lowercase();
            if NAMED.contains(&word.as_str()) && !text.trim_start().starts_with("--") {
                if !ALLOWED.contains(&word.as_str()) || (self.confined && word == "use") {
                    return Err(refuse(&format!("`{first}`")));
                }
                if word == "delimiter" {
                    let new = text.split_whitespace().nth(1).unwrap_or("");
                    if new.is_empty() || new.contains('\\') {
                        return Err(refuse(&format!("`{}`", text.trim())));
                    }
                    self.delimiter = new.as_bytes().to_vec();
                    return Ok(());
                }
            }
        }
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            match self.state {
                State::Single | State::Double | State::Backtick => {
                    let close = match self.state {
                        State::Single => b'\'',
                        State::Double => b'"',
                        _ => b'`',
                    };
                    // Most of a dump is inside strings: jump to the next quote or backslash.
                    let escape = if self.state == State::Backtick { close } else { b'\\' };
                    match memchr::memchr2(close, escape, &line[i..]) {
                        None => break,
                        Some(k) => i += k,
                    }
                    if line[i] == b'\\' && self.state != State::Backtick {
                        i += 1; // the escaped character
                    } else {
                        self.state = State::Normal;
                    }
                }
                State::Comment => {
                    if line[i..].starts_with(b"*/") {
                        self.state = State::Normal;
                        i += 1;
                    }
                }
                State::Normal => {
                    if line[i..].starts_with(&self.delimiter) {
                        self.statements += 1;
                        self.statement_empty = true;
                        i += self.delimiter.len();
                        continue;
                    }
                    match c {
                        b'\'' => self.state = State::Single,
                        b'"' => self.state = State::Double,
                        b'`' => self.state = State::Backtick,
                        b'#' => break,
                        b'-' if line[i..].starts_with(b"-- ") || &line[i..] == b"--" => break,
                        b'/' if line[i..].starts_with(b"/*") => {
                            let conditional = line[i..].starts_with(b"/*!") || line[i..].starts_with(b"/*M!");
                            if !conditional {
                                self.state = State::Comment;
                            }
                            i += 2;
                            continue;
                        }
                        b'\\' => {
                            let next = line.get(i + 1).map(|&b| b as char).unwrap_or(' ');
                            return Err(refuse(&format!("`\\{next}`")));
                        }
                        _ => {}
                    }
                    if !c.is_ascii_whitespace() {
                        if self.confined
                            && self.statement_empty
                            && let Some(what) = leaves_database(&line[i..])
                        {
                            return Err(format!(
                                "SQL dump: `{what}` at line {number} refused: restored into a scratch database on a \
                                 shared server, a dump may not create, drop, alter or switch databases ({name}:{number})"
                            ));
                        }
                        self.statement_empty = false;
                    }
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// The end of the dump: refused when it stops inside a string or comment.
    pub fn finish(&self) -> Result<u64, String> {
        if self.state != State::Normal {
            return Err(format!("SQL dump: {} ends inside a quoted string or comment (truncated?)", self.name));
        }
        Ok(self.statements)
    }
}

/// `USE`, `CREATE|DROP|ALTER DATABASE|SCHEMA` at the start of a statement (after an
/// executable comment's `!NNNNN` or `M!NNNNN` too), in words.
fn leaves_database(rest: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&rest[..rest.len().min(256)]);
    let mut t = text.as_ref();
    t = t.strip_prefix('M').filter(|r| r.starts_with('!')).unwrap_or(t);
    t = t.strip_prefix('!').map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit())).unwrap_or(t);
    let words: Vec<String> = t
        .split(|c: char| c.is_whitespace() || c == '`' || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["USE", ..] => Some("USE".into()),
        [verb @ ("CREATE" | "DROP" | "ALTER"), what @ ("DATABASE" | "SCHEMA"), ..] => Some(format!("{verb} {what}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: localhost    Database: rag\n-- ------------------------------------------------------\n-- Server version\t10.11.19-MariaDB-0+deb12u1\n\n/*!40101 SET NAMES utf8mb4 */;\nDROP TABLE IF EXISTS `docs`;\nCREATE TABLE `docs` (\n  `id` int(11) NOT NULL,\n  `source` varchar(10)\n) ENGINE=InnoDB;\nINSERT INTO `docs` VALUES (1,'a\\\\n; \\' system'),(2,\"x\\\"\");\nDELIMITER ;;\n/*!50003 CREATE*/ /*!50003 trigger t before insert on docs for each row set new.id = 1\n*/;;\nDELIMITER ;\nUSE `rag`;\n";

    /// [`Scanner`] over a whole dump; returns how many statements it saw.
    fn scan(input: impl std::io::BufRead, name: &str) -> Result<u64, String> {
        let mut scanner = Scanner::new(name);
        for line in input.split(b'\n') {
            let line = line.map_err(|e| format!("cannot read {name}: {e}"))?;
            scanner.line(&line)?;
        }
        scanner.finish()
    }

    fn scan_str(s: &str) -> Result<u64, String> {
        scan(s.as_bytes(), "d.sql")
    }

    #[test]
    fn a_real_dump_passes_and_its_header_is_read() {
        assert_eq!(scan_str(DUMP), Ok(6));
        let h = header(DUMP).unwrap();
        assert_eq!(h.product, "MariaDB");
        assert_eq!(h.database.as_deref(), Some("rag"));
        assert_eq!(h.server_version.as_deref(), Some("10.11.19-MariaDB-0+deb12u1"));
        assert_eq!(major_minor("10.11.19-MariaDB-0+deb12u1"), Some((10, 11)));
        assert_eq!(major_minor("8.0.36"), Some((8, 0)));
        assert!(header("select 1;").is_err());
        let all = DUMP.replace("Database: rag", "Database: ");
        assert_eq!(header(&all).unwrap().database, None);
    }

    #[test]
    fn client_commands_are_refused_wherever_the_client_would_run_them() {
        let cases = [
            ("\\! touch /tmp/x\n", "client command `\\!` at line 1"),
            ("select 1; \\! id\n", "client command `\\!` at line 1"),
            ("system touch /tmp/x\n", "client command `system` at line 1"),
            ("SYSTEM id\n", "client command `SYSTEM`"),
            ("select 1;\nsource /etc/passwd\n", "client command `source` at line 2"),
            ("/*!40101 \\! id */;\n", "client command `\\!`"),
            ("tee /tmp/out\n", "client command `tee`"),
            ("pager sh\n", "client command `pager`"),
            ("\\. /tmp/other.sql\n", "client command `\\.`"),
            ("DELIMITER \\!\n", "client command `DELIMITER \\!`"),
            ("insert into t values ('x');\n\\! id\n", "at line 2"),
        ];
        for (text, want) in cases {
            let e = scan_str(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        // The same words inside strings, comments, identifiers or a statement pass.
        for ok in [
            "select '\\! id', \"system\";\n",
            "/* \\! id */ select 1;\n",
            "-- system id\nselect 1;\n",
            "# \\! id\nselect 1;\n",
            "create table t (\nsource int\n);\n",
            "select `\\!`;\n",
        ] {
            assert!(scan_str(ok).is_ok(), "{ok:?}: {:?}", scan_str(ok));
        }
        assert!(scan_str("insert into t values ('cut").unwrap_err().contains("truncated"));
    }

    #[test]
    fn a_confined_restore_stays_in_its_database() {
        let confined = |text: &str| {
            let mut s = Scanner::confined("d.sql");
            text.split('\n').try_for_each(|l| s.line(l.as_bytes())).and_then(|()| s.finish())
        };
        for (text, want) in [
            ("USE `prod`;\n", "client command `USE`"),
            ("select 1; use prod;\n", "`USE` at line 1 refused"),
            ("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `prod`;\n", "`CREATE DATABASE` at line 1 refused"),
            ("/*!40000 DROP DATABASE prod */;\n", "`DROP DATABASE`"),
            ("insert into t values (1);\nalter schema prod charset utf8;\n", "`ALTER SCHEMA` at line 2"),
        ] {
            let e = confined(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(confined("create table t (used int, `database` int);\ninsert into t values (1, 2);\n").is_ok());
        assert!(scan_str("USE `prod`;\n").is_ok(), "a local restore may switch databases");
        let multi = DUMP.replace("-- Server version", "-- Current Database: `rag`\n-- Server version");
        assert_eq!(header(&multi).unwrap().database, None);
    }
}
