//! The mariadb adapter against dumps made by the machine's MariaDB with the real
//! `mariadb-dump`: restored into a throwaway `mariadbd` or a scratch database on the server,
//! proven against a manifest; and the ways such a dump goes bad.

use crate::bad_input::{fails_with, step};
use crate::servers::MariaSource;
use crate::support::{Sandbox, gzip, processes_under};

/// Documents (JSON), chunks with a foreign key and an index, a view, a trigger, a procedure.
fn populated() -> MariaSource {
    let src = MariaSource::create("dbk_src");
    src.sql(
        "create table documents (id int primary key, title varchar(200) not null, meta json, key idx_title (title));
         create table chunks (id int primary key, document_id int not null, body text, score double,
           constraint fk_doc foreign key (document_id) references documents (id));
         insert into documents
           select seq, concat('doc ', seq, ' ''quoted'' \\\\ back'), json_object('lang', if(seq % 4 = 0, 'de', 'en'))
           from seq_1_to_300;
         insert into chunks select seq, 1 + seq % 300, repeat('chunk ', seq % 20), seq / 7 from seq_1_to_1200;
         create view english as select id from documents where json_value(meta, '$.lang') = 'en';
         create trigger upper_title before insert on documents for each row set new.title = upper(new.title);
         create procedure count_docs() select count(*) from documents;",
    );
    src
}

fn manifest(sb: &Sandbox, src: &MariaSource) {
    let out = sb.path("truth/db.json");
    let r = sb.run(&["manifest", "--adapter", "mariadb", "--url", &src.url(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r}");
}

const CHECKS: &str = r#"  - name: documents restored
    sql: select count(*) from documents
    expect: "== 300"
  - name: JSON intact
    sql: select count(*) from documents where json_value(meta, '$.lang') = 'de'
    expect: "== 75"
  - name: row counts as at backup time
    row_counts: { manifest: truth/db.json }
  - name: chunks identical
    table_checksum: { table: chunks, manifest: truth/db.json }
  - name: documents identical
    table_checksum: { table: documents, manifest: truth/db.json }
  - name: schema unchanged
    schema: { expected: truth/db.json }
  - name: every table checks OK
    check_tables: {}
"#;

fn runbook(scratch: &str) -> String {
    format!(
        "version: 1\nname: maria-docs\nowner: sre\nasset: {{ name: docs, kind: document-store, system: mariadb }}\n\
         objectives: {{ rto: 5m }}\nsource: {{ path: backups/ }}\nrestore: {{ adapter: mariadb, scratch: {scratch} }}\n\
         verify:\n{CHECKS}timeouts: {{ step: 3m, drill: 6m }}\n"
    )
}

#[test]
fn a_dump_restores_into_a_throwaway_server_and_matches_its_manifest() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    sb.write("backups/docs.sql.gz", gzip(&src.dump()));
    sb.write("maria.yaml", runbook("local"));
    let (run, report) = sb.drill("maria.yaml");
    assert_eq!(run.code, 0, "{run}\n{:#}", report["checks"]);
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    let detail = step(&report, "restore")["detail"].as_str().unwrap();
    assert!(detail.starts_with("MariaDB dump from MariaDB 10."), "{detail}");
    assert!(detail.contains(&format!("into `{}`", src.db)) && detail.ends_with("; 2 tables"), "{detail}");
    assert_eq!(step(&report, "restore.data")["status"], "passed");
    sb.assert_no_leftovers();
    assert!(processes_under(&sb.root).is_empty(), "{:?}", processes_under(&sb.root));
}

#[test]
fn a_dump_restores_into_a_scratch_database_that_is_dropped_afterwards() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    sb.write("backups/docs.sql", src.dump());
    sb.write("drillbook.yaml", "scratch:\n  maria: { type: mariadb, url: \"mysql://root@127.0.0.1:3306/\" }\n");
    sb.write("maria.yaml", runbook("server:maria"));
    let (run, report) = sb.drill("maria.yaml");
    assert_eq!(run.code, 0, "{run}\n{:#}", report["checks"]);
    let scratch = format!("drillbook_{}", report["run_id"].as_str().unwrap().replace('-', "_"));
    let detail = step(&report, "restore")["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("into `{scratch}`")), "{detail}");
    let left = src.sql(&format!("select count(*) from information_schema.schemata where schema_name = '{scratch}'"));
    assert_eq!(left, "0", "the scratch database was not dropped");
    sb.assert_no_leftovers();
}

// fault: a MariaDB dump with a `\!` shell escape | failed before the client runs | `SQL dump: client command \! at line …` | TMPDIR empty, history row
#[test]
fn a_shell_escape_in_a_dump_is_refused_before_the_client_runs() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let sentinel = sb.path("pwned");
    let mut dump = String::from_utf8(src.dump()).unwrap();
    dump = dump.replacen("UNLOCK TABLES;\n", &format!("UNLOCK TABLES;\n\\! touch {}\n", sentinel.display()), 1);
    sb.write("backups/docs.sql", dump);
    sb.write("maria.yaml", runbook("local"));
    fails_with(&sb, "maria.yaml", "SQL dump: client command `\\!` at line");
    assert!(!sentinel.exists(), "the dump ran a shell");
    assert!(processes_under(&sb.root).is_empty());
}

