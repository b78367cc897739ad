//! A keyring: every signing key an installation has used, with the period each was valid.
//!
//! ```text
//! DIR/keys.yaml            keys: [{keyid, not_before, not_after}]   (not_after absent: the active key)
//! DIR/<keyid>.pem          the private half (PKCS#8 v1, 0600); only on the signing host
//! DIR/<keyid>.pub.pem      the public half (SPKI)
//! ```
//! Rotation adds a key and retires the active one (its `not_after` is the rotation time), so
//! reports signed before still verify with the retired key, and a report claiming to be signed
//! by a key after its retirement is refused. The public half (`keys.yaml` and the `.pub.pem`
//! files) is what an auditor needs. Times are passed in: this crate never reads the clock.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::sign::{self, SignError};

pub const KEYS_FILE: &str = "keys.yaml";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: no active key (every key is retired); add one with `drillbook keygen --rotate --out {dir}`")]
    NoActiveKey { path: String, dir: String },
    #[error("keyid {keyid} is not in the keyring {dir}")]
    UnknownKey { keyid: String, dir: String },
    #[error(
        "signed at {at} by keyid {keyid}, {}",
        match not_after { Some(t) if at >= t => format!("which was retired at {t}"), _ => format!("which was valid only from {not_before}") }
    )]
    OutsideValidity { keyid: String, at: DateTime<Utc>, not_before: DateTime<Utc>, not_after: Option<DateTime<Utc>> },
    #[error(transparent)]
    Key(#[from] SignError),
}

/// One key of the ring and the period it signs in: `[not_before, not_after)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPeriod {
    pub keyid: String,
    pub not_before: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<KeyPeriod>,
}

#[derive(Debug, Clone)]
pub struct Keyring {
    dir: PathBuf,
    keys: Vec<KeyPeriod>,
}

impl Keyring {
    /// Whether `path` is a keyring folder (it holds `keys.yaml`).
    pub fn is_keyring(path: &Path) -> bool {
        path.join(KEYS_FILE).is_file()
    }

