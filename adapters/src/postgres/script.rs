//! A plain SQL dump is hostile input fed to `psql`, whose backslash commands run programs
//! (`\!`, `\o |cmd`, `\copy … program`), read files (`\i`) or change the connection
//! (`\connect`). Before anything of a script runs, [`Scanner`] reads it the way psql's lexer
//! does (quotes, dollar quotes, comments, parentheses, `BEGIN ATOMIC` bodies, COPY data) and
//! refuses any backslash command pg_dump itself would not write, wherever on a line it
//! stands. psql's `\restrict` (where the tools have it) is the second wall.
//!
//! Where psql's reading could differ from ours (`standard_conforming_strings` off, a COPY
//! pg_dump would not write, COPY inside parentheses or a function body), the script is
//! refused rather than guessed at: a genuine pg_dump script never looks like that.

/// Why a script was refused, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub line: u64,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Normal,
    /// Inside '…'; `escapes` when a backslash escapes the next character (E'…', or every
    /// string while standard_conforming_strings is off).
    Quote {
        escapes: bool,
        after_backslash: bool,
    },
    Ident,
    Dollar(String),
    Block(u32),
    /// COPY … FROM stdin data, up to a line `\.`.
    Copy,
}

/// One reading of a script. psql reads '…' strings differently when the server's
/// `standard_conforming_strings` is off; a script is scanned under both readings.
#[derive(Debug)]
struct Lexer {
    state: State,
    std_strings: bool,
    /// The current statement's text at top level (quoted parts as `_`), for COPY.
    stmt: String,
    stmt_line: u64,
    parens: u32,
    begins: u32,
    words: u32,
    /// First letters of the statement's first words when they are create/or/replace/
    /// function/procedure: psql's test for a function body.
    initials: [u8; 4],
    /// A COPY … FROM stdin ended on this line: its data starts on the next.
    copy_next: bool,
}

/// Reads a whole script line by line under both readings of '…' strings.
#[derive(Debug)]
pub struct Scanner {
    readings: [Lexer; 2],
    line: u64,
}

/// What a line is, for the caller's own bookkeeping (post-data, extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The line starts outside quotes, comments and COPY data.
    TopLevel,
    /// COPY data, or inside a literal or comment.
    Inner,
    /// `\restrict KEY` / `\unrestrict KEY` written by pg_dump 17.6+ (and 13.22+ …): the
    /// restore replaces them with its own.
    Restrict,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner { readings: [Lexer::new(true), Lexer::new(false)], line: 0 }
    }
}

impl Scanner {
    /// Reads one line (without its newline); refuses what psql must not be given.
    pub fn line(&mut self, text: &[u8]) -> Result<Line, Refused> {
        self.line += 1;
        let kind = match (&self.readings[0].state, restrict_line(text)) {
            (State::Normal, true) if self.readings[0].stmt.trim().is_empty() => Line::Restrict,
            (State::Normal, _) => Line::TopLevel,
            _ => Line::Inner,
        };
        if kind == Line::Restrict {
            return Ok(kind);
        }
        for r in &mut self.readings {
            r.line(text, self.line)?;
        }
        Ok(kind)
    }

    /// At the end of the script: an unterminated quote or COPY means psql would read it
    /// differently from what pg_dump writes.
    pub fn finish(&self) -> Result<(), Refused> {
        match &self.readings[0].state {
            State::Normal | State::Copy => Ok(()),
            other => Err(Refused { line: self.line, what: format!("the script ends inside {}", describe(other)) }),
        }
    }
}

fn describe(s: &State) -> &'static str {
    match s {
        State::Quote { .. } => "a quoted string",
        State::Ident => "a quoted identifier",
        State::Dollar(_) => "a dollar-quoted string",
        State::Block(_) => "a comment",
        State::Copy => "COPY data",
        State::Normal => "a statement",
    }
}

