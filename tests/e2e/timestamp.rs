//! Trusted timestamps (RFC 3161) from a real TSA on loopback: `openssl ts -reply` with a CA
//! made here, behind a small HTTP server.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use crate::support::Sandbox;

/// A TSA: a CA, a time-stamping certificate it signed, and `openssl ts -reply` answering POSTs.
struct Tsa {
    server: Child,
    port: u16,
}

impl Drop for Tsa {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn sh(sb: &Sandbox, script: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(script).current_dir(&sb.root).output().expect("sh");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A CA and a TSA certificate under `DIR` (openssl from Debian's openssl package).
fn make_tsa_keys(sb: &Sandbox, dir: &str) {
    let (ok, out) = sh(
        sb,
        &format!(
            r#"set -e
mkdir -p {dir} && cd {dir}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 \
  -subj "/CN=drillbook test TSA CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tsa.key -out tsa.csr -subj "/CN=drillbook test TSA" 2>/dev/null
printf 'extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n' > ext.cnf
openssl x509 -req -in tsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tsa.pem -days 2 -extfile ext.cnf 2>/dev/null
echo 01 > serial
cat > tsa.cnf <<CNF
[ tsa ]
default_tsa = here
[ here ]
dir = $PWD
serial = \$dir/serial
crypto_device = builtin
signer_cert = \$dir/tsa.pem
certs = \$dir/tsa.pem
signer_key = \$dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
CNF
"#
        ),
    );
    assert!(ok, "openssl (apt-get install openssl): {out}");
}

const SERVER: &str = r#"
import http.server, os, subprocess, sys
d = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        q, r = os.path.join(d, "q.tsq"), os.path.join(d, "r.tsr")
        open(q, "wb").write(self.rfile.read(int(self.headers["Content-Length"])))
        subprocess.run(["openssl", "ts", "-reply", "-config", os.path.join(d, "tsa.cnf"), "-queryfile", q, "-out", r],
                       check=True, capture_output=True)
        body = open(r, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

fn start_tsa(sb: &Sandbox, dir: &str) -> Tsa {
    let mut server = Command::new("python3")
        .args(["-c", SERVER])
        .arg(sb.path(dir))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 for the TSA's HTTP side");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).expect("the TSA's port");
    Tsa { port: line.trim().parse().expect("a port"), server }
}

fn config(sb: &Sandbox, port: u16) {
    sb.write("drillbook.yaml", format!("timestamp: {{ url: \"http://127.0.0.1:{port}/\", ca: tsa/ca.pem }}\n"));
}

fn notification(sb: &Sandbox, run_id: &str) -> String {
    let h = sb.history();
    let row = h.iter().find(|r| r["run_id"] == run_id).expect("the run in history");
    row["notification"].as_str().unwrap_or_default().to_string()
}

#[test]
fn every_report_is_timestamped_by_the_tsa_and_verified_against_its_ca() {
    let sb = Sandbox::quickstart();
    make_tsa_keys(&sb, "tsa");
    let tsa = start_tsa(&sb, "tsa");
    config(&sb, tsa.port);
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    let id = report["run_id"].as_str().unwrap().to_string();
    let folder = format!("drill-reports/quickstart-rag/{id}");
    assert!(sb.path(&format!("{folder}/report.tsr")).exists());
    assert!(notification(&sb, &id).starts_with("timestamp: "), "{}", notification(&sb, &id));
    let r = sb.run(&["report", "verify", &format!("{folder}/report.dsse.json")]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("timestamped at") && r.stdout.contains("checked against"), "{r}");

    // The README's line: openssl alone.
    let (ok, out) = sh(
        &sb,
        &format!(
            "D=$(grep -o '\"sig\": *\"[^\"]*\"' {folder}/report.dsse.json | cut -d'\"' -f4 | base64 -d | sha256sum | cut -d' ' -f1)\n\
             openssl ts -verify -digest \"$D\" -in {folder}/report.tsr -CAfile tsa/ca.pem"
        ),
    );
    assert!(ok && out.contains("Verification: OK"), "{out}");

    // A token checked against another CA is refused.
    make_tsa_keys(&sb, "other-tsa");
    let r = sb.run(&["report", "verify", &format!("{folder}/report.dsse.json"), "--tsa-ca", "other-tsa/ca.pem"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("not a valid timestamp under other-tsa/ca.pem"), "{r}");
}

// fault: the RFC 3161 time-stamping authority is down | passed (exit 0) | outcome `timestamp: not obtained (…)`; the next drill timestamps it | report without report.tsr until then, history row complete
#[test]
fn a_tsa_that_is_down_never_fails_a_drill_and_the_next_drill_catches_up() {
    let sb = Sandbox::quickstart();
    make_tsa_keys(&sb, "tsa");
    let tsa = start_tsa(&sb, "tsa");
    let port = tsa.port;
    drop(tsa);
    config(&sb, port);
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "a TSA that is down does not fail the drill: {run}");
    let first = report["run_id"].as_str().unwrap().to_string();
    assert!(notification(&sb, &first).starts_with("timestamp: not obtained"), "{}", notification(&sb, &first));
    assert!(!sb.path(&format!("drill-reports/quickstart-rag/{first}/report.tsr")).exists());

    let tsa = start_tsa(&sb, "tsa");
    config(&sb, tsa.port);
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    let second = report["run_id"].as_str().unwrap().to_string();
    assert!(
        notification(&sb, &second).contains("1 earlier report(s) timestamped now"),
        "{}",
        notification(&sb, &second)
    );
    for id in [&first, &second] {
        let r = sb.run(&["report", "verify", &format!("drill-reports/quickstart-rag/{id}/report.dsse.json")]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("timestamped at"), "{r}");
    }
}
