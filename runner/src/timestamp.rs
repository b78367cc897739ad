//! Trusted timestamps (RFC 3161). Each report envelope's signature, hashed with SHA-256, is
//! sent to the configured time-stamping authority; its signed reply is kept as `report.tsr`
//! beside the envelope. The time of a drill then rests on the TSA, not on the host's clock
//! alone: the reply proves the signature existed at the TSA's time.
//!
//! A TSA that is down never fails or loses a drill: the drill's outcome says `timestamp: not
//! obtained`, and the next drill of the runbook asks again for the reports still without one
//! (their reply then carries that later time). Checking a reply is `openssl ts -verify`, the
//! tool an auditor uses too, started through the one process helper.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::config::TimestampConfig;

pub const FILE: &str = "report.tsr";
/// How many of a runbook's newest reports without a reply are asked for again per drill.
const RETRY: usize = 10;

/// The SHA-256 of the envelope's (first) signature: what the TSA time-stamps.
pub fn signature_digest(envelope: &Path) -> Result<[u8; 32], String> {
    let env = crate::evidence::read_envelope(envelope)?;
    let sig = env.signatures.first().ok_or_else(|| format!("{}: no signature", envelope.display()))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&sig.sig)
        .map_err(|e| format!("{}: signature is not base64: {e}", envelope.display()))?;
    Ok(Sha256::digest(&raw).into())
}

/// DER of a `TimeStampReq` (RFC 3161 §2.4.1): version 1, the SHA-256 message imprint, a nonce,
/// and `certReq` so the reply carries the TSA's certificate.
pub fn request(digest: &[u8; 32], nonce: u64) -> Vec<u8> {
    const SHA256: [u8; 15] = [0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00];
    let mut imprint = SHA256.to_vec();
    imprint.extend([0x04, 0x20]);
    imprint.extend(digest);
    let mut nonce_bytes: Vec<u8> = nonce.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    if nonce_bytes.first().is_none_or(|b| b & 0x80 != 0) {
        nonce_bytes.insert(0, 0);
    }
    let mut body = vec![0x02, 0x01, 0x01, 0x30, imprint.len() as u8];
    body.extend(imprint);
    body.extend([0x02, nonce_bytes.len() as u8]);
    body.extend(nonce_bytes);
    body.extend([0x01, 0x01, 0xff]);
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// One DER element: (tag, content, rest).
fn tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "the TSA's reply is not DER".to_string();
    let (&tag, rest) = buf.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        (rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize), &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The elements of a constructed DER value, in order.
fn children(mut buf: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (tag, content, rest) = tlv(buf)?;
        out.push((tag, content));
        buf = rest;
    }
    Ok(out)
}

/// Reads a `TimeStampResp`: granted, for `digest`; returns the TSA's time (`genTime`).
pub fn reply_time(resp: &[u8], digest: &[u8; 32]) -> Result<String, String> {
    let (_, body, _) = tlv(resp)?;
    let parts = children(body)?;
    let status = parts.first().ok_or("empty reply")?;
    let (_, code, _) = tlv(status.1)?;
    if !matches!(code, [0] | [1]) {
        return Err(format!("the TSA refused the request (PKIStatus {code:?})"));
    }
    let token = parts.get(1).ok_or("the reply carries no token")?;
    // ContentInfo { signedData OID, [0] SignedData { version, digests, encapContentInfo, ... } }
    let info = children(token.1)?;
    let signed = info.get(1).ok_or("no SignedData")?;
    let (_, signed, _) = tlv(signed.1)?;
    let encap = children(signed)?.into_iter().find(|(t, _)| *t == 0x30).ok_or("no encapsulated content")?;
    let econtent = children(encap.1)?.into_iter().find(|(t, _)| *t == 0xa0).ok_or("no TSTInfo")?;
    let (_, tst, _) = tlv(econtent.1)?;
    let (_, tst, _) = tlv(tst)?;
    // TSTInfo { version, policy, messageImprint, serialNumber, genTime, ... }
    let fields = children(tst)?;
    let imprint = children(fields.get(2).ok_or("no message imprint")?.1)?;
    if imprint.get(1).map(|i| i.1) != Some(&digest[..]) {
        return Err("the TSA's token is for another digest".into());
    }
    let time = fields.iter().find(|(t, _)| *t == 0x18).ok_or("no genTime")?;
    Ok(String::from_utf8_lossy(time.1).to_string())
}

