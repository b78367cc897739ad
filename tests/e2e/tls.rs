//! Encrypted connections: managed PostgreSQL (RDS, Cloud SQL) refuses plaintext, so the
//! history store, a scratch server (drillbook's own connections and the restore tools') and
//! `manifest --url` take `sslmode` and `sslrootcert` in their URLs. The server here accepts
//! TLS only; its certificate comes from a CA made in the test.

use crate::servers::{PgServer, pg15_bin};
use crate::support::{Sandbox, sha256_hex};

#[test]
fn history_scratch_server_and_manifest_connect_over_verified_tls() {
    let (pg, ca) = PgServer::start_tls(&pg15_bin());
    let tls = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    pg.sql("postgres", "create database src");
    pg.sql("postgres", "create database history");
    pg.sql("src", "create table docs (id int primary key, body text); insert into docs select i, 'doc ' || i from generate_series(1, 250) i");

    let sb = Sandbox::new();
    let src = format!("postgres://postgres@127.0.0.1:{}/src?{tls}", pg.port);
    let r = sb.run(&["manifest", "--adapter", "postgres", "--url", &src, "--out", "truth/manifest.json"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(sb.read("truth/manifest.json").contains("public.docs"));

    let dump = sb.path("src.dump");
    pg.tool("pg_dump", &["-Fc", "-f", dump.to_str().unwrap(), "src"]);
    let bytes = std::fs::read(&dump).unwrap();
    sb.write("backups/src.dump", &bytes);
    sb.write("backups/src.dump.sha256", format!("{}  src.dump\n", sha256_hex(&bytes)));
    sb.write(
        "drillbook.yaml",
        format!(
            "state: \"postgres://postgres@127.0.0.1:{port}/history?{tls}\"\n\
             scratch:\n  managed: {{ type: postgres, url: \"postgres://postgres@127.0.0.1:{port}/postgres?{tls}\" }}\n",
            port = pg.port
        ),
    );
    sb.write(
        "rb.yaml",
        "version: 1\nname: tls-drill\nowner: sre\nasset: { name: docs, kind: relational, system: postgres }\n\
         source: { path: backups/, pick: src.dump, checksum: sidecar }\n\
         restore: { adapter: postgres, scratch: \"server:managed\", bin_dir: /usr/lib/postgresql/15/bin }\n\
         verify:\n  - name: rows\n    row_counts: { manifest: truth/manifest.json }\n",
    );
    let (r, report) = sb.drill("rb.yaml");
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(report["checks"][0]["status"], "passed", "{report:#}");
    let history = pg.sql("history", "select count(*) from runs where status = 'passed'");
    assert_eq!(history.trim(), "1", "the run is recorded in the TLS-only history store");

    // The same server through a CA that did not sign its certificate: refused, not trusted.
    let (_other, wrong_ca) = PgServer::start_tls(&pg15_bin());
    let bad =
        format!("postgres://postgres@127.0.0.1:{}/src?sslmode=verify-full&sslrootcert={}", pg.port, wrong_ca.display());
    let r = sb.run(&["manifest", "--adapter", "postgres", "--url", &bad, "--out", "truth/other.json"]);
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.to_lowercase().contains("certificate"), "{r}");
    // And without TLS the server refuses.
    let plain = format!("postgres://postgres@127.0.0.1:{}/src?sslmode=disable", pg.port);
    let r = sb.run(&["manifest", "--adapter", "postgres", "--url", &plain, "--out", "truth/plain.json"]);
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.contains("no encryption") || r.stderr.contains("pg_hba.conf"), "{r}");
    sb.assert_no_leftovers();
}
