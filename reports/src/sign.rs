//! Signed evidence: a DSSE envelope around an in-toto Statement v1 whose subject is the
//! backup and whose predicate is the report. Ed25519; `keyid` = SHA-256 of the public key
//! (its SPKI DER encoding). Anyone can check it with `openssl` alone (see the README).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding,
};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::Report;

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://drillbook.dev/report/v1";

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read key {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an Ed25519 {what} in PEM: {message}")]
    Key { path: String, what: &'static str, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists; refusing to overwrite a key")]
    Exists { path: String },
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("cannot encode: {0}")]
    Encode(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the statement's canonical JSON.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

/// Why an envelope does not verify. Each names exactly what is wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    #[error("unexpected payloadType `{0}` (expected {PAYLOAD_TYPE})")]
    PayloadType(String),
    #[error("signed by an unknown key: keyid {found}, expected {expected}")]
    UnknownKey { found: String, expected: String },
    #[error("bad signature: the payload was altered or not signed by this key")]
    BadSignature,
    #[error("the payload is not a drillbook statement: {0}")]
    Statement(String),
}

/// RFC 8785 canonical JSON of any serializable value.
pub fn canonical<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json_canonicalizer::to_vec(value)
}

/// The DSSE pre-authentication encoding: `DSSEv1 <len type> <type> <len body> <body>`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

pub fn keyid(key: &VerifyingKey) -> Result<String, SignError> {
    let der = key.to_public_key_der().map_err(|e| SignError::Encode(e.to_string()))?;
    Ok(hex::encode(Sha256::digest(der.as_bytes())))
}

pub fn generate() -> Result<SigningKey, SignError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SignError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `DIR/signing.pem` (PKCS#8 v1, mode 0600) and `DIR/signing.pub.pem` (SPKI).
pub fn write_pair(dir: &Path, key: &SigningKey) -> Result<(), SignError> {
    write_pair_named(dir, key, "signing")
}

/// Writes a keyring's `DIR/<keyid>.pem` and `DIR/<keyid>.pub.pem`; returns the keyid.
pub fn write_keyring_pair(dir: &Path, key: &SigningKey) -> Result<String, SignError> {
    let keyid = keyid(&key.verifying_key())?;
    write_pair_named(dir, key, &keyid)?;
    Ok(keyid)
}

fn write_pair_named(dir: &Path, key: &SigningKey, stem: &str) -> Result<(), SignError> {
    std::fs::create_dir_all(dir).map_err(|source| SignError::Write { path: dir.display().to_string(), source })?;
    // PKCS#8 v1 (RFC 5208: the seed alone, no public key). ed25519-dalek writes v2 (RFC 5958,
    // with the public key), which OpenSSL 3.0 refuses ("unsupported"); v1 is what `openssl
    // genpkey -algorithm ed25519` writes, and every reader takes it.
    let v1 = ed25519_dalek::pkcs8::KeypairBytes { secret_key: key.to_bytes(), public_key: None };
    let private = v1.to_pkcs8_pem(LineEnding::LF).map_err(|e| SignError::Encode(e.to_string()))?;
    let public = key.verifying_key().to_public_key_pem(LineEnding::LF).map_err(|e| SignError::Encode(e.to_string()))?;
    // Written whole under a private name, then linked into place: a reader (another daemon
    // starting at the same moment) sees no key or a complete one, never half a file, and an
    // existing key is never replaced.
    let path = dir.join(format!("{stem}.pem"));
    let err = |source| SignError::Write { path: path.display().to_string(), source };
    let tmp = write_private_temp(dir, private.as_bytes(), 0o600).map_err(err)?;
    let linked = std::fs::hard_link(tmp.path(), &path);
    drop(tmp);
    match linked {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(SignError::Exists { path: path.display().to_string() });
        }
        other => other.map_err(err)?,
    }
    let pub_path = dir.join(format!("{stem}.pub.pem"));
    let tmp = write_private_temp(dir, public.as_bytes(), 0o644)
        .map_err(|source| SignError::Write { path: pub_path.display().to_string(), source })?;
    tmp.persist(&pub_path).map_err(|e| SignError::Write { path: pub_path.display().to_string(), source: e.error })?;
    Ok(())
}

/// A temporary file in `dir` created with `mode` (never wider, not chmod-ed after), holding `bytes`.
pub(crate) fn write_private_temp(dir: &Path, bytes: &[u8], mode: u32) -> std::io::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut f = tempfile::Builder::new()
        .prefix(".signing.")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .tempfile_in(dir)?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    Ok(f)
}

