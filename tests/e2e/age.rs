//! age-encrypted backups (`source.decrypt`), made by the real `age` CLI: decrypted in the same
//! pass as hash and unpack; a wrong key, a truncated or tampered file fail the drill with the
//! reason; the identity never appears in output.

use std::process::Command;

use crate::bad_input::{fails_with, step};
use crate::support::{Sandbox, assert_secret_nowhere, sha256_hex};

const PLAIN: &str = "quickstart/backups/rag-2026-11-29.tar.zst";

/// `age-keygen` into the sandbox: the identity file and its recipient.
fn keygen(sb: &Sandbox, name: &str) -> (std::path::PathBuf, String) {
    let key = sb.path(&format!("keys/{name}.key"));
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age-keygen: apt-get install age (scripts/test-deps.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recipient = String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_string();
    (key, recipient)
}

/// The quickstart backup encrypted to `recipient` (`age -a` when `armor`), with the sidecar of
/// the ciphertext, the plain object gone; the runbook decrypts with `key`.
fn encrypted_quickstart(recipient: &str, key: &std::path::Path, armor: bool) -> (Sandbox, std::path::PathBuf) {
    let sb = Sandbox::quickstart();
    let plain = sb.path(PLAIN);
    let sealed = sb.path(&format!("{PLAIN}.age"));
    let mut age = Command::new("age");
    age.arg("-r").arg(recipient).arg("-o").arg(&sealed);
    if armor {
        age.arg("-a");
    }
    let out = age.arg(&plain).output().expect("age: apt-get install age (scripts/test-deps.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(&plain).unwrap();
    std::fs::remove_file(sb.path(&format!("{PLAIN}.sha256"))).unwrap();
    reseal_sidecar(&sb);
    sb.edit("quickstart.yaml", "match: \"*.tar.zst\"", "match: \"*.tar.zst.age\"");
    sb.edit(
        "quickstart.yaml",
        "  checksum: sidecar\n",
        &format!("  checksum: sidecar\n  decrypt: {{ age_identity: \"${{file:{}}}\" }}\n", key.display()),
    );
    (sb, sealed)
}

/// The sidecar of the ciphertext as it is now (a backup job checksums what it stores).
fn reseal_sidecar(sb: &Sandbox) {
    let bytes = std::fs::read(sb.path(&format!("{PLAIN}.age"))).unwrap();
    sb.write(&format!("{PLAIN}.age.sha256"), format!("{}  rag-2026-11-29.tar.zst.age\n", sha256_hex(&bytes)));
}

/// No line of the identity file appears in anything the drill wrote or printed.
fn identity_nowhere(sb: &Sandbox, key: &std::path::Path, run: &crate::support::Run) {
    let secret = std::fs::read_to_string(key).unwrap();
    let secret = secret.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).unwrap();
    assert_secret_nowhere(sb, run, secret, "identity");
}

#[test]
fn an_encrypted_backup_is_decrypted_in_the_same_pass_and_proven() {
    let keys = Sandbox::new();
    let (key, recipient) = keygen(&keys, "drill");
    for armor in [false, true] {
        let (sb, sealed) = encrypted_quickstart(&recipient, &key, armor);
        let (run, report) = sb.drill("quickstart.yaml");
        assert_eq!(run.code, 0, "{run}");
        assert_eq!(report["verdict"], "passed");
        // The digest is of the stored ciphertext, as its sidecar is.
        assert_eq!(report["backup"]["sha256"], sha256_hex(&std::fs::read(&sealed).unwrap()));
        let unpack = step(&report, "unpack")["detail"].as_str().unwrap().to_string();
        assert!(unpack.starts_with("age+zstd+tar:"), "{unpack}");
        identity_nowhere(&sb, &key, &run);
        sb.assert_no_leftovers();
    }
}

#[test]
fn the_wrong_key_fails_naming_it() {
    let keys = Sandbox::new();
    let (_, recipient) = keygen(&keys, "production");
    let (other, _) = keygen(&keys, "other");
    let (sb, _) = encrypted_quickstart(&recipient, &other, false);
    let (run, _) = fails_with(
        &sb,
        "quickstart.yaml",
        "age: none of the identities of `source.decrypt.age_identity` can decrypt this backup",
    );
    identity_nowhere(&sb, &other, &run);
}

#[test]
fn a_truncated_or_tampered_ciphertext_fails() {
    let keys = Sandbox::new();
    let (key, recipient) = keygen(&keys, "drill");
    let (sb, sealed) = encrypted_quickstart(&recipient, &key, false);
    let bytes = std::fs::read(&sealed).unwrap();
    std::fs::write(&sealed, &bytes[..bytes.len() - 100]).unwrap();
    reseal_sidecar(&sb);
    fails_with(&sb, "quickstart.yaml", "unpack: corrupt or truncated age data");

    let (sb, sealed) = encrypted_quickstart(&recipient, &key, false);
    let mut bytes = std::fs::read(&sealed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&sealed, &bytes).unwrap();
    reseal_sidecar(&sb);
    fails_with(&sb, "quickstart.yaml", "unpack: corrupt or truncated age data");
}

#[test]
fn an_identity_that_is_not_one_is_invalid_input() {
    let keys = Sandbox::new();
    let (key, recipient) = keygen(&keys, "drill");
    let (sb, _) = encrypted_quickstart(&recipient, &key, false);
    std::fs::write(&key, "# a comment\nnot-a-key\n").unwrap();
    let r = sb.run(&["run", "quickstart.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("source.decrypt.age_identity: line 2 is not an age X25519 identity"), "{r}");
    assert!(!r.stderr.contains("not-a-key"), "the file's text is not repeated: {r}");
}