// fault: a truncated MariaDB dump | failed | `… ends inside a quoted string or comment (truncated?)` | TMPDIR empty, history row
#[test]
fn a_truncated_dump_fails_the_restore() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let dump = src.dump();
    // Cut inside the chunks' INSERT: the client sees a statement that never ends.
    let at = dump.windows(19).position(|w| w == b"INSERT INTO `chunks").unwrap() + 5000;
    sb.write("backups/docs.sql", &dump[..at]);
    sb.write("maria.yaml", runbook("local"));
    fails_with(&sb, "maria.yaml", "ends inside a quoted string or comment (truncated?)");
}

// fault: rows deleted before the MariaDB backup | failed | `chunks: 1100 rows, expected 1200` | TMPDIR empty, history row
#[test]
fn rows_missing_against_the_manifest_fail_counts_and_digests() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    src.sql("delete from chunks where id > 1100");
    sb.write("backups/docs.sql", src.dump());
    sb.write("maria.yaml", runbook("local"));
    let (_, report) = fails_with(&sb, "maria.yaml", "chunks: 1100 rows, expected 1200");
    let checks = report["checks"].as_array().unwrap();
    let named = |n: &str| checks.iter().find(|c| c["name"] == n).unwrap();
    assert_eq!(named("chunks identical")["status"], "failed");
    assert_eq!(named("documents identical")["status"], "passed");
}

// fault: a dump from a newer MariaDB | failed | `the dump comes from MariaDB 99.1.2-MariaDB, newer than the local mariadbd (10.…)` | TMPDIR empty, history row
#[test]
fn a_dump_from_a_newer_mariadb_names_both_versions() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let dump = String::from_utf8(src.dump()).unwrap();
    let line = dump.lines().find(|l| l.starts_with("-- Server version")).unwrap().to_string();
    sb.write("backups/docs.sql", dump.replacen(&line, "-- Server version\t99.1.2-MariaDB", 1));
    sb.write("maria.yaml", runbook("local"));
    let (_, report) =
        fails_with(&sb, "maria.yaml", "the dump comes from MariaDB 99.1.2-MariaDB, newer than the local mariadbd (10.");
    assert!(report["failure_reasons"].to_string().contains("restore it with MariaDB 99.1 or newer"));
}

#[test]
fn the_mariadb_example_runs_as_documented() {
    let sb = Sandbox::new().with_example("mariadb");
    let (run, report) = sb.drill("mariadb.yaml");
    assert_eq!(run.code, 0, "{run}\n{:#}", report["checks"]);
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:#?}");
    assert_eq!(step(&report, "integrity")["status"], "passed", "the sidecar checksum is verified");
    sb.assert_no_leftovers();
}

