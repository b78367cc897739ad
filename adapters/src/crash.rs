//! Reading a scratch server's log for a crash: a process of the server killed by a signal
//! that says the build does not fit this machine (4, illegal instruction) or that memory went
//! wrong (7, bus error; 11, segmentation fault). A client only sees "server closed the
//! connection"; the log says why, and the reason should say it too.
//!
//! The patterns are the engines' own log lines, so every adapter that starts a server reads
//! its log through [`find`]:
//! - PostgreSQL: `server process (PID 81) was terminated by signal 4: Illegal instruction`,
//!   `background worker "parallel worker" (PID 82) was terminated by signal 4: …`, then
//!   `DETAIL:  Failed process was running: CREATE INDEX …`;
//! - MariaDB: `mariadbd got signal 11 ;`; Redis: `Redis 7.0.15 crashed by signal: 11`.

/// A crash found in a server log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    pub signal: i32,
    /// What died, in the log's words: `backend`, `parallel worker`, `server`.
    pub process: String,
    /// The statement it was running, when the log says.
    pub running: Option<String>,
}

/// The signals that mean a crash rather than a stop someone asked for.
const CRASH_SIGNALS: [i32; 3] = [libc::SIGILL, libc::SIGBUS, libc::SIGSEGV];

/// The last crash by SIGILL, SIGBUS or SIGSEGV in `log`, if any.
pub fn find(log: &str) -> Option<Crash> {
    let lines: Vec<&str> = log.lines().collect();
    let mut found = None;
    for (i, line) in lines.iter().enumerate() {
        let Some((signal, process)) = signal_of(line) else { continue };
        if !CRASH_SIGNALS.contains(&signal) {
            continue;
        }
        let running = lines[i + 1..]
            .iter()
            .take(3)
            .find_map(|l| l.split_once("Failed process was running:").map(|(_, q)| one_line(q)));
        found = Some(Crash { signal, process, running });
    }
    found
}

/// `(signal, process)` when `line` reports a process killed by a signal.
fn signal_of(line: &str) -> Option<(i32, String)> {
    if let Some((before, after)) = line.split_once(" was terminated by signal ") {
        let process = if before.contains("server process") {
            "backend".to_string()
        } else if let Some(name) = before.split('"').nth(1) {
            name.to_string()
        } else {
            "server process".to_string()
        };
        return Some((leading_number(after)?, process));
    }
    for marker in [" got signal ", " crashed by signal: "] {
        if let Some((_, after)) = line.split_once(marker) {
            return Some((leading_number(after)?, "server".to_string()));
        }
    }
    None
}

fn leading_number(s: &str) -> Option<i32> {
    let digits: String = s.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s }
}

impl Crash {
    /// The signal's name and what it most likely means on a drill host.
    fn meaning(&self) -> (&'static str, &'static str) {
        match self.signal {
            libc::SIGILL => (
                "illegal instruction",
                "this build of the server or an extension uses CPU instructions this machine lacks \
                 (use a build for this CPU, e.g. one made for baseline x86-64)",
            ),
            libc::SIGBUS => (
                "bus error",
                "a memory-mapped file changed size under the server, shared memory ran out, or the build \
                 does not fit this machine",
            ),
            _ => (
                "segmentation fault",
                "the server or an extension crashed on this data or this machine; the server log has the details",
            ),
        }
    }

    /// `the PostgreSQL 17.4 server at … crashed: backend killed by signal 4 (illegal
    /// instruction) while running `…`; this build … lacks`.
    pub fn reason(&self, server: &str) -> String {
        let (name, meaning) = self.meaning();
        let running = self.running.as_deref().map(|q| format!(" while running `{q}`")).unwrap_or_default();
        format!("{server} crashed: {} killed by signal {} ({name}){running}; {meaning}", self.process, self.signal)
    }
}

/// The end of a scratch server's log file (1 MiB at most: a crash is near the end); empty when
/// there is none.
pub fn read_log(path: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(1 << 20)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_killed_by_sigill_is_named_with_its_statement() {
        let log = "2026-11-29 10:00:01.123 UTC [81] LOG:  database system is ready to accept connections\n\
                   2026-11-29 10:00:03.456 UTC [80] LOG:  server process (PID 97) was terminated by signal 4: Illegal instruction\n\
                   2026-11-29 10:00:03.456 UTC [80] DETAIL:  Failed process was running: CREATE INDEX chunks_embedding_hnsw ON public.chunks\n\
                   \tUSING hnsw (embedding public.vector_cosine_ops);\n\
                   2026-11-29 10:00:03.456 UTC [80] LOG:  terminating any other active server processes\n";
        let crash = find(log).expect("a crash");
        assert_eq!(crash.signal, 4);
        assert_eq!(crash.process, "backend");
        assert_eq!(crash.running.as_deref(), Some("CREATE INDEX chunks_embedding_hnsw ON public.chunks"));
        let why = crash.reason("the PostgreSQL 17.4 server at /tmp/x/pg");
        assert_eq!(
            why,
            "the PostgreSQL 17.4 server at /tmp/x/pg crashed: backend killed by signal 4 (illegal instruction) \
             while running `CREATE INDEX chunks_embedding_hnsw ON public.chunks`; this build of the server or an \
             extension uses CPU instructions this machine lacks (use a build for this CPU, e.g. one made for \
             baseline x86-64)"
        );
    }

    #[test]
    fn a_parallel_worker_killed_by_sigbus_names_the_worker() {
        let log = "LOG:  background worker \"parallel worker\" (PID 1201) was terminated by signal 7: Bus error\n";
        let crash = find(log).expect("a crash");
        assert_eq!((crash.signal, crash.process.as_str(), crash.running.as_deref()), (7, "parallel worker", None));
        assert!(crash.reason("s").contains("parallel worker killed by signal 7 (bus error)"));
    }

    #[test]
    fn segfaults_of_other_engines_are_read_too() {
        let maria = "251129 10:00:00 [ERROR] mariadbd got signal 11 ;\nThis could be because you hit a bug.\n";
        assert_eq!(find(maria).map(|c| (c.signal, c.process)), Some((11, "server".to_string())));
        let redis = "=== REDIS BUG REPORT START: Cut & paste starting from here ===\n\
                     12:M 29 Nov 2026 10:00:00.000 # Redis 7.0.15 crashed by signal: 11, si_code: 1\n";
        let why = find(redis).expect("a crash").reason("the Redis server");
        assert!(why.contains("signal 11 (segmentation fault)"), "{why}");
    }

    #[test]
    fn stops_that_were_asked_for_are_not_crashes() {
        let log = "LOG:  server process (PID 97) was terminated by signal 9: Killed\n\
                   LOG:  background worker \"logical replication launcher\" (PID 70) exited with exit code 1\n\
                   LOG:  received fast shutdown request\n";
        assert_eq!(find(log), None);
        assert_eq!(find(""), None);
    }

    #[test]
    fn the_last_crash_wins() {
        let log = "LOG:  server process (PID 1) was terminated by signal 11: Segmentation fault\n\
                   LOG:  server process (PID 2) was terminated by signal 4: Illegal instruction\n";
        assert_eq!(find(log).map(|c| c.signal), Some(4));
    }
}
