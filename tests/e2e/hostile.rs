//! A backup is hostile input (docs/SECURITY.md): what an attacker with write access to the
//! bucket can put in one must never act on the drill host. Each test: exit 1 or a proven
//! limit, a precise reason, and no side effect outside the drill.

use std::os::unix::fs::PermissionsExt;

use tar::EntryType::{Link, Symlink};

use crate::support::{Sandbox, TarBuilder, files_runbook, gzip, sha256_hex, zstd};

fn reasons(report: &serde_json::Value) -> String {
    report["failure_reasons"].to_string()
}

/// A plain-SQL "dump" whose line 4 runs a shell through psql's `\!`.
// fault: a plain SQL dump carrying psql's `\!` shell command | failed before psql runs | `plain SQL dump: psql meta-command \! at line N refused` | no shell ran, TMPDIR empty
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
// fault: a command check looks for drillbook's environment and for root | passed, with neither | uid not 0, no variable of drillbook's environment in its output | TMPDIR empty
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

/// Stages `tar` (zstd-compressed) as the only backup of a `files` runbook with `verify`.
fn files_drill(sb: &Sandbox, name: &str, tar: &[u8], verify: &str) -> (crate::support::Run, serde_json::Value) {
    sb.write("backups/docs.tar.zst", zstd(tar));
    sb.write("rb.yaml", files_runbook(name, verify));
    sb.drill("rb.yaml")
}

/// Link chains that pass a textual "stays inside" test but resolve out of the restore on
/// disk: refused at unpack, nothing outside readable, nothing left behind.
// fault: link chains that resolve outside only once all are made | failed | `… pointing out of the scratch dir` | outward links removed, TMPDIR empty
#[test]
fn link_chains_that_resolve_outside_are_refused() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            // The chain: `a -> .`, then a path through `a`, then a link through that.
            "chain",
            TarBuilder::new()
                .link(Symlink, "a", ".")
                .link(Symlink, "a/a/a/a/a/a/x", "../../../../../..")
                .link(Symlink, "secret", "x/etc/hostname")
                .finish(),
            "tar entry `a/a/a/a/a/a/x` would be written through the link `a`; refused",
        ),
        (
            "through-links",
            TarBuilder::new().link(Symlink, "a", ".").link(Symlink, "x", "a/a/a/..").finish(),
            "tar entry `x` is a symlink pointing out of the scratch dir (to `a/a/a/..`)",
        ),
        (
            // Inside when made (z did not exist), turned outwards by a later link.
            "turned-later",
            TarBuilder::new().link(Symlink, "y", "z/../etc/hostname").link(Symlink, "z", ".").finish(),
            "tar entry `y` is a symlink pointing out of the scratch dir (to `z/../etc/hostname`) through links made after it",
        ),
        (
            "dir-replaced-by-link",
            TarBuilder::new().file("d/f", b"x").link(Symlink, "d", "..").finish(),
            "tar entry `d` replaces a folder of an earlier entry",
        ),
        (
            "hard-link-to-passwd",
            TarBuilder::new().link(Link, "passwd", "/etc/passwd").finish(),
            "is a hard link pointing out of the scratch dir (to `/etc/passwd`)",
        ),
        (
            "hard-link-to-a-link",
            TarBuilder::new().file("f", b"x").link(Symlink, "l", "f").link(Link, "d/h", "l").finish(),
            "tar entry `d/h` is a hard link pointing out of the scratch dir (to `l`): not a file of this backup",
        ),
    ];
    for (name, tar, reason) in cases {
        let sb = Sandbox::new();
        let (r, report) = files_drill(&sb, name, &tar, "");
        assert_eq!(r.code, 1, "{name}: {r}");
        let why = reasons(&report);
        assert!(why.contains(reason), "{name}: {why}");
        sb.assert_no_leftovers();
    }
}

/// A GNU sparse entry declaring 100 GiB in a tiny archive counts at 100 GiB.
// fault: a sparse tar entry declaring 100 GiB | failed | `unpack: expansion beyond the limit` | TMPDIR empty
#[test]
fn a_sparse_entry_counts_at_its_declared_size() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new().file("a.txt", b"hello").sparse("huge.img", 100 << 30).finish();
    let packed = gzip(&tar);
    assert!(packed.len() < 10 * 1024, "{} bytes", packed.len());
    let (r, report) = files_drill(&sb, "sparse", &tar, "");
    assert_eq!(r.code, 1, "{r}");
    let why = reasons(&report);
    assert!(why.contains("expansion beyond the limit"), "{why}");
    sb.assert_no_leftovers();
}