fn restrict_line(text: &[u8]) -> bool {
    let t = String::from_utf8_lossy(text);
    let mut parts = t.split_whitespace();
    matches!(parts.next(), Some("\\restrict" | "\\unrestrict")) && parts.next().is_some() && parts.next().is_none()
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

impl Lexer {
    fn new(std_strings: bool) -> Lexer {
        Lexer {
            state: State::Normal,
            std_strings,
            stmt: String::new(),
            stmt_line: 0,
            parens: 0,
            begins: 0,
            words: 0,
            initials: [0; 4],
            copy_next: false,
        }
    }

    fn line(&mut self, text: &[u8], line: u64) -> Result<(), Refused> {
        let refuse = |what: String| Err(Refused { line, what });
        if self.state == State::Copy {
            if text == b"\\." {
                self.state = State::Normal;
            }
            return Ok(());
        }
        let mut i = 0;
        while i < text.len() {
            let c = text[i];
            match &mut self.state {
                State::Copy => unreachable!("COPY data starts on the next line"),
                State::Quote { escapes, after_backslash } => {
                    if *after_backslash {
                        *after_backslash = false;
                    } else if c == b'\\' && *escapes {
                        *after_backslash = true;
                    } else if c == b'\'' {
                        if text.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            self.state = State::Normal;
                        }
                    }
                }
                State::Ident => {
                    if c == b'"' {
                        if text.get(i + 1) == Some(&b'"') {
                            i += 1;
                        } else {
                            self.state = State::Normal;
                        }
                    }
                }
                State::Dollar(tag) => {
                    if c == b'$' && text[i..].starts_with(tag.as_bytes()) {
                        i += tag.len() - 1;
                        self.state = State::Normal;
                    }
                }
                State::Block(depth) => {
                    if c == b'*' && text.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.state = State::Normal;
                        }
                    } else if c == b'/' && text.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        i += 1;
                    }
                }
                State::Normal => {
                    if self.copy_next && !c.is_ascii_whitespace() && !text[i..].starts_with(b"--") {
                        return refuse("a COPY … FROM stdin statement followed by more on its line".into());
                    }
                    let prev = if i > 0 { Some(text[i - 1]) } else { None };
                    match c {
                        b'\\' => {
                            let name: String = String::from_utf8_lossy(&text[i..])
                                .chars()
                                .take_while(|ch| !ch.is_whitespace())
                                .take(20)
                                .collect();
                            let hint = if name == "\\c" || name == "\\connect" {
                                " (a dump made with --create switches databases; dump without it)"
                            } else {
                                ""
                            };
                            return refuse(format!("psql meta-command {name}{hint}"));
                        }
                        b'-' if text.get(i + 1) == Some(&b'-') => break,
                        b'/' if text.get(i + 1) == Some(&b'*') => {
                            self.state = State::Block(1);
                            i += 1;
                        }
                        b'\'' => {
                            // E'…' (a lone E or e before the quote) takes backslash escapes.
                            let e_string = matches!(prev, Some(b'e' | b'E')) && (i < 2 || !is_ident_char(text[i - 2]));
                            let escapes = e_string || !self.std_strings;
                            self.state = State::Quote { escapes, after_backslash: false };
                            self.push('_', line);
                        }
                        b'"' => {
                            self.state = State::Ident;
                            self.push('_', line);
                        }
                        b'$' if !prev.is_some_and(is_ident_char) => match dollar_tag(&text[i..]) {
                            Some(tag) => {
                                i += tag.len() - 1;
                                self.state = State::Dollar(tag);
                                self.push('_', line);
                            }
                            None => self.push('$', line),
                        },
                        b'(' => {
                            self.parens += 1;
                            self.push('(', line);
                        }
                        b')' => {
                            self.parens = self.parens.saturating_sub(1);
                            self.push(')', line);
                        }
                        b';' if self.parens == 0 && self.begins == 0 => self.end_statement(text, line)?,
                        c if is_ident_char(c) && !prev.is_some_and(is_ident_char) => {
                            let word: String = text[i..]
                                .iter()
                                .take_while(|b| is_ident_char(**b))
                                .map(|b| (*b as char).to_ascii_lowercase())
                                .collect();
                            self.word(&word);
                            for ch in word.chars() {
                                self.push(ch, line);
                            }
                            i += word.len() - 1;
                        }
                        c => self.push(if c.is_ascii_whitespace() { ' ' } else { c as char }, line),
                    }
                }
            }
            i += 1;
        }
        if self.state == State::Normal {
            self.push(' ', line);
        }
        if self.copy_next {
            self.copy_next = false;
            self.state = State::Copy;
        }
        Ok(())
    }

    /// psql ≥ 14's heuristic (psqlscan.l): in `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, at
    /// parenthesis depth 0, `;` between BEGIN and END (CASE … END nested) does not end the
    /// statement.
    fn word(&mut self, word: &str) {
        if self.words == 0 {
            self.initials = [0; 4];
        }
        if ["create", "function", "procedure", "or", "replace"].contains(&word)
            && let Some(slot) = self.initials.get_mut(self.words as usize)
        {
            *slot = word.as_bytes()[0];
        }
        self.words += 1;
        let i = self.initials;
        let in_function = i[0] == b'c'
            && (i[1] == b'f' || i[1] == b'p' || (i[1] == b'o' && i[2] == b'r' && (i[3] == b'f' || i[3] == b'p')));
        if in_function && self.parens == 0 {
            match word {
                "begin" => self.begins += 1,
                "case" if self.begins >= 1 => self.begins += 1,
                "end" => self.begins = self.begins.saturating_sub(1),
                _ => {}
            }
        }
    }

    fn push(&mut self, c: char, line: u64) {
        if self.stmt.trim().is_empty() {
            self.stmt_line = line;
        }
        if self.stmt.len() < 8192 {
            self.stmt.push(c);
        }
    }

    /// A top-level `;`. A COPY is only believed in pg_dump's own form, alone on one line.
    fn end_statement(&mut self, text: &[u8], line: u64) -> Result<(), Refused> {
        let stmt = std::mem::take(&mut self.stmt);
        let words = std::mem::replace(&mut self.words, 0);
        let stmt = stmt.trim();
        if words > 0 && stmt.split([' ', '(']).next() == Some("copy") {
            let whole = String::from_utf8_lossy(text);
            if self.stmt_line != line || !pg_dump_copy(whole.trim()) {
                return Err(Refused {
                    line,
                    what: "a COPY statement pg_dump would not write (it writes `COPY name (columns) FROM stdin;` \
                           alone on a line)"
                        .into(),
                });
            }
            self.copy_next = true;
        }
        if stmt.contains("standard_conforming_strings") && !stmt.starts_with("set standard_conforming_strings = on") {
            return Err(Refused {
                line,
                what: "a change of standard_conforming_strings (pg_dump only sets it on)".into(),
            });
        }
        Ok(())
    }
}