/// `mariadb-backup --backup` of the source database (and `mysql`, as a partial backup needs),
/// packed as a tar of its target folder, as a nightly job would ship it.
fn physical_backup(src: &MariaSource, prepare: bool, edit: impl Fn(&std::path::Path)) -> Vec<u8> {
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("backup");
    let out = std::process::Command::new("mariadb-backup")
        .args(["--backup", "--user=root", "--host=127.0.0.1"])
        .arg(format!("--target-dir={}", target.display()))
        .arg(format!("--databases={} mysql", src.db))
        .output()
        .expect("mariadb-backup (apt-get install mariadb-backup; scripts/test-deps.sh)");
    assert!(out.status.success(), "mariadb-backup: {}", String::from_utf8_lossy(&out.stderr));
    if prepare {
        let out = std::process::Command::new("mariadb-backup")
            .arg("--prepare")
            .arg(format!("--target-dir={}", target.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb-backup --prepare: {}", String::from_utf8_lossy(&out.stderr));
    }
    edit(&target);
    let tar =
        std::process::Command::new("tar").arg("-C").arg(work.path()).args(["-cf", "-", "backup"]).output().unwrap();
    assert!(tar.status.success());
    tar.stdout
}

#[test]
fn a_mariadb_backup_is_prepared_started_and_checked() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    sb.write("backups/full.tar.zst", crate::support::zstd(&physical_backup(&src, false, |_| {})));
    sb.write("maria.yaml", runbook("local"));
    let (run, report) = sb.drill("maria.yaml");
    assert_eq!(run.code, 0, "{run}\n{:#}", report["checks"]);
    let detail = step(&report, "restore")["detail"].as_str().unwrap();
    assert!(detail.starts_with("mariadb-backup (full-backuped, prepared now) of MariaDB 10."), "{detail}");
    assert!(detail.contains("1 databases, 2 tables"), "{detail}");
    assert_eq!(step(&report, "restore.prepare")["status"], "passed");
    assert_eq!(step(&report, "restore.start")["status"], "passed");
    sb.assert_no_leftovers();
    assert!(processes_under(&sb.root).is_empty(), "{:?}", processes_under(&sb.root));
}

#[test]
fn a_corrupt_page_in_a_physical_backup_is_named() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let db = src.db.clone();
    // Prepared (so no redo log rewrites the page on the drill's side), then bit rot in storage:
    // 16 bytes flipped in every data page of the chunks tablespace (pages 3 and up).
    let tar = physical_backup(&src, true, |target| {
        let ibd = target.join(&db).join("chunks.ibd");
        let mut bytes = std::fs::read(&ibd).unwrap();
        let pages = bytes.len() / 16384;
        for page in 3..pages {
            for b in &mut bytes[page * 16384 + 2000..page * 16384 + 2016] {
                *b ^= 0x5a;
            }
        }
        std::fs::write(&ibd, bytes).unwrap();
    });
    sb.write("backups/full.tar", tar);
    sb.write("maria.yaml", runbook("local"));
    let (run, report) = sb.drill("maria.yaml");
    assert_eq!(run.code, 1, "{run}");
    let reasons = report["failure_reasons"].to_string();
    assert!(reasons.contains("check `every table checks OK` failed"), "{reasons}");
    assert!(reasons.contains("chunks: error: Corrupt"), "CHECK TABLE names the corrupt table: {reasons}");
    assert!(reasons.contains("Table `") && reasons.contains("`.`chunks` is corrupted"), "{reasons}");
    sb.assert_no_leftovers();
    assert!(processes_under(&sb.root).is_empty(), "{:?}", processes_under(&sb.root));
}