pub fn load_signing(path: &Path) -> Result<SigningKey, SignError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| SignError::Read { path: path.display().to_string(), source })?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| SignError::Key {
        path: path.display().to_string(),
        what: "private key (PKCS#8)",
        message: e.to_string(),
    })
}

pub fn load_public(path: &Path) -> Result<VerifyingKey, SignError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| SignError::Read { path: path.display().to_string(), source })?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| SignError::Key {
        path: path.display().to_string(),
        what: "public key (SPKI)",
        message: e.to_string(),
    })
}

/// A file of the report folder that the signature covers: its name there and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub sha256: String,
}

impl Artifact {
    pub fn of(name: &str, bytes: &[u8]) -> Artifact {
        Artifact { name: name.to_string(), sha256: hex::encode(Sha256::digest(bytes)) }
    }
}

/// How a subject that is a file of the report folder is marked (the first subject is the
/// backup, or the runbook when no backup was read).
const ARTIFACT_ANNOTATION: &str = "report-file";

/// The in-toto statement: subjects = the backup object and its sha256 (each backup of a drill
/// of several restores; the runbook instead
/// when the drill never read a backup, so the subject is never empty), then every file of the
/// report folder the signature covers (`report.json`, `report.html`, `report.md`); predicate =
/// the report.
pub fn statement(report: &Report, artifacts: &[Artifact]) -> serde_json::Value {
    // A drill of several restores names each backup it read, once.
    let mut backups: Vec<&crate::Backup> = report.restores.iter().filter_map(|r| r.backup.as_ref()).collect();
    if backups.is_empty() {
        backups.extend(report.backup.as_ref());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut subjects: Vec<serde_json::Value> = backups
        .into_iter()
        .filter_map(|b| b.sha256.as_ref().map(|sha| (b, sha)))
        .filter(|(b, sha)| seen.insert((b.location.clone(), (*sha).clone())))
        .map(|(b, sha)| json!({"name": b.location, "digest": {"sha256": sha}}))
        .collect();
    if subjects.is_empty() {
        subjects.push(json!({"name": report.runbook.path, "digest": {"sha256": report.runbook.sha256}}));
    }
    let files = artifacts.iter().map(
        |a| json!({"name": a.name, "digest": {"sha256": a.sha256}, "annotations": {"drillbook": ARTIFACT_ANNOTATION}}),
    );
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects.into_iter().chain(files).collect::<Vec<_>>(),
        "predicateType": PREDICATE_TYPE,
        "predicate": report,
    })
}

pub fn sign(report: &Report, artifacts: &[Artifact], key: &SigningKey) -> Result<Envelope, SignError> {
    sign_statement(&statement(report, artifacts), key)
}

/// Signs any in-toto statement (a report's, an audit bundle's) as a DSSE envelope.
pub fn sign_statement(statement: &serde_json::Value, key: &SigningKey) -> Result<Envelope, SignError> {
    let body = canonical(statement).map_err(|e| SignError::Encode(e.to_string()))?;
    let sig: Signature = key.sign(&pae(PAYLOAD_TYPE, &body));
    Ok(Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: B64.encode(&body),
        signatures: vec![EnvelopeSignature { keyid: keyid(&key.verifying_key())?, sig: B64.encode(sig.to_bytes()) }],
    })
}

/// What a valid envelope signed: the report, and the report-folder files it covers (none for
/// envelopes written before files were covered).
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    pub report: Report,
    pub artifacts: Vec<Artifact>,
}

/// The keyid the envelope says signed it (unverified: used to pick the key from a keyring).
pub fn signer(env: &Envelope) -> Option<&str> {
    env.signatures.first().map(|s| s.keyid.as_str())
}

/// Checks the signature with `key` and returns what it signed.
pub fn verify(env: &Envelope, key: &VerifyingKey) -> Result<Signed, VerifyError> {
    let statement = verify_statement(env, key)?;
    if statement["predicateType"] != PREDICATE_TYPE {
        return Err(VerifyError::Statement(format!("predicateType is not {PREDICATE_TYPE}")));
    }
    let mut artifacts = Vec::new();
    for subject in statement["subject"].as_array().into_iter().flatten() {
        if subject["annotations"]["drillbook"] != ARTIFACT_ANNOTATION {
            continue;
        }
        let (Some(name), Some(sha256)) = (subject["name"].as_str(), subject["digest"]["sha256"].as_str()) else {
            return Err(VerifyError::Statement("a report-file subject without name or sha256".into()));
        };
        // A plain file name of the report folder, never a path out of it.
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(VerifyError::Statement(format!("report-file subject `{name}` is not a file name")));
        }
        artifacts.push(Artifact { name: name.to_string(), sha256: sha256.to_string() });
    }
    let report =
        serde_json::from_value(statement["predicate"].clone()).map_err(|e| VerifyError::Statement(e.to_string()))?;
    Ok(Signed { report, artifacts })
}