/// A setuid, world-writable file comes back owner-only, without its special bits; folders
/// are owner-only too. Proven by a check that looks at the restored copy.
// fault: a backup holding setuid and world-readable files | passed, modes stripped | `bin/suid 700`, `docs/readme.txt 600` | TMPDIR empty
#[test]
fn restored_files_lose_setuid_and_are_owner_only() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new()
        .file_with_mode("bin/suid", b"#!/bin/sh\necho hi\n", 0o4777)
        .file_with_mode("docs/readme.txt", b"plain", 0o666)
        .finish();
    let verify =
        "verify:\n  - name: modes\n    command: { run: [sh, -c, \"stat -c '%n %a' bin bin/suid docs/readme.txt\"] }\n";
    let (r, report) = files_drill(&sb, "modes", &tar, verify);
    assert_eq!(r.code, 0, "{r}");
    let detail = report["checks"][0]["detail"].as_str().unwrap_or_default();
    assert_eq!(detail, "bin 700 | bin/suid 700 | docs/readme.txt 600", "{report:#}");
    sb.assert_no_leftovers();
}

/// Keys 0600, the history database 0600, report folders 0750 and their files 0640: created
/// with those modes, whatever the umask allows beyond them.
#[test]
fn keys_history_and_evidence_are_created_private() {
    let sb = Sandbox::quickstart();
    let (r, report) = sb.drill("quickstart.yaml");
    assert_eq!(r.code, 0, "{r}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sb.path(".drillbook/signing.pem")), 0o600);
    assert_eq!(mode(&sb.path("drillbook.db")), 0o600);
    let folder = sb.path(&format!("drill-reports/quickstart-rag/{}", report["run_id"].as_str().unwrap()));
    assert_eq!(mode(&folder), 0o750);
    assert_eq!(mode(folder.parent().unwrap()), 0o750);
    for f in ["report.json", "report.dsse.json", "report.html", "report.md"] {
        assert_eq!(mode(&folder.join(f)), 0o640, "{f}");
    }
}

/// SQL in an archive is hostile too: a materialized view whose query calls a function that
/// runs `COPY … TO PROGRAM` runs a shell as the scratch cluster's OS user when a superuser
/// restores it (the dump's post-data `REFRESH MATERIALIZED VIEW` calls it; seen by hand as
/// superuser). The restore role has no superuser, so nothing runs.
// fault: a pg_dump archive whose materialized view runs `COPY … TO PROGRAM` | failed | `restore: … during restore.post-data … REFRESH MATERIALIZED VIEW public.mv … ERROR: … external program` (the restore role is no superuser) | no program ran, TMPDIR empty
#[test]
fn an_archive_cannot_run_a_program_through_its_sql() {
    let sb = Sandbox::new();
    // A folder the scratch cluster's user could write to, were it allowed to run programs.
    let open = sb.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sentinel = open.join("pwned");
    let db = crate::servers::SystemDb::create("drillbook_hostile");
    db.sql(
        "create function g() returns int language plpgsql volatile as $$ begin return 1; end $$;
         create table t (i int primary key); insert into t values (1), (2);
         create materialized view mv as select g() as x;",
    );
    // Harmless when the view was filled at the source; hostile when a restore refreshes it.
    db.sql(&format!(
        "create or replace function g() returns int language plpgsql volatile as $$ \
         begin execute 'copy (select 1) to program ''touch {}'''; return 1; end $$",
        sentinel.display()
    ));
    let dump = sb.path("hostile.dump");
    db.tool("pg_dump", &["-Fc", "-f", dump.to_str().unwrap(), &db.name]);
    let bytes = std::fs::read(&dump).unwrap();
    std::fs::remove_file(&dump).unwrap();
    sb.write("backups/hostile.dump", &bytes);
    sb.write("backups/hostile.dump.sha256", format!("{}  hostile.dump\n", sha256_hex(&bytes)));
    sb.write(
        "rb.yaml",
        "version: 1\nname: hostile-archive\nowner: sre\nasset: { name: db, kind: relational, system: postgres }\n\
         source: { path: backups/, pick: hostile.dump, checksum: sidecar }\nrestore: { adapter: postgres }\n\
         verify:\n  - name: rows\n    sql: select count(*) from t\n    expect: \"== 2\"\n",
    );
    let (r, report) = sb.drill("rb.yaml");
    assert_eq!(r.code, 1, "{r}");
    let why = reasons(&report);
    assert!(why.contains("restore.post-data") && why.contains("REFRESH MATERIALIZED VIEW public.mv"), "{why}");
    assert!(why.contains("ERROR:") && why.contains("external program"), "the server's refusal is the reason: {why}");
    assert!(!sentinel.exists(), "the archive ran a program");
    sb.assert_no_leftovers();
}

/// A `command` check runs unprivileged, yet reads the restored copy even when `root:` picks a
/// folder deep inside owner-only folders of the backup.
#[test]
fn an_unprivileged_command_check_reads_a_deep_root() {
    let sb = Sandbox::new();
    let tar = TarBuilder::new().file("docs/sub/readme.txt", b"restored words").file("other/secret.txt", b"x").finish();
    let verify =
        "  root: docs/sub\nverify:\n  - name: readable\n    command: { run: [sh, -c, \"cat readme.txt; id -u\"] }\n";
    let (r, report) = files_drill(&sb, "deep-root", &tar, verify);
    assert_eq!(r.code, 0, "{r}");
    let detail = report["checks"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("restored words"), "{detail}");
    if crate::support::is_root() {
        assert!(!detail.ends_with("| 0"), "ran as root: {detail}");
    }
}
