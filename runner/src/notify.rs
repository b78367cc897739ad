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

#[cfg(test)]
mod tests {
    use super::*;

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
