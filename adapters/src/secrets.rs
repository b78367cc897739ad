//! Secret references resolved at the last moment, and scrubbed from everything we write.

use std::sync::{Arc, Mutex};

use drillbook_runbooks::SecretRef;

/// Resolves `${env:NAME}` / `${file:PATH}` and remembers every value it handed out, so
/// that [`Secrets::redact`] can scrub them from command output, errors and reports.
#[derive(Clone, Default)]
pub struct Secrets {
    seen: Arc<Mutex<Vec<String>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret reference ${{env:{0}}}: the environment variable is not set")]
    MissingEnv(String),
    #[error("secret reference ${{file:{0}}}: {1}")]
    File(String, std::io::Error),
    #[error("{0}")]
    Syntax(String),
}

impl Secrets {
    pub fn resolve(&self, r: &SecretRef) -> Result<String, SecretError> {
        let value = match r {
            SecretRef::Env(name) => std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?,
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| SecretError::File(path.clone(), e))?,
        };
        self.remember(&value);
        Ok(value)
    }

    /// A string that is either a reference (resolved) or plain text (kept).
    pub fn expand(&self, s: &str) -> Result<String, SecretError> {
        match SecretRef::find(s).map_err(SecretError::Syntax)? {
            Some(r) => self.resolve(&r),
            None => Ok(s.to_string()),
        }
    }

    pub fn remember(&self, value: &str) {
        // Very short values would scrub innocent text and protect nothing.
        if value.len() >= 4
            && let Ok(mut seen) = self.seen.lock()
            && !seen.iter().any(|s| s == value)
        {
            seen.push(value.to_string());
        }
    }

    /// Replaces every secret value handed out so far with `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Ok(seen) = self.seen.lock() {
            for s in seen.iter() {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }

    /// [`Secrets::redact`] over every string of a JSON value (a check's observed value).
    pub fn redact_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(|v| self.redact_json(v)).collect()),
            Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, v)| (self.redact(&k), self.redact_json(v))).collect())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_values_are_redacted() {
        let s = Secrets::default();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "s3cr3t-value\n").unwrap();
        let v = s.resolve(&SecretRef::File(f.display().to_string())).unwrap();
        assert_eq!(v, "s3cr3t-value");
        assert_eq!(s.redact("token=s3cr3t-value!"), "token=[redacted]!");
        assert!(s.resolve(&SecretRef::Env("DRILLBOOK_SURELY_UNSET_1".into())).is_err());
        let observed = serde_json::json!({"row": ["s3cr3t-value", 1], "s3cr3t-value": true});
        assert_eq!(s.redact_json(observed), serde_json::json!({"row": ["[redacted]", 1], "[redacted]": true}));
    }
}
