//! The optional config file (`drillbook.yaml`) and the defaults for a fresh machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Invalid;

/// `keep_min_free` when the config does not say.
pub const DEFAULT_KEEP_MIN_FREE: u64 = 5 << 30;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    runbooks: Option<String>,
    state: Option<String>,
    reports: Option<String>,
    signing_key: Option<String>,
    templates: Option<String>,
    concurrency: Option<u32>,
    lease: Option<String>,
    keep_min_free: Option<String>,
    #[serde(default)]
    storage: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    scratch: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    smtp: BTreeMap<String, String>,
    #[serde(default)]
    http: RawHttp,
    timestamp: Option<RawTimestamp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimestamp {
    url: String,
    ca: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    token: Option<String>,
    auth: Option<String>,
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: drillbook_reports::email::Tls,
    pub from: String,
    pub username: Option<String>,
    /// A secret reference (`${env:NAME}` or `${file:PATH}`).
    pub password: Option<String>,
}

/// The effective configuration, paths made absolute.
#[derive(Debug, Clone)]
pub struct Config {
    pub runbooks: PathBuf,
    pub state: String,
    pub reports: PathBuf,
    /// Ed25519 private key (PKCS#8 PEM); its public half is `signing.pub.pem` beside it.
    pub signing_key: PathBuf,
    /// True when no key was configured: a development key is generated on first use.
    pub signing_key_is_default: bool,
    /// A folder whose `report.html` replaces the built-in template.
    pub templates: Option<PathBuf>,
    /// SMTP settings for `notify.email`; the password stays a reference until sending.
    pub smtp: Option<SmtpConfig>,
    /// Named storage profiles: `type` (an opendal scheme) and opendal's own keys. Values may
    /// be secret references; they are resolved when a drill builds the profile.
    pub storage: BTreeMap<String, BTreeMap<String, String>>,
    /// `server` scratch providers: `type`, `url` and `password` (a secret reference).
    pub scratch: BTreeMap<String, BTreeMap<String, String>>,
    /// How many drills the daemon runs at once; default 2.
    pub concurrency: u32,
    /// How long a daemon's claim on a fire time outlives the daemon (default 60s).
    pub lease: std::time::Duration,
    /// A failed drill's scratch is kept (`keep_on_failure`) only while its file system has at
    /// least this many bytes free; default 5 GiB.
    pub keep_min_free: u64,
    pub http: HttpConfig,
    /// `timestamp: {url, ca}`: an RFC 3161 time-stamping authority for every report's
    /// signature, and the CA certificate (PEM) its replies are checked against.
    pub timestamp: Option<TimestampConfig>,
}

#[derive(Debug, Clone)]
pub struct TimestampConfig {
    pub url: String,
    pub ca: PathBuf,
}

/// The daemon's HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Default `127.0.0.1:9477`.
    pub listen: String,
    /// A secret reference; without it the trigger endpoint refuses everyone.
    pub token: Option<String>,
    /// Which endpoints need the token.
    pub auth: HttpAuth,
    /// `tls: {cert, key}`: PEM files; the daemon then serves HTTPS only.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// `http.auth`: who must show the bearer token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpAuth {
    /// Only `POST /api/runbooks/{name}/run` (the default).
    #[default]
    Trigger,
    /// Every endpoint but `/healthz` (probes need no secret), `/metrics` included.
    All,
}

/// Every key of a config section is one it knows; else the nearest known one as a hint.
fn known_keys(raw: &BTreeMap<String, String>, known: &[&str]) -> Result<(), String> {
    match raw.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => {
            let hint = drillbook_runbooks::nearest(k, known.iter().copied())
                .map(|n| format!(", did you mean `{n}`?"))
                .unwrap_or_default();
            Err(format!("unknown key `{k}`{hint}"))
        }
    }
}

/// `key`, when present, is a secret reference, never the secret itself.
fn secret_reference(value: Option<&String>, key: &str) -> Result<(), String> {
    match value {
        None => Ok(()),
        Some(v) => drillbook_runbooks::SecretRef::find(v)?
            .map(|_| ())
            .ok_or_else(|| format!("{key} must be a secret reference (${{env:NAME}} or ${{file:PATH}})")),
    }
}

