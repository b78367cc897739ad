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

#[test]
fn state_may_be_a_secret_reference_and_its_password_is_never_shown() {
    let db = Database::create();
    let password = "st0re-Passw0rd-4711";
    let url = format!("postgres://postgres:{password}@127.0.0.1:5432/{}", db.name);
    let sb = Sandbox::quickstart().env("DRILLBOOK_STATE", &url);
    sb.write("drillbook.yaml", "state: \"${env:DRILLBOOK_STATE}\"\n");
    let (run, _) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(sb.history().len(), 1);
    assert!(!sb.path("drillbook.db").exists(), "history must live in PostgreSQL");
    // A store that cannot be opened names itself without the password.
    let sb = sb.env("DRILLBOOK_STATE", &format!("postgres://postgres:{password}@127.0.0.1:5432/no_such_db_4711"));
    let r = sb.run(&["history"]);
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.contains("postgres://postgres:[redacted]@127.0.0.1:5432/no_such_db_4711"), "{r}");
    assert!(!format!("{}{}", r.stdout, r.stderr).contains(password), "{r}");
}
