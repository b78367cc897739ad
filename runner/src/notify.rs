//! Who hears about a drill: `notify.email.on: [failure, recovery, always]`.
//!
//! Runs after the drill's outcome is in history, so a slow or dead SMTP server can delay
//! the notification (within its retry budget) but never lose or change a drill.

use std::time::Duration;

use drillbook_adapters::Secrets;
use drillbook_reports::email::{self, Reason, Smtp};
use drillbook_reports::{Report, Verdict};
use drillbook_runbooks::{Notify, NotifyOn};

use crate::config::SmtpConfig;

/// Why (and whether) to send, given the verdict and the previous run's status.
pub fn reason(on: &[NotifyOn], verdict: Verdict, previous: Option<&str>) -> Option<Reason> {
    let previous_failed = matches!(previous, Some("failed" | "aborted" | "interrupted"));
    if verdict == Verdict::Failed && on.contains(&NotifyOn::Failure) {
        Some(Reason::Failure)
    } else if verdict == Verdict::Passed && previous_failed && on.contains(&NotifyOn::Recovery) {
        Some(Reason::Recovery)
    } else if on.contains(&NotifyOn::Always) {
        Some(Reason::Always)
    } else {
        None
    }
}

/// Sends the drill's email when the runbook asks for one; returns the line for history.
pub async fn email(
    smtp: Option<&SmtpConfig>,
    notify: Option<&Notify>,
    report: &Report,
    previous: Option<&str>,
    html: &str,
    secrets: &Secrets,
) -> Option<String> {
    let email = notify?.email.as_ref()?;
    let reason = reason(&email.on, report.verdict, previous)?;
    let Some(cfg) = smtp else {
        return Some("email not sent: the runbook asks for one but the config has no `smtp` section".into());
    };
    let password = match &cfg.password {
        Some(p) => match secrets.expand(p) {
            Ok(v) => Some(v),
            Err(e) => return Some(format!("email not sent: {e}")),
        },
        None => None,
    };
    let smtp = Smtp {
        host: cfg.host.clone(),
        port: cfg.port,
        tls: cfg.tls,
        from: cfg.from.clone(),
        credentials: cfg.username.clone().zip(password),
        attempts: 3,
        first_backoff: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
    };
    let outcome = match email::message(&smtp, &email.to, report, reason, html) {
        Ok(msg) => email::send(&smtp, msg, &email.to).await.unwrap_or_else(|e| e),
        Err(e) => format!("email not sent: {e}"),
    };
    Some(secrets.redact(&outcome))
}

/// The header carrying the body's HMAC-SHA256 under the webhook's secret.
pub const SIGNATURE_HEADER: &str = "X-Drillbook-Signature-256";

/// POSTs the drill's summary when the runbook asks for it; returns the line for history.
/// Bounded: 3 attempts, 10 s each, 1 s then 2 s apart. Never changes the drill.
pub async fn webhook(
    notify: Option<&Notify>,
    report: &Report,
    previous: Option<&str>,
    report_folder: Option<&str>,
    secrets: &Secrets,
) -> Option<String> {
    let hook = notify?.webhook.as_ref()?;
    let reason = reason(&hook.on, report.verdict, previous)?;
    let key = match hook.secret.as_deref().map(|s| secrets.expand(s)).transpose() {
        Ok(k) => k,
        Err(e) => return Some(format!("webhook not sent: {e}")),
    };
    let verdict = if report.verdict == Verdict::Passed { "passed" } else { "failed" };
    let body = serde_json::json!({
        "text": format!(
            "drillbook: {} {} ({:?}){}",
            report.runbook.name,
            verdict.to_uppercase(),
            reason,
            report.failure_reasons.first().map(|r| format!(": {r}")).unwrap_or_default()
        ),
        "runbook": report.runbook.name,
        "asset": report.asset,
        "run_id": report.run_id,
        "verdict": verdict,
        "reason": format!("{reason:?}").to_lowercase(),
        "failure_reasons": report.failure_reasons,
        "objectives": report.objectives,
        "report": report_folder,
    });
    let bytes = match serde_json::to_vec(&body) {
        Ok(b) => b,
        Err(e) => return Some(format!("webhook not sent: {e}")),
    };
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => return Some(format!("webhook not sent: {e}")),
    };
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
        let mut req = client.post(&hook.url).header("content-type", "application/json").body(bytes.clone());
        if let Some(key) = &key {
            req = req.header(SIGNATURE_HEADER, format!("sha256={}", sign(key.as_bytes(), &bytes)));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                return Some(secrets.redact(&format!("webhook delivered to {} ({})", host_of(&hook.url), r.status())));
            }
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
    }
    Some(secrets.redact(&format!("webhook not delivered to {} after 3 attempts: {last}", host_of(&hook.url))))
}

/// Hex HMAC-SHA256 of `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The URL without its path and query (which may carry a token, as Slack's do).
fn host_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, r)) => format!("{scheme}://{}", r.split('/').next().unwrap_or_default()),
        None => "the webhook".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(host_of("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com");
    }

    #[test]
    fn recovery_is_the_first_pass_after_a_failure() {
        let on = [NotifyOn::Failure, NotifyOn::Recovery];
        assert_eq!(reason(&on, Verdict::Failed, Some("passed")), Some(Reason::Failure));
        assert_eq!(reason(&on, Verdict::Passed, Some("failed")), Some(Reason::Recovery));
        assert_eq!(reason(&on, Verdict::Passed, Some("passed")), None);
        assert_eq!(reason(&on, Verdict::Passed, None), None);
        assert_eq!(reason(&[NotifyOn::Always], Verdict::Passed, None), Some(Reason::Always));
        assert_eq!(reason(&[NotifyOn::Recovery], Verdict::Failed, None), None);
    }
}