/// `mariadb-backup --backup --stream=xbstream` of the source database (and `mysql`).
fn stream_backup(src: &MariaSource) -> Vec<u8> {
    let scratch = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("mariadb-backup")
        .args(["--backup", "--user=root", "--host=127.0.0.1", "--stream=xbstream"])
        .arg(format!("--databases={} mysql", src.db))
        .arg(format!("--target-dir={}", scratch.path().display()))
        .output()
        .expect("mariadb-backup (apt-get install mariadb-backup; scripts/test-deps.sh)");
    assert!(out.status.success(), "mariadb-backup: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn an_mbstream_backup_is_unpacked_prepared_and_checked() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    sb.write("backups/full.xbstream.zst", crate::support::zstd(&stream_backup(&src)));
    sb.write("maria.yaml", runbook("local"));
    let (run, report) = sb.drill("maria.yaml");
    assert_eq!(run.code, 0, "{run}\n{:#}", report["checks"]);
    let detail = step(&report, "restore")["detail"].as_str().unwrap();
    assert!(detail.starts_with("mariadb-backup (full-backuped, prepared now)"), "{detail}");
    sb.assert_no_leftovers();
    assert!(processes_under(&sb.root).is_empty(), "{:?}", processes_under(&sb.root));
}

// fault: a truncated mbstream backup | failed | `mbstream -x failed` | TMPDIR empty, history row
#[test]
fn a_truncated_mbstream_fails_naming_mbstream() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let stream = stream_backup(&src);
    sb.write("backups/full.xbstream", &stream[..stream.len() / 2]);
    sb.write("maria.yaml", runbook("local"));
    fails_with(&sb, "maria.yaml", "mbstream -x failed");
}

#[test]
fn a_databases_dump_restores_locally_and_is_refused_on_a_shared_server() {
    let src = populated();
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let out = std::process::Command::new("mariadb-dump")
        .args([
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "--single-transaction",
            "--routines",
            "--triggers",
            "--databases",
            &src.db,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    sb.write("backups/docs.sql", &out.stdout);
    sb.write("maria.yaml", runbook("local"));
    let (run, report) = sb.drill("maria.yaml");
    assert_eq!(run.code, 0, "{run}\n{:#}", report["checks"]);
    // On a shared server it would create and USE the source's own database name: refused.
    sb.write("drillbook.yaml", "scratch:\n  maria: { type: mariadb, url: \"mysql://root@127.0.0.1:3306/\" }\n");
    sb.write("shared.yaml", runbook("server:maria").replace("name: maria-docs", "name: maria-shared"));
    fails_with(&sb, "shared.yaml", "the dump holds several databases (--all-databases or --databases)");
}

// fault: a dump that switches database (`USE other`) | failed | `SQL dump: client command USE at line …` | no other database touched, TMPDIR empty
#[test]
fn a_dump_that_switches_database_cannot_reach_beyond_its_scratch_database() {
    let src = populated();
    let victim = MariaSource::create("dbk_victim");
    victim.sql("create table documents (id int primary key); insert into documents values (1), (2), (3)");
    let sb = Sandbox::new();
    manifest(&sb, &src);
    let dump = String::from_utf8(src.dump()).unwrap();
    let hostile = dump.replacen(
        "DROP TABLE IF EXISTS `chunks`;",
        &format!("USE `{}`;\nDROP TABLE IF EXISTS `documents`;\nDROP TABLE IF EXISTS `chunks`;", victim.db),
        1,
    );
    sb.write("backups/docs.sql", hostile);
    sb.write("drillbook.yaml", "scratch:\n  maria: { type: mariadb, url: \"mysql://root@127.0.0.1:3306/\" }\n");
    sb.write("maria.yaml", runbook("server:maria"));
    fails_with(&sb, "maria.yaml", "SQL dump: client command `USE` at line");
    assert_eq!(victim.sql("select count(*) from documents"), "3", "the dump reached another database");
}