/// `$tag$` or `$$` at the start of `s`.
fn dollar_tag(s: &[u8]) -> Option<String> {
    let end = s[1..].iter().position(|b| *b == b'$')? + 1;
    let tag = &s[1..end];
    let ok = tag.is_empty()
        || (!tag[0].is_ascii_digit() && tag.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80));
    ok.then(|| String::from_utf8_lossy(&s[..=end]).into_owned())
}

/// `COPY name [(columns)] FROM stdin;` exactly as pg_dump writes it: names bare or quoted.
fn pg_dump_copy(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("COPY ") else { return false };
    let Some(rest) = rest.strip_suffix(" FROM stdin;") else { return false };
    let mut s = rest;
    // The qualified name: parts joined by dots.
    loop {
        let Some(after) = identifier(s) else { return false };
        s = after;
        match s.strip_prefix('.') {
            Some(after) => s = after,
            None => break,
        }
    }
    if s.is_empty() {
        return true;
    }
    let Some(mut cols) = s.strip_prefix(" (") else { return false };
    loop {
        let Some(after) = identifier(cols) else { return false };
        if after == ")" {
            return true;
        }
        let Some(after) = after.strip_prefix(", ") else { return false };
        cols = after;
    }
}

/// One identifier at the start of `s` (bare, or quoted with doubled quotes); what follows.
fn identifier(s: &str) -> Option<&str> {
    if let Some(q) = s.strip_prefix('"') {
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if q[i + 1..].starts_with('"') {
                    chars.next();
                } else {
                    return Some(&q[i + 1..]);
                }
            }
        }
        return None;
    }
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(s.len());
    (end > 0 && !s.as_bytes()[0].is_ascii_digit()).then(|| &s[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(script: &str) -> Result<Vec<Line>, Refused> {
        let mut s = Scanner::default();
        let lines = script.lines().map(|l| s.line(l.as_bytes())).collect::<Result<Vec<_>, _>>()?;
        s.finish()?;
        Ok(lines)
    }

    fn refused(script: &str) -> (u64, String) {
        let r = scan(script).expect_err(script);
        (r.line, r.what)
    }

    #[test]
    fn a_pg_dump_script_passes_with_its_copy_data_and_restrict_lines() {
        let script = "--\n-- PostgreSQL database dump\n--\n\\restrict abc123\nSET standard_conforming_strings = on;\n\
                      SELECT pg_catalog.set_config('search_path', '', false);\n\
                      CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $_$select '\\! not a command'$_$;\n\
                      CREATE TABLE public.t (id int, \"begin\" int, begin_at int, \"end\" text);\n\
                      CREATE FUNCTION public.g() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT 1;\n SELECT 2;\nEND;\n\
                      COPY public.\"Odd; name\" (id, \"a \"\"b\"\"\", body) FROM stdin;\n1\t\\\\! rm -rf /\t'\n2\t\\N\tx\n\\.\n\
                      CREATE INDEX i ON public.t USING hnsw (embedding public.vector_cosine_ops);\n\\unrestrict abc123\n";
        let lines = scan(script).expect("a pg_dump script passes");
        assert_eq!(lines[3], Line::Restrict);
        assert_eq!(lines[lines.len() - 1], Line::Restrict);
        assert_eq!(lines[14], Line::Inner, "COPY data");
        assert_eq!(lines[16], Line::Inner, "the end of COPY data");
        assert_eq!(lines[17], Line::TopLevel);
    }

    #[test]
    fn backslash_commands_are_refused_wherever_they_stand() {
        assert_eq!(refused("SET x = 1;\n\n\n\\! touch /tmp/x\n"), (4, "psql meta-command \\!".into()));
        assert_eq!(refused("select 1; \\! id\n").1, "psql meta-command \\!");
        assert_eq!(refused("select 1 \\g |sh\n").1, "psql meta-command \\g");
        assert_eq!(refused("\\o |sh\n").1, "psql meta-command \\o");
        assert_eq!(refused("\\copy t from program 'id'\n").1, "psql meta-command \\copy");
        assert!(refused("\\connect other\n").1.contains("--create"));
        assert_eq!(refused("\\restrict a b\n").1, "psql meta-command \\restrict");
        // pg_dump's own lines are taken out of the script, wherever a statement may start.
        assert_eq!(scan("select 1;\n\\unrestrict k\n"), Ok(vec![Line::TopLevel, Line::Restrict]));
        assert_eq!(refused("select 1\n\\unrestrict k\n").1, "psql meta-command \\unrestrict");
    }

    #[test]
    fn quotes_cannot_hide_a_command_from_one_reading() {
        // With standard_conforming_strings off, psql reads \' as an escaped quote: the string
        // goes on and the command is inside it; with it on, the command runs. Both readings
        // are checked.
        assert_eq!(refused("select 'a\\'; \\! id\n';\n").1, "psql meta-command \\!");
        assert!(scan("select E'a\\'; \\! in the string';\n").is_ok(), "E'' takes escapes in both readings");
        assert_eq!(refused("select $x$ $y$ $x$ \\! id\n").1, "psql meta-command \\!");
        assert_eq!(refused("/* /* nested */ */ \\! id\n").1, "psql meta-command \\!");
        assert_eq!(refused("select \"a\"\"\" \\! id\n").1, "psql meta-command \\!");
        assert!(refused("SET standard_conforming_strings = off;\n").1.contains("standard_conforming_strings"));
        assert!(refused("select 'never closed\n").1.contains("ends inside a quoted string"));
    }

    #[test]
    fn only_pg_dumps_own_copy_starts_data() {
        // A COPY psql would not treat as data-in: the lines after it are SQL, so they are read.
        assert!(refused("copy t from stdin;\n'\n\\.\n\\! id\n").1.contains("COPY statement pg_dump would not write"));
        assert!(refused("COPY (select 1 from stdin) TO stdout;\n").1.contains("COPY statement"));
        assert!(refused("select $$\nCOPY t FROM stdin;\n$$;\n\\! id\n\\.\n").1.contains("meta-command \\!"));
        assert!(refused("COPY t FROM stdin; \\! id\nx\n\\.\n").1.contains("COPY statement pg_dump would not write"));
        assert!(refused("COPY t FROM stdin; select 1;\nx\n\\.\n").1.contains("COPY statement pg_dump would not write"));
        assert!(refused("select (\nCOPY t FROM stdin;\n\\! id\n").1.contains("meta-command"));
        assert!(scan("COPY public.t (a, b) FROM stdin;\n\\! data, not a command\n\\.\n").is_ok());
        assert!(scan("COPY t FROM stdin;\n").is_ok(), "psql ends COPY data at the end of input");
    }
}
