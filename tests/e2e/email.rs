//! Notifications through a real SMTP server on loopback (aiosmtpd), read back from its maildir.

use std::time::{Duration, Instant};

use crate::servers::MailServer;
use crate::support::Sandbox;

fn with_notify(sb: &Sandbox, port: u16, on: &str) {
    sb.write(
        "drillbook.yaml",
        format!("smtp: {{ host: 127.0.0.1, port: {port}, tls: none, from: drillbook@example.com }}\n"),
    );
    let text = sb.read("quickstart.yaml")
        + &format!("notify:\n  email: {{ to: [sre@example.com, oncall@example.com], on: [{on}] }}\n");
    sb.write("quickstart.yaml", text);
}

fn notification(sb: &Sandbox) -> String {
    sb.history()[0]["notification"].as_str().unwrap_or_default().to_string()
}

#[test]
fn failure_and_recovery_are_mailed_with_the_report_attached() {
    let mail = MailServer::start();
    let sb = Sandbox::quickstart();
    with_notify(&sb, mail.port, "failure, recovery");

    // A pass with nothing before it: nobody is mailed.
    assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    assert!(mail.messages().is_empty());
    assert_eq!(sb.history()[0]["notification"], serde_json::Value::Null);

    sb.edit("quickstart.yaml", "expect: \">= 200\"", "expect: \"> 200\"");
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 1, "{run}");
    let msgs = mail.messages();
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    let m = &msgs[0];
    assert_eq!(m["subject"], "[drillbook] quickstart-rag FAILED");
    assert!(m["to"].as_str().unwrap().contains("oncall@example.com"));
    let types: Vec<&str> = m["types"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    assert!(
        types.contains(&"text/html") && types.contains(&"text/plain") && types.contains(&"application/json"),
        "{types:?}"
    );
    assert!(m["html"].as_str().unwrap().contains("FAILED — quickstart-rag"));
    assert_eq!(m["attachment"]["run_id"], report["run_id"]);
    assert!(
        notification(&sb).starts_with("email sent to sre@example.com, oncall@example.com"),
        "{}",
        notification(&sb)
    );

    sb.edit("quickstart.yaml", "expect: \"> 200\"", "expect: \">= 200\"");
    assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    let msgs = mail.messages();
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().any(|m| m["subject"] == "[drillbook] quickstart-rag PASSED (recovered)"), "{msgs:#?}");

    // Passing again is not news.
    assert_eq!(sb.drill("quickstart.yaml").0.code, 0);
    assert_eq!(mail.messages().len(), 2);
}

// fault: the SMTP server is down | passed (exit 0, within the retry budget) | notification `email not sent after 3 attempts …` | history row complete
#[test]
fn an_unreachable_smtp_server_neither_fails_nor_loses_the_drill() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sb = Sandbox::quickstart();
    with_notify(&sb, port, "always");
    let t = Instant::now();
    let (run, report) = sb.drill("quickstart.yaml");
    assert!(t.elapsed() < Duration::from_secs(40), "the retry budget was exceeded: {:?}", t.elapsed());
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["verdict"], "passed");
    let h = sb.history();
    assert_eq!(h[0]["status"], "passed");
    assert!(notification(&sb).starts_with("email not sent after 3 attempts"), "{}", notification(&sb));
}

// fault: the SMTP server rejects the recipient | passed, not retried | notification `email rejected … no such user` | history row complete
#[test]
fn a_rejecting_smtp_server_is_recorded_without_retrying() {
    let mail = MailServer::rejecting();
    let sb = Sandbox::quickstart();
    with_notify(&sb, mail.port, "always");
    let t = Instant::now();
    let (run, _) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert!(t.elapsed() < Duration::from_secs(10), "a permanent rejection must not be retried: {:?}", t.elapsed());
    let n = notification(&sb);
    assert!(n.contains("email rejected") && n.contains("no such user"), "{n}");
}

/// A real HTTP server on loopback that keeps each POST's body and checks its HMAC-SHA256
/// signature with the key it was given.
const HOOK_SERVER: &str = r#"
import hashlib, hmac, http.server, json, sys
key, out = sys.argv[2].encode(), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        sig = self.headers.get("X-Drillbook-Signature-256", "")
        good = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        with open(out, "a") as f:
            f.write(json.dumps({"valid": hmac.compare_digest(sig, good), "body": json.loads(body)}) + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

// fault: the webhook endpoint is gone | passed | notification `webhook not delivered … after 3 attempts` | the webhook secret in no output
#[test]
fn a_webhook_gets_a_signed_summary_and_a_dead_endpoint_changes_nothing() {
    let key = "hook-key-5f1e2d3c4b5a69788796a5b4";
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sb = Sandbox::quickstart().env("HOOK_SECRET", key);
    let received = sb.path("received.jsonl");
    let mut server = std::process::Command::new("python3")
        .args(["-c", HOOK_SERVER, &port.to_string(), key, received.to_str().unwrap()])
        .spawn()
        .expect("python3");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the webhook server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let hook = |url: &str| {
        format!("notify:\n  webhook: {{ url: \"{url}\", on: [always], secret: \"${{env:HOOK_SECRET}}\" }}\ntimeouts:")
    };
    let text = sb.read("quickstart.yaml");
    sb.write("quickstart.yaml", text.replacen("timeouts:", &hook(&format!("http://127.0.0.1:{port}/hooks/drills")), 1));
    let (r, report) = sb.drill("quickstart.yaml");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(r.code, 0, "{r}");
    let got = std::fs::read_to_string(&received).expect("a POST arrived");
    let post: serde_json::Value = serde_json::from_str(got.lines().next().unwrap()).unwrap();
    assert_eq!(post["valid"], true, "the signature checks out: {post}");
    assert_eq!(post["body"]["verdict"], "passed");
    assert_eq!(post["body"]["run_id"], report["run_id"]);
    assert!(post["body"]["text"].as_str().unwrap().contains("quickstart-rag PASSED"), "{post}");
    let history = sb.history();
    let note = history[0]["notification"].as_str().unwrap_or_default();
    assert!(note.contains(&format!("webhook delivered to http://127.0.0.1:{port} (204")), "{note}");

    // The endpoint is gone: the drill passes all the same, and history says what happened.
    sb.edit(
        "quickstart.yaml",
        &format!("http://127.0.0.1:{port}/hooks/drills"),
        &format!("http://127.0.0.1:{port}/gone"),
    );
    let (r, _) = sb.drill("quickstart.yaml");
    assert_eq!(r.code, 0, "{r}");
    let note = sb.history()[0]["notification"].as_str().unwrap_or_default().to_string();
    assert!(note.contains("webhook not delivered") && note.contains("after 3 attempts"), "{note}");
    let everything = format!("{}{}{}", r.stdout, r.stderr, serde_json::to_string(&sb.history()).unwrap());
    assert!(!everything.contains(key), "the webhook secret never appears");
}
