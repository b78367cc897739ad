//! Drill notifications by email (lettre): the HTML report as the body, Markdown as the text
//! part, `report.json` attached. Sending is retried with backoff inside a fixed budget and
//! never fails a drill: the outcome is returned for the history.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::{Report, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    None,
    Starttls,
    Tls,
}

impl std::str::FromStr for Tls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Tls::None),
            "starttls" => Ok(Tls::Starttls),
            "tls" => Ok(Tls::Tls),
            other => Err(format!("unknown tls mode `{other}` (expected none, starttls or tls)")),
        }
    }
}

/// Resolved SMTP settings (the password already taken from its secret reference).
#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub from: String,
    pub credentials: Option<(String, String)>,
    pub attempts: u32,
    pub first_backoff: Duration,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("bad address `{0}`: {1}")]
    Address(String, String),
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// Why a message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Failure,
    Recovery,
    Always,
}

pub fn subject(report: &Report, reason: Reason) -> String {
    let verdict = match report.verdict {
        Verdict::Passed => "PASSED",
        Verdict::Failed => "FAILED",
    };
    let why = if reason == Reason::Recovery { " (recovered)" } else { "" };
    format!("[drillbook] {} {verdict}{why}", report.runbook.name)
}

pub fn message(smtp: &Smtp, to: &[String], report: &Report, reason: Reason, html: &str) -> Result<Message, EmailError> {
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e: lettre::address::AddressError| EmailError::Address(smtp.from.clone(), e.to_string()))?;
    let mut builder = Message::builder().from(from).subject(subject(report, reason));
    for addr in to {
        let mb: Mailbox = addr
            .parse()
            .map_err(|e: lettre::address::AddressError| EmailError::Address(addr.clone(), e.to_string()))?;
        builder = builder.to(mb);
    }
    let json = serde_json::to_vec_pretty(report).map_err(|e| EmailError::Build(e.to_string()))?;
    let json_type = ContentType::parse("application/json").map_err(|e| EmailError::Build(e.to_string()))?;
    let body = MultiPart::mixed()
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(report.to_markdown()))
                .singlepart(SinglePart::html(html.to_string())),
        )
        .singlepart(Attachment::new("report.json".into()).body(json, json_type));
    builder.multipart(body).map_err(|e| EmailError::Build(e.to_string()))
}

fn transport(smtp: &Smtp) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match smtp.tls {
        Tls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        Tls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(|e| e.to_string())?,
        Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(|e| e.to_string())?,
    };
    let mut builder = builder.port(smtp.port).timeout(Some(smtp.timeout));
    if let Some((user, pass)) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    Ok(builder.build())
}

/// Sends with retries (`attempts`, doubling backoff). Returns a line for the history.
pub async fn send(smtp: &Smtp, msg: Message, to: &[String]) -> Result<String, String> {
    let transport = transport(smtp)?;
    let mut backoff = smtp.first_backoff;
    let mut last = String::new();
    for attempt in 1..=smtp.attempts.max(1) {
        match transport.send(msg.clone()).await {
            Ok(_) => return Ok(format!("email sent to {} (attempt {attempt})", to.join(", "))),
            Err(e) => {
                last = e.to_string();
                // A permanent rejection will not change on retry.
                if e.is_permanent() {
                    return Err(format!("email rejected by {}:{}: {last}", smtp.host, smtp.port));
                }
            }
        }
        if attempt < smtp.attempts {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    Err(format!("email not sent after {} attempts to {}:{}: {last}", smtp.attempts, smtp.host, smtp.port))
}
