//! A backup is hostile input (docs/SECURITY.md): what an attacker with write access to the
//! bucket can put in one must never act on the drill host. Each test: exit 1 or a proven
//! limit, a precise reason, and no side effect outside the drill.

use std::os::unix::fs::PermissionsExt;

use crate::support::{Sandbox, sha256_hex};

fn reasons(report: &serde_json::Value) -> String {
    report["failure_reasons"].to_string()
}

/// A plain-SQL "dump" whose line 4 runs a shell through psql's `\!`.
#[test]
fn a_plain_sql_dump_cannot_run_a_shell_through_psql() {
    let sb = Sandbox::new();
    let sentinel = sb.path("pwned");
    let script = format!(
        "--\n-- PostgreSQL database dump\n--\n\\! touch {}\nCREATE TABLE public.t (id integer);\nCOPY public.t (id) FROM stdin;\n1\n\\.\n",
        sentinel.display()
    );
    // The same, hidden after a statement on one line.
    let inline = format!("CREATE TABLE public.t (id integer); \\! touch {}\n", sentinel.display());
    for (name, sql, line) in [("line4.sql", &script, 4), ("inline.sql", &inline, 1)] {
        sb.write(&format!("backups/{name}"), sql);
        sb.write(&format!("backups/{name}.sha256"), format!("{}  {name}\n", sha256_hex(sql.as_bytes())));
        sb.write(
            "rb.yaml",
            format!(
                "version: 1\nname: hostile-sql\nowner: sre\nasset: {{ name: db, kind: relational, system: postgres }}\n\
                 source: {{ path: backups/, pick: {name}, checksum: sidecar }}\nrestore: {{ adapter: postgres }}\n\
                 verify:\n  - name: any\n    sql: select 1\n    expect: \"== 1\"\n"
            ),
        );
        let (r, report) = sb.drill("rb.yaml");
        assert_eq!(r.code, 1, "{r}");
        let why = reasons(&report);
        assert!(
            why.contains(&format!("plain SQL dump: psql meta-command \\\\! at line {line} refused ({name}:{line})")),
            "{why}"
        );
        assert!(!sentinel.exists(), "the backup ran a shell command");
        sb.assert_no_leftovers();
    }
}

/// A `command` check that prints its whole environment while drillbook's own holds secrets
/// (a storage key, a sentinel): none reaches the child, so none can appear anywhere.
#[test]
fn a_command_check_gets_a_cleared_environment_and_no_root() {
    let sentinel = "sentinel-7f3a9c-not-for-children";
    let sb = Sandbox::quickstart().env("AWS_SECRET_ACCESS_KEY", sentinel).env("DRILLBOOK_SENTINEL", sentinel);
    // run[0] relative: the runbook's folder, not the restored data (the child's working folder).
    // It fails on any variable beyond the documented few, printing its name, and as root.
    sb.write(
        "probe.sh",
        "#!/bin/sh\nextra=$(env | cut -d= -f1 | grep -vE '^(PATH|HOME|LANG|LC_[A-Z_]+|TZ|USER|LOGNAME|PWD|SHLVL|_|DRILL_SCRATCH_URL|DRILL_SCRATCH_DIR|DRILL_RUN_ID|ALLOW_ROOT)$')\n\
         env\necho \"uid=$(id -u) home=$HOME unexpected=[$extra]\"\n[ -z \"$extra\" ] || exit 7\n\
         [ \"$(id -u)\" != 0 ] || [ \"$ALLOW_ROOT\" = 1 ]\n",
    );
    std::fs::set_permissions(sb.path("probe.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = if crate::support::is_root() { "0" } else { "1" };
    let text = sb.read("quickstart.yaml").replace(
        "verify:\n",
        &format!(
            "verify:\n  - name: environment\n    command: {{ run: [./probe.sh], env: {{ ALLOW_ROOT: \"{root}\" }} }}\n"
        ),
    );
    sb.write("quickstart.yaml", text);
    let (r, report) = sb.drill("quickstart.yaml");
    assert_eq!(r.code, 0, "{r}");
    let check = &report["checks"][0];
    assert_eq!(check["status"], "passed", "{check:#}");
    let detail = check["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("uid="), "{detail}");
    if crate::support::is_root() {
        assert!(!detail.contains("uid=0 "), "a command check ran as root: {detail}");
    }
    let mut everything = format!("{}{}{report}", r.stdout, r.stderr);
    everything.push_str(&sb.run(&["history", "--output", "json"]).stdout);
    assert!(!everything.contains(sentinel), "drillbook's environment reached the child");
    sb.assert_no_leftovers();
}