    /// Reads `DIR/keys.yaml` and checks that every key's public half is there and is that key.
    pub fn open(dir: &Path) -> Result<Keyring, KeyringError> {
        let path = dir.join(KEYS_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|source| KeyringError::Read { path: path.display().to_string(), source })?;
        let invalid = |message: String| KeyringError::Invalid { path: path.display().to_string(), message };
        let file: KeysFile = serde_yaml_ng::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let ring = Keyring { dir: dir.to_path_buf(), keys: file.keys };
        for (i, k) in ring.keys.iter().enumerate() {
            if ring.keys[..i].iter().any(|o| o.keyid == k.keyid) {
                return Err(invalid(format!("keyid {} is listed twice", k.keyid)));
            }
            if k.not_after.is_some_and(|t| t <= k.not_before) {
                return Err(invalid(format!("keyid {}: not_after is not later than not_before", k.keyid)));
            }
            let public = ring.public(&k.keyid)?;
            let found = sign::keyid(&public)?;
            if found != k.keyid {
                return Err(invalid(format!("{}.pub.pem holds keyid {found}, not {}", k.keyid, k.keyid)));
            }
        }
        if ring.keys.iter().filter(|k| k.not_after.is_none()).count() > 1 {
            return Err(invalid("more than one active key (without not_after)".into()));
        }
        Ok(ring)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn keys(&self) -> &[KeyPeriod] {
        &self.keys
    }

    /// The key that signs now: the one without `not_after`.
    pub fn active(&self) -> Result<&KeyPeriod, KeyringError> {
        self.keys.iter().find(|k| k.not_after.is_none()).ok_or_else(|| KeyringError::NoActiveKey {
            path: self.dir.join(KEYS_FILE).display().to_string(),
            dir: self.dir.display().to_string(),
        })
    }

    /// The private half of the active key.
    pub fn signing_key(&self) -> Result<SigningKey, KeyringError> {
        let active = self.active()?;
        Ok(sign::load_signing(&self.dir.join(format!("{}.pem", active.keyid)))?)
    }

    /// The private half of the key valid at `at` (when a report finished): the active key for
    /// now, a just-retired one for a drill that finished before the rotation.
    pub fn signing_key_at(&self, at: DateTime<Utc>) -> Result<SigningKey, KeyringError> {
        let Some(k) = self.keys.iter().find(|k| at >= k.not_before && k.not_after.is_none_or(|t| at < t)) else {
            return Err(KeyringError::Invalid {
                path: self.dir.join(KEYS_FILE).display().to_string(),
                message: format!("no key of the keyring was valid at {at}"),
            });
        };
        Ok(sign::load_signing(&self.dir.join(format!("{}.pem", k.keyid)))?)
    }

    /// The public half of `keyid`.
    pub fn public(&self, keyid: &str) -> Result<VerifyingKey, KeyringError> {
        // A keyid is hex; anything else would name a path outside the folder.
        if keyid.is_empty() || !keyid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyringError::UnknownKey { keyid: keyid.to_string(), dir: self.dir.display().to_string() });
        }
        Ok(sign::load_public(&self.dir.join(format!("{keyid}.pub.pem")))?)
    }

    /// The public half of `keyid` if that key was valid at `at` (when the report says it was
    /// signed).
    pub fn public_at(&self, keyid: &str, at: DateTime<Utc>) -> Result<VerifyingKey, KeyringError> {
        let Some(k) = self.keys.iter().find(|k| k.keyid == keyid) else {
            return Err(KeyringError::UnknownKey { keyid: keyid.to_string(), dir: self.dir.display().to_string() });
        };
        if at < k.not_before || k.not_after.is_some_and(|t| at >= t) {
            return Err(KeyringError::OutsideValidity {
                keyid: keyid.to_string(),
                at,
                not_before: k.not_before,
                not_after: k.not_after,
            });
        }
        self.public(keyid)
    }

    /// A new keyring in `dir` whose one key is `key`, valid from `now`.
    pub fn create(dir: &Path, key: &SigningKey, now: DateTime<Utc>) -> Result<Keyring, KeyringError> {
        if Keyring::is_keyring(dir) {
            return Err(SignError::Exists { path: dir.join(KEYS_FILE).display().to_string() }.into());
        }
        let mut ring = Keyring { dir: dir.to_path_buf(), keys: Vec::new() };
        ring.add(key, now)?;
        Ok(ring)
    }

    /// Adds `key` as the active key from `now`, retiring the one that was active.
    pub fn rotate(&mut self, key: &SigningKey, now: DateTime<Utc>) -> Result<(), KeyringError> {
        self.add(key, now)
    }

    /// Adds a retired key (one that signed before the keyring existed: a `signing.pem` taken
    /// into a new keyring), valid over `[not_before, not_after)`.
    pub fn import_retired(
        &mut self,
        key: &SigningKey,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<(), KeyringError> {
        let keyid = sign::write_keyring_pair(&self.dir, key)?;
        self.keys.insert(0, KeyPeriod { keyid, not_before, not_after: Some(not_after) });
        self.save()
    }

    fn add(&mut self, key: &SigningKey, now: DateTime<Utc>) -> Result<(), KeyringError> {
        let keyid = sign::write_keyring_pair(&self.dir, key)?;
        for k in self.keys.iter_mut().filter(|k| k.not_after.is_none()) {
            k.not_after = Some(now);
        }
        self.keys.push(KeyPeriod { keyid, not_before: now, not_after: None });
        self.save()
    }

    /// Writes `keys.yaml` whole, then renames it into place: a daemon starting meanwhile reads
    /// the old list or the new one.
    fn save(&self) -> Result<(), KeyringError> {
        let path = self.dir.join(KEYS_FILE);
        let err = |source| SignError::Write { path: path.display().to_string(), source };
        let text = serde_yaml_ng::to_string(&KeysFile { keys: self.keys.clone() })
            .map_err(|e| SignError::Encode(e.to_string()))?;
        let text = format!(
            "# drillbook keyring: each key signs in [not_before, not_after); the one without not_after is active.\n{text}"
        );
        let tmp = sign::write_private_temp(&self.dir, text.as_bytes(), 0o644).map_err(err)?;
        tmp.persist(&path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// The files of the public half, by name in the keyring folder: `keys.yaml` and every
    /// `<keyid>.pub.pem`.
    pub fn public_files(&self) -> Vec<String> {
        std::iter::once(KEYS_FILE.to_string()).chain(self.keys.iter().map(|k| format!("{}.pub.pem", k.keyid))).collect()
    }

    /// Copies the public half into `out`.
    pub fn export_public(&self, out: &Path) -> Result<Vec<PathBuf>, KeyringError> {
        let write_err = |p: &Path, source| SignError::Write { path: p.display().to_string(), source };
        std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
        let mut written = Vec::new();
        for name in self.public_files() {
            let (from, to) = (self.dir.join(&name), out.join(&name));
            std::fs::copy(&from, &to).map_err(|e| write_err(&to, e))?;
            written.push(to);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn rotation_keeps_old_reports_verifiable_and_refuses_a_retired_key_after_retirement() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (sign::generate().unwrap(), sign::generate().unwrap());
        let first_id = sign::keyid(&first.verifying_key()).unwrap();
        let mut ring = Keyring::create(dir.path(), &first, at("2026-01-01T00:00:00Z")).unwrap();
        ring.rotate(&second, at("2026-06-01T00:00:00Z")).unwrap();

        let ring = Keyring::open(dir.path()).unwrap();
        assert_eq!(ring.signing_key().unwrap().to_bytes(), second.to_bytes(), "the new key signs");
        // A drill that finished just before the rotation is signed by the key valid then.
        let before = ring.signing_key_at(at("2026-05-31T23:59:59Z")).unwrap();
        assert_eq!(before.to_bytes(), first.to_bytes());
        assert!(ring.signing_key_at(at("2025-01-01T00:00:00Z")).is_err(), "no key before the keyring");
        assert_eq!(ring.keys().len(), 2);
        // A report of March verifies with the retired key; one of July claiming it is refused.
        assert_eq!(ring.public_at(&first_id, at("2026-03-01T00:00:00Z")).unwrap(), first.verifying_key());
        let late = ring.public_at(&first_id, at("2026-07-01T00:00:00Z")).unwrap_err();
        assert!(late.to_string().contains("which was retired at 2026-06-01"), "{late}");
        let early = ring.public_at(&first_id, at("2025-12-01T00:00:00Z")).unwrap_err();
        assert!(early.to_string().contains("valid only from 2026-01-01"), "{early}");
        assert!(matches!(ring.public_at("00ff", at("2026-03-01T00:00:00Z")), Err(KeyringError::UnknownKey { .. })));
        assert!(matches!(ring.public("../x"), Err(KeyringError::UnknownKey { .. })));

        // The public half alone verifies; it carries no private key.
        let public = tempfile::tempdir().unwrap();
        ring.export_public(public.path()).unwrap();
        let exported = Keyring::open(public.path()).unwrap();
        assert_eq!(exported.public_at(&first_id, at("2026-03-01T00:00:00Z")).unwrap(), first.verifying_key());
        assert!(std::fs::read_dir(public.path()).unwrap().flatten().all(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name == KEYS_FILE || name.ends_with(".pub.pem")
        }));
    }

    #[test]
    fn a_public_key_file_that_is_not_its_keyid_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (sign::generate().unwrap(), sign::generate().unwrap());
        let ring = Keyring::create(dir.path(), &a, at("2026-01-01T00:00:00Z")).unwrap();
        let id = &ring.keys()[0].keyid;
        // Someone swaps the public half for another key's.
        let other = tempfile::tempdir().unwrap();
        Keyring::create(other.path(), &b, at("2026-01-01T00:00:00Z")).unwrap();
        let b_id = sign::keyid(&b.verifying_key()).unwrap();
        std::fs::copy(other.path().join(format!("{b_id}.pub.pem")), dir.path().join(format!("{id}.pub.pem"))).unwrap();
        let err = Keyring::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("holds keyid {b_id}")), "{err}");
    }
}