/// Asks the TSA for a timestamp of the envelope's signature and writes `report.tsr` beside it.
pub async fn obtain(tsa: &TimestampConfig, envelope: &Path) -> Result<String, String> {
    let digest = signature_digest(envelope)?;
    let nonce = u64::from_be_bytes(uuid::Uuid::now_v7().as_bytes()[8..].try_into().unwrap_or_default());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let resp = client
        .post(&tsa.url)
        .header("content-type", "application/timestamp-query")
        .body(request(&digest, nonce))
        .send()
        .await
        .map_err(|e| format!("{}: {e}", tsa.url))?;
    if !resp.status().is_success() {
        return Err(format!("{}: HTTP {}", tsa.url, resp.status()));
    }
    let bytes = resp.bytes().await.map_err(|e| format!("{}: {e}", tsa.url))?;
    let time = reply_time(&bytes, &digest)?;
    let path = envelope.with_file_name(FILE);
    std::fs::write(&path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(time)
}

/// After a drill's report: its timestamp, and, when the TSA answered, again for up to `RETRY`
/// of the runbook's newest reports still without one (a TSA that is down is not asked ten more
/// times, each up to its timeout). Returns the outcome line for history (`timestamp: …`).
pub async fn after_report(tsa: &TimestampConfig, folder: Option<&Path>, dir: &Path) -> String {
    let mut outcome = match folder {
        Some(f) => match obtain(tsa, &f.join("report.dsse.json")).await {
            Ok(time) => format!("timestamp: {time} from {}", tsa.url),
            Err(e) => return format!("timestamp: not obtained ({e}); asked again at the next drill"),
        },
        None => "timestamp: not obtained (no report was written)".into(),
    };
    let mut without: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| Some(p.as_path()) != folder && p.join("report.dsse.json").exists() && !p.join(FILE).exists())
        .collect();
    // Run ids are UUIDv7: by name is by time, newest last.
    without.sort();
    let mut caught_up = 0;
    for f in without.iter().rev().take(RETRY) {
        if obtain(tsa, &f.join("report.dsse.json")).await.is_ok() {
            caught_up += 1;
        }
    }
    if caught_up > 0 {
        outcome.push_str(&format!("; {caught_up} earlier report(s) timestamped now"));
    }
    outcome
}

/// `openssl ts -verify` of `report.tsr` against the envelope's signature and the CA.
pub async fn verify(envelope: &Path, ca: &Path) -> Result<String, String> {
    let tsr = envelope.with_file_name(FILE);
    let digest = signature_digest(envelope)?;
    let bytes = std::fs::read(&tsr).map_err(|e| format!("{}: {e}", tsr.display()))?;
    let time = reply_time(&bytes, &digest).map_err(|e| format!("{}: {e}", tsr.display()))?;
    let mut cmd = drillbook_adapters::process::command("openssl", None);
    cmd.args(["ts", "-verify", "-digest", &hex::encode(digest), "-in"]).arg(&tsr).arg("-CAfile").arg(ca);
    let out = drillbook_adapters::process::run(cmd, Duration::from_secs(30), &Default::default())
        .await
        .map_err(|e| format!("cannot run openssl ts -verify (apt-get install openssl): {e}"))?;
    if !out.status.success() {
        let said = out.output.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>();
        return Err(format!(
            "{}: not a valid timestamp under {}: {}",
            tsr.display(),
            ca.display(),
            said.iter()
                .rev()
                .find(|l| l.contains("error") || l.contains("Verification"))
                .or(said.last())
                .unwrap_or(&"openssl said no")
        ));
    }
    Ok(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_der_time_stamp_req() {
        // RFC 3161 §2.4.1, byte for byte: SEQUENCE { version 1, messageImprint { sha256, digest },
        // nonce 0x1234, certReq TRUE } (a real TSA accepting it: e2e `timestamp::*`).
        let digest = [0xab; 32];
        let der = request(&digest, 0x1234);
        let mut expected = vec![0x30, 0x3d, 0x02, 0x01, 0x01, 0x30, 0x31];
        expected.extend([0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00]);
        expected.extend([0x04, 0x20]);
        expected.extend([0xab; 32]);
        expected.extend([0x02, 0x02, 0x12, 0x34, 0x01, 0x01, 0xff]);
        assert_eq!(der, expected);
        // A nonce with its high bit set gets a leading zero (DER INTEGERs are signed).
        let der = request(&digest, 0x80);
        assert_eq!(&der[der.len() - 7..], &[0x02, 0x02, 0x00, 0x80, 0x01, 0x01, 0xff]);
    }

    #[test]
    fn a_reply_that_is_not_der_or_refused_is_an_error() {
        assert!(reply_time(b"", &[0; 32]).is_err());
        assert!(reply_time(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02], &[0; 32]).unwrap_err().contains("refused"));
    }
}