/// Checks an envelope's signature with `key` and returns its in-toto statement.
pub fn verify_statement(env: &Envelope, key: &VerifyingKey) -> Result<serde_json::Value, VerifyError> {
    if env.payload_type != PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType(env.payload_type.clone()));
    }
    let body = B64.decode(&env.payload).map_err(|e| VerifyError::Malformed(format!("payload is not base64: {e}")))?;
    let expected = keyid(key).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let Some(s) = env.signatures.iter().find(|s| s.keyid == expected) else {
        let found = env.signatures.first().map(|s| s.keyid.clone()).unwrap_or_else(|| "none".into());
        return Err(VerifyError::UnknownKey { found, expected });
    };
    let raw = B64.decode(&s.sig).map_err(|e| VerifyError::Malformed(format!("signature is not base64: {e}")))?;
    let sig = Signature::from_slice(&raw).map_err(|_| VerifyError::BadSignature)?;
    key.verify(&pae(&env.payload_type, &body), &sig).map_err(|_| VerifyError::BadSignature)?;
    let statement: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| VerifyError::Statement(format!("not JSON: {e}")))?;
    if statement["_type"] != STATEMENT_TYPE {
        return Err(VerifyError::Statement(format!("_type is not {STATEMENT_TYPE}")));
    }
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let key = generate().unwrap();
        let report = crate::tests::sample();
        let files = [Artifact::of("report.html", b"<html>"), Artifact::of("report.md", b"# r")];
        let env = sign(&report, &files, &key).unwrap();
        let signed = verify(&env, &key.verifying_key()).unwrap();
        assert_eq!(signed.report, report);
        assert_eq!(signed.artifacts, files, "the files the signature covers come back with their digests");

        let mut tampered = env.clone();
        let mut body = B64.decode(&tampered.payload).unwrap();
        let pos = body.windows(6).position(|w| w == b"failed").unwrap();
        body[pos..pos + 6].copy_from_slice(b"passed");
        tampered.payload = B64.encode(&body);
        assert_eq!(verify(&tampered, &key.verifying_key()), Err(VerifyError::BadSignature));

        // No backup was read: the runbook is the subject.
        let body: serde_json::Value = serde_json::from_slice(&B64.decode(&env.payload).unwrap()).unwrap();
        assert_eq!(body["subject"][0]["name"], "x.yaml");
        assert_eq!(body["subject"][0]["digest"]["sha256"], "00");

        let other = generate().unwrap();
        assert!(matches!(verify(&env, &other.verifying_key()), Err(VerifyError::UnknownKey { .. })));
    }

    #[test]
    fn keys_round_trip_through_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate().unwrap();
        write_pair(dir.path(), &key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("signing.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_signing(&dir.path().join("signing.pem")).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(load_public(&dir.path().join("signing.pub.pem")).unwrap(), key.verifying_key());
        // Never overwrite an existing key.
        let other = generate().unwrap();
        assert!(matches!(write_pair(dir.path(), &other), Err(SignError::Exists { .. })));
        assert_eq!(load_signing(&dir.path().join("signing.pem")).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn processes_creating_the_key_at_once_agree_on_one_whole_key() {
        // Three daemons starting together on a fresh machine: each either writes the key or
        // finds it complete, never half a file.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let written: Vec<Option<[u8; 32]>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..3)
                    .map(|_| {
                        s.spawn(|| {
                            let key = generate().unwrap();
                            match write_pair(dir.path(), &key) {
                                Ok(()) => Some(key.to_bytes()),
                                Err(SignError::Exists { .. }) => None,
                                Err(e) => panic!("{e}"),
                            }
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let winners: Vec<_> = written.iter().flatten().collect();
            assert_eq!(winners.len(), 1, "exactly one writer wins");
            assert_eq!(&load_signing(&dir.path().join("signing.pem")).unwrap().to_bytes(), winners[0]);
            let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
            assert_eq!(leftovers.len(), 2, "{leftovers:?}");
        }
    }
}
