//! `state: postgres://...`: the same history in the machine's real PostgreSQL.

use std::process::Command;

use crate::support::Sandbox;

struct Database {
    name: String,
}

/// Runs one statement as the `postgres` superuser on the machine's PostgreSQL.
fn psql(sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run psql ({e}); install postgresql-client and start PostgreSQL: scripts/test-deps.sh")
        })
}

impl Database {
    fn create() -> Database {
        let name = format!("drillbook_e2e_{}_{}", std::process::id(), uuid_like());
        let out = psql(&format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "cannot create a database on 127.0.0.1:5432 (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Database { name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        % 1_000_000_000
}

#[test]
fn history_in_postgresql() {
    let db = Database::create();
    let sb = Sandbox::quickstart();
    sb.write("drillbook.yaml", format!("state: postgres://postgres@127.0.0.1:5432/{}\n", db.name));
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    sb.edit("quickstart.yaml", "expect: \">= 200\"", "expect: \"> 200\"");
    let (run2, report2) = sb.drill("quickstart.yaml");
    assert_eq!(run2.code, 1, "{run2}");
    assert_eq!(report2["previous"]["run_id"], report["run_id"]);
    let rows = sb.history();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(rows[1]["status"], "passed");
    assert!(!sb.path("drillbook.db").exists(), "history must live in PostgreSQL, not SQLite");
}