fn http_config(raw: &RawHttp, file: &str, abs: &dyn Fn(&str) -> PathBuf) -> Result<HttpConfig, Invalid> {
    let bad = |msg: String| Invalid(format!("{file}: http: {msg}"));
    let listen = raw.listen.clone().unwrap_or_else(|| "127.0.0.1:9477".into());
    listen.parse::<std::net::SocketAddr>().map_err(|e| bad(format!("listen `{listen}`: {e}")))?;
    secret_reference(raw.token.as_ref(), "token").map_err(bad)?;
    let auth = match raw.auth.as_deref() {
        None | Some("trigger") => HttpAuth::Trigger,
        Some("all") => HttpAuth::All,
        Some(other) => return Err(bad(format!("auth `{other}`: expected `trigger` or `all`"))),
    };
    if auth == HttpAuth::All && raw.token.is_none() {
        return Err(bad("auth: all needs a `token` (a secret reference)".into()));
    }
    let tls = raw.tls.as_ref().map(|t| (abs(&t.cert), abs(&t.key)));
    Ok(HttpConfig { listen, token: raw.token.clone(), auth, tls })
}

impl Config {
    /// `--config FILE`, else `./drillbook.yaml` when it exists, else the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, Invalid> {
        let (file, base) = match explicit {
            // Relative paths resolve beside the file; `--config /dev/null` (no file: the defaults)
            // resolves them in the current folder like no config at all, not under /dev.
            Some(p) if p.is_file() => (Some(p.to_path_buf()), p.parent().map(Path::to_path_buf).unwrap_or_default()),
            Some(p) => (Some(p.to_path_buf()), PathBuf::new()),
            None if Path::new("drillbook.yaml").is_file() => (Some(PathBuf::from("drillbook.yaml")), PathBuf::new()),
            None => (None, PathBuf::new()),
        };
        let raw = match &file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Invalid(format!("{}: cannot read the config: {e}", p.display())))?;
                drillbook_runbooks::parse_yaml::<ConfigFile>(&p.display().to_string(), &text)
                    .map_err(|e| Invalid(e.to_string()))?
            }
            None => ConfigFile::default(),
        };
        let shown = file.as_ref().map(|f| f.display().to_string()).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        let abs = |p: &str| -> PathBuf { base.join(p) };
        // `state: ${env:DRILLBOOK_STATE}` keeps a PostgreSQL password out of the file; the
        // reference is resolved (a plain URL stays as written), then a SQLite path is made
        // absolute.
        let state = match raw.state {
            Some(s) => drillbook_adapters::Secrets::default()
                .expand(&s)
                .map_err(|e| Invalid(format!("{shown}: state: {e}")))?,
            None => "sqlite://drillbook.db".to_string(),
        };
        let state = match state.strip_prefix("sqlite://") {
            Some(path) => format!("sqlite://{}", abs(path).display()),
            None => state,
        };
        for (name, profile) in &raw.storage {
            if !profile.contains_key("type") {
                return Err(Invalid(format!(
                    "{}: storage.{name}: missing `type` (an opendal scheme such as s3, fs, gcs)",
                    file.as_ref().map(|f| f.display().to_string()).unwrap_or_default()
                )));
            }
        }
        let http = http_config(&raw.http, &shown, &abs)?;
        for (name, entry) in &raw.scratch {
            scratch_entry(name, entry, &shown)?;
        }
        let smtp = if raw.smtp.is_empty() { None } else { Some(smtp_config(&raw.smtp, &shown)?) };
        Ok(Config {
            runbooks: abs(raw.runbooks.as_deref().unwrap_or("runbooks")),
            state,
            reports: abs(raw.reports.as_deref().unwrap_or("drill-reports")),
            signing_key_is_default: raw.signing_key.is_none(),
            templates: raw.templates.as_deref().map(abs),
            smtp,
            signing_key: abs(raw.signing_key.as_deref().unwrap_or(".drillbook/signing.pem")),
            storage: raw.storage,
            scratch: raw.scratch,
            concurrency: raw.concurrency.unwrap_or(2),
            lease: match &raw.lease {
                Some(l) => {
                    l.parse::<drillbook_runbooks::DurationSpec>()
                        .map_err(|e| Invalid(format!("{shown}: lease: {e}")))?
                        .0
                }
                None => std::time::Duration::from_secs(60),
            },
            keep_min_free: match &raw.keep_min_free {
                Some(b) => {
                    b.parse::<drillbook_runbooks::ByteSize>()
                        .map_err(|e| Invalid(format!("{shown}: keep_min_free: {e}")))?
                        .0
                }
                None => DEFAULT_KEEP_MIN_FREE,
            },
            http,
            timestamp: match raw.timestamp {
                Some(t) if t.url.starts_with("http://") || t.url.starts_with("https://") => {
                    Some(TimestampConfig { url: t.url, ca: abs(&t.ca) })
                }
                Some(t) => {
                    return Err(Invalid(format!(
                        "{shown}: timestamp.url `{}`: expected an http:// or https:// URL",
                        t.url
                    )));
                }
                None => None,
            },
        })
    }
}

/// A `scratch:` entry: `type` (the adapter family it serves), `url`, optional `password`
/// (a secret reference; a password written inline would end up in logs and reports).
fn scratch_entry(name: &str, raw: &BTreeMap<String, String>, file: &str) -> Result<(), Invalid> {
    let bad = |msg: String| Invalid(format!("{file}: scratch.{name}: {msg}"));
    const KEYS: &[&str] = &["type", "url", "password"];
    known_keys(raw, KEYS).map_err(bad)?;
    match raw.get("type").map(String::as_str) {
        Some("postgres" | "mariadb" | "mysql") => {}
        Some(other) => return Err(bad(format!("unknown type `{other}` (known: postgres, mariadb, mysql)"))),
        None => return Err(bad("missing `type` (known: postgres, mariadb, mysql)".into())),
    }
    let url =
        raw.get("url").ok_or_else(|| bad("missing `url` (e.g. postgres://drill@127.0.0.1:5432/postgres)".into()))?;
    if url.contains('@') && url.split('@').next().is_some_and(|auth| auth.matches(':').count() > 1) {
        return Err(bad("`url` holds a password; put it in `password: ${env:NAME}` instead".into()));
    }
    secret_reference(raw.get("password"), "password").map_err(bad)?;
    Ok(())
}

fn smtp_config(raw: &BTreeMap<String, String>, file: &str) -> Result<SmtpConfig, Invalid> {
    let bad = |msg: String| Invalid(format!("{file}: smtp: {msg}"));
    const KEYS: &[&str] = &["host", "port", "tls", "from", "username", "password"];
    known_keys(raw, KEYS).map_err(bad)?;
    let host = raw.get("host").cloned().ok_or_else(|| bad("missing `host`".into()))?;
    let from = raw.get("from").cloned().ok_or_else(|| bad("missing `from`".into()))?;
    let tls: drillbook_reports::email::Tls =
        raw.get("tls").map(String::as_str).unwrap_or("starttls").parse().map_err(bad)?;
    let default_port = match tls {
        drillbook_reports::email::Tls::Tls => 465,
        drillbook_reports::email::Tls::Starttls => 587,
        drillbook_reports::email::Tls::None => 25,
    };
    let port = match raw.get("port") {
        Some(p) => p.parse().map_err(|_| bad(format!("port `{p}` is not a port number")))?,
        None => default_port,
    };
    secret_reference(raw.get("password"), "password").map_err(bad)?;
    Ok(SmtpConfig {
        host,
        port,
        tls,
        from,
        username: raw.get("username").cloned(),
        password: raw.get("password").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    #[test]
    fn relative_defaults_resolve_beside_a_config_file_or_here() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("drillbook.yaml");
        std::fs::write(&file, "reports: out\n").unwrap();
        let c = super::Config::load(Some(&file)).unwrap();
        assert_eq!(c.reports, dir.path().join("out"));
        assert_eq!(c.runbooks, dir.path().join("runbooks"));
        // Not a file: the defaults, resolved in the current folder (never under /dev).
        let c = super::Config::load(Some(Path::new("/dev/null"))).unwrap();
        assert_eq!(c.runbooks, PathBuf::from("./runbooks"));
        assert_eq!(c.signing_key, PathBuf::from("./.drillbook/signing.pem"));
        assert_eq!(c.state, "sqlite://./drillbook.db");
    }
}
